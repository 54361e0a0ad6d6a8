/* Internals of the run module (core/run/), shared by its files:
 *   train.c       the epoch loop, generator_step and student_step
 *   host.c        the run's state: opening it, the host the plugins see
 *   checkpoint.c  checkpoints, resume and the run's results file
 *   tensors.c     the final tensors written when a run ends
 *   analysis.c    post-hoc analysis of a stored run (akt hessian)
 * Not installed, not part of the public API: the akt__ prefix marks symbols
 * other code must not use. */
#ifndef AKT_RUN_INTERNAL_H
#define AKT_RUN_INTERNAL_H

#include "akt/results.h"
#include "akt/run.h"

/* Plugin metrics a run holds per epoch; a plugin that reports more names
 * fails the run (akt__check_metrics). */
#define AKT_RUN_MAX_METRICS 32

/* The state of one run: teacher, student, evaluation data, the RNG stream,
 * the plugins and the tape of the current step. */
struct akt_run {
    const struct akt_run_config *c;
    const struct akt_run_callbacks *cb; /* may be NULL */
    struct akt_resnet teacher;
    struct akt_student student;
    struct akt_dataset data;
    struct akt_rng rng;
    struct akt_host host;
    const struct akt_plugin *gen, *loss;
    void *gen_self, *loss_self;
    struct akt_tape tape;
    /* plugin metrics, averaged per epoch */
    int n_metrics;
    char metric_name[AKT_RUN_MAX_METRICS][48];
    double metric_sum[AKT_RUN_MAX_METRICS];
    int metric_count[AKT_RUN_MAX_METRICS];
    char metric_refused[48]; /* the first name past AKT_RUN_MAX_METRICS, or "" */
};

/* ------------------------------------------------------------ host.c --- */

/* Checks r->c, loads the teacher and the evaluation data, builds the student,
 * seeds r->rng with the run's seed, fills r->host and creates both plugins.
 * On failure call akt__close_run anyway (it frees what was made). */
int akt__open_run(struct akt_run *r, const struct akt_registry *reg, struct akt_error *e);
void akt__close_run(struct akt_run *r);
/* The frozen teacher and the quantized student (range trackers as
 * r->student.tracking says), as the host gives them to the plugins. */
void akt__teacher_forward(struct akt_run *r, struct akt_tape *t, struct akt_tensor *x,
                          struct akt_resnet_out *out);
void akt__student_forward(struct akt_run *r, struct akt_tape *t, struct akt_tensor *x,
                          struct akt_resnet_out *out);
/* The generator's sample() of r->host.batch images on t, checked: x
 * [batch,3,32,32], labels, soft targets [batch, classes] when given. */
int akt__sample(struct akt_run *r, struct akt_tape *t, struct akt_gen_batch *gb,
                struct akt_error *e);
/* A plugin op (kind "generator"/"loss", op "loss", "prepare", ...) that
 * returned NULL: its error, or one naming it when it set none. */
int akt__plugin_failed(struct akt_error *e, const char *kind, const char *name, const char *op);
/* An error when a plugin reported more metric names than the run holds. */
int akt__check_metrics(const struct akt_run *r, struct akt_error *e);
/* Teacher outputs as constants (allocated on t) for the student's loss. */
struct akt_resnet_out akt__detach_out(struct akt_tape *t, const struct akt_resnet_out *o);

/* ----------------------------------------------------------- train.c ---
 * The student step, shared with the Hessian analysis. */

/* What the student learns from in one step: its images and the teacher's
 * detached outputs on them, the generator's labels and soft targets. */
struct akt__student_in {
    struct akt_tensor *x;
    struct akt_resnet_out teacher;
    const int *labels;
    struct akt_tensor *target;
};
/* The student step's input from a generated batch gb and the teacher
 * outputs tout on it: gb->x detached, or the loss's prepare() of it (on
 * which the teacher runs again). */
int akt__student_input(struct akt_run *r, struct akt_tape *t, const struct akt_gen_batch *gb,
                       const struct akt_resnet_out *tout, struct akt__student_in *in,
                       struct akt_error *e);
/* The student's loss on in (the loss plugin on the student's outputs against
 * the detached teacher outputs) into *loss and, when it is finite, its
 * gradient w.r.t. the student's trainable arrays into r->student.net.grads
 * (zeroed first). A loss that is not finite is left to the caller to
 * report, with the gradients untouched. */
int akt__student_step(struct akt_run *r, struct akt_tape *t, const struct akt__student_in *in,
                      double *loss, struct akt_error *e);

/* ------------------------------------------------------ checkpoint.c ---
 * The checkpoint of a run, and where its results live while it trains
 * (results/README.md, "Crash safety"): the run file OUT.h5.d/<id>.h5,
 * replaced atomically each epoch, committed into OUT.h5 when the run ends. */

/* Writes the checkpoint (student weights and momentum, generator state, RNG
 * stream, range trackers, each with its checksum) of a run that completed
 * epochs_done epochs into /runs/<id>/checkpoint of h. */
int akt__checkpoint_save(struct akt_results *h, const char *id, struct akt_run *r,
                         int epochs_done, struct akt_error *e);
/* Restores the checkpoint of run id from f (file names it in errors), after
 * checking @checkpoint_epoch against the configured epochs and the stored
 * metric rows, and every dataset's size, checksum (schema 2) and contents.
 * *epoch: the completed epochs, 0 when there is no checkpoint yet. */
int akt__checkpoint_load(struct akt_results *f, const char *file, const char *id,
                         struct akt_run *r, int *epoch, struct akt_error *e);

struct akt_run_store {
    char main[1024];                /* the results file, c->out_path */
    char file[1300];                /* the run file OUT.h5.d/<id>.h5 */
    struct akt_results_lock *lock;  /* held from open to finish */
    int open;                       /* the run file is ours to finish */
    int keep_checkpoints;           /* c->keep_checkpoints, applied when done */
    char note[512];                 /* for the caller's note callback: a resume
                                       under another thread count, or "" */
};

/* Takes the results file's lock and finds run r->c->id: done in OUT.h5
 * (*done = 1, res filled, lock released), or in progress in its run file, or
 * unfinished in OUT.h5. Checks the stored config, restores the checkpoint
 * into r (*start = the first epoch to run, res = the kept epochs' figures)
 * and makes the run file say "running". Every check comes before any
 * write: a refusal changes nothing. */
int akt__store_open(struct akt_run_store *s, struct akt_run *r, struct akt_run_result *res,
                    int *start, int *done, struct akt_error *e);
/* The epoch's metric rows (rep, the learning rates, the plugin metrics and
 * the activation ranges), with best set the best epoch's student
 * (akt__best_save), and the checkpoint after it, in one atomic replacement
 * of the run file. */
int akt__store_epoch(struct akt_run_store *s, struct akt_run *r, const struct akt_epoch_report *rep,
                     float lr_s, float lr_g, int best, struct akt_error *e);
/* The end of a run that trained all its epochs: the final tensors
 * (tensors.c), status "done" and the result attributes, in one replacement
 * of the run file, then committed into OUT.h5 (akt__store_finish). */
int akt__store_done(struct akt_run_store *s, struct akt_run *r, const struct akt_run_result *res,
                    struct akt_error *e);
/* The end of the run: status (and with "done" the result attributes) into
 * h (a fresh copy when NULL), the run file replaced, its run group
 * committed into OUT.h5, the run file removed, the lock released. */
int akt__store_finish(struct akt_run_store *s, struct akt_results *h, const char *id,
                      const char *status, const char *message, const struct akt_run_result *res,
                      struct akt_error *e);
/* A run stopped while training (rc, e: why) keeps its epochs: status
 * failed or interrupted with the error as its message, committed; when that
 * cannot be saved either, e says so too. */
void akt__store_stopped(struct akt_run_store *s, const char *id, int rc,
                        const struct akt_run_result *res, struct akt_error *e);
void akt__store_close(struct akt_run_store *s);

/* --------------------------------------------------------- tensors.c --- */

/* What a researcher inspects after a run (results/README.md): the integer
 * weights, the student as trained, the activation ranges, a batch of
 * generated images and the attention maps on it, into /runs/<id>/tensors. */
int akt__write_final_tensors(struct akt_results *out, const char *id, struct akt_run *r,
                             struct akt_error *e);

/* The best epoch's student (tensors/best: every state_dict key under
 * student/, act_range, @epoch, @top1), written into h with the epoch that
 * improved on every earlier one. */
int akt__best_save(struct akt_results *h, const char *id, const struct akt_run *r, int epoch,
                   double top1, struct akt_error *e);

/* ---------------------------------------------------------- inputs.c ---
 * The teacher and data files of a run: absolute paths and SHA-256. */
struct akt__inputs {
    char abs[2][4096]; /* teacher, data */
    char sha[2][65];
};
/* Hashes and resolves c's teacher and data files. */
int akt__inputs_hash(const struct akt_run_config *c, struct akt__inputs *in, struct akt_error *e);
/* A refusal when run id of f recorded other contents for either file. */
int akt__inputs_check(struct akt_results *f, const char *file, const char *id,
                      const struct akt__inputs *in, struct akt_error *e);
/* @teacher_file, @teacher_sha256, @data_file, @data_sha256 of run id. */
int akt__inputs_write(struct akt_results *h, const char *id, const struct akt__inputs *in,
                      struct akt_error *e);
/* For a stored run (its config replayed into c): c's teacher and data paths
 * set to the files found, trying the recorded absolute path, the config's
 * path, then the same names under $AKT_DATA and beside file, each accepted
 * only with the recorded SHA-256; AKT_EIO naming every path tried. */
int akt__inputs_find(struct akt_results *f, const char *file, const char *id,
                     struct akt_run_config *c, struct akt_error *e);


#endif
