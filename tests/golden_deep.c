/* Golden test: akt's depth-generic CIFAR ResNet against an independent
 * PyTorch reference (tools/make_deep_fixtures.py, layouts documented there).
 *   (a) ResNet-56, the real teacher $AKT_DATA/teachers/resnet56_...h5: its
 *       depth and counts as loaded, the normalised input, eval-mode logits
 *       (max abs error <= 1e-4), the 27 body outputs, and one CE training
 *       step with BN in eval mode (loss, every parameter gradient, input
 *       gradient), on the first 4 lossless test images
 *       (tests/fixtures/resnet56_golden.h5);
 *   (b) random-weight ResNet-110 (pad), ResNet-32 and ResNet-56 (conv1x1
 *       shortcuts), weights from the formula of tests/deep_weights.h: the
 *       parameter table against the state_dict keys and shapes, the weights
 *       (per-key sums), logits, body outputs, an eval-BN CE step, and for
 *       ResNet-110 a batch-statistics forward
 *       (tests/fixtures/resnet_random_golden.h5).
 * Tolerances as tests/golden_resnet.c's; the worst tensor of each section is
 * printed as a TAP comment. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/data.h"
#include "akt/nn.h"
#include "akt/tensor.h"

#include "deep_weights.h"
#include "golden.h"

#define NCLS 10
#define IMG (3 * 32 * 32)
#define LOGIT_ABS 1e-4
#define FEAT_ABS 1e-4
#define LOSS_ABS 1e-5
#define GRAD_ABS 1e-4
#define GRAD_REL 5e-4

static hid_t open_fixture(const char *name)
{
    const char *dir = getenv("AKT_FIXTURES");
    assert_non_null(dir);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        fail_msg("cannot open the committed fixture %s (tools/make_deep_fixtures.py)", path);
    return f;
}

static int attr_int(hid_t obj, const char *name)
{
    int v = 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_INT, &v) < 0)
        fail_msg("fixture attribute %s cannot be read", name);
    H5Aclose(a);
    return v;
}

/* One forward of m on x [B,3,32,32]; CE step when train (gradients in m,
 * d loss / d x in gx). Returns the loss (train) or 0; logits copied out. */
struct step {
    float loss, *logits, *gx;
    double *chmean[3 * AKT_RESNET_MAX_N]; /* channel means of every F_i, [B, C] */
    float *f_img0[3 * AKT_RESNET_MAX_N];  /* F_i of image 0, when wanted */
};

static void run(struct akt_resnet *m, const float *x, int B, const int *labels, int bn_batch,
                int train, struct step *s)
{
    memset(s, 0, sizeof *s);
    memset(m->grads, 0, (size_t)m->n_values * sizeof(float));
    struct akt_tape t;
    akt_tape_init(&t, 1 << 24);
    t.recording = train;
    struct akt_tensor *xt = akt_tensor_newv(&t, train, 4, B, 3, 32, 32);
    memcpy(xt->data, x, (size_t)B * IMG * sizeof(float));
    struct akt_resnet_opts o = {.bn_batch = bn_batch, .param_grads = train};
    struct akt_resnet_out out;
    akt_resnet_forward(m, &t, xt, &o, &out);
    assert_int_equal(out.size, sizeof out);
    assert_int_equal(out.n_features, m->n_features);
    assert_int_equal(out.n_bn, m->n_bn);
    assert_int_equal(out.n_acts, m->n_acts);
    s->logits = malloc((size_t)B * NCLS * sizeof *s->logits);
    memcpy(s->logits, out.logits->data, (size_t)B * NCLS * sizeof *s->logits);
    for (int i = 0; i < out.n_features; i++) {
        const struct akt_tensor *f = out.features[i];
        int C = f->shape[1], hw = f->shape[2] * f->shape[3];
        assert_int_equal(out.feature_stage[i], i / m->blocks_per_stage);
        assert_int_equal(C, 16 << out.feature_stage[i]);
        s->chmean[i] = malloc((size_t)B * C * sizeof(double));
        for (int bc = 0; bc < B * C; bc++) {
            double sum = 0;
            for (int p = 0; p < hw; p++)
                sum += f->data[(int64_t)bc * hw + p];
            s->chmean[i][bc] = (float)(sum / hw); /* as golden_resnet.c rounds it */
        }
        s->f_img0[i] = malloc((size_t)C * hw * sizeof(float));
        memcpy(s->f_img0[i], f->data, (size_t)C * hw * sizeof(float));
    }
    if (train) {
        struct akt_tensor *loss = akt_cross_entropy(&t, out.logits, labels);
        s->loss = loss->data[0];
        akt_backward(&t, loss);
        s->gx = malloc((size_t)B * IMG * sizeof *s->gx);
        memcpy(s->gx, xt->grad, (size_t)B * IMG * sizeof *s->gx);
    }
    akt_tape_free(&t);
}

static void step_free(struct step *s)
{
    free(s->logits);
    free(s->gx);
    for (int i = 0; i < 3 * AKT_RESNET_MAX_N; i++) {
        free(s->chmean[i]);
        free(s->f_img0[i]);
    }
}

/* logits against <grp>logits and <grp>logits_f64, body outputs' channel
 * means against <grp>features_chmean/F<i>. */
static int check_forward(hid_t g, const char *grp, const struct akt_resnet *m, int B,
                         const struct step *s)
{
    char name[160];
    int bad = 0;
    struct worst w = {.section = "logits"};
    for (int k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "%slogits%s", grp, k ? "_f64" : "");
        double *ref = h5_read_f64(g, name, (int64_t)B * NCLS);
        bad |= check_tensor(&w, name, s->logits, ref, (int64_t)B * NCLS, LOGIT_ABS, 1);
        free(ref);
    }
    worst_print(&w);
    struct worst wf = {.section = "body outputs (channel means)"};
    for (int i = 0; i < m->n_features; i++) {
        int C = 16 << (i / m->blocks_per_stage);
        snprintf(name, sizeof name, "%sfeatures_chmean/F%d", grp, i + 1);
        double *ref = h5_read_f64(g, name, (int64_t)B * C);
        float *mine = malloc((size_t)B * C * sizeof *mine);
        for (int j = 0; j < B * C; j++)
            mine[j] = (float)s->chmean[i][j];
        bad |= check_tensor(&wf, name, mine, ref, (int64_t)B * C, FEAT_ABS, 1);
        free(mine);
        free(ref);
    }
    snprintf(name, sizeof name, "%sfeatures_chmean", grp);
    assert_int_equal(h5_group_size(g, name), m->n_features); /* no output unchecked */
    worst_print(&wf);
    return bad;
}

static int check_loss(hid_t g, const char *grp, float loss)
{
    char name[160];
    double r32, r64;
    snprintf(name, sizeof name, "%sloss_ce", grp);
    h5_read(g, name, H5T_NATIVE_DOUBLE, &r32, 1);
    snprintf(name, sizeof name, "%sloss_ce_f64", grp);
    h5_read(g, name, H5T_NATIVE_DOUBLE, &r64, 1);
    printf("# %sCE loss akt %.9g, torch f32 %.9g, f64 %.9g\n", grp, loss, r32, r64);
    return !(fabs(loss - r32) <= LOSS_ABS) || !(fabs(loss - r64) <= LOSS_ABS);
}

static double l2_of(const float *g, int64_t n)
{
    double s = 0;
    for (int64_t j = 0; j < n; j++)
        s += (double)g[j] * g[j];
    return sqrt(s);
}

static int check_l2(const char *name, double got, double ref)
{
    if (fabs(got - ref) <= GRAD_REL * ref + 1e-30)
        return 0;
    printf("# FAIL %s: gradient L2 akt %.9g, torch %.9g\n", name, got, ref);
    return 1;
}

/* ---------------------------------------------------- (a) ResNet-56 --- */

static void test_resnet56_teacher(void **state)
{
    (void)state;
    const char *data = getenv("AKT_DATA");
    assert_non_null(data);
    char tpath[1024], dpath[1024];
    snprintf(tpath, sizeof tpath, "%s/teachers/resnet56_cifar10_akamaster_optA.h5", data);
    snprintf(dpath, sizeof dpath, "%s/cifar-10-batches-bin/test_batch_lossless1000.bin", data);
    struct akt_resnet m;
    struct akt_error e = {0};
    char msg[1200];
    if (akt_resnet_load(&m, tpath, &e))
        fail_msg("%s", akt_error_format(&e, msg, sizeof msg));
    /* what the file says it is, in counts plugins read */
    assert_int_equal(m.depth, 56);
    assert_int_equal(m.blocks_per_stage, 9);
    assert_int_equal(m.n_features, 27);
    assert_int_equal(m.n_acts, 55);
    assert_int_equal(m.n_bn, 55);
    assert_int_equal(m.shortcut, AKT_SHORTCUT_PAD);
    char arch[32];
    assert_string_equal(akt_resnet_arch(&m, arch, sizeof arch), "resnet56");

    hid_t fx = open_fixture("resnet56_golden.h5");
    assert_int_equal(attr_int(fx, "depth"), 56);
    const int B = 4;
    struct akt_dataset d;
    if (akt_cifar_load(&d, dpath, AKT_CIFAR10, &e))
        fail_msg("%s", akt_error_format(&e, msg, sizeof msg));
    float *x = malloc((size_t)B * IMG * sizeof *x);
    int labels[4], lab[4];
    akt_dataset_batch(&d, 0, B, m.mean, m.std, x, labels);
    h5_read(fx, "labels", H5T_NATIVE_INT, lab, B);
    assert_memory_equal(labels, lab, sizeof lab);
    float *xr = h5_read_f32(fx, "input", (int64_t)B * IMG);
    for (int64_t i = 0; i < (int64_t)B * IMG; i++)
        if (!(fabsf(x[i] - xr[i]) <= 1e-7f * fmaxf(1.0f, fabsf(xr[i]))))
            fail_msg("input[%lld]: akt %.9g, torch %.9g", (long long)i, x[i], xr[i]);
    free(xr);

    struct step s;
    run(&m, x, B, labels, 0, 1, &s);
    int bad = check_forward(fx, "", &m, B, &s);
    /* full maps of image 0 for the first, a middle and the last output */
    struct worst wm = {.section = "body outputs (full maps, image 0)"};
    for (int i = 0; i < m.n_features; i++) {
        char name[64];
        snprintf(name, sizeof name, "features/F%d", i + 1);
        int64_t n = h5_numel(fx, name);
        if (n < 0)
            continue;
        double *ref = h5_read_f64(fx, name, n);
        bad |= check_tensor(&wm, name, s.f_img0[i], ref, n, FEAT_ABS, 1);
        free(ref);
    }
    assert_true(wm.n >= 3);
    worst_print(&wm);
    bad |= check_loss(fx, "", s.loss);

    /* gradients: full, or every stride-th element plus the L2 norm */
    int stride = attr_int(fx, "grad_sample_stride");
    assert_true(stride > 1);
    struct worst wg = {.section = "eval-BN step gradients"};
    int n_full = 0, n_sampled = 0;
    for (int i = 0; i < m.n_params; i++) {
        const struct akt_param *p = &m.params[i];
        if (p->kind != AKT_PARAM_WEIGHT)
            continue;
        const float *gp = m.grads + p->offset;
        char name[128];
        snprintf(name, sizeof name, "grad/%s", p->name);
        if (h5_numel(fx, name) >= 0) {
            n_full++;
            double *ref = h5_read_f64(fx, name, p->n);
            bad |= check_tensor(&wg, name, gp, ref, p->n, GRAD_ABS, GRAD_REL);
            free(ref);
            continue;
        }
        n_sampled++;
        int64_t ns = (p->n + stride - 1) / stride;
        snprintf(name, sizeof name, "grad_sample/%s", p->name);
        double *ref = h5_read_f64(fx, name, ns);
        float *mine = malloc((size_t)ns * sizeof *mine);
        for (int64_t j = 0; j < ns; j++)
            mine[j] = gp[j * stride];
        bad |= check_tensor(&wg, name, mine, ref, ns, GRAD_ABS, GRAD_REL);
        free(mine);
        free(ref);
        double rl2;
        snprintf(name, sizeof name, "grad_l2/%s", p->name);
        h5_read(fx, name, H5T_NATIVE_DOUBLE, &rl2, 1);
        bad |= check_l2(name, l2_of(gp, p->n), rl2);
    }
    assert_int_equal(h5_group_size(fx, "grad"), n_full);
    assert_int_equal(h5_group_size(fx, "grad_sample"), n_sampled);
    double *ref = h5_read_f64(fx, "grad_input", (int64_t)B * IMG);
    bad |= check_tensor(&wg, "grad_input", s.gx, ref, (int64_t)B * IMG, GRAD_ABS, GRAD_REL);
    free(ref);
    worst_print(&wg);

    step_free(&s);
    free(x);
    akt_dataset_free(&d);
    akt_resnet_free(&m);
    H5Fclose(fx);
    assert_int_equal(bad, 0);
}

/* ----------------------------------------------- (b) random networks --- */

static int check_random_net(hid_t fx, const char *grp, int depth, enum akt_shortcut sc)
{
    hid_t g = H5Gopen2(fx, grp, H5P_DEFAULT);
    assert_true(g >= 0);
    assert_int_equal(attr_int(g, "depth"), depth);
    struct akt_resnet m;
    akt_resnet_init(&m, depth, NCLS, sc);
    assert_int_equal(m.n_features, 3 * ((depth - 2) / 6));
    assert_int_equal(m.n_acts, 2 * m.n_features + 1);
    assert_int_equal(m.n_bn, 2 * m.n_features + 1 + (sc == AKT_SHORTCUT_CONV1X1 ? 2 : 0));

    /* the parameter table is the state_dict: same keys, order and shapes */
    int nk = attr_int(g, "n_keys");
    assert_int_equal(nk, m.n_params);
    char(*keys)[48] = malloc((size_t)nk * 48);
    int *kshape = malloc((size_t)nk * 4 * sizeof *kshape);
    double *wsum = malloc((size_t)nk * 2 * sizeof *wsum);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, 48);
    hid_t ds = H5Dopen2(g, "keys", H5P_DEFAULT);
    assert_true(ds >= 0 && H5Dread(ds, st, H5S_ALL, H5S_ALL, H5P_DEFAULT, keys) >= 0);
    H5Dclose(ds);
    H5Tclose(st);
    h5_read(g, "key_shape", H5T_NATIVE_INT, kshape, (int64_t)nk * 4);
    h5_read(g, "weight_sum", H5T_NATIVE_DOUBLE, wsum, (int64_t)nk * 2);
    int bad = 0;
    for (int i = 0; i < nk; i++) {
        struct akt_param *p = &m.params[i];
        char key[49];
        memcpy(key, keys[i], 48);
        key[48] = 0;
        if (strcmp(key, p->name))
            fail_msg("%s: parameter %d is %s in akt, %s in the state_dict", grp, i, p->name, key);
        for (int k = 0; k < 4; k++)
            assert_int_equal(kshape[i * 4 + k], k < p->ndim ? p->shape[k] : 0);
        assert_int_equal(dw_fill(p->name, p->ndim, p->shape, m.values + p->offset, p->n), 0);
        double s1 = 0, s2 = 0;
        for (int64_t j = 0; j < p->n; j++) {
            s1 += m.values[p->offset + j];
            s2 += (double)m.values[p->offset + j] * m.values[p->offset + j];
        }
        if (!(fabs(s1 - wsum[2 * i]) <= 1e-9 * (1 + fabs(wsum[2 * i]))) ||
            !(fabs(s2 - wsum[2 * i + 1]) <= 1e-9 * (1 + wsum[2 * i + 1])))
            fail_msg("%s: %s's weights differ from the fixture's formula", grp, p->name);
    }
    free(keys);
    free(kshape);
    free(wsum);

    const int B = 2;
    int labels[2];
    h5_read(g, "labels", H5T_NATIVE_INT, labels, B);
    float *x = h5_read_f32(g, "input", (int64_t)B * IMG);
    struct step s;
    run(&m, x, B, labels, 0, 1, &s);
    printf("# %s\n", grp);
    bad |= check_forward(g, "", &m, B, &s);
    bad |= check_loss(g, "", s.loss);

    /* gradients: parameter t's elements 0, s, 2s, ... from grad_offset[t] */
    int T = attr_int(g, "n_trainable");
    int *gstride = malloc((size_t)T * sizeof *gstride);
    int64_t *goff = malloc((size_t)(T + 1) * sizeof *goff);
    double *gl2 = malloc((size_t)T * sizeof *gl2);
    h5_read(g, "grad_stride", H5T_NATIVE_INT, gstride, T);
    h5_read(g, "grad_offset", H5T_NATIVE_INT64, goff, T + 1);
    h5_read(g, "grad_l2_f64", H5T_NATIVE_DOUBLE, gl2, T);
    assert_true(goff[T] > 0 && goff[T] < ((int64_t)1 << 28));
    double *gv = h5_read_f64(g, "grad_values", goff[T]);
    struct worst wg = {.section = "eval-BN step gradients"};
    int t = 0;
    for (int i = 0; i < m.n_params; i++) {
        const struct akt_param *p = &m.params[i];
        if (p->kind != AKT_PARAM_WEIGHT)
            continue;
        assert_true(t < T);
        const float *gp = m.grads + p->offset;
        int64_t ns = (p->n + gstride[t] - 1) / gstride[t];
        assert_int_equal(goff[t + 1] - goff[t], ns);
        float *mine = malloc((size_t)ns * sizeof *mine);
        for (int64_t j = 0; j < ns; j++)
            mine[j] = gp[j * gstride[t]];
        char name[96];
        snprintf(name, sizeof name, "grad %s", p->name);
        bad |= check_tensor(&wg, name, mine, gv + goff[t], ns, GRAD_ABS, GRAD_REL);
        bad |= check_l2(name, l2_of(gp, p->n), gl2[t]);
        free(mine);
        t++;
    }
    assert_int_equal(t, T);
    double *ref = h5_read_f64(g, "grad_input", (int64_t)B * IMG);
    bad |= check_tensor(&wg, "grad_input", s.gx, ref, (int64_t)B * IMG, GRAD_ABS, GRAD_REL);
    free(ref);
    worst_print(&wg);
    free(gstride);
    free(goff);
    free(gl2);
    free(gv);
    step_free(&s);

    if (h5_numel(g, "train_bn/logits") > 0) { /* batch-statistics BN */
        struct akt_resnet mb;
        akt_resnet_copy(&mb, &m);
        run(&mb, x, B, labels, 1, 0, &s);
        struct worst wb = {.section = "batch-BN logits"};
        ref = h5_read_f64(g, "train_bn/logits", (int64_t)B * NCLS);
        bad |= check_tensor(&wb, "train_bn/logits", s.logits, ref, (int64_t)B * NCLS,
                            LOGIT_ABS, 1);
        free(ref);
        worst_print(&wb);
        step_free(&s);
        akt_resnet_free(&mb);
    }
    free(x);
    akt_resnet_free(&m);
    H5Gclose(g);
    return bad;
}

static void test_random_nets(void **state)
{
    (void)state;
    hid_t fx = open_fixture("resnet_random_golden.h5");
    /* the C port of the formula first: a drift shows as such */
    hid_t fc = H5Gopen2(fx, "formula_check", H5P_DEFAULT);
    assert_true(fc >= 0);
    H5G_info_t info;
    assert_true(H5Gget_info(fc, &info) >= 0 && info.nlinks >= 6);
    for (hsize_t i = 0; i < info.nlinks; i++) {
        char key[64];
        assert_true(H5Lget_name_by_idx(fc, ".", H5_INDEX_NAME, H5_ITER_INC, i, key, sizeof key,
                                       H5P_DEFAULT) > 0);
        hid_t ds = H5Dopen2(fc, key, H5P_DEFAULT);
        int shape[4] = {1, 1, 1, 1};
        hid_t a = H5Aopen(ds, "shape", H5P_DEFAULT);
        hid_t sp = H5Aget_space(a);
        int nd = (int)H5Sget_simple_extent_npoints(sp);
        assert_true(nd >= 1 && nd <= 4 && H5Aread(a, H5T_NATIVE_INT, shape) >= 0);
        H5Sclose(sp);
        H5Aclose(a);
        float ref[16], mine[16];
        assert_true(H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, ref) >= 0);
        H5Dclose(ds);
        assert_int_equal(dw_fill(key, nd, shape, mine, 16), 0);
        if (memcmp(mine, ref, sizeof ref))
            fail_msg("formula_check/%s: tests/deep_weights.h differs from the fixture", key);
    }
    H5Gclose(fc);
    int bad = check_random_net(fx, "resnet110_pad", 110, AKT_SHORTCUT_PAD);
    bad |= check_random_net(fx, "resnet32_conv1x1", 32, AKT_SHORTCUT_CONV1X1);
    bad |= check_random_net(fx, "resnet56_conv1x1", 56, AKT_SHORTCUT_CONV1X1);
    H5Fclose(fx);
    assert_int_equal(bad, 0);
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* missing datasets are reported by the test */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resnet56_teacher),
        cmocka_unit_test(test_random_nets),
    };
    return cmocka_run_group_tests_name("golden_deep", tests, NULL, NULL);
}
