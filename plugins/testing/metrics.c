/* Test-only loss: cross-entropy that reports `metrics` metric names per
 * call (m00, m01, ...) and logs one line per call, so the tests can prove
 * that a plugin reporting more metrics than the runner holds fails the run
 * (never a silent drop) and that log lines reach the run's callbacks. */
#include <stdio.h>

#include "akt/plugin.h"

static const struct akt_param_def params[] = {
    {.key = "metrics", .type = AKT_PT_INT, .def = 40, .lo = 0, .hi = 1000,
     .help = "metric names reported per call"},
};

static int n_metrics;

static void *create(const struct akt_host *h, const struct akt_param_values *v, struct akt_error *e)
{
    (void)h, (void)e;
    n_metrics = (int)v->v[0]; /* one instance at a time is all the tests need */
    return &n_metrics;
}

static void destroy(void *self) { (void)self; }

static struct akt_tensor *compute(void *self, const struct akt_host *h, struct akt_tape *t,
                                  const struct akt_loss_input *in, struct akt_error *e)
{
    (void)self, (void)e;
    for (int i = 0; i < n_metrics; i++) {
        char name[16];
        snprintf(name, sizeof name, "m%02d", i);
        h->metric(h, name, i);
    }
    if (h->log)
        h->log(h, "test_metrics: epoch %d iteration %d, %d metrics", h->epoch, h->iter, n_metrics);
    return akt_cross_entropy(t, in->student->logits, in->labels);
}

static const struct akt_plugin plugin = {
    AKT_PLUGIN_HEADER, .kind = AKT_PLUGIN_LOSS,
    .name = "test_metrics", .summary = "cross-entropy reporting N metrics (tests only)",
    .params = params, .n_params = 1,
    .create = create, .destroy = destroy, .ops.loss = {.compute = compute},
};

AKT_PLUGIN_EXPORT const struct akt_plugin *akt_plugin_get(uint32_t index)
{
    return index == 0 ? &plugin : NULL;
}
