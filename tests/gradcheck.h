/* Finite-difference gradient checks for tape ops (header-only, tests only).
 *
 * The op under test builds an output from input tensors; the check seeds the
 * output gradient with fixed random weights w, so the scalar is
 * L = sum_i w_i out_i, accumulated in double. Each input element is moved by
 * +-h and the central difference is compared with the tape's gradient.
 * Kinks (relu at 0, min ties, quantizer steps) are skipped where the two
 * one-sided differences disagree, as ggml's tests do; a check that skips
 * more than half its elements fails. */
#ifndef AKT_TEST_GRADCHECK_H
#define AKT_TEST_GRADCHECK_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/tensor.h"

#define GC_MAX_IN 4

typedef struct akt_tensor *(*gc_build_fn)(struct akt_tape *t, struct akt_tensor **in, void *user);

struct gc_input {
    int ndim, shape[4];
    int grad;        /* check the gradient of this input */
    float lo, hi;    /* uniform init range (default -1..1 when both 0) */
    const float *init; /* explicit values instead (optional) */
};

static double gc_eval(gc_build_fn f, void *user, int nin, float **vals, const struct gc_input *spec,
                      const double *w, int64_t nout_expect)
{
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    t.recording = 0;
    struct akt_tensor *in[GC_MAX_IN];
    for (int i = 0; i < nin; i++)
        in[i] = akt_tensor_from(&t, vals[i], spec[i].ndim, spec[i].shape);
    struct akt_tensor *out = f(&t, in, user);
    double L = 0;
    if (out->n != nout_expect) {
        fprintf(stderr, "gradcheck: output size changed\n");
        abort();
    }
    for (int64_t i = 0; i < out->n; i++)
        L += w[i] * (double)out->data[i];
    akt_tape_free(&t);
    return L;
}

/* A malloc'd copy of n floats: a snapshot of one run's values or
 * gradients, compared bit for bit with another run's (tape freed since). */
static inline float *gc_copy(const float *src, int64_t n)
{
    float *d = malloc((size_t)n * sizeof(float));
    memcpy(d, src, (size_t)n * sizeof(float));
    return d;
}

/* Returns the number of mismatching elements (0 = pass) and prints each. */
static int gradcheck(const char *name, gc_build_fn f, void *user, int nin,
                     const struct gc_input *spec, unsigned seed, float h, double tol)
{
    struct akt_rng rng;
    akt_rng_seed(&rng, seed);
    float *vals[GC_MAX_IN];
    int64_t nel[GC_MAX_IN];
    for (int i = 0; i < nin; i++) {
        nel[i] = 1;
        for (int d = 0; d < spec[i].ndim; d++)
            nel[i] *= spec[i].shape[d];
        vals[i] = malloc(nel[i] * sizeof(float));
        float lo = spec[i].lo, hi = spec[i].hi;
        if (lo == 0 && hi == 0) {
            lo = -1;
            hi = 1;
        }
        for (int64_t j = 0; j < nel[i]; j++)
            vals[i][j] = spec[i].init ? spec[i].init[j] : lo + (hi - lo) * (float)akt_rng_uniform(&rng);
    }
    /* analytic */
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    struct akt_tensor *in[GC_MAX_IN];
    for (int i = 0; i < nin; i++) {
        in[i] = akt_tensor_new(&t, spec[i].ndim, spec[i].shape, spec[i].grad);
        memcpy(in[i]->data, vals[i], nel[i] * sizeof(float));
    }
    struct akt_tensor *out = f(&t, in, user);
    int64_t nout = out->n;
    double *w = malloc(nout * sizeof(double));
    for (int64_t j = 0; j < nout; j++)
        w[j] = akt_rng_uniform(&rng) * 2 - 1;
    int bad = 0, checked = 0, skipped = 0;
    if (!out->grad) {
        fprintf(stderr, "gradcheck %s: output has no gradient\n", name);
        bad = 1;
        goto done;
    }
    for (int64_t j = 0; j < nout; j++) {
        if (!isfinite(out->data[j])) {
            fprintf(stderr, "gradcheck %s: output %lld is not finite\n", name, (long long)j);
            bad++;
        }
        akt_grad(out)[j] = (float)w[j];
    }
    akt_backward_run(&t);
    for (int i = 0; i < nin; i++) {
        if (!spec[i].grad)
            continue;
        for (int64_t j = 0; j < nel[i]; j++) {
            float x0 = vals[i][j];
            double f0 = gc_eval(f, user, nin, vals, spec, w, nout);
            vals[i][j] = x0 + h;
            double fp = gc_eval(f, user, nin, vals, spec, w, nout);
            vals[i][j] = x0 - h;
            double fm = gc_eval(f, user, nin, vals, spec, w, nout);
            vals[i][j] = x0;
            double dp = (fp - f0) / h, dm = (f0 - fm) / h;
            double num = (fp - fm) / (2.0 * h);
            double ana = in[i]->grad[j];
            double scale = fmax(1.0, fmax(fabs(num), fabs(ana)));
            if (!isfinite(ana) || !isfinite(num)) {
                if (bad < 10)
                    fprintf(stderr, "gradcheck %s: input %d elem %lld: non-finite analytic %g "
                            "numeric %g\n", name, i, (long long)j, ana, num);
                bad++;
                continue;
            }
            if (fabs(dp - dm) > 10 * tol * fmax(1.0, fabs(num))) {
                skipped++; /* kink inside [x-h, x+h] */
                continue;
            }
            checked++;
            if (!(fabs(num - ana) <= tol * scale)) {
                if (bad < 10)
                    fprintf(stderr, "gradcheck %s: input %d elem %lld: analytic %.6g numeric %.6g\n",
                            name, i, (long long)j, ana, num);
                bad++;
            }
        }
    }
    if (skipped > checked) {
        fprintf(stderr, "gradcheck %s: skipped %d of %d elements as kinks\n", name, skipped,
                skipped + checked);
        bad++;
    }
done:
    free(w);
    akt_tape_free(&t);
    for (int i = 0; i < nin; i++)
        free(vals[i]);
    return bad;
}

/* A second guard beside gradcheck()'s own finiteness checks: runs the op once
 * on the same inputs with unit output gradients and requires finite outputs
 * and gradients. */
static inline int grads_finite(gc_build_fn f, void *user, int nin, const struct gc_input *spec,
                               unsigned seed)
{
    struct akt_rng rng;
    akt_rng_seed(&rng, seed);
    struct akt_tape t;
    akt_tape_init(&t, 1 << 20);
    struct akt_tensor *in[GC_MAX_IN];
    for (int i = 0; i < nin; i++) {
        in[i] = akt_tensor_new(&t, spec[i].ndim, spec[i].shape, spec[i].grad);
        float lo = spec[i].lo, hi = spec[i].hi;
        if (lo == 0 && hi == 0) {
            lo = -1;
            hi = 1;
        }
        for (int64_t j = 0; j < in[i]->n; j++)
            in[i]->data[j] = spec[i].init ? spec[i].init[j]
                                          : lo + (hi - lo) * (float)akt_rng_uniform(&rng);
    }
    struct akt_tensor *out = f(&t, in, user);
    int ok = out->grad != NULL;
    for (int64_t j = 0; ok && j < out->n; j++) {
        ok = isfinite(out->data[j]);
        akt_grad(out)[j] = 1;
    }
    if (ok)
        akt_backward_run(&t);
    for (int i = 0; ok && i < nin; i++)
        for (int64_t j = 0; spec[i].grad && j < in[i]->n; j++)
            ok = ok && isfinite(in[i]->grad[j]);
    akt_tape_free(&t);
    return ok;
}

/* gradcheck plus the finiteness check: 0 when both pass */
static inline int gradcheck_finite(const char *name, gc_build_fn f, void *user, int nin,
                                   const struct gc_input *spec, unsigned seed, float h, double tol)
{
    int bad = gradcheck(name, f, user, nin, spec, seed, h, tol);
    if (!grads_finite(f, user, nin, spec, seed)) {
        fprintf(stderr, "gradcheck %s: non-finite output or gradient\n", name);
        bad++;
    }
    return bad;
}

#ifdef cmocka_unit_test /* value checks need cmocka's failure reporting */
/* cmocka 1.1.5's assert_float_equal passes NaN and Inf against any value,
 * so values are compared with this stricter check. */
#define assert_near(a, b, tol) assert_near_((double)(a), (double)(b), (double)(tol), __FILE__, __LINE__)
static inline void assert_near_(double a, double b, double tol, const char *file, int line)
{
    if (!(isfinite(a) && isfinite(b) && fabs(a - b) <= tol)) {
        print_error("%.10g != %.10g (tolerance %g)\n", a, b, tol);
        _fail(file, line);
    }
}
#endif

#endif
