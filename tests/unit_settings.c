/* Unit tests: the one parameter system (core/config/params.c, the run
 * settings table of core/run/config.c). The table is sound and its
 * defaults are SPEC's to the bit; booleans read the same for run settings
 * and plugin parameters; a bad value names its source, key, value and
 * range, from --set and from a YAML file; float settings are stored as the
 * shortest decimal that reads back as the same float (1e-4 stays 1e-4) and
 * configs stored the old way still compare equal; `akt run --set`
 * (akt_experiment_load_set) reaches every cell. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "akt/akt.h"
#include "akt/experiment.h"

static struct akt_registry g_reg;
static char g_tmp[256];
static const char *g_data;

static int setup(void **state)
{
    (void)state;
    const char *plug = getenv("AKT_PLUGIN_BUILD");
    g_data = getenv("AKT_DATA");
    if (!plug || !g_data) {
        fprintf(stderr, "AKT_PLUGIN_BUILD and AKT_DATA must be set\n");
        return -1;
    }
    akt_registry_init(&g_reg);
    struct akt_error e = {0};
    char dir[1024];
    static const char *const dirs[] = {"generators", "losses", "synq"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(dir, sizeof dir, "%s/%s", plug, dirs[i]);
        if (akt_registry_load_dir(&g_reg, dir, &e)) {
            fprintf(stderr, "%s: %s\n", e.where, e.what);
            return -1;
        }
    }
    snprintf(g_tmp, sizeof g_tmp, "%s/akt_settings.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(g_tmp) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    akt_registry_free(&g_reg);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

static void expect_in(const char *hay, const char *needle)
{
    if (!strstr(hay, needle)) {
        print_error("'%s' not in '%s'\n", needle, hay);
        fail();
    }
}

static const char *msg(const struct akt_error *e)
{
    static char buf[1200];
    return akt_error_format(e, buf, sizeof buf);
}

/* A config with both plugins set (qimera has a bool, synq too). */
static void config_with(struct akt_run_config *c, const char *gen, const char *loss)
{
    struct akt_error e = {0};
    akt_run_config_defaults(c);
    assert_int_equal(akt_run_config_set(c, &g_reg, "generator", gen, "--set", &e), 0);
    assert_int_equal(akt_run_config_set(c, &g_reg, "loss", loss, "--set", &e), 0);
}

static char *config_yaml(const struct akt_run_config *c)
{
    char *y = akt_run_config_yaml(c, akt_registry_find(&g_reg, AKT_PLUGIN_GENERATOR, c->generator),
                                  akt_registry_find(&g_reg, AKT_PLUGIN_LOSS, c->loss));
    assert_non_null(y);
    return y;
}

/* ------------------------------------------------------------- the table --- */
static void test_table(void **state)
{
    (void)state;
    int n;
    const struct akt_run_setting *t = akt_run_settings(&n);
    assert_true(n >= 25);
    for (int i = 0; i < n; i++) {
        const struct akt_param_def *d = &t[i].def;
        assert_non_null(d->key);
        assert_non_null(d->help);
        assert_true(strlen(d->help) > 3);
        assert_ptr_equal(akt_run_setting_find(d->key), &t[i]);
        assert_true(t[i].off + t[i].size <= sizeof(struct akt_run_config));
        if (d->type == AKT_PT_FLOAT || d->type == AKT_PT_INT) {
            assert_true(d->lo <= d->def && d->def <= d->hi);
        }
        if (d->type == AKT_PT_STRING || d->type == AKT_PT_LIST)
            assert_non_null(d->def_text);
    }
    /* every key --set and YAML took before the table */
    static const char *const keys[] = {
        "id", "teacher", "data", "format", "generator", "loss", "wbits", "abits", "bits",
        "epochs", "iters", "batch", "seed", "threads", "warmup_epochs", "tracker_epochs",
        "lr_student", "lr_generator", "momentum", "weight_decay", "milestones", "gamma",
        "first_last_8bit", "range_ema", "eval_batch", "eval_limit", "out"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        assert_non_null(akt_run_setting_find(keys[i]));
    assert_null(akt_run_setting_find("epoch"));

    /* the defaults are SPEC's, to the bit (results must not move) */
    struct akt_run_config c;
    akt_run_config_defaults(&c);
    assert_string_equal(c.id, "run");
    assert_int_equal(c.data_format, AKT_CIFAR_AUTO);
    assert_int_equal(c.wbits, 4);
    assert_int_equal(c.abits, 4);
    assert_int_equal(c.epochs, 400);
    assert_int_equal(c.iters, 200);
    assert_int_equal(c.batch, 200);
    assert_int_equal(c.seed, 0);
    assert_int_equal(c.threads, 2);
    assert_int_equal(c.warmup_epochs, 4);
    assert_int_equal(c.tracker_epochs, 4);
    assert_true(c.lr_student == 1e-4f);
    assert_true(c.lr_generator == 0);
    assert_true(c.momentum == 0.9f);
    assert_true(c.weight_decay == 1e-4f);
    assert_true(c.gamma == 0.1f);
    assert_int_equal(c.n_milestones, 3);
    assert_int_equal(c.milestones[0], 100);
    assert_int_equal(c.milestones[1], 200);
    assert_int_equal(c.milestones[2], 300);
    assert_int_equal(c.first_last_8bit, 0);
    assert_int_equal(c.range_ema, AKT_EMA_AS_CODED);
    assert_int_equal(c.eval_batch, 200);
    assert_int_equal(c.eval_limit, 0);
    assert_string_equal(c.out_path, "");

    /* a value goes to the field the table names */
    struct akt_error e = {0};
    assert_int_equal(akt_run_config_set(&c, NULL, "bits", "3", "--set", &e), 0);
    assert_int_equal(c.wbits, 3);
    assert_int_equal(c.abits, 3);
    assert_int_equal(akt_run_config_set(&c, NULL, "seed", "2147483647", "--set", &e), 0);
    assert_true(c.seed == 2147483647u);
    assert_int_equal(akt_run_config_set(&c, NULL, "milestones", "[5, 7]", "--set", &e), 0);
    assert_int_equal(c.n_milestones, 2);
    assert_int_equal(c.milestones[1], 7);
    assert_int_equal(akt_run_config_set(&c, NULL, "milestones", "none", "--set", &e), 0);
    assert_int_equal(c.n_milestones, 0);
    assert_int_equal(akt_run_config_set(&c, NULL, "format", "cifar100-coarse", "--set", &e), 0);
    assert_int_equal(c.data_format, AKT_CIFAR100_COARSE);
    assert_int_equal(akt_run_config_set(&c, NULL, "range_ema", "plain", "--set", &e), 0);
    assert_int_equal(c.range_ema, AKT_EMA_PLAIN);
    assert_int_equal(akt_run_config_set(&c, NULL, "gamma", "0.5", "--set", &e), 0);
    assert_true(c.gamma == 0.5f);

    /* the help lists every key with its range and default */
    char *h0 = akt_run_settings_help(0), *md = akt_run_settings_help(1);
    char *h = malloc(strlen(h0) + 2);
    assert_non_null(h);
    snprintf(h, strlen(h0) + 2, "\n%s", h0);
    free(h0);
    for (int i = 0; i < n; i++) {
        char line[200];
        snprintf(line, sizeof line, "\n  %-16s ", t[i].def.key);
        expect_in(h, line);
        snprintf(line, sizeof line, "\n| `%s` | ", t[i].def.key);
        expect_in(md, line);
    }
    expect_in(h, "lr_student       a number in [0, 10] (default 1e-4)");
    expect_in(md, "| `lr_student` | a number in [0, 10] | `1e-4` |");
    free(h);
    free(md);
}

/* ------------------------------------------------------------- booleans --- */
static void test_bool_spellings(void **state)
{
    (void)state;
    static const struct { const char *text; int rc, v; } cases[] = {
        {"true", 0, 1},  {"True", 0, 1},  {"TRUE", 0, 1},   {"yes", 0, 1},   {"Yes", 0, 1},
        {"1", 0, 1},     {"false", 0, 0}, {"False", 0, 0},  {"NO", 0, 0},    {"0", 0, 0},
        {"maybe", AKT_EINVAL, 0}, {"2", AKT_EINVAL, 0}, {"", AKT_EINVAL, 0},
        {" true", AKT_EINVAL, 0}, {"truee", AKT_EINVAL, 0}};
    static const char *const keys[] = {"first_last_8bit", "generator.disentangle", "loss.rfd"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct akt_run_config c;
        config_with(&c, "qimera", "synq");
        const struct akt_plugin *g = akt_registry_find(&g_reg, AKT_PLUGIN_GENERATOR, "qimera");
        const struct akt_plugin *l = akt_registry_find(&g_reg, AKT_PLUGIN_LOSS, "synq");
        int got[3];
        for (int k = 0; k < 3; k++) {
            struct akt_error e = {0};
            int rc = akt_run_config_set(&c, &g_reg, keys[k], cases[i].text, "--set", &e);
            print_message("# %s=%s -> %d %s\n", keys[k], cases[i].text, rc, rc ? msg(&e) : "");
            assert_int_equal(rc, cases[i].rc);
            if (rc)
                expect_in(msg(&e), "expects true or false");
        }
        got[0] = c.first_last_8bit;
        got[1] = (int)c.gen_params.v[akt_params_find(g, "disentangle")];
        got[2] = (int)c.loss_params.v[akt_params_find(l, "rfd")];
        for (int k = 0; k < 3; k++)
            assert_int_equal(got[k], cases[i].v);
        if (cases[i].rc == 0) { /* stored as true/false, read back the same */
            char *y = config_yaml(&c);
            const char *want = cases[i].v ? "true" : "false";
            char line[80];
            snprintf(line, sizeof line, "first_last_8bit: %s\n", want);
            expect_in(y, line);
            snprintf(line, sizeof line, "generator.disentangle: %s\n", want);
            expect_in(y, line);
            snprintf(line, sizeof line, "loss.rfd: %s\n", want);
            expect_in(y, line);
            free(y);
        }
    }
}

/* ---------------------------------------------------------- bad values --- */
struct bad {
    const char *key, *value;
    const char *want[3]; /* phrases of the message after "--set KEY: " */
};

static const struct bad BAD[] = {
    {"lr_student", "20", {"20", "out of range [0, 10]"}},
    {"lr_student", "abc", {"'abc'", "a number in [0, 10]"}},
    {"momentum", "nan", {"nan", "not a finite number"}},
    {"wbits", "9", {"9", "out of range [2, 8]"}},
    {"epochs", "1.5", {"'1.5'", "an integer in [1, 100000]"}},
    {"seed", "-1", {"-1", "out of range [0, 2147483647]"}},
    {"first_last_8bit", "maybe", {"'maybe'", "true or false"}},
    {"range_ema", "fast", {"'fast'", "one of: as_coded, plain"}},
    {"format", "cifar7", {"'cifar7'", "cifar100-coarse"}},
    {"milestones", "100,x", {"'x'", "integers in [1, 100000]"}},
    {"milestones", "0", {"0", "out of range [1, 100000]"}},
    {"milestones", "1,2,3,4,5,6,7,8,9", {"more than 8 items"}},
    {"out", "", {"empty path"}},
    {"loss.lambda", "-1", {"-1", "out of range [0, "}},
    {"loss.lambda", "big", {"'big'", "a number in [0, "}},
    {"generator.disentangle", "maybe", {"'maybe'", "true or false"}},
};

static void test_bad_values(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        struct akt_run_config c;
        config_with(&c, "qimera", "akt");
        struct akt_error e = {0};
        assert_int_equal(akt_run_config_set(&c, &g_reg, BAD[i].key, BAD[i].value, "--set", &e),
                         AKT_EINVAL);
        const char *m = msg(&e);
        print_message("# %s\n", m);
        char w[200];
        snprintf(w, sizeof w, "--set %s: ", BAD[i].key);
        assert_true(!strncmp(m, w, strlen(w))); /* source and key first */
        for (int k = 0; k < 3 && BAD[i].want[k]; k++)
            expect_in(m, BAD[i].want[k]);
    }
    /* the same values in a YAML file: FILE:LINE:COL KEY, then the same text */
    char path[600];
    snprintf(path, sizeof path, "%s/bad.yaml", g_tmp);
    for (size_t i = 0; i < sizeof BAD / sizeof BAD[0]; i++) {
        if (!strcmp(BAD[i].key, "out"))
            continue; /* the file may not name one at all */
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f, "teacher: teachers/resnet20_cifar10_akamaster_optA.h5\n"
                   "data: cifar-10-batches-bin/test_batch_lossless1000.bin\n"
                   "defaults:\n  generator: qimera\n  loss: akt\n"
                   "matrix:\n  %s: [\"%s\"]\n", BAD[i].key, BAD[i].value);
        fclose(f);
        struct akt_experiment x;
        struct akt_error e = {0};
        assert_int_equal(akt_experiment_load(&x, path, &g_reg, g_data, &e), AKT_EINVAL);
        const char *m = msg(&e);
        print_message("# %s\n", m);
        char w[900];
        snprintf(w, sizeof w, "%s:7:%zu %s: ", path, strlen(BAD[i].key) + 6, BAD[i].key);
        assert_true(!strncmp(m, w, strlen(w)));
        for (int k = 0; k < 3 && BAD[i].want[k]; k++)
            expect_in(m, BAD[i].want[k]);
    }
}

/* --------------------------------------------------------------- floats --- */
static void test_float_text(void **state)
{
    (void)state;
    static const struct { float x; const char *text; } f32[] = {
        {1e-4f, "1e-4"}, {0.9f, "0.9"}, {5e-4f, "5e-4"}, {0.001f, "0.001"}, {0.1f, "0.1"},
        {2.5e-5f, "2.5e-5"}, {1000, "1000"}, {0, "0"}, {1e20f, "1e20"}, {123.456f, "123.456"},
        {-0.5f, "-0.5"}, {1.0f / 3, "0.33333334"}, {10, "10"}, {0.0125f, "0.0125"}};
    char buf[64];
    for (size_t i = 0; i < sizeof f32 / sizeof f32[0]; i++)
        assert_string_equal(akt_param_format_num(f32[i].x, 1, buf, sizeof buf), f32[i].text);
    static const struct { double x; const char *text; } f64[] = {
        {0.1, "0.1"}, {1e-5, "1e-5"}, {1e8, "1e8"}, {123456.0, "123456"}, {2147483647.0, "2147483647"}, {1000, "1000"}, {0.8, "0.8"},
        {1e16, "1e16"}, {0.1 + 0.2, "0.30000000000000004"}};
    for (size_t i = 0; i < sizeof f64 / sizeof f64[0]; i++)
        assert_string_equal(akt_param_format_num(f64[i].x, 0, buf, sizeof buf), f64[i].text);
    /* any float: reads back to the same bits, never longer than %.9g */
    uint32_t s = 12345;
    for (int i = 0; i < 200000; i++) {
        s = s * 1664525u + 1013904223u;
        float x;
        memcpy(&x, &s, sizeof x);
        if (!isfinite(x))
            continue;
        char g[40];
        snprintf(g, sizeof g, "%.9g", x);
        akt_param_format_num(x, 1, buf, sizeof buf);
        float y = (float)strtod(buf, NULL);
        if (memcmp(&x, &y, sizeof x) || strlen(buf) > strlen(g) + 1) {
            print_error("%.9g -> '%s'\n", x, buf);
            fail();
        }
    }
}

static struct {
    struct akt_run_config *c;
    int names;
} g_replay;

static int replay(const char *key, const char *value, int line, void *user)
{
    (void)line;
    (void)user;
    struct akt_error e = {0};
    int is_name = !strcmp(key, "generator") || !strcmp(key, "loss");
    if (is_name != g_replay.names)
        return 0;
    int rc = akt_run_config_set(g_replay.c, &g_reg, key, value, "config", &e);
    if (rc)
        print_error("%s\n", msg(&e));
    return rc;
}

static void test_stored_floats(void **state)
{
    (void)state;
    struct akt_run_config c, back;
    config_with(&c, "gdfq", "akt");
    struct akt_error e = {0};
    assert_int_equal(akt_run_config_set(&c, &g_reg, "lr_student", "1e-4", "--set", &e), 0);
    assert_int_equal(akt_run_config_set(&c, &g_reg, "weight_decay", "0.0005", "--set", &e), 0);
    assert_int_equal(akt_run_config_set(&c, &g_reg, "lr_generator", "2.5e-5", "--set", &e), 0);
    assert_int_equal(akt_run_config_set(&c, &g_reg, "generator.lr", "1e-4", "--set", &e), 0);
    char *y = config_yaml(&c);
    print_message("%s", y);
    expect_in(y, "\nlr_student: 1e-4\n");
    expect_in(y, "\nweight_decay: 5e-4\n");
    expect_in(y, "\nlr_generator: 2.5e-5\n");
    expect_in(y, "\nmomentum: 0.9\n");
    expect_in(y, "\ngamma: 0.1\n");
    expect_in(y, "\ngenerator.lr: 1e-4\n");
    assert_null(strstr(y, "e-05"));
    assert_null(strstr(y, "99999"));
    /* the text gives back the same config, bit for bit (names first, as
     * akt hessian replays it) */
    akt_run_config_defaults(&back);
    for (g_replay.names = 1; g_replay.names >= 0; g_replay.names--) {
        g_replay.c = &back;
        assert_int_equal(akt_run_config_text_each(y, replay, &g_replay, "config", &e), 0);
    }
    assert_true(back.lr_student == c.lr_student);
    assert_true(back.weight_decay == c.weight_decay);
    assert_true(back.lr_generator == c.lr_generator);
    assert_true(back.momentum == c.momentum && back.gamma == c.gamma);
    assert_memory_equal(&back.gen_params, &c.gen_params, sizeof c.gen_params);
    char *y2 = config_yaml(&back);
    assert_string_equal(y, y2);
    free(y2);

    /* a config stored the old way (%.9g) is the same config */
    char old[8192], keys[400];
    snprintf(old, sizeof old, "%s", y);
    char *p = strstr(old, "lr_student: 1e-4\n");
    assert_non_null(p);
    memmove(p + strlen("lr_student: 9.99999975e-05\n"), p + strlen("lr_student: 1e-4\n"),
            strlen(p + strlen("lr_student: 1e-4\n")) + 1);
    memcpy(p, "lr_student: 9.99999975e-05\n", strlen("lr_student: 9.99999975e-05\n"));
    assert_int_equal(akt_run_config_text_diff(old, y, keys, sizeof keys), 0);
    /* and a value that differs still differs, named */
    assert_int_equal(akt_run_config_set(&c, &g_reg, "lr_student", "1.1e-4", "--set", &e), 0);
    char *y3 = config_yaml(&c);
    assert_int_equal(akt_run_config_text_diff(old, y3, keys, sizeof keys), 1);
    assert_string_equal(keys, "lr_student");
    free(y3);
    free(y);
}

/* ------------------------------------------------------ akt run --set --- */
static void test_run_set(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/sweep.yaml", g_tmp);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("teacher: teachers/resnet20_cifar10_akamaster_optA.h5\n"
          "data: cifar-10-batches-bin/test_batch_lossless1000.bin\n"
          "defaults: {generator: gdfq, lr_student: 0.0005, first_last_8bit: false}\n"
          "matrix:\n  loss: [logit, akt]\n  seed: [0, 1]\n"
          "include:\n  - {generator: qimera, loss: akt, id: extra}\n", f);
    fclose(f);
    struct akt_experiment plain, x;
    struct akt_error e = {0};
    assert_int_equal(akt_experiment_load(&plain, path, &g_reg, g_data, &e), 0);
    const struct akt_experiment_setting sets[] = {
        {"lr_student", "1e-4", "--set"}, {"loss.T", "3", "--set"},
        {"first_last_8bit", "Yes", "--set"}, {"generator.lr", "2e-4", NULL}};
    assert_int_equal(akt_experiment_load_set(&x, path, &g_reg, g_data, sets, 4, &e), 0);
    assert_int_equal(x.n_runs, 5);
    assert_int_equal(plain.n_runs, 5);
    for (int i = 0; i < x.n_runs; i++) {
        const struct akt_run_config *c = &x.runs[i].config;
        assert_string_equal(c->id, plain.runs[i].config.id); /* ids do not move */
        assert_true(c->lr_student == 1e-4f);
        assert_true(plain.runs[i].config.lr_student == 5e-4f);
        assert_int_equal(c->first_last_8bit, 1);
        char *y = config_yaml(c);
        expect_in(y, "\nlr_student: 1e-4\n");
        expect_in(y, "\nloss.T: 3\n");
        expect_in(y, "\nfirst_last_8bit: true\n");
        expect_in(y, "\ngenerator.lr: 2e-4\n");
        free(y);
        /* recorded among the run's settings, after the file's, as --set */
        const struct akt_experiment_run *r = &x.runs[i];
        int found = 0;
        for (int k = 0; k < r->n_settings; k++)
            if (!strcmp(r->settings[k].key, "loss.T")) {
                found = 1;
                assert_string_equal(r->settings[k].where, "--set");
            }
        assert_true(found);
    }
    akt_experiment_free(&x);
    akt_experiment_free(&plain);

    /* validated as the file is: the source, key, value, range and the run */
    const struct akt_experiment_setting bad[] = {{"lr_student", "20", "--set"}};
    assert_int_equal(akt_experiment_load_set(&x, path, &g_reg, g_data, bad, 1, &e), AKT_EINVAL);
    expect_in(msg(&e), "--set lr_student: 20 is out of range [0, 10] (run '");
    const struct akt_experiment_setting bad2[] = {{"loss.nosuch", "1", "--set"}};
    assert_int_equal(akt_experiment_load_set(&x, path, &g_reg, g_data, bad2, 1, &e), AKT_EINVAL);
    expect_in(msg(&e), "--set loss.nosuch: unknown parameter 'nosuch'");
    const struct akt_experiment_setting bad3[] = {{"id", "x", "--set"}};
    assert_int_equal(akt_experiment_load_set(&x, path, &g_reg, g_data, bad3, 1, &e), AKT_EINVAL);
    expect_in(msg(&e), "--set id: run ids come from the matrix");
    const struct akt_experiment_setting bad4[] = {{"teacher", "/nonexistent/t.h5", "--set"}};
    assert_int_equal(akt_experiment_load_set(&x, path, &g_reg, g_data, bad4, 1, &e), AKT_EINVAL);
    expect_in(msg(&e), "--set teacher: cannot read '/nonexistent/t.h5'");
    /* a plugin named by --set comes first: its parameters from --set apply */
    const struct akt_experiment_setting names[] = {{"generator.disentangle", "true", "--set"},
                                                   {"generator", "qimera", "--set"}};
    assert_int_equal(akt_experiment_load_set(&x, path, &g_reg, g_data, names, 2, &e), 0);
    for (int i = 0; i < x.n_runs; i++)
        assert_string_equal(x.runs[i].config.generator, "qimera");
    akt_experiment_free(&x);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),       cmocka_unit_test(test_bool_spellings),
        cmocka_unit_test(test_bad_values),  cmocka_unit_test(test_float_text),
        cmocka_unit_test(test_stored_floats), cmocka_unit_test(test_run_set),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
