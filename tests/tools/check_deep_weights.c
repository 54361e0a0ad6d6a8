/* Checks tests/deep_weights.h against tests/fixtures/resnet_random_golden.h5:
 * formula_check_u64 (the integer stage) and formula_check (values) bit for
 * bit, then every key of every net: the fill's f64 sum and sum of squares
 * against weight_sum (to 1e-12 relative: f64 summation-order noise is
 * ~1e-14, one float32 ulp off in one element of a key is > 1e-10).
 * Meson-free, run by hand:
 *
 *   cc -std=c11 -O2 -Wall -Wextra -Itests tests/tools/check_deep_weights.c \
 *      $(pkg-config --cflags --libs hdf5) -lm -o /tmp/check_deep_weights
 *   /tmp/check_deep_weights tests/fixtures/resnet_random_golden.h5
 *
 * Exit 0 when everything matches, 1 with the first mismatches listed. */
#include <hdf5.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deep_weights.h"

#define KEY_LEN 48

static const char *path;

static int read_ds(hid_t loc, const char *name, hid_t mem_type, void *buf, hssize_t n)
{
    hid_t ds = H5Dopen2(loc, name, H5P_DEFAULT);
    if (ds < 0) {
        fprintf(stderr, "%s: dataset %s missing\n", path, name);
        return -1;
    }
    hid_t sp = H5Dget_space(ds);
    hssize_t have = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    int rc = 0;
    if (n >= 0 && have != n) {
        fprintf(stderr, "%s: %s has %lld elements, expected %lld\n", path, name, (long long)have,
                (long long)n);
        rc = -1;
    } else if (H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0) {
        fprintf(stderr, "%s: %s: read failed\n", path, name);
        rc = -1;
    }
    H5Dclose(ds);
    return rc;
}

struct walk {
    hid_t file;
    int n_keys, bad;
};

/* formula_check/<key>: the key's first 16 values, role from dw_role_of on
 * the key and its shape attribute (as a test on a real model would do). */
static void check_key(hid_t grp, const char *key, struct walk *w)
{
    uint64_t want_bits[16], bits[16];
    float want[16];
    char name[192];
    if (read_ds(grp, key, H5T_NATIVE_FLOAT, want, 16) < 0) {
        w->bad++;
        return;
    }
    snprintf(name, sizeof name, "formula_check_u64/%s", key);
    if (read_ds(w->file, name, H5T_NATIVE_UINT64, want_bits, 16) < 0) {
        w->bad++;
        return;
    }
    int shape[4] = {0, 0, 0, 0}, ndim = 0;
    hid_t ds = H5Dopen2(grp, key, H5P_DEFAULT);
    hid_t at = H5Aopen(ds, "shape", H5P_DEFAULT);
    if (at >= 0) {
        hid_t sp = H5Aget_space(at);
        ndim = (int)H5Sget_simple_extent_npoints(sp);
        H5Sclose(sp);
        if (ndim < 1 || ndim > 4 || H5Aread(at, H5T_NATIVE_INT, shape) < 0)
            ndim = 0;
        H5Aclose(at);
    }
    H5Dclose(ds);
    if (ndim == 0) {
        fprintf(stderr, "%s: formula_check/%s: attribute shape missing or bad\n", path, key);
        w->bad++;
        return;
    }
    float got[16];
    if (dw_fill(key, ndim, shape, got, 16) < 0) {
        fprintf(stderr, "%s: formula_check/%s: dw_role_of does not know this key\n", path, key);
        w->bad++;
        return;
    }
    uint64_t h = dw_fnv1a64(key);
    for (int j = 0; j < 16; j++) {
        bits[j] = dw_splitmix64(h + (uint64_t)j);
        if (bits[j] != want_bits[j] || memcmp(&got[j], &want[j], sizeof(float))) {
            fprintf(stderr, "%s: %s[%d]: C %016" PRIx64 " %.9g, fixture %016" PRIx64 " %.9g\n", path,
                    key, j, bits[j], got[j], want_bits[j], want[j]);
            w->bad++;
            break;
        }
    }
    w->n_keys++;
}

/* Every key of one net: f64 sum and sum of squares of the fill. */
static int check_net(hid_t f, const char *net)
{
    hid_t g = H5Gopen2(f, net, H5P_DEFAULT);
    if (g < 0) {
        fprintf(stderr, "%s: group %s missing\n", path, net);
        return 1;
    }
    int n_keys = 0;
    hid_t a = H5Aopen(g, "n_keys", H5P_DEFAULT);
    if (a < 0 || H5Aread(a, H5T_NATIVE_INT, &n_keys) < 0 || n_keys <= 0) {
        fprintf(stderr, "%s: %s: attribute n_keys missing or bad\n", path, net);
        return 1;
    }
    H5Aclose(a);
    char(*keys)[KEY_LEN] = calloc((size_t)n_keys, KEY_LEN);
    int(*shape)[4] = calloc((size_t)n_keys, sizeof *shape);
    double(*sums)[2] = calloc((size_t)n_keys, sizeof *sums);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, KEY_LEN);
    H5Tset_strpad(st, H5T_STR_NULLPAD);
    int bad = 0;
    if (read_ds(g, "keys", st, keys, n_keys) < 0 ||
        read_ds(g, "key_shape", H5T_NATIVE_INT, shape, 4 * n_keys) < 0 ||
        read_ds(g, "weight_sum", H5T_NATIVE_DOUBLE, sums, 2 * n_keys) < 0)
        bad = 1;
    int64_t total = 0;
    double worst = 0;
    for (int k = 0; k < n_keys && !bad; k++) {
        char key[KEY_LEN + 1];
        memcpy(key, keys[k], KEY_LEN);
        key[KEY_LEN] = 0;
        int ndim = 0;
        int64_t n = 1;
        while (ndim < 4 && shape[k][ndim] > 0)
            n *= shape[k][ndim++];
        float *v = malloc((size_t)n * sizeof *v);
        if (dw_fill(key, ndim, shape[k], v, n) < 0) {
            fprintf(stderr, "%s: %s/%s: dw_role_of does not know this key\n", path, net, key);
            bad = 1;
        } else {
            double s = 0, s2 = 0;
            for (int64_t j = 0; j < n; j++)
                s += v[j], s2 += (double)v[j] * v[j];
            double e = fmax(fabs(s - sums[k][0]) / fmax(1e-300, sqrt(sums[k][1])),
                            fabs(s2 - sums[k][1]) / fmax(1e-300, sums[k][1]));
            if (e > worst)
                worst = e;
            if (!(e <= 1e-12)) {
                fprintf(stderr, "%s: %s/%s: C sum %.17g sumsq %.17g, fixture %.17g %.17g\n", path, net,
                        key, s, s2, sums[k][0], sums[k][1]);
                bad = 1;
            }
        }
        total += n;
        free(v);
    }
    printf("%s: %d keys, %lld values, worst relative sum difference %.3g%s\n", net, n_keys,
           (long long)total, worst, bad ? " FAILED" : "");
    H5Tclose(st);
    free(keys), free(shape), free(sums);
    H5Gclose(g);
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s tests/fixtures/resnet_random_golden.h5\n", argv[0]);
        return 2;
    }
    path = argv[1];
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0) {
        fprintf(stderr, "%s: cannot open\n", path);
        return 1;
    }
    struct walk w = {f, 0, 0};
    hid_t g = H5Gopen2(f, "formula_check", H5P_DEFAULT);
    H5G_info_t gi;
    if (g < 0 || H5Gget_info(g, &gi) < 0) {
        fprintf(stderr, "%s: group formula_check missing\n", path);
        return 1;
    }
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char key[128];
        if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, key, sizeof key, H5P_DEFAULT) < 0)
            w.bad++;
        else
            check_key(g, key, &w);
    }
    H5Gclose(g);
    printf("formula_check: %d keys, %d mismatching\n", w.n_keys, w.bad);
    int bad = w.bad || w.n_keys == 0;
    static const char *nets[] = {"resnet110_pad", "resnet32_conv1x1", "resnet56_conv1x1"};
    for (int i = 0; i < 3; i++)
        bad |= check_net(f, nets[i]);
    H5Fclose(f);
    printf("%s\n", bad ? "FAILED" : "all match");
    return bad;
}
