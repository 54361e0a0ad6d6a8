/* Which CPU kernels may run (not installed).
 *
 * AVX-512 kernels live in *_avx512.c files compiled with function-level
 * target attributes; akt_have_avx512() decides at run time (CPU support, and
 * the environment variable AKT_NO_AVX512=1 forces the portable path, so tests
 * can compare both). */
#ifndef AKT_OPS_CPU_H
#define AKT_OPS_CPU_H

/* 1 when the AVX-512 kernels may run: the CPU has avx512f/bw/vl and fma and
 * AKT_NO_AVX512 is unset, empty or "0". Re-read on every call (cheap), so a
 * test can flip it with setenv(). */
int akt_have_avx512(void);

#endif
