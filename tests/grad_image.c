/* Gradient and value checks of the later methods' ops: SynQ's Gaussian
 * low-pass filter (against a direct 2-D DFT), bilinear crop-and-resize
 * (PyTorch's align_corners=False taps, crops, flips), per-sample min-max
 * normalisation, focal / weighted cross-entropy, and the class activation
 * map of akt/distill.h built from them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "akt/distill.h"
#include "gradcheck.h"

#define SHAPE(...) .ndim = sizeof((int[]){__VA_ARGS__}) / sizeof(int), .shape = {__VA_ARGS__}

/* ------------------------------------------------------------ lowpass --- */
static struct akt_tensor *f_lowpass(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    return akt_lowpass_gaussian(t, in[0], *(float *)u);
}

static void test_lowpass_grad(void **state)
{
    (void)state;
    float d0[] = {1.5f, 0.7f, 30.0f};
    struct gc_input a[1] = {{SHAPE(2, 2, 6, 5), .grad = 1}};
    struct gc_input b[1] = {{SHAPE(1, 3, 4, 4), .grad = 1}};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(gradcheck_finite("lowpass 6x5", f_lowpass, &d0[k], 1, a, 10 + k, 1e-2f,
                                          1e-3), 0);
        assert_int_equal(gradcheck_finite("lowpass 4x4", f_lowpass, &d0[k], 1, b, 20 + k, 1e-2f,
                                          1e-3), 0);
    }
}

/* The definition, independently: X = DFT2(x), times H at fftshift-centred
 * distances, inverse DFT, real part (what torch.fft does in SynQ's code). */
static void lowpass_reference(const float *x, double *y, int H, int W, double d0)
{
    int n = H * W;
    double *re = calloc((size_t)n, sizeof *re), *im = calloc((size_t)n, sizeof *im);
    for (int u = 0; u < H; u++)
        for (int v = 0; v < W; v++) {
            for (int i = 0; i < H; i++)
                for (int j = 0; j < W; j++) {
                    double ph = -2 * M_PI * ((double)u * i / H + (double)v * j / W);
                    re[u * W + v] += x[i * W + j] * cos(ph);
                    im[u * W + v] += x[i * W + j] * sin(ph);
                }
            /* the shifted position of bin (u, v) and its distance from the
             * centre (H/2, W/2), as SynQ's apply_filters computes it */
            int su = (u + H / 2) % H, sv = (v + W / 2) % W;
            double dy = su - H / 2, dx = sv - W / 2;
            double g = exp(-(dy * dy + dx * dx) / (2 * d0 * d0));
            re[u * W + v] *= g;
            im[u * W + v] *= g;
        }
    for (int i = 0; i < H; i++)
        for (int j = 0; j < W; j++) {
            double s = 0;
            for (int u = 0; u < H; u++)
                for (int v = 0; v < W; v++) {
                    double ph = 2 * M_PI * ((double)u * i / H + (double)v * j / W);
                    s += re[u * W + v] * cos(ph) - im[u * W + v] * sin(ph);
                }
            y[i * W + j] = s / n;
        }
    free(re);
    free(im);
}

static void test_lowpass_values(void **state)
{
    (void)state;
    static const int sizes[][2] = {{6, 5}, {5, 5}, {4, 6}, {8, 8}};
    struct akt_rng rng;
    akt_rng_seed(&rng, 7);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        int H = sizes[s][0], W = sizes[s][1];
        for (int k = 0; k < 3; k++) {
            double d0 = (double[]){0.8, 2.0, 80.0}[k];
            struct akt_tape t;
            akt_tape_init(&t, 1 << 20);
            struct akt_tensor *x = akt_tensor_newv(&t, 0, 4, 1, 1, H, W);
            for (int64_t i = 0; i < x->n; i++)
                x->data[i] = (float)(2 * akt_rng_uniform(&rng) - 1);
            struct akt_tensor *y = akt_lowpass_gaussian(&t, x, (float)d0);
            double ref[64];
            lowpass_reference(x->data, ref, H, W, d0);
            for (int i = 0; i < H * W; i++)
                assert_near(y->data[i], ref[i], 2e-6);
            /* a constant plane is kept (the DC gain is 1) */
            for (int64_t i = 0; i < x->n; i++)
                x->data[i] = 0.75f;
            y = akt_lowpass_gaussian(&t, x, (float)d0);
            for (int64_t i = 0; i < x->n; i++)
                assert_near(y->data[i], 0.75, 1e-6);
            akt_tape_free(&t);
        }
    }
}

/* -------------------------------------------------------- crop_resize --- */
struct cr_args {
    const int *crop;
    const unsigned char *flip;
    int oh, ow;
};

static struct akt_tensor *f_crop_resize(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    struct cr_args *a = u;
    return akt_crop_resize(t, in[0], a->crop, a->flip, a->oh, a->ow);
}

static void test_crop_resize_grad(void **state)
{
    (void)state;
    const int crop[8] = {1, 0, 4, 5, 0, 2, 6, 3};
    const unsigned char flip[2] = {0, 1};
    struct gc_input in[1] = {{SHAPE(2, 2, 6, 5), .grad = 1}};
    struct cr_args cases[] = {
        {NULL, NULL, 6, 5},  /* identity */
        {NULL, NULL, 13, 9}, /* upsampling */
        {NULL, NULL, 4, 3},  /* downsampling */
        {crop, flip, 7, 7},  /* crops and a flip */
        {crop, NULL, 3, 2},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        assert_int_equal(gradcheck_finite("crop_resize", f_crop_resize, &cases[k], 1, in, 40 + k,
                                          1e-2f, 1e-3), 0);
}

static void test_crop_resize_values(void **state)
{
    (void)state;
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    /* [[1,2],[3,4]] to 4x4 (F.interpolate, bilinear, align_corners=False):
     * taps at -0.25 (clamped), 0.25, 0.75, 1.25 (last pixel twice) */
    const float x22[4] = {1, 2, 3, 4};
    struct akt_tensor *x = akt_tensor_from(&t, x22, 4, (int[]){1, 1, 2, 2});
    struct akt_tensor *y = akt_crop_resize(&t, x, NULL, NULL, 4, 4);
    const float row[4] = {1, 1.25f, 1.75f, 2};
    const float col[4] = {0, 0.5f, 1.5f, 2}; /* rows add 2 * (tap weight) */
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            assert_near(y->data[i * 4 + j], row[j] + col[i], 1e-6);
    /* the same size is the identity; a flip mirrors each row */
    struct akt_tensor *x35 = akt_tensor_newv(&t, 0, 4, 1, 2, 3, 5);
    for (int64_t i = 0; i < x35->n; i++)
        x35->data[i] = (float)i * 0.5f - 3;
    y = akt_crop_resize(&t, x35, NULL, NULL, 3, 5);
    assert_memory_equal(y->data, x35->data, sizeof(float) * x35->n);
    const unsigned char fl[1] = {1};
    y = akt_crop_resize(&t, x35, NULL, fl, 3, 5);
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 3; i++)
            for (int j = 0; j < 5; j++)
                assert_true(y->data[(c * 3 + i) * 5 + j] == x35->data[(c * 3 + i) * 5 + 4 - j]);
    /* a crop at its own size is the window itself */
    const int cr[4] = {1, 2, 2, 3};
    y = akt_crop_resize(&t, x35, cr, NULL, 2, 3);
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++)
                assert_true(y->data[(c * 2 + i) * 3 + j] == x35->data[(c * 3 + 1 + i) * 5 + 2 + j]);
    akt_tape_free(&t);
}

/* ------------------------------------------------------------- minmax --- */
static struct akt_tensor *f_minmax(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    return akt_minmax_normalize(t, in[0], *(float *)u);
}

static void test_minmax(void **state)
{
    (void)state;
    float eps[] = {1e-10f, 0.3f};
    struct gc_input in[1] = {{SHAPE(3, 2, 4), .grad = 1, .lo = -2, .hi = 2}};
    for (int k = 0; k < 2; k++)
        assert_int_equal(gradcheck_finite("minmax", f_minmax, &eps[k], 1, in, 60 + k, 1e-3f, 2e-3),
                         0);
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    const float v[6] = {2, -1, 5, 0, 0, 4};
    struct akt_tensor *x = akt_tensor_from(&t, v, 2, (int[]){2, 3});
    struct akt_tensor *y = akt_minmax_normalize(&t, x, 0);
    const float want[6] = {0.5f, 0, 1, 0, 0, 1};
    for (int i = 0; i < 6; i++)
        assert_near(y->data[i], want[i], 1e-7);
    akt_tape_free(&t);
}

/* -------------------------------------------------------------- focal --- */
struct focal_args {
    const int *labels;
    float gamma;
    const float *w;
};

static struct akt_tensor *f_focal(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    struct focal_args *a = u;
    return akt_focal_cross_entropy(t, in[0], a->labels, a->gamma, a->w);
}

static void test_focal(void **state)
{
    (void)state;
    const int labels[4] = {2, 0, 4, 1};
    const float w[4] = {1, 0, 1, 0.5f};
    struct focal_args cases[] = {
        {labels, 0, NULL}, {labels, 2, NULL}, {labels, 0.5f, NULL}, {labels, 2, w}, {labels, 0, w},
    };
    struct gc_input in[1] = {{SHAPE(4, 5), .grad = 1, .lo = -3, .hi = 3}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
        assert_int_equal(gradcheck_finite("focal", f_focal, &cases[k], 1, in, 70 + k, 1e-3f, 2e-3),
                         0);
    /* values by hand; gamma 0 without weights is the plain cross-entropy */
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    struct akt_tensor *z = akt_tensor_newv(&t, 0, 2, 4, 5);
    struct akt_rng rng;
    akt_rng_seed(&rng, 3);
    for (int64_t i = 0; i < z->n; i++)
        z->data[i] = (float)(6 * akt_rng_uniform(&rng) - 3);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        double want = 0;
        for (int b = 0; b < 4; b++) {
            double s = 0;
            for (int c = 0; c < 5; c++)
                s += exp(z->data[b * 5 + c]);
            double p = exp(z->data[b * 5 + labels[b]]) / s;
            want += (cases[k].w ? cases[k].w[b] : 1) * pow(1 - p, cases[k].gamma) * -log(p);
        }
        struct akt_tensor *L = akt_focal_cross_entropy(&t, z, labels, cases[k].gamma, cases[k].w);
        assert_near(L->data[0], want / 4, 1e-6);
    }
    assert_near(akt_focal_cross_entropy(&t, z, labels, 0, NULL)->data[0],
                akt_cross_entropy(&t, z, labels)->data[0], 1e-6);
    /* a sure sample (p = 1 in float) with gamma < 1: finite gradient */
    z->data[0] = 200;
    struct akt_tape t2;
    akt_tape_init(&t2, 1 << 20);
    struct akt_tensor *z2 = akt_tensor_newv(&t2, 1, 2, 4, 5);
    memcpy(z2->data, z->data, sizeof(float) * 20);
    akt_backward(&t2, akt_focal_cross_entropy(&t2, z2, (int[]){0, 0, 4, 1}, 0.5f, NULL));
    for (int i = 0; i < 20; i++)
        assert_true(isfinite(z2->grad[i]));
    akt_tape_free(&t2);
    akt_tape_free(&t);
}

/* ---------------------------------------------------------------- CAM --- */
#define CAM_B 2
#define CAM_K 3
#define CAM_C 4
static float g_fc[CAM_C * CAM_K] = {0.9f, -0.4f, 0.3f, 0.2f, 0.8f, -0.5f,
                                    -0.7f, 0.1f, 0.6f, 0.4f, 0.5f, 0.3f};
static const int g_cls[CAM_B] = {0, 3};

static struct akt_tensor *f_cam(struct akt_tape *t, struct akt_tensor **in, void *u)
{
    (void)u;
    struct akt_tensor fc = akt_tensor_wrap(g_fc, NULL, 2, (int[]){CAM_C, CAM_K});
    struct akt_tensor *acts[1] = {in[0]};
    struct akt_resnet_out o = {.size = sizeof o, .n_acts = 1, .acts = acts, .fc_weight = &fc};
    struct akt_tensor *m = akt_class_activation_map(t, &o, g_cls, 6, NULL);
    AKT_ASSERT(m);
    return m;
}

static void test_cam(void **state)
{
    (void)state;
    /* positive features, as after a ReLU: the weighted sum stays positive */
    struct gc_input in[1] = {{SHAPE(CAM_B, CAM_K, 3, 3), .grad = 1, .lo = 0.1f, .hi = 2}};
    assert_int_equal(gradcheck_finite("cam", f_cam, NULL, 1, in, 80, 1e-3f, 3e-3), 0);
    /* values: the definition by hand on a 2x2 map resized to 2x2 (identity) */
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    struct akt_tensor *h = akt_tensor_newv(&t, 0, 4, 1, CAM_K, 2, 2);
    for (int64_t i = 0; i < h->n; i++)
        h->data[i] = (float)((i * 7) % 5) * 0.25f;
    struct akt_tensor fc = akt_tensor_wrap(g_fc, NULL, 2, (int[]){CAM_C, CAM_K});
    struct akt_tensor *acts[1] = {h};
    struct akt_resnet_out o = {.size = sizeof o, .n_acts = 1, .acts = acts, .fc_weight = &fc};
    const int cls[1] = {1};
    struct akt_tensor *m = akt_class_activation_map(&t, &o, cls, 2, NULL);
    assert_non_null(m);
    assert_int_equal(m->ndim, 3);
    double s[4], lo = INFINITY, hi = -INFINITY;
    for (int p = 0; p < 4; p++) {
        s[p] = 0;
        for (int k = 0; k < CAM_K; k++)
            s[p] += fmax(g_fc[1 * CAM_K + k] / 4.0, 1e-10) * h->data[k * 4 + p];
        s[p] = fmax(s[p], 0);
        lo = fmin(lo, s[p]);
        hi = fmax(hi, s[p]);
    }
    for (int p = 0; p < 4; p++)
        assert_near(m->data[p], (s[p] - lo) / (hi - lo + 1e-10), 1e-6);
    /* an output without the classifier's weight is refused */
    o.fc_weight = NULL;
    struct akt_error e = {0};
    assert_null(akt_class_activation_map(&t, &o, cls, 2, &e));
    assert_int_equal(e.code, AKT_EINVAL);
    akt_tape_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lowpass_grad),      cmocka_unit_test(test_lowpass_values),
        cmocka_unit_test(test_crop_resize_grad),  cmocka_unit_test(test_crop_resize_values),
        cmocka_unit_test(test_minmax),            cmocka_unit_test(test_focal),
        cmocka_unit_test(test_cam),
    };
    return cmocka_run_group_tests_name("grad_image", tests, NULL, NULL);
}
