/* Golden test: the fake quantizer and the optimizers against PyTorch.
 *
 * The fixture $AKT_FIXTURES/quant_golden.h5 is written by
 * tools/make_quant_fixtures.py (layout documented there):
 *   (a) per-channel weight fake quantization of teacher conv/FC weights at
 *       2, 3, 4, 5, 8 bits: bit-exact;
 *   (b) per-tensor activation fake quantization (ReLU-like, signed, exact
 *       ties, hi == lo): bit-exact;
 *   (c) 3 steps of SGD (Nesterov and heavy-ball, weight decay) and Adam
 *       (default and GDFQ betas): parameters and optimizer state within 1e-6
 *       (PyTorch's vectorised add-with-alpha uses FMA, akt does not);
 *   (d) the MultiStepLR learning rates: equal as floats.
 * When $AKT_DATA holds the teacher, the fixture's weights are also checked
 * against it (the fixture is self-contained otherwise). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/nn.h"
#include "akt/optim.h"
#include "akt/student.h"
#include "akt/tensor.h"

#define FIXTURE_REL "/quant_golden.h5"
#define TEACHER_REL "/teachers/resnet20_cifar10_akamaster_optA.h5"
#define OPT_ABS 1e-6

static const int BITS[] = {2, 3, 4, 5, 8};
#define N_BITS ((int)(sizeof BITS / sizeof BITS[0]))
static const char *WEIGHT_KEYS[] = {"conv1.weight", "layer1.0.conv1.weight", "linear.weight"};
static const char *ACT_CASES[] = {"relu", "signed", "ties", "degenerate"};

/* ---------------------------------------------------------------- HDF5 --- */

/* Dataset rank/shape/size; -1 when missing. */
static int64_t h5_shape(hid_t f, const char *name, int *ndim, int shape[4])
{
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0)
        return -1;
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0)
        return -1;
    hid_t sp = H5Dget_space(ds);
    hsize_t dims[8];
    int nd = H5Sget_simple_extent_ndims(sp);
    int64_t n = -1;
    if (nd >= 1 && nd <= 4) {
        H5Sget_simple_extent_dims(sp, dims, NULL);
        n = 1;
        for (int i = 0; i < nd; i++) {
            shape[i] = (int)dims[i];
            n *= (int64_t)dims[i];
        }
        *ndim = nd;
    }
    H5Sclose(sp);
    H5Dclose(ds);
    return n;
}

static void *h5_read(hid_t f, const char *name, hid_t type, size_t elem, int64_t *n_out, int *ndim,
                     int shape[4])
{
    int nd_local, sh_local[4];
    int64_t n = h5_shape(f, name, ndim ? ndim : &nd_local, shape ? shape : sh_local);
    if (n <= 0)
        fail_msg("fixture dataset %s missing or empty", name);
    void *p = malloc((size_t)n * elem);
    assert_non_null(p);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    herr_t rc = H5Dread(ds, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, p);
    H5Dclose(ds);
    if (rc < 0)
        fail_msg("fixture dataset %s: read failed", name);
    if (n_out)
        *n_out = n;
    return p;
}

static float *read_f32(hid_t f, const char *name, int64_t n_expect)
{
    int64_t n;
    float *p = h5_read(f, name, H5T_NATIVE_FLOAT, sizeof(float), &n, NULL, NULL);
    if (n_expect >= 0 && n != n_expect)
        fail_msg("fixture dataset %s: %lld elements, expected %lld", name, (long long)n,
                 (long long)n_expect);
    return p;
}

static double read_attr(hid_t f, const char *obj, const char *attr)
{
    double v;
    if (H5Aexists_by_name(f, obj, attr, H5P_DEFAULT) <= 0)
        fail_msg("fixture: %s has no attribute %s", obj, attr);
    hid_t a = H5Aopen_by_name(f, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = H5Aread(a, H5T_NATIVE_DOUBLE, &v);
    H5Aclose(a);
    if (rc < 0)
        fail_msg("fixture: cannot read %s@%s", obj, attr);
    return v;
}

/* ---------------------------------------------------------------- setup --- */

struct golden {
    hid_t fx;
    int have_teacher;
    struct akt_resnet teacher;
};

static int setup(void **state)
{
    struct golden *g = calloc(1, sizeof *g);
    if (!g)
        return -1;
    *state = g;
    g->fx = -1;
    const char *fixt = getenv("AKT_FIXTURES");
    if (!fixt) {
        fprintf(stderr, "golden_quant: AKT_FIXTURES not set\n");
        return -1;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s%s", fixt, FIXTURE_REL);
    g->fx = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (g->fx < 0) { /* committed: missing is a failure */
        fprintf(stderr, "golden_quant: cannot open fixture %s\n", path);
        return -1;
    }
    const char *data = getenv("AKT_DATA");
    if (data) {
        snprintf(path, sizeof path, "%s%s", data, TEACHER_REL);
        FILE *fp = fopen(path, "rb");
        if (fp) {
            fclose(fp);
            struct akt_error e;
            g->have_teacher = akt_resnet_load(&g->teacher, path, &e) == AKT_OK;
        }
    }
    return 0;
}

static int teardown(void **state)
{
    struct golden *g = *state;
    if (g->fx >= 0)
        H5Fclose(g->fx);
    if (g->have_teacher)
        akt_resnet_free(&g->teacher);
    free(g);
    return 0;
}

/* Bitwise comparison; prints the first offenders and returns the count. */
static int64_t count_bit_diffs(const char *name, const float *got, const float *ref, int64_t n)
{
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (memcmp(&got[i], &ref[i], sizeof(float)) == 0)
            continue;
        if (bad < 5)
            printf("# %s[%lld]: akt %.9g, torch %.9g\n", name, (long long)i, got[i], ref[i]);
        bad++;
    }
    return bad;
}

/* ------------------------------------------------- (a) weights --- */

static void test_weight_quant(void **state)
{
    struct golden *g = *state;
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    t.recording = 0;
    int64_t total = 0, bad = 0;
    char name[128];
    for (size_t w = 0; w < sizeof WEIGHT_KEYS / sizeof WEIGHT_KEYS[0]; w++) {
        int ndim, shape[4];
        int64_t n;
        snprintf(name, sizeof name, "weight/%s/input", WEIGHT_KEYS[w]);
        float *in = h5_read(g->fx, name, H5T_NATIVE_FLOAT, sizeof(float), &n, &ndim, shape);
        if (g->have_teacher) {
            const struct akt_param *p = akt_resnet_param(&g->teacher, WEIGHT_KEYS[w]);
            assert_non_null(p);
            assert_int_equal(p->n, n);
            assert_memory_equal(g->teacher.values + p->offset, in, (size_t)n * sizeof(float));
        }
        for (int b = 0; b < N_BITS; b++) {
            akt_tape_reset(&t);
            struct akt_tensor *x = akt_tensor_from(&t, in, ndim, shape);
            struct akt_tensor *q = akt_fake_quant_channel(&t, x, BITS[b]);
            snprintf(name, sizeof name, "weight/%s/q%d", WEIGHT_KEYS[w], BITS[b]);
            float *ref = read_f32(g->fx, name, n);
            bad += count_bit_diffs(name, q->data, ref, n);
            total += n;
            free(ref);
        }
        free(in);
    }
    printf("# per-channel weight quantization: %lld values (3 tensors x 5 bit widths), %lld differ "
           "from PyTorch%s\n",
           (long long)total, (long long)bad,
           g->have_teacher ? ", inputs equal the teacher's" : " (teacher not found: inputs unchecked)");
    akt_tape_free(&t);
    assert_int_equal(bad, 0);
}

/* ---------------------------------------------- (b) activations --- */

/* The quantizer with round half away from zero: the 'ties' case must tell it
 * from the real one, or the fixture would not test the rounding. */
static float fq_half_away(float x, float lo, float hi, int bits)
{
    float half = (float)(1 << (bits - 1)), r = hi - lo;
    float s = (float)((1 << bits) - 1) / (r < 1e-8f ? 1e-8f : r);
    float zp = roundf(s * lo) + half;
    float q = roundf(s * x - zp);
    q = q < -half ? -half : q > half - 1 ? half - 1 : q;
    return (q + zp) / s;
}

static void test_act_quant(void **state)
{
    struct golden *g = *state;
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    t.recording = 0;
    int64_t total = 0, bad = 0;
    char name[128];
    for (size_t c = 0; c < sizeof ACT_CASES / sizeof ACT_CASES[0]; c++) {
        int ndim, shape[4];
        int64_t n;
        snprintf(name, sizeof name, "act/%s/x", ACT_CASES[c]);
        float *x = h5_read(g->fx, name, H5T_NATIVE_FLOAT, sizeof(float), &n, &ndim, shape);
        int64_t bad_case = 0;
        for (int b = 0; b < N_BITS; b++) {
            snprintf(name, sizeof name, "act/%s/q%d", ACT_CASES[c], BITS[b]);
            float lo = (float)read_attr(g->fx, name, "lo"), hi = (float)read_attr(g->fx, name, "hi");
            float *ref = read_f32(g->fx, name, n);
            akt_tape_reset(&t);
            struct akt_tensor *xt = akt_tensor_from(&t, x, ndim, shape);
            struct akt_tensor *q = akt_fake_quant(&t, xt, lo, hi, BITS[b]);
            bad_case += count_bit_diffs(name, q->data, ref, n);
            /* the scalar form is the same function */
            int64_t away = 0;
            for (int64_t i = 0; i < n; i++) {
                float s1 = akt_fake_quant_scalar(x[i], lo, hi, BITS[b]);
                bad_case += memcmp(&s1, &ref[i], sizeof s1) != 0;
                away += fq_half_away(x[i], lo, hi, BITS[b]) != ref[i];
            }
            if (!strcmp(ACT_CASES[c], "ties")) {
                if (b == 0 || b == N_BITS - 1)
                    printf("# ties, %d bits: half-away rounding would differ in %lld of %lld values\n",
                           BITS[b], (long long)away, (long long)n);
                assert_true(away > 0);
            }
            total += n;
            free(ref);
        }
        printf("# activations '%s': %lld values x 5 bit widths, %lld differ\n", ACT_CASES[c],
               (long long)n, (long long)bad_case);
        bad += bad_case;
        free(x);
    }
    double flips = read_attr(g->fx, "/", "rdiv_level_flips_total");
    double ulps = read_attr(g->fx, "/", "rdiv_differs_total");
    printf("# (the official reciprocal scale n * (1/range) would change %.0f of these values, "
           "%.0f of them to another level)\n",
           ulps, flips);
    akt_tape_free(&t);
    assert_int_equal(bad, 0);
}

/* ----------------------------------------------- (c) optimizers --- */

static double max_abs_diff(const float *a, const float *b, int64_t n, int64_t *n_equal)
{
    double m = 0;
    *n_equal = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        m = d > m || isnan(d) ? d : m;
        *n_equal += a[i] == b[i];
    }
    return m;
}

static int check_state(const char *what, int step, const float *got, const float *ref, int64_t n,
                       double *worst, int64_t *equal, int64_t *count)
{
    int64_t eq;
    double d = max_abs_diff(got, ref, n, &eq);
    *equal += eq;
    *count += n;
    if (d > *worst || isnan(d))
        *worst = d;
    if (!(d <= OPT_ABS)) {
        printf("# FAIL %s after step %d: max abs diff %.3g\n", what, step, d);
        return 1;
    }
    return 0;
}

static void test_optimizers(void **state)
{
    struct golden *g = *state;
    int64_t n;
    float *p0 = h5_read(g->fx, "optim/p0", H5T_NATIVE_FLOAT, sizeof(float), &n, NULL, NULL);
    float *grads = read_f32(g->fx, "optim/grads", 3 * n);
    float *p = malloc(n * sizeof *p), *s1 = malloc(n * sizeof *s1), *s2 = malloc(n * sizeof *s2);
    int bad = 0;
    char name[128];

    static const char *sgd[] = {"sgd_nesterov", "sgd_momentum"};
    for (int k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "optim/%s", sgd[k]);
        float lr = (float)read_attr(g->fx, name, "lr"), mom = (float)read_attr(g->fx, name, "momentum");
        float wd = (float)read_attr(g->fx, name, "weight_decay");
        int nest = read_attr(g->fx, name, "nesterov") != 0;
        snprintf(name, sizeof name, "optim/%s/param", sgd[k]);
        float *rp = read_f32(g->fx, name, 3 * n);
        snprintf(name, sizeof name, "optim/%s/momentum_buffer", sgd[k]);
        float *rb = read_f32(g->fx, name, 3 * n);
        memcpy(p, p0, n * sizeof *p);
        memset(s1, 0, n * sizeof *s1);
        double worst = 0;
        int64_t eq = 0, cnt = 0;
        for (int s = 0; s < 3; s++) {
            akt_sgd_step(p, grads + s * n, s1, n, lr, mom, wd, nest);
            bad |= check_state(sgd[k], s + 1, p, rp + s * n, n, &worst, &eq, &cnt);
            bad |= check_state(sgd[k], s + 1, s1, rb + s * n, n, &worst, &eq, &cnt);
        }
        printf("# %s: 3 steps, max abs diff %.3g, %lld of %lld values bit-equal\n", sgd[k], worst,
               (long long)eq, (long long)cnt);
        free(rp);
        free(rb);
    }

    static const char *adam[] = {"adam", "adam_gdfq"};
    for (int k = 0; k < 2; k++) {
        snprintf(name, sizeof name, "optim/%s", adam[k]);
        float lr = (float)read_attr(g->fx, name, "lr"), eps = (float)read_attr(g->fx, name, "eps");
        double betas[2];
        hid_t a = H5Aopen_by_name(g->fx, name, "betas", H5P_DEFAULT, H5P_DEFAULT);
        assert_true(a >= 0);
        assert_true(H5Aread(a, H5T_NATIVE_DOUBLE, betas) >= 0);
        H5Aclose(a);
        snprintf(name, sizeof name, "optim/%s/param", adam[k]);
        float *rp = read_f32(g->fx, name, 3 * n);
        snprintf(name, sizeof name, "optim/%s/exp_avg", adam[k]);
        float *rm = read_f32(g->fx, name, 3 * n);
        snprintf(name, sizeof name, "optim/%s/exp_avg_sq", adam[k]);
        float *rv = read_f32(g->fx, name, 3 * n);
        memcpy(p, p0, n * sizeof *p);
        memset(s1, 0, n * sizeof *s1);
        memset(s2, 0, n * sizeof *s2);
        double worst = 0;
        int64_t eq = 0, cnt = 0;
        for (int s = 0; s < 3; s++) {
            akt_adam_step(p, grads + s * n, s1, s2, n, lr, (float)betas[0], (float)betas[1], eps, s + 1);
            bad |= check_state(adam[k], s + 1, p, rp + s * n, n, &worst, &eq, &cnt);
            bad |= check_state(adam[k], s + 1, s1, rm + s * n, n, &worst, &eq, &cnt);
            bad |= check_state(adam[k], s + 1, s2, rv + s * n, n, &worst, &eq, &cnt);
        }
        printf("# %s (betas %g, %g): 3 steps, max abs diff %.3g, %lld of %lld values bit-equal\n",
               adam[k], betas[0], betas[1], worst, (long long)eq, (long long)cnt);
        free(rp);
        free(rm);
        free(rv);
    }
    free(p0);
    free(grads);
    free(p);
    free(s1);
    free(s2);
    assert_int_equal(bad, 0);
}

/* ---------------------------------------------------- (d) schedule --- */

static void test_lr_schedule(void **state)
{
    struct golden *g = *state;
    int64_t n;
    double *lr = h5_read(g->fx, "sched/lr", H5T_NATIVE_DOUBLE, sizeof(double), &n, NULL, NULL);
    float base = (float)read_attr(g->fx, "sched/lr", "base_lr");
    float gamma = (float)read_attr(g->fx, "sched/lr", "gamma");
    int ms[16];
    hid_t a = H5Aopen_by_name(g->fx, "sched/lr", "milestones", H5P_DEFAULT, H5P_DEFAULT);
    hid_t sp = H5Aget_space(a);
    int nm = (int)H5Sget_simple_extent_npoints(sp);
    assert_true(nm > 0 && nm <= 16);
    assert_true(H5Aread(a, H5T_NATIVE_INT, ms) >= 0);
    H5Sclose(sp);
    H5Aclose(a);
    for (int e = 0; e < (int)n; e++) {
        float mine = akt_lr_at(base, e, ms, nm, gamma);
        if (mine != (float)lr[e])
            fail_msg("lr at epoch %d: akt %.9g, torch %.9g", e, mine, (float)lr[e]);
    }
    printf("# MultiStepLR: %lld epochs, all equal as floats\n", (long long)n);
    free(lr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weight_quant),
        cmocka_unit_test(test_act_quant),
        cmocka_unit_test(test_optimizers),
        cmocka_unit_test(test_lr_schedule),
    };
    return cmocka_run_group_tests_name("golden_quant", tests, setup, teardown);
}
