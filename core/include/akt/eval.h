/* Top-1 / top-5 evaluation of a model on a dataset. */
#ifndef AKT_EVAL_H
#define AKT_EVAL_H

#include "akt/data.h"
#include "akt/nn.h"

#ifdef __cplusplus
extern "C" {
#endif

struct akt_eval_result {
    int n, correct1, correct5;
    double top1, top5; /* percent */
};

/* progress(done, total, user) is called after each batch when not NULL. */
typedef void (*akt_progress_fn)(int done, int total, void *user);
int akt_evaluate(const struct akt_resnet *m, const struct akt_resnet_opts *o,
                 const struct akt_dataset *d, int batch, akt_progress_fn progress, void *user,
                 struct akt_eval_result *r, struct akt_error *e);

#ifdef __cplusplus
}
#endif
#endif
