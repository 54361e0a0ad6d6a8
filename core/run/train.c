/* One zero-shot quantization run (SPEC 5). Read akt_run_train's epoch loop
 * top to bottom: it is the whole algorithm of a training step. */
#include "akt/run.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/distill.h"
#include "akt/eval.h"
#include "akt/optim.h"
#include "akt/results.h"
#include "internal.h"

/* struct run (the run's state) and the helpers analysis.c shares with this
 * file (akt__open_run, akt__close_run, akt__load_checkpoint,
 * akt__detach_out) are declared in internal.h. */
static void host_teacher_forward(const struct akt_host *h, struct akt_tape *t,
                                 struct akt_tensor *x, struct akt_resnet_out *out)
{
    struct run *r = h->ctx;
    struct akt_resnet_opts o = {0};
    akt_resnet_forward(&r->teacher, t, x, &o, out);
}

static void host_student_forward(const struct akt_host *h, struct akt_tape *t,
                                 struct akt_tensor *x, struct akt_resnet_out *out)
{
    struct run *r = h->ctx;
    struct akt_resnet_opts o = {.quant = &r->student.hooks};
    akt_resnet_forward(&r->student.net, t, x, &o, out);
}

static void host_metric(const struct akt_host *h, const char *name, double value)
{
    struct run *r = h->ctx;
    int i;
    for (i = 0; i < r->n_metrics; i++)
        if (!strcmp(r->metric_name[i], name))
            break;
    if (i == r->n_metrics) {
        if (r->n_metrics == MAX_METRICS)
            return; /* silently bounded: plugins report a handful */
        snprintf(r->metric_name[i], sizeof r->metric_name[i], "%s", name);
        r->n_metrics++;
    }
    r->metric_sum[i] += value;
    r->metric_count[i]++;
}

static void host_log(const struct akt_host *h, const char *fmt, ...)
{
    (void)h;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "akt: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
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

int akt__student_batch(struct run *r, struct akt_tape *t, struct akt_tensor *x,
                       const struct akt_resnet_out *tout, struct akt_tensor **xs,
                       struct akt_resnet_out *tdet, struct akt_error *e)
{
    x = akt_detach(t, x);
    if (!r->loss->ops.loss.prepare) {
        *xs = x;
        *tdet = akt__detach_out(t, tout);
        return 0;
    }
    char where[96];
    snprintf(where, sizeof where, "loss %s", r->loss->name);
    struct akt_tensor *p = r->loss->ops.loss.prepare(r->loss_self, &r->host, t, x, e);
    if (!p)
        return e && e->code ? e->code : akt_error_set(e, AKT_EPLUGIN, where, "prepare() failed");
    if (!akt_tensor_same_shape(p, x))
        return akt_error_set(e, AKT_ESHAPE, where, "prepare() must return images of the shape "
                             "of its input [%d,3,32,32]", x->shape[0]);
    /* the filtered images are constants of the student step */
    *xs = akt_detach(t, p);
    struct akt_resnet_out to;
    host_teacher_forward(&r->host, t, *xs, &to);
    *tdet = akt__detach_out(t, &to);
    return 0;
}

static double student_grad_norm(const struct akt_student *s)
{
    double acc = 0;
    for (int i = 0; i < s->net.n_params; i++) {
        const struct akt_param *p = &s->net.params[i];
        if (p->kind != AKT_PARAM_WEIGHT)
            continue;
        const float *g = s->net.grads + p->offset;
        for (int64_t k = 0; k < p->n; k++)
            acc += (double)g[k] * g[k];
    }
    return sqrt(acc);
}

/* SGD with Nesterov momentum and weight decay on every trainable array of
 * the student; BN running stats are buffers and never move. */
static void student_sgd(struct akt_student *s, float lr, const struct akt_run_config *c)
{
    for (int i = 0; i < s->net.n_params; i++) {
        const struct akt_param *p = &s->net.params[i];
        if (p->kind != AKT_PARAM_WEIGHT)
            continue;
        akt_sgd_step(s->net.values + p->offset, s->net.grads + p->offset,
                     s->momentum + p->offset, p->n, lr, c->momentum, c->weight_decay, 1);
    }
}

static int evaluate_student(struct run *r, double *top1, double *top5, struct akt_error *e)
{
    int tracking = r->student.tracking;
    r->student.tracking = 0; /* evaluation never moves the ranges */
    struct akt_resnet_opts o = {.quant = &r->student.hooks};
    struct akt_eval_result er;
    int rc = akt_evaluate(&r->student.net, &o, &r->data, r->c->eval_batch, NULL, NULL, &er, e);
    r->student.tracking = tracking;
    *top1 = er.top1;
    *top5 = er.top5;
    return rc;
}

/* A plugin's batch must be what the host asked for: h->batch images of
 * [3,32,32] and labels, soft targets [B, classes] when given. */
static int check_batch(const struct run *r, const struct akt_gen_batch *b, struct akt_error *e)
{
    const struct akt_tensor *x = b->x;
    int B = r->host.batch, C = r->host.num_classes;
    char where[96];
    snprintf(where, sizeof where, "generator %s", r->gen->name);
    if (!x || x->ndim != 4 || x->shape[0] != B || x->shape[1] != 3 || x->shape[2] != 32 ||
        x->shape[3] != 32)
        return akt_error_set(e, AKT_ESHAPE, where, "sample() must return x of shape "
                             "[%d,3,32,32] (h->batch images)", B);
    if (!b->labels)
        return akt_error_set(e, AKT_EINVAL, where, "sample() returned no labels");
    if (b->target && (b->target->ndim != 2 || b->target->shape[0] != B ||
                      b->target->shape[1] != C))
        return akt_error_set(e, AKT_ESHAPE, where, "soft targets must be [%d,%d]", B, C);
    return 0;
}

static int check_finite(const struct akt_tensor *loss, const char *what, int epoch, int iter,
                        struct akt_error *e)
{
    if (isfinite(loss->data[0]))
        return 0;
    char where[64];
    snprintf(where, sizeof where, "epoch %d iteration %d", epoch, iter);
    return akt_error_set(e, AKT_ENUMERIC, where, "%s is %s; stopping (epochs so far are saved)",
                         what, isnan(loss->data[0]) ? "NaN" : "infinite");
}

int akt__open_run(struct run *r, const struct akt_registry *reg, struct akt_error *e)
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
    char where[160];
    r->gen_self = r->gen->create(&r->host, &c->gen_params, e);
    if (!r->gen_self) {
        snprintf(where, sizeof where, "generator %s", r->gen->name);
        return akt_error_set(e, AKT_EPLUGIN, where, "create failed: %s", e ? e->what : "");
    }
    r->loss_self = r->loss->create(&r->host, &c->loss_params, e);
    if (!r->loss_self) {
        snprintf(where, sizeof where, "loss %s", r->loss->name);
        return akt_error_set(e, AKT_EPLUGIN, where, "create failed: %s", e ? e->what : "");
    }
    akt_tape_init(&r->tape, 0);
    return 0;
}

void akt__close_run(struct run *r)
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

static int write_epoch(struct akt_results *out, const char *id, struct run *r, int epoch,
                       const struct akt_epoch_report *rep, float lr_s, float lr_g,
                       struct akt_error *e)
{
    if (!out)
        return 0;
    struct { const char *name; double v; } m[] = {
        {"top1", rep->top1},         {"top5", rep->top5},       {"loss_g", rep->loss_g},
        {"loss_q", rep->loss_q},     {"grad_norm", rep->grad_norm}, {"lr_student", lr_s},
        {"lr_generator", lr_g},      {"time_s", rep->seconds},
    };
    int rc;
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++)
        if ((rc = akt_results_append(out, id, m[i].name, epoch, &m[i].v, 1, e)))
            return rc;
    for (int i = 0; i < r->n_metrics; i++) {
        double v = r->metric_count[i] ? r->metric_sum[i] / r->metric_count[i] : 0;
        if ((rc = akt_results_append(out, id, r->metric_name[i], epoch, &v, 1, e)))
            return rc;
    }
    const int na = r->student.n_acts;
    double *ranges = malloc(2 * (size_t)na * sizeof *ranges);
    AKT_ASSERT(ranges);
    for (int i = 0; i < na; i++) {
        ranges[i] = r->student.act[i].lo;
        ranges[na + i] = r->student.act[i].hi;
    }
    rc = akt_results_append(out, id, "act_range", epoch, ranges, 2 * na, e);
    free(ranges);
    if (rc)
        return rc;
    return akt_results_flush(out, e);
}

/* ---------------------------------------------------------- checkpoint ---
 * Everything the next epoch depends on: student weights and momentum, the
 * generator's flat state (parameters + Adam moments), the RNG stream and the
 * range trackers. Two slots alternate, and the attributes checkpoint_slot and
 * checkpoint_epoch (= completed epochs) are written last, after a flush, so a
 * kill at any moment leaves one complete checkpoint behind. */
#define RANGE_FIELDS 5

/* The generator's flat state, or none (n = 0) when it has nothing to keep. */
static float *generator_state(struct run *r, int64_t *n)
{
    *n = 0;
    return r->gen->ops.gen.state ? r->gen->ops.gen.state(r->gen_self, n) : NULL;
}

static int save_checkpoint(struct akt_results *out, const char *id, struct run *r,
                           int epochs_done, struct akt_error *e)
{
    int slot = epochs_done % 2, rc;
    char grp[32];
    snprintf(grp, sizeof grp, "checkpoint/slot%d", slot);
    const struct akt_resnet *n = &r->student.net;
    int nv = (int)n->n_values;
    if ((rc = akt_results_write_tensor(out, id, grp, "student_values", n->values, 1, &nv, e)) ||
        (rc = akt_results_write_tensor(out, id, grp, "student_momentum", r->student.momentum, 1,
                                       &nv, e)))
        return rc;
    int64_t gn = 0;
    float *gs = generator_state(r, &gn);
    int gni = (int)gn;
    if ((rc = akt_results_write_tensor(out, id, grp, "generator_state", gs, 1, &gni, e)))
        return rc;
    int rng[8];
    memcpy(rng, r->rng.s, sizeof rng);
    if ((rc = akt_results_write_ints(out, id, grp, "rng_state", rng, 8, e)))
        return rc;
    const int na = r->student.n_acts;
    float *ranges = malloc((size_t)na * RANGE_FIELDS * sizeof *ranges);
    int *updates = malloc((size_t)na * sizeof *updates);
    AKT_ASSERT(ranges && updates);
    for (int i = 0; i < na; i++) {
        const struct akt_range *a = &r->student.act[i];
        float *f = ranges + i * RANGE_FIELDS;
        f[0] = a->lo, f[1] = a->hi, f[2] = a->raw_lo, f[3] = a->raw_hi, f[4] = a->c;
        updates[i] = (int)a->updates;
    }
    int rs[2] = {na, RANGE_FIELDS};
    rc = akt_results_write_tensor(out, id, grp, "act_ranges", ranges, 2, rs, e);
    if (!rc)
        rc = akt_results_write_ints(out, id, grp, "act_updates", updates, na, e);
    free(ranges);
    free(updates);
    if (rc ||
        (rc = akt_results_flush(out, e)) ||
        (rc = akt_results_set_attr(out, id, "checkpoint_slot", slot, e)) ||
        (rc = akt_results_set_attr(out, id, "checkpoint_epoch", epochs_done, e)))
        return rc;
    return akt_results_flush(out, e);
}

int akt__load_checkpoint(struct akt_results *out, const char *id, struct run *r, int slot,
                         struct akt_error *e)
{
    char grp[32];
    snprintf(grp, sizeof grp, "checkpoint/slot%d", slot);
    struct akt_resnet *n = &r->student.net;
    int rc;
    if ((rc = akt_results_read_tensor(out, id, grp, "student_values", n->values, n->n_values, e)) ||
        (rc = akt_results_read_tensor(out, id, grp, "student_momentum", r->student.momentum,
                                      n->n_values, e)))
        return rc;
    int64_t gn = 0;
    float *gs = generator_state(r, &gn);
    if ((rc = akt_results_read_tensor(out, id, grp, "generator_state", gs, gn, e)))
        return rc;
    int rng[8];
    if ((rc = akt_results_read_ints(out, id, grp, "rng_state", rng, 8, e)))
        return rc;
    memcpy(r->rng.s, rng, sizeof rng);
    const int na = r->student.n_acts;
    float *ranges = malloc((size_t)na * RANGE_FIELDS * sizeof *ranges);
    int *updates = malloc((size_t)na * sizeof *updates);
    AKT_ASSERT(ranges && updates);
    rc = akt_results_read_tensor(out, id, grp, "act_ranges", ranges, (int64_t)na * RANGE_FIELDS,
                                 e);
    if (!rc)
        rc = akt_results_read_ints(out, id, grp, "act_updates", updates, na, e);
    for (int i = 0; !rc && i < na; i++) {
        struct akt_range *a = &r->student.act[i];
        const float *f = ranges + i * RANGE_FIELDS;
        a->lo = f[0], a->hi = f[1], a->raw_lo = f[2], a->raw_hi = f[3], a->c = f[4];
        a->updates = updates[i];
    }
    free(ranges);
    free(updates);
    return rc;
}

/* Opens the run in the results file. A finished run is reported and skipped
 * (*done = 1); an unfinished one resumes from its checkpoint (*start = the
 * first epoch to run) after its metrics are cut back to that epoch. */
static int prepare_results(struct akt_results *out, struct run *r, struct akt_run_result *res,
                           int *start, int *done, struct akt_error *e)
{
    const struct akt_run_config *c = r->c;
    char *yaml = akt_run_config_yaml(c, r->gen, r->loss);
    int rc = 0;
    *start = 0;
    *done = 0;
    if (akt_results_has_run(out, c->id)) {
        size_t cap = strlen(yaml) + 4096;
        char *stored = malloc(cap), status[32] = "";
        AKT_ASSERT(stored);
        akt_results_get_config(out, c->id, stored, cap);
        akt_results_get_status(out, c->id, status, sizeof status);
        if (strcmp(stored, yaml)) {
            rc = akt_error_set(e, AKT_EINVAL, c->out_path,
                               "run '%s' already exists with a different configuration; choose "
                               "another id or results file", c->id);
        } else if (!strcmp(status, "done")) {
            *done = 1;
            akt_results_get_attr(out, c->id, "best_top1", &res->best_top1);
            akt_results_get_attr(out, c->id, "final_top1", &res->final_top1);
            akt_results_get_attr(out, c->id, "top1_fp", &res->top1_fp);
            akt_results_get_attr(out, c->id, "top1_before", &res->top1_before);
            double be = -1;
            akt_results_get_attr(out, c->id, "best_epoch", &be);
            res->best_epoch = (int)be;
            res->epochs_done = c->epochs;
        } else {
            double ck = 0, slot = 0;
            if (akt_results_get_attr(out, c->id, "checkpoint_epoch", &ck) == 0 &&
                akt_results_get_attr(out, c->id, "checkpoint_slot", &slot) == 0 && ck > 0)
                rc = akt__load_checkpoint(out, c->id, r, (int)slot, e);
            else
                ck = 0;
            if (!rc)
                rc = akt_results_truncate_steps(out, c->id, (int64_t)ck, e);
            *start = (int)ck;
            /* best and before-distillation figures of the epochs kept */
            int64_t rows = akt_results_rows(out, c->id, "top1");
            if (!rc && rows > 0) {
                double *v = malloc(rows * sizeof *v);
                int64_t *st = malloc(rows * sizeof *st);
                AKT_ASSERT(v && st);
                rc = akt_results_read_metric(out, c->id, "top1", st, v, rows, 1, e);
                for (int64_t i = 0; !rc && i < rows; i++) {
                    if (v[i] > res->best_top1) {
                        res->best_top1 = v[i];
                        res->best_epoch = (int)st[i];
                    }
                    res->final_top1 = v[i];
                    if (st[i] == c->warmup_epochs - 1 || (c->warmup_epochs <= 0 && st[i] == 0))
                        res->top1_before = v[i];
                }
                free(v);
                free(st);
            }
            res->epochs_done = *start;
        }
        free(stored);
    }
    if (!rc && !*done)
        rc = akt_results_run(out, c->id, yaml, e);
    if (!rc && !*done)
        rc = akt_results_set_status(out, c->id, "running", "", e);
    /* the architecture, read off the teacher: what `akt report` groups by */
    if (!rc && !*done)
        rc = akt_results_set_attr(out, c->id, "depth", r->teacher.depth, e);
    free(yaml);
    return rc;
}

/* ------------------------------------------------------ final tensors ---
 * What a researcher inspects after a run (results/README.md): the integer
 * weights with their per-channel scale and zero point (SPEC 2: w = (q + zp) /
 * scale), the activation ranges, a batch of generated images with labels, and
 * the teacher's and student's attention maps (AKT's spatial and channel maps)
 * on that batch. */
#define FINAL_IMAGES 16

static int write_quantized_weights(struct akt_results *out, const char *id, struct run *r,
                                   struct akt_error *e)
{
    const struct akt_resnet *n = &r->student.net;
    int rc = 0;
    for (int i = 0; i < n->n_params && !rc; i++) {
        const struct akt_param *p = &n->params[i];
        int is_weight = p->kind == AKT_PARAM_WEIGHT && (p->ndim == 4 || p->ndim == 2);
        if (!is_weight)
            continue;
        int bits = akt_student_weight_bits(&r->student, i), rows = p->shape[0];
        int64_t cols = p->n / rows;
        int *q = malloc(p->n * sizeof *q);
        float *scale = malloc(rows * sizeof *scale), *zp = malloc(rows * sizeof *zp);
        AKT_ASSERT(q && scale && zp);
        const float *w = n->values + p->offset;
        for (int c = 0; c < rows; c++) {
            /* the fake quantizer's own parameters (SPEC 2), row = output channel */
            const float *row = w + c * cols;
            float lo = row[0], hi = row[0];
            for (int64_t k = 1; k < cols; k++) {
                lo = row[k] < lo ? row[k] : lo;
                hi = row[k] > hi ? row[k] : hi;
            }
            struct akt_qparams qp = akt_quant_params(lo, hi, bits);
            scale[c] = qp.scale;
            zp[c] = qp.zero_point;
            for (int64_t k = 0; k < cols; k++)
                q[c * cols + k] = (int)akt_quant_level(row[k], qp);
        }
        char grp[96];
        snprintf(grp, sizeof grp, "tensors/quant/%s", p->name);
        rc = akt_results_write_ints(out, id, grp, "q", q, (int)p->n, e);
        if (!rc)
            rc = akt_results_write_tensor(out, id, grp, "scale", scale, 1, &rows, e);
        if (!rc)
            rc = akt_results_write_tensor(out, id, grp, "zero_point", zp, 1, &rows, e);
        if (!rc)
            rc = akt_results_write_ints(out, id, grp, "shape", p->shape, p->ndim, e);
        if (!rc)
            rc = akt_results_write_ints(out, id, grp, "bits", &bits, 1, e);
        free(q);
        free(scale);
        free(zp);
    }
    return rc;
}

static int write_final_tensors(struct akt_results *out, const char *id, struct run *r,
                               struct akt_error *e)
{
    int rc = write_quantized_weights(out, id, r, e);
    if (rc)
        return rc;
    const int na = r->student.n_acts;
    float *ranges = malloc(2 * (size_t)na * sizeof *ranges);
    AKT_ASSERT(ranges);
    for (int i = 0; i < na; i++) {
        ranges[2 * i] = r->student.act[i].lo;
        ranges[2 * i + 1] = r->student.act[i].hi;
    }
    rc = akt_results_write_tensor(out, id, "tensors", "act_range", ranges, 2, (int[]){na, 2}, e);
    free(ranges);
    if (rc)
        return rc;
    struct akt_tape *t = &r->tape;
    akt_tape_reset(t);
    int rec = t->recording;
    t->recording = 0;
    /* the one batch size of this call, for the generator and the networks */
    const int batch = r->host.batch;
    r->host.batch = FINAL_IMAGES;
    struct akt_gen_batch gb = {.size = sizeof gb};
    if ((rc = r->gen->ops.gen.sample(r->gen_self, &r->host, t, &gb, e)) ||
        (rc = check_batch(r, &gb, e)))
        goto out;
    if ((rc = akt_results_write_tensor(out, id, "tensors", "images", gb.x->data, 4,
                                       gb.x->shape, e)) ||
        (rc = akt_results_write_ints(out, id, "tensors", "labels", gb.labels, FINAL_IMAGES, e)))
        goto out;
    int tracking = r->student.tracking;
    r->student.tracking = 0;
    struct akt_resnet_out to, so;
    host_teacher_forward(&r->host, t, gb.x, &to);
    host_student_forward(&r->host, t, gb.x, &so);
    r->student.tracking = tracking;
    for (int i = 0; i < to.n_features && !rc; i++) {
        struct akt_tensor *tsp, *tch, *ssp, *sch;
        akt_attention_maps(t, to.features[i], &tsp, &tch);
        akt_attention_maps(t, so.features[i], &ssp, &sch);
        /* spatial maps are stored [B, H*W] (results/README.md) */
        int bhw[2] = {tsp->shape[0], tsp->shape[1] * tsp->shape[2]};
        tsp = akt_view(t, tsp, 2, bhw);
        ssp = akt_view(t, ssp, 2, bhw);
        char name[32];
        struct { const char *who; struct akt_tensor *m; } maps[4] = {
            {"teacher_spatial", tsp}, {"teacher_channel", tch},
            {"student_spatial", ssp}, {"student_channel", sch}};
        for (int k = 0; k < 4 && !rc; k++) {
            snprintf(name, sizeof name, "%s_F%d", maps[k].who, i + 1);
            rc = akt_results_write_tensor(out, id, "tensors/attention", name, maps[k].m->data,
                                          maps[k].m->ndim, maps[k].m->shape, e);
        }
    }
out:
    t->recording = rec;
    r->host.batch = batch;
    return rc;
}

int akt_run_train(const struct akt_run_config *c, const struct akt_registry *reg,
                  const struct akt_run_callbacks *cb, struct akt_run_result *res,
                  struct akt_error *e)
{
    struct run *r = calloc(1, sizeof *r);
    AKT_ASSERT(r);
    r->c = c;
    memset(res, 0, sizeof *res);
    res->best_epoch = -1;
    struct akt_results *out = NULL;
    akt_threads_set(c->threads);
    int rc = akt__open_run(r, reg, e);
    if (rc)
        goto done;
    res->best_top1 = -1;
    int start = 0, finished = 0;
    if (c->out_path[0]) {
        if ((rc = akt_results_open(&out, c->out_path, e)) ||
            (rc = prepare_results(out, r, res, &start, &finished, e)))
            goto done;
        if (finished) {
            akt_results_close(out, e);
            out = NULL; /* leave the finished run as it is */
            goto done;
        }
    }
    {
        struct akt_eval_result er;
        if ((rc = akt_evaluate(&r->teacher, NULL, &r->data, c->eval_batch, NULL, NULL, &er, e)))
            goto done;
        res->top1_fp = er.top1;
    }
    float lr_g0 = c->lr_generator > 0 ? c->lr_generator : r->gen->ops.gen.lr;

    for (int epoch = start; epoch < c->epochs; epoch++) {
        double t0 = akt_time_ms();
        float lr_s = akt_lr_at(c->lr_student, epoch, c->milestones, c->n_milestones, c->gamma);
        float lr_g = akt_lr_at(lr_g0, epoch, c->milestones, c->n_milestones, c->gamma);
        r->student.tracking = epoch < c->tracker_epochs;
        r->n_metrics = 0;
        memset(r->metric_sum, 0, sizeof r->metric_sum);
        memset(r->metric_count, 0, sizeof r->metric_count);
        double sum_g = 0, sum_q = 0, sum_norm = 0;

        for (int it = 0; it < c->iters; it++) {
            struct akt_tape *t = &r->tape;
            akt_tape_reset(t);
            r->host.epoch = epoch;
            r->host.iter = it;

            /* 1. generator step: x = G(z, y) through the frozen teacher
             *    (and the student for AdaDFQ); Adam on G */
            struct akt_gen_batch gb = {.size = sizeof gb};
            if ((rc = r->gen->ops.gen.sample(r->gen_self, &r->host, t, &gb, e)))
                goto done;
            if ((rc = check_batch(r, &gb, e)))
                goto done;
            struct akt_resnet_out tout, sout_g, *sg = NULL;
            host_teacher_forward(&r->host, t, gb.x, &tout);
            double loss_g = 0;
            if (r->gen->ops.gen.loss) {
                if (r->gen->ops.gen.needs_student) {
                    host_student_forward(&r->host, t, gb.x, &sout_g);
                    sg = &sout_g;
                }
                struct akt_tensor *lg =
                    r->gen->ops.gen.loss(r->gen_self, &r->host, t, &gb, &tout, sg, e);
                if (!lg) {
                    rc = e ? e->code : AKT_EPLUGIN;
                    goto done;
                }
                if ((rc = check_finite(lg, "generator loss", epoch, it, e)))
                    goto done;
                if (r->gen->ops.gen.update) {
                    akt_backward(t, lg);
                    r->gen->ops.gen.update(r->gen_self, &r->host, lr_g);
                }
                loss_g = lg->data[0];
            }

            /* 2. student step on x.detach() against the detached teacher
             *    outputs of the same batch (or, when the loss prepares
             *    its images, on those, with the teacher run on them) */
            akt_tape_clear_records(t);
            struct akt_resnet_out tdet, sout;
            struct akt_tensor *xs;
            if ((rc = akt__student_batch(r, t, gb.x, &tout, &xs, &tdet, e)))
                goto done;
            struct akt_resnet_opts so = {.param_grads = 1, .quant = &r->student.hooks};
            akt_resnet_forward(&r->student.net, t, xs, &so, &sout);
            struct akt_loss_input li = {
                .size = sizeof li,
                .teacher = &tdet,
                .student = &sout,
                .labels = gb.labels,
                .target = gb.target,
                .generator_logit_loss = r->gen->ops.gen.logit_loss,
            };
            struct akt_tensor *lq = r->loss->ops.loss.compute(r->loss_self, &r->host, t, &li, e);
            if (!lq) {
                rc = e ? e->code : AKT_EPLUGIN;
                goto done;
            }
            if ((rc = check_finite(lq, "student loss", epoch, it, e)))
                goto done;
            memset(r->student.net.grads, 0, (size_t)r->student.net.n_values * sizeof(float));
            akt_backward(t, lq);
            double gnorm = student_grad_norm(&r->student);
            if (epoch >= c->warmup_epochs)
                student_sgd(&r->student, lr_s, c);

            sum_g += loss_g;
            sum_q += lq->data[0];
            sum_norm += gnorm;
            if (cb && cb->iteration)
                cb->iteration(epoch, it, c->iters, loss_g, lq->data[0], cb->user);
            if (cb && cb->stop && *cb->stop) {
                rc = akt_error_set(e, AKT_EINTR, "run", "interrupted in epoch %d", epoch);
                goto done;
            }
        }

        /* 3. evaluate on the held-out set; log the epoch */
        struct akt_epoch_report rep = {.epoch = epoch, .epochs = c->epochs};
        if ((rc = evaluate_student(r, &rep.top1, &rep.top5, e)))
            goto done;
        rep.loss_g = sum_g / c->iters;
        rep.loss_q = sum_q / c->iters;
        rep.grad_norm = sum_norm / c->iters;
        rep.seconds = (akt_time_ms() - t0) / 1e3;
        if (epoch == c->warmup_epochs - 1 || (c->warmup_epochs <= 0 && epoch == 0))
            res->top1_before = rep.top1; /* weights untouched so far */
        if (rep.top1 > res->best_top1) {
            res->best_top1 = rep.top1;
            res->best_epoch = epoch;
        }
        res->final_top1 = rep.top1;
        res->epochs_done = epoch + 1;
        if ((rc = write_epoch(out, c->id, r, epoch, &rep, lr_s, lr_g, e)))
            goto done;
        if (out && (rc = save_checkpoint(out, c->id, r, epoch + 1, e)))
            goto done;
        if (cb && cb->epoch)
            cb->epoch(&rep, cb->user);
    }
    if (out && (rc = write_final_tensors(out, c->id, r, e)))
        goto done;

done:
    if (out) {
        struct akt_error e2 = {0};
        char msg[1200] = "";
        if (rc && e)
            akt_error_format(e, msg, sizeof msg);
        const char *status = !rc ? "done" : rc == AKT_EINTR ? "interrupted" : "failed";
        if (!rc) {
            akt_results_set_attr(out, c->id, "best_top1", res->best_top1, &e2);
            akt_results_set_attr(out, c->id, "final_top1", res->final_top1, &e2);
            akt_results_set_attr(out, c->id, "top1_fp", res->top1_fp, &e2);
            akt_results_set_attr(out, c->id, "top1_before", res->top1_before, &e2);
            akt_results_set_attr(out, c->id, "best_epoch", res->best_epoch, &e2);
        }
        akt_results_set_status(out, c->id, status, msg, &e2);
        akt_results_close(out, &e2);
    }
    akt__close_run(r);
    free(r);
    return rc;
}
