/* akt train: one zero-shot quantization run from the command line. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "akt/akt.h"
#include "akt/run.h"
#include "cli.h"

static const char *TRAIN_USAGE =
    "usage: akt train --generator NAME --loss NAME [options]\n"
    "\n"
    "One zero-shot quantization run (SPEC 5): a generator plugin synthesises\n"
    "images, the FP teacher is distilled into a fake-quantized student, which is\n"
    "evaluated on a CIFAR file after every epoch. Prints a final line\n"
    "best_top1=XX.XX final_top1=XX.XX\n"
    "\n"
    "  --teacher FILE    teacher HDF5 (default $AKT_DATA/teachers/resnet20_cifar10_akamaster_optA.h5)\n"
    "  --data FILE       evaluation set (default $AKT_DATA/cifar-10-batches-bin/test_batch_lossless1000.bin)\n"
    "  --generator NAME  gdfq | qimera | adadfq | ... (see 'akt plugins')\n"
    "  --loss NAME       logit | spatial | channel | akt | ...\n"
    "  --wbits K --abits K   weight / activation bits, 2..8 (default 4)\n"
    "  --epochs E --iters I --batch B   schedule (default 400 / 200 / 200)\n"
    "  --seed S          RNG seed (default 0)\n"
    "  --threads N       worker threads (default 2)\n"
    "  --set KEY=VALUE   a run setting or a plugin parameter (generator.KEY,\n"
    "                    loss.KEY), listed below; repeatable, applied in order\n"
    "  --out FILE.h5     results file (schema: results/README.md)\n"
    "  --plugin-dir DIR  load plugins from DIR (repeatable; default $AKT_PLUGIN_PATH\n"
    "                    or the built-in folders)\n"
    "  --quiet           no progress output\n"
    "  --help-settings   the run settings as README.md's Markdown table\n"
    "\n"
    "Run settings (--set KEY=VALUE; the same keys in YAML experiments and in the\n"
    "stored config):\n";

static volatile sig_atomic_t g_stop;
static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

struct progress {
    struct akt_cli_progress p;
    int epochs, iters;
    long kill_after, iters_done;
};

static void on_iter(int epoch, int iter, int iters, double lg, double lq, void *user)
{
    struct progress *p = user;
    /* Fault injection for the resume tests: AKT_KILL_AFTER_ITERS=N makes the
     * process SIGKILL itself after N iterations, at an exactly known point. */
    if (p->kill_after > 0 && ++p->iters_done >= p->kill_after)
        raise(SIGKILL);
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

#define MAX_SETS 64
#define MAX_DIRS 8

/* Options become settings applied in order through akt_run_config_set, the
 * same validator YAML experiments use; names first so plugin parameters find
 * their plugin. */
struct setting {
    const char *key, *value, *where;
};

int akt_cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {
        {"teacher", required_argument, 0, 't'},  {"data", required_argument, 0, 'd'},
        {"generator", required_argument, 0, 'g'}, {"loss", required_argument, 0, 'l'},
        {"wbits", required_argument, 0, 'W'},    {"abits", required_argument, 0, 'A'},
        {"epochs", required_argument, 0, 'E'},   {"iters", required_argument, 0, 'I'},
        {"batch", required_argument, 0, 'B'},    {"seed", required_argument, 0, 'S'},
        {"threads", required_argument, 0, 'j'},  {"set", required_argument, 0, 's'},
        {"out", required_argument, 0, 'o'},      {"plugin-dir", required_argument, 0, 'P'},
        {"format", required_argument, 0, 'f'},   {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},           {"help-settings", no_argument, 0, 'H'},
        {0, 0, 0, 0}};
    static const char *keys[128] = {
        ['t'] = "teacher", ['d'] = "data", ['g'] = "generator", ['l'] = "loss",
        ['W'] = "wbits",   ['A'] = "abits", ['E'] = "epochs",   ['I'] = "iters",
        ['B'] = "batch",   ['S'] = "seed",  ['j'] = "threads",  ['o'] = "out",
        ['f'] = "format"};
    struct setting names[2] = {{0}}, sets[MAX_SETS];
    char kv[MAX_SETS][512];
    const char *dirs[MAX_DIRS];
    int n_names = 0, n_sets = 0, n_dirs = 0, quiet = 0;
    char tbuf[1024], dbuf[1024];
    const char *teacher = akt_cli_default_path("teachers/resnet20_cifar10_akamaster_optA.h5", tbuf,
                                               sizeof tbuf);
    const char *data = akt_cli_default_path("cifar-10-batches-bin/test_batch_lossless1000.bin",
                                            dbuf, sizeof dbuf);
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if (n_sets == MAX_SETS)
            return akt_cli_usage_error("train", "too many options");
        switch (ch) {
        case 't': teacher = optarg; break;
        case 'd': data = optarg; break;
        case 'g':
        case 'l': /* one slot each: the last --generator / --loss wins, like every option */
            names[ch == 'l'] = (struct setting){keys[ch], optarg, ""};
            break;
        case 'o':
            if (!*optarg)
                return akt_cli_usage_error("train", "--out needs a file name, got an empty one");
            sets[n_sets++] = (struct setting){keys[ch], optarg, ""};
            break;
        case 'W': case 'A': case 'E': case 'I': case 'B': case 'S': case 'j': case 'f':
            sets[n_sets++] = (struct setting){keys[ch], optarg, ""};
            break;
        case 's': {
            snprintf(kv[n_sets], sizeof kv[n_sets], "%s", optarg);
            char *eq = strchr(kv[n_sets], '=');
            if (!eq)
                return akt_cli_usage_error("train", "--set expects KEY=VALUE, got '%s'", optarg);
            *eq = 0;
            sets[n_sets] = (struct setting){kv[n_sets], eq + 1, "--set"};
            n_sets++;
            break;
        }
        case 'P':
            if (n_dirs == MAX_DIRS) return akt_cli_usage_error("train", "too many --plugin-dir");
            dirs[n_dirs++] = optarg;
            break;
        case 'q': quiet = 1; break;
        case 'h':
        case 'H': {
            char *t = akt_run_settings_help(ch == 'H');
            if (ch == 'h')
                fputs(TRAIN_USAGE, stdout);
            fputs(t, stdout);
            free(t);
            return 0;
        }
        case ':': return akt_cli_usage_error("train", "option '%s' needs a value", argv[optind - 1]);
        default: return akt_cli_usage_error("train", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return akt_cli_usage_error("train", "unexpected argument '%s'", argv[optind]);
    if (!names[0].key) return akt_cli_usage_error("train", "--generator is required");
    if (!names[1].key) return akt_cli_usage_error("train", "--loss is required");
    n_names = 2;
    if (!teacher) return akt_cli_usage_error("train", "--teacher is required (or set AKT_DATA)");
    if (!data) return akt_cli_usage_error("train", "--data is required (or set AKT_DATA)");

    struct akt_registry reg;
    if (akt_cli_load_plugins(&reg, dirs, n_dirs))
        return 1;
    struct akt_error e = {0};
    int rc = 0;
    struct akt_run_config c;
    akt_run_config_defaults(&c);
    rc = akt_run_config_set(&c, &reg, "teacher", teacher, "--teacher", &e);
    if (!rc)
        rc = akt_run_config_set(&c, &reg, "data", data, "--data", &e);
    for (int i = 0; i < n_names && !rc; i++)
        rc = akt_run_config_set(&c, &reg, names[i].key, names[i].value, "", &e);
    for (int i = 0; i < n_sets && !rc; i++)
        rc = akt_run_config_set(&c, &reg, sets[i].key, sets[i].value, sets[i].where, &e);
    if (rc) {
        akt_registry_free(&reg);
        akt_cli_fail(&e);
        return 2;
    }

    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    struct progress prog = {.epochs = c.epochs, .iters = c.iters};
    akt_cli_progress_init(&prog.p, isatty(2), quiet, NULL);
    const char *kill_env = getenv("AKT_KILL_AFTER_ITERS");
    prog.kill_after = kill_env ? atol(kill_env) : 0;
    struct akt_run_callbacks cb = {
        .iteration = on_iter, .epoch = on_epoch, .stop = (volatile int *)&g_stop, .user = &prog, .log = akt_cli_log,
        .note = on_note};
    struct akt_run_result res;
    rc = akt_run_train(&c, &reg, &cb, &res, &e);
    akt_registry_free(&reg);
    if (rc)
        return akt_cli_fail(&e);
    if (!quiet)
        fprintf(stderr, "teacher top1 %.2f, student before distillation %.2f, best epoch %d "
                "(0-based)\n", res.top1_fp, res.top1_before, res.best_epoch);
    printf("best_top1=%.2f final_top1=%.2f\n", res.best_top1, res.final_top1);
    return 0;
}
