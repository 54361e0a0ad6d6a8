/* akt merge: per-shard results files into one (schema: results/README.md,
 * section "Merging results files").
 *
 * Every /runs/<id> group of every input is copied with H5Ocopy (a deep copy:
 * attributes, metric series, tensors and checkpoint), so the merged file
 * stands alone and the shard files can be deleted. Nothing is written until
 * every input has been read and checked: a file that is not an akt results
 * file, or a run id that appears twice with different configurations, stops
 * the merge before OUT is created or touched.
 *
 * When the same id appears more than once with the same configuration, one
 * copy is kept: a run whose status is "done" wins over one that is not;
 * between two unfinished runs the one with the later checkpoint wins; on a
 * tie the first one wins, OUT's own run (when OUT already exists) counting as
 * first, then the inputs in argument order.
 *
 * Runs in progress (or killed) live in the run files FILE.d/<id>.h5 beside
 * each file; they count as that file's copy of the run (newer than one in
 * FILE itself). OUT is written like every results file akt writes: under
 * its lock, as a private copy that replaces it atomically; OUT's own run
 * files go once their runs are in OUT. */
#include "akt/results.h"
#include "akt/run.h"

#include "h5attr.h"

#include <dirent.h>
#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* One run found somewhere: in which source and how good it is. */
struct entry {
    char *id;
    char *config;
    char status[32];
    double ckpt;  /* checkpoint_epoch, 0 if absent */
    int src;      /* index into the sources */
};

/* A file read: OUT, an input, or a run file beside one of them. */
struct source {
    char *path;
    hid_t f;
    int owner;     /* -1: OUT, else the input's index */
    int run_file;  /* a FILE.d/<id>.h5 */
};

struct sources {
    struct source *v;
    int n, cap;
};

struct table {
    struct entry *v;
    int n, cap;
};

static void table_free(struct table *t)
{
    for (int i = 0; i < t->n; i++) {
        free(t->v[i].id);
        free(t->v[i].config);
    }
    free(t->v);
    memset(t, 0, sizeof *t);
}

static struct entry *table_find(struct table *t, const char *id)
{
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->v[i].id, id))
            return &t->v[i];
    return NULL;
}

/* merged_from, when there, is what add_merged_from extends: a 1-D array of
 * variable-length strings. */
static int check_merged_from(hid_t f, const char *w, struct akt_error *e)
{
    htri_t ex = H5Aexists(f, "merged_from");
    if (ex <= 0)
        return ex < 0 ? akt_error_set(e, AKT_EFORMAT, w, "attributes cannot be read (corrupt file?)")
                      : 0;
    hid_t a = H5Aopen(f, "merged_from", H5P_DEFAULT);
    hid_t t = a >= 0 ? H5Aget_type(a) : -1, sp = a >= 0 ? H5Aget_space(a) : -1;
    int ok = t >= 0 && sp >= 0 && H5Tget_class(t) == H5T_STRING && H5Tis_variable_str(t) > 0 &&
             H5Sget_simple_extent_type(sp) == H5S_SIMPLE && H5Sget_simple_extent_ndims(sp) == 1;
    int bad = (akt__h5_close(t) | akt__h5_close(sp) | akt__h5_close(a)) < 0;
    if (!ok || bad)
        return akt_error_set(e, AKT_EFORMAT, w,
                             "attribute 'merged_from' is not a 1-D array of variable-length "
                             "strings");
    return 0;
}

/* Opens path read-only and checks it is an akt results file this akt can
 * read (root akt_schema_version 1..AKT_RESULTS_SCHEMA, a group /runs). */
static hid_t open_results_ro(const char *path, struct akt_error *e, int *rc)
{
    struct stat st;
    *rc = akt_file_check(path, NULL, e); /* a FIFO would block the open */
    if (*rc)
        return -1;
    if (stat(path, &st) != 0) {
        *rc = akt_error_set(e, AKT_EIO, path, "cannot open: %s", strerror(errno));
        return -1;
    }
    if (H5Fis_hdf5(path) <= 0) {
        *rc = akt_error_set(e, AKT_EFORMAT, path,
                            "not an akt results file (not HDF5, %lld bytes)",
                            (long long)st.st_size);
        return -1;
    }
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        *rc = akt_error_set(e, AKT_EFORMAT, path,
                            "HDF5 file cannot be opened (corrupt, truncated, or being written?)");
        return -1;
    }
    char w[1100];
    snprintf(w, sizeof w, "%s:/", path);
    long long v = -1;
    if (H5Aexists(f, "akt_schema_version") <= 0)
        *rc = akt_error_set(e, AKT_EFORMAT, w,
                            "an HDF5 file, but not an akt results file (no root attribute "
                            "'akt_schema_version')");
    else if ((*rc = akt__h5_read_num(f, w, "akt_schema_version", H5T_NATIVE_LLONG, 1, &v, 1, e)))
        ;
    else if (v < 1 || v > AKT_RESULTS_SCHEMA)
        *rc = akt_error_set(e, AKT_EFORMAT, w,
                            "akt_schema_version is %lld; this akt reads 1..%d", v,
                            AKT_RESULTS_SCHEMA);
    else if ((*rc = check_merged_from(f, w, e)))
        ;
    else {
        H5O_info_t info;
        if (H5Lexists(f, "runs", H5P_DEFAULT) <= 0 ||
            H5Oget_info_by_name(f, "runs", &info, H5P_DEFAULT) < 0 ||
            info.type != H5O_TYPE_GROUP) {
            snprintf(w, sizeof w, "%s:/runs", path);
            *rc = akt_error_set(e, AKT_EFORMAT, w,
                                "missing or not a group (not an akt results file)");
        }
    }
    if (*rc) {
        H5Fclose(f);
        return -1;
    }
    return f;
}

struct scan_ctx {
    struct table *t;
    const struct sources *s;
    int src;               /* the source being scanned */
    struct akt_error *e;
    int rc;
};

/* A run is better than another when it is done and the other is not, or,
 * both unfinished, when its checkpoint is later. */
static int better(const struct entry *a, const struct entry *b)
{
    int ad = !strcmp(a->status, "done"), bd = !strcmp(b->status, "done");
    if (ad != bd)
        return ad;
    return !ad && a->ckpt > b->ckpt;
}

static herr_t scan_one(hid_t runs, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    struct scan_ctx *c = data;
    const struct source *me = &c->s->v[c->src];
    char w[1400];
    snprintf(w, sizeof w, "%s:/runs/%s", me->path, name);
    H5O_info_t oi;
    if (H5Oget_info_by_name(runs, name, &oi, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_GROUP) {
        c->rc = akt_error_set(c->e, AKT_EFORMAT, w, "not a group (malformed results file)");
        return 1;
    }
    hid_t g = H5Gopen2(runs, name, H5P_DEFAULT);
    if (g < 0) {
        c->rc = akt_error_set(c->e, AKT_EFORMAT, w, "cannot be opened (corrupt file?)");
        return 1;
    }
    struct entry n = {.src = c->src};
    char *st = NULL;
    int rc = akt__h5_check_run_attrs(g, w, c->e);
    if (!rc && H5Aexists(g, "config") <= 0)
        rc = akt_error_set(c->e, AKT_EFORMAT, w, "no 'config' attribute (malformed run)");
    if (!rc)
        rc = akt__h5_read_str(g, w, "config", AKT__H5_STR_MAX, &n.config, c->e);
    if (!rc && H5Aexists(g, "status") > 0 &&
        !(rc = akt__h5_read_str(g, w, "status", sizeof n.status - 1, &st, c->e)))
        snprintf(n.status, sizeof n.status, "%s", st);
    free(st);
    if (!rc && H5Aexists(g, "checkpoint_epoch") > 0)
        rc = akt__h5_read_num(g, w, "checkpoint_epoch", H5T_NATIVE_DOUBLE, 0, &n.ckpt, 1, c->e);
    if (akt__h5_close(g) < 0 && !rc)
        rc = akt_error_set(c->e, AKT_EFORMAT, w, "run group cannot be closed");
    if (rc) {
        free(n.config);
        c->rc = rc;
        return 1;
    }
    struct entry *old = table_find(c->t, name);
    if (old) {
        const struct source *o = &c->s->v[old->src];
        char keys[400] = "";
        /* key by key, so that execution settings (threads, in the configs of
         * earlier akt versions) do not count */
        if (strcmp(old->config, n.config) &&
            akt_run_config_text_diff(old->config, n.config, keys, sizeof keys) != 0) {
            c->rc = akt_error_set(c->e, AKT_EINVAL, w,
                                  "run '%s' is also in %s with a different configuration%s%s%s; "
                                  "refusing to merge (nothing written)", name, o->path,
                                  *keys ? " (keys: " : "", keys, *keys ? ")" : "");
            free(n.config);
            return 1;
        }
        /* a run file is the newest state of its file's run */
        int newer = me->run_file && o->owner == me->owner;
        if (newer || better(&n, old)) {
            snprintf(old->status, sizeof old->status, "%s", n.status);
            old->ckpt = n.ckpt;
            old->src = n.src;
        }
        free(n.config);
        return 0;
    }
    if (c->t->n == c->t->cap) {
        int cap = c->t->cap ? 2 * c->t->cap : 16;
        struct entry *v = realloc(c->t->v, (size_t)cap * sizeof *v);
        if (!v) {
            free(n.config);
            c->rc = akt_error_set(c->e, AKT_ENOMEM, w, "out of memory");
            return 1;
        }
        c->t->v = v;
        c->t->cap = cap;
    }
    n.id = strdup(name);
    if (!n.id) {
        free(n.config);
        c->rc = akt_error_set(c->e, AKT_ENOMEM, w, "out of memory");
        return 1;
    }
    c->t->v[c->t->n++] = n;
    return 0;
}

/* Adds every run of source src to t. */
static int scan_file(struct table *t, const struct sources *s, int src, struct akt_error *e)
{
    char w[1100];
    snprintf(w, sizeof w, "%s:/runs", s->v[src].path);
    hid_t runs = H5Gopen2(s->v[src].f, "runs", H5P_DEFAULT);
    if (runs < 0)
        return akt_error_set(e, AKT_EFORMAT, w, "cannot be opened");
    struct scan_ctx c = {.t = t, .s = s, .src = src, .e = e};
    hsize_t idx = 0;
    herr_t it = H5Literate(runs, H5_INDEX_NAME, H5_ITER_INC, &idx, scan_one, &c);
    H5Gclose(runs);
    if (c.rc)
        return c.rc;
    if (it < 0)
        return akt_error_set(e, AKT_EFORMAT, w, "cannot list the runs (corrupt file?)");
    return 0;
}

/* Opens path as a source of owner and scans it. */
static int add_source(struct sources *s, struct table *t, const char *path, int owner,
                      int run_file, struct akt_error *e)
{
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        struct source *v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v)
            return akt_error_set(e, AKT_ENOMEM, path, "out of memory");
        s->v = v;
        s->cap = cap;
    }
    int rc = 0;
    hid_t f = open_results_ro(path, e, &rc);
    if (rc)
        return rc;
    char *p = strdup(path);
    if (!p) {
        H5Fclose(f);
        return akt_error_set(e, AKT_ENOMEM, path, "out of memory");
    }
    s->v[s->n++] = (struct source){.path = p, .f = f, .owner = owner, .run_file = run_file};
    return scan_file(t, s, s->n - 1, e);
}

/* path (when it exists) and then its run files path.d/<id>.h5. */
static int add_file(struct sources *s, struct table *t, const char *path, int owner,
                    struct akt_error *e)
{
    int exists = 0, rc = akt_file_check(path, &exists, e);
    if (!rc && exists)
        rc = add_source(s, t, path, owner, 0, e);
    char dir[1200];
    if (rc || akt_results_run_dir(path, dir, sizeof dir))
        return rc;
    DIR *d = opendir(dir);
    if (!d)
        return 0; /* no run in progress */
    /* in name order, so the merge does not depend on the folder's order */
    char **names = NULL;
    int n = 0;
    for (struct dirent *de; (de = readdir(d));) {
        size_t l = strlen(de->d_name);
        if (l > 3 && !strcmp(de->d_name + l - 3, ".h5")) {
            char **v = realloc(names, (size_t)(n + 1) * sizeof *names);
            if (!v || !(v[n] = strdup(de->d_name))) {
                names = v ? v : names;
                rc = akt_error_set(e, AKT_ENOMEM, dir, "out of memory");
                break;
            }
            names = v;
            n++;
        }
    }
    closedir(d);
    for (int i = 0; i < n && !rc; i++)
        for (int j = i + 1; j < n; j++)
            if (strcmp(names[i], names[j]) > 0) {
                char *x = names[i];
                names[i] = names[j];
                names[j] = x;
            }
    for (int i = 0; i < n; i++) {
        char p[1500];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        if (!rc)
            rc = add_source(s, t, p, owner, 1, e);
        free(names[i]);
    }
    free(names);
    return rc;
}

static void sources_free(struct sources *s)
{
    for (int i = 0; i < s->n; i++) {
        if (s->v[i].f >= 0)
            H5Fclose(s->v[i].f);
        free(s->v[i].path);
    }
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* Appends sources to the root attribute merged_from (1-D vlen UTF-8 strings). */
static int add_merged_from(hid_t f, const char **in, int n)
{
    char **old = NULL;
    hssize_t n_old = 0;
    hid_t st = akt__h5_vlen_utf8();
    if (st < 0)
        return -1;
    int rc = 0;
    if (H5Aexists(f, "merged_from") > 0) {
        hid_t a = H5Aopen(f, "merged_from", H5P_DEFAULT);
        hid_t sp = a >= 0 ? H5Aget_space(a) : -1;
        hid_t ft = a >= 0 ? H5Aget_type(a) : -1;
        n_old = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
        if (ft >= 0 && H5Tget_class(ft) == H5T_STRING && H5Tis_variable_str(ft) > 0 && n_old > 0) {
            old = calloc((size_t)n_old, sizeof *old);
            if (!old || H5Aread(a, st, old) < 0)
                rc = -1;
        } else {
            n_old = 0;
        }
        if (ft >= 0)
            H5Tclose(ft);
        if (sp >= 0)
            H5Sclose(sp);
        if (a >= 0)
            H5Aclose(a);
        if (!rc && H5Adelete(f, "merged_from") < 0)
            rc = -1;
    }
    hsize_t total = (hsize_t)n_old + (hsize_t)n;
    const char **all = rc ? NULL : calloc(total ? total : 1, sizeof *all);
    if (!rc && all) {
        for (hssize_t i = 0; i < n_old; i++)
            all[i] = old[i] ? old[i] : "";
        for (int i = 0; i < n; i++)
            all[n_old + i] = in[i];
        hid_t sp = H5Screate_simple(1, &total, NULL);
        hid_t a = sp >= 0 ? H5Acreate2(f, "merged_from", st, sp, H5P_DEFAULT, H5P_DEFAULT) : -1;
        if (a < 0 || H5Awrite(a, st, all) < 0)
            rc = -1;
        if (a >= 0 && H5Aclose(a) < 0)
            rc = -1;
        if (sp >= 0)
            H5Sclose(sp);
    } else {
        rc = -1;
    }
    free(all);
    if (old) {
        for (hssize_t i = 0; i < n_old; i++)
            if (old[i])
                H5free_memory(old[i]);
        free(old);
    }
    H5Tclose(st);
    return rc;
}

static int same_file(const char *a, const char *b)
{
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

int akt_results_merge(const char *out, const char **in, int n, struct akt_error *e)
{
    if (!out || !*out)
        return akt_error_set(e, AKT_EINVAL, "merge", "empty output path");
    if (n < 1 || !in)
        return akt_error_set(e, AKT_EINVAL, out, "nothing to merge: no input files");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    for (int i = 0; i < n; i++) {
        if (!in[i] || !*in[i])
            return akt_error_set(e, AKT_EINVAL, out, "input %d: empty path", i + 1);
        if (same_file(in[i], out))
            return akt_error_set(e, AKT_EINVAL, in[i],
                                 "is also the output file %s; merge into a new file", out);
        for (int j = 0; j < i; j++)
            if (same_file(in[i], in[j]))
                return akt_error_set(e, AKT_EINVAL, in[i], "given twice (also as %s)", in[j]);
    }
    struct table t = {0};
    struct sources src = {0};
    struct akt_results_lock *lock = NULL;
    struct akt_results *h = NULL;
    /* 0. the inputs alone first: a refusal there makes nothing, not even
     * OUT's lock folder */
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        int exists = 0;
        if (!(rc = akt_file_check(in[i], &exists, e)) && !exists)
            rc = akt_error_set(e, AKT_EIO, in[i], "cannot open: %s", strerror(ENOENT));
        if (!rc)
            rc = add_file(&src, &t, in[i], i, e);
    }
    int exists = 0;
    if (!rc && !(rc = akt_file_check(out, &exists, e)) && exists) {
        hid_t fo = open_results_ro(out, e, &rc);
        if (fo >= 0)
            H5Fclose(fo);
    }
    sources_free(&src);
    table_free(&t);
    /* 1. read and check everything, under OUT's lock: OUT's own runs (in
     * OUT and its run files), then the inputs in order */
    if (!rc)
        rc = akt_results_lock(&lock, out, e);
    if (!rc)
        rc = add_file(&src, &t, out, -1, e);
    for (int i = 0; i < n && !rc; i++)
        rc = add_file(&src, &t, in[i], i, e);
    if (rc)
        goto done;

    /* 2. OUT as a private copy (or a new results file), the chosen run
     * groups copied in, then one atomic replacement */
    if ((rc = akt_results_edit(&h, out, e)))
        goto done;
    for (int k = 0; k < t.n && !rc; k++) {
        const struct entry *x = &t.v[k];
        const struct source *sx = &src.v[x->src];
        if (sx->owner < 0 && !sx->run_file)
            continue; /* OUT's own copy is the one kept */
        char w[1400], from[1100];
        snprintf(w, sizeof w, "%s:/runs/%s", out, x->id);
        snprintf(from, sizeof from, "/runs/%s", x->id);
        hid_t runs_o = akt__results_runs(h);
        if ((H5Lexists(runs_o, x->id, H5P_DEFAULT) > 0 && H5Ldelete(runs_o, x->id, H5P_DEFAULT) < 0))
            rc = akt_error_set(e, AKT_EIO, w, "cannot replace the unfinished run");
        else if (H5Ocopy(sx->f, from, runs_o, x->id, H5P_DEFAULT, H5P_DEFAULT) < 0)
            rc = akt_error_set(e, AKT_EIO, w, "copying the run from %s failed (disk full?)",
                               sx->path);
    }
    if (!rc && add_merged_from(akt__results_file(h), in, n) < 0)
        rc = akt_error_set(e, AKT_EIO, out, "writing the root attribute 'merged_from' failed");
    if (!rc) {
        rc = akt_results_commit(h, e);
        h = NULL;
    }
    /* 3. OUT's run files: every one of their runs is in OUT now */
    for (int i = 0; i < src.n && !rc; i++)
        if (src.v[i].owner < 0 && src.v[i].run_file) {
            H5Fclose(src.v[i].f);
            src.v[i].f = -1;
            rc = akt_results_remove(src.v[i].path, e);
        }
done:
    akt_results_discard(h);
    sources_free(&src);
    akt_results_unlock(lock);
    table_free(&t);
    return rc;
}
