/* Plugin loader: every refusal path (one test-only plugin per defect, see
 * plugins/testing/), folder and search-path loading, parameter validation,
 * and the template plugin (plugins/template/) loaded and run for real.
 * Env: AKT_PLUGIN_BUILD (the build tree's plugins/ folder), AKT_BIN (the akt
 * binary, for `akt plugins`). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "akt/akt.h"
#include "akt/registry.h"
#include "fake_host.h"
#include "gradcheck.h"

/* Path of a built plugin, e.g. plug("testing/test_abi.so"). */
static const char *plug(const char *rel)
{
    static char buf[8][1024];
    static int k;
    const char *root = getenv("AKT_PLUGIN_BUILD");
    if (!root || !*root)
        fail_msg("AKT_PLUGIN_BUILD is not set (run through meson test)");
    char *b = buf[k++ % 8];
    snprintf(b, sizeof buf[0], "%s/%s", root, rel);
    return b;
}

static const char *msg(const struct akt_error *e)
{
    static char buf[1200];
    return akt_error_format(e, buf, sizeof buf);
}

/* Asserts the message contains s, printing it as a TAP diagnostic if not. */
static void expect_in(const char *text, const char *s)
{
    if (!strstr(text, s)) {
        printf("# expected '%s' in: %s\n", s, text);
        fail();
    }
}

/* 1 while the library at path is mapped in this process. */
static int is_mapped(const char *path)
{
    void *h = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (h)
        dlclose(h);
    return h != NULL;
}

/* ------------------------------------------------------------ refusals -- */
struct refusal {
    const char *file; /* under AKT_PLUGIN_BUILD */
    const char *reason[2];
    int opens;        /* dlopen succeeds: the handle must be closed again */
};

static const struct refusal refusals[] = {
    {"testing/does_not_exist.so", {"cannot open plugin", "No such file"}, 0},
    {"testing/test_unresolved.so", {"not a loadable shared object", "akt_test_no_such_function"}, 0},
    {"testing/test_no_symbol.so", {"no symbol akt_plugin_get", NULL}, 1},
    {"testing/test_abi.so", {"plugin ABI 7, host ABI 2", NULL}, 1},
    /* a plugin binary built against ABI 1's header (plugins/testing/abi1.c) */
    {"testing/test_abi1.so", {"plugin ABI 1, host ABI 2", "rebuild the plugin"}, 1},
    {"testing/test_param_size.so", {"param_size 0 is smaller", "AKT_PLUGIN_HEADER"}, 1},
    {"testing/test_logit.so", {"logit_loss 5 is not AKT_LOGIT_KD", NULL}, 1},
    {"testing/test_string_default.so",
     {"bad parameter table", "'which': default 'all' is refused: nothing is accepted"}, 1},
    {"testing/test_size.so", {"descriptor size", "too small"}, 1},
    {"testing/test_kind.so", {"unknown kind 3", NULL}, 1},
    {"testing/test_no_name.so", {"loss without a name", NULL}, 1},
    {"testing/test_no_create.so", {"'test_broken' has no create", NULL}, 1},
    {"testing/test_no_destroy.so", {"'test_broken' has no destroy", NULL}, 1},
    {"testing/test_no_ops.so", {"has no ops.loss.compute", NULL}, 1},
    {"testing/test_gen_ops.so",
     {"generator 'test_broken' has ops.gen.update but no ops.gen.loss", NULL}, 1},
    {"testing/test_null_key.so", {"bad parameter table", "parameter 2: key is NULL"}, 1},
    {"testing/test_default_range.so",
     {"bad parameter table", "'tau': default 20 is outside its range [0, 10]"}, 1},
    {"testing/test_choice_default.so",
     {"bad parameter table", "'mode': default 3 is not an index into its 3 choices"}, 1},
    {"testing/test_dup_key.so", {"bad parameter table", "'lambda' is declared twice"}, 1},
    {"testing/test_too_many.so", {"n_params is 25, expected 0..24", NULL}, 1},
};

static void check_refused(struct akt_registry *r, const char *path, const char *const *reason,
                          int nreason)
{
    struct akt_error e = {0};
    int rc = akt_registry_load_file(r, path, &e);
    const char *m = msg(&e);
    printf("# refused: %s\n", m);
    assert_int_equal(rc, AKT_EPLUGIN);
    assert_int_equal(e.code, AKT_EPLUGIN);
    assert_string_equal(e.where, path); /* the file is named, as given */
    for (int i = 0; i < nreason; i++)
        if (reason[i])
            expect_in(m, reason[i]);
}

static void test_refusals(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof refusals / sizeof refusals[0]; i++) {
        const struct refusal *f = &refusals[i];
        struct akt_registry r;
        akt_registry_init(&r);
        const char *path = plug(f->file);
        check_refused(&r, path, f->reason, 2);
        /* nothing registered, no handle kept, the library unmapped again */
        assert_int_equal(r.n, 0);
        assert_int_equal(r.n_handles, 0);
        if (f->opens)
            assert_false(is_mapped(path));
        akt_registry_free(&r);
    }
}

/* A file that is not a shared object at all. */
static void test_refuse_junk(void **state)
{
    (void)state;
    char dir[] = "/tmp/akt_plugin_junk.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/junk.so", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("this is not an ELF file\n", f);
    fclose(f);
    struct akt_registry r;
    akt_registry_init(&r);
    const char *reason[] = {"not a loadable shared object", "junk.so"};
    check_refused(&r, path, reason, 2);
    /* a folder named like a plugin is refused as a file */
    const char *reason_dir[] = {"not a regular file"};
    check_refused(&r, dir, reason_dir, 1);
    /* the same failures through a folder name the folder's file */
    struct akt_error e = {0};
    assert_int_equal(akt_registry_load_dir(&r, dir, &e), AKT_EPLUGIN);
    expect_in(msg(&e), path);
    assert_int_equal(r.n, 0);
    akt_registry_free(&r);
    unlink(path);
    rmdir(dir);
}

static void test_duplicate_name(void **state)
{
    (void)state;
    struct akt_registry r;
    akt_registry_init(&r);
    struct akt_error e = {0};
    const char *a = plug("testing/test_dup_a.so"), *b = plug("testing/test_dup_b.so");
    assert_int_equal(akt_registry_load_file(&r, a, &e), 0);
    assert_int_equal(r.n, 1);
    /* the same file twice is one file, not a clash */
    assert_int_equal(akt_registry_load_file(&r, a, &e), 0);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.n_handles, 1);
    const char *reason[] = {"duplicate loss name 'test_dup'", a};
    check_refused(&r, b, reason, 2); /* both files named */
    assert_int_equal(r.n, 1);
    assert_int_equal(r.n_handles, 1);
    assert_false(is_mapped(b));
    assert_string_equal(r.entries[0].path, a);
    akt_registry_free(&r);
}

/* ------------------------------------------------- sound files, folders -- */
static void test_good_file(void **state)
{
    (void)state;
    struct akt_registry r;
    akt_registry_init(&r);
    struct akt_error e = {0};
    const char *path = plug("testing/test_good.so");
    assert_int_equal(akt_registry_load_file(&r, path, &e), 0);
    assert_int_equal(r.n, 2);
    assert_int_equal(r.n_handles, 1);
    const struct akt_plugin *g = akt_registry_find(&r, AKT_PLUGIN_GENERATOR, "test_same");
    const struct akt_plugin *l = akt_registry_find(&r, AKT_PLUGIN_LOSS, "test_same");
    assert_non_null(g);
    assert_non_null(l);
    assert_ptr_not_equal(g, l); /* names are per kind */
    assert_null(akt_registry_find(&r, AKT_PLUGIN_LOSS, "nope"));
    assert_string_equal(r.entries[0].path, path);
    /* the host's copy fills what the plugin left out */
    assert_int_equal(g->ops.gen.logit_loss, AKT_LOGIT_KD);
    assert_string_equal(l->summary, "");
    assert_true(fabsf(g->ops.gen.lr - 1e-3f) < 1e-9f);

    struct akt_param_values v;
    char buf[64];
    akt_params_defaults(g, &v);
    assert_int_equal(v.n, 2);
    assert_string_equal(akt_params_format(g, &v, 0, buf, sizeof buf), "3");
    assert_string_equal(akt_params_format(g, &v, 1, buf, sizeof buf), "0.5");
    /* an open range still refuses what is not finite */
    assert_int_equal(akt_params_set(g, &v, "noise", "1e300", "gen.noise", &e), 0);
    assert_int_equal(akt_params_set(g, &v, "noise", "inf", "gen.noise", &e), AKT_EINVAL);
    expect_in(msg(&e), "gen.noise: inf is not a finite number");
    assert_int_equal(akt_params_set(g, &v, "steps", "99999999999999999999", "gen.steps", &e),
                     AKT_EINVAL);
    expect_in(msg(&e), "out of range [1, 10]");
    /* a plugin without parameters says so */
    akt_params_defaults(l, &v);
    assert_int_equal(akt_params_set(l, &v, "x", "1", NULL, &e), AKT_EINVAL);
    expect_in(msg(&e), "loss.x: unknown parameter 'x': loss 'test_same' takes no parameters");
    akt_registry_free(&r);
    assert_int_equal(r.n, 0);
    assert_false(is_mapped(path));
}

static void test_failing_create(void **state)
{
    (void)state;
    struct akt_registry r;
    akt_registry_init(&r);
    struct akt_error e = {0};
    assert_int_equal(akt_registry_load_file(&r, plug("testing/test_failing_create.so"), &e), 0);
    const struct akt_plugin *p = akt_registry_find(&r, AKT_PLUGIN_LOSS, "test_failing_create");
    assert_non_null(p);
    struct akt_param_values v;
    akt_params_defaults(p, &v);
    struct akt_host h = {.abi = AKT_PLUGIN_ABI, .size = sizeof h};
    assert_null(p->create(&h, &v, &e));
    assert_int_equal(e.code, AKT_EINVAL);
    expect_in(msg(&e), "test_failing_create: refusing to start");
    akt_registry_free(&r);
}

/* Temporary folders of symlinks to built plugins. */
static void link_plugin(const char *dir, const char *name, const char *target)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(symlink(target, path), 0);
}

static void rm_tree(const char *dir, const char *const *names)
{
    char path[512];
    for (; *names; names++) {
        snprintf(path, sizeof path, "%s/%s", dir, *names);
        if (unlink(path))
            rmdir(path);
    }
    rmdir(dir);
}

static void test_load_dir_and_path(void **state)
{
    (void)state;
    char d1[] = "/tmp/akt_plugins1.XXXXXX", d2[] = "/tmp/akt_plugins2.XXXXXX";
    assert_non_null(mkdtemp(d1));
    assert_non_null(mkdtemp(d2));
    link_plugin(d1, "b.so", plug("template/template_mse.so"));
    link_plugin(d1, "a.so", plug("testing/test_good.so"));
    link_plugin(d1, "readme.txt", plug("testing/test_abi.so")); /* not *.so: ignored */
    char sub[512];
    snprintf(sub, sizeof sub, "%s/dir.so", d1);
    assert_int_equal(mkdir(sub, 0700), 0); /* a folder named *.so: ignored */
    /* d2 repeats b.so (another file): the earlier folder's b.so wins */
    link_plugin(d2, "b.so", plug("testing/test_dup_a.so"));
    link_plugin(d2, "c.so", plug("testing/test_failing_create.so"));

    struct akt_registry r;
    struct akt_error e = {0};
    akt_registry_init(&r);
    assert_int_equal(akt_registry_load_dir(&r, d1, &e), 0);
    assert_int_equal(r.n, 3); /* a.so (two descriptors), then b.so: name order */
    expect_in(r.entries[0].path, "/a.so");
    expect_in(r.entries[2].path, "/b.so");
    assert_non_null(akt_registry_find(&r, AKT_PLUGIN_LOSS, "template_mse"));
    akt_registry_free(&r);

    akt_registry_init(&r);
    assert_int_equal(akt_registry_load_dir(&r, "/nonexistent/akt", &e), AKT_EIO);
    expect_in(msg(&e), "/nonexistent/akt: cannot read plugin folder");
    akt_registry_free(&r);

    /* the built-in plugins alone */
    akt_registry_init(&r);
    assert_int_equal(akt_registry_load_default(&r, &e), 0);
    int builtin = r.n;
    assert_true(builtin >= 7); /* gdfq qimera adadfq, logit spatial channel akt */
    assert_non_null(akt_registry_find(&r, AKT_PLUGIN_LOSS, "akt"));
    akt_registry_free(&r);

    /* AKT_PLUGIN_PATH adds to the built-in folders (it does not replace them) */
    char path[1200];
    snprintf(path, sizeof path, "%s::%s", d1, d2);
    setenv("AKT_PLUGIN_PATH", path, 1);
    akt_registry_init(&r);
    assert_int_equal(akt_registry_load_default(&r, &e), 0);
    unsetenv("AKT_PLUGIN_PATH");
    assert_int_equal(r.n, 4 + builtin);
    assert_non_null(akt_registry_find(&r, AKT_PLUGIN_LOSS, "template_mse"));
    assert_null(akt_registry_find(&r, AKT_PLUGIN_LOSS, "test_dup")); /* shadowed */
    assert_non_null(akt_registry_find(&r, AKT_PLUGIN_LOSS, "test_failing_create"));
    assert_non_null(akt_registry_find(&r, AKT_PLUGIN_GENERATOR, "gdfq"));
    assert_non_null(akt_registry_find(&r, AKT_PLUGIN_LOSS, "akt"));
    akt_registry_free(&r);

    /* so do --plugin-dir folders, searched before AKT_PLUGIN_PATH: d2's b.so
     * now shadows d1's */
    setenv("AKT_PLUGIN_PATH", d1, 1);
    akt_registry_init(&r);
    const char *dirs[] = {d2};
    assert_int_equal(akt_registry_load_search_path(&r, dirs, 1, NULL, &e), 0);
    unsetenv("AKT_PLUGIN_PATH");
    assert_int_equal(r.n, 4 + builtin); /* d2: b c, d1: a (two descriptors) */
    assert_non_null(akt_registry_find(&r, AKT_PLUGIN_LOSS, "test_dup"));
    assert_null(akt_registry_find(&r, AKT_PLUGIN_LOSS, "template_mse"));
    assert_non_null(akt_registry_find(&r, AKT_PLUGIN_LOSS, "akt"));
    akt_registry_free(&r);

    /* a folder the user names must exist */
    setenv("AKT_PLUGIN_PATH", "/nonexistent/akt", 1);
    akt_registry_init(&r);
    assert_int_equal(akt_registry_load_default(&r, &e), AKT_EIO);
    unsetenv("AKT_PLUGIN_PATH");
    expect_in(msg(&e), "/nonexistent/akt: plugin folder (from AKT_PLUGIN_PATH) does not exist");
    assert_int_equal(r.n, 0);
    akt_registry_free(&r);

    /* one bad file in a folder fails the whole load, naming that file */
    link_plugin(d2, "d.so", plug("testing/test_abi.so"));
    akt_registry_init(&r);
    assert_int_equal(akt_registry_load_dir(&r, d2, &e), AKT_EPLUGIN);
    expect_in(msg(&e), "/d.so: descriptor 0 refused: plugin ABI 7, host ABI 2");
    akt_registry_free(&r);

    static const char *const names1[] = {"a.so", "b.so", "readme.txt", "dir.so", NULL};
    static const char *const names2[] = {"b.so", "c.so", "d.so", NULL};
    rm_tree(d1, names1);
    rm_tree(d2, names2);
}

/* ---------------------------------------------------------- parameters -- */
static const struct akt_plugin *load_template(struct akt_registry *r)
{
    struct akt_error e = {0};
    akt_registry_init(r);
    int rc = akt_registry_load_file(r, plug("template/template_mse.so"), &e);
    if (rc)
        printf("# %s\n", msg(&e));
    assert_int_equal(rc, 0);
    const struct akt_plugin *p = akt_registry_find(r, AKT_PLUGIN_LOSS, "template_mse");
    assert_non_null(p);
    return p;
}

/* Sets key=value expecting failure; the message must contain want and the
 * value must stay as it was. */
static void set_bad(const struct akt_plugin *p, struct akt_param_values *v, const char *key,
                    const char *value, const char *want)
{
    char where[128];
    snprintf(where, sizeof where, "--set loss.%s", key);
    struct akt_param_values before = *v;
    struct akt_error e = {0};
    assert_int_equal(akt_params_set(p, v, key, value, where, &e), AKT_EINVAL);
    assert_int_equal(e.code, AKT_EINVAL);
    expect_in(msg(&e), want);
    assert_memory_equal(&before, v, sizeof before);
}

static void test_template_params(void **state)
{
    (void)state;
    struct akt_registry r;
    const struct akt_plugin *p = load_template(&r);
    assert_int_equal(p->n_params, 4);
    struct akt_param_values v;
    char buf[64];
    akt_params_defaults(p, &v);
    int w = akt_params_find(p, "weight"), red = akt_params_find(p, "reduction"),
        probs = akt_params_find(p, "probs"), warm = akt_params_find(p, "warmup");
    assert_true(w >= 0 && red >= 0 && probs >= 0 && warm >= 0);
    assert_int_equal(akt_params_find(p, "nope"), -1);
    assert_string_equal(akt_params_format(p, &v, w, buf, sizeof buf), "1");
    assert_string_equal(akt_params_format(p, &v, red, buf, sizeof buf), "mean");
    assert_string_equal(akt_params_format(p, &v, probs, buf, sizeof buf), "false");
    assert_string_equal(akt_params_format(p, &v, warm, buf, sizeof buf), "0");

    /* good values, read back as a user would write them */
    struct akt_error e = {0};
    static const struct { const char *key, *value, *shown; double v; } good[] = {
        {"weight", "2.5", "2.5", 2.5},   {"weight", "1e3", "1000", 1000},
        {"weight", "0", "0", 0},         {"weight", "0.1", "0.1", 0.1},
        {"reduction", "batchmean", "batchmean", 2}, {"reduction", "sum", "sum", 1},
        {"probs", "yes", "true", 1},     {"probs", "0", "false", 0},
        {"probs", "TRUE", "true", 1},    {"probs", "no", "false", 0},
        {"warmup", "3", "3", 3},         {"warmup", "+10000", "10000", 10000},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int k = akt_params_find(p, good[i].key);
        if (akt_params_set(p, &v, good[i].key, good[i].value, "--set", &e))
            printf("# %s\n", msg(&e));
        assert_true(v.v[k] == good[i].v);
        assert_string_equal(akt_params_format(p, &v, k, buf, sizeof buf), good[i].shown);
    }

    /* unknown key: the valid ones are listed */
    set_bad(p, &v, "wieght", "1",
            "--set loss.wieght: unknown parameter 'wieght' of loss 'template_mse' "
            "(valid: weight, reduction, probs, warmup)");
    /* wrong type */
    set_bad(p, &v, "weight", "heavy", "--set loss.weight: expects a number in [0, 1000], got 'heavy'");
    set_bad(p, &v, "weight", "1.5x", "expects a number in [0, 1000], got '1.5x'");
    set_bad(p, &v, "weight", "", "expects a number in [0, 1000], got ''");
    set_bad(p, &v, "weight", " 1", "expects a number");
    set_bad(p, &v, "weight", "nan", "nan is not a finite number");
    set_bad(p, &v, "warmup", "1.5", "--set loss.warmup: expects an integer in [0, 10000], got '1.5'");
    set_bad(p, &v, "warmup", "1e3", "expects an integer");
    set_bad(p, &v, "probs", "maybe", "--set loss.probs: expects true or false, got 'maybe'");
    set_bad(p, &v, "probs", "2", "expects true or false");
    /* out of range */
    set_bad(p, &v, "weight", "5e9", "--set loss.weight: 5e9 is out of range [0, 1000]");
    set_bad(p, &v, "weight", "-0.5", "-0.5 is out of range [0, 1000]");
    set_bad(p, &v, "warmup", "-1", "--set loss.warmup: -1 is out of range [0, 10000]");
    /* bad choice: the choices are listed */
    set_bad(p, &v, "reduction", "median",
            "--set loss.reduction: 'median' is not one of: mean, sum, batchmean");
    set_bad(p, &v, "reduction", "2", "is not one of"); /* by name, not index */
    akt_registry_free(&r);
}

/* ------------------------------------------------- the template, running -- */
static struct fake_host g_host; /* the shared fake host (fake_host.h) */

static struct akt_host fake_host(void)
{
    struct akt_host h = fake_host_make(&g_host, 0, 3, 2, 4, NULL);
    return h;
}

/* Runs compute on student logits s and teacher logits t ([2,3]). */
static struct akt_tensor *run_loss(const struct akt_plugin *p, void *self,
                                   const struct akt_host *h, struct akt_tape *t,
                                   struct akt_tensor *zs, struct akt_tensor *zt,
                                   struct akt_error *e)
{
    struct akt_resnet_out so = {.logits = zs}, to = {.logits = zt};
    int labels[2] = {0, 2};
    struct akt_loss_input in = {.size = sizeof in, .teacher = &to, .student = &so,
                                .labels = labels, .generator_logit_loss = AKT_LOGIT_KD};
    return p->ops.loss.compute(self, h, t, &in, e);
}

static void *create_with(const struct akt_plugin *p, const struct akt_host *h, const char *weight,
                         const char *reduction, const char *warmup)
{
    struct akt_param_values v;
    struct akt_error e = {0};
    akt_params_defaults(p, &v);
    assert_int_equal(akt_params_set(p, &v, "weight", weight, "weight", &e), 0);
    assert_int_equal(akt_params_set(p, &v, "reduction", reduction, "reduction", &e), 0);
    assert_int_equal(akt_params_set(p, &v, "warmup", warmup, "warmup", &e), 0);
    void *self = p->create(h, &v, &e);
    if (!self)
        printf("# %s\n", msg(&e));
    assert_non_null(self);
    return self;
}

static void test_template_compute(void **state)
{
    (void)state;
    struct akt_registry r;
    const struct akt_plugin *p = load_template(&r);
    struct akt_host h = fake_host();
    static const float s[6] = {1.0f, -2.0f, 0.5f, 3.0f, 0.0f, -1.0f};
    static const float te[6] = {0.0f, -1.0f, 1.5f, 1.0f, 0.5f, -1.0f};
    double sq = 0; /* sum of squared differences: 1 + 1 + 1 + 4 + 0.25 + 0 */
    for (int i = 0; i < 6; i++)
        sq += (double)(s[i] - te[i]) * (s[i] - te[i]);
    assert_true(fabs(sq - 7.25) < 1e-12);

    /* weight 2, epoch 0: mean, sum and batchmean by hand; warmup 3 at epoch 0
     * ramps the weight to 2 * 1/4 */
    static const struct { const char *red, *warmup; double want; double dscale; } cases[] = {
        {"mean", "0", 2 * 7.25 / 6, 2.0 * 2 / 6},
        {"sum", "0", 2 * 7.25, 2.0 * 2},
        {"batchmean", "0", 2 * 7.25 / 2, 2.0 * 2 / 2},
        {"mean", "3", 0.5 * 7.25 / 6, 0.5 * 2 / 6},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        void *self = create_with(p, &h, "2", cases[c].red, cases[c].warmup);
        struct akt_tape t;
        akt_tape_init(&t, 1 << 16);
        int shape[2] = {2, 3};
        struct akt_tensor *zs = akt_tensor_new(&t, 2, shape, 1);
        memcpy(zs->data, s, sizeof s);
        struct akt_tensor *zt = akt_tensor_from(&t, te, 2, shape); /* no grad, as the host's */
        struct akt_error e = {0};
        g_host.calls = 0;
        struct akt_tensor *loss = run_loss(p, self, &h, &t, zs, zt, &e);
        assert_non_null(loss);
        assert_int_equal(loss->n, 1);
        assert_true(fabs(loss->data[0] - cases[c].want) < 1e-5 * fmax(1, cases[c].want));
        assert_int_equal(g_host.calls, 1);
        assert_int_equal(g_host.n, 1);
        assert_string_equal(g_host.name[0], "loss.mse");
        /* the host calls backward; the gradient reaches the student:
         * d/ds = weight' * 2 (s - t) / divisor */
        akt_backward(&t, loss);
        for (int i = 0; i < 6; i++)
            assert_true(fabs(zs->grad[i] - cases[c].dscale * (s[i] - te[i])) < 1e-5);
        akt_tape_free(&t);
        p->destroy(self);
    }

    /* mismatched logits: NULL with the shapes named */
    void *self = create_with(p, &h, "1", "mean", "0");
    struct akt_tape t;
    akt_tape_init(&t, 1 << 16);
    struct akt_tensor *a = akt_tensor_newv(&t, 1, 2, 2, 3), *b = akt_tensor_newv(&t, 0, 2, 2, 4);
    struct akt_error e = {0};
    assert_null(run_loss(p, self, &h, &t, a, b, &e));
    assert_int_equal(e.code, AKT_ESHAPE);
    expect_in(msg(&e), "[2,3] and teacher logits [2,4]");
    akt_tape_free(&t);
    p->destroy(self);
    akt_registry_free(&r);
}

/* Finite differences through the plugin: its tape ops carry the gradient. */
struct gc_ctx {
    const struct akt_plugin *p;
    void *self;
    struct akt_host h;
};

static struct akt_tensor *f_template(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    struct gc_ctx *c = u;
    struct akt_error e = {0};
    struct akt_tensor *l = run_loss(c->p, c->self, &c->h, t, in[0], in[1], &e);
    AKT_ASSERT(l);
    return l;
}

static void test_template_gradcheck(void **state)
{
    (void)state;
    struct akt_registry r;
    const struct akt_plugin *p = load_template(&r);
    static const char *const reds[] = {"mean", "sum", "batchmean"};
    for (int probs = 0; probs < 2; probs++)
        for (int k = 0; k < 3; k++) {
            struct gc_ctx c = {.p = p, .h = fake_host()};
            struct akt_param_values v;
            struct akt_error e = {0};
            akt_params_defaults(p, &v);
            assert_int_equal(akt_params_set(p, &v, "weight", "1.5", NULL, &e), 0);
            assert_int_equal(akt_params_set(p, &v, "reduction", reds[k], NULL, &e), 0);
            assert_int_equal(akt_params_set(p, &v, "probs", probs ? "true" : "false", NULL, &e), 0);
            c.self = p->create(&c.h, &v, &e);
            assert_non_null(c.self);
            struct gc_input in[2] = {{.ndim = 2, .shape = {4, 5}, .grad = 1, .lo = -2, .hi = 2},
                                     {.ndim = 2, .shape = {4, 5}, .grad = 0, .lo = -2, .hi = 2}};
            assert_int_equal(gradcheck(reds[k], f_template, &c, 2, in, 40u + (unsigned)k, 1e-2f,
                                       2e-3), 0);
            p->destroy(c.self);
        }
    akt_registry_free(&r);
}

/* ------------------------------------------------------- akt plugins CLI -- */
static int run_cmd(const char *cmd, char *out, size_t n)
{
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t used = fread(out, 1, n - 1, f);
    out[used] = 0;
    int st = pclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void **state)
{
    (void)state;
    const char *bin = getenv("AKT_BIN");
    if (!bin || access(bin, X_OK)) {
        printf("# AKT_BIN not executable, skipping\n");
        skip();
    }
    char dir[] = "/tmp/akt_plugins_cli.XXXXXX";
    assert_non_null(mkdtemp(dir));
    link_plugin(dir, "template_mse.so", plug("template/template_mse.so"));
    link_plugin(dir, "test_good.so", plug("testing/test_good.so"));
    static char out[1 << 16];
    char cmd[1400];

    snprintf(cmd, sizeof cmd, "'%s' plugins --plugin-dir '%s' 2>&1", bin, dir);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    static const char *const want[] = {
        "template_mse", "weighted mean squared error", "/template_mse.so", "weight", "float",
        "[0, 1000]", "mean|sum|batchmean", "factor the loss is multiplied by", "warmup",
        "generator", "test_same", "steps", "[1, 10]", "noise",
        /* the built-in plugins stay: --plugin-dir adds a folder */
        "gdfq", "akt_losses.so",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        expect_in(out, want[i]);
    /* generators come first */
    assert_true(strstr(out, "test_same") < strstr(out, "template_mse"));

    snprintf(cmd, sizeof cmd, "'%s' plugins --help 2>&1", bin);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    expect_in(out, "usage: akt plugins");

    snprintf(cmd, sizeof cmd, "'%s' plugins --plugin-dir /nonexistent/akt 2>&1", bin);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 1);
    expect_in(out, "akt: error: /nonexistent/akt: plugin folder (from --plugin-dir) does not "
                   "exist");

    snprintf(cmd, sizeof cmd, "'%s' plugins --plugin-dir '%s' 2>&1", bin,
             plug("testing"));
    assert_int_equal(run_cmd(cmd, out, sizeof out), 1);
    expect_in(out, "akt: error:");
    expect_in(out, "refused");

    snprintf(cmd, sizeof cmd, "'%s' plugins --bogus 2>&1", bin);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "'%s' plugins --plugin-dir 2>&1", bin);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 2);
    snprintf(cmd, sizeof cmd, "'%s' plugins extra 2>&1", bin);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 2);

    static const char *const names[] = {"template_mse.so", "test_good.so", NULL};
    rm_tree(dir, names);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_refuse_junk),
        cmocka_unit_test(test_duplicate_name),
        cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_failing_create),
        cmocka_unit_test(test_load_dir_and_path),
        cmocka_unit_test(test_template_params),
        cmocka_unit_test(test_template_compute),
        cmocka_unit_test(test_template_gradcheck),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
