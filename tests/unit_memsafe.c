/* Memory safety on crafted inputs and user-chosen sizes: the HDF5 attribute
 * readers refuse a wrong dataspace, type or string length before reading
 * (and never write past the caller's buffer); no HDF5 id stays open after
 * a crafted teacher or results file is refused; the memory limit
 * (AKT_MEM_LIMIT) and the arena's checked allocation path. */
#include <ftw.h>
#include <hdf5.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "akt/eval.h"
#include "akt/nn.h"
#include "akt/results.h"
#include "../core/io/h5attr.h"

static char tmpdir[256];

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmpdir, name);
}

static int setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/akt_unit_memsafe_XXXXXX", t && *t ? t : "/tmp");
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
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

/* Every id a caller can leak: files, groups, datasets, attributes,
 * dataspaces, datatypes (predefined types count too: compare to a
 * baseline). */
static long open_ids(void)
{
    static const H5I_type_t types[] = {H5I_FILE,  H5I_GROUP,     H5I_DATASET,
                                       H5I_ATTR,  H5I_DATASPACE, H5I_DATATYPE};
    long total = 0;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        hsize_t n = 0;
        if (H5Inmembers(types[i], &n) >= 0) /* fails for a type not used yet: none */
            total += (long)n;
    }
    return total;
}

/* The error must carry code and mention each string. */
static void expect_error(int rc, const struct akt_error *e, int code, ...)
{
    char msg[1100];
    snprintf(msg, sizeof msg, "%s: %s", e->where, e->what);
    if (rc != code)
        fail_msg("rc %d, want %d: %s", rc, code, msg);
    va_list ap;
    va_start(ap, code);
    for (const char *s = va_arg(ap, const char *); s; s = va_arg(ap, const char *))
        if (!strstr(msg, s))
            fail_msg("error '%s' does not mention '%s'", msg, s);
    va_end(ap);
}

/* Attribute name of obj: n values of mtype from data (n == 0: a scalar,
 * n < 0: a null dataspace). */
static void put_attr(hid_t obj, const char *name, hid_t ftype, hid_t mtype, int n,
                     const void *data)
{
    if (H5Aexists(obj, name) > 0)
        assert_true(H5Adelete(obj, name) >= 0);
    hsize_t d = (hsize_t)(n > 0 ? n : 1);
    hid_t sp = n == 0 ? H5Screate(H5S_SCALAR) : n < 0 ? H5Screate(H5S_NULL)
                                                     : H5Screate_simple(1, &d, NULL);
    hid_t a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(a >= 0);
    if (n >= 0)
        assert_true(H5Awrite(a, mtype, data) >= 0);
    H5Aclose(a);
    H5Sclose(sp);
}

static hid_t str_type(size_t size, H5T_cset_t cset, H5T_str_t pad)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, size);
    H5Tset_cset(t, cset);
    if (size != H5T_VARIABLE)
        H5Tset_strpad(t, pad);
    return t;
}

static void put_vlen(hid_t obj, const char *name, int n, const char **v)
{
    hid_t t = str_type(H5T_VARIABLE, H5T_CSET_UTF8, H5T_STR_NULLTERM);
    put_attr(obj, name, t, t, n, v);
    H5Tclose(t);
}

/* ---- the readers ------------------------------------------------------- */

static void test_read_num(void **state)
{
    (void)state;
    char path[400];
    path_of(path, sizeof path, "num.h5");
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    int64_t i1 = 7, i2[2] = {10, 10};
    double d1 = 2.5;
    float f3[3] = {1, 2, 3};
    put_attr(f, "i", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, &i1);
    put_attr(f, "i_one", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, &i1);
    put_attr(f, "i_two", H5T_STD_I64LE, H5T_NATIVE_INT64, 2, i2);
    put_attr(f, "d", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, &d1);
    put_attr(f, "f3", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, f3);
    put_attr(f, "empty", H5T_STD_I64LE, H5T_NATIVE_INT64, -1, NULL);
    put_vlen(f, "s", 0, (const char *[]){"ten"});
    hid_t ct = H5Tcreate(H5T_COMPOUND, 8);
    H5Tinsert(ct, "a", 0, H5T_NATIVE_INT64);
    put_attr(f, "cmp", ct, ct, 0, &i1);
    H5Tclose(ct);
    long base = open_ids();

    struct akt_error e = {0};
    int64_t v = 0;
    assert_int_equal(akt__h5_read_num(f, "num.h5", "i", H5T_NATIVE_INT64, 1, &v, 1, &e), 0);
    assert_int_equal(v, 7);
    v = 0;
    assert_int_equal(akt__h5_read_num(f, "num.h5", "i_one", H5T_NATIVE_INT64, 1, &v, 1, &e), 0);
    assert_int_equal(v, 7);
    /* two values for room for one: refused, the word after it untouched */
    struct { int64_t v, canary; } box = {0, 0x5a5a};
    int rc = akt__h5_read_num(f, "num.h5", "i_two", H5T_NATIVE_INT64, 1, &box.v, 1, &e);
    expect_error(rc, &e, AKT_ESHAPE, "num.h5", "attribute 'i_two'", "[2] array",
                 "expected a scalar integer", NULL);
    assert_int_equal(box.canary, 0x5a5a);
    rc = akt__h5_read_num(f, "num.h5", "d", H5T_NATIVE_INT64, 1, &v, 1, &e);
    expect_error(rc, &e, AKT_EFORMAT, "attribute 'd'", "scalar 64-bit float",
                 "expected a scalar integer", NULL);
    double dv = 0;
    assert_int_equal(akt__h5_read_num(f, "num.h5", "d", H5T_NATIVE_DOUBLE, 0, &dv, 1, &e), 0);
    assert_true(dv == 2.5);
    float fv[3] = {0};
    assert_int_equal(akt__h5_read_num(f, "num.h5", "f3", H5T_NATIVE_FLOAT, 0, fv, 3, &e), 0);
    assert_true(fv[2] == 3);
    rc = akt__h5_read_num(f, "num.h5", "f3", H5T_NATIVE_FLOAT, 0, fv, 1, &e);
    expect_error(rc, &e, AKT_ESHAPE, "[3] array of 32-bit floats", "expected a scalar number", NULL);
    rc = akt__h5_read_num(f, "num.h5", "empty", H5T_NATIVE_INT64, 1, &v, 1, &e);
    expect_error(rc, &e, AKT_ESHAPE, "attribute 'empty'", "null dataspace", NULL);
    rc = akt__h5_read_num(f, "num.h5", "s", H5T_NATIVE_INT64, 1, &v, 1, &e);
    expect_error(rc, &e, AKT_EFORMAT, "attribute 's'", "variable-length string", NULL);
    rc = akt__h5_read_num(f, "num.h5", "cmp", H5T_NATIVE_DOUBLE, 0, &dv, 1, &e);
    expect_error(rc, &e, AKT_EFORMAT, "attribute 'cmp'", "compound", NULL);
    rc = akt__h5_read_num(f, "num.h5", "nope", H5T_NATIVE_DOUBLE, 0, &dv, 1, &e);
    expect_error(rc, &e, AKT_EFORMAT, "no attribute 'nope'", NULL);
    /* the quiet wrapper */
    dv = -1;
    assert_int_equal(akt__h5_attr_f64(f, "i_two", &dv), -1);
    assert_true(dv == -1);
    assert_int_equal(akt__h5_attr_f64(f, "i", &dv), 0);
    assert_true(dv == 7);
    assert_int_equal(open_ids(), base);
    H5Fclose(f);
}

static void test_read_str(void **state)
{
    (void)state;
    char path[400];
    path_of(path, sizeof path, "str.h5");
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    put_vlen(f, "utf8", 0, (const char *[]){"pad"});
    put_vlen(f, "two", 2, (const char *[]){"pad", "pad"});
    char long_s[1001];
    memset(long_s, 'x', 1000);
    long_s[1000] = 0;
    put_vlen(f, "long", 0, (const char *[]){long_s});
    hid_t t = str_type(H5T_VARIABLE, H5T_CSET_ASCII, H5T_STR_NULLTERM);
    put_attr(f, "ascii", t, t, 0, (const char *[]){"conv1x1"});
    H5Tclose(t);
    t = str_type(8, H5T_CSET_ASCII, H5T_STR_NULLPAD);
    put_attr(f, "fixed", t, t, 0, "resnet20");
    H5Tclose(t);
    t = str_type(9, H5T_CSET_ASCII, H5T_STR_NULLTERM);
    put_attr(f, "fixed_nt", t, t, 0, "resnet20");
    H5Tclose(t);
    t = str_type(1000, H5T_CSET_ASCII, H5T_STR_NULLPAD);
    put_attr(f, "fixed_long", t, t, 0, long_s);
    H5Tclose(t);
    int64_t i = 3;
    put_attr(f, "int", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, &i);
    long base = open_ids();

    struct akt_error e = {0};
    char *s = NULL;
    assert_int_equal(akt__h5_read_str(f, "str.h5", "utf8", 63, &s, &e), 0);
    assert_string_equal(s, "pad");
    free(s);
    assert_int_equal(akt__h5_read_str(f, "str.h5", "ascii", 63, &s, &e), 0);
    assert_string_equal(s, "conv1x1");
    free(s);
    assert_int_equal(akt__h5_read_str(f, "str.h5", "fixed", 63, &s, &e), 0);
    assert_string_equal(s, "resnet20");
    free(s);
    assert_int_equal(akt__h5_read_str(f, "str.h5", "fixed", 8, &s, &e), 0);
    free(s);
    assert_int_equal(akt__h5_read_str(f, "str.h5", "fixed_nt", 8, &s, &e), 0);
    assert_string_equal(s, "resnet20");
    free(s);
    int rc = akt__h5_read_str(f, "str.h5", "fixed", 7, &s, &e);
    expect_error(rc, &e, AKT_EFORMAT, "attribute 'fixed'", "8-byte fixed-length string",
                 "longer than the 7 bytes allowed", NULL);
    assert_null(s);
    rc = akt__h5_read_str(f, "str.h5", "fixed_long", 63, &s, &e);
    expect_error(rc, &e, AKT_EFORMAT, "1000-byte fixed-length string", "63 bytes", NULL);
    rc = akt__h5_read_str(f, "str.h5", "long", 63, &s, &e);
    expect_error(rc, &e, AKT_EFORMAT, "str.h5", "attribute 'long'", "1000-byte string",
                 "longer than the 63 bytes allowed", NULL);
    assert_null(s);
    rc = akt__h5_read_str(f, "str.h5", "two", 63, &s, &e);
    expect_error(rc, &e, AKT_EFORMAT, "attribute 'two'", "[2] array of variable-length strings",
                 "expected a scalar string", NULL);
    rc = akt__h5_read_str(f, "str.h5", "int", 63, &s, &e);
    expect_error(rc, &e, AKT_EFORMAT, "scalar 64-bit signed integer", "expected a scalar string",
                 NULL);
    assert_null(akt__h5_attr_str(f, "two"));
    assert_null(akt__h5_attr_str(f, "nope"));
    s = akt__h5_attr_str(f, "long"); /* the quiet wrapper allows long text */
    assert_non_null(s);
    assert_int_equal(strlen(s), 1000);
    free(s);
    assert_int_equal(open_ids(), base);
    H5Fclose(f);
}

/* ---- no id left open after a refusal ------------------------------------ */

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = a ? fopen(to, "wb") : NULL;
    char buf[1 << 16];
    size_t n;
    int rc = a && b ? 0 : -1;
    while (!rc && (n = fread(buf, 1, sizeof buf, a)) > 0)
        rc = fwrite(buf, 1, n, b) == n ? 0 : -1;
    if (a)
        fclose(a);
    if (b && fclose(b))
        rc = -1;
    return rc;
}

static void flip_byte(const char *path, long off)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, off, SEEK_SET), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, off, SEEK_SET), 0);
    assert_true(fputc(c ^ 0xff, f) != EOF);
    assert_int_equal(fclose(f), 0);
}

enum craft { C_NUM_CLASSES, C_SHORTCUT, C_ARCH_LONG, C_ARCH_ARRAY, C_BN_EPS, C_INPUT_STD,
             C_DATASET_INT, C_FLIP8, C_FLIP64, N_CRAFT };

static void test_teacher_refusals_close_everything(void **state)
{
    (void)state;
    const char *data = getenv("AKT_DATA");
    if (!data || !*data)
        skip();
    char teacher[600], path[400];
    snprintf(teacher, sizeof teacher, "%s/teachers/resnet20_cifar10_akamaster_optA.h5", data);
    static const char *const what[N_CRAFT] = {
        "attribute 'num_classes'", "attribute 'shortcut'", "attribute 'arch'",
        "attribute 'arch'", "attribute 'bn_eps'", "attribute 'input_std'",
        "conv1.weight", "t.h5", "t.h5"};
    long base = open_ids();
    for (int k = 0; k < N_CRAFT; k++) {
        path_of(path, sizeof path, "t.h5");
        assert_int_equal(copy_file(teacher, path), 0);
        if (k == C_FLIP8 || k == C_FLIP64) {
            flip_byte(path, k == C_FLIP8 ? 8 : 64);
        } else {
            hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
            assert_true(f >= 0);
            int64_t two[2] = {10, 10};
            double eps[2] = {1e-5, 1e-5};
            char long_s[200];
            memset(long_s, 'r', sizeof long_s - 1);
            long_s[sizeof long_s - 1] = 0;
            switch (k) {
            case C_NUM_CLASSES:
                put_attr(f, "num_classes", H5T_STD_I64LE, H5T_NATIVE_INT64, 2, two);
                break;
            case C_SHORTCUT:
                put_attr(f, "shortcut", H5T_STD_I64LE, H5T_NATIVE_INT64, 0, two);
                break;
            case C_ARCH_LONG: put_vlen(f, "arch", 0, (const char *[]){long_s}); break;
            case C_ARCH_ARRAY: put_vlen(f, "arch", 2, (const char *[]){"resnet20", "x"}); break;
            case C_BN_EPS: put_vlen(f, "bn_eps", 0, (const char *[]){"tiny"}); break;
            case C_INPUT_STD:
                put_attr(f, "input_std", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, eps);
                break;
            case C_DATASET_INT: {
                assert_true(H5Ldelete(f, "conv1.weight", H5P_DEFAULT) >= 0);
                hsize_t d[4] = {16, 3, 3, 3};
                hid_t sp = H5Screate_simple(4, d, NULL);
                hid_t ds = H5Dcreate2(f, "conv1.weight", H5T_STD_I32LE, sp, H5P_DEFAULT,
                                      H5P_DEFAULT, H5P_DEFAULT);
                assert_true(ds >= 0);
                H5Dclose(ds);
                H5Sclose(sp);
                break;
            }
            }
            assert_true(H5Fclose(f) >= 0);
        }
        struct akt_resnet m;
        struct akt_error e = {0};
        int rc = akt_resnet_load(&m, path, &e);
        assert_true(rc < 0);
        expect_error(rc, &e, rc, path, what[k], NULL);
        if (open_ids() != base)
            fail_msg("case %d (%s: %s): %ld HDF5 ids left open", k, e.where, e.what,
                     open_ids() - base);
    }
}

static void test_results_refusals_close_everything(void **state)
{
    (void)state;
    char good[400], path[400], out[400];
    path_of(good, sizeof good, "good.h5");
    path_of(out, sizeof out, "merged.h5");
    struct akt_results *r;
    struct akt_error e = {0};
    assert_int_equal(akt_results_open(&r, good, &e), 0);
    assert_int_equal(akt_results_run(r, "run", "id: run\n", &e), 0);
    double one = 1;
    assert_int_equal(akt_results_append(r, "run", "top1", 0, &one, 1, &e), 0);
    assert_int_equal(akt_results_set_attr(r, "run", "checkpoint_epoch", 1, &e), 0);
    assert_int_equal(akt_results_set_attr(r, "run", "checkpoint_slot", 1, &e), 0);
    assert_int_equal(akt_results_set_status(r, "run", "done", "", &e), 0);
    assert_int_equal(akt_results_close(r, &e), 0);

    static const struct {
        const char *obj, *name, *type; /* type: "f2" two doubles, "i" int, "s2" two strings */
        double v;
        const char *says;
    } cases[] = {
        {"/runs/run", "checkpoint_epoch", "f2", 1, "[2] array"},
        {"/runs/run", "checkpoint_epoch", "f", 1e300, "expected a whole number"},
        {"/runs/run", "checkpoint_slot", "f", 7, "expected a whole number in 0..1"},
        {"/runs/run", "status", "i", 3, "expected a scalar string"},
        {"/runs/run", "status", "s", 0, "expected running, done"},
        {"/runs/run", "config", "s2", 0, "[2] array"},
        {"/", "akt_schema_version", "s", 0, "expected a scalar integer"},
        {"/runs/run", "final_top1", "s", 0, "expected a scalar number"},
        {NULL, NULL, "flip", 8, "HDF5 file cannot be opened"},
    };
    long base = open_ids();
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        path_of(path, sizeof path, "crafted.h5");
        assert_int_equal(copy_file(good, path), 0);
        if (!strcmp(cases[k].type, "flip")) {
            flip_byte(path, (long)cases[k].v);
        } else {
            hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
            hid_t g = H5Gopen2(f, cases[k].obj, H5P_DEFAULT);
            assert_true(g >= 0);
            double v2[2] = {cases[k].v, cases[k].v};
            int64_t iv = (int64_t)cases[k].v;
            if (!strcmp(cases[k].type, "f2"))
                put_attr(g, cases[k].name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 2, v2);
            else if (!strcmp(cases[k].type, "f"))
                put_attr(g, cases[k].name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, 0, v2);
            else if (!strcmp(cases[k].type, "i"))
                put_attr(g, cases[k].name, H5T_STD_I64LE, H5T_NATIVE_INT64, 0, &iv);
            else if (!strcmp(cases[k].type, "s"))
                put_vlen(g, cases[k].name, 0, (const char *[]){"weird"});
            else
                put_vlen(g, cases[k].name, 2, (const char *[]){"a", "b"});
            H5Gclose(g);
            assert_true(H5Fclose(f) >= 0);
        }
        int rc = akt_results_open(&r, path, &e);
        expect_error(rc, &e, rc, path, cases[k].says, NULL);
        assert_true(rc < 0);
        if (open_ids() != base)
            fail_msg("open, case %zu (%s): %ld HDF5 ids left open", k, e.what, open_ids() - base);
        const char *in[1] = {path};
        rc = akt_results_merge(out, in, 1, &e);
        expect_error(rc, &e, rc, path, cases[k].says, NULL);
        assert_true(rc < 0);
        assert_int_equal(access(out, F_OK), -1); /* nothing written */
        if (open_ids() != base)
            fail_msg("merge, case %zu (%s): %ld HDF5 ids left open", k, e.what,
                     open_ids() - base);
    }
}

/* ---- the memory limit and the arena's checked path ---------------------- */

static void test_mem_limit(void **state)
{
    (void)state;
    const char *saved = getenv("AKT_MEM_LIMIT");
    char keep[64] = "";
    if (saved)
        snprintf(keep, sizeof keep, "%s", saved);
    uint64_t lim = 0;
    struct akt_error e = {0};
    unsetenv("AKT_MEM_LIMIT");
    assert_int_equal(akt_mem_limit(&lim, &e), 0);
    assert_true(lim > ((uint64_t)64 << 20)); /* the machine's memory */
    setenv("AKT_MEM_LIMIT", "512M", 1);
    assert_int_equal(akt_mem_limit(&lim, &e), 0);
    assert_true(lim == (uint64_t)512 << 20);
    setenv("AKT_MEM_LIMIT", "1.5G", 1);
    assert_int_equal(akt_mem_limit(&lim, &e), 0);
    assert_true(lim == (uint64_t)3 << 29);
    setenv("AKT_MEM_LIMIT", "4096", 1);
    assert_int_equal(akt_mem_limit(&lim, &e), 0);
    assert_true(lim == 4096);
    static const char *const bad[] = {"lots", "0", "-1G", "12Q", "G", "1e400"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv("AKT_MEM_LIMIT", bad[i], 1);
        expect_error(akt_mem_limit(&lim, &e), &e, AKT_EINVAL, "AKT_MEM_LIMIT", bad[i], NULL);
    }

    setenv("AKT_MEM_LIMIT", "1G", 1);
    assert_int_equal(akt_mem_check("batch", 1000, 1 << 20, 0, "a step", &e), 0);
    assert_int_equal(akt_mem_check("batch", 1024, 1 << 20, 0, "a step", &e), 0);
    int rc = akt_mem_check("batch", 1025, 1 << 20, 0, "a step", &e);
    expect_error(rc, &e, AKT_ENOMEM, "batch", "1025 needs about 1.0 GiB for a step",
                 "limit is 1.0 GiB (AKT_MEM_LIMIT)", "at most 1024", NULL);
    rc = akt_mem_check("generator.K", 30, 1 << 20, 1000.0 * (1 << 20), "slots", &e);
    expect_error(rc, &e, AKT_ENOMEM, "generator.K", "at most 24", NULL);
    rc = akt_mem_check("batch", 100000, 1e12, 0, "a step", &e); /* no overflow */
    expect_error(rc, &e, AKT_ENOMEM, "at most 0", NULL);
    if (keep[0])
        setenv("AKT_MEM_LIMIT", keep, 1);
    else
        unsetenv("AKT_MEM_LIMIT");
}

static void test_arena_reserve(void **state)
{
    (void)state;
    struct akt_arena a;
    struct akt_error e = {0};
    akt_arena_init(&a, 1 << 16);
    assert_int_equal(akt_arena_reserve(&a, 1 << 20, "batch", &e), 0);
    size_t peak = 0;
    for (int i = 0; i < 16; i++) {
        char *p = akt_arena_alloc(&a, 1 << 16);
        p[0] = p[(1 << 16) - 1] = 1;
        peak = a.peak;
    }
    assert_int_equal(peak, (size_t)1 << 20);
    /* beyond any allocation: an error, not an abort, and the arena still works */
    int rc = akt_arena_reserve(&a, SIZE_MAX / 2 + 1, "batch", &e);
    expect_error(rc, &e, AKT_ENOMEM, "batch", "out of memory", NULL);
    akt_arena_reset(&a);
    assert_non_null(akt_arena_alloc(&a, 64));
    akt_arena_free(&a);
}

/* A batch beyond the limit is refused by akt_evaluate before it allocates. */
static void test_evaluate_refuses_huge_batch(void **state)
{
    (void)state;
    struct akt_resnet m;
    akt_resnet_init(&m, 20, 10, AKT_SHORTCUT_PAD);
    /* ResNet-20: 188416 conv outputs and 10 logits per image */
    double per = akt_resnet_eval_bytes(&m);
    assert_true(per == 4.0 * (4 * 188426.0 + 2 * 3072));
    assert_true(akt_resnet_train_bytes(&m) == 4.0 * 8 * 188426.0);
    struct akt_dataset d = {.n = 100000, .num_classes = 10};
    setenv("AKT_MEM_LIMIT", "64M", 1);
    struct akt_eval_result r;
    struct akt_error e = {0};
    int rc = akt_evaluate(&m, NULL, &d, 100000, NULL, NULL, &r, &e);
    expect_error(rc, &e, AKT_ENOMEM, "--batch", "100000 needs about", "at most 22", NULL);
    unsetenv("AKT_MEM_LIMIT");
    akt_resnet_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_num),
        cmocka_unit_test(test_read_str),
        cmocka_unit_test(test_teacher_refusals_close_everything),
        cmocka_unit_test(test_results_refusals_close_everything),
        cmocka_unit_test(test_mem_limit),
        cmocka_unit_test(test_arena_reserve),
        cmocka_unit_test(test_evaluate_refuses_huge_batch),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
