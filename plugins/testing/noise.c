/* Test-only generator with nothing to train: x = N(0,1) noise images and
 * uniform labels, no loss, no update, no state (all three NULL), so the
 * host's NULL paths run end to end, checkpoints and resume included. */
#include <stdlib.h>

#include "akt/plugin.h"

static int dummy;

static void *create(const struct akt_host *h, const struct akt_param_values *v, struct akt_error *e)
{
    (void)h, (void)v, (void)e;
    return &dummy;
}
static void destroy(void *self) { (void)self; }

static int sample(void *self, const struct akt_host *h, struct akt_tape *t,
                  struct akt_gen_batch *out, struct akt_error *e)
{
    (void)self, (void)e;
    out->x = akt_tensor_newv(t, 0, 4, h->batch, 3, 32, 32);
    for (int64_t i = 0; i < out->x->n; i++)
        out->x->data[i] = akt_rng_normal(h->rng);
    out->labels = akt_tape_alloc(t, (size_t)h->batch * sizeof(int));
    for (int b = 0; b < h->batch; b++)
        out->labels[b] = (int)akt_rng_below(h->rng, (uint32_t)h->num_classes);
    out->target = NULL;
    return 0;
}

static const struct akt_plugin plugin = {
    AKT_PLUGIN_HEADER,
    .kind = AKT_PLUGIN_GENERATOR,
    .name = "test_noise",
    .summary = "N(0,1) noise images, nothing to train (tests only)",
    .create = create,
    .destroy = destroy,
    .ops.gen = {.sample = sample, .lr = 0, .logit_loss = AKT_LOGIT_KD},
};

AKT_PLUGIN_EXPORT const struct akt_plugin *akt_plugin_get(uint32_t index)
{
    return index == 0 ? &plugin : NULL;
}
