/* End to end, the later methods (synq, hast, hast_set, intraq_set): tiny
 * schedules of synq with every generator and of the new generators with the
 * other losses, and a synthetic set that resumes bit-identically. The
 * helpers follow tests/e2e_train.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "akt/akt.h"
#include "akt/results.h"
#include "akt/run.h"

#define note(...) (printf("# "), printf(__VA_ARGS__), fflush(stdout))

static char g_tmp[256];
static char g_teacher[1024], g_data[1024];
static struct akt_registry g_reg;

static int have_data(void)
{
    const char *root = getenv("AKT_DATA");
    if (!root)
        return 0;
    snprintf(g_teacher, sizeof g_teacher, "%s/teachers/resnet20_cifar10_akamaster_optA.h5", root);
    snprintf(g_data, sizeof g_data, "%s/cifar-10-batches-bin/test_batch_lossless1000.bin", root);
    return access(g_teacher, R_OK) == 0 && access(g_data, R_OK) == 0;
}

/* 2 epochs x 2 iterations x batch 8, SGD in epoch 1, 100 test images */
static void tiny_config(struct akt_run_config *c, const char *gen, const char *loss)
{
    akt_run_config_defaults(c);
    snprintf(c->teacher_path, sizeof c->teacher_path, "%s", g_teacher);
    snprintf(c->data_path, sizeof c->data_path, "%s", g_data);
    snprintf(c->generator, sizeof c->generator, "%s", gen);
    snprintf(c->loss, sizeof c->loss, "%s", loss);
    c->epochs = 2;
    c->iters = 2;
    c->batch = 8;
    c->warmup_epochs = 1;
    c->tracker_epochs = 1;
    c->n_milestones = 0;
    c->eval_batch = 100;
    c->eval_limit = 100;
    c->seed = 5;
    c->threads = 2;
    const struct akt_plugin *g = akt_registry_find(&g_reg, AKT_PLUGIN_GENERATOR, gen);
    const struct akt_plugin *l = akt_registry_find(&g_reg, AKT_PLUGIN_LOSS, loss);
    assert_non_null(g);
    assert_non_null(l);
    akt_params_defaults(g, &c->gen_params);
    akt_params_defaults(l, &c->loss_params);
}

/* Reads /runs/<id>/metrics/<name>/value (scalar series) into v: rows, or -1. */
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

/* Stops a run after the epoch given (the Ctrl-C path), for the resume test. */
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

/* The later methods on the tiny schedule: synq with every generator (the
 * shipped three, hast and both synthetic sets), the new generators with the
 * logit and AKT losses, and synq+akt (rfd=true). The sets stay tiny: 16
 * images, 3 synthesis steps. */
static int is_set(const char *gen) { return !strcmp(gen, "hast_set") || !strcmp(gen, "intraq_set"); }

static void tiny_sota(struct akt_run_config *c, const char *gen, const char *loss)
{
    tiny_config(c, gen, loss);
    if (!is_set(gen))
        return;
    const struct akt_plugin *g = akt_registry_find(&g_reg, AKT_PLUGIN_GENERATOR, gen);
    static const char *kv[3][2] = {{"size", "16"}, {"synth_batch", "16"}, {"iters", "3"}};
    struct akt_error e = {0};
    for (int i = 0; i < 3; i++)
        assert_int_equal(akt_params_set(g, &c->gen_params, kv[i][0], kv[i][1], "test", &e), 0);
}

static void test_matrix_sota(void **s)
{
    (void)s;
    if (!have_data())
        skip();
    static const struct { const char *gen, *loss; int quick; } cells[] = {
        {"gdfq", "synq", 0},     {"qimera", "synq", 1},   {"adadfq", "synq", 0},
        {"hast", "synq", 0},     {"hast_set", "synq", 0}, {"intraq_set", "synq", 1},
        {"hast", "logit", 0},    {"hast", "akt", 1},      {"hast_set", "logit", 1},
        {"hast_set", "akt", 0},  {"intraq_set", "logit", 0}, {"intraq_set", "akt", 0},
        {"adadfq", "synq+akt", 1},
    };
    int quick = getenv("AKT_QUICK") != NULL;
    for (size_t k = 0; k < sizeof cells / sizeof cells[0]; k++) {
        if (quick && !cells[k].quick)
            continue;
        int synq_akt = !strcmp(cells[k].loss, "synq+akt");
        const char *loss = synq_akt ? "synq" : cells[k].loss;
        struct akt_run_config c;
        tiny_sota(&c, cells[k].gen, loss);
        struct akt_error e = {0};
        if (synq_akt)
            assert_int_equal(akt_params_set(akt_registry_find(&g_reg, AKT_PLUGIN_LOSS, "synq"),
                                            &c.loss_params, "rfd", "true", "test", &e), 0);
        char out[512];
        snprintf(out, sizeof out, "%s/sota_%s_%s.h5", g_tmp, cells[k].gen, synq_akt ? "synqakt" : loss);
        snprintf(c.id, sizeof c.id, "%s-%s", cells[k].gen, loss);
        snprintf(c.out_path, sizeof c.out_path, "%s", out);
        struct akt_run_result r;
        int rc = akt_run_train(&c, &g_reg, NULL, &r, &e);
        if (rc)
            note("%s: %s\n", e.where, e.what);
        assert_int_equal(rc, 0);
        assert_int_equal(r.epochs_done, 2);
        assert_true(isfinite(r.best_top1) && r.best_top1 >= 0 && r.best_top1 <= 100);
        double v[8];
        assert_int_equal(read_metric(out, c.id, "loss_q", v, 8), 2);
        assert_true(isfinite(v[0]) && isfinite(v[1]));
        int nf = read_metric(out, c.id, "loss.feature", v, 8);
        note("%-10s %-8s best %.2f final %.2f, loss.feature %g\n", cells[k].gen, cells[k].loss,
             r.best_top1, r.final_top1, nf == 2 ? v[1] : NAN);
        if (!strcmp(loss, "akt") || synq_akt)
            assert_true(nf == 2 && v[0] > 0 && v[1] > 0);
        else
            assert_true(nf == -1 || (nf == 2 && v[0] == 0 && v[1] == 0));
        if (!strcmp(loss, "synq")) {
            /* the CAM term and the share of easy samples, every epoch */
            assert_int_equal(read_metric(out, c.id, "loss.cam", v, 8), 2);
            assert_true(v[0] > 0 && isfinite(v[0]) && v[1] > 0 && isfinite(v[1]));
            assert_int_equal(read_metric(out, c.id, "loss.easy", v, 8), 2);
            assert_true(v[0] >= 0 && v[0] <= 1 && v[1] >= 0 && v[1] <= 1);
        }
        if (!strcmp(cells[k].gen, "hast")) {
            assert_int_equal(read_metric(out, c.id, "gen.focal", v, 8), 2);
            assert_true(v[0] > 0 && isfinite(v[1]));
        }
        if (is_set(cells[k].gen)) { /* nothing trains: no generator loss */
            assert_int_equal(read_metric(out, c.id, "loss_g", v, 8), 2);
            assert_true(v[0] == 0 && v[1] == 0);
        }
    }
}

/* A synthetic set resumes bit-identically: the set is rebuilt from the seed
 * in create(), the sampler's permutation and cursor come back from the
 * checkpoint (intraq_set + synq: the low-pass filter and the CAM too). */
static void test_set_resume(void **s)
{
    (void)s;
    if (!have_data())
        skip();
    static const char *names[] = {"top1", "loss_q", "grad_norm", "loss.cam", "loss.ce",
                                  "loss.easy"};
    double ref[6][8], got[6][8];
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/set_a.h5", g_tmp);
    snprintf(b, sizeof b, "%s/set_b.h5", g_tmp);
    struct akt_run_config c;
    tiny_sota(&c, "intraq_set", "synq");
    c.epochs = 3;
    c.iters = 5; /* 40 draws per epoch from 16 images: passes cross epochs */
    struct akt_run_result r;
    struct akt_error e = {0};
    snprintf(c.out_path, sizeof c.out_path, "%s", a);
    int rc = akt_run_train(&c, &g_reg, NULL, &r, &e);
    if (rc)
        note("%s: %s\n", e.where, e.what);
    assert_int_equal(rc, 0);
    snprintf(c.out_path, sizeof c.out_path, "%s", b);
    struct stop_after sa = {.stop = 0, .epoch = 0};
    struct akt_run_callbacks cb = {.epoch = stop_on_epoch, .stop = &sa.stop, .user = &sa};
    assert_int_equal(akt_run_train(&c, &g_reg, &cb, &r, &e), AKT_EINTR);
    assert_int_equal(r.epochs_done, 1);
    assert_int_equal(akt_run_train(&c, &g_reg, NULL, &r, &e), 0); /* resumes at epoch 1 */
    for (int k = 0; k < 6; k++) {
        assert_int_equal(read_metric(a, c.id, names[k], ref[k], 8), 3);
        assert_int_equal(read_metric(b, c.id, names[k], got[k], 8), 3);
        assert_memory_equal(ref[k], got[k], 3 * sizeof(double));
    }
    /* the checkpoint holds the sampler, not the images: 1 + 16 floats */
    hid_t f = H5Fopen(b, H5F_ACC_RDONLY, H5P_DEFAULT);
    char ds[256];
    snprintf(ds, sizeof ds, "/runs/%s/checkpoint/generator_state", c.id);
    hid_t d = H5Dopen2(f, ds, H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t sp = H5Dget_space(d);
    assert_int_equal(H5Sget_simple_extent_npoints(sp), 17);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
}

static int setup(void **s)
{
    (void)s;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/akt-sota-XXXXXX");
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
        cmocka_unit_test(test_matrix_sota),
        cmocka_unit_test(test_set_resume),
    };
    return cmocka_run_group_tests_name("e2e_sota", tests, setup, teardown);
}
