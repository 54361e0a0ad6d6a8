/* Helpers shared by the op files (not installed). */
#ifndef AKT_OPS_INTERNAL_H
#define AKT_OPS_INTERNAL_H

#include "akt/tensor.h"

#include <math.h>
#include <string.h>

/* Parallel loops only over disjoint outputs, static schedule, so results do
 * not depend on timing (DESIGN.md: bit-reproducible per thread count). Small
 * loops stay serial: a fork costs more than it saves. */
#define AKT_PAR_MIN 32768
#ifdef _OPENMP
#define AKT_PRAGMA(x) _Pragma(#x)
#define AKT_PARALLEL_FOR(n) AKT_PRAGMA(omp parallel for schedule(static) if ((n) >= AKT_PAR_MIN))
#else
#define AKT_PARALLEL_FOR(n)
#endif

/* dst[i] += expr, or dst[i] = expr when add is 0 (the first gradient into
 * a lazy grad buffer, see akt_grad_claim), for i < n; expr uses i, dst is
 * evaluated inside the loop (pass a plain pointer). AKT_GRAD_LOOP is serial
 * (for use inside a parallel loop), AKT_GRAD_PAR splits i over threads. */
#define AKT_GRAD_LOOP(n, add, dst, expr)                                                         \
    do {                                                                                          \
        if (add)                                                                                  \
            for (int64_t i = 0; i < (n); i++)                                                     \
                (dst)[i] += (expr);                                                               \
        else                                                                                      \
            for (int64_t i = 0; i < (n); i++)                                                     \
                (dst)[i] = (expr);                                                                \
    } while (0)
#define AKT_GRAD_PAR(n, add, dst, expr)                                                          \
    do {                                                                                          \
        if (add) {                                                                                \
            AKT_PARALLEL_FOR(n)                                                                   \
            for (int64_t i = 0; i < (n); i++)                                                     \
                (dst)[i] += (expr);                                                               \
        } else {                                                                                  \
            AKT_PARALLEL_FOR(n)                                                                   \
            for (int64_t i = 0; i < (n); i++)                                                     \
                (dst)[i] = (expr);                                                                \
        }                                                                                         \
    } while (0)

/* akt_tape_push for a record whose backward claims every input's grad
 * (AKT_NODE_CLAIMS_GRADS); NULL when nothing is recorded */
static inline struct akt_node *akt__push_claiming(struct akt_tape *t, akt_backward_fn fn,
                                                  const char *name, struct akt_tensor *out,
                                                  struct akt_tensor *a, struct akt_tensor *b,
                                                  struct akt_tensor *c)
{
    struct akt_node *nd = akt_tape_push(t, fn, name, out, a, b, c, NULL);
    if (nd)
        nd->flags = AKT_NODE_CLAIMS_GRADS;
    return nd;
}

/* AKT_LANES doubles as one vector (GCC/Clang vector extensions), for sums
 * in double with a fixed order: lane j adds the elements p = j mod
 * AKT_LANES in order, as a scalar loop over j would (GCC did not vectorise
 * those loops; these compile to AVX-512, AVX2 or SSE2 alike). */
#define AKT_LANES 8
typedef double akt_lanes_d __attribute__((vector_size(AKT_LANES * sizeof(double))));
typedef float akt_lanes_f __attribute__((vector_size(AKT_LANES * sizeof(float))));

/* AKT_LANES floats from p (unaligned), widened to double. A macro (GNU
 * statement expression): a function returning a 64-byte vector draws
 * -Wpsabi in builds without AVX-512. */
#define akt_load_lanes(p)                                                                        \
    ({                                                                                            \
        akt_lanes_f f_;                                                                           \
        memcpy(&f_, (p), sizeof f_);                                                              \
        __builtin_convertvector(f_, akt_lanes_d);                                                 \
    })

/* The output shape with dims [a0,a1) removed ([1] when nothing is left). */
static inline struct akt_tensor *akt__reduced_new(struct akt_tape *t, const struct akt_tensor *x,
                                                  int a0, int a1)
{
    int shape[AKT_MAX_DIMS], nd = 0;
    for (int i = 0; i < x->ndim; i++)
        if (i < a0 || i >= a1)
            shape[nd++] = x->shape[i];
    if (nd == 0)
        shape[nd++] = 1;
    return akt_tensor_new(t, nd, shape, 0);
}

/* x seen as [outer, mid, inner] for axes [a0,a1). */
static inline void akt__split(const struct akt_tensor *x, int a0, int a1, int64_t *outer,
                              int64_t *mid, int64_t *inner)
{
    AKT_ASSERT(0 <= a0 && a0 < a1 && a1 <= x->ndim);
    *outer = *mid = *inner = 1;
    for (int i = 0; i < x->ndim; i++) {
        if (i < a0)
            *outer *= x->shape[i];
        else if (i < a1)
            *mid *= x->shape[i];
        else
            *inner *= x->shape[i];
    }
}

#endif
