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

/* Fake quantizer for a range [lo, hi] (SPEC 2), round half to even:
 * s = (2^k-1)/max(hi-lo, 1e-8); zp = rint(s*lo) + 2^(k-1);
 * q = clamp(rint(s*x - zp), -2^(k-1), 2^(k-1)-1); out = (q + zp)/s.
 * Backward: straight through (dx = dout), no gradient to lo/hi. */
float akt_fake_quant_scalar(float x, float lo, float hi, int bits);

/* The quantizer's parameters for a range (SPEC 2), computed one way for the
 * fake quantizer, the exported integer weights and any plugin:
 * scale = (2^k-1)/max(hi-lo, 1e-8), zero_point = rint(scale*lo) + 2^(k-1),
 * levels qmin = -2^(k-1) .. qmax = 2^(k-1)-1. bits in 2..8. */
struct akt_qparams {
    float scale, zero_point, qmin, qmax;
};
struct akt_qparams akt_quant_params(float lo, float hi, int bits);
/* The integer level of x: clamp(rint(scale*x - zero_point), qmin, qmax) (a
 * NaN stays NaN); x is then represented as (q + zero_point) / scale. */
float akt_quant_level(float x, struct akt_qparams p);
/* per tensor, explicit range */
struct akt_tensor *akt_fake_quant(struct akt_tape *t, struct akt_tensor *x, float lo, float hi,
                                  int bits);
/* per output channel (dim 0), range = that channel's current min/max */
struct akt_tensor *akt_fake_quant_channel(struct akt_tape *t, struct akt_tensor *w, int bits);

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
