/* Reductions: sum and mean over contiguous axes, min over all elements,
 * L2 normalisation over contiguous axes.
 *
 * Each op: a kernel pair on raw arrays seen as [outer, mid, inner] (forward
 * writes out, backward accumulates into the input grad), then the tape
 * wrapper. Every output element is reduced by one thread in ascending order,
 * so results do not depend on the thread count. */
#include "internal.h"
#include "scratch.h"

#include <limits.h>

/* ----------------------------------------------------------- sum, mean --- */
/* Outputs are produced in blocks of SUM_BLOCK neighbours along inner, so the
 * reads along mid stay contiguous when inner > 1. */
#define SUM_BLOCK 64

#define SUM_LANES AKT_LANES /* partial sums of a row reduction (inner == 1) */

/* out[o,i] = (sum_m x[o,m,i]) / div, accumulated in double. With inner 1
 * (a row sum), element m goes to partial sum m % SUM_LANES, added in order
 * at the end: one serial double add per element was latency-bound. */
static void sum_forward(float *out, const float *x, int64_t outer, int64_t mid, int64_t inner,
                        double div)
{
    if (inner == 1) {
        AKT_PARALLEL_FOR(outer * mid)
        for (int64_t o = 0; o < outer; o++) {
            const float *r = x + o * mid;
            akt_lanes_d acc = {0};
            int64_t m8 = mid - mid % SUM_LANES;
            for (int64_t m = 0; m < m8; m += SUM_LANES)
                acc += akt_load_lanes(r + m);
            for (int64_t m = m8; m < mid; m++)
                acc[m - m8] += r[m];
            double tot = 0;
            for (int j = 0; j < SUM_LANES; j++)
                tot += acc[j];
            out[o] = (float)(tot / div);
        }
        return;
    }
    int64_t nblk = (inner + SUM_BLOCK - 1) / SUM_BLOCK;
    AKT_PARALLEL_FOR(outer * mid * inner)
    for (int64_t k = 0; k < outer * nblk; k++) {
        int64_t o = k / nblk, i0 = (k % nblk) * SUM_BLOCK;
        int64_t len = inner - i0 < SUM_BLOCK ? inner - i0 : SUM_BLOCK;
        double acc[SUM_BLOCK];
        for (int64_t i = 0; i < len; i++)
            acc[i] = 0;
        const float *base = x + o * mid * inner + i0;
        for (int64_t m = 0; m < mid; m++)
            for (int64_t i = 0; i < len; i++)
                acc[i] += base[m * inner + i];
        for (int64_t i = 0; i < len; i++)
            out[o * inner + i0 + i] = (float)(acc[i] / div);
    }
}

/* dx[o,m,i] (+)= dout[o,i] / div; add 0 writes dx. The quotient row of
 * each o is computed once (a double division per element was a third of
 * the AKT loss's backward): in a thread's scratch when inner > 1. */
static void sum_backward(float *dx, const float *dout, int64_t outer, int64_t mid, int64_t inner,
                         double div, int add)
{
    AKT_PARALLEL_FOR(outer * mid * inner)
    for (int64_t o = 0; o < outer; o++) {
        if (inner == 1) { /* a row sum: one value over the row */
            float g = (float)(dout[o] / div), *d = dx + o * mid;
            AKT_GRAD_LOOP(mid, add, d, g);
            continue;
        }
        float *g = akt_scratch(0, (size_t)inner);
        for (int64_t i = 0; i < inner; i++)
            g[i] = (float)(dout[o * inner + i] / div);
        for (int64_t m = 0; m < mid; m++) {
            float *d = dx + (o * mid + m) * inner;
            AKT_GRAD_LOOP(inner, add, d, g[i]);
        }
    }
}

static void sum_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *x = n->in[0];
    if (!x->requires_grad)
        return;
    int64_t outer, mid, inner;
    akt__split(x, n->ip[0], n->ip[1], &outer, &mid, &inner);
    sum_backward(x->grad, n->out->grad, outer, mid, inner, n->ip[2] ? (double)mid : 1.0,
                 akt_grad_claim(x));
}

static struct akt_tensor *sum_op(struct akt_tape *t, struct akt_tensor *x, int a0, int a1,
                                 int mean, const char *name)
{
    int64_t outer, mid, inner;
    akt__split(x, a0, a1, &outer, &mid, &inner);
    AKT_ASSERT(!mean || mid > 0);
    struct akt_tensor *out = akt__reduced_new(t, x, a0, a1);
    sum_forward(out->data, x->data, outer, mid, inner, mean ? (double)mid : 1.0);
    struct akt_node *nd = akt__push_claiming(t, sum_bw, name, out, x, NULL, NULL);
    if (nd) {
        nd->ip[0] = a0;
        nd->ip[1] = a1;
        nd->ip[2] = mean;
    }
    return out;
}

struct akt_tensor *akt_sum(struct akt_tape *t, struct akt_tensor *x, int a0, int a1)
{
    return sum_op(t, x, a0, a1, 0, "sum");
}
struct akt_tensor *akt_mean(struct akt_tape *t, struct akt_tensor *x, int a0, int a1)
{
    return sum_op(t, x, a0, a1, 1, "mean");
}

/* ----------------------------------------------------------------- min --- */
/* Index of the first minimal element (strict <, so ties keep the first). A
 * NaN wins, so a diverged input shows in the result as with PyTorch. */
static int64_t min_forward(float *out, const float *x, int64_t n)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n && !isnan(x[best]); i++)
        if (x[i] < x[best] || isnan(x[i]))
            best = i;
    out[0] = x[best];
    return best;
}

static void min_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *x = n->in[0];
    if (x->requires_grad)
        x->grad[n->ip[0]] += n->out->grad[0];
}

struct akt_tensor *akt_min(struct akt_tape *t, struct akt_tensor *x)
{
    AKT_ASSERT(x->n >= 1 && x->n <= INT_MAX); /* the index is kept in an int */
    struct akt_tensor *out = akt_tensor_newv(t, 0, 1, 1);
    int64_t idx = min_forward(out->data, x->data, x->n);
    struct akt_node *nd = akt_tape_push(t, min_bw, "min", out, x, NULL, NULL, NULL);
    if (nd)
        nd->ip[0] = (int)idx;
    return out;
}

/* ------------------------------------------------------- l2 normalize --- */
/* y[o,m,i] = x[o,m,i] / max(norm[o,i], eps); norm kept for the backward. */
static void l2n_forward(float *y, float *norm, const float *x, int64_t outer, int64_t mid,
                        int64_t inner, float eps)
{
    AKT_PARALLEL_FOR(outer * mid * inner)
    for (int64_t k = 0; k < outer * inner; k++) {
        int64_t o = k / inner, i = k % inner;
        const float *xb = x + o * mid * inner + i;
        float *yb = y + o * mid * inner + i;
        double ss = 0;
        for (int64_t m = 0; m < mid; m++)
            ss += (double)xb[m * inner] * xb[m * inner];
        float nrm = (float)sqrt(ss);
        float d = nrm > eps ? nrm : eps;
        for (int64_t m = 0; m < mid; m++)
            yb[m * inner] = xb[m * inner] / d;
        norm[k] = nrm;
    }
}

/* Unclamped (norm >= eps, as PyTorch's clamp_min passes the gradient at the
 * bound): dx = (g - y <g,y>) / norm. Clamped: the denominator is the constant
 * eps, dx = g / eps. */
static void l2n_backward(float *dx, const float *dy, const float *y, const float *norm,
                         int64_t outer, int64_t mid, int64_t inner, float eps)
{
    AKT_PARALLEL_FOR(outer * mid * inner)
    for (int64_t k = 0; k < outer * inner; k++) {
        int64_t o = k / inner, i = k % inner;
        int64_t off = o * mid * inner + i;
        float nrm = norm[k];
        if (nrm >= eps) {
            double dot = 0;
            for (int64_t m = 0; m < mid; m++)
                dot += (double)dy[off + m * inner] * y[off + m * inner];
            for (int64_t m = 0; m < mid; m++) {
                int64_t j = off + m * inner;
                dx[j] += (float)((dy[j] - y[j] * dot) / nrm);
            }
        } else {
            for (int64_t m = 0; m < mid; m++)
                dx[off + m * inner] += dy[off + m * inner] / eps;
        }
    }
}

static void l2n_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *x = n->in[0];
    if (!x->requires_grad)
        return;
    int64_t outer, mid, inner;
    akt__split(x, n->ip[0], n->ip[1], &outer, &mid, &inner);
    l2n_backward(x->grad, n->out->grad, n->out->data, n->saved[0], outer, mid, inner, n->fp[0]);
}

struct akt_tensor *akt_l2_normalize(struct akt_tape *t, struct akt_tensor *x, int a0, int a1,
                                    float eps)
{
    AKT_ASSERT(eps > 0);
    int64_t outer, mid, inner;
    akt__split(x, a0, a1, &outer, &mid, &inner);
    struct akt_tensor *out = akt_tensor_new(t, x->ndim, x->shape, 0);
    float *norm = akt_tape_alloc(t, (size_t)(outer * inner) * sizeof(float));
    l2n_forward(out->data, norm, x->data, outer, mid, inner, eps);
    struct akt_node *nd = akt_tape_push(t, l2n_bw, "l2_normalize", out, x, NULL, NULL, NULL);
    if (nd) {
        nd->ip[0] = a0;
        nd->ip[1] = a1;
        nd->fp[0] = eps;
        nd->saved[0] = norm;
    }
    return out;
}
