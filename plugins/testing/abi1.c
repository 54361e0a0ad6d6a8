/* Test-only plugin built for plugin ABI 1 (akt 0.1): it does not include
 * akt/plugin.h but lays out its descriptor as ABI 1's header did, which is
 * what an old plugin binary looks like to a newer loader. The loader must
 * refuse it naming both ABI numbers (tests/plugin_loader.c). */
#include <stdint.h>
#include <stddef.h>

struct v1_param_def {
    const char *key;
    int type;
    double def, lo, hi;
    const char *choices, *help;
};

struct v1_loss_ops {
    void *compute;
    int needs_features;
};

struct v1_plugin {
    uint32_t abi, size; /* ABI 1: no param_size after size */
    int kind;
    const char *name, *summary;
    const struct v1_param_def *params;
    int n_params;
    void *create, *destroy;
    union {
        struct {
            void *sample, *loss, *update, *state;
            int needs_student;
            float lr;
            const char *logit_loss; /* a string in ABI 1 */
        } gen;
        struct v1_loss_ops loss;
    } ops;
};

static int token;

static const struct v1_plugin plugin = {
    .abi = 1,
    .size = sizeof(struct v1_plugin),
    .kind = 2, /* loss */
    .name = "test_abi1",
    .summary = "a loss built against plugin ABI 1",
    .create = &token,
    .destroy = &token,
    .ops.loss = {.compute = &token},
};

__attribute__((visibility("default"))) const void *akt_plugin_get(uint32_t index)
{
    return index == 0 ? &plugin : NULL;
}
