/* The state of one run (struct akt_run): opening it (teacher, evaluation
 * data, student, plugins) and the host the plugins see, whose callbacks
 * (forward passes, metrics, log lines) land here. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "akt/eval.h"
#include "internal.h"

void akt__teacher_forward(struct akt_run *r, struct akt_tape *t, struct akt_tensor *x,
                          struct akt_resnet_out *out)
{
    struct akt_resnet_opts o = {0};
    akt_resnet_forward(&r->teacher, t, x, &o, out);
}

void akt__student_forward(struct akt_run *r, struct akt_tape *t, struct akt_tensor *x,
                          struct akt_resnet_out *out)
{
    struct akt_resnet_opts o = {.quant = &r->student.hooks};
    akt_resnet_forward(&r->student.net, t, x, &o, out);
}

static void host_teacher_forward(const struct akt_host *h, struct akt_tape *t,
                                 struct akt_tensor *x, struct akt_resnet_out *out)
{
    akt__teacher_forward(h->ctx, t, x, out);
}

static void host_student_forward(const struct akt_host *h, struct akt_tape *t,
                                 struct akt_tensor *x, struct akt_resnet_out *out)
{
    akt__student_forward(h->ctx, t, x, out);
}

/* The host cannot fail a plugin's call: a name past the table is kept for
 * akt__check_metrics, which fails the run after the step. */
static void host_metric(const struct akt_host *h, const char *name, double value)
{
    struct akt_run *r = h->ctx;
    int i;
    for (i = 0; i < r->n_metrics; i++)
        if (!strcmp(r->metric_name[i], name))
            break;
    if (i == r->n_metrics) {
        if (r->n_metrics == AKT_RUN_MAX_METRICS) {
            if (!r->metric_refused[0])
                snprintf(r->metric_refused, sizeof r->metric_refused, "%s", name);
            return;
        }
        snprintf(r->metric_name[i], sizeof r->metric_name[i], "%s", name);
        r->n_metrics++;
    }
    r->metric_sum[i] += value;
    r->metric_count[i]++;
}

int akt__check_metrics(const struct akt_run *r, struct akt_error *e)
{
    if (!r->metric_refused[0])
        return 0;
    char where[160];
    snprintf(where, sizeof where, "generator %s, loss %s", r->gen->name, r->loss->name);
    return akt_error_set(e, AKT_EPLUGIN, where,
                         "metric '%s' is one name more than the %d a run holds per epoch; "
                         "report fewer metrics", r->metric_refused, AKT_RUN_MAX_METRICS);
}

/* Log lines go to the run's callbacks (only main prints); without a log
 * callback they are dropped. */
static void host_log(const struct akt_host *h, const char *fmt, ...)
{
    const struct akt_run *r = h->ctx;
    if (!r->cb || !r->cb->log)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    r->cb->log(line, r->cb->user);
}

int akt__sample(struct akt_run *r, struct akt_tape *t, struct akt_gen_batch *gb,
                struct akt_error *e)
{
    *gb = (struct akt_gen_batch){.size = sizeof *gb};
    int rc = r->gen->ops.gen.sample(r->gen_self, &r->host, t, gb, e);
    if (rc)
        return rc;
    const struct akt_tensor *x = gb->x;
    int B = r->host.batch, C = r->host.num_classes;
    char where[96];
    snprintf(where, sizeof where, "generator %s", r->gen->name);
    if (!x || x->ndim != 4 || x->shape[0] != B || x->shape[1] != 3 || x->shape[2] != 32 ||
        x->shape[3] != 32)
        return akt_error_set(e, AKT_ESHAPE, where, "sample() must return x of shape "
                             "[%d,3,32,32] (h->batch images)", B);
    if (!gb->labels)
        return akt_error_set(e, AKT_EINVAL, where, "sample() returned no labels");
    if (gb->target && (gb->target->ndim != 2 || gb->target->shape[0] != B ||
                       gb->target->shape[1] != C))
        return akt_error_set(e, AKT_ESHAPE, where, "soft targets must be [%d,%d]", B, C);
    return 0;
}

/* A plugin op that returned NULL: its error, or one naming it when it gave
 * none (never a lost failure). */
int akt__plugin_failed(struct akt_error *e, const char *kind, const char *name, const char *op)
{
    if (e && e->code)
        return e->code;
    char where[96];
    snprintf(where, sizeof where, "%s %s", kind, name);
    return akt_error_set(e, AKT_EPLUGIN, where, "%s() failed without saying why", op);
}

/* Teacher outputs as constants for the student's loss (new arrays on t, so
 * the originals keep their gradients for the generator step). */
struct akt_resnet_out akt__detach_out(struct akt_tape *t, const struct akt_resnet_out *o)
{
    struct akt_resnet_out d = *o;
    d.logits = akt_detach(t, o->logits);
    d.features = akt_tape_alloc(t, (size_t)o->n_features * sizeof *d.features);
    for (int i = 0; i < o->n_features; i++)
        d.features[i] = o->features[i] ? akt_detach(t, o->features[i]) : NULL;
    d.bn_inputs = akt_tape_alloc(t, (size_t)o->n_bn * sizeof *d.bn_inputs);
    for (int i = 0; i < o->n_bn; i++)
        d.bn_inputs[i] = akt_detach(t, o->bn_inputs[i]);
    d.acts = akt_tape_alloc(t, (size_t)o->n_acts * sizeof *d.acts);
    for (int i = 0; i < o->n_acts; i++)
        d.acts[i] = o->acts[i] ? akt_detach(t, o->acts[i]) : NULL;
    return d;
}

/* Arena bytes per image of one training step: forward + backward through
 * the teacher and the student (twice for a generator that needs the
 * student) and the generator's activations. GEN_BYTES_PER_IMAGE is the GDFQ
 * trunk all built-in generators share (3-4 MiB measured at 32x32); a
 * generator that needs more per image checks that in its create(). */
#define GEN_BYTES_PER_IMAGE (4.0 * 1024 * 1024)

static double step_bytes_per_image(const struct akt_run *r)
{
    double pass = akt_resnet_train_bytes(&r->teacher);
    return pass * (2 + (r->gen->ops.gen.needs_student != 0)) + GEN_BYTES_PER_IMAGE;
}

/* The batch sizes a user chose, against the memory limit, before anything
 * of that size is allocated (the tape's arena is then reserved for a step:
 * a refusal by the system is an error, not an abort). */
static int check_batch_memory(const struct akt_run *r, struct akt_error *e)
{
    const struct akt_run_config *c = r->c;
    int rc = akt_mem_check("batch", c->batch, step_bytes_per_image(r), 0,
                           "one training step (teacher, student and generator activations)", e);
    int eval = c->eval_batch < r->data.n ? c->eval_batch : r->data.n;
    if (!rc)
        rc = akt_mem_check("eval_batch", eval, akt_resnet_eval_bytes(&r->teacher), 0,
                           "an evaluation batch", e);
    return rc;
}

/* A plugin's create() error under the plugin's name, keeping what the
 * plugin said. */
static int create_failed(struct akt_error *e, const char *kind, const char *name)
{
    char where[160];
    snprintf(where, sizeof where, "%s %s", kind, name);
    return akt_error_wrap(e, AKT_EPLUGIN, where, "create failed");
}

int akt__open_run(struct akt_run *r, const struct akt_registry *reg, struct akt_error *e)
{
    const struct akt_run_config *c = r->c;
    int rc;
    if ((rc = akt_run_config_check(c, reg, e)))
        return rc;
    r->gen = akt_registry_find(reg, AKT_PLUGIN_GENERATOR, c->generator);
    r->loss = akt_registry_find(reg, AKT_PLUGIN_LOSS, c->loss);
    if ((rc = akt_resnet_load(&r->teacher, c->teacher_path, e)))
        return rc;
    if ((rc = akt_cifar_load(&r->data, c->data_path, c->data_format, e)))
        return rc;
    if (c->eval_limit > 0 && c->eval_limit < r->data.n)
        r->data.n = c->eval_limit; /* the first N records; the buffers stay as loaded */
    if (r->data.num_classes != r->teacher.num_classes)
        return akt_error_set(e, AKT_EINVAL, c->data_path,
                             "dataset has %d classes but the teacher %s has %d",
                             r->data.num_classes, c->teacher_path, r->teacher.num_classes);
    akt_student_init(&r->student, &r->teacher, c->wbits, c->abits);
    if ((rc = check_batch_memory(r, e)))
        return rc;
    r->student.first_last_8bit = c->first_last_8bit;
    r->student.ema = c->range_ema;
    akt_rng_seed(&r->rng, c->seed);
    r->host = (struct akt_host){
        .abi = AKT_PLUGIN_ABI,
        .size = sizeof(struct akt_host),
        .rng = &r->rng,
        .num_classes = r->teacher.num_classes,
        .batch = c->batch,
        .wbits = c->wbits,
        .abits = c->abits,
        .teacher = &r->teacher,
        .teacher_forward = host_teacher_forward,
        .student_forward = host_student_forward,
        .metric = host_metric,
        .log = host_log,
        .ctx = r,
    };
    r->gen_self = r->gen->create(&r->host, &c->gen_params, e);
    if (!r->gen_self)
        return create_failed(e, "generator", r->gen->name);
    r->loss_self = r->loss->create(&r->host, &c->loss_params, e);
    if (!r->loss_self)
        return create_failed(e, "loss", r->loss->name);
    akt_tape_init(&r->tape, 0);
    return akt_arena_reserve(&r->tape.arena, (size_t)(c->batch * step_bytes_per_image(r)),
                             "batch", e);
}

void akt__close_run(struct akt_run *r)
{
    if (r->gen_self)
        r->gen->destroy(r->gen_self);
    if (r->loss_self)
        r->loss->destroy(r->loss_self);
    akt_tape_free(&r->tape);
    akt_student_free(&r->student);
    akt_resnet_free(&r->teacher);
    akt_dataset_free(&r->data);
}
