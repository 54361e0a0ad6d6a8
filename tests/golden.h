/* Helpers of the golden tests (golden_resnet.c, golden_deep.c): reading
 * fixture datasets, comparing akt's float32 results with PyTorch's, and the
 * per-section "worst tensor" summary printed as TAP comments. Include after
 * cmocka.h and hdf5.h. */
#ifndef AKT_TEST_GOLDEN_H
#define AKT_TEST_GOLDEN_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- HDF5 --- */

static inline int64_t h5_numel(hid_t f, const char *name)
{
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0)
        return -1;
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    if (ds < 0)
        return -1;
    hid_t sp = H5Dget_space(ds);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    H5Dclose(ds);
    return (int64_t)n;
}

/* Reads dataset `name` (any float type) converted to mem_type; fails the
 * test when it is missing or does not hold exactly n elements. */
static inline void h5_read(hid_t f, const char *name, hid_t mem_type, void *buf, int64_t n)
{
    int64_t have = h5_numel(f, name);
    if (have != n)
        fail_msg("fixture dataset %s: %lld elements, expected %lld", name, (long long)have,
                 (long long)n);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    herr_t rc = H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(ds);
    if (rc < 0)
        fail_msg("fixture dataset %s: read failed", name);
}

static inline float *h5_read_f32(hid_t f, const char *name, int64_t n)
{
    float *p = malloc((n > 0 ? (size_t)n : 1) * sizeof *p); /* n < 0: h5_read fails */
    assert_non_null(p);
    h5_read(f, name, H5T_NATIVE_FLOAT, p, n);
    return p;
}

static inline double *h5_read_f64(hid_t f, const char *name, int64_t n)
{
    double *p = malloc((n > 0 ? (size_t)n : 1) * sizeof *p);
    assert_non_null(p);
    h5_read(f, name, H5T_NATIVE_DOUBLE, p, n);
    return p;
}

static inline int h5_read_attr_f32(hid_t f, const char *name, float *v, int n)
{
    if (H5Aexists(f, name) <= 0)
        return -1;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    hid_t sp = H5Aget_space(a);
    int ok = H5Sget_simple_extent_npoints(sp) == n && H5Aread(a, H5T_NATIVE_FLOAT, v) >= 0;
    H5Sclose(sp);
    H5Aclose(a);
    return ok ? 0 : -1;
}

/* Number of links in a group (-1 if missing). */
static inline long h5_group_size(hid_t f, const char *name)
{
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0)
        return -1;
    H5G_info_t info;
    if (H5Gget_info_by_name(f, name, &info, H5P_DEFAULT) < 0)
        return -1;
    return (long)info.nlinks;
}

/* ----------------------------------------------------------- comparing --- */

struct cmp {
    double max_abs, max_ref, rel; /* rel = max_abs / max_ref */
    int64_t at, n_diff;
};

static inline struct cmp compare(const float *got, const double *ref, int64_t n)
{
    struct cmp c = {0, 0, 0, -1, 0};
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - ref[i]);
        if (!(e <= c.max_abs) || isnan(got[i])) { /* NaN counts as worst */
            c.max_abs = isnan(got[i]) ? INFINITY : e;
            c.at = i;
        }
        if (fabs(ref[i]) > c.max_ref)
            c.max_ref = fabs(ref[i]);
        if ((double)got[i] != ref[i])
            c.n_diff++;
    }
    c.rel = c.max_ref > 0 ? c.max_abs / c.max_ref : c.max_abs;
    return c;
}

static inline struct cmp compare_f32(const float *got, const float *ref, int64_t n)
{
    double *r = malloc((size_t)n * sizeof *r);
    assert_non_null(r);
    for (int64_t i = 0; i < n; i++)
        r[i] = ref[i];
    struct cmp c = compare(got, r, n);
    free(r);
    return c;
}

/* The worst tensor of one section. */
struct worst {
    const char *section;
    char abs_name[160], rel_name[160];
    double max_abs, rel;
    int n, n_fail;
};

static inline void worst_add(struct worst *w, const char *name, struct cmp c, int failed)
{
    w->n++;
    w->n_fail += failed;
    if (c.max_abs > w->max_abs || w->n == 1) {
        w->max_abs = c.max_abs;
        snprintf(w->abs_name, sizeof w->abs_name, "%s", name);
    }
    if (c.rel > w->rel || w->n == 1) {
        w->rel = c.rel;
        snprintf(w->rel_name, sizeof w->rel_name, "%s", name);
    }
}

static inline void worst_print(const struct worst *w)
{
    printf("# %s: %d tensors, worst abs %.3g (%s), worst rel-to-max %.3g (%s), %d failed\n",
           w->section, w->n, w->max_abs, w->abs_name, w->rel, w->rel_name, w->n_fail);
    fflush(stdout);
}

/* Gradient-style check: abs and scale-relative bound. Returns 1 on failure
 * and prints the offender. */
static inline int check_tensor(struct worst *w, const char *name, const float *got, const double *ref,
                        int64_t n, double abs_tol, double rel_tol)
{
    struct cmp c = compare(got, ref, n);
    int bad = !(c.max_abs <= abs_tol) || !(c.max_abs <= rel_tol * c.max_ref + 1e-30);
    if (bad)
        printf("# FAIL %s: max abs err %.3g at %lld (akt %.9g, torch %.9g), max|torch| %.3g, rel %.3g\n",
               name, c.max_abs, (long long)c.at, c.at >= 0 ? got[c.at] : 0.0,
               c.at >= 0 ? ref[c.at] : 0.0, c.max_ref, c.rel);
    worst_add(w, name, c, bad);
    return bad;
}


static inline char *path_join(const char *dir, const char *rel)
{
    size_t n = strlen(dir) + strlen(rel) + 1;
    char *p = malloc(n);
    snprintf(p, n, "%s%s", dir, rel);
    return p;
}

static inline int file_exists(const char *p)
{
    FILE *f = fopen(p, "rb");
    if (f)
        fclose(f);
    return f != NULL;
}

#endif
