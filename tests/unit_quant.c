/* Unit tests: the fake quantizer (SPEC 2), its straight-through gradient, the
 * range tracker, the quantized student (SPEC 1) and the optimizers (SPEC 5).
 *
 * Quantizer values are hand-computed on ranges whose scale is a power of two,
 * so every intermediate is exact and the ties are real ties: they tell round
 * half to even (torch.round) from half away from zero and from floor(v+0.5).
 * The straight-through gradient is checked analytically (dx == dout bit for
 * bit): finite differences see the staircase, slope 0 or infinite. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/data.h"
#include "akt/nn.h"
#include "akt/optim.h"
#include "akt/student.h"
#include "akt/tensor.h"

#define ARRAY_LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

struct case1 {
    float x, want;
};

static void check_cases(float lo, float hi, int bits, const struct case1 *c, int n)
{
    for (int i = 0; i < n; i++) {
        float got = akt_fake_quant_scalar(c[i].x, lo, hi, bits);
        if (got != c[i].want)
            fail_msg("fq(%.9g; [%g,%g], %d bits) = %.9g, want %.9g", c[i].x, lo, hi, bits, got,
                     c[i].want);
    }
}

/* ------------------------------------------------------ hand values --- */

static void test_quant_hand_values(void **state)
{
    (void)state;
    /* k=2, [0,3]: s = 1, zp = 0 + 2, q = clamp(rint(x - 2), -2, 1), out = q + 2.
     * 0.5: rint(-1.5) = -2 -> 0 (floor(v+.5) would give 1)
     * 1.5: rint(-0.5) = -0 -> 2 (half away would give 1)
     * 2.5: rint(0.5) = 0 -> 2 (half away would give 3) */
    static const struct case1 k2[] = {
        {0.5f, 0.0f}, {1.5f, 2.0f}, {2.5f, 2.0f}, {0.0f, 0.0f}, {1.0f, 1.0f},
        {1.4f, 1.0f}, {1.6f, 2.0f}, {3.0f, 3.0f}, {2.9f, 3.0f},
    };
    check_cases(0.0f, 3.0f, 2, k2, ARRAY_LEN(k2));

    /* k=3, [-1,0.75]: s = 7/1.75 = 4, zp = rint(-4) + 4 = 0, out = clamp(rint(4x), -4, 3)/4.
     * ties: 4x = 0.5 -> 0, 1.5 -> 2, -2.5 -> -2, -1.5 -> -2, 2.5 -> 2 */
    static const struct case1 k3[] = {
        {0.125f, 0.0f},  {0.375f, 0.5f},   {-0.625f, -0.5f}, {-0.375f, -0.5f},
        {0.625f, 0.5f},  {-0.125f, -0.0f}, {0.75f, 0.75f},   {-1.0f, -1.0f},
        {0.3f, 0.25f},   {-0.7f, -0.75f},
    };
    check_cases(-1.0f, 0.75f, 3, k3, ARRAY_LEN(k3));

    /* k=8, [0, 255/64]: s = 64, zp = 128. 1.5/64: rint(1.5 - 128) = rint(-126.5)
     * = -126 -> 2/64 (half away: -127 -> 1/64); 2.5/64 -> -126 -> 2/64. */
    static const struct case1 k8[] = {
        {1.5f / 64, 2.0f / 64}, {2.5f / 64, 2.0f / 64}, {3.5f / 64, 4.0f / 64},
        {127.5f / 64, 128.0f / 64}, {128.5f / 64, 128.0f / 64}, {200.25f / 64, 200.0f / 64},
    };
    check_cases(0.0f, 255.0f / 64, 8, k8, ARRAY_LEN(k8));

    /* a zero point that needs rounding: k=2, [-0.3, 0.7] (float sum is exactly 1),
     * s = 3, s*lo = -0.9 -> zp = -1 + 2 = 1; levels (q+1)/3, q in -2..1:
     * -1/3, 0, 1/3, 2/3. lo itself lands on -1/3, hi on 2/3. */
    float lo = -0.3f, hi = 0.7f;
    assert_true(hi - lo == 1.0f);
    static const struct case1 k2b[] = {
        {-0.3f, -1.0f / 3}, {0.0f, 0.0f}, {0.1f, 0.0f}, {0.2f, 1.0f / 3}, {0.7f, 2.0f / 3},
    };
    check_cases(lo, hi, 2, k2b, ARRAY_LEN(k2b));
}

static void test_quant_clamp(void **state)
{
    (void)state;
    /* [0,3] 2 bits: q clamps to -2 below and to 1 above */
    static const struct case1 k2[] = {
        {-5.0f, 0.0f}, {-0.4f, 0.0f}, {-0.6f, 0.0f}, {3.4f, 3.0f}, {3.6f, 3.0f}, {1e6f, 3.0f},
        {-1e6f, 0.0f},
    };
    check_cases(0.0f, 3.0f, 2, k2, ARRAY_LEN(k2));
    /* [-1,0.75] 3 bits: -1.2 -> rint(-4.8) = -5 -> -4; 0.9 -> rint(3.6) = 4 -> 3 */
    static const struct case1 k3[] = {{-1.2f, -1.0f}, {0.9f, 0.75f}, {100.0f, 0.75f}, {-100.0f, -1.0f}};
    check_cases(-1.0f, 0.75f, 3, k3, ARRAY_LEN(k3));
    /* NaN propagates, as with torch.clamp */
    assert_true(isnan(akt_fake_quant_scalar(NAN, 0.0f, 1.0f, 4)));
}

/* hi == lo: the range is floored at 1e-8, so the scale is huge; nothing
 * divides by zero and every value maps to (about) lo. */
static void test_quant_degenerate_range(void **state)
{
    (void)state;
    const float xs[] = {-3.0f, -1.0f, 0.0f, 1e-9f, 0.5f, 1.0f, 2.0f, 1e4f};
    for (int bits = 2; bits <= 8; bits++) {
        for (int i = 0; i < ARRAY_LEN(xs); i++) {
            /* [0,0]: everything in [0, 1e-8] (x=0 maps to exactly 0) */
            float y = akt_fake_quant_scalar(xs[i], 0.0f, 0.0f, bits);
            assert_true(isfinite(y) && y >= 0.0f && y <= 1.01e-8f);
            /* [c,c]: everything within a few ulp of c */
            const float cs[] = {1.0f, -2.5f, 1e-3f, 37.0f};
            for (int j = 0; j < ARRAY_LEN(cs); j++) {
                float z = akt_fake_quant_scalar(xs[i], cs[j], cs[j], bits);
                if (!(fabsf(z - cs[j]) <= 1e-6f * fabsf(cs[j]) + 1e-7f))
                    fail_msg("fq(%g; [%g,%g], %d) = %.9g", xs[i], cs[j], cs[j], bits, z);
            }
        }
        assert_true(akt_fake_quant_scalar(0.0f, 0.0f, 0.0f, bits) == 0.0f);
        assert_true(akt_fake_quant_scalar(1.0f, 1.0f, 1.0f, bits) == 1.0f);
    }
    /* hi < lo behaves as the floored range (no NaN) */
    assert_true(isfinite(akt_fake_quant_scalar(0.3f, 1.0f, -1.0f, 4)));
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Every k in 2..8 gives exactly 2^k levels spaced 1/s, the lowest within
 * half a step of lo and the highest within half a step of hi; the per-tensor
 * op equals the scalar function bit for bit; quantizing twice changes
 * nothing. */
static void test_quant_levels_all_bits(void **state)
{
    (void)state;
    const float ranges[][2] = {{0.0f, 1.0f}, {-0.731f, 2.113f}, {-3.3f, -0.2f}, {0.0f, 17.25f}, {-1e-3f, 4e-3f}};
    const int n = 20000;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    for (int r = 0; r < ARRAY_LEN(ranges); r++) {
        float lo = ranges[r][0], hi = ranges[r][1], w = hi - lo;
        for (int i = 0; i < n; i++) /* dense over [lo - w/4, hi + w/4] */
            x[i] = lo - 0.25f * w + 1.5f * w * (float)i / (float)(n - 1);
        for (int bits = 2; bits <= 8; bits++) {
            akt_tape_reset(&t);
            struct akt_tensor *xt = akt_tensor_from(&t, x, 1, (int[]){n});
            struct akt_tensor *yt = akt_fake_quant(&t, xt, lo, hi, bits);
            for (int i = 0; i < n; i++) {
                float s1 = akt_fake_quant_scalar(x[i], lo, hi, bits);
                if (memcmp(&s1, &yt->data[i], sizeof s1))
                    fail_msg("tensor/scalar differ at %g: %.9g vs %.9g", x[i], yt->data[i], s1);
                float again = akt_fake_quant_scalar(s1, lo, hi, bits);
                if (again != s1)
                    fail_msg("not idempotent: %.9g -> %.9g ([%g,%g] %d bits)", s1, again, lo, hi, bits);
            }
            memcpy(y, yt->data, n * sizeof *y);
            qsort(y, n, sizeof *y, cmp_float);
            int levels = 1;
            double step = (double)w / ((1 << bits) - 1);
            for (int i = 1; i < n; i++) {
                if (y[i] == y[i - 1])
                    continue;
                levels++;
                double gap = (double)y[i] - y[i - 1];
                if (fabs(gap - step) > 1e-4 * step + 1e-6 * fabs(y[i]))
                    fail_msg("uneven levels %.9g %.9g (step %.9g)", y[i - 1], y[i], step);
            }
            if (levels != 1 << bits)
                fail_msg("[%g,%g] %d bits: %d levels", lo, hi, bits, levels);
            double tol = 0.5 * step * (1 + 1e-4) + 1e-6 * fmax(fabs(lo), fabs(hi));
            if (fabs(y[0] - lo) > tol || fabs(y[n - 1] - hi) > tol)
                fail_msg("[%g,%g] %d bits: extreme levels %.9g %.9g", lo, hi, bits, y[0], y[n - 1]);
        }
    }
    akt_tape_free(&t);
    free(x);
    free(y);
}

/* Per output channel: each row quantized with its own min/max (bit-equal to
 * the scalar quantizer), recomputed on every call. */
static void test_quant_channel(void **state)
{
    (void)state;
    struct akt_rng rng;
    akt_rng_seed(&rng, 7);
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    const int shapes[][4] = {{5, 3, 3, 3}, {6, 7, 1, 1}, {4, 9, 0, 0}};
    const int ndims[] = {4, 4, 2};
    for (int sh = 0; sh < 3; sh++) {
        for (int bits = 2; bits <= 8; bits++) {
            akt_tape_reset(&t);
            struct akt_tensor *w = akt_tensor_new(&t, ndims[sh], shapes[sh], 0);
            int rows = w->shape[0];
            int64_t cols = w->n / rows;
            for (int r = 0; r < rows; r++) {
                float scale = (r == 1) ? 100.0f : 0.05f * (float)(r + 1);
                for (int64_t j = 0; j < cols; j++)
                    w->data[r * cols + j] = r == 2 ? 0.25f /* a constant row */
                                                   : scale * (2.0f * (float)akt_rng_uniform(&rng) - 1.0f);
            }
            for (int pass = 0; pass < 2; pass++) {
                if (pass == 1) /* the range follows the current values */
                    for (int64_t j = 0; j < w->n; j++)
                        w->data[j] *= 3.0f;
                struct akt_tensor *q = akt_fake_quant_channel(&t, w, bits);
                assert_int_equal(q->ndim, w->ndim);
                assert_int_equal(q->n, w->n);
                for (int r = 0; r < rows; r++) {
                    const float *row = w->data + r * cols;
                    float lo = row[0], hi = row[0];
                    for (int64_t j = 1; j < cols; j++) {
                        lo = fminf(lo, row[j]);
                        hi = fmaxf(hi, row[j]);
                    }
                    for (int64_t j = 0; j < cols; j++) {
                        float want = akt_fake_quant_scalar(row[j], lo, hi, bits);
                        if (memcmp(&want, &q->data[r * cols + j], sizeof want))
                            fail_msg("row %d col %lld: %.9g want %.9g", r, (long long)j,
                                     q->data[r * cols + j], want);
                    }
                }
            }
        }
    }
    akt_tape_free(&t);
}

/* ------------------------------------------------- straight-through --- */

static void check_ste(int per_channel, int bits)
{
    struct akt_rng rng;
    akt_rng_seed(&rng, 100 + bits);
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    struct akt_tensor *x = akt_tensor_newv(&t, 1, 4, 3, 4, 5, 5);
    float *pre = malloc(x->n * sizeof *pre);
    for (int64_t i = 0; i < x->n; i++) {
        x->data[i] = 2.0f * (float)akt_rng_uniform(&rng) - 0.5f; /* some outside [lo,hi] */
        pre[i] = x->grad[i] = (float)akt_rng_uniform(&rng);   /* accumulates, not overwrites */
    }
    struct akt_tensor *y = per_channel ? akt_fake_quant_channel(&t, x, bits)
                                       : akt_fake_quant(&t, x, 0.0f, 1.0f, bits);
    assert_non_null(y->grad);
    assert_int_equal(t.n_nodes, 1);
    for (int64_t i = 0; i < y->n; i++)
        akt_grad(y)[i] = 2.0f * (float)akt_rng_uniform(&rng) - 1.0f;
    akt_backward_run(&t);
    for (int64_t i = 0; i < x->n; i++) {
        float want = pre[i] + y->grad[i];
        if (memcmp(&want, &x->grad[i], sizeof want))
            fail_msg("STE %s %d bits: dx[%lld] %.9g, want %.9g", per_channel ? "channel" : "tensor",
                     bits, (long long)i, x->grad[i], want);
    }
    free(pre);
    akt_tape_free(&t);
}

static void test_ste_gradient(void **state)
{
    (void)state;
    for (int bits = 2; bits <= 8; bits++) {
        check_ste(0, bits);
        check_ste(1, bits);
    }
    /* no record without a gradient to carry, or when not recording */
    struct akt_tape t;
    akt_tape_init(&t, 1 << 16);
    struct akt_tensor *x = akt_tensor_newv(&t, 0, 2, 3, 4);
    akt_fake_quant(&t, x, 0, 1, 4);
    akt_fake_quant_channel(&t, x, 4);
    assert_int_equal(t.n_nodes, 0);
    t.recording = 0;
    x = akt_tensor_newv(&t, 1, 2, 3, 4);
    assert_null(akt_fake_quant(&t, x, 0, 1, 4)->grad);
    assert_int_equal(t.n_nodes, 0);
    akt_tape_free(&t);
    /* why the check is analytic: a central difference off a step edge is 0 */
    float x0 = 0.2f, h = 1e-3f; /* 15*x0 - 8 = -5, far from a tie */
    float fd = (akt_fake_quant_scalar(x0 + h, 0, 1, 4) - akt_fake_quant_scalar(x0 - h, 0, 1, 4)) / (2 * h);
    assert_true(fd == 0.0f);
}

/* A conv on fake-quantized weights passes the conv's weight gradient to the
 * FP weights unchanged: equal to the conv gradient w.r.t. the quantized
 * weights themselves. */
static void test_ste_through_conv(void **state)
{
    (void)state;
    struct akt_rng rng;
    akt_rng_seed(&rng, 5);
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    struct akt_tensor *x = akt_tensor_newv(&t, 0, 4, 2, 3, 6, 6);
    struct akt_tensor *w = akt_tensor_newv(&t, 1, 4, 4, 3, 3, 3);
    for (int64_t i = 0; i < x->n; i++)
        x->data[i] = akt_rng_normal(&rng);
    for (int64_t i = 0; i < w->n; i++)
        w->data[i] = 0.2f * akt_rng_normal(&rng);
    struct akt_tensor *wq = akt_fake_quant_channel(&t, w, 3);
    struct akt_tensor *y = akt_conv2d(&t, x, wq, NULL, 1, 1);
    for (int64_t i = 0; i < y->n; i++)
        akt_grad(y)[i] = akt_rng_normal(&rng);
    float *dy = malloc(y->n * sizeof *dy);
    memcpy(dy, y->grad, y->n * sizeof *dy);
    akt_backward_run(&t);

    struct akt_tape t2;
    akt_tape_init(&t2, 1 << 20);
    struct akt_tensor *x2 = akt_tensor_from(&t2, x->data, 4, x->shape);
    struct akt_tensor *w2 = akt_tensor_new(&t2, 4, w->shape, 1);
    memcpy(w2->data, wq->data, w->n * sizeof(float));
    struct akt_tensor *y2 = akt_conv2d(&t2, x2, w2, NULL, 1, 1);
    memcpy(akt_grad(y2), dy, y->n * sizeof *dy);
    akt_backward_run(&t2);
    assert_memory_equal(w->grad, w2->grad, w->n * sizeof(float));
    free(dy);
    akt_tape_free(&t2);
    akt_tape_free(&t);
}

/* ---------------------------------------------------- range tracker --- */

/* Reference recurrences in double (SPEC 2). */
struct ref_range {
    double lo, hi, raw_lo, raw_hi, c;
};

static void ref_update(struct ref_range *r, double mn, double mx, int plain)
{
    r->c *= 0.9;
    if (plain) {
        r->raw_lo = 0.9 * r->raw_lo + 0.1 * mn;
        r->raw_hi = 0.9 * r->raw_hi + 0.1 * mx;
        r->lo = r->raw_lo / (1 - r->c);
        r->hi = r->raw_hi / (1 - r->c);
    } else {
        r->lo = (0.9 * r->lo + 0.1 * mn) / (1 - r->c);
        r->hi = (0.9 * r->hi + 0.1 * mx) / (1 - r->c);
    }
}

static void close_rel(double got, double want, double rel, const char *what, int step)
{
    if (!(fabs(got - want) <= rel * fmax(fabs(want), 1e-3)))
        fail_msg("%s at update %d: %.9g, want %.9g", what, step, got, want);
}

static void check_tracker(enum akt_range_ema mode)
{
    int plain = mode == AKT_EMA_PLAIN;
    struct akt_range r = {.c = 1.0f};
    struct ref_range ref = {.c = 1.0};
    struct akt_rng rng;
    akt_rng_seed(&rng, 11);
    for (int i = 1; i <= 400; i++) {
        float mn = -(float)akt_rng_uniform(&rng) - (i % 7 == 0 ? 2.0f : 0.0f);
        float mx = 3.0f * (float)akt_rng_uniform(&rng) + 0.5f;
        akt_range_update(&r, mn, mx, mode);
        ref_update(&ref, mn, mx, plain);
        if (i == 1) { /* the first update is exactly the batch range */
            assert_true(r.lo == mn);
            assert_true(r.hi == mx);
        }
        assert_int_equal(r.updates, i);
        close_rel(r.c, ref.c, 1e-6, "c", i);
        close_rel(r.lo, ref.lo, 2e-5, "lo", i);
        close_rel(r.hi, ref.hi, 2e-5, "hi", i);
        if (plain) {
            close_rel(r.raw_lo, ref.raw_lo, 2e-5, "raw_lo", i);
            close_rel(r.raw_hi, ref.raw_hi, 2e-5, "raw_hi", i);
        }
    }
}

static void test_range_tracker(void **state)
{
    (void)state;
    check_tracker(AKT_EMA_AS_CODED);
    check_tracker(AKT_EMA_PLAIN);

    /* constant batches: the plain EMA stays put; the as-coded one overshoots
     * to ~3945x at update 21 and is back within 1e-4 by update 200 */
    struct akt_range a = {.c = 1.0f}, p = {.c = 1.0f};
    float peak = 0;
    int peak_at = 0;
    for (int i = 1; i <= 300; i++) {
        akt_range_update(&a, -1.0f, 1.0f, AKT_EMA_AS_CODED);
        akt_range_update(&p, -1.0f, 1.0f, AKT_EMA_PLAIN);
        if (a.hi > peak) {
            peak = a.hi;
            peak_at = i;
        }
        assert_true(fabsf(p.hi - 1.0f) <= 1e-6f && fabsf(p.lo + 1.0f) <= 1e-6f);
        assert_true(a.lo == -a.hi);
        if (i == 2)
            assert_true(fabsf(a.hi - 1.0f / 0.19f) <= 1e-5f);
        if (i == 200)
            assert_true(fabsf(a.hi - 1.0f) <= 1e-4f);
    }
    printf("# as-coded tracker on constant [-1,1]: peak hi %.1f at update %d, hi %.7f at 300\n",
           peak, peak_at, a.hi);
    assert_int_equal(peak_at, 21);
    assert_true(peak > 3900 && peak < 4000);

    /* a zeroed tracker (c = 0) starts like a fresh one */
    struct akt_range z;
    memset(&z, 0, sizeof z);
    akt_range_update(&z, -2.0f, 5.0f, AKT_EMA_AS_CODED);
    assert_true(z.lo == -2.0f && z.hi == 5.0f);
}

/* ---------------------------------------------------------- student --- */

#define B 4

static void random_input(float *x, int n, unsigned seed)
{
    struct akt_rng rng;
    akt_rng_seed(&rng, seed);
    for (int i = 0; i < n; i++)
        x[i] = akt_rng_normal(&rng);
}

/* Logits of m on x [B,3,32,32]; quant may be NULL. */
static void forward_logits(const struct akt_resnet *m, const float *x, int batch,
                           const struct akt_quant_hooks *quant, float *logits)
{
    struct akt_tape t;
    akt_tape_init(&t, 1 << 22);
    t.recording = 0;
    struct akt_tensor *xt = akt_tensor_from(&t, x, 4, (int[]){batch, 3, 32, 32});
    struct akt_resnet_opts o = {.bn_batch = 0, .param_grads = 0, .quant = quant};
    struct akt_resnet_out out;
    akt_resnet_forward(m, &t, xt, &o, &out);
    assert_int_equal(out.logits->shape[0], batch);
    memcpy(logits, out.logits->data, out.logits->n * sizeof(float));
    akt_tape_free(&t);
}

static double rel_l2(const float *a, const float *b, int n)
{
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / fmax(den, 1e-30));
}

static void make_teacher(struct akt_resnet *m, enum akt_shortcut sc)
{
    struct akt_rng rng;
    akt_rng_seed(&rng, 3);
    akt_resnet_init(m, 20, 10, sc);
    akt_resnet_init_random(m, &rng);
    /* non-trivial BN so the student's BN copy matters */
    for (int i = 0; i < m->n_params; i++) {
        struct akt_param *p = &m->params[i];
        size_t len = strlen(p->name);
        if (len >= 10 && !strcmp(p->name + len - 10, "bn1.weight"))
            for (int64_t j = 0; j < p->n; j++)
                m->values[p->offset + j] = 1.0f + 0.5f * (float)akt_rng_uniform(&rng);
    }
}

static void test_student_init(void **state)
{
    (void)state;
    struct akt_resnet teacher;
    make_teacher(&teacher, AKT_SHORTCUT_CONV1X1);
    struct akt_student s;
    akt_student_init(&s, &teacher, 4, 3);
    assert_int_equal(s.wbits, 4);
    assert_int_equal(s.abits, 3);
    assert_int_equal(s.first_last_8bit, 0);
    assert_int_equal(s.ema, AKT_EMA_AS_CODED);
    assert_int_equal(s.tracking, 1);
    assert_true(s.net.values != teacher.values && s.net.grads != teacher.grads);
    assert_int_equal(s.net.n_values, teacher.n_values);
    assert_int_equal(s.net.n_params, teacher.n_params);
    assert_memory_equal(s.net.values, teacher.values, teacher.n_values * sizeof(float));
    for (int64_t i = 0; i < s.net.n_values; i++)
        assert_true(s.momentum[i] == 0.0f && s.net.grads[i] == 0.0f);
    assert_int_equal(s.n_acts, 19); /* ResNet-20: 6n+1 ReLUs, n = 3 */
    assert_int_equal(s.n_acts, teacher.n_acts);
    for (int i = 0; i < s.n_acts; i++) {
        assert_true(s.act[i].lo == 0 && s.act[i].hi == 0 && s.act[i].c == 1.0f);
        assert_int_equal(s.act[i].updates, 0);
    }
    assert_non_null(s.hooks.weight);
    assert_non_null(s.hooks.act);
    assert_ptr_equal(s.hooks.ctx, &s);
    akt_student_free(&s);
    akt_resnet_free(&teacher);
}

/* Shapes, the first forward's ranges, 8-bit close to FP and 2-bit far,
 * tracking off freezes the ranges, gradients reach the weights. */
static void test_student_forward(void **state)
{
    (void)state;
    for (int sc = 0; sc < 2; sc++) {
        struct akt_resnet teacher;
        make_teacher(&teacher, (enum akt_shortcut)sc);
        float *x = malloc(B * 3072 * sizeof *x);
        random_input(x, B * 3072, 21);
        float zt[B * 10], z8[B * 10], z4[B * 10], z2[B * 10];
        forward_logits(&teacher, x, B, NULL, zt);
        struct akt_student s8, s4, s2;
        akt_student_init(&s8, &teacher, 8, 8);
        akt_student_init(&s4, &teacher, 4, 4);
        akt_student_init(&s2, &teacher, 2, 2);
        forward_logits(&s8.net, x, B, &s8.hooks, z8);
        forward_logits(&s4.net, x, B, &s4.hooks, z4);
        forward_logits(&s2.net, x, B, &s2.hooks, z2);
        double e8 = rel_l2(z8, zt, B * 10), e4 = rel_l2(z4, zt, B * 10), e2 = rel_l2(z2, zt, B * 10);
        printf("# %s shortcut, random net: logit rel. L2 error W8A8 %.4f, W4A4 %.4f, W2A2 %.4f\n",
               sc ? "conv1x1" : "pad", e8, e4, e2);
        assert_true(e8 < 0.02);
        assert_true(e8 < e4 && e4 < e2);
        assert_true(e2 > 0.15);
        /* one update each: ranges = that forward's min/max, ReLU outputs >= 0 */
        for (int i = 0; i < s8.n_acts; i++) {
            assert_int_equal(s8.act[i].updates, 1);
            assert_true(s8.act[i].lo == 0.0f && s8.act[i].hi > 0.0f);
        }

        /* tracking off: ranges frozen, the output depends on them only */
        struct akt_range saved[19];
        assert_int_equal(s4.n_acts, 19);
        memcpy(saved, s4.act, sizeof saved);
        s4.tracking = 0;
        float *x2 = malloc(B * 3072 * sizeof *x2);
        for (int i = 0; i < B * 3072; i++)
            x2[i] = 3.0f * x[i];
        float za[B * 10], zb[B * 10];
        forward_logits(&s4.net, x2, B, &s4.hooks, za);
        assert_memory_equal(saved, s4.act, sizeof saved);
        forward_logits(&s4.net, x, B, &s4.hooks, zb);
        assert_memory_equal(zb, z4, sizeof zb); /* same ranges, same input */
        s4.tracking = 1;
        forward_logits(&s4.net, x2, B, &s4.hooks, za);
        assert_int_equal(s4.act[0].updates, 2);
        assert_true(s4.act[0].hi != saved[0].hi);

        /* backward: every conv/FC weight and BN affine gets a gradient,
         * running statistics none */
        struct akt_tape t;
        akt_tape_init(&t, 1 << 22);
        struct akt_tensor *xt = akt_tensor_from(&t, x, 4, (int[]){B, 3, 32, 32});
        struct akt_resnet_opts o = {.bn_batch = 0, .param_grads = 1, .quant = &s8.hooks};
        struct akt_resnet_out out;
        akt_resnet_forward(&s8.net, &t, xt, &o, &out);
        assert_int_equal(out.logits->shape[1], 10);
        assert_int_equal(out.n_features, 9);
        assert_int_equal(out.n_acts, 19);
        assert_int_equal(out.n_bn, sc ? 21 : 19);
        for (int i = 0; i < out.n_features; i++)
            assert_non_null(out.features[i]);
        /* the student's ReLU outputs as the next layer sees them: quantized */
        for (int i = 0; i < out.n_acts; i++)
            assert_non_null(out.acts[i]);
        int labels[B] = {0, 1, 2, 3};
        akt_backward(&t, akt_cross_entropy(&t, out.logits, labels));
        for (int i = 0; i < s8.net.n_params; i++) {
            const struct akt_param *p = &s8.net.params[i];
            double g2 = 0;
            for (int64_t j = 0; j < p->n; j++)
                g2 += (double)s8.net.grads[p->offset + j] * s8.net.grads[p->offset + j];
            if (p->kind == AKT_PARAM_BUFFER)
                assert_true(g2 == 0);
            else if (!(g2 > 0))
                fail_msg("no gradient for %s", p->name);
        }
        akt_tape_free(&t);

        free(x);
        free(x2);
        akt_student_free(&s8);
        akt_student_free(&s4);
        akt_student_free(&s2);
        akt_resnet_free(&teacher);
    }
}

/* Distinct values per row of the hook's output for parameter `name`. */
static int max_levels_per_row(struct akt_student *s, const char *name)
{
    struct akt_param *p = akt_resnet_param(&s->net, name);
    assert_non_null(p);
    int idx = (int)(p - s->net.params);
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    t.recording = 0;
    struct akt_tensor w = akt_resnet_tensor(&s->net, p, 0);
    struct akt_tensor *q = s->hooks.weight(s->hooks.ctx, &t, idx, &w);
    int rows = p->shape[0], best = 0;
    int64_t cols = p->n / rows;
    float *buf = malloc(cols * sizeof *buf);
    for (int r = 0; r < rows; r++) {
        memcpy(buf, q->data + r * cols, cols * sizeof *buf);
        qsort(buf, cols, sizeof *buf, cmp_float);
        int lv = 1;
        for (int64_t j = 1; j < cols; j++)
            lv += buf[j] != buf[j - 1];
        best = lv > best ? lv : best;
    }
    free(buf);
    akt_tape_free(&t);
    return best;
}

static int act_levels(struct akt_student *s, int index)
{
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    t.recording = 0;
    struct akt_tensor *x = akt_tensor_newv(&t, 0, 1, 1000);
    for (int i = 0; i < 1000; i++)
        x->data[i] = (float)i / 999.0f;
    struct akt_tensor *y = s->hooks.act(s->hooks.ctx, &t, index, x);
    qsort(y->data, 1000, sizeof(float), cmp_float);
    int lv = 1;
    for (int i = 1; i < 1000; i++)
        lv += y->data[i] != y->data[i - 1];
    akt_tape_free(&t);
    return lv;
}

/* first_last_8bit: the stem conv and the FC weights at 8 bits; every other
 * weight and all 19 activation quantizers keep their bits. */
static void test_first_last_8bit(void **state)
{
    (void)state;
    struct akt_resnet teacher;
    make_teacher(&teacher, AKT_SHORTCUT_CONV1X1);
    struct akt_student s;
    akt_student_init(&s, &teacher, 2, 3);
    assert_true(max_levels_per_row(&s, "conv1.weight") <= 4);
    assert_true(max_levels_per_row(&s, "linear.weight") <= 4);
    s.first_last_8bit = 1;
    int stem = max_levels_per_row(&s, "conv1.weight"), fc = max_levels_per_row(&s, "linear.weight");
    printf("# first_last_8bit at W2: stem conv up to %d levels per channel (27 weights), FC %d (64)\n",
           stem, fc);
    assert_true(stem > 4 && fc > 4);
    assert_true(max_levels_per_row(&s, "layer1.0.conv1.weight") <= 4);
    assert_true(max_levels_per_row(&s, "layer2.0.shortcut.0.weight") <= 4);
    assert_true(max_levels_per_row(&s, "layer3.2.conv2.weight") <= 4);
    assert_int_equal(act_levels(&s, 0), 8);
    assert_int_equal(act_levels(&s, s.n_acts - 1), 8);

    /* end to end: the flag changes the logits */
    float *x = malloc(B * 3072 * sizeof *x);
    random_input(x, B * 3072, 4);
    float za[B * 10], zb[B * 10];
    s.tracking = 1;
    s.first_last_8bit = 0;
    forward_logits(&s.net, x, B, &s.hooks, za);
    s.tracking = 0; /* same ranges for the second forward */
    s.first_last_8bit = 1;
    forward_logits(&s.net, x, B, &s.hooks, zb);
    assert_true(memcmp(za, zb, sizeof za) != 0);
    free(x);
    akt_student_free(&s);
    akt_resnet_free(&teacher);
}

/* The real teacher on real test images (skipped without $AKT_DATA): a W8A8
 * student calibrated by its own (first, tracked) forward agrees with the teacher, W2A2
 * does not. */
static void test_student_real_teacher(void **state)
{
    (void)state;
    const char *data = getenv("AKT_DATA");
    char tpath[1024], dpath[1024];
    if (!data) {
        printf("# skipped: AKT_DATA not set\n");
        skip();
    }
    snprintf(tpath, sizeof tpath, "%s/teachers/resnet20_cifar10_akamaster_optA.h5", data);
    snprintf(dpath, sizeof dpath, "%s/cifar-10-batches-bin/test_batch_lossless1000.bin", data);
    FILE *f1 = fopen(tpath, "rb"), *f2 = fopen(dpath, "rb");
    if (f1)
        fclose(f1);
    if (f2)
        fclose(f2);
    if (!f1 || !f2) {
        printf("# skipped: %s or %s missing\n", tpath, dpath);
        skip();
    }
    struct akt_resnet teacher;
    struct akt_dataset d;
    struct akt_error e;
    assert_int_equal(akt_resnet_load(&teacher, tpath, &e), AKT_OK);
    assert_int_equal(akt_cifar_load(&d, dpath, AKT_CIFAR10, &e), AKT_OK);
    enum { N = 32 };
    float *x = malloc((size_t)N * 3072 * sizeof *x);
    int labels[N];
    akt_dataset_batch(&d, 0, N, teacher.mean, teacher.std, x, labels);
    float zt[N * 10], zq[N * 10];
    forward_logits(&teacher, x, N, NULL, zt);
    const int bits[] = {8, 4, 2};
    double err[3];
    int agree[3];
    for (int k = 0; k < 3; k++) {
        struct akt_student s;
        akt_student_init(&s, &teacher, bits[k], bits[k]);
        /* the first update sets each range to this batch's min/max */
        forward_logits(&s.net, x, N, &s.hooks, zq);
        err[k] = rel_l2(zq, zt, N * 10);
        agree[k] = 0;
        for (int b = 0; b < N; b++) {
            int at = 0, aq = 0;
            for (int c = 1; c < 10; c++) {
                at = zt[b * 10 + c] > zt[b * 10 + at] ? c : at;
                aq = zq[b * 10 + c] > zq[b * 10 + aq] ? c : aq;
            }
            agree[k] += at == aq;
        }
        akt_student_free(&s);
    }
    printf("# real teacher, %d test images: logit rel. L2 error / top-1 agreement W8A8 %.4f / %d, "
           "W4A4 %.4f / %d, W2A2 %.4f / %d\n",
           N, err[0], agree[0], err[1], agree[1], err[2], agree[2]);
    assert_true(err[0] < 0.05 && agree[0] >= N - 1);
    assert_true(err[2] > 0.3 && agree[2] < N / 2);
    free(x);
    akt_dataset_free(&d);
    akt_resnet_free(&teacher);
}

/* ------------------------------------------------------- optimizers --- */

static void close_abs(double got, double want, double tol, const char *what, int step)
{
    if (!(fabs(got - want) <= tol))
        fail_msg("%s step %d: %.9g, want %.9g", what, step, got, want);
}

/* Hand-computed torch.optim steps (p = 1, lr 0.1, momentum 0.9, wd 0.01,
 * grads 0.5, -0.2, 0.3). Nesterov: d = g + wd*p; buf = 0.9*buf + d;
 * p -= lr*(d + 0.9*buf). E.g. step 1: d = 0.51, buf = 0.51, p = 1 - 0.0969. */
static void test_sgd(void **state)
{
    (void)state;
    const float g[3] = {0.5f, -0.2f, 0.3f};
    const double nest_p[3] = {0.9031, 0.89807411, 0.817657258191};
    const double nest_b[3] = {0.51, 0.268031, 0.5502086411};
    const double heavy_p[3] = {0.949, 0.922151, 0.867064749};
    const double heavy_b[3] = {0.51, 0.26849, 0.55086251};
    float p = 1, buf = 0, q = 1, qbuf = 0;
    for (int s = 0; s < 3; s++) {
        akt_sgd_step(&p, &g[s], &buf, 1, 0.1f, 0.9f, 0.01f, 1);
        akt_sgd_step(&q, &g[s], &qbuf, 1, 0.1f, 0.9f, 0.01f, 0);
        close_abs(p, nest_p[s], 1e-6, "nesterov p", s + 1);
        close_abs(buf, nest_b[s], 1e-6, "nesterov buf", s + 1);
        close_abs(q, heavy_p[s], 1e-6, "momentum p", s + 1);
        close_abs(qbuf, heavy_b[s], 1e-6, "momentum buf", s + 1);
    }
    /* plain SGD: p - lr*g exactly; the buffer is untouched */
    float v[3] = {1.0f, -2.0f, 0.25f}, gg[3] = {0.5f, 0.25f, -1.0f}, b[3] = {7, 7, 7};
    akt_sgd_step(v, gg, b, 3, 0.5f, 0.0f, 0.0f, 0);
    assert_true(v[0] == 0.75f && v[1] == -2.125f && v[2] == 0.75f);
    assert_true(b[0] == 7 && b[1] == 7 && b[2] == 7);
}

/* torch.optim.Adam, lr 0.1, betas (0.9, 0.999), eps 1e-8, grads 0.5, -0.25,
 * 0.125: step 1 moves by lr*sign(g) (m/sqrt(v) bias-corrected = 1). */
static void test_adam(void **state)
{
    (void)state;
    const float g[3] = {0.5f, -0.25f, 0.125f};
    const double want_p[3] = {0.900000002, 0.8733662987078463, 0.8393233849166541};
    const double want_m[3] = {0.05, 0.02, 0.0305};
    const double want_v[3] = {0.00025, 0.00031225, 0.00032756275};
    float p = 1, m = 0, v = 0;
    for (int s = 0; s < 3; s++) {
        akt_adam_step(&p, &g[s], &m, &v, 1, 0.1f, 0.9f, 0.999f, 1e-8f, s + 1);
        close_abs(p, want_p[s], 1e-6, "adam p", s + 1);
        close_abs(m, want_m[s], 1e-8, "adam m", s + 1);
        close_abs(v, want_v[s], 1e-9, "adam v", s + 1);
        if (s == 0) /* 1 - beta as torch has it: float(1 - 0.9), float(1 - 0.999) */
            assert_true(m == (float)(1 - 0.9) * 0.5f && v == (float)(1 - 0.999) * 0.25f);
    }
}

static void test_lr_schedule(void **state)
{
    (void)state;
    const int ms[3] = {100, 200, 300};
    const int epochs[] = {0, 99, 100, 199, 200, 250, 300, 399};
    const double want[] = {1e-4, 1e-4, 1e-5, 1e-5, 1e-6, 1e-6, 1e-7, 1e-7};
    for (int i = 0; i < ARRAY_LEN(epochs); i++) {
        float lr = akt_lr_at(1e-4f, epochs[i], ms, 3, 0.1f);
        if (!(fabs(lr - want[i]) <= 1e-6 * want[i]))
            fail_msg("lr at epoch %d: %.9g want %.9g", epochs[i], lr, want[i]);
    }
    /* torch's double arithmetic on the decimals: float(1e-4 * 0.1) */
    assert_true(akt_lr_at(1e-4f, 100, ms, 3, 0.1f) == (float)(1e-4 * 0.1));
    assert_true(akt_lr_at(1e-4f, 300, ms, 3, 0.1f) == (float)(1e-4 * 0.1 * 0.1 * 0.1));
    /* order does not matter, a repeated milestone counts twice (MultiStepLR) */
    const int unsorted[3] = {300, 100, 200}, twice[2] = {5, 5};
    assert_true(akt_lr_at(1e-3f, 250, unsorted, 3, 0.1f) == akt_lr_at(1e-3f, 250, ms, 3, 0.1f));
    assert_true(fabsf(akt_lr_at(1.0f, 5, twice, 2, 0.5f) - 0.25f) == 0);
    assert_true(akt_lr_at(1.0f, 4, twice, 2, 0.5f) == 1.0f);
    assert_true(akt_lr_at(2.0f, 10, NULL, 0, 0.1f) == 2.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quant_hand_values),
        cmocka_unit_test(test_quant_clamp),
        cmocka_unit_test(test_quant_degenerate_range),
        cmocka_unit_test(test_quant_levels_all_bits),
        cmocka_unit_test(test_quant_channel),
        cmocka_unit_test(test_ste_gradient),
        cmocka_unit_test(test_ste_through_conv),
        cmocka_unit_test(test_range_tracker),
        cmocka_unit_test(test_student_init),
        cmocka_unit_test(test_student_forward),
        cmocka_unit_test(test_first_last_8bit),
        cmocka_unit_test(test_student_real_teacher),
        cmocka_unit_test(test_sgd),
        cmocka_unit_test(test_adam),
        cmocka_unit_test(test_lr_schedule),
    };
    return cmocka_run_group_tests_name("unit_quant", tests, NULL, NULL);
}
