/* akt bench: ResNet-20 speed on synthetic data (random weights and inputs).
 *
 * For each batch size: ms per eval forward (BN running stats, nothing
 * recorded) and per training step (BN batch statistics, cross-entropy,
 * backward, plain SGD over the parameter table), median of --reps timed runs
 * after --warmup untimed ones. Output lines follow the PyTorch baseline
 * (../shared/bench/torch_baseline.py) so the two can be read side by side:
 *   name median_ms images_per_s GFLOP_per_s
 * FLOPs: 81.6 MFLOP per image forward (conv1x1 shortcuts, as the baseline),
 * a training step counted as 3x forward.
 *
 * Shared machines: like the baseline, every timed call measures the user CPU
 * time other processes used meanwhile (/proc/stat minus our own); a call they
 * disturbed (more than max(0.03 s, 5% of our threads' time)) is rejected, we
 * wait for the machine to be quiet and re-warm, until --reps clean calls or
 * 5x --reps tries. Short of clean calls, the least disturbed rejected ones
 * fill up and the line is flagged CONTENDED on stderr. */
#include "cli.h"

#include "akt/eval.h"
#include "akt/nn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MFLOP_FWD 81.6
#define MAX_BATCHES 16

static const char *BENCH_USAGE =
    "usage: akt bench [--batch N[,N...]]... [--threads N] [--reps N] [--warmup N]\n"
    "  ResNet-20 eval forward and training step times on synthetic data.\n"
    "  --batch N    batch size(s), repeatable or comma-separated (default 32,128)\n"
    "  --threads N  threads (default 2)\n"
    "  --reps N     timed repetitions, the median is printed (default 10)\n"
    "  --warmup N   untimed repetitions first (default 3)\n"
    "  --max-wait S seconds to wait for a quiet machine after a disturbed call\n"
    "               (default 300, as the PyTorch baseline; 0 keeps every call)\n";

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* --------------------------------------------- contention (baseline's) --- */

struct bench_data {
    float *x;
    int *labels;
    int batch;
};

static int eval_forward(struct akt_resnet *m, struct akt_tape *t, const struct bench_data *d)
{
    akt_tape_reset(t);
    t->recording = 0;
    int shape[4] = {d->batch, 3, 32, 32};
    struct akt_tensor *x = akt_tensor_from(t, d->x, 4, shape);
    struct akt_resnet_opts o = {.bn_batch = 0, .param_grads = 0};
    struct akt_resnet_out out;
    akt_resnet_forward(m, t, x, &o, &out);
    return 0;
}

/* Returns the loss (to check it stays finite). */
static float train_step(struct akt_resnet *m, struct akt_tape *t, const struct bench_data *d,
                        float lr)
{
    akt_tape_reset(t);
    t->recording = 1;
    memset(m->grads, 0, (size_t)m->n_values * sizeof(float));
    int shape[4] = {d->batch, 3, 32, 32};
    struct akt_tensor *x = akt_tensor_from(t, d->x, 4, shape);
    struct akt_resnet_opts o = {.bn_batch = 1, .param_grads = 1};
    struct akt_resnet_out out;
    akt_resnet_forward(m, t, x, &o, &out);
    struct akt_tensor *loss = akt_cross_entropy(t, out.logits, d->labels);
    akt_backward(t, loss);
    for (int i = 0; i < m->n_params; i++) {
        const struct akt_param *p = &m->params[i];
        if (p->kind != AKT_PARAM_WEIGHT)
            continue;
        float *v = m->values + p->offset;
        const float *g = m->grads + p->offset;
        for (int64_t j = 0; j < p->n; j++)
            v[j] -= lr * g[j];
    }
    return loss->data[0];
}

struct timing {
    int reps, warmup, threads, max_wait;
    double *clean, *dirty_ms, *dirty_foreign; /* [5 * reps] each */
};

/* Median of the clean times, topped up with the least disturbed rejected
 * ones when there are too few (flagged CONTENDED on stderr). */
static double fill_median(struct timing *t, int nc, int nd, const char *name)
{
    int n = nc;
    if (nc < t->reps) {
        /* selection by foreign time, smallest first */
        for (int k = 0; k < nd && n < t->reps; k++) {
            int best = -1;
            for (int j = 0; j < nd; j++) {
                double f = t->dirty_foreign[j];
                if (f >= 0 && (best < 0 || f < t->dirty_foreign[best]))
                    best = j;
            }
            t->clean[n++] = t->dirty_ms[best];
            t->dirty_foreign[best] = -1;
        }
        fprintf(stderr, "# %s: only %d clean calls of %d, CONTENDED\n", name, nc, t->reps);
    } else if (nd > 0) {
        fprintf(stderr, "# %s: %d disturbed calls rejected\n", name, nd);
    }
    return n > 0 ? median(t->clean, n) : 0.0;
}

/* One training step; nonzero (after an error message) if the loss is not
 * finite. */
static int train_step_ok(struct akt_resnet *m, struct akt_tape *t, const struct bench_data *d)
{
    float loss = train_step(m, t, d, 1e-3f);
    if (!(loss == loss) || loss > 1e30f) {
        fprintf(stderr, "akt: error: bench: training loss is not finite\n");
        return 1;
    }
    return 0;
}

/* Median ms of t->reps clean calls of call(m, tp, d) (see the top comment).
 * *fail is set when a call returns nonzero. */
typedef int (*bench_fn)(struct akt_resnet *, struct akt_tape *, const struct bench_data *);
static double timed(struct timing *t, const char *name, bench_fn call, struct akt_resnet *m,
                    struct akt_tape *tp, const struct bench_data *d, int *fail)
{
    for (int w = 0; w < t->warmup && !*fail; w++)
        *fail = call(m, tp, d);
    int nc = 0, nd = 0, tries = 0;
    while (!*fail && nc < t->reps && tries < 5 * t->reps) {
        tries++;
        double m0, s0;
        akt_cli_user_seconds(&m0, &s0);
        double t0 = akt_time_ms();
        *fail = call(m, tp, d);
        double dt = akt_time_ms() - t0, foreign = akt_cli_foreign_since(m0, s0);
        double lim = 0.05 * t->threads * dt * 1e-3;
        if (t->max_wait == 0 || foreign <= (lim > 0.03 ? lim : 0.03)) {
            t->clean[nc++] = dt;
        } else {
            t->dirty_ms[nd] = dt;
            t->dirty_foreign[nd++] = foreign;
            akt_cli_wait_quiet(t->max_wait, 5);
            if (!*fail)
                *fail = call(m, tp, d); /* re-warm after the pause, untimed */
        }
    }
    return fill_median(t, nc, nd, name);
}

static void report(const char *name, int batch, double ms, double flop_per_img)
{
    printf("%s_b%d %.2f %.1f %.1f\n", name, batch, ms, batch * 1e3 / ms,
           flop_per_img * batch / (ms * 1e-3) / 1e9);
    fflush(stdout);
}

int akt_cmd_bench(int argc, char **argv)
{
    int batches[MAX_BATCHES], nb = 0, threads = 2, reps = 10, warmup = 3, max_wait = 300;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(BENCH_USAGE, stdout);
            return 0;
        } else if (!strcmp(a, "--batch")) {
            if (!v)
                return akt_cli_usage_error("bench", "--batch expects a value");
            if (akt_cli_batches("bench", v, 4096, batches, MAX_BATCHES, &nb))
                return 2;
            i++;
        } else if (!strcmp(a, "--threads")) {
            if (akt_cli_int("bench", a, v, 1, 256, &threads))
                return 2;
            i++;
        } else if (!strcmp(a, "--reps")) {
            if (akt_cli_int("bench", a, v, 1, 100000, &reps))
                return 2;
            i++;
        } else if (!strcmp(a, "--max-wait")) {
            if (akt_cli_int("bench", a, v, 0, 100000, &max_wait))
                return 2;
            i++;
        } else if (!strcmp(a, "--warmup")) {
            if (akt_cli_int("bench", a, v, 0, 100000, &warmup))
                return 2;
            i++;
        } else {
            return akt_cli_usage_error("bench", "unknown option '%s'", a);
        }
    }
    if (nb == 0) {
        batches[nb++] = 32;
        batches[nb++] = 128;
    }
    /* every batch checked before the first allocation of any */
    for (int bi = 0; bi < nb; bi++) {
        struct akt_resnet probe;
        struct akt_error e = {0};
        akt_resnet_init(&probe, 20, 10, AKT_SHORTCUT_CONV1X1);
        int rc = akt_mem_check("--batch", batches[bi],
                               akt_resnet_train_bytes(&probe) + 4.0 * AKT_CIFAR_PIXELS, 0,
                               "a training step", &e);
        akt_resnet_free(&probe);
        if (rc)
            return akt_cli_fail(&e);
    }
    akt_threads_set(threads);
    printf("# akt bench: ResNet-20 (conv1x1 shortcuts), threads %d, median of %d after %d warm-up\n"
           "# name median_ms images_per_s GFLOP_per_s\n",
           threads, reps, warmup);

    struct akt_rng rng;
    akt_rng_seed(&rng, 1);
    struct akt_resnet m;
    akt_resnet_init(&m, 20, 10, AKT_SHORTCUT_CONV1X1);
    akt_resnet_init_random(&m, &rng);
    struct timing tm = {reps, warmup, threads, max_wait, malloc(5 * (size_t)reps * sizeof(double)),
                        malloc(5 * (size_t)reps * sizeof(double)),
                        malloc(5 * (size_t)reps * sizeof(double))};
    AKT_ASSERT(tm.clean && tm.dirty_ms && tm.dirty_foreign);
    int rc = 0;
    for (int bi = 0; bi < nb && rc == 0; bi++) {
        int B = batches[bi];
        struct bench_data d = {malloc((size_t)B * 3 * 32 * 32 * sizeof(float)),
                               malloc((size_t)B * sizeof(int)), B};
        AKT_ASSERT(d.x && d.labels);
        for (int i = 0; i < B * 3 * 32 * 32; i++)
            d.x[i] = akt_rng_normal(&rng);
        for (int i = 0; i < B; i++)
            d.labels[i] = (int)akt_rng_below(&rng, 10);
        struct akt_tape t;
        akt_tape_init(&t, (size_t)64 << 20);

        char name[64];
        double ms;
        snprintf(name, sizeof name, "fwd_eval_b%d", B);
        ms = timed(&tm, name, eval_forward, &m, &t, &d, &rc);
        report("fwd_eval", B, ms, MFLOP_FWD * 1e6);

        snprintf(name, sizeof name, "train_step_b%d", B);
        ms = timed(&tm, name, train_step_ok, &m, &t, &d, &rc);
        if (rc == 0)
            report("train_step", B, ms, 3 * MFLOP_FWD * 1e6);
        akt_tape_free(&t);
        free(d.x);
        free(d.labels);
    }
    free(tm.clean);
    free(tm.dirty_ms);
    free(tm.dirty_foreign);
    akt_resnet_free(&m);
    return rc;
}
