/* The akt plugin ABI, version 2: generators and student losses as shared
 * objects.
 *
 * A plugin .so exports exactly one symbol:
 *
 *     const struct akt_plugin *akt_plugin_get(uint32_t index);
 *
 * returning a descriptor for index 0, 1, ... and NULL after the last (one
 * file may ship variants, as LADSPA does). Each descriptor starts with abi
 * (must equal AKT_PLUGIN_ABI of the host: a plugin built for another ABI is
 * refused, both numbers named) and size (sizeof the struct the plugin was
 * compiled with, so fields can be appended later; the host reads only fields
 * that fit in size). Start a descriptor with AKT_PLUGIN_HEADER.
 *
 * Every struct that crosses the boundary carries its size: the host sets it
 * in what it passes (struct akt_host, akt_param_values, akt_resnet_out,
 * akt_gen_batch, akt_loss_input, akt_resnet), the plugin in its descriptor
 * (size, and param_size for the parameter table's entries). Their layout is
 * pinned by tests/unit_abi.c: changing it without bumping AKT_PLUGIN_ABI
 * fails the test suite.
 *
 * Networks have any CIFAR ResNet depth: read counts from the outputs
 * (n_features, n_bn, n_acts) or h->teacher, never assume ResNet-20's.
 *
 * Plugins call akt's ops directly (libakt is linked in; akt/distill.h has
 * the method's shared maths) and build their computation on the tape the
 * host passes; the host calls akt_backward. Tensors the host passes are
 * valid for that call only. Plugin state belongs to the plugin from
 * create() until destroy(). See plugins/README.md. */
#ifndef AKT_PLUGIN_H
#define AKT_PLUGIN_H

#include <stddef.h>

#include "akt/distill.h"
#include "akt/nn.h"
#include "akt/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AKT_PLUGIN_ABI 2u
#define AKT_PLUGIN_SYMBOL "akt_plugin_get"
#define AKT_PLUGIN_MAX_PARAMS 24
/* Longest text of a STRING parameter, terminator included. */
#define AKT_PARAM_TEXT_MAX 96

enum akt_plugin_kind { AKT_PLUGIN_GENERATOR = 1, AKT_PLUGIN_LOSS = 2 };

/* ------------------------------------------------------------ parameters --
 * Each plugin documents its parameters in a table; the host validates the
 * YAML / --set values against it (unknown key, wrong type, out of range are
 * errors) and prints it in `akt plugins`. akt's own run settings are a
 * table of the same entries (akt/run.h), parsed by the same code
 * (akt/params.h). */
enum akt_ptype {
    AKT_PT_FLOAT = 0,
    AKT_PT_INT = 1,
    AKT_PT_BOOL = 2,
    AKT_PT_CHOICE = 3,
    AKT_PT_STRING = 4, /* free text (printable, < AKT_PARAM_TEXT_MAX), see check */
    /* Integers in [lo, hi] ("100,200" or "none"): the run settings'
     * milestones (akt/run.h). A plugin table may not use it (refused at
     * load: akt_param_values has no room for a list). */
    AKT_PT_LIST = 5
};

/* Checks a STRING value: 0, or -1 with why filled (host-side validation,
 * so a bad value is refused with the YAML line before any run starts). */
typedef int (*akt_param_check_fn)(const char *text, char *why, size_t n);

struct akt_param_def {
    const char *key;     /* e.g. "lambda" (set as loss.lambda=...) */
    enum akt_ptype type;
    double def;          /* default (CHOICE: index into choices) */
    double lo, hi;       /* inclusive range for FLOAT and INT */
    const char *choices; /* CHOICE: "sum|batchmean|mean" */
    const char *help;    /* one line */
    const char *def_text;     /* STRING: the default text */
    akt_param_check_fn check; /* STRING: optional syntax check */
};

/* Validated values in table order. CHOICE values are the index; STRING
 * values are in text[i] (v[i] is 0). */
struct akt_param_values {
    uint32_t size; /* sizeof(struct akt_param_values) of the host */
    int n;
    double v[AKT_PLUGIN_MAX_PARAMS];
    char text[AKT_PLUGIN_MAX_PARAMS][AKT_PARAM_TEXT_MAX];
};

/* ------------------------------------------------------------------ host --
 * What the runner lends a plugin. */
struct akt_host {
    uint32_t abi, size;
    struct akt_rng *rng;     /* the run's RNG stream: the only randomness */
    int num_classes;
    /* Images in the current call: the training batch in the loop, 16 when
     * the final sample images are drawn, the analysis batch in `akt
     * hessian`. The one source of truth for the batch size: sample() makes
     * exactly this many, losses see this many. */
    int batch;
    int wbits, abits;
    int epoch, iter;         /* current position, for schedules and metrics */
    const struct akt_resnet *teacher; /* read-only: depth, BN running stats, FC weights */
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

/* A generated batch. The host zeroes it and sets size; the generator fills
 * x (records on the tape), labels and, when it superposes classes (Qimera),
 * soft targets [B,C] (else NULL). */
struct akt_gen_batch {
    uint32_t size;             /* sizeof(struct akt_gen_batch) of the host */
    struct akt_tensor *x;      /* [h->batch,3,32,32]; requires grad when the generator trains */
    int *labels;               /* [h->batch], in the tape's arena */
    struct akt_tensor *target; /* [h->batch,C] soft labels or NULL (one-hot of labels) */
};

struct akt_generator_ops {
    /* Draw from h->rng and generate h->batch images on t. */
    int (*sample)(void *self, const struct akt_host *h, struct akt_tape *t,
                  struct akt_gen_batch *out, struct akt_error *e);
    /* Generator loss (scalar tensor on t) from the teacher's (and, when
     * needs_student, the student's) outputs on out->x. NULL: the generator
     * does not train (then update must be NULL too). */
    struct akt_tensor *(*loss)(void *self, const struct akt_host *h, struct akt_tape *t,
                               const struct akt_gen_batch *b, const struct akt_resnet_out *teacher,
                               const struct akt_resnet_out *student, struct akt_error *e);
    /* Optimizer step on the generator's own parameters with the given learning
     * rate after the host ran backward; zeroes their gradients. NULL: nothing
     * to train (a noise generator, a fixed synthetic set). */
    void (*update)(void *self, const struct akt_host *h, float lr);
    /* Flat view of every parameter and optimizer state, for checkpoints:
     * n floats the host saves and restores byte for byte. NULL: no state
     * (a checkpoint then holds 0 floats for the generator). */
    float *(*state)(void *self, int64_t *n);
    int needs_student;    /* 1: the host runs the student on x before loss() */
    float lr;             /* default learning rate (epoch 0) */
    enum akt_logit_loss logit_loss; /* default logit loss of this method (0 = kd) */
};

/* What a loss sees: outputs of both networks on the same (detached) batch
 * of h->batch images. The teacher's tensors carry no gradient; the
 * student's record on t. */
struct akt_loss_input {
    uint32_t size;                    /* sizeof(struct akt_loss_input) of the host */
    const struct akt_resnet_out *teacher;
    const struct akt_resnet_out *student;
    const int *labels;                /* [B] */
    const struct akt_tensor *target;  /* [B,C] soft labels or NULL */
    enum akt_logit_loss generator_logit_loss; /* the generator's method */
};

struct akt_loss_ops {
    /* Scalar student loss on t. Report components with h->metric. */
    struct akt_tensor *(*compute)(void *self, const struct akt_host *h, struct akt_tape *t,
                                  const struct akt_loss_input *in, struct akt_error *e);
    int needs_features; /* 1: the host keeps the body outputs F_i */
    /* Optional (appended in akt 0.2; NULL: none). The images of the student
     * step, made from the generator's batch x [B,3,32,32] (detached): the
     * host then runs the teacher again and the student on the result, and
     * compute() sees their outputs (an input filter such as SynQ's low-pass
     * filter). Also applied to `akt hessian`'s fixed batch. The union of the
     * descriptor is larger than these ops, and a static descriptor built
     * against the older header holds zeros here, so ABI 2 stays. */
    struct akt_tensor *(*prepare)(void *self, const struct akt_host *h, struct akt_tape *t,
                                  struct akt_tensor *x, struct akt_error *e);
};

struct akt_plugin {
    uint32_t abi;        /* AKT_PLUGIN_ABI */
    uint32_t size;       /* sizeof(struct akt_plugin) as compiled */
    uint32_t param_size; /* sizeof(struct akt_param_def) as compiled: the table's stride */
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

/* The first fields of every descriptor:
 *   static const struct akt_plugin d = {AKT_PLUGIN_HEADER, .kind = ..., ...}; */
#define AKT_PLUGIN_HEADER                                                                        \
    .abi = AKT_PLUGIN_ABI, .size = sizeof(struct akt_plugin),                                    \
    .param_size = sizeof(struct akt_param_def)

typedef const struct akt_plugin *(*akt_plugin_get_fn)(uint32_t index);

/* Put before the plugin's akt_plugin_get definition: plugins are built with
 * hidden visibility, so this is the one symbol the loader can see. */
#define AKT_PLUGIN_EXPORT __attribute__((visibility("default")))

#ifdef __cplusplus
}
#endif
#endif
