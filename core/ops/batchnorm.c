/* Batch normalisation (running or batch statistics) and per-channel batch statistics.
 *
 * x is [N,C,H,W] or [N,C]; channel c's elements are x[(n*C + c)*HW + p].
 * Every pass walks memory in order, image by image (a channel-major walk
 * reads 256-byte pieces 16 KB apart on 8x8 maps, at half the bandwidth).
 * Per-channel sums are taken in double over fixed blocks of BN_BLOCK images
 * (LANES partial sums each, element p of a row going to lane p % LANES),
 * and the blocks are added in order: the order depends only on the shape,
 * so results do not depend on the thread count. */
#include "internal.h"
#include "scratch.h"

#include <stdlib.h>

/* N, C, HW of a 2-D or 4-D input */
static void bn_dims(const struct akt_tensor *x, int *N, int *C, int64_t *HW)
{
    AKT_ASSERT(x->ndim == 2 || x->ndim == 4);
    *N = x->shape[0];
    *C = x->shape[1];
    *HW = x->ndim == 4 ? (int64_t)x->shape[2] * x->shape[3] : 1;
}

#define LANES AKT_LANES
#define BN_BLOCK 4   /* images per block of partial sums (fixed: thread-independent) */
#define BN_CHUNK 256 /* a multiple of LANES: lane p % LANES as without chunks */

static int n_blocks(int N) { return (N + BN_BLOCK - 1) / BN_BLOCK; }


/* Scratch for the block partials: [blocks][C][2][LANES] doubles */
static double *block_partials(int N, int C)
{
    size_t n = (size_t)n_blocks(N) * C * 2 * LANES;
    return (double *)akt_scratch(0, 2 * n); /* 64-byte aligned */
}

/* tot[c*2 + k] = the two sums of channel c over every block, in order */
static void blocks_total(const double *part, int N, int C, double *tot)
{
    int nb = n_blocks(N);
    for (int c = 0; c < C; c++)
        for (int k = 0; k < 2; k++) {
            double lane[LANES] = {0};
            for (int b = 0; b < nb; b++) {
                const double *v = part + (((size_t)b * C + c) * 2 + k) * LANES;
                for (int j = 0; j < LANES; j++)
                    lane[j] += v[j];
            }
            double t = 0;
            for (int j = 0; j < LANES; j++)
                t += lane[j];
            tot[c * 2 + k] = t;
        }
}

/* Block partials of sum x and sum x^2 per channel (x^2 of a float is exact
 * in double). */
static void stats_partials(const float *x, int N, int C, int64_t HW, double *part)
{
    int nb = n_blocks(N);
    AKT_PARALLEL_FOR((int64_t)N * C * HW)
    for (int b = 0; b < nb; b++) {
        double *pb = part + (size_t)b * C * 2 * LANES;
        memset(pb, 0, (size_t)C * 2 * LANES * sizeof(double));
        int64_t HW8 = HW - HW % LANES;
        int n1 = (b + 1) * BN_BLOCK < N ? (b + 1) * BN_BLOCK : N;
        for (int n = b * BN_BLOCK; n < n1; n++)
            for (int c = 0; c < C; c++) {
                const float *xc = x + ((int64_t)n * C + c) * HW;
                double *pa = pb + (size_t)c * 2 * LANES, *ps = pa + LANES;
                akt_lanes_d acc, sq;
                memcpy(&acc, pa, sizeof acc);
                memcpy(&sq, ps, sizeof sq);
                for (int64_t p = 0; p < HW8; p += LANES) {
                    akt_lanes_d v = akt_load_lanes(xc + p);
                    acc += v;
                    sq += v * v;
                }
                for (int64_t p = HW8; p < HW; p++) {
                    double v = xc[p];
                    acc[p - HW8] += v;
                    sq[p - HW8] += v * v;
                }
                memcpy(pa, &acc, sizeof acc);
                memcpy(ps, &sq, sizeof sq);
            }
    }
}

/* mean[c] and biased var[c] in one pass over x: var = E[x^2] - mean^2 in
 * double. The cancellation costs about log2(mean^2/var) of double's 53
 * bits, far below float resolution for any activation; a second pass over
 * x (tens of megabytes per BN at batch 128) is not. */
static void channel_stats(const float *x, int N, int C, int64_t HW, double *mean, double *var)
{
    double *part = block_partials(N, C);
    stats_partials(x, N, C, HW, part);
    double *t = malloc((size_t)C * 2 * sizeof(double));
    AKT_ASSERT(t != NULL);
    blocks_total(part, N, C, t);
    double M = (double)N * HW;
    for (int c = 0; c < C; c++) {
        double mu = t[c * 2] / M, v = t[c * 2 + 1] / M - mu * mu;
        mean[c] = mu;
        var[c] = v > 0 ? v : 0; /* rounding can leave a constant channel at -0-ish */
    }
    free(t);
}

/* The affine map of one channel, y = (x - m) * a + b, written once so that
 * forward and the fused ReLU's mask in backward compute the same float. */
static inline float bn_map(float x, float m, float a, float b) { return (x - m) * a + b; }
static inline float relu_f(float v) { return v > 0 ? v : 0.0f; }

/* y = (x - mean[c]) * a[c] + b[c] plane by plane, then relu if asked;
 * a[c] = invstd[c] * gamma[c] */
static void bn_apply(float *y, const float *x, const float *mean, const float *a, const float *b,
                     int N, int C, int64_t HW, int relu)
{
    int64_t planes = (int64_t)N * C;
    AKT_PARALLEL_FOR(planes * HW)
    for (int64_t i = 0; i < planes; i++) {
        int c = (int)(i % C);
        float m = mean[c], ac = a[c], bc = b[c];
        const float *xi = x + i * HW;
        float *yi = y + i * HW;
        if (relu)
            for (int64_t p = 0; p < HW; p++)
                yi[p] = relu_f(bn_map(xi[p], m, ac, bc));
        else
            for (int64_t p = 0; p < HW; p++)
                yi[p] = bn_map(xi[p], m, ac, bc);
    }
}

/* Fills mean/invstd (batch statistics, updating running_* in place when not
 * NULL, unbiased variance as PyTorch; or the running statistics in eval
 * mode) and writes y. */
static void bn_forward(float *y, float *mean, float *invstd, const float *x, const float *gamma,
                       const float *beta, float *running_mean, float *running_var, int N, int C,
                       int64_t HW, float eps, float momentum, int batch_mode, int relu)
{
    int64_t M = (int64_t)N * HW;
    float *ab = malloc((size_t)C * 2 * sizeof(float));
    double *st = malloc((size_t)C * 2 * sizeof(double));
    AKT_ASSERT(ab && st);
    if (batch_mode) {
        AKT_ASSERT(!running_var || M > 1); /* the unbiased variance needs two values */
        channel_stats(x, N, C, HW, st, st + C);
        for (int c = 0; c < C; c++) {
            double mu = st[c], var = st[C + c];
            mean[c] = (float)mu;
            invstd[c] = (float)(1.0 / sqrt(var + (double)eps));
            if (running_mean)
                running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mu);
            if (running_var) {
                double unbiased = var * (double)M / (double)(M - 1);
                running_var[c] = (float)((1.0 - momentum) * running_var[c] + momentum * unbiased);
            }
        }
    } else {
        for (int c = 0; c < C; c++) {
            mean[c] = running_mean[c];
            invstd[c] = (float)(1.0 / sqrt((double)running_var[c] + (double)eps));
        }
    }
    for (int c = 0; c < C; c++) {
        ab[c] = invstd[c] * (gamma ? gamma[c] : 1.0f);
        ab[C + c] = beta ? beta[c] : 0.0f;
    }
    bn_apply(y, x, mean, ab, ab + C, N, C, HW, relu);
    free(ab);
    free(st);
}

/* The gradient reaching BN's output: dy, or with the fused ReLU dy where
 * the forward's output was positive (same float as the forward: bn_map). */
static inline float bn_out_grad(float dy, float x, float m, float a, float b, int relu)
{
    if (!relu)
        return dy;
    return bn_map(x, m, a, b) > 0 ? dy : 0.0f;
}

/* Block partials of sum g and sum g * xhat per channel, g = bn_out_grad.
 * Inlined twice with relu a constant, so the relu-free copy carries no
 * mask; with the ReLU the masked g of a chunk goes to a float buffer first
 * (the select vectorises in float, mixed with the double sums it did not). */
static inline __attribute__((always_inline)) void
grad_partials_block(double *pb, const float *dy, const float *x, const float *mean,
                    const float *invstd, const float *a, const float *bb, int n0, int n1, int C,
                    int64_t HW, const int relu)
{
    int64_t HW8 = HW - HW % LANES;
    float gbuf[BN_CHUNK];
    for (int n = n0; n < n1; n++)
        for (int c = 0; c < C; c++) {
            float m = mean[c], is = invstd[c], ac = a[c], bc = bb[c];
            const float *xc = x + ((int64_t)n * C + c) * HW;
            const float *gc = dy + ((int64_t)n * C + c) * HW;
            double *p1 = pb + (size_t)c * 2 * LANES, *p2 = p1 + LANES;
            akt_lanes_d a1, a2;
            memcpy(&a1, p1, sizeof a1);
            memcpy(&a2, p2, sizeof a2);
            const akt_lanes_d isv = {is, is, is, is, is, is, is, is};
            const akt_lanes_f mf = {m, m, m, m, m, m, m, m};
            for (int64_t q0 = 0; q0 < HW8; q0 += BN_CHUNK) {
                int64_t q1 = q0 + BN_CHUNK < HW8 ? q0 + BN_CHUNK : HW8;
                const float *g = gc + q0;
                if (relu) {
                    for (int64_t p = q0; p < q1; p++)
                        gbuf[p - q0] = bn_out_grad(gc[p], xc[p], m, ac, bc, 1);
                    g = gbuf;
                }
                for (int64_t p = q0; p < q1; p += LANES) {
                    /* xhat = (double)(x - m) * is: the float difference, as
                     * the per-element terms below use */
                    akt_lanes_f xf;
                    memcpy(&xf, xc + p, sizeof xf);
                    akt_lanes_d xhat = __builtin_convertvector(xf - mf, akt_lanes_d) * isv;
                    akt_lanes_d gv = akt_load_lanes(g + (p - q0));
                    a1 += gv;
                    a2 += gv * xhat;
                }
            }
            for (int64_t p = HW8; p < HW; p++) {
                float g = bn_out_grad(gc[p], xc[p], m, ac, bc, relu);
                double xhat = (double)(xc[p] - m) * is;
                a1[p - HW8] += g;
                a2[p - HW8] += g * xhat;
            }
            memcpy(p1, &a1, sizeof a1);
            memcpy(p2, &a2, sizeof a2);
        }
}

static void grad_partials(double *part, const float *dy, const float *x, const float *mean,
                          const float *invstd, const float *a, const float *bb, int N, int C,
                          int64_t HW, int relu)
{
    int nb = n_blocks(N);
    AKT_PARALLEL_FOR((int64_t)N * C * HW)
    for (int b = 0; b < nb; b++) {
        double *pb = part + (size_t)b * C * 2 * LANES;
        memset(pb, 0, (size_t)C * 2 * LANES * sizeof(double));
        int n1 = (b + 1) * BN_BLOCK < N ? (b + 1) * BN_BLOCK : N;
        if (relu)
            grad_partials_block(pb, dy, x, mean, invstd, a, bb, b * BN_BLOCK, n1, C, HW, 1);
        else
            grad_partials_block(pb, dy, x, mean, invstd, a, bb, b * BN_BLOCK, n1, C, HW, 0);
    }
}

/* dx (+)= a * (g - mdy - xhat * mdyx) plane by plane (mdy = mdyx = 0 in
 * eval mode, where the statistics are constants); inlined with relu
 * constant as above. */
static inline __attribute__((always_inline)) void
dx_plane(float *d, const float *gc, const float *xc, int64_t HW, float m, float is, float ac,
         float bc, float mdy, float mdyx, int batch_mode, int add, const int relu)
{
    if (batch_mode)
        AKT_GRAD_LOOP(HW, add, d,
                      ac * (bn_out_grad(gc[i], xc[i], m, ac, bc, relu) - mdy -
                            (xc[i] - m) * is * mdyx));
    else
        AKT_GRAD_LOOP(HW, add, d, bn_out_grad(gc[i], xc[i], m, ac, bc, relu) * ac);
}

/* Accumulates into dgamma, dbeta and (dx_acc 1) dx, or writes dx (dx_acc
 * 0); each may be NULL. In batch mode the statistics depend on x, which adds
 * the two mean terms to dx:
 *   dx = invstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * gamma.
 * relu: the op was relu(bn(x)), dy is the gradient after the ReLU. The sums
 * are in double, the per-element terms in float (twice the vector width;
 * the sums are the precision-critical part). */
static void bn_backward(float *dx, float *dgamma, float *dbeta, const float *dy, const float *x,
                        const float *mean, const float *invstd, const float *gamma,
                        const float *beta, int N, int C, int64_t HW, int batch_mode, int dx_acc,
                        int relu)
{
    double M = (double)N * HW;
    /* per channel: a, b (as bn_forward), mean(g), mean(g * xhat) */
    float *cf = malloc((size_t)C * 4 * sizeof(float));
    double *tot = malloc((size_t)C * 2 * sizeof(double));
    AKT_ASSERT(cf && tot);
    float *a = cf, *bb = cf + C, *mdy = cf + 2 * C, *mdyx = cf + 3 * C;
    for (int c = 0; c < C; c++) {
        a[c] = invstd[c] * (gamma ? gamma[c] : 1.0f);
        bb[c] = beta ? beta[c] : 0.0f;
        mdy[c] = mdyx[c] = 0.0f;
    }
    if (dgamma || dbeta || (dx && batch_mode)) {
        double *part = block_partials(N, C);
        grad_partials(part, dy, x, mean, invstd, a, bb, N, C, HW, relu);
        blocks_total(part, N, C, tot);
        for (int c = 0; c < C; c++) {
            if (dgamma)
                dgamma[c] += (float)tot[c * 2 + 1];
            if (dbeta)
                dbeta[c] += (float)tot[c * 2];
            if (batch_mode) {
                mdy[c] = (float)(tot[c * 2] / M);
                mdyx[c] = (float)(tot[c * 2 + 1] / M);
            }
        }
    }
    if (dx) {
        int64_t planes = (int64_t)N * C;
        AKT_PARALLEL_FOR(planes * HW)
        for (int64_t i = 0; i < planes; i++) {
            int c = (int)(i % C);
            if (relu)
                dx_plane(dx + i * HW, dy + i * HW, x + i * HW, HW, mean[c], invstd[c], a[c], bb[c],
                         mdy[c], mdyx[c], batch_mode, dx_acc, 1);
            else
                dx_plane(dx + i * HW, dy + i * HW, x + i * HW, HW, mean[c], invstd[c], a[c], bb[c],
                         mdy[c], mdyx[c], batch_mode, dx_acc, 0);
        }
    }
    free(cf);
    free(tot);
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
    AKT_ASSERT(mode == AKT_BN_BATCH || (p->running_mean && p->running_var));
    bn_forward(y->data, mean, invstd, x->data, gd, bd, p->running_mean, p->running_var, N, C, HW,
               p->eps, p->momentum, mode == AKT_BN_BATCH, relu);
    static const char *names[2][2] = {{"batchnorm_eval", "batchnorm_batch"},
                                      {"batchnorm_relu_eval", "batchnorm_relu_batch"}};
    struct akt_node *nd = akt__push_claiming(t, bn_bw, names[relu][mode == AKT_BN_BATCH], y, x,
                                             p->gamma, p->beta);
    if (nd) {
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
    double *st = malloc((size_t)C * 2 * sizeof(double));
    AKT_ASSERT(st != NULL);
    channel_stats(x, N, C, HW, st, st + C);
    for (int c = 0; c < C; c++) {
        mean[c] = (float)st[c];
        var[c] = (float)st[C + c];
    }
    free(st);
}

/* d mean_c / dx = 1/M, plane by plane; add 0 writes dx (the first
 * gradient into it) */
static void mean_backward(float *dx, const float *dmean, int N, int C, int64_t HW, int add)
{
    float inv = (float)(1.0 / ((double)N * HW));
    int64_t planes = (int64_t)N * C;
    AKT_PARALLEL_FOR(planes * HW)
    for (int64_t k = 0; k < planes; k++) {
        float g = dmean[k % C] * inv, *d = dx + k * HW;
        AKT_GRAD_LOOP(HW, add, d, g);
    }
}

/* d var_c / dx = 2 (x - mean_c) / M, plane by plane; the path through the
 * mean sums to zero. add 0 writes dx. */
static void var_backward(float *dx, const float *dvar, const float *x, const float *mean, int N,
                         int C, int64_t HW, int add)
{
    double M = (double)N * HW;
    int64_t planes = (int64_t)N * C;
    AKT_PARALLEL_FOR(planes * HW)
    for (int64_t k = 0; k < planes; k++) {
        int c = (int)(k % C);
        double g = 2.0 * dvar[c] / M;
        float m = mean[c], *d = dx + k * HW;
        const float *xk = x + k * HW;
        AKT_GRAD_LOOP(HW, add, d, (float)(g * (double)(xk[i] - m)));
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
    struct akt_node *nd = akt__push_claiming(t, stats_mean_bw, "batch_mean", mu, x, NULL, NULL);
    if (nd) {
        nd->ip[0] = N;
        nd->ip[1] = C;
        nd->ip[2] = h;
        nd->ip[3] = w;
    }
    nd = akt__push_claiming(t, stats_var_bw, "batch_var", v, x, NULL, NULL);
    if (nd) {
        nd->saved[0] = mu->data; /* arena memory, stable until reset */
        nd->ip[0] = N;
        nd->ip[1] = C;
        nd->ip[2] = h;
        nd->ip[3] = w;
    }
    *mean = mu;
    *var = v;
}
