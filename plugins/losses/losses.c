/* Student losses (SPEC 4): the logit losses of GDFQ/Qimera ("kd") and AdaDFQ
 * ("entropy"), and AKT's refined feature distillation on the 9 body outputs.
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
 * The tempered KL is one fused op here (tempered_kl below) computed in double
 * from the maps themselves rather than akt_log_softmax/akt_softmax/akt_kl_div:
 * the tempered maps are nearly uniform (SPEC 7), so each float32
 * log-probability near -ln(1024) carries an absolute rounding error (~2e-7)
 * of the same order as the whole KL; double accumulation alone cannot undo
 * that. The same op serves the KD term (MEAN reduction).
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

#include "akt/plugin.h"

enum variant { V_LOGIT, V_SPATIAL, V_CHANNEL, V_AKT };
enum logit_kind { LOGIT_AUTO, LOGIT_KD, LOGIT_ENTROPY };

/* Parameter table, in the order of struct akt_param_values. The logit
 * descriptor exposes only the first N_LOGIT_PARAMS, so setting e.g.
 * loss.lambda with loss: logit is an error instead of a silent no-op. */
enum { P_LOGIT, P_T, P_LAMBDA, P_ALPHA, P_TFD, P_MAP_RED, P_KL_RED, P_MAPS, N_PARAMS };
#define N_LOGIT_PARAMS (P_T + 1)
#define ALL_MAPS ((1 << AKT_RESNET_BLOCKS) - 1)

static const struct akt_param_def loss_params[N_PARAMS] = {
    [P_LOGIT] = {"logit", AKT_PT_CHOICE, LOGIT_AUTO, 0, 0, "auto|kd|entropy",
                 "logit loss: auto = the generator's method (GDFQ/Qimera kd, AdaDFQ entropy)"},
    [P_T] = {"T", AKT_PT_FLOAT, 20, 0.01, 1000, NULL, "logit temperature"},
    [P_LAMBDA] = {"lambda", AKT_PT_FLOAT, 1000, 0, 1e9, NULL,
                  "weight of the feature KL (a factor of L_RFD)"},
    [P_ALPHA] = {"alpha", AKT_PT_FLOAT, -1, -1, 1, NULL,
                 "-1: L_logit + L_RFD (SPEC); 0..1: alpha*L_RFD + (1-alpha)*L_logit (paper)"},
    [P_TFD] = {"T_fd", AKT_PT_FLOAT, 8, 0.01, 1000, NULL, "temperature of the attention maps"},
    [P_MAP_RED] = {"map_reduction", AKT_PT_CHOICE, 0, 0, 0, "sum|mean",
                   "combine the selected maps' KL by sum or mean"},
    [P_KL_RED] = {"kl_reduction", AKT_PT_CHOICE, 0, 0, 0, "sum|batchmean",
                  "KL over batch and elements: sum, or sum / B"},
    [P_MAPS] = {"maps", AKT_PT_INT, ALL_MAPS, 1, ALL_MAPS, NULL,
                "bitmask of body outputs used: bit i-1 = F_i (511 = all 9)"},
};

struct loss {
    enum variant variant;
    const char *name;
    enum logit_kind logit;
    float T, T_fd;
    double lambda, alpha; /* kept in double for the metrics */
    int map_mean;
    enum akt_kl_reduction kl_red;
    int maps;
};

/* ------------------------------------------------------- tempered KL --- */
/* KL(softmax(a_T/T) || softmax(a_S/T)) per row of [R, M] maps, in double.
 * Rows are independent (one thread each when it pays); their KLs go to
 * row_kl and are summed serially, so the value does not depend on the thread
 * count. */
#define TKL_PAR_MIN 32768

static double lse_tempered(const float *a, int64_t m, double T)
{
    double mx = a[0] / T;
    for (int64_t i = 1; i < m; i++)
        if (a[i] / T > mx)
            mx = a[i] / T;
    double s = 0;
    for (int64_t i = 0; i < m; i++)
        s += exp(a[i] / T - mx);
    return mx + log(s);
}

static double tkl_forward(double *row_kl, const float *as, const float *at, int64_t rows,
                          int64_t m, double T)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (rows * m >= TKL_PAR_MIN)
#endif
    for (int64_t r = 0; r < rows; r++) {
        const float *s = as + r * m, *t = at + r * m;
        double ls = lse_tempered(s, m, T), lt = lse_tempered(t, m, T);
        double acc = 0;
        for (int64_t i = 0; i < m; i++) {
            double lp = t[i] / T - lt;
            acc += exp(lp) * (lp - (s[i] / T - ls));
        }
        row_kl[r] = acc;
    }
    double sum = 0;
    for (int64_t r = 0; r < rows; r++)
        sum += row_kl[r];
    return sum;
}

/* d KL / d a_S = (q_S - p_T) / T, scaled by g / div; both probabilities in
 * double, so their near-cancelling difference keeps its digits. */
static void tkl_backward(float *ds, const float *as, const float *at, int64_t rows, int64_t m,
                         double T, double g)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (rows * m >= TKL_PAR_MIN)
#endif
    for (int64_t r = 0; r < rows; r++) {
        const float *s = as + r * m, *t = at + r * m;
        double ls = lse_tempered(s, m, T), lt = lse_tempered(t, m, T);
        for (int64_t i = 0; i < m; i++) {
            double d = exp(s[i] / T - ls) - exp(t[i] / T - lt);
            ds[r * m + i] += (float)(g * d / T);
        }
    }
}

static double tkl_divisor(const struct akt_tensor *a, int red)
{
    return red == AKT_KL_SUM ? 1.0 : red == AKT_KL_BATCHMEAN ? (double)a->shape[0] : (double)a->n;
}

static void tkl_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    const struct akt_tensor *as = n->in[0], *at = n->in[1];
    int64_t rows = as->shape[0];
    tkl_backward(as->grad, as->data, at->data, rows, as->n / rows, n->fp[0],
                 (double)n->out->grad[0] / tkl_divisor(as, n->ip[0]));
}

/* Rows are dim 0 of a_S/a_T (same shape, a_T without gradient); the
 * softmax runs over the rest. *value gets the reduced KL in double. */
static struct akt_tensor *tempered_kl(struct akt_tape *t, struct akt_tensor *as,
                                      struct akt_tensor *at, float T, enum akt_kl_reduction red,
                                      double *value)
{
    AKT_ASSERT(akt_tensor_same_shape(as, at) && as->n > 0 && !at->requires_grad && T > 0);
    int64_t rows = as->shape[0];
    double *row_kl = akt_tape_alloc(t, (size_t)rows * sizeof(double));
    *value = tkl_forward(row_kl, as->data, at->data, rows, as->n / rows, T) / tkl_divisor(as, red);
    struct akt_tensor *out = akt_tensor_newv(t, 0, 1, 1);
    out->data[0] = (float)*value;
    /* only a_S is an input of the record: a_T is a constant */
    struct akt_node *nd = akt_tape_push(t, tkl_bw, "tempered_kl", out, as, NULL, NULL, NULL);
    if (nd) {
        nd->in[1] = at;
        nd->ip[0] = (int)red;
        nd->fp[0] = T;
    }
    return out;
}

/* ------------------------------------------------------------ logit --- */
static struct akt_tensor *logit_loss(const struct loss *L, struct akt_tape *t,
                                     const struct akt_loss_input *in, double *value,
                                     struct akt_error *e)
{
    struct akt_tensor *zs = in->student->logits;
    struct akt_tensor *zt = in->teacher->logits;
    if (!zs || !zt || zs->ndim != 2 || !akt_tensor_same_shape(zs, zt)) {
        akt_error_set(e, AKT_ESHAPE, L->name,
                      "teacher and student logits must both be [B,C] of the same shape");
        return NULL;
    }
    zt = akt_detach(t, zt);
    enum logit_kind k = L->logit;
    if (k == LOGIT_AUTO) {
        const char *g = in->generator_logit_loss;
        k = !g ? LOGIT_AUTO : !strcmp(g, "kd") ? LOGIT_KD : !strcmp(g, "entropy") ? LOGIT_ENTROPY
                                                                                    : LOGIT_AUTO;
        if (k == LOGIT_AUTO) {
            akt_error_set(e, AKT_EINVAL, L->name, "logit=auto, but the generator's logit loss "
                          "is '%s' (expected kd or entropy)", g ? g : "(none)");
            return NULL;
        }
    }
    double T2 = (double)L->T * L->T;
    if (k == LOGIT_ENTROPY) {
        struct akt_tensor *h = akt_entropy(t, akt_sub(t, zt, zs), L->T);
        struct akt_tensor *out = akt_scale(t, akt_mean(t, h, 0, 1), (float)-T2, 0);
        *value = out->data[0];
        return out;
    }
    /* kd: the legacy 1/(B*C) "mean" reduction the published numbers use */
    double kl;
    struct akt_tensor *kd = akt_scale(t, tempered_kl(t, zs, zt, L->T, AKT_KL_MEAN, &kl),
                                      (float)T2, 0);
    struct akt_tensor *ce;
    if (in->target) {
        if (!akt_tensor_same_shape(in->target, zs)) {
            akt_error_set(e, AKT_ESHAPE, L->name, "soft targets must be [B,C] like the logits");
            return NULL;
        }
        /* the op reads the target only; it is never written */
        ce = akt_cross_entropy_soft(t, zs, (struct akt_tensor *)in->target);
    } else {
        if (!in->labels) {
            akt_error_set(e, AKT_EINVAL, L->name, "kd needs labels or soft targets");
            return NULL;
        }
        ce = akt_cross_entropy(t, zs, in->labels);
    }
    *value = T2 * kl + ce->data[0];
    return akt_add(t, kd, ce);
}

/* ---------------------------------------------------------- features --- */
/* n_b(p) = mean_c F^2, L2-normalised over positions: [B,C,H,W] -> [B,H,W] */
static struct akt_tensor *spatial_map(struct akt_tape *t, struct akt_tensor *sq)
{
    return akt_l2_normalize(t, akt_mean(t, sq, 1, 2), 1, 3, 1e-12f);
}

/* softmax_c(mean_p F^2): [B,C,H,W] -> [B,C] */
static struct akt_tensor *channel_map(struct akt_tape *t, struct akt_tensor *sq)
{
    return akt_softmax(t, akt_mean(t, sq, 2, 4), 1, 2, 1.0f);
}

static int check_feature(const struct loss *L, const struct akt_loss_input *in, int i,
                         struct akt_error *e)
{
    const struct akt_tensor *ft = in->teacher->features[i], *fs = in->student->features[i];
    if (!ft || !fs)
        return akt_error_set(e, AKT_EINVAL, L->name, "body output F%d is missing (the host must "
                             "keep features when needs_features is set)", i + 1);
    if (ft->ndim != 4 || !akt_tensor_same_shape(ft, fs))
        return akt_error_set(e, AKT_ESHAPE, L->name, "F%d: teacher and student body outputs "
                             "must both be [B,C,H,W] of the same shape", i + 1);
    return 0;
}

static struct akt_tensor *acc_add(struct akt_tape *t, struct akt_tensor *acc, struct akt_tensor *x)
{
    return acc ? akt_add(t, acc, x) : x;
}

/* ----------------------------------------------------------- compute --- */
static struct akt_tensor *loss_compute(void *self, const struct akt_host *h, struct akt_tape *t,
                                       const struct akt_loss_input *in, struct akt_error *e)
{
    const struct loss *L = self;
    /* refuse before computing anything, so no metric is half reported */
    for (int i = 0; i < AKT_RESNET_BLOCKS; i++)
        if ((L->maps >> i & 1) && check_feature(L, in, i, e))
            return NULL;
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
    struct akt_tensor *sp = NULL, *ch = NULL;
    double v_sp = 0, v_ch = 0, v;
    int n_maps = 0;
    for (int i = 0; i < AKT_RESNET_BLOCKS; i++) {
        if (!(L->maps >> i & 1))
            continue;
        n_maps++;
        /* the squares feed both maps, so compute them once */
        struct akt_tensor *sq_s = akt_square(t, in->student->features[i]);
        struct akt_tensor *sq_t = akt_square(t, akt_detach(t, in->teacher->features[i]));
        if (do_sp) {
            sp = acc_add(t, sp, tempered_kl(t, spatial_map(t, sq_s), spatial_map(t, sq_t),
                                            L->T_fd, L->kl_red, &v));
            v_sp += v;
        }
        if (do_ch) {
            ch = acc_add(t, ch, tempered_kl(t, channel_map(t, sq_s), channel_map(t, sq_t),
                                            L->T_fd, L->kl_red, &v));
            v_ch += v;
        }
    }
    double r = L->map_mean ? 1.0 / n_maps : 1.0;
    if (do_sp)
        h->metric(h, "loss.spatial", r * v_sp);
    if (do_ch)
        h->metric(h, "loss.channel", r * v_ch);
    struct akt_tensor *kl = sp && ch ? akt_add(t, sp, ch) : sp ? sp : ch;
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

static void *loss_create(enum variant var, const struct akt_param_values *v, struct akt_error *e)
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
    L->maps = 0;
    if (var != V_LOGIT) {
        L->lambda = v->v[P_LAMBDA];
        L->alpha = v->v[P_ALPHA];
        L->T_fd = (float)v->v[P_TFD];
        L->map_mean = v->v[P_MAP_RED] != 0;
        L->kl_red = v->v[P_KL_RED] != 0 ? AKT_KL_BATCHMEAN : AKT_KL_SUM;
        L->maps = (int)v->v[P_MAPS];
        /* the range check admits -1..1; only -1 means "off" */
        if (L->alpha < 0 && L->alpha != -1) {
            akt_error_set(e, AKT_EINVAL, "loss.alpha", "%g: use -1 (additive form, the "
                          "default) or a weight in [0, 1]", L->alpha);
            free(L);
            return NULL;
        }
    }
    return L;
}

static void loss_destroy(void *self)
{
    free(self);
}

#define CREATE_FN(fn, var)                                                                   \
    static void *fn(const struct akt_host *h, const struct akt_param_values *v,              \
                    struct akt_error *e)                                                     \
    {                                                                                        \
        (void)h;                                                                             \
        return loss_create(var, v, e);                                                       \
    }
CREATE_FN(create_logit, V_LOGIT)
CREATE_FN(create_spatial, V_SPATIAL)
CREATE_FN(create_channel, V_CHANNEL)
CREATE_FN(create_akt, V_AKT)

#define DESCRIPTOR(nm, cname, np, feats, sum)                                               \
    {                                                                                        \
        .abi = AKT_PLUGIN_ABI, .size = sizeof(struct akt_plugin), .kind = AKT_PLUGIN_LOSS,  \
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
