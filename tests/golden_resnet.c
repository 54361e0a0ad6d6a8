/* Golden test: akt's ResNet-20 against an independent PyTorch reference.
 *
 * The fixture tests/fixtures/resnet20_golden.h5 is written by
 * tools/make_fixtures.py (layout documented there) from the teacher
 * $AKT_DATA/teachers/resnet20_cifar10_akamaster_optA.h5 and the first 4
 * lossless CIFAR-10 test images. Checked here:
 *   (a) akt_dataset_batch reproduces PyTorch's normalised input,
 *   (b) eval-mode logits (vs float32 and float64 PyTorch),
 *   (c) the 9 body outputs F_i,
 *   (d) one training step with BN in eval mode (the zero-shot mode): CE loss,
 *       every parameter gradient and the input gradient,
 *   (e) one training step with BN on batch statistics: loss, logits, grads,
 *       input gradient and the running-statistics update.
 *
 * Gradient tolerance: per tensor, max|akt - torch| <= GRAD_ABS and
 * <= GRAD_REL * max|torch| (the scale-relative check matters: the eval-mode
 * CE loss of these 4 well-classified images is 0.002, so its gradients are
 * ~1e-3 and an absolute bound alone would be vacuous). The worst of each
 * section is printed as a TAP comment. */
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

#include "golden.h"

#define TEACHER_REL "/teachers/resnet20_cifar10_akamaster_optA.h5"
#define TESTSET_REL "/cifar-10-batches-bin/test_batch_lossless1000.bin"
#define FIXTURE_REL "/resnet20_golden.h5"

#define B 4
#define NCLS 10
#define IMG (3 * 32 * 32)

/* Tolerances (see the header comment). */
#define LOGIT_ABS 1e-4
#define FEAT_ABS 1e-4
#define LOSS_ABS 1e-5
#define GRAD_ABS 1e-4
#define GRAD_REL 5e-4
#define STAT_ABS 1e-4
#define STAT_REL 1e-5

struct golden {
    int have_data;
    char skip_why[600];
    hid_t fx;
    struct akt_resnet m;
    struct akt_dataset d;
    float x[B * IMG];
    int labels[B];
};

static int setup(void **state)
{
    struct golden *g = calloc(1, sizeof *g);
    if (!g)
        return -1;
    g->fx = -1;
    *state = g;
    const char *data = getenv("AKT_DATA");
    const char *fixt = getenv("AKT_FIXTURES");
    if (!data || !fixt) {
        snprintf(g->skip_why, sizeof g->skip_why, "AKT_DATA or AKT_FIXTURES not set");
        return 0;
    }
    char *teacher = path_join(data, TEACHER_REL);
    char *testset = path_join(data, TESTSET_REL);
    char *fixture = path_join(fixt, FIXTURE_REL);
    if (!file_exists(teacher) || !file_exists(testset)) {
        snprintf(g->skip_why, sizeof g->skip_why, "data missing: %s or %s", teacher, testset);
        goto out;
    }
    if (!file_exists(fixture)) {
        /* The fixture is committed: its absence is a failure, not a skip. */
        fprintf(stderr, "golden_resnet: fixture missing: %s\n", fixture);
        free(teacher), free(testset), free(fixture);
        return -1;
    }
    struct akt_error e;
    char buf[1100];
    if (akt_resnet_load(&g->m, teacher, &e) != AKT_OK) {
        fprintf(stderr, "golden_resnet: %s\n", akt_error_format(&e, buf, sizeof buf));
        free(teacher), free(testset), free(fixture);
        return -1;
    }
    if (akt_cifar_load(&g->d, testset, AKT_CIFAR10, &e) != AKT_OK) {
        fprintf(stderr, "golden_resnet: %s\n", akt_error_format(&e, buf, sizeof buf));
        free(teacher), free(testset), free(fixture);
        return -1;
    }
    g->fx = H5Fopen(fixture, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (g->fx < 0) {
        fprintf(stderr, "golden_resnet: cannot open %s\n", fixture);
        free(teacher), free(testset), free(fixture);
        return -1;
    }
    akt_dataset_batch(&g->d, 0, B, g->m.mean, g->m.std, g->x, g->labels);
    g->have_data = 1;
out:
    free(teacher), free(testset), free(fixture);
    return 0;
}

static int teardown(void **state)
{
    struct golden *g = *state;
    if (g->have_data) {
        akt_resnet_free(&g->m);
        akt_dataset_free(&g->d);
    }
    if (g->fx >= 0)
        H5Fclose(g->fx);
    free(g);
    return 0;
}

#define NEED_DATA(g)                                                                       \
    do {                                                                                   \
        if (!(g)->have_data) {                                                             \
            printf("# skipped: %s\n", (g)->skip_why);                                      \
            skip();                                                                        \
        }                                                                                  \
    } while (0)

/* ----------------------------------------------------------- (a) input --- */

static void test_input(void **state)
{
    struct golden *g = *state;
    NEED_DATA(g);
    float fm[3], fs[3];
    assert_int_equal(h5_read_attr_f32(g->fx, "input_mean", fm, 3), 0);
    assert_int_equal(h5_read_attr_f32(g->fx, "input_std", fs, 3), 0);
    for (int c = 0; c < 3; c++) {
        assert_true(fm[c] == g->m.mean[c]);
        assert_true(fs[c] == g->m.std[c]);
    }
    int lab[B];
    h5_read(g->fx, "labels", H5T_NATIVE_INT, lab, B);
    for (int i = 0; i < B; i++)
        assert_int_equal(g->labels[i], lab[i]);
    float *ref = h5_read_f32(g->fx, "input", (int64_t)B * IMG);
    struct cmp c = compare_f32(g->x, ref, (int64_t)B * IMG);
    printf("# input: %lld of %d elements differ from PyTorch, max abs err %.3g\n",
           (long long)c.n_diff, B * IMG, c.max_abs);
    /* Bit-exact is expected (akt_dataset_batch uses PyTorch's expression);
     * allow at most 1e-7 relative to the value's magnitude. */
    for (int64_t i = 0; i < (int64_t)B * IMG; i++)
        if (!(fabsf(g->x[i] - ref[i]) <= 1e-7f * fmaxf(1.0f, fabsf(ref[i]))))
            fail_msg("input[%lld]: akt %.9g, torch %.9g", (long long)i, g->x[i], ref[i]);
    free(ref);
}

/* ------------------------------------------------- (b, c) eval forward --- */

static void test_eval_forward(void **state)
{
    struct golden *g = *state;
    NEED_DATA(g);
    struct akt_tape t;
    akt_tape_init(&t, 1 << 22);
    t.recording = 0;
    int shape[4] = {B, 3, 32, 32};
    struct akt_tensor *x = akt_tensor_from(&t, g->x, 4, shape);
    struct akt_resnet_opts o = {.bn_batch = 0, .param_grads = 0, .quant = NULL};
    struct akt_resnet_out out;
    memset(&out, 0, sizeof out);
    akt_resnet_forward(&g->m, &t, x, &o, &out);
    assert_non_null(out.logits);
    assert_int_equal(out.logits->n, B * NCLS);
    assert_int_equal(out.n_bn, 19);

    int bad = 0;
    struct worst w = {.section = "eval logits"};
    double *r64 = h5_read_f64(g->fx, "logits", B * NCLS);
    bad |= check_tensor(&w, "logits vs torch f32", out.logits->data, r64, B * NCLS, LOGIT_ABS, 1);
    free(r64);
    r64 = h5_read_f64(g->fx, "logits_f64", B * NCLS);
    bad |= check_tensor(&w, "logits vs torch f64", out.logits->data, r64, B * NCLS, LOGIT_ABS, 1);
    free(r64);
    worst_print(&w);

    struct worst wf = {.section = "eval body outputs F1..F9"};
    static const int fc[9] = {16, 16, 16, 32, 32, 32, 64, 64, 64};
    static const int fh[9] = {32, 32, 32, 16, 16, 16, 8, 8, 8};
    assert_int_equal(out.n_features, 9);
    for (int i = 0; i < out.n_features; i++) {
        assert_int_equal(out.feature_stage[i], i / 3);
        struct akt_tensor *f = out.features[i];
        assert_non_null(f);
        assert_int_equal(f->ndim, 4);
        assert_int_equal(f->shape[0], B);
        assert_int_equal(f->shape[1], fc[i]);
        assert_int_equal(f->shape[2], fh[i]);
        assert_int_equal(f->shape[3], fh[i]);
        int64_t per = (int64_t)fc[i] * fh[i] * fh[i];
        char name[64];
        snprintf(name, sizeof name, "features/F%d", i + 1);
        int64_t nref = h5_numel(g->fx, name);
        assert_true(nref > 0 && nref % per == 0);
        double *ref = h5_read_f64(g->fx, name, nref); /* first nref/per images */
        bad |= check_tensor(&wf, name, f->data, ref, nref, FEAT_ABS, 1);
        free(ref);
        /* channel means of all B images, in double */
        snprintf(name, sizeof name, "features_chmean/F%d", i + 1);
        double *cm = h5_read_f64(g->fx, name, (int64_t)B * fc[i]);
        float *mine = malloc((size_t)B * fc[i] * sizeof *mine);
        int hw = fh[i] * fh[i];
        for (int b = 0; b < B * fc[i]; b++) {
            double s = 0;
            for (int p = 0; p < hw; p++)
                s += f->data[(int64_t)b * hw + p];
            mine[b] = (float)(s / hw);
        }
        bad |= check_tensor(&wf, name, mine, cm, (int64_t)B * fc[i], FEAT_ABS, 1);
        free(mine);
        free(cm);
    }
    worst_print(&wf);
    akt_tape_free(&t);
    assert_int_equal(bad, 0);
}

/* ------------------------------------------------------ training steps --- */

/* One CE training step on g->x: fills grads of m (zeroed here) and returns the
 * loss; *gx receives d loss / d x (B*IMG floats), *logits the logits. */
static float train_step(struct akt_resnet *m, const struct golden *g, int bn_batch, float *gx,
                        float *logits)
{
    memset(m->grads, 0, (size_t)m->n_values * sizeof(float));
    struct akt_tape t;
    akt_tape_init(&t, 1 << 22);
    assert_int_equal(t.recording, 1);
    struct akt_tensor *x = akt_tensor_newv(&t, 1, 4, B, 3, 32, 32);
    assert_non_null(x->grad);
    memcpy(x->data, g->x, sizeof g->x);
    struct akt_resnet_opts o = {.bn_batch = bn_batch, .param_grads = 1, .quant = NULL};
    struct akt_resnet_out out;
    memset(&out, 0, sizeof out);
    akt_resnet_forward(m, &t, x, &o, &out);
    assert_int_equal(out.logits->n, B * NCLS);
    memcpy(logits, out.logits->data, B * NCLS * sizeof(float));
    struct akt_tensor *loss = akt_cross_entropy(&t, out.logits, g->labels);
    assert_int_equal(loss->n, 1);
    float l = loss->data[0];
    akt_backward(&t, loss);
    memcpy(gx, x->grad, sizeof g->x);
    akt_tape_free(&t);
    return l;
}

static int is_running_stat(const char *name)
{
    size_t n = strlen(name);
    return (n > 13 && !strcmp(name + n - 13, ".running_mean")) ||
           (n > 12 && !strcmp(name + n - 12, ".running_var"));
}

/* Buffers (running stats) must get no gradient. */
static int check_buffer_grads(const struct akt_resnet *m)
{
    int bad = 0;
    for (int i = 0; i < m->n_params; i++) {
        const struct akt_param *p = &m->params[i];
        if (p->kind != AKT_PARAM_BUFFER)
            continue;
        for (int64_t j = 0; j < p->n; j++)
            if (m->grads[p->offset + j] != 0) {
                printf("# FAIL buffer %s has a nonzero gradient\n", p->name);
                bad = 1;
                break;
            }
    }
    return bad;
}

static void test_step_eval_bn(void **state)
{
    struct golden *g = *state;
    NEED_DATA(g);
    struct akt_resnet m;
    akt_resnet_copy(&m, &g->m);
    float gx[B * IMG], logits[B * NCLS];
    float loss = train_step(&m, g, 0, gx, logits);
    int bad = 0;

    double ref_loss, ref_loss64;
    h5_read(g->fx, "loss_ce", H5T_NATIVE_DOUBLE, &ref_loss, 1);
    h5_read(g->fx, "loss_ce_f64", H5T_NATIVE_DOUBLE, &ref_loss64, 1);
    printf("# eval-BN step: loss akt %.9g torch f32 %.9g (err %.3g) torch f64 %.9g (err %.3g)\n",
           loss, ref_loss, fabs(loss - ref_loss), ref_loss64, fabs(loss - ref_loss64));
    bad |= !(fabs(loss - ref_loss) <= LOSS_ABS) || !(fabs(loss - ref_loss64) <= LOSS_ABS);

    struct worst w = {.section = "eval-BN step gradients"};
    int n_weights = 0;
    char name[128];
    for (int i = 0; i < m.n_params; i++) {
        const struct akt_param *p = &m.params[i];
        if (p->kind != AKT_PARAM_WEIGHT)
            continue;
        assert_false(is_running_stat(p->name));
        n_weights++;
        snprintf(name, sizeof name, "grad/%s", p->name);
        double *ref = h5_read_f64(g->fx, name, p->n);
        bad |= check_tensor(&w, name, m.grads + p->offset, ref, p->n, GRAD_ABS, GRAD_REL);
        free(ref);
    }
    /* every gradient in the fixture belongs to a trainable parameter */
    assert_int_equal(h5_group_size(g->fx, "grad"), n_weights);
    double *ref = h5_read_f64(g->fx, "grad_input", (int64_t)B * IMG);
    bad |= check_tensor(&w, "grad_input", gx, ref, (int64_t)B * IMG, GRAD_ABS, GRAD_REL);
    free(ref);
    worst_print(&w);
    bad |= check_buffer_grads(&m);

    /* eval mode: the running statistics must not move */
    for (int i = 0; i < m.n_params; i++) {
        const struct akt_param *p = &m.params[i];
        if (p->kind == AKT_PARAM_BUFFER &&
            memcmp(m.values + p->offset, g->m.values + p->offset, (size_t)p->n * sizeof(float))) {
            printf("# FAIL %s changed in an eval-BN step\n", p->name);
            bad = 1;
        }
    }
    akt_resnet_free(&m);
    assert_int_equal(bad, 0);
}

static void test_step_batch_bn(void **state)
{
    struct golden *g = *state;
    NEED_DATA(g);
    struct akt_resnet m;
    akt_resnet_copy(&m, &g->m);
    float gx[B * IMG], logits[B * NCLS];
    float loss = train_step(&m, g, 1, gx, logits);
    int bad = 0;

    double ref_loss;
    h5_read(g->fx, "train_bn/loss_ce", H5T_NATIVE_DOUBLE, &ref_loss, 1);
    printf("# batch-BN step: loss akt %.9g torch %.9g (err %.3g)\n", loss, ref_loss,
           fabs(loss - ref_loss));
    bad |= !(fabs(loss - ref_loss) <= LOSS_ABS);
    struct worst wl = {.section = "batch-BN logits"};
    double *ref = h5_read_f64(g->fx, "train_bn/logits", B * NCLS);
    bad |= check_tensor(&wl, "train_bn/logits", logits, ref, B * NCLS, LOGIT_ABS, 1);
    free(ref);
    worst_print(&wl);

    /* gradients: full tensors, or a strided sample plus the L2 norm */
    int stride = 0;
    {
        hid_t a = H5Aopen(g->fx, "train_bn_grad_sample_stride", H5P_DEFAULT);
        assert_true(a >= 0);
        assert_true(H5Aread(a, H5T_NATIVE_INT, &stride) >= 0);
        H5Aclose(a);
        assert_true(stride > 0);
    }
    struct worst w = {.section = "batch-BN step gradients"};
    int n_full = 0, n_sampled = 0;
    char name[128];
    for (int i = 0; i < m.n_params; i++) {
        const struct akt_param *p = &m.params[i];
        if (p->kind != AKT_PARAM_WEIGHT)
            continue;
        const float *gp = m.grads + p->offset;
        snprintf(name, sizeof name, "train_bn/grad/%s", p->name);
        if (h5_numel(g->fx, name) >= 0) {
            n_full++;
            ref = h5_read_f64(g->fx, name, p->n);
            bad |= check_tensor(&w, name, gp, ref, p->n, GRAD_ABS, GRAD_REL);
            free(ref);
            continue;
        }
        n_sampled++;
        int64_t ns = (p->n + stride - 1) / stride;
        snprintf(name, sizeof name, "train_bn/grad_sample/%s", p->name);
        ref = h5_read_f64(g->fx, name, ns);
        float *mine = malloc((size_t)ns * sizeof *mine);
        double l2 = 0;
        for (int64_t j = 0; j < p->n; j++)
            l2 += (double)gp[j] * gp[j];
        for (int64_t j = 0; j < ns; j++)
            mine[j] = gp[j * stride];
        bad |= check_tensor(&w, name, mine, ref, ns, GRAD_ABS, GRAD_REL);
        free(mine);
        free(ref);
        double rl2;
        snprintf(name, sizeof name, "train_bn/grad_l2/%s", p->name);
        h5_read(g->fx, name, H5T_NATIVE_DOUBLE, &rl2, 1);
        if (!(fabs(sqrt(l2) - rl2) <= GRAD_REL * rl2)) {
            printf("# FAIL %s: akt %.9g torch %.9g\n", name, sqrt(l2), rl2);
            bad = 1;
        }
    }
    assert_int_equal(h5_group_size(g->fx, "train_bn/grad"), n_full);
    assert_int_equal(h5_group_size(g->fx, "train_bn/grad_sample"), n_sampled);
    ref = h5_read_f64(g->fx, "train_bn/grad_input", (int64_t)B * IMG);
    bad |= check_tensor(&w, "train_bn/grad_input", gx, ref, (int64_t)B * IMG, GRAD_ABS, GRAD_REL);
    free(ref);
    worst_print(&w);
    bad |= check_buffer_grads(&m);

    /* running statistics after one update (momentum 0.1, unbiased var) */
    struct worst ws = {.section = "batch-BN running stats"};
    int n_stats = 0;
    for (int i = 0; i < m.n_params; i++) {
        const struct akt_param *p = &m.params[i];
        if (p->kind != AKT_PARAM_BUFFER || !is_running_stat(p->name))
            continue;
        size_t len = strlen(p->name);
        int is_mean = len > 13 && !strcmp(p->name + len - 13, ".running_mean");
        int stem = (int)(len - (is_mean ? 13 : 12));
        snprintf(name, sizeof name, "train_bn/%s/%.*s", is_mean ? "running_mean" : "running_var",
                 stem, p->name);
        ref = h5_read_f64(g->fx, name, p->n);
        bad |= check_tensor(&ws, name, m.values + p->offset, ref, p->n, STAT_ABS, STAT_REL);
        free(ref);
        n_stats++;
    }
    worst_print(&ws);
    assert_int_equal(n_stats, 2 * 19);
    assert_int_equal(h5_group_size(g->fx, "train_bn/running_mean"), 19);
    akt_resnet_free(&m);
    assert_int_equal(bad, 0);
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* missing datasets are reported by the test */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_input),
        cmocka_unit_test(test_eval_forward),
        cmocka_unit_test(test_step_eval_bn),
        cmocka_unit_test(test_step_batch_bn),
    };
    return cmocka_run_group_tests_name("golden_resnet", tests, setup, teardown);
}
