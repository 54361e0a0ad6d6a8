/* Internals of the run module shared by train.c (the training loop) and
 * analysis.c (post-hoc analysis of a stored run). Not installed, not part of
 * the public API: the akt__ prefix marks symbols other code must not use. */
#ifndef AKT_RUN_INTERNAL_H
#define AKT_RUN_INTERNAL_H

#include "akt/results.h"
#include "akt/run.h"

#define MAX_METRICS 32

/* The state of one run: teacher, student, evaluation data, the RNG stream,
 * the plugins and the tape of the current step. */
struct run {
    const struct akt_run_config *c;
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
    char metric_name[MAX_METRICS][48];
    double metric_sum[MAX_METRICS];
    int metric_count[MAX_METRICS];
};

/* Checks r->c, loads the teacher and the evaluation data, builds the student,
 * seeds r->rng with the run's seed, fills r->host and creates both plugins.
 * On failure call akt__close_run anyway (it frees what was made). */
int akt__open_run(struct run *r, const struct akt_registry *reg, struct akt_error *e);
void akt__close_run(struct run *r);
/* ---------------------------------------------------- checkpoint.c ---
 * The checkpoint of a run, and where its results live while it trains
 * (results/README.md, "Crash safety"): the run file OUT.h5.d/<id>.h5,
 * replaced atomically each epoch, committed into OUT.h5 when the run ends. */

/* Writes the checkpoint (student weights and momentum, generator state, RNG
 * stream, range trackers, each with its checksum) of a run that completed
 * epochs_done epochs into /runs/<id>/checkpoint of h. */
int akt__checkpoint_save(struct akt_results *h, const char *id, struct run *r, int epochs_done,
                         struct akt_error *e);
/* Restores the checkpoint of run id from f (file names it in errors), after
 * checking @checkpoint_epoch against the configured epochs and the stored
 * metric rows, and every dataset's size, checksum (schema 2) and contents.
 * *epoch: the completed epochs, 0 when there is no checkpoint yet. */
int akt__checkpoint_load(struct akt_results *f, const char *file, const char *id, struct run *r,
                         int *epoch, struct akt_error *e);

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
int akt__store_open(struct akt_run_store *s, struct run *r, struct akt_run_result *res, int *start,
                    int *done, struct akt_error *e);
/* A private copy of the run file to change (akt_results_edit), and its
 * atomic replacement of the run file. */
int akt__store_edit(struct akt_run_store *s, struct akt_results **h, struct akt_error *e);
int akt__store_save(struct akt_run_store *s, struct akt_results *h, struct akt_error *e);
/* The end of the run: status (and with "done" the result attributes) into
 * h (a fresh copy when NULL), the run file replaced, its run group
 * committed into OUT.h5, the run file removed, the lock released. */
int akt__store_finish(struct akt_run_store *s, struct akt_results *h, const char *id,
                      const char *status, const char *message, const struct akt_run_result *res,
                      struct akt_error *e);
void akt__store_close(struct akt_run_store *s);
/* The best epoch's student (tensors/best: every state_dict key under
 * student/, act_range, @epoch, @top1), written into h with the epoch that
 * improved on every earlier one. */
int akt__best_save(struct akt_results *h, const char *id, const struct run *r, int epoch,
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

/* Teacher outputs as constants (allocated on t) for the student's loss. */
struct akt_resnet_out akt__detach_out(struct akt_tape *t, const struct akt_resnet_out *o);
/* The student step's images and the teacher's (detached) outputs on them:
 * x detached, or the loss's prepare() of it, on which the teacher runs
 * again; without prepare(), the teacher outputs tout of x. */
int akt__student_batch(struct run *r, struct akt_tape *t, struct akt_tensor *x,
                       const struct akt_resnet_out *tout, struct akt_tensor **xs,
                       struct akt_resnet_out *tdet, struct akt_error *e);

#endif
