/* SGD and Adam as flat loops, following torch.optim (1.13) step by step:
 * each tensor op there is one float operation here, in the same order, and
 * the scalar bias corrections are computed in double as Python does. (PyTorch's
 * vectorised add-with-alpha uses FMA, so results can differ in the last ulp.) */
#include "akt/optim.h"

#include "akt/base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* torch takes lr, betas and gamma as Python doubles and computes 1 - beta,
 * beta**t and lr*gamma in double. The float API has lost that decimal:
 * 1 - (double)0.999f is 1.3e-5 away from 1 - 0.999. Recover it as the
 * shortest decimal that rounds to the float (0.999f -> 0.999), which is what
 * a config file or a literal holds. */
static double decimal_of(float f)
{
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)f);
        if (strtof(buf, NULL) == f)
            return strtod(buf, NULL);
    }
    return f; /* NaN or Inf */
}

void akt_sgd_step(float *p, const float *g, float *buf, int64_t n, float lr, float momentum,
                  float weight_decay, int nesterov)
{
    /* torch clones d into the buffer on the first step; with dampening 0 and
     * a zeroed buffer, momentum*0 + d is the same value */
    for (int64_t i = 0; i < n; i++) {
        float d = g[i];
        if (weight_decay != 0)
            d = d + weight_decay * p[i];
        if (momentum != 0) {
            float b = momentum * buf[i] + d;
            buf[i] = b;
            d = nesterov ? d + momentum * b : b;
        }
        p[i] = p[i] - lr * d;
    }
}

void akt_adam_step(float *p, const float *g, float *m, float *v, int64_t n, float lr, float beta1,
                   float beta2, float eps, int64_t step)
{
    AKT_ASSERT(step >= 1);
    double b1 = decimal_of(beta1), b2 = decimal_of(beta2);
    double bc1 = 1.0 - pow(b1, (double)step);
    double bc2 = 1.0 - pow(b2, (double)step);
    float step_size = (float)(decimal_of(lr) / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    float a1 = (float)(1.0 - b1), a2 = (float)(1.0 - b2);
    for (int64_t i = 0; i < n; i++) {
        float mi = beta1 * m[i] + a1 * g[i];
        float vi = beta2 * v[i] + a2 * (g[i] * g[i]);
        m[i] = mi;
        v[i] = vi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = p[i] - step_size * (mi / denom);
    }
}

float akt_lr_at(float base, int epoch, const int *milestones, int n_milestones, float gamma)
{
    /* MultiStepLR multiplies by gamma once per milestone passed (repeats
     * count), in double; the optimizer then sees it as a float */
    double lr = decimal_of(base), g = decimal_of(gamma);
    for (int i = 0; i < n_milestones; i++)
        if (milestones[i] <= epoch)
            lr *= g;
    return (float)lr;
}
