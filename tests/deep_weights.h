/* The weight formula of tests/fixtures/resnet_random_golden.h5 (header-only,
 * tests only). tools/make_deep_fixtures.py fills random-weight CIFAR ResNets
 * from it instead of storing their weights; this is the C port, bit-exact.
 *
 * For a state_dict key K and flat (row-major) element j:
 *   h = FNV-1a-64(K), x = splitmix64(h + j), u = (x >> 11) * 2^-53 in [0,1),
 *   value = (float)(role's expression in double):
 *     DW_CONV        (2u-1)*sqrt(3.0/fan_in)  conv [Co,Ci,kh,kw]: fan_in Ci*kh*kw;
 *                                              linear.weight and linear.bias: 64
 *     DW_BN2_WEIGHT  (0.5+u)*0.5               layerS.B.bn2.weight (body's last BN)
 *     DW_BN_WEIGHT   0.5+u                     every other BN weight
 *     DW_BN_BIAS     0.2*(u-0.5)
 *     DW_RUNNING_MEAN 0.2*(u-0.5)
 *     DW_RUNNING_VAR 0.5+u
 * Each step is exact or one IEEE rounding, and no multiply feeds an add
 * whose fusing could change the result (2u-1 is exact either way), so the
 * values do not depend on -ffp-contract. Check a build against the fixture's
 * formula_check / formula_check_u64 datasets first (tests/tools/
 * check_deep_weights.c does, and every key's weight_sum). */
#ifndef AKT_TEST_DEEP_WEIGHTS_H
#define AKT_TEST_DEEP_WEIGHTS_H

#include <math.h>
#include <stdint.h>
#include <string.h>

enum dw_role {
    DW_CONV,
    DW_BN_WEIGHT,
    DW_BN2_WEIGHT,
    DW_BN_BIAS,
    DW_RUNNING_MEAN,
    DW_RUNNING_VAR,
    DW_UNKNOWN = -1,
};

static inline uint64_t dw_fnv1a64(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

/* The standard splitmix64 output for state s. */
static inline uint64_t dw_splitmix64(uint64_t s)
{
    uint64_t z = s + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* u in [0,1) for element j of the key hashed to h. */
static inline double dw_u(uint64_t h, uint64_t j)
{
    return (double)(dw_splitmix64(h + j) >> 11) * 0x1p-53;
}

/* fan_in matters for DW_CONV only. */
static inline float dw_value_u(double u, enum dw_role role, int fan_in)
{
    switch (role) {
    case DW_CONV:
        return (float)((2.0 * u - 1.0) * sqrt(3.0 / (double)fan_in));
    case DW_BN2_WEIGHT:
        return (float)((0.5 + u) * 0.5);
    case DW_BN_WEIGHT:
    case DW_RUNNING_VAR:
        return (float)(0.5 + u);
    case DW_BN_BIAS:
    case DW_RUNNING_MEAN:
        return (float)(0.2 * (u - 0.5));
    default:
        return NAN;
    }
}

static inline float dw_value(const char *key, uint64_t j, enum dw_role role, int fan_in)
{
    return dw_value_u(dw_u(dw_fnv1a64(key), j), role, fan_in);
}

static inline int dw_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* Role and fan_in of a CIFAR ResNet state_dict key from its name and shape
 * (the Python side goes by module type; formula_check covers both ways).
 * Returns DW_UNKNOWN for a key this scheme does not know. */
static inline enum dw_role dw_role_of(const char *key, int ndim, const int *shape, int *fan_in)
{
    *fan_in = 0;
    if (!strcmp(key, "linear.weight") || !strcmp(key, "linear.bias")) {
        *fan_in = 64; /* in_features: every CIFAR ResNet here ends at 64 channels */
        return DW_CONV;
    }
    if (ndim == 4 && dw_ends_with(key, ".weight")) {
        *fan_in = shape[1] * shape[2] * shape[3];
        return DW_CONV;
    }
    if (ndim != 1)
        return DW_UNKNOWN;
    if (dw_ends_with(key, ".running_mean"))
        return DW_RUNNING_MEAN;
    if (dw_ends_with(key, ".running_var"))
        return DW_RUNNING_VAR;
    if (dw_ends_with(key, ".bias"))
        return DW_BN_BIAS;
    if (dw_ends_with(key, ".weight"))
        return strncmp(key, "layer", 5) == 0 && dw_ends_with(key, ".bn2.weight") ? DW_BN2_WEIGHT
                                                                                 : DW_BN_WEIGHT;
    return DW_UNKNOWN;
}

/* Fills out[0..n) with the key's values; returns -1 (out untouched) when the
 * key's role is unknown. */
static inline int dw_fill(const char *key, int ndim, const int *shape, float *out, int64_t n)
{
    int fan_in;
    enum dw_role role = dw_role_of(key, ndim, shape, &fan_in);
    if (role == DW_UNKNOWN)
        return -1;
    uint64_t h = dw_fnv1a64(key);
    for (int64_t j = 0; j < n; j++)
        out[j] = dw_value_u(dw_u(h, (uint64_t)j), role, fan_in);
    return 0;
}

#endif
