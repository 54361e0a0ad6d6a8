/* Helpers shared by the two benchmarks (akt bench, akt bench-zsq): the
 * baseline's contention rule, which compares other processes' CPU time with
 * ours, and comma-separated batch lists. */
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* Only user time counts: kernel threads reclaiming pages we freed, and the
 * kernel work our own allocations cause, are not contention. */
void akt_cli_user_seconds(double *machine, double *self)
{
    *machine = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        unsigned long long user = 0, nice = 0;
        if (fscanf(f, "cpu %llu %llu", &user, &nice) == 2)
            *machine = (double)(user + nice) / (double)sysconf(_SC_CLK_TCK);
        fclose(f);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    *self = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6;
}

double akt_cli_foreign_since(double m0, double s0)
{
    double m1, s1;
    akt_cli_user_seconds(&m1, &s1);
    return (m1 - m0) - (s1 - s0);
}

void akt_cli_wait_quiet(double max_s, int windows)
{
    double t_end = akt_time_ms() + max_s * 1e3;
    int quiet = 0;
    while (quiet < windows && akt_time_ms() < t_end) {
        double m0, s0;
        akt_cli_user_seconds(&m0, &s0);
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
        quiet = akt_cli_foreign_since(m0, s0) < 0.1 ? quiet + 1 : 0;
    }
}

int akt_cli_batches(const char *cmd, const char *val, int hi, int *batches, int max, int *nb)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", val);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        int b;
        if (*nb >= max)
            return akt_cli_usage_error(cmd, "at most %d batch sizes", max), -1;
        if (akt_cli_int(cmd, "--batch", tok, 1, hi, &b))
            return -1;
        batches[(*nb)++] = b;
    }
    if (*nb == 0)
        return akt_cli_usage_error(cmd, "--batch expects a value"), -1;
    return 0;
}
