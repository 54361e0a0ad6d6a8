/* The fake-quantized student (SPEC 1-2): a copy of the teacher whose conv and
 * FC weights are quantized per output channel and whose ReLU outputs (19 in
 * ResNet-20, 55 in ResNet-56: net.n_acts) pass k-bit activation quantizers
 * with range trackers. */
#ifndef AKT_STUDENT_H
#define AKT_STUDENT_H

#include "akt/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The fake quantizer itself (akt_fake_quant, akt_quant_params, ...) is an op:
 * akt/tensor.h. */
enum akt_range_ema { AKT_EMA_AS_CODED = 0, AKT_EMA_PLAIN = 1 };

/* Range tracker of one activation quantizer (SPEC 2). */
struct akt_range {
    float lo, hi;       /* the values quantization uses */
    float raw_lo, raw_hi; /* plain EMA before bias correction (AKT_EMA_PLAIN) */
    float c;            /* beta^updates */
    int64_t updates;
};
/* One update with a batch's min/max, beta = 0.9. */
void akt_range_update(struct akt_range *r, float mn, float mx, enum akt_range_ema mode);

struct akt_student {
    struct akt_resnet net;       /* values trained; grads filled by backward */
    float *momentum;             /* SGD buffers, same layout as net.values */
    int wbits, abits;
    int first_last_8bit;         /* option: stem conv and FC at 8 bits */
    enum akt_range_ema ema;
    int tracking;                /* 1: activation forwards update the trackers */
    int n_acts;                  /* = net.n_acts */
    struct akt_range *act;       /* [n_acts], forward order of the ReLUs */
    struct akt_quant_hooks hooks; /* pass as akt_resnet_opts.quant */
};

/* A student from a teacher (copies the weights). bits in 2..8. */
void akt_student_init(struct akt_student *s, const struct akt_resnet *teacher, int wbits, int abits);
void akt_student_free(struct akt_student *s);
/* Bits of the weight quantizer of parameter param (wbits, or 8 for the stem
 * conv and FC with first_last_8bit). */
int akt_student_weight_bits(const struct akt_student *s, int param);

#ifdef __cplusplus
}
#endif
#endif
