/* h5same: are two HDF5 groups the same, for the crash tests?
 *
 *   h5same A.h5 B.h5 [--group PATH] [--ignore NAME]...
 *
 * Walks PATH (default /) in both files and compares every link name, every
 * dataset (class, size, shape and raw bytes after conversion to the native
 * type) and every attribute (strings as text, numbers as native bytes).
 * --ignore NAME skips attributes and links of that name wherever they occur
 * (e.g. created, time_s). Prints the first difference; exit 0 when the same,
 * 1 when they differ, 2 on bad usage or an unreadable file. */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IGNORE 16

static const char *g_ignore[MAX_IGNORE];
static int g_n_ignore;

static int ignored(const char *name)
{
    for (int i = 0; i < g_n_ignore; i++)
        if (!strcmp(g_ignore[i], name))
            return 1;
    return 0;
}

static int differ(const char *path, const char *what)
{
    printf("h5same: %s: %s\n", path, what);
    return 1;
}

/* Names of obj's links or attributes (attrs != 0), sorted by name. */
struct names {
    int n;
    char **v;
};

static herr_t add_link(hid_t g, const char *name, const H5L_info_t *i, void *d)
{
    (void)g;
    (void)i;
    struct names *s = d;
    if (ignored(name))
        return 0;
    s->v = realloc(s->v, (size_t)(s->n + 1) * sizeof *s->v);
    s->v[s->n++] = strdup(name);
    return 0;
}

static herr_t add_attr(hid_t o, const char *name, const H5A_info_t *i, void *d)
{
    (void)o;
    (void)i;
    return add_link(o, name, NULL, d);
}

static void names_free(struct names *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->v[i]);
    free(s->v);
}

static int names_of(hid_t obj, int attrs, struct names *s)
{
    memset(s, 0, sizeof *s);
    hsize_t idx = 0;
    herr_t r = attrs ? H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, add_attr, s)
                     : H5Literate(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, add_link, s);
    return r < 0 ? -1 : 0;
}

static int same_names(const char *path, const struct names *a, const struct names *b,
                      const char *kind)
{
    char msg[600];
    for (int i = 0, j = 0; i < a->n || j < b->n;) {
        int c = i == a->n ? 1 : j == b->n ? -1 : strcmp(a->v[i], b->v[j]);
        if (c) {
            snprintf(msg, sizeof msg, "%s '%s' only in the %s file", kind,
                     c < 0 ? a->v[i] : b->v[j], c < 0 ? "first" : "second");
            return differ(path, msg);
        }
        i++;
        j++;
    }
    return 0;
}

/* Reads n elements of type (file type ft) from an attribute or dataset. */
static void *read_all(hid_t obj, int is_attr, hid_t ft, hssize_t n, hid_t *mt_out)
{
    hid_t mt = H5Tget_native_type(ft, H5T_DIR_ASCEND);
    size_t sz = H5Tget_size(mt);
    void *buf = calloc((size_t)(n > 0 ? n : 1), sz);
    herr_t r = is_attr ? H5Aread(obj, mt, buf) : H5Dread(obj, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    if (r < 0) {
        free(buf);
        H5Tclose(mt);
        return NULL;
    }
    *mt_out = mt;
    return buf;
}

/* Same class, size, shape and contents; strings compared as text. */
static int same_value(const char *path, hid_t a, hid_t b, int is_attr)
{
    hid_t ta = is_attr ? H5Aget_type(a) : H5Dget_type(a);
    hid_t tb = is_attr ? H5Aget_type(b) : H5Dget_type(b);
    hid_t sa = is_attr ? H5Aget_space(a) : H5Dget_space(a);
    hid_t sb = is_attr ? H5Aget_space(b) : H5Dget_space(b);
    int rc = 0;
    int na = H5Sget_simple_extent_ndims(sa), nb = H5Sget_simple_extent_ndims(sb);
    hsize_t da[8] = {0}, db[8] = {0};
    H5Sget_simple_extent_dims(sa, da, NULL);
    H5Sget_simple_extent_dims(sb, db, NULL);
    H5T_class_t ca = H5Tget_class(ta), cb = H5Tget_class(tb);
    if (ca != cb || na != nb || memcmp(da, db, sizeof da))
        rc = differ(path, "type class or shape differs");
    else if (ca == H5T_STRING) {
        hssize_t n = H5Sget_simple_extent_npoints(sa);
        int vl = H5Tis_variable_str(ta) > 0;
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, vl ? H5T_VARIABLE : H5Tget_size(ta) + 1);
        H5Tset_cset(mt, H5Tget_cset(ta));
        char **va = calloc((size_t)n + 1, sizeof *va), **vb = calloc((size_t)n + 1, sizeof *vb);
        char *fa = vl ? NULL : calloc((size_t)n + 1, H5Tget_size(ta) + 1);
        char *fb = vl ? NULL : calloc((size_t)n + 1, H5Tget_size(ta) + 1);
        herr_t r1 = is_attr ? H5Aread(a, mt, vl ? (void *)va : fa)
                            : H5Dread(a, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, vl ? (void *)va : fa);
        herr_t r2 = is_attr ? H5Aread(b, mt, vl ? (void *)vb : fb)
                            : H5Dread(b, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, vl ? (void *)vb : fb);
        if (r1 < 0 || r2 < 0)
            rc = differ(path, "cannot be read");
        else if (vl) {
            for (hssize_t i = 0; i < n && !rc; i++)
                if (strcmp(va[i] ? va[i] : "", vb[i] ? vb[i] : ""))
                    rc = differ(path, "string value differs");
            for (hssize_t i = 0; i < n; i++) {
                H5free_memory(va[i]);
                H5free_memory(vb[i]);
            }
        } else if (memcmp(fa, fb, (size_t)n * (H5Tget_size(ta) + 1))) {
            rc = differ(path, "string value differs");
        }
        free(va);
        free(vb);
        free(fa);
        free(fb);
        H5Tclose(mt);
    } else {
        hssize_t n = H5Sget_simple_extent_npoints(sa);
        hid_t ma = -1, mb = -1;
        void *ba = read_all(a, is_attr, ta, n, &ma), *bb = read_all(b, is_attr, tb, n, &mb);
        if (!ba || !bb)
            rc = differ(path, "cannot be read");
        else if (H5Tget_size(ma) != H5Tget_size(mb) ||
                 memcmp(ba, bb, (size_t)n * H5Tget_size(ma)))
            rc = differ(path, "values differ");
        free(ba);
        free(bb);
        if (ma >= 0)
            H5Tclose(ma);
        if (mb >= 0)
            H5Tclose(mb);
    }
    H5Tclose(ta);
    H5Tclose(tb);
    H5Sclose(sa);
    H5Sclose(sb);
    return rc;
}

static int same_attrs(const char *path, hid_t a, hid_t b)
{
    struct names na, nb;
    if (names_of(a, 1, &na) || names_of(b, 1, &nb))
        return differ(path, "attributes cannot be listed");
    int rc = same_names(path, &na, &nb, "attribute");
    for (int i = 0; i < na.n && !rc; i++) {
        char p[1200];
        snprintf(p, sizeof p, "%s@%s", path, na.v[i]);
        hid_t x = H5Aopen(a, na.v[i], H5P_DEFAULT), y = H5Aopen(b, na.v[i], H5P_DEFAULT);
        rc = x < 0 || y < 0 ? differ(p, "cannot be opened") : same_value(p, x, y, 1);
        if (x >= 0)
            H5Aclose(x);
        if (y >= 0)
            H5Aclose(y);
    }
    names_free(&na);
    names_free(&nb);
    return rc;
}

static int same_object(const char *path, hid_t fa, hid_t fb)
{
    hid_t a = H5Oopen(fa, path, H5P_DEFAULT), b = H5Oopen(fb, path, H5P_DEFAULT);
    if (a < 0 || b < 0) {
        if (a >= 0)
            H5Oclose(a);
        if (b >= 0)
            H5Oclose(b);
        return differ(path, "cannot be opened");
    }
    H5O_info_t ia, ib;
    H5Oget_info(a, &ia);
    H5Oget_info(b, &ib);
    int rc = ia.type != ib.type ? differ(path, "object types differ") : same_attrs(path, a, b);
    if (!rc && ia.type == H5O_TYPE_DATASET) {
        rc = same_value(path, a, b, 0);
    } else if (!rc && ia.type == H5O_TYPE_GROUP) {
        struct names na, nb;
        if (names_of(a, 0, &na) || names_of(b, 0, &nb))
            rc = differ(path, "links cannot be listed");
        else
            rc = same_names(path, &na, &nb, "link");
        for (int i = 0; i < na.n && !rc; i++) {
            char p[1200];
            snprintf(p, sizeof p, "%s%s%s", path, strcmp(path, "/") ? "/" : "", na.v[i]);
            rc = same_object(p, fa, fb);
        }
        names_free(&na);
        names_free(&nb);
    }
    H5Oclose(a);
    H5Oclose(b);
    return rc;
}

int main(int argc, char **argv)
{
    const char *group = "/", *fa = NULL, *fb = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--group") && i + 1 < argc)
            group = argv[++i];
        else if (!strcmp(argv[i], "--ignore") && i + 1 < argc && g_n_ignore < MAX_IGNORE)
            g_ignore[g_n_ignore++] = argv[++i];
        else if (!fa)
            fa = argv[i];
        else if (!fb)
            fb = argv[i];
        else
            fa = NULL, i = argc;
    }
    if (!fa || !fb) {
        fprintf(stderr, "usage: h5same A.h5 B.h5 [--group PATH] [--ignore NAME]...\n");
        return 2;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    hid_t a = H5Fopen(fa, H5F_ACC_RDONLY, H5P_DEFAULT), b = H5Fopen(fb, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (a < 0 || b < 0) {
        fprintf(stderr, "h5same: cannot open %s\n", a < 0 ? fa : fb);
        return 2;
    }
    int rc = same_object(group, a, b);
    H5Fclose(a);
    H5Fclose(b);
    return rc ? 1 : 0;
}
