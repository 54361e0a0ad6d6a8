/* The synthesis losses of the noise-optimisation methods (HAST, IntraQ):
 * one step's scalar loss of a batch of images from the teacher's outputs on
 * them. Compiled into the synthset plugin and into tests/plugin_sota.c. */
#ifndef AKT_SYNTH_LOSS_H
#define AKT_SYNTH_LOSS_H

#include "akt/plugin.h"

/* Each term's value (before the total), for logs and tests. */
struct synth_terms {
    double bns, target, cos_lo, cos_hi;
};

/* HAST (data_generate/distill_data.py, getDistilData_hardsample):
 *   w_bns L_BNS + beta mean_b (1 - p_b)^gamma CE(z_b, y_b)
 * o: the teacher's outputs on the images (logits, BN inputs). NULL with e
 * set on a mismatch. v->target gets the focal CE before beta. */
struct akt_tensor *synth_hast_loss(struct akt_tape *t, const struct akt_resnet *teacher,
                                   const struct akt_resnet_out *o, const int *labels, float beta,
                                   float gamma, float w_bns, struct synth_terms *v,
                                   struct akt_error *e);

/* IntraQ (getDistilData_hardsample_cosineDistanceEMA_interClass_aug):
 *   w_bns L_BNS + mean_b (softmax(z_b)[y_b] - target_b)^2
 *   + sum_b mask_b relu(m_lo - (1 - cos_b)) / (sum mask + 1e-6)
 *   + sum_b mask_b relu((1 - cos_b) - m_hi) / (sum mask + 1e-6)
 * cos_b: cosine similarity (eps 1e-6) of the pooled classifier input
 * (global average of o->acts[n_acts-1]) with mu_b (row b of mu [B,K], the
 * mean feature of earlier images of class y_b); mask_b = 1 where that mean
 * exists. target, mask [B]; all constants. */
struct akt_tensor *synth_intraq_loss(struct akt_tape *t, const struct akt_resnet *teacher,
                                     const struct akt_resnet_out *o, const int *labels,
                                     const float *target, const float *mu, const float *mask,
                                     float m_lo, float m_hi, float w_bns, struct synth_terms *v,
                                     struct akt_error *e);

#endif
