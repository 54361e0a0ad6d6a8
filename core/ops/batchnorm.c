/* Batch normalisation (running or batch statistics) and per-channel batch statistics.
 *
 * x is [N,C,H,W] or [N,C]; channel c's elements are x[(n*C + c)*HW + p].
 * Every per-channel reduction runs over n then p in a fixed lane order (see
 * LANES), in double, and the loops are parallel over channels only, so
 * results do not depend on the thread count. */
#include "internal.h"

/* N, C, HW of a 2-D or 4-D input */
static void bn_dims(const struct akt_tensor *x, int *N, int *C, int64_t *HW)
{
    AKT_ASSERT(x->ndim == 2 || x->ndim == 4);
    *N = x->shape[0];
    *C = x->shape[1];
    *HW = x->ndim == 4 ? (int64_t)x->shape[2] * x->shape[3] : 1;
}

/* Per-channel sums in double, in a fixed order that vectorises: LANES
 * partial sums, element p of every row going to lane p % LANES, rows in the
 * order n = 0..N-1, the lanes added in order at the end. The order depends
 * only on the shape, never on the thread count. */
#define LANES 8

static double lanes_total(const double *acc)
{
    double s = 0;
    for (int j = 0; j < LANES; j++)
        s += acc[j];
    return s;
}

/* mean[c] and biased var[c] of channel c in one pass over x: sums of x and
 * x^2 in double (x^2 of a float is exact in double), var = E[x^2] - mean^2.
 * The cancellation costs about log2(mean^2/var) of double's 53 bits, far
 * below float resolution for any activation; a second pass over x (tens of
 * megabytes per BN at batch 128) is not. */
static void channel_stats(const float *x, int N, int C, int64_t HW, int c, double *mean,
                          double *var)
{
    double acc[LANES] = {0}, sq[LANES] = {0};
    int64_t HW8 = HW - HW % LANES;
    for (int n = 0; n < N; n++) {
        const float *xc = x + ((int64_t)n * C + c) * HW;
        for (int64_t p = 0; p < HW8; p += LANES)
            for (int j = 0; j < LANES; j++) {
                double v = xc[p + j];
                acc[j] += v;
                sq[j] += v * v;
            }
        for (int64_t p = HW8; p < HW; p++) {
            double v = xc[p];
            acc[p - HW8] += v;
            sq[p - HW8] += v * v;
        }
    }
    double M = (double)N * HW;
    double mu = lanes_total(acc) / M;
    double v = lanes_total(sq) / M - mu * mu;
    *mean = mu;
    *var = v > 0 ? v : 0; /* rounding can leave a constant channel at -0-ish */
}

/* The affine map of one channel, y = (x - m) * a + b, written once so that
 * forward and the fused ReLU's mask in backward compute the same float. */
static inline float bn_map(float x, float m, float a, float b) { return (x - m) * a + b; }
static inline float relu_f(float v) { return v > 0 ? v : 0.0f; }

/* y = (x - mean) * invstd * gamma + beta, then relu if asked; gamma/beta
 * may be NULL */
static void bn_apply(float *y, const float *x, const float *mean, const float *invstd,
                     const float *gamma, const float *beta, int N, int C, int64_t HW, int c,
                     int relu)
{
    float a = invstd[c] * (gamma ? gamma[c] : 1.0f);
    float b = beta ? beta[c] : 0.0f;
    float m = mean[c];
    for (int n = 0; n < N; n++) {
        int64_t off = ((int64_t)n * C + c) * HW;
        if (relu)
            for (int64_t p = 0; p < HW; p++)
                y[off + p] = relu_f(bn_map(x[off + p], m, a, b));
        else
            for (int64_t p = 0; p < HW; p++)
                y[off + p] = bn_map(x[off + p], m, a, b);
    }
}

/* Batch mode: fills mean/invstd from the batch and, when running_* are not
 * NULL, updates them in place (unbiased variance, as PyTorch). */
static void bn_forward_batch(float *y, float *mean, float *invstd, const float *x,
                             const float *gamma, const float *beta, float *running_mean,
                             float *running_var, int N, int C, int64_t HW, float eps,
                             float momentum, int relu)
{
    int64_t M = (int64_t)N * HW;
    AKT_ASSERT(!running_var || M > 1); /* the unbiased variance needs two values */
    AKT_PARALLEL_FOR((int64_t)C * M)
    for (int c = 0; c < C; c++) {
        double mu, var;
        channel_stats(x, N, C, HW, c, &mu, &var);
        mean[c] = (float)mu;
        invstd[c] = (float)(1.0 / sqrt(var + (double)eps));
        bn_apply(y, x, mean, invstd, gamma, beta, N, C, HW, c, relu);
        if (running_mean)
            running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mu);
        if (running_var) {
            double unbiased = var * (double)M / (double)(M - 1);
            running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
        }
    }
}

/* Eval mode: mean/invstd from the running statistics. */
static void bn_forward_eval(float *y, float *mean, float *invstd, const float *x,
                            const float *gamma, const float *beta, const float *running_mean,
                            const float *running_var, int N, int C, int64_t HW, float eps,
                            int relu)
{
    AKT_PARALLEL_FOR((int64_t)C * N * HW)
    for (int c = 0; c < C; c++) {
        mean[c] = running_mean[c];
        invstd[c] = (float)(1.0 / sqrt((double)running_var[c] + (double)eps));
        bn_apply(y, x, mean, invstd, gamma, beta, N, C, HW, c, relu);
    }
}

/* The gradient reaching BN's output: dy, or with the fused ReLU dy where
 * the forward's output was positive (same float as the forward: bn_map). */
static inline float bn_out_grad(float dy, float x, float m, float a, float b, int relu)
{
    if (!relu)
        return dy;
    return bn_map(x, m, a, b) > 0 ? dy : 0.0f;
}

#define BN_CHUNK 256 /* a multiple of LANES: lane p % LANES as without chunks */

/* Channel c of bn_backward below; inlined twice, with relu a constant 0 or
 * 1, so neither copy carries the mask's test per element (it kept the
 * relu-free loops from vectorising). */
static inline __attribute__((always_inline)) void
bn_backward_channel(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                    const float *mean, const float *invstd, const float *gamma, const float *beta,
                    int N, int C, int64_t HW, int batch_mode, int dx_acc, const int relu, int c)
{
    double M = (double)N * HW;
    float m = mean[c], is = invstd[c], gm = gamma ? gamma[c] : 1.0f;
    float a = is * gm, b = beta ? beta[c] : 0.0f; /* as bn_apply */
    double sdy = 0, sdyx = 0; /* sum g, sum g * xhat (fixed lane order) */
    if (dgamma || dbeta || (dx && batch_mode)) {
        double a1[LANES] = {0}, a2[LANES] = {0};
        int64_t HW8 = HW - HW % LANES;
        /* with the ReLU, the masked gradient of a chunk of the row goes to
         * a float buffer first: the select vectorises in float, and mixed
         * with the double sums it did not */
        float gbuf[BN_CHUNK];
        for (int n = 0; n < N; n++) {
            const float *xc = x + ((int64_t)n * C + c) * HW;
            const float *gc = dy + ((int64_t)n * C + c) * HW;
            for (int64_t p0 = 0; p0 < HW8; p0 += BN_CHUNK) {
                int64_t p1 = p0 + BN_CHUNK < HW8 ? p0 + BN_CHUNK : HW8;
                const float *g = gc + p0;
                if (relu) {
                    for (int64_t p = p0; p < p1; p++)
                        gbuf[p - p0] = bn_out_grad(gc[p], xc[p], m, a, b, 1);
                    g = gbuf;
                }
                for (int64_t p = p0; p < p1; p += LANES)
                    for (int j = 0; j < LANES; j++) {
                        double xhat = (double)(xc[p + j] - m) * is;
                        a1[j] += g[p - p0 + j];
                        a2[j] += g[p - p0 + j] * xhat;
                    }
            }
            for (int64_t p = HW8; p < HW; p++) {
                float g = bn_out_grad(gc[p], xc[p], m, a, b, relu);
                double xhat = (double)(xc[p] - m) * is;
                a1[p - HW8] += g;
                a2[p - HW8] += g * xhat;
            }
        }
        sdy = lanes_total(a1);
        sdyx = lanes_total(a2);
    }
    if (dgamma)
        dgamma[c] += (float)sdyx;
    if (dbeta)
        dbeta[c] += (float)sdy;
    if (!dx)
        return;
    /* per element in float (the sums above are the precision-critical
     * part): a float loop vectorises twice as wide as a double one.
     * Eval mode: the statistics are constants, dx = a * g. */
    float mdy = batch_mode ? (float)(sdy / M) : 0.0f;
    float mdyx = batch_mode ? (float)(sdyx / M) : 0.0f;
    for (int n = 0; n < N; n++) {
        int64_t off = ((int64_t)n * C + c) * HW;
        const float *xc = x + off, *gc = dy + off;
        float *d = dx + off;
#define BN_DX(OP)                                                                                \
    do {                                                                                          \
        if (batch_mode)                                                                           \
            for (int64_t p = 0; p < HW; p++) {                                                    \
                float g = bn_out_grad(gc[p], xc[p], m, a, b, relu);                               \
                float xhat = (xc[p] - m) * is;                                                    \
                d[p] OP a * (g - mdy - xhat * mdyx);                                              \
            }                                                                                     \
        else                                                                                      \
            for (int64_t p = 0; p < HW; p++)                                                      \
                d[p] OP bn_out_grad(gc[p], xc[p], m, a, b, relu) * a;                             \
    } while (0)
        if (dx_acc)
            BN_DX(+=);
        else
            BN_DX(=);
#undef BN_DX
    }
}

/* Accumulates into dgamma, dbeta and (dx_acc 1) dx, or writes dx (dx_acc
 * 0); each may be NULL. In batch mode the statistics depend on x, which adds
 * the two mean terms to dx:
 *   dx = invstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * gamma.
 * relu: the op was relu(bn(x)), dy is the gradient after the ReLU. */
static void bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *mean, const float *invstd, const float *gamma,
                        const float *beta, int N, int C, int64_t HW, int batch_mode, int dx_acc,
                        int relu)
{
    AKT_PARALLEL_FOR((int64_t)C * N * HW)
    for (int c = 0; c < C; c++) {
        if (relu)
            bn_backward_channel(dx, dgamma, dbeta, dy, x, mean, invstd, gamma, beta, N, C, HW,
                                batch_mode, dx_acc, 1, c);
        else
            bn_backward_channel(dx, dgamma, dbeta, dy, x, mean, invstd, gamma, beta, N, C, HW,
                                batch_mode, dx_acc, 0, c);
    }
}

static void bn_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *x = n->in[0], *g = n->in[1], *b = n->in[2];
    int dx_acc = x->requires_grad ? akt_grad_claim(x) : 1;
    /* gamma and beta: C floats, zeroed rather than given write paths */
    if (g && g->requires_grad && !akt_grad_claim(g))
        memset(g->grad, 0, (size_t)g->n * sizeof(float));
    if (b && b->requires_grad && !akt_grad_claim(b))
        memset(b->grad, 0, (size_t)b->n * sizeof(float));
    bn_backward(x->requires_grad ? x->grad : NULL, g && g->requires_grad ? g->grad : NULL,
                b && b->requires_grad ? b->grad : NULL, n->out->grad, x->data, n->saved[0],
                n->saved[1], g ? g->data : NULL, b ? b->data : NULL, n->ip[0], n->ip[1],
                (int64_t)n->ip[2] * n->ip[3], n->ip[4], dx_acc, n->ip[5]);
}

static struct akt_tensor *batchnorm(struct akt_tape *t, struct akt_tensor *x,
                                    const struct akt_bn_params *p, enum akt_bn_mode mode, int relu)
{
    int N, C;
    int64_t HW;
    bn_dims(x, &N, &C, &HW);
    AKT_ASSERT(!p->gamma || p->gamma->n == C);
    AKT_ASSERT(!p->beta || p->beta->n == C);
    AKT_ASSERT(mode == AKT_BN_EVAL || mode == AKT_BN_BATCH);
    struct akt_tensor *y = akt_tensor_new_uninit(t, x->ndim, x->shape, 0); /* all written */
    /* kept in the arena: backward needs the statistics the forward used,
     * even after the running stats have moved */
    float *mean = akt_tape_alloc(t, (size_t)C * sizeof(float));
    float *invstd = akt_tape_alloc(t, (size_t)C * sizeof(float));
    const float *gd = p->gamma ? p->gamma->data : NULL, *bd = p->beta ? p->beta->data : NULL;
    if (mode == AKT_BN_EVAL) {
        AKT_ASSERT(p->running_mean && p->running_var);
        bn_forward_eval(y->data, mean, invstd, x->data, gd, bd, p->running_mean, p->running_var,
                        N, C, HW, p->eps, relu);
    } else {
        bn_forward_batch(y->data, mean, invstd, x->data, gd, bd, p->running_mean, p->running_var,
                         N, C, HW, p->eps, p->momentum, relu);
    }
    static const char *names[2][2] = {{"batchnorm_eval", "batchnorm_batch"},
                                      {"batchnorm_relu_eval", "batchnorm_relu_batch"}};
    struct akt_node *nd = akt_tape_push(t, bn_bw, names[relu][mode == AKT_BN_BATCH], y, x,
                                        p->gamma, p->beta, NULL);
    if (nd) {
        nd->flags = AKT_NODE_CLAIMS_GRADS;
        nd->saved[0] = mean;
        nd->saved[1] = invstd;
        nd->ip[0] = N;
        nd->ip[1] = C;
        /* HW split in two ints so 4-D maps of any size fit */
        nd->ip[2] = x->ndim == 4 ? x->shape[2] : 1;
        nd->ip[3] = x->ndim == 4 ? x->shape[3] : 1;
        nd->ip[4] = mode == AKT_BN_BATCH;
        nd->ip[5] = relu;
    }
    return y;
}

struct akt_tensor *akt_batchnorm(struct akt_tape *t, struct akt_tensor *x,
                                 const struct akt_bn_params *p, enum akt_bn_mode mode)
{
    return batchnorm(t, x, p, mode, 0);
}

struct akt_tensor *akt_batchnorm_relu(struct akt_tape *t, struct akt_tensor *x,
                                      const struct akt_bn_params *p, enum akt_bn_mode mode)
{
    return batchnorm(t, x, p, mode, 1);
}

/* ---------------------------------------------------------- batch stats --- */

static void stats_forward(float *mean, float *var, const float *x, int N, int C, int64_t HW)
{
    AKT_PARALLEL_FOR((int64_t)C * N * HW)
    for (int c = 0; c < C; c++) {
        double mu, v;
        channel_stats(x, N, C, HW, c, &mu, &v);
        mean[c] = (float)mu;
        var[c] = (float)v;
    }
}

/* d mean_c / dx = 1/M; add 0 writes dx (the first gradient into it) */
static void mean_backward(float *dx, const float *dmean, int N, int C, int64_t HW, int add)
{
    float inv = (float)(1.0 / ((double)N * HW));
    AKT_PARALLEL_FOR((int64_t)C * N * HW)
    for (int c = 0; c < C; c++) {
        float g = dmean[c] * inv;
        for (int n = 0; n < N; n++) {
            float *d = dx + ((int64_t)n * C + c) * HW;
            if (add)
                for (int64_t p = 0; p < HW; p++)
                    d[p] += g;
            else
                for (int64_t p = 0; p < HW; p++)
                    d[p] = g;
        }
    }
}

/* d var_c / dx = 2 (x - mean_c) / M; the path through the mean sums to zero.
 * add 0 writes dx. */
static void var_backward(float *dx, const float *dvar, const float *x, const float *mean, int N,
                         int C, int64_t HW, int add)
{
    double M = (double)N * HW;
    AKT_PARALLEL_FOR((int64_t)C * N * HW)
    for (int c = 0; c < C; c++) {
        double g = 2.0 * dvar[c] / M;
        float m = mean[c];
        for (int n = 0; n < N; n++) {
            int64_t off = ((int64_t)n * C + c) * HW;
            if (add)
                for (int64_t p = 0; p < HW; p++)
                    dx[off + p] += (float)(g * (double)(x[off + p] - m));
            else
                for (int64_t p = 0; p < HW; p++)
                    dx[off + p] = (float)(g * (double)(x[off + p] - m));
        }
    }
}

static void stats_mean_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    mean_backward(n->in[0]->grad, n->out->grad, n->ip[0], n->ip[1], (int64_t)n->ip[2] * n->ip[3],
                  akt_grad_claim(n->in[0]));
}

static void stats_var_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    var_backward(n->in[0]->grad, n->out->grad, n->in[0]->data, n->saved[0], n->ip[0], n->ip[1],
                 (int64_t)n->ip[2] * n->ip[3], akt_grad_claim(n->in[0]));
}

void akt_batch_stats(struct akt_tape *t, struct akt_tensor *x, struct akt_tensor **mean,
                     struct akt_tensor **var)
{
    int N, C;
    int64_t HW;
    bn_dims(x, &N, &C, &HW);
    struct akt_tensor *mu = akt_tensor_newv(t, 0, 1, C);
    struct akt_tensor *v = akt_tensor_newv(t, 0, 1, C);
    stats_forward(mu->data, v->data, x->data, N, C, HW);
    int h = x->ndim == 4 ? x->shape[2] : 1, w = x->ndim == 4 ? x->shape[3] : 1;
    struct akt_node *nd = akt_tape_push(t, stats_mean_bw, "batch_mean", mu, x, NULL, NULL, NULL);
    if (nd) {
        nd->flags = AKT_NODE_CLAIMS_GRADS;
        nd->ip[0] = N;
        nd->ip[1] = C;
        nd->ip[2] = h;
        nd->ip[3] = w;
    }
    nd = akt_tape_push(t, stats_var_bw, "batch_var", v, x, NULL, NULL, NULL);
    if (nd) {
        nd->flags = AKT_NODE_CLAIMS_GRADS;
        nd->saved[0] = mu->data; /* arena memory, stable until reset */
        nd->ip[0] = N;
        nd->ip[1] = C;
        nd->ip[2] = h;
        nd->ip[3] = w;
    }
    *mean = mu;
    *var = v;
}
