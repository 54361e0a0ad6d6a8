/* AVX-512 direct convolution kernels (forward, input gradient, weight
 * gradient), compiled with function-level target attributes and only called
 * when akt_have_avx512() says so.
 *
 * Layout trick: each image is copied, zero-padded, to planes of width
 * pw = W + 2*pad. The output is computed on the same row width: output
 * position q = oy*pw + ox (ox < Wo valid, the rest discarded), so tap
 * (ky,kx) of input channel ci reads xpad[ci][q + ky*pw + kx] -- one
 * contiguous stream per tap. The convolution becomes a 1-D one: a GEMM whose
 * B operand is read straight from the padded image with unaligned loads
 * (no im2col, no packing of B). Cost: (pw - Wo)/pw wasted columns. Stride
 * s > 1 splits the padded image into s x s phase planes first (pgeom_make),
 * which makes every tap a contiguous stream again.
 *
 *   forward  y[co][q]  = sum_k wp[k][co] * xpad[ci(k)][q + off(k)]
 *            tile: 8 output channels x 48 positions (24 zmm accumulators)
 *   dx       stride 1: the same kernel on dy padded by kh-1-pad with the
 *            weights transposed and flipped (a stride-1 conv's adjoint is a
 *            conv); stride > 1: dcol = w^T dy with the same tile, then rows
 *            added into the phase planes and scattered back
 *   dw       dw[co][k] = sum_q dyg[co][q] * xpad[ci(k)][q + off(k)], dyg = dy on
 *            the pw grid with zero columns; tile 4 channels x 6 taps of
 *            16-lane partial sums, kept as vectors per thread and summed
 *            across lanes once at the end (or, for large Cout*K, summed
 *            after each group of images).
 *
 * Threads: images are split into fixed contiguous ranges (one per thread);
 * dw partials per thread are added in thread order, so results are
 * bit-identical for a given thread count. */
#include "conv2d_avx512.h"
#include "cpu.h"
#include "scratch.h"

#include "akt/base.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,fma")))

/* Keeps a loaded vector in a register: without it, some -march settings
 * fold the load into each FMA that uses it, and an unaligned load repeated
 * per FMA (each one split over two cache lines) halved dw_tile's speed. */
#define IN_REG(v) __asm__("" : "+v"(v))

#define MR 8   /* output channels per forward tile */
#define VL 16  /* floats per zmm */

struct pgeom {
    int C, H, W, pad, s; /* input planes, padding, stride */
    int kh, kw;
    int npy, npx;        /* phases built per channel: min(s,kh) x min(s,kw) */
    int pws, phs;        /* phase plane width, height */
    int Ho, Wo;
    int Q, Qr;           /* Ho*pws output grid, rounded up to VL */
    size_t L;            /* floats per phase plane */
    size_t nbuf;         /* floats per padded image, slack for tile overrun */
};

/* Stride s: the padded image is split into s x s phase planes
 * P[c][py][px][i][j] = xpad[c][i*s+py][j*s+px], so tap (ky,kx) of output
 * (oy,ox) is P[c][ky%s][kx%s][oy + ky/s][ox + kx/s]: again one contiguous
 * stream per tap on a grid of width pws. Stride 1 is the single phase. */
static struct pgeom pgeom_make(int C, int H, int W, int kh, int kw, int pad, int s)
{
    struct pgeom g;
    g.C = C, g.H = H, g.W = W, g.pad = pad, g.s = s, g.kh = kh, g.kw = kw;
    int pw = W + 2 * pad, ph = H + 2 * pad;
    g.npy = s < kh ? s : kh;
    g.npx = s < kw ? s : kw;
    g.pws = (pw + s - 1) / s;
    g.phs = (ph + s - 1) / s;
    g.Ho = (ph - kh) / s + 1;
    g.Wo = (pw - kw) / s + 1;
    g.Q = g.Ho * g.pws;
    g.Qr = (g.Q + VL - 1) / VL * VL;
    g.L = (size_t)g.phs * g.pws;
    /* tiles round q up to whole vectors; reads of discarded positions may
     * run past the last plane */
    g.nbuf = (size_t)C * g.npy * g.npx * g.L + 4 * VL + 2 * (size_t)g.pws + 2 * (size_t)kw;
    return g;
}

static size_t plane_of(const struct pgeom *g, int c, int py, int px)
{
    return (((size_t)c * g->npy + py) * g->npx + px) * g->L;
}

/* One image [C][H][W] into the padded phase layout (borders, slack zero). */
static void pad_image(float *dst, const float *src, const struct pgeom *g)
{
    int p = g->pad, s = g->s;
    size_t planes = (size_t)g->C * g->npy * g->npx * g->L;
    memset(dst + planes, 0, (g->nbuf - planes) * sizeof(float));
    if (s == 1) {
        /* write every float once: border zeros and rows */
        int pw = g->pws;
        for (int c = 0; c < g->C; c++) {
            float *d = dst + plane_of(g, c, 0, 0);
            const float *sc = src + (size_t)c * g->H * g->W;
            memset(d, 0, ((size_t)p * pw + p) * sizeof(float));
            for (int y = 0; y < g->H; y++) {
                float *dr = d + (size_t)(y + p) * pw + p;
                const float *sr = sc + (size_t)y * g->W;
                /* a loop, not memcpy: rows are 8-32 floats, a call each
                 * cost more than the copy */
                for (int x = 0; x < g->W; x++)
                    dr[x] = sr[x];
                /* right pad of this row and left pad of the next */
                for (int x = g->W; x < g->W + 2 * p; x++)
                    dr[x] = 0.0f;
            }
            memset(d + (size_t)(g->H + p) * pw + p, 0, ((size_t)p * pw - p) * sizeof(float));
        }
        return;
    }
    /* every float of every phase plane written once: zero rows above and
     * below the image, zero columns left and right of it, the rest a
     * strided copy (a constant stride 2 vectorises) */
    for (int c = 0; c < g->C; c++) {
        const float *sc = src + (size_t)c * g->H * g->W;
        for (int py = 0; py < g->npy; py++)
            for (int px = 0; px < g->npx; px++) {
                float *d = dst + plane_of(g, c, py, px);
                /* phase column j holds padded column j*s + px, i.e. source
                 * column j*s + px - p: valid for j in [j0, j1) */
                int j0 = 0;
                while (j0 < g->pws && j0 * s + px - p < 0)
                    j0++;
                int j1 = j0;
                while (j1 < g->pws && j1 * s + px - p < g->W)
                    j1++;
                int x0 = j0 * s + px - p;
                for (int i = 0; i < g->phs; i++) {
                    float *dr = d + (size_t)i * g->pws;
                    int y = i * s + py - p;
                    if (y < 0 || y >= g->H) {
                        memset(dr, 0, (size_t)g->pws * sizeof(float));
                        continue;
                    }
                    const float *sr = sc + (size_t)y * g->W + x0;
                    for (int j = 0; j < j0; j++)
                        dr[j] = 0.0f;
                    if (s == 2)
                        for (int j = 0; j < j1 - j0; j++)
                            dr[j0 + j] = sr[2 * j];
                    else
                        for (int j = 0; j < j1 - j0; j++)
                            dr[j0 + j] = sr[(size_t)j * s];
                    for (int j = j1; j < g->pws; j++)
                        dr[j] = 0.0f;
                }
            }
    }
}

static void tap_offsets(int *off, const struct pgeom *g)
{
    int s = g->s;
    for (int i = 0; i < g->C; i++)
        for (int ky = 0; ky < g->kh; ky++)
            for (int kx = 0; kx < g->kw; kx++)
                off[(i * g->kh + ky) * g->kw + kx] =
                    (int)(plane_of(g, i, ky % s, kx % s) + (size_t)(ky / s) * g->pws + kx / s);
}

/* Thread count and this thread's image range [*n0, *n1). */
static int nthreads_for(int N)
{
    int T = akt_threads_get();
    return T < 1 ? 1 : (T > N ? N : T);
}

static void my_range(int N, int T, int tid, int *n0, int *n1)
{
    *n0 = (int)((int64_t)N * tid / T);
    *n1 = (int)((int64_t)N * (tid + 1) / T);
}

/* ------------------------------------------------------------ forward --- */

/* acc[r][v] += wp[k][r] * x[off[k] + v*VL] for k < K; then stored to
 * out + r*ostride + v*VL. NV vectors (1..3) per row. */
static inline __attribute__((always_inline)) AVX512 void
fwd_tile(const float *xb, const int *off, int K, const float *wp, float *out, size_t ostride,
         const int NV)
{
    __m512 acc[MR][3];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < 3; v++)
            acc[r][v] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        const float *s = xb + off[k];
        __m512 b0 = _mm512_loadu_ps(s);
        __m512 b1 = NV > 1 ? _mm512_loadu_ps(s + VL) : b0;
        __m512 b2 = NV > 2 ? _mm512_loadu_ps(s + 2 * VL) : b0;
        IN_REG(b0);
        IN_REG(b1);
        IN_REG(b2);
        const float *a = wp + (size_t)k * MR;
#pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            __m512 ar = _mm512_set1_ps(a[r]);
            acc[r][0] = _mm512_fmadd_ps(ar, b0, acc[r][0]);
            if (NV > 1)
                acc[r][1] = _mm512_fmadd_ps(ar, b1, acc[r][1]);
            if (NV > 2)
                acc[r][2] = _mm512_fmadd_ps(ar, b2, acc[r][2]);
        }
    }
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < NV; v++)
            _mm512_storeu_ps(out + r * ostride + v * VL, acc[r][v]);
}

static AVX512 void fwd_tile3(const float *xb, const int *off, int K, const float *wp, float *out,
                             size_t os)
{
    fwd_tile(xb, off, K, wp, out, os, 3);
}
static AVX512 void fwd_tile2(const float *xb, const int *off, int K, const float *wp, float *out,
                             size_t os)
{
    fwd_tile(xb, off, K, wp, out, os, 2);
}
static AVX512 void fwd_tile1(const float *xb, const int *off, int K, const float *wp, float *out,
                             size_t os)
{
    fwd_tile(xb, off, K, wp, out, os, 1);
}

/* wp[ob][k][r] = weight of output o = ob*MR + r, input i, tap (ky,kx),
 * k = (i*kh + ky)*kw + kx; zero for o >= O. flip: the adjoint conv, whose
 * weight is w[i][o][kh-1-ky][kw-1-kx] of the original w [I][O][kh][kw]. */
static void pack_weights(float *wp, const float *w, int O, int I, int kh, int kw, int flip)
{
    int K = I * kh * kw, OB = (O + MR - 1) / MR;
    for (int ob = 0; ob < OB; ob++)
        for (int i = 0; i < I; i++)
            for (int ky = 0; ky < kh; ky++)
                for (int kx = 0; kx < kw; kx++) {
                    int k = (i * kh + ky) * kw + kx;
                    float *d = wp + ((size_t)ob * K + k) * MR;
                    for (int r = 0; r < MR; r++) {
                        int o = ob * MR + r;
                        float v = 0.0f;
                        if (o < O)
                            v = flip ? w[(((size_t)i * O + o) * kh + (kh - 1 - ky)) * kw + (kw - 1 - kx)]
                                     : w[(((size_t)o * I + i) * kh + ky) * kw + kx];
                        d[r] = v;
                    }
                }
}


/* One image: out[o][oy][ox] (+)= conv + bias, from the padded image xp. */
static AVX512 void fwd_image(float *out, const float *xp, const float *wp, const int *off,
                             const float *bias, int O, const struct pgeom *g, float *yg,
                             int accumulate)
{
    int K = g->C * g->kh * g->kw, OB = (O + MR - 1) / MR;
    int T3 = 3 * VL;
    size_t ys = (size_t)g->Qr + 2 * VL; /* grid row stride, room for a 3-vector tail */
    for (int ob = 0; ob < OB; ob++) {
        const float *w = wp + (size_t)ob * K * MR;
        float *yo = yg + (size_t)ob * MR * ys;
        int q = 0;
        for (; q + T3 <= g->Qr; q += T3)
            fwd_tile3(xp + q, off, K, w, yo + q, ys);
        int rest = (g->Qr - q) / VL;
        if (rest == 2)
            fwd_tile2(xp + q, off, K, w, yo + q, ys);
        else if (rest == 1)
            fwd_tile1(xp + q, off, K, w, yo + q, ys);
    }
    /* compact the valid columns into NCHW, adding bias */
    for (int o = 0; o < O; o++) {
        const float *src = yg + (size_t)o * ys;
        float *dst = out + (size_t)o * g->Ho * g->Wo;
        float b = bias ? bias[o] : 0.0f;
        for (int y = 0; y < g->Ho; y++) {
            const float *s = src + (size_t)y * g->pws;
            float *d = dst + (size_t)y * g->Wo;
            if (accumulate)
                for (int x = 0; x < g->Wo; x++)
                    d[x] += s[x] + b;
            else
                for (int x = 0; x < g->Wo; x++)
                    d[x] = s[x] + b;
        }
    }
}

/* in [N][I][H][W] -> out [N][O][Ho][Wo]; wp packed (pack_weights). */
static void conv_direct(float *out, const float *in, const float *wp, const float *bias, int N,
                        int I, int H, int W, int O, int kh, int kw, int pad, int stride,
                        int accumulate)
{
    struct pgeom g = pgeom_make(I, H, W, kh, kw, pad, stride);
    int K = I * kh * kw, OB = (O + MR - 1) / MR;
    int *off = (int *)akt_scratch(1, (size_t)K);
    tap_offsets(off, &g);
    size_t ys = (size_t)g.Qr + 2 * VL;
    int T = nthreads_for(N);
#ifdef _OPENMP
#pragma omp parallel num_threads(T) if (T > 1)
#endif
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        int n0, n1;
        my_range(N, T, tid, &n0, &n1);
        float *xp = akt_scratch(2, g.nbuf);
        float *yg = akt_scratch(3, (size_t)OB * MR * ys);
        for (int n = n0; n < n1; n++) {
            pad_image(xp, in + (size_t)n * I * H * W, &g);
            fwd_image(out + (size_t)n * O * g.Ho * g.Wo, xp, wp, off, bias, O, &g, yg, accumulate);
        }
    }
}

void akt_conv_forward_avx512(float *y, const float *x, const float *w, const float *bias, int N,
                             int Cin, int H, int W, int Cout, int kh, int kw, int stride, int pad)
{
    int K = Cin * kh * kw, OB = (Cout + MR - 1) / MR;
    float *wp = akt_scratch(0, (size_t)OB * K * MR);
    pack_weights(wp, w, Cout, Cin, kh, kw, 0);
    conv_direct(y, x, wp, bias, N, Cin, H, W, Cout, kh, kw, pad, stride, 0);
}

static void grid_image(float *dst, const float *dy, int O, const struct pgeom *g, size_t dys);

/* Stride 2, even width: each row of dx (+)= its two phases interleaved,
 * x = 2m + r taking phase (r+p)%2 at column m + (r+p)/2; rows and columns
 * of phases the kernel never reads (a 1x1 kernel) get zeros. One
 * vectorisable pass that writes every element (accumulate 0) or adds. */
static void phases_to_image_s2(float *dx, const float *dxp, const struct pgeom *g, int accumulate)
{
    int p = g->pad, W2 = g->W / 2;
    for (int c = 0; c < g->C; c++)
        for (int y = 0; y < g->H; y++) {
            float *d = dx + ((size_t)c * g->H + y) * g->W;
            int py = (y + p) & 1;
            size_t row = (size_t)((y + p) >> 1) * g->pws;
            const float *src[2] = {NULL, NULL};
            for (int r = 0; r < 2; r++) {
                int px = (r + p) & 1;
                if (py < g->npy && px < g->npx)
                    src[r] = dxp + plane_of(g, c, py, px) + row + ((r + p) >> 1);
            }
            const float *e = src[0], *o = src[1];
            if (e && o) {
                if (accumulate)
                    for (int m = 0; m < W2; m++) {
                        d[2 * m] += e[m];
                        d[2 * m + 1] += o[m];
                    }
                else
                    for (int m = 0; m < W2; m++) {
                        d[2 * m] = e[m];
                        d[2 * m + 1] = o[m];
                    }
            } else if (e || o) {
                const float *v = e ? e : o;
                int r = e ? 0 : 1;
                if (accumulate)
                    for (int m = 0; m < W2; m++)
                        d[2 * m + r] += v[m];
                else
                    for (int m = 0; m < W2; m++) {
                        d[2 * m + r] = v[m];
                        d[2 * m + 1 - r] = 0.0f;
                    }
            } else if (!accumulate) {
                memset(d, 0, (size_t)g->W * sizeof(float));
            }
        }
}

/* One image of dx for any stride: dcol[k][q] = sum_o w[o][k] dyg[o][q] with
 * the forward tile (the "taps" are the dy rows), then each row k is added
 * into the phase layout at its tap offset (dyg is zero off the valid grid, so
 * whole rows can be added), then the phases are scattered into dx. */
static AVX512 void dinput_image(float *dx, const float *dy, const float *wpT, const int *offo,
                                const int *off, int O, const struct pgeom *g, float *dyg,
                                float *dxp, float *dcol, int accumulate)
{
    int s2 = g->s == 2 && g->W % 2 == 0; /* phases_to_image_s2 writes every element */
    if (!accumulate && !s2) /* the phases scattered back below add into dx */
        memset(dx, 0, (size_t)g->C * g->H * g->W * sizeof(float));
    int K = g->C * g->kh * g->kw, KB = (K + MR - 1) / MR;
    size_t dys = (size_t)g->Qr, ys = (size_t)g->Qr + 2 * VL;
    grid_image(dyg, dy, O, g, dys);
    for (int kb = 0; kb < KB; kb++) {
        const float *w = wpT + (size_t)kb * O * MR;
        float *d = dcol + (size_t)kb * MR * ys;
        int q = 0;
        for (; q + 3 * VL <= g->Qr; q += 3 * VL)
            fwd_tile3(dyg + q, offo, O, w, d + q, ys);
        int rest = (g->Qr - q) / VL;
        if (rest == 2)
            fwd_tile2(dyg + q, offo, O, w, d + q, ys);
        else if (rest == 1)
            fwd_tile1(dyg + q, offo, O, w, d + q, ys);
    }
    memset(dxp, 0, g->nbuf * sizeof(float));
    for (int k = 0; k < K; k++) {
        float *dst = dxp + off[k];
        const float *src = dcol + (size_t)k * ys;
        for (int q = 0; q < g->Qr; q++)
            dst[q] += src[q];
    }
    if (s2) {
        phases_to_image_s2(dx, dxp, g, accumulate);
        return;
    }
    /* scatter the phases back: input pixel (y,x) is phase ((y+p)%s, (x+p)%s)
     * at ((y+p)/s, (x+p)/s); phases a kernel smaller than the stride never
     * reads get no gradient */
    int p = g->pad, s = g->s;
    for (int c = 0; c < g->C; c++)
        for (int py = 0; py < g->npy; py++)
            for (int px = 0; px < g->npx; px++) {
                const float *ph = dxp + plane_of(g, c, py, px);
                int y0 = ((py - p) % s + s) % s, x0 = ((px - p) % s + s) % s;
                for (int y = y0; y < g->H; y += s) {
                    const float *src = ph + (size_t)((y + p) / s) * g->pws + (x0 + p) / s;
                    float *d = dx + ((size_t)c * g->H + y) * g->W;
                    for (int x = x0, j = 0; x < g->W; x += s, j++)
                        d[x] += src[j];
                }
            }
}

static void dinput_strided(float *dx, const float *dy, const float *w, int N, int Cin, int H,
                           int W, int Cout, int kh, int kw, int pad, int stride, int accumulate)
{
    struct pgeom g = pgeom_make(Cin, H, W, kh, kw, pad, stride);
    int K = Cin * kh * kw, KB = (K + MR - 1) / MR;
    float *wpT = akt_scratch(0, (size_t)KB * Cout * MR);
    /* w^T as a 1x1 conv with K outputs and Cout inputs */
    pack_weights(wpT, w, K, Cout, 1, 1, 1);
    int *off = (int *)akt_scratch(1, (size_t)K + Cout);
    int *offo = off + K;
    tap_offsets(off, &g);
    size_t dys = (size_t)g.Qr, ys = (size_t)g.Qr + 2 * VL;
    for (int o = 0; o < Cout; o++)
        offo[o] = (int)(o * dys);
    size_t nxp = (g.nbuf + VL - 1) / VL * VL;
    int T = nthreads_for(N);
#ifdef _OPENMP
#pragma omp parallel num_threads(T) if (T > 1)
#endif
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        int n0, n1;
        my_range(N, T, tid, &n0, &n1);
        float *dyg = akt_scratch(2, (size_t)Cout * dys + 4 * VL + nxp);
        float *dxp = dyg + (size_t)Cout * dys + 4 * VL;
        float *dcol = akt_scratch(3, (size_t)KB * MR * ys);
        for (int n = n0; n < n1; n++)
            dinput_image(dx + (size_t)n * Cin * H * W, dy + (size_t)n * Cout * g.Ho * g.Wo, wpT,
                         offo, off, Cout, &g, dyg, dxp, dcol, accumulate);
    }
}

void akt_conv_dinput_avx512(float *dx, const float *dy, const float *w, int N, int Cin, int H,
                            int W, int Cout, int kh, int kw, int stride, int pad, int accumulate)
{
    if (stride != 1 || kh != kw || pad > kh - 1) {
        dinput_strided(dx, dy, w, N, Cin, H, W, Cout, kh, kw, pad, stride, accumulate);
        return;
    }
    int Ho = H + 2 * pad - kh + 1, Wo = W + 2 * pad - kw + 1;
    int K = Cout * kh * kw, OB = (Cin + MR - 1) / MR;
    float *wp = akt_scratch(0, (size_t)OB * K * MR);
    pack_weights(wp, w, Cin, Cout, kh, kw, 1);
    /* stride 1: the adjoint is the correlation of dy, padded by kh-1-pad,
     * with the transposed, flipped kernel */
    conv_direct(dx, dy, wp, NULL, N, Cout, Ho, Wo, Cin, kh, kw, kh - 1 - pad, 1, accumulate);
}

/* ------------------------------------------------------- weight grad --- */

#define DR 4 /* output channels per dw tile */
#define DK 6 /* taps per dw tile */

/* acc[r][j] += dy[r][q] * x[off[j] + q] over q in [0, Qr) step VL, for
 * nimg images; then added to dw. vec 1: dw holds 16-lane vectors and the
 * accumulators are added as they are (a horizontal sum per accumulator and
 * image group cost a quarter of the tile's time on 32x32 maps; the lanes
 * are summed once at the end); vec 0: horizontal sums added to dw (for
 * large Cout*K, where the vectors would not stay in cache). */
static AVX512 void dw_tile(float *dwp, size_t dw_ld, const float *const *dyg, size_t dys,
                           const float *const *xp, const int *off, int nr, int nk, int Qr,
                           int nimg, int vec)
{
    __m512 acc[DR][DK];
    for (int r = 0; r < DR; r++)
        for (int j = 0; j < DK; j++)
            acc[r][j] = _mm512_setzero_ps();
    int o[DK];
    for (int j = 0; j < DK; j++)
        o[j] = off[j < nk ? j : nk - 1]; /* unused lanes repeat a valid tap */
    for (int m = 0; m < nimg; m++) {
        const float *d0 = dyg[m], *x = xp[m];
        const float *d1 = d0 + (nr > 1 ? dys : 0), *d2 = d0 + (nr > 2 ? 2 * dys : 0),
                    *d3 = d0 + (nr > 3 ? 3 * dys : 0);
        for (int q = 0; q < Qr; q += VL) {
            __m512 a0 = _mm512_load_ps(d0 + q), a1 = _mm512_load_ps(d1 + q);
            __m512 a2 = _mm512_load_ps(d2 + q), a3 = _mm512_load_ps(d3 + q);
#pragma GCC unroll 6
            for (int j = 0; j < DK; j++) {
                __m512 b = _mm512_loadu_ps(x + o[j] + q);
                IN_REG(b);
                acc[0][j] = _mm512_fmadd_ps(a0, b, acc[0][j]);
                acc[1][j] = _mm512_fmadd_ps(a1, b, acc[1][j]);
                acc[2][j] = _mm512_fmadd_ps(a2, b, acc[2][j]);
                acc[3][j] = _mm512_fmadd_ps(a3, b, acc[3][j]);
            }
        }
    }
    if (vec) {
        for (int r = 0; r < nr; r++)
            for (int j = 0; j < nk; j++) {
                float *d = dwp + (r * dw_ld + j) * VL;
                _mm512_store_ps(d, _mm512_add_ps(_mm512_load_ps(d), acc[r][j]));
            }
        return;
    }
    for (int r = 0; r < nr; r++)
        for (int j = 0; j < nk; j++)
            dwp[r * dw_ld + j] += _mm512_reduce_add_ps(acc[r][j]);
}

/* dst[i] = the 16 lanes of src16[i] summed in lane order */
static AVX512 void lanes_sum(float *dst, const float *src16, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const float *v = src16 + i * VL;
        float s = 0.0f;
        for (int l = 0; l < VL; l++)
            s += v[l];
        dst[i] = s;
    }
}

/* dy [O][Ho][Wo] onto the pws grid (zero columns ox >= Wo, zero tail). */
static void grid_image(float *dst, const float *dy, int O, const struct pgeom *g, size_t dys)
{
    for (int o = 0; o < O; o++) {
        float *d = dst + (size_t)o * dys;
        const float *s = dy + (size_t)o * g->Ho * g->Wo;
        for (int y = 0; y < g->Ho; y++) {
            float *dr = d + (size_t)y * g->pws;
            const float *sr = s + (size_t)y * g->Wo;
            for (int x = 0; x < g->Wo; x++) /* short rows: no memcpy call */
                dr[x] = sr[x];
            for (int x = g->Wo; x < g->pws; x++)
                dr[x] = 0.0f;
        }
        for (size_t q = (size_t)g->Q; q < dys; q++)
            d[q] = 0.0f;
    }
}

#define MAX_GROUP 64

void akt_conv_dweight_avx512(float *dw, const float *dy, const float *x, int N, int Cin, int H,
                             int W, int Cout, int kh, int kw, int stride, int pad)
{
    struct pgeom g = pgeom_make(Cin, H, W, kh, kw, pad, stride);
    int K = Cin * kh * kw;
    size_t dys = (size_t)g.Qr; /* multiple of VL: aligned rows */
    size_t dyimg = (size_t)Cout * dys;
    size_t ximg = (g.nbuf + VL - 1) / VL * VL;
    /* images per group: enough positions per tile to amortise the tile's
     * set-up and the accumulators' write-back, bounded by the cache
     * footprint (L2) */
    int G = (2048 + g.Q - 1) / g.Q;
    size_t per = (dyimg + ximg) * sizeof(float);
    while (G > 1 && (size_t)G * per > (size_t)768 * 1024)
        G--;
    if (G > MAX_GROUP)
        G = MAX_GROUP;
    int *off = (int *)akt_scratch(1, (size_t)K);
    tap_offsets(off, &g);
    int T = nthreads_for(N);
    size_t nw = (size_t)Cout * K;
    /* per thread: 16-lane partial sums when they fit in L2 with room to
     * spare, then their lane totals */
    int vec = nw * VL * sizeof(float) <= (size_t)256 * 1024;
    size_t vl = vec ? VL : 0;
    float *part = akt_scratch(0, (size_t)T * nw * (vl + 1));
#ifdef _OPENMP
#pragma omp parallel num_threads(T) if (T > 1)
#endif
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        int n0, n1;
        my_range(N, T, tid, &n0, &n1);
        float *buf = akt_scratch(2, (size_t)G * (dyimg + ximg));
        float *p16 = part + (size_t)tid * nw * vl;
        float *pd = part + (size_t)T * nw * vl + (size_t)tid * nw;
        if (vec)
            memset(p16, 0, nw * VL * sizeof(float));
        else
            memset(pd, 0, nw * sizeof(float));
        const float *dyp[MAX_GROUP], *xpp[MAX_GROUP];
        for (int m0 = n0; m0 < n1; m0 += G) {
            int ng = n1 - m0 < G ? n1 - m0 : G;
            for (int m = 0; m < ng; m++) {
                float *xb = buf + (size_t)m * (dyimg + ximg);
                float *db = xb + ximg;
                pad_image(xb, x + (size_t)(m0 + m) * Cin * H * W, &g);
                grid_image(db, dy + (size_t)(m0 + m) * Cout * g.Ho * g.Wo, Cout, &g, dys);
                xpp[m] = xb;
                dyp[m] = db;
            }
            for (int r0 = 0; r0 < Cout; r0 += DR) {
                int nr = Cout - r0 < DR ? Cout - r0 : DR;
                const float *dyr[MAX_GROUP];
                for (int m = 0; m < ng; m++)
                    dyr[m] = dyp[m] + (size_t)r0 * dys;
                for (int k0 = 0; k0 < K; k0 += DK) {
                    int nk = K - k0 < DK ? K - k0 : DK;
                    dw_tile(vec ? p16 + ((size_t)r0 * K + k0) * VL : pd + (size_t)r0 * K + k0,
                            (size_t)K, dyr, dys, xpp, off + k0, nr, nk, g.Qr, ng, vec);
                }
            }
        }
        if (vec)
            lanes_sum(pd, p16, nw);
    }
    /* fixed-order reduction of the per-thread partials */
    for (int t = 0; t < T; t++) {
        const float *pd = part + (size_t)T * nw * vl + (size_t)t * nw;
        for (size_t i = 0; i < nw; i++)
            dw[i] += pd[i];
    }
}

#else /* not x86-64: never called (akt_have_avx512() is 0); keeps the link */

void akt_conv_forward_avx512(float *y, const float *x, const float *w, const float *bias, int N,
                             int Cin, int H, int W, int Cout, int kh, int kw, int stride, int pad)
{
    (void)y, (void)x, (void)w, (void)bias, (void)N, (void)Cin, (void)H, (void)W, (void)Cout;
    (void)kh, (void)kw, (void)stride, (void)pad;
    AKT_ASSERT(!"AVX-512 kernels are not built on this architecture");
}
void akt_conv_dinput_avx512(float *dx, const float *dy, const float *w, int N, int Cin, int H,
                            int W, int Cout, int kh, int kw, int stride, int pad, int accumulate)
{
    (void)dx, (void)dy, (void)w, (void)N, (void)Cin, (void)H, (void)W, (void)Cout;
    (void)kh, (void)kw, (void)stride, (void)pad, (void)accumulate;
    AKT_ASSERT(!"AVX-512 kernels are not built on this architecture");
}
void akt_conv_dweight_avx512(float *dw, const float *dy, const float *x, int N, int Cin, int H,
                             int W, int Cout, int kh, int kw, int stride, int pad)
{
    (void)dw, (void)dy, (void)x, (void)N, (void)Cin, (void)H, (void)W, (void)Cout;
    (void)kh, (void)kw, (void)stride, (void)pad;
    AKT_ASSERT(!"AVX-512 kernels are not built on this architecture");
}

#endif /* x86-64 */
