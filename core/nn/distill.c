/* The distillation maths every loss shares (SPEC 4): logit losses, AKT's
 * attention maps, and the selection of body outputs. */
#include "akt/distill.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *akt_logit_loss_name(enum akt_logit_loss k)
{
    return k == AKT_LOGIT_KD ? "kd" : k == AKT_LOGIT_ENTROPY ? "entropy" : "?";
}

struct akt_tensor *akt_logit_loss(struct akt_tape *t, enum akt_logit_loss kind,
                                  struct akt_tensor *zs, struct akt_tensor *zt, const int *labels,
                                  const struct akt_tensor *target, float T, double *value,
                                  struct akt_error *e)
{
    const char *where = "logit loss";
    if (!zs || !zt || zs->ndim != 2 || !akt_tensor_same_shape(zs, zt)) {
        akt_error_set(e, AKT_ESHAPE, where,
                      "teacher and student logits must both be [B,C] of the same shape");
        return NULL;
    }
    if (kind != AKT_LOGIT_KD && kind != AKT_LOGIT_ENTROPY) {
        akt_error_set(e, AKT_EINVAL, where, "unknown logit loss %d (kd or entropy)", (int)kind);
        return NULL;
    }
    zt = akt_detach(t, zt);
    double T2 = (double)T * T;
    if (kind == AKT_LOGIT_ENTROPY) {
        struct akt_tensor *h = akt_entropy(t, akt_sub(t, zt, zs), T);
        struct akt_tensor *out = akt_scale(t, akt_mean(t, h, 0, 1), (float)-T2, 0);
        if (value)
            *value = out->data[0];
        return out;
    }
    /* kd: the legacy 1/(B*C) "mean" reduction the published numbers use */
    struct akt_tensor *ce;
    if (target) {
        if (!akt_tensor_same_shape(target, zs)) {
            akt_error_set(e, AKT_ESHAPE, where, "soft targets must be [B,C] like the logits");
            return NULL;
        }
    } else if (!labels) {
        akt_error_set(e, AKT_EINVAL, where, "kd needs labels or soft targets");
        return NULL;
    }
    double kl;
    struct akt_tensor *kd = akt_scale(t, akt_tempered_kl(t, zs, zt, T, AKT_KL_MEAN, &kl),
                                      (float)T2, 0);
    /* the op reads the target only; it is never written */
    ce = target ? akt_cross_entropy_soft(t, zs, (struct akt_tensor *)target)
                : akt_cross_entropy(t, zs, labels);
    if (value)
        *value = T2 * kl + ce->data[0];
    return akt_add(t, kd, ce);
}

void akt_attention_maps(struct akt_tape *t, struct akt_tensor *f, struct akt_tensor **spatial,
                        struct akt_tensor **channel)
{
    AKT_ASSERT(f && f->ndim == 4);
    struct akt_tensor *sq = akt_square(t, f);
    if (spatial) /* mean over C: [B,C,H,W] -> [B,H,W], L2 over (H,W) */
        *spatial = akt_l2_normalize(t, akt_mean(t, sq, 1, 2), 1, 3, 1e-12f);
    if (channel) /* mean over (H,W): -> [B,C], softmax over C */
        *channel = akt_softmax(t, akt_mean(t, sq, 2, 4), 1, 2, 1.0f);
}

static struct akt_tensor *acc_add(struct akt_tape *t, struct akt_tensor *acc, struct akt_tensor *x)
{
    return acc ? akt_add(t, acc, x) : x;
}

struct akt_tensor *akt_rfd_kl(struct akt_tape *t, const struct akt_resnet_out *teacher,
                              const struct akt_resnet_out *student, const unsigned char *mask,
                              int spatial, int channel, float T_fd, enum akt_kl_reduction red,
                              double *v_sp, double *v_ch)
{
    AKT_ASSERT(spatial || channel);
    struct akt_tensor *sp = NULL, *ch = NULL;
    double s_sp = 0, s_ch = 0, v;
    for (int i = 0; i < student->n_features; i++) {
        if (!mask[i])
            continue;
        struct akt_tensor *sp_s, *ch_s, *sp_t, *ch_t;
        akt_attention_maps(t, student->features[i], spatial ? &sp_s : NULL,
                           channel ? &ch_s : NULL);
        akt_attention_maps(t, akt_detach(t, teacher->features[i]), spatial ? &sp_t : NULL,
                           channel ? &ch_t : NULL);
        if (spatial) {
            sp = acc_add(t, sp, akt_tempered_kl(t, sp_s, sp_t, T_fd, red, &v));
            s_sp += v;
        }
        if (channel) {
            ch = acc_add(t, ch, akt_tempered_kl(t, ch_s, ch_t, T_fd, red, &v));
            s_ch += v;
        }
    }
    AKT_ASSERT(sp || ch); /* the mask selects at least one map */
    if (v_sp)
        *v_sp = s_sp;
    if (v_ch)
        *v_ch = s_ch;
    return sp && ch ? akt_add(t, sp, ch) : sp ? sp : ch;
}

/* ----------------------------------------- class activation maps --- */

struct akt_tensor *akt_class_activation_map(struct akt_tape *t, const struct akt_resnet_out *o,
                                            const int *cls, int size, struct akt_error *e)
{
    const char *where = "class activation map";
    const struct akt_tensor *w = o->size >= offsetof(struct akt_resnet_out, fc_weight) +
                                                sizeof o->fc_weight
                                     ? o->fc_weight
                                     : NULL;
    struct akt_tensor *h = o->n_acts > 0 && o->acts ? o->acts[o->n_acts - 1] : NULL;
    if (!w || !h || h->ndim != 4 || w->ndim != 2 || w->shape[1] != h->shape[1]) {
        akt_error_set(e, AKT_EINVAL, where, "the network's output lacks its classifier weight "
                      "[C,K] or the classifier's input [B,K,H,W]");
        return NULL;
    }
    const int B = h->shape[0], K = h->shape[1], HW = h->shape[2] * h->shape[3], C = w->shape[0];
    /* alpha_bk, broadcast over the positions: the weighted channel sum is
     * then a product and a sum over K */
    struct akt_tensor *a = akt_tensor_new_uninit(t, 4, h->shape, 0);
    for (int b = 0; b < B; b++) {
        AKT_ASSERT(cls[b] >= 0 && cls[b] < C);
        for (int k = 0; k < K; k++) {
            float al = w->data[(int64_t)cls[b] * K + k] / (float)HW;
            al = al > 1e-10f ? al : 1e-10f;
            float *ap = a->data + ((int64_t)b * K + k) * HW;
            for (int p = 0; p < HW; p++)
                ap[p] = al;
        }
    }
    struct akt_tensor *m = akt_relu(t, akt_sum(t, akt_mul(t, h, a), 1, 2)); /* [B,H,W] */
    m = akt_view(t, m, 4, (int[]){B, 1, h->shape[2], h->shape[3]});
    m = akt_crop_resize(t, m, NULL, NULL, size, size);
    m = akt_minmax_normalize(t, m, 1e-10f);
    return akt_view(t, m, 3, (int[]){B, size, size});
}

/* ------------------------------------------------ which body outputs --- */

/* One comma-separated token of a selection, applied to mask when mask is
 * not NULL (n features, n/3 per stage). 0, or -1 with why set. */
static int feature_token(const char *tok, int n, unsigned char *mask, char *why, size_t wn)
{
    static const char *const stages[] = {"stage1", "stage2", "stage3"};
    int per = n / AKT_RESNET_STAGES, lo = -1, hi = -1;
    if (!strcmp(tok, "all")) {
        lo = 1, hi = n;
    } else if (!strcmp(tok, "first_stage")) {
        lo = 1, hi = per;
    } else if (!strcmp(tok, "last_stage")) {
        lo = n - per + 1, hi = n;
    } else if (!strcmp(tok, "stage_ends")) {
        for (int s = 1; mask && s <= AKT_RESNET_STAGES; s++)
            mask[s * per - 1] = 1;
        return 0;
    } else {
        for (int s = 0; s < AKT_RESNET_STAGES; s++)
            if (!strcmp(tok, stages[s]))
                lo = s * per + 1, hi = (s + 1) * per;
    }
    if (lo < 0) {
        /* I or I-J */
        const char *p = tok;
        char *end;
        if (!isdigit((unsigned char)*p))
            goto bad;
        long a = strtol(p, &end, 10), b = a;
        if (*end == '-') {
            p = end + 1;
            if (!isdigit((unsigned char)*p))
                goto bad;
            b = strtol(p, &end, 10);
        }
        if (*end)
            goto bad;
        if (a < 1 || b < a || b > 100000) {
            snprintf(why, wn, "'%s' is not a range of 1-based indices I-J with 1 <= I <= J", tok);
            return -1;
        }
        if (mask && b > n) {
            snprintf(why, wn, "F%ld does not exist: the network has F1..F%d", b, n);
            return -1;
        }
        lo = (int)a, hi = (int)b;
    }
    for (int i = lo; mask && i <= hi; i++)
        mask[i - 1] = 1;
    return 0;
bad:
    snprintf(why, wn, "'%s' is not all, first_stage, last_stage, stage1..stage3, stage_ends, "
             "an index or a range I-J", tok);
    return -1;
}

static int feature_parse(const char *spec, int n, unsigned char *mask, char *why, size_t wn)
{
    char buf[256];
    size_t len = spec ? strlen(spec) : 0;
    if (!len) {
        snprintf(why, wn, "empty selection (use all, last_stage, a list such as 1,5-9, ...)");
        return -1;
    }
    if (len >= sizeof buf) {
        snprintf(why, wn, "selection longer than %zu characters", sizeof buf - 1);
        return -1;
    }
    memcpy(buf, spec, len + 1);
    char *save = NULL;
    int tokens = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        char *e = tok + strlen(tok);
        while (e > tok && e[-1] == ' ')
            *--e = 0;
        if (feature_token(tok, n, mask, why, wn))
            return -1;
        tokens++;
    }
    if (!tokens) {
        snprintf(why, wn, "empty selection '%s'", spec);
        return -1;
    }
    return 0;
}

int akt_feature_spec_check(const char *spec, char *why, size_t n)
{
    return feature_parse(spec, 0, NULL, why, n);
}

int akt_feature_select(const char *spec, const struct akt_resnet *net, unsigned char *mask,
                       const char *where, struct akt_error *e)
{
    int n = net->n_features;
    memset(mask, 0, (size_t)n);
    char why[256];
    if (feature_parse(spec, n, mask, why, sizeof why))
        return akt_error_set(e, AKT_EINVAL, where, "%s", why);
    int k = 0;
    for (int i = 0; i < n; i++)
        k += mask[i];
    return k;
}
