/* YAML experiment files (schema: experiments/README.md).
 *
 * Three stages, each finished before the next starts:
 *   1. parse: libyaml's document API gives a node tree with marks; we check
 *      the schema (top-level keys, types, duplicates) and keep every value
 *      as text with its "FILE:LINE:COL";
 *   2. expand: the cross product of the matrix axes (last axis fastest),
 *      minus the exclude entries, then the include entries;
 *   3. validate: every cell's settings, then akt run's --set ones, go
 *      through akt_run_config_set (names first, then the rest in order)
 *      and akt_run_config_check.
 * Nothing is run here; a caller gets either every run or one error. */
#include "akt/experiment.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <yaml.h>

#define MAX_RUNS 10000
/* Input limits: an experiment is a few kilobytes and four levels deep; these
 * keep a hostile file from taking minutes or gigabytes in the parser. */
#define MAX_BYTES (4 << 20)
#define MAX_DEPTH 32
#define ID_MAX 100 /* generated ids longer than this end in a hash */

/* A key: value pair as written. text is the value (a list joined with ","),
 * value what is passed on (teacher/data paths resolved). */
struct xval {
    const char *key, *text, *value;
    const char *where;  /* "FILE:L:C" of the value */
    const char *kwhere; /* "FILE:L:C" of the key */
};

struct xmap {
    int n;
    struct xval *kv;
    const char *where;
};

struct xaxis {
    const char *key, *kwhere;
    int n;
    struct xval *v;
};

struct parse {
    const char *path, *data_root;
    char dir[1024]; /* folder of the YAML file, "" for the current one */
    yaml_document_t *doc;
    struct akt_arena *arena;
    struct akt_error *e;
    struct xmap defaults; /* top-level teacher/data first, then defaults: */
    int n_axes;
    struct xaxis *axes;
    const char *matrix_where;
    int n_excl, n_incl;
    struct xmap *excl, *incl;
    int n_sets; /* akt run --set: after the file's settings, in every cell */
    const struct akt_experiment_setting *sets;
};

static const char *NAME_KEYS[] = {"generator", "loss"};

/* ------------------------------------------------------------- helpers --- */
static char *ar_strndup(struct akt_arena *a, const char *s, size_t n)
{
    char *d = akt_arena_alloc(a, n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

static char *ar_printf(struct akt_arena *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static char *ar_printf(struct akt_arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *d = akt_arena_alloc(a, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(d, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return d;
}

static const char *mark_where(struct parse *p, const yaml_node_t *n)
{
    return ar_printf(p->arena, "%s:%lu:%lu", p->path, (unsigned long)n->start_mark.line + 1,
                     (unsigned long)n->start_mark.column + 1);
}

/* Error at a node: where = "FILE:L:C[ KEY]". */
static int err_at(struct parse *p, const char *where, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int err_at(struct parse *p, const char *where, const char *key, const char *fmt, ...)
{
    char w[512], msg[512];
    snprintf(w, sizeof w, "%s%s%s", where, key ? " " : "", key ? key : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return akt_error_set(p->e, AKT_EINVAL, w, "%s", msg);
}

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE: return n->data.scalar.length ? "a scalar" : "nothing";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a map";
    default: return "nothing";
    }
}

static yaml_node_t *node(struct parse *p, int i)
{
    return yaml_document_get_node(p->doc, i);
}

/* Scalar text; NULL (error set) for anything else. */
static const char *scalar(struct parse *p, const yaml_node_t *n, const char *key, const char *what)
{
    if (n->type != YAML_SCALAR_NODE) {
        err_at(p, mark_where(p, n), key, "%s must be a single value, got %s", what, node_kind(n));
        return NULL;
    }
    const char *s = (const char *)n->data.scalar.value;
    if (strlen(s) != n->data.scalar.length) {
        err_at(p, mark_where(p, n), key, "%s contains a NUL character", what);
        return NULL;
    }
    return ar_strndup(p->arena, s, n->data.scalar.length);
}

/* A setting's value: a scalar, or a list of scalars joined with ","
 * (milestones: [100, 200] -> "100,200"; [] -> ""). */
static const char *value_text(struct parse *p, const yaml_node_t *n, const char *key)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return scalar(p, n, key, "a value");
    size_t len = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *c = node(p, *it);
        if (c->type != YAML_SCALAR_NODE) {
            err_at(p, mark_where(p, c), key,
                   "a list value may hold single values only, got %s", node_kind(c));
            return NULL;
        }
        len += c->data.scalar.length + 1;
    }
    char *s = akt_arena_alloc(p->arena, len + 1), *o = s;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        const char *t = scalar(p, node(p, *it), key, "a list item");
        if (!t)
            return NULL;
        o += sprintf(o, "%s%s", o == s ? "" : ",", t);
    }
    return s;
}

static int is_name_key(const char *k)
{
    return !strcmp(k, NAME_KEYS[0]) || !strcmp(k, NAME_KEYS[1]);
}

static int is_path_key(const char *k)
{
    return !strcmp(k, "teacher") || !strcmp(k, "data");
}

/* teacher/data: relative paths resolve against data_root, else the YAML
 * file's folder; the file must be readable. */
static int resolve_path(struct parse *p, struct xval *v)
{
    v->value = v->text;
    if (!*v->text)
        return err_at(p, v->where, v->key, "empty path");
    if (v->text[0] != '/') {
        const char *root = p->data_root && *p->data_root ? p->data_root : p->dir;
        if (*root)
            v->value = ar_printf(p->arena, "%s/%s", root, v->text);
    }
    if (access(v->value, R_OK))
        return err_at(p, v->where, v->key, "cannot read '%s': %s", v->value, strerror(errno));
    return 0;
}

/* One key: value pair of a map into v. kind names the map in messages. */
static int read_pair(struct parse *p, const yaml_node_pair_t *pr, struct xval *v, const char *kind)
{
    yaml_node_t *k = node(p, pr->key), *val = node(p, pr->value);
    v->kwhere = mark_where(p, k);
    if (!(v->key = scalar(p, k, NULL, "a key")))
        return AKT_EINVAL;
    if (!*v->key)
        return err_at(p, v->kwhere, NULL, "empty key in %s", kind);
    v->where = mark_where(p, val);
    if (!strcmp(v->key, "out"))
        return err_at(p, v->kwhere, v->key,
                      "the results file is chosen by 'akt run --out', not by the experiment");
    if (!(v->text = value_text(p, val, v->key)))
        return AKT_EINVAL;
    v->value = v->text;
    return is_path_key(v->key) ? resolve_path(p, v) : 0;
}

static int check_dup(struct parse *p, const struct xval *kv, int n)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(kv[i].key, kv[n].key))
            return err_at(p, kv[n].kwhere, kv[n].key, "duplicate key (first at %s)",
                          kv[i].kwhere);
    return 0;
}

static int id_ok(const char *s)
{
    if (!*s || strlen(s) >= 128)
        return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-'))
            return 0;
    return 1;
}

/* A map of settings (defaults, an include or exclude entry), appended to m. */
static int read_settings(struct parse *p, const yaml_node_t *n, struct xmap *m, const char *kind,
                         int allow_id)
{
    if (n->type != YAML_MAPPING_NODE)
        return err_at(p, mark_where(p, n), kind, "must be a map of KEY: VALUE, got %s",
                      node_kind(n));
    int extra = (int)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    struct xval *kv = akt_arena_alloc(p->arena, (size_t)(m->n + extra + 1) * sizeof *kv);
    if (m->n)
        memcpy(kv, m->kv, (size_t)m->n * sizeof *kv);
    m->kv = kv;
    m->where = m->where ? m->where : mark_where(p, n);
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
         pr++) {
        int rc = read_pair(p, pr, &kv[m->n], kind);
        if (!rc)
            rc = check_dup(p, kv, m->n);
        if (!rc && !strcmp(kv[m->n].key, "id")) {
            if (!allow_id)
                rc = err_at(p, kv[m->n].kwhere, "id",
                            "run ids come from the matrix; only include entries may set one");
            else if (!id_ok(kv[m->n].text))
                rc = err_at(p, kv[m->n].where, "id",
                            "'%s' is not a run id (1..127 of A-Z a-z 0-9 _ . -)", kv[m->n].text);
        }
        if (rc)
            return rc;
        m->n++;
    }
    return 0;
}

static int read_matrix(struct parse *p, const yaml_node_t *n)
{
    p->matrix_where = mark_where(p, n);
    if (n->type != YAML_MAPPING_NODE)
        return err_at(p, p->matrix_where, "matrix", "must be a map of KEY: [VALUE, ...], got %s",
                      node_kind(n));
    int na = (int)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    p->axes = akt_arena_alloc(p->arena, (size_t)(na + 1) * sizeof *p->axes);
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top;
         pr++) {
        struct xaxis *ax = &p->axes[p->n_axes];
        yaml_node_t *k = node(p, pr->key), *list = node(p, pr->value);
        ax->kwhere = mark_where(p, k);
        if (!(ax->key = scalar(p, k, NULL, "a key")))
            return AKT_EINVAL;
        for (int i = 0; i < p->n_axes; i++)
            if (!strcmp(p->axes[i].key, ax->key))
                return err_at(p, ax->kwhere, ax->key, "duplicate matrix axis (first at %s)",
                              p->axes[i].kwhere);
        if (!strcmp(ax->key, "out"))
            return err_at(p, ax->kwhere, ax->key,
                          "the results file is chosen by 'akt run --out', not by the experiment");
        if (!strcmp(ax->key, "id"))
            return err_at(p, ax->kwhere, ax->key,
                          "run ids come from the matrix; only include entries may set one");
        if (list->type != YAML_SEQUENCE_NODE)
            return err_at(p, mark_where(p, list), ax->key,
                          "a matrix axis must be a list of values, got %s", node_kind(list));
        ax->n = (int)(list->data.sequence.items.top - list->data.sequence.items.start);
        if (ax->n == 0)
            return err_at(p, mark_where(p, list), ax->key, "empty matrix axis");
        ax->v = akt_arena_alloc(p->arena, (size_t)ax->n * sizeof *ax->v);
        for (int i = 0; i < ax->n; i++) {
            yaml_node_t *it = node(p, list->data.sequence.items.start[i]);
            struct xval *v = &ax->v[i];
            v->key = ax->key;
            v->kwhere = ax->kwhere;
            v->where = mark_where(p, it);
            if (!(v->text = value_text(p, it, ax->key)))
                return AKT_EINVAL;
            v->value = v->text;
            for (int j = 0; j < i; j++)
                if (!strcmp(ax->v[j].text, v->text))
                    return err_at(p, v->where, ax->key, "value '%s' appears twice in this axis",
                                  v->text);
            if (is_path_key(ax->key) && resolve_path(p, v))
                return AKT_EINVAL;
        }
        p->n_axes++;
    }
    return 0;
}

/* A list of maps (exclude, include). */
static int read_entries(struct parse *p, const yaml_node_t *n, const char *kind,
                        struct xmap **out, int *n_out)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return err_at(p, mark_where(p, n), kind, "must be a list of maps, got %s", node_kind(n));
    int k = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (k > MAX_RUNS)
        return err_at(p, mark_where(p, n), kind, "%d entries; at most %d runs", k, MAX_RUNS);
    *out = akt_arena_alloc(p->arena, (size_t)(k + 1) * sizeof **out);
    for (int i = 0; i < k; i++) {
        yaml_node_t *it = node(p, n->data.sequence.items.start[i]);
        if (it->type != YAML_MAPPING_NODE)
            return err_at(p, mark_where(p, it), kind, "entry %d must be a map, got %s", i + 1,
                          node_kind(it));
        int rc = read_settings(p, it, &(*out)[i], kind, !strcmp(kind, "include"));
        if (rc)
            return rc;
        if (!strcmp(kind, "exclude") && (*out)[i].n == 0)
            return err_at(p, (*out)[i].where, kind, "empty exclude entry would drop every run");
        *n_out = i + 1;
    }
    return 0;
}

static const char *TOP_KEYS =
    "name, description, teacher, data, defaults, matrix, exclude, include";

static int read_top(struct parse *p, struct akt_experiment *x)
{
    yaml_node_t *root = yaml_document_get_root_node(p->doc);
    if (root->type != YAML_MAPPING_NODE)
        return err_at(p, mark_where(p, root), NULL,
                      "the top level must be a map with keys %s; got %s", TOP_KEYS,
                      node_kind(root));
    const char *seen[16];
    const char *seen_where[16];
    int n_seen = 0, rc = 0;
    struct xmap top = {0}; /* teacher, data */
    top.kv = akt_arena_alloc(p->arena, 2 * sizeof *top.kv);
    yaml_node_t *defaults = NULL;
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start;
         pr < root->data.mapping.pairs.top && !rc; pr++) {
        yaml_node_t *kn = node(p, pr->key), *vn = node(p, pr->value);
        const char *kw = mark_where(p, kn);
        const char *k = scalar(p, kn, NULL, "a key");
        if (!k)
            return AKT_EINVAL;
        for (int i = 0; i < n_seen; i++)
            if (!strcmp(seen[i], k))
                return err_at(p, kw, k, "duplicate key (first at %s)", seen_where[i]);
        if (n_seen < 16) {
            seen[n_seen] = k;
            seen_where[n_seen++] = kw;
        }
        if (!strcmp(k, "name")) {
            const char *s = scalar(p, vn, k, "name");
            if (!s)
                return AKT_EINVAL;
            if (!id_ok(s))
                return err_at(p, mark_where(p, vn), k,
                              "'%s' is not a name (1..127 of A-Z a-z 0-9 _ . -)", s);
            snprintf(x->name, sizeof x->name, "%s", s);
        } else if (!strcmp(k, "description")) {
            if (!scalar(p, vn, k, "description"))
                return AKT_EINVAL;
        } else if (is_path_key(k)) {
            struct xval *v = &top.kv[top.n];
            v->key = k;
            v->kwhere = kw;
            v->where = mark_where(p, vn);
            if (!(v->text = scalar(p, vn, k, "a path")))
                return AKT_EINVAL;
            rc = resolve_path(p, v);
            top.n++;
        } else if (!strcmp(k, "defaults")) {
            defaults = vn;
        } else if (!strcmp(k, "matrix")) {
            rc = read_matrix(p, vn);
        } else if (!strcmp(k, "exclude")) {
            rc = read_entries(p, vn, "exclude", &p->excl, &p->n_excl);
        } else if (!strcmp(k, "include")) {
            rc = read_entries(p, vn, "include", &p->incl, &p->n_incl);
        } else {
            return err_at(p, kw, k, "unknown top-level key (expected %s)", TOP_KEYS);
        }
    }
    if (rc)
        return rc;
    /* top-level teacher/data come first; a repeat in defaults is a duplicate */
    p->defaults = top;
    if (defaults && (rc = read_settings(p, defaults, &p->defaults, "defaults", 0)))
        return rc;
    /* exclude entries name axes and their values */
    for (int i = 0; i < p->n_excl; i++)
        for (int j = 0; j < p->excl[i].n; j++) {
            const struct xval *v = &p->excl[i].kv[j];
            const struct xaxis *ax = NULL;
            for (int a = 0; a < p->n_axes && !ax; a++)
                if (!strcmp(p->axes[a].key, v->key))
                    ax = &p->axes[a];
            if (!ax)
                return err_at(p, v->kwhere, v->key, "exclude names a key that is not a matrix "
                                                    "axis");
            int found = 0;
            for (int a = 0; a < ax->n && !found; a++)
                found = !strcmp(ax->v[a].text, v->text);
            if (!found)
                return err_at(p, v->where, v->key, "exclude value '%s' is not a value of this "
                                                   "axis", v->text);
        }
    if (p->n_axes == 0 && p->n_incl == 0)
        return err_at(p, p->matrix_where ? p->matrix_where : mark_where(p, root),
                      p->matrix_where ? "matrix" : NULL,
                      "nothing to run: the matrix is empty and there is no include");
    return 0;
}

/* ---------------------------------------------------------- expansion --- */
struct cell {
    int *idx;                 /* matrix cell: value index per axis */
    const struct xmap *inc;   /* include entry */
    char id[128];
    int explicit_id;
};

static int excluded(const struct parse *p, const int *idx)
{
    for (int i = 0; i < p->n_excl; i++) {
        int all = 1;
        for (int j = 0; j < p->excl[i].n && all; j++) {
            const struct xval *v = &p->excl[i].kv[j];
            for (int a = 0; a < p->n_axes; a++)
                if (!strcmp(p->axes[a].key, v->key))
                    all = !strcmp(p->axes[a].v[idx[a]].text, v->text);
        }
        if (all)
            return 1;
    }
    return 0;
}

/* The cell's own settings (axis values or the include entry), in order. */
static int cell_settings(const struct parse *p, const struct cell *c, const struct xval **out)
{
    int n = 0;
    if (c->inc) {
        for (int i = 0; i < c->inc->n; i++)
            out[n++] = &c->inc->kv[i];
    } else {
        for (int a = 0; a < p->n_axes; a++)
            out[n++] = &p->axes[a].v[c->idx[a]];
    }
    return n;
}

/* ----------------------------------------------------------- run ids --- */
static void sanitize(char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-'))
            *s = '_';
}

static uint32_t fnv1a(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* The settings a cell's id is built from: the effective generator, loss
 * and widths (defaults, then the cell's own settings), then the cell's other
 * axis values, then its seed. */
struct idsrc {
    const char *gen, *loss, *wbits, *abits, *seed;
    char wdef[16], adef[16]; /* the run defaults' widths */
    int n;
    const struct xval *other[64];
};

static void id_take(struct idsrc *s, const struct xval *v, int own)
{
    const char *k = v->key;
    if (!strcmp(k, "generator")) s->gen = v->text;
    else if (!strcmp(k, "loss")) s->loss = v->text;
    else if (!strcmp(k, "bits")) s->wbits = s->abits = v->text;
    else if (!strcmp(k, "wbits")) s->wbits = v->text;
    else if (!strcmp(k, "abits")) s->abits = v->text;
    else if (!own) return;
    else if (!strcmp(k, "seed")) s->seed = v->text;
    else if (strcmp(k, "id") && s->n < 64) s->other[s->n++] = v;
}

/* Keys with a fixed place in an id. */
static int id_key(const char *k)
{
    return is_name_key(k) || !strcmp(k, "bits") || !strcmp(k, "wbits") || !strcmp(k, "abits") ||
           !strcmp(k, "seed");
}

static void cell_idsrc(const struct parse *p, const struct cell *c, struct idsrc *s)
{
    struct akt_run_config d;
    akt_run_config_defaults(&d);
    memset(s, 0, sizeof *s);
    snprintf(s->wdef, sizeof s->wdef, "%d", d.wbits);
    snprintf(s->adef, sizeof s->adef, "%d", d.abits);
    s->wbits = s->wdef;
    s->abits = s->adef;
    for (int i = 0; i < p->defaults.n; i++)
        id_take(s, &p->defaults.kv[i], 0);
    if (!c->inc) {
        for (int a = 0; a < p->n_axes; a++)
            id_take(s, &p->axes[a].v[c->idx[a]], 1);
        return;
    }
    /* include: its names, widths and seed, then its axis keys in axis order
     * (so its id reads like a matrix cell's); its other keys stay out */
    for (int i = 0; i < c->inc->n; i++)
        if (id_key(c->inc->kv[i].key))
            id_take(s, &c->inc->kv[i], 1);
    for (int a = 0; a < p->n_axes; a++)
        for (int i = 0; i < c->inc->n; i++)
            if (!id_key(p->axes[a].key) && !strcmp(c->inc->kv[i].key, p->axes[a].key))
                id_take(s, &c->inc->kv[i], 1);
}

static void add_part(char *id, size_t n, const char *part)
{
    size_t l = strlen(id), k = strlen(part);
    if (l && l + 1 < n)
        id[l++] = '-';
    if (k > n - 1 - l)
        k = n - 1 - l; /* make_id hashes ids this long */
    memcpy(id + l, part, k);
    id[l + k] = 0;
}

/* GEN-LOSS-wWaA[-OTHER...][-sSEED]; OTHER is KEYVALUE (the last component
 * of a dotted key, "_" before a value that starts with a letter) or, for
 * teacher/data, the file name without extension. */
static void make_id(const struct idsrc *s, char *id, size_t n)
{
    char part[512];
    id[0] = 0;
    if (s->gen) add_part(id, n, s->gen);
    if (s->loss) add_part(id, n, s->loss);
    snprintf(part, sizeof part, "w%sa%s", s->wbits, s->abits);
    add_part(id, n, part);
    for (int i = 0; i < s->n; i++) {
        const char *k = s->other[i]->key, *t = s->other[i]->text;
        if (is_path_key(k)) {
            const char *base = strrchr(t, '/');
            base = base ? base + 1 : t;
            const char *dot = strrchr(base, '.');
            int len = (int)(dot && dot > base ? dot - base : (long)strlen(base));
            snprintf(part, sizeof part, "%.*s", len, base);
        } else {
            const char *dot = strrchr(k, '.');
            const char *shortk = dot ? dot + 1 : k;
            int alpha = (*t >= 'a' && *t <= 'z') || (*t >= 'A' && *t <= 'Z');
            snprintf(part, sizeof part, "%s%s%s", shortk, alpha ? "_" : "", t);
        }
        add_part(id, n, part);
    }
    if (s->seed) {
        snprintf(part, sizeof part, "s%s", s->seed);
        add_part(id, n, part);
    }
    sanitize(id);
    if (strlen(id) > ID_MAX) {
        uint32_t h = fnv1a(id);
        snprintf(id + ID_MAX - 9, n - (ID_MAX - 9), "-%08x", (unsigned)h);
    }
}

static int id_taken(const struct cell *cells, int n, const char *id, int self)
{
    for (int i = 0; i < n; i++)
        if (i != self && cells[i].id[0] && !strcmp(cells[i].id, id))
            return 1;
    return 0;
}

static int assign_ids(struct parse *p, struct cell *cells, int n)
{
    for (int i = 0; i < n; i++) { /* explicit ids first: they are never renamed */
        const struct xmap *m = cells[i].inc;
        for (int j = 0; m && j < m->n; j++)
            if (!strcmp(m->kv[j].key, "id")) {
                if (id_taken(cells, n, m->kv[j].text, i))
                    return err_at(p, m->kv[j].where, "id", "run id '%s' is used twice",
                                  m->kv[j].text);
                snprintf(cells[i].id, sizeof cells[i].id, "%s", m->kv[j].text);
                cells[i].explicit_id = 1;
            }
    }
    for (int i = 0; i < n; i++) {
        if (cells[i].explicit_id)
            continue;
        struct idsrc s;
        char base[128], id[128];
        cell_idsrc(p, &cells[i], &s);
        make_id(&s, base, sizeof base);
        snprintf(id, sizeof id, "%s", base);
        for (int k = 2; id_taken(cells, n, id, i); k++) {
            char suf[16];
            int sl = snprintf(suf, sizeof suf, "-%d", k);
            snprintf(id, sizeof id, "%.*s%s", (int)(sizeof id - 1 - (size_t)sl), base, suf);
        }
        snprintf(cells[i].id, sizeof cells[i].id, "%s", id);
    }
    return 0;
}

/* Appends " (run ID)" to the error text: a default may fail in one cell only. */
static int in_run(struct akt_error *e, const char *id)
{
    if (e) {
        size_t l = strlen(e->what);
        snprintf(e->what + l, sizeof e->what - l, " (run '%s')", id);
        return e->code;
    }
    return AKT_EINVAL;
}

static int validate_cell(struct parse *p, const struct cell *c, const struct akt_registry *reg,
                         struct akt_experiment_run *run)
{
    int nc = c->inc ? c->inc->n : p->n_axes;
    const struct xval **own = akt_arena_alloc(p->arena, (size_t)(nc + 1) * sizeof *own);
    cell_settings(p, c, own);
    int total = p->defaults.n + nc + p->n_sets;
    struct akt_experiment_setting *set = akt_arena_alloc(p->arena, (size_t)(total + 1) * sizeof *set);
    int n = 0;
    /* names first (defaults, then the cell's), then every other setting */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < p->defaults.n; i++) {
            const struct xval *v = &p->defaults.kv[i];
            if (is_name_key(v->key) == !pass)
                set[n++] = (struct akt_experiment_setting){v->key, v->value, v->where};
        }
        for (int i = 0; i < nc; i++) {
            const struct xval *v = own[i];
            if (is_name_key(v->key) == !pass && strcmp(v->key, "id"))
                set[n++] = (struct akt_experiment_setting){v->key, v->value, v->where};
        }
        for (int i = 0; i < p->n_sets; i++)
            if (is_name_key(p->sets[i].key) == !pass)
                set[n++] = p->sets[i];
    }
    struct akt_run_config *cfg = &run->config;
    akt_run_config_defaults(cfg);
    for (int i = 0; i < n; i++)
        if (akt_run_config_set(cfg, reg, set[i].key, set[i].value, set[i].where, p->e))
            return in_run(p->e, c->id);
    snprintf(cfg->id, sizeof cfg->id, "%s", c->id);
    const char *where = c->inc ? c->inc->where : p->matrix_where;
    for (int k = 0; k < 2; k++)
        if (!(k ? cfg->loss : cfg->generator)[0])
            return akt_error_set(p->e, AKT_EINVAL, p->path,
                                 "run '%s' (%s) names no %s plugin: set %s in defaults, the "
                                 "matrix or an include entry",
                                 c->id, where, k ? "loss" : "generator", k ? "loss" : "generator");
    struct akt_error ce = {0};
    if (akt_run_config_check(cfg, reg, &ce)) {
        char w[512];
        snprintf(w, sizeof w, "%.300s %.200s", p->path, ce.where);
        akt_error_set(p->e, ce.code, w, "%s", ce.what);
        return in_run(p->e, c->id);
    }
    run->settings = set;
    run->n_settings = n;
    return 0;
}

static int expand(struct parse *p, const struct akt_registry *reg, struct akt_experiment *x)
{
    long total = p->n_axes ? 1 : 0;
    for (int a = 0; a < p->n_axes; a++)
        if ((total *= p->axes[a].n) > MAX_RUNS)
            return err_at(p, p->matrix_where, "matrix", "more than %d runs", MAX_RUNS);
    if (total + p->n_incl > MAX_RUNS)
        return err_at(p, p->matrix_where ? p->matrix_where : p->incl[0].where, NULL,
                      "more than %d runs", MAX_RUNS);
    struct cell *cells = calloc((size_t)(total + p->n_incl) + 1, sizeof *cells);
    AKT_ASSERT(cells);
    int n = 0, rc = 0;
    for (long k = 0; k < total; k++) {
        int *idx = akt_arena_alloc(p->arena, (size_t)p->n_axes * sizeof *idx);
        long r = k;
        for (int a = p->n_axes - 1; a >= 0; a--) { /* last axis fastest */
            idx[a] = (int)(r % p->axes[a].n);
            r /= p->axes[a].n;
        }
        if (!excluded(p, idx))
            cells[n++].idx = idx;
    }
    for (int i = 0; i < p->n_incl; i++)
        cells[n++].inc = &p->incl[i];
    if (n == 0)
        rc = err_at(p, p->matrix_where, "exclude", "every run of the matrix is excluded");
    if (!rc)
        rc = assign_ids(p, cells, n);
    if (!rc) {
        x->runs = calloc((size_t)n, sizeof *x->runs);
        AKT_ASSERT(x->runs);
        for (int i = 0; i < n && !rc; i++)
            rc = validate_cell(p, &cells[i], reg, &x->runs[i]);
        x->n_runs = n;
    }
    free(cells);
    return rc;
}

/* -------------------------------------------------------------- load --- */
/* akt run --set: copied into the arena; id and out are not the cells' to
 * share, teacher/data must be readable (relative to the current folder). */
static int take_sets(struct parse *p, const struct akt_experiment_setting *sets, int n)
{
    struct akt_experiment_setting *s = akt_arena_alloc(p->arena, (size_t)(n + 1) * sizeof *s);
    for (int i = 0; i < n; i++) {
        const char *where = sets[i].where && *sets[i].where ? sets[i].where : "--set";
        char w[600];
        snprintf(w, sizeof w, "%.300s %.200s", where, sets[i].key);
        if (!strcmp(sets[i].key, "id"))
            return akt_error_set(p->e, AKT_EINVAL, w, "run ids come from the matrix (an include "
                                                      "entry of the file may set one)");
        if (!strcmp(sets[i].key, "out"))
            return akt_error_set(p->e, AKT_EINVAL, w, "the results file is chosen by --out");
        if (is_path_key(sets[i].key) && access(sets[i].value, R_OK))
            return akt_error_set(p->e, AKT_EINVAL, w, "cannot read '%s': %s", sets[i].value,
                                 strerror(errno));
        s[i] = (struct akt_experiment_setting){
            ar_strndup(p->arena, sets[i].key, strlen(sets[i].key)),
            ar_strndup(p->arena, sets[i].value, strlen(sets[i].value)),
            ar_strndup(p->arena, where, strlen(where))};
    }
    p->sets = s;
    p->n_sets = n;
    return 0;
}

static int yaml_error(const yaml_parser_t *ps, const char *path, struct akt_error *e)
{
    char w[512];
    if (ps->error == YAML_MEMORY_ERROR)
        return akt_error_set(e, AKT_ENOMEM, path, "out of memory while reading YAML");
    if (ps->error == YAML_READER_ERROR)
        return akt_error_set(e, AKT_EFORMAT, path, "not YAML text: %s at byte %lu",
                             ps->problem ? ps->problem : "bad input",
                             (unsigned long)ps->problem_offset);
    snprintf(w, sizeof w, "%s:%lu:%lu", path, (unsigned long)ps->problem_mark.line + 1,
             (unsigned long)ps->problem_mark.column + 1);
    return akt_error_set(e, AKT_EFORMAT, w, "YAML syntax error: %s%s%s",
                         ps->problem ? ps->problem : "invalid", ps->context ? " " : "",
                         ps->context ? ps->context : "");
}

/* The whole file, refused past MAX_BYTES. */
static int read_capped(FILE *f, const char *path, unsigned char **text, size_t *len,
                       struct akt_error *e)
{
    unsigned char *b = malloc(MAX_BYTES + 1);
    if (!b)
        return akt_error_set(e, AKT_ENOMEM, path, "out of memory");
    size_t n = fread(b, 1, MAX_BYTES + 1, f);
    if (ferror(f)) {
        free(b);
        return akt_error_set(e, AKT_EIO, path, "read failed: %s", strerror(errno));
    }
    if (n > MAX_BYTES) {
        free(b);
        return akt_error_set(e, AKT_EINVAL, path,
                             "larger than %d MiB: not an experiment file (the matrix expands "
                             "into the runs; at most %d of them)", MAX_BYTES >> 20, MAX_RUNS);
    }
    *text = b;
    *len = n;
    return 0;
}

/* Nesting deeper than MAX_DEPTH is refused from libyaml's event stream,
 * before a document tree is built (whose cost grows with the depth). */
static int check_depth(const unsigned char *text, size_t len, const char *path,
                       struct akt_error *e)
{
    yaml_parser_t ps;
    if (!yaml_parser_initialize(&ps))
        return akt_error_set(e, AKT_ENOMEM, path, "cannot initialise the YAML parser");
    yaml_parser_set_input_string(&ps, text, len);
    int depth = 0, rc = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&ps, &ev)) {
            rc = 0; /* the document load reports syntax errors with their place */
            break;
        }
        yaml_event_type_t t = ev.type;
        if (t == YAML_SEQUENCE_START_EVENT || t == YAML_MAPPING_START_EVENT)
            depth++;
        else if (t == YAML_SEQUENCE_END_EVENT || t == YAML_MAPPING_END_EVENT)
            depth--;
        if (depth > MAX_DEPTH) {
            char w[512];
            snprintf(w, sizeof w, "%s:%lu:%lu", path, (unsigned long)ev.start_mark.line + 1,
                     (unsigned long)ev.start_mark.column + 1);
            rc = akt_error_set(e, AKT_EINVAL, w,
                               "nested more than %d levels deep: not an experiment file (it "
                               "needs 4)", MAX_DEPTH);
        }
        yaml_event_delete(&ev);
        if (rc || t == YAML_STREAM_END_EVENT)
            break;
    }
    yaml_parser_delete(&ps);
    return rc;
}

int akt_experiment_load(struct akt_experiment *x, const char *path,
                        const struct akt_registry *reg, const char *data_root,
                        struct akt_error *e)
{
    return akt_experiment_load_set(x, path, reg, data_root, NULL, 0, e);
}

int akt_experiment_load_set(struct akt_experiment *x, const char *path,
                            const struct akt_registry *reg, const char *data_root,
                            const struct akt_experiment_setting *sets, int n_sets,
                            struct akt_error *e)
{
    memset(x, 0, sizeof *x);
    if (strlen(path) >= sizeof x->path)
        return akt_error_set(e, AKT_EINVAL, path, "path too long");
    int rc = akt_file_check(path, NULL, e); /* a FIFO would block the read */
    if (rc)
        return rc;
    FILE *f = fopen(path, "rb");
    if (!f)
        return akt_error_set(e, AKT_EIO, path, "cannot open: %s", strerror(errno));
    unsigned char *text = NULL;
    size_t len = 0;
    if ((rc = read_capped(f, path, &text, &len, e)) || (rc = check_depth(text, len, path, e))) {
        free(text);
        fclose(f);
        return rc;
    }
    snprintf(x->path, sizeof x->path, "%s", path);
    akt_arena_init(&x->arena, 1 << 16);

    struct parse p = {.path = path, .data_root = data_root, .arena = &x->arena, .e = e};
    const char *slash = strrchr(path, '/');
    if (slash) { /* strlen(path) < sizeof p.dir, checked above */
        size_t dl = slash == path ? 1 : (size_t)(slash - path);
        memcpy(p.dir, path, dl);
        p.dir[dl] = 0;
    }
    /* default name: the file name without .yaml / .yml */
    const char *base = slash ? slash + 1 : path;
    size_t bl = strlen(base);
    if (bl > 5 && !strcmp(base + bl - 5, ".yaml"))
        bl -= 5;
    else if (bl > 4 && !strcmp(base + bl - 4, ".yml"))
        bl -= 4;
    snprintf(x->name, sizeof x->name, "%.*s", (int)bl, base);
    sanitize(x->name);

    yaml_parser_t ps;
    yaml_document_t doc, extra;
    int have_doc = 0;
    if (!yaml_parser_initialize(&ps)) {
        free(text);
        fclose(f);
        akt_arena_free(&x->arena);
        return akt_error_set(e, AKT_ENOMEM, path, "cannot initialise the YAML parser");
    }
    yaml_parser_set_input_string(&ps, text, len);
    if (!yaml_parser_load(&ps, &doc)) {
        rc = yaml_error(&ps, path, e);
    } else {
        have_doc = 1;
        p.doc = &doc;
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        if (!root) {
            rc = akt_error_set(e, AKT_EINVAL, path,
                               "empty file: the top level must be a map with keys %s", TOP_KEYS);
        } else if (!yaml_parser_load(&ps, &extra)) {
            rc = yaml_error(&ps, path, e);
        } else {
            yaml_node_t *r2 = yaml_document_get_root_node(&extra);
            if (r2)
                rc = err_at(&p, mark_where(&p, r2), NULL,
                            "a second YAML document; an experiment file holds one");
            yaml_document_delete(&extra);
            if (!rc)
                rc = take_sets(&p, sets, n_sets);
            if (!rc)
                rc = read_top(&p, x);
            if (!rc)
                rc = expand(&p, reg, x);
        }
    }
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&ps);
    free(text);
    fclose(f);
    if (rc)
        akt_experiment_free(x);
    return rc;
}

void akt_experiment_free(struct akt_experiment *x)
{
    free(x->runs);
    akt_arena_free(&x->arena);
    memset(x, 0, sizeof *x);
}
