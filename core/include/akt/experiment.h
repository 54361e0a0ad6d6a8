/* YAML experiment files: a matrix of runs, expanded and validated in full
 * before any run starts. The schema is experiments/README.md; in short:
 *
 *   name: NAME                     optional (default: the file name)
 *   description: TEXT              optional, ignored
 *   teacher: PATH  data: PATH      shorthand for the same keys in defaults
 *   defaults: {KEY: VALUE, ...}    every cell starts from these
 *   matrix:   {KEY: [V1, V2], ...} cross product, last axis varies fastest
 *   exclude:  [{AXIS: V, ...}, ...] drops the cells matching all keys of one
 *   include:  [{KEY: VALUE, ...}, ...] extra cells, after the matrix
 *
 * KEY is any key of akt_run_config_set (a run key or generator.KEY /
 * loss.KEY), and every value goes through it with where = "FILE:LINE:COL". */
#ifndef AKT_EXPERIMENT_H
#define AKT_EXPERIMENT_H

#include "akt/run.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One setting as applied to a run, in application order. key and value
 * point into the experiment's arena. */
struct akt_experiment_setting {
    const char *key, *value;        /* value as passed (teacher/data resolved) */
    const char *where;              /* "FILE:LINE:COL" of the value, 1-based */
};

struct akt_experiment_run {
    struct akt_run_config config;   /* validated (akt_run_config_check); id set, out_path "" */
    int n_settings;
    const struct akt_experiment_setting *settings; /* names first, then the rest;
                                                      --set ones after the file's */
};

struct akt_experiment {
    char path[1024];                /* the file as given */
    char name[128];                 /* name: or the file name without .yaml/.yml */
    int n_runs;
    struct akt_experiment_run *runs; /* matrix cells in order, then include entries */
    struct akt_arena arena;         /* strings and settings */
};

/* Parses path, expands the matrix and validates every run. Relative teacher
 * and data paths resolve against data_root when it is non-empty (akt run
 * passes $AKT_DATA), else against the folder of the YAML file. Errors name
 * "FILE:LINE:COL KEY" (or the file alone when it cannot be read); on error x
 * holds nothing to free. */
int akt_experiment_load(struct akt_experiment *x, const char *path,
                        const struct akt_registry *reg, const char *data_root,
                        struct akt_error *e);
/* The same, with settings applied to every run after the file's own
 * (`akt run --set KEY=VALUE`): names first, as in the file, and validated
 * as the file's are, where (default "--set") naming them in errors. They
 * are part of each run's settings and so of its stored config; they do not
 * change run ids. id and out are refused; relative teacher/data paths are
 * taken as given (the current folder). */
int akt_experiment_load_set(struct akt_experiment *x, const char *path,
                            const struct akt_registry *reg, const char *data_root,
                            const struct akt_experiment_setting *sets, int n_sets,
                            struct akt_error *e);
void akt_experiment_free(struct akt_experiment *x);

#ifdef __cplusplus
}
#endif
#endif
