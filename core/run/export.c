/* Finished students out of the results file: rebuilt for evaluation, and
 * exported for PyTorch (an HDF5 state_dict) and for deployment (ONNX, QDQ).
 * Everything comes from /runs/<id>/tensors (results/README.md), read-only:
 * the teacher file is not needed. */
#include "akt/export.h"

#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "akt/results.h"
#include "akt/run.h"
#include "../io/h5attr.h"
#include "../io/onnx.h"

#define STUDENT_GROUP "tensors/student"

/* -------------------------------------------------------------- reading -- */

struct src {
    const char *path, *id;
    hid_t f, run;
    char where[1400];
};

static void src_close(struct src *s)
{
    akt__h5_close(s->run);
    akt__h5_close(s->f);
    s->f = s->run = -1;
}

/* Lists the run ids of the file into buf ("a, b, c"), for the error that
 * names a missing run. */
static void list_runs(hid_t f, char *buf, size_t n)
{
    buf[0] = 0;
    hid_t g = H5Gopen2(f, "runs", H5P_DEFAULT);
    H5G_info_t info;
    if (g < 0 || H5Gget_info(g, &info) < 0) {
        akt__h5_close(g);
        snprintf(buf, n, "none");
        return;
    }
    size_t used = 0;
    for (hsize_t i = 0; i < info.nlinks && used + 4 < n; i++) {
        char name[256];
        if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                               H5P_DEFAULT) < 0)
            break;
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? ", " : "", name);
    }
    if (!info.nlinks)
        snprintf(buf, n, "none");
    akt__h5_close(g);
}

/* A run that has not ended lives in its run file (results/README.md, Crash
 * safety): say so, with its status, rather than "no such run". */
static int not_ended(const char *path, const char *id, struct akt_error *e)
{
    char file[1200];
    struct stat st;
    if (!id || akt_results_run_file(path, id, file, sizeof file) || stat(file, &st) != 0)
        return 0;
    struct akt_results *r = NULL;
    char status[32] = "?";
    if (akt_results_open_read(&r, file, NULL) == 0) {
        if (akt_results_get_status(r, id, status, sizeof status) != 0)
            snprintf(status, sizeof status, "unreadable");
        akt_results_close(r, NULL);
    }
    return akt_error_set(e, AKT_EINVAL, path, "run '%s' has not ended: it is in %s (status "
                         "'%s'; a process killed while it ran leaves 'running'), without final "
                         "student tensors", id, file, status);
}

static int src_open(struct src *s, const char *path, const char *id, struct akt_error *e)
{
    s->path = path;
    s->id = id;
    s->f = s->run = -1;
    snprintf(s->where, sizeof s->where, "%s:/runs/%s", path, id);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    struct stat st;
    int rc = not_ended(path, id, e);
    if (rc)
        return rc;
    if (stat(path, &st) != 0)
        return akt_error_set(e, AKT_EIO, path, "cannot open: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return akt_error_set(e, AKT_EIO, path, "not a regular file");
    if (H5Fis_hdf5(path) <= 0)
        return akt_error_set(e, AKT_EFORMAT, path, "not an HDF5 file");
    if ((s->f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT)) < 0)
        return akt_error_set(e, AKT_EFORMAT, path, "cannot be opened (corrupt, or locked by a "
                             "writer?)");
    char runs[600];
    if (H5Lexists(s->f, "runs", H5P_DEFAULT) <= 0) {
        src_close(s);
        return akt_error_set(e, AKT_EFORMAT, path, "not an akt results file (no /runs)");
    }
    char p[300];
    snprintf(p, sizeof p, "runs/%s", id ? id : "");
    if (!id || !*id || strchr(id, '/') || strlen(id) > 200 ||
        H5Lexists(s->f, p, H5P_DEFAULT) <= 0) {
        list_runs(s->f, runs, sizeof runs);
        src_close(s);
        return akt_error_set(e, AKT_EINVAL, path, "no run '%s' (runs: %s)", id ? id : "",
                             runs);
    }
    if ((s->run = H5Gopen2(s->f, p, H5P_DEFAULT)) < 0) {
        src_close(s);
        return akt_error_set(e, AKT_EFORMAT, s->where, "the run group cannot be opened");
    }
    if (H5Lexists(s->run, "tensors", H5P_DEFAULT) <= 0 ||
        H5Lexists(s->run, STUDENT_GROUP, H5P_DEFAULT) <= 0) {
        char *status = akt__h5_attr_str(s->run, "status");
        akt_error_set(e, AKT_EINVAL, s->where, "the run has no final student tensors (status "
                      "'%s'; a finished run of akt 0.2 or later has %s)",
                      status ? status : "?", STUDENT_GROUP);
        free(status);
        src_close(s);
        return AKT_EINVAL;
    }
    return 0;
}

/* Reads dataset rel (under the run) into data: exactly n elements. */
static int read_ds(struct src *s, const char *rel, hid_t mtype, void *data, int64_t n,
                   struct akt_error *e)
{
    char w[1800];
    snprintf(w, sizeof w, "%s/%s", s->where, rel);
    if (H5Lexists(s->run, rel, H5P_DEFAULT) <= 0)
        return akt_error_set(e, AKT_EFORMAT, w, "missing dataset");
    hid_t d = H5Dopen2(s->run, rel, H5P_DEFAULT);
    hid_t sp = d < 0 ? -1 : H5Dget_space(d);
    hssize_t np = sp < 0 ? -1 : H5Sget_simple_extent_npoints(sp);
    int rc = 0;
    if (np != n)
        rc = akt_error_set(e, AKT_ESHAPE, w, "has %lld elements, expected %lld", (long long)np,
                           (long long)n);
    else if (H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = akt_error_set(e, AKT_EFORMAT, w, "cannot be read");
    akt__h5_close(sp);
    akt__h5_close(d);
    return rc;
}

static int group_attr(struct src *s, const char *name, double lo, double hi, double *v,
                      struct akt_error *e)
{
    hid_t g = H5Gopen2(s->run, STUDENT_GROUP, H5P_DEFAULT);
    int rc = g < 0 ? -1 : akt__h5_attr_f64(g, name, v);
    akt__h5_close(g);
    if (rc || !(*v >= lo && *v <= hi))
        return akt_error_set(e, AKT_EFORMAT, s->where, "%s: attribute '%s' is missing or out of "
                             "range [%g, %g]", STUDENT_GROUP, name, lo, hi);
    return 0;
}

/* Network description, student values and activation ranges. */
static int load(struct src *src, struct akt_student *s, struct akt_error *e)
{
    double depth, classes, eps, wbits, abits, fl8;
    int rc;
    if ((rc = group_attr(src, "depth", 8, 6 * AKT_RESNET_MAX_N + 2, &depth, e)) ||
        (rc = group_attr(src, "num_classes", 2, 100000, &classes, e)) ||
        (rc = group_attr(src, "bn_eps", 1e-30, 1, &eps, e)) ||
        (rc = group_attr(src, "wbits", 2, 8, &wbits, e)) ||
        (rc = group_attr(src, "abits", 2, 8, &abits, e)) ||
        (rc = group_attr(src, "first_last_8bit", 0, 1, &fl8, e)))
        return rc;
    if (!akt_resnet_depth_valid((int)depth))
        return akt_error_set(e, AKT_EFORMAT, src->where, "%s: depth %g is not 6n+2",
                             STUDENT_GROUP, depth);
    hid_t g = H5Gopen2(src->run, STUDENT_GROUP, H5P_DEFAULT);
    char *sc = g < 0 ? NULL : akt__h5_attr_str(g, "shortcut");
    akt__h5_close(g);
    int pad = sc && !strcmp(sc, "pad"), conv = sc && !strcmp(sc, "conv1x1");
    free(sc);
    if (!pad && !conv)
        return akt_error_set(e, AKT_EFORMAT, src->where, "%s: attribute 'shortcut' is not pad "
                             "or conv1x1", STUDENT_GROUP);
    struct akt_resnet net;
    akt_resnet_init(&net, (int)depth, (int)classes, pad ? AKT_SHORTCUT_PAD : AKT_SHORTCUT_CONV1X1);
    net.bn_eps = (float)eps;
    char rel[300];
    for (int i = 0; i < net.n_params && !rc; i++) {
        const struct akt_param *p = &net.params[i];
        snprintf(rel, sizeof rel, "%s/%s", STUDENT_GROUP, p->name);
        rc = read_ds(src, rel, H5T_NATIVE_FLOAT, net.values + p->offset, p->n, e);
    }
    if (!rc)
        rc = read_ds(src, STUDENT_GROUP "/input_mean", H5T_NATIVE_FLOAT, net.mean, 3, e);
    if (!rc)
        rc = read_ds(src, STUDENT_GROUP "/input_std", H5T_NATIVE_FLOAT, net.std, 3, e);
    for (int64_t k = 0; !rc && k < net.n_values; k++)
        if (!isfinite(net.values[k]))
            rc = akt_error_set(e, AKT_EFORMAT, src->where, "%s holds a non-finite value",
                               STUDENT_GROUP);
    float *ranges = NULL;
    if (!rc) {
        ranges = malloc(2 * (size_t)net.n_acts * sizeof *ranges);
        AKT_ASSERT(ranges);
        rc = read_ds(src, "tensors/act_range", H5T_NATIVE_FLOAT, ranges, 2 * (int64_t)net.n_acts,
                     e);
    }
    if (!rc) {
        akt_student_init(s, &net, (int)wbits, (int)abits);
        s->first_last_8bit = fl8 != 0;
        s->tracking = 0; /* the ranges are final */
        for (int i = 0; i < s->n_acts; i++) {
            s->act[i].lo = ranges[2 * i];
            s->act[i].hi = ranges[2 * i + 1];
            s->act[i].updates = 1;
        }
    }
    free(ranges);
    akt_resnet_free(&net);
    return rc;
}

int akt_student_load(struct akt_student *s, const char *path, const char *id,
                     struct akt_student_info *info, struct akt_error *e)
{
    memset(s, 0, sizeof *s);
    struct src src;
    int rc = src_open(&src, path, id, e);
    if (rc)
        return rc;
    rc = load(&src, s, e);
    if (!rc && info) {
        memset(info, 0, sizeof *info);
        info->final_top1 = info->best_top1 = NAN;
        akt__h5_attr_f64(src.run, "final_top1", &info->final_top1);
        akt__h5_attr_f64(src.run, "best_top1", &info->best_top1);
        char *status = akt__h5_attr_str(src.run, "status");
        snprintf(info->status, sizeof info->status, "%s", status ? status : "");
        free(status);
        char *config = akt__h5_attr_str(src.run, "config");
        char v[1024];
        if (config && akt_config_text_get(config, "data", v, sizeof v) == 0)
            snprintf(info->data_path, sizeof info->data_path, "%s", v);
        if (config && akt_config_text_get(config, "eval_limit", v, sizeof v) == 0)
            info->eval_limit = atoi(v);
        free(config);
    }
    src_close(&src);
    return rc;
}

/* ------------------------------------------------------- quantizers ------ */

/* Per output channel of weight parameter p: integer levels, scale, zero
 * point (SPEC 2, exactly as the fake quantizer computes them). */
struct qweight {
    int bits, rows;
    int64_t cols;
    int *q;
    float *scale, *zp;
};

static void qweight_of(const struct akt_student *s, int param, struct qweight *w)
{
    const struct akt_param *p = &s->net.params[param];
    w->bits = akt_student_weight_bits(s, param);
    w->rows = p->shape[0];
    w->cols = p->n / w->rows;
    w->q = malloc((size_t)p->n * sizeof *w->q);
    w->scale = malloc((size_t)w->rows * sizeof *w->scale);
    w->zp = malloc((size_t)w->rows * sizeof *w->zp);
    AKT_ASSERT(w->q && w->scale && w->zp);
    const float *v = s->net.values + p->offset;
    for (int r = 0; r < w->rows; r++) {
        const float *row = v + r * w->cols;
        float lo = row[0], hi = row[0];
        for (int64_t k = 1; k < w->cols; k++) {
            lo = row[k] < lo ? row[k] : lo;
            hi = row[k] > hi ? row[k] : hi;
        }
        struct akt_qparams qp = akt_quant_params(lo, hi, w->bits);
        w->scale[r] = qp.scale;
        w->zp[r] = qp.zero_point;
        for (int64_t k = 0; k < w->cols; k++)
            w->q[r * w->cols + k] = (int)akt_quant_level(row[k], qp);
    }
}

static void qweight_free(struct qweight *w)
{
    free(w->q);
    free(w->scale);
    free(w->zp);
}

static int is_quantized(const struct akt_param *p)
{
    return p->kind == AKT_PARAM_WEIGHT && (p->ndim == 4 || p->ndim == 2);
}

/* ---------------------------------------------------------- torch ------ */

static int h5_write(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *data,
                    int ndim, const hsize_t *dims)
{
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t d = H5Dcreate2(loc, name, ftype, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    int bad = d < 0 || H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0;
    bad |= akt__h5_close(d) < 0;
    akt__h5_close(sp);
    akt__h5_close(lcpl);
    return bad ? -1 : 0;
}

static int attr_num(hid_t loc, const char *name, double v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, H5T_IEEE_F64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    int bad = a < 0 || H5Awrite(a, H5T_NATIVE_DOUBLE, &v) < 0;
    bad |= akt__h5_close(a) < 0;
    akt__h5_close(sp);
    return bad ? -1 : 0;
}

static int attr_str(hid_t loc, const char *name, const char *v)
{
    hid_t ty = akt__h5_vlen_utf8(), sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(loc, name, ty, sp, H5P_DEFAULT, H5P_DEFAULT);
    int bad = a < 0 || H5Awrite(a, ty, &v) < 0;
    bad |= akt__h5_close(a) < 0;
    akt__h5_close(sp);
    akt__h5_close(ty);
    return bad ? -1 : 0;
}

/* A writable output: refuse a folder and an unwritable place before any
 * work, naming the path. */
static int check_out(const char *out, struct akt_error *e)
{
    struct stat st;
    if (!out || !*out)
        return akt_error_set(e, AKT_EINVAL, "--out", "no output file given");
    if (stat(out, &st) == 0 && !S_ISREG(st.st_mode))
        return akt_error_set(e, AKT_EIO, out, "exists and is not a regular file");
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    FILE *f = fopen(tmp, "wb");
    if (!f)
        return akt_error_set(e, AKT_EIO, out, "cannot write: %s", strerror(errno));
    fclose(f);
    unlink(tmp);
    return 0;
}

static int write_torch(const struct akt_student *s, const struct akt_student_info *info,
                       const char *results, const char *id, const char *out,
                       struct akt_error *e)
{
    char tmp[1200];
    snprintf(tmp, sizeof tmp, "%s.tmp", out);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0)
        return akt_error_set(e, AKT_EIO, out, "cannot create the HDF5 file");
    const struct akt_resnet *n = &s->net;
    int bad = 0;
    char arch[32], name[300];
    bad |= attr_str(f, "format", "akt quantized student for PyTorch (tools/akt_student.py)");
    bad |= attr_num(f, "format_version", 1);
    bad |= attr_str(f, "arch", akt_resnet_arch(n, arch, sizeof arch));
    bad |= attr_num(f, "depth", n->depth);
    bad |= attr_str(f, "shortcut", n->shortcut == AKT_SHORTCUT_PAD ? "pad" : "conv1x1");
    bad |= attr_num(f, "num_classes", n->num_classes);
    bad |= attr_num(f, "bn_eps", n->bn_eps);
    bad |= attr_num(f, "wbits", s->wbits);
    bad |= attr_num(f, "abits", s->abits);
    bad |= attr_num(f, "first_last_8bit", s->first_last_8bit);
    bad |= attr_str(f, "source", results);
    bad |= attr_str(f, "run", id);
    bad |= attr_num(f, "final_top1", info->final_top1);
    bad |= attr_str(f, "eval_data", info->data_path);
    bad |= attr_num(f, "eval_limit", info->eval_limit);
    hsize_t three = 3;
    bad |= h5_write(f, "input_mean", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, n->mean, 1, &three);
    bad |= h5_write(f, "input_std", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, n->std, 1, &three);
    for (int i = 0; i < n->n_params && !bad; i++) {
        const struct akt_param *p = &n->params[i];
        hsize_t dims[4];
        for (int k = 0; k < p->ndim; k++)
            dims[k] = (hsize_t)p->shape[k];
        if (!is_quantized(p)) {
            bad |= h5_write(f, p->name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT,
                            n->values + p->offset, p->ndim, dims);
            continue;
        }
        /* the weight the student computes with: (q + zp) / scale */
        struct qweight w;
        qweight_of(s, i, &w);
        float *fq = malloc((size_t)p->n * sizeof *fq);
        AKT_ASSERT(fq);
        for (int r = 0; r < w.rows; r++)
            for (int64_t k = 0; k < w.cols; k++)
                fq[r * w.cols + k] = ((float)w.q[r * w.cols + k] + w.zp[r]) / w.scale[r];
        bad |= h5_write(f, p->name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, fq, p->ndim, dims);
        hsize_t rows = (hsize_t)w.rows, one = 1;
        snprintf(name, sizeof name, "quant/%s/q", p->name);
        bad |= h5_write(f, name, H5T_STD_I32LE, H5T_NATIVE_INT, w.q, p->ndim, dims);
        snprintf(name, sizeof name, "quant/%s/scale", p->name);
        bad |= h5_write(f, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, w.scale, 1, &rows);
        snprintf(name, sizeof name, "quant/%s/zero_point", p->name);
        bad |= h5_write(f, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, w.zp, 1, &rows);
        snprintf(name, sizeof name, "quant/%s/bits", p->name);
        bad |= h5_write(f, name, H5T_STD_I32LE, H5T_NATIVE_INT, &w.bits, 1, &one);
        free(fq);
        qweight_free(&w);
    }
    /* activation quantizers, forward order of the ReLUs */
    int na = s->n_acts;
    float *scale = malloc((size_t)na * sizeof *scale), *zp = malloc((size_t)na * sizeof *zp);
    float *range = malloc(2 * (size_t)na * sizeof *range);
    int *bits = malloc((size_t)na * sizeof *bits);
    AKT_ASSERT(scale && zp && range && bits);
    for (int i = 0; i < na; i++) {
        struct akt_qparams qp = akt_quant_params(s->act[i].lo, s->act[i].hi, s->abits);
        scale[i] = qp.scale;
        zp[i] = qp.zero_point;
        range[2 * i] = s->act[i].lo;
        range[2 * i + 1] = s->act[i].hi;
        bits[i] = s->abits;
    }
    hsize_t dn = (hsize_t)na, d2[2] = {(hsize_t)na, 2};
    bad |= h5_write(f, "act_quant/scale", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, scale, 1, &dn);
    bad |= h5_write(f, "act_quant/zero_point", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, zp, 1, &dn);
    bad |= h5_write(f, "act_quant/bits", H5T_STD_I32LE, H5T_NATIVE_INT, bits, 1, &dn);
    bad |= h5_write(f, "act_quant/range", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, range, 2, d2);
    free(scale);
    free(zp);
    free(range);
    free(bits);
    bad |= H5Fclose(f) < 0;
    if (bad || rename(tmp, out) != 0) {
        unlink(tmp);
        return akt_error_set(e, AKT_EIO, out, "writing the export failed (disk full?)");
    }
    return 0;
}

int akt_export_torch(const char *results, const char *id, const char *out, struct akt_error *e)
{
    struct akt_student s;
    struct akt_student_info info;
    int rc = check_out(out, e);
    if (!rc)
        rc = akt_student_load(&s, results, id, &info, e);
    if (rc)
        return rc;
    rc = write_torch(&s, &info, results, id, out, e);
    akt_student_free(&s);
    return rc;
}

/* ----------------------------------------------------------- ONNX ------ */

struct onnx_build {
    struct akt_onnx *g;
    const struct akt_student *s;
    int next_act, n_nodes;
    char cur[64]; /* name of the current activation */
};

static const char *fresh(struct onnx_build *b, char *buf, size_t n, const char *what)
{
    snprintf(buf, n, "%s_%d", what, b->n_nodes++);
    return buf;
}

static void node1(struct onnx_build *b, const char *op, const char *const *in, int n_in,
                  const char *out, const struct akt_onnx_attr *attr)
{
    char nm[80];
    snprintf(nm, sizeof nm, "%s_%d", op, b->n_nodes++);
    akt_onnx_node(b->g, op, nm, in, n_in, &out, 1, attr);
}

/* DequantizeLinear of weight parameter param; returns the tensor's name in
 * wname. The ONNX form is y = (x - zp') * scale' with zp' = -zp (int8 when
 * every channel's fits, the levels are always int8) and scale' = 1/scale;
 * otherwise the levels q + zp as int32 with no zero point. */
static void weight(struct onnx_build *b, int param, char *wname, size_t wn)
{
    const struct akt_param *p = &b->s->net.params[param];
    struct qweight w;
    qweight_of(b->s, param, &w);
    int fits = 1;
    for (int r = 0; r < w.rows; r++)
        fits &= -w.zp[r] >= -128 && -w.zp[r] <= 127;
    int64_t dims[4], rows = w.rows;
    for (int k = 0; k < p->ndim; k++)
        dims[k] = p->shape[k];
    char qn[96], sn[96], zn[96];
    snprintf(qn, sizeof qn, "%s.q", p->name);
    snprintf(sn, sizeof sn, "%s.scale", p->name);
    snprintf(zn, sizeof zn, "%s.zero_point", p->name);
    float *inv = malloc((size_t)w.rows * sizeof *inv);
    AKT_ASSERT(inv);
    for (int r = 0; r < w.rows; r++)
        inv[r] = (float)(1.0 / (double)w.scale[r]);
    akt_onnx_initializer(b->g, sn, AKT_ONNX_FLOAT, inv, 1, &rows);
    if (fits) {
        int8_t *q8 = malloc((size_t)p->n), *z8 = malloc((size_t)w.rows);
        AKT_ASSERT(q8 && z8);
        for (int64_t k = 0; k < p->n; k++)
            q8[k] = (int8_t)w.q[k];
        for (int r = 0; r < w.rows; r++)
            z8[r] = (int8_t)-w.zp[r];
        akt_onnx_initializer(b->g, qn, AKT_ONNX_INT8, q8, p->ndim, dims);
        akt_onnx_initializer(b->g, zn, AKT_ONNX_INT8, z8, 1, &rows);
        free(q8);
        free(z8);
    } else {
        int32_t *q32 = malloc((size_t)p->n * sizeof *q32);
        AKT_ASSERT(q32);
        for (int r = 0; r < w.rows; r++)
            for (int64_t k = 0; k < w.cols; k++)
                q32[r * w.cols + k] = w.q[r * w.cols + k] + (int32_t)w.zp[r];
        akt_onnx_initializer(b->g, qn, AKT_ONNX_INT32, q32, p->ndim, dims);
        free(q32);
    }
    free(inv);
    snprintf(wname, wn, "%s", p->name);
    const char *in[3] = {qn, sn, zn};
    struct akt_onnx_attr ax[] = {{.name = "axis", .kind = 'i', .i = 0}, {0}};
    node1(b, "DequantizeLinear", in, fits ? 3 : 2, wname, ax);
    qweight_free(&w);
}

static void conv(struct onnx_build *b, const char *x, const char *wkey, int stride, int pad,
                 char *out, size_t on)
{
    const struct akt_param *p = akt_resnet_param(&b->s->net, wkey);
    AKT_ASSERT(p);
    char wn[96];
    weight(b, (int)(p - b->s->net.params), wn, sizeof wn);
    int64_t k = p->shape[2], st[2] = {stride, stride}, pads[4] = {pad, pad, pad, pad},
            ks[2] = {k, k};
    struct akt_onnx_attr a[] = {{.name = "strides", .kind = 'I', .ints = st, .n_ints = 2},
                                {.name = "pads", .kind = 'I', .ints = pads, .n_ints = 4},
                                {.name = "kernel_shape", .kind = 'I', .ints = ks, .n_ints = 2},
                                {0}};
    const char *in[2] = {x, wn};
    node1(b, "Conv", in, 2, fresh(b, out, on, "conv"), a);
}

static void bn(struct onnx_build *b, const char *x, const char *prefix, char *out, size_t on)
{
    static const char *const f[4] = {"weight", "bias", "running_mean", "running_var"};
    char names[4][96];
    const char *in[5] = {x};
    for (int i = 0; i < 4; i++) {
        snprintf(names[i], sizeof names[i], "%s.%s", prefix, f[i]);
        const struct akt_param *p = akt_resnet_param(&b->s->net, names[i]);
        AKT_ASSERT(p);
        int64_t c = p->n;
        akt_onnx_initializer(b->g, names[i], AKT_ONNX_FLOAT, b->s->net.values + p->offset, 1, &c);
        in[1 + i] = names[i];
    }
    struct akt_onnx_attr a[] = {{.name = "epsilon", .kind = 'f', .f = b->s->net.bn_eps}, {0}};
    node1(b, "BatchNormalization", in, 5, fresh(b, out, on, "bn"), a);
}

/* ReLU, then the next activation quantizer: QuantizeLinear (zero point -zp,
 * scale 1/s), a Clip to the k-bit levels when k < 8, DequantizeLinear. A
 * zero point outside int8 (a range far from 0) falls back to the same maths
 * in float ops: round(s*x - zp) clipped, + zp, / s. */
static void relu_quant(struct onnx_build *b, const char *x, char *out, size_t on)
{
    char r[64], q[64], c[64];
    const char *in1[1] = {x};
    node1(b, "Relu", in1, 1, fresh(b, r, sizeof r, "relu"), NULL);
    int i = b->next_act++;
    AKT_ASSERT(i < b->s->n_acts);
    struct akt_qparams qp = akt_quant_params(b->s->act[i].lo, b->s->act[i].hi, b->s->abits);
    char sn[32], zn[32], lo[32], hi[32];
    snprintf(sn, sizeof sn, "act%d.scale", i);
    snprintf(zn, sizeof zn, "act%d.zero_point", i);
    snprintf(lo, sizeof lo, "act%d.qmin", i);
    snprintf(hi, sizeof hi, "act%d.qmax", i);
    if (-qp.zero_point >= -128 && -qp.zero_point <= 127) {
        float inv = (float)(1.0 / (double)qp.scale);
        int8_t z = (int8_t)-qp.zero_point, qmin = (int8_t)qp.qmin, qmax = (int8_t)qp.qmax;
        akt_onnx_initializer(b->g, sn, AKT_ONNX_FLOAT, &inv, 0, NULL);
        akt_onnx_initializer(b->g, zn, AKT_ONNX_INT8, &z, 0, NULL);
        const char *qin[3] = {r, sn, zn};
        node1(b, "QuantizeLinear", qin, 3, fresh(b, q, sizeof q, "q"), NULL);
        const char *dq_src = q;
        if (b->s->abits < 8) {
            akt_onnx_initializer(b->g, lo, AKT_ONNX_INT8, &qmin, 0, NULL);
            akt_onnx_initializer(b->g, hi, AKT_ONNX_INT8, &qmax, 0, NULL);
            const char *cin[3] = {q, lo, hi};
            node1(b, "Clip", cin, 3, fresh(b, c, sizeof c, "clip"), NULL);
            dq_src = c;
        }
        const char *din[3] = {dq_src, sn, zn};
        node1(b, "DequantizeLinear", din, 3, fresh(b, out, on, "dq"), NULL);
        return;
    }
    float sv = qp.scale, zv = qp.zero_point, qlo = qp.qmin, qhi = qp.qmax;
    akt_onnx_initializer(b->g, sn, AKT_ONNX_FLOAT, &sv, 0, NULL);
    akt_onnx_initializer(b->g, zn, AKT_ONNX_FLOAT, &zv, 0, NULL);
    akt_onnx_initializer(b->g, lo, AKT_ONNX_FLOAT, &qlo, 0, NULL);
    akt_onnx_initializer(b->g, hi, AKT_ONNX_FLOAT, &qhi, 0, NULL);
    char t1[64], t2[64], t3[64], t4[64], t5[64];
    const char *a1[2] = {r, sn};
    node1(b, "Mul", a1, 2, fresh(b, t1, sizeof t1, "fq_mul"), NULL);
    const char *a2[2] = {t1, zn};
    node1(b, "Sub", a2, 2, fresh(b, t2, sizeof t2, "fq_sub"), NULL);
    const char *a3[1] = {t2};
    node1(b, "Round", a3, 1, fresh(b, t3, sizeof t3, "fq_round"), NULL);
    const char *a4[3] = {t3, lo, hi};
    node1(b, "Clip", a4, 3, fresh(b, t4, sizeof t4, "fq_clip"), NULL);
    const char *a5[2] = {t4, zn};
    node1(b, "Add", a5, 2, fresh(b, t5, sizeof t5, "fq_add"), NULL);
    const char *a6[2] = {t5, sn};
    node1(b, "Div", a6, 2, fresh(b, out, on, "fq_div"), NULL);
}

/* Option-A shortcut: x[:, :, ::2, ::2], then pad_c zero channels before and
 * after (Slice + Pad). */
static void pad_shortcut(struct onnx_build *b, const char *x, int pad_c, char *out, size_t on)
{
    char sl[64], names[5][40];
    static const char *const what[5] = {"starts", "ends", "axes", "steps", "pads"};
    int64_t starts[2] = {0, 0}, ends[2] = {INT64_MAX, INT64_MAX}, axes[2] = {2, 3},
            steps[2] = {2, 2}, pads[8] = {0, pad_c, 0, 0, 0, pad_c, 0, 0};
    const int64_t *vals[5] = {starts, ends, axes, steps, pads};
    int id = b->n_nodes;
    for (int i = 0; i < 5; i++) {
        snprintf(names[i], sizeof names[i], "shortcut%d.%s", id, what[i]);
        int64_t len = i == 4 ? 8 : 2;
        akt_onnx_initializer(b->g, names[i], AKT_ONNX_INT64, vals[i], 1, &len);
    }
    const char *sin[5] = {x, names[0], names[1], names[2], names[3]};
    node1(b, "Slice", sin, 5, fresh(b, sl, sizeof sl, "slice"), NULL);
    const char *pin[2] = {sl, names[4]};
    struct akt_onnx_attr a[] = {{.name = "mode", .kind = 's', .s = "constant"}, {0}};
    node1(b, "Pad", pin, 2, fresh(b, out, on, "pad"), a);
}

static int write_onnx(const struct akt_student *s, const char *results, const char *id,
                      const struct akt_student_info *info, const char *out, struct akt_error *e)
{
    const struct akt_resnet *n = &s->net;
    struct onnx_build b = {.g = akt_onnx_new(13, "akt_student"), .s = s};
    char doc[1600], arch[32], v[64];
    akt_resnet_arch(n, arch, sizeof arch);
    snprintf(doc, sizeof doc, "akt quantized student: %s (%s shortcuts), W%dA%d, run '%s' of %s; "
             "input image = pixel / 255 in [0,1], RGB, [N,3,32,32]; output logits", arch,
             n->shortcut == AKT_SHORTCUT_PAD ? "pad" : "conv1x1", s->wbits, s->abits, id,
             results);
    akt_onnx_model_info(b.g, "akt", AKT_VERSION_STRING, doc);
    akt_onnx_meta(b.g, "arch", arch);
    snprintf(v, sizeof v, "W%dA%d", s->wbits, s->abits);
    akt_onnx_meta(b.g, "bits", v);
    akt_onnx_meta(b.g, "run", id);
    snprintf(v, sizeof v, "%.2f", info->final_top1);
    akt_onnx_meta(b.g, "final_top1", v);
    int64_t in_dims[4] = {-1, 3, 32, 32}, out_dims[2] = {-1, n->num_classes}, c4[4] = {1, 3, 1, 1};
    akt_onnx_value(b.g, 0, "image", AKT_ONNX_FLOAT, 4, in_dims, "N");
    akt_onnx_initializer(b.g, "input_mean", AKT_ONNX_FLOAT, n->mean, 4, c4);
    akt_onnx_initializer(b.g, "input_std", AKT_ONNX_FLOAT, n->std, 4, c4);
    char x0[64], x[64], h[64], u[64], body[64], sc[64], sum[64];
    const char *nin[2] = {"image", "input_mean"};
    node1(&b, "Sub", nin, 2, fresh(&b, x0, sizeof x0, "centred"), NULL);
    const char *din[2] = {x0, "input_std"};
    node1(&b, "Div", din, 2, fresh(&b, x, sizeof x, "normalised"), NULL);

    char t[64];
    conv(&b, x, "conv1.weight", 1, 1, t, sizeof t);
    bn(&b, t, "bn1", u, sizeof u);
    relu_quant(&b, u, h, sizeof h);
    const int nb = n->blocks_per_stage;
    for (int blk = 0; blk < n->n_features; blk++) {
        int stage = blk / nb, i = blk % nb, down = stage > 0 && i == 0;
        char pre[32], key[64];
        snprintf(pre, sizeof pre, "layer%d.%d", stage + 1, i);
        snprintf(key, sizeof key, "%s.conv1.weight", pre);
        conv(&b, h, key, down ? 2 : 1, 1, t, sizeof t);
        snprintf(key, sizeof key, "%s.bn1", pre);
        char a[64];
        bn(&b, t, key, a, sizeof a);
        relu_quant(&b, a, u, sizeof u);
        snprintf(key, sizeof key, "%s.conv2.weight", pre);
        conv(&b, u, key, 1, 1, t, sizeof t);
        snprintf(key, sizeof key, "%s.bn2", pre);
        bn(&b, t, key, body, sizeof body);
        snprintf(sc, sizeof sc, "%s", h);
        if (down && n->shortcut == AKT_SHORTCUT_CONV1X1) {
            snprintf(key, sizeof key, "%s.shortcut.0.weight", pre);
            conv(&b, h, key, 2, 0, t, sizeof t);
            snprintf(key, sizeof key, "%s.shortcut.1", pre);
            bn(&b, t, key, sc, sizeof sc);
        } else if (down) {
            int cin = 16 << (stage - 1), cout = 16 << stage;
            pad_shortcut(&b, h, (cout - cin) / 2, sc, sizeof sc);
        }
        const char *ain[2] = {body, sc};
        node1(&b, "Add", ain, 2, fresh(&b, sum, sizeof sum, "add"), NULL);
        relu_quant(&b, sum, h, sizeof h);
    }
    char pooled[64], flat[64];
    const char *gin[1] = {h};
    node1(&b, "GlobalAveragePool", gin, 1, fresh(&b, pooled, sizeof pooled, "pool"), NULL);
    struct akt_onnx_attr fa[] = {{.name = "axis", .kind = 'i', .i = 1}, {0}};
    const char *fin[1] = {pooled};
    node1(&b, "Flatten", fin, 1, fresh(&b, flat, sizeof flat, "flatten"), fa);
    const struct akt_param *fc = akt_resnet_param(n, "linear.weight");
    const struct akt_param *fb = akt_resnet_param(n, "linear.bias");
    char wn[96];
    weight(&b, (int)(fc - n->params), wn, sizeof wn);
    int64_t nc = fb->n;
    akt_onnx_initializer(b.g, "linear.bias", AKT_ONNX_FLOAT, n->values + fb->offset, 1, &nc);
    struct akt_onnx_attr ga[] = {{.name = "transB", .kind = 'i', .i = 1}, {0}};
    const char *gmin[3] = {flat, wn, "linear.bias"};
    node1(&b, "Gemm", gmin, 3, "logits", ga);
    akt_onnx_value(b.g, 1, "logits", AKT_ONNX_FLOAT, 2, out_dims, "N");
    AKT_ASSERT(b.next_act == s->n_acts);
    int rc = akt_onnx_write(b.g, out, e);
    akt_onnx_free(b.g);
    return rc;
}

int akt_export_onnx(const char *results, const char *id, const char *out, struct akt_error *e)
{
    struct akt_student s;
    struct akt_student_info info;
    int rc = check_out(out, e);
    if (!rc)
        rc = akt_student_load(&s, results, id, &info, e);
    if (rc)
        return rc;
    rc = write_onnx(&s, results, id, &info, out, e);
    akt_student_free(&s);
    return rc;
}
