/* Fake quantizer (SPEC 2): per tensor with an explicit range, and per output
 * channel with the row's current min/max. Straight-through backward.
 *
 * Bit-exactness with PyTorch float32 matters here: a one-ulp change of
 * s*x - zp moves values across a rounding tie. So every step is one float
 * operation in the SPEC's order, the scale is a true division (SPEC 7), and
 * rounding is rintf (half to even under the default rounding mode, as
 * torch.round). gnu11 lets GCC fuse s*x - zp into an FMA when FMA is
 * enabled (-march=native): forbid that for this file. */
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "akt/tensor.h"

#include "internal.h"

struct akt_qparams akt_quant_params(float lo, float hi, int bits)
{
    AKT_ASSERT(bits >= 2 && bits <= 8);
    struct akt_qparams p;
    float half = (float)(1 << (bits - 1));
    float range = hi - lo;
    if (range < 1e-8f) /* a comparison, not fmaxf, so a NaN range stays NaN as in torch.clamp */
        range = 1e-8f;
    p.scale = (float)((1 << bits) - 1) / range;
    p.zero_point = rintf(p.scale * lo) + half;
    p.qmin = -half;
    p.qmax = half - 1;
    return p;
}

static inline float level(float x, struct akt_qparams p)
{
    float q = rintf(p.scale * x - p.zero_point);
    return q < p.qmin ? p.qmin : q > p.qmax ? p.qmax : q; /* NaN passes through */
}

float akt_quant_level(float x, struct akt_qparams p)
{
    return level(x, p);
}

static inline float fq(float x, struct akt_qparams p)
{
    return (level(x, p) + p.zero_point) / p.scale;
}

float akt_fake_quant_scalar(float x, float lo, float hi, int bits)
{
    return fq(x, akt_quant_params(lo, hi, bits));
}

/* Straight-through estimator: d out / d x = 1 everywhere. */
static void ste_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    float *dx = n->in[0]->grad;
    const float *dout = n->out->grad;
    int64_t cnt = n->out->n;
    AKT_GRAD_PAR(cnt, akt_grad_claim(n->in[0]), dx, dout[i]);
}

struct akt_tensor *akt_fake_quant(struct akt_tape *t, struct akt_tensor *x, float lo, float hi,
                                  int bits)
{
    struct akt_qparams p = akt_quant_params(lo, hi, bits);
    struct akt_tensor *out = akt_tensor_new_uninit(t, x->ndim, x->shape, 0); /* all written */
    const float *xd = x->data;
    float *o = out->data;
    int64_t n = x->n;
    AKT_PARALLEL_FOR(n)
    for (int64_t i = 0; i < n; i++)
        o[i] = fq(xd[i], p);
    akt__push_claiming(t, ste_bw, "fake_quant", out, x, NULL, NULL);
    return out;
}

struct akt_tensor *akt_fake_quant_channel(struct akt_tape *t, struct akt_tensor *w, int bits)
{
    AKT_ASSERT(bits >= 2 && bits <= 8 && w->shape[0] > 0);
    struct akt_tensor *out = akt_tensor_new_uninit(t, w->ndim, w->shape, 0); /* all written */
    int rows = w->shape[0];
    int64_t cols = w->n / rows;
    const float *wd = w->data;
    float *o = out->data;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (w->n >= AKT_PAR_MIN)
#endif
    for (int r = 0; r < rows; r++) {
        const float *row = wd + (int64_t)r * cols;
        float lo = row[0], hi = row[0];
        for (int64_t j = 1; j < cols; j++) {
            lo = row[j] < lo ? row[j] : lo;
            hi = row[j] > hi ? row[j] : hi;
        }
        struct akt_qparams p = akt_quant_params(lo, hi, bits);
        for (int64_t j = 0; j < cols; j++)
            o[(int64_t)r * cols + j] = fq(row[j], p);
    }
    akt__push_claiming(t, ste_bw, "fake_quant_channel", out, w, NULL, NULL);
    return out;
}
