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
/* Restores checkpoint/slot<slot> of run id: student weights and momentum,
 * generator state, RNG stream, range trackers (results/README.md). */
int akt__load_checkpoint(struct akt_results *out, const char *id, struct run *r, int slot,
                         struct akt_error *e);
/* Teacher outputs as constants (allocated on t) for the student's loss. */
struct akt_resnet_out akt__detach_out(struct akt_tape *t, const struct akt_resnet_out *o);
/* The student step's images and the teacher's (detached) outputs on them:
 * x detached, or the loss's prepare() of it, on which the teacher runs
 * again; without prepare(), the teacher outputs tout of x. */
int akt__student_batch(struct run *r, struct akt_tape *t, struct akt_tensor *x,
                       const struct akt_resnet_out *tout, struct akt_tensor **xs,
                       struct akt_resnet_out *tdet, struct akt_error *e);

#endif
