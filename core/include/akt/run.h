/* One zero-shot quantization run (SPEC 5), implemented in core/run/: its
 * configuration (config.c), the training loop and what it reports (train.c,
 * with host.c, checkpoint.c and tensors.c beside it), and the analysis of a
 * stored run (analysis.c). */
#ifndef AKT_RUN_H
#define AKT_RUN_H

#include "akt/data.h"
#include "akt/params.h"
#include "akt/registry.h"
#include "akt/student.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AKT_MAX_MILESTONES 8

struct akt_run_config {
    char id[128];               /* run id in the results file */
    char teacher_path[1024];
    char data_path[1024];       /* evaluation set (never used for training) */
    enum akt_cifar_format data_format;
    char generator[64], loss[64]; /* plugin names */
    struct akt_param_values gen_params, loss_params; /* validated */
    int wbits, abits;
    int epochs, iters, batch;
    uint64_t seed;
    int threads;
    int warmup_epochs;          /* student SGD starts at this epoch (4) */
    int tracker_epochs;         /* range trackers run during epochs < this (4) */
    float lr_student;           /* 1e-4 */
    float lr_generator;         /* <= 0: the generator plugin's default */
    float momentum, weight_decay;
    int milestones[AKT_MAX_MILESTONES], n_milestones; /* lr x gamma at these epochs */
    float gamma;
    int first_last_8bit;
    enum akt_range_ema range_ema;
    int eval_batch;
    int eval_limit;             /* > 0: evaluate on the first N records only (tests) */
    char out_path[1024];        /* results HDF5, or "" for none */
    /* storage, not identity (not in the stored config): whether a finished
     * run keeps its checkpoint group (AKT_KEEP_CHECKPOINT_*) */
    int keep_checkpoints;
};
enum { AKT_KEEP_CHECKPOINT_FINAL = 0, AKT_KEEP_CHECKPOINT_NONE = 1 };

/* ------------------------------------------------------ run settings ---
 * Every run setting is one entry of a table (akt_run_settings): a
 * parameter table entry, the type plugins describe their parameters with
 * (key, type, default, range, help; akt/plugin.h), plus where the value
 * lives in struct akt_run_config. `--set`, YAML experiments, the stored
 * config YAML, `akt train --help` and README.md's list all come from it,
 * and values are parsed by akt_param_parse (akt/params.h), as plugin
 * parameters are. */
enum {
    AKT_SETTING_PLUGIN = 1,   /* generator, loss: a plugin name; setting it resets its parameters */
    AKT_SETTING_ALIAS = 2,    /* bits: sets two int fields (off, off2); not stored itself */
    AKT_SETTING_UNSTORED = 4, /* out: not part of the stored config */
    AKT_SETTING_QUOTED = 8    /* ids and paths: double-quoted in the stored YAML */
};

struct akt_run_setting {
    struct akt_param_def def; /* key, type, default (def / def_text), range, help */
    /* The field in struct akt_run_config and its size: FLOAT a float, INT,
     * BOOL and CHOICE an int (or a uint64_t when size is 8: seed; a CHOICE
     * is an enum whose values are the choice indices), STRING a char array,
     * LIST an int array (its count at off2). */
    size_t off, size;
    size_t off2;              /* LIST: the int count; ALIAS: the second int */
    unsigned flags;           /* AKT_SETTING_* */
};

/* The table, in the order of the stored config; *n entries. */
const struct akt_run_setting *akt_run_settings(int *n);
/* The entry of key, or NULL. */
const struct akt_run_setting *akt_run_setting_find(const char *key);
/* The table as help text (malloc'd): markdown = 0, the lines of `akt train
 * --help`; 1, the Markdown table of README.md (`akt train --help-settings`). */
char *akt_run_settings_help(int markdown);

/* The defaults of the table (SPEC's); no paths and plugin names. */
void akt_run_config_defaults(struct akt_run_config *c);
/* One setting as a user writes it (--set KEY=VALUE, a YAML key): a key of
 * the table, or a plugin parameter generator.KEY / loss.KEY (validated
 * against the plugin's table; setting generator or loss resets that
 * plugin's parameters to defaults, so set names first). where names the
 * source and is prefixed, with the key, to errors ("exp.yaml:12:5" or
 * "--set"). reg may be NULL only for run keys. */
int akt_run_config_set(struct akt_run_config *c, const struct akt_registry *reg, const char *key,
                       const char *value, const char *where, struct akt_error *e);
/* Checks ranges and resolves the plugins; call before akt_run_train. */
int akt_run_config_check(const struct akt_run_config *c, const struct akt_registry *reg,
                         struct akt_error *e);
/* The expanded configuration as YAML text (stored with the results), written
 * by libyaml's emitter: a flat map of the table's keys in table order (not
 * bits and out), each plugin's parameters after its name. Floats are the
 * shortest decimal that reads back as the same float (akt_param_format_num:
 * 1e-4, not 9.99999975e-05). malloc'd; NULL when it cannot be written (a
 * path that is not UTF-8). */
char *akt_run_config_yaml(const struct akt_run_config *c, const struct akt_plugin *gen,
                          const struct akt_plugin *loss);
/* Reads such text back with libyaml: fn(key, value, line) per pair in order
 * (a list value comes as its items joined with ","); stops at fn's first
 * non-zero return. Not YAML, not a map, or more than AKT_CONFIG_TEXT_MAX
 * bytes: AKT_EFORMAT naming where. */
#define AKT_CONFIG_TEXT_MAX (1 << 20)
typedef int (*akt_config_pair_fn)(const char *key, const char *value, int line, void *user);
int akt_run_config_text_each(const char *text, akt_config_pair_fn fn, void *user,
                             const char *where, struct akt_error *e);
/* Compares two stored configs key by key: 0 the same, 1 different (the
 * differing keys, ", "-separated, into keys), < 0 when either cannot be
 * read as above. Two numbers are the same value when they read back the
 * same (as floats for the float run settings), however written: a config
 * stored by an older akt (9.99999975e-05) matches today's (1e-4). Execution
 * settings (threads, keep_checkpoints, which configs of earlier akt versions
 * hold) are not compared: they do not change what a run is. */
int akt_run_config_text_diff(const char *a, const char *b, char *keys, size_t n);
/* The value of one top-level key of such text into buf: 0, or -1 when the
 * text cannot be read or has no such key. */
int akt_config_text_get(const char *yaml, const char *key, char *buf, size_t n);

struct akt_epoch_report {
    int epoch, epochs;
    double top1, top5;
    double loss_g, loss_q;      /* epoch means */
    double grad_norm;           /* mean L2 norm of the student's gradient */
    double seconds;
};

struct akt_run_result {
    double top1_fp;             /* teacher on the evaluation set */
    double top1_before;         /* student before any weight update (after warm-up) */
    double best_top1, final_top1;
    int best_epoch, epochs_done;
};

/* Called per iteration, per epoch and per log line of a plugin (h->log;
 * one line, no newline). Each may be NULL (a NULL log drops the lines): the
 * library never prints. */
struct akt_run_callbacks {
    void (*iteration)(int epoch, int iter, int iters, double loss_g, double loss_q, void *user);
    void (*epoch)(const struct akt_epoch_report *r, void *user);
    void (*log)(const char *line, void *user);
    volatile int *stop;         /* set non-zero (e.g. by SIGINT) to stop after saving */
    void *user;
    /* may be NULL: a note for the user, e.g. a resume under another thread
     * count (not an error: the run goes on) */
    void (*note)(const char *msg, void *user);
};

int akt_run_train(const struct akt_run_config *c, const struct akt_registry *reg,
                  const struct akt_run_callbacks *cb, struct akt_run_result *res,
                  struct akt_error *e);

/* ------------------------------------------------------------ analysis ---
 * core/run/analysis.c (SPEC 8). */

/* Gradient of a scalar function at the current w (n values) into g[0..n);
 * returns 0 or an AKT_E* code (with e set). */
typedef int (*akt_grad_fn)(void *user, float *w, float *g, struct akt_error *e);

/* Hutchinson estimate of the trace of the Hessian H of the function whose
 * gradient grad computes: Tr H ~ (1/m) sum_j v_j^T H v_j over m = probes
 * Rademacher vectors v_j (+-1, one bit of akt_rng_u64 each, drawn from rng
 * block by block, element by element), with H v by central differences of
 * gradients: H v ~ (g(w + eps v) - g(w - eps v)) / (2 eps), two full gradient
 * evaluations per probe. w is perturbed in place (in float32) and restored
 * bit for bit before returning.
 *
 * The probes live on the blocks: n_blocks disjoint ranges [offset[b],
 * offset[b] + len[b]) of w; v is 0 elsewhere (n_blocks == 0: one block, all of
 * w). trace_block[b] (may be NULL) receives the same estimator restricted to
 * block b, (1/m) sum_j sum_{i in b} v_ji (g+ - g-)_i / (2 eps), which is an
 * unbiased estimate of the trace of H's diagonal block b (the cross terms
 * v_i H_ik v_k, i != k, have mean zero, also across blocks); *trace_total is
 * their sum over the blocks, computed probe by probe from the same numbers. */
int akt_hutchinson(akt_grad_fn grad, void *user, float *w, int64_t n, const int64_t *offset,
                   const int64_t *len, int n_blocks, int probes, double eps, struct akt_rng *rng,
                   double *trace_block, double *trace_total, struct akt_error *e);

struct akt_hessian_opts {
    int probes;        /* Rademacher probes, >= 1 (16) */
    double eps;        /* central-difference step, > 0 (1e-3) */
    int batch;         /* images in the fixed batch; 0: the run's batch */
    int64_t seed;      /* RNG seed of the batch and the probes; < 0: the run's seed + 1 */
    /* called after each gradient evaluation (may be NULL): done of total,
     * seconds since the first */
    void (*progress)(int done, int total, double seconds, void *user);
    void *user;
};
void akt_hessian_opts_defaults(struct akt_hessian_opts *o);

struct akt_hessian_result {
    int n_layers;                /* trainable arrays of the student */
    char (*layer)[48];           /* [n_layers] their state_dict names (heap) */
    double *trace_layer;         /* [n_layers] trace of each diagonal block (heap) */
    double trace_total;
    int probes, batch, checkpoint_epoch;
    double eps;
    uint64_t seed;
};

/* `akt hessian`: rebuilds run id of the results file path from its stored
 * config, restores the student and the generator from the latest checkpoint,
 * draws one fixed batch from the generator and estimates (akt_hutchinson) the
 * Hessian trace of the student's training loss (the loss plugin against the
 * detached teacher outputs, as the student step of akt_run_train, range
 * trackers frozen) w.r.t. the student's trainable arrays, per array and in
 * total. Writes /runs/<id>/analysis/hessian (results/README.md) and fills
 * res (release with akt_hessian_result_free; res is overwritten, so free a
 * previous result first). Deterministic: the same
 * options give bit-identical numbers. */
int akt_run_hessian(const char *path, const char *id, const struct akt_registry *reg,
                    const struct akt_hessian_opts *o, struct akt_hessian_result *res,
                    struct akt_error *e);
void akt_hessian_result_free(struct akt_hessian_result *res);

#ifdef __cplusplus
}
#endif
#endif
