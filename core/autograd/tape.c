/* The reverse-mode tape: a linear list of records, reset every step. */
#include "akt/tensor.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ----------------------------------------------------------- profile --- */
/* AKT_PROFILE=1: time per op name, forward and backward, printed to stderr
 * at exit. A forward is timed from the previous record (or tape reset, or
 * end of backward) to its own record, so it includes any host code in
 * between (an optimizer step shows up in the next op); ops that push no
 * record (recording off) are not seen. Off, it costs one branch. */
#define PROF_MAX 96
static struct prof_entry {
    char name[40]; /* a copy: plugin names die with dlclose, before exit */
    double fwd, bwd;
    long calls;
} g_prof[PROF_MAX];
static int g_prof_n, g_prof_on = -1;
static double g_prof_last;

static double prof_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int prof_cmp(const void *a, const void *b)
{
    const struct prof_entry *x = a, *y = b;
    double tx = x->fwd + x->bwd, ty = y->fwd + y->bwd;
    return tx < ty ? 1 : tx > ty ? -1 : 0;
}

static void prof_report(void)
{
    qsort(g_prof, (size_t)g_prof_n, sizeof g_prof[0], prof_cmp);
    double tf = 0, tb = 0;
    for (int i = 0; i < g_prof_n; i++)
        tf += g_prof[i].fwd, tb += g_prof[i].bwd;
    fprintf(stderr, "# akt profile (AKT_PROFILE): seconds per op over the whole process\n");
    fprintf(stderr, "# %-24s %10s %10s %10s %6s\n", "op", "calls", "forward_s", "backward_s", "share");
    for (int i = 0; i < g_prof_n; i++)
        fprintf(stderr, "# %-24s %10ld %10.3f %10.3f %5.1f%%\n", g_prof[i].name, g_prof[i].calls,
                g_prof[i].fwd, g_prof[i].bwd, 100 * (g_prof[i].fwd + g_prof[i].bwd) / (tf + tb));
    fprintf(stderr, "# %-24s %10s %10.3f %10.3f\n", "total", "", tf, tb);
}

static int prof_on(void)
{
    if (g_prof_on < 0) {
        g_prof_on = akt_env_flag("AKT_PROFILE");
        if (g_prof_on)
            atexit(prof_report);
    }
    return g_prof_on;
}

static struct prof_entry *prof_entry(const char *name)
{
    for (int i = 0; i < g_prof_n; i++)
        if (strncmp(g_prof[i].name, name, sizeof g_prof[i].name - 1) == 0)
            return &g_prof[i];
    if (g_prof_n == PROF_MAX)
        return NULL;
    snprintf(g_prof[g_prof_n].name, sizeof g_prof[g_prof_n].name, "%s", name);
    return &g_prof[g_prof_n++];
}

void akt_tensor_set_shape(struct akt_tensor *t, int ndim, const int *shape)
{
    AKT_ASSERT(ndim >= 1 && ndim <= AKT_MAX_DIMS);
    t->ndim = ndim;
    t->n = 1;
    for (int i = 0; i < AKT_MAX_DIMS; i++) {
        t->shape[i] = i < ndim ? shape[i] : 1;
        if (i < ndim) {
            AKT_ASSERT(shape[i] >= 0);
            t->n *= shape[i];
        }
    }
}

int akt_tensor_same_shape(const struct akt_tensor *a, const struct akt_tensor *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i])
            return 0;
    return 1;
}

struct akt_tensor akt_tensor_wrap(float *data, float *grad, int ndim, const int *shape)
{
    struct akt_tensor t;
    memset(&t, 0, sizeof t);
    akt_tensor_set_shape(&t, ndim, shape);
    t.data = data;
    t.grad = grad;
    t.requires_grad = grad != NULL;
    return t;
}

void akt_tape_init(struct akt_tape *t, size_t arena_block_bytes)
{
    memset(t, 0, sizeof *t);
    akt_arena_init(&t->arena, arena_block_bytes);
    t->recording = 1;
}

void akt_tape_reset(struct akt_tape *t)
{
    if (prof_on())
        g_prof_last = prof_now();
    akt_arena_reset(&t->arena);
    t->n_nodes = 0;
    t->lazy = NULL;
}

void akt_tape_clear_records(struct akt_tape *t) { t->n_nodes = 0; }

void akt_tape_free(struct akt_tape *t)
{
    akt_arena_free(&t->arena);
    free(t->nodes);
    memset(t, 0, sizeof *t);
}

void *akt_tape_alloc(struct akt_tape *t, size_t bytes) { return akt_arena_alloc(&t->arena, bytes); }

void *akt_tape_alloc_uninit(struct akt_tape *t, size_t bytes)
{
    return akt_arena_alloc_uninit(&t->arena, bytes);
}

/* data zeroed or not; a grad buffer is always zeroed (backward accumulates) */
static struct akt_tensor *tensor_new(struct akt_tape *t, int ndim, const int *shape,
                                     int requires_grad, int zero_data)
{
    struct akt_tensor *x = akt_arena_alloc(&t->arena, sizeof *x);
    akt_tensor_set_shape(x, ndim, shape);
    size_t bytes = (size_t)x->n * sizeof(float);
    x->data = zero_data ? akt_arena_alloc(&t->arena, bytes) : akt_arena_alloc_uninit(&t->arena, bytes);
    if (requires_grad && t->recording) {
        x->grad = akt_arena_alloc(&t->arena, (size_t)x->n * sizeof(float));
        x->requires_grad = 1;
    }
    return x;
}

struct akt_tensor *akt_tensor_new(struct akt_tape *t, int ndim, const int *shape, int requires_grad)
{
    return tensor_new(t, ndim, shape, requires_grad, 1);
}

struct akt_tensor *akt_tensor_new_uninit(struct akt_tape *t, int ndim, const int *shape,
                                         int requires_grad)
{
    return tensor_new(t, ndim, shape, requires_grad, 0);
}

struct akt_tensor *akt_tensor_newv(struct akt_tape *t, int requires_grad, int ndim, ...)
{
    int shape[AKT_MAX_DIMS];
    va_list ap;
    va_start(ap, ndim);
    for (int i = 0; i < ndim; i++)
        shape[i] = va_arg(ap, int);
    va_end(ap);
    return akt_tensor_new(t, ndim, shape, requires_grad);
}

struct akt_tensor *akt_tensor_from(struct akt_tape *t, const float *data, int ndim, const int *shape)
{
    struct akt_tensor *x = akt_tensor_new_uninit(t, ndim, shape, 0);
    memcpy(x->data, data, (size_t)x->n * sizeof(float));
    return x;
}

struct akt_tensor *akt_view(struct akt_tape *t, struct akt_tensor *x, int ndim, const int *shape)
{
    struct akt_tensor *v = akt_arena_alloc(&t->arena, sizeof *v);
    *v = *x;
    akt_tensor_set_shape(v, ndim, shape);
    AKT_ASSERT(v->n == x->n);
    return v;
}

struct akt_tensor *akt_detach(struct akt_tape *t, struct akt_tensor *x)
{
    struct akt_tensor *v = akt_arena_alloc(&t->arena, sizeof *v);
    *v = *x;
    v->grad = NULL;
    v->gs = NULL;
    v->requires_grad = 0;
    return v;
}

int akt_any_grad(const struct akt_tape *t, const struct akt_tensor *a, const struct akt_tensor *b,
                 const struct akt_tensor *c)
{
    if (!t->recording)
        return 0;
    return (a && a->requires_grad) || (b && b->requires_grad) || (c && c->requires_grad);
}

/* AKT_POISON_GRADS=1 (set by the test suite) fills lazy grad buffers with
 * NaN, so a kernel that adds into one it did not claim shows up at once. */
static int poison_lazy_grads(void)
{
    static int v = -1;
    if (v < 0)
        v = akt_env_flag("AKT_POISON_GRADS");
    return v;
}

struct akt_node *akt_tape_push(struct akt_tape *t, akt_backward_fn fn, const char *name,
                               struct akt_tensor *out, struct akt_tensor *a, struct akt_tensor *b,
                               struct akt_tensor *c, struct akt_tensor *d)
{
    if (!akt_any_grad(t, a, b, c) && !(t->recording && d && d->requires_grad))
        return NULL;
    if (t->n_nodes == t->cap_nodes) {
        int cap = t->cap_nodes ? 2 * t->cap_nodes : 256;
        struct akt_node *nn = realloc(t->nodes, (size_t)cap * sizeof *nn);
        AKT_ASSERT(nn != NULL);
        t->nodes = nn;
        t->cap_nodes = cap;
    }
    if (prof_on()) {
        double now = prof_now();
        struct prof_entry *pe = prof_entry(name);
        if (pe) {
            pe->fwd += now - g_prof_last;
            pe->calls++;
        }
    }
    struct akt_node *n = &t->nodes[t->n_nodes++];
    memset(n, 0, sizeof *n);
    n->backward = fn;
    n->name = name;
    n->out = out;
    n->in[0] = a;
    n->in[1] = b;
    n->in[2] = c;
    n->in[3] = d;
    /* the output carries a gradient because an input does; lazily zeroed */
    if (!out->grad) {
        struct akt_grad_state *gs = akt_arena_alloc_uninit(&t->arena, sizeof *gs);
        gs->grad = akt_arena_alloc_uninit(&t->arena, (size_t)out->n * sizeof(float));
        if (poison_lazy_grads())
            for (int64_t i = 0; i < out->n; i++)
                gs->grad[i] = NAN;
        gs->n = out->n;
        gs->written = 0;
        gs->next = t->lazy;
        t->lazy = gs;
        out->grad = gs->grad;
        out->gs = gs;
        out->requires_grad = 1;
    }
    if (prof_on())
        g_prof_last = prof_now(); /* the next op's forward starts here */
    return n;
}

static void grad_fill_zero(struct akt_grad_state *gs)
{
    if (!gs->written) {
        memset(gs->grad, 0, (size_t)gs->n * sizeof(float));
        gs->written = 1;
    }
}

float *akt_grad(struct akt_tensor *x)
{
    if (x->gs)
        grad_fill_zero(x->gs);
    return x->grad;
}

int akt_grad_claim(struct akt_tensor *x)
{
    if (!x->gs || x->gs->written)
        return 1;
    x->gs->written = 1;
    return 0;
}

void akt_backward(struct akt_tape *t, struct akt_tensor *loss)
{
    AKT_ASSERT(loss->n == 1);
    if (!loss->grad)
        return; /* nothing upstream needs a gradient */
    akt_grad(loss)[0] += 1.0f;
    akt_backward_run(t);
}

void akt_backward_run(struct akt_tape *t)
{
    for (int i = t->n_nodes - 1; i >= 0; i--) {
        struct akt_node *n = &t->nodes[i];
        /* backward is linear in the output gradient: none, nothing to do */
        if (n->out->gs && !n->out->gs->written)
            continue;
        if (!(n->flags & AKT_NODE_CLAIMS_GRADS))
            for (int k = 0; k < 4; k++)
                if (n->in[k] && n->in[k]->gs)
                    grad_fill_zero(n->in[k]->gs);
        double t0 = prof_on() ? prof_now() : 0;
        n->backward(t, n);
        if (prof_on()) {
            struct prof_entry *pe = prof_entry(n->name);
            if (pe)
                pe->bwd += prof_now() - t0;
        }
    }
    /* gradients nothing reached are zero, as after an eager fill */
    for (struct akt_grad_state *gs = t->lazy; gs; gs = gs->next)
        grad_fill_zero(gs);
    if (prof_on())
        g_prof_last = prof_now();
}
