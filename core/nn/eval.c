/* Top-1 / top-5 accuracy of a model on a labelled dataset. */
#include "akt/eval.h"

#include <stdio.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Activations per image: every conv's output and the logits. In a CIFAR
 * ResNet the stem and layer1 run at 32x32 pixels, layer2 at 16x16, layer3
 * at 8x8. */
static double resnet_acts(const struct akt_resnet *m)
{
    double n = m->num_classes;
    for (int i = 0; i < m->n_params; i++) {
        const struct akt_param *p = &m->params[i];
        if (p->kind != AKT_PARAM_WEIGHT || p->ndim != 4)
            continue;
        int stage = 1;
        if (sscanf(p->name, "layer%d.", &stage) != 1 || stage < 1 || stage > 3)
            stage = 1;
        int side = 32 >> (stage - 1);
        n += (double)p->shape[0] * side * side;
    }
    return n;
}

/* Arena floats per activation, measured on ResNet-20 at batch 16 and 32
 * (tape peak): an evaluation pass of the fake-quantized student keeps 3.6
 * (conv, BN+ReLU, quantizer outputs), the FP teacher 2.5; a forward +
 * backward pass keeps 7.0 for the student, 6.5 for the teacher. Rounded up. */
#define EVAL_FLOATS_PER_ACT 4
#define TRAIN_FLOATS_PER_ACT 8

double akt_resnet_eval_bytes(const struct akt_resnet *m)
{
    /* + the normalised input batch, host copy and tensor */
    return 4.0 * (EVAL_FLOATS_PER_ACT * resnet_acts(m) + 2.0 * AKT_CIFAR_PIXELS);
}

double akt_resnet_train_bytes(const struct akt_resnet *m)
{
    return 4.0 * TRAIN_FLOATS_PER_ACT * resnet_acts(m);
}

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
    /* a user chose the batch: refused, or an error, rather than an abort;
     * a batch larger than the data set takes only the data set */
    if (batch > d->n)
        batch = d->n > 0 ? d->n : 1;
    double per_image = akt_resnet_eval_bytes(m);
    int rc = akt_mem_check("--batch", batch, per_image, 0, "an evaluation batch", e);
    if (rc)
        return rc;
    struct akt_tape t;
    akt_tape_init(&t, 0);
    t.recording = 0;
    float *x = malloc((size_t)batch * AKT_CIFAR_PIXELS * sizeof(float));
    int *labels = malloc((size_t)batch * sizeof(int));
    if (!x || !labels)
        rc = akt_error_set(e, AKT_ENOMEM, "--batch", "out of memory for a batch of %d images",
                           batch);
    else
        rc = akt_arena_reserve(&t.arena, (size_t)(batch * per_image), "--batch", e);
    if (rc) {
        free(x);
        free(labels);
        akt_tape_free(&t);
        return rc;
    }
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
