/* Optimizers as flat loops over one parameter array (PyTorch semantics). */
#ifndef AKT_OPTIM_H
#define AKT_OPTIM_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* torch.optim.SGD: d = g + wd*p; buf = momentum*buf + d; with nesterov
 * d += momentum*buf, else d = buf; p -= lr*d. buf starts at zero. */
void akt_sgd_step(float *p, const float *g, float *buf, int64_t n, float lr, float momentum,
                  float weight_decay, int nesterov);

/* torch.optim.Adam (no weight decay): step counts from 1. */
void akt_adam_step(float *p, const float *g, float *m, float *v, int64_t n, float lr, float beta1,
                   float beta2, float eps, int64_t step);

/* Step schedule: lr * gamma^(number of milestones <= epoch). */
float akt_lr_at(float base, int epoch, const int *milestones, int n_milestones, float gamma);

#ifdef __cplusplus
}
#endif
#endif
