/* The later methods' plugins, loaded as the host loads them and driven
 * through a fake host:
 *   (a) synq (loss), hast (generator), hast_set and intraq_set (synthetic
 *       sets): the loader accepts them; names, kinds, ops and the published
 *       defaults of their parameter tables,
 *   (b) goldens from tools/make_sota_fixtures.py (PyTorch): synq's low-pass
 *       filter against SynQ's own apply_filters (torch.fft), synq's loss in
 *       6 cases (logit forms, soft targets, CE selection, CAM, HAST's feature
 *       alignment, the AKT term) with d loss / d z_S, d / d h_S (classifier
 *       input) and d / d F_S; hast's generator loss; the synthesis losses of
 *       hast_set and intraq_set with their gradients,
 *   (c) finite differences of synq, hast and the IntraQ synthesis loss on
 *       small shapes,
 *   (d) the synthetic sets: the synthesis lowers the BN-statistics loss
 *       below noise's, the set is rebuilt bit-identically from the seed,
 *       sample() draws without replacement, and state() restores the sampler,
 *   (e) refusals: missing teacher, mismatched outputs. */
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
#include "akt/registry.h"
#include "fixture_hash.h"
#include "gradcheck.h"
#include "plugin_host.h"
#include "../plugins/generators/trunk.h"
#include "../plugins/synthset/synth_loss.h"

#define B 2
#define NCLS 10
#define NMAP 9
#define K 4
#define KF 64 /* channels of the classifier's input (ResNet-20's last stage) */
#define VALUE_REL 1e-5
#define GRAD_REL 1e-5
/* the CAM term resamples float32 maps and min-max scales them: its values
 * and gradients carry float32 rounding relative to the map's range */
#define CAM_REL 2e-5

static const char *const g_files[3] = {"synq/synq.so", "hast/hast.so", "synthset/synthset.so"};
static void *g_dl[3];
static const struct akt_plugin *g_synq, *g_hast, *g_hast_set, *g_intraq_set;
static struct akt_resnet g_net; /* the ResNet-20 layout h->teacher lends */
static hid_t g_fx = -1;

static const struct akt_plugin *get_desc(int file, uint32_t i)
{
    akt_plugin_get_fn get = (akt_plugin_get_fn)dlsym(g_dl[file], AKT_PLUGIN_SYMBOL);
    return get ? get(i) : NULL;
}

static int setup(void **state)
{
    (void)state;
    const char *dir = getenv("AKT_PLUGIN_BUILD");
    if (!dir) {
        fprintf(stderr, "AKT_PLUGIN_BUILD is not set\n");
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, g_files[i]);
        g_dl[i] = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!g_dl[i]) {
            fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
            return -1;
        }
    }
    g_synq = get_desc(0, 0);
    g_hast = get_desc(1, 0);
    g_hast_set = get_desc(2, 0);
    g_intraq_set = get_desc(2, 1);
    if (!g_synq || !g_hast || !g_hast_set || !g_intraq_set || get_desc(0, 1) ||
        get_desc(1, 1) || get_desc(2, 2)) {
        fprintf(stderr, "unexpected descriptor set\n");
        return -1;
    }
    akt_resnet_init(&g_net, 20, NCLS, AKT_SHORTCUT_PAD);
    const char *fx = getenv("AKT_FIXTURES");
    char path[1024];
    snprintf(path, sizeof path, "%s/sota_golden.h5", fx ? fx : ".");
    g_fx = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (g_fx < 0) {
        fprintf(stderr, "cannot open %s (run tools/make_sota_fixtures.py)\n", path);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++)
        if (g_dl[i])
            dlclose(g_dl[i]);
    akt_resnet_free(&g_net);
    if (g_fx >= 0)
        H5Fclose(g_fx);
    return 0;
}

/* one call's metrics: a name reported twice fails */
static struct akt_host make_host(struct fake_host *m, struct akt_rng *rng)
{
    struct akt_host h = fake_host_make(m, 1, NCLS, B, 4, rng);
    h.teacher = &g_net; /* read-only, no forwards */
    return h;
}

static void *create(const struct akt_plugin *p, const struct akt_host *h, const char *params)
{
    struct akt_param_values v = params_from(p, params);
    struct akt_error e = {0};
    void *self = p->create(h, &v, &e);
    if (!self)
        fail_msg("%s create(%s): %s: %s", p->name, params, e.where, e.what);
    return self;
}

static void metric_ignore(const struct akt_host *h, const char *name, double value)
{
    (void)h, (void)name, (void)value;
}

static double rel_err(double a, double ref) { return fabs(a - ref) / fmax(fabs(ref), 1e-300); }

/* Compares n gradient values with the reference, relative to scale
 * (exactly 0 expected when scale is 0); returns the failures, printed. */
static int cmp_grads(const char *what, const char *name, const float *got, int64_t stride,
                     const double *ref, int n, double scale, double tol)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        double g = got[(int64_t)i * stride];
        double err = scale == 0 ? fabs(g) : fabs(g - ref[i]) / scale;
        if (!(scale == 0 ? g == 0 : err <= tol)) {
            if (bad < 5)
                printf("# FAIL %s: %s[%d] = %.9g, torch %.9g\n", name, what, i, g, ref[i]);
            bad++;
        }
    }
    return bad;
}

static double max_abs(const float *x, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++)
        m = fmax(m, fabs(x[i]));
    return m;
}

/* ----------------------------------------------------- (a) descriptors --- */
static double def_of(const struct akt_plugin *p, const char *key)
{
    int i = param_index(p, key);
    if (i < 0)
        fail_msg("%s has no parameter %s", p->name, key);
    return p->params[i].def;
}

static void test_descriptors(void **state)
{
    (void)state;
    /* the loader accepts every file and registers the four names */
    struct akt_registry reg;
    akt_registry_init(&reg);
    for (int i = 0; i < 3; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", getenv("AKT_PLUGIN_BUILD"), g_files[i]);
        struct akt_error e = {0};
        if (akt_registry_load_file(&reg, path, &e))
            fail_msg("%s: %s: %s", path, e.where, e.what);
    }
    assert_non_null(akt_registry_find(&reg, AKT_PLUGIN_LOSS, "synq"));
    assert_non_null(akt_registry_find(&reg, AKT_PLUGIN_GENERATOR, "hast"));
    assert_non_null(akt_registry_find(&reg, AKT_PLUGIN_GENERATOR, "hast_set"));
    assert_non_null(akt_registry_find(&reg, AKT_PLUGIN_GENERATOR, "intraq_set"));
    akt_registry_free(&reg);

    assert_int_equal(g_synq->kind, AKT_PLUGIN_LOSS);
    assert_non_null(g_synq->ops.loss.compute);
    assert_non_null(g_synq->ops.loss.prepare);
    /* SynQ's code: alpha 20, T 20, tau 0.5, d0 80; its run scripts: lambda_ce
     * 0.5, lambda_cam 50; HAST's feature term off; AKT's term off */
    struct { const char *key; double def; } sq[] = {
        {"T", 20}, {"alpha", 20}, {"lambda_ce", 0.5}, {"tau", 0.5}, {"lambda_cam", 50},
        {"d0", 80}, {"lambda_fa", 0}, {"rfd", 0}, {"lambda", 1000}, {"T_fd", 8}};
    for (size_t k = 0; k < sizeof sq / sizeof sq[0]; k++)
        assert_true(def_of(g_synq, sq[k].key) == sq[k].def);
    assert_string_equal(g_synq->params[param_index(g_synq, "logit")].choices,
                        "auto|kd|entropy|synq");
    /* hast: GDFQ's trunk and optimiser, HAST's beta 10, gamma 2, BNS 1 */
    assert_int_equal(g_hast->kind, AKT_PLUGIN_GENERATOR);
    assert_non_null(g_hast->ops.gen.loss);
    assert_non_null(g_hast->ops.gen.update);
    assert_non_null(g_hast->ops.gen.state);
    assert_int_equal(g_hast->ops.gen.logit_loss, AKT_LOGIT_KD);
    assert_true(g_hast->ops.gen.lr == 1e-3f);
    assert_true(def_of(g_hast, "beta") == 10 && def_of(g_hast, "gamma") == 2 &&
                def_of(g_hast, "bns") == 1 && def_of(g_hast, "latent") == 100 &&
                def_of(g_hast, "adam_beta1") == 0.5);
    /* the sets: nothing to train, a sampler state; the papers' synthesis */
    const struct akt_plugin *sets[2] = {g_hast_set, g_intraq_set};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sets[i]->kind, AKT_PLUGIN_GENERATOR);
        assert_null(sets[i]->ops.gen.loss);
        assert_null(sets[i]->ops.gen.update);
        assert_non_null(sets[i]->ops.gen.state);
        assert_true(def_of(sets[i], "size") == 5120 && def_of(sets[i], "synth_batch") == 256 &&
                    def_of(sets[i], "iters") == 1000 && def_of(sets[i], "lr") == 0.5 &&
                    def_of(sets[i], "patience") == 50 && def_of(sets[i], "min_lr") == 1e-4);
    }
    assert_true(def_of(g_hast_set, "beta") == 10 && def_of(g_hast_set, "gamma") == 2);
    assert_true(def_of(g_intraq_set, "target_pro") == 0.95 &&
                def_of(g_intraq_set, "margin_lo") == 0.05 &&
                def_of(g_intraq_set, "margin_hi") == 0.8 && def_of(g_intraq_set, "aug_p") == 0.5 &&
                def_of(g_intraq_set, "aug_scale") == 0.5);
}

/* ------------------------------------------------------------- inputs --- */
static const int g_full[NMAP][3] = {{16, 32, 32}, {16, 32, 32}, {16, 32, 32},
                                    {32, 16, 16}, {32, 16, 16}, {32, 16, 16},
                                    {64, 8, 8},   {64, 8, 8},   {64, 8, 8}};

/* One network's outputs as the loss sees them, over arrays held here. */
struct net_out {
    struct akt_resnet_out o;
    struct akt_tensor *feat[NMAP], *acts[1];
};

static void net_out_init(struct net_out *n, struct akt_tensor *z, struct akt_tensor *h,
                         struct akt_tensor *fc)
{
    memset(&n->o, 0, sizeof n->o);
    n->o.size = sizeof n->o;
    n->o.logits = z;
    n->o.n_features = NMAP;
    n->o.features = n->feat;
    n->acts[0] = h;
    n->o.n_acts = 1;
    n->o.acts = n->acts;
    n->o.fc_weight = fc;
}

struct golden {
    struct net_out teacher, student;
    int labels[B];
    struct akt_tensor *target;
};

/* The fixture's inputs (tools/make_sota_fixtures.py), every tensor with a
 * grad buffer so that a gradient into the teacher would show. */
static void golden_inputs(struct akt_tape *t, struct golden *g)
{
    struct akt_tensor *zt = akt_tensor_newv(t, 1, 2, B, NCLS), *zs = akt_tensor_newv(t, 1, 2, B, NCLS);
    for (int j = 0; j < B * NCLS; j++) {
        zt->data[j] = 16.0f * u(1, (uint32_t)j);
        zs->data[j] = 8.0f * u(2, (uint32_t)j);
    }
    struct akt_tensor *ht = akt_tensor_newv(t, 1, 4, B, KF, 8, 8),
                      *hs = akt_tensor_newv(t, 1, 4, B, KF, 8, 8);
    struct akt_tensor *wt = akt_tensor_newv(t, 1, 2, NCLS, KF), *ws = akt_tensor_newv(t, 1, 2, NCLS, KF);
    for (int j = 0; j < NCLS * KF; j++) {
        wt->data[j] = u(30, (uint32_t)j) * 0.5f;
        ws->data[j] = wt->data[j] + u(31, (uint32_t)j) * 0.125f;
    }
    net_out_init(&g->teacher, zt, ht, wt);
    net_out_init(&g->student, zs, hs, ws);
    for (int l = 0; l < NMAP; l++) {
        int c = g_full[l][0], hh = g_full[l][1], ww = g_full[l][2];
        struct akt_tensor *ft = akt_tensor_newv(t, 1, 4, B, c, hh, ww);
        struct akt_tensor *fs = akt_tensor_newv(t, 1, 4, B, c, hh, ww);
        fixture_features(l, B, c, hh * ww, ft->data, fs->data);
        g->teacher.feat[l] = ft;
        g->student.feat[l] = fs;
    }
    for (int64_t j = 0; j < ht->n; j++) {
        ht->data[j] = fabsf(g->teacher.feat[8]->data[j]);
        hs->data[j] = fabsf(g->student.feat[8]->data[j]);
    }
    h5_read(g_fx, "labels", H5T_NATIVE_INT, g->labels, B);
    g->target = akt_tensor_newv(t, 0, 2, B, NCLS);
    for (int b = 0; b < B; b++) {
        g->target->data[b * NCLS + g->labels[b]] += 0.75f;
        g->target->data[b * NCLS + (g->labels[b] + 3) % NCLS] += 0.25f;
    }
}

static void test_fixture_inputs(void **state)
{
    (void)state;
    struct akt_tape t;
    akt_tape_init(&t, 1 << 24);
    struct golden g;
    golden_inputs(&t, &g);
    float x[16], w[16];
    h5_read(g_fx, "check/x", H5T_NATIVE_FLOAT, x, 16);
    h5_read(g_fx, "check/W_S", H5T_NATIVE_FLOAT, w, 16);
    for (int j = 0; j < 16; j++)
        assert_true(x[j] == u(40, (uint32_t)j) * 2.0f);
    assert_memory_equal(w, g.student.o.fc_weight->data, sizeof w);
    akt_tape_free(&t);
}

/* ------------------------------------------------------ (b) low-pass --- */
static void test_lowpass_golden(void **state)
{
    (void)state;
    struct fake_host m;
    struct akt_host h = make_host(&m, NULL);
    struct akt_tape t;
    akt_tape_init(&t, 1 << 22);
    const int n = B * 3 * 32 * 32;
    struct akt_tensor *x = akt_tensor_newv(&t, 0, 4, B, 3, 32, 32);
    for (int j = 0; j < n; j++)
        x->data[j] = u(40, (uint32_t)j) * 2.0f;
    float *ref = malloc((size_t)n * sizeof *ref);
    static const int d0s[] = {80, 20, 5};
    for (int k = 0; k < 3; k++) {
        char params[32], ds[32];
        snprintf(params, sizeof params, "d0=%d", d0s[k]);
        snprintf(ds, sizeof ds, "lowpass/d%d", d0s[k]);
        h5_read(g_fx, ds, H5T_NATIVE_FLOAT, ref, n);
        void *self = create(g_synq, &h, params);
        struct akt_error e = {0};
        struct akt_tensor *y = g_synq->ops.loss.prepare(self, &h, &t, x, &e);
        assert_non_null(y);
        double worst = 0;
        for (int j = 0; j < n; j++)
            worst = fmax(worst, fabs(y->data[j] - ref[j]));
        printf("# low-pass d0=%d: max |akt - SynQ's torch.fft filter| = %.2g\n", d0s[k], worst);
        assert_true(worst <= 2e-6); /* torch's float32 FFT rounding */
        g_synq->destroy(self);
    }
    /* d0 = 0: no filter, the images as they are */
    void *self = create(g_synq, &h, "d0=0");
    assert_true(g_synq->ops.loss.prepare(self, &h, &t, x, NULL) == x);
    g_synq->destroy(self);
    free(ref);
    akt_tape_free(&t);
}

/* --------------------------------------------------------- (b) synq --- */
static int synq_case(const char *name)
{
    char path[96], params[256], gen[32];
    snprintf(path, sizeof path, "synq/%s", name);
    hid_t grp = H5Gopen2(g_fx, path, H5P_DEFAULT);
    assert_true(grp >= 0);
    h5_attr_str(grp, "params", params, sizeof params);
    h5_attr_str(grp, "gen_logit", gen, sizeof gen);
    int soft = 0;
    hid_t a = H5Aopen(grp, "soft", H5P_DEFAULT);
    assert_true(a >= 0 && H5Aread(a, H5T_NATIVE_INT, &soft) >= 0);
    H5Aclose(a);

    struct akt_tape t;
    akt_tape_init(&t, 1 << 24);
    struct golden g;
    golden_inputs(&t, &g);
    struct akt_loss_input in = {.size = sizeof in, .teacher = &g.teacher.o,
                                .student = &g.student.o, .labels = g.labels,
                                .target = soft ? g.target : NULL,
                                .generator_logit_loss = !strcmp(gen, "kd") ? AKT_LOGIT_KD
                                                                          : AKT_LOGIT_ENTROPY};
    struct fake_host m;
    struct akt_host h = make_host(&m, NULL);
    void *self = create(g_synq, &h, params);
    struct akt_error e = {0};
    struct akt_tensor *L = g_synq->ops.loss.compute(self, &h, &t, &in, &e);
    if (!L)
        fail_msg("synq %s: %s: %s", name, e.where, e.what);
    akt_backward(&t, L);
    g_synq->destroy(self);

    int bad = 0;
    double ref;
    h5_read(grp, "loss", H5T_NATIVE_DOUBLE, &ref, 1);
    if (!(rel_err(L->data[0], ref) <= VALUE_REL)) {
        printf("# FAIL %s: loss %.10g, torch %.10g\n", name, L->data[0], ref);
        bad++;
    }
    /* exactly the reference's metrics */
    for (int i = 0; i < m.n; i++) {
        char mp[64];
        snprintf(mp, sizeof mp, "metric/%s", m.name[i]);
        if (H5Lexists(grp, mp, H5P_DEFAULT) <= 0) {
            printf("# FAIL %s: reports %s, the reference does not\n", name, m.name[i]);
            bad++;
            continue;
        }
        h5_read(grp, mp, H5T_NATIVE_DOUBLE, &ref, 1);
        double tol = !strcmp(m.name[i], "loss.cam") ? CAM_REL : VALUE_REL;
        if (ref == 0 ? m.value[i] != 0 : !(rel_err(m.value[i], ref) <= tol)) {
            printf("# FAIL %s: %s = %.10g, torch %.10g\n", name, m.name[i], m.value[i], ref);
            bad++;
        }
    }
    H5G_info_t info;
    hid_t mg = H5Gopen2(grp, "metric", H5P_DEFAULT);
    assert_true(mg >= 0 && H5Gget_info(mg, &info) >= 0);
    H5Gclose(mg);
    if ((int)info.nlinks != m.n) {
        printf("# FAIL %s: %d metrics, the reference has %d\n", name, m.n, (int)info.nlinks);
        bad++;
    }
    double gz[B * NCLS], gh[B * KF * 64 / 64], sh, gf[NMAP * K], sf[NMAP];
    int64_t idx[NMAP * K];
    h5_read(grp, "grad_logits", H5T_NATIVE_DOUBLE, gz, B * NCLS);
    double gzmax = 0;
    for (int j = 0; j < B * NCLS; j++)
        gzmax = fmax(gzmax, fabs(gz[j]));
    bad += cmp_grads("dL/dz_S", name, g.student.o.logits->grad, 1, gz, B * NCLS, gzmax, GRAD_REL);
    h5_read(grp, "grad_h", H5T_NATIVE_DOUBLE, gh, B * KF);
    h5_read(grp, "grad_h_scale", H5T_NATIVE_DOUBLE, &sh, 1);
    const struct akt_tensor *hs = g.student.acts[0];
    double amax = max_abs(hs->grad, hs->n);
    if (sh == 0 ? amax != 0 : !(fabs(amax - sh) <= CAM_REL * sh)) {
        printf("# FAIL %s: max|dL/dh_S| = %.6g, torch %.6g\n", name, amax, sh);
        bad++;
    }
    bad += cmp_grads("dL/dh_S", name, hs->grad, 64, gh, B * KF, sh, CAM_REL);
    h5_read(g_fx, "grad_index", H5T_NATIVE_INT64, idx, NMAP * K);
    h5_read(grp, "grad_feat", H5T_NATIVE_DOUBLE, gf, NMAP * K);
    h5_read(grp, "grad_feat_scale", H5T_NATIVE_DOUBLE, sf, NMAP);
    for (int l = 0; l < NMAP; l++) {
        const struct akt_tensor *fs = g.student.feat[l];
        double fm = max_abs(fs->grad, fs->n);
        if (sf[l] == 0 ? fm != 0 : !(fabs(fm - sf[l]) <= GRAD_REL * sf[l])) {
            printf("# FAIL %s: max|dL/dF%d| = %.6g, torch %.6g\n", name, l + 1, fm, sf[l]);
            bad++;
        }
        float picked[K];
        for (int k = 0; k < K; k++)
            picked[k] = fs->grad[idx[l * K + k]];
        bad += cmp_grads("dL/dF_S", name, picked, 1, gf + l * K, K, sf[l], GRAD_REL);
    }
    /* the teacher is a constant */
    const struct akt_tensor *tt[3] = {g.teacher.o.logits, g.teacher.acts[0], g.teacher.feat[8]};
    for (int k = 0; k < 3; k++)
        if (max_abs(tt[k]->grad, tt[k]->n) != 0) {
            printf("# FAIL %s: the teacher got a gradient\n", name);
            bad++;
        }
    h5_read(grp, "loss", H5T_NATIVE_DOUBLE, &ref, 1);
    printf("# synq %-16s loss %.10g (torch %.10g)\n", name, L->data[0], ref);
    akt_tape_free(&t);
    H5Gclose(grp);
    return bad;
}

static void test_synq_golden(void **state)
{
    (void)state;
    static const char *cases[] = {"defaults_kd", "synq_form_soft", "entropy_fa", "with_akt",
                                  "no_cam_all_easy", "hard_only_cam"};
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        bad += synq_case(cases[i]);
    assert_int_equal(bad, 0);
}

/* With every sample easy (tau = 1), lambda_ce = 1 and no CAM, synq is the
 * kd logit loss (SPEC 4) exactly as akt/distill.h computes it. */
static void test_synq_is_kd(void **state)
{
    (void)state;
    struct akt_tape t;
    akt_tape_init(&t, 1 << 24);
    struct golden g;
    golden_inputs(&t, &g);
    struct akt_loss_input in = {.size = sizeof in, .teacher = &g.teacher.o,
                                .student = &g.student.o, .labels = g.labels,
                                .generator_logit_loss = AKT_LOGIT_KD};
    struct fake_host m;
    struct akt_host h = make_host(&m, NULL);
    void *self = create(g_synq, &h, "tau=1 lambda_ce=1 lambda_cam=0");
    struct akt_tensor *L = g_synq->ops.loss.compute(self, &h, &t, &in, NULL);
    g_synq->destroy(self);
    struct akt_tensor *kd = akt_logit_loss(&t, AKT_LOGIT_KD, g.student.o.logits,
                                           g.teacher.o.logits, g.labels, NULL, 20, NULL, NULL);
    assert_near(L->data[0], kd->data[0], 1e-6 * fabs(kd->data[0]));
    akt_tape_free(&t);
}

/* ----------------------------------------------- (c) synq differences --- */
#define SKF 5 /* classifier-input channels of the small case */
static const int g_small[NMAP][3] = {{3, 4, 4}, {3, 4, 4}, {3, 4, 4}, {4, 3, 3}, {4, 3, 3},
                                     {4, 3, 3}, {5, 2, 2}, {5, 2, 2}, {5, 2, 2}};

struct synq_fd {
    void *self;
    struct akt_host *h;
    const char *gen;
    int soft;
    float zt[B * NCLS], ht[B * SKF * 4], wt[NCLS * SKF], ws[NCLS * SKF], target[B * NCLS];
    float *ft;        /* teacher features, flat */
    int64_t off[NMAP]; /* offsets of F_l in the flat features */
    int labels[B];
};

/* in[0] z_S [B,C], in[1] h_S [B,SKF,2,2], in[2] the student's features, flat */
static struct akt_tensor *f_synq(struct akt_tape *t, struct akt_tensor **in, void *user)
{
    struct synq_fd *d = user;
    struct net_out te, st;
    struct akt_tensor *ht = akt_tensor_from(t, d->ht, 4, (int[]){B, SKF, 2, 2});
    struct akt_tensor *wt = akt_tensor_from(t, d->wt, 2, (int[]){NCLS, SKF});
    struct akt_tensor *ws = akt_tensor_from(t, d->ws, 2, (int[]){NCLS, SKF});
    net_out_init(&te, akt_tensor_from(t, d->zt, 2, (int[]){B, NCLS}), ht, wt);
    net_out_init(&st, in[0], in[1], ws);
    for (int l = 0; l < NMAP; l++) {
        int shape[4] = {B, g_small[l][0], g_small[l][1], g_small[l][2]};
        te.feat[l] = akt_tensor_from(t, d->ft + d->off[l], 4, shape);
        st.feat[l] = akt_tape_alloc(t, sizeof *st.feat[l]);
        *st.feat[l] = akt_tensor_wrap(in[2]->data + d->off[l],
                                      in[2]->grad ? in[2]->grad + d->off[l] : NULL, 4, shape);
        st.feat[l]->requires_grad = in[2]->requires_grad;
    }
    struct akt_loss_input li = {.size = sizeof li, .teacher = &te.o, .student = &st.o,
                                .labels = d->labels,
                                .target = d->soft ? akt_tensor_from(t, d->target, 2,
                                                                    (int[]){B, NCLS})
                                                  : NULL,
                                .generator_logit_loss = !strcmp(d->gen, "kd") ? AKT_LOGIT_KD
                                                                              : AKT_LOGIT_ENTROPY};
    struct akt_error e = {0};
    struct akt_tensor *L = g_synq->ops.loss.compute(d->self, d->h, t, &li, &e);
    if (!L)
        fail_msg("synq: %s: %s", e.where, e.what);
    return L;
}

static void test_synq_gradcheck(void **state)
{
    (void)state;
    static const struct { const char *params, *gen; int soft; } cases[] = {
        {"T=3 lambda_cam=5 tau=0.9", "kd", 0},
        {"T=3 logit=synq alpha=0.5 lambda_fa=10 lambda_cam=3", "entropy", 1},
        {"T=3 rfd=true T_fd=0.5 lambda=20 lambda_cam=2 lambda_ce=2 tau=0.95", "kd", 0},
        {"T=2 logit=entropy lambda_cam=8 maps=1,5-9 rfd=true T_fd=0.5 lambda=5", "kd", 1},
    };
    struct akt_rng rng;
    akt_rng_seed(&rng, 99);
    struct synq_fd d = {0};
    int64_t nf = 0;
    for (int l = 0; l < NMAP; l++) {
        d.off[l] = nf;
        nf += (int64_t)B * g_small[l][0] * g_small[l][1] * g_small[l][2];
    }
    d.ft = malloc((size_t)nf * sizeof *d.ft);
    for (int j = 0; j < B * NCLS; j++)
        d.zt[j] = (float)(6 * akt_rng_uniform(&rng) - 3);
    for (int j = 0; j < B * SKF * 4; j++)
        d.ht[j] = (float)(0.1 + 2 * akt_rng_uniform(&rng));
    for (int j = 0; j < NCLS * SKF; j++) {
        d.wt[j] = (float)(akt_rng_uniform(&rng) - 0.3);
        d.ws[j] = d.wt[j] + (float)(0.2 * akt_rng_uniform(&rng) - 0.1);
    }
    for (int64_t j = 0; j < nf; j++)
        d.ft[j] = (float)(3 * akt_rng_uniform(&rng) - 1.5);
    d.labels[0] = 2, d.labels[1] = 6;
    for (int b = 0; b < B; b++) {
        d.target[b * NCLS + d.labels[b]] = 0.6f;
        d.target[b * NCLS + (d.labels[b] + 1) % NCLS] = 0.4f;
    }
    struct fake_host m;
    struct akt_host h = make_host(&m, NULL);
    d.h = &h;
    const struct gc_input in[3] = {
        {.ndim = 2, .shape = {B, NCLS}, .grad = 1, .lo = -3, .hi = 3},
        {.ndim = 4, .shape = {B, SKF, 2, 2}, .grad = 1, .lo = 0.1f, .hi = 2},
        {.ndim = 1, .shape = {(int)nf}, .grad = 1, .lo = -1.5f, .hi = 1.5f},
    };
    int bad = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        d.self = create(g_synq, &h, cases[c].params);
        d.gen = cases[c].gen;
        d.soft = cases[c].soft;
        /* every evaluation reports its metrics again: drop them */
        h.metric = metric_ignore;
        char name[160];
        snprintf(name, sizeof name, "synq %s/%s", cases[c].params, cases[c].gen);
        int nb = gradcheck_finite(name, f_synq, &d, 3, in, 500 + (unsigned)c, 1e-2f, 2e-3);
        printf("# fd %s soft=%d: %s\n", name, cases[c].soft, nb ? "FAIL" : "ok");
        bad += nb;
        h.metric = host_metric;
        g_synq->destroy(d.self);
    }
    free(d.ft);
    assert_int_equal(bad, 0);
}

/* ---------------------------------------------------------- (b) hast --- */
/* The teacher's outputs of the generator loss: logits and one BN input,
 * that of ResNet-20's bn1 (16 channels; running mean 0, variance 1). */
struct gen_inputs {
    struct akt_resnet_out o;
    struct akt_tensor *bn[1];
    int bn_index[1];
};

static void gen_inputs_init(struct gen_inputs *g, struct akt_tensor *z, struct akt_tensor *xbn)
{
    memset(g, 0, sizeof *g);
    g->o.size = sizeof g->o;
    g->o.logits = z;
    g->bn[0] = xbn;
    g->bn_index[0] = (int)(akt_resnet_param(&g_net, "bn1.weight") - g_net.params);
    g->o.n_bn = 1;
    g->o.bn_inputs = g->bn;
    g->o.bn_index = g->bn_index;
}

static struct akt_tensor *fixture_zt(struct akt_tape *t, int grad)
{
    struct akt_tensor *z = akt_tensor_newv(t, grad, 2, B, NCLS);
    for (int j = 0; j < B * NCLS; j++)
        z->data[j] = 16.0f * u(1, (uint32_t)j);
    return z;
}

static struct akt_tensor *fixture_xbn(struct akt_tape *t, int grad)
{
    struct akt_tensor *x = akt_tensor_newv(t, grad, 4, B, 16, 4, 4);
    for (int64_t j = 0; j < x->n; j++)
        x->data[j] = u(50, (uint32_t)j);
    return x;
}

/* The golden's generator loss through the plugin's loss op (hast) or the
 * synthesis loss of hast_set; fills *L's gradients into z and x_bn. */
static int gen_case(const char *name, int set)
{
    char path[96], params[128];
    snprintf(path, sizeof path, "gen/%s", name);
    hid_t grp = H5Gopen2(g_fx, path, H5P_DEFAULT);
    assert_true(grp >= 0);
    h5_attr_str(grp, "params", params, sizeof params);
    int labels[B];
    h5_read(g_fx, "labels", H5T_NATIVE_INT, labels, B);
    struct akt_tape t;
    akt_tape_init(&t, 1 << 22);
    struct akt_tensor *z = fixture_zt(&t, 1), *xbn = fixture_xbn(&t, 1);
    struct gen_inputs gi;
    gen_inputs_init(&gi, z, xbn);
    struct fake_host m;
    struct akt_rng rng;
    akt_rng_seed(&rng, 1);
    struct akt_host h = make_host(&m, &rng);
    struct akt_error e = {0};
    struct akt_tensor *L;
    double focal, bns;
    if (!set) {
        void *self = create(g_hast, &h, params);
        struct akt_gen_batch b = {.size = sizeof b, .x = akt_tensor_newv(&t, 0, 4, B, 3, 32, 32),
                                  .labels = labels};
        L = g_hast->ops.gen.loss(self, &h, &t, &b, &gi.o, NULL, &e);
        g_hast->destroy(self);
        focal = metric(&m, "gen.focal") ? *metric(&m, "gen.focal") : NAN;
        bns = metric(&m, "gen.bns") ? *metric(&m, "gen.bns") : NAN;
    } else {
        struct akt_param_values v = params_from(g_hast_set, params);
        struct synth_terms st;
        L = synth_hast_loss(&t, &g_net, &gi.o, labels, (float)v.v[param_index(g_hast_set, "beta")],
                            (float)v.v[param_index(g_hast_set, "gamma")],
                            (float)v.v[param_index(g_hast_set, "bns")], &st, &e);
        focal = st.target;
        bns = st.bns;
    }
    if (!L)
        fail_msg("%s %s: %s: %s", set ? "hast_set" : "hast", name, e.where, e.what);
    akt_backward(&t, L);
    int bad = 0;
    double ref, rf, rb;
    h5_read(grp, "loss", H5T_NATIVE_DOUBLE, &ref, 1);
    h5_read(grp, "metric/gen.focal", H5T_NATIVE_DOUBLE, &rf, 1);
    h5_read(grp, "metric/gen.bns", H5T_NATIVE_DOUBLE, &rb, 1);
    if (!(rel_err(L->data[0], ref) <= VALUE_REL && rel_err(focal, rf) <= VALUE_REL &&
          rel_err(bns, rb) <= VALUE_REL)) {
        printf("# FAIL %s %s: loss %.10g focal %.8g bns %.8g, torch %.10g %.8g %.8g\n",
               set ? "hast_set" : "hast", name, L->data[0], focal, bns, ref, rf, rb);
        bad++;
    }
    double gz[B * NCLS], gb[B * 16 * 16];
    h5_read(grp, "grad_logits", H5T_NATIVE_DOUBLE, gz, B * NCLS);
    h5_read(grp, "grad_bn", H5T_NATIVE_DOUBLE, gb, B * 16 * 16);
    double sz = 0, sb = 0;
    for (int j = 0; j < B * NCLS; j++)
        sz = fmax(sz, fabs(gz[j]));
    for (int j = 0; j < B * 256; j++)
        sb = fmax(sb, fabs(gb[j]));
    bad += cmp_grads("dL/dz_T", name, z->grad, 1, gz, B * NCLS, sz, GRAD_REL);
    bad += cmp_grads("dL/dx_bn", name, xbn->grad, 1, gb, B * 256, sb, GRAD_REL);
    printf("# %s %-14s loss %.10g (torch %.10g)\n", set ? "hast_set" : "hast", name, L->data[0],
           ref);
    akt_tape_free(&t);
    H5Gclose(grp);
    return bad;
}

static void test_hast_golden(void **state)
{
    (void)state;
    static const char *cases[] = {"hast_defaults", "hast_half", "gdfq_like"};
    int bad = 0;
    for (int set = 0; set < 2; set++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            bad += gen_case(cases[i], set);
    assert_int_equal(bad, 0);
}

struct hast_fd {
    void *self;
    struct akt_host *h;
    int labels[B];
};

static struct akt_tensor *f_hast(struct akt_tape *t, struct akt_tensor **in, void *user)
{
    struct hast_fd *d = user;
    struct gen_inputs gi;
    gen_inputs_init(&gi, in[0], in[1]);
    struct akt_gen_batch b = {.size = sizeof b, .x = akt_tensor_newv(t, 0, 4, B, 3, 32, 32),
                              .labels = d->labels};
    struct akt_tensor *L = g_hast->ops.gen.loss(d->self, d->h, t, &b, &gi.o, NULL, NULL);
    AKT_ASSERT(L);
    return L;
}

static void test_hast_gradcheck_and_sample(void **state)
{
    (void)state;
    struct fake_host m;
    struct akt_rng rng;
    akt_rng_seed(&rng, 2);
    struct akt_host h = make_host(&m, &rng);
    h.metric = metric_ignore;
    struct hast_fd d = {.h = &h, .labels = {4, 9}};
    const struct gc_input in[2] = {
        {.ndim = 2, .shape = {B, NCLS}, .grad = 1, .lo = -3, .hi = 3},
        {.ndim = 4, .shape = {B, 16, 2, 2}, .grad = 1, .lo = -2, .hi = 2},
    };
    static const char *params[] = {"", "gamma=0.5 beta=2 bns=0.3", "gamma=0"};
    for (int c = 0; c < 3; c++) {
        d.self = create(g_hast, &h, params[c]);
        assert_int_equal(gradcheck_finite("hast loss", f_hast, &d, 2, in, 600 + c, 1e-2f, 2e-3), 0);
        g_hast->destroy(d.self);
    }
    /* sample: GDFQ's trunk, h->batch images with a gradient, labels in range */
    d.self = create(g_hast, &h, "");
    struct akt_tape t;
    akt_tape_init(&t, 0);
    h.batch = 3;
    struct akt_gen_batch b = {.size = sizeof b};
    assert_int_equal(g_hast->ops.gen.sample(d.self, &h, &t, &b, NULL), AKT_OK);
    assert_true(b.x->ndim == 4 && b.x->shape[0] == 3 && b.x->shape[1] == 3 &&
                b.x->shape[2] == 32 && b.x->requires_grad && !b.target);
    for (int i = 0; i < 3; i++)
        assert_true(b.labels[i] >= 0 && b.labels[i] < NCLS);
    int64_t n;
    float *st = g_hast->ops.gen.state(d.self, &n);
    assert_true(st && n > 1000);
    akt_tape_free(&t);
    g_hast->destroy(d.self);
}

/* ------------------------------------------------- (b) intraq_set loss --- */
static int intraq_case(const char *name)
{
    char path[96], params[128];
    snprintf(path, sizeof path, "intraq/%s", name);
    hid_t grp = H5Gopen2(g_fx, path, H5P_DEFAULT);
    assert_true(grp >= 0);
    h5_attr_str(grp, "params", params, sizeof params);
    double m_lo, m_hi, wb;
    assert_int_equal(sscanf(params, "m_lo=%lf m_hi=%lf bns=%lf", &m_lo, &m_hi, &wb), 3);
    int labels[B];
    float mask[B], target[B], mu[B * KF];
    h5_read(g_fx, "labels", H5T_NATIVE_INT, labels, B);
    h5_read(grp, "mask", H5T_NATIVE_FLOAT, mask, B);
    h5_read(grp, "target", H5T_NATIVE_FLOAT, target, B);
    for (int j = 0; j < B * KF; j++)
        mu[j] = fabsf(u(61, (uint32_t)j));
    struct akt_tape t;
    akt_tape_init(&t, 1 << 24);
    struct golden g;
    golden_inputs(&t, &g); /* h_T = |F_T9| is the classifier input */
    struct akt_tensor *z = fixture_zt(&t, 1), *xbn = fixture_xbn(&t, 1);
    struct gen_inputs gi;
    gen_inputs_init(&gi, z, xbn);
    struct akt_tensor *h = g.teacher.acts[0];
    gi.o.n_acts = 1;
    gi.o.acts = g.teacher.acts;
    struct synth_terms v;
    struct akt_error e = {0};
    struct akt_tensor *L = synth_intraq_loss(&t, &g_net, &gi.o, labels, target, mu, mask,
                                             (float)m_lo, (float)m_hi, (float)wb, &v, &e);
    if (!L)
        fail_msg("intraq %s: %s: %s", name, e.where, e.what);
    akt_backward(&t, L);
    int bad = 0;
    double ref;
    h5_read(grp, "loss", H5T_NATIVE_DOUBLE, &ref, 1);
    struct { const char *k; double got; } terms[] = {
        {"metric/bns", v.bns}, {"metric/target", v.target}, {"metric/cos_lo", v.cos_lo},
        {"metric/cos_hi", v.cos_hi}, {"loss", L->data[0]}};
    for (size_t k = 0; k < sizeof terms / sizeof terms[0]; k++) {
        h5_read(grp, terms[k].k, H5T_NATIVE_DOUBLE, &ref, 1);
        if (ref == 0 ? terms[k].got != 0 : !(rel_err(terms[k].got, ref) <= VALUE_REL)) {
            printf("# FAIL intraq %s: %s = %.10g, torch %.10g\n", name, terms[k].k, terms[k].got,
                   ref);
            bad++;
        }
    }
    double gz[B * NCLS], gh[B * KF], sh, gb[B * 256], sz = 0, sb = 0;
    h5_read(grp, "grad_logits", H5T_NATIVE_DOUBLE, gz, B * NCLS);
    h5_read(grp, "grad_h", H5T_NATIVE_DOUBLE, gh, B * KF);
    h5_read(grp, "grad_h_scale", H5T_NATIVE_DOUBLE, &sh, 1);
    h5_read(grp, "grad_bn", H5T_NATIVE_DOUBLE, gb, B * 256);
    for (int j = 0; j < B * NCLS; j++)
        sz = fmax(sz, fabs(gz[j]));
    for (int j = 0; j < B * 256; j++)
        sb = fmax(sb, fabs(gb[j]));
    bad += cmp_grads("dL/dz", name, z->grad, 1, gz, B * NCLS, sz, GRAD_REL);
    bad += cmp_grads("dL/dh", name, h->grad, 64, gh, B * KF, sh, GRAD_REL);
    bad += cmp_grads("dL/dx_bn", name, xbn->grad, 1, gb, B * 256, sb, GRAD_REL);
    printf("# intraq %-14s loss %.10g (lo %.6g hi %.6g)\n", name, L->data[0], v.cos_lo, v.cos_hi);
    akt_tape_free(&t);
    H5Gclose(grp);
    return bad;
}

static void test_intraq_golden(void **state)
{
    (void)state;
    assert_int_equal(intraq_case("defaults") + intraq_case("active_margins"), 0);
}

struct intraq_fd {
    int labels[B];
    float target[B], mask[B], mu[B * SKF];
    float m_lo, m_hi;
};

/* in[0] logits, in[1] classifier input [B,SKF,2,2], in[2] a BN input */
static struct akt_tensor *f_intraq(struct akt_tape *t, struct akt_tensor **in, void *user)
{
    struct intraq_fd *d = user;
    struct gen_inputs gi;
    gen_inputs_init(&gi, in[0], in[2]);
    struct akt_tensor *acts[1] = {in[1]};
    gi.o.n_acts = 1;
    gi.o.acts = acts;
    struct akt_tensor *L = synth_intraq_loss(t, &g_net, &gi.o, d->labels, d->target, d->mu,
                                             d->mask, d->m_lo, d->m_hi, 0.5f, NULL, NULL);
    AKT_ASSERT(L);
    return L;
}

/* hast_set's synthesis loss: in[0] logits, in[1] a BN input */
static struct akt_tensor *f_hast_set(struct akt_tape *t, struct akt_tensor **in, void *user)
{
    const int *labels = user;
    struct gen_inputs gi;
    gen_inputs_init(&gi, in[0], in[1]);
    struct akt_tensor *L = synth_hast_loss(t, &g_net, &gi.o, labels, 3.0f, 1.5f, 0.7f, NULL, NULL);
    AKT_ASSERT(L);
    return L;
}

static void test_synth_gradcheck(void **state)
{
    (void)state;
    struct intraq_fd d = {.labels = {1, 8}, .target = {0.97f, 1.0f}, .mask = {1, 1},
                          .m_lo = 0.6f, .m_hi = 0.05f};
    for (int j = 0; j < B * SKF; j++)
        d.mu[j] = (float)((j * 37) % 11) / 11.0f + 0.05f;
    const struct gc_input in[3] = {
        {.ndim = 2, .shape = {B, NCLS}, .grad = 1, .lo = -3, .hi = 3},
        {.ndim = 4, .shape = {B, SKF, 2, 2}, .grad = 1, .lo = 0, .hi = 2},
        {.ndim = 4, .shape = {B, 16, 2, 2}, .grad = 1, .lo = -2, .hi = 2},
    };
    assert_int_equal(gradcheck_finite("intraq active", f_intraq, &d, 3, in, 700, 1e-2f, 2e-3), 0);
    d.mask[1] = 0;
    d.m_lo = 0.05f, d.m_hi = 0.8f;
    assert_int_equal(gradcheck_finite("intraq defaults", f_intraq, &d, 3, in, 701, 1e-2f, 2e-3), 0);
    const struct gc_input hin[2] = {in[0], in[2]};
    assert_int_equal(gradcheck_finite("hast_set", f_hast_set, d.labels, 2, hin, 702, 1e-2f, 2e-3),
                     0);
}

/* ------------------------------------------------------- (d) the sets --- */
/* A host with a real (random) ResNet-20 teacher to synthesise against. */
static struct akt_resnet g_rand;

static void rand_forward(const struct akt_host *h, struct akt_tape *t, struct akt_tensor *x,
                         struct akt_resnet_out *out)
{
    (void)h;
    akt_resnet_forward(&g_rand, t, x, NULL, out);
}

/* The synthesis loss of images x [n] with labels y on the random teacher
 * (IntraQ: its first batch, no class means yet, targets t). */
static double synth_loss_of(int intraq, const float *x, const int *y, const float *t0, int n)
{
    struct akt_tape t;
    akt_tape_init(&t, 0);
    t.recording = 0;
    struct akt_resnet_out o;
    akt_resnet_forward(&g_rand, &t, akt_tensor_from(&t, x, 4, (int[]){n, 3, 32, 32}), NULL, &o);
    float *mu = calloc((size_t)n * KF, sizeof *mu), *mask = calloc((size_t)n, sizeof *mask);
    struct akt_tensor *L =
        intraq ? synth_intraq_loss(&t, &g_rand, &o, y, t0, mu, mask, 0.05f, 0.8f, 1, NULL, NULL)
               : synth_hast_loss(&t, &g_rand, &o, y, 10, 2, 1, NULL, NULL);
    double v = L->data[0];
    free(mu);
    free(mask);
    akt_tape_free(&t);
    return v;
}

/* the whole set in sampling order (one pass when n = size) */
static float *draw(const struct akt_plugin *p, void *self, struct akt_host *h, int n, int *labels)
{
    struct akt_tape t;
    akt_tape_init(&t, 0);
    h->batch = n;
    struct akt_gen_batch b = {.size = sizeof b};
    assert_int_equal(p->ops.gen.sample(self, h, &t, &b, NULL), AKT_OK);
    assert_true(b.x->shape[0] == n && !b.x->requires_grad && !b.target);
    float *x = gc_copy(b.x->data, b.x->n);
    memcpy(labels, b.labels, (size_t)n * sizeof *labels);
    akt_tape_free(&t);
    return x;
}

static void test_synthetic_sets(void **state)
{
    (void)state;
    struct akt_rng rng;
    akt_rng_seed(&rng, 11);
    akt_resnet_init(&g_rand, 20, NCLS, AKT_SHORTCUT_PAD);
    akt_resnet_init_random(&g_rand, &rng);
    const int n = 6, px = 3 * 32 * 32;
    const struct akt_plugin *sets[2] = {g_hast_set, g_intraq_set};
    for (int s = 0; s < 2; s++) {
        struct fake_host m;
        struct akt_host h = make_host(&m, &rng);
        h.teacher = &g_rand;
        h.teacher_forward = rand_forward;
        const char *params = "size=6 synth_batch=4 iters=30";
        akt_rng_seed(&rng, 5);
        void *a = create(sets[s], &h, params);
        struct akt_rng after = rng;
        akt_rng_seed(&rng, 5);
        void *b = create(sets[s], &h, params);
        /* the same seed builds the same set and leaves the stream where it was */
        assert_memory_equal(&rng, &after, sizeof rng);
        int la[6], lb[6], lc[4], ld[4];
        /* the first draw shuffles from the stream: the same for both */
        float *xa = draw(sets[s], a, &h, n, la);
        rng = after;
        float *xb = draw(sets[s], b, &h, n, lb);
        assert_memory_equal(xa, xb, sizeof(float) * n * px);
        assert_memory_equal(la, lb, sizeof la);
        /* one pass is a permutation of the set: six different images */
        for (int i = 0; i < n; i++)
            for (int j = 0; j < i; j++)
                assert_true(memcmp(xa + i * px, xa + j * px, sizeof(float) * px) != 0);
        /* the synthesis lowers its loss: the first batch's 4 images from
         * the noise create() drew first (images, labels, IntraQ's targets) */
        struct akt_rng rs;
        akt_rng_seed(&rs, 5);
        float *x0 = malloc(sizeof(float) * 4 * px), *x1 = malloc(sizeof(float) * 4 * px), t0[4];
        int y0[4];
        for (int i = 0; i < 4 * px; i++)
            x0[i] = akt_rng_normal(&rs);
        for (int i = 0; i < 4; i++)
            y0[i] = (int)akt_rng_below(&rs, NCLS);
        for (int i = 0; s == 1 && i < 4; i++)
            t0[i] = akt_rng_uniform(&rs) < 0.5 ? (float)(0.95 + 0.05 * akt_rng_uniform(&rs)) : 1;
        int64_t ns;
        const float *perm = sets[s]->ops.gen.state(a, &ns) + 1; /* drawn order -> set index */
        for (int pos = 0; pos < n; pos++) {
            int k = (int)perm[pos];
            if (k < 4) {
                memcpy(x1 + k * px, xa + pos * px, sizeof(float) * px);
                assert_int_equal(la[pos], y0[k]);
            }
        }
        double l0 = synth_loss_of(s, x0, y0, t0, 4), l1 = synth_loss_of(s, x1, y0, t0, 4);
        printf("# %s: synthesis loss of the first batch %.4g from noise's %.4g\n", sets[s]->name,
               l1, l0);
        assert_true(l1 < 0.8 * l0);
        free(x0), free(x1);
        /* state() restores the sampler: the same draws after a restore */
        float *st = sets[s]->ops.gen.state(a, &ns);
        assert_int_equal(ns, 1 + n);
        float saved[7];
        memcpy(saved, st, sizeof saved);
        struct akt_rng r0 = rng;
        float *xc = draw(sets[s], a, &h, 4, lc);
        memcpy(st, saved, sizeof saved);
        rng = r0;
        float *xd = draw(sets[s], a, &h, 4, ld);
        assert_memory_equal(xc, xd, sizeof(float) * 4 * px);
        assert_memory_equal(lc, ld, sizeof lc);
        for (int i = 0; i < 4; i++)
            assert_true(lc[i] >= 0 && lc[i] < NCLS);
        free(xa), free(xb), free(xc), free(xd);
        sets[s]->destroy(a);
        sets[s]->destroy(b);
    }
    akt_resnet_free(&g_rand);
}

/* ----------------------------------------------------- (e) refusals --- */
static void test_errors(void **state)
{
    (void)state;
    struct fake_host m;
    struct akt_host h = make_host(&m, NULL);
    struct akt_error e = {0};
    /* a set needs a teacher to synthesise against */
    struct akt_param_values v = params_from(g_intraq_set, "size=2 iters=1");
    assert_null(g_intraq_set->create(&h, &v, &e));
    assert_int_equal(e.code, AKT_EINVAL);
    assert_non_null(strstr(e.where, "intraq_set"));
    /* synq: a selection beyond the network, named by its key */
    v = params_from(g_synq, "maps=1,10");
    memset(&e, 0, sizeof e);
    assert_null(g_synq->create(&h, &v, &e));
    assert_string_equal(e.where, "loss.maps");
    /* synq: logits of the wrong shape, missing features with rfd, no
     * classifier weight for the CAM; refused before any metric */
    struct akt_tape t;
    akt_tape_init(&t, 1 << 24);
    struct golden g;
    golden_inputs(&t, &g);
    struct akt_loss_input in = {.size = sizeof in, .teacher = &g.teacher.o,
                                .student = &g.student.o, .labels = g.labels,
                                .generator_logit_loss = AKT_LOGIT_KD};
    void *self = create(g_synq, &h, "rfd=true");
    h.batch = 3;
    memset(&e, 0, sizeof e);
    assert_null(g_synq->ops.loss.compute(self, &h, &t, &in, &e));
    assert_int_equal(e.code, AKT_ESHAPE);
    h.batch = B;
    g.student.feat[3] = NULL;
    memset(&e, 0, sizeof e);
    assert_null(g_synq->ops.loss.compute(self, &h, &t, &in, &e));
    assert_non_null(strstr(e.what, "F4"));
    assert_int_equal(m.n, 0);
    g_synq->destroy(self);
    self = create(g_synq, &h, "");
    g.student.o.fc_weight = NULL;
    memset(&e, 0, sizeof e);
    assert_null(g_synq->ops.loss.compute(self, &h, &t, &in, &e));
    assert_string_equal(e.where, "loss synq");
    in.generator_logit_loss = (enum akt_logit_loss)7;
    memset(&e, 0, sizeof e);
    assert_null(g_synq->ops.loss.compute(self, &h, &t, &in, &e));
    assert_int_equal(e.code, AKT_EINVAL);
    assert_int_equal(m.n, 0);
    g_synq->destroy(self);
    akt_tape_free(&t);
}

int main(void)
{
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptors),
        cmocka_unit_test(test_fixture_inputs),
        cmocka_unit_test(test_lowpass_golden),
        cmocka_unit_test(test_synq_golden),
        cmocka_unit_test(test_synq_is_kd),
        cmocka_unit_test(test_synq_gradcheck),
        cmocka_unit_test(test_hast_golden),
        cmocka_unit_test(test_hast_gradcheck_and_sample),
        cmocka_unit_test(test_intraq_golden),
        cmocka_unit_test(test_synth_gradcheck),
        cmocka_unit_test(test_synthetic_sets),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests_name("plugin_sota", tests, setup, teardown);
}
