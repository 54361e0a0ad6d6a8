/* Unit tests: YAML experiment files (core/config/experiment.c). Malformed
 * files are refused with an error naming FILE:LINE:COL and the key; a good
 * matrix expands in order with readable, unique ids; names are applied
 * before their parameters; relative paths resolve; the shipped experiments
 * validate; `akt run --dry-run` prints one line per run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "akt/akt.h"
#include "akt/experiment.h"

static struct akt_registry g_reg;
static char g_tmp[256];
static const char *g_data; /* $AKT_DATA: relative teacher/data resolve here */

/* Every file starts with these two lines, so errors below are on line 3+. */
#define HEAD                                                                                       \
    "teacher: teachers/resnet20_cifar10_akamaster_optA.h5\n"                                       \
    "data: cifar-10-batches-bin/test_batch_lossless1000.bin\n"
#define NAMES "defaults: {generator: gdfq, loss: logit}\n" /* line 3 */

static const char *write_file(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", g_tmp, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

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
    /* the shipped plugin folders: every shipped experiment must validate */
    static const char *const shipped[] = {"generators", "losses", "synq", "hast", "synthset"};
    for (size_t i = 0; i < sizeof shipped / sizeof shipped[0]; i++) {
        snprintf(dir, sizeof dir, "%s/%s", plug, shipped[i]);
        if (akt_registry_load_dir(&g_reg, dir, &e))
            return -1;
    }
    snprintf(g_tmp, sizeof g_tmp, "%s/akt_experiment.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR")
                                                                               : "/tmp");
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

/* ------------------------------------------------------- malformed files --- */
struct bad_case {
    const char *name; /* test name and file name */
    const char *yaml;
    int code;
    const char *at;   /* ":LINE:COL" */
    const char *key;  /* must appear in the message (NULL: none) */
    const char *what; /* a phrase of the message */
};

static const struct bad_case BAD[] = {
    /* an unclosed flow map: libyaml stops at "name" (4:1), where it wanted , or } */
    {"syntax_error", HEAD "matrix: {bits: [3, 4]\nname: x\n", AKT_EFORMAT, ":4:1", NULL,
     "YAML syntax error"},
    {"top_not_map", "- generator\n- loss\n", AKT_EINVAL, ":1:1", NULL, "top level must be a map"},
    {"unknown_top_key", HEAD "matrx:\n  bits: [3]\n", AKT_EINVAL, ":3:1", "matrx",
     "unknown top-level key"},
    {"axis_not_list", HEAD NAMES "matrix:\n  bits: 4\n", AKT_EINVAL, ":5:9", "bits",
     "must be a list"},
    {"defaults_not_map", HEAD "defaults: [1, 2]\nmatrix: {bits: [4]}\n", AKT_EINVAL, ":3:11",
     "defaults", "must be a map"},
    {"empty_axis", HEAD NAMES "matrix:\n  generator: []\n", AKT_EINVAL, ":5:14", "generator",
     "empty matrix axis"},
    {"empty_matrix", HEAD NAMES "matrix: {}\n", AKT_EINVAL, ":4:9", "matrix", "nothing to run"},
    {"unknown_axis_key", HEAD NAMES "matrix:\n  epoch: [1, 2]\n", AKT_EINVAL, ":5:11", "epoch",
     "unknown key"},
    {"out_of_range", HEAD NAMES "matrix:\n  bits: [4, 9]\n", AKT_EINVAL, ":5:13", "bits",
     "9 is out of range [2, 8]"},
    {"unknown_plugin", HEAD "defaults: {loss: akt}\nmatrix:\n  generator: [gdfq, nosuch]\n",
     AKT_EINVAL, ":5:21", "generator", "unknown generator plugin 'nosuch'"},
    {"param_without_plugin", HEAD "defaults:\n  loss.lambda: 10\nmatrix:\n  generator: [gdfq]\n",
     AKT_EINVAL, ":4:16", "loss.lambda", "set loss before its parameters"},
    {"param_of_other_plugin", HEAD "defaults: {generator: gdfq, loss.lambda: 10}\n"
     "matrix:\n  loss: [akt, logit]\n", AKT_EINVAL, ":3:42", "loss.lambda",
     "run 'gdfq-logit-w4a4'"},
    {"param_bad_type", HEAD NAMES "matrix:\n  loss: [akt]\n  loss.lambda: [abc]\n", AKT_EINVAL,
     ":6:17", "loss.lambda", "abc"},
    {"duplicate_key", HEAD "defaults:\n  generator: gdfq\n  epochs: 2\n  epochs: 3\n"
     "matrix: {loss: [akt]}\n", AKT_EINVAL, ":6:3", "epochs", "duplicate key (first at"},
    {"duplicate_top_key", HEAD NAMES "matrix: {bits: [4]}\nmatrix: {bits: [5]}\n", AKT_EINVAL,
     ":5:1", "matrix", "duplicate key"},
    {"exclude_not_axis", HEAD NAMES "matrix:\n  bits: [3, 4]\nexclude:\n  - {seed: 1}\n",
     AKT_EINVAL, ":7:6", "seed", "not a matrix axis"},
    {"exclude_bad_value", HEAD NAMES "matrix:\n  bits: [3, 4]\nexclude:\n  - {bits: 6}\n",
     AKT_EINVAL, ":7:12", "bits", "not a value of this axis"},
    {"include_bad_value", HEAD NAMES "matrix:\n  bits: [4]\ninclude:\n  - {bits: 4, epochs: -1}\n",
     AKT_EINVAL, ":7:23", "epochs", "-1 is out of range [1, 100000]"},
    {"include_not_list", HEAD NAMES "include: {bits: 4}\n", AKT_EINVAL, ":4:10", "include",
     "must be a list of maps"},
    {"value_is_map", HEAD "defaults:\n  loss: {name: akt, lambda: 1000}\n", AKT_EINVAL, ":4:9",
     "loss", "single value"},
    {"bad_id", HEAD NAMES "matrix: {bits: [4]}\ninclude:\n  - {id: a/b}\n", AKT_EINVAL,
     ":6:10", "id", "not a run id"},
    {"out_key", HEAD "defaults: {out: x.h5}\n", AKT_EINVAL, ":3:12", "out", "akt run --out"},
    {"duplicate_axis_value", HEAD NAMES "matrix:\n  seed: [0, 1, 0]\n", AKT_EINVAL, ":5:16",
     "seed", "appears twice"},
    {"teacher_missing", "teacher: nosuch.h5\n" NAMES, AKT_EINVAL, ":1:10", "teacher",
     "cannot read"},
    {"second_document", HEAD NAMES "matrix: {bits: [4]}\n---\nname: two\n", AKT_EINVAL, ":6:1",
     NULL, "second YAML document"},
    {"all_excluded", HEAD NAMES "matrix:\n  bits: [3]\nexclude:\n  - {bits: 3}\n", AKT_EINVAL,
     ":5:3", "exclude", "every run"},
};

static void test_malformed(void **state)
{
    const struct bad_case *c = *state;
    char fname[128], msg[1200];
    snprintf(fname, sizeof fname, "%s.yaml", c->name);
    const char *path = write_file(fname, c->yaml);
    struct akt_experiment x;
    struct akt_error e = {0};
    int rc = akt_experiment_load(&x, path, &g_reg, g_data, &e);
    akt_error_format(&e, msg, sizeof msg);
    print_message("# %s -> %s\n", c->name, msg);
    assert_int_equal(rc, c->code);
    assert_int_equal(e.code, c->code);
    char at[600];
    snprintf(at, sizeof at, "%s%s", path, c->at); /* FILE:LINE:COL */
    assert_non_null(strstr(msg, at));
    if (c->key) {
        char k[128];
        snprintf(k, sizeof k, " %s", c->key);
        assert_non_null(strstr(msg, k));
    }
    assert_non_null(strstr(msg, c->what));
    assert_null(x.runs); /* nothing to free on error */
    assert_int_equal(x.n_runs, 0);
}

static void test_missing_file(void **state)
{
    (void)state;
    char path[512], msg[1200];
    snprintf(path, sizeof path, "%s/no_such_experiment.yaml", g_tmp);
    struct akt_experiment x;
    struct akt_error e = {0};
    assert_int_equal(akt_experiment_load(&x, path, &g_reg, g_data, &e), AKT_EIO);
    akt_error_format(&e, msg, sizeof msg);
    assert_non_null(strstr(msg, path));
    assert_non_null(strstr(msg, "cannot open"));
}

static void test_empty_file(void **state)
{
    (void)state;
    const char *path = write_file("empty.yaml", "# nothing\n");
    struct akt_experiment x;
    struct akt_error e = {0};
    assert_int_equal(akt_experiment_load(&x, path, &g_reg, g_data, &e), AKT_EINVAL);
    assert_non_null(strstr(e.where, "empty.yaml"));
    assert_non_null(strstr(e.what, "empty file"));
}

/* ------------------------------------------------------------ expansion --- */
static const struct akt_experiment_setting *find_setting(const struct akt_experiment_run *r,
                                                         const char *key, int *pos)
{
    for (int i = 0; i < r->n_settings; i++)
        if (!strcmp(r->settings[i].key, key)) {
            if (pos)
                *pos = i;
            return &r->settings[i];
        }
    return NULL;
}

static void test_expansion(void **state)
{
    (void)state;
    const char *path = write_file("matrix.yaml",
                                  "name: table\n" HEAD
                                  "defaults:\n"
                                  "  epochs: 3\n"
                                  "  iters: 2\n"
                                  "  milestones: [1, 2]\n"
                                  "matrix:\n"
                                  "  generator: [gdfq, adadfq]\n"
                                  "  loss: [logit, akt]\n"
                                  "  bits: [3, 4, 5]\n"
                                  "exclude:\n"
                                  "  - {generator: adadfq, bits: 3}\n"
                                  "include:\n"
                                  "  - {loss: akt, generator: qimera, bits: 4}\n");
    struct akt_experiment x;
    struct akt_error e = {0};
    char msg[1200];
    int rc = akt_experiment_load(&x, path, &g_reg, g_data, &e);
    if (rc)
        fail_msg("%s", akt_error_format(&e, msg, sizeof msg));
    static const char *ids[] = {
        "gdfq-logit-w3a3",   "gdfq-logit-w4a4",   "gdfq-logit-w5a5",   "gdfq-akt-w3a3",
        "gdfq-akt-w4a4",     "gdfq-akt-w5a5",     "adadfq-logit-w4a4", "adadfq-logit-w5a5",
        "adadfq-akt-w4a4",   "adadfq-akt-w5a5",   "qimera-akt-w4a4"};
    assert_int_equal(x.n_runs, 11); /* 2 x 2 x 3 - 2 excluded + 1 included */
    assert_string_equal(x.name, "table");
    for (int i = 0; i < x.n_runs; i++) {
        const struct akt_run_config *c = &x.runs[i].config;
        assert_string_equal(c->id, ids[i]);
        assert_int_equal(c->epochs, 3);
        assert_int_equal(c->iters, 2);
        assert_int_equal(c->n_milestones, 2);
        assert_int_equal(c->milestones[1], 2);
        assert_int_equal(c->out_path[0], 0);
        /* relative paths resolved against $AKT_DATA */
        char want[1100];
        snprintf(want, sizeof want, "%s/teachers/resnet20_cifar10_akamaster_optA.h5", g_data);
        assert_string_equal(c->teacher_path, want);
    }
    const struct akt_run_config *q = &x.runs[10].config;
    assert_string_equal(q->generator, "qimera");
    assert_string_equal(q->loss, "akt");
    assert_int_equal(q->wbits, 4);
    assert_int_equal(q->abits, 4);
    assert_string_equal(x.runs[6].config.generator, "adadfq");
    assert_int_equal(x.runs[6].config.wbits, 4);
    /* where of an axis value: matrix.yaml line 11 ("  bits: [3, 4, 5]"), col 16 = "5" */
    const struct akt_experiment_setting *s = find_setting(&x.runs[2], "bits", NULL);
    assert_non_null(s);
    assert_string_equal(s->value, "5");
    char where[600];
    snprintf(where, sizeof where, "%s:11:16", path);
    assert_string_equal(s->where, where);
    akt_experiment_free(&x);

    /* default name: the file name */
    path = write_file("named_by_file.yml", HEAD NAMES "include:\n  - {}\n");
    assert_int_equal(akt_experiment_load(&x, path, &g_reg, g_data, &e), 0);
    assert_string_equal(x.name, "named_by_file");
    assert_int_equal(x.n_runs, 1);
    assert_string_equal(x.runs[0].config.id, "gdfq-logit-w4a4");
    akt_experiment_free(&x);
}

static void test_ids_unique(void **state)
{
    (void)state;
    struct akt_experiment x;
    struct akt_error e = {0};
    char msg[1200];
    /* a plugin-parameter axis is part of the id; include keys that are not
     * axes are not, so equal ids get -2, -3; explicit ids are kept */
    const char *path = write_file("ids.yaml", HEAD
                                  "defaults: {generator: gdfq, loss: akt, seed: 7}\n"
                                  "matrix:\n"
                                  "  loss.lambda: [10, 100]\n"
                                  "  range_ema: [plain]\n"
                                  "  seed: [0, 1]\n"
                                  "include:\n"
                                  "  - {loss.T: 4}\n"
                                  "  - {loss.T: 5}\n"
                                  "  - {id: my-run, loss.T: 6}\n"
                                  "  - {loss.lambda: 10, range_ema: plain, seed: 0, loss.T: 7}\n");
    int rc = akt_experiment_load(&x, path, &g_reg, g_data, &e);
    if (rc)
        fail_msg("%s", akt_error_format(&e, msg, sizeof msg));
    static const char *ids[] = {
        "gdfq-akt-w4a4-lambda10-range_ema_plain-s0",  "gdfq-akt-w4a4-lambda10-range_ema_plain-s1",
        "gdfq-akt-w4a4-lambda100-range_ema_plain-s0", "gdfq-akt-w4a4-lambda100-range_ema_plain-s1",
        "gdfq-akt-w4a4",                              "gdfq-akt-w4a4-2",
        "my-run",                                     "gdfq-akt-w4a4-lambda10-range_ema_plain-s0-2"};
    assert_int_equal(x.n_runs, 8);
    for (int i = 0; i < x.n_runs; i++)
        assert_string_equal(x.runs[i].config.id, ids[i]);
    assert_int_equal(x.runs[1].config.seed, 1);
    assert_int_equal(x.runs[4].config.seed, 7); /* from defaults */
    akt_experiment_free(&x);

    /* two include entries asking for the same id */
    path = write_file("dup_ids.yaml", HEAD NAMES "include:\n  - {id: a}\n  - {id: a, seed: 1}\n");
    assert_int_equal(akt_experiment_load(&x, path, &g_reg, g_data, &e), AKT_EINVAL);
    akt_error_format(&e, msg, sizeof msg);
    assert_non_null(strstr(msg, ":6:10 id"));
    assert_non_null(strstr(msg, "used twice"));
}

/* generator/loss names are applied before every other setting, whatever
 * the file order, so their parameters find their plugin; a later setting of
 * the same key wins (include over defaults). */
static void test_application_order(void **state)
{
    (void)state;
    struct akt_experiment x;
    struct akt_error e = {0};
    char msg[1200];
    const char *path = write_file("order.yaml", HEAD
                                  "defaults:\n"
                                  "  loss.lambda: 5\n"
                                  "  generator.p_superpose: 0.25\n"
                                  "  epochs: 9\n"
                                  "  generator: qimera\n"
                                  "matrix:\n"
                                  "  loss.T: [3]\n"
                                  "  loss: [akt, spatial]\n"
                                  "include:\n"
                                  "  - {epochs: 4, loss: channel, loss.lambda: 6}\n");
    int rc = akt_experiment_load(&x, path, &g_reg, g_data, &e);
    if (rc)
        fail_msg("%s", akt_error_format(&e, msg, sizeof msg));
    assert_int_equal(x.n_runs, 3);
    const struct akt_plugin *gen = akt_registry_find(&g_reg, AKT_PLUGIN_GENERATOR, "qimera");
    assert_non_null(gen);
    for (int i = 0; i < 3; i++) {
        const struct akt_experiment_run *r = &x.runs[i];
        const struct akt_plugin *loss =
            akt_registry_find(&g_reg, AKT_PLUGIN_LOSS, r->config.loss);
        assert_non_null(loss);
        int g = -1, l = -1, lam = -1, ps = -1;
        assert_non_null(find_setting(r, "generator", &g));
        assert_non_null(find_setting(r, "loss", &l));
        assert_non_null(find_setting(r, "loss.lambda", &lam));
        assert_non_null(find_setting(r, "generator.p_superpose", &ps));
        assert_true(g < ps && l < lam); /* names first */
        assert_true(g < 2 && l < 2);
        double want_lambda = i == 2 ? 6 : 5;
        assert_true(r->config.loss_params.v[akt_params_find(loss, "lambda")] == want_lambda);
        assert_true(r->config.gen_params.v[akt_params_find(gen, "p_superpose")] == 0.25);
        assert_int_equal(r->config.epochs, i == 2 ? 4 : 9);
    }
    assert_string_equal(x.runs[0].config.loss, "akt");
    assert_string_equal(x.runs[1].config.loss, "spatial");
    assert_string_equal(x.runs[2].config.loss, "channel");
    const struct akt_plugin *akt = akt_registry_find(&g_reg, AKT_PLUGIN_LOSS, "akt");
    assert_true(x.runs[0].config.loss_params.v[akt_params_find(akt, "T")] == 3);
    assert_string_equal(x.runs[0].config.id, "qimera-akt-w4a4-T3");
    assert_string_equal(x.runs[2].config.id, "qimera-channel-w4a4");
    akt_experiment_free(&x);
}

/* Relative teacher/data resolve against data_root, else the YAML's folder;
 * absolute paths are kept. */
static void test_relative_paths(void **state)
{
    (void)state;
    char sub[400], root[400], f[600];
    snprintf(sub, sizeof sub, "%s/sub", g_tmp);
    snprintf(root, sizeof root, "%s/root", g_tmp);
    assert_int_equal(mkdir(sub, 0755), 0);
    assert_int_equal(mkdir(root, 0755), 0);
    const char *made[] = {"sub/t.h5", "sub/d.bin", "root/t.h5", "root/d.bin"};
    for (int i = 0; i < 4; i++) {
        snprintf(f, sizeof f, "%s/%s", g_tmp, made[i]);
        FILE *fp = fopen(f, "w");
        assert_non_null(fp);
        fclose(fp);
    }
    char abs_data[600];
    snprintf(abs_data, sizeof abs_data, "%s/root/d.bin", g_tmp);
    char text[1200];
    snprintf(text, sizeof text,
             "teacher: t.h5\ndata: d.bin\n" NAMES "include:\n  - {}\n  - {data: %s}\n", abs_data);
    const char *path = write_file("sub/rel.yaml", text);
    struct akt_experiment x;
    struct akt_error e = {0};
    char msg[1200], want[700];

    assert_int_equal(akt_experiment_load(&x, path, &g_reg, NULL, &e), 0);
    snprintf(want, sizeof want, "%s/t.h5", sub);
    assert_string_equal(x.runs[0].config.teacher_path, want);
    snprintf(want, sizeof want, "%s/d.bin", sub);
    assert_string_equal(x.runs[0].config.data_path, want);
    assert_string_equal(x.runs[1].config.data_path, abs_data); /* absolute: kept */
    akt_experiment_free(&x);

    int rc = akt_experiment_load(&x, path, &g_reg, root, &e);
    if (rc)
        fail_msg("%s", akt_error_format(&e, msg, sizeof msg));
    snprintf(want, sizeof want, "%s/t.h5", root);
    assert_string_equal(x.runs[0].config.teacher_path, want);
    akt_experiment_free(&x);

    /* relative to the current folder when the YAML path has no folder */
    char cwd[1024];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(sub), 0);
    rc = akt_experiment_load(&x, "rel.yaml", &g_reg, "", &e);
    assert_int_equal(chdir(cwd), 0);
    if (rc)
        fail_msg("%s", akt_error_format(&e, msg, sizeof msg));
    assert_string_equal(x.runs[0].config.teacher_path, "t.h5");
    akt_experiment_free(&x);

    /* a relative path that does not exist under the root names the result */
    assert_int_equal(akt_experiment_load(&x, path, &g_reg, g_tmp, &e), AKT_EINVAL);
    akt_error_format(&e, msg, sizeof msg);
    assert_non_null(strstr(msg, "rel.yaml:1:10 teacher"));
    snprintf(want, sizeof want, "'%s/t.h5'", g_tmp);
    assert_non_null(strstr(msg, want));
}

/* --------------------------------------------------- shipped experiments --- */
static void test_shipped(void **state)
{
    (void)state;
    const char *src = getenv("AKT_SOURCE_ROOT");
    assert_non_null(src);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/experiments", src);
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0, smoke = -1;
    struct dirent *ent;
    while ((ent = readdir(d))) {
        size_t l = strlen(ent->d_name);
        if (l < 6 || strcmp(ent->d_name + l - 5, ".yaml"))
            continue;
        char path[1400], msg[1200];
        snprintf(path, sizeof path, "%s/%s", dir, ent->d_name);
        struct akt_experiment x;
        struct akt_error e = {0};
        int rc = akt_experiment_load(&x, path, &g_reg, g_data, &e);
        if (rc)
            fail_msg("%s", akt_error_format(&e, msg, sizeof msg));
        assert_true(x.n_runs > 0);
        print_message("# %s: %d runs\n", ent->d_name, x.n_runs);
        if (!strcmp(ent->d_name, "smoke.yaml"))
            smoke = x.n_runs;
        akt_experiment_free(&x);
        files++;
    }
    closedir(d);
    assert_true(files >= 4);
    assert_int_equal(smoke, 4);
}

/* akt run FILE --dry-run: exit 0, one stdout line per run. */
static void test_cli_dry_run(void **state)
{
    (void)state;
    const char *bin = getenv("AKT_BIN"), *src = getenv("AKT_SOURCE_ROOT");
    if (!bin || access(bin, X_OK)) {
        skip();
        return;
    }
    char cmd[3000], line[1024];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' run experiments/smoke.yaml --dry-run 2>/dev/null",
             src, bin);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    int lines = 0, gdfq = 0;
    while (fgets(line, sizeof line, p)) {
        lines++;
        gdfq += strstr(line, "gdfq-logit-w4a4") != NULL;
    }
    int st = pclose(p);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_int_equal(lines, 4);
    assert_int_equal(gdfq, 1);

    /* a malformed file: exit 2 and one error line naming FILE:LINE:COL */
    const char *bad = write_file("cli_bad.yaml", HEAD NAMES "matrix:\n  bits: [4, 9]\n");
    snprintf(cmd, sizeof cmd, "'%s' run '%s' --dry-run 2>&1 >/dev/null", bin, bad);
    p = popen(cmd, "r");
    assert_non_null(p);
    lines = 0;
    int named = 0;
    while (fgets(line, sizeof line, p)) {
        lines++;
        named += strstr(line, "cli_bad.yaml:5:13 bits") != NULL;
    }
    st = pclose(p);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 2);
    assert_int_equal(lines, 1);
    assert_int_equal(named, 1);
}

int main(void)
{
    enum { NB = sizeof BAD / sizeof BAD[0] };
    struct CMUnitTest tests[NB + 8];
    int n = 0;
    for (int i = 0; i < NB; i++)
        tests[n++] = (struct CMUnitTest){BAD[i].name, test_malformed, NULL, NULL, (void *)&BAD[i]};
    const struct CMUnitTest rest[] = {
        cmocka_unit_test(test_missing_file),     cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_expansion),        cmocka_unit_test(test_ids_unique),
        cmocka_unit_test(test_application_order), cmocka_unit_test(test_relative_paths),
        cmocka_unit_test(test_shipped),          cmocka_unit_test(test_cli_dry_run),
    };
    for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++)
        tests[n++] = rest[i];
    return _cmocka_run_group_tests("unit_experiment", tests, (size_t)n, setup, teardown);
}
