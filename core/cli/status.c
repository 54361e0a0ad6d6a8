/* akt status: where every run of a results file (or of an experiment) stands,
 * read-only, while akt writes the file too. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/experiment.h"
#include "akt/registry.h"
#include "akt/results.h"
#include "akt/run.h"
#include "cli.h"

static const char *STATUS_USAGE =
    "usage: akt status RESULTS.h5\n"
    "       akt status EXPERIMENT.yaml [--out RESULTS.h5] [--plugin-dir DIR]\n"
    "\n"
    "One line per run: its status, epochs done of planned, the best top-1 so far\n"
    "(and its 0-based epoch), and why it failed or stopped. Statuses:\n"
    "  done         finished\n"
    "  running      in progress: a process is writing it now\n"
    "  killed       its process died (kill -9, power loss): not finished; rerun\n"
    "               the same command to resume from the last completed epoch\n"
    "  interrupted  stopped by SIGINT/SIGTERM after saving\n"
    "  failed       stopped by an error (the message follows)\n"
    "  not started  in the experiment but not (yet) in the results file\n"
    "With an experiment file, every run it expands to is listed; the results\n"
    "file is --out (default NAME.h5, as akt run). Runs in progress are read from\n"
    "their run files (RESULTS.h5.d/). Exit status 1 when a run failed, 0 else.\n";

#define MAX_DIRS 8

struct line {
    char status[32], epochs[48], best[32], epoch[16];
    const char *message;
};

static void describe(struct akt_results *h, const char *id, int active, struct line *l,
                     char **msg)
{
    memset(l, 0, sizeof *l);
    *msg = NULL;
    if (akt_results_get_status(h, id, l->status, sizeof l->status) != 0)
        snprintf(l->status, sizeof l->status, "unreadable");
    if (!strcmp(l->status, "running") && !active)
        snprintf(l->status, sizeof l->status, "killed");
    char *config = akt_results_run_str(h, id, "config");
    char planned[32] = "?";
    if (config)
        akt_config_text_get(config, "epochs", planned, sizeof planned);
    free(config);
    /* epochs done: the top1 rows (one per completed epoch) */
    int64_t rows = akt_results_rows(h, id, "top1");
    if (rows < 0)
        rows = 0;
    snprintf(l->epochs, sizeof l->epochs, "%lld/%s", (long long)rows, planned);
    snprintf(l->best, sizeof l->best, "-");
    snprintf(l->epoch, sizeof l->epoch, "-");
    if (rows > 0) {
        double *v = malloc((size_t)rows * sizeof *v);
        int64_t *st = malloc((size_t)rows * sizeof *st);
        if (v && st && akt_results_read_metric(h, id, "top1", st, v, rows, 1, NULL) == 0) {
            int64_t b = 0;
            for (int64_t i = 1; i < rows; i++)
                if (v[i] > v[b])
                    b = i;
            snprintf(l->best, sizeof l->best, "%.2f", v[b]);
            snprintf(l->epoch, sizeof l->epoch, "%lld", (long long)st[b]);
        }
        free(v);
        free(st);
    }
    char *m = akt_results_run_str(h, id, "status_message");
    if (m && *m) {
        *msg = m;
        l->message = m;
    } else {
        free(m);
        if (!strcmp(l->status, "killed"))
            l->message = "not finished: rerun the same command to resume";
    }
}

int akt_cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},
        {"plugin-dir", required_argument, 0, 'P'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *out = NULL, *dirs[MAX_DIRS];
    int n_dirs = 0;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'o': out = optarg; break;
        case 'P':
            if (n_dirs == MAX_DIRS) return akt_cli_usage_error("status", "too many --plugin-dir");
            dirs[n_dirs++] = optarg;
            break;
        case 'h': fputs(STATUS_USAGE, stdout); return 0;
        case ':': return akt_cli_usage_error("status", "option '%s' needs a value",
                                             argv[optind - 1]);
        default: return akt_cli_usage_error("status", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc)
        return akt_cli_usage_error("status", "expected one results or experiment file, got %d",
                                   argc - optind);
    const char *arg = argv[optind];
    size_t al = strlen(arg);
    int is_yaml = (al > 5 && !strcmp(arg + al - 5, ".yaml")) ||
                  (al > 4 && !strcmp(arg + al - 4, ".yml"));
    if (out && !is_yaml)
        return akt_cli_usage_error("status", "--out goes with an experiment file");

    struct akt_error e = {0};
    struct akt_experiment x = {0};
    struct akt_registry reg;
    int have_x = 0;
    char outbuf[1200];
    const char *path = arg;
    if (is_yaml) {
        if (akt_cli_load_plugins(&reg, dirs, n_dirs))
            return 1;
        const char *root = getenv("AKT_DATA");
        int rc = akt_experiment_load(&x, arg, &reg, root && *root ? root : NULL, &e);
        if (rc) {
            akt_registry_free(&reg);
            akt_cli_fail(&e);
            return rc == AKT_EIO ? 1 : 2;
        }
        have_x = 1;
        if (!out) {
            snprintf(outbuf, sizeof outbuf, "%s.h5", x.name);
            out = outbuf;
        }
        path = out;
    }
    struct akt_results_view v = {0};
    int have_v = 0;
    if (akt_results_view_open(&v, path, &e)) {
        /* an experiment not started at all: every run is "not started" */
        if (!have_x) {
            return akt_cli_fail(&e);
        }
    } else {
        have_v = 1;
    }
    int active = akt_results_writer_active(path);
    int n = have_x ? x.n_runs : v.n, failed = 0;
    printf("%-40s %-12s %9s %9s %5s  %s\n", "run", "status", "epochs", "best_top1", "epoch",
           "message");
    for (int i = 0; i < n; i++) {
        const char *id = have_x ? x.runs[i].config.id : v.ids[i];
        struct akt_results *h = NULL;
        for (int k = 0; have_v && k < v.n; k++)
            if (!strcmp(v.ids[k], id))
                h = v.where[k];
        struct line l;
        char *msg = NULL;
        if (h) {
            describe(h, id, active, &l, &msg);
        } else {
            memset(&l, 0, sizeof l);
            snprintf(l.status, sizeof l.status, "not started");
            snprintf(l.epochs, sizeof l.epochs, "0/%d", x.runs[i].config.epochs);
            snprintf(l.best, sizeof l.best, "-");
            snprintf(l.epoch, sizeof l.epoch, "-");
        }
        failed |= !strcmp(l.status, "failed");
        printf("%-40s %-12s %9s %9s %5s  %s\n", id, l.status, l.epochs, l.best, l.epoch,
               l.message ? l.message : "");
        free(msg);
    }
    if (have_v)
        akt_results_view_close(&v);
    if (have_x) {
        akt_experiment_free(&x);
        akt_registry_free(&reg);
    }
    return failed ? 1 : 0;
}
