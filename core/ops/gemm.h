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

/* Direct convolution kernels (conv2d_avx512.c), any kernel size, stride and
 * padding: x [N,Cin,H,W], w [Cout,Cin,kh,kw], y/dy [N,Cout,Ho,Wo].
 * Only call when akt_have_avx512(); not from inside a parallel region.
 * forward writes y (bias may be NULL); dweight accumulates; dinput
 * accumulates or writes (accumulate 0: dx's contents are ignored). */
void akt_conv_forward_avx512(float *y, const float *x, const float *w, const float *bias, int N,
                             int Cin, int H, int W, int Cout, int kh, int kw, int stride, int pad);
void akt_conv_dinput_avx512(float *dx, const float *dy, const float *w, int N, int Cin, int H,
                            int W, int Cout, int kh, int kw, int stride, int pad, int accumulate);
void akt_conv_dweight_avx512(float *dw, const float *dy, const float *x, int N, int Cin, int H,
                             int W, int Cout, int kh, int kw, int stride, int pad);

#endif
