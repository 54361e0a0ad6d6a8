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
 * file (akt__open_run, akt__close_run, akt__detach_out; checkpoint.c:
 * checkpoints and the run file) are declared in internal.h. */
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

/* Puts the network's name before an evaluation error's where ("batch 3"). */
static void name_network(struct akt_error *e, const char *net, const char *detail)
{
    if (!e)
        return;
    char w[sizeof e->where];
    snprintf(w, sizeof w, "%s%s%.200s: %.280s", net, *detail ? " " : "", detail, e->where);
    snprintf(e->where, sizeof e->where, "%s", w);
}

static int evaluate_student(struct run *r, int epoch, double *top1, double *top5,
                            struct akt_error *e)
{
    int tracking = r->student.tracking;
    r->student.tracking = 0; /* evaluation never moves the ranges */
    struct akt_resnet_opts o = {.quant = &r->student.hooks};
    struct akt_eval_result er;
    int rc = akt_evaluate(&r->student.net, &o, &r->data, r->c->eval_batch, NULL, NULL, &er, e);
    r->student.tracking = tracking;
    if (rc) {
        char d[32];
        snprintf(d, sizeof d, "after epoch %d", epoch);
        name_network(e, "student", d);
    }
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

/* Arena bytes per image of one training step: forward + backward through
 * the teacher and the student (twice for a generator that needs the
 * student) and the generator's activations. GEN_BYTES_PER_IMAGE is the GDFQ
 * trunk all built-in generators share (3-4 MiB measured at 32x32); a
 * generator that needs more per image checks that in its create(). */
#define GEN_BYTES_PER_IMAGE (4.0 * 1024 * 1024)

static double step_bytes_per_image(const struct run *r)
{
    double pass = akt_resnet_train_bytes(&r->teacher);
    return pass * (2 + (r->gen->ops.gen.needs_student != 0)) + GEN_BYTES_PER_IMAGE;
}

/* The batch sizes a user chose, against the memory limit, before anything
 * of that size is allocated (the tape's arena is then reserved for a step:
 * a refusal by the system is an error, not an abort). */
static int check_batch_memory(const struct run *r, struct akt_error *e)
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
 * plugin named (copied first: formatting e from its own fields overlaps). */
static int create_failed(struct akt_error *e, const char *kind, const char *name)
{
    char where[160], what[sizeof e->where + sizeof e->what + 2] = "";
    if (e)
        snprintf(what, sizeof what, "%s%s%s", e->where, e->where[0] ? ": " : "", e->what);
    snprintf(where, sizeof where, "%s %s", kind, name);
    return akt_error_set(e, AKT_EPLUGIN, where, "create failed: %s", what);
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

/* The student as trained, every state_dict key in float32, and what rebuilds
 * it without the teacher file (`akt eval --student`, `akt export`):
 * tensors/student/<key>, input_mean, input_std and the group's attributes
 * depth, num_classes, shortcut, bn_eps, wbits, abits, first_last_8bit. */
static int write_student(struct akt_results *out, const char *id, const struct run *r,
                         struct akt_error *e)
{
    const struct akt_student *st = &r->student;
    const struct akt_resnet *n = &st->net;
    const char *grp = "tensors/student";
    int rc = 0;
    for (int i = 0; i < n->n_params && !rc; i++) {
        const struct akt_param *p = &n->params[i];
        rc = akt_results_write_tensor(out, id, grp, p->name, n->values + p->offset, p->ndim,
                                      p->shape, e);
    }
    if (!rc)
        rc = akt_results_write_tensor(out, id, grp, "input_mean", n->mean, 1, (int[]){3}, e);
    if (!rc)
        rc = akt_results_write_tensor(out, id, grp, "input_std", n->std, 1, (int[]){3}, e);
    struct { const char *name; double v; } a[] = {
        {"depth", n->depth}, {"num_classes", n->num_classes}, {"bn_eps", n->bn_eps},
        {"wbits", st->wbits}, {"abits", st->abits}, {"first_last_8bit", st->first_last_8bit}};
    for (size_t i = 0; i < sizeof a / sizeof a[0] && !rc; i++)
        rc = akt_results_set_group_attr(out, id, grp, a[i].name, a[i].v, e);
    if (!rc)
        rc = akt_results_set_group_attr_str(out, id, grp, "shortcut",
                                            n->shortcut == AKT_SHORTCUT_PAD ? "pad" : "conv1x1", e);
    return rc;
}

static int write_final_tensors(struct akt_results *out, const char *id, struct run *r,
                               struct akt_error *e)
{
    int rc = write_quantized_weights(out, id, r, e);
    if (!rc)
        rc = write_student(out, id, r, e);
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

/* The epoch's metric rows and the checkpoint after it, in one atomic
 * replacement of the run file. */
static int save_epoch(struct akt_run_store *st, struct run *r, int epoch,
                      const struct akt_epoch_report *rep, float lr_s, float lr_g, int best,
                      struct akt_error *e)
{
    struct akt_results *h = NULL;
    int rc = akt__store_edit(st, &h, e);
    if (!rc)
        rc = write_epoch(h, r->c->id, r, epoch, rep, lr_s, lr_g, e);
    if (!rc && best) /* the best epoch's student, kept beside the final one */
        rc = akt__best_save(h, r->c->id, r, epoch, rep->top1, e);
    if (!rc)
        rc = akt__checkpoint_save(h, r->c->id, r, epoch + 1, e);
    if (rc) {
        akt_results_discard(h);
        return rc;
    }
    return akt__store_save(st, h, e);
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
    struct akt_run_store st = {0};
    int to_file = c->out_path[0] != 0;
    akt_threads_set(c->threads);
    int rc = akt__open_run(r, reg, e);
    if (rc)
        goto done;
    res->best_top1 = -1;
    int start = 0, finished = 0;
    if (to_file && ((rc = akt__store_open(&st, r, res, &start, &finished, e)) || finished))
        goto done; /* refused (nothing written), or finished before: reported as stored */
    if (st.note[0] && cb && cb->note)
        cb->note(st.note, cb->user);
    {
        struct akt_eval_result er;
        if ((rc = akt_evaluate(&r->teacher, NULL, &r->data, c->eval_batch, NULL, NULL, &er, e))) {
            name_network(e, "teacher", c->teacher_path);
            goto done;
        }
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
        if ((rc = evaluate_student(r, epoch, &rep.top1, &rep.top5, e)))
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
        if (to_file && (rc = save_epoch(&st, r, epoch, &rep, lr_s, lr_g,
                                        res->best_epoch == epoch, e)))
            goto done;
        if (cb && cb->epoch)
            cb->epoch(&rep, cb->user);
    }
    if (to_file) {
        struct akt_results *h = NULL;
        if ((rc = akt__store_edit(&st, &h, e)) || (rc = write_final_tensors(h, c->id, r, e))) {
            akt_results_discard(h);
            goto done;
        }
        /* status done comes with the tensors and figures, in one replacement */
        rc = akt__store_finish(&st, h, c->id, "done", "", res, e);
    }

done:
    if (st.open) { /* stopped while training: the epochs so far are kept */
        struct akt_error e2 = {0};
        char msg[1200] = "";
        if (e)
            akt_error_format(e, msg, sizeof msg);
        akt__store_finish(&st, NULL, c->id, rc == AKT_EINTR ? "interrupted" : "failed", msg, res,
                          &e2);
    }
    akt__store_close(&st);
    akt__close_run(r);
    free(r);
    return rc;
}
