/* Spatial reshaping ops: global average pool, nearest upsample x2, option-A
 * subsample with zero channel padding. All parallel over (n, c) planes. */
#include "internal.h"

/* ------------------------------------------------------ global avgpool --- */

static void avgpool_forward(float *y, const float *x, int64_t planes, int64_t HW)
{
    AKT_PARALLEL_FOR(planes * HW)
    for (int64_t i = 0; i < planes; i++) {
        double s = 0;
        for (int64_t p = 0; p < HW; p++)
            s += x[i * HW + p];
        y[i] = (float)(s / (double)HW);
    }
}

/* dx (+)= dy / HW; add 0 writes dx (the first gradient into a lazy buffer) */
static void avgpool_backward(float *dx, const float *dy, int64_t planes, int64_t HW, int add)
{
    AKT_PARALLEL_FOR(planes * HW)
    for (int64_t i = 0; i < planes; i++) {
        float g = (float)(dy[i] / (double)HW), *d = dx + i * HW;
        AKT_GRAD_LOOP(HW, add, d, g);
    }
}

static void avgpool_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *x = n->in[0];
    avgpool_backward(x->grad, n->out->grad, (int64_t)x->shape[0] * x->shape[1],
                     (int64_t)x->shape[2] * x->shape[3], akt_grad_claim(x));
}

struct akt_tensor *akt_global_avgpool(struct akt_tape *t, struct akt_tensor *x)
{
    AKT_ASSERT(x->ndim == 4);
    int64_t HW = (int64_t)x->shape[2] * x->shape[3];
    AKT_ASSERT(HW > 0);
    int shape[2] = {x->shape[0], x->shape[1]};
    struct akt_tensor *y = akt_tensor_new_uninit(t, 2, shape, 0); /* all written */
    avgpool_forward(y->data, x->data, y->n, HW);
    akt__push_claiming(t, avgpool_bw, "global_avgpool", y, x, NULL, NULL);
    return y;
}

/* ---------------------------------------------------------- upsample2x --- */

/* y[i][2h+a][2w+b] = x[i][h][w] */
static void upsample_forward(float *y, const float *x, int64_t planes, int H, int W)
{
    int64_t in_sz = (int64_t)H * W, out_sz = 4 * in_sz;
    AKT_PARALLEL_FOR(planes * out_sz)
    for (int64_t i = 0; i < planes; i++) {
        const float *xp = x + i * in_sz;
        float *yp = y + i * out_sz;
        for (int h = 0; h < H; h++) {
            float *r0 = yp + (int64_t)(2 * h) * (2 * W), *r1 = r0 + 2 * W;
            for (int w = 0; w < W; w++) {
                float v = xp[(int64_t)h * W + w];
                r0[2 * w] = r0[2 * w + 1] = r1[2 * w] = r1[2 * w + 1] = v;
            }
        }
    }
}

/* dx[h][w] (+)= the four copies' gradients, in a fixed order; add 0 writes */
static void upsample_backward(float *dx, const float *dy, int64_t planes, int H, int W, int add)
{
    int64_t in_sz = (int64_t)H * W, out_sz = 4 * in_sz;
    AKT_PARALLEL_FOR(planes * out_sz)
    for (int64_t i = 0; i < planes; i++) {
        float *dxp = dx + i * in_sz;
        const float *dyp = dy + i * out_sz;
        for (int h = 0; h < H; h++) {
            const float *r0 = dyp + (int64_t)(2 * h) * (2 * W), *r1 = r0 + 2 * W;
            float *d = dxp + (int64_t)h * W;
            AKT_GRAD_LOOP(W, add, d, (r0[2 * i] + r0[2 * i + 1]) + (r1[2 * i] + r1[2 * i + 1]));
        }
    }
}

static void upsample_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *x = n->in[0];
    upsample_backward(x->grad, n->out->grad, (int64_t)x->shape[0] * x->shape[1], x->shape[2],
                      x->shape[3], akt_grad_claim(x));
}

struct akt_tensor *akt_upsample2x(struct akt_tape *t, struct akt_tensor *x)
{
    AKT_ASSERT(x->ndim == 4);
    int shape[4] = {x->shape[0], x->shape[1], 2 * x->shape[2], 2 * x->shape[3]};
    struct akt_tensor *y = akt_tensor_new_uninit(t, 4, shape, 0); /* all written */
    upsample_forward(y->data, x->data, (int64_t)x->shape[0] * x->shape[1], x->shape[2],
                     x->shape[3]);
    akt__push_claiming(t, upsample_bw, "upsample2x", y, x, NULL, NULL);
    return y;
}

/* ------------------------------------------------------- subsample_pad --- */

/* Output sizes follow x[:, :, ::s, ::s], i.e. ceil(H/s); the same as H/s for
 * the even maps of ResNet. */
static int sub_size(int H, int s) { return (H + s - 1) / s; }

/* y[n][c+pad][i][j] = x[n][c][i*s][j*s]; the pad channels stay zero (the
 * arena hands out zeroed memory) */
static void subsample_forward(float *y, const float *x, int N, int C, int H, int W, int s, int pad)
{
    int Ho = sub_size(H, s), Wo = sub_size(W, s), Co = C + 2 * pad;
    int64_t planes = (int64_t)N * C;
    AKT_PARALLEL_FOR(planes * Ho * Wo)
    for (int64_t i = 0; i < planes; i++) {
        int64_t n = i / C, c = i % C;
        const float *xp = x + i * H * W;
        float *yp = y + (n * Co + c + pad) * Ho * Wo;
        for (int h = 0; h < Ho; h++)
            for (int w = 0; w < Wo; w++)
                yp[(int64_t)h * Wo + w] = xp[(int64_t)h * s * W + (int64_t)w * s];
    }
}

static void subsample_backward(float *dx, const float *dy, int N, int C, int H, int W, int s,
                               int pad)
{
    int Ho = sub_size(H, s), Wo = sub_size(W, s), Co = C + 2 * pad;
    int64_t planes = (int64_t)N * C;
    AKT_PARALLEL_FOR(planes * Ho * Wo)
    for (int64_t i = 0; i < planes; i++) {
        int64_t n = i / C, c = i % C;
        float *dxp = dx + i * H * W;
        const float *dyp = dy + (n * Co + c + pad) * Ho * Wo;
        for (int h = 0; h < Ho; h++)
            for (int w = 0; w < Wo; w++)
                dxp[(int64_t)h * s * W + (int64_t)w * s] += dyp[(int64_t)h * Wo + w];
    }
}

static void subsample_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *x = n->in[0];
    subsample_backward(x->grad, n->out->grad, x->shape[0], x->shape[1], x->shape[2], x->shape[3],
                       n->ip[0], n->ip[1]);
}

struct akt_tensor *akt_subsample_pad(struct akt_tape *t, struct akt_tensor *x, int stride,
                                     int pad_c)
{
    AKT_ASSERT(x->ndim == 4 && stride >= 1 && pad_c >= 0);
    int N = x->shape[0], C = x->shape[1], H = x->shape[2], W = x->shape[3];
    struct akt_tensor *y =
        akt_tensor_newv(t, 0, 4, N, C + 2 * pad_c, sub_size(H, stride), sub_size(W, stride));
    subsample_forward(y->data, x->data, N, C, H, W, stride, pad_c);
    struct akt_node *nd = akt_tape_push(t, subsample_bw, "subsample_pad", y, x, NULL, NULL, NULL);
    if (nd) {
        nd->ip[0] = stride;
        nd->ip[1] = pad_c;
    }
    return y;
}
