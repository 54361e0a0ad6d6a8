/* h5edit: makes broken teacher files for the command-line error tests.
 *
 *   h5edit IN OUT drop KEY            OUT = IN without dataset KEY
 *   h5edit IN OUT reshape KEY D0,D1.. OUT = IN with KEY replaced by a float32
 *                                     dataset of that shape (zeros, then as
 *                                     many of the old values as fit)
 *
 * OUT starts as a byte copy of IN, so root attributes, every other dataset
 * and the link order stay exactly as the real teacher has them; only KEY
 * changes. Exit status 0 on success, 1 on failure, 2 on bad usage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#define MAX_RANK 8

static int usage(void)
{
    fprintf(stderr, "usage: h5edit IN OUT drop KEY\n"
                    "       h5edit IN OUT reshape KEY D0,D1,...\n");
    return 2;
}

static int copy_bytes(const char *in, const char *out)
{
    FILE *fi = fopen(in, "rb");
    if (!fi) {
        fprintf(stderr, "h5edit: %s: %s\n", in, strerror(errno));
        return -1;
    }
    FILE *fo = fopen(out, "wb");
    if (!fo) {
        fprintf(stderr, "h5edit: %s: %s\n", out, strerror(errno));
        fclose(fi);
        return -1;
    }
    char buf[1 << 16];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof buf, fi)) > 0)
        if (fwrite(buf, 1, n, fo) != n) {
            rc = -1;
            break;
        }
    if (ferror(fi))
        rc = -1;
    if (fclose(fo) != 0)
        rc = -1;
    fclose(fi);
    if (rc)
        fprintf(stderr, "h5edit: copying %s to %s failed\n", in, out);
    return rc;
}

static int parse_shape(const char *s, hsize_t *dims)
{
    int rank = 0;
    while (*s) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || errno || v == 0 || rank == MAX_RANK)
            return -1;
        dims[rank++] = v;
        if (*end == ',')
            end++;
        else if (*end)
            return -1;
        s = end;
    }
    return rank;
}

/* Replaces KEY by a float32 dataset of the given shape. */
static int reshape(hid_t f, const char *key, int rank, const hsize_t *dims)
{
    hid_t d = H5Dopen2(f, key, H5P_DEFAULT);
    if (d < 0)
        return -1;
    hid_t sp = H5Dget_space(d);
    hssize_t old_n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    hsize_t new_n = 1;
    for (int i = 0; i < rank; i++)
        new_n *= dims[i];
    size_t keep = old_n < 0 ? 0 : (size_t)old_n;
    float *buf = calloc(keep > new_n ? keep : new_n, sizeof(float));
    if (!buf) {
        H5Dclose(d);
        return -1;
    }
    herr_t st = keep ? H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) : 0;
    H5Dclose(d);
    if (st < 0 || H5Ldelete(f, key, H5P_DEFAULT) < 0) {
        free(buf);
        return -1;
    }
    sp = H5Screate_simple(rank, dims, NULL);
    d = H5Dcreate2(f, key, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    st = d < 0 ? -1 : H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    if (d >= 0)
        H5Dclose(d);
    H5Sclose(sp);
    free(buf);
    return st < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 5)
        return usage();
    const char *in = argv[1], *out = argv[2], *op = argv[3], *key = argv[4];
    int drop = strcmp(op, "drop") == 0;
    hsize_t dims[MAX_RANK];
    int rank = 0;
    if (drop) {
        if (argc != 5)
            return usage();
    } else if (strcmp(op, "reshape") == 0) {
        if (argc != 6 || (rank = parse_shape(argv[5], dims)) <= 0)
            return usage();
    } else {
        return usage();
    }

    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our one-line messages say enough */
    if (copy_bytes(in, out))
        return 1;
    hid_t f = H5Fopen(out, H5F_ACC_RDWR, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr, "h5edit: %s: not an HDF5 file\n", in);
        return 1;
    }
    int rc = 0;
    if (H5Lexists(f, key, H5P_DEFAULT) <= 0) {
        fprintf(stderr, "h5edit: %s: no dataset '%s'\n", in, key);
        rc = 1;
    } else if (drop ? H5Ldelete(f, key, H5P_DEFAULT) < 0 : reshape(f, key, rank, dims) < 0) {
        fprintf(stderr, "h5edit: %s: cannot %s '%s'\n", out, op, key);
        rc = 1;
    }
    if (H5Fclose(f) < 0)
        rc = 1;
    if (rc)
        remove(out); /* never leave a half-edited file behind */
    return rc;
}
