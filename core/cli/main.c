/* akt: command-line entry point; dispatches to the subcommands. */
#define _POSIX_C_SOURCE 200809L /* setenv */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt_version.h"
#include "cli.h"

#include <unistd.h>

/* OpenMP wait policy. libgomp's default lets an idle worker spin between
 * parallel regions; on the shared 2-core VMs akt runs on, the kernel then
 * deschedules a thread in favour of other processes while its partner spins
 * at the barrier, and every parallel region can stall for milliseconds (a
 * ResNet-20 training step has hundreds of regions). Measured with 2 threads
 * under load: "passive" made `akt bench` 2-3x faster than the default; on
 * an idle machine the futex wake-ups cost a few percent. libgomp reads the
 * variable once when it is loaded, before main(), so set it and re-exec
 * ourselves. A user-set OMP_WAIT_POLICY or GOMP_SPINCOUNT wins. */
static void set_omp_wait_policy(char **argv)
{
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT"))
        return;
    if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0)
        return;
    execv("/proc/self/exe", argv);
    /* exec failed: carry on with libgomp's default */
}

static const char *USAGE =
    "usage: akt <command> [options]\n"
    "\n"
    "Zero-shot quantization lab: CIFAR ResNet teachers of any depth, fake-quantized\n"
    "students, generator and loss plugins.\n"
    "\n"
    "commands:\n"
    "  train   one zero-shot quantization run (generator + loss plugins)\n"
    "  run     every run of a YAML experiment matrix (experiments/README.md)\n"
    "  merge   merge results files (e.g. the shards of 'akt run --shard') into one\n"
    "  table   a results file as a CSV, JSON or Markdown table (one row per run)\n"
    "  status  where each run of a results file or experiment stands (done, running,\n"
    "          killed, failed with its message, not started)\n"
    "  plugins list the generator and loss plugins and their parameters\n"
    "  hessian Hessian trace of a stored run's student loss (per layer and total)\n"
    "  export  a finished run's quantized student as ONNX (QDQ) or for PyTorch\n"
    "  eval    top-1/top-5 accuracy of a teacher, or of a finished run's student\n"
    "          (--student), on a CIFAR binary file\n"
    "  bench   speed of ResNet-20 forward and training steps\n"
    "  bench-zsq  time per iteration of the zero-shot training loop\n"
    "\n"
    "Run 'akt <command> --help' for the options of a command; 'akt --version'\n"
    "prints the version (and git commit).\n"
    "Environment: AKT_DATA  folder with teachers/ and cifar-10-batches-bin/ used\n"
    "                       for default paths.\n";

int main(int argc, char **argv)
{
    set_omp_wait_policy(argv);
    akt_provenance_set_args(argc, argv); /* written into every results file it makes */
    if (argc < 2) {
        fputs(USAGE, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(USAGE, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version")) {
        /* the commit tells apart builds of one version (results files keep it too) */
        if (AKT_GIT_COMMIT[0])
            printf("akt %s (git %s)\n", AKT_VERSION, AKT_GIT_COMMIT);
        else
            printf("akt %s\n", AKT_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "eval"))
        return akt_cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench"))
        return akt_cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench-zsq"))
        return akt_cmd_bench_zsq(argc - 1, argv + 1);
    if (!strcmp(cmd, "train"))
        return akt_cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "run"))
        return akt_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "merge"))
        return akt_cmd_merge(argc - 1, argv + 1);
    if (!strcmp(cmd, "plugins"))
        return akt_cmd_plugins(argc - 1, argv + 1);
    if (!strcmp(cmd, "hessian"))
        return akt_cmd_hessian(argc - 1, argv + 1);
    if (!strcmp(cmd, "export"))
        return akt_cmd_export(argc - 1, argv + 1);
    if (!strcmp(cmd, "table"))
        return akt_cmd_table(argc - 1, argv + 1);
    if (!strcmp(cmd, "status"))
        return akt_cmd_status(argc - 1, argv + 1);
    fprintf(stderr, "akt: error: unknown command '%s' (see 'akt --help')\n", cmd);
    return 2;
}
