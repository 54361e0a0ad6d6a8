/* akt run: every run of a YAML experiment (experiments/README.md), into one
 * results file. The whole matrix is validated before the first run starts. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "akt/akt.h"
#include "akt/experiment.h"
#include "akt/results.h"
#include "akt/run.h"
#include "cli.h"

#ifdef AKT_WITH_MPI
#include <mpi.h>
#endif

static const char *RUN_USAGE =
    "usage: akt run FILE.yaml [options]\n"
    "\n"
    "Expands the experiment's matrix (schema: experiments/README.md), validates\n"
    "every run, then trains them in order into one results file. Runs already\n"
    "marked done in that file with the same configuration are skipped;\n"
    "unfinished ones resume; a stored run with another configuration is refused\n"
    "(see --rerun-changed). Ends with a table: id, best_top1, final_top1, status.\n"
    "\n"
    "  --out FILE.h5     results file (default NAME.h5 in the current folder,\n"
    "                    NAME from the experiment's name:)\n"
    "  --dry-run         print one line per run (index, id, settings) and exit\n"
    "  --shard I/N       run only this shard's runs: run K (0-based, in --dry-run\n"
    "                    order) goes to shard K mod N; I is 0-based, 0..N-1\n"
    "                    (Slurm: --array=0-N-1 and --shard $SLURM_ARRAY_TASK_ID/\n"
    "                    $SLURM_ARRAY_TASK_COUNT). Default --out NAME.shardIofN.h5;\n"
    "                    join the shards with 'akt merge'\n"
    "  --threads N       worker threads for every run (overrides the file). An\n"
    "                    execution setting, not part of a run's identity: an\n"
    "                    unfinished run resumes under another count (with a note:\n"
    "                    bit-identity is promised for one thread count only)\n"
    "  --rerun-changed   a run whose stored configuration differs from the\n"
    "                    experiment's runs again as ID.r2 (ID.r3, ...: the first id\n"
    "                    that is free or holds this configuration); without it such\n"
    "                    a run stops the whole command before anything runs\n"
    "  --set KEY=VALUE   a run setting or plugin parameter for every run, after the\n"
    "                    file's (keys: 'akt train --help'); repeatable, validated\n"
    "                    as the file is, recorded in each run's stored config\n"
    "  --plugin-dir DIR  load plugins from DIR (repeatable; default $AKT_PLUGIN_PATH\n"
    "                    or the built-in folders)\n"
    "  --quiet           no progress output\n"
    "\n"
    "Relative teacher/data paths in the file resolve against $AKT_DATA when it is\n"
    "set, else against the file's folder.\n"
#ifdef AKT_WITH_MPI
    "\n"
    "Built with MPI: under 'mpirun -n N' (N > 1), rank R runs the runs K with\n"
    "K mod N == R into OUT.rankR.h5 (OUT without its .h5), then rank 0 merges\n"
    "them into OUT.h5. --shard cannot be combined with it.\n"
#endif
    ;

static volatile sig_atomic_t g_stop;
static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

struct progress {
    struct akt_cli_progress p;
    int epochs, iters;
};

static void on_iter(int epoch, int iter, int iters, double lg, double lq, void *user)
{
    struct progress *p = user;
    akt_cli_progress_iter(&p->p, epoch, p->epochs, iter, iters, lg, lq);
}

static void on_epoch(const struct akt_epoch_report *r, void *user)
{
    struct progress *p = user;
    akt_cli_progress_epoch(&p->p, r, p->iters);
}

static void on_note(const char *msg, void *user)
{
    struct progress *p = user;
    akt_cli_progress_note(&p->p, msg);
}

static void print_run(int i, const struct akt_run_config *c)
{
    printf("%3d  %-32s generator=%s loss=%s wbits=%d abits=%d seed=%llu epochs=%d iters=%d "
           "batch=%d\n",
           i + 1, c->id, c->generator, c->loss, c->wbits, c->abits, (unsigned long long)c->seed,
           c->epochs, c->iters, c->batch);
}

#define MAX_DIRS 8
#define MAX_SETS 64

/* An outcome's status, as an index into STATUS (MPI reduces it with MAX). */
enum { ST_NOT_RUN, ST_DONE, ST_SKIPPED, ST_FAILED, ST_INTERRUPTED, ST_COUNT };
static const char *const STATUS[ST_COUNT] = {"not run", "done", "skipped", "failed",
                                             "interrupted"};

struct outcome {
    double best, final;
    int status; /* ST_*: skipped = done before */
};

/* --shard I/N: 0 <= I < N. */
static int parse_shard(const char *v, int *i, int *n)
{
    char *end = NULL;
    long a = strtol(v, &end, 10), b = -1;
    int ok = end != v && *end == '/';
    if (ok) {
        const char *q = end + 1;
        b = strtol(q, &end, 10);
        ok = end != q && !*end && b >= 1 && b <= 1000000 && a >= 0 && a < b;
    }
    if (!ok || !(*v >= '0' && *v <= '9'))
        return akt_cli_usage_error(
            "run", "--shard expects I/N with N >= 1 and 0 <= I < N (0-based), got '%s'", v);
    *i = (int)a;
    *n = (int)b;
    return 0;
}

/* OUT.h5 -> OUT.<tag>.h5 (a name without .h5 gets .<tag>.h5 appended). */
static void tagged_path(char *buf, size_t n, const char *out, const char *tag)
{
    size_t l = strlen(out);
    int h5 = l > 3 && !strcmp(out + l - 3, ".h5");
    snprintf(buf, n, "%.*s.%s.h5", (int)(h5 ? l - 3 : l), out, tag);
}

/* The stored config of run c->id in view v against c's: 0 the same (or not
 * stored), 1 different or unreadable (the keys that differ into keys). */
static int stored_differs(struct akt_results_view *v, const struct akt_run_config *c,
                          const struct akt_registry *reg, char *keys, size_t n)
{
    keys[0] = 0;
    int k = -1;
    for (int i = 0; i < v->n && k < 0; i++)
        if (!strcmp(v->ids[i], c->id))
            k = i;
    if (k < 0)
        return 0;
    char *text = akt_results_run_str(v->where[k], c->id, "config");
    char *yaml = akt_run_config_yaml(c, akt_registry_find(reg, AKT_PLUGIN_GENERATOR, c->generator),
                                     akt_registry_find(reg, AKT_PLUGIN_LOSS, c->loss));
    int d = text && yaml ? akt_run_config_text_diff(text, yaml, keys, n) : -1;
    if (d < 0)
        snprintf(keys, n, "unknown: the stored config cannot be read");
    free(text);
    free(yaml);
    return d < 0 ? 1 : d;
}

/* Stale results are never reused: every run of this process (mine[i]) that
 * OUT (or a run file beside it) holds with another configuration is
 * refused, all of them named, before anything runs; with rerun it takes the
 * first id ID.rN (N = 2, 3, ...) that is stored nowhere (and no other run
 * of the experiment has) or holds this very configuration, so that running
 * the same command again finds it. */
static int check_stored(struct akt_experiment *x, const struct akt_registry *reg,
                        const char *out, const char *mine, int rerun)
{
    char dir[1200];
    int exists = 0, have_dir = 0;
    struct akt_error e = {0};
    if (akt_file_check(out, &exists, &e))
        return akt_cli_fail(&e);
    struct stat st;
    if (!akt_results_run_dir(out, dir, sizeof dir))
        have_dir = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    if (!exists && !have_dir)
        return 0;
    struct akt_results_view v;
    if (akt_results_view_open(&v, out, &e))
        return akt_cli_fail(&e);
    int refused = 0;
    for (int i = 0; i < x->n_runs; i++) {
        struct akt_run_config *c = &x->runs[i].config;
        char keys[400], orig[sizeof c->id];
        if (!mine[i] || !stored_differs(&v, c, reg, keys, sizeof keys))
            continue;
        if (!rerun) {
            fprintf(stderr, "akt: error: %s: run '%s' is stored with another configuration "
                            "(keys: %s); its results are not reused: run it under a new id with "
                            "--rerun-changed, or use another --out (nothing was run)\n",
                    out, c->id, keys);
            refused++;
            continue;
        }
        snprintf(orig, sizeof orig, "%s", c->id);
        int found = 0;
        for (int r = 2; r < 10000 && !found; r++) {
            char cand[sizeof c->id + 16];
            snprintf(cand, sizeof cand, "%s.r%d", orig, r);
            if (strlen(cand) >= sizeof c->id)
                break;
            int taken = 0;
            for (int j = 0; j < x->n_runs && !taken; j++)
                taken = j != i && !strcmp(x->runs[j].config.id, cand);
            if (taken)
                continue;
            snprintf(c->id, sizeof c->id, "%s", cand);
            char k2[400];
            found = !stored_differs(&v, c, reg, k2, sizeof k2);
        }
        if (!found) {
            fprintf(stderr, "akt: error: %s: run '%s' is stored with another configuration "
                            "(keys: %s) and no free id '%s.rN' is left\n", out, orig, keys, orig);
            snprintf(c->id, sizeof c->id, "%s", orig);
            refused++;
            continue;
        }
        /* said even with --quiet: the table lists the new id */
        fprintf(stderr, "akt: note: run '%s' is stored with another configuration (keys: "
                            "%s): this one runs as '%s'\n", orig, keys, c->id);
    }
    akt_results_view_close(&v);
    return refused ? 1 : 0;
}

/* MPI: rank and size of the job, size 1 when not launched by an MPI starter. */
static int g_rank, g_size = 1;
#ifdef AKT_WITH_MPI
static int g_mpi;
static int launched_by_mpi(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i]))
            return 1;
    return 0;
}
#endif

static int run_main(int argc, char **argv);

int akt_cmd_run(int argc, char **argv)
{
#ifdef AKT_WITH_MPI
    /* Only under an MPI starter: a plain 'akt run' never calls MPI_Init. */
    if (launched_by_mpi()) {
        int provided;
        if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
            fprintf(stderr, "akt: error: MPI_Init failed\n");
            return 1;
        }
        g_mpi = 1;
        MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
        MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    }
    int rc = run_main(argc, argv);
    if (g_mpi)
        MPI_Finalize();
    return rc;
#else
    return run_main(argc, argv);
#endif
}

static int run_main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"out", required_argument, 0, 'o'},     {"dry-run", no_argument, 0, 'n'},
        {"threads", required_argument, 0, 'j'}, {"plugin-dir", required_argument, 0, 'P'},
        {"quiet", no_argument, 0, 'q'},         {"help", no_argument, 0, 'h'},
        {"shard", required_argument, 0, 's'},   {"set", required_argument, 0, 'S'},
        {"rerun-changed", no_argument, 0, 'R'}, {0, 0, 0, 0}};
    const char *out = NULL, *dirs[MAX_DIRS];
    int n_dirs = 0, dry = 0, quiet = 0, threads = 0, shard_i = 0, shard_n = 1, sharded = 0,
        rerun = 0;
    struct akt_experiment_setting sets[MAX_SETS];
    char kv[MAX_SETS][160];
    int n_sets = 0;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'o':
            if (!*optarg)
                return akt_cli_usage_error("run", "--out needs a file name, got an empty one");
            out = optarg;
            break;
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
        case 'R': rerun = 1; break;
        case 's':
            if (parse_shard(optarg, &shard_i, &shard_n))
                return 2;
            sharded = 1;
            break;
        case 'S': {
            if (n_sets == MAX_SETS)
                return akt_cli_usage_error("run", "more than %d --set", MAX_SETS);
            /* the key is copied, the value stays in argv */
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return akt_cli_usage_error("run", "--set expects KEY=VALUE, got '%s'", optarg);
            if ((size_t)(eq - optarg) >= sizeof kv[0])
                return akt_cli_usage_error("run", "--set key longer than %zu characters",
                                           sizeof kv[0] - 1);
            snprintf(kv[n_sets], sizeof kv[n_sets], "%.*s", (int)(eq - optarg), optarg);
            sets[n_sets] = (struct akt_experiment_setting){kv[n_sets], eq + 1, "--set"};
            n_sets++;
            break;
        }
        case 'h':
            if (g_rank == 0)
                fputs(RUN_USAGE, stdout);
            return 0;
        case ':': return akt_cli_usage_error("run", "option '%s' needs a value", argv[optind - 1]);
        default: return akt_cli_usage_error("run", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return akt_cli_usage_error("run", "an experiment file is required");
    if (optind + 1 < argc)
        return akt_cli_usage_error("run", "unexpected argument '%s'", argv[optind + 1]);
    const char *path = argv[optind];
    int mpi = g_size > 1; /* ranks share the runs and rank 0 merges */
    if (mpi && sharded)
        return akt_cli_usage_error("run", "--shard cannot be combined with mpirun -n %d: the "
                                          "ranks already split the runs", g_size);
    if (mpi) {
        shard_i = g_rank;
        shard_n = g_size;
    }

    struct akt_registry reg;
    if (akt_cli_load_plugins(&reg, dirs, n_dirs))
        return 1;
    struct akt_error e = {0};
    int rc = 0;
    struct akt_experiment x;
    if ((rc = akt_experiment_load_set(&x, path, &reg, getenv("AKT_DATA"), sets, n_sets, &e))) {
        akt_registry_free(&reg);
        akt_cli_fail(&e);
        return rc == AKT_EIO ? 1 : 2; /* a bad file is a usage error, as in train */
    }
    char outbuf[1024], rankbuf[sizeof x.runs[0].config.out_path];
    if (!out && sharded)
        snprintf(outbuf, sizeof outbuf, "%s.shard%dof%d.h5", x.name, shard_i, shard_n);
    else if (!out)
        snprintf(outbuf, sizeof outbuf, "%s.h5", x.name);
    if (!out)
        out = outbuf;
    const char *final_out = out; /* MPI: the merged file */
    if (mpi) {
        char tag[32];
        snprintf(tag, sizeof tag, "rank%d", g_rank);
        tagged_path(rankbuf, sizeof rankbuf, final_out, tag);
        out = rankbuf;
    }
    /* run k is this process's when k mod shard_n == shard_i */
#define MINE(k) ((k) % shard_n == shard_i)
    if (dry) {
        int mine = 0;
        if (g_rank == 0) /* under MPI, rank 0 lists every run */
            for (int i = 0; i < x.n_runs; i++)
                if (mpi || MINE(i)) {
                    print_run(i, &x.runs[i].config);
                    mine++;
                }
        if (!quiet && mpi && g_rank == 0)
            fprintf(stderr, "%d runs from %s over %d MPI ranks (rank R takes run K when K mod %d "
                            "== R), results would go to %s.rankR.h5, then merged into %s\n",
                    x.n_runs, path, g_size, g_size, final_out, final_out);
        else if (!quiet && sharded)
            fprintf(stderr, "%d of %d runs from %s in shard %d/%d, results would go to %s\n",
                    mine, x.n_runs, path, shard_i, shard_n, out);
        else if (!quiet)
            fprintf(stderr, "%d runs from %s, results would go to %s\n", x.n_runs, path, out);
        akt_experiment_free(&x);
        akt_registry_free(&reg);
        return 0;
    }

    /* a changed cell is refused (or renamed) before anything runs. Under
     * MPI a rank that refuses still takes part in the collective calls */
    char *mine = calloc((size_t)x.n_runs, 1);
    AKT_ASSERT(mine);
    for (int i = 0; i < x.n_runs; i++)
        mine[i] = MINE(i);
    int refused = check_stored(&x, &reg, out, mine, rerun);
    free(mine);
    if (refused && !mpi) {
        akt_experiment_free(&x);
        akt_registry_free(&reg);
        return 1;
    }

    struct outcome *oc = calloc((size_t)x.n_runs, sizeof *oc);
    AKT_ASSERT(oc);
    for (int i = 0; i < x.n_runs; i++)
        oc[i] = (struct outcome){-1, -1, ST_NOT_RUN};
    /* runs already done in the results file. Under MPI a rank that fails
     * here still takes part in the collective calls below (no hang). */
    int failed = 0, open_failed = refused, out_exists = 0;
    struct akt_results *res_file = NULL;
    /* read only: every write goes through akt_run_train, under the lock */
    if ((rc = akt_file_check(out, &out_exists, &e)) ||
        (out_exists && (rc = akt_results_open_read(&res_file, out, &e)))) {
        akt_cli_fail(&e);
        open_failed = 1;
    } else if (res_file) {
        for (int i = 0; i < x.n_runs; i++) {
            char status[32];
            const char *id = x.runs[i].config.id;
            if (MINE(i) && akt_results_has_run(res_file, id) &&
                akt_results_get_status(res_file, id, status, sizeof status) == 0 &&
                !strcmp(status, "done")) {
                oc[i].status = ST_SKIPPED;
                akt_results_get_attr(res_file, id, "best_top1", &oc[i].best);
                akt_results_get_attr(res_file, id, "final_top1", &oc[i].final);
            }
        }
        if ((rc = akt_results_close(res_file, &e))) {
            akt_cli_fail(&e);
            open_failed = 1;
        }
    }
    if (open_failed && !mpi) {
        free(oc);
        akt_experiment_free(&x);
        akt_registry_free(&reg);
        return 1;
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    for (int i = 0; i < x.n_runs && !g_stop && !open_failed; i++) {
        struct akt_run_config c = x.runs[i].config;
        if (!MINE(i))
            continue;
        if (oc[i].status == ST_SKIPPED) {
            if (!quiet)
                fprintf(stderr, "[%d/%d] %s: done already, skipped\n", i + 1, x.n_runs, c.id);
            continue;
        }
        snprintf(c.out_path, sizeof c.out_path, "%s", out);
        if (threads)
            c.threads = threads;
        if (!quiet)
            fprintf(stderr, "[%d/%d] %s\n", i + 1, x.n_runs, c.id);
        struct progress prog = {.epochs = c.epochs, .iters = c.iters};
        akt_cli_progress_init(&prog.p, isatty(2), quiet, c.id);
        struct akt_run_callbacks cb = {.iteration = on_iter, .epoch = on_epoch,
                                       .stop = (volatile int *)&g_stop, .user = &prog, .log = akt_cli_log,
                                       .note = on_note};
        struct akt_run_result r;
        memset(&r, 0, sizeof r);
        struct akt_error re = {0};
        if ((rc = akt_run_train(&c, &reg, &cb, &r, &re))) {
            akt_cli_fail(&re);
            oc[i].status = rc == AKT_EINTR ? ST_INTERRUPTED : ST_FAILED;
            failed++;
            if (rc == AKT_EINTR)
                break;
            continue;
        }
        oc[i] = (struct outcome){r.best_top1, r.final_top1, ST_DONE};
    }
    int code = failed || g_stop || open_failed ? 1 : 0;

#ifdef AKT_WITH_MPI
    if (mpi) {
        /* every rank has finished its runs: gather the outcomes (a run's
         * owner has the only non-default entry, so MAX picks it), agree on
         * the exit status, and let rank 0 merge the rank files */
        MPI_Barrier(MPI_COMM_WORLD);
        int *st = malloc((size_t)x.n_runs * sizeof *st);
        double *fig = malloc((size_t)x.n_runs * 2 * sizeof *fig);
        AKT_ASSERT(st && fig);
        for (int i = 0; i < x.n_runs; i++) {
            st[i] = oc[i].status;
            fig[2 * i] = oc[i].best;
            fig[2 * i + 1] = oc[i].final;
        }
        MPI_Allreduce(MPI_IN_PLACE, st, x.n_runs, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        MPI_Allreduce(MPI_IN_PLACE, fig, 2 * x.n_runs, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        MPI_Allreduce(MPI_IN_PLACE, &code, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
        for (int i = 0; i < x.n_runs; i++)
            oc[i] = (struct outcome){fig[2 * i], fig[2 * i + 1], st[i]};
        free(st);
        free(fig);
        if (g_rank == 0) {
            /* the rank files that exist (a rank whose file could not be
             * opened has none) */
            const char **in = calloc((size_t)g_size, sizeof *in);
            char(*names)[1100] = calloc((size_t)g_size, sizeof *names);
            AKT_ASSERT(in && names);
            int n_in = 0;
            for (int r = 0; r < g_size; r++) {
                char tag[32];
                snprintf(tag, sizeof tag, "rank%d", r);
                tagged_path(names[r], sizeof names[r], final_out, tag);
                if (access(names[r], F_OK) == 0)
                    in[n_in++] = names[r];
            }
            struct akt_error me = {0};
            if (n_in > 0 && akt_results_merge(final_out, in, n_in, &me)) {
                akt_cli_fail(&me);
                code = 1;
            } else if (!quiet) {
                fprintf(stderr, "merged %d rank files into %s\n", n_in, final_out);
            }
            free(in);
            free(names);
        }
        out = final_out;
    }
#endif

    if (g_rank != 0) { /* under MPI, rank 0 prints the table */
        free(oc);
        akt_experiment_free(&x);
        akt_registry_free(&reg);
        return code;
    }

    int w = 2;
    for (int i = 0; i < x.n_runs; i++) {
        int l = (int)strlen(x.runs[i].config.id);
        w = l > w && (mpi || MINE(i)) ? l : w;
    }
    printf("%-*s  %9s  %10s  %s\n", w, "id", "best_top1", "final_top1", "status");
    for (int i = 0; i < x.n_runs; i++) {
        const struct outcome *o = &oc[i];
        if (!mpi && !MINE(i)) /* a shard's table lists its own runs */
            continue;
        if (o->best >= 0)
            printf("%-*s  %9.2f  %10.2f  %s\n", w, x.runs[i].config.id, o->best, o->final,
                   STATUS[o->status]);
        else
            printf("%-*s  %9s  %10s  %s\n", w, x.runs[i].config.id, "-", "-", STATUS[o->status]);
    }
    if (!quiet)
        fprintf(stderr, "results: %s\n", out);
    free(oc);
    akt_experiment_free(&x);
    akt_registry_free(&reg);
    return code;
#undef MINE
}
