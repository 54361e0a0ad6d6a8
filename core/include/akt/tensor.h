/* akt tensors and the reverse-mode tape.
 *
 * A tensor is a view: float32, contiguous, row-major (NCHW for images), at
 * most 4 dims. It never owns its memory: parameters live in parameter tables,
 * activations in the tape's arena.
 *
 * The tape is a linear list of op records in an arena, reset every step.
 * Each op below computes its forward at once; if the tape records and any
 * input requires a gradient, it pushes a record whose backward accumulates
 * into the inputs' grad buffers. akt_backward() walks the records in reverse.
 *
 * Lazy gradients: the grad buffer of an op's output is not zero-filled when
 * the op runs (zeroing every activation's gradient was an eighth of a
 * ResNet-20 training step). It holds no gradient until the first backward
 * kernel writes it: kernels that know this (akt_grad_claim) write instead of
 * adding, the runner zero-fills it before any other kernel adds into it,
 * skips records whose output got no gradient, and zero-fills what is still
 * untouched when backward ends. Code outside a backward kernel that seeds
 * or reads an op output's gradient goes through akt_grad().
 * Kernels (core/ops/) are plain forward/backward function pairs on arrays;
 * this layer only wires them together. */
#ifndef AKT_TENSOR_H
#define AKT_TENSOR_H

#include "akt/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AKT_MAX_DIMS 4

struct akt_tensor {
    float *data;
    float *grad;       /* NULL unless requires_grad; same size as data */
    int ndim;
    int shape[AKT_MAX_DIMS];
    int64_t n;         /* number of elements */
    int requires_grad;
    /* lazy grad buffer state, shared by views; NULL: grad is always valid */
    struct akt_grad_state *gs;
};

/* Bookkeeping of one lazily zeroed grad buffer (see the top comment). */
struct akt_grad_state {
    struct akt_grad_state *next; /* the tape's list */
    float *grad;
    int64_t n;
    int written; /* 0: contents undefined, means all zeros */
};

/* Shape helpers. */
void akt_tensor_set_shape(struct akt_tensor *t, int ndim, const int *shape);
int akt_tensor_same_shape(const struct akt_tensor *a, const struct akt_tensor *b);
/* A tensor over caller memory (data and optional grad). */
struct akt_tensor akt_tensor_wrap(float *data, float *grad, int ndim, const int *shape);

struct akt_tape;
struct akt_node;
typedef void (*akt_backward_fn)(struct akt_tape *t, const struct akt_node *n);

/* One recorded op. ip/fp hold the op's small parameters; saved holds arrays
 * the backward needs (allocated in the arena). */
struct akt_node {
    akt_backward_fn backward;
    const char *name;
    struct akt_tensor *out;
    struct akt_tensor *in[4];
    float *saved[4];
    const int *labels; /* integer inputs (labels), copied into the arena */
    int ip[8];
    float fp[4];
    int flags; /* AKT_NODE_* */
};

/* The record's backward calls akt_grad_claim for every input it writes, so
 * the runner need not zero-fill their untouched grad buffers first. */
#define AKT_NODE_CLAIMS_GRADS 1

struct akt_tape {
    struct akt_arena arena; /* every output tensor, grad and saved array */
    struct akt_node *nodes;
    int n_nodes, cap_nodes;
    int recording;          /* 0: forward only (evaluation), no records */
    struct akt_grad_state *lazy; /* every lazy grad buffer in the arena */
};

void akt_tape_init(struct akt_tape *t, size_t arena_block_bytes);
void akt_tape_reset(struct akt_tape *t); /* drop records and activations */
/* Drop the records but keep every tensor: a second backward pass (the
 * student step after the generator step) then sees only newer records. */
void akt_tape_clear_records(struct akt_tape *t);
void akt_tape_free(struct akt_tape *t);

/* A fresh tensor in the tape's arena (zeroed); with grad when requires_grad. */
struct akt_tensor *akt_tensor_new(struct akt_tape *t, int ndim, const int *shape, int requires_grad);
/* Same, but the data is left uninitialised (the grad, if any, is zeroed):
 * for outputs an op overwrites completely. */
struct akt_tensor *akt_tensor_new_uninit(struct akt_tape *t, int ndim, const int *shape,
                                         int requires_grad);
/* Same with the dims as arguments: akt_tensor_newv(t, rg, 4, N, C, H, W). */
struct akt_tensor *akt_tensor_newv(struct akt_tape *t, int requires_grad, int ndim, ...);
/* Arena copy of caller data (no grad), e.g. a batch of images or constants. */
struct akt_tensor *akt_tensor_from(struct akt_tape *t, const float *data, int ndim, const int *shape);
/* A view with another shape over the same data and grad (no copy, no record). */
struct akt_tensor *akt_view(struct akt_tape *t, struct akt_tensor *x, int ndim, const int *shape);
/* Same data, no gradient flows back. */
struct akt_tensor *akt_detach(struct akt_tape *t, struct akt_tensor *x);

/* Seeds d(loss)/d(loss) = 1 (loss must have one element) and runs every
 * record backward. Grad buffers of parameters must be zeroed by the caller. */
void akt_backward(struct akt_tape *t, struct akt_tensor *loss);
/* Runs every record backward with whatever output gradients are already
 * seeded (tests seed a non-scalar output directly). */
void akt_backward_run(struct akt_tape *t);

/* x->grad made valid (an untouched lazy buffer is zero-filled) and marked
 * written: for seeding an output gradient or reading one outside backward.
 * NULL when x has no gradient. */
float *akt_grad(struct akt_tensor *x);
/* In a backward kernel, before adding into x->grad: 0 when the buffer holds
 * no gradient yet, so the kernel must write (=) instead of add, 1 when it
 * must add. Either way the buffer counts as written afterwards. A record
 * whose backward uses this for every input sets AKT_NODE_CLAIMS_GRADS. */
int akt_grad_claim(struct akt_tensor *x);

/* Internal: push a record if recording and any input needs a gradient;
 * returns NULL otherwise. Used by op implementations. */
struct akt_node *akt_tape_push(struct akt_tape *t, akt_backward_fn fn, const char *name,
                               struct akt_tensor *out, struct akt_tensor *a, struct akt_tensor *b,
                               struct akt_tensor *c, struct akt_tensor *d);
int akt_any_grad(const struct akt_tape *t, const struct akt_tensor *a, const struct akt_tensor *b,
                 const struct akt_tensor *c);
void *akt_tape_alloc(struct akt_tape *t, size_t bytes);        /* zeroed */
void *akt_tape_alloc_uninit(struct akt_tape *t, size_t bytes); /* contents undefined */

/* ---------------------------------------------------------------- ops ---
 * Shapes: x [N,C,H,W] for images. "axes [a0,a1)" means the contiguous range
 * of dims a0..a1-1, so a tensor is seen as [outer, mid, inner].
 * Every op returns a tensor in the tape's arena. */

/* Elementwise. b may have the same shape as a or be a scalar (n == 1). */
struct akt_tensor *akt_add(struct akt_tape *t, struct akt_tensor *a, struct akt_tensor *b);
/* relu(a + b), a and b of one shape: the residual join, one pass each way */
struct akt_tensor *akt_add_relu(struct akt_tape *t, struct akt_tensor *a, struct akt_tensor *b);
struct akt_tensor *akt_sub(struct akt_tape *t, struct akt_tensor *a, struct akt_tensor *b);
struct akt_tensor *akt_mul(struct akt_tape *t, struct akt_tensor *a, struct akt_tensor *b);
struct akt_tensor *akt_div(struct akt_tape *t, struct akt_tensor *a, struct akt_tensor *b);
/* s*x + c */
struct akt_tensor *akt_scale(struct akt_tape *t, struct akt_tensor *x, float s, float c);
struct akt_tensor *akt_square(struct akt_tape *t, struct akt_tensor *x);
struct akt_tensor *akt_relu(struct akt_tape *t, struct akt_tensor *x);
struct akt_tensor *akt_leaky_relu(struct akt_tape *t, struct akt_tensor *x, float slope);
struct akt_tensor *akt_tanh(struct akt_tape *t, struct akt_tensor *x);
/* relu(s*x + c): the hinge of AdaDFQ's range loss */
struct akt_tensor *akt_hinge(struct akt_tape *t, struct akt_tensor *x, float s, float c);

/* Reductions over axes [a0,a1): the result drops those dims (a full
 * reduction gives shape [1]). Sums accumulate in double. */
struct akt_tensor *akt_sum(struct akt_tape *t, struct akt_tensor *x, int a0, int a1);
struct akt_tensor *akt_mean(struct akt_tape *t, struct akt_tensor *x, int a0, int a1);
/* Minimum over all elements, shape [1]; the gradient goes to the first
 * minimal element. */
struct akt_tensor *akt_min(struct akt_tape *t, struct akt_tensor *x);
/* x / max(||x||_2, eps) over axes [a0,a1) */
struct akt_tensor *akt_l2_normalize(struct akt_tape *t, struct akt_tensor *x, int a0, int a1, float eps);

/* Softmax / log-softmax of x/T over axes [a0,a1). */
struct akt_tensor *akt_softmax(struct akt_tape *t, struct akt_tensor *x, int a0, int a1, float T);
struct akt_tensor *akt_log_softmax(struct akt_tape *t, struct akt_tensor *x, int a0, int a1, float T);

/* Losses on logits z [B,C] (scalars out, shape [1]). */
/* mean_b -log softmax(z)[b, y_b] */
struct akt_tensor *akt_cross_entropy(struct akt_tape *t, struct akt_tensor *z, const int *labels);
/* mean_b -sum_c target[b,c] log softmax(z)[b,c]; target [B,C] (gradient to
 * z only; target is a constant) */
struct akt_tensor *akt_cross_entropy_soft(struct akt_tape *t, struct akt_tensor *z,
                                          struct akt_tensor *target);

enum akt_kl_reduction {
    AKT_KL_SUM = 0,       /* sum over all elements */
    AKT_KL_BATCHMEAN = 1, /* sum / shape[0] */
    AKT_KL_MEAN = 2       /* sum / n: PyTorch's legacy "mean", 1/(B*C) for [B,C] */
};
/* KL(p || q) = sum p (log p - log_q) with p a probability tensor and log_q
 * log-probabilities of the same shape (PyTorch's kl_div(log_q, p)); terms with
 * p == 0 count 0. Accumulated in double (SPEC 7). Gradients to both. */
struct akt_tensor *akt_kl_div(struct akt_tape *t, struct akt_tensor *log_q, struct akt_tensor *p,
                              enum akt_kl_reduction red);
/* KL(softmax(a_T/T) || softmax(a_S/T)) per row (dim 0) of a_S and a_T (same
 * shape, the softmax over the other dims), reduced over rows as red says;
 * a_T is a constant (no gradient), a_S gets one. Computed in double from the
 * maps themselves (SPEC 7): the value in double goes to *value (may be NULL),
 * the returned scalar holds it rounded to float. */
struct akt_tensor *akt_tempered_kl(struct akt_tape *t, struct akt_tensor *a_s,
                                   struct akt_tensor *a_t, float T, enum akt_kl_reduction red,
                                   double *value);
/* Entropy of softmax(z/T) over the last axis: z [B,C] -> [B]. */
struct akt_tensor *akt_entropy(struct akt_tape *t, struct akt_tensor *z, float T);

/* Layers. */
/* x [N,Cin,H,W], w [Cout,Cin,kh,kw], bias [Cout] or NULL -> [N,Cout,Ho,Wo] */
struct akt_tensor *akt_conv2d(struct akt_tape *t, struct akt_tensor *x, struct akt_tensor *w,
                              struct akt_tensor *bias, int stride, int pad);
/* x [B,in], w [out,in], bias [out] or NULL -> [B,out] */
struct akt_tensor *akt_linear(struct akt_tape *t, struct akt_tensor *x, struct akt_tensor *w,
                              struct akt_tensor *bias);

/* Batch normalisation over (N,H,W) per channel. gamma/beta may be NULL (no
 * affine). AKT_BN_EVAL uses running stats; AKT_BN_BATCH uses the batch's
 * mean and biased variance, and when running_mean/var are not NULL updates
 * them with momentum (unbiased variance, as PyTorch). */
enum akt_bn_mode { AKT_BN_EVAL = 0, AKT_BN_BATCH = 1 };
struct akt_bn_params {
    struct akt_tensor *gamma, *beta; /* [C] or NULL */
    float *running_mean, *running_var; /* [C] */
    float eps, momentum;
};
struct akt_tensor *akt_batchnorm(struct akt_tape *t, struct akt_tensor *x,
                                 const struct akt_bn_params *p, enum akt_bn_mode mode);
/* relu(batchnorm(x)) in one pass each way, bit-identical to the two ops
 * (the ReLU's mask is recomputed from x in backward, never stored). */
struct akt_tensor *akt_batchnorm_relu(struct akt_tape *t, struct akt_tensor *x,
                                      const struct akt_bn_params *p, enum akt_bn_mode mode);
/* Per-channel batch mean and biased variance over (N,H,W): x [N,C,H,W] ->
 * mean [C], var [C] (for the BN-statistics loss). */
void akt_batch_stats(struct akt_tape *t, struct akt_tensor *x, struct akt_tensor **mean,
                     struct akt_tensor **var);

/* [N,C,H,W] -> [N,C] */
struct akt_tensor *akt_global_avgpool(struct akt_tape *t, struct akt_tensor *x);
/* nearest-neighbour upsampling x2: [N,C,H,W] -> [N,C,2H,2W] */
struct akt_tensor *akt_upsample2x(struct akt_tape *t, struct akt_tensor *x);
/* rows table[labels[b]]: table [V,D] -> [B,D] */
struct akt_tensor *akt_embedding(struct akt_tape *t, struct akt_tensor *table, const int *labels,
                                 int batch);
/* Option-A shortcut: x[:, :, ::stride, ::stride] with pad_c zero channels
 * before and after: [N,C,H,W] -> [N,C+2*pad_c,H/stride,W/stride] */
struct akt_tensor *akt_subsample_pad(struct akt_tape *t, struct akt_tensor *x, int stride,
                                     int pad_c);

/* Image ops of the later methods (core/ops/image.c, core/ops/focal.c). */
/* SynQ's low-pass filter: every [H,W] plane of x [N,C,H,W] multiplied in the
 * 2-D DFT by exp(-D^2 / (2 d0^2)), D the distance of the frequency from 0
 * (torch.fft's fftshift centre), and the real part taken back; computed as
 * the equivalent separable circular convolution, in double. d0 > 0. */
struct akt_tensor *akt_lowpass_gaussian(struct akt_tape *t, struct akt_tensor *x, float d0);
/* Bilinear resampling as PyTorch's interpolate(align_corners=False) of a
 * window of each image: crop[4b..4b+3] = y0, x0, h, w (pixels, inside the
 * image) of image b resized to [oh, ow], then mirrored left-right when
 * flip[b] (torchvision's RandomResizedCrop + RandomHorizontalFlip). crop
 * NULL: the whole image; flip NULL: none. x [N,C,H,W] -> [N,C,oh,ow]. */
struct akt_tensor *akt_crop_resize(struct akt_tape *t, struct akt_tensor *x, const int *crop,
                                   const unsigned char *flip, int oh, int ow);
/* (x - min) / (max - min + eps) over all but the first dim, per row; min
 * and max carry gradient (to their first occurrence), as in PyTorch. */
struct akt_tensor *akt_minmax_normalize(struct akt_tape *t, struct akt_tensor *x, float eps);
/* (1/B) sum_b w_b (1 - p_b)^gamma (-log p_b), p_b = softmax(z_b)[y_b], on
 * z [B,C]: focal cross-entropy (the weight carries gradient); weights [B]
 * constants or NULL (all 1). gamma = 0 with 0/1 weights: a cross-entropy on
 * the selected samples, still divided by B. Shape [1]. */
struct akt_tensor *akt_focal_cross_entropy(struct akt_tape *t, struct akt_tensor *z,
                                           const int *labels, float gamma, const float *weights);

/* ------------------------------------------------ fake quantizer ---
 * core/ops/fake_quant.c; the range trackers that feed it are the student's
 * (akt/student.h). */
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

#ifdef __cplusplus
}
#endif
#endif
