/* akt hessian: Hutchinson trace of the student's loss Hessian for a stored
 * run (SPEC 8; core/run/analysis.c). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/akt.h"
#include "akt/run.h"
#include "cli.h"

static void progress(int done, int total, double seconds, void *user)
{
    (void)user;
    fprintf(stderr, "akt: hessian: gradient %d/%d (%.1fs)\n", done, total, seconds);
}

static const char *HESSIAN_USAGE =
    "usage: akt hessian FILE.h5 --run ID [options]\n"
    "\n"
    "Hessian trace of a run's student training loss (SPEC 8). The run is rebuilt\n"
    "from its stored config and the latest checkpoint (a finished or an\n"
    "interrupted run); its generator draws one fixed batch, and the trace of the\n"
    "Hessian of the student loss (the run's loss plugin against the teacher's\n"
    "outputs on that batch, range trackers frozen) w.r.t. the student's\n"
    "trainable arrays is estimated with Hutchinson's method: Rademacher probes\n"
    "v, v^T H v from central differences of gradients,\n"
    "(g(w + eps v) - g(w - eps v)) / (2 eps). Per array, the same probes give the\n"
    "trace of that array's diagonal block of H; the total is their sum.\n"
    "Results go to /runs/ID/analysis/hessian in FILE.h5 (results/README.md);\n"
    "prints one line per array and the total.\n"
    "\n"
    "  --run ID          run id in the results file (required)\n"
    "  --probes M        Rademacher probes, 2 gradients each (default 16)\n"
    "  --eps E           central-difference step (default 1e-3)\n"
    "  --batch B         images in the fixed batch (default: the run's batch)\n"
    "  --seed S          seed of the batch and the probes (default: the run's seed + 1)\n"
    "  --plugin-dir DIR  load plugins from DIR (repeatable; default $AKT_PLUGIN_PATH\n"
    "                    or the built-in folders)\n"
    "  --quiet           no progress output\n";

#define MAX_DIRS 8

int akt_cmd_hessian(int argc, char **argv)
{
    static const struct option opts[] = {
        {"run", required_argument, 0, 'r'},    {"probes", required_argument, 0, 'm'},
        {"eps", required_argument, 0, 'e'},    {"batch", required_argument, 0, 'B'},
        {"seed", required_argument, 0, 'S'},   {"plugin-dir", required_argument, 0, 'P'},
        {"quiet", no_argument, 0, 'q'},        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *dirs[MAX_DIRS], *id = NULL;
    int n_dirs = 0, v;
    struct akt_hessian_opts o;
    akt_hessian_opts_defaults(&o);
    int quiet = 0;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'r': id = optarg; break;
        case 'm':
            if (akt_cli_int("hessian", "--probes", optarg, 1, 1000000, &o.probes)) return 2;
            break;
        case 'e': {
            char *end = NULL;
            o.eps = strtod(optarg, &end);
            if (!*optarg || *end || !isfinite(o.eps) || o.eps <= 0)
                return akt_cli_usage_error("hessian", "--eps expects a number > 0, got '%s'",
                                           optarg);
            break;
        }
        case 'B':
            if (akt_cli_int("hessian", "--batch", optarg, 1, 100000, &o.batch)) return 2;
            break;
        case 'S':
            if (akt_cli_int("hessian", "--seed", optarg, 0, 2147483647, &v)) return 2;
            o.seed = v;
            break;
        case 'P':
            if (n_dirs == MAX_DIRS) return akt_cli_usage_error("hessian", "too many --plugin-dir");
            dirs[n_dirs++] = optarg;
            break;
        case 'q': quiet = 1; break;
        case 'h': fputs(HESSIAN_USAGE, stdout); return 0;
        case ':':
            return akt_cli_usage_error("hessian", "option '%s' needs a value", argv[optind - 1]);
        default: return akt_cli_usage_error("hessian", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return akt_cli_usage_error("hessian", "a results file is required");
    const char *path = argv[optind++];
    if (optind < argc)
        return akt_cli_usage_error("hessian", "unexpected argument '%s'", argv[optind]);
    if (!id)
        return akt_cli_usage_error("hessian", "--run is required");

    struct akt_registry reg;
    if (akt_cli_load_plugins(&reg, dirs, n_dirs))
        return 1;
    struct akt_error e = {0};
    int rc = 0;
    struct akt_hessian_result *res = malloc(sizeof *res);
    if (!res) {
        akt_registry_free(&reg);
        fprintf(stderr, "akt: error: out of memory\n");
        return 1;
    }
    if (!quiet)
        o.progress = progress;
    rc = akt_run_hessian(path, id, &reg, &o, res, &e);
    akt_registry_free(&reg);
    if (rc) {
        akt_hessian_result_free(res);
        free(res);
        return akt_cli_fail(&e);
    }
    printf("# run %s, checkpoint epoch %d: %d probes, eps %g, batch %d, seed %llu\n", id,
           res->checkpoint_epoch, res->probes, res->eps, res->batch,
           (unsigned long long)res->seed);
    printf("%-40s %14s\n", "layer", "trace");
    for (int i = 0; i < res->n_layers; i++)
        printf("%-40s %14.6g\n", res->layer[i], res->trace_layer[i]);
    printf("%-40s %14.6g\n", "total", res->trace_total);
    akt_hessian_result_free(res);
    free(res);
    return 0;
}
