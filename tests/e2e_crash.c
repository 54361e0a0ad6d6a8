/* Silent wrong results (issue 14), each refused with a clear error: NaN
 * logits in evaluation, a checkpoint_epoch that does not match the stored
 * epochs, a checkpoint whose contents were changed, a configuration clash
 * (which must change nothing), a second writer with HDF5's file locking
 * off, and a stored config that must stay valid YAML whatever the paths
 * hold. The kill scan itself is tests/crash_scan.sh. Runs go through the
 * akt binary (fork without exec is unsafe once OpenMP threads exist). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <hdf5.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <yaml.h>

#include "akt/akt.h"
#include "akt/eval.h"
#include "akt/results.h"

extern char **environ;

#define note(...) (printf("# "), printf(__VA_ARGS__), fflush(stdout))

static char g_tmp[256], g_teacher[1024], g_data[1024];

static int have_data(void)
{
    const char *root = getenv("AKT_DATA");
    if (!root || !getenv("AKT_BIN"))
        return 0;
    snprintf(g_teacher, sizeof g_teacher, "%s/teachers/resnet20_cifar10_akamaster_optA.h5", root);
    snprintf(g_data, sizeof g_data, "%s/cifar-10-batches-bin/test_batch_lossless1000.bin", root);
    return access(g_teacher, R_OK) == 0 && access(g_data, R_OK) == 0;
}

/* akt train with the tiny schedule into out; extra is appended as given.
 * kill_after: AKT_KILL_AFTER_ITERS (0: none). stderr goes to g_tmp/err.
 * Returns the exit status (128 + signal when killed). */
static int akt_train(const char *out, const char *teacher, const char *extra, int kill_after)
{
    char cmd[8192], env[64] = "";
    if (kill_after)
        snprintf(env, sizeof env, "AKT_KILL_AFTER_ITERS=%d ", kill_after);
    snprintf(cmd, sizeof cmd,
             "%s'%s' train --teacher '%s' --data '%s' --generator gdfq --loss akt --epochs 3 "
             "--iters 2 --batch 4 --seed 5 --threads 1 --set warmup_epochs=1 "
             "--set tracker_epochs=1 --set milestones=none --set eval_batch=20 "
             "--set eval_limit=20 --out '%s' --quiet %s > /dev/null 2> '%s/err'",
             env, getenv("AKT_BIN"), teacher ? teacher : g_teacher, g_data, out,
             extra ? extra : "", g_tmp);
    int st = system(cmd);
    if (WIFSIGNALED(st))
        return 128 + WTERMSIG(st);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)len + 1);
    size_t got = fread(b, 1, (size_t)len, f);
    fclose(f);
    b[got] = 0;
    if (n)
        *n = got;
    return b;
}

static const char *last_error(void)
{
    static char buf[4096];
    char path[300];
    snprintf(path, sizeof path, "%s/err", g_tmp);
    char *s = slurp(path, NULL);
    snprintf(buf, sizeof buf, "%s", s ? s : "");
    free(s);
    return buf;
}

static int same_bytes(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    int same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

static void copy_file(const char *from, const char *to)
{
    size_t n = 0;
    char *b = slurp(from, &n);
    assert_non_null(b);
    FILE *f = fopen(to, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
    free(b);
}

/* A run killed in epoch 1: dir/NAME.h5.d/run.h5 holds epoch 0 and its
 * checkpoint; a pristine copy goes to dir/NAME.pristine. */
static void killed_run(const char *name, char *out, char *side, char *pristine)
{
    snprintf(out, 512, "%s/%s.h5", g_tmp, name);
    snprintf(side, 600, "%s.d/run.h5", out);
    snprintf(pristine, 600, "%s/%s.pristine", g_tmp, name);
    assert_int_equal(akt_train(out, NULL, NULL, 3), 128 + SIGKILL);
    assert_int_equal(access(side, R_OK), 0);
    copy_file(side, pristine);
}

static void set_run_attr(const char *path, const char *name, double v)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t g = H5Gopen2(f, "/runs/run", H5P_DEFAULT);
    hid_t a = H5Aopen(g, name, H5P_DEFAULT);
    assert_true(a >= 0);
    assert_true(H5Awrite(a, H5T_NATIVE_DOUBLE, &v) >= 0);
    H5Aclose(a);
    H5Gclose(g);
    H5Fclose(f);
}

/* The refusal contract: exit 1, the error names what, the file unchanged,
 * no results file made. */
static void expect_refused(const char *out, const char *side, const char *extra,
                           const char *s1, const char *s2)
{
    char before[700];
    snprintf(before, sizeof before, "%s/before.h5", g_tmp);
    copy_file(side, before);
    int st = akt_train(out, NULL, extra, 0);
    const char *msg = last_error();
    note("refused (exit %d): %s", st, msg);
    assert_int_equal(st, 1);
    assert_non_null(strstr(msg, s1));
    if (s2)
        assert_non_null(strstr(msg, s2));
    assert_true(same_bytes(before, side));
    assert_int_equal(access(out, F_OK), -1);
}

/* ------------------------------------------------------------------ */

static void test_nan_logits(void **s)
{
    (void)s;
    if (!have_data())
        skip();
    struct akt_resnet m;
    akt_resnet_init(&m, 20, 10, AKT_SHORTCUT_PAD);
    for (int64_t i = 0; i < m.n_values; i++)
        m.values[i] = NAN;
    struct akt_dataset d;
    struct akt_error e = {0};
    assert_int_equal(akt_cifar_load(&d, g_data, AKT_CIFAR_AUTO, &e), 0);
    d.n = 60;
    struct akt_eval_result r;
    int rc = akt_evaluate(&m, NULL, &d, 25, NULL, NULL, &r, &e);
    note("%s: %s\n", e.where, e.what);
    assert_int_equal(rc, AKT_ENUMERIC); /* before: top1 = 99.10 on all-NaN logits */
    assert_non_null(strstr(e.what, "batch 0"));
    assert_non_null(strstr(e.what, "NaN"));
    akt_dataset_free(&d);
    akt_resnet_free(&m);
}

static void test_checkpoint_epoch(void **s)
{
    (void)s;
    if (!have_data())
        skip();
    char out[512], side[600], pristine[600];
    killed_run("ck", out, side, pristine);
    /* 3 = the configured epochs with one stored: was "done"; 100 and 1e30
     * past the schedule; 0.5 silently redid epoch 0 */
    static const double bad[] = {3, 2, 100, 0.5, 1e30, -1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        copy_file(pristine, side);
        set_run_attr(side, "checkpoint_epoch", bad[i]);
        expect_refused(out, side, NULL, "checkpoint_epoch", NULL);
    }
    /* untouched, the same file resumes and finishes */
    copy_file(pristine, side);
    assert_int_equal(akt_train(out, NULL, NULL, 0), 0);
}

/* FNV-1a 64 as results/README.md defines the checkpoint checksums */
static void set_checksum(hid_t g, const char *name, const void *data, size_t n)
{
    const unsigned char *b = data;
    uint64_t h = 14695981039346656037ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    char attr[64], hex[24], *p = hex;
    snprintf(attr, sizeof attr, "fnv1a64_%s", name);
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h);
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, H5T_VARIABLE);
    H5Tset_cset(t, H5T_CSET_UTF8);
    hid_t a = H5Aopen(g, attr, H5P_DEFAULT);
    assert_true(a >= 0 && H5Awrite(a, t, &p) >= 0);
    H5Aclose(a);
    H5Tclose(t);
}

/* Changes dataset name of the checkpoint: element k := v (float), or every
 * element := 0 (ints, k < 0); fix_sum: recompute its checksum too. */
static void edit_checkpoint(const char *path, const char *name, long k, float v, int fix_sum)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t g = H5Gopen2(f, "/runs/run/checkpoint", H5P_DEFAULT);
    hid_t d = H5Dopen2(g, name, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t sp = H5Dget_space(d);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    int ints = k < 0;
    void *buf = malloc((size_t)n * 4);
    assert_true(H5Dread(d, ints ? H5T_NATIVE_INT : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL,
                        H5P_DEFAULT, buf) >= 0);
    if (ints)
        memset(buf, 0, (size_t)n * 4);
    else
        ((float *)buf)[k < n ? k : n - 1] = v;
    assert_true(H5Dwrite(d, ints ? H5T_NATIVE_INT : H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL,
                         H5P_DEFAULT, buf) >= 0);
    if (fix_sum)
        set_checksum(g, name, buf, (size_t)n * 4);
    free(buf);
    H5Sclose(sp);
    H5Dclose(d);
    H5Gclose(g);
    H5Fclose(f);
}

static void test_corrupt_checkpoint(void **s)
{
    (void)s;
    if (!have_data())
        skip();
    char out[512], side[600], pristine[600];
    killed_run("corrupt", out, side, pristine);
    /* the generator's Adam step (its last float): -5 aborted on an
     * assertion and left the run "running" */
    copy_file(pristine, side);
    edit_checkpoint(side, "generator_state", 1L << 40, -5.0f, 0);
    expect_refused(out, side, NULL, "checkpoint/generator_state", "checksum mismatch");
    /* contents no checkpoint akt wrote can hold, even with a matching checksum */
    copy_file(pristine, side);
    edit_checkpoint(side, "student_values", 7, NAN, 1);
    expect_refused(out, side, NULL, "checkpoint/student_values", "NaN");
    copy_file(pristine, side);
    edit_checkpoint(side, "rng_state", -1, 0, 1);
    expect_refused(out, side, NULL, "checkpoint/rng_state", "all zero");
}

static void test_clash_changes_nothing(void **s)
{
    (void)s;
    if (!have_data())
        skip();
    char out[512], side[600], pristine[600];
    killed_run("clash", out, side, pristine);
    /* an unfinished run: the refusal used to overwrite its status with failed */
    expect_refused(out, side, "--set lr_student=0.001", "different configuration",
                   "lr_student");
    /* a finished one */
    assert_int_equal(akt_train(out, NULL, NULL, 0), 0);
    char before[700];
    snprintf(before, sizeof before, "%s/done_before.h5", g_tmp);
    copy_file(out, before);
    int st = akt_train(out, NULL, "--iters 3", 0);
    note("refused (exit %d): %s", st, last_error());
    assert_int_equal(st, 1);
    assert_non_null(strstr(last_error(), "iters"));
    assert_true(same_bytes(before, out));
}

static void test_second_writer(void **s)
{
    (void)s;
    if (!have_data())
        skip();
    /* what NFS/Lustre users set: HDF5 then no longer stops a second writer */
    setenv("HDF5_USE_FILE_LOCKING", "FALSE", 1);
    char out[512], side[600];
    snprintf(out, sizeof out, "%s/shared.h5", g_tmp);
    snprintf(side, sizeof side, "%s.d/run.h5", out);
    char *argv[] = {getenv("AKT_BIN"), "train", "--teacher", g_teacher, "--data", g_data,
                    "--generator", "gdfq", "--loss", "akt", "--epochs", "100", "--iters", "20",
                    "--batch", "4", "--threads", "1", "--set", "eval_limit=20", "--out", out,
                    "--quiet", NULL};
    pid_t pid;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    assert_int_equal(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    /* the first writer holds the lock once its run file exists */
    for (int i = 0; i < 1200 && access(side, F_OK) != 0; i++)
        usleep(100000);
    assert_int_equal(access(side, F_OK), 0);
    int st = akt_train(out, NULL, "--set id=other", 0);
    const char *msg = last_error();
    note("second writer (exit %d): %s", st, msg);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    assert_int_equal(st, 1);
    assert_non_null(strstr(msg, out));
    assert_non_null(strstr(msg, "another akt process"));
    /* a killed holder leaves no lock behind */
    assert_int_equal(akt_train(out, NULL, "--set id=other", 0), 0);
    unsetenv("HDF5_USE_FILE_LOCKING");
}

/* The value of key in a flat YAML map, parsed with libyaml; NULL if the
 * text is not YAML or has no such key. */
static char *yaml_value(const char *text, const char *key)
{
    yaml_parser_t ps;
    yaml_document_t doc;
    char *v = NULL;
    yaml_parser_initialize(&ps);
    yaml_parser_set_input_string(&ps, (const unsigned char *)text, strlen(text));
    if (yaml_parser_load(&ps, &doc)) {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        for (yaml_node_pair_t *p = root && root->type == YAML_MAPPING_NODE
                                       ? root->data.mapping.pairs.start
                                       : NULL;
             p && p < root->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(&doc, p->key);
            yaml_node_t *x = yaml_document_get_node(&doc, p->value);
            if (k->type == YAML_SCALAR_NODE && x->type == YAML_SCALAR_NODE &&
                !strcmp((char *)k->data.scalar.value, key))
                v = strdup((char *)x->data.scalar.value);
        }
        yaml_document_delete(&doc);
    }
    yaml_parser_delete(&ps);
    return v;
}

static void test_config_is_yaml(void **s)
{
    (void)s;
    if (!have_data())
        skip();
    char dir[512], teacher[700], out[512];
    snprintf(dir, sizeof dir, "%s/we\"ird \\dir: #x", g_tmp);
    assert_int_equal(mkdir(dir, 0777), 0);
    snprintf(teacher, sizeof teacher, "%s/t.h5", dir);
    assert_int_equal(symlink(g_teacher, teacher), 0);
    snprintf(out, sizeof out, "%s/yaml.h5", g_tmp);
    /* killed and resumed: the resume compares the stored config with libyaml */
    assert_int_equal(akt_train(out, teacher, NULL, 3), 128 + SIGKILL);
    assert_int_equal(akt_train(out, teacher, NULL, 0), 0);
    struct akt_results *r;
    struct akt_error e = {0};
    assert_int_equal(akt_results_open_read(&r, out, &e), 0);
    char cfg[65536];
    assert_int_equal(akt_results_get_config(r, "run", cfg, sizeof cfg), 0);
    akt_results_close(r, &e);
    char *t = yaml_value(cfg, "teacher");
    note("stored: %s", strstr(cfg, "teacher"));
    assert_non_null(t); /* before: not YAML at all */
    assert_string_equal(t, teacher);
    free(t);
}

static int setup(void **s)
{
    (void)s;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/akt-crash-XXXXXX");
    return mkdtemp(g_tmp) ? 0 : -1;
}

static int teardown(void **s)
{
    (void)s;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nan_logits),
        cmocka_unit_test(test_checkpoint_epoch),
        cmocka_unit_test(test_corrupt_checkpoint),
        cmocka_unit_test(test_clash_changes_nothing),
        cmocka_unit_test(test_second_writer),
        cmocka_unit_test(test_config_is_yaml),
    };
    return cmocka_run_group_tests_name("e2e_crash", tests, setup, teardown);
}
