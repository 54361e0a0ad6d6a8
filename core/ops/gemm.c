/* akt_gemm: row-major single-precision GEMM behind one function, and the
 * BLAS thread policy. The portable path is OpenBLAS. */
#include "gemm.h"

#include <cblas.h>

#include "akt/base.h"
#include "cpu.h"

/* OpenBLAS threads follow akt_threads_set(), set here where BLAS is called
 * (the base layer knows no BLAS). With the AVX-512 convolutions, OpenBLAS
 * only runs the small linear layers, and a threaded call leaves its workers
 * spinning on sched_yield for many milliseconds, taking a core from the
 * OpenMP kernels that follow (a fifth of a zero-shot iteration was kernel
 * time): 1 thread. The im2col path's GEMMs are the convolutions: threads
 * pay. */
static void blas_threads_sync(void)
{
    static int set = -1;
    int want = akt_have_avx512() ? 1 : akt_threads_get();
    if (want != set) {
        openblas_set_num_threads(want);
        set = want;
    }
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
    blas_threads_sync();
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans,
                transB ? CblasTrans : CblasNoTrans, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
