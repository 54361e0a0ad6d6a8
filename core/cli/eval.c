/* akt eval: accuracy of a teacher on a CIFAR binary file. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "akt/akt.h"
#include "cli.h"

static const char *EVAL_USAGE =
    "usage: akt eval [--teacher FILE.h5] [--data FILE.bin] [--format F] [--batch N]\n"
    "                [--threads N]\n"
    "\n"
    "Evaluates a ResNet-20 teacher (HDF5 state_dict, see README.md) on a CIFAR\n"
    "binary file and prints one final line: top1=XX.XX top5=XX.XX n=N\n"
    "\n"
    "  --teacher FILE  teacher weights (default $AKT_DATA/teachers/\n"
    "                  resnet20_cifar10_akamaster_optA.h5)\n"
    "  --data FILE     CIFAR records (default $AKT_DATA/cifar-10-batches-bin/\n"
    "                  test_batch_lossless1000.bin)\n"
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

int akt_cmd_eval(int argc, char **argv)
{
    static const struct option opts[] = {
        {"teacher", required_argument, 0, 't'}, {"data", required_argument, 0, 'd'},
        {"format", required_argument, 0, 'f'},  {"batch", required_argument, 0, 'b'},
        {"threads", required_argument, 0, 'j'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
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
        case 'd': data = optarg; break;
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
    akt_resnet_free(&m);
    if (rc)
        return akt_cli_fail(&e);
    printf("top1=%.2f top5=%.2f n=%d\n", r.top1, r.top5, r.n);
    return 0;
}
