/* Post-hoc analysis of a stored run (SPEC 8): the Hutchinson estimate of the
 * Hessian trace of the student's training loss, per trainable array and in
 * total, on one fixed generated batch. */
#include "akt/run.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/results.h"
#include "internal.h"

/* ---------------------------------------------------------- estimator --- */

int akt_hutchinson(akt_grad_fn grad, void *user, float *w, int64_t n, const int64_t *offset,
                   const int64_t *len, int n_blocks, int probes, double eps, struct akt_rng *rng,
                   double *trace_block, double *trace_total, struct akt_error *e)
{
    int64_t whole_off = 0, whole_len = n;
    if (n_blocks == 0) {
        offset = &whole_off;
        len = &whole_len;
        n_blocks = 1;
    }
    if (!grad || !w || n < 1 || probes < 1 || !(eps > 0) || !isfinite(eps) || !rng ||
        !trace_total || n_blocks < 0 || !offset || !len)
        return akt_error_set(e, AKT_EINVAL, "hutchinson",
                             "bad arguments (n %lld, probes %d, eps %g)", (long long)n, probes,
                             eps);
    for (int b = 0; b < n_blocks; b++)
        if (offset[b] < 0 || len[b] < 1 || offset[b] + len[b] > n)
            return akt_error_set(e, AKT_EINVAL, "hutchinson",
                                 "block %d [%lld, +%lld) is outside the %lld values", b,
                                 (long long)offset[b], (long long)len[b], (long long)n);
    float *w0 = malloc(n * sizeof *w0), *v = calloc(n, sizeof *v);
    float *gp = malloc(n * sizeof *gp), *gm = malloc(n * sizeof *gm);
    double *acc = calloc(n_blocks, sizeof *acc);
    AKT_ASSERT(w0 && v && gp && gm && acc);
    memcpy(w0, w, n * sizeof *w0);
    const float step = (float)eps;
    double total = 0;
    int rc = 0;
    for (int j = 0; j < probes && !rc; j++) {
        /* v: +-1 on the blocks, one bit per element */
        uint64_t bits = 0;
        int left = 0;
        for (int b = 0; b < n_blocks; b++)
            for (int64_t i = offset[b]; i < offset[b] + len[b]; i++) {
                if (!left) {
                    bits = akt_rng_u64(rng);
                    left = 64;
                }
                v[i] = (bits & 1) ? 1.0f : -1.0f;
                bits >>= 1;
                left--;
            }
        for (int b = 0; b < n_blocks; b++)
            for (int64_t i = offset[b]; i < offset[b] + len[b]; i++)
                w[i] = w0[i] + step * v[i];
        if ((rc = grad(user, w, gp, e)))
            break;
        for (int b = 0; b < n_blocks; b++)
            for (int64_t i = offset[b]; i < offset[b] + len[b]; i++)
                w[i] = w0[i] - step * v[i];
        if ((rc = grad(user, w, gm, e)))
            break;
        memcpy(w, w0, n * sizeof *w);
        double probe = 0;
        for (int b = 0; b < n_blocks; b++) {
            double s = 0;
            for (int64_t i = offset[b]; i < offset[b] + len[b]; i++)
                s += (double)v[i] * ((double)gp[i] - (double)gm[i]);
            s /= 2 * eps;
            acc[b] += s;
            probe += s;
        }
        total += probe;
    }
    memcpy(w, w0, n * sizeof *w); /* also after a failed gradient */
    if (!rc) {
        for (int b = 0; b < n_blocks && trace_block; b++)
            trace_block[b] = acc[b] / probes;
        *trace_total = total / probes;
    }
    free(w0);
    free(v);
    free(gp);
    free(gm);
    free(acc);
    return rc;
}

/* ------------------------------------------------- the run's loss ---
 * The fixed batch (the student step's input: images, labels, soft targets,
 * detached teacher outputs) lives on r->tape, made once with recording off;
 * every gradient is akt_run_train's own student step (akt__student_step) on
 * a tape of its own: gradients of the trainable arrays only. */
struct hess_ctx {
    struct akt_run *r;
    struct akt_tape tape;
    struct akt__student_in in; /* on r->tape */
    const struct akt_hessian_opts *o;
    int evals, total_evals;
    double t0;
};

static int student_loss_grad(void *user, float *w, float *g, struct akt_error *e)
{
    struct hess_ctx *h = user;
    struct akt_run *r = h->r;
    struct akt_resnet *net = &r->student.net;
    AKT_ASSERT(w == net->values); /* the student reads its own table */
    akt_tape_reset(&h->tape);
    double loss;
    int rc = akt__student_step(r, &h->tape, &h->in, &loss, e);
    if (rc)
        return rc;
    if (!isfinite(loss))
        return akt_error_set(e, AKT_ENUMERIC, "hessian",
                             "student loss is %s at a perturbed point (try a smaller --eps)",
                             isnan(loss) ? "NaN" : "infinite");
    memcpy(g, net->grads, (size_t)net->n_values * sizeof(float));
    h->evals++;
    if (h->o->progress)
        h->o->progress(h->evals, h->total_evals, (akt_time_ms() - h->t0) / 1e3, h->o->user);
    return 0;
}

void akt_hessian_result_free(struct akt_hessian_result *res)
{
    free(res->layer);
    free(res->trace_layer);
    res->layer = NULL;
    res->trace_layer = NULL;
    res->n_layers = 0;
}

void akt_hessian_opts_defaults(struct akt_hessian_opts *o)
{
    memset(o, 0, sizeof *o);
    o->probes = 16;
    o->eps = 1e-3;
    o->batch = 0;
    o->seed = -1;
}

/* Replays the stored config (a flat YAML map, read with libyaml): the
 * plugin names first (setting one resets its parameters), then every other
 * key in order. */
struct replay {
    struct akt_run_config *c;
    const struct akt_registry *reg;
    const char *where;
    struct akt_error *e;
    int names; /* this pass: 1 generator/loss only, 0 the rest */
};

static int replay_pair(const char *key, const char *value, int line, void *user)
{
    struct replay *p = user;
    int is_name = !strcmp(key, "generator") || !strcmp(key, "loss");
    if (is_name != p->names)
        return 0;
    char w[1240];
    snprintf(w, sizeof w, "%s config line %d", p->where, line);
    return akt_run_config_set(p->c, p->reg, key, value, w, p->e);
}

static int config_from_text(struct akt_run_config *c, const struct akt_registry *reg,
                            const char *text, const char *where, struct akt_error *e)
{
    akt_run_config_defaults(c);
    struct replay p = {.c = c, .reg = reg, .where = where, .e = e};
    int rc = 0;
    for (p.names = 1; p.names >= 0 && !rc; p.names--)
        rc = akt_run_config_text_each(text, replay_pair, &p, where, e);
    return rc;
}

#define HESS_GROUP "analysis/hessian"

static int write_hessian(struct akt_results *out, const char *id,
                         const struct akt_hessian_result *res, struct akt_error *e)
{
    size_t cap = (size_t)res->n_layers * 49 + 1, len = 0;
    char *names = malloc(cap);
    AKT_ASSERT(names);
    names[0] = 0;
    for (int i = 0; i < res->n_layers; i++)
        len += snprintf(names + len, cap - len, "%s%s", i ? "\n" : "", res->layer[i]);
    int rc = akt_results_write(out, id, HESS_GROUP, "trace_total", AKT_F64, &res->trace_total, 1,
                               (int[]){1}, e);
    if (!rc)
        rc = akt_results_write(out, id, HESS_GROUP, "trace_layer", AKT_F64, res->trace_layer, 1,
                               (int[]){res->n_layers}, e);
    if (!rc)
        rc = akt_results_attr_set(out, id, HESS_GROUP, "layers", AKT_STR, names, e);
    struct { const char *name; double v; } a[] = {
        {"probes", res->probes}, {"eps", res->eps}, {"batch", res->batch},
        {"seed", (double)res->seed}, {"checkpoint_epoch", res->checkpoint_epoch}};
    for (size_t i = 0; i < sizeof a / sizeof a[0] && !rc; i++)
        rc = akt_results_attr_set(out, id, HESS_GROUP, a[i].name, AKT_F64, &a[i].v, e);
    free(names);
    return rc;
}

int akt_run_hessian(const char *path, const char *id, const struct akt_registry *reg,
                    const struct akt_hessian_opts *o, struct akt_hessian_result *res,
                    struct akt_error *e)
{
    memset(res, 0, sizeof *res);
    if (o->probes < 1 || !(o->eps > 0) || !isfinite(o->eps) || o->batch < 0)
        return akt_error_set(e, AKT_EINVAL, "hessian",
                             "probes must be >= 1, eps > 0 and batch >= 0 (got %d, %g, %d)",
                             o->probes, o->eps, o->batch);
    struct akt_results *out = NULL;
    struct akt_results_lock *lock = NULL;
    struct akt_run *r = NULL;
    struct hess_ctx h = {0};
    char where[1400], file[1300];
    size_t cap = AKT_CONFIG_TEXT_MAX + 1;
    char *text = malloc(cap);
    AKT_ASSERT(text);
    struct akt_run_config c;
    /* the run lives in its run file while unfinished (a kill), else in the
     * results file; the analysis is written to the same file, atomically */
    int fx = 0, rc = akt_results_run_file(path, id, file, sizeof file)
                         ? akt_error_set(e, AKT_EINVAL, path, "path too long")
                         : akt_file_check(path, NULL, e);
    if (!rc)
        rc = akt_results_lock(&lock, path, e);
    if (!rc)
        rc = akt_file_check(file, &fx, e);
    const char *src = fx ? file : path;
    snprintf(where, sizeof where, "%s:/runs/%s", src, id);
    if (!rc)
        rc = akt_results_open_read(&out, src, e);
    if (rc)
        goto done;
    if (!akt_results_has_run(out, id)) {
        rc = akt_error_set(e, AKT_EINVAL, where, "no such run in the results file");
        goto done;
    }
    if (akt_results_get_config(out, id, text, cap) || strlen(text) + 1 >= cap) {
        rc = akt_error_set(e, AKT_EFORMAT, where, "the stored config cannot be read");
        goto done;
    }
    if ((rc = config_from_text(&c, reg, text, where, e)) ||
        (rc = akt__inputs_find(out, src, id, &c, e))) /* also after a move */
        goto done;
    c.out_path[0] = 0;
    if (o->batch > 0)
        c.batch = o->batch; /* so akt__open_run checks the batch this analysis draws */
    akt_threads_set(c.threads);
    r = calloc(1, sizeof *r);
    AKT_ASSERT(r);
    r->c = &c;
    int ck = 0;
    if ((rc = akt__open_run(r, reg, e)) ||
        (rc = akt__checkpoint_load(out, src, id, r, &ck, e)))
        goto done;
    if (ck < 1) {
        rc = akt_error_set(e, AKT_EINVAL, where,
                           "the run has no checkpoint (no completed epoch) to analyse");
        goto done;
    }
    akt_results_close(out, NULL);
    out = NULL;

    res->probes = o->probes;
    res->eps = o->eps;
    res->batch = c.batch;
    res->seed = o->seed >= 0 ? (uint64_t)o->seed : c.seed + 1;
    res->checkpoint_epoch = ck;

    /* the fixed batch, from the restored generator; the RNG stream restarts
     * from the seed and then gives the probes */
    akt_rng_seed(&r->rng, res->seed);
    r->host.batch = res->batch;
    r->host.epoch = ck - 1; /* the last epoch trained */
    r->host.iter = 0;
    r->student.tracking = 0;
    struct akt_tape *t = &r->tape;
    akt_tape_reset(t);
    t->recording = 0;
    struct akt_gen_batch gb;
    struct akt_resnet_out tout;
    if ((rc = akt__sample(r, t, &gb, e)))
        goto done;
    akt__teacher_forward(r, t, gb.x, &tout);
    if ((rc = akt__student_input(r, t, &gb, &tout, &h.in, e)))
        goto done;

    const struct akt_resnet *net = &r->student.net;
    int64_t *off = malloc((size_t)net->n_params * sizeof *off);
    int64_t *len = malloc((size_t)net->n_params * sizeof *len);
    res->layer = malloc((size_t)net->n_params * sizeof *res->layer);
    res->trace_layer = calloc((size_t)net->n_params, sizeof *res->trace_layer);
    AKT_ASSERT(off && len && res->layer && res->trace_layer);
    for (int i = 0; i < net->n_params; i++) {
        const struct akt_param *p = &net->params[i];
        if (p->kind != AKT_PARAM_WEIGHT)
            continue;
        off[res->n_layers] = p->offset;
        len[res->n_layers] = p->n;
        snprintf(res->layer[res->n_layers], sizeof res->layer[0], "%s", p->name);
        res->n_layers++;
    }
    h.r = r;
    h.o = o;
    h.total_evals = 2 * o->probes;
    h.t0 = akt_time_ms();
    akt_tape_init(&h.tape, 0);
    rc = akt_hutchinson(student_loss_grad, &h, net->values, net->n_values, off, len,
                        res->n_layers, o->probes, o->eps, &r->rng, res->trace_layer,
                        &res->trace_total, e);
    akt_tape_free(&h.tape);
    free(off);
    free(len);
    if (!rc && !(rc = akt_results_edit(&out, src, e)) && !(rc = write_hessian(out, id, res, e))) {
        rc = akt_results_commit(out, e);
        out = NULL;
    }

done:
    akt_results_close(out, NULL); /* an edit not committed is dropped */
    akt_results_unlock(lock);
    if (r) {
        akt__close_run(r);
        free(r);
    }
    free(text);
    return rc;
}
