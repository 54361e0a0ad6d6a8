/* Synthetic-set generators: the noise-optimisation route of HAST (CVPR
 * 2023) and IntraQ (CVPR 2022). Images are optimised once from N(0,1) noise
 * against the frozen teacher (its BN statistics plus the method's terms,
 * synth_loss.c), kept as a fixed set, and the student is distilled on it.
 *
 * How the set fits the plugin ABI (plugins/README.md, "Synthetic sets"):
 *   - create() builds the set from h->rng with the host's teacher_forward on
 *     a tape of its own. The host seeds the RNG and creates the generator
 *     before it restores a checkpoint, so a resumed run rebuilds the same set
 *     bit for bit (same seed and thread count); the images never enter a
 *     checkpoint. Cost: every start, resume or `akt hessian` repeats the
 *     synthesis.
 *   - sample() draws without replacement, as a shuffling DataLoader does: a
 *     permutation of the set from h->rng, consumed h->batch at a time (a
 *     batch that crosses the end continues in a fresh permutation). The
 *     cursor and the permutation are the generator's state() (1 + size
 *     floats, exact below 2^24), saved in every checkpoint.
 *   - loss and update are NULL: nothing trains, the host skips the
 *     generator step. The range trackers calibrate on set images.
 *
 * Synthesis (both methods' code): batches of synth_batch images, each
 * optimised for iters steps by Adam (lr 0.5, betas 0.9/0.999) with PyTorch's
 * ReduceLROnPlateau on the step's loss (factor 0.1, patience 50, threshold
 * 1e-4 relative, min_lr 1e-4); labels uniform.
 *   hast_set    L = bns L_BNS + beta mean (1 - p)^gamma CE   (beta 10, gamma 2)
 *   intraq_set  L = bns L_BNS + mean (p_y - t)^2 + the two cosine margins of
 *               the pooled features to the class's mean feature of earlier
 *               batches; t = U(target_pro, 1) for half the images (else 1);
 *               in half of the steps each image is seen through a random
 *               resized crop (area scale aug_scale..1, ratio 3/4..4/3) and a
 *               random horizontal flip. IntraQ accumulates the class means
 *               over its four generation runs (groups); here over all earlier
 *               batches of the one set. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "akt/optim.h"
#include "synth_loss.h"

enum method { M_HAST, M_INTRAQ };

enum {
    P_SIZE,
    P_SBATCH,
    P_ITERS,
    P_LR,
    P_PATIENCE,
    P_MIN_LR,
    P_BNS,
    N_COMMON,
    /* hast_set */
    P_BETA = N_COMMON,
    P_GAMMA,
    N_HAST,
    /* intraq_set */
    P_TARGET = N_COMMON,
    P_MLO,
    P_MHI,
    P_AUG_P,
    P_AUG_SCALE,
    N_INTRAQ,
};

#define COMMON                                                                                   \
    [P_SIZE] = {.key = "size", .type = AKT_PT_INT, .def = 5120, .lo = 1, .hi = 1 << 24,          \
                .help = "images in the set (the papers' 5120)"},                                 \
    [P_SBATCH] = {.key = "synth_batch", .type = AKT_PT_INT, .def = 256, .lo = 1, .hi = 1 << 20,  \
                  .help = "images optimised together"},                                          \
    [P_ITERS] = {.key = "iters", .type = AKT_PT_INT, .def = 1000, .lo = 1, .hi = 1 << 24,        \
                 .help = "Adam steps per synthesis batch"},                                      \
    [P_LR] = {.key = "lr", .type = AKT_PT_FLOAT, .def = 0.5, .lo = 0, .hi = 1e3,                 \
              .help = "Adam learning rate on the pixels"},                                       \
    [P_PATIENCE] = {.key = "patience", .type = AKT_PT_INT, .def = 50, .lo = 0, .hi = 1 << 24,    \
                    .help = "ReduceLROnPlateau: steps without improvement before lr x 0.1"},     \
    [P_MIN_LR] = {.key = "min_lr", .type = AKT_PT_FLOAT, .def = 1e-4, .lo = 0, .hi = 1e3,        \
                  .help = "ReduceLROnPlateau: the lowest rate"},                                 \
    [P_BNS] = {.key = "bns", .type = AKT_PT_FLOAT, .def = 1, .lo = 0, .hi = 1e6,                 \
               .help = "weight of the BN-statistics loss"}

static const struct akt_param_def hast_params[N_HAST] = {
    COMMON,
    [P_BETA] = {.key = "beta", .type = AKT_PT_FLOAT, .def = 10, .lo = 0, .hi = 1e6,
                .help = "weight of the focal cross-entropy"},
    [P_GAMMA] = {.key = "gamma", .type = AKT_PT_FLOAT, .def = 2, .lo = 0, .hi = 100,
                 .help = "focusing exponent of (1 - p)^gamma"},
};

static const struct akt_param_def intraq_params[N_INTRAQ] = {
    COMMON,
    [P_TARGET] = {.key = "target_pro", .type = AKT_PT_FLOAT, .def = 0.95, .lo = 0, .hi = 1,
                  .help = "soft target: half the images aim at p_y ~ U(target_pro, 1)"},
    [P_MLO] = {.key = "margin_lo", .type = AKT_PT_FLOAT, .def = 0.05, .lo = 0, .hi = 2,
               .help = "cosine distance to the class mean kept above this"},
    [P_MHI] = {.key = "margin_hi", .type = AKT_PT_FLOAT, .def = 0.8, .lo = 0, .hi = 2,
               .help = "... and below this"},
    [P_AUG_P] = {.key = "aug_p", .type = AKT_PT_FLOAT, .def = 0.5, .lo = 0, .hi = 1,
                 .help = "share of steps that see random resized crops and flips"},
    [P_AUG_SCALE] = {.key = "aug_scale", .type = AKT_PT_FLOAT, .def = 0.5, .lo = 0.01, .hi = 1,
                     .help = "smallest crop area (fraction of the image)"},
};

#define IMG 32
#define PIX (3 * IMG * IMG)

struct synthset {
    enum method method;
    const char *name;
    int n, classes;
    float *images; /* [n, 3, 32, 32] */
    int *labels;   /* [n] */
    float *state;  /* [1 + n]: cursor, then the permutation */
};

/* ------------------------------------------------------- ReduceLROnPlateau --- */
struct plateau {
    double best, lr, min_lr;
    int bad, patience;
};

/* torch.optim.lr_scheduler.ReduceLROnPlateau(mode min, factor 0.1,
 * threshold 1e-4 rel, cooldown 0, eps 1e-8).step(loss) */
static void plateau_step(struct plateau *p, double loss)
{
    if (loss < p->best * (1 - 1e-4)) {
        p->best = loss;
        p->bad = 0;
    } else {
        p->bad++;
    }
    if (p->bad > p->patience) {
        double lr = fmax(p->lr * 0.1, p->min_lr);
        if (p->lr - lr > 1e-8)
            p->lr = lr;
        p->bad = 0;
    }
}

/* torchvision RandomResizedCrop.get_params on a 32x32 image, scale (lo, 1),
 * ratio (3/4, 4/3): y0, x0, h, w */
static void rrc_params(struct akt_rng *r, double lo, int *box)
{
    const double area = IMG * IMG, lr0 = log(3.0 / 4.0), lr1 = log(4.0 / 3.0);
    for (int k = 0; k < 10; k++) {
        double target = area * (lo + (1 - lo) * akt_rng_uniform(r));
        double ar = exp(lr0 + (lr1 - lr0) * akt_rng_uniform(r));
        int w = (int)rint(sqrt(target * ar)), h = (int)rint(sqrt(target / ar));
        if (w > 0 && w <= IMG && h > 0 && h <= IMG) {
            box[0] = (int)akt_rng_below(r, (uint32_t)(IMG - h + 1));
            box[1] = (int)akt_rng_below(r, (uint32_t)(IMG - w + 1));
            box[2] = h, box[3] = w;
            return;
        }
    }
    box[0] = box[1] = 0, box[2] = box[3] = IMG; /* square image: the fallback is the whole */
}

/* ---------------------------------------------------------- synthesis --- */
struct intraq_means {
    double *sum; /* [classes, K] */
    int *count;
    int K;
};

static int synth_batch(struct synthset *s, const struct akt_host *h, const double *pv, int b0,
                       int nb, struct intraq_means *cm, struct akt_error *e)
{
    struct akt_rng *r = h->rng;
    float *x = s->images + (int64_t)b0 * PIX;
    int *y = s->labels + b0;
    const int64_t n = (int64_t)nb * PIX;
    for (int64_t i = 0; i < n; i++)
        x[i] = akt_rng_normal(r);
    for (int b = 0; b < nb; b++)
        y[b] = (int)akt_rng_below(r, (uint32_t)s->classes);
    float *target = NULL, *mu = NULL, *mask = NULL;
    if (s->method == M_INTRAQ) {
        target = malloc((size_t)nb * sizeof *target);
        mask = malloc((size_t)nb * sizeof *mask);
        mu = calloc((size_t)nb * cm->K, sizeof *mu);
        AKT_ASSERT(target && mask && mu);
        for (int b = 0; b < nb; b++) {
            double tp = pv[P_TARGET];
            target[b] = akt_rng_uniform(r) < 0.5 ? (float)(tp + (1 - tp) * akt_rng_uniform(r))
                                                 : 1.0f;
            int c = y[b];
            mask[b] = cm->count[c] > 0;
            for (int k = 0; mask[b] && k < cm->K; k++)
                mu[(int64_t)b * cm->K + k] = (float)(cm->sum[(int64_t)c * cm->K + k] / cm->count[c]);
        }
    }
    float *g = calloc((size_t)n, sizeof *g), *m = calloc((size_t)n, sizeof *m);
    float *v = calloc((size_t)n, sizeof *v);
    int *box = malloc((size_t)nb * 4 * sizeof *box);
    unsigned char *flip = malloc((size_t)nb);
    AKT_ASSERT(g && m && v && box && flip);
    struct plateau pl = {.best = INFINITY, .lr = pv[P_LR], .min_lr = pv[P_MIN_LR],
                         .patience = (int)pv[P_PATIENCE]};
    struct akt_tape t;
    akt_tape_init(&t, 0);
    int rc = 0;
    const int iters = (int)pv[P_ITERS];
    for (int it = 0; it < iters && !rc; it++) {
        akt_tape_reset(&t);
        struct akt_tensor *xt = akt_tape_alloc(&t, sizeof *xt);
        *xt = akt_tensor_wrap(x, g, 4, (int[]){nb, 3, IMG, IMG});
        xt->requires_grad = 1;
        struct akt_tensor *xin = xt;
        if (s->method == M_INTRAQ && akt_rng_uniform(r) < pv[P_AUG_P]) {
            for (int b = 0; b < nb; b++) {
                rrc_params(r, pv[P_AUG_SCALE], box + 4 * b);
                flip[b] = akt_rng_uniform(r) < 0.5;
            }
            xin = akt_crop_resize(&t, xt, box, flip, IMG, IMG);
        }
        struct akt_resnet_out o;
        h->teacher_forward(h, &t, xin, &o);
        struct akt_tensor *L =
            s->method == M_HAST
                ? synth_hast_loss(&t, h->teacher, &o, y, (float)pv[P_BETA], (float)pv[P_GAMMA],
                                  (float)pv[P_BNS], NULL, e)
                : synth_intraq_loss(&t, h->teacher, &o, y, target, mu, mask, (float)pv[P_MLO],
                                    (float)pv[P_MHI], (float)pv[P_BNS], NULL, e);
        if (!L) {
            rc = e && e->code ? e->code : AKT_EPLUGIN;
            break;
        }
        if (!isfinite(L->data[0])) {
            rc = akt_error_set(e, AKT_ENUMERIC, s->name, "synthesis loss is not finite at step "
                               "%d of the batch at image %d (try a lower generator.lr)", it, b0);
            break;
        }
        akt_backward(&t, L);
        akt_adam_step(x, g, m, v, n, (float)pl.lr, 0.9f, 0.999f, 1e-8f, it + 1);
        memset(g, 0, (size_t)n * sizeof *g);
        plateau_step(&pl, L->data[0]);
    }
    if (!rc) {
        /* the finished images: the teacher's accuracy on them, and (IntraQ)
         * their features into the class means of later batches */
        akt_tape_reset(&t);
        t.recording = 0;
        struct akt_tensor *xt = akt_tensor_from(&t, x, 4, (int[]){nb, 3, IMG, IMG});
        struct akt_resnet_out o;
        h->teacher_forward(h, &t, xt, &o);
        int right = 0;
        for (int b = 0; b < nb; b++) {
            const float *z = o.logits->data + (int64_t)b * s->classes;
            int best = 0;
            for (int c = 1; c < s->classes; c++)
                best = z[c] > z[best] ? c : best;
            right += best == y[b];
        }
        if (h->log)
            h->log(h, "%s: images %d-%d synthesised, teacher top-1 on them %.1f%%, last lr %g",
                   s->name, b0, b0 + nb - 1, 100.0 * right / nb, pl.lr);
        if (s->method == M_INTRAQ) {
            struct akt_tensor *f = akt_global_avgpool(&t, o.acts[o.n_acts - 1]);
            for (int b = 0; b < nb; b++) {
                for (int k = 0; k < cm->K; k++)
                    cm->sum[(int64_t)y[b] * cm->K + k] += f->data[(int64_t)b * cm->K + k];
                cm->count[y[b]]++;
            }
        }
    }
    akt_tape_free(&t);
    free(g);
    free(m);
    free(v);
    free(box);
    free(flip);
    free(target);
    free(mu);
    free(mask);
    return rc;
}

static void synthset_destroy(void *self)
{
    struct synthset *s = self;
    if (!s)
        return;
    free(s->images);
    free(s->labels);
    free(s->state);
    free(s);
}

static void *synthset_create(enum method method, const struct akt_host *h,
                             const struct akt_param_values *v, struct akt_error *e)
{
    const char *name = method == M_HAST ? "generator hast_set" : "generator intraq_set";
    AKT_ASSERT(v->n == (method == M_HAST ? N_HAST : N_INTRAQ));
    if (!h->teacher || !h->teacher_forward) {
        akt_error_set(e, AKT_EINVAL, name, "the host lends no teacher to synthesise against");
        return NULL;
    }
    if (h->num_classes < 2) {
        akt_error_set(e, AKT_EINVAL, name, "need at least 2 classes, got %d", h->num_classes);
        return NULL;
    }
    struct synthset *s = calloc(1, sizeof *s);
    if (!s) {
        akt_error_set(e, AKT_ENOMEM, name, "out of memory");
        return NULL;
    }
    s->method = method;
    s->name = name;
    s->n = (int)v->v[P_SIZE];
    s->classes = h->num_classes;
    s->images = malloc((size_t)s->n * PIX * sizeof *s->images);
    s->labels = malloc((size_t)s->n * sizeof *s->labels);
    s->state = malloc((size_t)(1 + s->n) * sizeof *s->state);
    struct intraq_means cm = {0};
    if (method == M_INTRAQ) {
        const struct akt_param *fc = akt_resnet_param(h->teacher, "linear.weight"); /* [C,K] */
        cm.K = fc && fc->ndim == 2 ? fc->shape[1] : 0;
        if (cm.K <= 0) {
            synthset_destroy(s);
            akt_error_set(e, AKT_EINVAL, name, "the teacher has no linear.weight [C,K]");
            return NULL;
        }
        cm.sum = calloc((size_t)s->classes * cm.K, sizeof *cm.sum);
        cm.count = calloc((size_t)s->classes, sizeof *cm.count);
    }
    if (!s->images || !s->labels || !s->state || (method == M_INTRAQ && (!cm.sum || !cm.count))) {
        free(cm.sum);
        free(cm.count);
        synthset_destroy(s);
        akt_error_set(e, AKT_ENOMEM, name, "cannot hold %d images", (int)v->v[P_SIZE]);
        return NULL;
    }
    double t0 = akt_time_ms();
    const int sb = (int)v->v[P_SBATCH];
    int rc = 0;
    for (int b0 = 0; b0 < s->n && !rc; b0 += sb)
        rc = synth_batch(s, h, v->v, b0, s->n - b0 < sb ? s->n - b0 : sb, &cm, e);
    free(cm.sum);
    free(cm.count);
    if (rc) {
        synthset_destroy(s);
        return NULL;
    }
    if (h->log)
        h->log(h, "%s: %d images in %.1f s", name, s->n, (akt_time_ms() - t0) / 1e3);
    /* the first sample() draws a permutation */
    s->state[0] = (float)s->n;
    for (int i = 0; i < s->n; i++)
        s->state[1 + i] = (float)i;
    return s;
}

static void *hast_set_create(const struct akt_host *h, const struct akt_param_values *v,
                             struct akt_error *e)
{
    return synthset_create(M_HAST, h, v, e);
}

static void *intraq_set_create(const struct akt_host *h, const struct akt_param_values *v,
                               struct akt_error *e)
{
    return synthset_create(M_INTRAQ, h, v, e);
}

/* ------------------------------------------------------------- sample --- */
static int synthset_sample(void *self, const struct akt_host *h, struct akt_tape *t,
                           struct akt_gen_batch *out, struct akt_error *e)
{
    struct synthset *s = self;
    const int B = h->batch;
    if (B < 1)
        return akt_error_set(e, AKT_EINVAL, s->name, "batch must be positive, got %d", B);
    float *perm = s->state + 1;
    out->x = akt_tensor_newv(t, 0, 4, B, 3, IMG, IMG);
    out->labels = akt_tape_alloc(t, (size_t)B * sizeof *out->labels);
    out->target = NULL;
    for (int b = 0; b < B; b++) {
        if ((int)s->state[0] >= s->n) {
            /* Fisher-Yates over the current order */
            for (int i = s->n - 1; i > 0; i--) {
                int j = (int)akt_rng_below(h->rng, (uint32_t)(i + 1));
                float tmp = perm[i];
                perm[i] = perm[j];
                perm[j] = tmp;
            }
            s->state[0] = 0;
        }
        int idx = (int)perm[(int)s->state[0]];
        s->state[0] += 1;
        memcpy(out->x->data + (int64_t)b * PIX, s->images + (int64_t)idx * PIX,
               PIX * sizeof(float));
        out->labels[b] = s->labels[idx];
    }
    return AKT_OK;
}

static float *synthset_state(void *self, int64_t *n)
{
    struct synthset *s = self;
    *n = 1 + s->n;
    return s->state;
}

#define SET_OPS                                                                                  \
    .ops.gen = {.sample = synthset_sample, .loss = NULL, .update = NULL,                         \
                .state = synthset_state, .needs_student = 0, .lr = 0,                            \
                .logit_loss = AKT_LOGIT_KD}

static const struct akt_plugin descriptors[] = {
    {AKT_PLUGIN_HEADER,
     .kind = AKT_PLUGIN_GENERATOR,
     .name = "hast_set",
     .summary = "HAST: a fixed set optimised from noise (BN statistics + focal CE), built at start",
     .params = hast_params,
     .n_params = N_HAST,
     .create = hast_set_create,
     .destroy = synthset_destroy,
     SET_OPS},
    {AKT_PLUGIN_HEADER,
     .kind = AKT_PLUGIN_GENERATOR,
     .name = "intraq_set",
     .summary = "IntraQ: a fixed set optimised from noise (BN statistics, soft targets, "
                "cosine margins, crops), built at start",
     .params = intraq_params,
     .n_params = N_INTRAQ,
     .create = intraq_set_create,
     .destroy = synthset_destroy,
     SET_OPS},
};

AKT_PLUGIN_EXPORT const struct akt_plugin *akt_plugin_get(uint32_t index)
{
    return index < sizeof descriptors / sizeof descriptors[0] ? &descriptors[index] : NULL;
}
