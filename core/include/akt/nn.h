/* ResNet-20 for CIFAR (SPEC 1): the FP teacher, loaded from a state_dict
 * HDF5 file, with the 9 body outputs and every BN input exposed. */
#ifndef AKT_NN_H
#define AKT_NN_H

#include "akt/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

enum akt_shortcut { AKT_SHORTCUT_PAD = 0, AKT_SHORTCUT_CONV1X1 = 1 };

enum akt_param_kind { AKT_PARAM_WEIGHT = 0, AKT_PARAM_BUFFER = 1 };

/* One named array of the model, by its PyTorch state_dict key. */
struct akt_param {
    char name[48];
    int ndim, shape[4];
    int64_t offset, n; /* into the model's values (and grads) */
    int kind;
};

#define AKT_RESNET_MAX_PARAMS 160
#define AKT_RESNET_BLOCKS 9
#define AKT_RESNET_MAX_BN 21

/* Parameters live in one allocation (values) with one gradient array of the
 * same layout (grads), so optimizers are flat loops. Buffers (running stats)
 * sit in the same array and their grads stay zero. */
struct akt_resnet {
    int num_classes;
    enum akt_shortcut shortcut;
    float mean[3], std[3]; /* input normalisation */
    float bn_eps;
    int n_params;
    struct akt_param params[AKT_RESNET_MAX_PARAMS];
    float *values, *grads;
    int64_t n_values;
};

/* Layout only, values zero. */
void akt_resnet_init(struct akt_resnet *m, int num_classes, enum akt_shortcut sc);
/* PyTorch-default-like random init (Kaiming uniform), BN gamma 1 beta 0,
 * running mean 0 var 1: for tests and synthetic models. */
void akt_resnet_init_random(struct akt_resnet *m, struct akt_rng *r);
/* Reads a teacher file: one float32 dataset per state_dict key (see
 * ../shared/data/README.md); root attributes num_classes, shortcut,
 * input_mean, input_std, bn_eps. Errors name the file, the key and shapes. */
int akt_resnet_load(struct akt_resnet *m, const char *path, struct akt_error *e);
int akt_resnet_save(const struct akt_resnet *m, const char *path, struct akt_error *e);
void akt_resnet_copy(struct akt_resnet *dst, const struct akt_resnet *src);
void akt_resnet_free(struct akt_resnet *m);
struct akt_param *akt_resnet_param(const struct akt_resnet *m, const char *name);
/* A tensor over a parameter (with its grad pointer when grad is set). */
struct akt_tensor akt_resnet_tensor(const struct akt_resnet *m, const struct akt_param *p, int grad);

/* Hooks that turn the FP network into a fake-quantized student: weight()
 * sees every conv/FC weight before use (param = its index in m->params),
 * act() every ReLU output (index 0..18 in forward order). NULL = identity. */
struct akt_quant_hooks {
    struct akt_tensor *(*weight)(void *ctx, struct akt_tape *t, int param, struct akt_tensor *w);
    struct akt_tensor *(*act)(void *ctx, struct akt_tape *t, int index, struct akt_tensor *x);
    void *ctx;
};
#define AKT_RESNET_ACTS 19

struct akt_resnet_opts {
    int bn_batch;     /* 1: BN uses batch statistics and updates running stats */
    int param_grads;  /* 1: weights (not buffers) get gradients */
    const struct akt_quant_hooks *quant; /* NULL for the FP network */
};

struct akt_resnet_out {
    struct akt_tensor *logits;                           /* [B, classes] */
    struct akt_tensor *features[AKT_RESNET_BLOCKS];     /* body outputs F_1..F_9 */
    struct akt_tensor *bn_inputs[AKT_RESNET_MAX_BN];    /* every BN input, forward order */
    int bn_index[AKT_RESNET_MAX_BN];                     /* param index of each BN's weight */
    int n_bn;
};

/* x: [B,3,32,32], already normalised. Records on the tape when it records. */
void akt_resnet_forward(const struct akt_resnet *m, struct akt_tape *t, struct akt_tensor *x,
                        const struct akt_resnet_opts *o, struct akt_resnet_out *out);

#ifdef __cplusplus
}
#endif
#endif
