/* template_mse: the starting point for a new akt plugin.
 *
 * A complete, working loss plugin: the weighted mean squared error between
 * the student's and the teacher's logits,
 *
 *     loss = w(epoch) * reduce_{b,c} (z_s[b,c] - z_t[b,c])^2
 *
 * Copy this folder, rename the file, the descriptor's name and the meson
 * target, and change compute(). Every section below is one step of the
 * walk-through in plugins/README.md. tests/plugin_loader.c loads this very
 * file, so the template cannot rot unnoticed. */
#include <math.h>
#include <stdlib.h>

#include "akt/plugin.h"

/* ------------------------------------------------------------------ 1. --
 * The parameter table. The host validates every value a user gives (in the
 * experiment's YAML or as `--set loss.weight=2`) against it before create()
 * runs, and `akt plugins` prints it as documentation, so the plugin never
 * parses text or checks ranges itself.
 *
 * The order matters: create() receives the values in table order, so keep
 * an enum in the same order to index them by name. */
enum { P_WEIGHT, P_REDUCTION, P_PROBS, P_WARMUP, P_COUNT };

/* Indices into the "mean|sum|batchmean" choice list below. */
enum { RED_MEAN = 0, RED_SUM = 1, RED_BATCHMEAN = 2 };

static const struct akt_param_def params[P_COUNT] = {
    [P_WEIGHT] = {.key = "weight", .type = AKT_PT_FLOAT, .def = 1.0, .lo = 0, .hi = 1e3,
                  .help = "factor the loss is multiplied by"},
    [P_REDUCTION] = {.key = "reduction", .type = AKT_PT_CHOICE, .def = RED_MEAN,
                     .choices = "mean|sum|batchmean",
                     .help = "mean over B*C elements, sum, or sum / B"},
    [P_PROBS] = {.key = "probs", .type = AKT_PT_BOOL, .def = 0,
                 .help = "compare softmax probabilities instead of raw logits"},
    [P_WARMUP] = {.key = "warmup", .type = AKT_PT_INT, .def = 0, .lo = 0, .hi = 10000,
                  .help = "epochs over which the weight ramps up linearly"},
};

/* ------------------------------------------------------------------ 2. --
 * Plugin state: whatever create() allocates, destroy() frees. The host only
 * holds it as a void * and hands it back to every op. Copy the parameter
 * values out: the struct the host passed is not guaranteed to outlive
 * create(). */
struct template_mse {
    float weight;
    int reduction;
    int probs;
    int warmup;
};

static void *tm_create(const struct akt_host *h, const struct akt_param_values *v,
                       struct akt_error *e)
{
    /* A host from another ABI would lay out struct akt_host differently. */
    if (h->abi != AKT_PLUGIN_ABI || h->size < sizeof(struct akt_host)) {
        akt_error_set(e, AKT_EPLUGIN, "template_mse", "host ABI %u (size %u), plugin ABI %u",
                      (unsigned)h->abi, (unsigned)h->size, (unsigned)AKT_PLUGIN_ABI);
        return NULL;
    }
    struct template_mse *s = calloc(1, sizeof *s);
    if (!s) {
        /* Failing is allowed: return NULL with e set, the host reports it. */
        akt_error_set(e, AKT_ENOMEM, "template_mse", "out of memory");
        return NULL;
    }
    /* Values arrive validated (in range, integral for INT, 0/1 for BOOL,
     * an index for CHOICE), as doubles in table order. */
    s->weight = (float)v->v[P_WEIGHT];
    s->reduction = (int)v->v[P_REDUCTION];
    s->probs = v->v[P_PROBS] != 0;
    s->warmup = (int)v->v[P_WARMUP];
    return s;
}

static void tm_destroy(void *self)
{
    free(self);
}

/* ------------------------------------------------------------------ 3. --
 * The loss op. Build the loss from akt's tape ops and return a scalar
 * (one-element) tensor; never call akt_backward here, the host does that
 * once it has the total. Each op computes its value at once and records
 * its backward, so the gradient reaches the student's logits (which require
 * one) and nothing else: the teacher's tensors carry none.
 *
 * Every tensor the ops return lives in the tape's arena and is freed by the
 * host at the end of the step: no malloc, no free here. The input tensors
 * are valid for this call only, so keep no pointers to them in self. */
static struct akt_tensor *tm_compute(void *self, const struct akt_host *h, struct akt_tape *t,
                                     const struct akt_loss_input *in, struct akt_error *e)
{
    const struct template_mse *s = self;
    struct akt_tensor *zs = in->student->logits, *zt = in->teacher->logits;
    if (!akt_tensor_same_shape(zs, zt) || zs->ndim != 2) {
        /* Runtime failures return NULL with e set; the host adds context. */
        akt_error_set(e, AKT_ESHAPE, "template_mse", "student logits [%d,%d] and teacher "
                      "logits [%d,%d] differ", zs->shape[0], zs->ndim > 1 ? zs->shape[1] : 0,
                      zt->shape[0], zt->ndim > 1 ? zt->shape[1] : 0);
        return NULL;
    }
    if (s->probs) { /* softmax over the class axis [1,2) at temperature 1 */
        zs = akt_softmax(t, zs, 1, 2, 1.0f);
        zt = akt_softmax(t, zt, 1, 2, 1.0f);
    }
    struct akt_tensor *sq = akt_square(t, akt_sub(t, zs, zt)); /* [B,C] */
    struct akt_tensor *r;
    if (s->reduction == RED_MEAN)
        r = akt_mean(t, sq, 0, 2); /* axes [0,2): everything, shape [1] */
    else if (s->reduction == RED_SUM)
        r = akt_sum(t, sq, 0, 2);
    else
        r = akt_scale(t, akt_sum(t, sq, 0, 2), 1.0f / (float)sq->shape[0], 0);

    /* Schedules read the host's position; h->epoch counts from 0. The
     * batch of this call is h->batch (here equal to zs->shape[0]). */
    double ramp = s->warmup > 0 ? fmin(1.0, (h->epoch + 1.0) / (s->warmup + 1.0)) : 1.0;
    struct akt_tensor *loss = akt_scale(t, r, (float)(s->weight * ramp), 0);

    /* Components go to the results file through the metric sink, averaged
     * per epoch; name them "loss.<something>". */
    h->metric(h, "loss.mse", r->data[0]);
    return loss;
}

/* ------------------------------------------------------------------ 4. --
 * The descriptor: what the loader checks (abi, size, kind, name, create,
 * destroy, ops, the parameter table) and registers. A plugin built for
 * another ABI is refused with both numbers named: rebuild it. */
static const struct akt_plugin descriptor = {
    AKT_PLUGIN_HEADER, /* abi, size and param_size: what the loader checks first */
    .kind = AKT_PLUGIN_LOSS,
    .name = "template_mse",
    .summary = "weighted mean squared error between student and teacher logits (template)",
    .params = params,
    .n_params = P_COUNT,
    .create = tm_create,
    .destroy = tm_destroy,
    .ops.loss = {.compute = tm_compute, .needs_features = 0},
};

/* ------------------------------------------------------------------ 5. --
 * The one exported symbol. Index 0, 1, ... enumerate the descriptors of
 * this file; NULL ends the list. A file with several variants returns one
 * per index. */
AKT_PLUGIN_EXPORT const struct akt_plugin *akt_plugin_get(uint32_t index)
{
    return index == 0 ? &descriptor : NULL;
}
