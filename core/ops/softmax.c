/* Softmax family: softmax and log-softmax over contiguous axes with a
 * temperature, hard and soft cross-entropy, KL divergence, entropy.
 *
 * Each op: a kernel pair on raw arrays (forward writes out, backward
 * accumulates into input grads), then the tape wrapper. A "row" is one
 * (outer, inner) position of x seen as [outer, mid, inner]: mid elements at
 * stride inner. Rows are independent, so they run in parallel; every sum
 * inside a row, and the sum over rows, runs in a fixed order. */
#include "internal.h"

/* ------------------------------------------------------- row helpers --- */
/* Statistics of softmax(x/T) on one row. The tempered value is computed as
 * x/T - max(x)/T: division by T > 0 is monotone, so max(x)/T == max(x/T) and
 * this is bit-identical to dividing first and then subtracting the max. */
struct row_stats {
    float mxT;   /* max(x) / T */
    double sum;  /* sum exp(x/T - mxT) */
    double lse;  /* log(sum) */
};

static inline float tempered(float x, const struct row_stats *s, float T)
{
    return x / T - s->mxT;
}

static struct row_stats row_stats(const float *x, int64_t mid, int64_t stride, float T)
{
    struct row_stats s;
    float mx = x[0];
    for (int64_t m = 1; m < mid; m++)
        if (x[m * stride] > mx)
            mx = x[m * stride];
    s.mxT = mx / T;
    s.sum = 0;
    for (int64_t m = 0; m < mid; m++)
        s.sum += expf(tempered(x[m * stride], &s, T));
    s.lse = log(s.sum);
    return s;
}

/* log softmax(x/T) of one element, in double */
static inline double row_logp(float x, const struct row_stats *s, float T)
{
    return (double)tempered(x, s, T) - s->lse;
}

/* ------------------------------------------------ softmax, log-softmax --- */
static void softmax_forward(float *y, const float *x, int64_t outer, int64_t mid, int64_t inner,
                            float T, int log_out)
{
    AKT_PARALLEL_FOR(outer * mid * inner)
    for (int64_t k = 0; k < outer * inner; k++) {
        int64_t off = (k / inner) * mid * inner + k % inner;
        if (log_out) {
            struct row_stats s = row_stats(x + off, mid, inner, T);
            for (int64_t m = 0; m < mid; m++)
                y[off + m * inner] = (float)row_logp(x[off + m * inner], &s, T);
            continue;
        }
        /* softmax: keep the exponentials in y, so each is computed once */
        float mx = x[off];
        for (int64_t m = 1; m < mid; m++)
            if (x[off + m * inner] > mx)
                mx = x[off + m * inner];
        struct row_stats s = {.mxT = mx / T};
        for (int64_t m = 0; m < mid; m++) {
            int64_t j = off + m * inner;
            y[j] = expf(tempered(x[j], &s, T));
            s.sum += y[j];
        }
        for (int64_t m = 0; m < mid; m++)
            y[off + m * inner] = (float)(y[off + m * inner] / s.sum);
    }
}

/* From the output y and its gradient g, with s = x/T:
 * softmax:     dx = y (g - <g,y>) / T
 * log-softmax: dx = (g - exp(y) sum g) / T */
static void softmax_backward(float *dx, const float *dy, const float *y, int64_t outer,
                             int64_t mid, int64_t inner, float T, int log_out)
{
    AKT_PARALLEL_FOR(outer * mid * inner)
    for (int64_t k = 0; k < outer * inner; k++) {
        int64_t off = (k / inner) * mid * inner + k % inner;
        double acc = 0;
        for (int64_t m = 0; m < mid; m++) {
            int64_t j = off + m * inner;
            acc += log_out ? (double)dy[j] : (double)dy[j] * y[j];
        }
        for (int64_t m = 0; m < mid; m++) {
            int64_t j = off + m * inner;
            double g = log_out ? dy[j] - expf(y[j]) * acc : y[j] * (dy[j] - acc);
            dx[j] += (float)(g / T);
        }
    }
}

static void softmax_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *x = n->in[0];
    if (!x->requires_grad)
        return;
    int64_t outer, mid, inner;
    akt__split(x, n->ip[0], n->ip[1], &outer, &mid, &inner);
    softmax_backward(x->grad, n->out->grad, n->out->data, outer, mid, inner, n->fp[0], n->ip[2]);
}

static struct akt_tensor *softmax_op(struct akt_tape *t, struct akt_tensor *x, int a0, int a1,
                                     float T, int log_out, const char *name)
{
    AKT_ASSERT(T > 0);
    int64_t outer, mid, inner;
    akt__split(x, a0, a1, &outer, &mid, &inner);
    AKT_ASSERT(mid > 0);
    struct akt_tensor *out = akt_tensor_new(t, x->ndim, x->shape, 0);
    softmax_forward(out->data, x->data, outer, mid, inner, T, log_out);
    struct akt_node *nd = akt_tape_push(t, softmax_bw, name, out, x, NULL, NULL, NULL);
    if (nd) {
        nd->ip[0] = a0;
        nd->ip[1] = a1;
        nd->ip[2] = log_out;
        nd->fp[0] = T;
    }
    return out;
}

struct akt_tensor *akt_softmax(struct akt_tape *t, struct akt_tensor *x, int a0, int a1, float T)
{
    return softmax_op(t, x, a0, a1, T, 0, "softmax");
}
struct akt_tensor *akt_log_softmax(struct akt_tape *t, struct akt_tensor *x, int a0, int a1,
                                   float T)
{
    return softmax_op(t, x, a0, a1, T, 1, "log_softmax");
}

/* ------------------------------------------------------ cross-entropy --- */
/* Per-row losses go to a buffer, then are summed serially in row order. */
static double sum_rows(const double *v, int64_t n)
{
    double acc = 0;
    for (int64_t i = 0; i < n; i++)
        acc += v[i];
    return acc;
}

/* Hard labels when labels != NULL, else soft targets:
 * loss_b = -sum_c target[b,c] log softmax(z)[b,c]. */
static void ce_forward(double *row_loss, const float *z, const int *labels, const float *target,
                       int64_t B, int64_t C)
{
    AKT_PARALLEL_FOR(B * C)
    for (int64_t b = 0; b < B; b++) {
        const float *zb = z + b * C;
        struct row_stats s = row_stats(zb, C, 1, 1.0f);
        if (labels) {
            row_loss[b] = -row_logp(zb[labels[b]], &s, 1.0f);
        } else {
            double acc = 0;
            for (int64_t c = 0; c < C; c++)
                acc -= (double)target[b * C + c] * row_logp(zb[c], &s, 1.0f);
            row_loss[b] = acc;
        }
    }
}

/* dz[b,c] += g/B (p[b,c] sum_k target[b,k] - target[b,c]); one-hot for hard
 * labels. The softmax is recomputed from z rather than stored. */
static void ce_backward(float *dz, float g, const float *z, const int *labels, const float *target,
                        int64_t B, int64_t C)
{
    double gb = (double)g / (double)B;
    AKT_PARALLEL_FOR(B * C)
    for (int64_t b = 0; b < B; b++) {
        const float *zb = z + b * C;
        struct row_stats s = row_stats(zb, C, 1, 1.0f);
        double tsum = 1;
        if (!labels) {
            tsum = 0;
            for (int64_t c = 0; c < C; c++)
                tsum += target[b * C + c];
        }
        for (int64_t c = 0; c < C; c++) {
            double p = exp(row_logp(zb[c], &s, 1.0f));
            double tc = labels ? (c == labels[b] ? 1.0 : 0.0) : (double)target[b * C + c];
            dz[b * C + c] += (float)(gb * (p * tsum - tc));
        }
    }
}

static void ce_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *z = n->in[0];
    if (!z->requires_grad)
        return;
    const float *target = n->in[1] ? n->in[1]->data : NULL;
    ce_backward(z->grad, n->out->grad[0], z->data, n->labels, target, z->shape[0], z->shape[1]);
}

struct akt_tensor *akt_cross_entropy(struct akt_tape *t, struct akt_tensor *z, const int *labels)
{
    AKT_ASSERT(z->ndim == 2 && z->shape[0] > 0 && z->shape[1] > 0 && labels);
    int B = z->shape[0], C = z->shape[1];
    for (int b = 0; b < B; b++)
        AKT_ASSERT(labels[b] >= 0 && labels[b] < C);
    struct akt_tensor *out = akt_tensor_newv(t, 0, 1, 1);
    double *row = akt_tape_alloc(t, (size_t)B * sizeof(double));
    ce_forward(row, z->data, labels, NULL, B, C);
    out->data[0] = (float)(sum_rows(row, B) / B);
    struct akt_node *nd = akt_tape_push(t, ce_bw, "cross_entropy", out, z, NULL, NULL, NULL);
    if (nd) {
        /* the caller's label array need not outlive this call */
        int *lab = akt_tape_alloc(t, (size_t)B * sizeof(int));
        memcpy(lab, labels, (size_t)B * sizeof(int));
        nd->labels = lab;
    }
    return out;
}

struct akt_tensor *akt_cross_entropy_soft(struct akt_tape *t, struct akt_tensor *z,
                                          struct akt_tensor *target)
{
    AKT_ASSERT(z->ndim == 2 && z->shape[0] > 0 && z->shape[1] > 0);
    AKT_ASSERT(akt_tensor_same_shape(z, target));
    int B = z->shape[0], C = z->shape[1];
    struct akt_tensor *out = akt_tensor_newv(t, 0, 1, 1);
    double *row = akt_tape_alloc(t, (size_t)B * sizeof(double));
    ce_forward(row, z->data, NULL, target->data, B, C);
    out->data[0] = (float)(sum_rows(row, B) / B);
    /* only z is an input of the record: the target is a constant */
    struct akt_node *nd = akt_tape_push(t, ce_bw, "cross_entropy_soft", out, z, NULL, NULL, NULL);
    if (nd)
        nd->in[1] = target;
    return out;
}

/* ----------------------------------------------------------------- KL --- */
/* Elements are summed in fixed chunks (independent of the thread count),
 * each in double, then the chunk sums serially in order. */
#define KL_CHUNK 4096

static double kl_term(float lq, float p)
{
    if (p == 0)
        return 0; /* 0 log 0 = 0 */
    return (double)p * (log((double)p) - (double)lq);
}

static double kl_forward(const float *lq, const float *p, int64_t n, double *chunk)
{
    int64_t nch = (n + KL_CHUNK - 1) / KL_CHUNK;
    AKT_PARALLEL_FOR(n)
    for (int64_t c = 0; c < nch; c++) {
        int64_t end = (c + 1) * KL_CHUNK < n ? (c + 1) * KL_CHUNK : n;
        double acc = 0;
        for (int64_t i = c * KL_CHUNK; i < end; i++)
            acc += kl_term(lq[i], p[i]);
        chunk[c] = acc;
    }
    return sum_rows(chunk, nch);
}

/* d/dlog_q = -p / red; d/dp = (log p - log_q + 1) / red where p > 0 (0 at
 * p == 0, where the term is the constant 0). Elementwise, so a float log is
 * accurate enough here, unlike in the sum of the forward. */
static void kl_backward(float *dlq, float *dp, float g, const float *lq, const float *p, int64_t n,
                        double red)
{
    double gr = (double)g / red;
    AKT_PARALLEL_FOR(n)
    for (int64_t i = 0; i < n; i++) {
        if (dlq)
            dlq[i] += (float)(-gr * p[i]);
        if (dp && p[i] > 0)
            dp[i] += (float)(gr * ((double)logf(p[i]) - (double)lq[i] + 1.0));
    }
}

static double kl_divisor(const struct akt_tensor *x, int red)
{
    switch (red) {
    case AKT_KL_SUM: return 1.0;
    case AKT_KL_BATCHMEAN: return (double)x->shape[0];
    default: return (double)x->n;
    }
}

static void kl_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *lq = n->in[0], *p = n->in[1];
    kl_backward(lq->requires_grad ? lq->grad : NULL, p->requires_grad ? p->grad : NULL,
                n->out->grad[0], lq->data, p->data, lq->n, kl_divisor(lq, n->ip[0]));
}

struct akt_tensor *akt_kl_div(struct akt_tape *t, struct akt_tensor *log_q, struct akt_tensor *p,
                              enum akt_kl_reduction red)
{
    AKT_ASSERT(akt_tensor_same_shape(log_q, p) && log_q->n > 0);
    AKT_ASSERT(red == AKT_KL_SUM || red == AKT_KL_BATCHMEAN || red == AKT_KL_MEAN);
    struct akt_tensor *out = akt_tensor_newv(t, 0, 1, 1);
    int64_t nch = (log_q->n + KL_CHUNK - 1) / KL_CHUNK;
    double *chunk = akt_tape_alloc(t, (size_t)nch * sizeof(double));
    double v = kl_forward(log_q->data, p->data, log_q->n, chunk);
    out->data[0] = (float)(v / kl_divisor(log_q, red));
    struct akt_node *nd = akt_tape_push(t, kl_bw, "kl_div", out, log_q, p, NULL, NULL);
    if (nd)
        nd->ip[0] = (int)red;
    return out;
}

/* ------------------------------------------------------------ entropy --- */
/* H_b = -sum_c p log p with p = softmax(z_b/T);
 * dH/dz_c = -p_c (log p_c + H_b) / T. */
static void entropy_forward(float *h, const float *z, int64_t B, int64_t C, float T)
{
    AKT_PARALLEL_FOR(B * C)
    for (int64_t b = 0; b < B; b++) {
        const float *zb = z + b * C;
        struct row_stats s = row_stats(zb, C, 1, T);
        double acc = 0;
        for (int64_t c = 0; c < C; c++) {
            double lp = row_logp(zb[c], &s, T);
            acc -= exp(lp) * lp;
        }
        h[b] = (float)acc;
    }
}

static void entropy_backward(float *dz, const float *dh, const float *z, int64_t B, int64_t C,
                             float T)
{
    AKT_PARALLEL_FOR(B * C)
    for (int64_t b = 0; b < B; b++) {
        const float *zb = z + b * C;
        struct row_stats s = row_stats(zb, C, 1, T);
        /* H again in double rather than the rounded forward output */
        double H = 0;
        for (int64_t c = 0; c < C; c++) {
            double lp = row_logp(zb[c], &s, T);
            H -= exp(lp) * lp;
        }
        for (int64_t c = 0; c < C; c++) {
            double lp = row_logp(zb[c], &s, T);
            dz[b * C + c] += (float)(-(double)dh[b] * exp(lp) * (lp + H) / T);
        }
    }
}

static void entropy_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *z = n->in[0];
    if (z->requires_grad)
        entropy_backward(z->grad, n->out->grad, z->data, z->shape[0], z->shape[1], n->fp[0]);
}

struct akt_tensor *akt_entropy(struct akt_tape *t, struct akt_tensor *z, float T)
{
    AKT_ASSERT(z->ndim == 2 && z->shape[1] > 0 && T > 0);
    struct akt_tensor *out = akt_tensor_newv(t, 0, 1, z->shape[0]);
    entropy_forward(out->data, z->data, z->shape[0], z->shape[1], T);
    struct akt_node *nd = akt_tape_push(t, entropy_bw, "entropy", out, z, NULL, NULL, NULL);
    if (nd)
        nd->fp[0] = T;
    return out;
}
