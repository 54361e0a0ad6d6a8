/* placeholder: being written */
#include <stdio.h>
#include "cli.h"
int akt_cmd_plugins(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "akt: error: plugins is not built yet\n"); return 1; }
