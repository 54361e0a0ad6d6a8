/* The generator plugins (gdfq, qimera, adadfq), loaded from their .so as the
 * host would, against a fake host with small random ResNet-20s as teacher
 * and student. Checks: descriptors, training steps (finite losses, images
 * standardised by the last BN, Adam moving the parameters), determinism per
 * seed, loss values against independent double recomputations (BNS, CE, soft
 * CE, AdaDFQ's hinge and balance terms), finite-difference gradients through
 * generator + teacher (+ student), Qimera's soft targets, K and
 * superposition frequency, and the refusals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/nn.h"
#include "akt/plugin.h"
#include "fake_host.h"

/* ----------------------------------------------------------- module ---- */
static void *g_dl;
static akt_plugin_get_fn g_get;

static int load_module(void **state)
{
    (void)state;
    const char *dir = getenv("AKT_PLUGIN_BUILD");
    if (!dir) {
        fprintf(stderr, "AKT_PLUGIN_BUILD is not set\n");
        return -1;
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/generators/akt_generators.so", dir);
    g_dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!g_dl) {
        fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
        return -1;
    }
    g_get = (akt_plugin_get_fn)dlsym(g_dl, AKT_PLUGIN_SYMBOL);
    if (!g_get) {
        fprintf(stderr, "dlsym %s: %s\n", AKT_PLUGIN_SYMBOL, dlerror());
        return -1;
    }
    return 0;
}

static int unload_module(void **state)
{
    (void)state;
    if (g_dl)
        dlclose(g_dl);
    return 0;
}

static const struct akt_plugin *find(const char *name)
{
    for (uint32_t i = 0; g_get(i); i++)
        if (!strcmp(g_get(i)->name, name))
            return g_get(i);
    fail_msg("no generator %s", name);
    return NULL;
}

static void defaults(const struct akt_plugin *p, struct akt_param_values *v)
{
    v->n = p->n_params;
    for (int i = 0; i < p->n_params; i++)
        v->v[i] = p->params[i].def;
}

static void set(const struct akt_plugin *p, struct akt_param_values *v, const char *key, double x)
{
    for (int i = 0; i < p->n_params; i++)
        if (!strcmp(p->params[i].key, key)) {
            v->v[i] = x;
            return;
        }
    fail_msg("%s has no parameter %s", p->name, key);
}

/* ------------------------------------------------------------ fake host -- */
/* The shared fake host (fake_host.h) over two random networks; a metric
 * reported again keeps its latest value. */
struct fake {
    struct akt_host h;
    struct fake_host host;
    struct akt_rng rng;
    struct akt_resnet teacher, student;
    struct akt_resnet_out tout, sout; /* the latest forwards */
};

static double metric_of(const struct fake *f, const char *name)
{
    const double *v = metric(&f->host, name);
    if (!v)
        fail_msg("metric %s was not reported", name);
    return v ? *v : NAN;
}

/* A random ResNet-20 whose BN layers have non-trivial affine parameters and
 * running statistics, so the BNS loss has something to match. */
static void random_resnet(struct akt_resnet *m, int classes, struct akt_rng *r)
{
    akt_resnet_init(m, 20, classes, AKT_SHORTCUT_CONV1X1);
    akt_resnet_init_random(m, r);
    for (int i = 0; i < m->n_params; i++) {
        struct akt_param *p = &m->params[i];
        if (!strstr(p->name, "bn") && !strstr(p->name, "shortcut.1"))
            continue;
        float lo = 0, hi = 0;
        if (strstr(p->name, ".weight"))
            lo = 0.5f, hi = 1.5f;
        else if (strstr(p->name, ".bias"))
            lo = -0.2f, hi = 0.2f;
        else if (strstr(p->name, "running_mean"))
            lo = -0.5f, hi = 0.5f;
        else if (strstr(p->name, "running_var"))
            lo = 0.5f, hi = 2.0f;
        for (int64_t j = 0; j < p->n; j++)
            m->values[p->offset + j] = lo + (hi - lo) * (float)akt_rng_uniform(r);
    }
}

static struct fake *fake_new(int classes, int wbits, uint64_t seed)
{
    struct fake *f = calloc(1, sizeof *f);
    assert_non_null(f);
    struct akt_rng r;
    akt_rng_seed(&r, 1000 + classes); /* networks fixed per class count */
    random_resnet(&f->teacher, classes, &r);
    random_resnet(&f->student, classes, &r);
    akt_rng_seed(&f->rng, seed);
    f->h = fake_host_make(&f->host, 0, classes, 4, wbits, &f->rng);
    fake_host_lend(&f->h, &f->teacher, &f->student);
    return f;
}

static void fake_free(struct fake *f)
{
    akt_resnet_free(&f->teacher);
    akt_resnet_free(&f->student);
    free(f);
}

static void *make(const struct akt_plugin *p, struct fake *f, const struct akt_param_values *v)
{
    struct akt_error e = {0};
    void *g = p->create(&f->h, v, &e);
    if (!g)
        fail_msg("create %s: %s: %s", p->name, e.where, e.what);
    return g;
}

/* sample() as the host calls it: h->batch is the one batch size. */
static int sample_n(const struct akt_plugin *p, void *g, struct fake *f, struct akt_tape *t, int B,
                    struct akt_gen_batch *b, struct akt_error *e)
{
    f->h.batch = B;
    memset(b, 0, sizeof *b);
    b->size = sizeof *b;
    return p->ops.gen.sample(g, &f->h, t, b, e);
}

/* One generator step as the runner does it: sample, teacher (and student)
 * forward, loss; with backward, the Adam step at lr. Returns the loss. */
static double gen_step(const struct akt_plugin *p, void *g, struct fake *f, struct akt_tape *t,
                       int B, struct akt_gen_batch *b, int backward, float lr)
{
    struct akt_error e = {0};
    akt_tape_reset(t);
    assert_int_equal(sample_n(p, g, f, t, B, b, &e), AKT_OK);
    f->h.teacher_forward(&f->h, t, b->x, &f->tout);
    const struct akt_resnet_out *so = NULL;
    if (p->ops.gen.needs_student) {
        f->h.student_forward(&f->h, t, b->x, &f->sout);
        so = &f->sout;
    }
    struct akt_tensor *L = p->ops.gen.loss(g, &f->h, t, b, &f->tout, so, &e);
    if (!L)
        fail_msg("loss %s: %s: %s", p->name, e.where, e.what);
    assert_int_equal(L->n, 1);
    double v = L->data[0];
    if (backward) {
        akt_backward(t, L);
        p->ops.gen.update(g, &f->h, lr);
    }
    return v;
}

/* ----------------------------------------------------- the descriptors -- */
static void test_descriptors(void **state)
{
    (void)state;
    const char *names[3] = {"gdfq", "qimera", "adadfq"};
    for (uint32_t i = 0; i < 3; i++) {
        const struct akt_plugin *p = g_get(i);
        assert_non_null(p);
        assert_string_equal(p->name, names[i]);
        assert_int_equal(p->abi, AKT_PLUGIN_ABI);
        assert_int_equal(p->size, sizeof(struct akt_plugin));
        assert_int_equal(p->kind, AKT_PLUGIN_GENERATOR);
        assert_non_null(p->summary);
        assert_non_null(p->create);
        assert_non_null(p->destroy);
        assert_non_null(p->ops.gen.sample);
        assert_non_null(p->ops.gen.loss);
        assert_non_null(p->ops.gen.update);
        assert_non_null(p->ops.gen.state);
        assert_true(fabsf(p->ops.gen.lr - 1e-3f) < 1e-9f);
        assert_int_equal(p->ops.gen.needs_student, i == 2);
        assert_int_equal(p->ops.gen.logit_loss, i == 2 ? AKT_LOGIT_ENTROPY : AKT_LOGIT_KD);
        assert_true(p->n_params > 0 && p->n_params <= AKT_PLUGIN_MAX_PARAMS);
        for (int k = 0; k < p->n_params; k++) {
            const struct akt_param_def *d = &p->params[k];
            assert_non_null(d->key);
            assert_non_null(d->help);
            if (d->type == AKT_PT_FLOAT || d->type == AKT_PT_INT)
                assert_true(d->lo <= d->def && d->def <= d->hi);
            if (d->type == AKT_PT_CHOICE)
                assert_non_null(d->choices);
        }
    }
    assert_null(g_get(3));
    /* every coefficient the SPEC names is a parameter, with its default */
    struct { const char *gen, *key; double def; } want[] = {
        {"gdfq", "bns", 0.1},         {"gdfq", "lr", 1e-3},          {"gdfq", "latent", 100},
        {"qimera", "bns", 0.1},       {"qimera", "latent", 64},      {"qimera", "p_superpose", 0.4},
        {"qimera", "K", 0},           {"qimera", "disentangle", 0},  {"adadfq", "gamma", 1},
        {"adadfq", "beta", 1},        {"adadfq", "alpha_ds", 0.2},   {"adadfq", "alpha_as", 0.1},
        {"adadfq", "lambda_l", 0.1},  {"adadfq", "lambda_u", 0.8},   {"adadfq", "adam_beta1", 0.5},
        {"adadfq", "adam_beta2", 0.999},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct akt_plugin *p = find(want[i].gen);
        int found = 0;
        for (int k = 0; k < p->n_params; k++)
            if (!strcmp(p->params[k].key, want[i].key)) {
                found = 1;
                assert_true(fabs(p->params[k].def - want[i].def) < 1e-12);
            }
        if (!found)
            fail_msg("%s lacks %s", want[i].gen, want[i].key);
    }
}

/* ------------------------------------------------------ training steps -- */
/* Images: [B,3,32,32], each channel standardised by the last BN (mean 0,
 * variance v/(v+1e-5) ~ 1 over the batch). */
static void check_images(const struct akt_tensor *x, int B)
{
    assert_int_equal(x->ndim, 4);
    assert_int_equal(x->shape[0], B);
    assert_int_equal(x->shape[1], 3);
    assert_int_equal(x->shape[2], 32);
    assert_int_equal(x->shape[3], 32);
    for (int c = 0; c < 3; c++) {
        double s = 0, ss = 0, M = (double)B * 1024;
        for (int b = 0; b < B; b++)
            for (int p = 0; p < 1024; p++) {
                double v = x->data[((int64_t)b * 3 + c) * 1024 + p];
                assert_true(isfinite(v));
                s += v;
            }
        double mu = s / M;
        for (int b = 0; b < B; b++)
            for (int p = 0; p < 1024; p++) {
                double d = x->data[((int64_t)b * 3 + c) * 1024 + p] - mu;
                ss += d * d;
            }
        /* v/(v+eps) falls below 1 only for a nearly flat channel */
        if (!(fabs(mu) < 1e-4 && ss / M > 0.9 && ss / M < 1 + 1e-5))
            fail_msg("channel %d: mean %g variance %g", c, mu, ss / M);
    }
}

static void train_steps(const char *name, const char *key, double value)
{
    const struct akt_plugin *p = find(name);
    struct fake *f = fake_new(10, 4, 7);
    struct akt_param_values v;
    defaults(p, &v);
    if (key)
        set(p, &v, key, value);
    if (!strcmp(name, "qimera") && key && !strcmp(key, "p_superpose"))
        set(p, &v, "disentangle", 1); /* cover the mapping on both paths */
    void *g = make(p, f, &v);
    int64_t n;
    float *st = p->ops.gen.state(g, &n);
    assert_true(n > 3 && (n - 1) % 3 == 0);
    int64_t np = (n - 1) / 3;
    float *before = malloc((size_t)np * sizeof(float));
    struct akt_tape t;
    akt_tape_init(&t, 64 << 20);
    const int B = 4;
    for (int it = 0; it < 3; it++) {
        struct akt_gen_batch b;
        memcpy(before, st, (size_t)np * sizeof(float));
        double L = gen_step(p, g, f, &t, B, &b, 1, 1e-3f);
        assert_true(isfinite(L));
        check_images(b.x, B);
        assert_true(b.x->requires_grad && b.x->grad);
        for (int i = 0; i < B; i++)
            assert_true(b.labels[i] >= 0 && b.labels[i] < 10);
        /* Adam moved the parameters; the step counter is the last float */
        int64_t moved = 0;
        for (int64_t i = 0; i < np; i++) {
            assert_true(isfinite(st[i]));
            moved += st[i] != before[i];
        }
        assert_true(moved > np / 2);
        assert_true(st[3 * np] == (float)(it + 1));
    }
    free(before);
    akt_tape_free(&t);
    p->destroy(g);
    fake_free(f);
}

static void test_train_gdfq(void **state)
{
    (void)state;
    train_steps("gdfq", NULL, 0);
}
static void test_train_qimera(void **state)
{
    (void)state;
    train_steps("qimera", NULL, 0);
    train_steps("qimera", "p_superpose", 1.0);
}
static void test_train_adadfq(void **state)
{
    (void)state;
    train_steps("adadfq", NULL, 0);
}

/* ---------------------------------------------------------- determinism -- */
static void test_determinism(void **state)
{
    (void)state;
    const char *names[3] = {"gdfq", "qimera", "adadfq"};
    for (int k = 0; k < 3; k++) {
        const struct akt_plugin *p = find(names[k]);
        struct fake *f[2];
        void *g[2];
        struct akt_tape t[2];
        float *x[2][2];
        double L[2][2];
        for (int r = 0; r < 2; r++) {
            f[r] = fake_new(10, 4, 99);
            g[r] = make(p, f[r], NULL); /* NULL values: the defaults */
            akt_tape_init(&t[r], 64 << 20);
            for (int it = 0; it < 2; it++) {
                struct akt_gen_batch b;
                L[r][it] = gen_step(p, g[r], f[r], &t[r], 3, &b, 1, 1e-3f);
                x[r][it] = malloc((size_t)b.x->n * sizeof(float));
                memcpy(x[r][it], b.x->data, (size_t)b.x->n * sizeof(float));
            }
        }
        for (int it = 0; it < 2; it++) {
            assert_true(L[0][it] == L[1][it]);
            assert_memory_equal(x[0][it], x[1][it], 3 * 3 * 32 * 32 * sizeof(float));
            free(x[0][it]);
            free(x[1][it]);
        }
        int64_t n0, n1;
        float *s0 = p->ops.gen.state(g[0], &n0), *s1 = p->ops.gen.state(g[1], &n1);
        assert_int_equal(n0, n1);
        assert_memory_equal(s0, s1, (size_t)n0 * sizeof(float));
        /* another seed gives another generator */
        struct fake *o = fake_new(10, 4, 100);
        void *go = make(p, o, NULL);
        int64_t no;
        float *so = p->ops.gen.state(go, &no);
        assert_true(memcmp(so, s0, 1024 * sizeof(float)) != 0);
        p->destroy(go);
        fake_free(o);
        for (int r = 0; r < 2; r++) {
            akt_tape_free(&t[r]);
            p->destroy(g[r]);
            fake_free(f[r]);
        }
    }
}

/* ---------------------------------------------- loss values in double --- */
static double bns_double(const struct fake *f)
{
    const struct akt_resnet_out *o = &f->tout;
    assert_int_equal(o->n_bn, 21); /* conv1x1 shortcuts */
    double total = 0;
    for (int l = 0; l < o->n_bn; l++) {
        const struct akt_tensor *x = o->bn_inputs[l];
        int N = x->shape[0], C = x->shape[1];
        int64_t HW = (int64_t)x->shape[2] * x->shape[3];
        const float *rm = f->teacher.values + f->teacher.params[o->bn_index[l] + 2].offset;
        const float *rv = f->teacher.values + f->teacher.params[o->bn_index[l] + 3].offset;
        double dm = 0, dv = 0;
        for (int c = 0; c < C; c++) {
            double s = 0, ss = 0, M = (double)N * HW;
            for (int n = 0; n < N; n++)
                for (int64_t p = 0; p < HW; p++)
                    s += x->data[((int64_t)n * C + c) * HW + p];
            double mu = s / M;
            for (int n = 0; n < N; n++)
                for (int64_t p = 0; p < HW; p++) {
                    double d = x->data[((int64_t)n * C + c) * HW + p] - mu;
                    ss += d * d;
                }
            dm += (mu - rm[c]) * (mu - rm[c]);
            dv += (ss / M - rv[c]) * (ss / M - rv[c]);
        }
        total += dm / C + dv / C;
    }
    return total / o->n_bn;
}

static void log_softmax_row(const float *z, int C, double T, double *out)
{
    double mx = -INFINITY, s = 0;
    for (int c = 0; c < C; c++)
        mx = fmax(mx, z[c] / T);
    for (int c = 0; c < C; c++)
        s += exp(z[c] / T - mx);
    for (int c = 0; c < C; c++)
        out[c] = z[c] / T - mx - log(s);
}

/* mean_b -sum_c target log softmax(z); target NULL = one-hot labels */
static double ce_double(const float *z, int B, int C, const int *labels, const float *target)
{
    double acc = 0, lp[128];
    assert_true(C <= 128);
    for (int b = 0; b < B; b++) {
        log_softmax_row(z + (int64_t)b * C, C, 1, lp);
        if (target)
            for (int c = 0; c < C; c++)
                acc -= target[(int64_t)b * C + c] * lp[c];
        else
            acc -= lp[labels[b]];
    }
    return acc / B;
}

static void near(const char *what, double got, double want, double rel)
{
    if (!(fabs(got - want) <= rel * fmax(1.0, fabs(want))))
        fail_msg("%s: got %.9g want %.9g", what, got, want);
}

static void test_loss_values_gdfq_qimera(void **state)
{
    (void)state;
    const char *names[3] = {"gdfq", "qimera", "qimera"};
    for (int k = 0; k < 3; k++) {
        const struct akt_plugin *p = find(names[k]);
        struct fake *f = fake_new(10, 4, 5);
        struct akt_param_values v;
        defaults(p, &v);
        set(p, &v, "bns", 0.37); /* a non-default weight must be used */
        if (k > 0)
            set(p, &v, "p_superpose", k == 2 ? 1.0 : 0.0);
        void *g = make(p, f, &v);
        struct akt_tape t;
        akt_tape_init(&t, 64 << 20);
        t.recording = 0;
        struct akt_gen_batch b;
        const int B = 5;
        double L = gen_step(p, g, f, &t, B, &b, 0, 0);
        assert_true(k == 2 ? b.target != NULL : b.target == NULL);
        double bns = bns_double(f);
        const float *tg = b.target ? b.target->data : NULL;
        double ce = ce_double(f->tout.logits->data, B, 10, b.labels, tg);
        near("gen.bns", metric_of(f, "gen.bns"), bns, 1e-5);
        near("gen.ce", metric_of(f, "gen.ce"), ce, 1e-5);
        near("loss", L, ce + 0.37 * bns, 1e-5);
        if (k > 0)
            assert_true(metric_of(f, "gen.superposed") == (k == 2));
        akt_tape_free(&t);
        p->destroy(g);
        fake_free(f);
    }
}

static void test_loss_values_adadfq(void **state)
{
    (void)state;
    const struct akt_plugin *p = find("adadfq");
    struct fake *f = fake_new(10, 4, 6);
    struct akt_param_values v;
    defaults(p, &v);
    const double gamma = 0.3, beta = 0.7, ads = 0.25, aas = 0.15, ll = 0.35, lu = 0.6;
    set(p, &v, "gamma", gamma);
    set(p, &v, "beta", beta);
    set(p, &v, "alpha_ds", ads);
    set(p, &v, "alpha_as", aas);
    set(p, &v, "lambda_l", ll);
    set(p, &v, "lambda_u", lu);
    void *g = make(p, f, &v);
    struct akt_tape t;
    akt_tape_init(&t, 64 << 20);
    t.recording = 0;
    struct akt_gen_batch b;
    const int B = 6, C = 10;
    double L = gen_step(p, g, f, &t, B, &b, 0, 0);
    const float *zt = f->tout.logits->data, *zq = f->sout.logits->data;
    float zd[6 * 10], za[6 * 10];
    for (int i = 0; i < B * C; i++) {
        zd[i] = zt[i] - zq[i];
        za[i] = zt[i] + zq[i];
    }
    double H[6], hmin = INFINITY, lp[10];
    for (int i = 0; i < B; i++) {
        log_softmax_row(zd + i * C, C, 1, lp);
        H[i] = 0;
        for (int c = 0; c < C; c++)
            H[i] -= exp(lp[c]) * lp[c];
        hmin = fmin(hmin, H[i]);
    }
    double hl = 0, hu = 0;
    for (int i = 0; i < B; i++) {
        double hn = (H[i] - hmin) / (log(C) - hmin);
        hl += fmax(ll - hn, 0) / B;
        hu += fmax(hn - lu, 0) / B;
    }
    double bal = ads * ce_double(zd, B, C, b.labels, NULL) +
                 aas * ce_double(za, B, C, b.labels, NULL);
    double bns = bns_double(f);
    /* make sure the hinge is active so its value is tested */
    assert_true(hl + hu > 0);
    near("gen.hinge", metric_of(f, "gen.hinge"), hl + hu, 1e-5);
    near("gen.bal", metric_of(f, "gen.bal"), bal, 1e-5);
    near("gen.bns", metric_of(f, "gen.bns"), bns, 1e-5);
    near("gen.ce", metric_of(f, "gen.ce"), ce_double(zt, B, C, b.labels, NULL), 1e-5);
    near("loss", L, hl + hu + beta * bal + gamma * bns, 1e-5);
    akt_tape_free(&t);
    p->destroy(g);
    fake_free(f);
}

/* ------------------------------------------- finite-difference gradients -- */
/* The parameter layout of trunk.c (embedding, [DM], linear, BN0, conv1,
 * BN1, conv2, BN2, conv3; arrays padded to 16 floats). The test recomputes
 * it and checks the total against state(), so a layout change fails here. */
enum { L_EMB, L_DMW, L_DMB, L_L1W, L_L1B, L_BN0G, L_BN0B, L_C1W, L_C1B, L_BN1G, L_BN1B,
       L_C2W, L_C2B, L_BN2G, L_BN2B, L_C3W, L_C3B, L_N };
static const char *layout_names[L_N] = {"emb", "dm_w", "dm_b", "l1_w", "l1_b", "bn0_g", "bn0_b",
                                        "c1_w", "c1_b", "bn1_g", "bn1_b", "c2_w", "c2_b", "bn2_g",
                                        "bn2_b", "c3_w", "c3_b"};

static int64_t layout(int classes, int latent, int dm, int64_t off[L_N], int64_t len[L_N])
{
    int in = dm ? dm : latent;
    int64_t l[L_N] = {(int64_t)classes * latent, dm ? (int64_t)dm * latent : 0, dm, 8192LL * in,
                      8192, 128, 128, 128 * 128 * 9, 128, 128, 128, 64 * 128 * 9, 64, 64, 64,
                      3 * 64 * 9, 3};
    int64_t n = 0;
    for (int i = 0; i < L_N; i++) {
        off[i] = n;
        len[i] = l[i];
        n += (l[i] + 15) & ~(int64_t)15;
    }
    return n;
}

/* Sets a network's running statistics to the batch statistics of its BN
 * inputs on x, perturbed a little: the loss then stays O(1), where float32
 * resolves the small changes a finite difference makes (a random network's
 * BNS loss runs into the thousands). Batch-mode forward: each layer sees the
 * inputs an eval-mode forward will see once the stats are set. */
static void calibrate(struct akt_resnet *m, struct akt_tensor *x, struct akt_rng *r)
{
    struct akt_tape t;
    akt_tape_init(&t, 64 << 20);
    t.recording = 0;
    struct akt_resnet_out o;
    struct akt_resnet_opts opts = {.bn_batch = 1, .param_grads = 0};
    struct akt_tensor *xc = akt_tensor_from(&t, x->data, x->ndim, x->shape);
    akt_resnet_forward(m, &t, xc, &opts, &o);
    for (int l = 0; l < o.n_bn; l++) {
        const struct akt_tensor *in = o.bn_inputs[l];
        int N = in->shape[0], C = in->shape[1];
        int64_t HW = (int64_t)in->shape[2] * in->shape[3];
        float *rm = m->values + m->params[o.bn_index[l] + 2].offset;
        float *rv = m->values + m->params[o.bn_index[l] + 3].offset;
        for (int c = 0; c < C; c++) {
            double s = 0, ss = 0, M = (double)N * HW;
            for (int n = 0; n < N; n++)
                for (int64_t q = 0; q < HW; q++)
                    s += in->data[((int64_t)n * C + c) * HW + q];
            for (int n = 0; n < N; n++)
                for (int64_t q = 0; q < HW; q++) {
                    double d = in->data[((int64_t)n * C + c) * HW + q] - s / M;
                    ss += d * d;
                }
            double sd = sqrt(ss / M);
            rm[c] = (float)(s / M + 0.2 * sd * (akt_rng_uniform(r) - 0.5));
            rv[c] = (float)(ss / M * (0.9 + 0.2 * akt_rng_uniform(r)));
        }
    }
    akt_tape_free(&t);
}

/* The analytic gradient: one update at lr 0 leaves the parameters and makes
 * Adam's first moment (1 - beta1) g = g / 2 exactly. */
static void fd_check(const char *name, const struct akt_param_values *vin, int B, int dm)
{
    const struct akt_plugin *p = find(name);
    struct fake *f = fake_new(10, 4, 31);
    struct akt_param_values v;
    if (vin)
        v = *vin;
    else
        defaults(p, &v);
    void *g = make(p, f, &v);
    int64_t n;
    float *st = p->ops.gen.state(g, &n);
    int64_t off[L_N], len[L_N];
    int latent = !strcmp(name, "qimera") ? 64 : 100;
    int64_t np = layout(10, latent, dm, off, len);
    assert_int_equal(n, 3 * np + 1);

    struct akt_tape t;
    akt_tape_init(&t, 64 << 20);
    struct akt_rng r0 = f->rng, rc;
    akt_rng_seed(&rc, 77);
    struct akt_gen_batch b;
    struct akt_error e = {0};
    t.recording = 0;
    assert_int_equal(sample_n(p, g, f, &t, B, &b, &e), AKT_OK);
    calibrate(&f->teacher, b.x, &rc);
    calibrate(&f->student, b.x, &rc);
    t.recording = 1;
    f->rng = r0;
    double L0 = gen_step(p, g, f, &t, B, &b, 1, 0.0f);
    if (getenv("AKT_TEST_VERBOSE"))
        fprintf(stderr, "%s: loss %g\n", name, L0);
    float *grad = malloc((size_t)np * sizeof(float));
    for (int64_t i = 0; i < np; i++)
        grad[i] = 2 * st[np + i];

    t.recording = 0;
    double gmax = 0;
    for (int64_t i = 0; i < np; i++)
        gmax = fmax(gmax, fabs(grad[i]));
    assert_true(gmax > 0);
    int checked = 0, bad = 0;
    for (int grp = 0; grp < L_N; grp++) {
        if (len[grp] == 0)
            continue;
        /* per-channel biases right before a batch-statistics BN get no
         * gradient (the linear bias varies over positions, so it does) */
        if (grp == L_C1B || grp == L_C2B) {
            double m = 0;
            for (int64_t i = 0; i < len[grp]; i++)
                m = fmax(m, fabs(grad[off[grp] + i]));
            if (m > 1e-4 * gmax) {
                fprintf(stderr, "%s %s: gradient %g before a batch BN\n", name,
                        layout_names[grp], m);
                bad++;
            }
            continue;
        }
        /* the largest gradient of the group and one more of a decent size */
        int64_t best = 0;
        for (int64_t i = 1; i < len[grp]; i++)
            if (fabs(grad[off[grp] + i]) > fabs(grad[off[grp] + best]))
                best = i;
        double gbest = fabs(grad[off[grp] + best]);
        int64_t pick[2] = {best, -1};
        for (int64_t i = (len[grp] * 7) / 13; i < len[grp] + (len[grp] * 7) / 13; i++) {
            int64_t j = i % len[grp];
            if (j != best && fabs(grad[off[grp] + j]) > 0.3 * gbest) {
                pick[1] = j;
                break;
            }
        }
        for (int q = 0; q < 2; q++) {
            if (pick[q] < 0)
                continue;
            int64_t idx = off[grp] + pick[q];
            float x0 = st[idx];
            /* Small enough for the ReLU/LeakyReLU kinks of teacher and
             * generator to stay a few-percent effect, large enough for the
             * float32 loss to resolve the change. */
            float h = 3e-3f * fmaxf(fabsf(x0), 0.3f);
            double Lv[2];
            float xs[2] = {x0 + h, x0 - h};
            for (int sgn = 0; sgn < 2; sgn++) {
                st[idx] = xs[sgn];
                f->rng = r0;
                Lv[sgn] = gen_step(p, g, f, &t, B, &b, 0, 0);
            }
            st[idx] = x0;
            double num = (Lv[0] - Lv[1]) / ((double)xs[0] - xs[1]);
            double ana = grad[idx];
            /* a wrong sign, a factor or a missing path is far outside this;
             * kinks crossed inside [x-h, x+h] stay within it */
            int ok = fabs(num - ana) <= 0.12 * fmax(fabs(num), fabs(ana)) + 2e-3 * gmax;
            if (!ok || getenv("AKT_TEST_VERBOSE"))
                fprintf(stderr, "%s %s[%lld]: analytic %.6g numeric %.6g%s\n", name,
                        layout_names[grp], (long long)pick[q], ana, num, ok ? "" : "  MISMATCH");
            bad += !ok;
            checked++;
        }
    }
    assert_true(checked >= 10);
    assert_int_equal(bad, 0);
    free(grad);
    akt_tape_free(&t);
    p->destroy(g);
    fake_free(f);
}

static void test_fd_gdfq(void **state)
{
    (void)state;
    fd_check("gdfq", NULL, 2, 0);
}

static void test_fd_qimera(void **state)
{
    (void)state;
    const struct akt_plugin *p = find("qimera");
    struct akt_param_values v;
    defaults(p, &v);
    set(p, &v, "p_superpose", 0.0);
    fd_check("qimera", &v, 2, 0);
    /* superposed, with the disentanglement mapping */
    set(p, &v, "p_superpose", 1.0);
    set(p, &v, "disentangle", 1);
    set(p, &v, "K", 3);
    fd_check("qimera", &v, 2, 100);
}

static void test_fd_adadfq(void **state)
{
    (void)state;
    const struct akt_plugin *p = find("adadfq");
    struct akt_param_values v;
    defaults(p, &v);
    /* bounds that keep both hinges active on a 3-sample batch */
    set(p, &v, "lambda_l", 0.5);
    set(p, &v, "lambda_u", 0.6);
    fd_check("adadfq", &v, 3, 0);
}

/* ---------------------------------------------------------------- qimera -- */
/* Soft targets over 100 classes: rows sum to 1, at most K classes each, the
 * hard label is the heaviest class; K follows the bit width. */
static void soft_targets(int wbits, int K_param, int expect_k)
{
    const struct akt_plugin *p = find("qimera");
    struct fake *f = fake_new(100, wbits, 3);
    struct akt_param_values v;
    defaults(p, &v);
    set(p, &v, "p_superpose", 1.0);
    set(p, &v, "K", K_param);
    void *g = make(p, f, &v);
    struct akt_tape t;
    akt_tape_init(&t, 64 << 20);
    t.recording = 0;
    struct akt_gen_batch b;
    struct akt_error e = {0};
    const int B = 6, C = 100;
    assert_int_equal(sample_n(p, g, f, &t, B, &b, &e), AKT_OK);
    assert_non_null(b.target);
    assert_int_equal(b.target->ndim, 2);
    assert_int_equal(b.target->shape[0], B);
    assert_int_equal(b.target->shape[1], C);
    int most = 0;
    for (int i = 0; i < B; i++) {
        const float *row = b.target->data + i * C;
        double s = 0;
        int nz = 0, best = 0;
        for (int c = 0; c < C; c++) {
            assert_true(row[c] >= 0);
            s += row[c];
            nz += row[c] > 0;
            if (row[c] > row[best])
                best = c;
        }
        near("target sum", s, 1.0, 1e-5);
        assert_true(nz >= 1 && nz <= expect_k);
        most = nz > most ? nz : most;
        assert_int_equal(b.labels[i], best);
    }
    /* K = 50 draws from 100 classes: far more than 10 distinct ones */
    if (expect_k == 50)
        assert_true(most > 10);
    check_images(b.x, B);
    akt_tape_free(&t);
    p->destroy(g);
    fake_free(f);
}

static void test_qimera_soft_targets(void **state)
{
    (void)state;
    soft_targets(4, 0, 10);
    soft_targets(5, 0, 50);
    soft_targets(4, 3, 3);
}

static void test_qimera_embedding_init(void **state)
{
    (void)state;
    const struct akt_plugin *p = find("qimera");
    struct fake *f = fake_new(100, 4, 3);
    const struct akt_param *fc = akt_resnet_param(&f->teacher, "linear.weight");
    assert_non_null(fc);
    /* CIFAR-100: E starts as the teacher's FC weight (the first array) */
    void *g = make(p, f, NULL);
    int64_t n;
    float *st = p->ops.gen.state(g, &n);
    assert_memory_equal(st, f->teacher.values + fc->offset, 100 * 64 * sizeof(float));
    p->destroy(g);
    /* random on request */
    struct akt_param_values v;
    defaults(p, &v);
    set(p, &v, "embed_init", 1);
    g = make(p, f, &v);
    st = p->ops.gen.state(g, &n);
    assert_true(memcmp(st, f->teacher.values + fc->offset, 100 * 64 * sizeof(float)) != 0);
    p->destroy(g);
    /* teacher_fc with a latent the FC cannot fill is refused */
    set(p, &v, "embed_init", 2);
    set(p, &v, "latent", 100);
    struct akt_error e = {0};
    assert_null(p->create(&f->h, &v, &e));
    assert_int_equal(e.code, AKT_EINVAL);
    assert_non_null(strstr(e.where, "embed_init"));
    fake_free(f);
    /* CIFAR-10: random N(0,1), not the FC */
    f = fake_new(10, 4, 3);
    fc = akt_resnet_param(&f->teacher, "linear.weight");
    g = make(p, f, NULL);
    st = p->ops.gen.state(g, &n);
    assert_true(memcmp(st, f->teacher.values + fc->offset, 10 * 64 * sizeof(float)) != 0);
    p->destroy(g);
    fake_free(f);
}

/* p = 0.4 per iteration: count superposed batches over many draws (B = 1,
 * no tape records, to keep it cheap). p = 0 and 1 are exact. */
static void test_qimera_frequency(void **state)
{
    (void)state;
    const struct akt_plugin *p = find("qimera");
    const double probs[3] = {0.4, 0.0, 1.0};
    const int draws[3] = {400, 20, 20};
    for (int k = 0; k < 3; k++) {
        struct fake *f = fake_new(10, 4, 11);
        struct akt_param_values v;
        defaults(p, &v);
        set(p, &v, "p_superpose", probs[k]);
        void *g = make(p, f, &v);
        struct akt_tape t;
        akt_tape_init(&t, 16 << 20);
        t.recording = 0;
        int mixed = 0;
        for (int i = 0; i < draws[k]; i++) {
            struct akt_gen_batch b;
            struct akt_error e = {0};
            akt_tape_reset(&t);
            assert_int_equal(sample_n(p, g, f, &t, 1, &b, &e), AKT_OK);
            mixed += b.target != NULL;
        }
        double freq = (double)mixed / draws[k];
        if (k == 0) {
            /* 4 standard deviations of a binomial(400, 0.4) */
            if (fabs(freq - 0.4) > 4 * sqrt(0.24 / 400))
                fail_msg("superposed in %.3f of the draws, want 0.4", freq);
        } else {
            assert_true(freq == probs[k]);
        }
        akt_tape_free(&t);
        p->destroy(g);
        fake_free(f);
    }
}

/* ------------------------------------------------------------ the rest --- */
/* A user-set lr goes through the host's schedule: with Adam's first step
 * moving each parameter by about lr, doubling lr doubles the move. */
static void test_lr_param(void **state)
{
    (void)state;
    const struct akt_plugin *p = find("gdfq");
    double move[2];
    for (int k = 0; k < 2; k++) {
        struct fake *f = fake_new(10, 4, 13);
        struct akt_param_values v;
        defaults(p, &v);
        set(p, &v, "lr", k ? 2e-3 : 1e-3);
        void *g = make(p, f, &v);
        int64_t n;
        float *st = p->ops.gen.state(g, &n);
        int64_t np = (n - 1) / 3;
        float *before = malloc((size_t)np * sizeof(float));
        memcpy(before, st, (size_t)np * sizeof(float));
        struct akt_tape t;
        akt_tape_init(&t, 64 << 20);
        struct akt_gen_batch b;
        gen_step(p, g, f, &t, 2, &b, 1, 1e-3f); /* the host's lr at epoch 0 */
        double s = 0;
        for (int64_t i = 0; i < np; i++)
            s += fabs((double)st[i] - before[i]);
        move[k] = s;
        free(before);
        akt_tape_free(&t);
        p->destroy(g);
        fake_free(f);
    }
    near("lr ratio", move[1] / move[0], 2.0, 1e-3);
}

static void test_refusals(void **state)
{
    (void)state;
    const struct akt_plugin *p = find("adadfq");
    struct fake *f = fake_new(10, 4, 17);
    struct akt_error e = {0};
    /* one class is no classification */
    f->h.num_classes = 1;
    assert_null(p->create(&f->h, NULL, &e));
    assert_int_equal(e.code, AKT_EINVAL);
    f->h.num_classes = 10;
    void *g = make(p, f, NULL);
    struct akt_tape t;
    akt_tape_init(&t, 64 << 20);
    t.recording = 0;
    struct akt_gen_batch b;
    assert_int_equal(sample_n(p, g, f, &t, 0, &b, &e), AKT_EINVAL);
    assert_int_equal(sample_n(p, g, f, &t, 2, &b, &e), AKT_OK);
    f->h.teacher_forward(&f->h, &t, b.x, &f->tout);
    /* AdaDFQ without the student's output */
    memset(&e, 0, sizeof e);
    assert_null(p->ops.gen.loss(g, &f->h, &t, &b, &f->tout, NULL, &e));
    assert_int_equal(e.code, AKT_ESHAPE);
    assert_non_null(strstr(e.what, "student"));
    akt_tape_free(&t);
    p->destroy(g);
    fake_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_descriptors),
        cmocka_unit_test(test_train_gdfq),
        cmocka_unit_test(test_train_qimera),
        cmocka_unit_test(test_train_adadfq),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_loss_values_gdfq_qimera),
        cmocka_unit_test(test_loss_values_adadfq),
        cmocka_unit_test(test_fd_gdfq),
        cmocka_unit_test(test_fd_qimera),
        cmocka_unit_test(test_fd_adadfq),
        cmocka_unit_test(test_qimera_soft_targets),
        cmocka_unit_test(test_qimera_embedding_init),
        cmocka_unit_test(test_qimera_frequency),
        cmocka_unit_test(test_lr_param),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, load_module, unload_module);
}
