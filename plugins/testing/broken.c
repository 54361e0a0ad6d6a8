/* Test-only plugin, built once per defect (see meson.build): each variant
 * is a sound loss descriptor with exactly one thing wrong, selected by
 * -DBROKEN_<defect>, so each loader refusal has a file that triggers it. */
#include <stddef.h>
#include <stdio.h>

#include "akt/plugin.h"

static void *create(const struct akt_host *h, const struct akt_param_values *v, struct akt_error *e)
{
    (void)h, (void)v, (void)e;
    return (void *)1;
}
static void destroy(void *self) { (void)self; }
static struct akt_tensor *compute(void *self, const struct akt_host *h, struct akt_tape *t,
                                  const struct akt_loss_input *in, struct akt_error *e)
{
    (void)self, (void)h, (void)t, (void)in, (void)e;
    return NULL;
}
static int sample(void *self, const struct akt_host *h, struct akt_tape *t,
                  struct akt_gen_batch *out, struct akt_error *e)
{
    (void)self, (void)h, (void)t, (void)out, (void)e;
    return 0;
}
static void update(void *self, const struct akt_host *h, float lr)
{
    (void)self, (void)h, (void)lr;
}
static int bad_text(const char *text, char *why, size_t n)
{
    (void)text;
    snprintf(why, n, "nothing is accepted");
    return -1;
}
static struct akt_tensor *gen_loss(void *self, const struct akt_host *h, struct akt_tape *t,
                                   const struct akt_gen_batch *b, const struct akt_resnet_out *te,
                                   const struct akt_resnet_out *st, struct akt_error *e)
{
    (void)self, (void)h, (void)t, (void)b, (void)te, (void)st, (void)e;
    return NULL;
}
static float *state(void *self, int64_t *n)
{
    (void)self;
    *n = 0;
    return NULL;
}

/* Defaults of a sound table; the variants below spoil one entry. */
#define GOOD_PARAMS                                                                          \
    {.key = "lambda", .type = AKT_PT_FLOAT, .def = 1, .lo = 0, .hi = 10, .help = "a weight"}, \
    {.key = "red", .type = AKT_PT_CHOICE, .def = 1, .choices = "sum|mean", .help = "a choice"}

static const struct akt_param_def params[] = {
    GOOD_PARAMS,
#if defined(BROKEN_NULL_KEY)
    {.key = NULL, .type = AKT_PT_FLOAT, .def = 0, .lo = 0, .hi = 1},
#elif defined(BROKEN_DEFAULT_RANGE)
    {.key = "tau", .type = AKT_PT_FLOAT, .def = 20, .lo = 0, .hi = 10, .help = "too hot"},
#elif defined(BROKEN_CHOICE_DEFAULT)
    {.key = "mode", .type = AKT_PT_CHOICE, .def = 3, .choices = "a|b|c", .help = "no 4th"},
#elif defined(BROKEN_DUP_KEY)
    {.key = "lambda", .type = AKT_PT_FLOAT, .def = 0, .lo = 0, .hi = 1, .help = "again"},
#elif defined(BROKEN_STRING_DEFAULT)
    {.key = "which", .type = AKT_PT_STRING, .def_text = "all", .check = bad_text,
     .help = "a default its own check refuses"},
#endif
};

#if defined(BROKEN_TOO_MANY)
#define N_PARAMS (AKT_PLUGIN_MAX_PARAMS + 1)
#else
#define N_PARAMS ((int)(sizeof params / sizeof params[0]))
#endif

static const struct akt_plugin plugin = {
#ifdef BROKEN_ABI
    .abi = 7,
#else
    .abi = AKT_PLUGIN_ABI,
#endif
#ifdef BROKEN_SIZE
    .size = offsetof(struct akt_plugin, ops), /* as if built before ops existed */
#else
    .size = sizeof(struct akt_plugin),
#endif
#ifdef BROKEN_PARAM_SIZE
    .param_size = 0, /* as if the descriptor did not start with AKT_PLUGIN_HEADER */
#else
    .param_size = sizeof(struct akt_param_def),
#endif
#if defined(BROKEN_KIND)
    .kind = (enum akt_plugin_kind)3,
#elif defined(BROKEN_GEN_OPS) || defined(BROKEN_LOGIT)
    .kind = AKT_PLUGIN_GENERATOR,
#else
    .kind = AKT_PLUGIN_LOSS,
#endif
#ifndef BROKEN_NO_NAME
    .name = "test_broken",
#endif
    .summary = "one defect per build",
    .params = params,
    .n_params = N_PARAMS,
#ifndef BROKEN_NO_CREATE
    .create = create,
#endif
#ifndef BROKEN_NO_DESTROY
    .destroy = destroy,
#endif
#if defined(BROKEN_GEN_OPS)
    /* an optimizer step but no loss to differentiate */
    .ops.gen = {.sample = sample, .update = update, .state = state},
#elif defined(BROKEN_LOGIT)
    .ops.gen = {.sample = sample, .loss = gen_loss, .update = update, .state = state,
                .logit_loss = (enum akt_logit_loss)5},
#elif !defined(BROKEN_NO_OPS)
    .ops.loss = {.compute = compute},
#endif
};

AKT_PLUGIN_EXPORT const struct akt_plugin *akt_plugin_get(uint32_t index)
{
    /* each variant leaves some of these out; keeps -Wunused quiet */
    (void)create, (void)destroy, (void)sample, (void)gen_loss, (void)state, (void)compute;
    (void)update, (void)bad_text;
    return index == 0 ? &plugin : NULL;
}
