/* Student losses (SPEC 4): the logit losses of GDFQ/Qimera ("kd") and AdaDFQ
 * ("entropy"), and AKT's refined feature distillation on the body outputs
 * F_1..F_3n of a ResNet-(6n+2) (9 for ResNet-20, 27 for ResNet-56).
 *
 * One module, four descriptors sharing this code with a variant flag:
 *   logit    L = L_logit
 *   spatial  L = L_logit + lambda * R(KL_sp,i)
 *   channel  L = L_logit + lambda * R(KL_ch,i)
 *   akt      L = L_logit + lambda * R(KL_sp,i + KL_ch,i)
 * where R is the sum (default) or the mean over the selected maps i. With
 * alpha in [0,1] the combination is instead the paper's
 *   L = alpha * L_RFD + (1 - alpha) * L_logit,  L_RFD = lambda * R(...)
 * (lambda stays a factor of L_RFD; set lambda = 1 for the bare paper form).
 *
 * Logit losses (p = softmax(z/T)):
 *   kd       T^2 * (1/(B*C)) sum_{b,c} p_T log(p_T/p_S) + CE(z_S, y or soft y)
 *   entropy  -T^2 * mean_b entropy(softmax((z_T - z_S)/T))
 * Maps of a body output F [B,C,H,W] (squares averaged in float, on the tape):
 *   spatial  n_b(p) = mean_c F^2, then L2-normalised over p (eps 1e-12)
 *   channel  g_b(c) = mean_p F^2, then softmax over c (T = 1)
 * Each map pair a_T, a_S gives KL(softmax(a_T/T_fd) || softmax(a_S/T_fd)),
 * summed over batch and elements (or divided by B: kl_reduction batchmean).
 *
 * The maths (logit losses, attention maps, the double-precision tempered KL
 * of SPEC 7, the "which maps" selection) is libakt's (akt/distill.h), shared
 * with the runner's exported maps and any other plugin.
 *
 * Teacher tensors are detached: the loss never sends gradient to the teacher
 * (its outputs may carry grad buffers from the generator step).
 *
 * Metrics (per iteration): loss.logit = L_logit; loss.spatial, loss.channel =
 * R(KL) of the computed maps, before lambda; loss.feature = L_RFD (lambda
 * included, alpha not). The logit variant reports loss.feature = 0 and never
 * touches the features (needs_features = 0). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/distill.h"
#include "akt/plugin.h"

enum variant { V_LOGIT, V_SPATIAL, V_CHANNEL, V_AKT };
/* values of the logit parameter */
enum logit_kind { LOGIT_AUTO, LOGIT_KD, LOGIT_ENTROPY };

/* Parameter table, in the order of struct akt_param_values. The logit
 * descriptor exposes only the first N_LOGIT_PARAMS, so setting e.g.
 * loss.lambda with loss: logit is an error instead of a silent no-op. */
enum { P_LOGIT, P_T, P_LAMBDA, P_ALPHA, P_TFD, P_MAP_RED, P_KL_RED, P_MAPS, N_PARAMS };
#define N_LOGIT_PARAMS (P_T + 1)

static const struct akt_param_def loss_params[N_PARAMS] = {
    [P_LOGIT] = {.key = "logit", .type = AKT_PT_CHOICE, .def = LOGIT_AUTO,
                 .choices = "auto|kd|entropy",
                 .help = "logit loss: auto = the generator's method (GDFQ/Qimera kd, AdaDFQ "
                         "entropy)"},
    [P_T] = {.key = "T", .type = AKT_PT_FLOAT, .def = 20, .lo = 0.01, .hi = 1000,
             .help = "logit temperature"},
    [P_LAMBDA] = {.key = "lambda", .type = AKT_PT_FLOAT, .def = 1000, .lo = 0, .hi = 1e9,
                  .help = "weight of the feature KL (a factor of L_RFD)"},
    [P_ALPHA] = {.key = "alpha", .type = AKT_PT_FLOAT, .def = -1, .lo = -1, .hi = 1,
                 .help = "-1: L_logit + L_RFD (SPEC); 0..1: alpha*L_RFD + (1-alpha)*L_logit "
                         "(paper)"},
    [P_TFD] = {.key = "T_fd", .type = AKT_PT_FLOAT, .def = 8, .lo = 0.01, .hi = 1000,
               .help = "temperature of the attention maps"},
    [P_MAP_RED] = {.key = "map_reduction", .type = AKT_PT_CHOICE, .def = 0, .choices = "sum|mean",
                   .help = "combine the selected maps' KL by sum or mean"},
    [P_KL_RED] = {.key = "kl_reduction", .type = AKT_PT_CHOICE, .def = 0,
                  .choices = "sum|batchmean", .help = "KL over batch and elements: sum, or sum / B"},
    [P_MAPS] = {.key = "maps", .type = AKT_PT_STRING, .def_text = "all",
                .check = akt_feature_spec_check,
                .help = "body outputs used: all, last_stage, stage1..3, stage_ends, or indices "
                        "and ranges of F_i such as 1,5-9,27"},
};

struct loss {
    enum variant variant;
    const char *name;
    enum logit_kind logit;
    float T, T_fd;
    double lambda, alpha; /* kept in double for the metrics */
    int map_mean;
    enum akt_kl_reduction kl_red;
    int n_features;       /* of the teacher the plugin was made for */
    unsigned char *maps;  /* [n_features]: 1 = F_{i+1} used */
};

/* ------------------------------------------------------------ logit --- */
static struct akt_tensor *logit_loss(const struct loss *L, struct akt_tape *t,
                                     const struct akt_loss_input *in, double *value,
                                     struct akt_error *e)
{
    enum akt_logit_loss k = L->logit == LOGIT_AUTO ? in->generator_logit_loss
                            : L->logit == LOGIT_KD ? AKT_LOGIT_KD
                                                   : AKT_LOGIT_ENTROPY;
    struct akt_tensor *out = akt_logit_loss(t, k, in->student->logits, in->teacher->logits,
                                            in->labels, in->target, L->T, value, e);
    if (!out && e) /* name the plugin as the place, keep the reason */
        snprintf(e->where, sizeof e->where, "%s", L->name);
    return out;
}

/* ---------------------------------------------------------- features --- */
static int check_feature(const struct loss *L, const struct akt_loss_input *in, int i,
                         struct akt_error *e)
{
    const struct akt_tensor *ft = in->teacher->features ? in->teacher->features[i] : NULL;
    const struct akt_tensor *fs = in->student->features ? in->student->features[i] : NULL;
    if (!ft || !fs)
        return akt_error_set(e, AKT_EINVAL, L->name, "body output F%d is missing (the host must "
                             "keep features when needs_features is set)", i + 1);
    if (ft->ndim != 4 || !akt_tensor_same_shape(ft, fs))
        return akt_error_set(e, AKT_ESHAPE, L->name, "F%d: teacher and student body outputs "
                             "must both be [B,C,H,W] of the same shape", i + 1);
    return 0;
}

/* ----------------------------------------------------------- compute --- */
static struct akt_tensor *loss_compute(void *self, const struct akt_host *h, struct akt_tape *t,
                                       const struct akt_loss_input *in, struct akt_error *e)
{
    const struct loss *L = self;
    /* refuse before computing anything, so no metric is half reported */
    if (L->variant != V_LOGIT) {
        if (in->teacher->n_features != L->n_features || in->student->n_features != L->n_features) {
            akt_error_set(e, AKT_ESHAPE, L->name, "the networks have %d and %d body outputs, "
                          "the loss was made for %d", in->teacher->n_features,
                          in->student->n_features, L->n_features);
            return NULL;
        }
        for (int i = 0; i < L->n_features; i++)
            if (L->maps[i] && check_feature(L, in, i, e))
                return NULL;
    }
    double v_logit;
    struct akt_tensor *logit = logit_loss(L, t, in, &v_logit, e);
    if (!logit)
        return NULL;
    h->metric(h, "loss.logit", v_logit);
    if (L->variant == V_LOGIT) {
        h->metric(h, "loss.feature", 0.0);
        return logit;
    }

    int do_sp = L->variant == V_SPATIAL || L->variant == V_AKT;
    int do_ch = L->variant == V_CHANNEL || L->variant == V_AKT;
    double v_sp = 0, v_ch = 0;
    int n_maps = 0;
    for (int i = 0; i < L->n_features; i++)
        n_maps += L->maps[i];
    struct akt_tensor *kl =
        akt_rfd_kl(t, in->teacher, in->student, L->maps, do_sp, do_ch, L->T_fd, L->kl_red, &v_sp,
                   &v_ch);
    double r = L->map_mean ? 1.0 / n_maps : 1.0;
    if (do_sp)
        h->metric(h, "loss.spatial", r * v_sp);
    if (do_ch)
        h->metric(h, "loss.channel", r * v_ch);
    struct akt_tensor *rfd = akt_scale(t, kl, (float)(L->lambda * r), 0);
    h->metric(h, "loss.feature", L->lambda * r * (v_sp + v_ch));
    if (L->alpha < 0)
        return akt_add(t, logit, rfd);
    return akt_add(t, akt_scale(t, rfd, (float)L->alpha, 0),
                   akt_scale(t, logit, (float)(1 - L->alpha), 0));
}

/* ---------------------------------------------------- create, destroy --- */
/* "where" of errors: the loss named as in the YAML */
static const char *const variant_names[] = {"loss logit", "loss spatial", "loss channel",
                                            "loss akt"};

static void *loss_create(enum variant var, const struct akt_host *h,
                         const struct akt_param_values *v, struct akt_error *e)
{
    AKT_ASSERT(v->n == (var == V_LOGIT ? N_LOGIT_PARAMS : N_PARAMS));
    struct loss *L = calloc(1, sizeof *L);
    if (!L) {
        akt_error_set(e, AKT_ENOMEM, variant_names[var], "out of memory");
        return NULL;
    }
    L->variant = var;
    L->name = variant_names[var];
    L->logit = (enum logit_kind)v->v[P_LOGIT];
    L->T = (float)v->v[P_T];
    /* defaults for the logit variant, whose table stops after T */
    L->lambda = 0;
    L->alpha = -1;
    if (var != V_LOGIT) {
        L->lambda = v->v[P_LAMBDA];
        L->alpha = v->v[P_ALPHA];
        L->T_fd = (float)v->v[P_TFD];
        L->map_mean = v->v[P_MAP_RED] != 0;
        L->kl_red = v->v[P_KL_RED] != 0 ? AKT_KL_BATCHMEAN : AKT_KL_SUM;
        /* the range check admits -1..1; only -1 means "off" */
        if (L->alpha < 0 && L->alpha != -1) {
            akt_error_set(e, AKT_EINVAL, "loss.alpha", "%g: use -1 (additive form, the "
                          "default) or a weight in [0, 1]", L->alpha);
            free(L);
            return NULL;
        }
        /* the selection needs the depth: resolved against the teacher */
        if (!h->teacher) {
            akt_error_set(e, AKT_EINVAL, L->name, "the host lends no teacher network");
            free(L);
            return NULL;
        }
        L->n_features = h->teacher->n_features;
        L->maps = calloc((size_t)L->n_features, 1);
        if (!L->maps) {
            akt_error_set(e, AKT_ENOMEM, L->name, "out of memory");
            free(L);
            return NULL;
        }
        if (akt_feature_select(v->text[P_MAPS], h->teacher, L->maps, "loss.maps", e) < 0) {
            free(L->maps);
            free(L);
            return NULL;
        }
    }
    return L;
}

static void loss_destroy(void *self)
{
    struct loss *L = self;
    if (L)
        free(L->maps);
    free(L);
}

#define CREATE_FN(fn, var)                                                                   \
    static void *fn(const struct akt_host *h, const struct akt_param_values *v,              \
                    struct akt_error *e)                                                     \
    {                                                                                        \
        return loss_create(var, h, v, e);                                                    \
    }
CREATE_FN(create_logit, V_LOGIT)
CREATE_FN(create_spatial, V_SPATIAL)
CREATE_FN(create_channel, V_CHANNEL)
CREATE_FN(create_akt, V_AKT)

#define DESCRIPTOR(nm, cname, np, feats, sum)                                               \
    {                                                                                        \
        AKT_PLUGIN_HEADER, .kind = AKT_PLUGIN_LOSS,                                          \
        .name = nm, .summary = sum, .params = loss_params, .n_params = np,  \
        .create = cname, .destroy = loss_destroy,                                           \
        .ops.loss = {.compute = loss_compute, .needs_features = feats},                     \
    }

static const struct akt_plugin descriptors[] = {
    DESCRIPTOR("logit", create_logit, N_LOGIT_PARAMS, 0,
               "logit loss only: kd (GDFQ/Qimera) or entropy (AdaDFQ)"),
    DESCRIPTOR("spatial", create_spatial, N_PARAMS, 1,
               "logit loss + lambda * KL of tempered spatial attention maps"),
    DESCRIPTOR("channel", create_channel, N_PARAMS, 1,
               "logit loss + lambda * KL of tempered channel attention maps"),
    DESCRIPTOR("akt", create_akt, N_PARAMS, 1,
               "AKT: logit loss + lambda * KL of spatial and channel maps (RFD)"),
};

AKT_PLUGIN_EXPORT const struct akt_plugin *akt_plugin_get(uint32_t index)
{
    return index < sizeof descriptors / sizeof descriptors[0] ? &descriptors[index] : NULL;
}
