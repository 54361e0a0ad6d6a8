/* Unit tests: errors, arenas, the RNG stream, tape mechanics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "akt/akt.h"

static void test_error_format(void **state)
{
    (void)state;
    struct akt_error e = {0};
    int rc = akt_error_set(&e, AKT_EIO, "a.h5:/conv1.weight", "shape %s, expected %s", "[1]", "[2]");
    assert_int_equal(rc, AKT_EIO);
    assert_int_equal(e.code, AKT_EIO);
    char buf[256];
    assert_string_equal(akt_error_format(&e, buf, sizeof buf),
                        "a.h5:/conv1.weight: shape [1], expected [2]");
    assert_int_equal(akt_error_set(NULL, AKT_EINVAL, "x", "y"), AKT_EINVAL);
}

/* akt_error_wrap formats through a copy: the callee's where and what stay
 * whole, once, after the caller's place (never "create failed: create
 * failed: ..."), also for messages that fill the buffers. */
static void test_error_wrap(void **state)
{
    (void)state;
    struct akt_error e = {0};
    char buf[1200];
    akt_error_set(&e, AKT_EINVAL, "plug", "refusing to start");
    assert_int_equal(akt_error_wrap(&e, AKT_EPLUGIN, "loss plug", "create failed"), AKT_EPLUGIN);
    assert_string_equal(e.where, "loss plug");
    assert_string_equal(e.what, "create failed: plug: refusing to start");
    /* code 0 keeps the code; fmt NULL prefixes the place only */
    akt_error_set(&e, AKT_ENUMERIC, "batch 3", "logits are NaN");
    assert_int_equal(akt_error_wrap(&e, 0, "student after epoch 2", NULL), AKT_ENUMERIC);
    assert_string_equal(akt_error_format(&e, buf, sizeof buf),
                        "student after epoch 2: batch 3: logits are NaN");
    /* a callee that named no place, and one that said nothing */
    akt_error_set(&e, AKT_EIO, "", "disk full");
    akt_error_wrap(&e, 0, "f.h5", "commit of run %s", "r1");
    assert_string_equal(akt_error_format(&e, buf, sizeof buf), "f.h5: commit of run r1: disk full");
    e = (struct akt_error){0};
    akt_error_wrap(&e, AKT_EPLUGIN, "loss x", "create failed");
    assert_string_equal(akt_error_format(&e, buf, sizeof buf), "loss x: create failed");
    /* full buffers: truncated, never overlapping (ASan/UBSan clean) */
    memset(e.where, 'w', sizeof e.where - 1);
    e.where[sizeof e.where - 1] = 0;
    memset(e.what, 'x', sizeof e.what - 1);
    e.what[sizeof e.what - 1] = 0;
    akt_error_wrap(&e, AKT_EIO, "outer", "%s", "wrapped");
    assert_string_equal(e.where, "outer");
    assert_int_equal(strlen(e.what), sizeof e.what - 1);
    assert_memory_equal(e.what, "wrapped: www", 12);
    assert_int_equal(akt_error_wrap(NULL, AKT_EINVAL, "x", NULL), AKT_EINVAL);
}

static void test_arena(void **state)
{
    (void)state;
    struct akt_arena a;
    akt_arena_init(&a, 1024);
    char *p1 = akt_arena_alloc(&a, 100);
    char *p2 = akt_arena_alloc(&a, 100);
    assert_true(((uintptr_t)p1 & 63) == 0 && ((uintptr_t)p2 & 63) == 0);
    assert_true(p2 >= p1 + 100);
    memset(p1, 7, 100);
    char *big = akt_arena_alloc(&a, 5000); /* larger than a block */
    memset(big, 1, 5000);
    assert_int_equal(p1[99], 7); /* earlier memory untouched */
    size_t peak = a.peak;
    akt_arena_reset(&a);
    char *q = akt_arena_alloc(&a, 100);
    assert_ptr_equal(q, p1); /* blocks are reused after a reset */
    assert_int_equal(q[0], 0); /* and handed out zeroed */
    for (int i = 0; i < 20; i++)
        akt_arena_alloc(&a, 700);
    assert_true(a.peak >= peak);
    akt_arena_free(&a);
}

static void test_rng(void **state)
{
    (void)state;
    struct akt_rng a, b, c;
    akt_rng_seed(&a, 42);
    akt_rng_seed(&b, 42);
    akt_rng_seed(&c, 43);
    int differ = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = akt_rng_u64(&a), y = akt_rng_u64(&b), z = akt_rng_u64(&c);
        assert_true(x == y);
        differ += x != z;
    }
    assert_true(differ > 90);
    /* moments of the normal and uniform streams */
    double s = 0, s2 = 0, u = 0;
    int hist[10] = {0};
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        double v = akt_rng_normal(&a);
        s += v;
        s2 += v * v;
        u += akt_rng_uniform(&a);
        hist[akt_rng_below(&a, 10)]++;
    }
    assert_true(fabs(s / n) < 0.01);
    assert_true(fabs(s2 / n - 1) < 0.02);
    assert_true(fabs(u / n - 0.5) < 0.005);
    for (int k = 0; k < 10; k++)
        assert_true(abs(hist[k] - n / 10) < n / 100);
}

static void test_tape_views_and_detach(void **state)
{
    (void)state;
    struct akt_tape t;
    akt_tape_init(&t, 1 << 16);
    struct akt_tensor *x = akt_tensor_newv(&t, 1, 2, 2, 3);
    for (int i = 0; i < 6; i++)
        x->data[i] = (float)i;
    /* a view shares data and grad: gradient through the view reaches x */
    struct akt_tensor *v = akt_view(&t, x, 1, (int[]){6});
    struct akt_tensor *y = akt_mul(&t, v, v);
    struct akt_tensor *d = akt_detach(&t, x);
    assert_null(d->grad);
    struct akt_tensor *z = akt_mul(&t, y, akt_view(&t, d, 1, (int[]){6})); /* x^3 with x const */
    for (int i = 0; i < 6; i++)
        akt_grad(z)[i] = 1;
    akt_backward_run(&t);
    for (int i = 0; i < 6; i++)
        assert_float_equal(x->grad[i], 2.0f * i * i, 1e-5); /* d/dx x^2 * c, c = x */
    /* nothing recorded when recording is off */
    akt_tape_reset(&t);
    t.recording = 0;
    struct akt_tensor *a = akt_tensor_newv(&t, 1, 1, 3);
    struct akt_tensor *b = akt_relu(&t, a);
    assert_int_equal(t.n_nodes, 0);
    assert_null(b->grad);
    akt_tape_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_format),
        cmocka_unit_test(test_error_wrap),
        cmocka_unit_test(test_arena),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_tape_views_and_detach),
    };
    return cmocka_run_group_tests_name("unit_base", tests, NULL, NULL);
}
