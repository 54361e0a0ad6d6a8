/* Elementwise ops: add, sub, mul, div (b same shape or scalar), scale,
 * square, relu, leaky relu, tanh, hinge.
 *
 * Each op: a kernel pair on raw arrays (forward writes out, backward
 * accumulates into input grads), then the tape wrapper. */
#include "internal.h"

/* -------------------------------------------------------------- binary --- */
enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV };

/* out[n] = a[n] op b[n or 0] */
static void binary_forward(float *out, const float *a, const float *b, int64_t n, int b_scalar,
                           int op)
{
    AKT_PARALLEL_FOR(n)
    for (int64_t i = 0; i < n; i++) {
        float bv = b[b_scalar ? 0 : i];
        switch (op) {
        case BIN_ADD: out[i] = a[i] + bv; break;
        case BIN_SUB: out[i] = a[i] - bv; break;
        case BIN_MUL: out[i] = a[i] * bv; break;
        default: out[i] = a[i] / bv; break;
        }
    }
}

/* da, db may be NULL; a scalar b's gradient is summed in double. */
static void binary_backward(float *da, float *db, const float *dout, const float *a,
                            const float *b, int64_t n, int b_scalar, int op)
{
    if (da) {
        AKT_PARALLEL_FOR(n)
        for (int64_t i = 0; i < n; i++) {
            float bv = b[b_scalar ? 0 : i];
            float g = op == BIN_MUL ? dout[i] * bv : op == BIN_DIV ? dout[i] / bv : dout[i];
            da[i] += g;
        }
    }
    if (db) {
        double acc = 0;
        for (int64_t i = 0; i < n; i++) {
            float bv = b[b_scalar ? 0 : i];
            float g;
            switch (op) {
            case BIN_ADD: g = dout[i]; break;
            case BIN_SUB: g = -dout[i]; break;
            case BIN_MUL: g = dout[i] * a[i]; break;
            default: g = -dout[i] * a[i] / (bv * bv); break;
            }
            if (b_scalar)
                acc += g;
            else
                db[i] += g;
        }
        if (b_scalar)
            db[0] += (float)acc;
    }
}

static void binary_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *a = n->in[0], *b = n->in[1];
    binary_backward(a->requires_grad ? a->grad : NULL, b->requires_grad ? b->grad : NULL,
                    n->out->grad, a->data, b->data, a->n, n->ip[0], n->ip[1]);
}

static struct akt_tensor *binary(struct akt_tape *t, struct akt_tensor *a, struct akt_tensor *b,
                                 int op, const char *name)
{
    int b_scalar = b->n == 1 && a->n != 1;
    AKT_ASSERT(b_scalar || a->n == b->n);
    struct akt_tensor *out = akt_tensor_new(t, a->ndim, a->shape, 0);
    binary_forward(out->data, a->data, b->data, a->n, b_scalar, op);
    struct akt_node *nd = akt_tape_push(t, binary_bw, name, out, a, b, NULL, NULL);
    if (nd) {
        nd->ip[0] = b_scalar;
        nd->ip[1] = op;
    }
    return out;
}

struct akt_tensor *akt_add(struct akt_tape *t, struct akt_tensor *a, struct akt_tensor *b)
{
    return binary(t, a, b, BIN_ADD, "add");
}
struct akt_tensor *akt_sub(struct akt_tape *t, struct akt_tensor *a, struct akt_tensor *b)
{
    return binary(t, a, b, BIN_SUB, "sub");
}
struct akt_tensor *akt_mul(struct akt_tape *t, struct akt_tensor *a, struct akt_tensor *b)
{
    return binary(t, a, b, BIN_MUL, "mul");
}
struct akt_tensor *akt_div(struct akt_tape *t, struct akt_tensor *a, struct akt_tensor *b)
{
    return binary(t, a, b, BIN_DIV, "div");
}

/* --------------------------------------------------------------- unary --- */
enum { UN_SCALE, UN_SQUARE, UN_RELU, UN_LEAKY, UN_TANH, UN_HINGE };

static inline float unary_f(int op, float x, float s, float c)
{
    switch (op) {
    case UN_SCALE: return s * x + c;
    case UN_SQUARE: return x * x;
    case UN_RELU: return x > 0 ? x : 0;
    case UN_LEAKY: return x > 0 ? x : s * x;
    case UN_TANH: return tanhf(x);
    default: { float v = s * x + c; return v > 0 ? v : 0; }
    }
}

/* derivative from the input x and the output y */
static inline float unary_df(int op, float x, float y, float s, float c)
{
    switch (op) {
    case UN_SCALE: return s;
    case UN_SQUARE: return 2 * x;
    case UN_RELU: return x > 0 ? 1.0f : 0.0f;
    case UN_LEAKY: return x > 0 ? 1.0f : s;
    case UN_TANH: return 1 - y * y;
    default: return s * x + c > 0 ? s : 0.0f;
    }
}

static void unary_forward(float *out, const float *x, int64_t n, int op, float s, float c)
{
    AKT_PARALLEL_FOR(n)
    for (int64_t i = 0; i < n; i++)
        out[i] = unary_f(op, x[i], s, c);
}

static void unary_backward(float *dx, const float *dout, const float *x, const float *y, int64_t n,
                           int op, float s, float c)
{
    AKT_PARALLEL_FOR(n)
    for (int64_t i = 0; i < n; i++)
        dx[i] += dout[i] * unary_df(op, x[i], y[i], s, c);
}

static void unary_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    unary_backward(n->in[0]->grad, n->out->grad, n->in[0]->data, n->out->data, n->out->n, n->ip[0],
                   n->fp[0], n->fp[1]);
}

static struct akt_tensor *unary(struct akt_tape *t, struct akt_tensor *x, int op, float s, float c,
                                const char *name)
{
    struct akt_tensor *out = akt_tensor_new(t, x->ndim, x->shape, 0);
    unary_forward(out->data, x->data, x->n, op, s, c);
    struct akt_node *nd = akt_tape_push(t, unary_bw, name, out, x, NULL, NULL, NULL);
    if (nd) {
        nd->ip[0] = op;
        nd->fp[0] = s;
        nd->fp[1] = c;
    }
    return out;
}

struct akt_tensor *akt_scale(struct akt_tape *t, struct akt_tensor *x, float s, float c)
{
    return unary(t, x, UN_SCALE, s, c, "scale");
}
struct akt_tensor *akt_square(struct akt_tape *t, struct akt_tensor *x)
{
    return unary(t, x, UN_SQUARE, 0, 0, "square");
}
struct akt_tensor *akt_relu(struct akt_tape *t, struct akt_tensor *x)
{
    return unary(t, x, UN_RELU, 0, 0, "relu");
}
struct akt_tensor *akt_leaky_relu(struct akt_tape *t, struct akt_tensor *x, float slope)
{
    return unary(t, x, UN_LEAKY, slope, 0, "leaky_relu");
}
struct akt_tensor *akt_tanh(struct akt_tape *t, struct akt_tensor *x)
{
    return unary(t, x, UN_TANH, 0, 0, "tanh");
}
struct akt_tensor *akt_hinge(struct akt_tape *t, struct akt_tensor *x, float s, float c)
{
    return unary(t, x, UN_HINGE, s, c, "hinge");
}
