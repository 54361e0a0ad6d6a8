/* Image-space ops of the later zero-shot methods: SynQ's Gaussian low-pass
 * filter, bilinear crop-and-resize (Grad-CAM's upsampling, IntraQ's random
 * resized crops and flips) and per-sample min-max normalisation (Grad-CAM's
 * map scaling). All work plane by plane on [N,C,H,W]. */
#include "internal.h"

#include <stdlib.h>

/* ------------------------------------------------------------ lowpass --- */

/* The signed frequency of DFT bin k of n: what torch.fft.fftshift puts at
 * index k' = k + n/2 (mod n) with the centre n/2, i.e. k' - n/2. */
static int signed_freq(int k, int n) { return k < n - n / 2 ? k : k - n; }

/* The filter exp(-(fy^2 + fx^2) / (2 d0^2)) is a product of two 1-D
 * Gaussians, real and even in each frequency, so the filtered plane is the
 * circular convolution of the plane with g_y (rows) and g_x (columns), the
 * inverse DFTs of the two 1-D filters, and it is real: exactly what the
 * real part of ifft2(fft2(x) * H) is. g[m] = (1/n) sum_k h(k) cos(2 pi k m / n). */
static void lowpass_kernel(double *g, int n, double d0)
{
    for (int m = 0; m < n; m++) {
        double s = 0;
        for (int k = 0; k < n; k++) {
            double f = signed_freq(k, n);
            s += exp(-f * f / (2 * d0 * d0)) * cos(2 * M_PI * (double)k * m / n);
        }
        g[m] = s / n;
    }
}

/* y (+)= filter(x) on planes of [H,W]: rows then columns, in double. The
 * kernels are even (g[m] = g[n-m]), so the operator is symmetric and the
 * backward is the same filter on the gradient. */
static void lowpass_apply(float *y, const float *x, int64_t planes, int H, int W,
                          const double *gy, const double *gx, int add)
{
    AKT_PARALLEL_FOR(planes * H * W * (H + W))
    for (int64_t p = 0; p < planes; p++) {
        const float *xp = x + p * H * W;
        float *yp = y + p * H * W;
        double *tmp = malloc((size_t)H * W * sizeof *tmp);
        AKT_ASSERT(tmp);
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                double s = 0;
                for (int m = 0; m < W; m++)
                    s += gx[(j - m + W) % W] * xp[(int64_t)i * W + m];
                tmp[(int64_t)i * W + j] = s;
            }
        for (int i = 0; i < H; i++)
            for (int j = 0; j < W; j++) {
                double s = 0;
                for (int l = 0; l < H; l++)
                    s += gy[(i - l + H) % H] * tmp[(int64_t)l * W + j];
                if (add)
                    yp[(int64_t)i * W + j] += (float)s;
                else
                    yp[(int64_t)i * W + j] = (float)s;
            }
        free(tmp);
    }
}

/* the kernels of a [H,W] plane in the tape's arena: gy [H] then gx [W] */
static double *lowpass_kernels(struct akt_tape *t, int H, int W, double d0)
{
    double *g = akt_tape_alloc_uninit(t, (size_t)(H + W) * sizeof *g);
    lowpass_kernel(g, H, d0);
    lowpass_kernel(g + H, W, d0);
    return g;
}

static void lowpass_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *x = n->in[0];
    if (!x->grad)
        return;
    int H = x->shape[2], W = x->shape[3];
    const double *g = (const double *)n->saved[0];
    lowpass_apply(x->grad, n->out->grad, (int64_t)x->shape[0] * x->shape[1], H, W, g, g + H, 1);
}

struct akt_tensor *akt_lowpass_gaussian(struct akt_tape *t, struct akt_tensor *x, float d0)
{
    AKT_ASSERT(x->ndim == 4 && d0 > 0);
    int H = x->shape[2], W = x->shape[3];
    struct akt_tensor *y = akt_tensor_new_uninit(t, 4, x->shape, 0); /* all written */
    double *g = lowpass_kernels(t, H, W, d0);
    lowpass_apply(y->data, x->data, (int64_t)x->shape[0] * x->shape[1], H, W, g, g + H, 0);
    struct akt_node *nd = akt_tape_push(t, lowpass_bw, "lowpass_gaussian", y, x, NULL, NULL, NULL);
    if (nd)
        nd->saved[0] = (float *)g;
    return y;
}

/* -------------------------------------------------------- crop_resize --- */

/* One output coordinate of PyTorch's bilinear interpolation with
 * align_corners=False (area_pixel_compute_source_index, then the two taps):
 * src = (o + 0.5) * in / out - 0.5, clamped at 0; taps i0 and i0 + 1 (or i0
 * again at the last pixel) with weights 1 - l and l. Float arithmetic in
 * PyTorch's order, so resized maps match it to the last bits. */
struct tap {
    int i0, i1;
    float w0, w1;
};

static struct tap bilinear_tap(int o, int in, int out)
{
    float scale = (float)in / (float)out;
    float src = scale * ((float)o + 0.5f) - 0.5f;
    if (src < 0)
        src = 0;
    int i0 = (int)src;
    int step = i0 < in - 1 ? 1 : 0;
    float l = src - (float)i0;
    return (struct tap){i0, i0 + step, 1.0f - l, l};
}

/* Per image b: window [y0, x0, h, w] of each plane, taps along both axes. */
struct cr_geom {
    int N, C, H, W, oh, ow;
    const int *crop;           /* [N][4] or NULL */
    const unsigned char *flip; /* [N] or NULL */
};

static void cr_window(const struct cr_geom *g, int b, int *y0, int *x0, int *h, int *w)
{
    if (g->crop) {
        *y0 = g->crop[4 * b], *x0 = g->crop[4 * b + 1];
        *h = g->crop[4 * b + 2], *w = g->crop[4 * b + 3];
    } else {
        *y0 = *x0 = 0, *h = g->H, *w = g->W;
    }
}

static void cr_forward(float *y, const float *x, const struct cr_geom *g)
{
    int64_t planes = (int64_t)g->N * g->C;
    AKT_PARALLEL_FOR(planes * g->oh * g->ow)
    for (int64_t p = 0; p < planes; p++) {
        int b = (int)(p / g->C), y0, x0, h, w;
        cr_window(g, b, &y0, &x0, &h, &w);
        int fl = g->flip && g->flip[b];
        const float *xp = x + p * g->H * g->W;
        float *yp = y + p * g->oh * g->ow;
        for (int i = 0; i < g->oh; i++) {
            struct tap ty = bilinear_tap(i, h, g->oh);
            const float *r0 = xp + (int64_t)(y0 + ty.i0) * g->W + x0;
            const float *r1 = xp + (int64_t)(y0 + ty.i1) * g->W + x0;
            for (int j = 0; j < g->ow; j++) {
                struct tap tx = bilinear_tap(fl ? g->ow - 1 - j : j, w, g->ow);
                yp[(int64_t)i * g->ow + j] = ty.w0 * (tx.w0 * r0[tx.i0] + tx.w1 * r0[tx.i1]) +
                                             ty.w1 * (tx.w0 * r1[tx.i0] + tx.w1 * r1[tx.i1]);
            }
        }
    }
}

/* dx += the transpose: each output's gradient spread over its four taps, in
 * output order within a plane (planes are disjoint, so threads never share
 * an element). */
static void cr_backward(float *dx, const float *dy, const struct cr_geom *g)
{
    int64_t planes = (int64_t)g->N * g->C;
    AKT_PARALLEL_FOR(planes * g->oh * g->ow)
    for (int64_t p = 0; p < planes; p++) {
        int b = (int)(p / g->C), y0, x0, h, w;
        cr_window(g, b, &y0, &x0, &h, &w);
        int fl = g->flip && g->flip[b];
        float *dp = dx + p * g->H * g->W;
        const float *gp = dy + p * g->oh * g->ow;
        for (int i = 0; i < g->oh; i++) {
            struct tap ty = bilinear_tap(i, h, g->oh);
            float *r0 = dp + (int64_t)(y0 + ty.i0) * g->W + x0;
            float *r1 = dp + (int64_t)(y0 + ty.i1) * g->W + x0;
            for (int j = 0; j < g->ow; j++) {
                struct tap tx = bilinear_tap(fl ? g->ow - 1 - j : j, w, g->ow);
                float d = gp[(int64_t)i * g->ow + j];
                r0[tx.i0] += ty.w0 * tx.w0 * d;
                r0[tx.i1] += ty.w0 * tx.w1 * d;
                r1[tx.i0] += ty.w1 * tx.w0 * d;
                r1[tx.i1] += ty.w1 * tx.w1 * d;
            }
        }
    }
}

static void cr_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *x = n->in[0];
    if (!x->grad)
        return;
    struct cr_geom g = {x->shape[0], x->shape[1], x->shape[2], x->shape[3],
                        n->out->shape[2], n->out->shape[3], n->labels,
                        (const unsigned char *)n->saved[0]};
    cr_backward(x->grad, n->out->grad, &g);
}

struct akt_tensor *akt_crop_resize(struct akt_tape *t, struct akt_tensor *x, const int *crop,
                                   const unsigned char *flip, int oh, int ow)
{
    AKT_ASSERT(x->ndim == 4 && oh > 0 && ow > 0);
    const int N = x->shape[0];
    for (int b = 0; crop && b < N; b++) {
        const int *c = crop + 4 * b;
        AKT_ASSERT(c[0] >= 0 && c[1] >= 0 && c[2] > 0 && c[3] > 0 && c[0] + c[2] <= x->shape[2] &&
                   c[1] + c[3] <= x->shape[3]);
    }
    int shape[4] = {N, x->shape[1], oh, ow};
    struct akt_tensor *y = akt_tensor_new_uninit(t, 4, shape, 0); /* all written */
    /* the window and flags outlive the caller's arrays: copies in the arena */
    int *cc = NULL;
    unsigned char *ff = NULL;
    if (crop) {
        cc = akt_tape_alloc_uninit(t, (size_t)N * 4 * sizeof *cc);
        memcpy(cc, crop, (size_t)N * 4 * sizeof *cc);
    }
    if (flip) {
        ff = akt_tape_alloc_uninit(t, (size_t)N);
        memcpy(ff, flip, (size_t)N);
    }
    struct cr_geom g = {N, x->shape[1], x->shape[2], x->shape[3], oh, ow, cc, ff};
    cr_forward(y->data, x->data, &g);
    struct akt_node *nd = akt_tape_push(t, cr_bw, "crop_resize", y, x, NULL, NULL, NULL);
    if (nd) {
        nd->labels = cc;
        nd->saved[0] = (float *)ff;
    }
    return y;
}

/* ---------------------------------------------------- minmax_normalize --- */

/* Rows of m elements: y = (x - min) / (max - min + eps). */
static void mm_range(const float *x, int64_t m, int64_t *imin, int64_t *imax)
{
    int64_t lo = 0, hi = 0;
    for (int64_t i = 1; i < m; i++) {
        if (x[i] < x[lo])
            lo = i;
        if (x[i] > x[hi])
            hi = i;
    }
    *imin = lo, *imax = hi;
}

static void mm_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *x = n->in[0];
    if (!x->grad)
        return;
    const int64_t rows = x->shape[0], m = x->n / rows;
    const float eps = n->fp[0];
    const float *y = n->out->data, *dy = n->out->grad;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x->data + r * m, *yr = y + r * m, *gr = dy + r * m;
        float *dx = x->grad + r * m;
        int64_t lo, hi;
        mm_range(xr, m, &lo, &hi);
        double D = (double)xr[hi] - xr[lo] + eps;
        /* y_j = (x_j - lo) / D: d/dx_j = 1/D; d/d lo = (y_j - 1)/D; d/d hi = -y_j/D */
        double s_lo = 0, s_hi = 0;
        for (int64_t j = 0; j < m; j++) {
            s_lo += (double)gr[j] * (yr[j] - 1.0);
            s_hi -= (double)gr[j] * yr[j];
            dx[j] += (float)(gr[j] / D);
        }
        dx[lo] += (float)(s_lo / D);
        dx[hi] += (float)(s_hi / D);
    }
}

struct akt_tensor *akt_minmax_normalize(struct akt_tape *t, struct akt_tensor *x, float eps)
{
    AKT_ASSERT(x->ndim >= 2 && x->n > 0);
    const int64_t rows = x->shape[0], m = x->n / rows;
    struct akt_tensor *y = akt_tensor_new_uninit(t, x->ndim, x->shape, 0); /* all written */
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x->data + r * m;
        int64_t lo, hi;
        mm_range(xr, m, &lo, &hi);
        /* PyTorch's order: subtract the min, then divide by (max - min + eps) */
        float den = (xr[hi] - xr[lo]) + eps;
        for (int64_t j = 0; j < m; j++)
            y->data[r * m + j] = (xr[j] - xr[lo]) / den;
    }
    struct akt_node *nd = akt_tape_push(t, mm_bw, "minmax_normalize", y, x, NULL, NULL, NULL);
    if (nd)
        nd->fp[0] = eps;
    return y;
}
