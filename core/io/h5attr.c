/* HDF5 attribute helpers shared by results.c and merge.c (h5attr.h). */
#include "h5attr.h"

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

char *akt__h5_attr_str(hid_t obj, const char *name)
{
    if (H5Aexists(obj, name) <= 0)
        return NULL;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0)
        return NULL;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    char *out = NULL;
    int bad = 0;
    if (ft >= 0 && sp >= 0 && H5Tget_class(ft) == H5T_STRING &&
        H5Sget_simple_extent_npoints(sp) == 1) {
        if (H5Tis_variable_str(ft) > 0) {
            hid_t mt = akt__h5_vlen_utf8();
            char *s = NULL;
            if (mt >= 0 && H5Aread(a, mt, &s) >= 0 && s)
                out = strdup(s);
            if (s && H5free_memory(s) < 0)
                bad = 1;
            bad |= akt__h5_close(mt) < 0;
        } else {
            size_t len = H5Tget_size(ft);
            char *s = calloc(1, len + 1);
            hid_t mt = s ? H5Tcopy(H5T_C_S1) : -1;
            if (mt >= 0 && H5Tset_size(mt, len + 1) >= 0 && H5Aread(a, mt, s) >= 0)
                out = s;
            else
                free(s);
            bad |= akt__h5_close(mt) < 0;
        }
    }
    bad |= (akt__h5_close(ft) | akt__h5_close(sp) | akt__h5_close(a)) < 0;
    if (bad) {
        free(out);
        return NULL;
    }
    return out;
}

int akt__h5_attr_f64(hid_t obj, const char *name, double *v)
{
    if (H5Aexists(obj, name) <= 0)
        return -1;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0)
        return -1;
    hid_t ft = H5Aget_type(a), sp = H5Aget_space(a);
    int rc = -1;
    if (ft >= 0 && sp >= 0 && H5Sget_simple_extent_npoints(sp) == 1) {
        H5T_class_t c = H5Tget_class(ft);
        double x;
        if ((c == H5T_FLOAT || c == H5T_INTEGER) && H5Aread(a, H5T_NATIVE_DOUBLE, &x) >= 0) {
            *v = x;
            rc = 0;
        }
    }
    if ((akt__h5_close(ft) | akt__h5_close(sp) | akt__h5_close(a)) < 0)
        rc = -1;
    return rc;
}
