/* akt_gemm against a naive double-precision triple loop: many shapes (odd
 * sizes, tiny and larger than a cache block), all four transpose
 * combinations, padded leading dimensions, alpha/beta; on both kernel paths
 * (AKT_NO_AVX512=1 forces the portable one) and with 1 and 2 threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/base.h"
#include "../core/ops/cpu.h"
#include "../core/ops/gemm.h"

static void fill(float *p, size_t n, struct akt_rng *r)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)akt_rng_uniform(r) * 2 - 1;
}

/* C = alpha op(A) op(B) + beta C; returns max error relative to the scale
 * of the terms (sum |a||b|), so the bound does not depend on K. */
static double check_one(int ta, int tb, int M, int N, int K, float alpha, float beta, int pad,
                        unsigned seed, int repeat_bits)
{
    struct akt_rng rng;
    akt_rng_seed(&rng, seed);
    int arows = ta ? K : M, acols = ta ? M : K, brows = tb ? N : K, bcols = tb ? K : N;
    int lda = acols + pad, ldb = bcols + pad, ldc = N + pad;
    float *A = malloc(sizeof(float) * ((size_t)arows * lda + 1));
    float *B = malloc(sizeof(float) * ((size_t)brows * ldb + 1));
    float *C = malloc(sizeof(float) * ((size_t)M * ldc + 1));
    float *C0 = malloc(sizeof(float) * ((size_t)M * ldc + 1));
    fill(A, (size_t)arows * lda, &rng);
    fill(B, (size_t)brows * ldb, &rng);
    fill(C0, (size_t)M * ldc, &rng);
    memcpy(C, C0, sizeof(float) * (size_t)M * ldc);
    akt_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < ldc; j++) {
            size_t ci = (size_t)i * ldc + j;
            if (j >= N) { /* padding columns must be untouched */
                if (C[ci] != C0[ci])
                    worst = INFINITY;
                continue;
            }
            double acc = 0, mag = 0;
            for (int k = 0; k < K; k++) {
                double a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                double b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                acc += a * b;
                mag += fabs(a * b);
            }
            double ref = alpha * acc + (beta == 0 ? 0 : beta * (double)C0[ci]);
            double scale = fabs(alpha) * mag + fabs(beta * C0[ci]) + 1e-30;
            double e = fabs(C[ci] - ref) / scale;
            if (e > worst)
                worst = e;
        }
    if (repeat_bits) {
        float *C2 = malloc(sizeof(float) * ((size_t)M * ldc + 1));
        memcpy(C2, C0, sizeof(float) * (size_t)M * ldc);
        akt_gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C2, ldc);
        if (memcmp(C, C2, sizeof(float) * (size_t)M * ldc) != 0)
            worst = INFINITY;
        free(C2);
    }
    free(A), free(B), free(C), free(C0);
    return worst;
}

static const int dims[] = {1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 47, 64, 65, 100};
#define ND (int)(sizeof dims / sizeof dims[0])

static void sweep(void)
{
    int fails = 0;
    unsigned seed = 1;
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int mi = 0; mi < ND; mi += 1)
                for (int ni = 0; ni < ND; ni += 2)
                    for (int ki = 0; ki < ND; ki += 3) {
                        int M = dims[mi], N = dims[(ni + mi) % ND], K = dims[(ki + ni) % ND];
                        float alpha = (seed % 3 == 0) ? 1.0f : -0.75f;
                        float beta = (seed % 4 == 0) ? 0.0f : (seed % 4 == 1 ? 1.0f : 0.5f);
                        int pad = (int)(seed % 3);
                        double e = check_one(ta, tb, M, N, K, alpha, beta, pad, seed++, 0);
                        if (!(e < 1e-5)) {
                            if (fails++ < 10)
                                fprintf(stderr, "ta %d tb %d M %d N %d K %d alpha %g beta %g pad %d: err %g\n",
                                        ta, tb, M, N, K, alpha, beta, pad, e);
                        }
                    }
    assert_int_equal(fails, 0);
}

/* Larger shapes: the im2col GEMMs of ResNet-20 and the generator, and sizes
 * that cross cache blocks; repeated calls must give the same bits. */
static void big(void)
{
    static const int s[][5] = {
        /* ta tb M N K */
        {0, 0, 16, 1024, 144},  {1, 0, 144, 1024, 16}, {0, 1, 16, 144, 1024},
        {0, 0, 32, 256, 288},   {1, 0, 288, 256, 32},  {0, 1, 32, 288, 256},
        {0, 0, 64, 64, 576},    {1, 0, 576, 64, 64},   {0, 1, 64, 576, 64},
        {0, 0, 64, 1024, 1152}, {0, 1, 128, 8192, 100}, {0, 0, 300, 517, 771},
        {1, 1, 257, 129, 1031}, {0, 1, 10, 64, 128},    {1, 0, 64, 10, 128},
    };
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++) {
        double e = check_one(s[i][0], s[i][1], s[i][2], s[i][3], s[i][4], 1.0f, (i % 2) ? 1.0f : 0.0f,
                             (int)(i % 2), 1000 + (unsigned)i, 1);
        if (!(e < 1e-5))
            fprintf(stderr, "big %zu: err %g\n", i, e);
        assert_true(e < 1e-5);
    }
}

static void test_default_1thread(void **state)
{
    (void)state;
    akt_threads_set(1);
    sweep();
    big();
}

static void test_default_2threads(void **state)
{
    (void)state;
    akt_threads_set(2);
    sweep();
    big();
    akt_threads_set(1);
}

static void test_portable(void **state)
{
    (void)state;
    setenv("AKT_NO_AVX512", "1", 1);
    assert_int_equal(akt_have_avx512(), 0);
    akt_threads_set(2);
    sweep();
    big();
    akt_threads_set(1);
    unsetenv("AKT_NO_AVX512");
}

/* Both paths agree with each other (each is checked against the reference
 * above; this catches a dispatch that silently runs one path twice). */
static void test_paths_agree(void **state)
{
    (void)state;
    int M = 37, N = 300, K = 129;
    struct akt_rng rng;
    akt_rng_seed(&rng, 7);
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * K * N);
    float *C1 = calloc((size_t)M * N, sizeof(float)), *C2 = calloc((size_t)M * N, sizeof(float));
    fill(A, (size_t)M * K, &rng);
    fill(B, (size_t)K * N, &rng);
    akt_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C1, N);
    setenv("AKT_NO_AVX512", "1", 1);
    akt_gemm(0, 0, M, N, K, 1.0f, A, K, B, N, 0.0f, C2, N);
    unsetenv("AKT_NO_AVX512");
    double e = 0;
    for (int i = 0; i < M * N; i++)
        e = fmax(e, fabs(C1[i] - C2[i]));
    assert_true(e < 1e-4);
    free(A), free(B), free(C1), free(C2);
}

static void test_k_zero(void **state)
{
    (void)state;
    float C[6] = {1, 2, 3, 4, 5, 6}, A[1] = {0}, B[1] = {0};
    akt_gemm(0, 0, 2, 3, 0, 1.0f, A, 1, B, 3, 0.5f, C, 3);
    assert_true(C[0] == 0.5f && C[5] == 3.0f);
    akt_gemm(0, 0, 2, 3, 0, 1.0f, A, 1, B, 3, 0.0f, C, 3);
    assert_true(C[0] == 0.0f && C[5] == 0.0f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_1thread),
        cmocka_unit_test(test_default_2threads),
        cmocka_unit_test(test_portable),
        cmocka_unit_test(test_paths_agree),
        cmocka_unit_test(test_k_zero),
    };
    return cmocka_run_group_tests_name("unit_gemm", tests, NULL, NULL);
}
