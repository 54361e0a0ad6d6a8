/* Fully connected layer: y = x w^T + bias on akt_gemm (OpenBLAS). */
#include "gemm.h"
#include "internal.h"

/* y[B,out] = x[B,in] w[out,in]^T + bias[out] (bias may be NULL) */
static void linear_forward(float *y, const float *x, const float *w, const float *bias, int B,
                           int in, int out)
{
    if (B == 0 || out == 0)
        return;
    if (in > 0)
        akt_gemm(0, 1, B, out, in, 1.0f, x, in, w, in, 0.0f, y, out);
    else
        memset(y, 0, (size_t)B * out * sizeof(float));
    if (bias) {
        AKT_PARALLEL_FOR((int64_t)B * out)
        for (int b = 0; b < B; b++)
            for (int o = 0; o < out; o++)
                y[(int64_t)b * out + o] += bias[o];
    }
}

/* Accumulates into whichever of dx, dw, dbias is not NULL. */
static void linear_backward(float *dx, float *dw, float *dbias, const float *dy, const float *x,
                            const float *w, int B, int in, int out)
{
    if (B == 0 || out == 0)
        return;
    /* dx[B,in] += dy[B,out] w[out,in] */
    if (dx && in > 0)
        akt_gemm(0, 0, B, in, out, 1.0f, dy, out, w, in, 1.0f, dx, in);
    /* dw[out,in] += dy^T[out,B] x[B,in] */
    if (dw && in > 0)
        akt_gemm(1, 0, out, in, B, 1.0f, dy, out, x, in, 1.0f, dw, in);
    /* each column summed over the batch in order, in double: independent of threads */
    if (dbias) {
        AKT_PARALLEL_FOR((int64_t)B * out)
        for (int o = 0; o < out; o++) {
            double acc = 0;
            for (int b = 0; b < B; b++)
                acc += dy[(int64_t)b * out + o];
            dbias[o] += (float)acc;
        }
    }
}

static void linear_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *x = n->in[0], *w = n->in[1], *bias = n->in[2];
    linear_backward(x->requires_grad ? x->grad : NULL, w->requires_grad ? w->grad : NULL,
                    bias && bias->requires_grad ? bias->grad : NULL, n->out->grad, x->data,
                    w->data, n->ip[0], n->ip[1], n->ip[2]);
}

struct akt_tensor *akt_linear(struct akt_tape *t, struct akt_tensor *x, struct akt_tensor *w,
                              struct akt_tensor *bias)
{
    AKT_ASSERT(x->ndim == 2 && w->ndim == 2);
    int B = x->shape[0], in = x->shape[1], out = w->shape[0];
    AKT_ASSERT(w->shape[1] == in);
    AKT_ASSERT(!bias || bias->n == out);
    struct akt_tensor *y = akt_tensor_newv(t, 0, 2, B, out);
    linear_forward(y->data, x->data, w->data, bias ? bias->data : NULL, B, in, out);
    struct akt_node *nd = akt_tape_push(t, linear_bw, "linear", y, x, w, bias, NULL);
    if (nd) {
        nd->ip[0] = B;
        nd->ip[1] = in;
        nd->ip[2] = out;
    }
    return y;
}
