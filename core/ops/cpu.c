/* The run-time switch between the AVX-512 kernels and the portable ones. */
#include "cpu.h"

#include "akt/base.h"

int akt_have_avx512(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (akt_env_flag("AKT_NO_AVX512"))
        return 0;
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}
