/* Results files (schema: results/README.md). Every HDF5 call is checked and
 * errors name the file, the HDF5 path and the problem.
 *
 * Two ways to write: akt_results_open changes a file in place (HDF5 is not
 * crash-safe, so only for files nothing depends on, e.g. in tests), and
 * akt_results_edit/commit, which akt's commands use: the changes go to a
 * private copy (an in-memory image for files up to 64 MiB, else a byte copy
 * on disk) that replaces the file by rename (store.c). Metric rows are
 * appended with H5Dset_extent + a one-row hyperslab; the reader takes
 * min(rows of step, rows of value). */
#include "akt/results.h"

#include "akt_version.h"
#include "h5attr.h"
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CREATOR "akt " AKT_VERSION
#define MAX_NDIM 8
#define MAX_WIDTH (1 << 20)

struct akt_results {
    hid_t f;
    hid_t runs; /* /runs, open while the file is */
    char *path; /* the results file, as errors name it */
    char *tmp;  /* akt_results_edit: the private copy being written, else NULL */
    int mem;    /* the copy is an in-memory image (HDF5 core driver) */
    int mode;   /* permission bits of the file the copy replaces */
};

/* HDF5 prints its own error stack by default; we report through akt_error. */
static void h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

/* Closes any HDF5 handle (negative ids are ignored); <0 if the close failed. */
/* "file:/runs/<id>[/<sub>]" for error messages. */
static const char *where_of(char *buf, size_t n, const struct akt_results *r, const char *id,
                            const char *sub)
{
    if (id && sub && *sub)
        snprintf(buf, n, "%s:/runs/%s/%s", r->path, id, sub);
    else if (id)
        snprintf(buf, n, "%s:/runs/%s", r->path, id);
    else
        snprintf(buf, n, "%s:/", r->path);
    return buf;
}

/* Names of runs, groups, tensors, attributes: [A-Za-z0-9_.-], not "." or "..".
 * Metric names: [A-Za-z0-9_.] (no '-'), as README.md documents. */
static int name_ok(const char *s, int allow_dash)
{
    if (!s || !*s || strlen(s) > 255)
        return 0;
    int dots = 1;
    for (const char *p = s; *p; p++) {
        char c = *p;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '.' || (allow_dash && c == '-');
        if (!ok)
            return 0;
        if (c != '.')
            dots = 0;
    }
    return !dots;
}

/* A group path "a/b/c": each component a valid name. */
static int group_path_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 1000)
        return 0;
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", s);
    char *save = NULL;
    int parts = 0;
    if (buf[0] == '/' || buf[strlen(buf) - 1] == '/' || strstr(buf, "//"))
        return 0;
    for (char *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save), parts++)
        if (!name_ok(t, 1))
            return 0;
    return parts > 0;
}

static const char *const reserved_attrs[] = {"config", "status", "status_message", "created"};

static int is_reserved(const char *name)
{
    for (size_t i = 0; i < sizeof reserved_attrs / sizeof reserved_attrs[0]; i++)
        if (!strcmp(name, reserved_attrs[i]))
            return 1;
    return 0;
}

static void iso_time_utc(char *buf, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    if (t == (time_t)-1 || !gmtime_r(&t, &tm) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, n, "unknown");
}

/* ---- attributes --------------------------------------------------------- */

/* Opens attribute `name` of obj for rewriting when it is a scalar of the
 * wanted class (and vlen-ness for strings); otherwise deletes it and creates
 * a new scalar one with file type ftype. */
static hid_t attr_for_write(hid_t obj, const char *name, hid_t ftype)
{
    htri_t ex = H5Aexists(obj, name);
    if (ex < 0)
        return -1;
    if (ex > 0) {
        hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
        if (a < 0)
            return -1;
        hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
        int keep = 0;
        if (t >= 0 && sp >= 0 && H5Sget_simple_extent_type(sp) == H5S_SCALAR &&
            H5Tget_class(t) == H5Tget_class(ftype)) {
            if (H5Tget_class(ftype) == H5T_STRING)
                keep = H5Tis_variable_str(t) > 0 && H5Tget_cset(t) == H5T_CSET_UTF8;
            else
                keep = H5Tget_size(t) == H5Tget_size(ftype);
        }
        int bad = akt__h5_close(t) | akt__h5_close(sp);
        if (keep && !bad)
            return a;
        if (akt__h5_close(a) < 0 || bad || H5Adelete(obj, name) < 0)
            return -1;
    }
    hid_t sp = H5Screate(H5S_SCALAR);
    if (sp < 0)
        return -1;
    hid_t a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    if (akt__h5_close(sp) < 0) {
        akt__h5_close(a);
        return -1;
    }
    return a;
}

static int write_attr_str(hid_t obj, const char *name, const char *value)
{
    hid_t t = akt__h5_vlen_utf8();
    if (t < 0)
        return -1;
    hid_t a = attr_for_write(obj, name, t);
    int bad = a < 0 || H5Awrite(a, t, &value) < 0;
    bad |= akt__h5_close(a) < 0;
    bad |= akt__h5_close(t) < 0;
    return bad ? -1 : 0;
}

static int write_attr_f64(hid_t obj, const char *name, double v)
{
    hid_t a = attr_for_write(obj, name, H5T_IEEE_F64LE);
    int bad = a < 0 || H5Awrite(a, H5T_NATIVE_DOUBLE, &v) < 0;
    bad |= akt__h5_close(a) < 0;
    return bad ? -1 : 0;
}

static int write_attr_i32(hid_t obj, const char *name, int v)
{
    hid_t a = attr_for_write(obj, name, H5T_STD_I32LE);
    int bad = a < 0 || H5Awrite(a, H5T_NATIVE_INT, &v) < 0;
    bad |= akt__h5_close(a) < 0;
    return bad ? -1 : 0;
}

/* A scalar string attribute (variable or fixed length) into buf; 0 or -1. */
static int read_attr_str(hid_t obj, const char *name, char *buf, size_t n)
{
    char *s = akt__h5_attr_str(obj, name);
    if (!s)
        return -1;
    snprintf(buf, n, "%s", s);
    free(s);
    return 0;
}

/* ---- groups ------------------------------------------------------------- */

/* Opens child group `name` of parent; creates it when create is set.
 * Returns the group, -1 on an HDF5 failure, -2 if absent (create == 0),
 * -3 if the link exists but is not a group. */
static hid_t child_group(hid_t parent, const char *name, int create)
{
    htri_t ex = H5Lexists(parent, name, H5P_DEFAULT);
    if (ex < 0)
        return -1;
    if (ex == 0) {
        if (!create)
            return -2;
        return H5Gcreate2(parent, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    }
    H5O_info_t info;
    if (H5Oget_info_by_name(parent, name, &info, H5P_DEFAULT) < 0)
        return -1;
    if (info.type != H5O_TYPE_GROUP)
        return -3;
    return H5Gopen2(parent, name, H5P_DEFAULT);
}

/* Opens /runs/<id>, with an error when the id is bad or the run is absent. */
static hid_t open_run(struct akt_results *r, const char *id, struct akt_error *e)
{
    char w[700];
    if (!r) {
        akt_error_set(e, AKT_EINVAL, "results", "no results file (NULL handle)");
        return -1;
    }
    if (!name_ok(id, 1)) {
        akt_error_set(e, AKT_EINVAL, where_of(w, sizeof w, r, NULL, NULL),
                      "run id '%s' is not a valid name (use [A-Za-z0-9_.-], up to 255)",
                      id ? id : "(null)");
        return -1;
    }
    hid_t g = child_group(r->runs, id, 0);
    if (g == -2)
        akt_error_set(e, AKT_EINVAL, where_of(w, sizeof w, r, id, NULL),
                      "no such run (akt_results_run creates it)");
    else if (g == -3)
        akt_error_set(e, AKT_EFORMAT, where_of(w, sizeof w, r, id, NULL), "not a group");
    else if (g < 0)
        akt_error_set(e, AKT_EFORMAT, where_of(w, sizeof w, r, id, NULL),
                      "run group cannot be opened (corrupt file?)");
    return g < 0 ? -1 : g;
}

/* Opens (creating as needed) every component of "a/b/c" under run. */
static hid_t ensure_group_path(hid_t run, const char *path)
{
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    char *save = NULL;
    hid_t cur = run;
    for (char *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
        hid_t next = child_group(cur, t, 1);
        if (cur != run && akt__h5_close(cur) < 0) {
            akt__h5_close(next);
            return -1;
        }
        if (next < 0)
            return -1;
        cur = next;
    }
    return cur == run ? -1 : cur;
}

/* ---- open / close ------------------------------------------------------- */

static int init_new_file(hid_t f)
{
    char now[64];
    iso_time_utc(now, sizeof now);
    if (write_attr_i32(f, "akt_schema_version", AKT_RESULTS_SCHEMA) < 0 ||
        write_attr_str(f, "creator", CREATOR) < 0 || write_attr_str(f, "created", now) < 0 ||
        write_attr_str(f, "akt_version", AKT_VERSION) < 0 ||
        write_attr_str(f, "akt_commit", AKT_GIT_COMMIT[0] ? AKT_GIT_COMMIT : "unknown") < 0 ||
        write_attr_str(f, "host", akt_provenance_host()) < 0 ||
        write_attr_str(f, "command_line", akt_provenance_command_line()) < 0 ||
        write_attr_str(f, "working_dir", akt_provenance_cwd()) < 0)
        return -1;
    hid_t g = H5Gcreate2(f, "runs", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0 || akt__h5_close(g) < 0)
        return -1;
    return H5Fflush(f, H5F_SCOPE_GLOBAL) < 0 ? -1 : 0;
}

struct attrs_ctx {
    const char *path;
    struct akt_error *e;
    int rc;
};

static herr_t run_attrs_one(hid_t runs, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    struct attrs_ctx *c = data;
    H5O_info_t oi;
    if (H5Oget_info_by_name(runs, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_GROUP)
        return 0; /* open_run reports it when the run is used */
    char w[1400];
    snprintf(w, sizeof w, "%s:/runs/%s", c->path, name);
    hid_t g = H5Gopen2(runs, name, H5P_DEFAULT);
    if (g < 0)
        c->rc = akt_error_set(c->e, AKT_EFORMAT, w, "run group cannot be opened (corrupt file?)");
    else
        c->rc = akt__h5_check_run_attrs(g, w, c->e);
    if (akt__h5_close(g) < 0 && !c->rc)
        c->rc = akt_error_set(c->e, AKT_EFORMAT, w, "run group cannot be closed");
    return c->rc ? 1 : 0;
}

/* The run attributes readers use (status, config, checkpoint_epoch, ...)
 * are checked once, when the file is opened, so no getter meets an array
 * where a scalar belongs and a resume never reads a malformed checkpoint
 * epoch as "no checkpoint". */
static int check_run_attrs(hid_t f, const char *path, struct akt_error *e)
{
    if (H5Lexists(f, "runs", H5P_DEFAULT) <= 0)
        return 0; /* akt_results_open reports the missing group */
    hid_t runs = H5Gopen2(f, "runs", H5P_DEFAULT);
    if (runs < 0)
        return 0;
    struct attrs_ctx c = {.path = path, .e = e};
    hsize_t idx = 0;
    herr_t it = H5Literate(runs, H5_INDEX_NAME, H5_ITER_INC, &idx, run_attrs_one, &c);
    int bad = akt__h5_close(runs) < 0;
    if (!c.rc && (it < 0 || bad)) {
        char w[700];
        snprintf(w, sizeof w, "%s:/runs", path);
        c.rc = akt_error_set(e, AKT_EFORMAT, w, "cannot list the runs (corrupt file?)");
    }
    return c.rc;
}

static int check_existing(hid_t f, const char *path, struct akt_error *e)
{
    char w[700];
    snprintf(w, sizeof w, "%s:/", path);
    htri_t ex = H5Aexists(f, "akt_schema_version");
    if (ex < 0)
        return akt_error_set(e, AKT_EFORMAT, w, "root group cannot be read (corrupt file?)");
    if (ex == 0)
        return akt_error_set(e, AKT_EFORMAT, w,
                             "an HDF5 file, but not an akt results file (no root attribute "
                             "'akt_schema_version'); choose another output path");
    long long v = 0;
    int rc = akt__h5_read_num(f, w, "akt_schema_version", H5T_NATIVE_LLONG, 1, &v, 1, e);
    if (rc)
        return rc;
    if (v > AKT_RESULTS_SCHEMA)
        return akt_error_set(e, AKT_EFORMAT, w,
                             "akt_schema_version is %lld: written by a newer akt (this one "
                             "reads up to %d)", v, AKT_RESULTS_SCHEMA);
    if (v < 1)
        return akt_error_set(e, AKT_EFORMAT, w, "akt_schema_version is %lld, expected 1..%d", v,
                             AKT_RESULTS_SCHEMA);
    return check_run_attrs(f, path, e);
}

/* An existing file that must be an akt results file this akt reads: checked
 * read-only, so a foreign file is never opened for writing. */
static int check_file(const char *path, int need_write, struct akt_error *e)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return akt_error_set(e, AKT_EIO, path, "cannot open: %s", strerror(errno));
    if (access(path, need_write ? R_OK | W_OK : R_OK) != 0)
        return akt_error_set(e, AKT_EIO, path, "cannot open for %s: %s",
                             need_write ? "reading and writing" : "reading", strerror(errno));
    if (H5Fis_hdf5(path) <= 0)
        return akt_error_set(e, AKT_EFORMAT, path,
                             "exists but is not an HDF5 file (%lld bytes), so not an akt "
                             "results file%s", (long long)st.st_size,
                             need_write ? ": choose another output path" : "");
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return akt_error_set(e, AKT_EFORMAT, path,
                             "HDF5 file cannot be opened (corrupt, truncated, or being "
                             "written by another process?)");
    int rc = check_existing(f, path, e);
    if (H5Fclose(f) < 0 && !rc)
        rc = akt_error_set(e, AKT_EFORMAT, path, "HDF5 file cannot be closed");
    return rc;
}

/* A new results file at path (root attributes, /runs); -1 on failure. */
static hid_t create_file(const char *path, unsigned flags, const char *name, struct akt_error *e)
{
    errno = 0;
    hid_t f = H5Fcreate(path, flags, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        int err = errno;
        akt_error_set(e, AKT_EIO, name, "cannot create the results file%s%s", err ? ": " : "",
                      err ? strerror(err) : "");
        return -1;
    }
    if (init_new_file(f) < 0) {
        akt__h5_close(f);
        unlink(path);
        akt_error_set(e, AKT_EIO, name,
                      "writing the root group of a new results file failed (disk full?)");
        return -1;
    }
    return f;
}

/* The handle around open file f (closed on failure). */
static int wrap(struct akt_results **out, hid_t f, const char *path, const char *tmp,
                struct akt_error *e)
{
    hid_t runs = child_group(f, "runs", 0);
    if (runs < 0) {
        akt__h5_close(f);
        char w[700];
        snprintf(w, sizeof w, "%s:/runs", path);
        return akt_error_set(e, AKT_EFORMAT, w, "missing or not a group (malformed results file)");
    }
    struct akt_results *r = calloc(1, sizeof *r);
    char *p = strdup(path), *t = tmp ? strdup(tmp) : NULL;
    if (!r || !p || (tmp && !t)) {
        free(r);
        free(p);
        free(t);
        akt__h5_close(runs);
        akt__h5_close(f);
        return akt_error_set(e, AKT_ENOMEM, path, "out of memory");
    }
    r->f = f;
    r->runs = runs;
    r->path = p;
    r->tmp = t;
    *out = r;
    return 0;
}

int akt_results_open(struct akt_results **out, const char *path, struct akt_error *e)
{
    *out = NULL;
    if (!path || !*path)
        return akt_error_set(e, AKT_EINVAL, "results", "empty results path");
    h5_quiet();
    int exists = 0, rc = akt_file_check(path, &exists, e);
    if (rc)
        return rc;
    hid_t f = -1;
    if (!exists) {
        if ((f = create_file(path, H5F_ACC_EXCL, path, e)) < 0)
            return e ? e->code : AKT_EIO;
    } else {
        if ((rc = check_file(path, 1, e)))
            return rc;
        f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
        if (f < 0)
            return akt_error_set(e, AKT_EIO, path,
                                 "results file cannot be opened for writing (open in another "
                                 "process?)");
    }
    return wrap(out, f, path, NULL, e);
}

int akt_results_open_read(struct akt_results **out, const char *path, struct akt_error *e)
{
    *out = NULL;
    if (!path || !*path)
        return akt_error_set(e, AKT_EINVAL, "results", "empty results path");
    h5_quiet();
    int rc = akt_file_check(path, NULL, e);
    if (rc || (rc = check_file(path, 0, e)))
        return rc;
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return akt_error_set(e, AKT_EFORMAT, path, "HDF5 file cannot be opened");
    return wrap(out, f, path, NULL, e);
}

/* Files up to this size are edited as an in-memory image (the HDF5 core
 * driver): read with a few large reads, written back with a few large
 * writes, instead of a byte copy and hundreds of small HDF5 writes. Larger
 * ones (a sweep's results file) are copied and edited on disk.
 * AKT_RESULTS_MEM_EDIT_MAX (bytes) overrides it, for the tests. */
#define MEM_EDIT_MAX ((size_t)64 << 20)

static size_t mem_edit_max(void)
{
    const char *v = getenv("AKT_RESULTS_MEM_EDIT_MAX");
    return v && *v ? (size_t)strtoull(v, NULL, 10) : MEM_EDIT_MAX;
}

/* A core-driver file access list that never writes to disk itself, holding
 * image (copied by HDF5) when not NULL; -1 on failure. */
static hid_t mem_fapl(const void *image, size_t n)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return -1;
    if (H5Pset_fapl_core(fapl, 1 << 20, 0) < 0 || (image && H5Pset_file_image(fapl, (void *)image, n) < 0)) {
        H5Pclose(fapl);
        return -1;
    }
    return fapl;
}

int akt_results_edit(struct akt_results **out, const char *path, struct akt_error *e)
{
    *out = NULL;
    if (!path || !*path)
        return akt_error_set(e, AKT_EINVAL, "results", "empty results path");
    h5_quiet();
    char tmp[1200];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return akt_error_set(e, AKT_EINVAL, path, "path too long");
    int exists = 0, rc = akt_file_check(path, &exists, e);
    if (rc)
        return rc;
    unlink(tmp); /* a copy left by a process that was killed; also the name
                    the in-memory image goes by, so HDF5 opens nothing */
    struct stat st = {.st_mode = 0666};
    if (exists && ((rc = check_file(path, 1, e)) || stat(path, &st) != 0))
        return rc ? rc : akt_error_set(e, AKT_EIO, path, "cannot open: %s", strerror(errno));
    int mem = !exists || (size_t)st.st_size <= mem_edit_max();
    hid_t f = -1;
    if (!exists) {
        hid_t fapl = mem_fapl(NULL, 0);
        errno = 0;
        f = fapl < 0 ? -1 : H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
        akt__h5_close(fapl);
        if (f < 0 || init_new_file(f) < 0) {
            akt__h5_close(f);
            return akt_error_set(e, AKT_ENOMEM, path, "cannot make a new results file in memory");
        }
    } else if (mem) {
        void *image = NULL;
        size_t n = 0;
        if ((rc = akt__file_read(path, &image, &n, e)))
            return rc;
        hid_t fapl = mem_fapl(image, n);
        free(image);
        f = fapl < 0 ? -1 : H5Fopen(tmp, H5F_ACC_RDWR, fapl);
        akt__h5_close(fapl);
        if (f < 0)
            return akt_error_set(e, AKT_EFORMAT, path, "cannot be opened as an HDF5 image in memory");
    } else {
        if ((rc = akt__file_copy(path, tmp, e)))
            return rc;
        f = H5Fopen(tmp, H5F_ACC_RDWR, H5P_DEFAULT);
        if (f < 0) {
            unlink(tmp);
            return akt_error_set(e, AKT_EIO, tmp, "the copy of %s cannot be opened for writing",
                                 path);
        }
    }
    /* the file is rewritten by this akt: it carries this schema now (older
     * run groups stay readable, results/README.md) */
    if (exists && write_attr_i32(f, "akt_schema_version", AKT_RESULTS_SCHEMA) < 0) {
        akt__h5_close(f);
        unlink(tmp);
        return akt_error_set(e, AKT_EIO, path, "writing akt_schema_version failed");
    }
    if ((rc = wrap(out, f, path, tmp, e))) {
        unlink(tmp);
        return rc;
    }
    (*out)->mem = mem;
    (*out)->mode = (int)(st.st_mode & 0777);
    return 0;
}

static int close_handles(struct akt_results *r)
{
    int bad = akt__h5_close(r->runs) < 0;
    bad |= H5Fclose(r->f) < 0;
    return bad;
}

static void free_handle(struct akt_results *r)
{
    free(r->path);
    free(r->tmp);
    free(r);
}

int akt_results_commit(struct akt_results *r, struct akt_error *e)
{
    if (!r)
        return akt_error_set(e, AKT_EINVAL, "results", "no results file (NULL handle)");
    if (!r->tmp) { /* the handle is consumed either way */
        int rc = akt_error_set(e, AKT_EINVAL, r->path, "not opened with akt_results_edit");
        akt_results_close(r, NULL);
        return rc;
    }
    int rc = 0;
    void *image = NULL;
    ssize_t n = 0;
    if (r->mem) {
        n = H5Fflush(r->f, H5F_SCOPE_GLOBAL) < 0 ? -1 : H5Fget_file_image(r->f, NULL, 0);
        image = n > 0 ? malloc((size_t)n) : NULL;
        if (!image || H5Fget_file_image(r->f, image, (size_t)n) != n)
            rc = akt_error_set(e, AKT_ENOMEM, r->path, "cannot take the file's image (%lld bytes)",
                               (long long)n);
    }
    if (close_handles(r) && !rc)
        rc = akt_error_set(e, AKT_EIO, r->path, "closing the changed copy failed (disk full?)");
    if (!rc && r->mem)
        rc = akt__file_write(r->tmp, image, (size_t)n, r->mode, e);
    free(image);
    if (!rc)
        rc = akt__file_replace(r->tmp, r->path, e);
    if (rc)
        unlink(r->tmp);
    free_handle(r);
    return rc;
}

void akt_results_discard(struct akt_results *r)
{
    if (!r)
        return;
    close_handles(r);
    if (r->tmp)
        unlink(r->tmp);
    free_handle(r);
}

int akt_results_close(struct akt_results *r, struct akt_error *e)
{
    if (!r)
        return 0;
    if (r->tmp) { /* an edit that was not committed changes nothing */
        akt_results_discard(r);
        return 0;
    }
    int rc = close_handles(r)
                 ? akt_error_set(e, AKT_EIO, r->path, "closing the results file failed (disk full?)")
                 : 0;
    free_handle(r);
    return rc;
}

hid_t akt__results_file(struct akt_results *r) { return r->f; }
hid_t akt__results_runs(struct akt_results *r) { return r->runs; }

int akt_results_schema(struct akt_results *r)
{
    double v = 0;
    if (!r || akt__h5_attr_f64(r->f, "akt_schema_version", &v) != 0)
        return 0;
    return (int)v;
}

int akt_results_copy_run(struct akt_results *dst, struct akt_results *src, const char *id,
                         struct akt_error *e)
{
    char w[700], from[300];
    if (!dst || !src)
        return akt_error_set(e, AKT_EINVAL, "results", "no results file (NULL handle)");
    hid_t g = open_run(src, id, e); /* checks the id and that the run is there */
    if (g < 0)
        return e ? e->code : AKT_EINVAL;
    akt__h5_close(g);
    where_of(w, sizeof w, dst, id, NULL);
    htri_t ex = H5Lexists(dst->runs, id, H5P_DEFAULT);
    if (ex < 0 || (ex > 0 && H5Ldelete(dst->runs, id, H5P_DEFAULT) < 0))
        return akt_error_set(e, AKT_EIO, w, "cannot replace the run");
    snprintf(from, sizeof from, "/runs/%s", id);
    if (H5Ocopy(src->f, from, dst->runs, id, H5P_DEFAULT, H5P_DEFAULT) < 0)
        return akt_error_set(e, AKT_EIO, w, "copying the run from %s failed (disk full?)",
                             src->path);
    return 0;
}

int akt_results_flush(struct akt_results *r, struct akt_error *e)
{
    if (!r)
        return akt_error_set(e, AKT_EINVAL, "results", "no results file (NULL handle)");
    if (r->tmp)
        return 0; /* an edit: akt_results_commit syncs the whole copy */
    if (H5Fflush(r->f, H5F_SCOPE_GLOBAL) < 0)
        return akt_error_set(e, AKT_EIO, r->path, "flush failed (disk full?)");
    return 0;
}

/* ---- runs, status, attributes ------------------------------------------- */

int akt_results_run(struct akt_results *r, const char *id, const char *config_yaml,
                    struct akt_error *e)
{
    char w[700];
    if (!r)
        return akt_error_set(e, AKT_EINVAL, "results", "no results file (NULL handle)");
    if (!name_ok(id, 1))
        return akt_error_set(e, AKT_EINVAL, where_of(w, sizeof w, r, NULL, NULL),
                             "run id '%s' is not a valid name (use [A-Za-z0-9_.-], up to 255)",
                             id ? id : "(null)");
    where_of(w, sizeof w, r, id, NULL);
    htri_t ex = H5Lexists(r->runs, id, H5P_DEFAULT);
    if (ex < 0)
        return akt_error_set(e, AKT_EFORMAT, w, "cannot look up the run (corrupt file?)");
    if (ex > 0) { /* reopened: the stored config stays */
        hid_t g = open_run(r, id, e);
        if (g < 0)
            return e ? e->code : AKT_EFORMAT;
        hid_t m = child_group(g, "metrics", 1);
        int bad = m < 0;
        bad |= akt__h5_close(m) < 0;
        bad |= akt__h5_close(g) < 0;
        if (bad)
            return akt_error_set(e, AKT_EFORMAT, w, "group 'metrics' missing and cannot be created");
        return 0;
    }
    char now[64];
    iso_time_utc(now, sizeof now);
    hid_t g = H5Gcreate2(r->runs, id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0)
        return akt_error_set(e, AKT_EIO, w, "cannot create the run group");
    int bad = write_attr_str(g, "config", config_yaml ? config_yaml : "") < 0;
    bad = bad || write_attr_str(g, "status", "running") < 0;
    bad = bad || write_attr_str(g, "status_message", "") < 0;
    bad = bad || write_attr_str(g, "created", now) < 0;
    hid_t m = bad ? -1 : H5Gcreate2(g, "metrics", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    bad |= m < 0;
    bad |= akt__h5_close(m) < 0;
    bad |= akt__h5_close(g) < 0;
    if (bad) {
        H5Ldelete(r->runs, id, H5P_DEFAULT); /* best effort: no half-made run */
        return akt_error_set(e, AKT_EIO, w, "writing the run's config and status failed");
    }
    return akt_results_flush(r, e);
}

int akt_results_has_run(struct akt_results *r, const char *id)
{
    if (!r || !name_ok(id, 1))
        return 0;
    return H5Lexists(r->runs, id, H5P_DEFAULT) > 0;
}

int akt_results_set_status(struct akt_results *r, const char *id, const char *status,
                           const char *message, struct akt_error *e)
{
    char w[700];
    static const char *const known[] = {"running", "done", "failed", "interrupted"};
    int ok = 0;
    for (size_t i = 0; status && i < sizeof known / sizeof known[0]; i++)
        ok |= !strcmp(status, known[i]);
    hid_t g = open_run(r, id, e);
    if (g < 0)
        return e ? e->code : AKT_EINVAL;
    where_of(w, sizeof w, r, id, NULL);
    if (!ok) {
        akt__h5_close(g);
        return akt_error_set(e, AKT_EINVAL, w,
                             "status '%s' is not one of running, done, failed, interrupted",
                             status ? status : "(null)");
    }
    int bad = write_attr_str(g, "status", status) < 0;
    bad = bad || write_attr_str(g, "status_message", message ? message : "") < 0;
    bad |= akt__h5_close(g) < 0;
    if (bad)
        return akt_error_set(e, AKT_EIO, w, "writing attribute 'status' failed");
    return akt_results_flush(r, e);
}

/* A string attribute of /runs/<id> into buf ("" when absent). */
static int get_run_str(struct akt_results *r, const char *id, const char *name, char *buf,
                       size_t n)
{
    if (buf && n)
        buf[0] = 0;
    hid_t g = open_run(r, id, NULL);
    if (g < 0)
        return AKT_EINVAL;
    int rc = read_attr_str(g, name, buf, n) < 0 ? AKT_EFORMAT : 0;
    if (akt__h5_close(g) < 0)
        rc = AKT_EFORMAT;
    return rc;
}

int akt_results_get_status(struct akt_results *r, const char *id, char *buf, size_t n)
{
    return get_run_str(r, id, "status", buf, n);
}

int akt_results_get_config(struct akt_results *r, const char *id, char *buf, size_t n)
{
    return get_run_str(r, id, "config", buf, n);
}

int akt_results_set_attr(struct akt_results *r, const char *id, const char *name, double v,
                         struct akt_error *e)
{
    return akt_results_attr_set(r, id, NULL, name, AKT_F64, &v, e);
}

int akt_results_set_attr_str(struct akt_results *r, const char *id, const char *name,
                             const char *value, struct akt_error *e)
{
    char w[1400];
    where_of(w, sizeof w, r, id, NULL);
    if (!name_ok(name, 1) || is_reserved(name))
        return akt_error_set(e, AKT_EINVAL, w,
                             "attribute name '%s' is invalid or reserved (config, status, "
                             "status_message, created)", name ? name : "(null)");
    hid_t g = open_run(r, id, e);
    if (g < 0)
        return e ? e->code : AKT_EINVAL;
    int rc = write_attr_str(g, name, value ? value : "") < 0
                 ? akt_error_set(e, AKT_EIO, w, "writing attribute '%s' failed", name)
                 : 0;
    if (akt__h5_close(g) < 0 && !rc)
        rc = akt_error_set(e, AKT_EIO, w, "closing the run group failed");
    return rc;
}

int akt_results_get_attr(struct akt_results *r, const char *id, const char *name, double *v)
{
    return akt_results_attr_get(r, id, NULL, name, AKT_F64, v, 0);
}

/* ---- metric series ------------------------------------------------------ */

/* An extendible [0] or [0,width] dataset, chunked along rows. */
static hid_t create_series(hid_t g, const char *name, hid_t ftype, int width)
{
    hsize_t rows_per_chunk = 128;
    size_t row_bytes = (size_t)width * 8;
    if (rows_per_chunk * row_bytes > (1u << 20))
        rows_per_chunk = (1u << 20) / row_bytes ? (1u << 20) / row_bytes : 1;
    int nd = width > 1 ? 2 : 1;
    hsize_t dims[2] = {0, (hsize_t)width}, maxd[2] = {H5S_UNLIMITED, (hsize_t)width},
            chunk[2] = {rows_per_chunk, (hsize_t)width};
    hid_t sp = H5Screate_simple(nd, dims, maxd);
    hid_t pl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t d = -1;
    if (sp >= 0 && pl >= 0 && H5Pset_chunk(pl, nd, chunk) >= 0)
        d = H5Dcreate2(g, name, ftype, sp, H5P_DEFAULT, pl, H5P_DEFAULT);
    if ((akt__h5_close(sp) | akt__h5_close(pl)) < 0) {
        akt__h5_close(d);
        return -1;
    }
    return d;
}

/* Shape of a dataset: rank (<= 2 accepted) and dims; -1 on failure. */
static int ds_dims(hid_t d, hsize_t dims[2])
{
    dims[0] = dims[1] = 0;
    hid_t sp = H5Dget_space(d);
    if (sp < 0)
        return -1;
    int nd = H5Sget_simple_extent_ndims(sp);
    if (nd < 1 || nd > 2 || H5Sget_simple_extent_dims(sp, dims, NULL) < 0)
        nd = -1;
    if (akt__h5_close(sp) < 0)
        return -1;
    return nd;
}

/* Writes one row (count elements) at row `row` of d, extending it first. */
static int write_row(hid_t d, hsize_t row, hsize_t width, hid_t mtype, const void *buf)
{
    hsize_t dims[2] = {row + 1, width}, start[2] = {row, 0}, count[2] = {1, width};
    if (H5Dset_extent(d, dims) < 0)
        return -1;
    hid_t fs = H5Dget_space(d);
    hid_t ms = H5Screate_simple(1, &width, NULL);
    int bad = fs < 0 || ms < 0 ||
              H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
              H5Dwrite(d, mtype, ms, fs, H5P_DEFAULT, buf) < 0;
    bad |= akt__h5_close(fs) < 0;
    bad |= akt__h5_close(ms) < 0;
    return bad ? -1 : 0;
}

struct series {
    hid_t g, step, value;
    int width;
    hsize_t rows; /* min(rows of step, rows of value) */
};

static void series_close(struct series *s, int *bad)
{
    int b = akt__h5_close(s->step) < 0;
    b |= akt__h5_close(s->value) < 0;
    b |= akt__h5_close(s->g) < 0;
    s->g = s->step = s->value = -1;
    if (bad)
        *bad |= b;
}

/* Opens metric group g's step/value and checks them; 0 or an error message. */
static const char *series_open(hid_t metrics, const char *name, struct series *s)
{
    s->step = s->value = -1;
    s->g = child_group(metrics, name, 0);
    if (s->g < 0)
        return s->g == -3 ? "not a group" : "metric group cannot be opened";
    if (H5Lexists(s->g, "step", H5P_DEFAULT) <= 0 || H5Lexists(s->g, "value", H5P_DEFAULT) <= 0)
        return "missing dataset 'step' or 'value'";
    s->step = H5Dopen2(s->g, "step", H5P_DEFAULT);
    s->value = H5Dopen2(s->g, "value", H5P_DEFAULT);
    if (s->step < 0 || s->value < 0)
        return "dataset 'step' or 'value' cannot be opened";
    hsize_t sd[2], vd[2];
    int sn = ds_dims(s->step, sd), vn = ds_dims(s->value, vd);
    if (sn != 1)
        return "dataset 'step' is not one-dimensional";
    if (vn < 1)
        return "dataset 'value' is not [rows] or [rows,width]";
    s->width = vn == 1 ? 1 : (int)vd[1];
    s->rows = sd[0] < vd[0] ? sd[0] : vd[0];
    return NULL;
}

/* Opens /runs/<id>/metrics; -2 if absent. */
static hid_t open_metrics(hid_t run, int create) { return child_group(run, "metrics", create); }

int akt_results_append(struct akt_results *r, const char *id, const char *name, int64_t step,
                       const double *value, int width, struct akt_error *e)
{
    char w[900], sub[300];
    hid_t run = open_run(r, id, e);
    if (run < 0)
        return e ? e->code : AKT_EINVAL;
    int rc = 0;
    hid_t metrics = -1;
    struct series s = {.g = -1, .step = -1, .value = -1};
    if (!name_ok(name, 0)) {
        rc = akt_error_set(e, AKT_EINVAL, where_of(w, sizeof w, r, id, "metrics"),
                           "metric name '%s' is not valid (use [A-Za-z0-9_.], up to 255)",
                           name ? name : "(null)");
        goto out;
    }
    snprintf(sub, sizeof sub, "metrics/%s", name);
    where_of(w, sizeof w, r, id, sub);
    if (width < 1 || width > MAX_WIDTH || !value) {
        rc = akt_error_set(e, AKT_EINVAL, w, "width %d (expected 1..%d) or no values", width,
                           MAX_WIDTH);
        goto out;
    }
    metrics = open_metrics(run, 1);
    if (metrics < 0) {
        rc = akt_error_set(e, AKT_EFORMAT, w, "group 'metrics' cannot be opened or created");
        goto out;
    }
    htri_t ex = H5Lexists(metrics, name, H5P_DEFAULT);
    if (ex < 0) {
        rc = akt_error_set(e, AKT_EFORMAT, w, "cannot look up the metric (corrupt file?)");
        goto out;
    }
    if (ex == 0) {
        s.g = H5Gcreate2(metrics, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        if (s.g >= 0)
            s.step = create_series(s.g, "step", H5T_STD_I64LE, 1);
        if (s.step >= 0)
            s.value = create_series(s.g, "value", H5T_IEEE_F64LE, width);
        if (s.value < 0) {
            rc = akt_error_set(e, AKT_EIO, w, "cannot create the metric's datasets");
            goto out;
        }
        s.width = width;
        s.rows = 0;
    } else {
        const char *why = series_open(metrics, name, &s);
        if (why) {
            rc = akt_error_set(e, AKT_EFORMAT, w, "%s", why);
            goto out;
        }
        if (s.width != width) {
            rc = akt_error_set(e, AKT_ESHAPE, w, "has width %d, appending a row of width %d",
                               s.width, width);
            goto out;
        }
    }
    /* step first: until value has the row too, readers see rows = min(). */
    if (write_row(s.step, s.rows, 1, H5T_NATIVE_INT64, &step) < 0 ||
        write_row(s.value, s.rows, (hsize_t)width, H5T_NATIVE_DOUBLE, value) < 0) {
        rc = akt_error_set(e, AKT_EIO, w, "appending row %llu failed (disk full?)",
                           (unsigned long long)s.rows);
        goto out;
    }
out:;
    int bad = 0;
    series_close(&s, &bad);
    bad |= akt__h5_close(metrics) < 0;
    bad |= akt__h5_close(run) < 0;
    if (bad && !rc)
        rc = akt_error_set(e, AKT_EIO, w, "closing the metric's datasets failed");
    return rc;
}

int64_t akt_results_rows(struct akt_results *r, const char *id, const char *name)
{
    if (!r || !name_ok(id, 1) || !name_ok(name, 0) || H5Lexists(r->runs, id, H5P_DEFAULT) <= 0)
        return 0;
    hid_t run = open_run(r, id, NULL);
    if (run < 0)
        return AKT_EFORMAT;
    hid_t metrics = open_metrics(run, 0);
    int64_t rows = 0;
    if (metrics >= 0) {
        htri_t ex = H5Lexists(metrics, name, H5P_DEFAULT);
        if (ex < 0) {
            rows = AKT_EFORMAT;
        } else if (ex > 0) {
            struct series s;
            rows = series_open(metrics, name, &s) ? AKT_EFORMAT : (int64_t)s.rows;
            int bad = 0;
            series_close(&s, &bad);
            if (bad)
                rows = AKT_EFORMAT;
        }
    } else if (metrics != -2) {
        rows = AKT_EFORMAT;
    }
    if ((akt__h5_close(metrics) | akt__h5_close(run)) < 0)
        rows = AKT_EFORMAT;
    return rows;
}

int akt_results_read_metric(struct akt_results *r, const char *id, const char *name,
                            int64_t *steps, double *values, int64_t rows, int width,
                            struct akt_error *e)
{
    char w[900], sub[300];
    hid_t run = open_run(r, id, e);
    if (run < 0)
        return e ? e->code : AKT_EINVAL;
    int rc = 0;
    hid_t metrics = -1;
    struct series s = {.g = -1, .step = -1, .value = -1};
    snprintf(sub, sizeof sub, "metrics/%s", name && name_ok(name, 0) ? name : "?");
    where_of(w, sizeof w, r, id, sub);
    if (!name_ok(name, 0) || rows < 0 || width < 1) {
        rc = akt_error_set(e, AKT_EINVAL, w, "bad metric name, rows %lld or width %d",
                           (long long)rows, width);
        goto out;
    }
    metrics = open_metrics(run, 0);
    if (metrics == -2 || (metrics >= 0 && H5Lexists(metrics, name, H5P_DEFAULT) == 0)) {
        rc = akt_error_set(e, AKT_EINVAL, w, "no such metric");
        goto out;
    }
    const char *why = metrics < 0 ? "group 'metrics' cannot be opened"
                                  : series_open(metrics, name, &s);
    if (why) {
        rc = akt_error_set(e, AKT_EFORMAT, w, "%s", why);
        goto out;
    }
    if (s.width != width || (hsize_t)rows > s.rows) {
        rc = akt_error_set(e, AKT_ESHAPE, w, "has %llu rows of width %d; asked for %lld of width %d",
                           (unsigned long long)s.rows, s.width, (long long)rows, width);
        goto out;
    }
    if (rows > 0) {
        hsize_t start[2] = {0, 0}, count[2] = {(hsize_t)rows, (hsize_t)width};
        hsize_t nsteps = (hsize_t)rows, nvals = (hsize_t)rows * (hsize_t)width;
        int bad = 0;
        if (steps) {
            hid_t fs = H5Dget_space(s.step), ms = H5Screate_simple(1, &nsteps, NULL);
            bad |= fs < 0 || ms < 0 ||
                   H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
                   H5Dread(s.step, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, steps) < 0;
            bad |= (akt__h5_close(fs) | akt__h5_close(ms)) < 0;
        }
        if (values && !bad) {
            hid_t fs = H5Dget_space(s.value), ms = H5Screate_simple(1, &nvals, NULL);
            bad |= fs < 0 || ms < 0 ||
                   H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
                   H5Dread(s.value, H5T_NATIVE_DOUBLE, ms, fs, H5P_DEFAULT, values) < 0;
            bad |= (akt__h5_close(fs) | akt__h5_close(ms)) < 0;
        }
        if (bad)
            rc = akt_error_set(e, AKT_EFORMAT, w, "read failed (corrupt file?)");
    }
out:;
    int bad = 0;
    series_close(&s, &bad);
    bad |= akt__h5_close(metrics) < 0;
    bad |= akt__h5_close(run) < 0;
    if (bad && !rc)
        rc = akt_error_set(e, AKT_EFORMAT, w, "closing the metric's datasets failed");
    return rc;
}

/* Shrinks one metric to `rows` rows, or (by_step) to the rows before the
 * first step >= limit. Never grows a series. */
struct trunc_ctx {
    struct akt_results *r;
    const char *id;
    int64_t limit;
    int by_step;
    struct akt_error *e;
    int rc;
};

static herr_t trunc_one(hid_t metrics, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    struct trunc_ctx *c = data;
    char w[900], sub[300];
    snprintf(sub, sizeof sub, "metrics/%s", name);
    where_of(w, sizeof w, c->r, c->id, sub);
    struct series s;
    const char *why = series_open(metrics, name, &s);
    hsize_t keep = 0;
    if (!why) {
        keep = s.rows;
        if (!c->by_step) {
            if ((hsize_t)c->limit < keep)
                keep = (hsize_t)c->limit;
        } else if (s.rows > 0) {
            int64_t *st = malloc(s.rows * sizeof *st);
            hsize_t n = s.rows, start = 0;
            hid_t fs = st ? H5Dget_space(s.step) : -1, ms = st ? H5Screate_simple(1, &n, NULL) : -1;
            int bad = !st || fs < 0 || ms < 0 ||
                      H5Sselect_hyperslab(fs, H5S_SELECT_SET, &start, NULL, &n, NULL) < 0 ||
                      H5Dread(s.step, H5T_NATIVE_INT64, ms, fs, H5P_DEFAULT, st) < 0;
            bad |= (akt__h5_close(fs) | akt__h5_close(ms)) < 0;
            if (bad) {
                why = "dataset 'step' cannot be read";
            } else {
                keep = 0;
                while (keep < s.rows && st[keep] < c->limit)
                    keep++;
            }
            free(st);
        }
    }
    if (!why) {
        hsize_t sd[1] = {keep}, vd[2] = {keep, (hsize_t)s.width};
        if (H5Dset_extent(s.step, sd) < 0 || H5Dset_extent(s.value, vd) < 0)
            why = "resizing 'step'/'value' failed";
    }
    int bad = 0;
    series_close(&s, &bad);
    if (!why && bad)
        why = "closing the metric's datasets failed";
    if (why) {
        c->rc = akt_error_set(c->e, AKT_EFORMAT, w, "%s", why);
        return 1; /* stop iterating */
    }
    return 0;
}

static int truncate_run(struct akt_results *r, const char *id, int64_t limit, int by_step,
                        struct akt_error *e)
{
    char w[700];
    hid_t run = open_run(r, id, e);
    if (run < 0)
        return e ? e->code : AKT_EINVAL;
    where_of(w, sizeof w, r, id, "metrics");
    if (limit < 0) {
        akt__h5_close(run);
        return akt_error_set(e, AKT_EINVAL, w, "cannot truncate to %lld", (long long)limit);
    }
    hid_t metrics = open_metrics(run, 0);
    struct trunc_ctx c = {.r = r, .id = id, .limit = limit, .by_step = by_step, .e = e};
    if (metrics >= 0) {
        hsize_t idx = 0;
        herr_t it = H5Literate(metrics, H5_INDEX_NAME, H5_ITER_INC, &idx, trunc_one, &c);
        if (it < 0 && !c.rc)
            c.rc = akt_error_set(e, AKT_EFORMAT, w, "cannot list the metrics (corrupt file?)");
    } else if (metrics != -2) {
        c.rc = akt_error_set(e, AKT_EFORMAT, w, "group cannot be opened");
    }
    int bad = (akt__h5_close(metrics) | akt__h5_close(run)) < 0;
    if (bad && !c.rc)
        c.rc = akt_error_set(e, AKT_EFORMAT, w, "closing the metrics group failed");
    if (c.rc)
        return c.rc;
    return akt_results_flush(r, e);
}

int akt_results_truncate(struct akt_results *r, const char *id, int64_t rows, struct akt_error *e)
{
    return truncate_run(r, id, rows, 0, e);
}

int akt_results_truncate_steps(struct akt_results *r, const char *id, int64_t step,
                               struct akt_error *e)
{
    return truncate_run(r, id, step, 1, e);
}

/* ---- tensors ------------------------------------------------------------ */

/* /runs/<id>/<group>/<name> with file type ftype and dims: rewritten in place
 * when a dataset of that type and shape is there (the file does not grow
 * with each checkpoint), else replaced. */
static int write_array(struct akt_results *r, const char *id, const char *group,
                       const char *name, hid_t ftype, hid_t mtype, const void *data, int ndim,
                       const hsize_t *dims, struct akt_error *e)
{
    char w[1400], sub[1300];
    hid_t run = open_run(r, id, e);
    if (run < 0)
        return e ? e->code : AKT_EINVAL;
    int rc = 0;
    hid_t g = -1, d = -1, sp = -1, ft = -1;
    snprintf(sub, sizeof sub, "%s/%s", group && group_path_ok(group) ? group : "?",
             name && name_ok(name, 1) ? name : "?");
    where_of(w, sizeof w, r, id, sub);
    if (!group_path_ok(group) || !name_ok(name, 1)) {
        rc = akt_error_set(e, AKT_EINVAL, w,
                           "group '%s' / name '%s': use [A-Za-z0-9_.-] names ('/' between groups)",
                           group ? group : "(null)", name ? name : "(null)");
        goto out;
    }
    hsize_t count = 1;
    for (int k = 0; k < ndim; k++)
        count *= dims[k];
    if (!data && count > 0) { /* an empty tensor (a generator with no state) needs none */
        rc = akt_error_set(e, AKT_EINVAL, w, "no data");
        goto out;
    }
    if ((g = ensure_group_path(run, group)) < 0) {
        rc = akt_error_set(e, AKT_EFORMAT, w, "group '%s' cannot be opened or created", group);
        goto out;
    }
    htri_t ex = H5Lexists(g, name, H5P_DEFAULT);
    if (ex < 0) {
        rc = akt_error_set(e, AKT_EFORMAT, w, "cannot look up the dataset (corrupt file?)");
        goto out;
    }
    if (ex > 0) {
        H5O_info_t info;
        int same = 0;
        if (H5Oget_info_by_name(g, name, &info, H5P_DEFAULT) >= 0 && info.type == H5O_TYPE_DATASET &&
            (d = H5Dopen2(g, name, H5P_DEFAULT)) >= 0) {
            hid_t s = H5Dget_space(d);
            hsize_t have[MAX_NDIM];
            int nd = s >= 0 ? H5Sget_simple_extent_ndims(s) : -1;
            same = nd == ndim && H5Sget_simple_extent_dims(s, have, NULL) >= 0;
            for (int k = 0; same && k < ndim; k++)
                same = have[k] == dims[k];
            ft = H5Dget_type(d);
            same = same && ft >= 0 && H5Tequal(ft, ftype) > 0;
            if ((akt__h5_close(s) | akt__h5_close(ft)) < 0)
                same = 0;
            ft = -1;
        }
        if (!same) {
            int bad = akt__h5_close(d) < 0;
            d = -1;
            if (bad || H5Ldelete(g, name, H5P_DEFAULT) < 0) {
                rc = akt_error_set(e, AKT_EIO, w, "cannot replace the existing dataset");
                goto out;
            }
        }
    }
    if (d < 0) {
        if ((sp = H5Screate_simple(ndim, dims, NULL)) < 0 ||
            (d = H5Dcreate2(g, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
            rc = akt_error_set(e, AKT_EIO, w, "cannot create the dataset");
            goto out;
        }
    }
    if (count > 0 && H5Dwrite(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = akt_error_set(e, AKT_EIO, w, "write failed (disk full?)");
out:;
    int bad = (akt__h5_close(sp) | akt__h5_close(d) | akt__h5_close(g) | akt__h5_close(run)) < 0;
    if (bad && !rc)
        rc = akt_error_set(e, AKT_EIO, w, "closing the dataset failed");
    return rc;
}

int akt_results_write_tensor(struct akt_results *r, const char *id, const char *group,
                             const char *name, const float *data, int ndim, const int *shape,
                             struct akt_error *e)
{
    return akt_results_write(r, id, group, name, AKT_F32, data, ndim, shape, e);
}

int akt_results_write_ints(struct akt_results *r, const char *id, const char *group,
                           const char *name, const int *data, int n, struct akt_error *e)
{
    char w[700];
    if (r && n < 1)
        return akt_error_set(e, AKT_EINVAL, where_of(w, sizeof w, r, id, group),
                             "'%s': %d integers", name ? name : "(null)", n);
    return akt_results_write(r, id, group, name, AKT_I32, data, 1, &n, e);
}

/* Reads /runs/<id>/<group>/<name> (n elements) converted to mtype. */
static int read_array(struct akt_results *r, const char *id, const char *group, const char *name,
                      hid_t mtype, int ints_only, void *data, int64_t n, struct akt_error *e)
{
    char w[1400], sub[1300];
    hid_t run = open_run(r, id, e);
    if (run < 0)
        return e ? e->code : AKT_EINVAL;
    int rc = 0;
    hid_t d = -1, sp = -1, ft = -1;
    snprintf(sub, sizeof sub, "%s/%s", group && group_path_ok(group) ? group : "?",
             name && name_ok(name, 1) ? name : "?");
    where_of(w, sizeof w, r, id, sub);
    if (!group_path_ok(group) || !name_ok(name, 1) || (!data && n > 0) || n < 0) {
        rc = akt_error_set(e, AKT_EINVAL, w, "bad group, name, buffer or count");
        goto out;
    }
    /* H5Lexists fails on a missing intermediate group: check each level. */
    char path[1300];
    snprintf(path, sizeof path, "%s/%s", group, name);
    for (char *p = path;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            htri_t ex = H5Lexists(run, path, H5P_DEFAULT);
            *p = c;
            if (ex <= 0) {
                rc = akt_error_set(e, AKT_EFORMAT, w, ex < 0 ? "cannot look up the dataset"
                                                             : "missing dataset");
                goto out;
            }
            if (!c)
                break;
        }
    }
    if ((d = H5Dopen2(run, path, H5P_DEFAULT)) < 0) {
        rc = akt_error_set(e, AKT_EFORMAT, w, "not a dataset");
        goto out;
    }
    if ((sp = H5Dget_space(d)) < 0 || (ft = H5Dget_type(d)) < 0) {
        rc = akt_error_set(e, AKT_EFORMAT, w, "cannot read the dataset's shape and type");
        goto out;
    }
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    H5T_class_t cls = H5Tget_class(ft);
    if (np != n) {
        rc = akt_error_set(e, AKT_ESHAPE, w, "has %lld elements, expected %lld", (long long)np,
                           (long long)n);
        goto out;
    }
    if (cls != H5T_INTEGER && (ints_only || cls != H5T_FLOAT)) {
        rc = akt_error_set(e, AKT_EFORMAT, w, "not %s dataset",
                           ints_only ? "an integer" : "a numeric");
        goto out;
    }
    if (n > 0 && H5Dread(d, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
        rc = akt_error_set(e, AKT_EFORMAT, w, "read failed (corrupt file?)");
out:;
    int bad = (akt__h5_close(ft) | akt__h5_close(sp) | akt__h5_close(d) | akt__h5_close(run)) < 0;
    if (bad && !rc)
        rc = akt_error_set(e, AKT_EFORMAT, w, "closing the dataset failed");
    return rc;
}

int akt_results_read_tensor(struct akt_results *r, const char *id, const char *group,
                            const char *name, float *data, int64_t n, struct akt_error *e)
{
    return akt_results_read(r, id, group, name, AKT_F32, data, n, e);
}

int akt_results_read_ints(struct akt_results *r, const char *id, const char *group,
                          const char *name, int *data, int n, struct akt_error *e)
{
    return akt_results_read(r, id, group, name, AKT_I32, data, n, e);
}

/* ---- analysis helpers (float64 arrays, attributes on sub-groups) -------- */

int akt_results_write_doubles(struct akt_results *r, const char *id, const char *group,
                              const char *name, const double *data, int n, struct akt_error *e)
{
    char w[700];
    if (r && n < 1)
        return akt_error_set(e, AKT_EINVAL, where_of(w, sizeof w, r, id, group),
                             "'%s': %d values", name ? name : "(null)", n);
    return akt_results_write(r, id, group, name, AKT_F64, data, 1, &n, e);
}

int akt_results_read_doubles(struct akt_results *r, const char *id, const char *group,
                             const char *name, double *data, int64_t n, struct akt_error *e)
{
    return akt_results_read(r, id, group, name, AKT_F64, data, n, e);
}

/* Opens /runs/<id>/<group> (created when create is set) for its attributes;
 * run receives the run group (close both). */
static hid_t open_sub_group(struct akt_results *r, const char *id, const char *group,
                            const char *name, int create, hid_t *run, char *w, size_t wn,
                            struct akt_error *e)
{
    *run = open_run(r, id, e);
    if (*run < 0)
        return -1;
    where_of(w, wn, r, id, group && group_path_ok(group) ? group : "?");
    if (!group_path_ok(group) || !name_ok(name, 1)) {
        akt_error_set(e, AKT_EINVAL, w, "group '%s' / attribute '%s': use [A-Za-z0-9_.-] names",
                      group ? group : "(null)", name ? name : "(null)");
        return -1;
    }
    hid_t g = -1;
    if (create) {
        g = ensure_group_path(*run, group);
    } else {
        htri_t ex = H5Lexists(*run, group, H5P_DEFAULT); /* fails on a missing parent */
        g = ex > 0 ? H5Gopen2(*run, group, H5P_DEFAULT) : -1;
    }
    if (g < 0)
        akt_error_set(e, create ? AKT_EIO : AKT_EFORMAT, w,
                      create ? "group cannot be opened or created" : "no such group");
    return g;
}

int akt_results_set_group_attr(struct akt_results *r, const char *id, const char *group,
                               const char *name, double v, struct akt_error *e)
{
    return akt_results_attr_set(r, id, group ? group : "?", name, AKT_F64, &v, e);
}

int akt_results_set_group_attr_str(struct akt_results *r, const char *id, const char *group,
                                   const char *name, const char *value, struct akt_error *e)
{
    return akt_results_attr_set(r, id, group ? group : "?", name, AKT_STR, value ? value : "", e);
}

int akt_results_get_group_attr(struct akt_results *r, const char *id, const char *group,
                               const char *name, double *v)
{
    return akt_results_attr_get(r, id, group ? group : "?", name, AKT_F64, v, 0);
}

int akt_results_get_group_attr_str(struct akt_results *r, const char *id, const char *group,
                                   const char *name, char *buf, size_t n)
{
    return akt_results_attr_get(r, id, group ? group : "?", name, AKT_STR, buf, n);
}

/* ---- the typed API: one write/read, one attribute set/get ----------------- */

static int type_ids(enum akt_type type, hid_t *ftype, hid_t *mtype)
{
    switch (type) {
    case AKT_F32: *ftype = H5T_IEEE_F32LE, *mtype = H5T_NATIVE_FLOAT; return 0;
    case AKT_F64: *ftype = H5T_IEEE_F64LE, *mtype = H5T_NATIVE_DOUBLE; return 0;
    case AKT_I32: *ftype = H5T_STD_I32LE, *mtype = H5T_NATIVE_INT; return 0;
    default: return -1;
    }
}

int akt_results_write(struct akt_results *r, const char *id, const char *group, const char *name,
                      enum akt_type type, const void *data, int ndim, const int *shape,
                      struct akt_error *e)
{
    char w[700];
    hsize_t dims[MAX_NDIM];
    hid_t ftype = -1, mtype = -1;
    if (r && type_ids(type, &ftype, &mtype))
        return akt_error_set(e, AKT_EINVAL, where_of(w, sizeof w, r, id, group),
                             "array '%s': type %d is not a number type", name ? name : "(null)",
                             (int)type);
    if (r && (ndim < 1 || ndim > MAX_NDIM || !shape))
        return akt_error_set(e, AKT_EINVAL, where_of(w, sizeof w, r, id, group),
                             "array '%s': ndim %d, expected 1..%d", name ? name : "(null)", ndim,
                             MAX_NDIM);
    for (int k = 0; r && k < ndim; k++) {
        if (shape[k] < 0) /* 0 is an empty array */
            return akt_error_set(e, AKT_EINVAL, where_of(w, sizeof w, r, id, group),
                                 "array '%s': shape[%d] = %d", name ? name : "(null)", k,
                                 shape[k]);
        dims[k] = (hsize_t)shape[k];
    }
    return write_array(r, id, group, name, ftype, mtype, data, ndim, dims, e);
}

int akt_results_read(struct akt_results *r, const char *id, const char *group, const char *name,
                     enum akt_type type, void *data, int64_t n, struct akt_error *e)
{
    char w[700];
    hid_t ftype = -1, mtype = -1;
    if (type_ids(type, &ftype, &mtype))
        return akt_error_set(e, AKT_EINVAL, r ? where_of(w, sizeof w, r, id, group) : "results",
                             "array '%s': type %d is not a number type", name ? name : "(null)",
                             (int)type);
    return read_array(r, id, group, name, mtype, type == AKT_I32, data, n, e);
}

/* The object that holds the attributes: the run group (group NULL or "")
 * or /runs/<id>/<group> (created when create is set); close obj and *run. */
static hid_t attr_holder(struct akt_results *r, const char *id, const char *group,
                         const char *name, int create, hid_t *run, char *w, size_t wn,
                         struct akt_error *e)
{
    if (group && *group)
        return open_sub_group(r, id, group, name, create, run, w, wn, e);
    *run = -1;
    hid_t g = open_run(r, id, e);
    if (g < 0)
        return -1;
    where_of(w, wn, r, id, NULL);
    if (!name_ok(name, 1) || (create && is_reserved(name))) {
        akt__h5_close(g);
        akt_error_set(e, AKT_EINVAL, w,
                      "attribute name '%s' is invalid or reserved (config, status, "
                      "status_message, created)", name ? name : "(null)");
        return -1;
    }
    return g;
}

int akt_results_attr_set(struct akt_results *r, const char *id, const char *group,
                         const char *name, enum akt_type type, const void *value,
                         struct akt_error *e)
{
    char w[1400];
    if (type != AKT_F64 && type != AKT_STR)
        return akt_error_set(e, AKT_EINVAL, "results", "attribute '%s': type %d (a number is "
                             "AKT_F64, a string AKT_STR)", name ? name : "(null)", (int)type);
    hid_t run = -1, g = attr_holder(r, id, group, name, 1, &run, w, sizeof w, e);
    int rc = g < 0 ? (e && e->code ? e->code : AKT_EINVAL) : 0;
    if (!rc && !value)
        rc = akt_error_set(e, AKT_EINVAL, w, "attribute '%s': no value", name);
    if (!rc && (type == AKT_F64 ? write_attr_f64(g, name, *(const double *)value)
                                : write_attr_str(g, name, value)) < 0)
        rc = akt_error_set(e, AKT_EIO, w, "writing attribute '%s' failed", name);
    if ((akt__h5_close(g) | akt__h5_close(run)) < 0 && !rc)
        rc = akt_error_set(e, AKT_EIO, w, "closing the group failed");
    return rc;
}

int akt_results_attr_get(struct akt_results *r, const char *id, const char *group,
                         const char *name, enum akt_type type, void *value, size_t n)
{
    char w[1400];
    if (type == AKT_STR && value && n)
        *(char *)value = 0;
    if ((type != AKT_F64 && type != AKT_STR) || !value)
        return AKT_EINVAL;
    hid_t run = -1, g = attr_holder(r, id, group, name, 0, &run, w, sizeof w, NULL);
    int rc = g < 0 ? AKT_EINVAL : 0;
    if (!rc && (type == AKT_F64 ? akt__h5_attr_f64(g, name, value)
                                : read_attr_str(g, name, value, n)) != 0)
        rc = AKT_EFORMAT;
    if ((akt__h5_close(g) | akt__h5_close(run)) < 0)
        rc = AKT_EFORMAT;
    return rc;
}

/* ---- reading only (akt table) ------------------------------------------- */

struct name_list {
    char **v;
    int n, cap;
};

static herr_t name_collect(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)g;
    (void)info;
    struct name_list *l = data;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        l->v = v;
        l->cap = cap;
    }
    if (!(l->v[l->n] = strdup(name)))
        return -1;
    l->n++;
    return 0;
}

/* The link names of group g in name order into *names / *n. */
static int list_names(hid_t g, const char *where, char ***names, int *n, struct akt_error *e)
{
    struct name_list l = {0};
    hsize_t idx = 0;
    if (H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, name_collect, &l) < 0) {
        akt_results_free_names(l.v, l.n);
        return akt_error_set(e, AKT_EFORMAT, where, "cannot list the group (corrupt file, or out "
                                                    "of memory)");
    }
    *names = l.v;
    *n = l.n;
    return 0;
}

int akt_results_run_ids(struct akt_results *r, char ***ids, int *n, struct akt_error *e)
{
    char w[700];
    *ids = NULL;
    *n = 0;
    if (!r)
        return akt_error_set(e, AKT_EINVAL, "results", "no results file (NULL handle)");
    snprintf(w, sizeof w, "%s:/runs", r->path);
    return list_names(r->runs, w, ids, n, e);
}

int akt_results_metric_names(struct akt_results *r, const char *id, char ***names, int *n,
                             struct akt_error *e)
{
    char w[700];
    *names = NULL;
    *n = 0;
    hid_t run = open_run(r, id, e);
    if (run < 0)
        return e ? e->code : AKT_EINVAL;
    hid_t m = open_metrics(run, 0);
    int rc = 0;
    if (m >= 0)
        rc = list_names(m, where_of(w, sizeof w, r, id, "metrics"), names, n, e);
    else if (m != -2)
        rc = akt_error_set(e, AKT_EFORMAT, where_of(w, sizeof w, r, id, "metrics"),
                           "not a group (malformed run)");
    if ((akt__h5_close(m) | akt__h5_close(run)) < 0 && !rc)
        rc = akt_error_set(e, AKT_EFORMAT, where_of(w, sizeof w, r, id, NULL),
                           "closing the run group failed");
    return rc;
}

void akt_results_free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

char *akt_results_run_str(struct akt_results *r, const char *id, const char *name)
{
    hid_t g = open_run(r, id, NULL);
    if (g < 0)
        return NULL;
    char *s = name_ok(name, 1) ? akt__h5_attr_str(g, name) : NULL;
    if (akt__h5_close(g) < 0) {
        free(s);
        s = NULL;
    }
    return s;
}

/* ---- removal --------------------------------------------------------- */

int akt_results_delete(struct akt_results *r, const char *id, const char *path,
                       struct akt_error *e)
{
    char w[1400];
    hid_t run = open_run(r, id, e);
    if (run < 0)
        return e ? e->code : AKT_EINVAL;
    where_of(w, sizeof w, r, id, path && group_path_ok(path) ? path : "?");
    int rc = 0;
    if (!group_path_ok(path)) {
        rc = akt_error_set(e, AKT_EINVAL, w, "bad path '%s'", path ? path : "(null)");
    } else {
        /* each level, since H5Lexists fails on a missing parent */
        char buf[1024];
        snprintf(buf, sizeof buf, "%s", path);
        htri_t ex = 1;
        for (char *p = buf; ex > 0; p++) {
            if (*p == '/' || !*p) {
                char c = *p;
                *p = 0;
                ex = H5Lexists(run, buf, H5P_DEFAULT);
                *p = c;
                if (!c)
                    break;
            }
        }
        if (ex < 0 || (ex > 0 && H5Ldelete(run, path, H5P_DEFAULT) < 0))
            rc = akt_error_set(e, AKT_EIO, w, "cannot delete");
    }
    if (akt__h5_close(run) < 0 && !rc)
        rc = akt_error_set(e, AKT_EIO, w, "closing the run group failed");
    return rc;
}

int akt_results_delete_attr(struct akt_results *r, const char *id, const char *name,
                            struct akt_error *e)
{
    char w[700];
    hid_t run = open_run(r, id, e);
    if (run < 0)
        return e ? e->code : AKT_EINVAL;
    where_of(w, sizeof w, r, id, NULL);
    int rc = 0;
    if (!name_ok(name, 1) || is_reserved(name)) {
        rc = akt_error_set(e, AKT_EINVAL, w, "attribute name '%s' is invalid or reserved",
                           name ? name : "(null)");
    } else {
        htri_t ex = H5Aexists(run, name);
        if (ex < 0 || (ex > 0 && H5Adelete(run, name) < 0))
            rc = akt_error_set(e, AKT_EIO, w, "cannot delete attribute '%s'", name);
    }
    if (akt__h5_close(run) < 0 && !rc)
        rc = akt_error_set(e, AKT_EIO, w, "closing the run group failed");
    return rc;
}

/* ---- every run, ended or not (akt table, akt status) --------------------- */

void akt_results_view_close(struct akt_results_view *v)
{
    for (int i = 0; i < v->n_files; i++)
        akt_results_close(v->files[i], NULL);
    akt_results_close(v->main, NULL);
    akt_results_free_names(v->ids, v->n);
    free(v->files);
    free(v->where);
    memset(v, 0, sizeof *v);
}

/* id already in the view: its index, else -1 */
static int view_find(const struct akt_results_view *v, const char *id)
{
    for (int i = 0; i < v->n; i++)
        if (!strcmp(v->ids[i], id))
            return i;
    return -1;
}

static int view_add(struct akt_results_view *v, const char *id, struct akt_results *h)
{
    char **ids = realloc(v->ids, (size_t)(v->n + 1) * sizeof *ids);
    struct akt_results **where = ids ? realloc(v->where, (size_t)(v->n + 1) * sizeof *where)
                                     : NULL;
    if (ids)
        v->ids = ids;
    if (where)
        v->where = where;
    if (!ids || !where || !(v->ids[v->n] = strdup(id)))
        return -1;
    v->where[v->n++] = h;
    return 0;
}

static int by_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int akt_results_view_open(struct akt_results_view *v, const char *path, struct akt_error *e)
{
    memset(v, 0, sizeof *v);
    char dir[1200];
    int rc = 0;
    struct stat st;
    int have_main = stat(path, &st) == 0, have_dir = 0;
    if (akt_results_run_dir(path, dir, sizeof dir))
        return akt_error_set(e, AKT_EINVAL, path, "path too long");
    have_dir = stat(dir, &st) == 0 && S_ISDIR(st.st_mode);
    if (have_main || !have_dir) /* nothing at all: the error names the file */
        if ((rc = akt_results_open_read(&v->main, path, e)))
            return rc;
    if (v->main) {
        char **ids;
        int n;
        if ((rc = akt_results_run_ids(v->main, &ids, &n, e))) {
            akt_results_view_close(v);
            return rc;
        }
        for (int i = 0; i < n && !rc; i++)
            if (view_add(v, ids[i], v->main))
                rc = akt_error_set(e, AKT_ENOMEM, path, "out of memory");
        akt_results_free_names(ids, n);
    }
    /* run files: a run in progress, or killed; newer than a copy in path */
    DIR *d = !rc && have_dir ? opendir(dir) : NULL;
    for (struct dirent *de; d && !rc && (de = readdir(d));) {
        size_t l = strlen(de->d_name);
        if (de->d_name[0] == '.' || l < 4 || strcmp(de->d_name + l - 3, ".h5"))
            continue;
        char file[2400];
        snprintf(file, sizeof file, "%s/%s", dir, de->d_name);
        struct akt_results *h = NULL;
        if (akt_results_open_read(&h, file, NULL))
            continue; /* a half-made temporary: nothing a reader can use */
        char **ids;
        int n;
        struct akt_results **files = realloc(v->files, (size_t)(v->n_files + 1) * sizeof *files);
        if (!files || akt_results_run_ids(h, &ids, &n, NULL)) {
            akt_results_close(h, NULL);
            if (!files)
                rc = akt_error_set(e, AKT_ENOMEM, path, "out of memory");
            else
                v->files = files;
            continue;
        }
        v->files = files;
        v->files[v->n_files++] = h;
        for (int i = 0; i < n && !rc; i++) {
            int k = view_find(v, ids[i]);
            if (k >= 0)
                v->where[k] = h;
            else if (view_add(v, ids[i], h))
                rc = akt_error_set(e, AKT_ENOMEM, path, "out of memory");
        }
        akt_results_free_names(ids, n);
    }
    if (d)
        closedir(d);
    if (rc) {
        akt_results_view_close(v);
        return rc;
    }
    /* ids in name order, each with its handle */
    struct { char *id; struct akt_results *h; } *pairs = malloc((size_t)(v->n ? v->n : 1) *
                                                                  sizeof *pairs);
    if (!pairs) {
        akt_results_view_close(v);
        return akt_error_set(e, AKT_ENOMEM, path, "out of memory");
    }
    for (int i = 0; i < v->n; i++)
        pairs[i].id = v->ids[i], pairs[i].h = v->where[i];
    qsort(pairs, (size_t)v->n, sizeof *pairs, by_str);
    for (int i = 0; i < v->n; i++)
        v->ids[i] = pairs[i].id, v->where[i] = pairs[i].h;
    free(pairs);
    return 0;
}
