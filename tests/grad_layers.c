/* Gradient and value checks: linear, batchnorm, batch stats, spatial ops, embedding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "gradcheck.h"

#define SHAPE(...) .ndim = sizeof((int[]){__VA_ARGS__}) / sizeof(int), .shape = {__VA_ARGS__}

/* Asserts every element of got matches want within tol (absolute). */
static void expect_near(const char *what, const float *got, const double *want, int64_t n,
                        double tol)
{
    for (int64_t i = 0; i < n; i++) {
        if (fabs((double)got[i] - want[i]) > tol) {
            fprintf(stderr, "%s[%lld]: got %.9g want %.9g\n", what, (long long)i, got[i], want[i]);
            fail();
        }
    }
}

/* ------------------------------------------------------------- linear --- */

static struct akt_tensor *f_linear(struct akt_tape *t, struct akt_tensor **in, void *u)
{ (void)u; return akt_linear(t, in[0], in[1], in[2]); }
static struct akt_tensor *f_linear_nobias(struct akt_tape *t, struct akt_tensor **in, void *u)
{ (void)u; return akt_linear(t, in[0], in[1], NULL); }
/* x is both input and weight: dx and dw must accumulate into one buffer */
static struct akt_tensor *f_linear_self(struct akt_tape *t, struct akt_tensor **in, void *u)
{ (void)u; return akt_linear(t, in[0], in[0], NULL); }

static void test_linear_grad(void **state)
{
    (void)state;
    struct gc_input in[3] = {{SHAPE(3, 5), .grad = 1}, {SHAPE(4, 5), .grad = 1},
                             {SHAPE(4), .grad = 1}};
    assert_int_equal(gradcheck("linear", f_linear, NULL, 3, in, 101, 1e-2f, 1e-3), 0);
    assert_int_equal(gradcheck("linear_nobias", f_linear_nobias, NULL, 2, in, 102, 1e-2f, 1e-3), 0);
    /* only some inputs need a gradient */
    struct gc_input part[3] = {{SHAPE(6, 2), .grad = 0}, {SHAPE(3, 2), .grad = 1},
                               {SHAPE(3), .grad = 0}};
    assert_int_equal(gradcheck("linear_w_only", f_linear, NULL, 3, part, 103, 1e-2f, 1e-3), 0);
    struct gc_input part2[3] = {{SHAPE(6, 2), .grad = 1}, {SHAPE(3, 2), .grad = 0},
                                {SHAPE(3), .grad = 1}};
    assert_int_equal(gradcheck("linear_x_b", f_linear, NULL, 3, part2, 104, 1e-2f, 1e-3), 0);
    struct gc_input self[1] = {{SHAPE(4, 4), .grad = 1}};
    /* quadratic in x: a small step keeps the one-sided differences apart from kinks */
    assert_int_equal(gradcheck("linear_self", f_linear_self, NULL, 1, self, 105, 2e-3f, 2e-3), 0);
}

static void test_linear_values(void **state)
{
    (void)state;
    struct akt_tape t;
    akt_tape_init(&t, 1 << 16);
    const float xv[] = {1, 2, 3, 4, 5, 6};
    const float wv[] = {1, 0, -1, 0.5f, 0.5f, 0.5f};
    const float bv[] = {0.1f, -0.2f};
    struct akt_tensor *x = akt_tensor_from(&t, xv, 2, (int[]){2, 3});
    struct akt_tensor *w = akt_tensor_from(&t, wv, 2, (int[]){2, 3});
    struct akt_tensor *b = akt_tensor_from(&t, bv, 1, (int[]){2});
    /* row b: (x1 - x3 + 0.1, (x1+x2+x3)/2 - 0.2) */
    struct akt_tensor *y = akt_linear(&t, x, w, b);
    assert_int_equal(y->ndim, 2);
    assert_int_equal(y->shape[0], 2);
    assert_int_equal(y->shape[1], 2);
    expect_near("linear", y->data, (double[]){-1.9, 2.8, -1.9, 7.3}, 4, 1e-6);
    y = akt_linear(&t, x, w, NULL);
    expect_near("linear_nobias", y->data, (double[]){-2, 3, -2, 7.5}, 4, 1e-6);

    /* a larger odd-sized case against a plain triple loop */
    enum { B = 7, IN = 13, OUT = 5 };
    float xs[B * IN], ws[OUT * IN], bs[OUT];
    struct akt_rng r;
    akt_rng_seed(&r, 7);
    for (int i = 0; i < B * IN; i++)
        xs[i] = akt_rng_normal(&r);
    for (int i = 0; i < OUT * IN; i++)
        ws[i] = akt_rng_normal(&r);
    for (int i = 0; i < OUT; i++)
        bs[i] = akt_rng_normal(&r);
    y = akt_linear(&t, akt_tensor_from(&t, xs, 2, (int[]){B, IN}),
                   akt_tensor_from(&t, ws, 2, (int[]){OUT, IN}),
                   akt_tensor_from(&t, bs, 1, (int[]){OUT}));
    double want[B * OUT];
    for (int i = 0; i < B; i++)
        for (int o = 0; o < OUT; o++) {
            double s = bs[o];
            for (int k = 0; k < IN; k++)
                s += (double)xs[i * IN + k] * ws[o * IN + k];
            want[i * OUT + o] = s;
        }
    expect_near("linear_big", y->data, want, B * OUT, 1e-4);
    akt_tape_free(&t);
}

/* ---------------------------------------------------------- batchnorm --- */

struct bn_case {
    enum akt_bn_mode mode;
    float eps;
    int affine;       /* in[1] gamma, in[2] beta */
    int shared;       /* in[1] serves as both gamma and beta */
    const float *rm, *rv; /* eval: running stats; batch: copied, updated, ignored */
    int C;
    int relu;         /* the fused akt_batchnorm_relu */
};

static struct akt_tensor *f_bn(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    struct bn_case *c = u;
    float rm[64], rv[64];
    struct akt_bn_params p = {.eps = c->eps, .momentum = 0.1f};
    if (c->affine) {
        p.gamma = in[1];
        p.beta = c->shared ? in[1] : in[2];
    }
    if (c->rm) {
        memcpy(rm, c->rm, c->C * sizeof(float));
        memcpy(rv, c->rv, c->C * sizeof(float));
        p.running_mean = rm;
        p.running_var = rv;
    }
    return c->relu ? akt_batchnorm_relu(t, in[0], &p, c->mode) : akt_batchnorm(t, in[0], &p, c->mode);
}

static const float k_rm[4] = {0.3f, -0.5f, 0.1f, 1.2f};
static const float k_rv[4] = {0.7f, 1.5f, 0.4f, 2.0f};

static void test_bn_eval_grad(void **state)
{
    (void)state;
    struct bn_case c = {.mode = AKT_BN_EVAL, .eps = 1e-5f, .affine = 1, .rm = k_rm, .rv = k_rv, .C = 3};
    struct gc_input in4[3] = {{SHAPE(2, 3, 3, 4), .grad = 1, .lo = -2, .hi = 2},
                              {SHAPE(3), .grad = 1, .lo = 0.5f, .hi = 1.5f},
                              {SHAPE(3), .grad = 1}};
    assert_int_equal(gradcheck("bn_eval_4d", f_bn, &c, 3, in4, 201, 1e-2f, 1e-3), 0);
    c.eps = 0.8f;
    assert_int_equal(gradcheck("bn_eval_4d_eps08", f_bn, &c, 3, in4, 202, 1e-2f, 1e-3), 0);
    c.affine = 0;
    assert_int_equal(gradcheck("bn_eval_4d_noaffine", f_bn, &c, 1, in4, 203, 1e-2f, 1e-3), 0);
    c.eps = 1e-5f;
    c.C = 4;
    c.affine = 1;
    struct gc_input in2[3] = {{SHAPE(5, 4), .grad = 1, .lo = -2, .hi = 2},
                              {SHAPE(4), .grad = 1, .lo = -1.5f, .hi = 1.5f},
                              {SHAPE(4), .grad = 1}};
    assert_int_equal(gradcheck("bn_eval_2d", f_bn, &c, 3, in2, 204, 1e-2f, 1e-3), 0);
    c.affine = 0;
    assert_int_equal(gradcheck("bn_eval_2d_noaffine", f_bn, &c, 1, in2, 205, 1e-2f, 1e-3), 0);
    c.affine = 1;
    c.shared = 1;
    assert_int_equal(gradcheck("bn_eval_2d_shared", f_bn, &c, 2, in2, 206, 1e-2f, 1e-3), 0);
}

static void test_bn_batch_grad(void **state)
{
    (void)state;
    /* float32 through a normalisation: wider step and tolerance */
    const float h = 1e-2f;
    const double tol = 2e-3;
    struct bn_case c = {.mode = AKT_BN_BATCH, .eps = 1e-5f, .affine = 1, .C = 3};
    struct gc_input in4[3] = {{SHAPE(3, 3, 3, 3), .grad = 1, .lo = -2, .hi = 2},
                              {SHAPE(3), .grad = 1, .lo = 0.5f, .hi = 1.5f},
                              {SHAPE(3), .grad = 1}};
    assert_int_equal(gradcheck("bn_batch_4d", f_bn, &c, 3, in4, 301, h, tol), 0);
    c.eps = 0.8f;
    assert_int_equal(gradcheck("bn_batch_4d_eps08", f_bn, &c, 3, in4, 302, h, tol), 0);
    c.affine = 0;
    assert_int_equal(gradcheck("bn_batch_4d_noaffine", f_bn, &c, 1, in4, 303, h, tol), 0);
    /* running stats being updated must not change the gradient */
    c.eps = 1e-5f;
    c.affine = 1;
    c.rm = k_rm;
    c.rv = k_rv;
    assert_int_equal(gradcheck("bn_batch_4d_running", f_bn, &c, 3, in4, 304, h, tol), 0);
    /* gamma/beta only (x constant) */
    struct gc_input gb[3] = {in4[0], in4[1], in4[2]};
    gb[0].grad = 0;
    assert_int_equal(gradcheck("bn_batch_gb_only", f_bn, &c, 3, gb, 305, h, tol), 0);
    c.rm = c.rv = NULL;
    c.C = 4;
    struct gc_input in2[3] = {{SHAPE(8, 4), .grad = 1, .lo = -2, .hi = 2},
                              {SHAPE(4), .grad = 1, .lo = -1.5f, .hi = 1.5f},
                              {SHAPE(4), .grad = 1}};
    assert_int_equal(gradcheck("bn_batch_2d", f_bn, &c, 3, in2, 306, h, tol), 0);
    c.eps = 0.8f;
    assert_int_equal(gradcheck("bn_batch_2d_eps08", f_bn, &c, 3, in2, 307, h, tol), 0);
    c.affine = 0;
    c.eps = 1e-5f;
    assert_int_equal(gradcheck("bn_batch_2d_noaffine", f_bn, &c, 1, in2, 308, h, tol), 0);
    c.affine = 1;
    c.shared = 1;
    assert_int_equal(gradcheck("bn_batch_2d_shared", f_bn, &c, 2, in2, 309, h, tol), 0);
}

/* Channel 0 = {1,2,3,4}, channel 1 = {0,0,2,-2}, laid out as [4,2] and as
 * [2,2,1,2]. Channel stats: mean {2.5, 0}, biased var {1.25, 2}, unbiased
 * {5/3, 8/3}. */
static const float k_x2d[8] = {1, 0, 2, 0, 3, 2, 4, -2};
static const float k_x4d[8] = {1, 2, 0, 0, 3, 4, 2, -2};

/* The fused BN+ReLU: finite differences for x in eval mode (moving gamma,
 * beta or, in batch mode, any x moves a whole channel and crosses ReLU kinks
 * the check cannot see), and in both modes bit-identical values and
 * gradients to relu(batchnorm(x)), which the checks above cover. */
static void test_bn_relu_grad(void **state)
{
    (void)state;
    struct bn_case c = {.mode = AKT_BN_EVAL, .eps = 1e-5f, .affine = 1, .rm = k_rm, .rv = k_rv,
                        .C = 3, .relu = 1};
    struct gc_input in4[3] = {{SHAPE(2, 3, 3, 4), .grad = 1, .lo = -2, .hi = 2},
                              {SHAPE(3), .grad = 0, .lo = 0.5f, .hi = 1.5f},
                              {SHAPE(3), .grad = 0}};
    assert_int_equal(gradcheck("bn_relu_eval", f_bn, &c, 3, in4, 211, 1e-2f, 1e-3), 0);
    c.affine = 0;
    assert_int_equal(gradcheck("bn_relu_eval_noaffine", f_bn, &c, 1, in4, 212, 1e-2f, 1e-3), 0);
}

static void fused_vs_unfused(enum akt_bn_mode mode, int affine)
{
    enum { N = 4, C = 3, HW = 25 };
    const int64_t n = N * C * HW;
    float *got[2][4];
    for (int fused = 0; fused < 2; fused++) {
        struct akt_rng r;
        akt_rng_seed(&r, 77);
        struct akt_tape t;
        akt_tape_init(&t, 1 << 20);
        struct akt_tensor *x = akt_tensor_newv(&t, 1, 4, N, C, 5, 5);
        struct akt_tensor *g = akt_tensor_newv(&t, 1, 1, C), *b = akt_tensor_newv(&t, 1, 1, C);
        for (int64_t i = 0; i < n; i++)
            x->data[i] = 2 * akt_rng_normal(&r) + 0.3f;
        for (int i = 0; i < C; i++) {
            g->data[i] = 0.5f + (float)akt_rng_uniform(&r);
            b->data[i] = akt_rng_normal(&r);
        }
        float rm[C] = {0.2f, -0.4f, 0.1f}, rv[C] = {1.3f, 0.6f, 2.2f};
        struct akt_bn_params p = {.gamma = affine ? g : NULL, .beta = affine ? b : NULL,
                                  .running_mean = rm, .running_var = rv, .eps = 1e-5f,
                                  .momentum = 0.1f};
        struct akt_tensor *y = fused ? akt_batchnorm_relu(&t, x, &p, mode)
                                     : akt_relu(&t, akt_batchnorm(&t, x, &p, mode));
        for (int64_t i = 0; i < n; i++)
            akt_grad(y)[i] = akt_rng_normal(&r);
        akt_backward_run(&t);
        const float *src[4] = {y->data, x->grad, g->grad, b->grad};
        const int64_t len[4] = {n, n, C, C};
        for (int k = 0; k < 4; k++)
            got[fused][k] = gc_copy(src[k], len[k]);
        akt_tape_free(&t);
    }
    const int64_t len[4] = {n, n, C, C};
    for (int k = 0; k < 4; k++) {
        assert_memory_equal(got[0][k], got[1][k], (size_t)len[k] * sizeof(float));
        free(got[0][k]);
        free(got[1][k]);
    }
}

static void test_bn_relu_matches_unfused(void **state)
{
    (void)state;
    fused_vs_unfused(AKT_BN_EVAL, 1);
    fused_vs_unfused(AKT_BN_EVAL, 0);
    fused_vs_unfused(AKT_BN_BATCH, 1);
    fused_vs_unfused(AKT_BN_BATCH, 0);
}

static void test_bn_eval_values(void **state)
{
    (void)state;
    struct akt_tape t;
    akt_tape_init(&t, 1 << 16);
    /* var + eps = {4, 16}: std {2, 4} */
    float rm[2] = {1, 0}, rv[2] = {3.2f, 15.2f};
    const float xv[] = {1, 3, -2, 4}; /* [1,2,1,2] */
    struct akt_tensor *x = akt_tensor_from(&t, xv, 4, (int[]){1, 2, 1, 2});
    struct akt_tensor *g = akt_tensor_from(&t, (float[]){2, -1}, 1, (int[]){2});
    struct akt_tensor *b = akt_tensor_from(&t, (float[]){0.5f, 1}, 1, (int[]){2});
    struct akt_bn_params p = {.gamma = g, .beta = b, .running_mean = rm, .running_var = rv,
                              .eps = 0.8f, .momentum = 0.1f};
    struct akt_tensor *y = akt_batchnorm(&t, x, &p, AKT_BN_EVAL);
    /* ch0: (x-1)/2*2+0.5; ch1: x/4*(-1)+1 */
    expect_near("bn_eval", y->data, (double[]){0.5, 2.5, 1.5, 0}, 4, 1e-6);
    p.gamma = p.beta = NULL;
    y = akt_batchnorm(&t, x, &p, AKT_BN_EVAL);
    expect_near("bn_eval_noaffine", y->data, (double[]){0, 1, -0.5, 1}, 4, 1e-6);
    /* eval never moves the running stats */
    assert_true(rm[0] == 1 && rm[1] == 0 && rv[0] == 3.2f && rv[1] == 15.2f);
    akt_tape_free(&t);
}

static void check_bn_batch_values(const float *xv, int ndim, const int *shape, const int *order)
{
    struct akt_tape t;
    akt_tape_init(&t, 1 << 16);
    float rm[2] = {0.5f, -1}, rv[2] = {1, 2};
    struct akt_tensor *x = akt_tensor_from(&t, xv, ndim, shape);
    struct akt_bn_params p = {.running_mean = rm, .running_var = rv, .eps = 1e-5f,
                              .momentum = 0.1f};
    struct akt_tensor *y = akt_batchnorm(&t, x, &p, AKT_BN_BATCH);
    /* running = 0.9 * running + 0.1 * batch (unbiased var) */
    expect_near("bn_running_mean", rm, (double[]){0.9 * 0.5 + 0.1 * 2.5, 0.9 * -1 + 0.1 * 0}, 2,
                1e-6);
    expect_near("bn_running_var", rv, (double[]){0.9 * 1 + 0.1 * 5.0 / 3, 0.9 * 2 + 0.1 * 8.0 / 3},
                2, 1e-6);
    /* outputs in channel-major order {ch0 values..., ch1 values...} */
    double s0 = sqrt(1.25 + 1e-5), s1 = sqrt(2 + 1e-5);
    const double want_c[8] = {-1.5 / s0, -0.5 / s0, 0.5 / s0, 1.5 / s0,
                              0 / s1,    0 / s1,    2 / s1,   -2 / s1};
    double want[8];
    for (int i = 0; i < 8; i++)
        want[order[i]] = want_c[i];
    expect_near("bn_batch", y->data, want, 8, 1e-5);
    /* with affine and no running stats: gamma*xhat + beta, stats untouched */
    p.running_mean = p.running_var = NULL;
    p.gamma = akt_tensor_from(&t, (float[]){3, -2}, 1, (int[]){2});
    p.beta = akt_tensor_from(&t, (float[]){1, 0.25f}, 1, (int[]){2});
    y = akt_batchnorm(&t, x, &p, AKT_BN_BATCH);
    for (int i = 0; i < 8; i++)
        want[order[i]] = i < 4 ? 3 * want_c[i] + 1 : -2 * want_c[i] + 0.25;
    expect_near("bn_batch_affine", y->data, want, 8, 1e-5);
    akt_tape_free(&t);
}

static void test_bn_batch_values(void **state)
{
    (void)state;
    /* position of channel-major element i in each layout */
    check_bn_batch_values(k_x2d, 2, (int[]){4, 2}, (int[]){0, 2, 4, 6, 1, 3, 5, 7});
    check_bn_batch_values(k_x4d, 4, (int[]){2, 2, 1, 2}, (int[]){0, 1, 4, 5, 2, 3, 6, 7});
}

/* A closed-form batch-mode case: per channel xhat stays centred with unit
 * mean square (eps 0), so seeding dy = xhat gives dx = 0 exactly. */
static void test_bn_batch_grad_invariant(void **state)
{
    (void)state;
    struct akt_tape t;
    akt_tape_init(&t, 1 << 16);
    struct akt_tensor *x = akt_tensor_newv(&t, 1, 2, 4, 2);
    memcpy(x->data, k_x2d, sizeof k_x2d);
    struct akt_bn_params p = {.eps = 0, .momentum = 0.1f};
    struct akt_tensor *y = akt_batchnorm(&t, x, &p, AKT_BN_BATCH);
    memcpy(akt_grad(y), y->data, 8 * sizeof(float));
    akt_backward_run(&t);
    for (int i = 0; i < 8; i++)
        assert_true(fabsf(x->grad[i]) < 1e-5f);
    akt_tape_free(&t);
}

/* -------------------------------------------------------- batch stats --- */

static struct akt_tensor *f_stats_mean(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    (void)u;
    struct akt_tensor *m, *v;
    akt_batch_stats(t, in[0], &m, &v);
    return m;
}
static struct akt_tensor *f_stats_var(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    (void)u;
    struct akt_tensor *m, *v;
    akt_batch_stats(t, in[0], &m, &v);
    return v;
}
/* both outputs used: var - 0.7 mean */
static struct akt_tensor *f_stats_both(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    (void)u;
    struct akt_tensor *m, *v;
    akt_batch_stats(t, in[0], &m, &v);
    return akt_sub(t, v, akt_scale(t, m, 0.7f, 0));
}

static void test_batch_stats_grad(void **state)
{
    (void)state;
    struct gc_input in4[1] = {{SHAPE(3, 2, 3, 2), .grad = 1, .lo = -2, .hi = 2}};
    assert_int_equal(gradcheck("stats_mean_4d", f_stats_mean, NULL, 1, in4, 401, 1e-2f, 1e-3), 0);
    assert_int_equal(gradcheck("stats_var_4d", f_stats_var, NULL, 1, in4, 402, 1e-2f, 1e-3), 0);
    assert_int_equal(gradcheck("stats_both_4d", f_stats_both, NULL, 1, in4, 403, 1e-2f, 1e-3), 0);
    struct gc_input in2[1] = {{SHAPE(6, 3), .grad = 1, .lo = -2, .hi = 2}};
    assert_int_equal(gradcheck("stats_mean_2d", f_stats_mean, NULL, 1, in2, 404, 1e-2f, 1e-3), 0);
    assert_int_equal(gradcheck("stats_var_2d", f_stats_var, NULL, 1, in2, 405, 1e-2f, 1e-3), 0);
}

static void test_batch_stats_values(void **state)
{
    (void)state;
    struct akt_tape t;
    akt_tape_init(&t, 1 << 16);
    struct akt_tensor *m, *v;
    akt_batch_stats(&t, akt_tensor_from(&t, k_x4d, 4, (int[]){2, 2, 1, 2}), &m, &v);
    assert_int_equal(m->ndim, 1);
    assert_int_equal(m->shape[0], 2);
    assert_int_equal(v->shape[0], 2);
    expect_near("stats_mean", m->data, (double[]){2.5, 0}, 2, 1e-6);
    expect_near("stats_var", v->data, (double[]){1.25, 2}, 2, 1e-6);
    akt_batch_stats(&t, akt_tensor_from(&t, k_x2d, 2, (int[]){4, 2}), &m, &v);
    expect_near("stats_mean_2d", m->data, (double[]){2.5, 0}, 2, 1e-6);
    expect_near("stats_var_2d", v->data, (double[]){1.25, 2}, 2, 1e-6);
    akt_tape_free(&t);
}

/* ------------------------------------------------------------- spatial --- */

static struct akt_tensor *f_avgpool(struct akt_tape *t, struct akt_tensor **in, void *u)
{ (void)u; return akt_global_avgpool(t, in[0]); }
static struct akt_tensor *f_upsample(struct akt_tape *t, struct akt_tensor **in, void *u)
{ (void)u; return akt_upsample2x(t, in[0]); }
struct sub_case { int stride, pad; };
static struct akt_tensor *f_subsample(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    struct sub_case *c = u;
    return akt_subsample_pad(t, in[0], c->stride, c->pad);
}

static void test_spatial_grad(void **state)
{
    (void)state;
    struct gc_input in[1] = {{SHAPE(2, 3, 4, 3), .grad = 1}};
    assert_int_equal(gradcheck("avgpool", f_avgpool, NULL, 1, in, 501, 1e-2f, 1e-3), 0);
    assert_int_equal(gradcheck("upsample2x", f_upsample, NULL, 1, in, 502, 1e-2f, 1e-3), 0);
    struct sub_case s2 = {2, 1}, s2odd = {2, 2}, s1 = {1, 0}, s3 = {3, 1};
    struct gc_input sub[1] = {{SHAPE(2, 3, 4, 4), .grad = 1}};
    assert_int_equal(gradcheck("subsample_s2p1", f_subsample, &s2, 1, sub, 503, 1e-2f, 1e-3), 0);
    assert_int_equal(gradcheck("subsample_s1p0", f_subsample, &s1, 1, sub, 504, 1e-2f, 1e-3), 0);
    struct gc_input odd[1] = {{SHAPE(1, 2, 5, 5), .grad = 1}};
    assert_int_equal(gradcheck("subsample_s2p2_odd", f_subsample, &s2odd, 1, odd, 505, 1e-2f, 1e-3), 0);
    assert_int_equal(gradcheck("subsample_s3p1", f_subsample, &s3, 1, odd, 506, 1e-2f, 1e-3), 0);
}

static void test_spatial_values(void **state)
{
    (void)state;
    struct akt_tape t;
    akt_tape_init(&t, 1 << 16);
    float v16[32];
    for (int i = 0; i < 32; i++)
        v16[i] = (float)i;

    /* avgpool [1,2,2,2]: means of {0..3} and {4..7} */
    struct akt_tensor *y = akt_global_avgpool(&t, akt_tensor_from(&t, v16, 4, (int[]){1, 2, 2, 2}));
    assert_int_equal(y->ndim, 2);
    assert_int_equal(y->shape[1], 2);
    expect_near("avgpool", y->data, (double[]){1.5, 5.5}, 2, 1e-6);

    /* upsample [1,1,2,2] -> [1,1,4,4] */
    y = akt_upsample2x(&t, akt_tensor_from(&t, v16, 4, (int[]){1, 1, 2, 2}));
    assert_int_equal(y->shape[2], 4);
    assert_int_equal(y->shape[3], 4);
    expect_near("upsample", y->data,
                (double[]){0, 0, 1, 1, 0, 0, 1, 1, 2, 2, 3, 3, 2, 2, 3, 3}, 16, 0);

    /* subsample_pad [1,2,4,4] (x = index), stride 2, pad 1 -> [1,4,2,2] */
    y = akt_subsample_pad(&t, akt_tensor_from(&t, v16, 4, (int[]){1, 2, 4, 4}), 2, 1);
    assert_int_equal(y->ndim, 4);
    assert_int_equal(y->shape[0], 1);
    assert_int_equal(y->shape[1], 4);
    assert_int_equal(y->shape[2], 2);
    assert_int_equal(y->shape[3], 2);
    expect_near("subsample_pad", y->data,
                (double[]){0, 0, 0, 0, 0, 2, 8, 10, 16, 18, 24, 26, 0, 0, 0, 0}, 16, 0);

    /* two samples [2,1,2,2], stride 2, pad 1 -> [2,3,1,1]: {0, x00, 0} per sample */
    y = akt_subsample_pad(&t, akt_tensor_from(&t, v16, 4, (int[]){2, 1, 2, 2}), 2, 1);
    assert_int_equal(y->shape[1], 3);
    expect_near("subsample_pad_n2", y->data, (double[]){0, 0, 0, 0, 4, 0}, 6, 0);

    /* odd size takes ceil, like x[:, :, ::2, ::2]: [1,1,3,3] -> [1,1,2,2] */
    y = akt_subsample_pad(&t, akt_tensor_from(&t, v16, 4, (int[]){1, 1, 3, 3}), 2, 0);
    assert_int_equal(y->shape[2], 2);
    expect_near("subsample_odd", y->data, (double[]){0, 2, 6, 8}, 4, 0);

    /* backward: the gradient lands only on the sampled positions */
    struct akt_tensor *x = akt_tensor_newv(&t, 1, 4, 1, 1, 4, 4);
    y = akt_subsample_pad(&t, x, 2, 1);
    for (int i = 0; i < 12; i++)
        akt_grad(y)[i] = (float)(i + 1);
    akt_backward_run(&t);
    double want[16] = {0};
    want[0] = 5, want[2] = 6, want[8] = 7, want[10] = 8;
    expect_near("subsample_grad", x->grad, want, 16, 0);
    akt_tape_free(&t);
}

/* ----------------------------------------------------------- embedding --- */

struct emb_case { const int *labels; int batch; };
static struct akt_tensor *f_embedding(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    struct emb_case *c = u;
    return akt_embedding(t, in[0], c->labels, c->batch);
}
/* table used twice: scatter must accumulate into the add's gradient */
static struct akt_tensor *f_embedding_plus_table(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    struct emb_case *c = u;
    return akt_add(t, akt_embedding(t, in[0], c->labels, c->batch), in[0]);
}

static void test_embedding_grad(void **state)
{
    (void)state;
    const int labels[] = {1, 0, 1, 1, 3};
    struct emb_case c = {labels, 5};
    struct gc_input in[1] = {{SHAPE(4, 3), .grad = 1}};
    assert_int_equal(gradcheck("embedding", f_embedding, &c, 1, in, 601, 1e-2f, 1e-3), 0);
    const int lab4[] = {2, 2, 0, 2};
    struct emb_case c4 = {lab4, 4};
    assert_int_equal(gradcheck("embedding_plus_table", f_embedding_plus_table, &c4, 1, in, 602,
                               1e-2f, 1e-3), 0);
}

static void test_embedding_values(void **state)
{
    (void)state;
    struct akt_tape t;
    akt_tape_init(&t, 1 << 16);
    struct akt_tensor *table = akt_tensor_newv(&t, 1, 2, 3, 2);
    for (int i = 0; i < 6; i++)
        table->data[i] = (float)(10 * (i / 2) + i % 2); /* row r = {10r, 10r+1} */
    int labels[3] = {2, 0, 2};
    struct akt_tensor *y = akt_embedding(&t, table, labels, 3);
    assert_int_equal(y->shape[0], 3);
    assert_int_equal(y->shape[1], 2);
    expect_near("embedding", y->data, (double[]){20, 21, 0, 1, 20, 21}, 6, 0);
    /* the tape keeps its own copy of the labels */
    labels[0] = labels[1] = labels[2] = 1;
    for (int i = 0; i < 6; i++)
        akt_grad(y)[i] = (float)(i + 1);
    akt_backward_run(&t);
    expect_near("embedding_grad", table->grad, (double[]){3, 4, 0, 0, 1 + 5, 2 + 6}, 6, 0);
    akt_tape_free(&t);
}

/* -------------------------------------------------------- accumulation --- */

/* Backward must add to the input grads, never overwrite them: a second pass
 * over the same single-op tape has to give exactly twice the first. */
static void expect_doubles(struct akt_tape *t, struct akt_tensor **ins, int nin, const char *what)
{
    float *first[4];
    akt_backward_run(t);
    for (int i = 0; i < nin; i++) {
        first[i] = gc_copy(ins[i]->grad, ins[i]->n);
        double s = 0;
        for (int64_t j = 0; j < ins[i]->n; j++)
            s += fabs(first[i][j]);
        if (!(s > 0)) {
            fprintf(stderr, "%s: input %d got no gradient\n", what, i);
            fail();
        }
    }
    akt_backward_run(t);
    for (int i = 0; i < nin; i++) {
        for (int64_t j = 0; j < ins[i]->n; j++)
            if (fabsf(ins[i]->grad[j] - 2 * first[i][j]) > 1e-6f * fabsf(first[i][j])) {
                fprintf(stderr, "%s: input %d elem %lld: %g after two passes, %g after one\n", what,
                        i, (long long)j, ins[i]->grad[j], first[i][j]);
                fail();
            }
        free(first[i]);
    }
}

/* random data and a random output gradient */
static struct akt_tensor *rand_fill(struct akt_rng *r, struct akt_tensor *x)
{
    for (int64_t i = 0; i < x->n; i++)
        x->data[i] = 2 * akt_rng_normal(r) + 0.5f;
    return x;
}
static void seed_grad(struct akt_rng *r, struct akt_tensor *y)
{
    for (int64_t i = 0; i < y->n; i++)
        akt_grad(y)[i] = akt_rng_normal(r);
}

static void test_grads_accumulate(void **state)
{
    (void)state;
    struct akt_rng r;
    akt_rng_seed(&r, 5);
    struct akt_tape t;
    akt_tape_init(&t, 1 << 16);

    struct akt_tensor *in[3];
    in[0] = rand_fill(&r, akt_tensor_newv(&t, 1, 2, 3, 4));
    in[1] = rand_fill(&r, akt_tensor_newv(&t, 1, 2, 5, 4));
    in[2] = rand_fill(&r, akt_tensor_newv(&t, 1, 1, 5));
    seed_grad(&r, akt_linear(&t, in[0], in[1], in[2]));
    expect_doubles(&t, in, 3, "linear");
    akt_tape_reset(&t);

    for (int mode = 0; mode < 2; mode++) {
        float rm[3] = {0.1f, 0.2f, -0.3f}, rv[3] = {1, 2, 0.5f};
        in[0] = rand_fill(&r, akt_tensor_newv(&t, 1, 4, 2, 3, 2, 2));
        in[1] = rand_fill(&r, akt_tensor_newv(&t, 1, 1, 3));
        in[2] = rand_fill(&r, akt_tensor_newv(&t, 1, 1, 3));
        struct akt_bn_params p = {.gamma = in[1], .beta = in[2], .running_mean = rm,
                                  .running_var = rv, .eps = 1e-5f, .momentum = 0.1f};
        seed_grad(&r, akt_batchnorm(&t, in[0], &p, mode));
        expect_doubles(&t, in, 3, mode ? "bn_batch" : "bn_eval");
        akt_tape_reset(&t);
    }

    struct akt_tensor *m, *v;
    in[0] = rand_fill(&r, akt_tensor_newv(&t, 1, 4, 2, 3, 2, 2));
    akt_batch_stats(&t, in[0], &m, &v);
    seed_grad(&r, m);
    expect_doubles(&t, in, 1, "batch_mean");
    akt_tape_reset(&t);
    in[0] = rand_fill(&r, akt_tensor_newv(&t, 1, 4, 2, 3, 2, 2));
    akt_batch_stats(&t, in[0], &m, &v);
    seed_grad(&r, v);
    expect_doubles(&t, in, 1, "batch_var");
    akt_tape_reset(&t);

    in[0] = rand_fill(&r, akt_tensor_newv(&t, 1, 4, 2, 3, 4, 4));
    seed_grad(&r, akt_global_avgpool(&t, in[0]));
    expect_doubles(&t, in, 1, "avgpool");
    akt_tape_reset(&t);
    in[0] = rand_fill(&r, akt_tensor_newv(&t, 1, 4, 2, 3, 4, 4));
    seed_grad(&r, akt_upsample2x(&t, in[0]));
    expect_doubles(&t, in, 1, "upsample2x");
    akt_tape_reset(&t);
    in[0] = rand_fill(&r, akt_tensor_newv(&t, 1, 4, 2, 3, 4, 4));
    seed_grad(&r, akt_subsample_pad(&t, in[0], 1, 1)); /* stride 1: every element gets a grad */
    expect_doubles(&t, in, 1, "subsample_pad");
    akt_tape_reset(&t);

    const int labels[] = {0, 2, 1, 2};
    in[0] = rand_fill(&r, akt_tensor_newv(&t, 1, 2, 3, 5));
    seed_grad(&r, akt_embedding(&t, in[0], labels, 4));
    expect_doubles(&t, in, 1, "embedding");
    akt_tape_free(&t);
}

/* ----------------------------------------------------- thread counts --- */

/* Per-channel reductions run in a fixed order, so BN and the pool give the
 * same bits with one thread and with four (inputs large enough to fork). */
static void run_bn_pool(float *out, float *gx, const float *xv, int64_t n)
{
    struct akt_tape t;
    akt_tape_init(&t, 1 << 22);
    struct akt_tensor *x = akt_tensor_newv(&t, 1, 4, 8, 16, 16, 16);
    memcpy(x->data, xv, n * sizeof(float));
    struct akt_bn_params p = {.eps = 1e-5f, .momentum = 0.1f};
    struct akt_tensor *y = akt_batchnorm(&t, x, &p, AKT_BN_BATCH);
    struct akt_tensor *m, *v;
    akt_batch_stats(&t, y, &m, &v);
    struct akt_tensor *pool = akt_global_avgpool(&t, akt_upsample2x(&t, y));
    memcpy(out, y->data, n * sizeof(float));
    for (int64_t i = 0; i < pool->n; i++)
        akt_grad(pool)[i] = (float)(i % 7) - 3;
    for (int i = 0; i < 16; i++)
        akt_grad(v)[i] = 0.1f * i;
    akt_backward_run(&t);
    memcpy(gx, x->grad, n * sizeof(float));
    akt_tape_free(&t);
}

static void test_thread_count_invariance(void **state)
{
    (void)state;
    const int64_t n = 8 * 16 * 16 * 16;
    float *xv = malloc(n * sizeof(float)), *o1 = malloc(n * sizeof(float)),
          *o4 = malloc(n * sizeof(float)), *g1 = malloc(n * sizeof(float)),
          *g4 = malloc(n * sizeof(float));
    struct akt_rng r;
    akt_rng_seed(&r, 99);
    for (int64_t i = 0; i < n; i++)
        xv[i] = 3 * akt_rng_normal(&r) + 1;
    int saved = akt_threads_get();
    akt_threads_set(1);
    run_bn_pool(o1, g1, xv, n);
    akt_threads_set(4);
    run_bn_pool(o4, g4, xv, n);
    akt_threads_set(saved);
    assert_memory_equal(o1, o4, n * sizeof(float));
    assert_memory_equal(g1, g4, n * sizeof(float));
    /* and the gradient is not trivially zero */
    double s = 0;
    for (int64_t i = 0; i < n; i++)
        s += fabs(g1[i]);
    assert_true(s > 0);
    free(xv), free(o1), free(o4), free(g1), free(g4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_linear_grad),
        cmocka_unit_test(test_linear_values),
        cmocka_unit_test(test_bn_eval_grad),
        cmocka_unit_test(test_bn_batch_grad),
        cmocka_unit_test(test_bn_relu_grad),
        cmocka_unit_test(test_bn_relu_matches_unfused),
        cmocka_unit_test(test_bn_eval_values),
        cmocka_unit_test(test_bn_batch_values),
        cmocka_unit_test(test_bn_batch_grad_invariant),
        cmocka_unit_test(test_batch_stats_grad),
        cmocka_unit_test(test_batch_stats_values),
        cmocka_unit_test(test_spatial_grad),
        cmocka_unit_test(test_spatial_values),
        cmocka_unit_test(test_embedding_grad),
        cmocka_unit_test(test_embedding_values),
        cmocka_unit_test(test_grads_accumulate),
        cmocka_unit_test(test_thread_count_invariance),
    };
    return cmocka_run_group_tests_name("grad_layers", tests, NULL, NULL);
}
