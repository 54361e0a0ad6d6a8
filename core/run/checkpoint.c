/* Checkpoint, resume and the crash-consistent life of a run's results
 * (results/README.md, "Checkpoint" and "Crash safety").
 *
 * A run in progress lives in its own run file OUT.h5.d/<id>.h5, a one-run
 * results file that is replaced atomically (copy, change, fsync, rename) at
 * every epoch end, so it always holds complete epochs and the checkpoint
 * that matches them. The results file OUT.h5 is only ever replaced
 * atomically too: when a run ends (done, failed or interrupted) its run
 * group is copied in and the run file removed. A kill at any write leaves
 * a state from which rerunning the same command ends bit-identical. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt_version.h"

#define CKPT "checkpoint"
#define RANGE_FIELDS 5 /* lo, hi, raw_lo, raw_hi, beta^updates */

/* ------------------------------------------------ range trackers ---
 * The only code that walks the student's activation range trackers. */
static int n_acts(const struct akt_student *s)
{
    return s->n_acts;
}

static void ranges_pack(const struct akt_student *s, float *f, int *updates)
{
    for (int i = 0; i < n_acts(s); i++) {
        const struct akt_range *a = &s->act[i];
        float *x = f + i * RANGE_FIELDS;
        x[0] = a->lo, x[1] = a->hi, x[2] = a->raw_lo, x[3] = a->raw_hi, x[4] = a->c;
        updates[i] = (int)a->updates;
    }
}

static void ranges_unpack(struct akt_student *s, const float *f, const int *updates)
{
    for (int i = 0; i < n_acts(s); i++) {
        struct akt_range *a = &s->act[i];
        const float *x = f + i * RANGE_FIELDS;
        a->lo = x[0], a->hi = x[1], a->raw_lo = x[2], a->raw_hi = x[3], a->c = x[4];
        a->updates = updates[i];
    }
}

/* ------------------------------------------------------ contents --- */

/* FNV-1a, 64 bits, over a dataset's bytes as akt holds them in memory. */
static uint64_t fnv1a64(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* The checkpoint's datasets, pointing at the run's live state (ranges and
 * updates at the caller's buffers). */
struct item {
    const char *name;
    void *data;
    int64_t n;
    int ints, ndim, shape[2];
};

static int items_of(struct akt_run *r, float *ranges, int *updates, int *rng, struct item *it)
{
    struct akt_resnet *net = &r->student.net;
    int64_t gn = 0; /* a generator with nothing to keep (state NULL) checkpoints 0 floats */
    float *gs = r->gen->ops.gen.state ? r->gen->ops.gen.state(r->gen_self, &gn) : NULL;
    int na = n_acts(&r->student), k = 0;
    it[k++] = (struct item){"student_values", net->values, net->n_values, 0, 1, {(int)net->n_values}};
    it[k++] = (struct item){"student_momentum", r->student.momentum, net->n_values, 0, 1,
                            {(int)net->n_values}};
    it[k++] = (struct item){"generator_state", gs, gn, 0, 1, {(int)gn}};
    it[k++] = (struct item){"rng_state", rng, 8, 1, 1, {8}};
    it[k++] = (struct item){"act_ranges", ranges, (int64_t)na * RANGE_FIELDS, 0, 2,
                            {na, RANGE_FIELDS}};
    it[k++] = (struct item){"act_updates", updates, na, 1, 1, {na}};
    return k;
}
#define MAX_ITEMS 6

static size_t item_bytes(const struct item *it) { return (size_t)it->n * 4; }

/* What no checkpoint akt writes can hold; NULL when it is fine. */
static const char *item_check(const struct item *it)
{
    if (!strcmp(it->name, "rng_state")) {
        const int *v = it->data;
        int any = 0;
        for (int i = 0; i < 8; i++)
            any |= v[i];
        return any ? NULL : "is all zero (not an xoshiro256** state)";
    }
    if (!strcmp(it->name, "act_updates")) {
        const int *v = it->data;
        for (int64_t i = 0; i < it->n; i++)
            if (v[i] < 0)
                return "holds a negative update count";
        return NULL;
    }
    const float *v = it->data;
    for (int64_t i = 0; i < it->n; i++)
        if (!isfinite(v[i]))
            return isnan(v[i]) ? "holds NaN" : "holds an infinite value";
    if (!strcmp(it->name, "act_ranges"))
        for (int64_t i = 0; i < it->n / RANGE_FIELDS; i++) {
            float c = v[i * RANGE_FIELDS + 4];
            if (!(c >= 0 && c <= 1))
                return "holds a bias-correction factor outside [0, 1]";
        }
    return NULL;
}

int akt__checkpoint_save(struct akt_results *h, const char *id, struct akt_run *r, int epochs_done,
                         struct akt_error *e)
{
    int na = n_acts(&r->student);
    float *ranges = malloc((size_t)na * RANGE_FIELDS * sizeof *ranges);
    int *updates = malloc((size_t)na * sizeof *updates), rng[8];
    AKT_ASSERT(ranges && updates);
    ranges_pack(&r->student, ranges, updates);
    memcpy(rng, r->rng.s, sizeof rng);
    struct item it[MAX_ITEMS];
    int n = items_of(r, ranges, updates, rng, it);
    /* a run resumed from a schema-1 file: its two slots go */
    int rc = akt_results_delete(h, id, CKPT "/slot0", e);
    if (!rc)
        rc = akt_results_delete(h, id, CKPT "/slot1", e);
    if (!rc)
        rc = akt_results_delete_attr(h, id, "checkpoint_slot", e);
    for (int i = 0; i < n && !rc; i++) {
        rc = akt_results_write(h, id, CKPT, it[i].name, it[i].ints ? AKT_I32 : AKT_F32, it[i].data,
                               it[i].ndim, it[i].shape, e);
        char name[64], hex[24];
        snprintf(name, sizeof name, "fnv1a64_%s", it[i].name);
        snprintf(hex, sizeof hex, "%016llx",
                 (unsigned long long)fnv1a64(it[i].data, item_bytes(&it[i])));
        if (!rc)
            rc = akt_results_attr_set(h, id, CKPT, name, AKT_STR, hex, e);
    }
    if (!rc)
        rc = akt_results_attr_set(h, id, CKPT, "epoch", AKT_F64, (double[]){epochs_done}, e);
    if (!rc)
        rc = akt_results_set_attr(h, id, "checkpoint_epoch", epochs_done, e);
    free(ranges);
    free(updates);
    return rc;
}

static const char *STD_METRICS[] = {"top1", "top5", "loss_g", "loss_q", "grad_norm",
                                    "lr_student", "lr_generator", "time_s", "act_range"};

/* @checkpoint_epoch, checked: a whole number of epochs in 0..epochs that
 * every standard metric holds (steps 0, 1, ... in top1). */
static int checkpoint_epoch(struct akt_results *f, const char *file, const char *id,
                            const struct akt_run_config *c, int *ck, struct akt_error *e)
{
    char w[1400];
    snprintf(w, sizeof w, "%s:/runs/%s@checkpoint_epoch", file, id);
    double v = 0;
    *ck = 0;
    if (akt_results_get_attr(f, id, "checkpoint_epoch", &v) != 0)
        return 0; /* no epoch completed yet */
    if (!(v >= 0 && v <= c->epochs && v == floor(v)))
        return akt_error_set(e, AKT_EFORMAT, w,
                             "is %g; expected a whole number of completed epochs in 0..%d (the "
                             "configured epochs)", v, c->epochs);
    int k = (int)v;
    for (size_t i = 0; i < sizeof STD_METRICS / sizeof STD_METRICS[0]; i++) {
        int64_t rows = akt_results_rows(f, id, STD_METRICS[i]);
        if (rows < k)
            return akt_error_set(e, AKT_EFORMAT, w,
                                 "is %d but metric '%s' holds %lld epochs (damaged or edited "
                                 "file)", k, STD_METRICS[i], (long long)(rows < 0 ? 0 : rows));
    }
    if (k > 0) {
        int64_t *st = malloc((size_t)k * sizeof *st);
        AKT_ASSERT(st);
        int rc = akt_results_read_metric(f, id, "top1", st, NULL, k, 1, e);
        for (int i = 0; !rc && i < k; i++)
            if (st[i] != i)
                rc = akt_error_set(e, AKT_EFORMAT, w,
                                   "is %d but row %d of metric 'top1' is epoch %lld", k, i,
                                   (long long)st[i]);
        free(st);
        if (rc)
            return rc;
    }
    *ck = k;
    return 0;
}

int akt__checkpoint_load(struct akt_results *f, const char *file, const char *id, struct akt_run *r,
                         int *epoch, struct akt_error *e)
{
    int ck = 0, rc = checkpoint_epoch(f, file, id, r->c, &ck, e);
    *epoch = 0;
    if (rc || ck == 0)
        return rc;
    /* schema 2: one group with checksums; schema 1: checkpoint/slot<k> */
    char grp[32] = CKPT, w[1400];
    double gepoch = -1, slot = -1;
    int flat = akt_results_attr_get(f, id, CKPT, "epoch", AKT_F64, &gepoch, 0) == 0;
    if (flat && gepoch != ck) {
        snprintf(w, sizeof w, "%s:/runs/%s/" CKPT "@epoch", file, id);
        return akt_error_set(e, AKT_EFORMAT, w, "is %g but the run's checkpoint_epoch is %d",
                             gepoch, ck);
    }
    if (!flat) {
        char *keep = akt_results_run_str(f, id, "keep_checkpoints");
        int dropped = keep && !strcmp(keep, "none");
        free(keep);
        snprintf(w, sizeof w, "%s:/runs/%s", file, id);
        if (dropped)
            return akt_error_set(e, AKT_EINVAL, w, "the run kept no checkpoint "
                                 "(keep_checkpoints: none dropped it when the run finished); "
                                 "rerun it with keep_checkpoints: final to analyse it");
        if (akt_results_get_attr(f, id, "checkpoint_slot", &slot) != 0 || (slot != 0 && slot != 1)) {
            return akt_error_set(e, AKT_EFORMAT, w,
                                 "checkpoint_epoch is %d but there is no checkpoint (neither "
                                 CKPT "/@epoch nor a schema-1 checkpoint_slot 0 or 1)", ck);
        }
        snprintf(grp, sizeof grp, CKPT "/slot%d", (int)slot);
    }
    int na = n_acts(&r->student);
    float *ranges = malloc((size_t)na * RANGE_FIELDS * sizeof *ranges);
    int *updates = malloc((size_t)na * sizeof *updates), rng[8];
    AKT_ASSERT(ranges && updates);
    struct item it[MAX_ITEMS];
    int n = items_of(r, ranges, updates, rng, it);
    for (int i = 0; i < n && !rc; i++) {
        snprintf(w, sizeof w, "%s:/runs/%s/%s/%s", file, id, grp, it[i].name);
        rc = akt_results_read(f, id, grp, it[i].name, it[i].ints ? AKT_I32 : AKT_F32, it[i].data,
                              it[i].n, e);
        if (rc)
            break;
        if (flat) {
            char name[64], want[64] = "", got[24];
            snprintf(name, sizeof name, "fnv1a64_%s", it[i].name);
            snprintf(got, sizeof got, "%016llx",
                     (unsigned long long)fnv1a64(it[i].data, item_bytes(&it[i])));
            if (akt_results_attr_get(f, id, CKPT, name, AKT_STR, want, sizeof want) != 0)
                rc = akt_error_set(e, AKT_EFORMAT, w, "has no checksum (attribute %s of "
                                   "the checkpoint group)", name);
            else if (strcmp(want, got))
                rc = akt_error_set(e, AKT_EFORMAT, w,
                                   "checksum mismatch (stored %s, contents %s): the checkpoint "
                                   "was changed or damaged after akt wrote it", want, got);
        }
        const char *why = rc ? NULL : item_check(&it[i]);
        if (why)
            rc = akt_error_set(e, AKT_EFORMAT, w, "%s: not a checkpoint akt wrote", why);
    }
    if (!rc) {
        memcpy(r->rng.s, rng, sizeof rng);
        ranges_unpack(&r->student, ranges, updates);
        *epoch = ck;
    }
    free(ranges);
    free(updates);
    return rc;
}

/* ------------------------------------------------- what a run kept --- */

/* best, final and before-distillation figures of the first ck epochs */
static int kept_figures(struct akt_results *f, const char *id, const struct akt_run_config *c,
                        int ck, struct akt_run_result *res, struct akt_error *e)
{
    res->epochs_done = ck;
    if (ck == 0)
        return 0;
    double *v = malloc((size_t)ck * sizeof *v);
    int64_t *st = malloc((size_t)ck * sizeof *st);
    AKT_ASSERT(v && st);
    int rc = akt_results_read_metric(f, id, "top1", st, v, ck, 1, e);
    for (int i = 0; !rc && i < ck; i++) {
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
    return rc;
}

/* The figures of a finished run; every one of them must be there. */
static int done_figures(struct akt_results *f, const char *file, const char *id,
                        const struct akt_run_config *c, struct akt_run_result *res,
                        struct akt_error *e)
{
    double be = -1;
    struct { const char *name; double *v; } a[] = {
        {"best_top1", &res->best_top1}, {"final_top1", &res->final_top1},
        {"top1_fp", &res->top1_fp},     {"top1_before", &res->top1_before},
        {"best_epoch", &be}};
    char w[1400];
    snprintf(w, sizeof w, "%s:/runs/%s", file, id);
    for (size_t i = 0; i < sizeof a / sizeof a[0]; i++)
        if (akt_results_get_attr(f, id, a[i].name, a[i].v) != 0)
            return akt_error_set(e, AKT_EFORMAT, w,
                                 "status is 'done' but attribute '%s' is missing (damaged or "
                                 "edited file)", a[i].name);
    res->best_epoch = (int)be;
    res->epochs_done = c->epochs;
    return 0;
}

/* The stored config against this run's: the same keys with the same values. */
static int check_config(struct akt_results *f, const char *file, const char *id,
                        const char *yaml, struct akt_error *e)
{
    size_t cap = strlen(yaml) + 65536;
    char *stored = malloc(cap), keys[400];
    AKT_ASSERT(stored);
    if (akt_results_get_config(f, id, stored, cap) != 0) {
        free(stored);
        char w[1400];
        snprintf(w, sizeof w, "%s:/runs/%s@config", file, id);
        return akt_error_set(e, AKT_EFORMAT, w, "cannot be read (damaged or edited file; "
                             "nothing was changed)");
    }
    int d = akt_run_config_text_diff(stored, yaml, keys, sizeof keys);
    if (d < 0) /* unreadable stored text: only the same text is the same run */
        d = strcmp(stored, yaml) != 0;
    free(stored);
    if (!d)
        return 0;
    return akt_error_set(e, AKT_EINVAL, file,
                         "run '%s' already exists with a different configuration (%s%s); "
                         "choose another id or results file (nothing was changed)", id,
                         *keys ? "keys: " : "stored config unreadable", keys);
}

static int status_of(struct akt_results *f, const char *file, const char *id, char *buf,
                     size_t n, struct akt_error *e)
{
    if (akt_results_get_status(f, id, buf, n) == 0)
        return 0;
    char w[1400];
    snprintf(w, sizeof w, "%.1200s:/runs/%.128s@status", file, id);
    return akt_error_set(e, AKT_EFORMAT, w, "cannot be read (damaged or edited file; nothing "
                         "was changed)");
}

/* ------------------------------------------------- the best epoch --- */

int akt__best_save(struct akt_results *h, const char *id, const struct akt_run *r, int epoch,
                   double top1, struct akt_error *e)
{
    const struct akt_resnet *n = &r->student.net;
    int rc = 0;
    for (int i = 0; i < n->n_params && !rc; i++) {
        const struct akt_param *p = &n->params[i];
        rc = akt_results_write_tensor(h, id, "tensors/best/student", p->name,
                                      n->values + p->offset, p->ndim, p->shape, e);
    }
    const int na = n_acts(&r->student);
    float *ranges = malloc(2 * (size_t)na * sizeof *ranges);
    AKT_ASSERT(ranges);
    for (int i = 0; i < na; i++) {
        ranges[2 * i] = r->student.act[i].lo;
        ranges[2 * i + 1] = r->student.act[i].hi;
    }
    if (!rc)
        rc = akt_results_write_tensor(h, id, "tensors/best", "act_range", ranges, 2,
                                      (int[]){na, 2}, e);
    free(ranges);
    if (!rc)
        rc = akt_results_set_group_attr(h, id, "tensors/best", "epoch", epoch, e);
    if (!rc)
        rc = akt_results_set_group_attr(h, id, "tensors/best", "top1", top1, e);
    return rc;
}

/* ------------------------------------------------------ provenance --- */

/* @threads_history of a run that starts (ck = 0) or resumes at epoch ck with
 * `threads` threads: "E:T,..." (from epoch E on, T threads), the stored
 * history cut at ck, then this count when it differs from the last one. A
 * resume under another count fills note. */
static void threads_history(struct akt_results *src, const char *id, int ck, int threads,
                            char *hist, size_t n, char *note, size_t nn)
{
    char old[1024] = "";
    char *h = src && ck > 0 ? akt_results_run_str(src, id, "threads_history") : NULL;
    if (h) {
        snprintf(old, sizeof old, "%s", h);
    } else if (src && ck > 0) { /* written by an akt that kept threads in @config */
        char *cfg = akt_results_run_str(src, id, "config"), v[32];
        if (cfg && akt_config_text_get(cfg, "threads", v, sizeof v) == 0)
            snprintf(old, sizeof old, "0:%s", v);
        free(cfg);
    }
    free(h);
    size_t len = 0;
    long last = 0;
    hist[0] = 0;
    for (char *p = old; *p;) {
        char *end;
        long ep = strtol(p, &end, 10), th = *end == ':' ? strtol(end + 1, &end, 10) : -1;
        if (th > 0 && ep >= 0 && ep < ck && len < n) {
            len += snprintf(hist + len, n - len, "%s%ld:%ld", len ? "," : "", ep, th);
            last = th;
        }
        p = strchr(p, ',');
        if (!p)
            break;
        p++;
    }
    if (last != threads && len < n)
        snprintf(hist + len, n - len, "%s%d:%d", len ? "," : "", ck, threads);
    note[0] = 0;
    if (last && last != threads)
        snprintf(note, nn, "run '%s' resumes at epoch %d with %d threads, its earlier epochs "
                 "ran with %ld: the results are not promised bit-identical to a run with one "
                 "thread count", id, ck, threads, last);
}

/* Who ran the run last (started or resumed it): the same facts as the
 * results file's root, which describe only the akt that created the file. */
static int write_provenance(struct akt_results *h, const char *id, struct akt_error *e)
{
    struct { const char *name, *v; } a[] = {
        {"akt_version", AKT_VERSION},
        {"akt_commit", AKT_GIT_COMMIT[0] ? AKT_GIT_COMMIT : "unknown"},
        {"host", akt_provenance_host()},
        {"command_line", akt_provenance_command_line()},
        {"working_dir", akt_provenance_cwd()}};
    int rc = 0;
    for (size_t i = 0; i < sizeof a / sizeof a[0] && !rc; i++)
        rc = akt_results_set_attr_str(h, id, a[i].name, a[i].v, e);
    return rc;
}

/* ------------------------------------------------------- the store --- */

/* The run file's run group, copied into the results file (created when
 * absent); then the run file goes. */
static int publish(struct akt_run_store *s, const char *id, struct akt_error *e)
{
    struct akt_results *src = NULL, *h = NULL;
    int rc = akt_results_open_read(&src, s->file, e);
    if (!rc)
        rc = akt_results_edit(&h, s->main, e);
    if (!rc)
        rc = akt_results_copy_run(h, src, id, e);
    if (!rc) {
        rc = akt_results_commit(h, e);
        h = NULL;
    }
    akt_results_discard(h);
    int closed = akt_results_close(src, rc ? NULL : e); /* the first error is the one told */
    if (!rc)
        rc = closed;
    return rc ? rc : akt_results_remove(s->file, e);
}

int akt__store_open(struct akt_run_store *s, struct akt_run *r, struct akt_run_result *res,
                    int *start, int *done, struct akt_error *e)
{
    const struct akt_run_config *c = r->c;
    memset(s, 0, sizeof *s);
    *start = 0;
    *done = 0;
    s->keep_checkpoints = c->keep_checkpoints;
    snprintf(s->main, sizeof s->main, "%s", c->out_path);
    if (akt_results_run_file(c->out_path, c->id, s->file, sizeof s->file))
        return akt_error_set(e, AKT_EINVAL, c->out_path, "results path too long");
    char *yaml = akt_run_config_yaml(c, r->gen, r->loss);
    if (!yaml)
        return akt_error_set(e, AKT_EINVAL, c->out_path,
                             "the configuration of run '%s' cannot be written as YAML (a path "
                             "that is not UTF-8?)", c->id);
    struct akt_results *m = NULL, *f = NULL, *h = NULL;
    int mx = 0, fx = 0, rc = akt_file_check(s->main, &mx, e);
    /* a file that is no results file is refused before anything is made */
    if (!rc && mx && !(rc = akt_results_open_read(&m, s->main, e)))
        rc = akt_results_close(m, e);
    m = NULL;
    if (!rc)
        rc = akt_results_lock(&s->lock, s->main, e);
    if (!rc && mx)
        rc = akt_results_open_read(&m, s->main, e);
    if (!rc)
        rc = akt_file_check(s->file, &fx, e);
    if (!rc && fx && (rc = akt_results_open_read(&f, s->file, e)) == 0 &&
        !akt_results_has_run(f, c->id))
        rc = akt_error_set(e, AKT_EFORMAT, s->file, "run file without run '%s'", c->id);
    if (rc)
        goto out;

    char mst[32] = "", fst[32] = "";
    int in_main = m && akt_results_has_run(m, c->id);
    if ((in_main && (rc = status_of(m, s->main, c->id, mst, sizeof mst, e))) ||
        (fx && (rc = status_of(f, s->file, c->id, fst, sizeof fst, e))))
        goto out;
    if (in_main && !strcmp(mst, "done")) {
        /* finished: reported, never run again; a run file beside it is a
         * leftover of a kill between the commit and its removal */
        if ((rc = check_config(m, s->main, c->id, yaml, e)) ||
            (rc = done_figures(m, s->main, c->id, c, res, e)))
            goto out;
        akt_results_close(f, NULL);
        f = NULL;
        rc = fx ? akt_results_remove(s->file, e) : 0;
        *done = !rc;
        goto out;
    }
    /* the newest state: the run file, else an unfinished copy in OUT */
    struct akt_results *src = fx ? f : in_main ? m : NULL;
    const char *src_path = fx ? s->file : s->main;
    if (src && (rc = check_config(src, src_path, c->id, yaml, e)))
        goto out;
    if (fx && !strcmp(fst, "done")) { /* killed before its commit: redo it */
        if ((rc = done_figures(f, s->file, c->id, c, res, e)))
            goto out;
        akt_results_close(f, NULL);
        f = NULL;
        rc = publish(s, c->id, e);
        *done = !rc;
        goto out;
    }
    int ck = 0;
    if (src && ((rc = akt__checkpoint_load(src, src_path, c->id, r, &ck, e)) ||
                (rc = kept_figures(src, c->id, c, ck, res, e))))
        goto out;
    /* the inputs' bytes: recorded at the start, the same ones to resume */
    struct akt__inputs in;
    if ((rc = akt__inputs_hash(c, &in, e)) ||
        (src && (rc = akt__inputs_check(src, src_path, c->id, &in, e))))
        goto out;
    char hist[1024];
    threads_history(src, c->id, ck, c->threads, hist, sizeof hist, s->note, sizeof s->note);
    /* every check passed: now the run file says "running" */
    if ((rc = akt_results_edit(&h, s->file, e)))
        goto out;
    if (!fx && in_main)
        rc = akt_results_copy_run(h, m, c->id, e);
    else if (!fx)
        rc = akt_results_run(h, c->id, yaml, e);
    if (!rc && src) /* rows past the checkpoint: a schema-1 run killed mid-epoch */
        rc = akt_results_truncate_steps(h, c->id, ck, e);
    if (!rc)
        rc = akt_results_set_status(h, c->id, "running", "", e);
    /* the architecture, read off the teacher: what `akt report` groups by */
    if (!rc)
        rc = akt_results_set_attr(h, c->id, "depth", r->teacher.depth, e);
    if (!rc)
        rc = akt_results_set_attr(h, c->id, "threads", c->threads, e);
    if (!rc)
        rc = akt_results_set_attr_str(h, c->id, "threads_history", hist, e);
    if (!rc)
        rc = akt__inputs_write(h, c->id, &in, e);
    if (!rc)
        rc = write_provenance(h, c->id, e);
    if (!rc) {
        rc = akt_results_commit(h, e);
        h = NULL;
    }
    if (!rc) {
        *start = ck;
        s->open = 1;
    }
out:
    akt_results_discard(h);
    akt_results_close(f, NULL);
    akt_results_close(m, NULL);
    free(yaml);
    if (rc || *done)
        akt__store_close(s);
    return rc;
}

/* ------------------------------------------------ the epochs' rows --- */

static int write_epoch(struct akt_results *out, const char *id, struct akt_run *r, int epoch,
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

int akt__store_epoch(struct akt_run_store *s, struct akt_run *r, const struct akt_epoch_report *rep,
                     float lr_s, float lr_g, int best, struct akt_error *e)
{
    struct akt_results *h = NULL;
    int rc = akt_results_edit(&h, s->file, e);
    if (!rc)
        rc = write_epoch(h, r->c->id, r, rep->epoch, rep, lr_s, lr_g, e);
    if (!rc && best) /* the best epoch's student, kept beside the final one */
        rc = akt__best_save(h, r->c->id, r, rep->epoch, rep->top1, e);
    if (!rc)
        rc = akt__checkpoint_save(h, r->c->id, r, rep->epoch + 1, e);
    if (rc) {
        akt_results_discard(h);
        return rc;
    }
    return akt_results_commit(h, e);
}

int akt__store_done(struct akt_run_store *s, struct akt_run *r, const struct akt_run_result *res,
                    struct akt_error *e)
{
    struct akt_results *h = NULL;
    int rc = akt_results_edit(&h, s->file, e);
    if (!rc)
        rc = akt__write_final_tensors(h, r->c->id, r, e);
    if (rc) {
        akt_results_discard(h);
        return rc;
    }
    /* status done comes with the tensors and figures, in one replacement */
    return akt__store_finish(s, h, r->c->id, "done", "", res, e);
}

int akt__store_finish(struct akt_run_store *s, struct akt_results *h, const char *id,
                      const char *status, const char *message, const struct akt_run_result *res,
                      struct akt_error *e)
{
    s->open = 0;
    int rc = h ? 0 : akt_results_edit(&h, s->file, e);
    if (!rc && !strcmp(status, "done")) {
        struct { const char *name; double v; } a[] = {
            {"best_top1", res->best_top1},   {"final_top1", res->final_top1},
            {"top1_fp", res->top1_fp},       {"top1_before", res->top1_before},
            {"best_epoch", res->best_epoch}};
        for (size_t i = 0; i < sizeof a / sizeof a[0] && !rc; i++)
            rc = akt_results_set_attr(h, id, a[i].name, a[i].v, e);
        /* a run resumed from a file of an akt that kept no best weights
         * may lack the best epoch's: then none rather than another epoch's */
        double be = -1;
        if (!rc && (akt_results_get_group_attr(h, id, "tensors/best", "epoch", &be) != 0 ||
                    be != res->best_epoch))
            rc = akt_results_delete(h, id, "tensors/best", e);
        int none = s->keep_checkpoints == AKT_KEEP_CHECKPOINT_NONE;
        if (!rc && none)
            rc = akt_results_delete(h, id, CKPT, e);
        if (!rc)
            rc = akt_results_set_attr_str(h, id, "keep_checkpoints", none ? "none" : "final", e);
    }
    if (!rc)
        rc = akt_results_set_status(h, id, status, message, e);
    if (!rc) {
        rc = akt_results_commit(h, e);
        h = NULL;
    }
    akt_results_discard(h);
    if (!rc)
        rc = publish(s, id, e);
    akt__store_close(s);
    return rc;
}

/* A run stopped while training keeps its epochs: status failed or
 * interrupted, with the error as its message. When that cannot be saved
 * either, the error says so too. */
void akt__store_stopped(struct akt_run_store *st, const char *id, int rc,
                        const struct akt_run_result *res, struct akt_error *e)
{
    const char *status = rc == AKT_EINTR ? "interrupted" : "failed";
    struct akt_error e2 = {0};
    char msg[1200] = "";
    if (e)
        akt_error_format(e, msg, sizeof msg);
    if (akt__store_finish(st, NULL, id, status, msg, res, &e2) && e) {
        char why[sizeof msg];
        akt_error_format(&e2, why, sizeof why);
        size_t l = strlen(e->what);
        snprintf(e->what + l, sizeof e->what - l, " (and status '%s' was not saved: %s)", status,
                 why);
    }
}

void akt__store_close(struct akt_run_store *s)
{
    akt_results_unlock(s->lock);
    s->lock = NULL;
    s->open = 0;
}
