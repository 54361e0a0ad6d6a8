/* HAST-style hard-sample synthesis on the GDFQ generator (Li et al., "Hard
 * Sample Matters a Lot in Zero-Shot Quantization", CVPR 2023).
 *
 * HAST optimises a fixed set of images from noise (plugins/synthset has that
 * route, `hast_set`); its synthesis loss weights each sample's cross-entropy
 * by how hard the teacher finds it, the focal weight (1 - p_T(y))^gamma.
 * Here that loss drives the GDFQ trunk (plugins/generators/trunk.c, compiled
 * into this module) instead of free images:
 *
 *   u = E[y] * z  (GDFQ's sample)
 *   L_G = beta * mean_b (1 - p_b)^gamma CE(z_T,b, y_b) + bns * L_BNS
 *
 * The weight carries gradient, as in HAST's code (it is not detached).
 * Defaults are HAST's published synthesis settings for CIFAR-10 and -100
 * (run_generate_cifar10.sh: beta 10, gamma 2; BNS weight 1, its mean and
 * variance terms unweighted); with gamma = 0 and beta = 10 this is GDFQ's
 * loss times 10, the same CE:BNS balance as GDFQ's 1:0.1, so Adam (scale
 * free) sees GDFQ. The student's logit loss is GDFQ's (kd). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../generators/trunk.h"

enum { P_LATENT, P_LR, P_BNS, P_BETA1, P_BETA2, P_BETA, P_GAMMA, N_PARAMS };

static const struct akt_param_def params[N_PARAMS] = {
    GEN_COMMON_PARAMS(100, "bns", 1.0, "weight of the BN-statistics loss"),
    {.key = "beta", .type = AKT_PT_FLOAT, .def = 10, .lo = 0, .hi = 1e6,
     .help = "weight of the focal cross-entropy (HAST's beta)"},
    {.key = "gamma", .type = AKT_PT_FLOAT, .def = 2, .lo = 0, .hi = 100,
     .help = "focusing exponent: each CE weighted by (1 - p_T(y))^gamma; 0 = plain CE"},
};

#define WHERE "generator hast"

struct hast {
    struct gen_net net;
    float base_lr, w_bns, beta, gamma;
};

static void *hast_create(const struct akt_host *h, const struct akt_param_values *v,
                         struct akt_error *e)
{
    AKT_ASSERT(v->n == N_PARAMS);
    if (h->num_classes < 2) {
        akt_error_set(e, AKT_EINVAL, WHERE, "need at least 2 classes, got %d", h->num_classes);
        return NULL;
    }
    struct hast *s = calloc(1, sizeof *s);
    if (!s) {
        akt_error_set(e, AKT_ENOMEM, WHERE, "out of memory");
        return NULL;
    }
    s->base_lr = (float)v->v[P_LR];
    s->w_bns = (float)v->v[P_BNS];
    s->beta = (float)v->v[P_BETA];
    s->gamma = (float)v->v[P_GAMMA];
    if (gen_net_init(&s->net, h->num_classes, (int)v->v[P_LATENT], 0, (float)v->v[P_BETA1],
                     (float)v->v[P_BETA2], h->rng, e) != AKT_OK) {
        free(s);
        return NULL;
    }
    return s;
}

static void hast_destroy(void *self)
{
    struct hast *s = self;
    if (!s)
        return;
    gen_net_free(&s->net);
    free(s);
}

static int hast_sample(void *self, const struct akt_host *h, struct akt_tape *t,
                       struct akt_gen_batch *out, struct akt_error *e)
{
    struct hast *s = self;
    if (h->batch < 1)
        return akt_error_set(e, AKT_EINVAL, WHERE, "batch must be positive, got %d", h->batch);
    out->target = NULL;
    out->x = gen_gdfq_sample(&s->net, t, h->rng, h->batch, &out->labels);
    return AKT_OK;
}

static struct akt_tensor *hast_loss(void *self, const struct akt_host *h, struct akt_tape *t,
                                    const struct akt_gen_batch *b,
                                    const struct akt_resnet_out *teacher,
                                    const struct akt_resnet_out *student, struct akt_error *e)
{
    (void)student;
    struct hast *s = self;
    const int B = b->x->shape[0], C = s->net.classes;
    struct akt_tensor *zt = teacher ? teacher->logits : NULL;
    if (!zt || zt->ndim != 2 || zt->shape[0] != B || zt->shape[1] != C) {
        akt_error_set(e, AKT_ESHAPE, WHERE, "teacher logits missing or not [%d,%d]", B, C);
        return NULL;
    }
    struct akt_tensor *bns = gen_bns_loss(t, h->teacher, teacher, e);
    if (!bns)
        return NULL;
    struct akt_tensor *focal = akt_focal_cross_entropy(t, zt, b->labels, s->gamma, NULL);
    /* for comparison with gdfq: the plain CE and how hard the batch is, on
     * detached logits */
    struct akt_tensor *zd = akt_detach(t, zt);
    double hard = 0;
    for (int i = 0; i < B; i++) {
        const float *z = zd->data + (int64_t)i * C;
        double mx = z[0], sum = 0;
        for (int c = 1; c < C; c++)
            mx = z[c] > mx ? z[c] : mx;
        for (int c = 0; c < C; c++)
            sum += exp(z[c] - mx);
        hard += 1.0 - exp(z[b->labels[i]] - mx) / sum;
    }
    if (h->metric) {
        h->metric(h, "gen.ce", akt_cross_entropy(t, zd, b->labels)->data[0]);
        h->metric(h, "gen.focal", focal->data[0]);
        h->metric(h, "gen.hard", hard / B);
        h->metric(h, "gen.bns", bns->data[0]);
    }
    return akt_add(t, akt_scale(t, focal, s->beta, 0.0f), akt_scale(t, bns, s->w_bns, 0.0f));
}

static void hast_update(void *self, const struct akt_host *h, float lr)
{
    (void)h;
    struct hast *s = self;
    gen_net_step_base(&s->net, s->base_lr, lr);
}

static float *hast_state(void *self, int64_t *n)
{
    struct hast *s = self;
    *n = 3 * s->net.n + 1;
    return s->net.state;
}

static const struct akt_plugin descriptor = {
    AKT_PLUGIN_HEADER,
    .kind = AKT_PLUGIN_GENERATOR,
    .name = "hast",
    .summary = "HAST-style hard samples: GDFQ generator, focal CE (1-p)^gamma + BN statistics",
    .params = params,
    .n_params = N_PARAMS,
    .create = hast_create,
    .destroy = hast_destroy,
    .ops.gen = {.sample = hast_sample,
                .loss = hast_loss,
                .update = hast_update,
                .state = hast_state,
                .needs_student = 0,
                .lr = (float)GEN_DEFAULT_LR,
                .logit_loss = AKT_LOGIT_KD},
};

AKT_PLUGIN_EXPORT const struct akt_plugin *akt_plugin_get(uint32_t index)
{
    return index == 0 ? &descriptor : NULL;
}
