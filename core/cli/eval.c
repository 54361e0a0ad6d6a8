/* akt eval: accuracy of a teacher, or of a finished run's quantized student,
 * on a CIFAR binary file. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "akt/akt.h"
#include "akt/export.h"
#include "cli.h"

static const char *EVAL_USAGE =
    "usage: akt eval [--teacher FILE.h5] [--data FILE.bin] [--format F] [--batch N]\n"
    "                [--threads N] [--limit N]\n"
    "       akt eval --student RESULTS.h5 --run ID [--data FILE.bin] [...]\n"
    "\n"
    "Evaluates a CIFAR ResNet teacher of any depth 6n+2 (HDF5 state_dict, see\n"
    "README.md), or with --student the quantized student of a finished run as it\n"
    "ended (rebuilt from the results file, no retraining), on a CIFAR binary file\n"
    "and prints one final line: top1=XX.XX top5=XX.XX n=N (the architecture goes\n"
    "to stderr)\n"
    "\n"
    "  --teacher FILE  teacher weights (default $AKT_DATA/teachers/\n"
    "                  resnet20_cifar10_akamaster_optA.h5)\n"
    "  --student FILE  a results file; with --run ID, evaluate that run's student\n"
    "  --run ID        the run (with --student)\n"
    "  --data FILE     CIFAR records (default: the run's own evaluation file with\n"
    "                  --student, else $AKT_DATA/cifar-10-batches-bin/\n"
    "                  test_batch_lossless1000.bin)\n"
    "  --limit N       evaluate the first N records only (as the run key eval_limit)\n"
    "  --format F      auto | cifar10 | cifar100 | cifar100-coarse (default auto)\n"
    "  --batch N       images per forward pass (default 200)\n"
    "  --threads N     worker threads (default 2)\n";

static void progress(int done, int total, void *user)
{
    (void)user;
    fprintf(stderr, "\reval %d/%d", done, total);
    if (done == total)
        fprintf(stderr, "\n");
}

/* The student of a finished run, fake-quantized as in training, tracking off. */
static int eval_student(const char *results, const char *id, const char *data,
                        const char *fallback_data, enum akt_cifar_format fmt, int batch,
                        int threads, int limit)
{
    akt_threads_set(threads);
    struct akt_error e = {0};
    struct akt_student s;
    struct akt_student_info info;
    if (akt_student_load(&s, results, id, &info, &e))
        return akt_cli_fail(&e);
    if (!data)
        data = info.data_path[0] && access(info.data_path, R_OK) == 0 ? info.data_path
                                                                        : fallback_data;
    if (!data) {
        akt_student_free(&s);
        return akt_cli_usage_error("eval", "--data is required (the run's own file is gone)");
    }
    struct akt_dataset d;
    if (akt_cifar_load(&d, data, fmt, &e)) {
        akt_student_free(&s);
        return akt_cli_fail(&e);
    }
    if (limit > 0 && limit < d.n)
        d.n = limit;
    struct akt_resnet_opts o = {.quant = &s.hooks};
    struct akt_eval_result r;
    int rc = akt_evaluate(&s.net, &o, &d, batch, isatty(2) ? progress : NULL, NULL, &r, &e);
    if (rc && !strcmp(e.where, "dataset"))
        snprintf(e.where, sizeof e.where, "%.500s", data);
    char arch[32];
    fprintf(stderr, "akt: student of run '%s' (%s, W%dA%d) on %s%s\n", id,
            akt_resnet_arch(&s.net, arch, sizeof arch), s.wbits, s.abits, data,
            info.eval_limit > 0 && !limit ? " (the run itself evaluated its first "
                                            "eval_limit records: see --limit)" : "");
    akt_dataset_free(&d);
    akt_student_free(&s);
    if (rc)
        return akt_cli_fail(&e);
    printf("top1=%.2f top5=%.2f n=%d\n", r.top1, r.top5, r.n);
    return 0;
}

int akt_cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"teacher", required_argument, 0, 't'}, {"data", required_argument, 0, 'd'},
        {"format", required_argument, 0, 'f'},  {"batch", required_argument, 0, 'b'},
        {"threads", required_argument, 0, 'j'}, {"help", no_argument, 0, 'h'},
        {"student", required_argument, 0, 's'}, {"run", required_argument, 0, 'r'},
        {"limit", required_argument, 0, 'l'},   {0, 0, 0, 0}};
    const char *student = NULL, *run = NULL;
    int data_given = 0, limit = 0;
    char tbuf[1024], dbuf[1024];
    const char *teacher = akt_cli_default_path("teachers/resnet20_cifar10_akamaster_optA.h5", tbuf,
                                               sizeof tbuf);
    const char *data = akt_cli_default_path("cifar-10-batches-bin/test_batch_lossless1000.bin",
                                            dbuf, sizeof dbuf);
    int batch = 200, threads = 2;
    enum akt_cifar_format fmt = AKT_CIFAR_AUTO;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 't': teacher = optarg; break;
        case 'd': data = optarg; data_given = 1; break;
        case 's': student = optarg; break;
        case 'r': run = optarg; break;
        case 'l':
            if (akt_cli_int("eval", "--limit", optarg, 1, 100000000, &limit)) return 2;
            break;
        case 'f':
            if (!strcmp(optarg, "auto")) fmt = AKT_CIFAR_AUTO;
            else if (!strcmp(optarg, "cifar10")) fmt = AKT_CIFAR10;
            else if (!strcmp(optarg, "cifar100")) fmt = AKT_CIFAR100_FINE;
            else if (!strcmp(optarg, "cifar100-coarse")) fmt = AKT_CIFAR100_COARSE;
            else
                return akt_cli_usage_error("eval", "--format: unknown format '%s'", optarg);
            break;
        case 'b':
            if (akt_cli_int("eval", "--batch", optarg, 1, 100000, &batch)) return 2;
            break;
        case 'j':
            if (akt_cli_int("eval", "--threads", optarg, 1, 256, &threads)) return 2;
            break;
        case 'h': fputs(EVAL_USAGE, stdout); return 0;
        case ':': return akt_cli_usage_error("eval", "option '%s' needs a value", argv[optind - 1]);
        default: return akt_cli_usage_error("eval", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return akt_cli_usage_error("eval", "unexpected argument '%s'", argv[optind]);
    if (student || run) {
        if (!student || !run)
            return akt_cli_usage_error("eval", "--student and --run go together");
        return eval_student(student, run, data_given ? data : NULL, data, fmt, batch, threads,
                            limit);
    }
    if (!teacher)
        return akt_cli_usage_error("eval", "--teacher is required (or set AKT_DATA)");
    if (!data)
        return akt_cli_usage_error("eval", "--data is required (or set AKT_DATA)");
    akt_threads_set(threads);

    struct akt_error e = {0};
    struct akt_resnet m;
    if (akt_resnet_load(&m, teacher, &e))
        return akt_cli_fail(&e);
    struct akt_dataset d;
    if (akt_cifar_load(&d, data, fmt, &e)) {
        akt_resnet_free(&m);
        return akt_cli_fail(&e);
    }
    if (limit > 0 && limit < d.n)
        d.n = limit;
    struct akt_eval_result r;
    int tty = isatty(2);
    int rc = akt_evaluate(&m, NULL, &d, batch, tty ? progress : NULL, NULL, &r, &e);
    if (rc) {
        /* name the file the mismatch comes from */
        if (!strcmp(e.where, "dataset"))
            snprintf(e.where, sizeof e.where, "%.500s", data);
        else if (!strcmp(e.where, "evaluation")) /* non-finite logits */
            snprintf(e.where, sizeof e.where, "teacher %.480s: evaluation", teacher);
    }
    akt_dataset_free(&d);
    char arch[32];
    akt_resnet_arch(&m, arch, sizeof arch);
    int pad = m.shortcut == AKT_SHORTCUT_PAD, nf = m.n_features;
    akt_resnet_free(&m);
    if (rc)
        return akt_cli_fail(&e);
    fprintf(stderr, "akt: %s teacher (%s shortcuts, %d body outputs)\n", arch,
            pad ? "pad" : "conv1x1", nf);
    printf("top1=%.2f top5=%.2f n=%d\n", r.top1, r.top5, r.n);
    return 0;
}
