/* Fuzz target: the results-file resume path. Each input is a crafted
 * results file, given to the code that resumes a run (akt__store_open in
 * core/run/checkpoint.c: the results reader's checks on opening, the stored
 * config against the run's, @checkpoint_epoch against the metric rows, every
 * checkpoint dataset's size, checksum and contents, the kept figures, the
 * copy into a new run file) twice: as the run file OUT.h5.d/run.h5 of a run
 * in progress, and as OUT.h5 holding an unfinished or done run. Then the
 * reader every status command uses (akt_results_view_open) lists it.
 *
 * The run is built once: ResNet-20 teacher and the evaluation set from
 * AKT_DATA, the test-only generator test_noise (no state, so a valid file
 * is ~2 MB, mostly the student's weights and momentum) and the logit loss.
 * Its paths are relative ("teacher.h5", "data.bin", symlinks in a private
 * folder the target works in), so the stored config of a seed file matches
 * wherever the seeds were made.
 *
 * Seeds: with AKT_FUZZ_SEEDS=DIR set, LLVMFuzzerInitialize first writes
 * valid files of that run into DIR (when DIR holds none): the run file
 * after epoch 1 of 2 (running), an interrupted run, a done run, a run file
 * that says done, and a small file without the checkpoint's arrays. The
 * seeds are a few MB, so they are made, not committed (tools/fuzz.sh and
 * the replay test make them). */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#include "../../core/run/internal.h"
#include "akt/registry.h"
#include "fuzz.h"

#ifndef AKT_FUZZ_NOISE_PLUGIN
#error "AKT_FUZZ_NOISE_PLUGIN: path of test_noise.so (tests/fuzz/meson.build)"
#endif

static struct akt_registry g_reg;
static struct akt_run_config g_cfg;
static struct akt_run g_run;
static int g_ready;
static char g_dir[512], g_out[700], g_file[1400], g_side[700];

static int set(const char *k, const char *v)
{
    struct akt_error e = {0};
    if (akt_run_config_set(&g_cfg, &g_reg, k, v, "fuzz_results", &e) == 0)
        return 0;
    fprintf(stderr, "fuzz_results: %s=%s: %s: %s\n", k, v, e.where, e.what);
    return -1;
}

static void rm_outputs(void)
{
    char p[1500];
    unlink(g_out);
    snprintf(p, sizeof p, "%s.tmp", g_out);
    unlink(p);
    unlink(g_file);
    snprintf(p, sizeof p, "%s.tmp", g_file);
    unlink(p);
}

static int copy_file(const char *from, const char *to)
{
    FILE *a = fopen(from, "rb"), *b = a ? fopen(to, "wb") : NULL;
    char buf[1 << 16];
    size_t n;
    int bad = !a || !b;
    while (!bad && (n = fread(buf, 1, sizeof buf, a)) > 0)
        bad = fwrite(buf, 1, n, b) != n;
    if (a)
        fclose(a);
    if (b)
        bad |= fclose(b) != 0;
    if (bad)
        fprintf(stderr, "fuzz_results: cannot copy %s to %s\n", from, to);
    return bad ? -1 : 0;
}

/* ----------------------------------------------------------- seeds --- */
struct seeder {
    const char *dir;
    volatile int stop;
    int stop_in_epoch; /* set stop in this epoch's first iteration (-1: never) */
};

static void seed_epoch(const struct akt_epoch_report *r, void *user)
{
    struct seeder *s = user;
    char p[1200];
    if (r->epoch == 0) { /* the run file as a kill would leave it */
        snprintf(p, sizeof p, "%s/running_epoch1.h5", s->dir);
        copy_file(g_file, p);
    }
}

static void seed_iter(int epoch, int iter, int iters, double lg, double lq, void *user)
{
    (void)iter, (void)iters, (void)lg, (void)lq;
    struct seeder *s = user;
    if (epoch == s->stop_in_epoch)
        s->stop = 1;
}

static int seed_run(struct seeder *s, const char *name)
{
    struct akt_run_callbacks cb = {
        .iteration = seed_iter, .epoch = seed_epoch, .stop = &s->stop, .user = s};
    struct akt_run_result res;
    struct akt_error e = {0};
    rm_outputs();
    s->stop = 0;
    int rc = akt_run_train(&g_cfg, &g_reg, &cb, &res, &e);
    if (rc && rc != AKT_EINTR) {
        fprintf(stderr, "fuzz_results: seed run: %s: %s\n", e.where, e.what);
        return rc;
    }
    char p[1200];
    snprintf(p, sizeof p, "%s/%s", s->dir, name);
    return copy_file(g_out, p);
}

/* A results file with the run's structure but a checkpoint of 8 floats
 * per array: a few KB that reach every check before the sizes. */
static int seed_small(const char *dir)
{
    char p[1200], *yaml = akt_run_config_yaml(&g_cfg, g_run.gen, g_run.loss);
    snprintf(p, sizeof p, "%s/small_checkpoint.h5", dir);
    unlink(p);
    struct akt_results *h = NULL;
    struct akt_error e = {0};
    static const char *std[] = {"top1", "top5", "loss_g", "loss_q", "grad_norm",
                                "lr_student", "lr_generator", "time_s"};
    double v[2 * 19] = {1, 2, 3};
    float f[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    int ints[8] = {1, 2, 3, 4, 5, 6, 7, 8}, shape[1] = {8};
    int rc = akt_results_edit(&h, p, &e);
    rc = rc ? rc : akt_results_run(h, "run", yaml, &e);
    for (size_t i = 0; !rc && i < sizeof std / sizeof std[0]; i++)
        rc = akt_results_append(h, "run", std[i], 0, v, 1, &e);
    rc = rc ? rc : akt_results_append(h, "run", "act_range", 0, v, 2 * 19, &e);
    rc = rc ? rc : akt_results_append(h, "run", "gen.bns", 0, v, 1, &e);
    rc = rc ? rc : akt_results_write_tensor(h, "run", "checkpoint", "student_values", f, 1,
                                            shape, &e);
    rc = rc ? rc : akt_results_write_ints(h, "run", "checkpoint", "rng_state", ints, 8, &e);
    rc = rc ? rc : akt_results_set_group_attr_str(h, "run", "checkpoint",
                                                  "fnv1a64_student_values", "0123456789abcdef",
                                                  &e);
    rc = rc ? rc : akt_results_set_group_attr(h, "run", "checkpoint", "epoch", 1, &e);
    rc = rc ? rc : akt_results_set_attr(h, "run", "checkpoint_epoch", 1, &e);
    rc = rc ? rc : akt_results_set_status(h, "run", "interrupted", "SIGINT", &e);
    if (!rc)
        rc = akt_results_commit(h, &e);
    else
        akt_results_discard(h);
    free(yaml);
    if (rc)
        fprintf(stderr, "fuzz_results: small seed: %s: %s\n", e.where, e.what);
    return rc;
}

static void make_seeds(const char *dir)
{
    char p[1200];
    snprintf(p, sizeof p, "%s/done.h5", dir);
    struct stat st;
    if (stat(p, &st) == 0)
        return; /* made before */
    mkdir(dir, 0755);
    struct seeder s = {.dir = dir, .stop_in_epoch = 1};
    seed_run(&s, "interrupted.h5");
    s.stop_in_epoch = -1;
    seed_run(&s, "done.h5");
    /* a run file that says done: killed between its last replacement and
     * the commit into OUT.h5 */
    snprintf(p, sizeof p, "%s/running_epoch1.h5", dir);
    struct akt_results *h = NULL;
    struct akt_error e = {0};
    char q[1200];
    snprintf(q, sizeof q, "%s/runfile_done.h5", dir);
    if (copy_file(p, q) == 0 && akt_results_edit(&h, q, &e) == 0) {
        static const char *names[] = {"best_top1", "final_top1", "top1_fp", "top1_before",
                                      "best_epoch"};
        int rc = 0;
        for (int i = 0; i < 5 && !rc; i++)
            rc = akt_results_set_attr(h, "run", names[i], 1, &e);
        rc = rc ? rc : akt_results_set_status(h, "run", "done", "", &e);
        if (rc)
            akt_results_discard(h);
        else
            akt_results_commit(h, &e);
    }
    seed_small(dir);
    rm_outputs();
}

/* ------------------------------------------------------- the target --- */
static void cleanup(void)
{
    static const char *names[] = {"teacher.h5", "data.bin", "out.h5.d/lock", "out.h5.d/run.h5",
                                  "out.h5.d/run.h5.tmp", "out.h5.tmp", "out.h5"};
    char p[1200];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", g_dir, names[i]);
        unlink(p);
    }
    rmdir(g_side);
    rmdir(g_dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    const char *data = getenv("AKT_DATA"), *tmp = getenv("TMPDIR");
    char teacher[PATH_MAX], set_path[PATH_MAX], p[1200];
    if (!data || !*data) {
        fprintf(stderr, "fuzz_results: AKT_DATA is not set: nothing is fuzzed\n");
        return 0;
    }
    snprintf(teacher, sizeof teacher, "%s/teachers/resnet20_cifar10_akamaster_optA.h5", data);
    snprintf(set_path, sizeof set_path, "%s/cifar-10-batches-bin/test_batch_lossless1000.bin",
             data);
    char *rt = realpath(teacher, NULL), *rd = realpath(set_path, NULL);
    if (!rt || !rd) {
        fprintf(stderr, "fuzz_results: no teacher or data under %s: nothing is fuzzed\n", data);
        free(rt), free(rd);
        return 0;
    }
    snprintf(g_dir, sizeof g_dir, "%s/akt_fuzz_results_%d", tmp && *tmp ? tmp : "/tmp",
             (int)getpid());
    snprintf(g_out, sizeof g_out, "%s/out.h5", g_dir);
    akt_results_run_file(g_out, "run", g_file, sizeof g_file);
    akt_results_run_dir(g_out, g_side, sizeof g_side);
    mkdir(g_dir, 0700);
    mkdir(g_side, 0755);
    atexit(cleanup);
    snprintf(p, sizeof p, "%s/teacher.h5", g_dir);
    unlink(p);
    int bad = symlink(rt, p);
    snprintf(p, sizeof p, "%s/data.bin", g_dir);
    unlink(p);
    bad |= symlink(rd, p);
    free(rt), free(rd);
    const char *seeds = getenv("AKT_FUZZ_SEEDS");
    char seeds_abs[PATH_MAX] = "";
    if (seeds && *seeds) {
        mkdir(seeds, 0755);
        if (!realpath(seeds, seeds_abs))
            seeds_abs[0] = 0;
    }
    char cwd[PATH_MAX];
    if (bad || !getcwd(cwd, sizeof cwd) || chdir(g_dir)) {
        fprintf(stderr, "fuzz_results: cannot set up %s: %s\n", g_dir, strerror(errno));
        return 0;
    }
    struct akt_error e = {0};
    akt_registry_init(&g_reg);
    if (akt_registry_load_default(&g_reg, &e) ||
        akt_registry_load_file(&g_reg, AKT_FUZZ_NOISE_PLUGIN, &e)) {
        fprintf(stderr, "fuzz_results: plugins: %s: %s\n", e.where, e.what);
        return 0;
    }
    akt_run_config_defaults(&g_cfg);
    static const char *kv[][2] = {
        {"teacher", "teacher.h5"}, {"data", "data.bin"}, {"generator", "test_noise"},
        {"loss", "logit"}, {"epochs", "2"}, {"iters", "1"}, {"batch", "2"}, {"seed", "1"},
        {"threads", "1"}, {"warmup_epochs", "0"}, {"tracker_epochs", "1"},
        {"milestones", "none"}, {"eval_limit", "10"}, {"eval_batch", "10"}, {"id", "run"}};
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (set(kv[i][0], kv[i][1]))
            return 0;
    snprintf(g_cfg.out_path, sizeof g_cfg.out_path, "%s", g_out);
    akt_threads_set(g_cfg.threads);
    g_run.c = &g_cfg;
    if (akt__open_run(&g_run, &g_reg, &e)) {
        fprintf(stderr, "fuzz_results: the run: %s: %s\n", e.where, e.what);
        return 0;
    }
    if (seeds_abs[0])
        make_seeds(seeds_abs);
    /* back where we were: the inputs' paths may be relative; the run's own
     * files are loaded (only the seed runs open them again) */
    g_ready = chdir(cwd) == 0;
    return 0;
}

static void resume_from(const uint8_t *data, size_t size, const char *path)
{
    rm_outputs();
    FILE *f = fopen(path, "wb");
    if (!f)
        return;
    int bad = size && fwrite(data, 1, size, f) != size;
    if ((fclose(f) != 0) | bad)
        return;
    struct akt_run_store st;
    struct akt_run_result res = {0};
    struct akt_error e = {0};
    int start = 0, done = 0;
    int rc = akt__store_open(&st, &g_run, &res, &start, &done, &e);
    akt__store_close(&st);
    if (getenv("AKT_FUZZ_VERBOSE")) /* what each input reached */
        fprintf(stderr, "fuzz_results: as %s: rc %d start %d done %d: %s: %s\n",
                path == g_file ? "run file" : "OUT.h5", rc, start, done, rc ? e.where : "",
                rc ? e.what : "resumed");
    struct akt_results_view v;
    if (akt_results_view_open(&v, g_out, &e) == 0) {
        for (int i = 0; i < v.n; i++) {
            char status[32];
            double x;
            akt_results_get_status(v.where[i], v.ids[i], status, sizeof status);
            akt_results_get_attr(v.where[i], v.ids[i], "checkpoint_epoch", &x);
            int64_t rows = akt_results_rows(v.where[i], v.ids[i], "top1");
            if (rows > 0 && rows < 100) {
                double vals[100];
                akt_results_read_metric(v.where[i], v.ids[i], "top1", NULL, vals, rows, 1, &e);
            }
        }
        akt_results_view_close(&v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_ready)
        return 0;
    resume_from(data, size, g_file); /* a run in progress */
    resume_from(data, size, g_out);  /* an unfinished or done run in OUT.h5 */
    rm_outputs();
    return 0;
}
