/* Internal GEMM and convolution kernels (not installed).
 *
 * akt_gemm is the one entry point every op uses for dense matrix products:
 * row-major C = alpha * op(A) op(B) + beta * C, op(X) = X or X^T. It uses
 * akt_threads_get() threads (static partition of C, no split of K), so results
 * are bit-identical for a given thread count. Must not be called from inside
 * an OpenMP parallel region.
 *
 * AVX-512 kernels live in *_avx512.c files compiled with function-level
 * target attributes; akt_have_avx512() decides at run time (CPU support, and
 * the environment variable AKT_NO_AVX512=1 forces the portable path, so tests
 * can compare both). */
#ifndef AKT_OPS_GEMM_H
#define AKT_OPS_GEMM_H

#include <stddef.h>

void akt_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);

/* 1 when the AVX-512 kernels may run: the CPU has avx512f/bw/vl and fma and
 * AKT_NO_AVX512 is unset, empty or "0". Re-read on every call (cheap), so a
 * test can flip it with setenv(). */
int akt_have_avx512(void);

/* Scratch memory owned by the calling thread, 64-byte aligned, grown on
 * demand and kept (a conv runs every step with the same sizes, so this avoids
 * page faults from fresh allocations). slot 0..3 are independent buffers.
 * Contents are undefined. */
float *akt_scratch(int slot, size_t n_floats);

#endif
