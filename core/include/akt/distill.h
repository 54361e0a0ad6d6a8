/* The maths of the distillation losses (SPEC 4), written once: the shipped
 * loss plugins, the runner's exported attention maps and any plugin an
 * author writes call these, so a new loss never copies them.
 *
 * All functions build on the tape like every op: values at once, backward
 * recorded when the inputs need gradients. */
#ifndef AKT_DISTILL_H
#define AKT_DISTILL_H

#include "akt/nn.h"
#include "akt/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------ logits --- */

/* The two logit losses of SPEC 4 (part of the plugin ABI: a generator names
 * its method's one). */
enum akt_logit_loss {
    AKT_LOGIT_KD = 0,      /* GDFQ/Qimera: T^2 (1/(B*C)) sum p_T log(p_T/p_S) + CE(z_S, y or y~) */
    AKT_LOGIT_ENTROPY = 1  /* AdaDFQ: -T^2 mean_b entropy(softmax((z_T - z_S)/T)) */
};
#define AKT_LOGIT_COUNT 2
/* "kd" / "entropy" */
const char *akt_logit_loss_name(enum akt_logit_loss k);

/* The logit loss kind on student logits zs [B,C] against the teacher's zt
 * (detached here: no gradient ever reaches the teacher). kd needs labels
 * [B] or soft targets [B,C] (target wins when not NULL). T is the logit
 * temperature (SPEC: 20). The KL of kd is the double-precision tempered KL
 * with the legacy 1/(B*C) reduction. *value (may be NULL) gets the loss in
 * double. NULL with e set on mismatched shapes or a missing target. */
struct akt_tensor *akt_logit_loss(struct akt_tape *t, enum akt_logit_loss kind,
                                  struct akt_tensor *zs, struct akt_tensor *zt, const int *labels,
                                  const struct akt_tensor *target, float T, double *value,
                                  struct akt_error *e);

/* -------------------------------------------------- attention maps --- */

/* AKT's refined maps of a body output F [B,C,H,W] (squares averaged in
 * float, F squared once for both):
 *   spatial  n_b(p) = mean_c F^2, L2-normalised over p (eps 1e-12): [B,H,W]
 *   channel  g_b(c) = mean_p F^2, softmax over c (T = 1):             [B,C]
 * Either output pointer may be NULL. */
void akt_attention_maps(struct akt_tape *t, struct akt_tensor *f, struct akt_tensor **spatial,
                        struct akt_tensor **channel);

/* AKT's refined feature distillation before lambda (SPEC 4): over the body
 * outputs F_{i+1} with mask[i] = 1, the sum of KL_sp,i (when spatial) plus
 * the sum of KL_ch,i (when channel), each akt_tempered_kl(T_fd, red) of the
 * maps above (the teacher's features detached here). *v_sp, *v_ch (may be
 * NULL) get the two sums in double. The caller checks that the selected
 * features exist with matching shapes. */
struct akt_tensor *akt_rfd_kl(struct akt_tape *t, const struct akt_resnet_out *teacher,
                              const struct akt_resnet_out *student, const unsigned char *mask,
                              int spatial, int channel, float T_fd, enum akt_kl_reduction red,
                              double *v_sp, double *v_ch);

/* ----------------------------------------- class activation maps --- */

/* SynQ's class activation map of a network's output o for the classes
 * cls[b] (e.g. each network's own prediction): Grad-CAM on the classifier's
 * input h = o->acts[n_acts-1] [B,K,H,W] (the last ReLU output, as the
 * global pooling sees it), whose gradient of z_c is o->fc_weight[c,k] / (H*W)
 * at every position. Weights alpha_bk = max(W[c_b,k] / (H*W), 1e-10)
 * (constants, as Grad-CAM's detached gradients), map = relu(sum_k alpha_bk
 * h_bk), bilinearly resized to size x size (align_corners=False), min-max
 * normalised per sample with eps 1e-10: [B,size,size]. The gradient reaches
 * h only. NULL with e set when o lacks the classifier's weight or input. */
struct akt_tensor *akt_class_activation_map(struct akt_tape *t, const struct akt_resnet_out *o,
                                            const int *cls, int size, struct akt_error *e);

/* ------------------------------------------------ which body outputs --- */

/* A selection of body outputs F_1..F_n as a user writes it: a comma list of
 *   all                    every body output
 *   stage1, stage2, stage3 the outputs of one stage (first_stage = stage1,
 *   first_stage, last_stage   last_stage = stage3)
 *   stage_ends             the last output of each stage (F_n/3, F_2n/3, F_n)
 *   I or I-J               1-based indices, e.g. 1,5-9,27
 * akt_feature_spec_check checks the syntax only (0, or -1 with why set):
 * a STRING parameter's check hook. akt_feature_select resolves it for net:
 * mask[i] = 1 (else 0) for each selected F_{i+1}, mask has net->n_features
 * entries; returns how many are selected (>= 1), or a negative AKT_E* with e
 * naming where (e.g. "loss.maps") and the index beyond the network. */
int akt_feature_spec_check(const char *spec, char *why, size_t n);
int akt_feature_select(const char *spec, const struct akt_resnet *net, unsigned char *mask,
                       const char *where, struct akt_error *e);

#ifdef __cplusplus
}
#endif
#endif
