/* SynQ (Kim, Kim & Kang, "SynQ: Accurate Zero-shot Quantization by
 * Synthesis-aware Fine-tuning", ICLR 2025) as a student loss that combines
 * with any generator, optionally with AKT's feature term (synq+akt):
 *
 *   images   the student step sees x low-pass filtered (prepare(): Gaussian
 *            in the DFT, cutoff d0; the teacher runs on them again)
 *   L = L_soft + lambda_ce * CE_sel + lambda_cam * L_cam
 *       [+ lambda_fa * L_fa] [+ lambda_rfd * RFD]
 *   L_soft   the soft-label term: logit=auto follows the generator's logit
 *            loss without its CE (kd: T^2 KL/(B*C); entropy: AdaDFQ's), or
 *            logit=synq: SynQ's code, alpha T^2 KL / B
 *   CE_sel   cross-entropy only on the samples the teacher finds easy,
 *            1 - p_T(y) < tau, summed and divided by the whole batch B
 *   L_cam    mean squared difference of the teacher's and the student's
 *            min-max normalised class activation maps (akt/distill.h), each
 *            network for its own predicted class
 *   L_fa     HAST's feature alignment, which SynQ's code keeps: per body
 *            output the mean squared difference of the L2-normalised channel
 *            maps mean_p F^2 (off by default, see below)
 *   RFD      AKT's refined feature distillation (akt_rfd_kl), rfd=true
 *
 * Metrics: loss.logit = L_soft (no CE in it, unlike the logit loss's),
 * loss.ce = CE_sel and loss.easy = the share of easy samples, loss.cam and
 * loss.fa before their weights, loss.spatial / loss.channel (rfd=true), and
 * loss.feature = lambda_rfd * RFD (0 without rfd), as the other losses.
 *
 * Choices where the paper and the released code (snudm-starlab/SynQ, v1.1,
 * Feb 2025) leave room; plugins/README.md lists them too:
 *   - hyper-parameters: the paper searched tau, d0, lambda_ce, lambda_cam per
 *     setting without listing the values; the defaults are the code's
 *     run scripts (lambda_ce 0.5, lambda_cam 50) and argparse defaults (tau
 *     0.5, d0 80, alpha 20, T 20). At 32x32 a d0 of 80 passes every
 *     frequency with gain >= 0.96: a mild filter; the paper's search range
 *     goes down to 20.
 *   - L_soft: SynQ weights KL by alpha T^2 = 8000 with batchmean and trains
 *     at lr 1e-5..1e-6, 200x the kd term's scale of akt's runs (lr 1e-4).
 *     logit=auto keeps the generator's logit loss so that a table compares
 *     SynQ's terms, not learning rates; logit=synq is the code's form.
 *   - CE_sel: the code zeroes the logits and labels of hard samples and
 *     averages over the whole batch, adding log(C) per hard sample, a
 *     constant without gradient; it is left out. With soft targets (Qimera)
 *     the selected samples' CE is taken against the soft target.
 *   - L_cam: the code's Grad-CAM hooks the last Conv2d (the last block's
 *     second convolution, before its BN) although it names "stage4", the
 *     last stage's output; Grad-CAM of the classifier's input (the last
 *     ReLU output) is taken here, where the gradient of z_c is the
 *     classifier row W_c / (H*W), exact for the quantized student too
 *     (fc_weight of the network's output); alpha is clamped at 1e-10 as in
 *     the code, maps resized to 32x32 bilinearly and min-max normalised.
 *   - not included: the code's HAST-style second pass on images perturbed
 *     along the sign of their gradient (it needs a gradient with respect to
 *     the images inside the loss); L_fa is available with lambda_fa (the
 *     code's value is 1000) and off by default, the paper not listing it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/distill.h"
#include "akt/plugin.h"

enum logit_kind { LOGIT_AUTO, LOGIT_KD, LOGIT_ENTROPY, LOGIT_SYNQ };

enum {
    P_LOGIT,
    P_T,
    P_ALPHA,
    P_LAMBDA_CE,
    P_TAU,
    P_LAMBDA_CAM,
    P_D0,
    P_LAMBDA_FA,
    P_RFD,
    P_RFD_LAMBDA,
    P_TFD,
    P_MAPS,
    N_PARAMS
};

static const struct akt_param_def params[N_PARAMS] = {
    [P_LOGIT] = {.key = "logit", .type = AKT_PT_CHOICE, .def = LOGIT_AUTO,
                 .choices = "auto|kd|entropy|synq",
                 .help = "soft-label term: auto = the generator's logit loss without its CE "
                         "(kd: T^2 KL/(B*C); entropy), synq = alpha T^2 KL/B as SynQ's code"},
    [P_T] = {.key = "T", .type = AKT_PT_FLOAT, .def = 20, .lo = 0.01, .hi = 1000,
             .help = "logit temperature"},
    [P_ALPHA] = {.key = "alpha", .type = AKT_PT_FLOAT, .def = 20, .lo = 0, .hi = 1e6,
                 .help = "weight of the KL with logit=synq (SynQ's code: 20)"},
    [P_LAMBDA_CE] = {.key = "lambda_ce", .type = AKT_PT_FLOAT, .def = 0.5, .lo = 0, .hi = 1e6,
                     .help = "weight of the cross-entropy on easy samples"},
    [P_TAU] = {.key = "tau", .type = AKT_PT_FLOAT, .def = 0.5, .lo = 0, .hi = 1,
               .help = "a sample is easy when the teacher's 1 - p(label) < tau"},
    [P_LAMBDA_CAM] = {.key = "lambda_cam", .type = AKT_PT_FLOAT, .def = 50, .lo = 0, .hi = 1e9,
                      .help = "weight of the class-activation-map alignment (MSE)"},
    [P_D0] = {.key = "d0", .type = AKT_PT_FLOAT, .def = 80, .lo = 0, .hi = 1e6,
              .help = "cutoff of the Gaussian low-pass filter on the student's images; 0 = "
                      "no filter"},
    [P_LAMBDA_FA] = {.key = "lambda_fa", .type = AKT_PT_FLOAT, .def = 0, .lo = 0, .hi = 1e9,
                     .help = "weight of HAST's channel-attention alignment that SynQ's code "
                             "adds (1000 there); 0 = off"},
    [P_RFD] = {.key = "rfd", .type = AKT_PT_BOOL, .def = 0,
               .help = "add AKT's refined feature distillation (spatial + channel KL)"},
    [P_RFD_LAMBDA] = {.key = "lambda", .type = AKT_PT_FLOAT, .def = 1000, .lo = 0, .hi = 1e9,
                      .help = "weight of the AKT term with rfd=true"},
    [P_TFD] = {.key = "T_fd", .type = AKT_PT_FLOAT, .def = 8, .lo = 0.01, .hi = 1000,
               .help = "temperature of AKT's attention maps"},
    [P_MAPS] = {.key = "maps", .type = AKT_PT_STRING, .def_text = "all",
                .check = akt_feature_spec_check,
                .help = "body outputs of the AKT term: all, last_stage, stage1..3, stage_ends, "
                        "or indices and ranges such as 1,5-9,27"},
};

#define WHERE "loss synq"
/* the images' side: Grad-CAM maps are resized to the input resolution */
#define IMAGE_SIZE 32

struct synq {
    enum logit_kind logit;
    float T, alpha, lambda_ce, tau, lambda_cam, d0, lambda_fa, rfd_lambda, T_fd;
    int rfd;
    int n_features;
    unsigned char *maps; /* [n_features]: the AKT term's selection */
};

static void *synq_create(const struct akt_host *h, const struct akt_param_values *v,
                         struct akt_error *e)
{
    AKT_ASSERT(v->n == N_PARAMS);
    if (!h->teacher) {
        akt_error_set(e, AKT_EINVAL, WHERE, "the host lends no teacher network");
        return NULL;
    }
    struct synq *s = calloc(1, sizeof *s);
    if (!s || !(s->maps = calloc((size_t)h->teacher->n_features, 1))) {
        free(s);
        akt_error_set(e, AKT_ENOMEM, WHERE, "out of memory");
        return NULL;
    }
    s->logit = (enum logit_kind)v->v[P_LOGIT];
    s->T = (float)v->v[P_T];
    s->alpha = (float)v->v[P_ALPHA];
    s->lambda_ce = (float)v->v[P_LAMBDA_CE];
    s->tau = (float)v->v[P_TAU];
    s->lambda_cam = (float)v->v[P_LAMBDA_CAM];
    s->d0 = (float)v->v[P_D0];
    s->lambda_fa = (float)v->v[P_LAMBDA_FA];
    s->rfd = v->v[P_RFD] != 0;
    s->rfd_lambda = (float)v->v[P_RFD_LAMBDA];
    s->T_fd = (float)v->v[P_TFD];
    s->n_features = h->teacher->n_features;
    if (akt_feature_select(v->text[P_MAPS], h->teacher, s->maps, "loss.maps", e) < 0) {
        free(s->maps);
        free(s);
        return NULL;
    }
    return s;
}

static void synq_destroy(void *self)
{
    struct synq *s = self;
    if (s)
        free(s->maps);
    free(s);
}

static struct akt_tensor *synq_prepare(void *self, const struct akt_host *h, struct akt_tape *t,
                                       struct akt_tensor *x, struct akt_error *e)
{
    (void)h, (void)e;
    const struct synq *s = self;
    return s->d0 > 0 ? akt_lowpass_gaussian(t, x, s->d0) : x;
}

/* ------------------------------------------------------------ checks --- */
static int check_inputs(const struct synq *s, const struct akt_loss_input *in, int B, int C,
                        struct akt_error *e)
{
    const struct akt_resnet_out *o[2] = {in->teacher, in->student};
    for (int k = 0; k < 2; k++) {
        const char *who = k ? "student" : "teacher";
        if (!o[k]->logits || o[k]->logits->ndim != 2 || o[k]->logits->shape[0] != B ||
            o[k]->logits->shape[1] != C)
            return akt_error_set(e, AKT_ESHAPE, WHERE, "%s logits missing or not [%d,%d]", who,
                                 B, C);
        if (!s->rfd && s->lambda_fa == 0)
            continue;
        if (o[k]->n_features != s->n_features)
            return akt_error_set(e, AKT_ESHAPE, WHERE, "the %s has %d body outputs, the loss "
                                 "was made for %d", who, o[k]->n_features, s->n_features);
        for (int i = 0; i < s->n_features; i++)
            if ((s->lambda_fa != 0 || s->maps[i]) && (!o[k]->features || !o[k]->features[i]))
                return akt_error_set(e, AKT_EINVAL, WHERE, "body output F%d of the %s is "
                                     "missing", i + 1, who);
    }
    for (int i = 0; (s->rfd || s->lambda_fa != 0) && i < s->n_features; i++) {
        const struct akt_tensor *ft = in->teacher->features[i], *fs = in->student->features[i];
        if ((s->lambda_fa != 0 || s->maps[i]) &&
            (ft->ndim != 4 || !akt_tensor_same_shape(ft, fs)))
            return akt_error_set(e, AKT_ESHAPE, WHERE, "F%d: teacher and student body outputs "
                                 "must both be [B,C,H,W] of the same shape", i + 1);
    }
    if (in->target && (in->target->ndim != 2 || in->target->shape[0] != B ||
                       in->target->shape[1] != C))
        return akt_error_set(e, AKT_ESHAPE, WHERE, "soft targets must be [%d,%d]", B, C);
    if (!in->labels)
        return akt_error_set(e, AKT_EINVAL, WHERE, "no labels");
    for (int b = 0; b < B; b++)
        if (in->labels[b] < 0 || in->labels[b] >= C)
            return akt_error_set(e, AKT_EINVAL, WHERE, "label %d of sample %d is not a class "
                                 "0..%d", in->labels[b], b, C - 1);
    return 0;
}

/* ------------------------------------------------------------- terms --- */
static struct akt_tensor *soft_term(const struct synq *s, struct akt_tape *t,
                                    const struct akt_loss_input *in, double *value,
                                    struct akt_error *e)
{
    struct akt_tensor *zs = in->student->logits, *zt = akt_detach(t, in->teacher->logits);
    enum logit_kind k = s->logit;
    if (k == LOGIT_AUTO) {
        if (in->generator_logit_loss == AKT_LOGIT_KD)
            k = LOGIT_KD;
        else if (in->generator_logit_loss == AKT_LOGIT_ENTROPY)
            k = LOGIT_ENTROPY;
        else {
            akt_error_set(e, AKT_EINVAL, WHERE, "unknown generator logit loss %d (kd or entropy)",
                          (int)in->generator_logit_loss);
            return NULL;
        }
    }
    if (k == LOGIT_ENTROPY)
        return akt_logit_loss(t, AKT_LOGIT_ENTROPY, zs, zt, NULL, NULL, s->T, value, e);
    double kl, T2 = (double)s->T * s->T;
    /* kd's KL with its legacy 1/(B*C), or SynQ's alpha T^2 with batchmean */
    double w = k == LOGIT_KD ? T2 : s->alpha * T2;
    struct akt_tensor *out =
        akt_scale(t, akt_tempered_kl(t, zs, zt, s->T, k == LOGIT_KD ? AKT_KL_MEAN : AKT_KL_BATCHMEAN,
                                     &kl),
                  (float)w, 0);
    *value = w * kl;
    return out;
}

/* CE on the samples with 1 - p_T(y) < tau, divided by B; *easy = their share. */
static struct akt_tensor *selective_ce(const struct synq *s, struct akt_tape *t,
                                       const struct akt_loss_input *in, int B, int C,
                                       double *easy)
{
    const float *zt = in->teacher->logits->data;
    float *mask = akt_tape_alloc(t, (size_t)B * sizeof *mask);
    int n_easy = 0;
    for (int b = 0; b < B; b++) {
        const float *z = zt + (int64_t)b * C;
        double mx = z[0], sum = 0;
        for (int c = 1; c < C; c++)
            mx = z[c] > mx ? z[c] : mx;
        for (int c = 0; c < C; c++)
            sum += exp(z[c] - mx);
        double p = exp(z[in->labels[b]] - mx) / sum;
        mask[b] = 1.0 - p < s->tau;
        n_easy += mask[b] != 0;
    }
    *easy = (double)n_easy / B;
    struct akt_tensor *zs = in->student->logits;
    if (!in->target)
        return akt_focal_cross_entropy(t, zs, in->labels, 0.0f, mask);
    /* soft targets: -(1/B) sum_b mask_b sum_c y~_bc log softmax(z_S)_bc */
    struct akt_tensor *w = akt_tensor_newv(t, 0, 2, B, C);
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            w->data[(int64_t)b * C + c] = mask[b] * in->target->data[(int64_t)b * C + c];
    struct akt_tensor *ls = akt_log_softmax(t, zs, 1, 2, 1.0f);
    return akt_scale(t, akt_sum(t, akt_mul(t, ls, w), 0, 2), -1.0f / (float)B, 0);
}

static int *argmax_rows(struct akt_tape *t, const struct akt_tensor *z)
{
    const int B = z->shape[0], C = z->shape[1];
    int *cls = akt_tape_alloc(t, (size_t)B * sizeof *cls);
    for (int b = 0; b < B; b++) {
        const float *r = z->data + (int64_t)b * C;
        for (int c = 1; c < C; c++)
            if (r[c] > r[cls[b]])
                cls[b] = c;
    }
    return cls;
}

/* MSE of the two networks' CAMs, each for its own prediction */
static struct akt_tensor *cam_term(struct akt_tape *t, const struct akt_loss_input *in,
                                   struct akt_error *e)
{
    /* the teacher's map is a constant even if a caller's tensors carry grads */
    struct akt_resnet_out to = *in->teacher;
    if (to.n_acts > 0 && to.acts) {
        to.acts = akt_tape_alloc(t, (size_t)to.n_acts * sizeof *to.acts);
        memcpy(to.acts, in->teacher->acts, (size_t)to.n_acts * sizeof *to.acts);
        to.acts[to.n_acts - 1] = akt_detach(t, to.acts[to.n_acts - 1]);
    }
    struct akt_tensor *mt =
        akt_class_activation_map(t, &to, argmax_rows(t, in->teacher->logits), IMAGE_SIZE, e);
    struct akt_tensor *ms = mt ? akt_class_activation_map(t, in->student,
                                                          argmax_rows(t, in->student->logits),
                                                          IMAGE_SIZE, e)
                               : NULL;
    if (!ms) {
        if (e)
            snprintf(e->where, sizeof e->where, "%s", WHERE);
        return NULL;
    }
    return akt_mean(t, akt_square(t, akt_sub(t, ms, mt)), 0, 3);
}

/* HAST's channel maps: mean_p F^2 per channel, L2-normalised (eps 1e-12) */
static struct akt_tensor *fa_map(struct akt_tape *t, struct akt_tensor *f)
{
    return akt_l2_normalize(t, akt_mean(t, akt_square(t, f), 2, 4), 1, 2, 1e-12f);
}

static struct akt_tensor *fa_term(const struct synq *s, struct akt_tape *t,
                                  const struct akt_loss_input *in)
{
    struct akt_tensor *acc = NULL;
    for (int i = 0; i < s->n_features; i++) {
        struct akt_tensor *ms = fa_map(t, in->student->features[i]);
        struct akt_tensor *mt = fa_map(t, akt_detach(t, in->teacher->features[i]));
        struct akt_tensor *d = akt_mean(t, akt_square(t, akt_sub(t, ms, mt)), 0, 2);
        acc = acc ? akt_add(t, acc, d) : d;
    }
    return acc;
}

static struct akt_tensor *add_scaled(struct akt_tape *t, struct akt_tensor *acc,
                                     struct akt_tensor *x, float w)
{
    return akt_add(t, acc, w == 1.0f ? x : akt_scale(t, x, w, 0));
}

static struct akt_tensor *synq_compute(void *self, const struct akt_host *h, struct akt_tape *t,
                                       const struct akt_loss_input *in, struct akt_error *e)
{
    const struct synq *s = self;
    const int B = h->batch, C = h->num_classes;
    /* refuse before computing anything, so no metric is half reported */
    if (check_inputs(s, in, B, C, e))
        return NULL;
    double v_soft, easy;
    struct akt_tensor *L = soft_term(s, t, in, &v_soft, e);
    if (!L)
        return NULL;
    struct akt_tensor *cam = s->lambda_cam != 0 ? cam_term(t, in, e) : NULL;
    if (s->lambda_cam != 0 && !cam)
        return NULL;
    struct akt_tensor *ce = selective_ce(s, t, in, B, C, &easy);
    h->metric(h, "loss.logit", v_soft);
    h->metric(h, "loss.ce", ce->data[0]);
    h->metric(h, "loss.easy", easy);
    L = add_scaled(t, L, ce, s->lambda_ce);
    if (cam) {
        h->metric(h, "loss.cam", cam->data[0]);
        L = add_scaled(t, L, cam, s->lambda_cam);
    }
    if (s->lambda_fa != 0) {
        struct akt_tensor *fa = fa_term(s, t, in);
        h->metric(h, "loss.fa", fa->data[0]);
        L = add_scaled(t, L, fa, s->lambda_fa);
    }
    double v_sp = 0, v_ch = 0;
    if (s->rfd) {
        struct akt_tensor *kl = akt_rfd_kl(t, in->teacher, in->student, s->maps, 1, 1, s->T_fd,
                                           AKT_KL_SUM, &v_sp, &v_ch);
        L = add_scaled(t, L, kl, s->rfd_lambda);
        h->metric(h, "loss.spatial", v_sp);
        h->metric(h, "loss.channel", v_ch);
    }
    h->metric(h, "loss.feature", (double)s->rfd_lambda * s->rfd * (v_sp + v_ch));
    return L;
}

static const struct akt_plugin descriptor = {
    AKT_PLUGIN_HEADER,
    .kind = AKT_PLUGIN_LOSS,
    .name = "synq",
    .summary = "SynQ: low-pass filtered images, CAM alignment, CE on easy samples (+ AKT with "
               "rfd=true)",
    .params = params,
    .n_params = N_PARAMS,
    .create = synq_create,
    .destroy = synq_destroy,
    .ops.loss = {.compute = synq_compute, .needs_features = 1, .prepare = synq_prepare},
};

AKT_PLUGIN_EXPORT const struct akt_plugin *akt_plugin_get(uint32_t index)
{
    return index == 0 ? &descriptor : NULL;
}
