/* The fake-quantized student (SPEC 1-2): quantization hooks on a copy of the
 * teacher, and the activation range trackers. */
#include "akt/student.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RANGE_BETA 0.9

/* The recurrence runs in double and stores floats: the official code keeps
 * beta^t as a Python double, and the as-coded update amplifies early values
 * by up to ~10^3, so float intermediates would only add noise. c is
 * recomputed from the update count rather than multiplied each step, so a
 * zeroed tracker (c = 0, updates = 0) also starts correctly. */
void akt_range_update(struct akt_range *r, float mn, float mx, enum akt_range_ema mode)
{
    const double beta = RANGE_BETA;
    r->updates++;
    double c = pow(beta, (double)r->updates);
    double corr = 1.0 - c;
    r->c = (float)c;
    if (mode == AKT_EMA_PLAIN) {
        double rl = beta * r->raw_lo + (1.0 - beta) * mn;
        double rh = beta * r->raw_hi + (1.0 - beta) * mx;
        r->raw_lo = (float)rl;
        r->raw_hi = (float)rh;
        r->lo = (float)(rl / corr);
        r->hi = (float)(rh / corr);
    } else {
        /* as coded: the bias-corrected value is fed back (SPEC 2) */
        r->lo = (float)((beta * r->lo + (1.0 - beta) * mn) / corr);
        r->hi = (float)((beta * r->hi + (1.0 - beta) * mx) / corr);
    }
}

/* Min and max of x (exact in any order, so the parallel reduction is
 * deterministic). */
static void minmax(const float *x, int64_t n, float *mn_out, float *mx_out)
{
    float mn = x[0], mx = x[0];
#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(min : mn) reduction(max : mx) if (n >= 32768)
#endif
    for (int64_t i = 0; i < n; i++) {
        mn = x[i] < mn ? x[i] : mn;
        mx = x[i] > mx ? x[i] : mx;
    }
    *mn_out = mn;
    *mx_out = mx;
}

/* first_last_8bit raises only the stem conv and the FC weights to 8 bits;
 * every activation quantizer keeps abits (SPEC 1 names "first/last layer",
 * and the layers' inputs there are the float image and the float pooled
 * features, which are never quantized). */
int akt_student_weight_bits(const struct akt_student *s, int param)
{
    if (s->first_last_8bit) {
        const char *name = s->net.params[param].name;
        if (!strcmp(name, "conv1.weight") || !strcmp(name, "linear.weight"))
            return 8;
    }
    return s->wbits;
}

static struct akt_tensor *weight_hook(void *ctx, struct akt_tape *t, int param, struct akt_tensor *w)
{
    struct akt_student *s = ctx;
    AKT_ASSERT(param >= 0 && param < s->net.n_params);
    return akt_fake_quant_channel(t, w, akt_student_weight_bits(s, param));
}

/* The tracker updates before quantizing, so this forward already uses the
 * new range (as the official QuantAct). With tracking off and no update ever
 * made, the range is [0, 0] and everything maps to ~0, as in the official
 * code's zero-initialised buffers. */
static struct akt_tensor *act_hook(void *ctx, struct akt_tape *t, int index, struct akt_tensor *x)
{
    struct akt_student *s = ctx;
    AKT_ASSERT(index >= 0 && index < s->n_acts && x->n > 0);
    struct akt_range *r = &s->act[index];
    if (s->tracking) {
        float mn, mx;
        minmax(x->data, x->n, &mn, &mx);
        akt_range_update(r, mn, mx, s->ema);
    }
    return akt_fake_quant(t, x, r->lo, r->hi, s->abits);
}

void akt_student_init(struct akt_student *s, const struct akt_resnet *teacher, int wbits, int abits)
{
    AKT_ASSERT(wbits >= 2 && wbits <= 8 && abits >= 2 && abits <= 8);
    memset(s, 0, sizeof *s);
    akt_resnet_copy(&s->net, teacher);
    size_t bytes = (size_t)s->net.n_values * sizeof(float); /* a multiple of 64 (resnet.c) */
    s->momentum = aligned_alloc(64, bytes);
    AKT_ASSERT(s->momentum != NULL);
    memset(s->momentum, 0, bytes);
    s->wbits = wbits;
    s->abits = abits;
    s->first_last_8bit = 0;
    s->ema = AKT_EMA_AS_CODED;
    s->tracking = 1; /* the official QuantAct starts with running_stat on */
    s->n_acts = s->net.n_acts;
    s->act = calloc((size_t)s->n_acts, sizeof *s->act);
    AKT_ASSERT(s->act);
    for (int i = 0; i < s->n_acts; i++)
        s->act[i].c = 1.0f;
    /* ctx points at s: the student must not be moved (copied by value)
     * after init */
    s->hooks.weight = weight_hook;
    s->hooks.act = act_hook;
    s->hooks.ctx = s;
}

void akt_student_free(struct akt_student *s)
{
    akt_resnet_free(&s->net);
    free(s->momentum);
    free(s->act);
    s->momentum = NULL;
    s->act = NULL;
    s->hooks.ctx = NULL;
}
