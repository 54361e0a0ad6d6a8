/* Test-only plugin, built twice (test_dup_a.so, test_dup_b.so): two files
 * that claim the same loss name, which the loader must refuse. */
#include "akt/plugin.h"

static void *create(const struct akt_host *h, const struct akt_param_values *v, struct akt_error *e)
{
    (void)h, (void)v, (void)e;
    return (void *)1; /* stateless */
}
static void destroy(void *self) { (void)self; }
static struct akt_tensor *compute(void *self, const struct akt_host *h, struct akt_tape *t,
                                  const struct akt_loss_input *in, struct akt_error *e)
{
    (void)self, (void)h, (void)t, (void)in, (void)e;
    return NULL;
}

static const struct akt_plugin plugin = {
    AKT_PLUGIN_HEADER, .kind = AKT_PLUGIN_LOSS,
    .name = "test_dup", .summary = "same name in two files",
    .create = create, .destroy = destroy, .ops.loss = {.compute = compute},
};

AKT_PLUGIN_EXPORT const struct akt_plugin *akt_plugin_get(uint32_t index)
{
    return index == 0 ? &plugin : NULL;
}
