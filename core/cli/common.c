/* The helpers every subcommand calls (cli.h): error and usage messages,
 * integer options, the plugin folders, default data paths, log lines. */
#define _POSIX_C_SOURCE 200809L /* realpath, readlink */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "akt/registry.h"
#include "cli.h"

int akt_cli_fail(const struct akt_error *e)
{
    char buf[1200];
    fprintf(stderr, "akt: error: %s\n", akt_error_format(e, buf, sizeof buf));
    return 1;
}

int akt_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "akt: error: %s (see 'akt %s --help')\n", msg, cmd);
    return 2;
}

int akt_cli_int(const char *cmd, const char *opt, const char *val, int lo, int hi, int *out)
{
    char *end = NULL;
    long v = val ? strtol(val, &end, 10) : 0;
    if (!val || !*val || *end || v < lo || v > hi) {
        akt_cli_usage_error(cmd, "%s expects an integer in %d..%d, got '%s'", opt, lo, hi,
                            val ? val : "");
        return -1;
    }
    *out = (int)v;
    return 0;
}

/* Whether this process is the build tree's akt (AKT_BUILD_EXE) rather than
 * an installed copy; when /proc/self/exe cannot be read, assume it is. */
static int is_build_tree_akt(void)
{
    char self[4096], built[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 1;
    self[n] = 0;
    return realpath(AKT_BUILD_EXE, built) && !strcmp(self, built);
}

int akt_cli_load_plugins(struct akt_registry *reg, const char *const *dirs, int n_dirs)
{
    struct akt_error e = {0};
    akt_registry_init(reg);
    /* --plugin-dir folders first, then AKT_PLUGIN_PATH, then the built-in
     * ones: for the build tree's akt the build tree's plugin folders and the
     * install folder; an installed akt reads only the install folder (the
     * build tree's plugins, rebuilt later from newer sources, would otherwise
     * shadow the installed ones) */
    const char *builtin = is_build_tree_akt() ? NULL : AKT_INSTALL_PLUGIN_DIR;
    int rc = akt_registry_load_search_path(reg, dirs, n_dirs, builtin, &e);
    if (!rc)
        return 0;
    akt_registry_free(reg);
    return akt_cli_fail(&e);
}

const char *akt_cli_default_path(const char *rel, char *buf, size_t n)
{
    const char *root = getenv("AKT_DATA");
    if (!root || !*root)
        return NULL;
    snprintf(buf, n, "%s/%s", root, rel);
    return buf;
}

void akt_cli_log(const char *line, void *user)
{
    (void)user;
    fprintf(stderr, "akt: %s\n", line);
}
