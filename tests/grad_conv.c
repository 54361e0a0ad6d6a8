/* Convolution: finite-difference gradient checks on small shapes, and
 * forward/backward values against a naive double-precision direct
 * convolution on larger ones (both kernel paths: AVX-512 when the CPU has it,
 * and the portable one forced with AKT_NO_AVX512=1), plus run-to-run
 * bit-reproducibility. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "gradcheck.h"

#define SHAPE(...) .ndim = sizeof((int[]){__VA_ARGS__}) / sizeof(int), .shape = {__VA_ARGS__}

struct conv_cfg {
    int stride, pad, bias;
};

static struct akt_tensor *f_conv(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    const struct conv_cfg *c = u;
    return akt_conv2d(t, in[0], in[1], c->bias ? in[2] : NULL, c->stride, c->pad);
}

/* x [N,Cin,H,W], w [Cout,Cin,k,k] (+ bias [Cout]); all inputs checked */
static int check(const char *name, int N, int Cin, int H, int W, int Cout, int k, int stride,
                 int pad, int bias, unsigned seed)
{
    struct conv_cfg c = {stride, pad, bias};
    struct gc_input in[3] = {{SHAPE(N, Cin, H, W), .grad = 1},
                             {SHAPE(Cout, Cin, k, k), .grad = 1},
                             {SHAPE(Cout), .grad = 1}};
    return gradcheck(name, f_conv, &c, bias ? 3 : 2, in, seed, 1e-2f, 2e-3);
}

static void run_gradchecks(void)
{
    assert_int_equal(check("3x3 s1 p1 bias", 2, 3, 5, 6, 5, 3, 1, 1, 1, 1), 0);
    assert_int_equal(check("3x3 s1 p1", 1, 9, 6, 5, 10, 3, 1, 1, 0, 2), 0);
    assert_int_equal(check("3x3 s2 p1", 2, 3, 7, 6, 4, 3, 2, 1, 0, 3), 0);
    assert_int_equal(check("3x3 s2 p1 bias", 3, 5, 6, 6, 3, 3, 2, 1, 1, 4), 0);
    assert_int_equal(check("1x1 s2 p0", 3, 5, 6, 6, 7, 1, 2, 0, 0, 5), 0);
    assert_int_equal(check("3x3 s2 p0", 2, 3, 8, 8, 4, 3, 2, 0, 0, 10), 0);
    assert_int_equal(check("1x1 s2 p0 bias", 2, 6, 5, 7, 9, 1, 2, 0, 1, 6), 0);
    assert_int_equal(check("1x1 s1 p0 bias", 2, 9, 4, 3, 10, 1, 1, 0, 1, 7), 0);
    assert_int_equal(check("3x3 s1 p0", 2, 4, 6, 7, 3, 3, 1, 0, 1, 8), 0);
    assert_int_equal(check("5x5 s1 p2", 1, 2, 6, 6, 3, 5, 1, 2, 1, 9), 0);
}

static void test_gradcheck(void **state)
{
    (void)state;
    run_gradchecks();
}

static void test_gradcheck_portable(void **state)
{
    (void)state;
    setenv("AKT_NO_AVX512", "1", 1);
    run_gradchecks();
    unsetenv("AKT_NO_AVX512");
}

/* Only the weight (or only the input) needs a gradient. */
static struct akt_tensor *f_conv_w(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    (void)u;
    return akt_conv2d(t, in[0], in[1], NULL, 1, 1);
}

static void test_partial_grads(void **state)
{
    (void)state;
    struct gc_input wonly[2] = {{SHAPE(2, 3, 5, 5)}, {SHAPE(4, 3, 3, 3), .grad = 1}};
    assert_int_equal(gradcheck("w only", f_conv_w, NULL, 2, wonly, 11, 1e-2f, 2e-3), 0);
    struct gc_input xonly[2] = {{SHAPE(2, 3, 5, 5), .grad = 1}, {SHAPE(4, 3, 3, 3)}};
    assert_int_equal(gradcheck("x only", f_conv_w, NULL, 2, xonly, 12, 1e-2f, 2e-3), 0);
}

/* ----------------------------------------------- naive reference --- */

struct shape {
    int N, Cin, H, W, Cout, k, stride, pad, bias;
};

static int out_dim(int n, int k, int s, int p) { return (n + 2 * p - k) / s + 1; }

static void naive(const struct shape *s, const float *x, const float *w, const float *b,
                  const float *dy, double *y, double *dx, double *dw, double *db)
{
    int Ho = out_dim(s->H, s->k, s->stride, s->pad), Wo = out_dim(s->W, s->k, s->stride, s->pad);
    memset(dx, 0, sizeof(double) * s->N * s->Cin * s->H * s->W);
    memset(dw, 0, sizeof(double) * s->Cout * s->Cin * s->k * s->k);
    memset(db, 0, sizeof(double) * s->Cout);
    for (int n = 0; n < s->N; n++)
        for (int co = 0; co < s->Cout; co++)
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    size_t oi = (((size_t)n * s->Cout + co) * Ho + oy) * Wo + ox;
                    double acc = b ? b[co] : 0, g = dy[oi];
                    db[co] += g;
                    for (int ci = 0; ci < s->Cin; ci++)
                        for (int ky = 0; ky < s->k; ky++)
                            for (int kx = 0; kx < s->k; kx++) {
                                int iy = oy * s->stride + ky - s->pad;
                                int ix = ox * s->stride + kx - s->pad;
                                if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W)
                                    continue;
                                size_t xi = (((size_t)n * s->Cin + ci) * s->H + iy) * s->W + ix;
                                size_t wi = (((size_t)co * s->Cin + ci) * s->k + ky) * s->k + kx;
                                acc += (double)w[wi] * x[xi];
                                dx[xi] += (double)w[wi] * g;
                                dw[wi] += (double)x[xi] * g;
                            }
                    y[oi] = acc;
                }
}

static void fill(float *p, size_t n, struct akt_rng *r)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)akt_rng_uniform(r) * 2 - 1;
}

/* max |a-b| / (1 + max|b|) over n elements; float version of a, ref in b */
static double rel_err(const float *a, const double *b, size_t n)
{
    double m = 0, e = 0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(b[i]));
    for (size_t i = 0; i < n; i++)
        e = fmax(e, fabs(a[i] - b[i]));
    return e / (1 + m);
}

/* Runs akt_conv2d forward + backward on the tape; grads pre-filled with 0.5 so
 * accumulation (not overwrite) is checked. Outputs y, dx, dw, db (malloc'd). */
struct run {
    float *y, *dx, *dw, *db;
};

static struct run run_conv(const struct shape *s, const float *x, const float *w, const float *b,
                           const float *dy)
{
    struct akt_tape t;
    akt_tape_init(&t, 1 << 22);
    struct akt_tensor *tx = akt_tensor_newv(&t, 1, 4, s->N, s->Cin, s->H, s->W);
    struct akt_tensor *tw = akt_tensor_newv(&t, 1, 4, s->Cout, s->Cin, s->k, s->k);
    struct akt_tensor *tb = s->bias ? akt_tensor_newv(&t, 1, 1, s->Cout) : NULL;
    memcpy(tx->data, x, tx->n * sizeof(float));
    memcpy(tw->data, w, tw->n * sizeof(float));
    for (int64_t i = 0; i < tx->n; i++)
        tx->grad[i] = 0.5f;
    for (int64_t i = 0; i < tw->n; i++)
        tw->grad[i] = 0.5f;
    if (tb) {
        memcpy(tb->data, b, tb->n * sizeof(float));
        for (int64_t i = 0; i < tb->n; i++)
            tb->grad[i] = 0.5f;
    }
    struct akt_tensor *y = akt_conv2d(&t, tx, tw, tb, s->stride, s->pad);
    memcpy(akt_grad(y), dy, y->n * sizeof(float));
    akt_backward_run(&t);
    struct run r;
    r.y = malloc(y->n * sizeof(float));
    r.dx = malloc(tx->n * sizeof(float));
    r.dw = malloc(tw->n * sizeof(float));
    r.db = malloc(s->Cout * sizeof(float));
    memcpy(r.y, y->data, y->n * sizeof(float));
    for (int64_t i = 0; i < tx->n; i++)
        r.dx[i] = tx->grad[i] - 0.5f;
    for (int64_t i = 0; i < tw->n; i++)
        r.dw[i] = tw->grad[i] - 0.5f;
    for (int i = 0; i < s->Cout; i++)
        r.db[i] = tb ? tb->grad[i] - 0.5f : 0;
    akt_tape_free(&t);
    return r;
}

static void run_free(struct run *r)
{
    free(r->y);
    free(r->dx);
    free(r->dw);
    free(r->db);
}

static int same_bits(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

static const struct shape shapes[] = {
    {2, 16, 32, 32, 16, 3, 1, 1, 0},  /* ResNet-20 stage 1 */
    {3, 16, 32, 32, 32, 3, 2, 1, 0},  /* stage 2 first conv */
    {2, 32, 16, 16, 32, 3, 1, 1, 0},  /* stage 2 */
    {3, 16, 32, 32, 32, 1, 2, 0, 0},  /* 1x1 shortcut */
    {2, 64, 8, 8, 64, 3, 1, 1, 0},    /* stage 3 */
    {2, 3, 32, 32, 16, 3, 1, 1, 0},   /* stem */
    {2, 64, 32, 32, 3, 3, 1, 1, 1},   /* generator output conv */
    {1, 128, 16, 16, 20, 3, 1, 1, 1}, /* generator-like, Cout odd */
    {3, 13, 11, 9, 17, 3, 1, 1, 1},   /* odd everything */
    {2, 7, 33, 35, 9, 3, 1, 1, 0},    /* rows wider than a vector */
    {2, 5, 10, 9, 11, 3, 1, 0, 1},    /* no padding */
    {2, 6, 9, 12, 5, 5, 1, 2, 1},     /* 5x5 */
    {2, 24, 7, 7, 40, 1, 1, 0, 1},    /* pointwise */
    {1, 10, 1, 1, 10, 1, 1, 0, 1},    /* 1x1 image (a linear layer) */
    {2, 4, 9, 7, 6, 3, 3, 1, 1},      /* stride 3 */
};

static void check_values(int portable)
{
    if (portable)
        setenv("AKT_NO_AVX512", "1", 1);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const struct shape *s = &shapes[si];
        int Ho = out_dim(s->H, s->k, s->stride, s->pad), Wo = out_dim(s->W, s->k, s->stride, s->pad);
        size_t nx = (size_t)s->N * s->Cin * s->H * s->W, nw = (size_t)s->Cout * s->Cin * s->k * s->k;
        size_t ny = (size_t)s->N * s->Cout * Ho * Wo;
        struct akt_rng rng;
        akt_rng_seed(&rng, 100 + si);
        float *x = malloc(nx * 4), *w = malloc(nw * 4), *b = malloc(s->Cout * 4), *dy = malloc(ny * 4);
        fill(x, nx, &rng);
        fill(w, nw, &rng);
        fill(b, s->Cout, &rng);
        fill(dy, ny, &rng);
        double *ry = malloc(ny * 8), *rdx = malloc(nx * 8), *rdw = malloc(nw * 8), *rdb = malloc(s->Cout * 8);
        naive(s, x, w, s->bias ? b : NULL, dy, ry, rdx, rdw, rdb);
        struct run r = run_conv(s, x, w, b, dy);
        double ey = rel_err(r.y, ry, ny), edx = rel_err(r.dx, rdx, nx), edw = rel_err(r.dw, rdw, nw);
        double edb = s->bias ? rel_err(r.db, rdb, s->Cout) : 0;
        if (ey > 1e-5 || edx > 1e-5 || edw > 1e-5 || edb > 1e-5)
            fprintf(stderr, "shape %zu (%s): err y %.3g dx %.3g dw %.3g db %.3g\n", si,
                    portable ? "portable" : "default", ey, edx, edw, edb);
        assert_true(ey < 1e-5 && edx < 1e-5 && edw < 1e-5 && edb < 1e-5);
        /* the same call again gives the same bits */
        struct run r2 = run_conv(s, x, w, b, dy);
        assert_true(same_bits(r.y, r2.y, ny) && same_bits(r.dx, r2.dx, nx) &&
                    same_bits(r.dw, r2.dw, nw) && same_bits(r.db, r2.db, s->Cout));
        run_free(&r);
        run_free(&r2);
        free(x), free(w), free(b), free(dy), free(ry), free(rdx), free(rdw), free(rdb);
    }
    unsetenv("AKT_NO_AVX512");
}

static void test_values_default(void **state)
{
    (void)state;
    akt_threads_set(2);
    check_values(0);
    akt_threads_set(1);
    check_values(0);
}

static void test_values_portable(void **state)
{
    (void)state;
    akt_threads_set(2);
    check_values(1);
    akt_threads_set(1);
}

/* ------------------------------------------------------- lazy grads --- */

/* A chain in which every op's input is another op's output, so each
 * backward kernel meets a lazy grad buffer (tensor.h) and takes its write
 * path: ReLU, strided 3x3 and 1x1 convs and a 1x1 conv into lazy inputs, BN, an add
 * whose input also feeds another record (write, then add), x*x with both
 * operands one buffer, a lazy scalar factor, and a record whose output
 * reaches nothing (skipped; it must not leave garbage behind). The ReLU
 * comes first: after a batch-statistics BN, moving one input moves every
 * output across ReLU's kink, which the check cannot tell from an error. */
static struct akt_tensor *f_lazy_chain(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    (void)u;
    struct akt_tensor *a = akt_relu(t, akt_scale(t, in[0], 1.5f, 0.1f));
    struct akt_tensor *c = akt_conv2d(t, a, in[1], NULL, 2, 1);
    struct akt_bn_params p = {.eps = 1e-5f, .momentum = 0.1f};
    struct akt_tensor *b = akt_batchnorm(t, c, &p, AKT_BN_BATCH);
    struct akt_tensor *d = akt_conv2d(t, b, in[2], NULL, 1, 0);
    struct akt_tensor *e = akt_add(t, d, b);
    /* a 1x1 stride-2 conv, the first to write b's gradient */
    e = akt_add(t, e, akt_upsample2x(t, akt_conv2d(t, b, in[2], NULL, 2, 0)));
    (void)akt_tanh(t, a); /* dead branch */
    struct akt_tensor *k = akt_scale(t, in[3], 2.0f, 0.0f);
    return akt_mul(t, akt_mul(t, e, e), k);
}

/* The other write-first kernels: upsample, global average pool, batch
 * statistics (mean and variance of one input) and a row mean, each into a
 * lazy buffer. */
static struct akt_tensor *f_lazy_chain2(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    (void)u;
    /* recorded first, so its backward runs last and adds into a */
    struct akt_tensor *a = akt_scale(t, in[0], 1.5f, 0.1f);
    struct akt_tensor *rowmean = akt_mean(t, akt_square(t, a), 2, 4); /* [N,C] */
    struct akt_tensor *up = akt_upsample2x(t, a);                      /* writes a's grad */
    struct akt_tensor *pooled = akt_global_avgpool(t, akt_square(t, up)); /* [N,C] */
    struct akt_tensor *m, *v;
    akt_batch_stats(t, up, &m, &v); /* var writes up's grad, mean adds */
    struct akt_tensor *k = akt_sum(t, akt_mul(t, m, v), 0, 1); /* [1] */
    return akt_add(t, akt_mul(t, pooled, k), rowmean);
}

static void run_lazy_chain(void)
{
    const struct gc_input in[] = {
        {SHAPE(2, 3, 8, 8), .grad = 1}, /* even: the stride-2 phase fast path */
        {SHAPE(4, 3, 3, 3), .grad = 1},
        {SHAPE(4, 4, 1, 1), .grad = 1},
        {SHAPE(1), .grad = 1, .lo = 0.5f, .hi = 1.0f},
    };
    assert_int_equal(gradcheck("lazy_chain", f_lazy_chain, NULL, 4, in, 701, 1e-2f, 2e-3), 0);
    const struct gc_input in2[] = {{SHAPE(2, 3, 3, 3), .grad = 1}};
    assert_int_equal(gradcheck("lazy_chain2", f_lazy_chain2, NULL, 1, in2, 702, 1e-2f, 2e-3), 0);
}

static void test_lazy_chain(void **state)
{
    (void)state;
    run_lazy_chain();
    setenv("AKT_NO_AVX512", "1", 1);
    run_lazy_chain();
    unsetenv("AKT_NO_AVX512");
}

/* After backward every grad buffer is valid: one that no record reached
 * reads as zeros, and akt_grad() seeds are kept. */
static void test_lazy_untouched_is_zero(void **state)
{
    (void)state;
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    struct akt_tensor *x = akt_tensor_newv(&t, 1, 2, 4, 8);
    for (int64_t i = 0; i < x->n; i++)
        x->data[i] = (float)i - 10;
    struct akt_tensor *y = akt_relu(&t, x);
    struct akt_tensor *z = akt_scale(&t, y, 3.0f, 0.0f); /* not seeded */
    struct akt_tensor *w = akt_square(&t, x);
    for (int64_t i = 0; i < w->n; i++)
        akt_grad(w)[i] = 1.0f;
    /* the arena hands out used memory: poison the lazy buffers */
    memset(y->grad, 0x7f, (size_t)y->n * sizeof(float));
    memset(z->grad, 0x7f, (size_t)z->n * sizeof(float));
    akt_backward_run(&t);
    for (int64_t i = 0; i < x->n; i++) {
        assert_float_equal(y->grad[i], 0.0f, 0);
        assert_float_equal(z->grad[i], 0.0f, 0);
        assert_float_equal(w->grad[i], 1.0f, 0);
        assert_float_equal(x->grad[i], 2.0f * x->data[i], 0);
    }
    akt_tape_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_gradcheck_portable),
        cmocka_unit_test(test_partial_grads),
        cmocka_unit_test(test_values_default),
        cmocka_unit_test(test_values_portable),
        cmocka_unit_test(test_lazy_chain),
        cmocka_unit_test(test_lazy_untouched_is_zero),
    };
    return cmocka_run_group_tests_name("grad_conv", tests, NULL, NULL);
}
