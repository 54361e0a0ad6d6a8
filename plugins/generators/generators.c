/* Generator plugins (SPEC 3): gdfq, qimera and adadfq, one module.
 *
 * All three share the GDFQ trunk (trunk.c); they differ in how the latent u
 * is made (sample) and in the generator loss (loss):
 *   gdfq    u = E[y] * z;                       L = CE(z_T, y) + 0.1 L_BNS
 *   qimera  u = standardise(E[y] + z), or with probability p a per-sample
 *           mixture of K standardised slots;   L = softCE(z_T, y~) + 0.1 L_BNS
 *   adadfq  u as gdfq;                          L = h + beta L_bal + gamma L_BNS
 * Every coefficient is a parameter; the defaults are the papers' code. */
#include "trunk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum gen_method { GEN_GDFQ, GEN_QIMERA, GEN_ADADFQ };

/* Parameter indices. The first five are common to the three tables. */
enum {
    P_LATENT = 0,
    P_LR,
    P_BNS, /* adadfq calls it gamma, as the SPEC does */
    P_BETA1,
    P_BETA2,
    /* qimera */
    P_QM_PSUP = 5,
    P_QM_K,
    P_QM_DM,
    P_QM_DMDIM,
    P_QM_EINIT,
    /* adadfq */
    P_AD_BETA = 5,
    P_AD_ALPHA_DS,
    P_AD_ALPHA_AS,
    P_AD_LAMBDA_L,
    P_AD_LAMBDA_U,
};

enum { EINIT_AUTO = 0, EINIT_RANDOM = 1, EINIT_TEACHER = 2 };

static const struct akt_param_def gdfq_params[] = {
    GEN_COMMON_PARAMS(100, "bns", 0.1, "weight of the BN-statistics loss"),
};

static const struct akt_param_def qimera_params[] = {
    GEN_COMMON_PARAMS(64, "bns", 0.1, "weight of the BN-statistics loss"),
    {.key = "p_superpose", .type = AKT_PT_FLOAT, .def = 0.4, .lo = 0, .hi = 1,
     .help = "probability that an iteration's batch is made of superposed classes"},
    {.key = "K", .type = AKT_PT_INT, .def = 0, .lo = 0, .hi = 10000,
     .help = "classes per superposed sample; 0 = auto (2 for <=10 classes, else 10 at <=4 bits, "
             "50 above)"},
    {.key = "disentangle", .type = AKT_PT_BOOL, .def = 0, .lo = 0, .hi = 1,
     .help = "disentanglement mapping: a linear latent->dm_dim on each slot before mixing"},
    {.key = "dm_dim", .type = AKT_PT_INT, .def = 100, .lo = 1, .hi = 4096,
     .help = "output width of the disentanglement mapping"},
    {.key = "embed_init", .type = AKT_PT_CHOICE, .def = EINIT_AUTO,
     .choices = "auto|random|teacher_fc",
     .help = "embedding init: auto = the teacher's FC weight for 100 classes when it fits, else "
             "N(0,1)"},
};

static const struct akt_param_def adadfq_params[] = {
    GEN_COMMON_PARAMS(100, "gamma", 1.0, "weight of the BN-statistics loss (gamma)"),
    {.key = "beta", .type = AKT_PT_FLOAT, .def = 1.0, .lo = 0, .hi = 1e6,
     .help = "weight of the balance loss L_bal"},
    {.key = "alpha_ds", .type = AKT_PT_FLOAT, .def = 0.2, .lo = 0, .hi = 1e6,
     .help = "L_bal weight of CE(z_T - z_Q, y)"},
    {.key = "alpha_as", .type = AKT_PT_FLOAT, .def = 0.1, .lo = 0, .hi = 1e6,
     .help = "L_bal weight of CE(z_T + z_Q, y)"},
    {.key = "lambda_l", .type = AKT_PT_FLOAT, .def = 0.1, .lo = 0, .hi = 1,
     .help = "lower bound of the normalised disagreement entropy"},
    {.key = "lambda_u", .type = AKT_PT_FLOAT, .def = 0.8, .lo = 0, .hi = 1,
     .help = "upper bound of the normalised disagreement entropy"},
};

#define N_PARAMS(a) ((int)(sizeof(a) / sizeof((a)[0])))

struct gen_self {
    enum gen_method method;
    struct gen_net net;
    int classes;
    float base_lr, w_bns;
    /* qimera */
    float p_sup;
    int K, dm;
    /* adadfq */
    float beta, alpha_ds, alpha_as, lambda_l, lambda_u;
};

static double param(const struct akt_param_values *v, const struct akt_param_def *defs, int n,
                    int i)
{
    AKT_ASSERT(i < n);
    return v && i < v->n ? v->v[i] : defs[i].def;
}

static void metric(const struct akt_host *h, const char *name, double value)
{
    if (h->metric)
        h->metric(h, name, value);
}

/* SPEC 3: K = 2 for CIFAR-10; 10 (4-bit) or 50 (5-bit) for CIFAR-100. Qimera
 * has no 3-bit CIFAR-100 setting; below 5 bits we keep the 4-bit value. */
static int qimera_auto_k(int classes, int wbits)
{
    if (classes <= 10)
        return 2;
    return wbits >= 5 ? 50 : 10;
}

static void *create(enum gen_method method, const struct akt_param_def *defs, int n,
                    const struct akt_host *h, const struct akt_param_values *v,
                    struct akt_error *e)
{
    if (h->num_classes < 2) {
        akt_error_set(e, AKT_EINVAL, "generator", "need at least 2 classes, got %d",
                      h->num_classes);
        return NULL;
    }
    struct gen_self *s = calloc(1, sizeof *s);
    if (!s) {
        akt_error_set(e, AKT_ENOMEM, "generator", "out of memory");
        return NULL;
    }
    s->method = method;
    s->classes = h->num_classes;
    int latent = (int)param(v, defs, n, P_LATENT);
    s->base_lr = (float)param(v, defs, n, P_LR);
    s->w_bns = (float)param(v, defs, n, P_BNS);
    float b1 = (float)param(v, defs, n, P_BETA1), b2 = (float)param(v, defs, n, P_BETA2);
    int dm_dim = 0, einit = EINIT_RANDOM;
    if (method == GEN_QIMERA) {
        s->p_sup = (float)param(v, defs, n, P_QM_PSUP);
        s->K = (int)param(v, defs, n, P_QM_K);
        if (s->K == 0)
            s->K = qimera_auto_k(s->classes, h->wbits);
        s->dm = param(v, defs, n, P_QM_DM) != 0;
        dm_dim = s->dm ? (int)param(v, defs, n, P_QM_DMDIM) : 0;
        einit = (int)param(v, defs, n, P_QM_EINIT);
        /* A superposed batch holds batch x K slot rows of the latent (or
         * dm_dim) width in about 12 buffers (noise, embedding, sum,
         * standardised, mapped, weights, product and their gradients;
         * 10 measured): refuse a K that cannot fit before any is made. */
        int width = dm_dim > latent ? dm_dim : latent;
        if (akt_mem_check("generator.K", s->K, 12.0 * 4.0 * h->batch * width, 0,
                          "qimera's superposed slots (batch x K x width floats, 12 buffers)",
                          e) != AKT_OK) {
            free(s);
            return NULL;
        }
    } else if (method == GEN_ADADFQ) {
        s->beta = (float)param(v, defs, n, P_AD_BETA);
        s->alpha_ds = (float)param(v, defs, n, P_AD_ALPHA_DS);
        s->alpha_as = (float)param(v, defs, n, P_AD_ALPHA_AS);
        s->lambda_l = (float)param(v, defs, n, P_AD_LAMBDA_L);
        s->lambda_u = (float)param(v, defs, n, P_AD_LAMBDA_U);
    }
    if (gen_net_init(&s->net, s->classes, latent, dm_dim, b1, b2, h->rng, e) != AKT_OK) {
        free(s);
        return NULL;
    }
    if (method == GEN_QIMERA && einit != EINIT_RANDOM) {
        /* Qimera starts E from the teacher's classifier rows for CIFAR-100
         * (its class embeddings then live in the teacher's feature space) */
        const struct akt_param *fc =
            h->teacher ? akt_resnet_param(h->teacher, "linear.weight") : NULL;
        int fits = fc && fc->ndim == 2 && fc->shape[0] == s->classes && fc->shape[1] == latent;
        if (fits && (einit == EINIT_TEACHER || s->classes == 100)) {
            memcpy(s->net.params + s->net.emb, h->teacher->values + fc->offset,
                   (size_t)fc->n * sizeof(float));
        } else if (einit == EINIT_TEACHER) {
            akt_error_set(e, AKT_EINVAL, "generator.embed_init",
                          "teacher_fc needs the teacher's linear.weight of shape [%d,%d]",
                          s->classes, latent);
            gen_net_free(&s->net);
            free(s);
            return NULL;
        }
    }
    return s;
}

static void *gdfq_create(const struct akt_host *h, const struct akt_param_values *v,
                         struct akt_error *e)
{
    return create(GEN_GDFQ, gdfq_params, N_PARAMS(gdfq_params), h, v, e);
}
static void *qimera_create(const struct akt_host *h, const struct akt_param_values *v,
                           struct akt_error *e)
{
    return create(GEN_QIMERA, qimera_params, N_PARAMS(qimera_params), h, v, e);
}
static void *adadfq_create(const struct akt_host *h, const struct akt_param_values *v,
                           struct akt_error *e)
{
    return create(GEN_ADADFQ, adadfq_params, N_PARAMS(adadfq_params), h, v, e);
}

static void destroy(void *self)
{
    struct gen_self *s = self;
    if (!s)
        return;
    gen_net_free(&s->net);
    free(s);
}

/* ------------------------------------------------------------- sample --- */

static struct akt_tensor *embed_table(struct akt_tape *t, struct gen_self *s)
{
    return gen_param(t, &s->net, s->net.emb, 2, (int[]){s->classes, s->net.latent});
}

/* Qimera's disentanglement mapping, rows [n, latent] -> [n, dm_dim]. */
static struct akt_tensor *dm_map(struct akt_tape *t, struct gen_self *s, struct akt_tensor *x)
{
    const struct gen_net *g = &s->net;
    return akt_linear(t, x, gen_param(t, &s->net, g->dm_w, 2, (int[]){g->dm_dim, g->latent}),
                      gen_param(t, &s->net, g->dm_b, 1, &g->dm_dim));
}

/* Qimera, plain batch: u = standardise(E[y] + z) per sample over its dims.
 * The official code runs BatchNorm1d(affine=False) on (E[y] + z).T, i.e. on
 * [D, B] with B as channels; a [1,B,D,1] view gives the same grouping. */
static struct akt_tensor *qimera_plain(struct akt_tape *t, struct gen_self *s,
                                       const struct akt_host *h, int B, int **labels)
{
    const int D = s->net.latent;
    struct akt_tensor *z = gen_noise(t, h->rng, B, D);
    *labels = gen_labels(t, h->rng, B, s->classes);
    struct akt_tensor *e = akt_add(t, akt_embedding(t, embed_table(t, s), *labels, B), z);
    e = gen_standardise(t, akt_view(t, e, 4, (int[]){1, B, D, 1}), 1e-5f);
    e = akt_view(t, e, 2, (int[]){B, D});
    return s->dm ? dm_map(t, s, e) : e;
}

/* Qimera, superposed batch: K labels, noises and mixing weights per sample.
 * Slot k of every sample is standardised over (batch, dims): the official
 * BatchNorm1d on the [D, K, B] transpose has K channels; a [B,K,D,1] view
 * of the [B*K, D] rows groups the same elements. Fills the soft targets. */
static struct akt_tensor *qimera_mixed(struct akt_tape *t, struct gen_self *s,
                                       const struct akt_host *h, int B, int **labels,
                                       struct akt_tensor **target)
{
    const int D = s->net.latent, K = s->K, C = s->classes;
    struct akt_tensor *z = gen_noise(t, h->rng, B * K, D);
    int *ys = gen_labels(t, h->rng, B * K, C);
    /* lambda = softmax(g), g ~ N(0, I_K) per sample, in double */
    float *lam = akt_tape_alloc(t, (size_t)B * (size_t)K * sizeof(float));
    double *g = akt_tape_alloc(t, (size_t)K * sizeof(double));
    for (int b = 0; b < B; b++) {
        double mx = -INFINITY, sum = 0;
        for (int k = 0; k < K; k++) {
            g[k] = akt_rng_normal(h->rng);
            mx = g[k] > mx ? g[k] : mx;
        }
        for (int k = 0; k < K; k++)
            sum += (g[k] = exp(g[k] - mx));
        for (int k = 0; k < K; k++)
            lam[b * K + k] = (float)(g[k] / sum);
    }
    struct akt_tensor *e = akt_add(t, akt_embedding(t, embed_table(t, s), ys, B * K), z);
    e = gen_standardise(t, akt_view(t, e, 4, (int[]){B, K, D, 1}), 1e-5f);
    e = akt_view(t, e, 2, (int[]){B * K, D});
    if (s->dm)
        e = dm_map(t, s, e);
    const int W = e->shape[1];
    /* u_b = sum_k lambda_bk e_bk: multiply by lambda broadcast over the
     * row, then sum over the slot axis */
    struct akt_tensor *lw = akt_tensor_newv(t, 0, 2, B * K, W);
    for (int r = 0; r < B * K; r++)
        for (int j = 0; j < W; j++)
            lw->data[(int64_t)r * W + j] = lam[r];
    struct akt_tensor *u = akt_mul(t, e, lw);
    u = akt_sum(t, akt_view(t, u, 3, (int[]){B, K, W}), 1, 2);

    /* y~ = sum_k lambda_k onehot(y_k) (repeats add up, as scatter_add_) */
    struct akt_tensor *y = akt_tensor_newv(t, 0, 2, B, C);
    int *lab = akt_tape_alloc(t, (size_t)B * sizeof(int));
    for (int b = 0; b < B; b++) {
        float *row = y->data + (int64_t)b * C;
        for (int k = 0; k < K; k++)
            row[ys[b * K + k]] += lam[b * K + k];
        /* the hard label of a mixed sample: its heaviest class (the ABI wants
         * one; losses use the soft target when it is there) */
        int best = 0;
        for (int c = 1; c < C; c++)
            if (row[c] > row[best])
                best = c;
        lab[b] = best;
    }
    *labels = lab;
    *target = y;
    return u;
}

static int sample(void *self, const struct akt_host *h, struct akt_tape *t,
                  struct akt_gen_batch *out, struct akt_error *e)
{
    struct gen_self *s = self;
    const int batch = h->batch;
    if (batch < 1)
        return akt_error_set(e, AKT_EINVAL, "generator", "batch must be positive, got %d", batch);
    out->labels = NULL;
    out->target = NULL;
    if (s->method != GEN_QIMERA) {
        out->x = gen_gdfq_sample(&s->net, t, h->rng, batch, &out->labels);
        return AKT_OK;
    }
    /* drawn every iteration, so the stream does not depend on p */
    int mixed = akt_rng_uniform(h->rng) < (double)s->p_sup;
    struct akt_tensor *u = mixed ? qimera_mixed(t, s, h, batch, &out->labels, &out->target)
                                 : qimera_plain(t, s, h, batch, &out->labels);
    out->x = gen_trunk(&s->net, t, u);
    return AKT_OK;
}

/* --------------------------------------------------------------- loss --- */

static int check_logits(const struct akt_resnet_out *o, int B, int C, const char *who,
                        struct akt_error *e)
{
    if (!o || !o->logits || o->logits->ndim != 2 || o->logits->shape[0] != B ||
        o->logits->shape[1] != C)
        return akt_error_set(e, AKT_ESHAPE, "generator loss", "%s logits missing or not [%d,%d]",
                             who, B, C);
    return AKT_OK;
}

/* AdaDFQ (SPEC 3): keep the normalised entropy of p_ds = softmax(z_T - z_Q)
 * inside [lambda_l, lambda_u] and balance the disagreement/agreement CEs. */
static struct akt_tensor *adadfq_terms(struct akt_tape *t, struct gen_self *s,
                                       const struct akt_host *h, struct akt_tensor *zt,
                                       struct akt_tensor *zq, const int *labels)
{
    struct akt_tensor *zd = akt_sub(t, zt, zq);
    struct akt_tensor *H = akt_entropy(t, zd, 1.0f);
    struct akt_tensor *hmin = akt_min(t, H); /* carries gradient, as in the code */
    struct akt_tensor *den = akt_scale(t, hmin, -1.0f, (float)log((double)s->classes));
    struct akt_tensor *Hn = akt_div(t, akt_sub(t, H, hmin), den);
    struct akt_tensor *hl = akt_mean(t, akt_hinge(t, Hn, -1.0f, s->lambda_l), 0, 1);
    struct akt_tensor *hu = akt_mean(t, akt_hinge(t, Hn, 1.0f, -s->lambda_u), 0, 1);
    struct akt_tensor *hinge = akt_add(t, hl, hu);
    struct akt_tensor *ce_ds = akt_cross_entropy(t, zd, labels);
    struct akt_tensor *ce_as = akt_cross_entropy(t, akt_add(t, zt, zq), labels);
    struct akt_tensor *bal = akt_add(t, akt_scale(t, ce_ds, s->alpha_ds, 0.0f),
                                     akt_scale(t, ce_as, s->alpha_as, 0.0f));
    metric(h, "gen.hinge", hinge->data[0]);
    metric(h, "gen.bal", bal->data[0]);
    return akt_add(t, hinge, akt_scale(t, bal, s->beta, 0.0f));
}

static struct akt_tensor *loss(void *self, const struct akt_host *h, struct akt_tape *t,
                               const struct akt_gen_batch *b, const struct akt_resnet_out *teacher,
                               const struct akt_resnet_out *student, struct akt_error *e)
{
    struct gen_self *s = self;
    int B = b->x->shape[0], C = s->classes;
    if (check_logits(teacher, B, C, "teacher", e) != AKT_OK)
        return NULL;
    if (s->method == GEN_ADADFQ && check_logits(student, B, C, "student", e) != AKT_OK)
        return NULL;
    struct akt_tensor *bns = gen_bns_loss(t, h->teacher, teacher, e);
    if (!bns)
        return NULL;
    struct akt_tensor *zt = teacher->logits, *main;
    /* AdaDFQ's loss has no plain CE term: there CE(z_T, y) only reports how
     * well the teacher recognises the images, on detached logits */
    struct akt_tensor *zce = s->method == GEN_ADADFQ ? akt_detach(t, zt) : zt;
    struct akt_tensor *ce = b->target ? akt_cross_entropy_soft(t, zce, b->target)
                                      : akt_cross_entropy(t, zce, b->labels);
    main = s->method == GEN_ADADFQ ? adadfq_terms(t, s, h, zt, student->logits, b->labels) : ce;
    metric(h, "gen.ce", ce->data[0]);
    metric(h, "gen.bns", bns->data[0]);
    if (s->method == GEN_QIMERA)
        metric(h, "gen.superposed", b->target ? 1.0 : 0.0);
    return akt_add(t, main, akt_scale(t, bns, s->w_bns, 0.0f));
}

static void update(void *self, const struct akt_host *h, float lr)
{
    (void)h;
    struct gen_self *s = self;
    gen_net_step_base(&s->net, s->base_lr, lr);
}

static float *state(void *self, int64_t *n)
{
    struct gen_self *s = self;
    *n = 3 * s->net.n + 1;
    return s->net.state;
}

/* ---------------------------------------------------------- descriptors --- */

#define GEN_OPS(student, logit)                                                                  \
    .ops.gen = {.sample = sample,                                                                \
                .loss = loss,                                                                    \
                .update = update,                                                                \
                .state = state,                                                                  \
                .needs_student = student,                                                        \
                .lr = (float)GEN_DEFAULT_LR,                                                     \
                .logit_loss = logit }

static const struct akt_plugin plugins[] = {
    {AKT_PLUGIN_HEADER,
     .kind = AKT_PLUGIN_GENERATOR,
     .name = "gdfq",
     .summary = "GDFQ: conditional generator, CE + 0.1 BN-statistics loss",
     .params = gdfq_params,
     .n_params = N_PARAMS(gdfq_params),
     .create = gdfq_create,
     .destroy = destroy,
     GEN_OPS(0, AKT_LOGIT_KD)},
    {AKT_PLUGIN_HEADER,
     .kind = AKT_PLUGIN_GENERATOR,
     .name = "qimera",
     .summary = "Qimera: GDFQ trunk with superposed class embeddings and soft targets",
     .params = qimera_params,
     .n_params = N_PARAMS(qimera_params),
     .create = qimera_create,
     .destroy = destroy,
     GEN_OPS(0, AKT_LOGIT_KD)},
    {AKT_PLUGIN_HEADER,
     .kind = AKT_PLUGIN_GENERATOR,
     .name = "adadfq",
     .summary = "AdaDFQ: GDFQ generator steered by teacher-student disagreement",
     .params = adadfq_params,
     .n_params = N_PARAMS(adadfq_params),
     .create = adadfq_create,
     .destroy = destroy,
     GEN_OPS(1, AKT_LOGIT_ENTROPY)},
};

AKT_PLUGIN_EXPORT const struct akt_plugin *akt_plugin_get(uint32_t index)
{
    return index < sizeof plugins / sizeof plugins[0] ? &plugins[index] : NULL;
}
