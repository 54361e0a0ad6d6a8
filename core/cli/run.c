/* akt run: every run of a YAML experiment (experiments/README.md), into one
 * results file. The whole matrix is validated before the first run starts. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "akt/akt.h"
#include "akt/experiment.h"
#include "akt/results.h"
#include "akt/run.h"
#include "cli.h"

static const char *RUN_USAGE =
    "usage: akt run FILE.yaml [options]\n"
    "\n"
    "Expands the experiment's matrix (schema: experiments/README.md), validates\n"
    "every run, then trains them in order into one results file. Runs already\n"
    "marked done in that file are skipped; unfinished ones resume. Ends with a\n"
    "table: id, best_top1, final_top1, status.\n"
    "\n"
    "  --out FILE.h5     results file (default NAME.h5 in the current folder,\n"
    "                    NAME from the experiment's name:)\n"
    "  --dry-run         print one line per run (index, id, settings) and exit\n"
    "  --threads N       worker threads for every run (overrides the file)\n"
    "  --plugin-dir DIR  load plugins from DIR (repeatable; default $AKT_PLUGIN_PATH\n"
    "                    or the built-in folders)\n"
    "  --quiet           no progress output\n"
    "\n"
    "Relative teacher/data paths in the file resolve against $AKT_DATA when it is\n"
    "set, else against the file's folder.\n";

static volatile sig_atomic_t g_stop;
static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

struct progress {
    int quiet;
    const char *id;
};

static void on_epoch(const struct akt_epoch_report *r, void *user)
{
    const struct progress *p = user;
    if (!p->quiet)
        fprintf(stderr, "  %s epoch %d/%d  top1 %.2f  loss_g %.4f  loss_q %.4f  %.1fs\n", p->id,
                r->epoch + 1, r->epochs, r->top1, r->loss_g, r->loss_q, r->seconds);
}

static void print_run(int i, const struct akt_run_config *c)
{
    printf("%3d  %-32s generator=%s loss=%s wbits=%d abits=%d seed=%llu epochs=%d iters=%d "
           "batch=%d\n",
           i + 1, c->id, c->generator, c->loss, c->wbits, c->abits, (unsigned long long)c->seed,
           c->epochs, c->iters, c->batch);
}

#define MAX_DIRS 8

struct outcome {
    double best, final;
    const char *status; /* done, skipped (done before), failed, interrupted, not run */
};

int akt_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},     {"dry-run", no_argument, 0, 'n'},
        {"threads", required_argument, 0, 'j'}, {"plugin-dir", required_argument, 0, 'P'},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *out = NULL, *dirs[MAX_DIRS];
    int n_dirs = 0, dry = 0, quiet = 0, threads = 0;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'o': out = optarg; break;
        case 'n': dry = 1; break;
        case 'j':
            if (akt_cli_int("run", "--threads", optarg, 1, 256, &threads))
                return 2;
            break;
        case 'P':
            if (n_dirs == MAX_DIRS) return akt_cli_usage_error("run", "too many --plugin-dir");
            dirs[n_dirs++] = optarg;
            break;
        case 'q': quiet = 1; break;
        case 'h': fputs(RUN_USAGE, stdout); return 0;
        case ':': return akt_cli_usage_error("run", "option '%s' needs a value", argv[optind - 1]);
        default: return akt_cli_usage_error("run", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return akt_cli_usage_error("run", "an experiment file is required");
    if (optind + 1 < argc)
        return akt_cli_usage_error("run", "unexpected argument '%s'", argv[optind + 1]);
    const char *path = argv[optind];

    struct akt_error e = {0};
    struct akt_registry reg;
    akt_registry_init(&reg);
    int rc = 0;
    for (int i = 0; i < n_dirs && !rc; i++)
        rc = akt_registry_load_dir(&reg, dirs[i], &e);
    if (!rc && n_dirs == 0)
        rc = akt_registry_load_default(&reg, &e);
    if (rc) {
        akt_registry_free(&reg);
        return akt_cli_fail(&e);
    }
    struct akt_experiment x;
    if ((rc = akt_experiment_load(&x, path, &reg, getenv("AKT_DATA"), &e))) {
        akt_registry_free(&reg);
        akt_cli_fail(&e);
        return rc == AKT_EIO ? 1 : 2; /* a bad file is a usage error, as in train */
    }
    char outbuf[1024];
    if (!out) {
        snprintf(outbuf, sizeof outbuf, "%s.h5", x.name);
        out = outbuf;
    }
    if (dry) {
        for (int i = 0; i < x.n_runs; i++)
            print_run(i, &x.runs[i].config);
        if (!quiet)
            fprintf(stderr, "%d runs from %s, results would go to %s\n", x.n_runs, path, out);
        akt_experiment_free(&x);
        akt_registry_free(&reg);
        return 0;
    }

    struct outcome *oc = calloc((size_t)x.n_runs, sizeof *oc);
    AKT_ASSERT(oc);
    for (int i = 0; i < x.n_runs; i++)
        oc[i] = (struct outcome){-1, -1, "not run"};
    /* runs already done in the results file */
    struct akt_results *res_file;
    if ((rc = akt_results_open(&res_file, out, &e))) {
        free(oc);
        akt_experiment_free(&x);
        akt_registry_free(&reg);
        return akt_cli_fail(&e);
    }
    for (int i = 0; i < x.n_runs; i++) {
        char status[32];
        const char *id = x.runs[i].config.id;
        if (akt_results_has_run(res_file, id) &&
            akt_results_get_status(res_file, id, status, sizeof status) == 0 &&
            !strcmp(status, "done")) {
            oc[i].status = "skipped";
            akt_results_get_attr(res_file, id, "best_top1", &oc[i].best);
            akt_results_get_attr(res_file, id, "final_top1", &oc[i].final);
        }
    }
    if ((rc = akt_results_close(res_file, &e))) {
        free(oc);
        akt_experiment_free(&x);
        akt_registry_free(&reg);
        return akt_cli_fail(&e);
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int failed = 0;
    for (int i = 0; i < x.n_runs && !g_stop; i++) {
        struct akt_run_config c = x.runs[i].config;
        if (!strcmp(oc[i].status, "skipped")) {
            if (!quiet)
                fprintf(stderr, "[%d/%d] %s: done already, skipped\n", i + 1, x.n_runs, c.id);
            continue;
        }
        snprintf(c.out_path, sizeof c.out_path, "%s", out);
        if (threads)
            c.threads = threads;
        if (!quiet)
            fprintf(stderr, "[%d/%d] %s\n", i + 1, x.n_runs, c.id);
        struct progress prog = {.quiet = quiet, .id = c.id};
        struct akt_run_callbacks cb = {
            .epoch = on_epoch, .stop = (volatile int *)&g_stop, .user = &prog};
        struct akt_run_result r;
        memset(&r, 0, sizeof r);
        struct akt_error re = {0};
        if ((rc = akt_run_train(&c, &reg, &cb, &r, &re))) {
            akt_cli_fail(&re);
            oc[i].status = rc == AKT_EINTR ? "interrupted" : "failed";
            failed++;
            if (rc == AKT_EINTR)
                break;
            continue;
        }
        oc[i] = (struct outcome){r.best_top1, r.final_top1, "done"};
    }

    int w = 2;
    for (int i = 0; i < x.n_runs; i++) {
        int l = (int)strlen(x.runs[i].config.id);
        w = l > w ? l : w;
    }
    printf("%-*s  %9s  %10s  %s\n", w, "id", "best_top1", "final_top1", "status");
    for (int i = 0; i < x.n_runs; i++) {
        const struct outcome *o = &oc[i];
        if (o->best >= 0)
            printf("%-*s  %9.2f  %10.2f  %s\n", w, x.runs[i].config.id, o->best, o->final,
                   o->status);
        else
            printf("%-*s  %9s  %10s  %s\n", w, x.runs[i].config.id, "-", "-", o->status);
    }
    if (!quiet)
        fprintf(stderr, "results: %s\n", out);
    free(oc);
    akt_experiment_free(&x);
    akt_registry_free(&reg);
    return failed || g_stop ? 1 : 0;
}
