/* placeholder until the benchmark lands */
#include <stdio.h>
#include "cli.h"
int akt_cmd_bench(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "akt: error: bench is not built yet\n");
    return 1;
}
