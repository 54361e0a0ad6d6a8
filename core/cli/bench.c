/* akt bench: ResNet-20 speed on synthetic data (random weights and inputs).
 *
 * For each batch size: ms per eval forward (BN running stats, nothing
 * recorded) and per training step (BN batch statistics, cross-entropy,
 * backward, plain SGD over the parameter table), median of --reps timed runs
 * after --warmup untimed ones. Output lines follow the PyTorch baseline
 * (../shared/bench/torch_baseline.py) so the two can be read side by side:
 *   name median_ms images_per_s GFLOP_per_s
 * FLOPs: 81.6 MFLOP per image forward (conv1x1 shortcuts, as the baseline),
 * a training step counted as 3x forward. */
#include "cli.h"

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
    "  --warmup N   untimed repetitions first (default 3)\n";

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

struct bench_data {
    float *x;
    int *labels;
    int batch;
};

static void eval_forward(struct akt_resnet *m, struct akt_tape *t, const struct bench_data *d)
{
    akt_tape_reset(t);
    t->recording = 0;
    int shape[4] = {d->batch, 3, 32, 32};
    struct akt_tensor *x = akt_tensor_from(t, d->x, 4, shape);
    struct akt_resnet_opts o = {.bn_batch = 0, .param_grads = 0};
    struct akt_resnet_out out;
    akt_resnet_forward(m, t, x, &o, &out);
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

static void report(const char *name, int batch, double ms, double flop_per_img)
{
    printf("%s_b%d %.2f %.1f %.1f\n", name, batch, ms, batch * 1e3 / ms,
           flop_per_img * batch / (ms * 1e-3) / 1e9);
    fflush(stdout);
}

static int parse_batches(const char *val, int *batches, int *nb)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", val);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int b;
        if (*nb >= MAX_BATCHES)
            return akt_cli_usage_error("bench", "at most %d batch sizes", MAX_BATCHES), -1;
        if (akt_cli_int("bench", "--batch", tok, 1, 4096, &b))
            return -1;
        batches[(*nb)++] = b;
    }
    if (*nb == 0)
        return akt_cli_usage_error("bench", "--batch expects a value"), -1;
    return 0;
}

int akt_cmd_bench(int argc, char **argv)
{
    int batches[MAX_BATCHES], nb = 0, threads = 2, reps = 10, warmup = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(BENCH_USAGE, stdout);
            return 0;
        } else if (!strcmp(a, "--batch")) {
            if (!v)
                return akt_cli_usage_error("bench", "--batch expects a value");
            if (parse_batches(v, batches, &nb))
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
    akt_threads_set(threads);
    printf("# akt bench: ResNet-20 (conv1x1 shortcuts), threads %d, median of %d after %d warm-up\n"
           "# name median_ms images_per_s GFLOP_per_s\n",
           threads, reps, warmup);

    struct akt_rng rng;
    akt_rng_seed(&rng, 1);
    struct akt_resnet m;
    akt_resnet_init(&m, 10, AKT_SHORTCUT_CONV1X1);
    akt_resnet_init_random(&m, &rng);
    double *times = malloc((size_t)reps * sizeof(double));
    AKT_ASSERT(times != NULL);
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

        for (int r = 0; r < warmup + reps; r++) {
            double t0 = akt_time_ms();
            eval_forward(&m, &t, &d);
            if (r >= warmup)
                times[r - warmup] = akt_time_ms() - t0;
        }
        report("fwd_eval", B, median(times, reps), MFLOP_FWD * 1e6);

        for (int r = 0; r < warmup + reps; r++) {
            double t0 = akt_time_ms();
            float loss = train_step(&m, &t, &d, 1e-3f);
            if (r >= warmup)
                times[r - warmup] = akt_time_ms() - t0;
            if (!(loss == loss) || loss > 1e30f) {
                fprintf(stderr, "akt: error: bench: training loss is not finite\n");
                rc = 1;
                break;
            }
        }
        if (rc == 0)
            report("train_step", B, median(times, reps), 3 * MFLOP_FWD * 1e6);
        akt_tape_free(&t);
        free(d.x);
        free(d.labels);
    }
    free(times);
    akt_resnet_free(&m);
    return rc;
}
