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

/* Memory planning (akt_mem_check): arena bytes per image of an evaluation
 * pass of m (what akt_evaluate needs per image of its batch), and of one
 * forward + backward pass through m in a training step. Estimates from m's
 * activation count, measured on ResNet-20 and rounded up. akt_evaluate
 * refuses a batch that does not fit the memory limit, naming --batch. */
double akt_resnet_eval_bytes(const struct akt_resnet *m);
double akt_resnet_train_bytes(const struct akt_resnet *m);

#ifdef __cplusplus
}
#endif
#endif
