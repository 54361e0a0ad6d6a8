/* Test-only loss: cross-entropy, but NaN from a chosen epoch and iteration
 * on, so the tests can prove that a diverging run stops cleanly with what it
 * measured so far saved. */
#include <math.h>

#include "akt/plugin.h"

static const struct akt_param_def params[] = {
    {.key = "epoch", .type = AKT_PT_INT, .def = 1, .lo = 0, .hi = 100000,
     .help = "first epoch that returns NaN"},
    {.key = "iter", .type = AKT_PT_INT, .def = 1, .lo = 0, .hi = 100000,
     .help = "first iteration (in that epoch) that returns NaN"},
};

struct nan_loss {
    int epoch, iter;
};

static void *create(const struct akt_host *h, const struct akt_param_values *v, struct akt_error *e)
{
    (void)h, (void)e;
    static struct nan_loss s; /* one instance at a time is all the tests need */
    s.epoch = (int)v->v[0];
    s.iter = (int)v->v[1];
    return &s;
}

static void destroy(void *self) { (void)self; }

static struct akt_tensor *compute(void *self, const struct akt_host *h, struct akt_tape *t,
                                  const struct akt_loss_input *in, struct akt_error *e)
{
    (void)e;
    const struct nan_loss *s = self;
    struct akt_tensor *ce = akt_cross_entropy(t, in->student->logits, in->labels);
    int late = h->epoch > s->epoch || (h->epoch == s->epoch && h->iter >= s->iter);
    return late ? akt_scale(t, ce, NAN, 0) : ce;
}

static const struct akt_plugin plugin = {
    AKT_PLUGIN_HEADER, .kind = AKT_PLUGIN_LOSS,
    .name = "test_nan", .summary = "cross-entropy that turns NaN at epoch/iter (tests only)",
    .params = params, .n_params = 2,
    .create = create, .destroy = destroy, .ops.loss = {.compute = compute},
};

AKT_PLUGIN_EXPORT const struct akt_plugin *akt_plugin_get(uint32_t index)
{
    return index == 0 ? &plugin : NULL;
}
