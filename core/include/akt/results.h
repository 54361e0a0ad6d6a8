/* Results files (HDF5, schema in results/README.md): one group per run with
 * its configuration, status, per-epoch metric series, final tensors and a
 * checkpoint. Every HDF5 call is checked.
 *
 * Two ways to write. akt_results_open changes a file in place: simple, but
 * HDF5 is not crash-safe, so a kill can leave the file unreadable. akt's own
 * commands use akt_results_edit + akt_results_commit instead: the changes go
 * to a private copy that replaces the file atomically (a kill leaves the old
 * file or the new one), and a run in progress lives in its own run file
 * (akt_results_run_file) until it is committed into the results file. */
#ifndef AKT_RESULTS_H
#define AKT_RESULTS_H

#include "akt/base.h"

#ifdef __cplusplus
extern "C" {
#endif

#define AKT_RESULTS_SCHEMA 2

/* Names: run ids, tensor groups ('/' between levels), tensor and attribute
 * names use [A-Za-z0-9_.-]; metric names use [A-Za-z0-9_.]. Anything else is
 * AKT_EINVAL. */

struct akt_results;

/* Creates the file, or opens an existing akt results file for appending. */
int akt_results_open(struct akt_results **r, const char *path, struct akt_error *e);
int akt_results_close(struct akt_results *r, struct akt_error *e);
int akt_results_flush(struct akt_results *r, struct akt_error *e);
/* Opens an existing akt results file read-only (schema 1..AKT_RESULTS_SCHEMA).
 * Files are replaced, never changed in place, so a reader never sees a half-
 * written file, also while akt writes. It never creates or changes a file;
 * the writers below fail on its handle. Close it with akt_results_close. */
int akt_results_open_read(struct akt_results **r, const char *path, struct akt_error *e);
/* Crash-consistent change: opens a private copy path.tmp of path (a byte
 * copy in large blocks, or a new results file when path does not exist) for
 * writing with the calls below. akt_results_commit closes it, fsyncs it,
 * renames it over path and fsyncs the folder (it consumes r, also when it
 * fails); akt_results_discard (and
 * akt_results_close) drop it, leaving path as it was. Errors name path. */
int akt_results_edit(struct akt_results **r, const char *path, struct akt_error *e);
int akt_results_commit(struct akt_results *r, struct akt_error *e);
void akt_results_discard(struct akt_results *r);
/* The root attribute akt_schema_version (0 if unreadable). */
int akt_results_schema(struct akt_results *r);
/* Deep copy (H5Ocopy) of /runs/<id> of src into dst, replacing dst's. */
int akt_results_copy_run(struct akt_results *dst, struct akt_results *src, const char *id,
                         struct akt_error *e);

/* Beside a results file OUT.h5, akt keeps the folder OUT.h5.d: the writer
 * lock OUT.h5.d/lock and one run file OUT.h5.d/<id>.h5 per run in progress
 * (a one-run results file of the same schema). Paths into buf; 0, or
 * AKT_EINVAL when buf is too small. */
int akt_results_run_dir(const char *path, char *buf, size_t n);
int akt_results_run_file(const char *path, const char *id, char *buf, size_t n);
/* Removes a results file (a run file once it is committed), durably: the
 * folder is synced; a missing file is fine. */
int akt_results_remove(const char *path, struct akt_error *e);
/* akt's own advisory lock on a results file (flock on OUT.h5.d/lock,
 * created as needed, with the holder's pid in it): one writer at a time,
 * also where HDF5's file locking is off (HDF5_USE_FILE_LOCKING=FALSE on
 * NFS/Lustre). A second writer gets an error naming the file and the
 * holder. AKT_NO_RESULTS_LOCK=1 skips it (file systems without locks). */
struct akt_results_lock;
int akt_results_lock(struct akt_results_lock **l, const char *path, struct akt_error *e);
void akt_results_unlock(struct akt_results_lock *l);
/* 1 when a process holds that lock now (a run file saying "running" is then
 * really running; else its process was killed), 0 otherwise. */
int akt_results_writer_active(const char *path);

/* /runs/<id>: created with the config YAML, or reopened when present. */
int akt_results_run(struct akt_results *r, const char *id, const char *config_yaml,
                    struct akt_error *e);
int akt_results_has_run(struct akt_results *r, const char *id);
/* status: "running", "done", "failed", "interrupted"; message may be "". */
int akt_results_set_status(struct akt_results *r, const char *id, const char *status,
                           const char *message, struct akt_error *e);
int akt_results_get_status(struct akt_results *r, const char *id, char *buf, size_t n);
/* The config YAML stored with the run (truncated to n-1 bytes). */
int akt_results_get_config(struct akt_results *r, const char *id, char *buf, size_t n);
/* Appends (step, value) to /runs/<id>/metrics/<name>/{step,value}; width > 1
 * makes value a [steps, width] table (e.g. 19 activation ranges). */
int akt_results_append(struct akt_results *r, const char *id, const char *name, int64_t step,
                       const double *value, int width, struct akt_error *e);
/* Number of rows in a metric (0 if absent, a negative AKT_E* if malformed). */
int64_t akt_results_rows(struct akt_results *r, const char *id, const char *name);
/* Reads the first rows rows of a metric (width must match); steps or values
 * may be NULL. values is [rows, width], C order. */
int akt_results_read_metric(struct akt_results *r, const char *id, const char *name,
                            int64_t *steps, double *values, int64_t rows, int width,
                            struct akt_error *e);
/* Truncates every metric of a run to rows (resume drops a partial epoch). */
int akt_results_truncate(struct akt_results *r, const char *id, int64_t rows, struct akt_error *e);
/* Same, by step: keeps each metric's rows before its first step >= step, so
 * metrics that skip epochs (plugin metrics) are cut at the same epoch. */
int akt_results_truncate_steps(struct akt_results *r, const char *id, int64_t step,
                               struct akt_error *e);
/* ---- the typed API: one write/read of arrays, one set/get of attributes.
 * Arrays live at /runs/<id>/<group>/<name> (group a '/'-separated path,
 * created as needed); attributes on /runs/<id> (group NULL or "") or on
 * /runs/<id>/<group>. The per-type functions further down are shorthands of
 * these (kept for callers written before them). */
enum akt_type {
    AKT_F32 = 1, /* float, stored float32 */
    AKT_F64,     /* double, stored float64 */
    AKT_I32,     /* int, stored int32 */
    AKT_STR      /* attributes only: a string */
};
/* Writes an array of type (AKT_F32, AKT_F64, AKT_I32) of ndim (1..8) dims
 * shape (0 is an empty dim): replaced if present, rewritten in place when
 * shape and type match. */
int akt_results_write(struct akt_results *r, const char *id, const char *group, const char *name,
                      enum akt_type type, const void *data, int ndim, const int *shape,
                      struct akt_error *e);
/* Reads such an array of n elements, converted to type (AKT_I32 only from
 * an integer dataset); a different count is AKT_ESHAPE. */
int akt_results_read(struct akt_results *r, const char *id, const char *group, const char *name,
                     enum akt_type type, void *data, int64_t n, struct akt_error *e);
/* An attribute: value is a const double * (AKT_F64) or a string (AKT_STR).
 * On /runs/<id> itself config, status, status_message and created are
 * reserved. */
int akt_results_attr_set(struct akt_results *r, const char *id, const char *group,
                         const char *name, enum akt_type type, const void *value,
                         struct akt_error *e);
/* Reads one into value (a double *, or a char buffer of n bytes for
 * AKT_STR): 0, or < 0 when the run, group or attribute is absent or of
 * another kind. */
int akt_results_attr_get(struct akt_results *r, const char *id, const char *group,
                         const char *name, enum akt_type type, void *value, size_t n);

/* /runs/<id>/<group>/<name>: a float32 tensor (replaced if present). */
int akt_results_write_tensor(struct akt_results *r, const char *id, const char *group,
                             const char *name, const float *data, int ndim, const int *shape,
                             struct akt_error *e);
int akt_results_write_ints(struct akt_results *r, const char *id, const char *group,
                           const char *name, const int *data, int n, struct akt_error *e);
/* Reads a tensor written above; n must match. */
int akt_results_read_tensor(struct akt_results *r, const char *id, const char *group,
                            const char *name, float *data, int64_t n, struct akt_error *e);
int akt_results_read_ints(struct akt_results *r, const char *id, const char *group,
                          const char *name, int *data, int n, struct akt_error *e);
/* Scalar attributes on /runs/<id> (double); get returns 0, or < 0 when the
 * run or attribute is absent. config/status/status_message/created are
 * reserved. */
int akt_results_set_attr(struct akt_results *r, const char *id, const char *name, double v,
                         struct akt_error *e);
int akt_results_get_attr(struct akt_results *r, const char *id, const char *name, double *v);
/* A string attribute of /runs/<id> (same names and reserved ones as above);
 * read it back with akt_results_run_str. */
int akt_results_set_attr_str(struct akt_results *r, const char *id, const char *name,
                             const char *value, struct akt_error *e);

/* Removes /runs/<id>/<path> (a group or dataset) or a scalar attribute of
 * /runs/<id>; absent ones are fine. */
int akt_results_delete(struct akt_results *r, const char *id, const char *path,
                       struct akt_error *e);
int akt_results_delete_attr(struct akt_results *r, const char *id, const char *name,
                            struct akt_error *e);

/* Analysis output (e.g. `akt hessian`, /runs/<id>/analysis/...): a float64
 * array [n] at /runs/<id>/<group>/<name> (replaced if present), and scalar
 * float64 / string attributes on the group /runs/<id>/<group> (created as
 * needed by the setters; getters return 0, or < 0 when absent). */
int akt_results_write_doubles(struct akt_results *r, const char *id, const char *group,
                              const char *name, const double *data, int n, struct akt_error *e);
int akt_results_read_doubles(struct akt_results *r, const char *id, const char *group,
                             const char *name, double *data, int64_t n, struct akt_error *e);
int akt_results_set_group_attr(struct akt_results *r, const char *id, const char *group,
                               const char *name, double v, struct akt_error *e);
int akt_results_set_group_attr_str(struct akt_results *r, const char *id, const char *group,
                                   const char *name, const char *value, struct akt_error *e);
int akt_results_get_group_attr(struct akt_results *r, const char *id, const char *group,
                               const char *name, double *v);
int akt_results_get_group_attr_str(struct akt_results *r, const char *id, const char *group,
                                   const char *name, char *buf, size_t n);

/* Merges results files (e.g. the shards of `akt run --shard`) into out
 * (core/io/merge.c; results/README.md, "Merging results files"). Each
 * /runs/<id> is deep-copied (H5Ocopy), so out stands alone. out is created as
 * akt_results_open creates it, or appended to when it exists. The same id
 * with different configs in two files, or a file that is not an akt results
 * file, is an error naming the files, and nothing is written. The same id
 * with the same config: a "done" copy wins, else the later checkpoint, else
 * the first (out's own, then the inputs in order). The root attribute
 * merged_from lists the inputs (appended to by each merge). */
int akt_results_merge(const char *out, const char **in, int n, struct akt_error *e);

/* Reading (akt table, akt status): the run ids (/runs/<id>), or the metric names of one run, in byte order of
 * the names: a malloc'd array of *n malloc'd strings, freed with
 * akt_results_free_names. A run without metrics/ has none (0). */
int akt_results_run_ids(struct akt_results *r, char ***ids, int *n, struct akt_error *e);
int akt_results_metric_names(struct akt_results *r, const char *id, char ***names, int *n,
                             struct akt_error *e);
void akt_results_free_names(char **names, int n);
/* A string attribute of /runs/<id> (config, status, status_message, created),
 * malloc'd; NULL when the run or the attribute is absent. */
char *akt_results_run_str(struct akt_results *r, const char *id, const char *name);

/* Every run of a results file, ended or not: the runs of path and those in
 * its run folder (path.d/<id>.h5: in progress, or killed), in name order;
 * where[i] is the read-only handle that holds run ids[i]'s newest state (a
 * run file wins over an unfinished copy in path). path may be missing when
 * run files exist. Close with akt_results_view_close (it closes the
 * handles). */
struct akt_results_view {
    int n;
    char **ids;
    struct akt_results **where;
    struct akt_results *main;   /* path itself, or NULL */
    struct akt_results **files; /* the run files opened */
    int n_files;
};
int akt_results_view_open(struct akt_results_view *v, const char *path, struct akt_error *e);
void akt_results_view_close(struct akt_results_view *v);

#ifdef __cplusplus
}
#endif
#endif
