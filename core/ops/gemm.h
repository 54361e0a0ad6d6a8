/* Internal GEMM (not installed).
 *
 * akt_gemm is the one entry point every op uses for dense matrix products:
 * row-major C = alpha * op(A) op(B) + beta * C, op(X) = X or X^T. It uses
 * akt_threads_get() threads (static partition of C, no split of K), so results
 * are bit-identical for a given thread count; the BLAS thread policy lives
 * in gemm.c. Must not be called from inside an OpenMP parallel region. */
#ifndef AKT_OPS_GEMM_H
#define AKT_OPS_GEMM_H

void akt_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

#endif
