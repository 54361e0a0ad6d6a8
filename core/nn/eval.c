/* Top-1 / top-5 accuracy of a model on a labelled dataset. */
#include "akt/eval.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int akt_evaluate(const struct akt_resnet *m, const struct akt_resnet_opts *o,
                 const struct akt_dataset *d, int batch, akt_progress_fn progress, void *user,
                 struct akt_eval_result *r, struct akt_error *e)
{
    struct akt_resnet_opts eval = {0};
    if (o) {
        eval = *o;
        eval.bn_batch = 0; /* evaluation never touches running stats */
        eval.param_grads = 0;
    }
    r->n = r->correct1 = r->correct5 = 0;
    r->top1 = r->top5 = 0;
    if (batch < 1)
        return akt_error_set(e, AKT_EINVAL, "--batch", "batch size must be >= 1, got %d", batch);
    if (d->num_classes != m->num_classes)
        return akt_error_set(e, AKT_EINVAL, "dataset",
                             "has %d classes but the model has %d", d->num_classes, m->num_classes);
    struct akt_tape t;
    akt_tape_init(&t, 0);
    t.recording = 0;
    float *x = malloc((size_t)batch * AKT_CIFAR_PIXELS * sizeof(float));
    int *labels = malloc((size_t)batch * sizeof(int));
    AKT_ASSERT(x && labels);
    for (int start = 0; start < d->n; start += batch) {
        int b = d->n - start < batch ? d->n - start : batch;
        akt_dataset_batch(d, start, b, m->mean, m->std, x, labels);
        akt_tape_reset(&t);
        struct akt_tensor *xt = akt_tensor_newv(&t, 0, 4, b, 3, 32, 32);
        memcpy(xt->data, x, (size_t)b * AKT_CIFAR_PIXELS * sizeof(float));
        struct akt_resnet_out out;
        akt_resnet_forward(m, &t, xt, &eval, &out);
        int C = m->num_classes;
        /* a NaN compares false with everything and would rank first */
        for (size_t k = 0; k < (size_t)b * C; k++)
            if (!isfinite(out.logits->data[k])) {
                int rec = start + (int)(k / C);
                akt_error_set(e, AKT_ENUMERIC, "evaluation",
                              "batch %d (records %d..%d): the logits of record %d are %s",
                              start / batch, start, start + b - 1, rec,
                              isnan(out.logits->data[k]) ? "NaN" : "infinite");
                free(x);
                free(labels);
                akt_tape_free(&t);
                return AKT_ENUMERIC;
            }
        for (int i = 0; i < b; i++) {
            const float *z = out.logits->data + (size_t)i * C;
            float zl = z[labels[i]];
            /* rank of the true class: how many classes score strictly higher,
             * ties broken towards the lower index as torch.topk/argmax do */
            int above = 0;
            for (int c = 0; c < C; c++)
                if (z[c] > zl || (z[c] == zl && c < labels[i]))
                    above++;
            r->correct1 += above == 0;
            r->correct5 += above < 5;
        }
        r->n += b;
        if (progress)
            progress(r->n, d->n, user);
    }
    free(x);
    free(labels);
    akt_tape_free(&t);
    r->top1 = r->n ? 100.0 * r->correct1 / r->n : 0;
    r->top5 = r->n ? 100.0 * r->correct5 / r->n : 0;
    return 0;
}
