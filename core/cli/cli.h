/* Subcommands of the akt binary. Each returns the process exit status:
 * 0 success, 1 runtime error (message printed), 2 usage error. */
#ifndef AKT_CLI_H
#define AKT_CLI_H

#include "akt/base.h"

int akt_cmd_eval(int argc, char **argv);
int akt_cmd_bench(int argc, char **argv);
int akt_cmd_bench_zsq(int argc, char **argv);
int akt_cmd_train(int argc, char **argv);
int akt_cmd_run(int argc, char **argv);
int akt_cmd_merge(int argc, char **argv);
int akt_cmd_plugins(int argc, char **argv);
int akt_cmd_hessian(int argc, char **argv);
int akt_cmd_export(int argc, char **argv);
int akt_cmd_table(int argc, char **argv);
int akt_cmd_status(int argc, char **argv);

/* Shared helpers (cli/common.c). */
int akt_cli_fail(const struct akt_error *e);            /* prints, returns 1 */
int akt_cli_usage_error(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));              /* prints, returns 2 */
/* Integer option value in [lo, hi]; on failure prints a usage error. */
int akt_cli_int(const char *cmd, const char *opt, const char *val, int lo, int hi, int *out);
/* Initialises reg and loads the plugins of the --plugin-dir folders, or the
 * default folders when n_dirs is 0. On failure frees reg, prints the error
 * and returns 1 (the exit status); 0 on success. */
struct akt_registry;
int akt_cli_load_plugins(struct akt_registry *reg, const char *const *dirs, int n_dirs);
/* Benchmarks (cli/contention.c). Machine-wide and own user CPU seconds; other
 * processes' user CPU seconds since such a reading; waiting (up to max_s) for
 * `windows` consecutive 1 s windows in which others used < 0.1 CPU s. */
void akt_cli_user_seconds(double *machine, double *self);
double akt_cli_foreign_since(double m0, double s0);
void akt_cli_wait_quiet(double max_s, int windows);
/* Appends the comma-separated batch sizes in val (each 1..hi) to batches
 * (at most max); prints a usage error and returns -1 on a bad value. */
int akt_cli_batches(const char *cmd, const char *val, int hi, int *batches, int max, int *nb);
/* Default data paths under $AKT_DATA (NULL when unset). */
const char *akt_cli_default_path(const char *rel, char *buf, size_t n);
/* A library log line (akt_run_callbacks.log) on stderr as "akt: LINE". */
void akt_cli_log(const char *line, void *user);

/* Training progress on stderr (cli/progress.c), for akt train and akt run:
 * with tty, a line rewritten per iteration (rate, ETA); a line per epoch
 * unless quiet; label (may be NULL) starts each line. */
struct akt_epoch_report;
struct akt_cli_progress {
    int tty, quiet, shown;
    const char *label;
    long first;  /* the first global iteration seen (-1: none yet) */
    double t0, rate;
};
void akt_cli_progress_init(struct akt_cli_progress *p, int tty, int quiet, const char *label);
void akt_cli_progress_iter(struct akt_cli_progress *p, int epoch, int epochs, int iter,
                           int iters, double lg, double lq);
void akt_cli_progress_epoch(struct akt_cli_progress *p, const struct akt_epoch_report *r,
                            int iters);
/* "akt: note: MSG" (also when quiet). */
void akt_cli_progress_note(struct akt_cli_progress *p, const char *msg);

#endif
