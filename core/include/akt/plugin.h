/* The akt plugin ABI: generators and student losses as shared objects.
 *
 * A plugin .so exports exactly one symbol:
 *
 *     const struct akt_plugin *akt_plugin_get(uint32_t index);
 *
 * returning a descriptor for index 0, 1, ... and NULL after the last (one
 * file may ship variants, as LADSPA does). Each descriptor starts with abi
 * (must equal AKT_PLUGIN_ABI of the host) and size (sizeof the struct the
 * plugin was compiled with, so fields can be appended later; the host reads
 * only fields that fit in size).
 *
 * Plugins call akt's ops directly (libakt is linked in) and build their
 * computation on the tape the host passes; the host calls akt_backward.
 * Tensors the host passes are valid for that call only. Plugin state belongs
 * to the plugin from create() until destroy(). See plugins/README.md. */
#ifndef AKT_PLUGIN_H
#define AKT_PLUGIN_H

#include "akt/nn.h"
#include "akt/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AKT_PLUGIN_ABI 1u
#define AKT_PLUGIN_SYMBOL "akt_plugin_get"
#define AKT_PLUGIN_MAX_PARAMS 24

enum akt_plugin_kind { AKT_PLUGIN_GENERATOR = 1, AKT_PLUGIN_LOSS = 2 };

/* ------------------------------------------------------------ parameters --
 * Each plugin documents its parameters in a table; the host validates the
 * YAML / --set values against it (unknown key, wrong type, out of range are
 * errors) and prints it in `akt plugins`. */
enum akt_ptype { AKT_PT_FLOAT = 0, AKT_PT_INT = 1, AKT_PT_BOOL = 2, AKT_PT_CHOICE = 3 };

struct akt_param_def {
    const char *key;     /* e.g. "lambda" (set as loss.lambda=...) */
    enum akt_ptype type;
    double def;          /* default (CHOICE: index into choices) */
    double lo, hi;       /* inclusive range for FLOAT and INT */
    const char *choices; /* CHOICE: "sum|batchmean|mean" */
    const char *help;    /* one line */
};

/* Validated values in table order. CHOICE values are the index. */
struct akt_param_values {
    int n;
    double v[AKT_PLUGIN_MAX_PARAMS];
};

/* ------------------------------------------------------------------ host --
 * What the runner lends a plugin. */
struct akt_host {
    uint32_t abi, size;
    struct akt_rng *rng;     /* the run's RNG stream: the only randomness */
    int num_classes;
    int batch;
    int wbits, abits;
    int epoch, iter;         /* current position, for schedules and metrics */
    const struct akt_resnet *teacher; /* read-only: BN running stats, FC weights */
    /* Frozen FP teacher (BN running stats). Records on t: a gradient reaches
     * x when x requires one. */
    void (*teacher_forward)(const struct akt_host *h, struct akt_tape *t, struct akt_tensor *x,
                            struct akt_resnet_out *out);
    /* Quantized student; its parameters get no gradient from this call (the
     * generator step of AdaDFQ), but x does. Range trackers update as in
     * training. */
    void (*student_forward)(const struct akt_host *h, struct akt_tape *t, struct akt_tensor *x,
                            struct akt_resnet_out *out);
    /* Per-iteration scalar, averaged per epoch into the results
     * ("gen.bns", "loss.feature", ...). */
    void (*metric)(const struct akt_host *h, const char *name, double value);
    void (*log)(const struct akt_host *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
    void *ctx; /* the runner's */
};

/* A generated batch. The generator fills x (records on the tape), labels and,
 * when it superposes classes (Qimera), soft targets [B,C] (else NULL). */
struct akt_gen_batch {
    struct akt_tensor *x;      /* [B,3,32,32], requires grad */
    int *labels;               /* [B], in the tape's arena */
    struct akt_tensor *target; /* [B,C] soft labels or NULL (one-hot of labels) */
};

struct akt_generator_ops {
    /* Sample z and y from h->rng and generate a batch on t. */
    int (*sample)(void *self, const struct akt_host *h, struct akt_tape *t, int batch,
                  struct akt_gen_batch *out, struct akt_error *e);
    /* Generator loss (scalar tensor on t) from the teacher's (and, when
     * needs_student, the student's) outputs on out->x. */
    struct akt_tensor *(*loss)(void *self, const struct akt_host *h, struct akt_tape *t,
                               const struct akt_gen_batch *b, const struct akt_resnet_out *teacher,
                               const struct akt_resnet_out *student, struct akt_error *e);
    /* Optimizer step on the generator's own parameters with the given learning
     * rate after the host ran backward; zeroes their gradients. */
    void (*update)(void *self, const struct akt_host *h, float lr);
    /* Flat view of every parameter and optimizer state, for checkpoints:
     * n floats the host saves and restores byte for byte. */
    float *(*state)(void *self, int64_t *n);
    int needs_student;    /* 1: the host runs the student on x before loss() */
    float lr;             /* default learning rate (epoch 0) */
    const char *logit_loss; /* default logit loss of this method: "kd" or "entropy" */
};

/* What a loss sees: outputs of both networks on the same (detached) batch.
 * The teacher's tensors carry no gradient; the student's record on t. */
struct akt_loss_input {
    const struct akt_resnet_out *teacher;
    const struct akt_resnet_out *student;
    const int *labels;                /* [B] */
    const struct akt_tensor *target;  /* [B,C] soft labels or NULL */
    const char *generator_logit_loss; /* "kd" or "entropy", from the generator */
    int batch, num_classes;
};

struct akt_loss_ops {
    /* Scalar student loss on t. Report components with h->metric. */
    struct akt_tensor *(*compute)(void *self, const struct akt_host *h, struct akt_tape *t,
                                  const struct akt_loss_input *in, struct akt_error *e);
    int needs_features; /* 1: the host keeps the body outputs F_1..F_9 */
};

struct akt_plugin {
    uint32_t abi;        /* AKT_PLUGIN_ABI */
    uint32_t size;       /* sizeof(struct akt_plugin) as compiled */
    enum akt_plugin_kind kind;
    const char *name;    /* the YAML / --generator / --loss value */
    const char *summary; /* one line */
    const struct akt_param_def *params;
    int n_params;
    /* self from create() is passed to every op; create may fail with e set. */
    void *(*create)(const struct akt_host *h, const struct akt_param_values *v, struct akt_error *e);
    void (*destroy)(void *self);
    union {
        struct akt_generator_ops gen;
        struct akt_loss_ops loss;
    } ops;
};

typedef const struct akt_plugin *(*akt_plugin_get_fn)(uint32_t index);

/* Put before the plugin's akt_plugin_get definition: plugins are built with
 * hidden visibility, so this is the one symbol the loader can see. */
#define AKT_PLUGIN_EXPORT __attribute__((visibility("default")))

#ifdef __cplusplus
}
#endif
#endif
