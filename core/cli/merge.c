/* akt merge OUT.h5 IN.h5...: per-shard results files into one (akt_results_merge,
 * core/io/merge.c; results/README.md, "Merging results files"). */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/results.h"
#include "cli.h"

static const char *MERGE_USAGE =
    "usage: akt merge OUT.h5 IN.h5 [IN.h5...]\n"
    "\n"
    "Copies every run of the input results files (for example the shards of\n"
    "'akt run --shard I/N') into OUT.h5, created as 'akt run' creates a results\n"
    "file, or added to when it exists. Each run group is copied in full\n"
    "(config, status, metrics, tensors, checkpoint): OUT.h5 stands alone.\n"
    "\n"
    "The same run id in two files with different configurations, or an input\n"
    "that is not an akt results file, is an error and nothing is written. The\n"
    "same id with the same configuration is kept once: a 'done' copy wins over\n"
    "an unfinished one, else the later checkpoint, else the first (OUT's own,\n"
    "then the inputs in the order given). OUT's root attribute merged_from\n"
    "lists the inputs.\n";

int akt_cmd_merge(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'h': fputs(MERGE_USAGE, stdout); return 0;
        default: return akt_cli_usage_error("merge", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind < 2)
        return akt_cli_usage_error("merge", "an output file and at least one input are required");
    struct akt_error e = {0};
    const char *out = argv[optind];
    const char **in = (const char **)(argv + optind + 1);
    int n = argc - optind - 1;
    if (akt_results_merge(out, in, n, &e))
        return akt_cli_fail(&e);
    fprintf(stderr, "merged %d file%s into %s\n", n, n == 1 ? "" : "s", out);
    return 0;
}
