/* Gradient checks: elementwise ops. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "gradcheck.h"

static struct akt_tensor *f_add(struct akt_tape *t, struct akt_tensor **in, void *u)
{ (void)u; return akt_add(t, in[0], in[1]); }
static struct akt_tensor *f_sub(struct akt_tape *t, struct akt_tensor **in, void *u)
{ (void)u; return akt_sub(t, in[0], in[1]); }
static struct akt_tensor *f_mul(struct akt_tape *t, struct akt_tensor **in, void *u)
{ (void)u; return akt_mul(t, in[0], in[1]); }
static struct akt_tensor *f_div(struct akt_tape *t, struct akt_tensor **in, void *u)
{ (void)u; return akt_div(t, in[0], in[1]); }
static struct akt_tensor *f_mul_self(struct akt_tape *t, struct akt_tensor **in, void *u)
{ (void)u; return akt_mul(t, in[0], in[0]); }
static struct akt_tensor *f_scale(struct akt_tape *t, struct akt_tensor **in, void *u)
{ (void)u; return akt_scale(t, in[0], -1.7f, 0.3f); }
static struct akt_tensor *f_square(struct akt_tape *t, struct akt_tensor **in, void *u)
{ (void)u; return akt_square(t, in[0]); }
static struct akt_tensor *f_relu(struct akt_tape *t, struct akt_tensor **in, void *u)
{ (void)u; return akt_relu(t, in[0]); }
static struct akt_tensor *f_leaky(struct akt_tape *t, struct akt_tensor **in, void *u)
{ (void)u; return akt_leaky_relu(t, in[0], 0.2f); }
static struct akt_tensor *f_tanh(struct akt_tape *t, struct akt_tensor **in, void *u)
{ (void)u; return akt_tanh(t, in[0]); }
static struct akt_tensor *f_hinge(struct akt_tape *t, struct akt_tensor **in, void *u)
{ (void)u; return akt_hinge(t, in[0], -1.0f, 0.2f); }

#define SHAPE(...) .ndim = sizeof((int[]){__VA_ARGS__}) / sizeof(int), .shape = {__VA_ARGS__}

static void test_binary_same_shape(void **state)
{
    (void)state;
    struct gc_input in[2] = {{SHAPE(2, 3, 4), .grad = 1}, {SHAPE(2, 3, 4), .grad = 1}};
    assert_int_equal(gradcheck("add", f_add, NULL, 2, in, 1, 1e-2f, 1e-3), 0);
    assert_int_equal(gradcheck("sub", f_sub, NULL, 2, in, 2, 1e-2f, 1e-3), 0);
    assert_int_equal(gradcheck("mul", f_mul, NULL, 2, in, 3, 1e-2f, 1e-3), 0);
    struct gc_input dv[2] = {{SHAPE(2, 3, 4), .grad = 1}, {SHAPE(2, 3, 4), .grad = 1, .lo = 0.5f, .hi = 2}};
    assert_int_equal(gradcheck("div", f_div, NULL, 2, dv, 4, 1e-3f, 2e-3), 0);
    struct gc_input one[1] = {{SHAPE(5), .grad = 1}};
    assert_int_equal(gradcheck("mul_self", f_mul_self, NULL, 1, one, 5, 1e-2f, 1e-3), 0);
}

static struct akt_tensor *f_add_relu(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    (void)u;
    return akt_add_relu(t, in[0], in[1]);
}
static struct akt_tensor *f_add_relu_self(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    (void)u;
    return akt_add_relu(t, in[0], in[0]);
}

/* relu(a + b) fused: finite differences (kinks skipped), and bit-identical
 * values and gradients to akt_relu(akt_add(a, b)) */
static void test_add_relu(void **state)
{
    (void)state;
    struct gc_input in[2] = {{SHAPE(2, 3, 4), .grad = 1}, {SHAPE(2, 3, 4), .grad = 1}};
    assert_int_equal(gradcheck("add_relu", f_add_relu, NULL, 2, in, 11, 1e-2f, 1e-3), 0);
    struct gc_input one[1] = {{SHAPE(7), .grad = 1}};
    assert_int_equal(gradcheck("add_relu_self", f_add_relu_self, NULL, 1, one, 12, 1e-2f, 1e-3), 0);
    float *got[2][3];
    for (int fused = 0; fused < 2; fused++) {
        struct akt_rng r;
        akt_rng_seed(&r, 5);
        struct akt_tape t;
        akt_tape_init(&t, 1 << 20);
        struct akt_tensor *a = akt_tensor_newv(&t, 1, 2, 6, 50), *b = akt_tensor_newv(&t, 1, 2, 6, 50);
        for (int64_t i = 0; i < a->n; i++) {
            a->data[i] = akt_rng_normal(&r);
            b->data[i] = akt_rng_normal(&r);
        }
        struct akt_tensor *y = fused ? akt_add_relu(&t, a, b) : akt_relu(&t, akt_add(&t, a, b));
        for (int64_t i = 0; i < y->n; i++)
            akt_grad(y)[i] = akt_rng_normal(&r);
        akt_backward_run(&t);
        const float *src[3] = {y->data, a->grad, b->grad};
        for (int k = 0; k < 3; k++)
            got[fused][k] = gc_copy(src[k], y->n);
        akt_tape_free(&t);
    }
    for (int k = 0; k < 3; k++) {
        assert_memory_equal(got[0][k], got[1][k], 300 * sizeof(float));
        free(got[0][k]);
        free(got[1][k]);
    }
}

static void test_binary_scalar(void **state)
{
    (void)state;
    struct gc_input in[2] = {{SHAPE(3, 5), .grad = 1}, {SHAPE(1), .grad = 1, .lo = 0.5f, .hi = 1.5f}};
    assert_int_equal(gradcheck("add_s", f_add, NULL, 2, in, 6, 1e-2f, 1e-3), 0);
    assert_int_equal(gradcheck("sub_s", f_sub, NULL, 2, in, 7, 1e-2f, 1e-3), 0);
    assert_int_equal(gradcheck("mul_s", f_mul, NULL, 2, in, 8, 1e-2f, 1e-3), 0);
    assert_int_equal(gradcheck("div_s", f_div, NULL, 2, in, 9, 1e-3f, 2e-3), 0);
}

static void test_unary(void **state)
{
    (void)state;
    struct gc_input in[1] = {{SHAPE(4, 6), .grad = 1, .lo = -2, .hi = 2}};
    assert_int_equal(gradcheck("scale", f_scale, NULL, 1, in, 10, 1e-2f, 1e-3), 0);
    assert_int_equal(gradcheck("square", f_square, NULL, 1, in, 11, 1e-2f, 1e-3), 0);
    assert_int_equal(gradcheck("relu", f_relu, NULL, 1, in, 12, 1e-2f, 1e-3), 0);
    assert_int_equal(gradcheck("leaky", f_leaky, NULL, 1, in, 13, 1e-2f, 1e-3), 0);
    assert_int_equal(gradcheck("tanh", f_tanh, NULL, 1, in, 14, 1e-3f, 2e-3), 0);
    assert_int_equal(gradcheck("hinge", f_hinge, NULL, 1, in, 15, 1e-2f, 1e-3), 0);
}

/* A broken gradient must be caught: the harness itself can fail. */
static void bad_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    for (int64_t i = 0; i < n->out->n; i++)
        n->in[0]->grad[i] += 2 * n->out->grad[i]; /* should be 1x */
}
static struct akt_tensor *f_broken(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    (void)u;
    struct akt_tensor *out = akt_tensor_new(t, in[0]->ndim, in[0]->shape, 0);
    memcpy(out->data, in[0]->data, in[0]->n * sizeof(float));
    akt_tape_push(t, bad_bw, "broken", out, in[0], NULL, NULL, NULL);
    return out;
}

static void test_harness_catches_wrong_gradient(void **state)
{
    (void)state;
    struct gc_input in[1] = {{SHAPE(3), .grad = 1}};
    assert_true(gradcheck("broken (expected to fail)", f_broken, NULL, 1, in, 16, 1e-2f, 1e-3) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binary_same_shape),
        cmocka_unit_test(test_binary_scalar),
        cmocka_unit_test(test_add_relu),
        cmocka_unit_test(test_unary),
        cmocka_unit_test(test_harness_catches_wrong_gradient),
    };
    return cmocka_run_group_tests_name("grad_elementwise", tests, NULL, NULL);
}
