/* Elementwise ops: add, sub, mul, div (b same shape or scalar), add+relu,
 * scale, square, relu, leaky relu, tanh, hinge.
 *
 * Each op: a kernel pair on raw arrays (forward writes out, backward
 * accumulates into input grads), then the tape wrapper. */
#include "internal.h"

/* g where x > 0, else 0. Both values are loaded before the select (as
 * function arguments): a conditional load of g, or dout * (x > 0) (a
 * conditional multiply under -ftrapping-math), keeps the loop scalar. */
static inline float relu_pass(float x, float g) { return x > 0 ? g : 0.0f; }

/* -------------------------------------------------------------- binary --- */
enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV };

/* Each op is its own loop (the switch is outside): a loop body without a
 * branch on op vectorises, and these ops are memory-bound passes over whole
 * activations. The macros only stamp out the per-op loops. */
#define EW_LOOP(n, body)                                                                         \
    do {                                                                                          \
        AKT_PARALLEL_FOR(n)                                                                       \
        for (int64_t i = 0; i < (n); i++)                                                         \
            body;                                                                                 \
    } while (0)

/* out[n] = a[n] op b[n or 0] */
static void binary_forward(float *out, const float *a, const float *b, int64_t n, int b_scalar,
                           int op)
{
    if (b_scalar) {
        float bv = b[0];
        switch (op) {
        case BIN_ADD: EW_LOOP(n, out[i] = a[i] + bv); break;
        case BIN_SUB: EW_LOOP(n, out[i] = a[i] - bv); break;
        case BIN_MUL: EW_LOOP(n, out[i] = a[i] * bv); break;
        default: EW_LOOP(n, out[i] = a[i] / bv); break;
        }
        return;
    }
    switch (op) {
    case BIN_ADD: EW_LOOP(n, out[i] = a[i] + b[i]); break;
    case BIN_SUB: EW_LOOP(n, out[i] = a[i] - b[i]); break;
    case BIN_MUL: EW_LOOP(n, out[i] = a[i] * b[i]); break;
    default: EW_LOOP(n, out[i] = a[i] / b[i]); break;
    }
}

/* da, db may be NULL; a scalar b's gradient is summed in double, in order.
 * a_add/b_add 0: write da/db instead of adding (not for a scalar b). */
static void binary_backward(float *da, float *db, const float *dout, const float *a,
                            const float *b, int64_t n, int b_scalar, int op, int a_add, int b_add)
{
    if (da) {
        if (op == BIN_ADD || op == BIN_SUB)
            AKT_GRAD_PAR(n, a_add, da, dout[i]);
        else if (b_scalar && op == BIN_MUL)
            AKT_GRAD_PAR(n, a_add, da, dout[i] * b[0]);
        else if (b_scalar)
            AKT_GRAD_PAR(n, a_add, da, dout[i] / b[0]);
        else if (op == BIN_MUL)
            AKT_GRAD_PAR(n, a_add, da, dout[i] * b[i]);
        else
            AKT_GRAD_PAR(n, a_add, da, dout[i] / b[i]);
    }
    if (!db)
        return;
    if (b_scalar) {
        double acc = 0;
        for (int64_t i = 0; i < n; i++) {
            float g;
            switch (op) {
            case BIN_ADD: g = dout[i]; break;
            case BIN_SUB: g = -dout[i]; break;
            case BIN_MUL: g = dout[i] * a[i]; break;
            default: g = -dout[i] * a[i] / (b[0] * b[0]); break;
            }
            acc += g;
        }
        db[0] += (float)acc;
        return;
    }
    switch (op) {
    case BIN_ADD: AKT_GRAD_PAR(n, b_add, db, dout[i]); break;
    case BIN_SUB: AKT_GRAD_PAR(n, b_add, db, -dout[i]); break;
    case BIN_MUL: AKT_GRAD_PAR(n, b_add, db, dout[i] * a[i]); break;
    default: AKT_GRAD_PAR(n, b_add, db, -dout[i] * a[i] / (b[i] * b[i])); break;
    }
}

static void binary_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *a = n->in[0], *b = n->in[1];
    /* claims in the order the kernel writes: a first, so a == b adds */
    int a_add = a->requires_grad ? akt_grad_claim(a) : 1;
    int b_add = b->requires_grad ? akt_grad_claim(b) : 1;
    if (!b_add && n->ip[0]) { /* a scalar b's gradient is added below */
        b->grad[0] = 0.0f;
        b_add = 1;
    }
    binary_backward(a->requires_grad ? a->grad : NULL, b->requires_grad ? b->grad : NULL,
                    n->out->grad, a->data, b->data, a->n, n->ip[0], n->ip[1], a_add, b_add);
}

static struct akt_tensor *binary(struct akt_tape *t, struct akt_tensor *a, struct akt_tensor *b,
                                 int op, const char *name)
{
    int b_scalar = b->n == 1 && a->n != 1;
    AKT_ASSERT(b_scalar || a->n == b->n);
    struct akt_tensor *out = akt_tensor_new_uninit(t, a->ndim, a->shape, 0);
    binary_forward(out->data, a->data, b->data, a->n, b_scalar, op);
    struct akt_node *nd = akt__push_claiming(t, binary_bw, name, out, a, b, NULL);
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

/* ------------------------------------------------------------ add_relu --- */

static void add_relu_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *a = n->in[0], *b = n->in[1];
    const float *dout = n->out->grad, *y = n->out->data;
    int64_t N = n->out->n;
    /* y > 0 exactly where a + b > 0 */
    if (a->requires_grad) {
        int add = akt_grad_claim(a);
        float *da = a->grad;
        AKT_GRAD_PAR(N, add, da, relu_pass(y[i], dout[i]));
    }
    if (b->requires_grad) {
        int add = akt_grad_claim(b);
        float *db = b->grad;
        AKT_GRAD_PAR(N, add, db, relu_pass(y[i], dout[i]));
    }
}

struct akt_tensor *akt_add_relu(struct akt_tape *t, struct akt_tensor *a, struct akt_tensor *b)
{
    AKT_ASSERT(akt_tensor_same_shape(a, b));
    struct akt_tensor *out = akt_tensor_new_uninit(t, a->ndim, a->shape, 0);
    float *o = out->data;
    const float *ad = a->data, *bd = b->data;
    EW_LOOP(a->n, {
        float v = ad[i] + bd[i];
        o[i] = v > 0 ? v : 0.0f;
    });
    akt__push_claiming(t, add_relu_bw, "add_relu", out, a, b, NULL);
    return out;
}

/* --------------------------------------------------------------- unary --- */
enum { UN_SCALE, UN_SQUARE, UN_RELU, UN_LEAKY, UN_TANH, UN_HINGE };

static void unary_forward(float *out, const float *x, int64_t n, int op, float s, float c)
{
    switch (op) {
    case UN_SCALE: EW_LOOP(n, out[i] = s * x[i] + c); break;
    case UN_SQUARE: EW_LOOP(n, out[i] = x[i] * x[i]); break;
    case UN_RELU: EW_LOOP(n, out[i] = x[i] > 0 ? x[i] : 0.0f); break;
    case UN_LEAKY: EW_LOOP(n, out[i] = x[i] > 0 ? x[i] : s * x[i]); break;
    case UN_TANH: EW_LOOP(n, out[i] = tanhf(x[i])); break;
    default: EW_LOOP(n, out[i] = s * x[i] + c > 0 ? s * x[i] + c : 0.0f); break;
    }
}

/* dx (+)= dout * f'(x), the derivative from the input x or the output y;
 * add 0 writes dx */
static void unary_backward(float *dx, const float *dout, const float *x, const float *y, int64_t n,
                           int op, float s, float c, int add)
{
    switch (op) {
    case UN_SCALE: AKT_GRAD_PAR(n, add, dx, dout[i] * s); break;
    case UN_SQUARE: AKT_GRAD_PAR(n, add, dx, dout[i] * (2 * x[i])); break;
    /* as PyTorch's threshold_backward, a NaN gradient where x <= 0 is not
     * propagated */
    case UN_RELU: AKT_GRAD_PAR(n, add, dx, relu_pass(x[i], dout[i])); break;
    case UN_LEAKY: AKT_GRAD_PAR(n, add, dx, dout[i] * (x[i] > 0 ? 1.0f : s)); break;
    case UN_TANH: AKT_GRAD_PAR(n, add, dx, dout[i] * (1 - y[i] * y[i])); break;
    default: AKT_GRAD_PAR(n, add, dx, dout[i] * (s * x[i] + c > 0 ? s : 0.0f)); break;
    }
}

static void unary_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    unary_backward(n->in[0]->grad, n->out->grad, n->in[0]->data, n->out->data, n->out->n, n->ip[0],
                   n->fp[0], n->fp[1], akt_grad_claim(n->in[0]));
}

static struct akt_tensor *unary(struct akt_tape *t, struct akt_tensor *x, int op, float s, float c,
                                const char *name)
{
    struct akt_tensor *out = akt_tensor_new_uninit(t, x->ndim, x->shape, 0);
    unary_forward(out->data, x->data, x->n, op, s, c);
    struct akt_node *nd = akt__push_claiming(t, unary_bw, name, out, x, NULL, NULL);
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
