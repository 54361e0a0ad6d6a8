/* Gradient and value checks: sum, mean, min, l2 normalize. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "gradcheck.h"

#define SHAPE(...) .ndim = sizeof((int[]){__VA_ARGS__}) / sizeof(int), .shape = {__VA_ARGS__}

struct axes {
    int a0, a1;
    float eps;
};

static struct akt_tensor *f_sum(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    struct axes *a = u;
    return akt_sum(t, in[0], a->a0, a->a1);
}
static struct akt_tensor *f_mean(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    struct axes *a = u;
    return akt_mean(t, in[0], a->a0, a->a1);
}
/* x feeds two ops: a backward that overwrote instead of accumulating fails */
static struct akt_tensor *f_sum_plus_mean(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    struct axes *a = u;
    return akt_add(t, akt_sum(t, in[0], a->a0, a->a1), akt_mean(t, in[0], a->a0, a->a1));
}
static struct akt_tensor *f_min(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    (void)u;
    return akt_min(t, in[0]);
}
static struct akt_tensor *f_l2n(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    struct axes *a = u;
    return akt_l2_normalize(t, in[0], a->a0, a->a1, a->eps);
}

/* Every axis range of a 4-D tensor, including middle ones and the full
 * reduction, plus a 2-D case and an inner size above the 64-wide block. */
static const struct {
    int ndim, shape[4], a0, a1;
} reduce_cases[] = {
    {4, {2, 3, 4, 5}, 0, 1}, {4, {2, 3, 4, 5}, 1, 2}, {4, {2, 3, 4, 5}, 2, 3},
    {4, {2, 3, 4, 5}, 3, 4}, {4, {2, 3, 4, 5}, 1, 3}, {4, {2, 3, 4, 5}, 2, 4},
    {4, {2, 3, 4, 5}, 0, 4}, {2, {3, 4}, 1, 2},       {3, {2, 3, 70}, 1, 2},
};
#define N_CASES (int)(sizeof reduce_cases / sizeof reduce_cases[0])

static void test_sum_mean_grad(void **state)
{
    (void)state;
    for (int k = 0; k < N_CASES; k++) {
        struct gc_input in[1] = {{.ndim = reduce_cases[k].ndim, .grad = 1}};
        memcpy(in[0].shape, reduce_cases[k].shape, sizeof in[0].shape);
        struct axes a = {reduce_cases[k].a0, reduce_cases[k].a1, 0};
        char name[64];
        snprintf(name, sizeof name, "sum case %d", k);
        assert_int_equal(gradcheck_finite(name, f_sum, &a, 1, in, 100 + k, 1e-2f, 1e-3), 0);
        snprintf(name, sizeof name, "mean case %d", k);
        assert_int_equal(gradcheck_finite(name, f_mean, &a, 1, in, 200 + k, 1e-2f, 1e-3), 0);
        snprintf(name, sizeof name, "sum+mean case %d", k);
        assert_int_equal(gradcheck_finite(name, f_sum_plus_mean, &a, 1, in, 300 + k, 1e-2f, 1e-3), 0);
    }
}

/* Independent reference: the reduction written with four explicit indices. */
static void test_sum_mean_values(void **state)
{
    (void)state;
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    const float v[6] = {1, 2, 3, 4, 5, 6};
    struct akt_tensor *x = akt_tensor_from(&t, v, 2, (int[]){2, 3});
    struct akt_tensor *s0 = akt_sum(&t, x, 0, 1);
    assert_int_equal(s0->ndim, 1);
    assert_int_equal(s0->shape[0], 3);
    assert_near(s0->data[0], 5, 0);
    assert_near(s0->data[1], 7, 0);
    assert_near(s0->data[2], 9, 0);
    struct akt_tensor *s1 = akt_sum(&t, x, 1, 2);
    assert_int_equal(s1->shape[0], 2);
    assert_near(s1->data[0], 6, 0);
    assert_near(s1->data[1], 15, 0);
    struct akt_tensor *m = akt_mean(&t, x, 0, 2);
    assert_int_equal(m->ndim, 1);
    assert_int_equal(m->shape[0], 1);
    assert_near(m->data[0], 3.5f, 0);
    struct akt_tensor *m1 = akt_mean(&t, x, 1, 2);
    assert_near(m1->data[0], 2, 1e-6);
    assert_near(m1->data[1], 5, 1e-6);

    /* [2,3,4,5] over the middle axes [1,3) -> [2,5] */
    enum { N = 2, C = 3, H = 4, W = 5 };
    float xv[N * C * H * W];
    struct akt_rng rng;
    akt_rng_seed(&rng, 7);
    for (int i = 0; i < N * C * H * W; i++)
        xv[i] = (float)akt_rng_uniform(&rng) * 4 - 2;
    struct akt_tensor *x4 = akt_tensor_from(&t, xv, 4, (int[]){N, C, H, W});
    struct akt_tensor *s = akt_sum(&t, x4, 1, 3);
    struct akt_tensor *mm = akt_mean(&t, x4, 1, 3);
    assert_int_equal(s->ndim, 2);
    assert_int_equal(s->shape[0], N);
    assert_int_equal(s->shape[1], W);
    for (int n = 0; n < N; n++)
        for (int w = 0; w < W; w++) {
            double ref = 0;
            for (int c = 0; c < C; c++)
                for (int h = 0; h < H; h++)
                    ref += xv[((n * C + c) * H + h) * W + w];
            assert_near(s->data[n * W + w], ref, 1e-5);
            assert_near(mm->data[n * W + w], ref / (C * H), 1e-6);
        }
    akt_tape_free(&t);
}

/* A float accumulator loses the ones next to 1e8 (its ulp there is 8). */
static void test_sum_accumulates_in_double(void **state)
{
    (void)state;
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    float v[18];
    v[0] = 1e8f;
    for (int i = 1; i < 17; i++)
        v[i] = 1;
    v[17] = -1e8f;
    struct akt_tensor *x = akt_tensor_from(&t, v, 1, (int[]){18});
    assert_near(akt_sum(&t, x, 0, 1)->data[0], 16, 0);
    /* the same along a strided axis: [18,2] summed over axis 0 */
    float v2[36];
    for (int i = 0; i < 18; i++) {
        v2[2 * i] = v[i];
        v2[2 * i + 1] = -v[i];
    }
    struct akt_tensor *x2 = akt_tensor_from(&t, v2, 2, (int[]){18, 2});
    struct akt_tensor *s = akt_sum(&t, x2, 0, 1);
    assert_near(s->data[0], 16, 0);
    assert_near(s->data[1], -16, 0);
    akt_tape_free(&t);
}

static void test_min_grad(void **state)
{
    (void)state;
    struct gc_input in[1] = {{SHAPE(3, 4), .grad = 1}};
    assert_int_equal(gradcheck_finite("min", f_min, NULL, 1, in, 400, 1e-3f, 1e-3), 0);
    struct gc_input in4[1] = {{SHAPE(2, 2, 2, 3), .grad = 1, .lo = -3, .hi = 3}};
    assert_int_equal(gradcheck_finite("min 4d", f_min, NULL, 1, in4, 401, 1e-3f, 1e-3), 0);
}

/* Ties: the value is the minimum and only the first minimal element gets
 * the gradient; the gradient adds to what is already there. */
static void test_min_value_ties(void **state)
{
    (void)state;
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    const float v[6] = {3, -1, 2, -1, 5, -0.5f};
    struct akt_tensor *x = akt_tensor_newv(&t, 1, 2, 2, 3);
    memcpy(x->data, v, sizeof v);
    x->grad[4] = 0.25f;
    struct akt_tensor *m = akt_min(&t, x);
    assert_int_equal(m->ndim, 1);
    assert_int_equal(m->n, 1);
    assert_near(m->data[0], -1, 0);
    akt_backward(&t, m);
    const float want[6] = {0, 1, 0, 0, 0.25f, 0};
    for (int i = 0; i < 6; i++)
        assert_near(x->grad[i], want[i], 0);
    /* a NaN is not skipped */
    const float vn[4] = {1, NAN, -2, 0};
    struct akt_tensor *xn = akt_tensor_from(&t, vn, 1, (int[]){4});
    assert_true(isnan(akt_min(&t, xn)->data[0]));
    akt_tape_free(&t);
}

static void test_l2_normalize_grad(void **state)
{
    (void)state;
    for (int k = 0; k < N_CASES; k++) {
        struct gc_input in[1] = {{.ndim = reduce_cases[k].ndim, .grad = 1}};
        memcpy(in[0].shape, reduce_cases[k].shape, sizeof in[0].shape);
        struct axes a = {reduce_cases[k].a0, reduce_cases[k].a1, 1e-12f};
        char name[64];
        snprintf(name, sizeof name, "l2n case %d", k);
        assert_int_equal(gradcheck_finite(name, f_l2n, &a, 1, in, 500 + k, 1e-3f, 2e-3), 0);
    }
    /* every norm below eps: the denominator is the constant eps */
    struct gc_input small[1] = {{SHAPE(3, 4), .grad = 1, .lo = -1e-3f, .hi = 1e-3f}};
    struct axes a = {1, 2, 0.1f};
    assert_int_equal(gradcheck_finite("l2n clamped", f_l2n, &a, 1, small, 520, 1e-2f, 1e-3), 0);
    /* rows on both sides of eps in one tensor (norms 1.03, 0.027, 0.143
     * just above eps, 0.011) */
    const float mixed[12] = {0.9f, -0.4f, 0.3f, 0.01f, -0.02f, 0.015f,
                             0.09f, -0.1f, 0.05f, 0.004f, 0.003f, -0.01f};
    struct gc_input mix[1] = {{SHAPE(4, 3), .grad = 1, .init = mixed}};
    struct axes b = {1, 2, 0.1f};
    assert_int_equal(gradcheck_finite("l2n mixed", f_l2n, &b, 1, mix, 521, 1e-3f, 2e-3), 0);
}

static void test_l2_normalize_values(void **state)
{
    (void)state;
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    /* rows: a 3-4-5 triangle, all zeros (no NaN), a row below eps = 0.01 */
    const float v[6] = {3, 4, 0, 0, 0.003f, -0.004f};
    struct akt_tensor *x = akt_tensor_from(&t, v, 2, (int[]){3, 2});
    struct akt_tensor *y = akt_l2_normalize(&t, x, 1, 2, 0.01f);
    assert_int_equal(y->ndim, 2);
    assert_int_equal(y->shape[0], 3);
    assert_int_equal(y->shape[1], 2);
    assert_near(y->data[0], 0.6, 1e-6);
    assert_near(y->data[1], 0.8, 1e-6);
    assert_near(y->data[2], 0, 0);
    assert_near(y->data[3], 0, 0);
    assert_near(y->data[4], 0.3, 1e-6);
    assert_near(y->data[5], -0.4, 1e-6);
    /* over axis 0 of [2,2,2] (inner 4): column j is (v[j], v[4+j]) */
    const float w[8] = {1, 0, -2, 6, 1, 2, 0, 8};
    struct akt_tensor *x2 = akt_tensor_from(&t, w, 3, (int[]){2, 2, 2});
    struct akt_tensor *y2 = akt_l2_normalize(&t, x2, 0, 1, 1e-12f);
    for (int j = 0; j < 4; j++) {
        double nrm = sqrt((double)w[j] * w[j] + (double)w[4 + j] * w[4 + j]);
        assert_near(y2->data[j], w[j] / nrm, 1e-6);
        assert_near(y2->data[4 + j], w[4 + j] / nrm, 1e-6);
    }
    akt_tape_free(&t);
}

/* Forward and backward of a tensor large enough to run in parallel: bit
 * identical with 1 and 4 threads (reductions never split across threads). */
static void run_large(int threads, float *out_sum, float *out_l2, float *grad)
{
    enum { R = 64, K = 1024 };
    akt_threads_set(threads);
    struct akt_tape t;
    akt_tape_init(&t, 1 << 22);
    struct akt_rng rng;
    akt_rng_seed(&rng, 99);
    struct akt_tensor *x = akt_tensor_newv(&t, 1, 2, R, K);
    for (int i = 0; i < R * K; i++)
        x->data[i] = akt_rng_normal(&rng);
    struct akt_tensor *s0 = akt_sum(&t, x, 0, 1);
    struct akt_tensor *s1 = akt_mean(&t, x, 1, 2);
    struct akt_tensor *l2 = akt_l2_normalize(&t, x, 1, 2, 1e-12f);
    memcpy(out_sum, s0->data, K * sizeof(float));
    memcpy(out_sum + K, s1->data, R * sizeof(float));
    memcpy(out_l2, l2->data, (size_t)R * K * sizeof(float));
    struct akt_tensor *loss = akt_add(&t, akt_sum(&t, akt_mul(&t, l2, l2), 0, 2),
                                      akt_add(&t, akt_sum(&t, s0, 0, 1), akt_sum(&t, s1, 0, 1)));
    akt_backward(&t, loss);
    memcpy(grad, x->grad, (size_t)R * K * sizeof(float));
    akt_tape_free(&t);
}

static void test_thread_count_bit_identical(void **state)
{
    (void)state;
    enum { R = 64, K = 1024, PER = K + R + 2 * R * K };
    int saved = akt_threads_get();
    float *buf = malloc(3 * (size_t)PER * sizeof(float));
    assert_non_null(buf);
    int threads[3] = {1, 4, 4};
    for (int r = 0; r < 3; r++) {
        float *o = buf + (size_t)r * PER;
        run_large(threads[r], o, o + K + R, o + K + R + R * K);
    }
    akt_threads_set(saved);
    assert_memory_equal(buf, buf + PER, (size_t)PER * sizeof(float));
    assert_memory_equal(buf, buf + 2 * (size_t)PER, (size_t)PER * sizeof(float));
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sum_mean_grad),
        cmocka_unit_test(test_sum_mean_values),
        cmocka_unit_test(test_sum_accumulates_in_double),
        cmocka_unit_test(test_min_grad),
        cmocka_unit_test(test_min_value_ties),
        cmocka_unit_test(test_l2_normalize_grad),
        cmocka_unit_test(test_l2_normalize_values),
        cmocka_unit_test(test_thread_count_bit_identical),
    };
    return cmocka_run_group_tests_name("grad_reduce", tests, NULL, NULL);
}
