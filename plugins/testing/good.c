/* Test-only plugin: a sound file with two descriptors, a generator and a
 * loss that share a name (names are per kind), to prove enumeration and the
 * generator checks. The ops do nothing useful. */
#include <math.h>

#include "akt/plugin.h"

static const struct akt_param_def gen_params[] = {
    {.key = "steps", .type = AKT_PT_INT, .def = 3, .lo = 1, .hi = 10, .help = "a count"},
    {.key = "noise", .type = AKT_PT_FLOAT, .def = 0.5, .lo = 0, .hi = HUGE_VAL,
     .help = "open above"},
};

static int dummy;

static void *create(const struct akt_host *h, const struct akt_param_values *v, struct akt_error *e)
{
    (void)h, (void)v, (void)e;
    return &dummy; /* stateless: any non-NULL pointer will do */
}
static void destroy(void *self) { (void)self; }

static int sample(void *self, const struct akt_host *h, struct akt_tape *t,
                  struct akt_gen_batch *out, struct akt_error *e)
{
    (void)self, (void)h, (void)t, (void)out;
    return akt_error_set(e, AKT_EINVAL, "test_same", "not a real generator");
}
static struct akt_tensor *gen_loss(void *self, const struct akt_host *h, struct akt_tape *t,
                                   const struct akt_gen_batch *b, const struct akt_resnet_out *te,
                                   const struct akt_resnet_out *st, struct akt_error *e)
{
    (void)self, (void)h, (void)t, (void)b, (void)te, (void)st, (void)e;
    return NULL;
}
static void update(void *self, const struct akt_host *h, float lr) { (void)self, (void)h, (void)lr; }
static float *state(void *self, int64_t *n)
{
    (void)self;
    *n = 0;
    return NULL;
}
static struct akt_tensor *compute(void *self, const struct akt_host *h, struct akt_tape *t,
                                  const struct akt_loss_input *in, struct akt_error *e)
{
    (void)self, (void)h, (void)t, (void)in, (void)e;
    return NULL;
}

static const struct akt_plugin plugins[] = {
    {AKT_PLUGIN_HEADER, .kind = AKT_PLUGIN_GENERATOR,
     .name = "test_same", .summary = "test generator", .params = gen_params, .n_params = 2,
     .create = create, .destroy = destroy,
     /* logit_loss left 0: AKT_LOGIT_KD */
     .ops.gen = {.sample = sample, .loss = gen_loss, .update = update, .state = state,
                 .lr = 1e-3f}},
    {AKT_PLUGIN_HEADER, .kind = AKT_PLUGIN_LOSS,
     .name = "test_same", .summary = NULL, .create = create, .destroy = destroy,
     .ops.loss = {.compute = compute}},
};

AKT_PLUGIN_EXPORT const struct akt_plugin *akt_plugin_get(uint32_t index)
{
    return index < 2 ? &plugins[index] : NULL;
}
