/* akt_gemm: row-major single-precision GEMM behind one function, plus the
 * run-time AVX-512 switch and per-thread scratch buffers used by the conv
 * kernels. The portable path is OpenBLAS (threads set by akt_threads_set). */
#include "gemm.h"

#include "akt/base.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

int akt_have_avx512(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (akt_env_flag("AKT_NO_AVX512"))
        return 0;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

#define N_SLOTS 4
static _Thread_local float *g_scratch[N_SLOTS];
static _Thread_local size_t g_scratch_cap[N_SLOTS];

float *akt_scratch(int slot, size_t n_floats)
{
    AKT_ASSERT(slot >= 0 && slot < N_SLOTS);
    if (n_floats > g_scratch_cap[slot]) {
        free(g_scratch[slot]);
        /* round up so slowly growing sizes do not reallocate every call */
        size_t cap = n_floats + n_floats / 4 + 1024;
        void *p = NULL;
        AKT_ASSERT(posix_memalign(&p, 64, cap * sizeof(float)) == 0);
        g_scratch[slot] = p;
        g_scratch_cap[slot] = cap;
    }
    return g_scratch[slot];
}

void akt_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc)
{
    AKT_ASSERT(M >= 0 && N >= 0 && K >= 0);
    if (M == 0 || N == 0)
        return;
    if (K == 0) {
        /* BLAS semantics: C = beta*C (beta 0 clears, even NaN) */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++)
                C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
