/* The GDFQ generator trunk, its initialisation, Adam and the BNS loss. */
#include "trunk.h"

#include "akt/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Reserve an array of len floats; 16-float padding keeps every array
 * 64-byte aligned inside the aligned allocation. */
static int64_t reserve(struct gen_net *g, int64_t len)
{
    int64_t off = g->n;
    g->n += (len + 15) & ~(int64_t)15;
    return off;
}

/* PyTorch's default for Conv2d/Linear: kaiming_uniform(a=sqrt 5) on the
 * weight, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and the same bound for
 * the bias. */
static void init_uniform(float *p, int64_t len, int fan_in, struct akt_rng *r)
{
    double bound = 1.0 / sqrt((double)fan_in);
    for (int64_t i = 0; i < len; i++)
        p[i] = (float)((2 * akt_rng_uniform(r) - 1) * bound);
}

static void init_fill(float *p, int64_t len, float v)
{
    for (int64_t i = 0; i < len; i++)
        p[i] = v;
}

int gen_net_init(struct gen_net *g, int classes, int latent, int dm_dim, float beta1, float beta2,
                 struct akt_rng *r, struct akt_error *e)
{
    memset(g, 0, sizeof *g);
    g->classes = classes;
    g->latent = latent;
    g->dm_dim = dm_dim;
    g->l1_in = dm_dim > 0 ? dm_dim : latent;
    g->beta1 = beta1;
    g->beta2 = beta2;
    g->eps = 1e-8f;
    const int64_t l1_out = (int64_t)GEN_CH0 * GEN_INIT_SIZE * GEN_INIT_SIZE;

    g->emb = reserve(g, (int64_t)classes * latent);
    if (dm_dim > 0) {
        g->dm_w = reserve(g, (int64_t)dm_dim * latent);
        g->dm_b = reserve(g, dm_dim);
    }
    g->l1_w = reserve(g, l1_out * g->l1_in);
    g->l1_b = reserve(g, l1_out);
    g->bn0_g = reserve(g, GEN_CH0);
    g->bn0_b = reserve(g, GEN_CH0);
    g->c1_w = reserve(g, 128 * 128 * 9);
    g->c1_b = reserve(g, 128);
    g->bn1_g = reserve(g, 128);
    g->bn1_b = reserve(g, 128);
    g->c2_w = reserve(g, 64 * 128 * 9);
    g->c2_b = reserve(g, 64);
    g->bn2_g = reserve(g, 64);
    g->bn2_b = reserve(g, 64);
    g->c3_w = reserve(g, 3 * 64 * 9);
    g->c3_b = reserve(g, 3);

    /* 3n + 1 rounded up to a multiple of 64 bytes, as aligned_alloc wants */
    size_t state_bytes = (((size_t)(3 * g->n + 1) * sizeof(float)) + 63) & ~(size_t)63;
    g->state = aligned_alloc(64, state_bytes);
    g->grads = aligned_alloc(64, (size_t)g->n * sizeof(float));
    if (!g->state || !g->grads) {
        gen_net_free(g);
        return akt_error_set(e, AKT_ENOMEM, "generator", "cannot allocate %lld parameters",
                             (long long)g->n);
    }
    memset(g->state, 0, state_bytes);
    memset(g->grads, 0, (size_t)g->n * sizeof(float));
    g->params = g->state;
    g->adam_m = g->state + g->n;
    g->adam_v = g->state + 2 * g->n;
    g->step = g->state + 3 * g->n;

    /* drawn in layout order, so a seed fixes the whole generator */
    float *p = g->params;
    for (int64_t i = 0; i < (int64_t)classes * latent; i++)
        p[g->emb + i] = akt_rng_normal(r); /* nn.Embedding: N(0,1) */
    if (dm_dim > 0) {
        init_uniform(p + g->dm_w, (int64_t)dm_dim * latent, latent, r);
        init_uniform(p + g->dm_b, dm_dim, latent, r);
    }
    init_uniform(p + g->l1_w, l1_out * g->l1_in, g->l1_in, r);
    init_uniform(p + g->l1_b, l1_out, g->l1_in, r);
    init_fill(p + g->bn0_g, GEN_CH0, 1.0f);
    init_uniform(p + g->c1_w, 128 * 128 * 9, 128 * 9, r);
    init_uniform(p + g->c1_b, 128, 128 * 9, r);
    init_fill(p + g->bn1_g, 128, 1.0f);
    init_uniform(p + g->c2_w, 64 * 128 * 9, 128 * 9, r);
    init_uniform(p + g->c2_b, 64, 128 * 9, r);
    init_fill(p + g->bn2_g, 64, 1.0f);
    init_uniform(p + g->c3_w, 3 * 64 * 9, 64 * 9, r);
    init_uniform(p + g->c3_b, 3, 64 * 9, r);
    return AKT_OK;
}

void gen_net_free(struct gen_net *g)
{
    free(g->state);
    free(g->grads);
    g->state = g->grads = NULL;
}

struct akt_tensor *gen_param(struct akt_tape *t, struct gen_net *g, int64_t off, int ndim,
                             const int *shape)
{
    struct akt_tensor *p = akt_tape_alloc(t, sizeof *p);
    *p = akt_tensor_wrap(g->params + off, g->grads + off, ndim, shape);
    AKT_ASSERT(off + p->n <= g->n);
    return p;
}

/* BN with batch statistics; running statistics are never used by a
 * generator, so none are kept. */
static struct akt_tensor *bn_batch(struct akt_tape *t, struct akt_tensor *x,
                                   struct akt_tensor *gamma, struct akt_tensor *beta, float eps)
{
    struct akt_bn_params p = {.gamma = gamma, .beta = beta, .eps = eps, .momentum = 0.1f};
    return akt_batchnorm(t, x, &p, AKT_BN_BATCH);
}

struct akt_tensor *gen_standardise(struct akt_tape *t, struct akt_tensor *x4, float eps)
{
    return bn_batch(t, x4, NULL, NULL, eps);
}

struct akt_tensor *gen_trunk(struct gen_net *g, struct akt_tape *t, struct akt_tensor *u)
{
    AKT_ASSERT(u->ndim == 2 && u->shape[1] == g->l1_in);
    const int B = u->shape[0];
    const int l1_out = GEN_CH0 * GEN_INIT_SIZE * GEN_INIT_SIZE;
    const int c128 = 128, c64 = 64, c3 = 3;

    struct akt_tensor *h =
        akt_linear(t, u, gen_param(t, g, g->l1_w, 2, (int[]){l1_out, g->l1_in}),
                   gen_param(t, g, g->l1_b, 1, &l1_out));
    h = akt_view(t, h, 4, (int[]){B, GEN_CH0, GEN_INIT_SIZE, GEN_INIT_SIZE});
    h = bn_batch(t, h, gen_param(t, g, g->bn0_g, 1, &c128), gen_param(t, g, g->bn0_b, 1, &c128),
                 1e-5f);
    h = akt_upsample2x(t, h);
    h = akt_conv2d(t, h, gen_param(t, g, g->c1_w, 4, (int[]){128, 128, 3, 3}),
                   gen_param(t, g, g->c1_b, 1, &c128), 1, 1);
    /* BatchNorm2d(128, 0.8): the original passes 0.8 as eps, not momentum */
    h = bn_batch(t, h, gen_param(t, g, g->bn1_g, 1, &c128), gen_param(t, g, g->bn1_b, 1, &c128),
                 0.8f);
    h = akt_leaky_relu(t, h, 0.2f);
    h = akt_upsample2x(t, h);
    h = akt_conv2d(t, h, gen_param(t, g, g->c2_w, 4, (int[]){64, 128, 3, 3}),
                   gen_param(t, g, g->c2_b, 1, &c64), 1, 1);
    h = bn_batch(t, h, gen_param(t, g, g->bn2_g, 1, &c64), gen_param(t, g, g->bn2_b, 1, &c64),
                 0.8f);
    h = akt_leaky_relu(t, h, 0.2f);
    h = akt_conv2d(t, h, gen_param(t, g, g->c3_w, 4, (int[]){3, 64, 3, 3}),
                   gen_param(t, g, g->c3_b, 1, &c3), 1, 1);
    h = akt_tanh(t, h);
    return bn_batch(t, h, NULL, NULL, 1e-5f);
}

void gen_net_step(struct gen_net *g, float lr)
{
    /* the step counter is a float in the state so the checkpoint stays one
     * array; exact up to 2^24 steps */
    *g->step += 1.0f;
    akt_adam_step(g->params, g->grads, g->adam_m, g->adam_v, g->n, lr, g->beta1, g->beta2, g->eps,
                  (int64_t)*g->step);
    memset(g->grads, 0, (size_t)g->n * sizeof(float));
}

void gen_net_step_base(struct gen_net *g, float base_lr, float lr)
{
    double ratio = (double)base_lr / GEN_DEFAULT_LR;
    gen_net_step(g, ratio == 1.0 ? lr : (float)(lr * ratio));
}

struct akt_tensor *gen_noise(struct akt_tape *t, struct akt_rng *r, int rows, int cols)
{
    struct akt_tensor *z = akt_tensor_newv(t, 0, 2, rows, cols);
    for (int64_t i = 0; i < z->n; i++)
        z->data[i] = akt_rng_normal(r);
    return z;
}

int *gen_labels(struct akt_tape *t, struct akt_rng *r, int n, int classes)
{
    int *y = akt_tape_alloc(t, (size_t)n * sizeof(int));
    for (int i = 0; i < n; i++)
        y[i] = (int)akt_rng_below(r, (uint32_t)classes);
    return y;
}

struct akt_tensor *gen_gdfq_sample(struct gen_net *g, struct akt_tape *t, struct akt_rng *r,
                                   int batch, int **labels)
{
    struct akt_tensor *z = gen_noise(t, r, batch, g->latent);
    *labels = gen_labels(t, r, batch, g->classes);
    struct akt_tensor *emb = gen_param(t, g, g->emb, 2, (int[]){g->classes, g->latent});
    return gen_trunk(g, t, akt_mul(t, akt_embedding(t, emb, *labels, batch), z));
}

struct akt_tensor *gen_bns_loss(struct akt_tape *t, const struct akt_resnet *teacher,
                                const struct akt_resnet_out *out, struct akt_error *e)
{
    if (!teacher || out->n_bn <= 0) {
        akt_error_set(e, AKT_EINVAL, "generator loss", "no teacher BN statistics to match");
        return NULL;
    }
    struct akt_tensor *acc = NULL;
    for (int l = 0; l < out->n_bn; l++) {
        struct akt_tensor *x = out->bn_inputs[l];
        int idx = out->bn_index[l];
        int C = x->shape[1];
        if (idx < 0 || idx + 3 >= teacher->n_params || teacher->params[idx + 2].n != C ||
            teacher->params[idx + 3].n != C) {
            akt_error_set(e, AKT_ESHAPE, "generator loss",
                          "BN input %d (%d channels) does not match the teacher's parameter %d",
                          l, C, idx);
            return NULL;
        }
        struct akt_tensor *mu, *var;
        akt_batch_stats(t, x, &mu, &var);
        const float *rmd = teacher->values + teacher->params[idx + 2].offset;
        const float *rvd = teacher->values + teacher->params[idx + 3].offset;
        struct akt_tensor *rm = akt_tensor_from(t, rmd, 1, &C);
        struct akt_tensor *rv = akt_tensor_from(t, rvd, 1, &C);
        struct akt_tensor *dm = akt_mean(t, akt_square(t, akt_sub(t, mu, rm)), 0, 1);
        struct akt_tensor *dv = akt_mean(t, akt_square(t, akt_sub(t, var, rv)), 0, 1);
        struct akt_tensor *term = akt_add(t, dm, dv);
        acc = acc ? akt_add(t, acc, term) : term;
    }
    return akt_scale(t, acc, 1.0f / (float)out->n_bn, 0.0f);
}
