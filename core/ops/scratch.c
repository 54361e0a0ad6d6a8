/* Per-thread scratch buffers of the conv, BN and reduction kernels. */
#define _POSIX_C_SOURCE 200809L /* posix_memalign */
#include "scratch.h"

#include <stdlib.h>

#include "akt/base.h"

#define N_SLOTS 4
static _Thread_local float *g_scratch[N_SLOTS];
static _Thread_local size_t g_scratch_cap[N_SLOTS];

float *akt_scratch(int slot, size_t n_floats)
{
    AKT_ASSERT(slot >= 0 && slot < N_SLOTS);
    if (n_floats > g_scratch_cap[slot]) {
        free(g_scratch[slot]);
        /* round up so slowly growing sizes do not reallocate every call */
        size_t cap = n_floats + n_floats / 4 + 1024;
        void *p = NULL;
        AKT_ASSERT(posix_memalign(&p, 64, cap * sizeof(float)) == 0);
        g_scratch[slot] = p;
        g_scratch_cap[slot] = cap;
    }
    return g_scratch[slot];
}
