/* The loss plugin (plugins/losses/akt_losses.so) loaded as the host loads it
 * (dlopen + dlsym "akt_plugin_get") and driven through a fake host:
 *   (a) its four descriptors and their parameter tables,
 *   (b) goldens from tools/make_loss_fixtures.py (PyTorch, float64, SPEC 4):
 *       loss, every reported metric, d loss / d z_S and sampled d loss / d F_S
 *       for 12 cases over the variants and options, on ResNet-20-shaped
 *       features with B = 2; SPEC 7 in the nearly uniform 32x32 case,
 *   (c) finite differences of each variant w.r.t. student logits and all
 *       9 features, on small shapes and temperatures where the feature term
 *       is not negligible (the default T_fd = 8 makes it ~1e-6 of the loss,
 *       below what float32 differences can resolve; (b) covers it there),
 *   (d) the teacher never gets a gradient; the logit variant never reads the
 *       features and reports loss.feature = 0 exactly,
 *   (e) the refusals: bad alpha, unknown generator logit loss, missing or
 *       mismatched features. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/distill.h"
#include "akt/plugin.h"
#include "fixture_hash.h"
#include "plugin_host.h"

#define B 2
#define NCLS 10
#define NMAP 9 /* the body outputs of ResNet-20, the network the fixture models */
#define K 4 /* sampled gradient entries per feature tensor */

/* Golden tolerances, relative. Values: the fixture is float64 from the same
 * float32 inputs; akt computes the maps in float32 (relative error ~1e-7 on
 * each map entry) and the tempered KL in double. SPEC 7's check is tighter.
 * Gradients: relative to the largest |gradient| of the tensor, since the
 * maps' float32 rounding is absolute at that scale. */
#define VALUE_REL 1e-5
#define SEC7_REL 1e-6
#define GRAD_REL 1e-5

/* ------------------------------------------------------------- plugin --- */
static void *g_dl;
static const struct akt_plugin *g_desc[4];
/* what the host lends as h->teacher: a ResNet-20 layout (depth, body outputs) */
static struct akt_resnet g_net;
static const char *const g_names[4] = {"logit", "spatial", "channel", "akt"};

static int setup(void **state)
{
    (void)state;
    const char *dir = getenv("AKT_PLUGIN_BUILD");
    if (!dir) {
        fprintf(stderr, "AKT_PLUGIN_BUILD is not set\n");
        return -1;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/losses/akt_losses.so", dir);
    g_dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!g_dl) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return -1;
    }
    akt_plugin_get_fn get = (akt_plugin_get_fn)dlsym(g_dl, AKT_PLUGIN_SYMBOL);
    if (!get) {
        fprintf(stderr, "%s: no %s\n", path, AKT_PLUGIN_SYMBOL);
        return -1;
    }
    for (int i = 0; i < 4; i++)
        g_desc[i] = get((uint32_t)i);
    if (get(4) != NULL) {
        fprintf(stderr, "%s: more than 4 descriptors\n", path);
        return -1;
    }
    akt_resnet_init(&g_net, 20, NCLS, AKT_SHORTCUT_PAD);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (g_dl)
        dlclose(g_dl);
    akt_resnet_free(&g_net);
    return 0;
}

static const struct akt_plugin *desc(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (g_desc[i] && !strcmp(g_desc[i]->name, name))
            return g_desc[i];
    fail_msg("no loss descriptor '%s'", name);
    return NULL;
}

/* one call's metrics: a name reported twice fails */
static struct akt_host make_host(struct fake_host *m)
{
    struct akt_host h = fake_host_make(m, 1, NCLS, B, 0, NULL);
    h.teacher = &g_net; /* read-only, no forwards */
    return h;
}

/* ------------------------------------------------------------ inputs --- */
static const int g_full[NMAP][3] = {{16, 32, 32}, {16, 32, 32}, {16, 32, 32},
                                    {32, 16, 16}, {32, 16, 16}, {32, 16, 16},
                                    {64, 8, 8},   {64, 8, 8},   {64, 8, 8}};
static const int g_labels[B] = {3, 7};

/* Teacher and student outputs on tape t; the teacher's tensors get grad
 * buffers (as after the generator step) so a missing detach would show. */
struct outs {
    struct akt_resnet_out teacher, student;
    struct akt_tensor *target;
    struct akt_tensor *tf[NMAP], *sf[NMAP]; /* what teacher/student.features point at */
};

/* The outputs as a network reports them: counts, and the arrays in o. */
static void outs_init(struct outs *o)
{
    memset(o, 0, sizeof *o);
    o->teacher.size = o->student.size = sizeof o->teacher;
    o->teacher.n_features = o->student.n_features = NMAP;
    o->teacher.features = o->tf;
    o->student.features = o->sf;
}

static void golden_inputs(struct akt_tape *t, int with_features, struct outs *o)
{
    outs_init(o);
    o->teacher.logits = akt_tensor_newv(t, 1, 2, B, NCLS);
    o->student.logits = akt_tensor_newv(t, 1, 2, B, NCLS);
    for (int j = 0; j < B * NCLS; j++) {
        o->teacher.logits->data[j] = 8.0f * u(1, (uint32_t)j);
        o->student.logits->data[j] = 8.0f * u(2, (uint32_t)j);
    }
    o->target = akt_tensor_newv(t, 0, 2, B, NCLS);
    for (int b = 0; b < B; b++) {
        o->target->data[b * NCLS + g_labels[b]] += 0.75f;
        o->target->data[b * NCLS + (g_labels[b] + 3) % NCLS] += 0.25f;
    }
    for (int l = 0; with_features && l < NMAP; l++) {
        int c = g_full[l][0], hw = g_full[l][1] * g_full[l][2];
        struct akt_tensor *ft = akt_tensor_newv(t, 1, 4, B, c, g_full[l][1], g_full[l][2]);
        struct akt_tensor *fs = akt_tensor_newv(t, 1, 4, B, c, g_full[l][1], g_full[l][2]);
        fixture_features(l, B, c, hw, ft->data, fs->data);
        o->tf[l] = ft;
        o->sf[l] = fs;
    }
}

static enum akt_logit_loss logit_kind(const char *name)
{
    if (!strcmp(name, "kd"))
        return AKT_LOGIT_KD;
    if (!strcmp(name, "entropy"))
        return AKT_LOGIT_ENTROPY;
    fail_msg("no logit loss '%s'", name);
    return AKT_LOGIT_KD;
}

static struct akt_loss_input loss_input(const struct outs *o, const char *gen_logit, int soft)
{
    struct akt_loss_input in = {.size = sizeof in, .teacher = &o->teacher,
                                .student = &o->student, .labels = g_labels,
                                .target = soft ? o->target : NULL,
                                .generator_logit_loss = logit_kind(gen_logit)};
    return in;
}

/* Runs the loss once: returns the loss value, fills metrics; gradients are
 * left in the tensors of o. */
static double run_loss(const struct akt_plugin *p, const char *params, struct akt_tape *t,
                       const struct akt_loss_input *in, struct fake_host *m)
{
    struct akt_host h = make_host(m);
    struct akt_param_values v = params_from(p, params);
    struct akt_error e = {0};
    void *self = p->create(&h, &v, &e);
    if (!self)
        fail_msg("%s create(%s): %s: %s", p->name, params, e.where, e.what);
    struct akt_tensor *L = p->ops.loss.compute(self, &h, t, in, &e);
    if (!L)
        fail_msg("%s compute(%s): %s: %s", p->name, params, e.where, e.what);
    assert_int_equal(L->n, 1);
    if (t->recording)
        akt_backward(t, L);
    p->destroy(self);
    return L->data[0];
}

/* ----------------------------------------------------- (a) descriptors --- */
static void test_descriptors(void **state)
{
    (void)state;
    for (int i = 0; i < 4; i++) {
        const struct akt_plugin *p = g_desc[i];
        assert_non_null(p);
        assert_string_equal(p->name, g_names[i]);
        assert_int_equal(p->abi, AKT_PLUGIN_ABI);
        assert_int_equal(p->size, sizeof(struct akt_plugin));
        assert_int_equal(p->kind, AKT_PLUGIN_LOSS);
        assert_non_null(p->create);
        assert_non_null(p->destroy);
        assert_non_null(p->ops.loss.compute);
        assert_int_equal(p->ops.loss.needs_features, i != 0);
        /* logit exposes only what it uses */
        assert_int_equal(p->n_params, i == 0 ? 2 : 8);
        assert_int_equal(p->param_size, sizeof(struct akt_param_def));
        for (int k = 0; k < p->n_params; k++) {
            const struct akt_param_def *d = &p->params[k];
            assert_non_null(d->help);
            if (d->type == AKT_PT_FLOAT || d->type == AKT_PT_INT)
                assert_true(d->lo <= d->def && d->def <= d->hi);
        }
    }
    /* SPEC 4 defaults */
    const struct akt_plugin *a = desc("akt");
    struct { const char *key; double def; } want[] = {
        {"logit", 0}, {"T", 20}, {"lambda", 1000}, {"alpha", -1}, {"T_fd", 8},
        {"map_reduction", 0}, {"kl_reduction", 0}};
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        int i = param_index(a, want[k].key);
        assert_true(i >= 0);
        assert_true(a->params[i].def == want[k].def);
    }
    /* every body output by default, whatever the depth */
    const struct akt_param_def *maps = &a->params[param_index(a, "maps")];
    assert_int_equal(maps->type, AKT_PT_STRING);
    assert_string_equal(maps->def_text, "all");
    assert_non_null(maps->check);
    assert_string_equal(a->params[param_index(a, "logit")].choices, "auto|kd|entropy");
    assert_string_equal(a->params[param_index(a, "map_reduction")].choices, "sum|mean");
    assert_string_equal(a->params[param_index(a, "kl_reduction")].choices, "sum|batchmean");
}

/* ----------------------------------------------------------- (b) HDF5 --- */
static hid_t g_fx = -1;

static int open_fixture(void)
{
    if (g_fx >= 0)
        return 0;
    const char *dir = getenv("AKT_FIXTURES");
    assert_non_null(dir);
    char path[1024];
    snprintf(path, sizeof path, "%s/loss_golden.h5", dir);
    g_fx = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (g_fx < 0)
        fail_msg("cannot open %s (run tools/make_loss_fixtures.py)", path);
    return 0;
}

static double rel_err(double a, double ref)
{
    return fabs(a - ref) / fmax(fabs(ref), 1e-300);
}

/* The C generator against the values the fixture saw. */
static void test_fixture_inputs(void **state)
{
    (void)state;
    open_fixture();
    struct akt_tape t;
    akt_tape_init(&t, 1 << 24);
    struct outs o;
    golden_inputs(&t, 1, &o);
    float zt[B * NCLS], zs[B * NCLS], f0[16], f8[16];
    h5_read(g_fx, "check/z_T", H5T_NATIVE_FLOAT, zt, B * NCLS);
    h5_read(g_fx, "check/z_S", H5T_NATIVE_FLOAT, zs, B * NCLS);
    h5_read(g_fx, "check/F_T0", H5T_NATIVE_FLOAT, f0, 16);
    h5_read(g_fx, "check/F_S8", H5T_NATIVE_FLOAT, f8, 16);
    assert_memory_equal(zt, o.teacher.logits->data, sizeof zt);
    assert_memory_equal(zs, o.student.logits->data, sizeof zs);
    assert_memory_equal(f0, o.teacher.features[0]->data, sizeof f0);
    assert_memory_equal(f8, o.student.features[8]->data, sizeof f8);
    akt_tape_free(&t);
}

static const char *const g_metric_names[] = {"loss.logit", "loss.spatial", "loss.channel",
                                             "loss.feature"};

/* One fixture case; returns the number of failed comparisons (all printed). */
static int golden_case(const char *name)
{
    char path[128], variant[32], params[256], gen[32];
    snprintf(path, sizeof path, "cases/%s", name);
    hid_t g = H5Gopen2(g_fx, path, H5P_DEFAULT);
    assert_true(g >= 0);
    h5_attr_str(g, "variant", variant, sizeof variant);
    h5_attr_str(g, "params", params, sizeof params);
    h5_attr_str(g, "gen_logit", gen, sizeof gen);
    int soft = 0;
    hid_t a = H5Aopen(g, "soft", H5P_DEFAULT);
    assert_true(a >= 0 && H5Aread(a, H5T_NATIVE_INT, &soft) >= 0);
    H5Aclose(a);

    const struct akt_plugin *p = desc(variant);
    int logit_only = !p->ops.loss.needs_features;
    struct akt_tape t;
    akt_tape_init(&t, 1 << 24);
    struct outs o;
    /* as the host does: no features kept when the loss does not need them */
    golden_inputs(&t, !logit_only, &o);
    struct akt_loss_input in = loss_input(&o, gen, soft);
    struct fake_host m;
    double loss = run_loss(p, params, &t, &in, &m);

    int bad = 0;
    double ref, ref_loss, worst_g = 0;
    h5_read(g, "loss", H5T_NATIVE_DOUBLE, &ref_loss, 1);
    double tol = !strcmp(name, "sec7_F1") ? SEC7_REL : VALUE_REL;
    if (!(rel_err(loss, ref_loss) <= tol)) {
        printf("# FAIL %s: loss %.10g, torch %.10g (rel %.2g)\n", name, loss, ref_loss,
               rel_err(loss, ref_loss));
        bad++;
    }
    /* exactly the fixture's metrics, each within tolerance */
    for (size_t k = 0; k < sizeof g_metric_names / sizeof g_metric_names[0]; k++) {
        char mp[64];
        snprintf(mp, sizeof mp, "metric/%s", g_metric_names[k]);
        const double *mv = metric(&m, g_metric_names[k]);
        if (H5Lexists(g, mp, H5P_DEFAULT) <= 0) {
            if (mv) {
                printf("# FAIL %s: reports %s, the reference does not\n", name, mp + 7);
                bad++;
            }
            continue;
        }
        h5_read(g, mp, H5T_NATIVE_DOUBLE, &ref, 1);
        if (!mv || (ref == 0 ? *mv != 0 : !(rel_err(*mv, ref) <= tol))) {
            printf("# FAIL %s: %s = %.10g, torch %.10g\n", name, mp + 7, mv ? *mv : NAN, ref);
            bad++;
        }
    }
    if (m.n != 0 && !metric(&m, "loss.feature")) {
        printf("# FAIL %s: no loss.feature\n", name);
        bad++;
    }
    if (logit_only && !(metric(&m, "loss.feature") && *metric(&m, "loss.feature") == 0.0)) {
        printf("# FAIL %s: the logit variant's loss.feature is not exactly 0\n", name);
        bad++;
    }

    /* d loss / d z_S, relative to its largest entry (exactly 0 when the
     * reference is: alpha = 1 drops the logit loss) */
    double gz[B * NCLS], gmax = 0;
    h5_read(g, "grad_logits", H5T_NATIVE_DOUBLE, gz, B * NCLS);
    for (int j = 0; j < B * NCLS; j++)
        gmax = fmax(gmax, fabs(gz[j]));
    for (int j = 0; j < B * NCLS; j++) {
        double ga = o.student.logits->grad[j];
        double err = gmax == 0 ? fabs(ga) : fabs(ga - gz[j]) / gmax;
        worst_g = fmax(worst_g, err);
        if (!(gmax == 0 ? ga == 0 : err <= GRAD_REL)) {
            printf("# FAIL %s: dL/dz_S[%d] = %.9g, torch %.9g\n", name, j,
                   o.student.logits->grad[j], gz[j]);
            bad++;
        }
    }
    /* sampled d loss / d F_S, relative to the tensor's largest entry */
    if (!logit_only) {
        int64_t idx[NMAP * K];
        double gf[NMAP * K], scale[NMAP];
        h5_read(g_fx, "grad_index", H5T_NATIVE_INT64, idx, NMAP * K);
        h5_read(g, "grad_feat", H5T_NATIVE_DOUBLE, gf, NMAP * K);
        h5_read(g, "grad_feat_scale", H5T_NATIVE_DOUBLE, scale, NMAP);
        for (int l = 0; l < NMAP; l++) {
            const struct akt_tensor *fs = o.student.features[l];
            double amax = 0;
            for (int64_t j = 0; j < fs->n; j++)
                amax = fmax(amax, fabs(fs->grad[j]));
            if (scale[l] == 0 ? amax != 0 : !(fabs(amax - scale[l]) <= GRAD_REL * scale[l])) {
                printf("# FAIL %s: max|dL/dF%d| = %.6g, torch %.6g\n", name, l + 1, amax,
                       scale[l]);
                bad++;
            }
            for (int k = 0; k < K; k++) {
                double ga = fs->grad[idx[l * K + k]], gr = gf[l * K + k];
                double err = scale[l] == 0 ? fabs(ga) : fabs(ga - gr) / scale[l];
                worst_g = fmax(worst_g, err);
                if (!(scale[l] == 0 ? ga == 0 : err <= GRAD_REL)) {
                    printf("# FAIL %s: dL/dF%d[%lld] = %.9g, torch %.9g\n", name, l + 1,
                           (long long)idx[l * K + k], ga, gr);
                    bad++;
                }
            }
        }
    }
    /* the teacher is a constant */
    for (int l = -1; l < NMAP; l++) {
        const struct akt_tensor *x = l < 0 ? o.teacher.logits : o.teacher.features[l];
        for (int64_t j = 0; x && j < x->n; j++)
            if (x->grad[j] != 0) {
                printf("# FAIL %s: the teacher's %s got a gradient\n", name,
                       l < 0 ? "logits" : "features");
                bad++;
                break;
            }
    }
    printf("# %-20s loss %.10g (rel %.1e), worst grad err %.1e of max\n", name, loss,
           rel_err(loss, ref_loss), worst_g);
    if (!strcmp(name, "sec7_F1")) {
        double k32, k64;
        h5_read(g, "kl_f32", H5T_NATIVE_DOUBLE, &k32, 1);
        h5_read(g, "metric/loss.spatial", H5T_NATIVE_DOUBLE, &k64, 1);
        printf("# SPEC 7, F1 spatial KL: akt %.10g, torch float64 %.10g (rel %.1e); a float32 "
               "pipeline gives %.6g (rel %.1e)\n", *metric(&m, "loss.spatial"), k64,
               rel_err(*metric(&m, "loss.spatial"), k64), k32, rel_err(k32, k64));
    }
    akt_tape_free(&t);
    H5Gclose(g);
    return bad;
}

static void test_golden(void **state)
{
    (void)state;
    open_fixture();
    hid_t g = H5Gopen2(g_fx, "cases", H5P_DEFAULT);
    assert_true(g >= 0);
    H5G_info_t info;
    assert_true(H5Gget_info(g, &info) >= 0);
    assert_true(info.nlinks >= 12);
    int bad = 0, has_sec7 = 0;
    for (hsize_t i = 0; i < info.nlinks; i++) {
        char name[64];
        assert_true(H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, sizeof name,
                                       H5P_DEFAULT) > 0);
        has_sec7 |= !strcmp(name, "sec7_F1");
        bad += golden_case(name);
    }
    H5Gclose(g);
    assert_true(has_sec7);
    assert_int_equal(bad, 0);
}

/* ---------------------------------------------- (c) finite differences --- */
/* Small maps, uncorrelated teacher and student and low temperatures, so both
 * terms of the loss move by more than float32 rounding under a step h. */
static const int g_small[NMAP][3] = {{3, 4, 4}, {3, 4, 4}, {3, 4, 4}, {4, 3, 3}, {4, 3, 3},
                                     {4, 3, 3}, {5, 2, 2}, {5, 2, 2}, {5, 2, 2}};

struct fd_case {
    const char *variant, *params, *gen;
    int soft;
};

/* x: 10 arrays (logits then features) of the student; teacher fixed. */
struct fd_data {
    float *zt, *ft[NMAP];
    float *x[1 + NMAP];
    int64_t n[1 + NMAP];
};

static double fd_eval(const struct fd_case *c, struct fd_data *d, int record, struct akt_tape *t,
                      struct outs *o)
{
    outs_init(o);
    o->teacher.logits = akt_tensor_new(t, 2, (int[]){B, NCLS}, 1);
    o->student.logits = akt_tensor_new(t, 2, (int[]){B, NCLS}, record);
    memcpy(o->teacher.logits->data, d->zt, sizeof(float) * B * NCLS);
    memcpy(o->student.logits->data, d->x[0], sizeof(float) * B * NCLS);
    o->target = akt_tensor_newv(t, 0, 2, B, NCLS);
    for (int b = 0; b < B; b++) {
        o->target->data[b * NCLS + g_labels[b]] = 0.6f;
        o->target->data[b * NCLS + (g_labels[b] + 1) % NCLS] = 0.4f;
    }
    for (int l = 0; l < NMAP; l++) {
        int shape[4] = {B, g_small[l][0], g_small[l][1], g_small[l][2]};
        o->tf[l] = akt_tensor_new(t, 4, shape, 1);
        o->sf[l] = akt_tensor_new(t, 4, shape, record);
        memcpy(o->teacher.features[l]->data, d->ft[l], sizeof(float) * d->n[1 + l]);
        memcpy(o->student.features[l]->data, d->x[1 + l], sizeof(float) * d->n[1 + l]);
    }
    struct akt_loss_input in = loss_input(o, c->gen, c->soft);
    struct fake_host m;
    return run_loss(desc(c->variant), c->params, t, &in, &m);
}

static void test_gradcheck(void **state)
{
    (void)state;
    static const struct fd_case cases[] = {
        {"logit", "T=3", "kd", 0},
        {"logit", "T=3", "kd", 1},
        {"logit", "T=3", "entropy", 0},
        {"spatial", "T=3 T_fd=0.5 lambda=20", "kd", 0},
        {"channel", "T=3 T_fd=0.5 lambda=20", "kd", 0},
        {"akt", "T=3 T_fd=0.5 lambda=20", "kd", 1},
        {"akt", "T=3 T_fd=0.5 lambda=200 map_reduction=mean kl_reduction=batchmean", "entropy", 0},
        {"akt", "T=3 T_fd=0.5 lambda=20 alpha=0.7 maps=1,2,4,6,9", "kd", 0},
        {"spatial", "T=3 T_fd=0.5 lambda=20 maps=last_stage", "kd", 0},
    };
    /* h: float32 rounding of a loss ~30 over 2h stays ~1e-4 of the largest
     * gradients, while the central difference's h^2 error is smaller still */
    const float h = 1e-2f;
    const double tol = 2e-3;
    struct akt_rng rng;
    akt_rng_seed(&rng, 1234);
    struct fd_data d;
    d.zt = malloc(sizeof(float) * B * NCLS);
    d.n[0] = B * NCLS;
    for (int l = 0; l < NMAP; l++) {
        d.n[1 + l] = (int64_t)B * g_small[l][0] * g_small[l][1] * g_small[l][2];
        d.ft[l] = malloc(sizeof(float) * d.n[1 + l]);
    }
    for (int i = 0; i < 1 + NMAP; i++)
        d.x[i] = malloc(sizeof(float) * d.n[i]);
    for (int j = 0; j < B * NCLS; j++) {
        d.zt[j] = 6 * (float)akt_rng_uniform(&rng) - 3;
        d.x[0][j] = 6 * (float)akt_rng_uniform(&rng) - 3;
    }
    for (int l = 0; l < NMAP; l++)
        for (int64_t j = 0; j < d.n[1 + l]; j++) {
            d.ft[l][j] = 3 * (float)akt_rng_uniform(&rng) - 1.5f;
            d.x[1 + l][j] = 3 * (float)akt_rng_uniform(&rng) - 1.5f;
        }

    int bad = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct akt_tape t, te;
        akt_tape_init(&t, 1 << 20);
        akt_tape_init(&te, 1 << 20);
        te.recording = 0;
        struct outs o, oe;
        fd_eval(&cases[c], &d, 1, &t, &o);
        int nbad = 0, checked = 0;
        double worst = 0;
        const struct akt_plugin *p = desc(cases[c].variant);
        int logit_only = !p->ops.loss.needs_features;
        unsigned char used[NMAP] = {0};
        if (!logit_only) {
            struct akt_param_values pv = params_from(p, cases[c].params);
            assert_true(akt_feature_select(pv.text[param_index(p, "maps")], &g_net, used, "maps",
                                           NULL) > 0);
        }
        for (int i = 0; i < 1 + NMAP; i++) {
            const float *ga = i == 0 ? o.student.logits->grad : o.student.features[i - 1]->grad;
            double gmax = 0;
            for (int64_t j = 0; j < d.n[i]; j++)
                gmax = fmax(gmax, fabs(ga[j]));
            /* the logit variant, and maps not selected, leave the features alone */
            if (i > 0 && !used[i - 1]) {
                if (gmax != 0) {
                    printf("# FAIL fd %s %s: F%d is not used but got a gradient\n",
                           cases[c].variant, cases[c].params, i);
                    nbad++;
                }
                continue;
            }
            for (int64_t j = 0; j < d.n[i]; j++) {
                float x0 = d.x[i][j];
                d.x[i][j] = x0 + h;
                akt_tape_reset(&te);
                double fp = fd_eval(&cases[c], &d, 0, &te, &oe);
                d.x[i][j] = x0 - h;
                akt_tape_reset(&te);
                double fm = fd_eval(&cases[c], &d, 0, &te, &oe);
                d.x[i][j] = x0;
                double num = (fp - fm) / (2.0 * h);
                /* error relative to the tensor's scale: each entry's float32
                 * loss rounding is absolute */
                double err = fabs(num - ga[j]) / fmax(gmax, 1e-12);
                worst = fmax(worst, err);
                checked++;
                if (!(err <= tol) || !isfinite(ga[j])) {
                    if (nbad < 5)
                        printf("# FAIL fd %s %s/%s: x%d[%lld] analytic %.7g numeric %.7g\n",
                               cases[c].variant, cases[c].params, cases[c].gen, i, (long long)j,
                               ga[j], num);
                    nbad++;
                }
            }
            if (gmax == 0) {
                printf("# FAIL fd %s %s: zero gradient for input %d\n", cases[c].variant,
                       cases[c].params, i);
                nbad++;
            }
        }
        for (int l = -1; l < NMAP; l++) {
            const struct akt_tensor *x = l < 0 ? o.teacher.logits : o.teacher.features[l];
            for (int64_t j = 0; j < x->n; j++)
                if (x->grad[j] != 0) {
                    printf("# FAIL fd %s: teacher gradient\n", cases[c].variant);
                    nbad++;
                    break;
                }
        }
        printf("# fd %-8s %-66s %-7s soft=%d: %d entries, worst err %.1e of max\n",
               cases[c].variant, cases[c].params, cases[c].gen, cases[c].soft, checked, worst);
        bad += nbad;
        akt_tape_free(&t);
        akt_tape_free(&te);
    }
    free(d.zt);
    for (int l = 0; l < NMAP; l++)
        free(d.ft[l]);
    for (int i = 0; i < 1 + NMAP; i++)
        free(d.x[i]);
    assert_int_equal(bad, 0);
}

/* ------------------------------------------------------- (e) refusals --- */
static void test_errors(void **state)
{
    (void)state;
    struct fake_host m;
    struct akt_host h = make_host(&m);
    struct akt_error e = {0};
    const struct akt_plugin *akt = desc("akt");

    /* alpha: -1 is off, [0,1] the paper's weight, anything else refused */
    struct akt_param_values v = params_from(akt, "alpha=-0.5");
    assert_null(akt->create(&h, &v, &e));
    assert_int_equal(e.code, AKT_EINVAL);
    assert_non_null(strstr(e.where, "alpha"));
    for (int i = 0; i < 3; i++) {
        v = params_from(akt, (const char *[]){"alpha=-1", "alpha=0", "alpha=1"}[i]);
        void *s = akt->create(&h, &v, &e);
        assert_non_null(s);
        akt->destroy(s);
    }

    struct akt_tape t;
    akt_tape_init(&t, 1 << 24);
    struct outs o;
    golden_inputs(&t, 1, &o);
    v = params_from(akt, "");
    void *self = akt->create(&h, &v, &e);
    assert_non_null(self);

    /* logit=auto follows the generator's choice, which must be a logit loss */
    {
        struct akt_loss_input in = loss_input(&o, "kd", 0);
        in.generator_logit_loss = (enum akt_logit_loss)7;
        memset(&e, 0, sizeof e);
        m.n = 0;
        assert_null(akt->ops.loss.compute(self, &h, &t, &in, &e));
        assert_int_equal(e.code, AKT_EINVAL);
        assert_string_equal(e.where, "loss akt");
        assert_int_equal(m.n, 0); /* refused before reporting anything */
    }
    /* a missing body output (host did not keep the features) */
    struct akt_tensor *keep = o.sf[4];
    o.sf[4] = NULL;
    struct akt_loss_input in = loss_input(&o, "kd", 0);
    memset(&e, 0, sizeof e);
    m.n = 0;
    assert_null(akt->ops.loss.compute(self, &h, &t, &in, &e));
    assert_int_equal(e.code, AKT_EINVAL);
    assert_non_null(strstr(e.what, "F5"));
    assert_int_equal(m.n, 0);
    /* teacher and student shapes differ */
    o.sf[4] = o.sf[5 + 1];
    memset(&e, 0, sizeof e);
    m.n = 0;
    assert_null(akt->ops.loss.compute(self, &h, &t, &in, &e));
    assert_int_equal(e.code, AKT_ESHAPE);
    assert_int_equal(m.n, 0);
    o.sf[4] = keep;
    /* outputs of a network of another depth than the loss was made for */
    o.student.n_features = o.teacher.n_features = NMAP - 1;
    memset(&e, 0, sizeof e);
    m.n = 0;
    assert_null(akt->ops.loss.compute(self, &h, &t, &in, &e));
    assert_int_equal(e.code, AKT_ESHAPE);
    assert_int_equal(m.n, 0);
    o.student.n_features = o.teacher.n_features = NMAP;
    /* ... unless that map is not selected */
    akt->destroy(self);
    v = params_from(akt, "maps=1-4,6-9"); /* all but F5 */
    self = akt->create(&h, &v, &e);
    o.sf[4] = NULL;
    m.n = 0;
    assert_non_null(akt->ops.loss.compute(self, &h, &t, &in, &e));
    akt->destroy(self);
    /* a selection beyond the network: refused at create, naming the key */
    v = params_from(akt, "maps=1,10");
    memset(&e, 0, sizeof e);
    assert_null(akt->create(&h, &v, &e));
    assert_int_equal(e.code, AKT_EINVAL);
    assert_string_equal(e.where, "loss.maps");
    assert_non_null(strstr(e.what, "F10"));
    akt_tape_free(&t);
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* missing datasets are reported by the test */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptors),
        cmocka_unit_test(test_fixture_inputs),
        cmocka_unit_test(test_golden),
        cmocka_unit_test(test_gradcheck),
        cmocka_unit_test(test_errors),
    };
    int rc = cmocka_run_group_tests_name("plugin_losses", tests, setup, teardown);
    if (g_fx >= 0)
        H5Fclose(g_fx);
    return rc;
}
