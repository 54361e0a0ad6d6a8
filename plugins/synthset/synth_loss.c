/* The synthesis losses of HAST and IntraQ on akt's tape ops; the BNS term is
 * the GDFQ trunk's (plugins/generators/trunk.c, compiled in alongside). */
#include "synth_loss.h"

#include <math.h>

#include "../generators/trunk.h"

static int check_logits(const struct akt_resnet_out *o, const int *labels, const char *who,
                        struct akt_error *e)
{
    const struct akt_tensor *z = o ? o->logits : NULL;
    if (!z || z->ndim != 2 || !labels)
        return akt_error_set(e, AKT_ESHAPE, who, "teacher logits [B,C] and labels needed");
    for (int b = 0; b < z->shape[0]; b++)
        if (labels[b] < 0 || labels[b] >= z->shape[1])
            return akt_error_set(e, AKT_EINVAL, who, "label %d of image %d is not a class",
                                 labels[b], b);
    return 0;
}

struct akt_tensor *synth_hast_loss(struct akt_tape *t, const struct akt_resnet *teacher,
                                   const struct akt_resnet_out *o, const int *labels, float beta,
                                   float gamma, float w_bns, struct synth_terms *v,
                                   struct akt_error *e)
{
    if (check_logits(o, labels, "hast_set", e))
        return NULL;
    struct akt_tensor *bns = gen_bns_loss(t, teacher, o, e);
    if (!bns)
        return NULL;
    struct akt_tensor *focal = akt_focal_cross_entropy(t, o->logits, labels, gamma, NULL);
    if (v)
        *v = (struct synth_terms){.bns = bns->data[0], .target = focal->data[0]};
    return akt_add(t, akt_scale(t, bns, w_bns, 0), akt_scale(t, focal, beta, 0));
}

struct akt_tensor *synth_intraq_loss(struct akt_tape *t, const struct akt_resnet *teacher,
                                     const struct akt_resnet_out *o, const int *labels,
                                     const float *target, const float *mu, const float *mask,
                                     float m_lo, float m_hi, float w_bns, struct synth_terms *v,
                                     struct akt_error *e)
{
    const char *who = "intraq_set";
    if (check_logits(o, labels, who, e))
        return NULL;
    struct akt_tensor *h = o->n_acts > 0 && o->acts ? o->acts[o->n_acts - 1] : NULL;
    const int B = o->logits->shape[0], C = o->logits->shape[1];
    if (!h || h->ndim != 4 || h->shape[0] != B) {
        akt_error_set(e, AKT_ESHAPE, who, "the teacher's classifier input [B,K,H,W] is missing");
        return NULL;
    }
    const int Kf = h->shape[1];
    struct akt_tensor *bns = gen_bns_loss(t, teacher, o, e);
    if (!bns)
        return NULL;
    /* mean_b sum_c (p - onehot * target)^2 * onehot: the label's entry only */
    struct akt_tensor *oh = akt_tensor_newv(t, 0, 2, B, C), *tg = akt_tensor_newv(t, 0, 2, B, C);
    for (int b = 0; b < B; b++) {
        oh->data[(int64_t)b * C + labels[b]] = 1;
        tg->data[(int64_t)b * C + labels[b]] = target[b];
    }
    struct akt_tensor *p = akt_softmax(t, o->logits, 1, 2, 1.0f);
    struct akt_tensor *lt = akt_sum(t, akt_mul(t, akt_square(t, akt_sub(t, p, tg)), oh), 0, 2);
    lt = akt_scale(t, lt, 1.0f / (float)B, 0);
    /* cosine of the pooled features with the (constant, normalised) means */
    struct akt_tensor *mh = akt_tensor_newv(t, 0, 2, B, Kf);
    double msum = 0;
    for (int b = 0; b < B; b++) {
        const float *m = mu + (int64_t)b * Kf;
        double n2 = 0;
        for (int k = 0; k < Kf; k++)
            n2 += (double)m[k] * m[k];
        double n = fmax(sqrt(n2), 1e-6);
        for (int k = 0; k < Kf; k++)
            mh->data[(int64_t)b * Kf + k] = (float)(m[k] / n);
        msum += mask[b];
    }
    struct akt_tensor *f = akt_l2_normalize(t, akt_global_avgpool(t, h), 1, 2, 1e-6f);
    struct akt_tensor *cos = akt_sum(t, akt_mul(t, f, mh), 1, 2); /* [B] */
    struct akt_tensor *mk = akt_tensor_from(t, mask, 1, &B);
    float r = (float)(1.0 / (msum + 1e-6));
    struct akt_tensor *lo = akt_hinge(t, cos, 1.0f, m_lo - 1.0f);  /* relu(m_lo - (1 - cos)) */
    struct akt_tensor *hi = akt_hinge(t, cos, -1.0f, 1.0f - m_hi); /* relu((1 - cos) - m_hi) */
    lo = akt_scale(t, akt_sum(t, akt_mul(t, lo, mk), 0, 1), r, 0);
    hi = akt_scale(t, akt_sum(t, akt_mul(t, hi, mk), 0, 1), r, 0);
    if (v)
        *v = (struct synth_terms){.bns = bns->data[0], .target = lt->data[0],
                                  .cos_lo = lo->data[0], .cos_hi = hi->data[0]};
    struct akt_tensor *L = akt_add(t, akt_scale(t, bns, w_bns, 0), lt);
    return akt_add(t, akt_add(t, L, lo), hi);
}
