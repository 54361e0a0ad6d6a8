/* Per-thread scratch memory of the kernels (not installed). */
#ifndef AKT_OPS_SCRATCH_H
#define AKT_OPS_SCRATCH_H

#include <stddef.h>

/* Scratch memory owned by the calling thread, 64-byte aligned, grown on
 * demand and kept (a conv runs every step with the same sizes, so this avoids
 * page faults from fresh allocations). slot 0..3 are independent buffers.
 * Contents are undefined. */
float *akt_scratch(int slot, size_t n_floats);

#endif
