/* Plugin loading (dlopen) and parameter validation, host side.
 *
 * A file is all or nothing: every descriptor it enumerates is checked before
 * any is registered, and a refused file is closed again, so a failed load
 * leaves the registry as it was. Errors name the file (where) and the reason
 * (what); the descriptor, when there is one, is named in the reason. */
#include <ctype.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "akt/params.h"
#include "akt/registry.h"

#ifndef AKT_PLUGIN_DIRS
#define AKT_PLUGIN_DIRS ""
#endif

/* A file that enumerates more descriptors than this is broken (an
 * akt_plugin_get that never returns NULL), not generous. */
#define MAX_PER_FILE 64

static const char *kind_name(enum akt_plugin_kind k)
{
    return k == AKT_PLUGIN_GENERATOR ? "generator" : k == AKT_PLUGIN_LOSS ? "loss" : "plugin";
}

/* Ranges and defaults in messages: the shortest text of the double. */
static const char *fmt_num(double x, char *buf, size_t n)
{
    return akt_param_format_num(x, 0, buf, n);
}

/* A STRING value must fit AKT_PARAM_TEXT_MAX and be printable text (it is
 * stored in the config YAML and printed in tables). */
static int text_invalid(const char *s, char *why, size_t n)
{
    size_t len = strlen(s);
    if (len >= AKT_PARAM_TEXT_MAX) {
        snprintf(why, n, "longer than %d characters", AKT_PARAM_TEXT_MAX - 1);
        return -1;
    }
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            snprintf(why, n, "control character at position %zu", i + 1);
            return -1;
        }
    return 0;
}

/* ----------------------------------------------------- descriptor checks --
 * Names are what users type (YAML values, loss.key=...), so they are kept to
 * letters, digits, '_' and '-'. */
static int valid_ident(const char *s, int allow_dash)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && !(allow_dash && *s == '-'))
            return 0;
    return 1;
}

static int check_params(const struct akt_plugin *p, char *why, size_t n)
{
    if (p->n_params < 0 || p->n_params > AKT_PLUGIN_MAX_PARAMS) {
        snprintf(why, n, "n_params is %d, expected 0..%d", p->n_params, AKT_PLUGIN_MAX_PARAMS);
        return -1;
    }
    if (p->n_params > 0 && !p->params) {
        snprintf(why, n, "n_params is %d but params is NULL", p->n_params);
        return -1;
    }
    char a[40], b[40], c[40];
    for (int i = 0; i < p->n_params; i++) {
        const struct akt_param_def *d = &p->params[i];
        if (!valid_ident(d->key, 0)) {
            if (d->key)
                snprintf(why, n, "parameter %d: key '%.64s' is not a name (letters, digits, _)",
                         i, d->key);
            else
                snprintf(why, n, "parameter %d: key is NULL", i);
            return -1;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(p->params[j].key, d->key)) {
                snprintf(why, n, "parameter '%.64s' is declared twice", d->key);
                return -1;
            }
        switch (d->type) {
        case AKT_PT_FLOAT:
        case AKT_PT_INT:
            if (isnan(d->lo) || isnan(d->hi) || d->lo > d->hi) {
                snprintf(why, n, "parameter '%.64s': range [%s, %s] is empty", d->key,
                         fmt_num(d->lo, a, sizeof a), fmt_num(d->hi, b, sizeof b));
                return -1;
            }
            if (!isfinite(d->def) || d->def < d->lo || d->def > d->hi) {
                snprintf(why, n, "parameter '%.64s': default %s is outside its range [%s, %s]",
                         d->key, fmt_num(d->def, a, sizeof a), fmt_num(d->lo, b, sizeof b),
                         fmt_num(d->hi, c, sizeof c));
                return -1;
            }
            if (d->type == AKT_PT_INT && d->def != floor(d->def)) {
                snprintf(why, n, "parameter '%.64s': default %s of an int is not an integer",
                         d->key, fmt_num(d->def, a, sizeof a));
                return -1;
            }
            break;
        case AKT_PT_BOOL:
            if (d->def != 0 && d->def != 1) {
                snprintf(why, n, "parameter '%.64s': default %s of a bool is not 0 or 1", d->key,
                         fmt_num(d->def, a, sizeof a));
                return -1;
            }
            break;
        case AKT_PT_CHOICE: {
            if (!d->choices || !*d->choices) {
                snprintf(why, n, "parameter '%.64s': choice without a choices list", d->key);
                return -1;
            }
            /* Every name must be non-empty and distinct, or a value could
             * not be told from another. */
            int m = akt_param_choice_count(d->choices);
            for (int k = 0; k < m; k++) {
                char nk[64];
                akt_param_choice_name(d->choices, k, nk, sizeof nk);
                if (!*nk || akt_param_choice_find(d->choices, nk) != k) {
                    snprintf(why, n, "parameter '%.64s': choices '%.128s' has an empty or "
                             "repeated name", d->key, d->choices);
                    return -1;
                }
            }
            if (d->def != floor(d->def) || d->def < 0 || d->def >= m) {
                snprintf(why, n, "parameter '%.64s': default %s is not an index into its %d "
                         "choices '%.128s'", d->key, fmt_num(d->def, a, sizeof a), m,
                         d->choices);
                return -1;
            }
            break;
        }
        case AKT_PT_STRING: {
            if (!d->def_text) {
                snprintf(why, n, "parameter '%.64s': string without a default (def_text)", d->key);
                return -1;
            }
            char cw[200];
            if (text_invalid(d->def_text, cw, sizeof cw) ||
                (d->check && d->check(d->def_text, cw, sizeof cw))) {
                snprintf(why, n, "parameter '%.64s': default '%.64s' is refused: %s", d->key,
                         d->def_text, cw);
                return -1;
            }
            break;
        }
        case AKT_PT_LIST:
            snprintf(why, n, "parameter '%.64s': type list is for akt's run settings only",
                     d->key);
            return -1;
        default:
            snprintf(why, n, "parameter '%.64s': unknown type %d", d->key, (int)d->type);
            return -1;
        }
    }
    return 0;
}

/* Checks descriptor d and, when sound, fills *out with a host-owned copy:
 * the fields d's size covers, zero beyond, so the host never reads past what
 * the plugin declared; the parameter table is copied into params (at most
 * AKT_PLUGIN_MAX_PARAMS entries, each read with the plugin's param_size as
 * the stride) and out->params points there. why gets the reason on refusal. */
static int check_descriptor(const struct akt_plugin *d, struct akt_plugin *out,
                            struct akt_param_def *params, char *why, size_t n)
{
    if (d->abi != AKT_PLUGIN_ABI) {
        snprintf(why, n, "plugin ABI %u, host ABI %u (rebuild the plugin against this akt)",
                 (unsigned)d->abi, (unsigned)AKT_PLUGIN_ABI);
        return -1;
    }
    const size_t head = offsetof(struct akt_plugin, ops);
    if (d->size < head) {
        snprintf(why, n, "descriptor size %u is too small: the host needs at least %zu bytes",
                 (unsigned)d->size, head);
        return -1;
    }
    size_t need;
    if (d->kind == AKT_PLUGIN_GENERATOR)
        need = head + sizeof(struct akt_generator_ops);
    else if (d->kind == AKT_PLUGIN_LOSS)
        need = head + sizeof(struct akt_loss_ops);
    else {
        snprintf(why, n, "unknown kind %d (1 generator, 2 loss)", (int)d->kind);
        return -1;
    }
    if (d->size < need) {
        snprintf(why, n, "descriptor size %u is too small: a %s needs %zu bytes",
                 (unsigned)d->size, kind_name(d->kind), need);
        return -1;
    }
    memset(out, 0, sizeof *out);
    memcpy(out, d, d->size < sizeof *out ? d->size : sizeof *out);
    if (out->n_params < 0 || out->n_params > AKT_PLUGIN_MAX_PARAMS) {
        snprintf(why, n, "n_params is %d, expected 0..%d", out->n_params, AKT_PLUGIN_MAX_PARAMS);
        return -1;
    }
    if (out->n_params > 0) {
        if (!out->params) {
            snprintf(why, n, "n_params is %d but params is NULL", out->n_params);
            return -1;
        }
        if (out->param_size < sizeof(struct akt_param_def)) {
            snprintf(why, n, "param_size %u is smaller than this host's parameter entry (%zu "
                     "bytes): start the descriptor with AKT_PLUGIN_HEADER",
                     (unsigned)out->param_size, sizeof(struct akt_param_def));
            return -1;
        }
        for (int i = 0; i < out->n_params; i++)
            memcpy(&params[i], (const char *)out->params + (size_t)i * out->param_size,
                   sizeof params[i]);
        out->params = params;
    }

    const char *k = kind_name(out->kind);
    if (!out->name) {
        snprintf(why, n, "%s without a name", k);
        return -1;
    }
    if (!valid_ident(out->name, 1)) {
        snprintf(why, n, "%s name '%.64s' is not a name (letters, digits, _ and -)", k,
                 out->name);
        return -1;
    }
    if (!out->create || !out->destroy) {
        snprintf(why, n, "%s '%s' has no %s", k, out->name, !out->create ? "create" : "destroy");
        return -1;
    }
    if (!out->summary)
        out->summary = "";
    if (out->kind == AKT_PLUGIN_GENERATOR) {
        struct akt_generator_ops *g = &out->ops.gen;
        if (!g->sample) {
            snprintf(why, n, "generator '%s' has no ops.gen.sample", out->name);
            return -1;
        }
        /* update, state and loss may be NULL (nothing to train), but an
         * optimizer step without a loss to differentiate is a mistake */
        if (g->update && !g->loss) {
            snprintf(why, n, "generator '%s' has ops.gen.update but no ops.gen.loss", out->name);
            return -1;
        }
        if (!isfinite(g->lr) || g->lr < 0) {
            snprintf(why, n, "generator '%s': default lr %g is not a finite number >= 0",
                     out->name, (double)g->lr);
            return -1;
        }
        if ((int)g->logit_loss < 0 || (int)g->logit_loss >= AKT_LOGIT_COUNT) {
            snprintf(why, n, "generator '%s': logit_loss %d is not AKT_LOGIT_KD or "
                     "AKT_LOGIT_ENTROPY", out->name, (int)g->logit_loss);
            return -1;
        }
    } else if (!out->ops.loss.compute) {
        snprintf(why, n, "loss '%s' has no ops.loss.compute", out->name);
        return -1;
    }
    char pw[400];
    if (check_params(out, pw, sizeof pw)) {
        snprintf(why, n, "%s '%s': bad parameter table: %s", k, out->name, pw);
        return -1;
    }
    return 0;
}

/* -------------------------------------------------------------- registry -- */
void akt_registry_init(struct akt_registry *r)
{
    memset(r, 0, sizeof *r);
}

void akt_registry_free(struct akt_registry *r)
{
    for (int i = 0; i < r->n; i++)
        free((void *)r->entries[i].plugin);
    /* Close in reverse: a later file never depends on an earlier one, but
     * reverse order mirrors how they were opened. */
    for (int i = r->n_handles - 1; i >= 0; i--)
        dlclose(r->handles[i]);
    free(r->entries);
    free(r->handles);
    memset(r, 0, sizeof *r);
}

const struct akt_plugin *akt_registry_find(const struct akt_registry *r, enum akt_plugin_kind kind,
                                           const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (r->entries[i].plugin->kind == kind && !strcmp(r->entries[i].plugin->name, name))
            return r->entries[i].plugin;
    return NULL;
}

static const struct akt_registry_entry *find_entry(const struct akt_registry *r,
                                                   enum akt_plugin_kind kind, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (r->entries[i].plugin->kind == kind && !strcmp(r->entries[i].plugin->name, name))
            return &r->entries[i];
    return NULL;
}

/* 1 when the file at path (resolved) is already registered: loading a folder
 * twice (--plugin-dir a --plugin-dir a) is then harmless. */
static int already_loaded(const struct akt_registry *r, const char *path)
{
    char a[PATH_MAX], b[PATH_MAX];
    if (!realpath(path, a))
        return 0;
    for (int i = 0; i < r->n; i++)
        if (realpath(r->entries[i].path, b) && !strcmp(a, b))
            return 1;
    return 0;
}

int akt_registry_load_file(struct akt_registry *r, const char *path, struct akt_error *e)
{
    struct stat st;
    if (strlen(path) >= sizeof r->entries[0].path)
        return akt_error_set(e, AKT_EPLUGIN, "plugin", "path is longer than %zu bytes: %.200s...",
                             sizeof r->entries[0].path - 1, path);
    if (stat(path, &st))
        return akt_error_set(e, AKT_EPLUGIN, path, "cannot open plugin: %s", strerror(errno));
    if (!S_ISREG(st.st_mode))
        return akt_error_set(e, AKT_EPLUGIN, path, "cannot open plugin: not a regular file");
    if (already_loaded(r, path))
        return 0;

    /* dlopen searches the library path for a bare name; "./" keeps it to
     * the file the user named. */
    char open_path[sizeof r->entries[0].path + 2];
    snprintf(open_path, sizeof open_path, "%s%s", strchr(path, '/') ? "" : "./", path);
    dlerror();
    void *h = dlopen(open_path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *de = dlerror();
        /* glibc starts the text with the path, which where already names */
        size_t l = strlen(open_path);
        if (de && !strncmp(de, open_path, l) && !strncmp(de + l, ": ", 2))
            de += l + 2;
        return akt_error_set(e, AKT_EPLUGIN, path, "not a loadable shared object: %s",
                             de ? de : "unknown dlopen error");
    }

    struct akt_plugin found[MAX_PER_FILE];
    /* the checked parameter tables, until they are copied into the registry */
    struct akt_param_def (*found_params)[AKT_PLUGIN_MAX_PARAMS] =
        malloc(MAX_PER_FILE * sizeof *found_params);
    char why[600];
    int n = 0, rc = 0;
    if (!found_params) {
        rc = akt_error_set(e, AKT_ENOMEM, path, "out of memory loading the plugin");
        goto refuse;
    }
    akt_plugin_get_fn get;
    /* POSIX's way to turn dlsym's object pointer into a function pointer. */
    *(void **)&get = dlsym(h, AKT_PLUGIN_SYMBOL);
    if (!get) {
        rc = akt_error_set(e, AKT_EPLUGIN, path, "not an akt plugin: no symbol %s (is it "
                           "declared with AKT_PLUGIN_EXPORT?)", AKT_PLUGIN_SYMBOL);
        goto refuse;
    }
    for (;; n++) {
        const struct akt_plugin *d = get((uint32_t)n);
        if (!d)
            break;
        if (n == MAX_PER_FILE) {
            rc = akt_error_set(e, AKT_EPLUGIN, path, "%s enumerates more than %d descriptors "
                               "(does it return NULL after the last?)", AKT_PLUGIN_SYMBOL,
                               MAX_PER_FILE);
            goto refuse;
        }
        if (check_descriptor(d, &found[n], found_params[n], why, sizeof why)) {
            rc = akt_error_set(e, AKT_EPLUGIN, path, "descriptor %d refused: %s", n, why);
            goto refuse;
        }
        const struct akt_registry_entry *prev = find_entry(r, found[n].kind, found[n].name);
        int dup_here = -1;
        for (int j = 0; j < n; j++)
            if (found[j].kind == found[n].kind && !strcmp(found[j].name, found[n].name))
                dup_here = j;
        if (prev) {
            rc = akt_error_set(e, AKT_EPLUGIN, path, "duplicate %s name '%s': already provided "
                               "by %s", kind_name(found[n].kind), found[n].name, prev->path);
            goto refuse;
        }
        if (dup_here >= 0) {
            rc = akt_error_set(e, AKT_EPLUGIN, path, "duplicate %s name '%s': descriptors %d and "
                               "%d of this file", kind_name(found[n].kind), found[n].name,
                               dup_here, n);
            goto refuse;
        }
    }
    if (n == 0) {
        rc = akt_error_set(e, AKT_EPLUGIN, path, "%s(0) returned NULL: the file provides no "
                           "plugin", AKT_PLUGIN_SYMBOL);
        goto refuse;
    }

    /* Commit: nothing below can fail halfway except allocation, which
     * leaves the registry as it was. */
    if (r->n + n > r->cap) {
        int cap = r->cap ? r->cap : 16;
        while (cap < r->n + n)
            cap *= 2;
        struct akt_registry_entry *ne = realloc(r->entries, (size_t)cap * sizeof *ne);
        if (!ne) {
            rc = akt_error_set(e, AKT_ENOMEM, path, "out of memory registering plugins");
            goto refuse;
        }
        r->entries = ne;
        r->cap = cap;
    }
    void **nh = realloc(r->handles, (size_t)(r->n_handles + 1) * sizeof *nh);
    if (!nh) {
        rc = akt_error_set(e, AKT_ENOMEM, path, "out of memory registering plugins");
        goto refuse;
    }
    r->handles = nh;
    /* one allocation per descriptor: the copy, then its parameter table */
    struct akt_plugin *copies[MAX_PER_FILE];
    for (int i = 0; i < n; i++) {
        size_t np = (size_t)found[i].n_params;
        copies[i] = malloc(sizeof *copies[i] + np * sizeof(struct akt_param_def));
        if (!copies[i]) {
            while (i-- > 0)
                free(copies[i]);
            rc = akt_error_set(e, AKT_ENOMEM, path, "out of memory registering plugins");
            goto refuse;
        }
        *copies[i] = found[i];
        struct akt_param_def *tab = (struct akt_param_def *)(copies[i] + 1);
        if (np)
            memcpy(tab, found[i].params, np * sizeof *tab);
        copies[i]->params = np ? tab : NULL;
    }
    for (int i = 0; i < n; i++) {
        struct akt_registry_entry *en = &r->entries[r->n++];
        en->plugin = copies[i];
        snprintf(en->path, sizeof en->path, "%s", path);
    }
    r->handles[r->n_handles++] = h;
    free(found_params);
    return 0;

refuse:
    free(found_params);
    dlclose(h);
    return rc;
}

static int is_so(const struct dirent *d)
{
    size_t l = strlen(d->d_name);
    return d->d_name[0] != '.' && l > 3 && !strcmp(d->d_name + l - 3, ".so");
}

/* Byte order, not the locale's collation, so every machine loads the same
 * order. */
static int by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

/* Loads dir; with skip (a search path), files whose name an earlier folder
 * already provided are skipped, as PATH does: the build tree's plugins then
 * shadow installed copies instead of clashing with them. */
struct seen {
    char **names;
    int n;
};

static int load_dir(struct akt_registry *r, const char *dir, struct seen *skip,
                    struct akt_error *e)
{
    struct dirent **list = NULL;
    int n = scandir(dir, &list, is_so, by_name);
    if (n < 0)
        return akt_error_set(e, AKT_EIO, dir, "cannot read plugin folder: %s", strerror(errno));
    int rc = 0;
    for (int i = 0; i < n && !rc; i++) {
        const char *name = list[i]->d_name;
        int shadowed = 0;
        for (int j = 0; skip && j < skip->n; j++)
            shadowed |= !strcmp(skip->names[j], name);
        if (shadowed)
            continue;
        char path[1024];
        int len = snprintf(path, sizeof path, "%s%s%s", dir,
                           dir[0] && dir[strlen(dir) - 1] == '/' ? "" : "/", name);
        if (len < 0 || (size_t)len >= sizeof path) {
            rc = akt_error_set(e, AKT_EPLUGIN, dir, "path of %s is too long", name);
            break;
        }
        struct stat st;
        if (stat(path, &st) || !S_ISREG(st.st_mode))
            continue; /* a folder or dangling link named *.so is not a plugin */
        rc = akt_registry_load_file(r, path, e);
        if (!rc && skip) {
            char **nn = realloc(skip->names, (size_t)(skip->n + 1) * sizeof *nn);
            char *copy = strdup(name);
            if (nn)
                skip->names = nn;
            if (!nn || !copy) {
                free(copy);
                rc = akt_error_set(e, AKT_ENOMEM, dir, "out of memory");
                break;
            }
            skip->names[skip->n++] = copy;
        }
    }
    for (int i = 0; i < n; i++)
        free(list[i]);
    free(list);
    return rc;
}

int akt_registry_load_dir(struct akt_registry *r, const char *dir, struct akt_error *e)
{
    return load_dir(r, dir, NULL, e);
}

/* The folders of a colon-separated list; missing ones are skipped only when
 * optional (the install folder before `meson install`), else an error: a
 * folder the user named must exist. */
static int load_list(struct akt_registry *r, const char *list, int optional, const char *what,
                     struct seen *seen, struct akt_error *e)
{
    char *copy = strdup(list);
    if (!copy)
        return akt_error_set(e, AKT_ENOMEM, what, "out of memory");
    int rc = 0;
    char *save = NULL;
    for (char *dir = strtok_r(copy, ":", &save); dir && !rc; dir = strtok_r(NULL, ":", &save)) {
        struct stat st;
        if (stat(dir, &st) && errno == ENOENT) {
            if (optional)
                continue;
            rc = akt_error_set(e, AKT_EIO, dir, "plugin folder (from %s) does not exist", what);
            break;
        }
        rc = load_dir(r, dir, seen, e);
    }
    free(copy);
    return rc;
}

int akt_registry_load_search_path(struct akt_registry *r, const char *const *dirs, int n_dirs,
                                  const char *builtin, struct akt_error *e)
{
    struct seen seen = {0};
    int rc = 0;
    for (int i = 0; i < n_dirs && !rc; i++)
        rc = load_list(r, dirs[i], 0, "--plugin-dir", &seen, e);
    const char *env = getenv("AKT_PLUGIN_PATH");
    if (!rc && env && *env)
        rc = load_list(r, env, 0, "AKT_PLUGIN_PATH", &seen, e);
    if (!rc)
        rc = load_list(r, builtin ? builtin : AKT_PLUGIN_DIRS, 1, "the built-in plugin folders",
                       &seen, e);
    for (int i = 0; i < seen.n; i++)
        free(seen.names[i]);
    free(seen.names);
    return rc;
}

int akt_registry_load_default(struct akt_registry *r, struct akt_error *e)
{
    return akt_registry_load_search_path(r, NULL, 0, NULL, e);
}

/* ------------------------------------------------------------ parameters -- */
void akt_params_defaults(const struct akt_plugin *p, struct akt_param_values *v)
{
    memset(v, 0, sizeof *v);
    v->size = sizeof *v;
    v->n = p->n_params;
    for (int i = 0; i < p->n_params; i++) {
        const struct akt_param_def *d = &p->params[i];
        if (d->type == AKT_PT_STRING)
            snprintf(v->text[i], sizeof v->text[i], "%s", d->def_text);
        else
            v->v[i] = d->def;
    }
}

int akt_params_find(const struct akt_plugin *p, const char *key)
{
    for (int i = 0; i < p->n_params; i++)
        if (!strcmp(p->params[i].key, key))
            return i;
    return -1;
}

int akt_params_set(const struct akt_plugin *p, struct akt_param_values *v, const char *key,
                   const char *value, const char *where, struct akt_error *e)
{
    char wbuf[256];
    if (!value)
        value = "";
    if (!where) {
        snprintf(wbuf, sizeof wbuf, "%s.%s", kind_name(p->kind), key);
        where = wbuf;
    }
    int i = akt_params_find(p, key);
    if (i < 0) {
        char keys[400] = "";
        size_t used = 0;
        for (int k = 0; k < p->n_params && used < sizeof keys; k++)
            used += (size_t)snprintf(keys + used, sizeof keys - used, "%s%s", k ? ", " : "",
                                     p->params[k].key);
        if (p->n_params == 0)
            return akt_error_set(e, AKT_EINVAL, where, "unknown parameter '%s': %s '%s' takes "
                                 "no parameters", key, kind_name(p->kind), p->name);
        return akt_error_set(e, AKT_EINVAL, where, "unknown parameter '%s' of %s '%s' (valid: "
                             "%s)", key, kind_name(p->kind), p->name, keys);
    }
    const struct akt_param_def *d = &p->params[i];
    struct akt_param_parsed x;
    char why[256];
    if (d->type == AKT_PT_STRING && text_invalid(value, why, sizeof why))
        return akt_error_set(e, AKT_EINVAL, where, "'%.100s': %s", value, why);
    int rc = akt_param_parse(d, value, 0, &x, where, e);
    if (rc)
        return rc;
    if (d->type == AKT_PT_STRING)
        snprintf(v->text[i], sizeof v->text[i], "%s", value);
    v->v[i] = x.num;
    v->size = sizeof *v;
    if (v->n < p->n_params)
        v->n = p->n_params;
    return 0;
}

const char *akt_params_format(const struct akt_plugin *p, const struct akt_param_values *v, int i,
                              char *buf, size_t n)
{
    AKT_ASSERT(i >= 0 && i < p->n_params);
    const struct akt_param_def *d = &p->params[i];
    double x = v->v[i];
    switch (d->type) {
    case AKT_PT_FLOAT: return fmt_num(x, buf, n);
    case AKT_PT_INT: snprintf(buf, n, "%.0f", x); return buf;
    case AKT_PT_BOOL: snprintf(buf, n, "%s", x != 0 ? "true" : "false"); return buf;
    case AKT_PT_CHOICE: return akt_param_choice_name(d->choices, (int)x, buf, n);
    case AKT_PT_STRING: snprintf(buf, n, "%s", v->text[i]); return buf;
    case AKT_PT_LIST: break; /* refused in plugin tables */
    }
    snprintf(buf, n, "?");
    return buf;
}
