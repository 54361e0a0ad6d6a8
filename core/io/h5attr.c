/* HDF5 attribute helpers shared by h5.c, results.c and merge.c (h5attr.h). */
#include "h5attr.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int akt__h5_close(hid_t id)
{
    if (id < 0)
        return 0;
    herr_t r;
    switch (H5Iget_type(id)) {
    case H5I_FILE: r = H5Fclose(id); break;
    case H5I_GROUP: r = H5Gclose(id); break;
    case H5I_DATASET: r = H5Dclose(id); break;
    case H5I_ATTR: r = H5Aclose(id); break;
    case H5I_DATASPACE: r = H5Sclose(id); break;
    case H5I_DATATYPE: r = H5Tclose(id); break;
    case H5I_GENPROP_LST: r = H5Pclose(id); break;
    default: r = -1; break;
    }
    return r < 0 ? -1 : 0;
}

hid_t akt__h5_vlen_utf8(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return -1;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return -1;
    }
    return t;
}

/* ---- what an attribute holds, for error messages ------------------------ */

static void type_name(hid_t t, char *buf, size_t n)
{
    size_t bits = H5Tget_size(t) * 8;
    switch (H5Tget_class(t)) {
    case H5T_INTEGER:
        snprintf(buf, n, "%zu-bit %s integer", bits,
                 H5Tget_sign(t) == H5T_SGN_NONE ? "unsigned" : "signed");
        break;
    case H5T_FLOAT: snprintf(buf, n, "%zu-bit float", bits); break;
    case H5T_STRING:
        if (H5Tis_variable_str(t) > 0)
            snprintf(buf, n, "variable-length string");
        else
            snprintf(buf, n, "%zu-byte fixed-length string", bits / 8);
        break;
    case H5T_COMPOUND: snprintf(buf, n, "compound"); break;
    case H5T_ENUM: snprintf(buf, n, "enum"); break;
    case H5T_ARRAY: snprintf(buf, n, "array-typed value"); break;
    case H5T_VLEN: snprintf(buf, n, "variable-length sequence"); break;
    case H5T_OPAQUE: snprintf(buf, n, "opaque value"); break;
    case H5T_BITFIELD: snprintf(buf, n, "bitfield"); break;
    case H5T_REFERENCE: snprintf(buf, n, "reference"); break;
    case H5T_TIME: snprintf(buf, n, "time value"); break;
    default: snprintf(buf, n, "value of unknown type"); break;
    }
}

/* "a scalar 64-bit signed integer", "a [2] array of variable-length string" */
static void describe(hid_t t, hid_t sp, char *buf, size_t n)
{
    char ty[64];
    type_name(t, ty, sizeof ty);
    switch (H5Sget_simple_extent_type(sp)) {
    case H5S_SCALAR: snprintf(buf, n, "a scalar %s", ty); break;
    case H5S_NULL: snprintf(buf, n, "an empty %s (null dataspace, no value)", ty); break;
    case H5S_SIMPLE: {
        hsize_t d[H5S_MAX_RANK];
        int nd = H5Sget_simple_extent_dims(sp, d, NULL);
        size_t k = snprintf(buf, n, "a [");
        for (int i = 0; i < nd && k < n; i++)
            k += snprintf(buf + k, n - k, "%s%llu", i ? "," : "", (unsigned long long)d[i]);
        if (k < n)
            snprintf(buf + k, n - k, "] array of %ss", ty);
        break;
    }
    default: snprintf(buf, n, "a %s with an unreadable dataspace", ty); break;
    }
}

/* ---- readers ------------------------------------------------------------ */

/* Opens attribute name of obj, its file type and its dataspace. */
static int attr_open(hid_t obj, const char *where, const char *name, hid_t *a, hid_t *t, hid_t *sp,
                     struct akt_error *e)
{
    *a = *t = *sp = -1;
    htri_t ex = H5Aexists(obj, name);
    if (ex == 0)
        return akt_error_set(e, AKT_EFORMAT, where, "no attribute '%s'", name);
    if (ex < 0 || (*a = H5Aopen(obj, name, H5P_DEFAULT)) < 0 || (*t = H5Aget_type(*a)) < 0 ||
        (*sp = H5Aget_space(*a)) < 0)
        return akt_error_set(e, AKT_EFORMAT, where, "attribute '%s' cannot be opened (corrupt file?)",
                             name);
    return 0;
}

static int attr_close(hid_t a, hid_t t, hid_t sp, hid_t mt, const char *where, const char *name,
                      int rc, struct akt_error *e)
{
    int bad = (akt__h5_close(mt) | akt__h5_close(t) | akt__h5_close(sp) | akt__h5_close(a)) < 0;
    if (bad && !rc)
        rc = akt_error_set(e, AKT_EFORMAT, where, "attribute '%s' cannot be closed", name);
    return rc;
}

int akt__h5_read_num(hid_t obj, const char *where, const char *name, hid_t mtype, int ints_only,
                     void *v, int n, struct akt_error *e)
{
    hid_t a, t, sp;
    int rc = attr_open(obj, where, name, &a, &t, &sp, e);
    if (!rc) {
        H5T_class_t c = H5Tget_class(t);
        H5S_class_t sc = H5Sget_simple_extent_type(sp);
        int numeric = c == H5T_INTEGER || (!ints_only && c == H5T_FLOAT);
        int fits = (sc == H5S_SCALAR && n == 1) ||
                   (sc == H5S_SIMPLE && H5Sget_simple_extent_npoints(sp) == n);
        if (!numeric || !fits) {
            char got[200];
            describe(t, sp, got, sizeof got);
            const char *kind = ints_only ? "integer" : "number";
            if (n == 1)
                rc = akt_error_set(e, numeric ? AKT_ESHAPE : AKT_EFORMAT, where,
                                   "attribute '%s' is %s, expected a scalar %s", name, got, kind);
            else
                rc = akt_error_set(e, numeric ? AKT_ESHAPE : AKT_EFORMAT, where,
                                   "attribute '%s' is %s, expected %d %ss", name, got, n, kind);
        } else if (H5Aread(a, mtype, v) < 0) {
            rc = akt_error_set(e, AKT_EFORMAT, where, "attribute '%s' cannot be read (corrupt file?)",
                               name);
        }
    }
    return attr_close(a, t, sp, -1, where, name, rc, e);
}

int akt__h5_read_str(hid_t obj, const char *where, const char *name, size_t max, char **out,
                     struct akt_error *e)
{
    *out = NULL;
    hid_t a, t, sp, mt = -1;
    char *s = NULL;
    int rc = attr_open(obj, where, name, &a, &t, &sp, e);
    if (rc)
        return attr_close(a, t, sp, mt, where, name, rc, e);
    H5S_class_t sc = H5Sget_simple_extent_type(sp);
    int one = sc == H5S_SCALAR || (sc == H5S_SIMPLE && H5Sget_simple_extent_npoints(sp) == 1);
    htri_t vlen = H5Tget_class(t) == H5T_STRING ? H5Tis_variable_str(t) : -2;
    H5T_cset_t cset = H5Tget_cset(t);
    if (vlen == -2 || !one) {
        char got[200];
        describe(t, sp, got, sizeof got);
        rc = akt_error_set(e, AKT_EFORMAT, where, "attribute '%s' is %s, expected a scalar string",
                           name, got);
    } else if (vlen > 0) {
        /* the library allocates the string; its length is known only now */
        char *v = NULL;
        mt = H5Tcopy(H5T_C_S1);
        if (mt < 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Tset_cset(mt, cset) < 0 ||
            H5Aread(a, mt, &v) < 0) {
            rc = akt_error_set(e, AKT_EFORMAT, where,
                               "attribute '%s' cannot be read (corrupt file?)", name);
        } else {
            size_t len = v ? strlen(v) : 0;
            if (len > max)
                rc = akt_error_set(e, AKT_EFORMAT, where,
                                   "attribute '%s' is a %zu-byte string, longer than the %zu "
                                   "bytes allowed", name, len, max);
            else if (!(s = strdup(v ? v : "")))
                rc = akt_error_set(e, AKT_ENOMEM, where, "attribute '%s': out of memory", name);
        }
        if (v && H5free_memory(v) < 0 && !rc)
            rc = akt_error_set(e, AKT_EFORMAT, where, "attribute '%s' cannot be freed", name);
    } else if (vlen == 0) {
        /* fixed length: the size says how much H5Aread writes */
        size_t size = H5Tget_size(t);
        size_t room = size - (H5Tget_strpad(t) == H5T_STR_NULLTERM && size > 0);
        if (size == 0 || room > max) {
            rc = akt_error_set(e, AKT_EFORMAT, where,
                               "attribute '%s' is a %zu-byte fixed-length string, longer than "
                               "the %zu bytes allowed", name, size, max);
        } else if (!(s = calloc(1, size + 1))) {
            rc = akt_error_set(e, AKT_ENOMEM, where, "attribute '%s': out of memory", name);
        } else {
            mt = H5Tcopy(H5T_C_S1);
            if (mt < 0 || H5Tset_size(mt, size + 1) < 0 || H5Tset_cset(mt, cset) < 0 ||
                H5Aread(a, mt, s) < 0)
                rc = akt_error_set(e, AKT_EFORMAT, where,
                                   "attribute '%s' cannot be read (corrupt file?)", name);
        }
    } else {
        rc = akt_error_set(e, AKT_EFORMAT, where, "attribute '%s': string type cannot be read",
                           name);
    }
    rc = attr_close(a, t, sp, mt, where, name, rc, e);
    if (rc)
        free(s);
    else
        *out = s;
    return rc;
}

char *akt__h5_attr_str(hid_t obj, const char *name)
{
    char *s;
    return akt__h5_read_str(obj, NULL, name, AKT__H5_STR_MAX, &s, NULL) ? NULL : s;
}

int akt__h5_attr_f64(hid_t obj, const char *name, double *v)
{
    double x;
    if (akt__h5_read_num(obj, NULL, name, H5T_NATIVE_DOUBLE, 0, &x, 1, NULL))
        return -1;
    *v = x;
    return 0;
}

int akt__h5_check_run_attrs(hid_t run, const char *where, struct akt_error *e)
{
    static const char *const strs[] = {"config", "status", "status_message", "created"};
    static const struct {
        const char *name;
        double lo, hi; /* lo > hi: any value */
    } nums[] = {
        {"checkpoint_epoch", 0, 2147483647.0}, {"checkpoint_slot", 0, 1},
        {"best_epoch", -1, 2147483647.0},      {"best_top1", 1, 0},
        {"final_top1", 1, 0},                  {"top1_fp", 1, 0},
        {"top1_before", 1, 0},
    };
    int rc = 0;
    for (size_t i = 0; i < sizeof strs / sizeof strs[0] && !rc; i++) {
        htri_t ex = H5Aexists(run, strs[i]);
        char *s = NULL;
        if (ex < 0)
            rc = akt_error_set(e, AKT_EFORMAT, where, "attributes cannot be read (corrupt file?)");
        else if (ex > 0)
            rc = akt__h5_read_str(run, where, strs[i], AKT__H5_STR_MAX, &s, e);
        if (!rc && s && !strcmp(strs[i], "status") && strcmp(s, "running") && strcmp(s, "done") &&
            strcmp(s, "failed") && strcmp(s, "interrupted"))
            rc = akt_error_set(e, AKT_EFORMAT, where,
                               "attribute 'status' is '%.40s%s', expected running, done, failed "
                               "or interrupted", s, strlen(s) > 40 ? "..." : "");
        free(s);
    }
    for (size_t i = 0; i < sizeof nums / sizeof nums[0] && !rc; i++) {
        htri_t ex = H5Aexists(run, nums[i].name);
        double v;
        if (ex < 0)
            rc = akt_error_set(e, AKT_EFORMAT, where, "attributes cannot be read (corrupt file?)");
        else if (ex > 0 && !(rc = akt__h5_read_num(run, where, nums[i].name, H5T_NATIVE_DOUBLE, 0,
                                                   &v, 1, e)) &&
                 nums[i].lo <= nums[i].hi &&
                 !(v >= nums[i].lo && v <= nums[i].hi && v == (double)(long long)v))
            rc = akt_error_set(e, AKT_EFORMAT, where,
                               "attribute '%s' is %g, expected a whole number in %.0f..%.0f",
                               nums[i].name, v, nums[i].lo, nums[i].hi);
    }
    return rc;
}
