/* The tempered KL of distillation losses (SPEC 4, 7), one fused op in double:
 * KL(softmax(a_T/T) || softmax(a_S/T)) per row of [R, M] maps.
 *
 * It is computed from the maps themselves rather than akt_log_softmax /
 * akt_softmax / akt_kl_div: the tempered maps are nearly uniform (SPEC 7),
 * so each float32 log-probability near -ln(1024) carries an absolute
 * rounding error (~2e-7) of the same order as the whole KL; double
 * accumulation alone cannot undo that.
 *
 * Rows are independent (one thread each when it pays); their KLs go to
 * row_kl and are summed serially, so the value does not depend on the thread
 * count. */
#include <math.h>

#include "akt/tensor.h"

#define TKL_PAR_MIN 32768

static double lse_tempered(const float *a, int64_t m, double T)
{
    double mx = a[0] / T;
    for (int64_t i = 1; i < m; i++)
        if (a[i] / T > mx)
            mx = a[i] / T;
    double s = 0;
    for (int64_t i = 0; i < m; i++)
        s += exp(a[i] / T - mx);
    return mx + log(s);
}

static double tkl_forward(double *row_kl, const float *as, const float *at, int64_t rows,
                          int64_t m, double T)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (rows * m >= TKL_PAR_MIN)
#endif
    for (int64_t r = 0; r < rows; r++) {
        const float *s = as + r * m, *t = at + r * m;
        double ls = lse_tempered(s, m, T), lt = lse_tempered(t, m, T);
        double acc = 0;
        for (int64_t i = 0; i < m; i++) {
            double lp = t[i] / T - lt;
            acc += exp(lp) * (lp - (s[i] / T - ls));
        }
        row_kl[r] = acc;
    }
    double sum = 0;
    for (int64_t r = 0; r < rows; r++)
        sum += row_kl[r];
    return sum;
}

/* d KL / d a_S = (q_S - p_T) / T, scaled by g / div; both probabilities in
 * double, so their near-cancelling difference keeps its digits. */
static void tkl_backward(float *ds, const float *as, const float *at, int64_t rows, int64_t m,
                         double T, double g)
{
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (rows * m >= TKL_PAR_MIN)
#endif
    for (int64_t r = 0; r < rows; r++) {
        const float *s = as + r * m, *t = at + r * m;
        double ls = lse_tempered(s, m, T), lt = lse_tempered(t, m, T);
        for (int64_t i = 0; i < m; i++) {
            double d = exp(s[i] / T - ls) - exp(t[i] / T - lt);
            ds[r * m + i] += (float)(g * d / T);
        }
    }
}

static double tkl_divisor(const struct akt_tensor *a, int red)
{
    return red == AKT_KL_SUM ? 1.0 : red == AKT_KL_BATCHMEAN ? (double)a->shape[0] : (double)a->n;
}

static void tkl_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    const struct akt_tensor *as = n->in[0], *at = n->in[1];
    int64_t rows = as->shape[0];
    tkl_backward(as->grad, as->data, at->data, rows, as->n / rows, n->fp[0],
                 (double)n->out->grad[0] / tkl_divisor(as, n->ip[0]));
}

struct akt_tensor *akt_tempered_kl(struct akt_tape *t, struct akt_tensor *as,
                                   struct akt_tensor *at, float T, enum akt_kl_reduction red,
                                   double *value)
{
    AKT_ASSERT(akt_tensor_same_shape(as, at) && as->n > 0 && !at->requires_grad && T > 0);
    int64_t rows = as->shape[0];
    double *row_kl = akt_tape_alloc(t, (size_t)rows * sizeof(double));
    double v = tkl_forward(row_kl, as->data, at->data, rows, as->n / rows, T) /
               tkl_divisor(as, red);
    if (value)
        *value = v;
    struct akt_tensor *out = akt_tensor_newv(t, 0, 1, 1);
    out->data[0] = (float)v;
    /* only a_S is an input of the record: a_T is a constant */
    struct akt_node *nd = akt_tape_push(t, tkl_bw, "tempered_kl", out, as, NULL, NULL, NULL);
    if (nd) {
        nd->in[1] = at;
        nd->ip[0] = (int)red;
        nd->fp[0] = T;
    }
    return out;
}
