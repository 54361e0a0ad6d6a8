/* One zero-shot quantization run (SPEC 5). Read akt_run_train's epoch loop
 * top to bottom: it is the whole algorithm of a training step. */
#include "akt/run.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Teacher outputs as constants for the student's loss. */
struct akt_resnet_out akt__detach_out(struct akt_tape *t, const struct akt_resnet_out *o)
{
    struct akt_resnet_out d = *o;
    d.logits = akt_detach(t, o->logits);
    for (int i = 0; i < AKT_RESNET_BLOCKS; i++)
        d.features[i] = o->features[i] ? akt_detach(t, o->features[i]) : NULL;
    for (int i = 0; i < o->n_bn; i++)
        d.bn_inputs[i] = akt_detach(t, o->bn_inputs[i]);
    return d;
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
    double ranges[2 * AKT_RESNET_ACTS];
    for (int i = 0; i < AKT_RESNET_ACTS; i++) {
        ranges[i] = r->student.act[i].lo;
        ranges[AKT_RESNET_ACTS + i] = r->student.act[i].hi;
    }
    return akt_results_append(out, id, "act_range", epoch, ranges, 2 * AKT_RESNET_ACTS, e);
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
        float qlo = -(float)(1 << (bits - 1)), qhi = (float)((1 << (bits - 1)) - 1);
        for (int c = 0; c < rows; c++) {
            const float *row = w + c * cols;
            float lo = row[0], hi = row[0];
            for (int64_t k = 1; k < cols; k++) {
                lo = row[k] < lo ? row[k] : lo;
                hi = row[k] > hi ? row[k] : hi;
            }
            float range = hi - lo > 1e-8f ? hi - lo : 1e-8f;
            float s = (float)((1 << bits) - 1) / range;
            float z = rintf(s * lo) + (float)(1 << (bits - 1));
            scale[c] = s;
            zp[c] = z;
            for (int64_t k = 0; k < cols; k++) {
                float v = rintf(s * row[k] - z);
                q[c * cols + k] = (int)(v < qlo ? qlo : v > qhi ? qhi : v);
            }
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

/* Spatial map (mean_c F^2, L2-normalised) and channel map (mean_p F^2,
 * softmax) of one body output, as the AKT loss refines them. */
static void attention_maps(struct akt_tape *t, struct akt_tensor *f, struct akt_tensor **sp,
                           struct akt_tensor **ch)
{
    int B = f->shape[0], C = f->shape[1], HW = f->shape[2] * f->shape[3];
    struct akt_tensor *sq = akt_square(t, akt_view(t, f, 3, (int[]){B, C, HW}));
    *sp = akt_l2_normalize(t, akt_mean(t, sq, 1, 2), 1, 2, 1e-12f);
    *ch = akt_softmax(t, akt_mean(t, sq, 2, 3), 1, 2, 1.0f);
}

static int write_final_tensors(struct akt_results *out, const char *id, struct run *r,
                               struct akt_error *e)
{
    int rc = write_quantized_weights(out, id, r, e);
    if (rc)
        return rc;
    float ranges[AKT_RESNET_ACTS * 2];
    for (int i = 0; i < AKT_RESNET_ACTS; i++) {
        ranges[2 * i] = r->student.act[i].lo;
        ranges[2 * i + 1] = r->student.act[i].hi;
    }
    if ((rc = akt_results_write_tensor(out, id, "tensors", "act_range", ranges, 2,
                                       (int[]){AKT_RESNET_ACTS, 2}, e)))
        return rc;
    struct akt_tape *t = &r->tape;
    akt_tape_reset(t);
    int rec = t->recording;
    t->recording = 0;
    struct akt_gen_batch gb = {0};
    if ((rc = r->gen->ops.gen.sample(r->gen_self, &r->host, t, FINAL_IMAGES, &gb, e)))
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
    for (int i = 0; i < AKT_RESNET_BLOCKS && !rc; i++) {
        struct akt_tensor *tsp, *tch, *ssp, *sch;
        attention_maps(t, to.features[i], &tsp, &tch);
        attention_maps(t, so.features[i], &ssp, &sch);
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
    return rc;
}

/* The epoch's metric rows and the checkpoint after it, in one atomic
 * replacement of the run file. */
static int save_epoch(struct akt_run_store *st, struct run *r, int epoch,
                      const struct akt_epoch_report *rep, float lr_s, float lr_g,
                      struct akt_error *e)
{
    struct akt_results *h = NULL;
    int rc = akt__store_edit(st, &h, e);
    if (!rc)
        rc = write_epoch(h, r->c->id, r, epoch, rep, lr_s, lr_g, e);
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
    {
        struct akt_eval_result er;
        if ((rc = akt_evaluate(&r->teacher, NULL, &r->data, c->eval_batch, NULL, NULL, &er, e))) {
            name_network(e, "teacher", c->teacher_path);
            goto done;
        }
        res->top1_fp = er.top1;
    }
    float lr_g0 = c->lr_generator > 0 ? c->lr_generator : r->gen->ops.gen.lr;
    const int B = c->batch;

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
            struct akt_gen_batch gb = {0};
            if ((rc = r->gen->ops.gen.sample(r->gen_self, &r->host, t, B, &gb, e)))
                goto done;
            struct akt_resnet_out tout, sout_g, *sg = NULL;
            host_teacher_forward(&r->host, t, gb.x, &tout);
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
            akt_backward(t, lg);
            r->gen->ops.gen.update(r->gen_self, &r->host, lr_g);

            /* 2. student step on x.detach() against the detached teacher
             *    outputs of the same batch */
            akt_tape_clear_records(t);
            struct akt_resnet_out tdet = akt__detach_out(t, &tout), sout;
            struct akt_resnet_opts so = {.param_grads = 1, .quant = &r->student.hooks};
            akt_resnet_forward(&r->student.net, t, akt_detach(t, gb.x), &so, &sout);
            struct akt_loss_input li = {
                .teacher = &tdet,
                .student = &sout,
                .labels = gb.labels,
                .target = gb.target,
                .generator_logit_loss = r->gen->ops.gen.logit_loss,
                .batch = B,
                .num_classes = r->teacher.num_classes,
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

            sum_g += lg->data[0];
            sum_q += lq->data[0];
            sum_norm += gnorm;
            if (cb && cb->iteration)
                cb->iteration(epoch, it, c->iters, lg->data[0], lq->data[0], cb->user);
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
        if (to_file && (rc = save_epoch(&st, r, epoch, &rep, lr_s, lr_g, e)))
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
