/* CIFAR ResNets (SPEC 1) of any depth 6n+2 (20, 32, 44, 56, 110, ...): the
 * FP teacher, loaded from a state_dict HDF5 file, with its body outputs
 * F_1..F_3n, every BN input and every ReLU output exposed, in counts the
 * network reports (plugins must never assume ResNet-20's 9 / 19 / 21). */
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

#define AKT_RESNET_STAGES 3
/* Depth limits: 6n+2 with 1 <= n <= AKT_RESNET_MAX_N (ResNet-1202 has n = 200). */
#define AKT_RESNET_MAX_N 200

/* 1 when depth is 6n+2 with 1 <= n <= AKT_RESNET_MAX_N. */
int akt_resnet_depth_valid(int depth);

/* Parameters live in one allocation (values) with one gradient array of the
 * same layout (grads), so optimizers are flat loops. Buffers (running stats)
 * sit in the same array and their grads stay zero. The parameter table is
 * heap-allocated too (n_params entries, PyTorch state_dict order). */
struct akt_resnet {
    uint32_t size;         /* sizeof(struct akt_resnet) of the libakt that made it */
    int depth;             /* 6n+2 */
    int blocks_per_stage;  /* n */
    int num_classes;
    enum akt_shortcut shortcut;
    float mean[3], std[3]; /* input normalisation */
    float bn_eps;
    int n_features;        /* body outputs F_1..F_3n */
    int n_bn;              /* BN layers: 6n+1, or 6n+3 with conv1x1 shortcuts */
    int n_acts;            /* ReLUs (activation-quantizer sites): 6n+1 */
    int n_params;
    struct akt_param *params;
    float *values, *grads;
    int64_t n_values;
};

/* Layout only, values zero (BN gamma and running var 1). depth must be
 * valid (akt_resnet_depth_valid). */
void akt_resnet_init(struct akt_resnet *m, int depth, int num_classes, enum akt_shortcut sc);
/* PyTorch-default-like random init (Kaiming uniform), BN gamma 1 beta 0,
 * running mean 0 var 1: for tests and synthetic models. */
void akt_resnet_init_random(struct akt_resnet *m, struct akt_rng *r);
/* Reads a teacher file: one float32 dataset per state_dict key (see
 * ../shared/data/README.md); root attributes arch ("resnet<depth>", checked
 * against the keys; without it the depth is read off the keys),
 * num_classes, shortcut, input_mean, input_std, bn_eps. Errors name the
 * file, the key and shapes. */
int akt_resnet_load(struct akt_resnet *m, const char *path, struct akt_error *e);
int akt_resnet_save(const struct akt_resnet *m, const char *path, struct akt_error *e);
/* "resnet<depth>" into buf */
const char *akt_resnet_arch(const struct akt_resnet *m, char *buf, size_t n);
void akt_resnet_copy(struct akt_resnet *dst, const struct akt_resnet *src);
void akt_resnet_free(struct akt_resnet *m);
struct akt_param *akt_resnet_param(const struct akt_resnet *m, const char *name);
/* A tensor over a parameter (with its grad pointer when grad is set). */
struct akt_tensor akt_resnet_tensor(const struct akt_resnet *m, const struct akt_param *p, int grad);

/* Hooks that turn the FP network into a fake-quantized student: weight()
 * sees every conv/FC weight before use (param = its index in m->params),
 * act() every ReLU output (index 0..n_acts-1 in forward order). NULL =
 * identity. */
struct akt_quant_hooks {
    struct akt_tensor *(*weight)(void *ctx, struct akt_tape *t, int param, struct akt_tensor *w);
    struct akt_tensor *(*act)(void *ctx, struct akt_tape *t, int index, struct akt_tensor *x);
    void *ctx;
};

struct akt_resnet_opts {
    int bn_batch;     /* 1: BN uses batch statistics and updates running stats */
    int param_grads;  /* 1: weights (not buffers) get gradients */
    const struct akt_quant_hooks *quant; /* NULL for the FP network */
};

/* What one forward exposes (part of the plugin ABI). The arrays live in
 * the tape's arena, like the tensors, and are valid for that step. */
struct akt_resnet_out {
    uint32_t size;                  /* sizeof(struct akt_resnet_out) of the host */
    struct akt_tensor *logits;      /* [B, classes] */
    int n_features;                 /* 3n body outputs F_1..F_3n */
    struct akt_tensor **features;   /* F_i = bn2(conv2(...)) before the residual add */
    const int *feature_stage;       /* stage (0, 1, 2) of each F_i */
    int n_bn;                       /* every BN layer, forward order */
    struct akt_tensor **bn_inputs;  /* the BN's input */
    const int *bn_index;            /* index in net->params of that BN's weight */
    int n_acts;                     /* every ReLU, forward order */
    struct akt_tensor **acts;       /* its output as the next layer sees it: after the
                                       activation quantizer in the student */
    /* Appended in akt 0.2 (size-gated, ABI 2 unchanged): the classifier's
     * weight [classes, K] as this forward used it (fake-quantized in the
     * student), for class activation maps; read-only. */
    struct akt_tensor *fc_weight;
};

/* x: [B,3,32,32], already normalised. Records on the tape when it records. */
void akt_resnet_forward(const struct akt_resnet *m, struct akt_tape *t, struct akt_tensor *x,
                        const struct akt_resnet_opts *o, struct akt_resnet_out *out);

#ifdef __cplusplus
}
#endif
#endif
