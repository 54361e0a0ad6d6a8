/* The integer-hash inputs of the PyTorch loss fixtures (tools/
 * make_loss_fixtures.py: h32, u, features), exact in float32 so that the C
 * tests and the fixture scripts see bit-identical tensors without storing
 * them. Tests only, header-only. */
#ifndef AKT_TEST_FIXTURE_HASH_H
#define AKT_TEST_FIXTURE_HASH_H

#include <math.h>
#include <stdint.h>

static inline uint32_t h32(uint32_t seed, uint32_t j)
{
    uint32_t x = j * 0x9E3779B1u + seed * 0x85EBCA77u + 0x165667B1u;
    x ^= x >> 15;
    x *= 0x2C1B3C6Du;
    x ^= x >> 12;
    x *= 0x297A2D39u;
    x ^= x >> 15;
    return x;
}

/* in [-1, 1), exact in float32 */
static inline float u(uint32_t seed, uint32_t j)
{
    return (float)(h32(seed, j) >> 8) * 0x1p-23f - 1.0f;
}

/* Body output l of the fixture (features() there): teacher ft and student fs
 * of [nb, c, hw] with power-of-two scales k_c k_p, fs = ft + u * (k / 4). */
static inline void fixture_features(int l, int nb, int c, int hw, float *ft, float *fs)
{
    for (int b = 0; b < nb; b++)
        for (int ci = 0; ci < c; ci++)
            for (int p = 0; p < hw; p++) {
                uint32_t j = (uint32_t)((b * c + ci) * hw + p);
                float k = ldexpf(1.0f, (int)(h32(100 + l, ci) % 3) - 1 +
                                           (int)(h32(200 + l, p) % 2) - 1);
                ft[j] = u(10 + l, j) * k;
                fs[j] = ft[j] + u(20 + l, j) * (k * 0.25f);
            }
}

#endif
