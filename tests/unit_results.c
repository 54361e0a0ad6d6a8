/* Results files: round trip, truncation, every error path, crash safety
 * (SIGKILL after a flush), and the README's h5py example on a real file. */
#include <errno.h>
#include <ftw.h>
#include <hdf5.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "akt/results.h"

#define note(...) (printf("# "), printf(__VA_ARGS__), fflush(stdout))

static char tmpdir[256];

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmpdir, name);
}

static int setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/akt_unit_results_XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static int teardown(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#define CHECK(call)                                                                    \
    do {                                                                               \
        struct akt_error e_ = {0};                                                     \
        int rc_ = (call);                                                              \
        if (rc_)                                                                       \
            fail_msg("%s -> %d: %s: %s", #call, rc_, e_.where, e_.what);               \
    } while (0)
/* CHECK passes &e_ as the error: write calls as CHECK(f(..., &e_)). */

/* rc must be code, and the error must mention each of the strings. */
static void expect_error(int rc, int code, const struct akt_error *e, const char *s1,
                         const char *s2)
{
    if (rc != code || e->code != code)
        fail_msg("rc %d (e.code %d), expected %d; %s: %s", rc, e->code, code, e->where, e->what);
    char buf[1100];
    snprintf(buf, sizeof buf, "%s: %s", e->where, e->what);
    if ((s1 && !strstr(buf, s1)) || (s2 && !strstr(buf, s2)))
        fail_msg("error '%s' should mention '%s' and '%s'", buf, s1 ? s1 : "", s2 ? s2 : "");
}

static const char *CONFIG_A = "id: alpha\ngenerator: genie\nnote: \"\xc3\xa9t\xc3\xa9\"\n";

/* Writes runs alpha (done) and beta (failed) to path. */
static void write_two_runs(const char *path)
{
    struct akt_results *r = NULL;
    CHECK(akt_results_open(&r, path, &e_));
    CHECK(akt_results_run(r, "alpha", CONFIG_A, &e_));
    CHECK(akt_results_run(r, "beta", "id: beta\n", &e_));
    assert_true(akt_results_has_run(r, "alpha"));
    assert_false(akt_results_has_run(r, "gamma"));
    for (int ep = 0; ep < 5; ep++) {
        double top1 = 10 + ep, loss = 1.0 / (ep + 1), row[19];
        for (int k = 0; k < 19; k++)
            row[k] = ep * 100 + k;
        CHECK(akt_results_append(r, "alpha", "top1", ep, &top1, 1, &e_));
        CHECK(akt_results_append(r, "alpha", "gen.bns", ep, &loss, 1, &e_));
        CHECK(akt_results_append(r, "alpha", "ranges", ep, row, 19, &e_));
        CHECK(akt_results_flush(r, &e_));
    }
    double b = 42.5;
    CHECK(akt_results_append(r, "beta", "top1", 0, &b, 1, &e_));

    float w[2 * 3 * 3 * 3];
    for (int i = 0; i < 54; i++)
        w[i] = 0.5f * i - 3;
    int shape[4] = {2, 3, 3, 3};
    CHECK(akt_results_write_tensor(r, "alpha", "tensors/qweight", "conv1.weight", w, 4, shape, &e_));
    /* same shape: rewritten in place */
    w[0] = 99;
    CHECK(akt_results_write_tensor(r, "alpha", "tensors/qweight", "conv1.weight", w, 4, shape, &e_));
    /* different shape: replaced */
    int shape2[2] = {3, 2};
    float v[6] = {1, 2, 3, 4, 5, 6};
    CHECK(akt_results_write_tensor(r, "alpha", "checkpoint", "state", v, 1, (int[]){4}, &e_));
    CHECK(akt_results_write_tensor(r, "alpha", "checkpoint", "state", v, 2, shape2, &e_));
    int ints[3] = {7, -8, 9};
    CHECK(akt_results_write_ints(r, "alpha", "checkpoint", "epoch", ints, 3, &e_));

    CHECK(akt_results_set_attr(r, "alpha", "best_top1", 14.0, &e_));
    CHECK(akt_results_set_attr(r, "alpha", "best_top1", 14.5, &e_)); /* overwrite */
    CHECK(akt_results_set_status(r, "alpha", "done", "", &e_));
    CHECK(akt_results_set_status(r, "beta", "failed", "NaN in epoch 0", &e_));
    CHECK(akt_results_close(r, &e_));
}

/* Raw HDF5 reads of what the API does not expose: root attributes, config,
 * dtypes, chunking and max dims. */
static void read_str_attr(hid_t obj, const char *name, char *buf, size_t n)
{
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    assert_true(a >= 0);
    hid_t t = H5Aget_type(a);
    assert_true(t >= 0);
    assert_int_equal(H5Tget_class(t), H5T_STRING);
    assert_true(H5Tis_variable_str(t) > 0);
    assert_int_equal(H5Tget_cset(t), H5T_CSET_UTF8);
    char *s = NULL;
    hid_t mt = H5Tcopy(H5T_C_S1);
    assert_true(mt >= 0 && H5Tset_size(mt, H5T_VARIABLE) >= 0 &&
                H5Tset_cset(mt, H5T_CSET_UTF8) >= 0);
    assert_true(H5Aread(a, mt, &s) >= 0 && s);
    snprintf(buf, n, "%s", s);
    H5free_memory(s);
    H5Tclose(mt);
    H5Tclose(t);
    H5Aclose(a);
}

static void check_raw_layout(const char *path)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    long long ver = 0;
    hid_t a = H5Aopen(f, "akt_schema_version", H5P_DEFAULT);
    assert_true(a >= 0 && H5Aread(a, H5T_NATIVE_LLONG, &ver) >= 0);
    H5Aclose(a);
    assert_int_equal(ver, AKT_RESULTS_SCHEMA);
    char buf[512];
    /* the meson project version (tests/meson.build passes it) */
    read_str_attr(f, "creator", buf, sizeof buf);
    assert_string_equal(buf, "akt " AKT_MESON_VERSION);
    read_str_attr(f, "akt_version", buf, sizeof buf);
    assert_string_equal(buf, AKT_MESON_VERSION);
    read_str_attr(f, "akt_commit", buf, sizeof buf); /* hex, "" outside a git checkout */
    assert_true(strspn(buf, "0123456789abcdef") >= (strlen(buf) > 0 ? 7 : 0));
    read_str_attr(f, "created", buf, sizeof buf);
    int y, mo, d, h, mi, s;
    char z = 0;
    assert_int_equal(sscanf(buf, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &s, &z), 7);
    assert_int_equal(z, 'Z');
    assert_true(y >= 2024 && strlen(buf) == 20);

    hid_t run = H5Gopen2(f, "/runs/alpha", H5P_DEFAULT);
    assert_true(run >= 0);
    read_str_attr(run, "config", buf, sizeof buf);
    assert_string_equal(buf, CONFIG_A);
    read_str_attr(run, "status_message", buf, sizeof buf);
    assert_string_equal(buf, "");

    /* step: int64 [5], chunked, unlimited; value: float64 [5,19] */
    hid_t st = H5Dopen2(run, "metrics/ranges/step", H5P_DEFAULT);
    hid_t va = H5Dopen2(run, "metrics/ranges/value", H5P_DEFAULT);
    assert_true(st >= 0 && va >= 0);
    hid_t t = H5Dget_type(st);
    assert_true(H5Tequal(t, H5T_STD_I64LE) > 0);
    H5Tclose(t);
    t = H5Dget_type(va);
    assert_true(H5Tequal(t, H5T_IEEE_F64LE) > 0);
    H5Tclose(t);
    hsize_t dims[2], maxd[2];
    hid_t sp = H5Dget_space(st);
    assert_int_equal(H5Sget_simple_extent_dims(sp, dims, maxd), 1);
    assert_int_equal(dims[0], 5);
    assert_true(maxd[0] == H5S_UNLIMITED);
    H5Sclose(sp);
    sp = H5Dget_space(va);
    assert_int_equal(H5Sget_simple_extent_dims(sp, dims, maxd), 2);
    assert_int_equal(dims[0], 5);
    assert_int_equal(dims[1], 19);
    assert_true(maxd[0] == H5S_UNLIMITED && maxd[1] == 19);
    H5Sclose(sp);
    hid_t pl = H5Dget_create_plist(va);
    assert_int_equal(H5Pget_layout(pl), H5D_CHUNKED);
    H5Pclose(pl);
    H5Dclose(st);
    H5Dclose(va);
    /* scalar metric: 1-D value */
    va = H5Dopen2(run, "metrics/top1/value", H5P_DEFAULT);
    sp = H5Dget_space(va);
    assert_int_equal(H5Sget_simple_extent_ndims(sp), 1);
    H5Sclose(sp);
    H5Dclose(va);
    /* tensors: float32 in the written shape; ints: int32 */
    hid_t q = H5Dopen2(run, "tensors/qweight/conv1.weight", H5P_DEFAULT);
    assert_true(q >= 0);
    t = H5Dget_type(q);
    assert_true(H5Tequal(t, H5T_IEEE_F32LE) > 0);
    H5Tclose(t);
    sp = H5Dget_space(q);
    hsize_t qd[4];
    assert_int_equal(H5Sget_simple_extent_dims(sp, qd, NULL), 4);
    assert_true(qd[0] == 2 && qd[1] == 3 && qd[2] == 3 && qd[3] == 3);
    H5Sclose(sp);
    H5Dclose(q);
    q = H5Dopen2(run, "checkpoint/epoch", H5P_DEFAULT);
    t = H5Dget_type(q);
    assert_true(H5Tequal(t, H5T_STD_I32LE) > 0);
    H5Tclose(t);
    H5Dclose(q);
    H5Gclose(run);
    assert_true(H5Fclose(f) >= 0);
}

static void test_roundtrip(void **state)
{
    (void)state;
    char path[512];
    path_of(path, sizeof path, "two_runs.h5");
    write_two_runs(path);
    check_raw_layout(path);

    struct akt_results *r = NULL;
    CHECK(akt_results_open(&r, path, &e_)); /* reopen for appending */
    assert_true(akt_results_has_run(r, "alpha") && akt_results_has_run(r, "beta"));
    char st[64];
    assert_int_equal(akt_results_get_status(r, "alpha", st, sizeof st), 0);
    assert_string_equal(st, "done");
    assert_int_equal(akt_results_get_status(r, "beta", st, sizeof st), 0);
    assert_string_equal(st, "failed");
    assert_true(akt_results_get_status(r, "gamma", st, sizeof st) < 0);

    assert_int_equal(akt_results_rows(r, "alpha", "top1"), 5);
    assert_int_equal(akt_results_rows(r, "alpha", "ranges"), 5);
    assert_int_equal(akt_results_rows(r, "beta", "top1"), 1);
    assert_int_equal(akt_results_rows(r, "beta", "ranges"), 0);
    assert_int_equal(akt_results_rows(r, "gamma", "top1"), 0);

    int64_t steps[5];
    double vals[5 * 19];
    CHECK(akt_results_read_metric(r, "alpha", "top1", steps, vals, 5, 1, &e_));
    for (int i = 0; i < 5; i++) {
        assert_int_equal(steps[i], i);
        assert_true(vals[i] == 10 + i);
    }
    CHECK(akt_results_read_metric(r, "alpha", "ranges", steps, vals, 5, 19, &e_));
    for (int i = 0; i < 5; i++)
        for (int k = 0; k < 19; k++)
            assert_true(vals[i * 19 + k] == i * 100 + k);

    float w[54];
    CHECK(akt_results_read_tensor(r, "alpha", "tensors/qweight", "conv1.weight", w, 54, &e_));
    assert_true(w[0] == 99 && w[1] == -2.5f && w[53] == 0.5f * 53 - 3);
    float v[6];
    CHECK(akt_results_read_tensor(r, "alpha", "checkpoint", "state", v, 6, &e_));
    for (int i = 0; i < 6; i++)
        assert_true(v[i] == i + 1);
    int ints[3];
    CHECK(akt_results_read_ints(r, "alpha", "checkpoint", "epoch", ints, 3, &e_));
    assert_true(ints[0] == 7 && ints[1] == -8 && ints[2] == 9);

    double a = 0;
    assert_int_equal(akt_results_get_attr(r, "alpha", "best_top1", &a), 0);
    assert_true(a == 14.5);
    assert_true(akt_results_get_attr(r, "alpha", "nope", &a) < 0);
    assert_true(akt_results_get_attr(r, "beta", "best_top1", &a) < 0);

    /* reopening a run keeps its config and adds rows after the old ones */
    CHECK(akt_results_run(r, "alpha", "id: something else\n", &e_));
    double t = 15;
    CHECK(akt_results_append(r, "alpha", "top1", 5, &t, 1, &e_));
    assert_int_equal(akt_results_rows(r, "alpha", "top1"), 6);
    CHECK(akt_results_set_status(r, "alpha", "interrupted", "SIGINT", &e_));
    CHECK(akt_results_close(r, &e_));

    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    hid_t run = H5Gopen2(f, "/runs/alpha", H5P_DEFAULT);
    char buf[512];
    read_str_attr(run, "config", buf, sizeof buf);
    assert_string_equal(buf, CONFIG_A);
    read_str_attr(run, "status", buf, sizeof buf);
    assert_string_equal(buf, "interrupted");
    read_str_attr(run, "status_message", buf, sizeof buf);
    assert_string_equal(buf, "SIGINT");
    H5Gclose(run);
    H5Fclose(f);
    assert_int_equal(H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

/* The typed API: one write/read for every array type, one attribute
 * set/get on the run and on a group, for numbers and strings; the per-type
 * shorthands read what it wrote. */
static void test_typed(void **state)
{
    (void)state;
    char path[512];
    path_of(path, sizeof path, "typed.h5");
    struct akt_results *r = NULL;
    CHECK(akt_results_open(&r, path, &e_));
    CHECK(akt_results_run(r, "t", "id: t\n", &e_));
    const float f[6] = {1.5f, -2, 3, 4, 5, 6.25f};
    const double d[3] = {0.1, 1e300, -7};
    const int k[4] = {-1, 0, 7, 1 << 30};
    CHECK(akt_results_write(r, "t", "a/b", "f", AKT_F32, f, 2, (int[]){2, 3}, &e_));
    CHECK(akt_results_write(r, "t", "a", "d", AKT_F64, d, 1, (int[]){3}, &e_));
    CHECK(akt_results_write(r, "t", "a", "k", AKT_I32, k, 1, (int[]){4}, &e_));
    CHECK(akt_results_write(r, "t", "a", "empty", AKT_F32, NULL, 1, (int[]){0}, &e_));
    double v = 42.5;
    CHECK(akt_results_attr_set(r, "t", NULL, "score", AKT_F64, &v, &e_));
    CHECK(akt_results_attr_set(r, "t", "", "note", AKT_STR, "hello", &e_));
    CHECK(akt_results_attr_set(r, "t", "a/b", "n", AKT_F64, (double[]){3}, &e_));
    CHECK(akt_results_attr_set(r, "t", "a/b", "s", AKT_STR, "x y", &e_));
    struct akt_error e = {0};
    /* refusals: a reserved name on the run, a string type for an array, a
     * number type for an attribute that is neither */
    assert_int_equal(akt_results_attr_set(r, "t", NULL, "status", AKT_STR, "done", &e),
                     AKT_EINVAL);
    assert_int_equal(akt_results_write(r, "t", "a", "s", AKT_STR, "x", 1, (int[]){1}, &e),
                     AKT_EINVAL);
    assert_int_equal(akt_results_attr_set(r, "t", "a", "q", AKT_I32, k, &e), AKT_EINVAL);
    CHECK(akt_results_close(r, &e_));

    CHECK(akt_results_open_read(&r, path, &e_));
    float f2[6];
    double d2[3], d3[3];
    int k2[4];
    CHECK(akt_results_read(r, "t", "a/b", "f", AKT_F32, f2, 6, &e_));
    assert_memory_equal(f, f2, sizeof f);
    CHECK(akt_results_read(r, "t", "a", "d", AKT_F64, d2, 3, &e_));
    assert_memory_equal(d, d2, sizeof d);
    CHECK(akt_results_read(r, "t", "a", "k", AKT_I32, k2, 4, &e_));
    assert_memory_equal(k, k2, sizeof k);
    CHECK(akt_results_read(r, "t", "a", "empty", AKT_F32, NULL, 0, &e_));
    /* the shorthands read the same datasets */
    CHECK(akt_results_read_doubles(r, "t", "a", "d", d3, 3, &e_));
    assert_memory_equal(d, d3, sizeof d);
    CHECK(akt_results_read_ints(r, "t", "a", "k", k2, 4, &e_));
    assert_memory_equal(k, k2, sizeof k);
    /* a float array is no integer array; a wrong count is a shape error */
    assert_int_equal(akt_results_read(r, "t", "a", "d", AKT_I32, k2, 3, &e), AKT_EFORMAT);
    assert_int_equal(akt_results_read(r, "t", "a", "k", AKT_I32, k2, 3, &e), AKT_ESHAPE);
    double got = 0;
    char buf[32];
    assert_int_equal(akt_results_attr_get(r, "t", NULL, "score", AKT_F64, &got, 0), 0);
    assert_true(got == 42.5);
    assert_int_equal(akt_results_get_attr(r, "t", "score", &got), 0);
    assert_true(got == 42.5);
    assert_int_equal(akt_results_attr_get(r, "t", NULL, "note", AKT_STR, buf, sizeof buf), 0);
    assert_string_equal(buf, "hello");
    assert_int_equal(akt_results_attr_get(r, "t", "a/b", "n", AKT_F64, &got, 0), 0);
    assert_true(got == 3);
    assert_int_equal(akt_results_get_group_attr_str(r, "t", "a/b", "s", buf, sizeof buf), 0);
    assert_string_equal(buf, "x y");
    /* absent: the attribute, the group, the run */
    assert_true(akt_results_attr_get(r, "t", "a/b", "none", AKT_F64, &got, 0) < 0);
    assert_true(akt_results_attr_get(r, "t", "zz", "n", AKT_F64, &got, 0) < 0);
    assert_true(akt_results_attr_get(r, "u", NULL, "score", AKT_F64, &got, 0) < 0);
    assert_true(akt_results_attr_get(r, "t", NULL, "note", AKT_F64, &got, 0) < 0);
    CHECK(akt_results_close(r, &e_));
}

static void test_truncate(void **state)
{
    (void)state;
    char path[512];
    path_of(path, sizeof path, "truncate.h5");
    struct akt_results *r = NULL;
    CHECK(akt_results_open(&r, path, &e_));
    CHECK(akt_results_run(r, "run", "id: run\n", &e_));
    double row[19] = {0};
    for (int ep = 0; ep < 6; ep++) {
        double x = ep;
        CHECK(akt_results_append(r, "run", "top1", ep, &x, 1, &e_));
        CHECK(akt_results_append(r, "run", "act", ep, row, 19, &e_));
        if (ep % 2) /* a plugin metric reported in odd epochs only */
            CHECK(akt_results_append(r, "run", "gen.bns", ep, &x, 1, &e_));
    }
    assert_int_equal(akt_results_rows(r, "run", "gen.bns"), 3);
    /* by rows: every metric cut to at most 4 rows, none grown */
    CHECK(akt_results_truncate(r, "run", 4, &e_));
    assert_int_equal(akt_results_rows(r, "run", "top1"), 4);
    assert_int_equal(akt_results_rows(r, "run", "act"), 4);
    assert_int_equal(akt_results_rows(r, "run", "gen.bns"), 3);
    /* by step: rows with step >= 2 go; gen.bns keeps only step 1 */
    CHECK(akt_results_truncate_steps(r, "run", 2, &e_));
    assert_int_equal(akt_results_rows(r, "run", "top1"), 2);
    assert_int_equal(akt_results_rows(r, "run", "act"), 2);
    assert_int_equal(akt_results_rows(r, "run", "gen.bns"), 1);
    /* resume: appends continue right after the kept rows */
    double x = 20;
    CHECK(akt_results_append(r, "run", "top1", 2, &x, 1, &e_));
    int64_t steps[3];
    double vals[3];
    CHECK(akt_results_read_metric(r, "run", "top1", steps, vals, 3, 1, &e_));
    assert_true(steps[2] == 2 && vals[2] == 20 && vals[1] == 1);
    CHECK(akt_results_truncate(r, "run", 0, &e_));
    assert_int_equal(akt_results_rows(r, "run", "top1"), 0);
    struct akt_error e = {0};
    expect_error(akt_results_truncate(r, "run", -1, &e), AKT_EINVAL, &e, path, NULL);
    expect_error(akt_results_truncate(r, "nope", 0, &e), AKT_EINVAL, &e, "nope", "no such run");
    CHECK(akt_results_close(r, &e_));
}

static void test_open_errors(void **state)
{
    (void)state;
    struct akt_results *r = (void *)1;
    struct akt_error e = {0};
    char path[512];

    /* not HDF5 */
    path_of(path, sizeof path, "text.h5");
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("top1,epoch\n1,2\n", fp);
    fclose(fp);
    expect_error(akt_results_open(&r, path, &e), AKT_EFORMAT, &e, path, "not an HDF5 file");
    assert_null(r);

    /* HDF5, but not ours: refused and left untouched */
    path_of(path, sizeof path, "other.h5");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    H5Fclose(f);
    struct stat st0, st1;
    assert_int_equal(stat(path, &st0), 0);
    expect_error(akt_results_open(&r, path, &e), AKT_EFORMAT, &e, path, "not an akt results file");
    assert_int_equal(stat(path, &st1), 0);
    assert_int_equal(st0.st_size, st1.st_size);

    /* a newer schema */
    path_of(path, sizeof path, "newer.h5");
    CHECK(akt_results_open(&r, path, &e_));
    CHECK(akt_results_close(r, &e_));
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t a = H5Aopen(f, "akt_schema_version", H5P_DEFAULT);
    int v = AKT_RESULTS_SCHEMA + 1;
    assert_true(a >= 0 && H5Awrite(a, H5T_NATIVE_INT, &v) >= 0);
    H5Aclose(a);
    H5Fclose(f);
    expect_error(akt_results_open(&r, path, &e), AKT_EFORMAT, &e, path, "newer akt");

    /* unwritable: a directory that does not exist; a directory */
    path_of(path, sizeof path, "no/such/dir/r.h5");
    expect_error(akt_results_open(&r, path, &e), AKT_EIO, &e, path, "cannot create");
    expect_error(akt_results_open(&r, tmpdir, &e), AKT_EIO, &e, tmpdir, "directory");
    expect_error(akt_results_open(&r, "", &e), AKT_EINVAL, &e, NULL, NULL);
}

static void test_usage_errors(void **state)
{
    (void)state;
    char path[512];
    path_of(path, sizeof path, "usage.h5");
    struct akt_results *r = NULL;
    struct akt_error e = {0};
    CHECK(akt_results_open(&r, path, &e_));
    CHECK(akt_results_run(r, "run-1.a", "", &e_));
    double x[19] = {0};

    /* metric names: [A-Za-z0-9_.] only */
    const char *bad[] = {"a/b", "a-b", "", "a b", "..", "top1\n", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        expect_error(akt_results_append(r, "run-1.a", bad[i], 0, x, 1, &e), AKT_EINVAL, &e, path,
                     "metric name");
    expect_error(akt_results_append(r, "run-1.a", NULL, 0, x, 1, &e), AKT_EINVAL, &e, path, NULL);
    CHECK(akt_results_append(r, "run-1.a", "loss.feature_2", 0, x, 1, &e_));
    assert_int_equal(akt_results_rows(r, "run-1.a", "a/b"), 0);

    /* run ids */
    expect_error(akt_results_run(r, "a/b", "", &e), AKT_EINVAL, &e, path, "run id");
    expect_error(akt_results_run(r, ".", "", &e), AKT_EINVAL, &e, path, "run id");
    expect_error(akt_results_append(r, "ghost", "top1", 0, x, 1, &e), AKT_EINVAL, &e,
                 "/runs/ghost", "no such run");

    /* width must stay the same; width >= 1 */
    CHECK(akt_results_append(r, "run-1.a", "act", 0, x, 19, &e_));
    expect_error(akt_results_append(r, "run-1.a", "act", 1, x, 18, &e), AKT_ESHAPE, &e,
                 "/runs/run-1.a/metrics/act", "width 19");
    expect_error(akt_results_append(r, "run-1.a", "act", 1, x, 0, &e), AKT_EINVAL, &e, path, NULL);
    assert_int_equal(akt_results_rows(r, "run-1.a", "act"), 1);

    /* status, attributes, tensors */
    expect_error(akt_results_set_status(r, "run-1.a", "finished", "", &e), AKT_EINVAL, &e, path,
                 "finished");
    expect_error(akt_results_set_attr(r, "run-1.a", "status", 1, &e), AKT_EINVAL, &e, path,
                 "reserved");
    expect_error(akt_results_set_attr(r, "run-1.a", "a b", 1, &e), AKT_EINVAL, &e, path, NULL);
    float w[4] = {0};
    expect_error(akt_results_write_tensor(r, "run-1.a", "tensors", "a/b", w, 1, (int[]){4}, &e),
                 AKT_EINVAL, &e, path, NULL);
    expect_error(akt_results_write_tensor(r, "run-1.a", "/tensors", "w", w, 1, (int[]){4}, &e),
                 AKT_EINVAL, &e, path, NULL);
    expect_error(akt_results_write_tensor(r, "run-1.a", "tensors", "w", w, 1, (int[]){-1}, &e),
                 AKT_EINVAL, &e, path, "shape[0]");
    /* an empty tensor (a generator with nothing to checkpoint) round-trips */
    CHECK(akt_results_write_tensor(r, "run-1.a", "tensors", "empty", NULL, 1, (int[]){0}, &e_));
    CHECK(akt_results_read_tensor(r, "run-1.a", "tensors", "empty", NULL, 0, &e_));
    expect_error(akt_results_read_tensor(r, "run-1.a", "tensors", "empty", w, 1, &e), AKT_ESHAPE,
                 &e, path, "0 elements");
    expect_error(akt_results_write_tensor(r, "run-1.a", "tensors", "w", w, 0, (int[]){4}, &e),
                 AKT_EINVAL, &e, path, "ndim");
    CHECK(akt_results_write_tensor(r, "run-1.a", "tensors", "w", w, 2, (int[]){2, 2}, &e_));
    float big[5];
    expect_error(akt_results_read_tensor(r, "run-1.a", "tensors", "w", big, 5, &e), AKT_ESHAPE,
                 &e, "/runs/run-1.a/tensors/w", "4 elements");
    expect_error(akt_results_read_tensor(r, "run-1.a", "tensors", "missing", big, 4, &e),
                 AKT_EFORMAT, &e, "tensors/missing", "missing");
    expect_error(akt_results_read_tensor(r, "run-1.a", "no/group", "w", big, 4, &e), AKT_EFORMAT,
                 &e, "no/group/w", "missing");
    int ib[4];
    expect_error(akt_results_read_ints(r, "run-1.a", "tensors", "w", ib, 4, &e), AKT_EFORMAT, &e,
                 path, "integer");
    int64_t s1;
    double v1;
    expect_error(akt_results_read_metric(r, "run-1.a", "act", &s1, &v1, 1, 1, &e), AKT_ESHAPE, &e,
                 path, "width 19");
    expect_error(akt_results_read_metric(r, "run-1.a", "nope", &s1, &v1, 1, 1, &e), AKT_EINVAL,
                 &e, path, "no such metric");
    CHECK(akt_results_close(r, &e_));
    assert_int_equal(akt_results_close(NULL, &e), 0);
    /* no HDF5 handle leaked, error paths included */
    assert_int_equal(H5Fget_obj_count((hid_t)H5F_OBJ_ALL, H5F_OBJ_ALL), 0);
}

/* The in-place API (akt_results_open): a child writes and flushes 3 rows,
 * then dies by SIGKILL without closing: the file must reopen with the 3
 * rows. (akt's commands never write in place: test_atomic_edit.) */
static void test_crash_safety(void **state)
{
    (void)state;
    char path[512];
    path_of(path, sizeof path, "crash.h5");
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct akt_results *r = NULL;
        struct akt_error e = {0};
        if (akt_results_open(&r, path, &e) || akt_results_run(r, "crashy", "id: crashy\n", &e) ||
            akt_results_set_status(r, "crashy", "running", "", &e))
            _exit(2);
        for (int ep = 0; ep < 3; ep++) {
            double v = 50 + ep, row[19];
            for (int k = 0; k < 19; k++)
                row[k] = ep + k;
            if (akt_results_append(r, "crashy", "top1", ep, &v, 1, &e) ||
                akt_results_append(r, "crashy", "act", ep, row, 19, &e))
                _exit(3);
        }
        if (akt_results_flush(r, &e))
            _exit(4);
        raise(SIGKILL);
        _exit(5);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("child did not die by SIGKILL (status 0x%x)", status);

    struct akt_results *r = NULL;
    CHECK(akt_results_open(&r, path, &e_));
    assert_int_equal(akt_results_rows(r, "crashy", "top1"), 3);
    assert_int_equal(akt_results_rows(r, "crashy", "act"), 3);
    int64_t steps[3];
    double vals[3 * 19];
    CHECK(akt_results_read_metric(r, "crashy", "top1", steps, vals, 3, 1, &e_));
    for (int i = 0; i < 3; i++)
        assert_true(steps[i] == i && vals[i] == 50 + i);
    CHECK(akt_results_read_metric(r, "crashy", "act", steps, vals, 3, 19, &e_));
    assert_true(vals[2 * 19 + 18] == 2 + 18);
    char st[32];
    assert_int_equal(akt_results_get_status(r, "crashy", st, sizeof st), 0);
    assert_string_equal(st, "running");
    /* and the run can go on */
    double v = 53;
    CHECK(akt_results_append(r, "crashy", "top1", 3, &v, 1, &e_));
    CHECK(akt_results_set_status(r, "crashy", "interrupted", "killed", &e_));
    CHECK(akt_results_close(r, &e_));
}

static int same_bytes(const char *a, const char *b)
{
    FILE *x = fopen(a, "rb"), *y = fopen(b, "rb");
    int same = x && y;
    for (int c = 0, d = 0; same && (c != EOF || d != EOF);) {
        c = fgetc(x);
        d = fgetc(y);
        same = c == d;
    }
    if (x)
        fclose(x);
    if (y)
        fclose(y);
    return same;
}

static void copy_path(const char *from, const char *to)
{
    FILE *x = fopen(from, "rb"), *y = fopen(to, "wb");
    assert_true(x && y);
    for (int c; (c = fgetc(x)) != EOF;)
        fputc(c, y);
    fclose(x);
    fclose(y);
}

/* akt_results_edit / commit / discard, in memory and on disk: a discarded
 * or unfinished edit leaves the file byte for byte as it was, a commit
 * replaces it whole; copy_run, delete, open_read; the writer lock. */
static void edit_once(const char *mem_max)
{
    setenv("AKT_RESULTS_MEM_EDIT_MAX", mem_max, 1);
    char path[512], tmp[600], keep[512], other[512];
    path_of(path, sizeof path, "edit.h5");
    path_of(keep, sizeof keep, "edit.keep");
    path_of(other, sizeof other, "other.h5");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    remove(path);
    struct akt_results *r = NULL;
    /* a new file exists only once committed */
    CHECK(akt_results_edit(&r, path, &e_));
    CHECK(akt_results_run(r, "a", "id: a\n", &e_));
    akt_results_discard(r);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(access(tmp, F_OK), -1);
    CHECK(akt_results_edit(&r, path, &e_));
    CHECK(akt_results_run(r, "a", "id: a\n", &e_));
    double v = 1;
    CHECK(akt_results_append(r, "a", "top1", 0, &v, 1, &e_));
    CHECK(akt_results_commit(r, &e_));
    assert_int_equal(access(tmp, F_OK), -1);
    copy_path(path, keep);
    /* changes in an edit are invisible until the commit */
    CHECK(akt_results_edit(&r, path, &e_));
    v = 2;
    CHECK(akt_results_append(r, "a", "top1", 1, &v, 1, &e_));
    CHECK(akt_results_delete(r, "a", "metrics/top1", &e_));
    CHECK(akt_results_close(r, &e_)); /* close without commit = discard */
    assert_true(same_bytes(path, keep));
    CHECK(akt_results_edit(&r, path, &e_));
    CHECK(akt_results_append(r, "a", "top1", 1, &v, 1, &e_));
    CHECK(akt_results_set_attr(r, "a", "x", 3, &e_));
    CHECK(akt_results_delete_attr(r, "a", "x", &e_));
    CHECK(akt_results_delete_attr(r, "a", "never_there", &e_));
    CHECK(akt_results_commit(r, &e_));
    struct akt_results *ro = NULL;
    CHECK(akt_results_open_read(&ro, path, &e_));
    assert_int_equal(akt_results_rows(ro, "a", "top1"), 2);
    assert_int_equal(akt_results_schema(ro), AKT_RESULTS_SCHEMA);
    double x;
    assert_true(akt_results_get_attr(ro, "a", "x", &x) < 0);
    /* a run copied into another file, whole */
    remove(other);
    struct akt_results *o = NULL;
    CHECK(akt_results_edit(&o, other, &e_));
    CHECK(akt_results_copy_run(o, ro, "a", &e_));
    CHECK(akt_results_commit(o, &e_));
    CHECK(akt_results_close(ro, &e_));
    CHECK(akt_results_open_read(&o, other, &e_));
    assert_int_equal(akt_results_rows(o, "a", "top1"), 2);
    struct akt_error e = {0};
    expect_error(akt_results_commit(o, &e), AKT_EINVAL, &e, other, "akt_results_edit");
    unsetenv("AKT_RESULTS_MEM_EDIT_MAX");
}

static void test_atomic_edit(void **state)
{
    (void)state;
    edit_once("67108864"); /* in memory */
    edit_once("0");        /* a byte copy edited on disk */
    char path[512], side[600];
    path_of(path, sizeof path, "locked.h5");
    assert_int_equal(akt_results_run_file(path, "r1", side, sizeof side), 0);
    assert_non_null(strstr(side, "locked.h5.d/r1.h5"));
    struct akt_results_lock *l1 = NULL, *l2 = NULL;
    CHECK(akt_results_lock(&l1, path, &e_));
    struct akt_error e = {0};
    char pid[32];
    snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
    expect_error(akt_results_lock(&l2, path, &e), AKT_EIO, &e, "another akt process", pid);
    assert_null(l2);
    akt_results_unlock(l1);
    CHECK(akt_results_lock(&l2, path, &e_)); /* free again */
    akt_results_unlock(l2);
}

/* Runs cmd (stdout+stderr to out); returns its exit status. */
static int run_cmd(const char *cmd, const char *out)
{
    char full[3000];
    snprintf(full, sizeof full, "%s >'%s' 2>&1", cmd, out);
    int s = system(full);
    return s == -1 ? -1 : WIFEXITED(s) ? WEXITSTATUS(s) : 128 + WTERMSIG(s);
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        free(s);
        s = NULL;
    }
    if (s)
        s[n] = 0;
    fclose(f);
    return s;
}

static void print_diag(const char *text)
{
    for (const char *p = text; p && *p;) {
        const char *nl = strchr(p, '\n');
        int len = nl ? (int)(nl - p) : (int)strlen(p);
        printf("# %.*s\n", len, p);
        p += len + (nl ? 1 : 0);
    }
    fflush(stdout);
}

static void expect_output(const char *what, int rc, const char *out_path, const char *needle)
{
    char *out = slurp(out_path);
    if (rc != 0 || !out || !strstr(out, needle)) {
        note("%s exited %d; output:\n", what, rc);
        print_diag(out);
        free(out);
        fail_msg("%s: exit %d, '%s' %s in its output", what, rc, needle,
                 out ? "not found" : "unreadable");
    }
    free(out);
}

/* The README's example block must be tools/results_example.py verbatim. */
static void check_readme_matches(const char *root)
{
    char p[1024];
    snprintf(p, sizeof p, "%s/results/README.md", root);
    char *readme = slurp(p);
    snprintf(p, sizeof p, "%s/tools/results_example.py", root);
    char *script = slurp(p);
    assert_non_null(readme);
    assert_non_null(script);
    char *b = strstr(readme, "```python\n");
    assert_non_null(b);
    b += strlen("```python\n");
    char *end = strstr(b, "\n```");
    assert_non_null(end);
    end[1] = 0;
    if (strcmp(b, script))
        fail_msg("results/README.md's python block differs from tools/results_example.py");
    free(readme);
    free(script);
}

static void test_tools_read_the_file(void **state)
{
    (void)state;
    const char *root = getenv("AKT_SOURCE_ROOT");
    if (!root || !*root) {
        note("AKT_SOURCE_ROOT not set: skipping\n");
        skip();
    }
    check_readme_matches(root);
    char path[512], out[512], cmd[2048];
    path_of(path, sizeof path, "for_tools.h5");
    path_of(out, sizeof out, "tool_output.txt");
    write_two_runs(path);

    int have_py = access("/usr/bin/python3", X_OK) == 0 &&
                  system("/usr/bin/python3 -c 'import h5py, numpy' >/dev/null 2>&1") == 0;
    int have_dump = system("command -v h5dump >/dev/null 2>&1") == 0;
    if (have_py) {
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/tools/results_example.py' '%s'", root, path);
        int rc = run_cmd(cmd, out);
        expect_output("results_example.py", rc, out, "run alpha: done");
        expect_output("results_example.py", rc, out, "run beta: failed NaN in epoch 0");
        expect_output("results_example.py", rc, out, "14.0");
    } else {
        note("/usr/bin/python3 with h5py and numpy not available: example not run\n");
    }
    if (have_dump) {
        snprintf(cmd, sizeof cmd, "h5dump -H '%s'", path);
        int rc = run_cmd(cmd, out);
        expect_output("h5dump -H", rc, out, "GROUP \"alpha\"");
        expect_output("h5dump -H", rc, out, "H5S_UNLIMITED");
    } else {
        note("h5dump not available: not run\n");
    }
    if (!have_py && !have_dump)
        skip();
}

/* akt_results_open_read and the listing functions (akt table's reader). */
static void test_read_only(void **state)
{
    (void)state;
    char path[512];
    path_of(path, sizeof path, "read_only.h5");
    write_two_runs(path);
    struct stat st0, st1;
    assert_int_equal(stat(path, &st0), 0);

    struct akt_results *r = NULL;
    CHECK(akt_results_open_read(&r, path, &e_));
    char **ids = NULL;
    int n = 0;
    CHECK(akt_results_run_ids(r, &ids, &n, &e_));
    assert_int_equal(n, 2);
    assert_string_equal(ids[0], "alpha");
    assert_string_equal(ids[1], "beta");
    akt_results_free_names(ids, n);
    CHECK(akt_results_metric_names(r, "alpha", &ids, &n, &e_));
    assert_int_equal(n, 3);
    assert_string_equal(ids[0], "gen.bns"); /* byte order */
    assert_string_equal(ids[1], "ranges");
    assert_string_equal(ids[2], "top1");
    akt_results_free_names(ids, n);
    char *s = akt_results_run_str(r, "alpha", "config");
    assert_non_null(s);
    assert_string_equal(s, CONFIG_A);
    free(s);
    s = akt_results_run_str(r, "beta", "status_message");
    assert_non_null(s);
    assert_string_equal(s, "NaN in epoch 0");
    free(s);
    assert_null(akt_results_run_str(r, "beta", "no_such_attr"));
    assert_null(akt_results_run_str(r, "gamma", "config"));
    struct akt_error e = {0};
    expect_error(akt_results_metric_names(r, "gamma", &ids, &n, &e), AKT_EINVAL, &e, "gamma",
                 "no such run");
    double top1[5];
    CHECK(akt_results_read_metric(r, "alpha", "top1", NULL, top1, 5, 1, &e_));
    assert_true(top1[4] == 14);
    /* writing through a read-only handle fails, and the file stays as it was */
    e = (struct akt_error){0};
    assert_true(akt_results_set_status(r, "alpha", "failed", "x", &e) < 0);
    double one = 1;
    assert_true(akt_results_append(r, "alpha", "top1", 5, &one, 1, &e) < 0);
    CHECK(akt_results_close(r, &e_));
    assert_int_equal(stat(path, &st1), 0);
    assert_int_equal(st0.st_size, st1.st_size);
    assert_true(st0.st_mtime == st1.st_mtime);
    CHECK(akt_results_open_read(&r, path, &e_));
    s = akt_results_run_str(r, "alpha", "status");
    assert_string_equal(s, "done");
    free(s);
    CHECK(akt_results_close(r, &e_));

    /* a run without metrics has none; a file without runs, no ids */
    path_of(path, sizeof path, "read_only_empty.h5");
    CHECK(akt_results_open(&r, path, &e_));
    CHECK(akt_results_close(r, &e_));
    CHECK(akt_results_open_read(&r, path, &e_));
    CHECK(akt_results_run_ids(r, &ids, &n, &e_));
    assert_int_equal(n, 0);
    akt_results_free_names(ids, n);
    CHECK(akt_results_close(r, &e_));

    /* errors: missing (and not created), not HDF5, HDF5 but not ours, a folder */
    path_of(path, sizeof path, "read_only_missing.h5");
    r = (void *)1;
    expect_error(akt_results_open_read(&r, path, &e), AKT_EIO, &e, path, "No such file");
    assert_null(r);
    assert_int_equal(access(path, F_OK), -1);
    path_of(path, sizeof path, "read_only_text.h5");
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("id,top1\n", fp);
    fclose(fp);
    expect_error(akt_results_open_read(&r, path, &e), AKT_EFORMAT, &e, path, "not an HDF5 file");
    path_of(path, sizeof path, "read_only_other.h5");
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    H5Fclose(f);
    expect_error(akt_results_open_read(&r, path, &e), AKT_EFORMAT, &e, path, "akt_schema_version");
    expect_error(akt_results_open_read(&r, tmpdir, &e), AKT_EIO, &e, tmpdir, "directory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_typed),
        cmocka_unit_test(test_truncate),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_crash_safety),
        cmocka_unit_test(test_atomic_edit),
        cmocka_unit_test(test_tools_read_the_file),
        cmocka_unit_test(test_read_only),
    };
    return cmocka_run_group_tests_name("unit_results", tests, setup, teardown);
}
