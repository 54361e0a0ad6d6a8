/* 2-D convolution (zero padding, square stride), forward and backward.
 *
 * Portable path: per image, im2col + akt_gemm (OpenBLAS). The GEMM shapes:
 *   forward   y_n[Cout,P]   = w[Cout,K] col_n[K,P]          (K = Cin*kh*kw, P = Ho*Wo)
 *   dw        dw[Cout,K]   += dy_n[Cout,P] col_n[K,P]^T     (images in order 0..N-1)
 *   dx        dcol[K,P]     = w^T dy_n, then col2im adds into dx_n
 * A 1x1 stride-1 unpadded conv skips im2col (col_n is x_n itself).
 *
 * AVX-512 path (conv2d_avx512.c): direct convolutions as 1-D convolutions
 * on a zero-padded (phase-split for stride > 1) copy; see there. */
#include "internal.h"
#include "conv2d_avx512.h"
#include "cpu.h"
#include "gemm.h"
#include "scratch.h"

struct conv_geom {
    int N, Cin, H, W, Cout, kh, kw, stride, pad, Ho, Wo;
};

/* col[(ci*kh+ky)*kw+kx][oy*Wo+ox] = x[ci][oy*s+ky-p][ox*s+kx-p] (0 outside) */
static void im2col(const float *x, const struct conv_geom *g, float *col)
{
    int P = g->Ho * g->Wo;
    for (int ci = 0; ci < g->Cin; ci++)
        for (int ky = 0; ky < g->kh; ky++)
            for (int kx = 0; kx < g->kw; kx++) {
                float *row = col + ((size_t)(ci * g->kh + ky) * g->kw + kx) * P;
                const float *xc = x + (size_t)ci * g->H * g->W;
                for (int oy = 0; oy < g->Ho; oy++) {
                    int iy = oy * g->stride + ky - g->pad;
                    float *r = row + oy * g->Wo;
                    if (iy < 0 || iy >= g->H) {
                        memset(r, 0, (size_t)g->Wo * sizeof(float));
                        continue;
                    }
                    const float *xr = xc + (size_t)iy * g->W;
                    for (int ox = 0; ox < g->Wo; ox++) {
                        int ix = ox * g->stride + kx - g->pad;
                        r[ox] = ix >= 0 && ix < g->W ? xr[ix] : 0.0f;
                    }
                }
            }
}

/* the adjoint of im2col: dx[ci][iy][ix] += col[...] */
static void col2im_add(const float *col, const struct conv_geom *g, float *dx)
{
    int P = g->Ho * g->Wo;
    for (int ci = 0; ci < g->Cin; ci++)
        for (int ky = 0; ky < g->kh; ky++)
            for (int kx = 0; kx < g->kw; kx++) {
                const float *row = col + ((size_t)(ci * g->kh + ky) * g->kw + kx) * P;
                float *dc = dx + (size_t)ci * g->H * g->W;
                for (int oy = 0; oy < g->Ho; oy++) {
                    int iy = oy * g->stride + ky - g->pad;
                    if (iy < 0 || iy >= g->H)
                        continue;
                    const float *r = row + oy * g->Wo;
                    float *dr = dc + (size_t)iy * g->W;
                    for (int ox = 0; ox < g->Wo; ox++) {
                        int ix = ox * g->stride + kx - g->pad;
                        if (ix >= 0 && ix < g->W)
                            dr[ix] += r[ox];
                    }
                }
            }
}

static int is_pointwise(const struct conv_geom *g)
{
    return g->kh == 1 && g->kw == 1 && g->stride == 1 && g->pad == 0;
}

static void conv_forward_gemm(float *y, const float *x, const float *w, const struct conv_geom *g)
{
    int P = g->Ho * g->Wo, K = g->Cin * g->kh * g->kw;
    float *col = is_pointwise(g) ? NULL : akt_scratch(0, (size_t)K * P);
    for (int n = 0; n < g->N; n++) {
        const float *xn = x + (size_t)n * g->Cin * g->H * g->W;
        if (col)
            im2col(xn, g, col);
        akt_gemm(0, 0, g->Cout, P, K, 1.0f, w, K, col ? col : xn, P, 0.0f,
                 y + (size_t)n * g->Cout * P, P);
    }
}

static void conv_backward_gemm(float *dx, float *dw, const float *dy, const float *x,
                               const float *w, const struct conv_geom *g, int dx_acc)
{
    int P = g->Ho * g->Wo, K = g->Cin * g->kh * g->kw;
    int pw = is_pointwise(g);
    float *col = dw && !pw ? akt_scratch(0, (size_t)K * P) : NULL;
    float *dcol = dx && !pw ? akt_scratch(1, (size_t)K * P) : NULL;
    for (int n = 0; n < g->N; n++) {
        const float *xn = x + (size_t)n * g->Cin * g->H * g->W;
        const float *dyn = dy + (size_t)n * g->Cout * P;
        float *dxn = dx ? dx + (size_t)n * g->Cin * g->H * g->W : NULL;
        if (dw) {
            if (col)
                im2col(xn, g, col);
            akt_gemm(0, 1, g->Cout, K, P, 1.0f, dyn, P, col ? col : xn, P, 1.0f, dw, K);
        }
        if (dx) {
            if (pw) {
                akt_gemm(1, 0, K, P, g->Cout, 1.0f, w, K, dyn, P, dx_acc ? 1.0f : 0.0f, dxn, P);
            } else {
                akt_gemm(1, 0, K, P, g->Cout, 1.0f, w, K, dyn, P, 0.0f, dcol, P);
                if (!dx_acc)
                    memset(dxn, 0, (size_t)g->Cin * g->H * g->W * sizeof(float));
                col2im_add(dcol, g, dxn);
            }
        }
    }
}

/* ------------------------------------------------------------ kernels --- */

static int use_direct(const struct conv_geom *g)
{
    (void)g; /* every geometry is supported by the direct kernels */
#if defined(__x86_64__) && defined(__GNUC__)
    return akt_have_avx512();
#else
    return 0;
#endif
}

/* y = conv(x, w) + bias (bias may be NULL) */
static void conv2d_forward(float *y, const float *x, const float *w, const float *bias,
                           const struct conv_geom *g)
{
    if (use_direct(g)) {
        akt_conv_forward_avx512(y, x, w, bias, g->N, g->Cin, g->H, g->W, g->Cout, g->kh, g->kw,
                                g->stride, g->pad);
        return;
    }
    conv_forward_gemm(y, x, w, g);
    if (bias) {
        int P = g->Ho * g->Wo;
        int64_t rows = (int64_t)g->N * g->Cout;
        AKT_PARALLEL_FOR(rows * P)
        for (int64_t r = 0; r < rows; r++) {
            float b = bias[r % g->Cout], *yr = y + r * P;
            for (int p = 0; p < P; p++)
                yr[p] += b;
        }
    }
}

/* Accumulates into dw, db and (dx_acc 1) dx, or writes dx (dx_acc 0); each
 * may be NULL (not required). */
static void conv2d_backward(float *dx, float *dw, float *db, const float *dy, const float *x,
                            const float *w, const struct conv_geom *g, int dx_acc)
{
    if (use_direct(g)) {
        if (dw)
            akt_conv_dweight_avx512(dw, dy, x, g->N, g->Cin, g->H, g->W, g->Cout, g->kh, g->kw,
                                    g->stride, g->pad);
        if (dx)
            akt_conv_dinput_avx512(dx, dy, w, g->N, g->Cin, g->H, g->W, g->Cout, g->kh, g->kw,
                                   g->stride, g->pad, dx_acc);
    } else if (dx || dw) {
        conv_backward_gemm(dx, dw, dy, x, w, g, dx_acc);
    }
    if (db) {
        int P = g->Ho * g->Wo;
        for (int c = 0; c < g->Cout; c++) {
            double acc = 0;
            for (int n = 0; n < g->N; n++) {
                const float *r = dy + ((size_t)n * g->Cout + c) * P;
                for (int p = 0; p < P; p++)
                    acc += r[p];
            }
            db[c] += (float)acc;
        }
    }
}

/* --------------------------------------------------------------- tape --- */

static struct conv_geom geom_of(const struct akt_tensor *x, const struct akt_tensor *w, int stride,
                                int pad)
{
    struct conv_geom g;
    g.N = x->shape[0];
    g.Cin = x->shape[1];
    g.H = x->shape[2];
    g.W = x->shape[3];
    g.Cout = w->shape[0];
    g.kh = w->shape[2];
    g.kw = w->shape[3];
    g.stride = stride;
    g.pad = pad;
    g.Ho = (g.H + 2 * pad - g.kh) / stride + 1;
    g.Wo = (g.W + 2 * pad - g.kw) / stride + 1;
    return g;
}

static void conv2d_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    struct conv_geom g = geom_of(x, w, n->ip[0], n->ip[1]);
    int dx_acc = x->requires_grad ? akt_grad_claim(x) : 1;
    int dw_acc = w->requires_grad ? akt_grad_claim(w) : 1;
    int db_acc = b && b->requires_grad ? akt_grad_claim(b) : 1;
    /* weights and biases are small: zero them rather than add write paths */
    if (!dw_acc)
        memset(w->grad, 0, (size_t)w->n * sizeof(float));
    if (!db_acc)
        memset(b->grad, 0, (size_t)b->n * sizeof(float));
    conv2d_backward(x->requires_grad ? x->grad : NULL, w->requires_grad ? w->grad : NULL,
                    b && b->requires_grad ? b->grad : NULL, n->out->grad, x->data, w->data, &g,
                    dx_acc);
}

struct akt_tensor *akt_conv2d(struct akt_tape *t, struct akt_tensor *x, struct akt_tensor *w,
                              struct akt_tensor *bias, int stride, int pad)
{
    AKT_ASSERT(x->ndim == 4 && w->ndim == 4 && x->shape[1] == w->shape[1]);
    AKT_ASSERT(stride >= 1 && pad >= 0);
    AKT_ASSERT(!bias || bias->n == w->shape[0]);
    struct conv_geom g = geom_of(x, w, stride, pad);
    AKT_ASSERT(g.Ho >= 1 && g.Wo >= 1);
    /* both paths write every output element */
    int oshape[4] = {g.N, g.Cout, g.Ho, g.Wo};
    struct akt_tensor *out = akt_tensor_new_uninit(t, 4, oshape, 0);
    conv2d_forward(out->data, x->data, w->data, bias ? bias->data : NULL, &g);
    struct akt_node *nd = akt__push_claiming(t, conv2d_bw, "conv2d", out, x, w, bias);
    if (nd) {
        nd->ip[0] = stride;
        nd->ip[1] = pad;
    }
    return out;
}
