/* End to end: `akt run --shard I/N` + `akt merge` give the same results as
 * one unsharded `akt run`; merge refuses conflicting or foreign files; bad
 * --shard values are usage errors (exit 2).
 * Env: AKT_BIN (the akt binary), AKT_DATA (teacher and CIFAR test batch). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "akt/akt.h"
#include "akt/results.h"

#define note(...) (printf("# "), printf(__VA_ARGS__), fflush(stdout))

static char g_tmp[256];
static const char *g_bin;
static int g_ready; /* AKT_BIN and AKT_DATA usable */

/* 2 generators x 2 losses = 4 tiny runs, as experiments/smoke.yaml. */
static const char *EXP_YAML =
    "name: shardtest\n"
    "teacher: teachers/resnet20_cifar10_akamaster_optA.h5\n"
    "data: cifar-10-batches-bin/test_batch_lossless1000.bin\n"
    "defaults:\n"
    "  bits: 4\n"
    "  epochs: 2\n"
    "  iters: 2\n"
    "  batch: 8\n"
    "  warmup_epochs: 1\n"
    "  tracker_epochs: 1\n"
    "  milestones: none\n"
    "  eval_limit: 100\n"
    "  threads: 1\n"
    "matrix:\n"
    "  generator: [gdfq, adadfq]\n"
    "  loss: [logit, akt]\n";

static const char *tmp_path(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", g_tmp, name);
    return buf;
}

/* Runs the akt binary with args (a shell fragment) in g_tmp; returns its exit
 * status (-1 if it did not exit), stderr into g_tmp/stderr.txt. */
static int akt(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s >>'%s/stdout.txt' 2>'%s/stderr.txt'", g_tmp,
             g_bin, args, g_tmp, g_tmp);
    int s = system(cmd);
    return WIFEXITED(s) ? WEXITSTATUS(s) : -1;
}

/* Last stderr of akt() (static buffer). */
static const char *last_stderr(void)
{
    static char buf[4096];
    char p[512];
    buf[0] = 0;
    FILE *f = fopen(tmp_path(p, sizeof p, "stderr.txt"), "r");
    if (f) {
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        fclose(f);
    }
    return buf;
}

/* Stdout of one command (popen), into buf; the exit status. */
static int akt_stdout(const char *args, char *buf, size_t n)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' %s 2>/dev/null", g_tmp, g_bin, args);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t got = fread(buf, 1, n - 1, p);
    buf[got] = 0;
    int s = pclose(p);
    return WIFEXITED(s) ? WEXITSTATUS(s) : -1;
}

/* ---- reading files with the HDF5 C API ----------------------------------- */

static char *str_attr(hid_t obj, const char *name)
{
    if (H5Aexists(obj, name) <= 0)
        return NULL;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    char *s = NULL, *out = NULL;
    if (H5Aread(a, t, &s) >= 0 && s)
        out = strdup(s);
    if (s)
        H5free_memory(s);
    H5Tclose(t);
    H5Aclose(a);
    return out;
}

static int count_runs(hid_t f)
{
    hid_t g = H5Gopen2(f, "runs", H5P_DEFAULT);
    H5G_info_t info;
    int n = g >= 0 && H5Gget_info(g, &info) >= 0 ? (int)info.nlinks : -1;
    if (g >= 0)
        H5Gclose(g);
    return n;
}

/* Dataset contents as bytes in their file type (malloc'd), with the shape. */
static void *read_raw(hid_t f, const char *path, size_t *bytes, int *ndim, hsize_t *dims)
{
    hid_t d = H5Dopen2(f, path, H5P_DEFAULT);
    if (d < 0)
        return NULL;
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d);
    hid_t nt = H5Tget_native_type(t, H5T_DIR_ASCEND);
    *ndim = H5Sget_simple_extent_ndims(sp);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    hssize_t np = H5Sget_simple_extent_npoints(sp);
    *bytes = (size_t)np * H5Tget_size(nt);
    void *buf = malloc(*bytes ? *bytes : 1);
    if (buf && np > 0 && H5Dread(d, nt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        free(buf);
        buf = NULL;
    }
    H5Tclose(nt);
    H5Tclose(t);
    H5Sclose(sp);
    H5Dclose(d);
    return buf;
}

struct cmp_ctx {
    hid_t other;
    const char *run;
    int datasets, metrics, mismatches;
};

/* Every dataset under a run of the single file must be in the merged file,
 * with the same shape and the same bytes; only the wall-clock metric time_s
 * differs between two runs of the same config, so its values are not
 * compared (its shape is). */
static herr_t cmp_visit(hid_t obj, const char *name, const H5O_info_t *info, void *data)
{
    struct cmp_ctx *c = data;
    if (info->type != H5O_TYPE_DATASET)
        return 0;
    char path[1024];
    snprintf(path, sizeof path, "/runs/%s/%s", c->run, name);
    (void)obj;
    size_t na = 0, nb = 0;
    int da = 0, db = 0;
    hsize_t sa[8] = {0}, sb[8] = {0};
    void *a = read_raw(obj, name, &na, &da, sa);
    void *b = H5Lexists(c->other, path, H5P_DEFAULT) > 0 ? read_raw(c->other, path, &nb, &db, sb)
                                                         : NULL;
    int is_time = strstr(name, "metrics/time_s/") != NULL;
    int same = a && b && na == nb && da == db && !memcmp(sa, sb, sizeof sa) &&
               (is_time || !memcmp(a, b, na));
    if (!same) {
        note("differs or missing in the merged file: %s\n", path);
        c->mismatches++;
    }
    c->datasets++;
    if (!strncmp(name, "metrics/", 8) && strstr(name, "/value"))
        c->metrics++;
    free(a);
    free(b);
    return 0;
}

/* The merged file has exactly the single file's runs, configs, statuses and
 * datasets (bit for bit). */
static void assert_same_results(const char *single, const char *merged)
{
    hid_t fs = H5Fopen(single, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t fm = H5Fopen(merged, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(fs >= 0 && fm >= 0);
    int n = count_runs(fs);
    assert_int_equal(n, 4);
    assert_int_equal(count_runs(fm), n);
    hid_t gs = H5Gopen2(fs, "runs", H5P_DEFAULT);
    for (int i = 0; i < n; i++) {
        char id[256];
        assert_true(H5Lget_name_by_idx(gs, ".", H5_INDEX_NAME, H5_ITER_INC, (hsize_t)i, id,
                                       sizeof id, H5P_DEFAULT) > 0);
        char path[300];
        snprintf(path, sizeof path, "/runs/%s", id);
        assert_true(H5Lexists(fm, path, H5P_DEFAULT) > 0);
        hid_t rs = H5Gopen2(fs, path, H5P_DEFAULT), rm = H5Gopen2(fm, path, H5P_DEFAULT);
        char *cs = str_attr(rs, "config"), *cm = str_attr(rm, "config");
        char *ss = str_attr(rs, "status"), *sm = str_attr(rm, "status");
        assert_non_null(cs);
        assert_non_null(cm);
        assert_string_equal(cs, cm);
        assert_string_equal(ss, "done");
        assert_string_equal(sm, "done");
        double bs = -1, bm = -2;
        hid_t a = H5Aopen(rs, "best_top1", H5P_DEFAULT);
        H5Aread(a, H5T_NATIVE_DOUBLE, &bs);
        H5Aclose(a);
        a = H5Aopen(rm, "best_top1", H5P_DEFAULT);
        H5Aread(a, H5T_NATIVE_DOUBLE, &bm);
        H5Aclose(a);
        assert_memory_equal(&bs, &bm, sizeof bs);
        struct cmp_ctx c = {.other = fm, .run = id};
        assert_true(H5Ovisit(rs, H5_INDEX_NAME, H5_ITER_INC, cmp_visit, &c) >= 0);
        note("%-22s %3d datasets (%d metrics) identical\n", id, c.datasets, c.metrics);
        assert_int_equal(c.mismatches, 0);
        assert_true(c.metrics >= 8);
        free(cs);
        free(cm);
        free(ss);
        free(sm);
        H5Gclose(rs);
        H5Gclose(rm);
    }
    H5Gclose(gs);
    /* root: as akt_results_open makes it, plus the sources */
    assert_true(H5Aexists(fm, "akt_schema_version") > 0);
    assert_true(H5Aexists(fm, "creator") > 0);
    assert_true(H5Aexists(fm, "merged_from") > 0);
    H5Fclose(fs);
    H5Fclose(fm);
}

/* Number of entries of the root attribute merged_from. */
static int merged_from_count(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return -1;
    int n = -1;
    if (H5Aexists(f, "merged_from") > 0) {
        hid_t a = H5Aopen(f, "merged_from", H5P_DEFAULT), sp = H5Aget_space(a);
        n = (int)H5Sget_simple_extent_npoints(sp);
        H5Sclose(sp);
        H5Aclose(a);
    }
    H5Fclose(f);
    return n;
}

/* ---- tests ------------------------------------------------------------- */

static void test_bad_shard(void **s)
{
    (void)s;
    if (!g_ready) {
        note("AKT_BIN or AKT_DATA missing: nothing to test\n");
        return;
    }
    static const char *bad[] = {"3/3", "-1/3", "0/0", "1", "a/b", "1/", "/3", "0/3x", " 0/3", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char args[256];
        snprintf(args, sizeof args, "run exp.yaml --dry-run --shard '%s'", bad[i]);
        int rc = akt(args);
        if (rc != 2)
            note("--shard '%s': exit %d, stderr: %s", bad[i], rc, last_stderr());
        assert_int_equal(rc, 2);
        assert_non_null(strstr(last_stderr(), "--shard"));
    }
    assert_int_equal(akt("run exp.yaml --dry-run --shard"), 2);
    note("refused: %s", last_stderr());

    /* the shards' dry runs partition the full list: run k in shard k mod 3 */
    char full[4096], part[4096];
    assert_int_equal(akt_stdout("run exp.yaml --dry-run", full, sizeof full), 0);
    int lines = 0;
    for (const char *p = full; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 4);
    int seen = 0;
    for (int sh = 0; sh < 3; sh++) {
        char args[128];
        snprintf(args, sizeof args, "run exp.yaml --dry-run --shard %d/3", sh);
        assert_int_equal(akt_stdout(args, part, sizeof part), 0);
        for (char *line = strtok(part, "\n"); line; line = strtok(NULL, "\n")) {
            int k = atoi(line); /* the 1-based index of the full list */
            assert_true(k >= 1 && k <= 4);
            assert_int_equal((k - 1) % 3, sh);
            assert_non_null(strstr(full, line)); /* the same line as unsharded */
            seen++;
        }
    }
    assert_int_equal(seen, 4);
    assert_int_equal(akt_stdout("run exp.yaml --dry-run --shard 0/1", part, sizeof part), 0);
    assert_string_equal(part, full);
}

static void test_shards_merge_to_single(void **s)
{
    (void)s;
    if (!g_ready) {
        note("AKT_BIN or AKT_DATA missing: nothing to test\n");
        return;
    }
    int rc = akt("run exp.yaml --out single.h5 --quiet");
    if (rc)
        note("single: %s", last_stderr());
    assert_int_equal(rc, 0);
    for (int i = 0; i < 3; i++) {
        char args[256];
        snprintf(args, sizeof args, "run exp.yaml --shard %d/3 --out s%d.h5 --quiet", i, i + 1);
        rc = akt(args);
        if (rc)
            note("shard %d/3: %s", i, last_stderr());
        assert_int_equal(rc, 0);
    }
    rc = akt("merge merged.h5 s1.h5 s2.h5 s3.h5");
    if (rc)
        note("merge: %s", last_stderr());
    assert_int_equal(rc, 0);
    assert_int_equal(merged_from_count(tmp_path((char[512]){0}, 512, "merged.h5")), 3);

    /* merging a shard again keeps one copy of each run */
    assert_int_equal(akt("merge merged.h5 s2.h5"), 0);
    assert_int_equal(merged_from_count(tmp_path((char[512]){0}, 512, "merged.h5")), 4);

    /* a real copy: the merged file stands alone once the shards are gone */
    char p[512];
    for (int i = 1; i <= 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "s%d.h5", i);
        assert_int_equal(unlink(tmp_path(p, sizeof p, name)), 0);
    }
    char single[512], merged[512];
    assert_same_results(tmp_path(single, sizeof single, "single.h5"),
                        tmp_path(merged, sizeof merged, "merged.h5"));

    /* and akt run sees every run of the merged file as done */
    char out[4096];
    assert_int_equal(akt_stdout("run exp.yaml --out merged.h5 --quiet", out, sizeof out), 0);
    int skipped = 0;
    for (const char *q = out; (q = strstr(q, "skipped")); q++)
        skipped++;
    assert_int_equal(skipped, 4);
}

/* A small results file made with the C API: one run per (id, config, status,
 * best) entry. */
static void make_file(const char *name, int n, const char *const *ids, const char *const *cfgs,
                      const char *const *status, const double *best)
{
    char p[512];
    struct akt_results *r;
    struct akt_error e = {0};
    unlink(tmp_path(p, sizeof p, name));
    assert_int_equal(akt_results_open(&r, p, &e), 0);
    for (int i = 0; i < n; i++) {
        assert_int_equal(akt_results_run(r, ids[i], cfgs[i], &e), 0);
        double v = 1.5 * i;
        assert_int_equal(akt_results_append(r, ids[i], "top1", 0, &v, 1, &e), 0);
        assert_int_equal(akt_results_set_attr(r, ids[i], "best_top1", best[i], &e), 0);
        assert_int_equal(akt_results_set_status(r, ids[i], status[i], "", &e), 0);
    }
    assert_int_equal(akt_results_close(r, &e), 0);
}

static void test_merge_rules(void **s)
{
    (void)s;
    char a[512], b[512], c[512], out[512];
    tmp_path(a, sizeof a, "ra.h5");
    tmp_path(b, sizeof b, "rb.h5");
    tmp_path(c, sizeof c, "rc.h5");
    tmp_path(out, sizeof out, "rout.h5");
    make_file("ra.h5", 2, (const char *[]){"x", "y"}, (const char *[]){"cfg: x\n", "cfg: y\n"},
              (const char *[]){"done", "running"}, (const double[]){10, 20});
    make_file("rb.h5", 2, (const char *[]){"x", "y"}, (const char *[]){"cfg: x\n", "cfg: y\n"},
              (const char *[]){"done", "done"}, (const double[]){11, 21});
    make_file("rc.h5", 1, (const char *[]){"x"}, (const char *[]){"cfg: other\n"},
              (const char *[]){"done"}, (const double[]){30});

    /* same config: x done in both -> the first (ra) is kept; y done only in
     * rb -> rb's */
    struct akt_error e = {0};
    unlink(out);
    int rc = akt_results_merge(out, (const char *[]){a, b}, 2, &e);
    if (rc)
        note("%s: %s\n", e.where, e.what);
    assert_int_equal(rc, 0);
    struct akt_results *r;
    assert_int_equal(akt_results_open(&r, out, &e), 0);
    double v = 0;
    char st[32];
    assert_int_equal(akt_results_get_attr(r, "x", "best_top1", &v), 0);
    assert_true(v == 10);
    assert_int_equal(akt_results_get_attr(r, "y", "best_top1", &v), 0);
    assert_true(v == 21);
    assert_int_equal(akt_results_get_status(r, "y", st, sizeof st), 0);
    assert_string_equal(st, "done");
    assert_int_equal(akt_results_rows(r, "y", "top1"), 1);
    assert_int_equal(akt_results_close(r, &e), 0);

    /* different configs for one id: refused, naming both files, nothing
     * written */
    unlink(out);
    rc = akt_results_merge(out, (const char *[]){a, c}, 2, &e);
    note("refused: %s: %s\n", e.where, e.what);
    assert_int_equal(rc, AKT_EINVAL);
    assert_non_null(strstr(e.where, c));
    assert_non_null(strstr(e.what, a));
    assert_int_equal(access(out, F_OK), -1);
    if (g_ready) { /* the CLI: exit 1, one line naming both */
        assert_int_equal(akt("merge rout.h5 ra.h5 rc.h5"), 1);
        const char *msg = last_stderr();
        note("akt merge: %s", msg);
        assert_non_null(strstr(msg, "ra.h5"));
        assert_non_null(strstr(msg, "rc.h5"));
        assert_int_equal(access(out, F_OK), -1);
        assert_int_equal(akt("merge rout.h5"), 2);
    }

    /* inputs that are not akt results files */
    char txt[512], plain[512];
    FILE *f = fopen(tmp_path(txt, sizeof txt, "notes.txt"), "w");
    assert_non_null(f);
    fputs("not hdf5\n", f);
    fclose(f);
    hid_t h = H5Fcreate(tmp_path(plain, sizeof plain, "plain.h5"), H5F_ACC_TRUNC, H5P_DEFAULT,
                        H5P_DEFAULT);
    assert_true(h >= 0);
    H5Fclose(h);
    const char *bad[] = {txt, plain};
    for (int i = 0; i < 2; i++) {
        rc = akt_results_merge(out, (const char *[]){a, bad[i]}, 2, &e);
        note("refused: %s: %s\n", e.where, e.what);
        assert_int_equal(rc, AKT_EFORMAT);
        assert_non_null(strstr(e.where, bad[i]));
        assert_non_null(strstr(e.what, "not an akt results file"));
        assert_int_equal(access(out, F_OK), -1);
    }
    /* the output among the inputs */
    assert_int_not_equal(akt_results_merge(a, (const char *[]){a, b}, 2, &e), 0);
    note("refused: %s: %s\n", e.where, e.what);
}

static int setup(void **s)
{
    (void)s;
    snprintf(g_tmp, sizeof g_tmp, "%s/akt-shard-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(g_tmp))
        return -1;
    char p[512];
    FILE *f = fopen(tmp_path(p, sizeof p, "exp.yaml"), "w");
    if (!f)
        return -1;
    fputs(EXP_YAML, f);
    fclose(f);
    g_bin = getenv("AKT_BIN");
    const char *data = getenv("AKT_DATA");
    char t[1024];
    snprintf(t, sizeof t, "%s/teachers/resnet20_cifar10_akamaster_optA.h5", data ? data : "");
    g_ready = g_bin && access(g_bin, X_OK) == 0 && data && access(t, R_OK) == 0;
    return 0;
}

static int teardown(void **s)
{
    (void)s;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_shard),
        cmocka_unit_test(test_merge_rules),
        cmocka_unit_test(test_shards_merge_to_single),
    };
    return cmocka_run_group_tests_name("e2e_shard", tests, setup, teardown);
}
