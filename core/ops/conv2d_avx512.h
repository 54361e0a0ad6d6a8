/* Direct AVX-512 convolution kernels (conv2d_avx512.c; not installed). */
#ifndef AKT_OPS_CONV2D_AVX512_H
#define AKT_OPS_CONV2D_AVX512_H

/* Any kernel size, stride and padding: x [N,Cin,H,W], w [Cout,Cin,kh,kw],
 * y/dy [N,Cout,Ho,Wo]. Only call when akt_have_avx512() (cpu.h); not from
 * inside a parallel region. forward writes y (bias may be NULL); dweight
 * accumulates; dinput accumulates or writes (accumulate 0: dx's contents are
 * ignored). */
void akt_conv_forward_avx512(float *y, const float *x, const float *w, const float *bias, int N,
                             int Cin, int H, int W, int Cout, int kh, int kw, int stride, int pad);
void akt_conv_dinput_avx512(float *dx, const float *dy, const float *w, int N, int Cin, int H,
                            int W, int Cout, int kh, int kw, int stride, int pad, int accumulate);
void akt_conv_dweight_avx512(float *dw, const float *dy, const float *x, int N, int Cin, int H,
                             int W, int Cout, int kh, int kw, int stride, int pad);

#endif
