/* Helpers of the plugin tests (plugin_losses.c, plugin_sota.c): the fake
 * host (fake_host.h), parameter values as the host would validate
 * them from "key=value ..." text, and fixture readers. Include after cmocka
 * (failures go through fail_msg). Tests only, header-only. */
#ifndef AKT_TEST_PLUGIN_HOST_H
#define AKT_TEST_PLUGIN_HOST_H

#include <hdf5.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/plugin.h"
#include "fake_host.h"

/* -------------------------------------------------------- parameters --- */
static inline int param_index(const struct akt_plugin *p, const char *key)
{
    for (int i = 0; i < p->n_params; i++)
        if (!strcmp(p->params[i].key, key))
            return i;
    return -1;
}

/* Defaults, then "key=value ..." (choices by name), as the host would set
 * them after validation. */
static inline struct akt_param_values params_from(const struct akt_plugin *p, const char *text)
{
    struct akt_param_values v = {.size = sizeof v, .n = p->n_params};
    for (int i = 0; i < p->n_params; i++) {
        v.v[i] = p->params[i].def;
        if (p->params[i].type == AKT_PT_STRING)
            snprintf(v.text[i], sizeof v.text[i], "%s", p->params[i].def_text);
    }
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    for (char *save, *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        *eq = 0;
        int i = param_index(p, tok);
        if (i < 0)
            fail_msg("%s has no parameter %s", p->name, tok);
        const struct akt_param_def *d = &p->params[i];
        if (d->type == AKT_PT_STRING) {
            snprintf(v.text[i], sizeof v.text[i], "%s", eq + 1);
            continue;
        }
        if (d->type == AKT_PT_BOOL) {
            v.v[i] = !strcmp(eq + 1, "true") || !strcmp(eq + 1, "yes") || !strcmp(eq + 1, "1");
            continue;
        }
        if (d->type != AKT_PT_CHOICE) {
            v.v[i] = strtod(eq + 1, NULL);
            continue;
        }
        /* index of the name in "a|b|c" */
        int k = 0, found = -1;
        size_t len = strlen(eq + 1);
        for (const char *c = d->choices; c; k++) {
            const char *bar = strchr(c, '|');
            size_t cl = bar ? (size_t)(bar - c) : strlen(c);
            if (cl == len && !strncmp(c, eq + 1, len))
                found = k;
            c = bar ? bar + 1 : NULL;
        }
        if (found < 0)
            fail_msg("%s: %s is not one of %s", tok, eq + 1, d->choices);
        v.v[i] = found;
    }
    return v;
}

/* ----------------------------------------------------------- fixtures --- */
static inline void h5_read(hid_t f, const char *name, hid_t mem_type, void *buf, hssize_t n)
{
    if (H5Lexists(f, name, H5P_DEFAULT) <= 0)
        fail_msg("fixture: no dataset %s", name);
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT);
    hid_t sp = H5Dget_space(ds);
    hssize_t have = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    if (have != n) {
        H5Dclose(ds);
        fail_msg("fixture %s: %lld elements, expected %lld", name, (long long)have, (long long)n);
    }
    herr_t rc = H5Dread(ds, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf);
    H5Dclose(ds);
    if (rc < 0)
        fail_msg("fixture %s: read failed", name);
}

static inline void h5_attr_str(hid_t g, const char *name, char *out, size_t n)
{
    hid_t a = H5Aopen(g, name, H5P_DEFAULT);
    if (a < 0)
        fail_msg("fixture: no attribute %s", name);
    hid_t ft = H5Aget_type(a);
    herr_t rc;
    if (H5Tis_variable_str(ft) > 0) {
        hid_t mt = H5Tcopy(H5T_C_S1);
        H5Tset_size(mt, H5T_VARIABLE);
        H5Tset_cset(mt, H5Tget_cset(ft));
        char *s = NULL;
        rc = H5Aread(a, mt, &s);
        snprintf(out, n, "%s", s ? s : "");
        H5free_memory(s);
        H5Tclose(mt);
    } else {
        size_t sz = H5Tget_size(ft);
        char *s = calloc(sz + 1, 1);
        rc = H5Aread(a, ft, s);
        snprintf(out, n, "%s", s);
        free(s);
    }
    H5Tclose(ft);
    H5Aclose(a);
    if (rc < 0)
        fail_msg("fixture: attribute %s: read failed", name);
}

#endif
