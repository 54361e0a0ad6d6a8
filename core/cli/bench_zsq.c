/* akt bench-zsq: time per iteration of the real training loop (SPEC 5).
 *
 * Runs akt_run_train for one epoch of warmup + iters iterations with
 * warmup_epochs = 0 (so the student's SGD step runs every iteration), the
 * range trackers on (epoch 0), no results file and a one-record evaluation,
 * and times the iterations through the per-iteration callback: iteration i
 * takes the time between callbacks i-1 and i, so the evaluations before and
 * after the epoch are never counted. The first --warmup iterations are
 * skipped. Output lines follow tools/bench_zsq_torch.py (the PyTorch
 * reference of the same iteration), so the two read side by side:
 *   zsq_GEN_LOSS_bB median_ms images_per_s
 * and on stderr min/median/max and how many timed iterations were rejected
 * because other processes used the CPUs at the same time (user time in
 * /proc/stat beyond ours; see struct timing). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/akt.h"
#include "akt/run.h"
#include "cli.h"

#define MAX_BATCHES 16
#define MAX_NAMES 8
#define MAX_SETS 32
#define MAX_DIRS 8

static const char *BENCH_ZSQ_USAGE =
    "usage: akt bench-zsq [options]\n"
    "  Time per iteration of the zero-shot training loop (generator step +\n"
    "  student step, SPEC 5) in epoch 0 with the student's SGD step on.\n"
    "  Prints 'zsq_GEN_LOSS_bB median_ms images_per_s' per generator and batch.\n"
    "\n"
    "  --generator NAME   generator plugin, repeatable (default gdfq and adadfq)\n"
    "  --loss NAME        loss plugin (default akt)\n"
    "  --batch N[,N...]   batch size(s), repeatable (default 32,200)\n"
    "  --iters N          timed clean iterations, the median is printed (default 10)\n"
    "  --warmup N         untimed iterations first (default 3, at least 1)\n"
    "  --threads N        worker threads (default 2)\n"
    "  --max-wait S       after a contended iteration, wait up to S seconds for\n"
    "                     other processes to go quiet (default 120)\n"
    "  --wbits K --abits K   weight / activation bits (default 4)\n"
    "  --seed S           RNG seed (default 0)\n"
    "  --depth D          ResNet depth 6n+2 of the default teacher (20): $AKT_DATA/\n"
    "                     teachers/resnetD_cifar10_akamaster_optA.h5; lines of a\n"
    "                     depth other than 20 are named zsq_GEN_LOSS_rD_bB\n"
    "  --teacher FILE     teacher HDF5 (default: by --depth)\n"
    "  --data FILE        evaluation set, of which one record is used (default\n"
    "                     $AKT_DATA/cifar-10-batches-bin/test_batch_lossless1000.bin)\n"
    "  --set KEY=VALUE    any run setting or plugin parameter, as in 'akt train'\n"
    "  --plugin-dir DIR   load plugins from DIR (repeatable)\n";

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct dirty {
    double foreign, ms;
};

/* Iteration timing, in the iteration callback. Iteration i takes the time
 * between callbacks i-1 and i. One during which other processes used more
 * user CPU than max(0.03 s, 5% of our threads' time) is contended: it is set
 * aside, we wait for a quiet machine and skip the next iteration (it re-warms
 * after the pause), as torch_baseline.py's measure() does. Stops the run
 * once `want` clean iterations are in, or after max_tries timed ones. */
struct timing {
    int warmup, want, max_tries, threads;
    double max_wait_s;
    int seen, tries, skip_next, n_clean, n_dirty;
    double prev_ms, prev_machine, prev_self;
    double *clean;
    struct dirty *dirty;
    volatile int stop;
};

static void on_iter(int epoch, int iter, int iters, double lg, double lq, void *user)
{
    (void)epoch, (void)iter, (void)iters, (void)lg, (void)lq;
    struct timing *s = user;
    double now = akt_time_ms(), machine, self;
    akt_cli_user_seconds(&machine, &self);
    if (s->seen >= s->warmup && !s->skip_next) {
        double dt = now - s->prev_ms;
        double foreign = (machine - s->prev_machine) - (self - s->prev_self);
        double limit = 0.05 * s->threads * dt * 1e-3;
        s->tries++;
        if (foreign <= (limit > 0.03 ? limit : 0.03)) {
            s->clean[s->n_clean++] = dt;
        } else {
            s->dirty[s->n_dirty++] = (struct dirty){foreign, dt};
            akt_cli_wait_quiet(s->max_wait_s, 3);
            s->skip_next = 1;
        }
    } else {
        s->skip_next = 0;
    }
    s->seen++;
    s->prev_ms = akt_time_ms();
    akt_cli_user_seconds(&s->prev_machine, &s->prev_self);
    if (s->n_clean >= s->want || s->tries >= s->max_tries)
        s->stop = 1;
}

static int cmp_dirty(const void *a, const void *b)
{
    const struct dirty *x = a, *y = b;
    return (x->foreign > y->foreign) - (x->foreign < y->foreign);
}

struct bench_opts {
    const char *gens[MAX_NAMES], *loss, *teacher, *data, *wbits, *abits, *seed;
    int n_gens, batches[MAX_BATCHES], nb, iters, warmup, threads, depth;
    double max_wait_s;
    char sets[MAX_SETS][512];
    int n_sets;
};

/* One configuration through the same validated setter as 'akt train'. */
static int make_config(struct akt_run_config *c, const struct akt_registry *reg,
                       const struct bench_opts *o, const char *gen, int batch, int iters,
                       struct akt_error *e)
{
    char num[32];
    akt_run_config_defaults(c);
    struct { const char *key, *value; } kv[] = {
        {"teacher", o->teacher}, {"data", o->data},   {"generator", gen},
        {"loss", o->loss},       {"wbits", o->wbits}, {"abits", o->abits},
        {"seed", o->seed},       {"epochs", "1"},     {"warmup_epochs", "0"},
        {"milestones", "none"},  {"eval_limit", "1"}, {"eval_batch", "1"},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof kv / sizeof kv[0] && !rc; i++)
        if (kv[i].value)
            rc = akt_run_config_set(c, reg, kv[i].key, kv[i].value, "bench-zsq", e);
    snprintf(num, sizeof num, "%d", batch);
    if (!rc)
        rc = akt_run_config_set(c, reg, "batch", num, "--batch", e);
    snprintf(num, sizeof num, "%d", iters);
    if (!rc)
        rc = akt_run_config_set(c, reg, "iters", num, "--iters", e);
    snprintf(num, sizeof num, "%d", o->threads);
    if (!rc)
        rc = akt_run_config_set(c, reg, "threads", num, "--threads", e);
    for (int i = 0; i < o->n_sets && !rc; i++) {
        char kvbuf[512];
        snprintf(kvbuf, sizeof kvbuf, "%s", o->sets[i]);
        char *eq = strchr(kvbuf, '=');
        *eq = 0;
        rc = akt_run_config_set(c, reg, kvbuf, eq + 1, "--set", e);
    }
    c->out_path[0] = 0; /* never a results file */
    return rc;
}

/* Runs one configuration; prints its line. Returns the process status. */
static int bench_one(const struct akt_registry *reg, const struct bench_opts *o, const char *gen,
                     int batch)
{
    struct akt_error e = {0};
    struct akt_run_config *c = malloc(sizeof *c);
    AKT_ASSERT(c);
    /* every timed try takes at most two iterations (itself and a re-warm) */
    int max_tries = 5 * o->iters;
    if (make_config(c, reg, o, gen, batch, o->warmup + 2 * max_tries, &e)) {
        free(c);
        akt_cli_fail(&e);
        return 2;
    }
    struct timing s = {.warmup = o->warmup, .want = o->iters, .max_tries = max_tries,
                       .threads = o->threads, .max_wait_s = o->max_wait_s};
    s.clean = malloc((size_t)max_tries * sizeof *s.clean);
    s.dirty = malloc((size_t)max_tries * sizeof *s.dirty);
    AKT_ASSERT(s.clean && s.dirty);
    struct akt_run_callbacks cb = {.iteration = on_iter, .stop = &s.stop, .user = &s};
    struct akt_run_result res;
    double t0 = akt_time_ms();
    int rc = akt_run_train(c, reg, &cb, &res, &e);
    double elapsed = (akt_time_ms() - t0) / 1e3;
    char name[160];
    char depth[16] = "";
    if (o->depth != 20)
        snprintf(depth, sizeof depth, "_r%d", o->depth);
    snprintf(name, sizeof name, "zsq_%s_%s%s_b%d", gen, c->loss, depth, batch);
    free(c);
    if (rc == AKT_EINTR && s.stop)
        rc = 0; /* our own early stop */
    if (rc) {
        free(s.clean);
        free(s.dirty);
        return akt_cli_fail(&e);
    }
    /* too few clean iterations: fill up with the least contended ones */
    const char *flag = "";
    int n = s.n_clean;
    if (n < o->iters) {
        flag = "  CONTENDED";
        qsort(s.dirty, s.n_dirty, sizeof *s.dirty, cmp_dirty);
        for (int i = 0; i < s.n_dirty && n < o->iters; i++)
            s.clean[n++] = s.dirty[i].ms;
    }
    if (n == 0) {
        free(s.clean);
        free(s.dirty);
        fprintf(stderr, "akt: error: bench-zsq: no iteration was timed\n");
        return 1;
    }
    double *dt = s.clean;
    qsort(dt, n, sizeof *dt, cmp_double);
    double med = n % 2 ? dt[n / 2] : 0.5 * (dt[n / 2 - 1] + dt[n / 2]);
    printf("%s %.2f %.1f\n", name, med, batch * 1e3 / med);
    fflush(stdout);
    fprintf(stderr,
            "#   %s: min %.2f median %.2f max %.2f ms over %d iterations (warm-up %d); "
            "%d contended iterations rejected; elapsed %.1f s%s\n",
            name, dt[0], med, dt[n - 1], n, o->warmup, s.n_dirty, elapsed, flag);
    free(s.clean);
    free(s.dirty);
    return 0;
}

int akt_cmd_bench_zsq(int argc, char **argv)
{
    static struct bench_opts o;
    memset(&o, 0, sizeof o);
    o.loss = "akt";
    o.iters = 10;
    o.warmup = 3;
    o.threads = 2;
    o.max_wait_s = 120;
    const char *dirs[MAX_DIRS];
    int n_dirs = 0;
    char tbuf[1024], dbuf[1024];
    int depth = 20;
    o.data = akt_cli_default_path("cifar-10-batches-bin/test_batch_lossless1000.bin", dbuf,
                                  sizeof dbuf);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        static const char *const valued[] = {
            "--generator", "--loss", "--batch", "--iters", "--reps", "--warmup", "--max-wait",
            "--threads", "--wbits", "--abits", "--seed", "--teacher", "--data", "--set",
            "--plugin-dir", "--depth"};
        int takes_value = 0;
        for (size_t k = 0; k < sizeof valued / sizeof valued[0]; k++)
            takes_value |= !strcmp(a, valued[k]);
        if (!takes_value && strcmp(a, "--help") && strcmp(a, "-h"))
            return akt_cli_usage_error("bench-zsq", "unknown option '%s'", a);
        if (takes_value && !v)
            return akt_cli_usage_error("bench-zsq", "option '%s' needs a value", a);
        if (!takes_value) {
            fputs(BENCH_ZSQ_USAGE, stdout);
            return 0;
        } else if (!strcmp(a, "--generator")) {
            if (o.n_gens == MAX_NAMES)
                return akt_cli_usage_error("bench-zsq", "too many --generator");
            o.gens[o.n_gens++] = v;
        } else if (!strcmp(a, "--loss")) {
            o.loss = v;
        } else if (!strcmp(a, "--batch")) {
            if (akt_cli_batches("bench-zsq", v, 100000, o.batches, MAX_BATCHES, &o.nb))
                return 2;
        } else if (!strcmp(a, "--iters") || !strcmp(a, "--reps")) {
            if (akt_cli_int("bench-zsq", a, v, 1, 1000000, &o.iters))
                return 2;
        } else if (!strcmp(a, "--warmup")) {
            if (akt_cli_int("bench-zsq", a, v, 1, 1000000, &o.warmup))
                return 2;
        } else if (!strcmp(a, "--max-wait")) {
            int w;
            if (akt_cli_int("bench-zsq", a, v, 0, 86400, &w))
                return 2;
            o.max_wait_s = w;
        } else if (!strcmp(a, "--threads")) {
            if (akt_cli_int("bench-zsq", a, v, 1, 1024, &o.threads))
                return 2;
        } else if (!strcmp(a, "--wbits")) {
            o.wbits = v;
        } else if (!strcmp(a, "--abits")) {
            o.abits = v;
        } else if (!strcmp(a, "--seed")) {
            o.seed = v;
        } else if (!strcmp(a, "--teacher")) {
            o.teacher = v;
        } else if (!strcmp(a, "--depth")) {
            if (akt_cli_int("bench-zsq", a, v, 8, 6 * AKT_RESNET_MAX_N + 2, &depth))
                return 2;
            if (!akt_resnet_depth_valid(depth))
                return akt_cli_usage_error("bench-zsq", "--depth %d is not 6n+2", depth);
        } else if (!strcmp(a, "--data")) {
            o.data = v;
        } else if (!strcmp(a, "--set")) {
            if (o.n_sets == MAX_SETS)
                return akt_cli_usage_error("bench-zsq", "too many --set");
            if (!strchr(v, '='))
                return akt_cli_usage_error("bench-zsq", "--set expects KEY=VALUE, got '%s'", v);
            snprintf(o.sets[o.n_sets++], sizeof o.sets[0], "%s", v);
        } else if (!strcmp(a, "--plugin-dir")) {
            if (n_dirs == MAX_DIRS)
                return akt_cli_usage_error("bench-zsq", "too many --plugin-dir");
            dirs[n_dirs++] = v;
        } else {
            return akt_cli_usage_error("bench-zsq", "unknown option '%s'", a);
        }
        i++;
    }
    if (!o.teacher) {
        char rel[96];
        snprintf(rel, sizeof rel, "teachers/resnet%d_cifar10_akamaster_optA.h5", depth);
        o.teacher = akt_cli_default_path(rel, tbuf, sizeof tbuf);
    }
    if (!o.teacher)
        return akt_cli_usage_error("bench-zsq", "--teacher is required (or set AKT_DATA)");
    {
        /* the depth names the lines: read it off the teacher actually used */
        struct akt_resnet m;
        struct akt_error e = {0};
        if (akt_resnet_load(&m, o.teacher, &e))
            return akt_cli_fail(&e);
        o.depth = m.depth;
        akt_resnet_free(&m);
    }
    if (!o.data)
        return akt_cli_usage_error("bench-zsq", "--data is required (or set AKT_DATA)");
    if (o.n_gens == 0) {
        o.gens[o.n_gens++] = "gdfq";
        o.gens[o.n_gens++] = "adadfq";
    }
    if (o.nb == 0) {
        o.batches[o.nb++] = 32;
        o.batches[o.nb++] = 200;
    }

    struct akt_registry reg;
    if (akt_cli_load_plugins(&reg, dirs, n_dirs))
        return 1;
    int rc = 0;
    fprintf(stderr, "# akt bench-zsq: threads %d, median of %d iterations after %d warm-up, "
            "teacher %s\n", o.threads, o.iters, o.warmup, o.teacher);
    for (int bi = 0; bi < o.nb && !rc; bi++)
        for (int gi = 0; gi < o.n_gens && !rc; gi++)
            rc = bench_one(&reg, &o, o.gens[gi], o.batches[bi]);
    akt_registry_free(&reg);
    return rc;
}
