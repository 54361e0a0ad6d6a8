/* Where a results file comes from (results/README.md, root attributes): the
 * command line akt was started with, the host and the working folder, set
 * once by main() and written by the results writer. */
#define _DEFAULT_SOURCE /* gethostname, realpath */
#include "akt/base.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *g_cmdline;

/* A word as a POSIX shell reads it back: as is when it has only safe
 * characters, else in single quotes (a quote inside as '\''). */
static size_t quote_word(char *out, const char *w)
{
    static const char safe[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                               "0123456789_./=:,+-@%";
    size_t n = 0;
    if (*w && strspn(w, safe) == strlen(w)) {
        if (out)
            memcpy(out, w, strlen(w));
        return strlen(w);
    }
    if (out)
        out[n] = '\'';
    n++;
    for (const char *p = w; *p; p++) {
        if (*p == '\'') {
            if (out)
                memcpy(out + n, "'\\''", 4);
            n += 4;
        } else {
            if (out)
                out[n] = *p;
            n++;
        }
    }
    if (out)
        out[n] = '\'';
    return n + 1;
}

void akt_provenance_set_args(int argc, char **argv)
{
    size_t n = 1;
    for (int i = 0; i < argc; i++)
        n += quote_word(NULL, argv[i]) + 1;
    char *s = malloc(n);
    AKT_ASSERT(s);
    size_t o = 0;
    for (int i = 0; i < argc; i++) {
        if (i)
            s[o++] = ' ';
        o += quote_word(s + o, argv[i]);
    }
    s[o] = 0;
    free(g_cmdline);
    g_cmdline = s;
}

const char *akt_provenance_command_line(void)
{
    return g_cmdline ? g_cmdline : "";
}

const char *akt_provenance_host(void)
{
    static char host[256];
    if (!host[0] && gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "unknown");
    host[sizeof host - 1] = 0;
    return host;
}

const char *akt_provenance_cwd(void)
{
    static char cwd[PATH_MAX];
    if (!cwd[0] && !getcwd(cwd, sizeof cwd))
        snprintf(cwd, sizeof cwd, "unknown");
    return cwd;
}

int akt_path_absolute(const char *path, char *buf, size_t n)
{
    char r[PATH_MAX];
    if (!realpath(path, r) || strlen(r) >= n)
        return -1;
    memcpy(buf, r, strlen(r) + 1);
    return 0;
}
