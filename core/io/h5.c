/* Teacher files: a CIFAR ResNet state_dict in HDF5, read and written with
 * every HDF5 call checked and errors naming the file and the key. */
#include "akt/nn.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "h5attr.h"

/* HDF5 prints its own error stack by default; we report through akt_error. */
static void h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static void shape_str(char *buf, size_t n, int ndim, const hsize_t *d)
{
    size_t k = snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++)
        k += snprintf(buf + k, n - k, "%s%llu", i ? "," : "", (unsigned long long)d[i]);
    if (k < n)
        snprintf(buf + k, n - k, "]");
}

/* Opens path for reading with a precise error for the usual failures. */
static hid_t open_h5(const char *path, struct akt_error *e)
{
    h5_quiet();
    struct stat st;
    if (stat(path, &st) != 0) {
        akt_error_set(e, AKT_EIO, path, "cannot open: %s", strerror(errno));
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        akt_error_set(e, AKT_EIO, path, "is a directory, expected an HDF5 file");
        return -1;
    }
    if (akt_file_check(path, NULL, e)) /* a FIFO would block the open */
        return -1;
    if (H5Fis_hdf5(path) <= 0) {
        akt_error_set(e, AKT_EFORMAT, path, "not an HDF5 file (no HDF5 signature, %lld bytes)",
                      (long long)st.st_size);
        return -1;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        akt_error_set(e, AKT_EFORMAT, path, "HDF5 file cannot be opened (corrupt or truncated?)");
    return f;
}

static int attr_exists(hid_t obj, const char *name) { return H5Aexists(obj, name) > 0; }

/* The attribute readers check the dataspace, the type class and a string's
 * length before reading (h5attr.c): a crafted file is refused, never read
 * into a buffer too small for it. */
static int read_attr_i64(hid_t f, const char *path, const char *name, int64_t *v,
                         struct akt_error *e)
{
    return akt__h5_read_num(f, path, name, H5T_NATIVE_INT64, 1, v, 1, e);
}

static int read_attr_f32(hid_t f, const char *path, const char *name, float *v, int n,
                         struct akt_error *e)
{
    return akt__h5_read_num(f, path, name, H5T_NATIVE_FLOAT, 0, v, n, e);
}

/* A string attribute (variable or fixed length) into buf, which must hold
 * it: a longer one is an error, not silently cut. */
static int read_attr_str(hid_t f, const char *path, const char *name, char *buf, size_t n,
                         struct akt_error *e)
{
    char *s;
    int rc = akt__h5_read_str(f, path, name, n - 1, &s, e);
    if (rc)
        return rc;
    snprintf(buf, n, "%s", s);
    free(s);
    return 0;
}

struct iter_ctx {
    const struct akt_resnet *m;
    const char *path;
    struct akt_error *e;
    int rc;
};

/* Every dataset in the file must be one the architecture knows: a stray key
 * usually means the wrong shortcut style or architecture. */
static herr_t check_known(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    (void)info;
    struct iter_ctx *c = data;
    if (akt_resnet_param(c->m, name))
        return 0;
    size_t len = strlen(name);
    if (len >= 19 && !strcmp(name + len - 19, "num_batches_tracked"))
        return 0;
    char where[600];
    snprintf(where, sizeof where, "%s:/%s", c->path, name);
    char arch[32];
    c->rc = akt_error_set(c->e, AKT_EFORMAT, where,
                          "unexpected dataset: %s with the '%s' shortcut has no such key",
                          akt_resnet_arch(c->m, arch, sizeof arch),
                          c->m->shortcut == AKT_SHORTCUT_PAD ? "pad" : "conv1x1");
    return 1;
}

/* Blocks per stage as the keys show them: one more than the largest B of
 * any "layerS.B.*" dataset, per stage S = 1..3. */
struct block_scan {
    int blocks[AKT_RESNET_STAGES];
};

static herr_t scan_blocks(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    (void)info;
    struct block_scan *b = data;
    int s, k, used = 0;
    if (sscanf(name, "layer%d.%d.%n", &s, &k, &used) == 2 && used > 0 && s >= 1 &&
        s <= AKT_RESNET_STAGES && k >= 0 && k < 100000 && k + 1 > b->blocks[s - 1])
        b->blocks[s - 1] = k + 1;
    return 0;
}

/* The depth: the arch attribute ("resnet<6n+2>") checked against the
 * blocks the keys hold, or read off the keys when there is no attribute. */
static int teacher_depth(hid_t f, const char *path, int *depth, struct akt_error *e)
{
    struct block_scan bs = {{0}};
    hsize_t idx = 0;
    H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, &idx, scan_blocks, &bs);
    char keys[160];
    snprintf(keys, sizeof keys, "keys layer1.0..%d, layer2.0..%d, layer3.0..%d", bs.blocks[0] - 1,
             bs.blocks[1] - 1, bs.blocks[2] - 1);
    int same = bs.blocks[0] == bs.blocks[1] && bs.blocks[1] == bs.blocks[2];
    if (attr_exists(f, "arch")) {
        char s[64];
        int rc = read_attr_str(f, path, "arch", s, sizeof s, e);
        if (rc)
            return rc;
        int d = 0, used = 0;
        if (sscanf(s, "resnet%d%n", &d, &used) != 1 || s[used] || !akt_resnet_depth_valid(d))
            return akt_error_set(e, AKT_EFORMAT, path,
                                 "attribute 'arch' is '%s'; akt supports CIFAR ResNets "
                                 "'resnet<6n+2>' (resnet20, resnet32, resnet44, resnet56, "
                                 "resnet110, ...)", s);
        int n = (d - 2) / 6;
        for (int st = 0; st < AKT_RESNET_STAGES; st++)
            if (bs.blocks[st] != n)
                return akt_error_set(e, AKT_EFORMAT, path,
                                     "attribute 'arch' is '%s' (%d blocks per stage) but the "
                                     "file holds %d blocks in stage %d (%s)", s, n, bs.blocks[st],
                                     st + 1, keys);
        *depth = d;
        return 0;
    }
    int n = bs.blocks[0];
    if (!same || n < 1 || n > AKT_RESNET_MAX_N)
        return akt_error_set(e, AKT_EFORMAT, path,
                             "no 'arch' attribute and the keys do not describe a CIFAR ResNet "
                             "with the same number of blocks in each stage (%s)", keys);
    *depth = 6 * n + 2;
    return 0;
}

int akt_resnet_load(struct akt_resnet *m, const char *path, struct akt_error *e)
{
    memset(m, 0, sizeof *m);
    hid_t f = open_h5(path, e);
    if (f < 0)
        return e ? e->code : AKT_EIO;
    int rc = 0;
    char where[600];

    /* shortcut style: attribute, else inferred from the keys */
    enum akt_shortcut sc = H5Lexists(f, "layer2.0.shortcut.0.weight", H5P_DEFAULT) > 0
                               ? AKT_SHORTCUT_CONV1X1
                               : AKT_SHORTCUT_PAD;
    if (attr_exists(f, "shortcut")) {
        char s[64];
        if ((rc = read_attr_str(f, path, "shortcut", s, sizeof s, e)))
            goto out;
        if (!strcmp(s, "pad") || !strcmp(s, "A"))
            sc = AKT_SHORTCUT_PAD;
        else if (!strcmp(s, "conv1x1") || !strcmp(s, "B"))
            sc = AKT_SHORTCUT_CONV1X1;
        else {
            rc = akt_error_set(e, AKT_EFORMAT, path,
                               "attribute 'shortcut' is '%s', expected 'pad' or 'conv1x1'", s);
            goto out;
        }
    }
    int depth = 0;
    if ((rc = teacher_depth(f, path, &depth, e)))
        goto out;
    /* class count: attribute, else the FC's rows */
    int64_t classes = 0;
    if (attr_exists(f, "num_classes")) {
        if ((rc = read_attr_i64(f, path, "num_classes", &classes, e)))
            goto out;
    } else if (H5Lexists(f, "linear.weight", H5P_DEFAULT) > 0) {
        hid_t d = H5Dopen2(f, "linear.weight", H5P_DEFAULT);
        hid_t sp = H5Dget_space(d);
        hsize_t dims[2] = {0, 0};
        if (H5Sget_simple_extent_ndims(sp) == 2)
            H5Sget_simple_extent_dims(sp, dims, NULL);
        classes = (int64_t)dims[0];
        H5Sclose(sp);
        H5Dclose(d);
    }
    if (classes < 2 || classes > 100000) {
        rc = akt_error_set(e, AKT_EFORMAT, path,
                           "attribute 'num_classes' is %lld (missing or out of range 2..100000)",
                           (long long)classes);
        goto out;
    }
    akt_resnet_init(m, depth, (int)classes, sc);
    if (attr_exists(f, "input_mean") &&
        (rc = read_attr_f32(f, path, "input_mean", m->mean, 3, e)))
        goto out;
    if (attr_exists(f, "input_std") && (rc = read_attr_f32(f, path, "input_std", m->std, 3, e)))
        goto out;
    for (int c = 0; c < 3; c++)
        if (!(m->std[c] > 0) || !isfinite(m->mean[c])) {
            rc = akt_error_set(e, AKT_EFORMAT, path, "attribute input_std/input_mean: channel %d "
                               "has mean %g std %g", c, m->mean[c], m->std[c]);
            goto out;
        }
    if (attr_exists(f, "bn_eps")) {
        float eps;
        if ((rc = read_attr_f32(f, path, "bn_eps", &eps, 1, e)))
            goto out;
        if (!(eps > 0 && eps < 1)) {
            rc = akt_error_set(e, AKT_EFORMAT, path, "attribute 'bn_eps' is %g, expected (0,1)", eps);
            goto out;
        }
        m->bn_eps = eps;
    }

    struct iter_ctx ic = {.m = m, .path = path, .e = e, .rc = 0};
    hsize_t idx = 0;
    H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, &idx, check_known, &ic);
    if ((rc = ic.rc))
        goto out;

    for (int i = 0; i < m->n_params; i++) {
        const struct akt_param *p = &m->params[i];
        snprintf(where, sizeof where, "%s:/%s", path, p->name);
        if (H5Lexists(f, p->name, H5P_DEFAULT) <= 0) {
            char arch[32];
            rc = akt_error_set(e, AKT_EFORMAT, where, "missing dataset (%s, %s shortcut)",
                               akt_resnet_arch(m, arch, sizeof arch),
                               sc == AKT_SHORTCUT_PAD ? "pad" : "conv1x1");
            goto out;
        }
        hid_t d = H5Dopen2(f, p->name, H5P_DEFAULT);
        if (d < 0) {
            rc = akt_error_set(e, AKT_EFORMAT, where, "not a dataset");
            goto out;
        }
        hid_t sp = H5Dget_space(d), ty = H5Dget_type(d);
        int nd = H5Sget_simple_extent_ndims(sp);
        hsize_t dims[8] = {0};
        if (nd > 0 && nd <= 8)
            H5Sget_simple_extent_dims(sp, dims, NULL);
        int ok = nd == p->ndim;
        for (int k = 0; ok && k < nd; k++)
            ok = dims[k] == (hsize_t)p->shape[k];
        int is_float = H5Tget_class(ty) == H5T_FLOAT;
        herr_t r = -1;
        if (ok && is_float)
            r = H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, m->values + p->offset);
        H5Tclose(ty);
        H5Sclose(sp);
        H5Dclose(d);
        if (!ok) {
            char got[96], want[96];
            hsize_t wd[4];
            for (int k = 0; k < p->ndim; k++)
                wd[k] = p->shape[k];
            shape_str(got, sizeof got, nd > 8 ? 8 : nd, dims);
            shape_str(want, sizeof want, p->ndim, wd);
            rc = akt_error_set(e, AKT_ESHAPE, where, "shape %s, expected %s", got, want);
            goto out;
        }
        if (!is_float) {
            rc = akt_error_set(e, AKT_EFORMAT, where, "not a floating-point dataset");
            goto out;
        }
        if (r < 0) {
            rc = akt_error_set(e, AKT_EFORMAT, where, "read failed (corrupt file?)");
            goto out;
        }
        for (int64_t k = 0; k < p->n; k++)
            if (!isfinite(m->values[p->offset + k])) {
                rc = akt_error_set(e, AKT_EFORMAT, where, "element %lld is not finite",
                                   (long long)k);
                goto out;
            }
    }
out:
    H5Fclose(f);
    if (rc)
        akt_resnet_free(m);
    return rc;
}

static int write_attr_str(hid_t obj, const char *name, const char *value)
{
    hid_t ty = H5Tcopy(H5T_C_S1);
    H5Tset_size(ty, H5T_VARIABLE);
    H5Tset_cset(ty, H5T_CSET_UTF8);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, ty, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t r = a < 0 ? -1 : H5Awrite(a, ty, &value);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(ty);
    return r < 0 ? -1 : 0;
}

static int write_attr_num(hid_t obj, const char *name, hid_t file_type, hid_t mem_type,
                          const void *v, hsize_t n)
{
    hid_t sp = n == 1 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
    hid_t a = H5Acreate2(obj, name, file_type, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t r = a < 0 ? -1 : H5Awrite(a, mem_type, v);
    if (a >= 0)
        H5Aclose(a);
    H5Sclose(sp);
    return r < 0 ? -1 : 0;
}

int akt_resnet_save(const struct akt_resnet *m, const char *path, struct akt_error *e)
{
    h5_quiet();
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        return akt_error_set(e, AKT_EIO, path, "cannot create HDF5 file");
    int bad = 0;
    int64_t classes = m->num_classes;
    double eps = m->bn_eps;
    char arch[32];
    bad |= write_attr_str(f, "arch", akt_resnet_arch(m, arch, sizeof arch));
    bad |= write_attr_str(f, "shortcut", m->shortcut == AKT_SHORTCUT_PAD ? "pad" : "conv1x1");
    bad |= write_attr_num(f, "num_classes", H5T_STD_I64LE, H5T_NATIVE_INT64, &classes, 1);
    bad |= write_attr_num(f, "input_mean", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, m->mean, 3);
    bad |= write_attr_num(f, "input_std", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, m->std, 3);
    bad |= write_attr_num(f, "bn_eps", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &eps, 1);
    bad |= write_attr_str(f, "weight_layout", "PyTorch: conv [out,in,kh,kw], linear [out,in]");
    for (int i = 0; i < m->n_params && !bad; i++) {
        const struct akt_param *p = &m->params[i];
        hsize_t dims[4];
        for (int k = 0; k < p->ndim; k++)
            dims[k] = p->shape[k];
        hid_t sp = H5Screate_simple(p->ndim, dims, NULL);
        hid_t d = H5Dcreate2(f, p->name, H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (d < 0 || H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT,
                              m->values + p->offset) < 0)
            bad = 1;
        if (d >= 0)
            H5Dclose(d);
        H5Sclose(sp);
    }
    if (H5Fclose(f) < 0)
        bad = 1;
    if (bad)
        return akt_error_set(e, AKT_EIO, path, "writing the model failed (disk full?)");
    return 0;
}
