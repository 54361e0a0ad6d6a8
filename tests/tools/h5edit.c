/* h5edit: makes broken HDF5 files (teachers, results files) for the
 * command-line error tests.
 *
 *   h5edit IN OUT drop KEY            OUT = IN without dataset KEY
 *   h5edit IN OUT reshape KEY D0,D1.. OUT = IN with KEY replaced by a float32
 *                                     dataset of that shape (zeros, then as
 *                                     many of the old values as fit)
 *   h5edit IN OUT attr OBJ NAME TYPE V...
 *                                     OUT = IN with attribute NAME of the
 *                                     group OBJ ("/", "/runs/x") replaced:
 *                                     one value makes a scalar, more a 1-D
 *                                     array; TYPE int (int64), float
 *                                     (float64), str (variable-length
 *                                     UTF-8) or fstr (fixed-length ASCII,
 *                                     the longest value's size)
 *   h5edit IN OUT flip OFFSET         OUT = IN with byte OFFSET inverted
 *
 * OUT starts as a byte copy of IN, so root attributes, every other dataset
 * and the link order stay exactly as the original has them; only KEY
 * changes. Exit status 0 on success, 1 on failure, 2 on bad usage. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#define MAX_RANK 8

static int usage(void)
{
    fprintf(stderr, "usage: h5edit IN OUT drop KEY\n"
                    "       h5edit IN OUT reshape KEY D0,D1,...\n"
                    "       h5edit IN OUT attr OBJ NAME int|float|str|fstr VALUE...\n"
                    "       h5edit IN OUT flip OFFSET\n");
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

/* Replaces attribute name of group obj with n values of the given type. */
static int set_attr(hid_t f, const char *obj, const char *name, const char *type, char **v, int n)
{
    hid_t g = H5Gopen2(f, obj, H5P_DEFAULT);
    if (g < 0)
        return -1;
    if (H5Aexists(g, name) > 0 && H5Adelete(g, name) < 0) {
        H5Gclose(g);
        return -1;
    }
    hsize_t dims = (hsize_t)n;
    hid_t sp = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &dims, NULL);
    hid_t ft = -1, mt = -1;
    void *buf = NULL;
    if (!strcmp(type, "int") || !strcmp(type, "float")) {
        int is_int = type[0] == 'i';
        ft = H5Tcopy(is_int ? H5T_STD_I64LE : H5T_IEEE_F64LE);
        mt = H5Tcopy(is_int ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE);
        buf = calloc((size_t)n, 8);
        for (int i = 0; buf && i < n; i++) {
            if (is_int)
                ((int64_t *)buf)[i] = strtoll(v[i], NULL, 10);
            else
                ((double *)buf)[i] = strtod(v[i], NULL);
        }
    } else if (!strcmp(type, "str")) {
        ft = H5Tcopy(H5T_C_S1);
        H5Tset_size(ft, H5T_VARIABLE);
        H5Tset_cset(ft, H5T_CSET_UTF8);
        mt = H5Tcopy(ft);
        buf = calloc((size_t)n, sizeof(char *));
        for (int i = 0; buf && i < n; i++)
            ((char **)buf)[i] = v[i];
    } else if (!strcmp(type, "fstr")) {
        size_t len = 1;
        for (int i = 0; i < n; i++)
            len = strlen(v[i]) > len ? strlen(v[i]) : len;
        ft = H5Tcopy(H5T_C_S1);
        H5Tset_size(ft, len);
        H5Tset_strpad(ft, H5T_STR_NULLPAD);
        mt = H5Tcopy(ft);
        buf = calloc((size_t)n, len);
        for (int i = 0; buf && i < n; i++)
            memcpy((char *)buf + (size_t)i * len, v[i], strlen(v[i]));
    }
    hid_t a = buf && sp >= 0 && ft >= 0 ? H5Acreate2(g, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
    int rc = a < 0 || H5Awrite(a, mt, buf) < 0 ? -1 : 0;
    if (a >= 0)
        H5Aclose(a);
    free(buf);
    if (ft >= 0)
        H5Tclose(ft);
    if (mt >= 0)
        H5Tclose(mt);
    if (sp >= 0)
        H5Sclose(sp);
    H5Gclose(g);
    return rc;
}

/* Inverts byte off of out (a copy of in). */
static int flip_byte(const char *out, long off)
{
    FILE *f = fopen(out, "r+b");
    int c = f && fseek(f, off, SEEK_SET) == 0 ? fgetc(f) : EOF;
    int rc = c == EOF || fseek(f, off, SEEK_SET) != 0 || fputc(c ^ 0xff, f) == EOF ? -1 : 0;
    if (f && fclose(f) != 0)
        rc = -1;
    if (rc)
        fprintf(stderr, "h5edit: %s: cannot flip byte %ld\n", out, off);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 5)
        return usage();
    const char *in = argv[1], *out = argv[2], *op = argv[3], *key = argv[4];
    int drop = strcmp(op, "drop") == 0;
    hsize_t dims[MAX_RANK];
    int rank = 0;
    if (!strcmp(op, "flip")) {
        char *end;
        long off = strtol(key, &end, 10);
        if (argc != 5 || *end || off < 0)
            return usage();
        if (copy_bytes(in, out))
            return 1;
        if (flip_byte(out, off)) {
            remove(out);
            return 1;
        }
        return 0;
    }
    if (!strcmp(op, "attr")) {
        if (argc < 8)
            return usage();
        const char *type = argv[6];
        if (strcmp(type, "int") && strcmp(type, "float") && strcmp(type, "str") &&
            strcmp(type, "fstr"))
            return usage();
        H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
        if (copy_bytes(in, out))
            return 1;
        hid_t f = H5Fopen(out, H5F_ACC_RDWR, H5P_DEFAULT);
        if (f < 0) {
            fprintf(stderr, "h5edit: %s: not an HDF5 file\n", in);
            remove(out);
            return 1;
        }
        int rc = set_attr(f, key, argv[5], type, argv + 7, argc - 7) < 0;
        if (rc)
            fprintf(stderr, "h5edit: %s: cannot set attribute '%s' of %s\n", out, argv[5], key);
        if (H5Fclose(f) < 0)
            rc = 1;
        if (rc)
            remove(out);
        return rc;
    }
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
