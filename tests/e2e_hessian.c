/* Hessian trace (SPEC 8, core/run/analysis.c): the Hutchinson estimator on
 * quadratics with a known Hessian, and `akt hessian` on a tiny real run
 * (datasets written, per-layer traces summing to the total, bit-identical
 * repeats, the command line). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "akt/akt.h"
#include "akt/results.h"
#include "akt/run.h"

#define note(...) (printf("# "), printf(__VA_ARGS__), fflush(stdout))

static char g_tmp[256];
static char g_teacher[1024], g_data[1024];
static struct akt_registry g_reg;

/* ------------------------------------------------ the estimator alone --- */

/* L(w) = 1/2 w^T A w with A symmetric n x n (row-major): g = A w. */
struct quad {
    int n;
    const double *a;
    int calls;
};

static int quad_grad(void *user, float *w, float *g, struct akt_error *e)
{
    (void)e;
    struct quad *q = user;
    for (int i = 0; i < q->n; i++) {
        double s = 0;
        for (int k = 0; k < q->n; k++)
            s += q->a[(size_t)i * q->n + k] * w[k];
        g[i] = (float)s;
    }
    q->calls++;
    return 0;
}

static int failing_grad(void *user, float *w, float *g, struct akt_error *e)
{
    (void)g;
    int *calls = user;
    w[0] = 1234.0f; /* scribbles: the estimator must still restore w */
    if (++*calls == 2)
        return akt_error_set(e, AKT_ENUMERIC, "test", "gradient failed");
    return 0;
}

/* Diagonal A, Rademacher probes: v^T A v = sum_i a_ii for every v, so one
 * probe is exact; with w = 0, integer a_ii and eps = 0.25 every float and
 * double operation is exact, and so is the answer (per block too). */
static void test_diagonal_exact(void **s)
{
    (void)s;
    enum { N = 40 };
    double *a = calloc(N * N, sizeof *a);
    float w[N] = {0}, w_before[N];
    double diag_sum = 0;
    for (int i = 0; i < N; i++) {
        a[i * N + i] = (i % 7) - 2; /* negative, zero and positive curvature */
        diag_sum += a[i * N + i];
    }
    struct quad q = {N, a, 0};
    struct akt_rng rng;
    akt_rng_seed(&rng, 11);
    double total = 0;
    struct akt_error e = {0};
    assert_int_equal(akt_hutchinson(quad_grad, &q, w, N, NULL, NULL, 0, 3, 0.25, &rng, NULL,
                                    &total, &e), 0);
    assert_int_equal(q.calls, 6);
    assert_true(total == diag_sum);

    /* two blocks with a gap: the probes skip [10, 15), so the total is the
     * trace of the two diagonal blocks only */
    int64_t off[2] = {0, 15}, len[2] = {10, 25};
    double blk[2], want0 = 0, want1 = 0;
    for (int i = 0; i < 10; i++)
        want0 += a[i * N + i];
    for (int i = 15; i < N; i++)
        want1 += a[i * N + i];
    memcpy(w_before, w, sizeof w);
    assert_int_equal(akt_hutchinson(quad_grad, &q, w, N, off, len, 2, 2, 0.25, &rng, blk, &total,
                                    &e), 0);
    assert_true(blk[0] == want0);
    assert_true(blk[1] == want1);
    assert_true(total == want0 + want1);
    assert_memory_equal(w, w_before, sizeof w);

    /* away from w = 0 and with a small step: float32 rounding only */
    for (int i = 0; i < N; i++)
        w[i] = 0.1f * (float)sin(i + 1.0);
    memcpy(w_before, w, sizeof w);
    assert_int_equal(akt_hutchinson(quad_grad, &q, w, N, NULL, NULL, 0, 4, 1e-3, &rng, NULL,
                                    &total, &e), 0);
    note("diagonal, eps 1e-3: %.9g (exact %.9g)\n", total, diag_sum);
    assert_true(fabs(total - diag_sum) < 1e-3 * fabs(diag_sum));
    assert_memory_equal(w, w_before, sizeof w); /* restored bit for bit */
    free(a);
}

/* Dense symmetric A = diag(1..N) + 0.1 S: the estimate converges to Tr A
 * (the variance per probe is 2 sum_{i != k} a_ik^2). */
static void test_dense_converges(void **s)
{
    (void)s;
    enum { N = 50, M = 400 };
    double *a = calloc(N * N, sizeof *a);
    struct akt_rng rng;
    akt_rng_seed(&rng, 3);
    double tr = 0, off2 = 0;
    for (int i = 0; i < N; i++)
        for (int k = 0; k <= i; k++) {
            double x = k == i ? i + 1.0 : 0.1 * (2 * akt_rng_uniform(&rng) - 1);
            a[i * N + k] = a[k * N + i] = x;
            if (k == i)
                tr += x;
            else
                off2 += 2 * x * x;
        }
    float w[N];
    for (int i = 0; i < N; i++)
        w[i] = 0.01f * (float)(i % 5);
    struct quad q = {N, a, 0};
    int64_t off[2] = {0, 20}, len[2] = {20, 30};
    double blk[2], total = 0, t0 = 0, t1 = 0;
    for (int i = 0; i < 20; i++)
        t0 += a[i * N + i];
    for (int i = 20; i < N; i++)
        t1 += a[i * N + i];
    struct akt_error e = {0};
    assert_int_equal(akt_hutchinson(quad_grad, &q, w, N, off, len, 2, M, 1e-2, &rng, blk, &total,
                                    &e), 0);
    double sd = sqrt(2 * off2 / M);
    note("dense: %.4f (trace %.4f, sd of the mean %.4f); blocks %.4f %.4f (%.4f %.4f)\n", total,
         tr, sd, blk[0], blk[1], t0, t1);
    assert_true(fabs(total - tr) < 0.02 * tr);
    assert_true(fabs(total - tr) < 6 * sd + 1e-3 * tr);
    assert_true(fabs(blk[0] - t0) < 0.05 * t0);
    assert_true(fabs(blk[1] - t1) < 0.05 * t1);
    assert_true(fabs(blk[0] + blk[1] - total) < 1e-12 * fabs(total));
    free(a);
}

static void test_estimator_errors(void **s)
{
    (void)s;
    float w[4] = {1, 2, 3, 4}, before[4];
    memcpy(before, w, sizeof w);
    struct akt_rng rng;
    akt_rng_seed(&rng, 1);
    double total = 0;
    struct akt_error e = {0};
    int calls = 0;
    assert_int_equal(akt_hutchinson(failing_grad, &calls, w, 4, NULL, NULL, 0, 2, 1e-3, &rng,
                                    NULL, &total, &e), AKT_ENUMERIC);
    assert_memory_equal(w, before, sizeof w);
    int64_t off = 2, len = 3; /* runs past n */
    assert_int_equal(akt_hutchinson(failing_grad, &calls, w, 4, &off, &len, 1, 2, 1e-3, &rng,
                                    NULL, &total, &e), AKT_EINVAL);
    assert_int_equal(akt_hutchinson(failing_grad, &calls, w, 4, NULL, NULL, 0, 0, 1e-3, &rng,
                                    NULL, &total, &e), AKT_EINVAL);
    assert_int_equal(akt_hutchinson(failing_grad, &calls, w, 4, NULL, NULL, 0, 1, 0, &rng, NULL,
                                    &total, &e), AKT_EINVAL);
}

/* ------------------------------------------------------ on a real run --- */

static int have_data(void)
{
    const char *root = getenv("AKT_DATA");
    if (!root)
        return 0;
    snprintf(g_teacher, sizeof g_teacher, "%s/teachers/resnet20_cifar10_akamaster_optA.h5", root);
    snprintf(g_data, sizeof g_data, "%s/cifar-10-batches-bin/test_batch_lossless1000.bin", root);
    return access(g_teacher, R_OK) == 0 && access(g_data, R_OK) == 0;
}

/* A tiny run of gen + loss; extra: "KEY=VALUE" settings after them (or NULL). */
static void train_tiny_with(const char *out, const char *id, const char *gen, const char *loss,
                            const char *const *extra)
{
    struct akt_run_config c;
    akt_run_config_defaults(&c);
    struct akt_error e = {0};
    assert_int_equal(akt_run_config_set(&c, &g_reg, "teacher", g_teacher, "", &e), 0);
    assert_int_equal(akt_run_config_set(&c, &g_reg, "data", g_data, "", &e), 0);
    assert_int_equal(akt_run_config_set(&c, &g_reg, "generator", gen, "", &e), 0);
    assert_int_equal(akt_run_config_set(&c, &g_reg, "loss", loss, "", &e), 0);
    for (int i = 0; extra && extra[i]; i++) {
        char kv[128];
        snprintf(kv, sizeof kv, "%s", extra[i]);
        char *eq = strchr(kv, '=');
        *eq = 0;
        if (akt_run_config_set(&c, &g_reg, kv, eq + 1, "", &e))
            fail_msg("%s: %s", e.where, e.what);
    }
    c.epochs = 1;
    c.iters = 2;
    c.batch = 8;
    c.warmup_epochs = 0; /* the student takes its two SGD steps */
    c.tracker_epochs = 1;
    c.n_milestones = 0;
    c.eval_batch = 50;
    c.eval_limit = 50;
    c.seed = 7;
    c.threads = 2;
    snprintf(c.id, sizeof c.id, "%s", id);
    snprintf(c.out_path, sizeof c.out_path, "%s", out);
    struct akt_run_result r;
    int rc = akt_run_train(&c, &g_reg, NULL, &r, &e);
    if (rc)
        note("%s: %s\n", e.where, e.what);
    assert_int_equal(rc, 0);
}

static void train_tiny(const char *out, const char *id)
{
    train_tiny_with(out, id, "gdfq", "akt", NULL);
}

static void count_progress(int done, int total, double seconds, void *user)
{
    int *n = user;
    assert_int_equal(done, *n + 1);
    assert_int_equal(total, 4);
    assert_true(seconds >= 0);
    *n = done;
}

static void test_run_hessian(void **s)
{
    (void)s;
    if (!have_data())
        skip();
    char out[512];
    snprintf(out, sizeof out, "%s/tiny.h5", g_tmp);
    train_tiny(out, "tiny");

    struct akt_hessian_opts o;
    akt_hessian_opts_defaults(&o);
    o.probes = 2;
    o.batch = 4;
    int evals = 0; /* progress comes through the callback (the library never prints) */
    o.progress = count_progress;
    o.user = &evals;
    struct akt_hessian_result *res = malloc(sizeof *res), *res2 = malloc(sizeof *res2);
    assert_non_null(res);
    assert_non_null(res2);
    struct akt_error e = {0};
    double t0 = akt_time_ms();
    int rc = akt_run_hessian(out, "tiny", &g_reg, &o, res, &e);
    if (rc)
        note("%s: %s\n", e.where, e.what);
    assert_int_equal(rc, 0);
    note("hessian: %d layers, total %.6g, %.1fs\n", res->n_layers, res->trace_total,
         (akt_time_ms() - t0) / 1e3);
    assert_true(res->n_layers > 20 && res->layer && res->trace_layer);
    assert_int_equal(res->checkpoint_epoch, 1);
    assert_int_equal(res->batch, 4);
    assert_int_equal(res->probes, 2);
    assert_int_equal(evals, 4); /* 2 gradients per probe */
    o.progress = NULL;
    assert_true(res->seed == 8); /* the run's seed + 1 */
    assert_true(isfinite(res->trace_total));
    double sum = 0, abs_sum = 0;
    for (int i = 0; i < res->n_layers; i++) {
        assert_true(isfinite(res->trace_layer[i]));
        sum += res->trace_layer[i];
        abs_sum += fabs(res->trace_layer[i]);
    }
    assert_true(abs_sum > 0);
    assert_true(fabs(sum - res->trace_total) <= 1e-9 * abs_sum);

    /* what the file holds */
    struct akt_results *f;
    assert_int_equal(akt_results_open(&f, out, &e), 0);
    double tt = 0, *tl = calloc(res->n_layers, sizeof *tl), v;
    assert_int_equal(akt_results_read_doubles(f, "tiny", "analysis/hessian", "trace_total", &tt,
                                              1, &e), 0);
    assert_int_equal(akt_results_read_doubles(f, "tiny", "analysis/hessian", "trace_layer", tl,
                                              res->n_layers, &e), 0);
    assert_memory_equal(&tt, &res->trace_total, sizeof tt);
    assert_memory_equal(tl, res->trace_layer, res->n_layers * sizeof *tl);
    struct { const char *name; double want; } attrs[] = {
        {"probes", 2}, {"eps", 1e-3}, {"batch", 4}, {"seed", 8}, {"checkpoint_epoch", 1}};
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        assert_int_equal(akt_results_get_group_attr(f, "tiny", "analysis/hessian",
                                                    attrs[i].name, &v), 0);
        assert_true(v == attrs[i].want);
    }
    char *names = malloc(1 << 14);
    assert_int_equal(akt_results_get_group_attr_str(f, "tiny", "analysis/hessian", "layers",
                                                    names, 1 << 14), 0);
    int lines = 1;
    for (char *p = names; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, res->n_layers);
    assert_int_equal(strncmp(names, res->layer[0], strlen(res->layer[0])), 0);
    char status[32];
    assert_int_equal(akt_results_get_status(f, "tiny", status, sizeof status), 0);
    assert_string_equal(status, "done"); /* the run itself is left alone */
    assert_true(akt_results_get_group_attr(f, "tiny", "analysis/nothing", "probes", &v) < 0);
    assert_int_equal(akt_results_close(f, &e), 0);
    free(names);
    free(tl);

    /* a second call: bit-identical */
    assert_int_equal(akt_run_hessian(out, "tiny", &g_reg, &o, res2, &e), 0);
    assert_memory_equal(&res2->trace_total, &res->trace_total, sizeof(double));
    assert_memory_equal(res2->trace_layer, res->trace_layer, res->n_layers * sizeof(double));
    akt_hessian_result_free(res2);

    /* errors: an unknown run, bad options */
    assert_int_equal(akt_run_hessian(out, "nope", &g_reg, &o, res2, &e), AKT_EINVAL);
    note("unknown run: %s: %s\n", e.where, e.what);
    o.probes = 0;
    assert_int_equal(akt_run_hessian(out, "tiny", &g_reg, &o, res2, &e), AKT_EINVAL);

    /* the command line: a table ending in the total, exit 0 */
    const char *bin = getenv("AKT_BIN");
    if (bin) {
        char cmd[2048], log[600];
        snprintf(log, sizeof log, "%s/hessian.txt", g_tmp);
        snprintf(cmd, sizeof cmd, "'%s' hessian '%s' --run tiny --probes 1 --batch 2 --seed 3 "
                                  "--quiet > '%s'", bin, out, log);
        assert_int_equal(system(cmd), 0);
        FILE *fp = fopen(log, "r");
        assert_non_null(fp);
        char line[256], last[256] = "";
        int n = 0;
        while (fgets(line, sizeof line, fp)) {
            snprintf(last, sizeof last, "%s", line);
            n++;
        }
        fclose(fp);
        assert_int_equal(n, res->n_layers + 3); /* comment, header, layers, total */
        assert_int_equal(strncmp(last, "total", 5), 0);
        snprintf(cmd, sizeof cmd, "'%s' hessian '%s' --probes 2 2>/dev/null", bin, out);
        assert_int_equal(WEXITSTATUS(system(cmd)), 2); /* --run is required */
    }
    akt_hessian_result_free(res);
    akt_hessian_result_free(res2);
    free(res);
    free(res2);
}

static int setup(void **s)
{
    (void)s;
    snprintf(g_tmp, sizeof g_tmp, "/tmp/akt-hessian-XXXXXX");
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

/* A loss that prepares its images (synq's low-pass filter) on a synthetic
 * set: the analysis rebuilds the set, filters the fixed batch once and
 * repeats bit-identically. */
static void test_run_hessian_prepared(void **s)
{
    (void)s;
    if (!have_data())
        skip();
    char out[512];
    snprintf(out, sizeof out, "%s/tiny_set.h5", g_tmp);
    static const char *const extra[] = {"generator.size=8", "generator.synth_batch=8",
                                        "generator.iters=2", "loss.d0=5", NULL};
    train_tiny_with(out, "set", "hast_set", "synq", extra);
    struct akt_hessian_opts o;
    akt_hessian_opts_defaults(&o);
    o.probes = 1;
    o.batch = 4;
    struct akt_hessian_result *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    struct akt_error e = {0};
    int rc = akt_run_hessian(out, "set", &g_reg, &o, a, &e);
    if (rc)
        note("%s: %s\n", e.where, e.what);
    assert_int_equal(rc, 0);
    assert_true(isfinite(a->trace_total) && a->trace_total != 0);
    assert_int_equal(akt_run_hessian(out, "set", &g_reg, &o, b, &e), 0);
    assert_memory_equal(&a->trace_total, &b->trace_total, sizeof(double));
    note("hessian of hast_set + synq: total %.6g\n", a->trace_total);
    akt_hessian_result_free(a);
    akt_hessian_result_free(b);
    free(a);
    free(b);
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_diagonal_exact),
        cmocka_unit_test(test_dense_converges),
        cmocka_unit_test(test_estimator_errors),
        cmocka_unit_test(test_run_hessian),
        cmocka_unit_test(test_run_hessian_prepared),
    };
    return cmocka_run_group_tests_name("e2e_hessian", tests, setup, teardown);
}
