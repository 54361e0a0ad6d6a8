/* One zero-shot quantization run (SPEC 5). akt_run_train's epoch loop,
 * read top to bottom, is the whole algorithm: per iteration a generator
 * step and a student step, per epoch an evaluation and a save.
 *
 * The rest of the run lives beside this file (internal.h): its state and
 * the host the plugins see (host.c), checkpoints, resume and the results
 * file (checkpoint.c), the final tensors (tensors.c). */
#include "akt/run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/eval.h"
#include "akt/optim.h"
#include "internal.h"

/* A non-finite loss stops the run where it happened. */
static int check_finite(const struct akt_run *r, double loss, const char *what,
                        struct akt_error *e)
{
    if (isfinite(loss))
        return 0;
    char where[64];
    snprintf(where, sizeof where, "epoch %d iteration %d", r->host.epoch, r->host.iter);
    return akt_error_set(e, AKT_ENUMERIC, where, "%s is %s; stopping (epochs so far are saved)",
                         what, isnan(loss) ? "NaN" : "infinite");
}

/* 1. Generator step: x = G(z, y) (gb) through the frozen teacher (tout) and,
 * for a generator that needs it (AdaDFQ), the student; the generator's loss
 * and its own update (Adam) at lr_g. */
static int generator_step(struct akt_run *r, struct akt_tape *t, float lr_g,
                          struct akt_gen_batch *gb, struct akt_resnet_out *tout, double *loss_g,
                          struct akt_error *e)
{
    const struct akt_generator_ops *g = &r->gen->ops.gen;
    int rc = akt__sample(r, t, gb, e);
    if (rc)
        return rc;
    akt__teacher_forward(r, t, gb->x, tout);
    *loss_g = 0;
    if (!g->loss)
        return 0;
    struct akt_resnet_out sout, *s = NULL;
    if (g->needs_student) {
        akt__student_forward(r, t, gb->x, &sout);
        s = &sout;
    }
    struct akt_tensor *lg = g->loss(r->gen_self, &r->host, t, gb, tout, s, e);
    if (!lg)
        return akt__plugin_failed(e, "generator", r->gen->name, "loss");
    if ((rc = check_finite(r, lg->data[0], "generator loss", e)))
        return rc;
    if (g->update) {
        akt_backward(t, lg);
        g->update(r->gen_self, &r->host, lr_g);
    }
    *loss_g = lg->data[0];
    return 0;
}

/* 2. Student step, in two parts the Hessian analysis shares: its input
 * (x.detach() against the detached teacher outputs of the same batch or,
 * when the loss prepares its images, those with the teacher run on them),
 * then the student's loss and gradient on it. */
int akt__student_input(struct akt_run *r, struct akt_tape *t, const struct akt_gen_batch *gb,
                       const struct akt_resnet_out *tout, struct akt__student_in *in,
                       struct akt_error *e)
{
    struct akt_tensor *x = akt_detach(t, gb->x);
    in->labels = gb->labels;
    in->target = gb->target;
    if (!r->loss->ops.loss.prepare) {
        in->x = x;
        in->teacher = akt__detach_out(t, tout);
        return 0;
    }
    char where[96];
    snprintf(where, sizeof where, "loss %s", r->loss->name);
    struct akt_tensor *p = r->loss->ops.loss.prepare(r->loss_self, &r->host, t, x, e);
    if (!p)
        return akt__plugin_failed(e, "loss", r->loss->name, "prepare");
    if (!akt_tensor_same_shape(p, x))
        return akt_error_set(e, AKT_ESHAPE, where, "prepare() must return images of the shape "
                             "of its input [%d,3,32,32]", x->shape[0]);
    /* the filtered images are constants of the student step */
    in->x = akt_detach(t, p);
    struct akt_resnet_out to;
    akt__teacher_forward(r, t, in->x, &to);
    in->teacher = akt__detach_out(t, &to);
    return 0;
}

int akt__student_step(struct akt_run *r, struct akt_tape *t, const struct akt__student_in *in,
                      double *loss, struct akt_error *e)
{
    struct akt_resnet *net = &r->student.net;
    struct akt_resnet_out sout;
    struct akt_resnet_opts so = {.param_grads = 1, .quant = &r->student.hooks};
    akt_resnet_forward(net, t, in->x, &so, &sout);
    struct akt_loss_input li = {
        .size = sizeof li,
        .teacher = &in->teacher,
        .student = &sout,
        .labels = in->labels,
        .target = in->target,
        .generator_logit_loss = r->gen->ops.gen.logit_loss,
    };
    struct akt_tensor *lq = r->loss->ops.loss.compute(r->loss_self, &r->host, t, &li, e);
    if (!lq)
        return akt__plugin_failed(e, "loss", r->loss->name, "compute");
    *loss = lq->data[0];
    if (!isfinite(*loss))
        return 0;
    memset(net->grads, 0, (size_t)net->n_values * sizeof(float));
    akt_backward(t, lq);
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

/* 3. The held-out evaluation; an error is put under the network's name
 * ("student after epoch 3: batch 2: ..."). */
static int evaluate(struct akt_run *r, const struct akt_resnet *net,
                    const struct akt_resnet_opts *o, const char *name,
                    struct akt_eval_result *er, struct akt_error *e)
{
    int tracking = r->student.tracking;
    r->student.tracking = 0; /* evaluation never moves the ranges */
    int rc = akt_evaluate(net, o, &r->data, r->c->eval_batch, NULL, NULL, er, e);
    r->student.tracking = tracking;
    return rc ? akt_error_wrap(e, 0, name, NULL) : 0;
}

int akt_run_train(const struct akt_run_config *c, const struct akt_registry *reg,
                  const struct akt_run_callbacks *cb, struct akt_run_result *res,
                  struct akt_error *e)
{
    struct akt_run *r = calloc(1, sizeof *r);
    AKT_ASSERT(r);
    r->c = c;
    r->cb = cb;
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
    struct akt_eval_result er;
    char name[1100];
    snprintf(name, sizeof name, "teacher %s", c->teacher_path);
    if ((rc = evaluate(r, &r->teacher, NULL, name, &er, e)))
        goto done;
    res->top1_fp = er.top1;
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
            /* 1. the generator learns from the teacher (and the student) */
            struct akt_gen_batch gb;
            struct akt_resnet_out tout;
            double loss_g, loss_q;
            if ((rc = generator_step(r, t, lr_g, &gb, &tout, &loss_g, e)))
                goto done;
            /* 2. the student learns from the teacher on the batch */
            akt_tape_clear_records(t);
            struct akt__student_in in;
            if ((rc = akt__student_input(r, t, &gb, &tout, &in, e)) ||
                (rc = akt__student_step(r, t, &in, &loss_q, e)) ||
                (rc = check_finite(r, loss_q, "student loss", e)) ||
                (rc = akt__check_metrics(r, e)))
                goto done;
            double gnorm = student_grad_norm(&r->student);
            if (epoch >= c->warmup_epochs)
                student_sgd(&r->student, lr_s, c);

            sum_g += loss_g;
            sum_q += loss_q;
            sum_norm += gnorm;
            if (cb && cb->iteration)
                cb->iteration(epoch, it, c->iters, loss_g, loss_q, cb->user);
            if (cb && cb->stop && *cb->stop) {
                rc = akt_error_set(e, AKT_EINTR, "run", "interrupted in epoch %d", epoch);
                goto done;
            }
        }

        /* 3. evaluate on the held-out set; save and report the epoch */
        struct akt_epoch_report rep = {.epoch = epoch, .epochs = c->epochs};
        struct akt_resnet_opts qo = {.quant = &r->student.hooks};
        snprintf(name, sizeof name, "student after epoch %d", epoch);
        if ((rc = evaluate(r, &r->student.net, &qo, name, &er, e)))
            goto done;
        rep.top1 = er.top1;
        rep.top5 = er.top5;
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
        if (to_file && (rc = akt__store_epoch(&st, r, &rep, lr_s, lr_g, res->best_epoch == epoch, e)))
            goto done;
        if (cb && cb->epoch)
            cb->epoch(&rep, cb->user);
    }
    if (to_file)
        rc = akt__store_done(&st, r, res, e);

done:
    if (st.open) /* stopped while training: the epochs so far are kept */
        akt__store_stopped(&st, c->id, rc, res, e);
    akt__store_close(&st);
    akt__close_run(r);
    free(r);
    return rc;
}
