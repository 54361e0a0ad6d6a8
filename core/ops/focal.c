/* Focal, per-sample weighted cross-entropy on logits z [B,C]:
 *   L = (1/B) sum_b w_b (1 - p_b)^gamma (-log p_b),  p_b = softmax(z_b)[y_b]
 * HAST's hard-sample loss (gamma > 0, w = 1; the weight (1 - p)^gamma carries
 * gradient, as in its code) and SynQ's selective cross-entropy (gamma = 0, w
 * a 0/1 mask). Rows in double; 1 - p as the sum of the other classes'
 * probabilities, so an easy sample (p near 1) keeps its digits. */
#include "internal.h"

#include <stdlib.h>

/* Per row: log p_y, q = 1 - p_y and the softmax s (into sm when not NULL). */
static void focal_row(const float *z, int C, int y, double *logp, double *q, double *sm)
{
    double mx = z[0];
    for (int c = 1; c < C; c++)
        mx = z[c] > mx ? z[c] : mx;
    double s = 0, other = 0;
    for (int c = 0; c < C; c++) {
        double e = exp(z[c] - mx);
        s += e;
        if (c != y)
            other += e;
        if (sm)
            sm[c] = e;
    }
    *logp = z[y] - mx - log(s);
    *q = other / s;
    for (int c = 0; sm && c < C; c++)
        sm[c] /= s;
}

/* (1 - p)^gamma, with 0^0 = 1 */
static double focal_weight(double q, double gamma) { return gamma == 0 ? 1.0 : pow(q, gamma); }

static void focal_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    struct akt_tensor *z = n->in[0];
    if (!z->grad)
        return;
    const int B = z->shape[0], C = z->shape[1];
    const double gamma = n->fp[0], g = n->out->grad[0] / (double)B;
    const float *w = n->saved[0];
    double *sm = malloc((size_t)C * sizeof *sm);
    AKT_ASSERT(sm);
    for (int b = 0; b < B; b++) {
        int y = n->labels[b];
        double wb = w ? w[b] : 1.0;
        if (wb == 0)
            continue;
        double logp, q;
        focal_row(z->data + (int64_t)b * C, C, y, &logp, &q, sm);
        /* d/dz_j [(1-p)^g (-log p)] = A (s_j - [j = y]) with
         * A = (1-p)^g + g (1-p)^(g-1) p (-log p); the second term vanishes
         * as p -> 1 (q^(g-1) q-ish), and is 0 when q is exactly 0 */
        double A = focal_weight(q, gamma);
        if (gamma != 0 && q > 0)
            A += gamma * pow(q, gamma - 1) * exp(logp) * (-logp);
        double k = g * wb * A;
        float *dz = z->grad + (int64_t)b * C;
        for (int c = 0; c < C; c++)
            dz[c] += (float)(k * (sm[c] - (c == y)));
    }
    free(sm);
}

struct akt_tensor *akt_focal_cross_entropy(struct akt_tape *t, struct akt_tensor *z,
                                           const int *labels, float gamma, const float *weights)
{
    AKT_ASSERT(z->ndim == 2 && z->shape[0] > 0 && z->shape[1] > 0 && labels && gamma >= 0);
    const int B = z->shape[0], C = z->shape[1];
    for (int b = 0; b < B; b++)
        AKT_ASSERT(labels[b] >= 0 && labels[b] < C);
    struct akt_tensor *out = akt_tensor_newv(t, 0, 1, 1);
    double acc = 0;
    for (int b = 0; b < B; b++) {
        double wb = weights ? weights[b] : 1.0, logp, q;
        if (wb == 0)
            continue;
        focal_row(z->data + (int64_t)b * C, C, labels[b], &logp, &q, NULL);
        acc += wb * focal_weight(q, gamma) * -logp;
    }
    out->data[0] = (float)(acc / B);
    struct akt_node *nd = akt_tape_push(t, focal_bw, "focal_cross_entropy", out, z, NULL, NULL, NULL);
    if (nd) {
        /* the caller's arrays need not outlive this call */
        int *lab = akt_tape_alloc_uninit(t, (size_t)B * sizeof *lab);
        memcpy(lab, labels, (size_t)B * sizeof *lab);
        nd->labels = lab;
        if (weights) {
            float *w = akt_tape_alloc_uninit(t, (size_t)B * sizeof *w);
            memcpy(w, weights, (size_t)B * sizeof *w);
            nd->saved[0] = w;
        }
        nd->fp[0] = gamma;
    }
    return out;
}
