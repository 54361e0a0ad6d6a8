/* End to end: every generator x loss runs a tiny zero-shot schedule on the
 * shared teacher, writes a valid results file, and repeats bit-identically;
 * bad configurations are refused with precise errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "akt/akt.h"
#include "akt/results.h"
#include "akt/run.h"

#define note(...) (printf("# "), printf(__VA_ARGS__), fflush(stdout))

static char g_tmp[256];
static char g_teacher[1024], g_data[1024], g_teacher56[1024];
static struct akt_registry g_reg;

static int have_data(void)
{
    const char *root = getenv("AKT_DATA");
    if (!root)
        return 0;
    snprintf(g_teacher, sizeof g_teacher, "%s/teachers/resnet20_cifar10_akamaster_optA.h5", root);
    snprintf(g_data, sizeof g_data, "%s/cifar-10-batches-bin/test_batch_lossless1000.bin", root);
    snprintf(g_teacher56, sizeof g_teacher56, "%s/teachers/resnet56_cifar10_akamaster_optA.h5",
             root);
    return access(g_teacher, R_OK) == 0 && access(g_data, R_OK) == 0 &&
           access(g_teacher56, R_OK) == 0;
}

static void tiny_config(struct akt_run_config *c, const char *gen, const char *loss)
{
    akt_run_config_defaults(c);
    snprintf(c->teacher_path, sizeof c->teacher_path, "%s", g_teacher);
    snprintf(c->data_path, sizeof c->data_path, "%s", g_data);
    snprintf(c->generator, sizeof c->generator, "%s", gen);
    snprintf(c->loss, sizeof c->loss, "%s", loss);
    c->epochs = 2;
    c->iters = 3;
    c->batch = 8;
    c->warmup_epochs = 1; /* the student takes SGD steps in epoch 1 */
    c->tracker_epochs = 1;
    c->n_milestones = 0;
    c->eval_batch = 100;
    c->eval_limit = 200; /* the first 200 test images keep the suite fast */
    c->seed = 5;
    c->threads = 2;
    const struct akt_plugin *g = akt_registry_find(&g_reg, AKT_PLUGIN_GENERATOR, gen);
    const struct akt_plugin *l = akt_registry_find(&g_reg, AKT_PLUGIN_LOSS, loss);
    assert_non_null(g);
    assert_non_null(l);
    akt_params_defaults(g, &c->gen_params);
    akt_params_defaults(l, &c->loss_params);
}

/* Reads /runs/<id>/metrics/<name>/value (scalar series) into v. */
static int read_metric(const char *path, const char *id, const char *name, double *v, int max)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return -1;
    char ds[512];
    snprintf(ds, sizeof ds, "/runs/%s/metrics/%s/value", id, name);
    int n = -1;
    if (H5Lexists(f, "/runs", H5P_DEFAULT) > 0 && H5Oexists_by_name(f, ds, H5P_DEFAULT) > 0) {
        hid_t d = H5Dopen2(f, ds, H5P_DEFAULT);
        hid_t sp = H5Dget_space(d);
        hsize_t dims[2];
        H5Sget_simple_extent_dims(sp, dims, NULL);
        n = (int)dims[0];
        if (n <= max)
            H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
        H5Sclose(sp);
        H5Dclose(d);
    }
    H5Fclose(f);
    return n;
}

static void test_matrix(void **s)
{
    (void)s;
    if (!have_data())
        skip();
    static const char *gens[] = {"gdfq", "qimera", "adadfq"};
    static const char *losses[] = {"logit", "spatial", "channel", "akt"};
    /* AKT_QUICK (sanitizer runs): 4 cells that still use every plugin */
    int quick = getenv("AKT_QUICK") != NULL;
    for (int gi = 0; gi < 3; gi++)
        for (int li = 0; li < 4; li++) {
            if (quick && !((gi == 0 && (li == 0 || li == 3)) || (gi == 1 && li == 1) ||
                           (gi == 2 && li == 2)))
                continue;
            struct akt_run_config c;
            tiny_config(&c, gens[gi], losses[li]);
            char out[512];
            snprintf(out, sizeof out, "%s/%s_%s.h5", g_tmp, gens[gi], losses[li]);
            snprintf(c.id, sizeof c.id, "%s-%s", gens[gi], losses[li]);
            snprintf(c.out_path, sizeof c.out_path, "%s", out);
            struct akt_run_result r;
            struct akt_error e = {0};
            int rc = akt_run_train(&c, &g_reg, NULL, &r, &e);
            if (rc)
                note("%s: %s\n", e.where, e.what);
            assert_int_equal(rc, 0);
            assert_int_equal(r.epochs_done, 2);
            assert_true(isfinite(r.best_top1) && r.best_top1 >= 0 && r.best_top1 <= 100);
            note("%-6s %-7s best %.2f final %.2f (teacher %.2f)\n", gens[gi], losses[li],
                 r.best_top1, r.final_top1, r.top1_fp);
            assert_true(r.top1_fp > 85 && r.top1_fp <= 100); /* the teacher, on 200 images */
            double v[8];
            assert_int_equal(read_metric(out, c.id, "top1", v, 8), 2);
            assert_int_equal(read_metric(out, c.id, "loss_q", v, 8), 2);
            assert_true(isfinite(v[0]) && isfinite(v[1]));
            assert_int_equal(read_metric(out, c.id, "loss_g", v, 8), 2);
            assert_true(isfinite(v[0]) && isfinite(v[1]));
            int n = read_metric(out, c.id, "loss.feature", v, 8);
            if (li == 0) {
                /* the logit loss has no feature term at all, or an exact 0 */
                assert_true(n == -1 || (n == 2 && v[0] == 0.0 && v[1] == 0.0));
            } else {
                assert_int_equal(n, 2);
                assert_true(v[0] > 0 && v[1] > 0 && isfinite(v[0]));
            }
            struct akt_results *res;
            assert_int_equal(akt_results_open(&res, out, &e), 0);
            char status[64];
            assert_int_equal(akt_results_get_status(res, c.id, status, sizeof status), 0);
            assert_string_equal(status, "done");
            akt_results_close(res, &e);
        }
}

/* Every generator x loss on the ResNet-56 teacher (27 body outputs, 55
 * activation quantizers): a tiny schedule, the feature term exactly 0 for
 * logit and positive otherwise, and the activation ranges of all 55 ReLUs. */
static void test_matrix_resnet56(void **s)
{
    (void)s;
    if (!have_data())
        skip();
    static const char *gens[] = {"gdfq", "qimera", "adadfq"};
    static const char *losses[] = {"logit", "spatial", "channel", "akt"};
    int quick = getenv("AKT_QUICK") != NULL;
    for (int gi = 0; gi < 3; gi++)
        for (int li = 0; li < 4; li++) {
            if (quick && !((gi == 0 && (li == 0 || li == 3)) || (gi == 2 && li == 2)))
                continue;
            struct akt_run_config c;
            tiny_config(&c, gens[gi], losses[li]);
            snprintf(c.teacher_path, sizeof c.teacher_path, "%s", g_teacher56);
            c.epochs = 1;
            c.iters = 2;
            c.batch = 4;
            c.warmup_epochs = 0; /* SGD steps in the one epoch */
            c.eval_limit = 20;
            c.eval_batch = 20;
            char out[512];
            snprintf(out, sizeof out, "%s/r56_%s_%s.h5", g_tmp, gens[gi], losses[li]);
            snprintf(c.id, sizeof c.id, "%s-%s", gens[gi], losses[li]);
            snprintf(c.out_path, sizeof c.out_path, "%s", out);
            struct akt_run_result r;
            struct akt_error e = {0};
            int rc = akt_run_train(&c, &g_reg, NULL, &r, &e);
            if (rc)
                note("%s: %s\n", e.where, e.what);
            assert_int_equal(rc, 0);
            assert_int_equal(r.epochs_done, 1);
            double v[2 * 55 + 8];
            int n = read_metric(out, c.id, "loss.feature", v, 8);
            note("resnet56 %-6s %-7s final %.1f (teacher %.1f on 20), loss.feature %g\n",
                 gens[gi], losses[li], r.final_top1, r.top1_fp, n == 1 ? v[0] : NAN);
            if (li == 0)
                assert_true(n == 1 && v[0] == 0.0);
            else
                assert_true(n == 1 && v[0] > 0 && isfinite(v[0]));
            /* one row of 55 lower then 55 upper bounds */
            hid_t f = H5Fopen(out, H5F_ACC_RDONLY, H5P_DEFAULT);
            char ds[256];
            snprintf(ds, sizeof ds, "/runs/%s/metrics/act_range/value", c.id);
            hid_t d = H5Dopen2(f, ds, H5P_DEFAULT);
            hid_t sp = H5Dget_space(d);
            hsize_t dims[2] = {0, 0};
            assert_int_equal(H5Sget_simple_extent_ndims(sp), 2);
            H5Sget_simple_extent_dims(sp, dims, NULL);
            assert_true(dims[0] == 1 && dims[1] == 2 * 55);
            H5Sclose(sp);
            H5Dclose(d);
            /* 27 body outputs' maps among the final tensors */
            snprintf(ds, sizeof ds, "/runs/%s/tensors/attention/student_channel_F27", c.id);
            assert_true(H5Oexists_by_name(f, ds, H5P_DEFAULT) > 0);
            H5Fclose(f);
            /* the depth, read off the teacher */
            double depth = 0;
            struct akt_results *res;
            assert_int_equal(akt_results_open(&res, out, &e), 0);
            assert_int_equal(akt_results_get_attr(res, c.id, "depth", &depth), 0);
            assert_true(depth == 56);
            akt_results_close(res, &e);
        }
}

/* A generator with nothing to train (test_noise: no loss, update or state)
 * runs, checkpoints 0 generator floats, and resumes bit-identically after a
 * stop in epoch 1. */
struct stop_after {
    volatile int stop;
    int epoch;
};

static void stop_on_epoch(const struct akt_epoch_report *rep, void *user)
{
    struct stop_after *sa = user;
    if (rep->epoch == sa->epoch)
        sa->stop = 1;
}

static void test_noise_generator(void **s)
{
    (void)s;
    if (!have_data())
        skip();
    char so[1024];
    snprintf(so, sizeof so, "%s/testing/test_noise.so", getenv("AKT_PLUGIN_BUILD"));
    struct akt_error e = {0};
    if (!akt_registry_find(&g_reg, AKT_PLUGIN_GENERATOR, "test_noise"))
        assert_int_equal(akt_registry_load_file(&g_reg, so, &e), 0);
    double ref[3][8], got[3][8];
    static const char *names[3] = {"top1", "loss_q", "grad_norm"};
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/noise_a.h5", g_tmp);
    snprintf(b, sizeof b, "%s/noise_b.h5", g_tmp);
    struct akt_run_config c;
    tiny_config(&c, "test_noise", "akt");
    c.epochs = 3;
    struct akt_run_result r;
    snprintf(c.out_path, sizeof c.out_path, "%s", a);
    int rc = akt_run_train(&c, &g_reg, NULL, &r, &e);
    if (rc)
        note("%s: %s\n", e.where, e.what);
    assert_int_equal(rc, 0);
    assert_true(r.best_top1 >= 0);
    double lg[8];
    assert_int_equal(read_metric(a, c.id, "loss_g", lg, 8), 3);
    assert_true(lg[0] == 0 && lg[2] == 0); /* no generator loss */

    snprintf(c.out_path, sizeof c.out_path, "%s", b);
    struct stop_after sa = {.stop = 0, .epoch = 0};
    struct akt_run_callbacks cb = {.epoch = stop_on_epoch, .stop = &sa.stop, .user = &sa};
    assert_int_equal(akt_run_train(&c, &g_reg, &cb, &r, &e), AKT_EINTR);
    assert_int_equal(r.epochs_done, 1);
    assert_int_equal(akt_run_train(&c, &g_reg, NULL, &r, &e), 0); /* resumes at epoch 1 */
    for (int k = 0; k < 3; k++) {
        assert_int_equal(read_metric(a, c.id, names[k], ref[k], 8), 3);
        assert_int_equal(read_metric(b, c.id, names[k], got[k], 8), 3);
        assert_memory_equal(ref[k], got[k], 3 * sizeof(double));
    }
}

static void test_determinism(void **s)
{
    (void)s;
    if (!have_data())
        skip();
    double a[4][8], b[4][8];
    static const char *names[4] = {"top1", "loss_g", "loss_q", "grad_norm"};
    for (int rep = 0; rep < 2; rep++) {
        struct akt_run_config c;
        tiny_config(&c, "adadfq", "akt");
        char out[512];
        snprintf(out, sizeof out, "%s/det%d.h5", g_tmp, rep);
        snprintf(c.out_path, sizeof c.out_path, "%s", out);
        struct akt_run_result r;
        struct akt_error e = {0};
        assert_int_equal(akt_run_train(&c, &g_reg, NULL, &r, &e), 0);
        for (int k = 0; k < 4; k++)
            assert_int_equal(read_metric(out, c.id, names[k], rep ? b[k] : a[k], 8), 2);
    }
    for (int k = 0; k < 4; k++)
        assert_memory_equal(a[k], b[k], 2 * sizeof(double));
}

/* SIGKILL in the middle of epoch 1 (the CLI's fault-injection hook), then the
 * same command again: it resumes from the epoch-0 checkpoint and ends
 * bit-identical to an uninterrupted run. The runs go through the akt binary:
 * fork without exec is unsafe once OpenMP threads exist. */
static int akt_cli(const char *out, const char *kill_after)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "%s%s '%s' train --teacher '%s' --data '%s' --generator gdfq --loss akt --epochs 3 "
             "--iters 3 --batch 8 --seed 5 --threads 2 --set warmup_epochs=1 "
             "--set tracker_epochs=1 --set milestones=none --set eval_batch=100 "
             "--set eval_limit=200 --out '%s' --quiet > /dev/null 2>&1",
             kill_after ? "AKT_KILL_AFTER_ITERS=" : "", kill_after ? kill_after : "",
             getenv("AKT_BIN"), g_teacher, g_data, out);
    return system(cmd);
}

static void test_resume_after_sigkill(void **s)
{
    (void)s;
    if (!have_data() || !getenv("AKT_BIN"))
        skip();
    static const char *names[] = {"top1", "top5", "loss_g", "loss_q", "grad_norm", "gen.bns",
                                  "loss.feature"};
    double ref[7][8], got[7][8];
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/straight.h5", g_tmp);
    snprintf(b, sizeof b, "%s/killed.h5", g_tmp);
    assert_int_equal(akt_cli(a, NULL), 0);
    int st = akt_cli(b, "4"); /* dies in epoch 1, iteration 1 */
    assert_true(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 128 + SIGKILL));
    struct akt_error e = {0};
    struct akt_results *res;
    /* what a killed run leaves: the results file was never made; the run
     * file OUT.h5.d/run.h5 holds epoch 0 and its checkpoint */
    assert_int_equal(access(b, F_OK), -1);
    char side[1100];
    assert_int_equal(akt_results_run_file(b, "run", side, sizeof side), 0);
    assert_int_equal(akt_results_open_read(&res, side, &e), 0);
    char status[32];
    akt_results_get_status(res, "run", status, sizeof status);
    assert_string_equal(status, "running");
    assert_int_equal(akt_results_rows(res, "run", "top1"), 1);
    double ck = 0;
    assert_int_equal(akt_results_get_attr(res, "run", "checkpoint_epoch", &ck), 0);
    assert_true(ck == 1);
    akt_results_close(res, &e);

    assert_int_equal(akt_cli(b, NULL), 0); /* resumes */
    assert_int_equal(access(side, F_OK), -1); /* committed into b, run file gone */
    for (int k = 0; k < 7; k++) {
        assert_int_equal(read_metric(a, "run", names[k], ref[k], 8), 3);
        assert_int_equal(read_metric(b, "run", names[k], got[k], 8), 3);
        assert_memory_equal(ref[k], got[k], 3 * sizeof(double));
    }
    assert_int_equal(akt_cli(b, NULL), 0); /* finished: skipped, not repeated */
    assert_int_equal(read_metric(b, "run", "top1", got[0], 8), 3);

    /* the same run id with another configuration is refused, nothing lost */
    struct akt_run_config c;
    tiny_config(&c, "gdfq", "akt");
    snprintf(c.id, sizeof c.id, "run");
    snprintf(c.out_path, sizeof c.out_path, "%s", b);
    struct akt_run_result r;
    assert_int_equal(akt_run_train(&c, &g_reg, NULL, &r, &e), AKT_EINVAL);
    assert_non_null(strstr(e.what, "different configuration"));
    assert_int_equal(read_metric(b, "run", "top1", got[0], 8), 3);
}

/* A NaN loss stops the run naming epoch and iteration; the epochs measured
 * before it stay in the results file. */
static void test_nan_stops_and_saves(void **s)
{
    (void)s;
    if (!have_data())
        skip();
    char so[1024];
    snprintf(so, sizeof so, "%s/testing/test_nan_loss.so", getenv("AKT_PLUGIN_BUILD"));
    struct akt_error e = {0};
    assert_int_equal(akt_registry_load_file(&g_reg, so, &e), 0);
    struct akt_run_config c;
    tiny_config(&c, "gdfq", "test_nan");
    char out[512];
    snprintf(out, sizeof out, "%s/nan.h5", g_tmp);
    snprintf(c.out_path, sizeof c.out_path, "%s", out);
    struct akt_run_result r;
    int rc = akt_run_train(&c, &g_reg, NULL, &r, &e);
    note("stopped: %s: %s\n", e.where, e.what);
    assert_int_equal(rc, AKT_ENUMERIC);
    assert_string_equal(e.where, "epoch 1 iteration 1");
    assert_non_null(strstr(e.what, "NaN"));
    double v[8];
    assert_int_equal(read_metric(out, c.id, "top1", v, 8), 1); /* epoch 0 kept */
    struct akt_results *res;
    assert_int_equal(akt_results_open(&res, out, &e), 0);
    char st[32];
    akt_results_get_status(res, c.id, st, sizeof st);
    assert_string_equal(st, "failed");
    akt_results_close(res, &e);
}

static void expect_run_error(struct akt_run_config *c, int code, const char *s1, const char *s2)
{
    struct akt_run_result r;
    struct akt_error e = {0};
    int rc = akt_run_train(c, &g_reg, NULL, &r, &e);
    char buf[1200];
    note("refused: %s\n", akt_error_format(&e, buf, sizeof buf));
    assert_int_equal(rc, code);
    assert_non_null(strstr(buf, s1));
    if (s2)
        assert_non_null(strstr(buf, s2));
}

static void test_bad_config(void **s)
{
    (void)s;
    if (!have_data())
        skip();
    struct akt_run_config c;
    tiny_config(&c, "gdfq", "akt");
    snprintf(c.generator, sizeof c.generator, "nosuchgen");
    expect_run_error(&c, AKT_EINVAL, "unknown generator plugin 'nosuchgen'", NULL);
    tiny_config(&c, "gdfq", "akt");
    snprintf(c.loss, sizeof c.loss, "nosuchloss");
    expect_run_error(&c, AKT_EINVAL, "unknown loss plugin 'nosuchloss'", NULL);
    tiny_config(&c, "gdfq", "akt");
    c.wbits = 9;
    expect_run_error(&c, AKT_EINVAL, "wbits 9", "2..8");
    tiny_config(&c, "gdfq", "akt");
    c.abits = 1;
    expect_run_error(&c, AKT_EINVAL, "abits 1", "2..8");

    /* a 100-class teacher against CIFAR-10 data */
    struct akt_resnet m;
    akt_resnet_init(&m, 20, 100, AKT_SHORTCUT_PAD);
    char path[512];
    snprintf(path, sizeof path, "%s/t100.h5", g_tmp);
    struct akt_error e = {0};
    assert_int_equal(akt_resnet_save(&m, path, &e), 0);
    akt_resnet_free(&m);
    tiny_config(&c, "gdfq", "akt");
    snprintf(c.teacher_path, sizeof c.teacher_path, "%s", path);
    expect_run_error(&c, AKT_EINVAL, "10 classes", "100");

    /* plugin parameters: unknown key, out of range */
    const struct akt_plugin *l = akt_registry_find(&g_reg, AKT_PLUGIN_LOSS, "akt");
    struct akt_param_values v;
    akt_params_defaults(l, &v);
    assert_int_equal(akt_params_set(l, &v, "nosuchkey", "1", "--set loss.nosuchkey", &e), AKT_EINVAL);
    note("refused: %s: %s\n", e.where, e.what);
    assert_non_null(strstr(e.where, "loss.nosuchkey"));
    assert_int_equal(akt_params_set(l, &v, "lambda", "-5", "--set loss.lambda", &e), AKT_EINVAL);
    note("refused: %s: %s\n", e.where, e.what);
    assert_non_null(strstr(e.what, "range"));
}

static int setup(void **s)
{
    (void)s;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/akt-train-XXXXXX");
    if (!mkdtemp(g_tmp))
        return -1;
    akt_registry_init(&g_reg);
    struct akt_error e = {0};
    if (akt_registry_load_default(&g_reg, &e)) {
        printf("# plugins: %s: %s\n", e.where, e.what);
        return -1;
    }
    return 0;
}

static int teardown(void **s)
{
    (void)s;
    akt_registry_free(&g_reg);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmp);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_matrix),
        cmocka_unit_test(test_matrix_resnet56),
        cmocka_unit_test(test_noise_generator),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_resume_after_sigkill),
        cmocka_unit_test(test_nan_stops_and_saves),
    };
    return cmocka_run_group_tests_name("e2e_train", tests, setup, teardown);
}
