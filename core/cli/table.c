/* akt table RESULTS.h5: a results file as a tidy table for pandas, R or a
 * spreadsheet (results/README.md, "Tables"). Wide form: one row per run, its
 * config keys as columns, then its status and one metric's best and final
 * values. Long form (--long): one row per run, metric and epoch.
 *
 * The file is opened read-only and the whole table is made in memory before
 * anything is written, so an error never leaves half a table behind. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "akt/results.h"
#include "cli.h"

static const char *TABLE_USAGE =
    "usage: akt table RESULTS.h5 [--metric NAME] [--format csv|json|markdown] [--long]\n"
    "                 [--best max|min] [--out FILE]\n"
    "\n"
    "Prints a results file as a table, one row per run (in id order): id, every\n"
    "key of the run's stored config, status, status_message, top1_fp (teacher),\n"
    "top1_before (student before distillation), best_NAME, best_epoch,\n"
    "final_NAME and final_epoch of the metric NAME (epochs 0-based, as stored).\n"
    "A value a run does not have is empty in CSV and Markdown, null in JSON.\n"
    "Loads in one line: pandas.read_csv(path) / pandas.read_json(path).\n"
    "\n"
    "  --metric NAME     the per-epoch metric for best/final (default top1); with\n"
    "                    --long, the only metric listed\n"
    "  --best max|min    what best means (default: max for top1/top5 and other\n"
    "                    top*, min for losses and everything else)\n"
    "  --format F        csv (default), json (an array of records) or markdown\n"
    "  --long            per-epoch series instead: columns id, metric, epoch,\n"
    "                    value, one row per run, scalar metric and epoch (every\n"
    "                    metric unless --metric is given); join the config from\n"
    "                    the wide table on id\n"
    "  --out FILE        write there instead of stdout\n";

enum fmt { FMT_CSV, FMT_JSON, FMT_MD };
enum kind { C_NONE, C_STR, C_NUM, C_INT };

/* One table cell. C_STR carries its text for CSV/Markdown (s) and its JSON
 * form (j: a quoted string, a number, true/false or an array/object). */
struct cell {
    enum kind kind;
    char *s, *j;
    double x;
    long long i;
};

static void cell_free(struct cell *c)
{
    free(c->s);
    free(c->j);
    memset(c, 0, sizeof *c);
}

/* ---- growing strings ---------------------------------------------------- */

struct str {
    char *s;
    size_t n, cap;
    int oom;
};

static void str_add(struct str *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void str_cat(struct str *b, const char *s) { str_add(b, s, strlen(s)); }

/* The string, or NULL (freed) when it ran out of memory. */
static char *str_take(struct str *b)
{
    if (b->oom || !b->s) {
        free(b->s);
        return b->oom ? NULL : strdup("");
    }
    return b->s;
}

static void json_quote(struct str *b, const char *s)
{
    str_cat(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char esc[8];
        if (*p == '"' || *p == '\\') {
            esc[0] = '\\';
            esc[1] = (char)*p;
            str_add(b, esc, 2);
        } else if (*p < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", *p);
            str_cat(b, esc);
        } else {
            str_add(b, (const char *)p, 1);
        }
    }
    str_cat(b, "\"");
}

/* A text cell whose JSON form is a string. */
static int cell_text(struct cell *c, const char *s)
{
    struct str j = {0};
    json_quote(&j, s);
    c->kind = C_STR;
    c->s = strdup(s);
    c->j = str_take(&j);
    return c->s && c->j ? 0 : -1;
}

/* Shortest "%.*g" that reads back as x ("91.5", "0.1"). */
static void fmt_double(char *buf, size_t n, double x)
{
    for (int p = 15; p <= 17; p++) {
        snprintf(buf, n, "%.*g", p, x);
        if (strtod(buf, NULL) == x)
            return;
    }
}

/* ---- config YAML -> cells ----------------------------------------------- */

/* JSON's number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static int is_json_number(const char *s)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        while (*p >= '0' && *p <= '9')
            p++;
    else
        return 0;
    if (*p == '.') {
        if (!(*++p >= '0' && *p <= '9'))
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return 0;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == 0;
}

static int one_of(const char *s, const char *a, const char *b, const char *c)
{
    return !strcmp(s, a) || !strcmp(s, b) || !strcmp(s, c);
}

/* YAML core schema: a plain (unquoted) null, ~ or empty scalar is null. */
static int is_null(const yaml_node_t *n)
{
    const char *v = (const char *)n->data.scalar.value;
    return n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (!*v || one_of(v, "null", "Null", "NULL") || !strcmp(v, "~"));
}

/* A node as text (t: scalars as they are, lists as "[a, b]", mappings as
 * "{k: v}") and as JSON (j: plain scalars that are JSON numbers or booleans
 * stay numbers and booleans, everything else a string). */
static void node_render(yaml_document_t *d, yaml_node_t *n, struct str *t, struct str *j, int depth)
{
    if (!n || depth > 32) {
        str_cat(t, "?");
        str_cat(j, "null");
        return;
    }
    if (n->type == YAML_SCALAR_NODE) {
        const char *v = (const char *)n->data.scalar.value;
        int plain = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        str_cat(t, v);
        if (is_null(n))
            str_cat(j, "null");
        else if (plain && is_json_number(v))
            str_cat(j, v);
        else if (plain && one_of(v, "true", "True", "TRUE"))
            str_cat(j, "true");
        else if (plain && one_of(v, "false", "False", "FALSE"))
            str_cat(j, "false");
        else
            json_quote(j, v);
    } else if (n->type == YAML_SEQUENCE_NODE) {
        str_cat(t, "[");
        str_cat(j, "[");
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
            if (it != n->data.sequence.items.start) {
                str_cat(t, ", ");
                str_cat(j, ", ");
            }
            node_render(d, yaml_document_get_node(d, *it), t, j, depth + 1);
        }
        str_cat(t, "]");
        str_cat(j, "]");
    } else if (n->type == YAML_MAPPING_NODE) {
        str_cat(t, "{");
        str_cat(j, "{");
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
            if (p != n->data.mapping.pairs.start) {
                str_cat(t, ", ");
                str_cat(j, ", ");
            }
            struct str kt = {0}, kj = {0};
            node_render(d, yaml_document_get_node(d, p->key), &kt, &kj, depth + 1);
            char *k = str_take(&kt);
            free(str_take(&kj));
            str_cat(t, k ? k : "?");
            str_cat(t, ": ");
            json_quote(j, k ? k : "?"); /* JSON keys are strings */
            str_cat(j, ": ");
            free(k);
            node_render(d, yaml_document_get_node(d, p->value), t, j, depth + 1);
        }
        str_cat(t, "}");
        str_cat(j, "}");
    }
}

/* ---- the table ---------------------------------------------------------- */

struct row {
    char *id;
    struct cell *cfg; /* indexed like table.keys; n_cfg of them */
    int n_cfg;
    struct cell *res; /* the result columns (N_RES) */
};

/* Result columns after the config keys; best/final take the metric's name. */
enum { R_STATUS, R_MESSAGE, R_FP, R_BEFORE, R_BEST, R_BEST_EPOCH, R_FINAL, R_FINAL_EPOCH, N_RES };

struct table {
    const char *path;
    char **keys; /* config keys in the order first seen (the rows' index) */
    int *order;  /* column order: a key new in a later run follows its predecessor there */
    int n_keys, cap_keys;
    struct row *rows;
    int n_rows;
    char *res_names[N_RES];
};

static void table_free(struct table *t)
{
    for (int i = 0; i < t->n_rows; i++) {
        struct row *r = &t->rows[i];
        for (int k = 0; k < r->n_cfg; k++)
            cell_free(&r->cfg[k]);
        for (int k = 0; r->res && k < N_RES; k++)
            cell_free(&r->res[k]);
        free(r->cfg);
        free(r->res);
        free(r->id);
    }
    free(t->rows);
    for (int k = 0; k < t->n_keys; k++)
        free(t->keys[k]);
    free(t->keys);
    free(t->order);
    for (int k = 0; k < N_RES; k++)
        free(t->res_names[k]);
    memset(t, 0, sizeof *t);
}

/* Index of config key k, added when new: in the column order right after
 * prev (the key before it in this run's config, -1 for its first key), so
 * generator.bns of gdfq stays with the other generator.* keys. -1 when out
 * of memory. */
static int key_index(struct table *t, const char *k, int prev)
{
    for (int i = 0; i < t->n_keys; i++)
        if (!strcmp(t->keys[i], k))
            return i;
    if (t->n_keys == t->cap_keys) {
        int cap = t->cap_keys ? 2 * t->cap_keys : 32;
        char **v = realloc(t->keys, (size_t)cap * sizeof *v);
        if (v)
            t->keys = v;
        int *o = v ? realloc(t->order, (size_t)cap * sizeof *o) : NULL;
        if (!o)
            return -1;
        t->order = o;
        t->cap_keys = cap;
    }
    if (!(t->keys[t->n_keys] = strdup(k)))
        return -1;
    int pos = 0;
    for (int i = 0; prev >= 0 && i < t->n_keys; i++)
        if (t->order[i] == prev)
            pos = i + 1;
    memmove(t->order + pos + 1, t->order + pos, (size_t)(t->n_keys - pos) * sizeof *t->order);
    t->order[pos] = t->n_keys;
    return t->n_keys++;
}

/* The cell of config key index ki in row r, growing r->cfg as needed. */
static struct cell *row_cfg(struct row *r, int ki)
{
    if (ki >= r->n_cfg) {
        struct cell *v = realloc(r->cfg, (size_t)(ki + 1) * sizeof *v);
        if (!v)
            return NULL;
        memset(v + r->n_cfg, 0, (size_t)(ki + 1 - r->n_cfg) * sizeof *v);
        r->cfg = v;
        r->n_cfg = ki + 1;
    }
    return &r->cfg[ki];
}

/* The run's @config (a YAML mapping) into row r's config cells. The key
 * `id` is left out: the table's first column is the run id. */
static int parse_config(struct table *t, struct row *r, const char *yaml_text,
                        struct akt_error *e)
{
    char w[800];
    snprintf(w, sizeof w, "%s:/runs/%s/@config", t->path, r->id);
    yaml_parser_t p;
    yaml_document_t d;
    if (!yaml_parser_initialize(&p))
        return akt_error_set(e, AKT_ENOMEM, w, "out of memory (YAML parser)");
    yaml_parser_set_input_string(&p, (const unsigned char *)yaml_text, strlen(yaml_text));
    if (!yaml_parser_load(&p, &d)) {
        int rc = akt_error_set(e, AKT_EFORMAT, w, "not YAML: %s at line %zu",
                               p.problem ? p.problem : "parse error", p.problem_mark.line + 1);
        yaml_parser_delete(&p);
        return rc;
    }
    int rc = 0, prev = -1;
    yaml_node_t *root = yaml_document_get_root_node(&d);
    if (root && root->type != YAML_MAPPING_NODE)
        rc = akt_error_set(e, AKT_EFORMAT, w, "not a YAML mapping of config keys");
    for (yaml_node_pair_t *pr = root && !rc ? root->data.mapping.pairs.start : NULL;
         pr && pr < root->data.mapping.pairs.top && !rc; pr++) {
        yaml_node_t *k = yaml_document_get_node(&d, pr->key);
        yaml_node_t *v = yaml_document_get_node(&d, pr->value);
        if (!k || k->type != YAML_SCALAR_NODE || !*k->data.scalar.value) {
            rc = akt_error_set(e, AKT_EFORMAT, w, "a key that is not a name");
            break;
        }
        const char *key = (const char *)k->data.scalar.value;
        if (!strcmp(key, "id"))
            continue;
        int ki = key_index(t, key, prev);
        prev = ki;
        struct cell *c = ki < 0 ? NULL : row_cfg(r, ki);
        if (!c) {
            rc = akt_error_set(e, AKT_ENOMEM, w, "out of memory");
        } else if (c->kind != C_NONE) {
            rc = akt_error_set(e, AKT_EFORMAT, w, "key '%s' appears twice", key);
        } else if (v && !is_null(v)) {
            struct str ts = {0}, js = {0};
            node_render(&d, v, &ts, &js, 0);
            c->kind = C_STR;
            c->s = str_take(&ts);
            c->j = str_take(&js);
            if (!c->s || !c->j)
                rc = akt_error_set(e, AKT_ENOMEM, w, "out of memory");
        }
    }
    yaml_document_delete(&d);
    yaml_parser_delete(&p);
    return rc;
}

/* A metric's series: rows > 0 (read), 0 (absent or empty), or an error.
 * A table metric (width > 1) is *wide = 1 and not read. */
static int read_series(struct akt_results *res, const char *path, const char *id,
                       const char *metric, int64_t **steps, double **vals, int64_t *rows,
                       int *wide, struct akt_error *e)
{
    *steps = NULL;
    *vals = NULL;
    *wide = 0;
    *rows = akt_results_rows(res, id, metric);
    if (*rows < 0)
        return akt_error_set(e, AKT_EFORMAT, path, "malformed series (datasets step and value)");
    if (*rows == 0)
        return 0;
    *steps = malloc((size_t)*rows * sizeof **steps);
    *vals = malloc((size_t)*rows * sizeof **vals);
    if (!*steps || !*vals)
        return akt_error_set(e, AKT_ENOMEM, path, "out of memory reading '%s'", metric);
    struct akt_error e2 = {0};
    int rc = akt_results_read_metric(res, id, metric, *steps, *vals, *rows, 1, &e2);
    if (rc == AKT_ESHAPE) {
        *wide = 1;
        return 0;
    }
    if (rc && e)
        *e = e2;
    return rc;
}

static int best_is_max(const char *metric) { return !strncmp(metric, "top", 3); }

/* Row i's results: status, message, top1_fp, top1_before and the metric. */
static int fill_results(struct table *t, struct akt_results *res, struct row *r,
                        const char *metric, int maximize, int *has_metric, struct akt_error *e)
{
    char w[800];
    snprintf(w, sizeof w, "%s:/runs/%s/metrics/%s", t->path, r->id, metric);
    if (!(r->res = calloc(N_RES, sizeof *r->res)))
        return akt_error_set(e, AKT_ENOMEM, t->path, "out of memory");
    const char *str_attrs[2] = {"status", "status_message"};
    for (int k = 0; k < 2; k++) {
        char *s = akt_results_run_str(res, r->id, str_attrs[k]);
        int bad = s && cell_text(&r->res[R_STATUS + k], s);
        free(s);
        if (bad)
            return akt_error_set(e, AKT_ENOMEM, t->path, "out of memory");
    }
    double v;
    if (akt_results_get_attr(res, r->id, "top1_fp", &v) == 0)
        r->res[R_FP] = (struct cell){.kind = C_NUM, .x = v};
    if (akt_results_get_attr(res, r->id, "top1_before", &v) == 0)
        r->res[R_BEFORE] = (struct cell){.kind = C_NUM, .x = v};

    int64_t *steps, rows;
    double *vals;
    int wide;
    int rc = read_series(res, w, r->id, metric, &steps, &vals, &rows, &wide, e);
    if (!rc && wide)
        rc = akt_error_set(e, AKT_EINVAL, w, "a table of several columns per epoch; --metric "
                                             "takes a per-epoch scalar (top1, loss_q, ...)");
    if (!rc && rows > 0) {
        *has_metric = 1;
        int64_t b = -1;
        for (int64_t i = 0; i < rows; i++) /* the first best epoch, NaN never best */
            if (!isnan(vals[i]) && (b < 0 || (maximize ? vals[i] > vals[b] : vals[i] < vals[b])))
                b = i;
        if (b >= 0) {
            r->res[R_BEST] = (struct cell){.kind = C_NUM, .x = vals[b]};
            r->res[R_BEST_EPOCH] = (struct cell){.kind = C_INT, .i = steps[b]};
        }
        r->res[R_FINAL] = (struct cell){.kind = C_NUM, .x = vals[rows - 1]};
        r->res[R_FINAL_EPOCH] = (struct cell){.kind = C_INT, .i = steps[rows - 1]};
    }
    free(steps);
    free(vals);
    return rc;
}

/* ---- output ------------------------------------------------------------- */

struct out {
    FILE *f;
    enum fmt fmt;
    int n_cols;
    int n_rows;
    const char *const *cols;
};

/* CSV (RFC 4180): quoted when it holds a comma, quote, line break or
 * leading/trailing space, quotes doubled. */
static void csv_field(FILE *f, const char *s)
{
    size_t n = strlen(s);
    int q = n && (s[0] == ' ' || s[n - 1] == ' ');
    for (const char *p = s; *p && !q; p++)
        q = *p == ',' || *p == '"' || *p == '\n' || *p == '\r';
    if (!q) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

/* Markdown table cell: '|' escaped, line breaks as spaces. */
static void md_field(FILE *f, const char *s)
{
    for (const char *p = s; *p; p++) {
        if (*p == '|')
            fputs("\\|", f);
        else if (*p == '\n' || *p == '\r')
            fputc(' ', f);
        else
            fputc(*p, f);
    }
}

static void out_begin(struct out *o, const char *const *cols, int n)
{
    o->cols = cols;
    o->n_cols = n;
    o->n_rows = 0;
    if (o->fmt == FMT_JSON) {
        fputs("[", o->f);
        return;
    }
    for (int i = 0; i < n; i++) {
        fputs(i ? (o->fmt == FMT_CSV ? "," : " | ") : (o->fmt == FMT_CSV ? "" : "| "), o->f);
        (o->fmt == FMT_CSV ? csv_field : md_field)(o->f, cols[i]);
    }
    fputs(o->fmt == FMT_CSV ? "\n" : " |\n", o->f);
    if (o->fmt == FMT_MD) {
        for (int i = 0; i < n; i++)
            fputs("|---", o->f);
        fputs("|\n", o->f);
    }
}

static void out_row(struct out *o, const struct cell *const *c)
{
    FILE *f = o->f;
    if (o->fmt == FMT_JSON) {
        fputs(o->n_rows ? ",\n{" : "\n{", f);
        for (int i = 0; i < o->n_cols; i++) {
            struct str k = {0};
            json_quote(&k, o->cols[i]);
            fprintf(f, "%s%s: ", i ? ", " : "", k.s ? k.s : "\"?\"");
            free(k.s);
            char num[40];
            if (!c[i] || c[i]->kind == C_NONE || (c[i]->kind == C_NUM && !isfinite(c[i]->x))) {
                fputs("null", f); /* JSON has no NaN or Infinity */
            } else if (c[i]->kind == C_STR) {
                fputs(c[i]->j, f);
            } else if (c[i]->kind == C_INT) {
                fprintf(f, "%lld", c[i]->i);
            } else {
                fmt_double(num, sizeof num, c[i]->x);
                fputs(num, f);
            }
        }
        fputs("}", f);
        o->n_rows++;
        return;
    }
    for (int i = 0; i < o->n_cols; i++) {
        fputs(i ? (o->fmt == FMT_CSV ? "," : " | ") : (o->fmt == FMT_CSV ? "" : "| "), f);
        char num[40] = "";
        const char *s = num;
        if (!c[i] || c[i]->kind == C_NONE)
            ;
        else if (c[i]->kind == C_STR)
            s = c[i]->s;
        else if (c[i]->kind == C_INT)
            snprintf(num, sizeof num, "%lld", c[i]->i);
        else if (o->fmt == FMT_MD && isfinite(c[i]->x))
            snprintf(num, sizeof num, "%.2f", c[i]->x); /* for reading, as akt train prints */
        else
            fmt_double(num, sizeof num, c[i]->x); /* nan, inf: pandas reads them */
        (o->fmt == FMT_CSV ? csv_field : md_field)(f, s);
    }
    fputs(o->fmt == FMT_CSV ? "\n" : " |\n", f);
    o->n_rows++;
}

static void out_end(struct out *o)
{
    if (o->fmt == FMT_JSON)
        fputs(o->n_rows ? "\n]\n" : "]\n", o->f);
}

/* ---- the two forms ------------------------------------------------------ */

/* Checks that metric is in at least one run, unless no run has any metric
 * yet (a sweep that just started); the error lists the metrics there are. */
static int check_metric(struct akt_results *const *hs, const char *path, char **ids, int n_ids,
                        const char *metric, int found, struct akt_error *e)
{
    if (found)
        return 0;
    struct str all = {0}; /* ", a, b, " */
    str_cat(&all, ", ");
    int rc = 0, n_all = 0;
    for (int i = 0; i < n_ids && !rc; i++) {
        char **names;
        int n;
        if ((rc = akt_results_metric_names(hs[i], ids[i], &names, &n, e)))
            break;
        for (int k = 0; k < n && !all.oom; k++) {
            char item[300];
            snprintf(item, sizeof item, ", %s, ", names[k]);
            if (!strstr(all.s, item)) {
                str_cat(&all, names[k]);
                str_cat(&all, ", ");
                n_all++;
            }
        }
        akt_results_free_names(names, n);
    }
    if (!rc && all.oom)
        rc = akt_error_set(e, AKT_ENOMEM, path, "out of memory");
    if (!rc && n_all > 0) {
        all.s[all.n - 2] = 0; /* drop the last ", " */
        rc = akt_error_set(e, AKT_EINVAL, path, "no run has metric '%s' (metrics: %.400s)", metric,
                           all.s + 2);
    }
    free(all.s);
    return rc;
}

static int table_wide(struct akt_results *const *hs, const char *path, char **ids, int n_ids,
                      const char *metric, int maximize, struct out *o, struct akt_error *e)
{
    struct table t = {.path = path};
    int rc = 0, found = 0;
    if (!(t.rows = calloc((size_t)(n_ids ? n_ids : 1), sizeof *t.rows)))
        return akt_error_set(e, AKT_ENOMEM, path, "out of memory");
    for (int i = 0; i < n_ids && !rc; i++) {
        struct row *r = &t.rows[t.n_rows++];
        if (!(r->id = strdup(ids[i]))) {
            rc = akt_error_set(e, AKT_ENOMEM, path, "out of memory");
            break;
        }
        char *cfg = akt_results_run_str(hs[i], ids[i], "config");
        if (!cfg) {
            char w[800];
            snprintf(w, sizeof w, "%s:/runs/%s", path, ids[i]);
            rc = akt_error_set(e, AKT_EFORMAT, w, "no string attribute 'config' (malformed run)");
            break;
        }
        rc = parse_config(&t, r, cfg, e);
        free(cfg);
        if (!rc)
            rc = fill_results(&t, hs[i], r, metric, maximize, &found, e);
    }
    if (!rc)
        rc = check_metric(hs, path, ids, n_ids, metric, found, e);

    const char *fixed[N_RES] = {"status", "status_message", "top1_fp", "top1_before", NULL,
                                "best_epoch", NULL, "final_epoch"};
    char best[300], final[300];
    snprintf(best, sizeof best, "best_%s", metric);
    snprintf(final, sizeof final, "final_%s", metric);
    fixed[R_BEST] = best;
    fixed[R_FINAL] = final;
    int n_cols = 1 + t.n_keys + N_RES;
    const char **cols = rc ? NULL : malloc((size_t)n_cols * sizeof *cols);
    const struct cell **cells = rc ? NULL : malloc((size_t)n_cols * sizeof *cells);
    if (!rc && (!cols || !cells))
        rc = akt_error_set(e, AKT_ENOMEM, path, "out of memory");
    /* a config key named like a result column would make two columns of one name */
    for (int k = 0; !rc && k < t.n_keys; k++)
        for (int q = 0; q < N_RES; q++)
            if (!strcmp(t.keys[k], fixed[q]))
                rc = akt_error_set(e, AKT_EFORMAT, path,
                                   "config key '%s' has the name of a result column", fixed[q]);
    if (!rc) {
        cols[0] = "id";
        for (int k = 0; k < t.n_keys; k++)
            cols[1 + k] = t.keys[t.order[k]];
        for (int q = 0; q < N_RES; q++)
            cols[1 + t.n_keys + q] = fixed[q];
        out_begin(o, cols, n_cols);
        for (int i = 0; i < t.n_rows; i++) {
            struct row *r = &t.rows[i];
            struct cell id = {0};
            if (cell_text(&id, r->id)) {
                cell_free(&id);
                rc = akt_error_set(e, AKT_ENOMEM, path, "out of memory");
                break;
            }
            cells[0] = &id;
            for (int k = 0; k < t.n_keys; k++)
                cells[1 + k] = t.order[k] < r->n_cfg ? &r->cfg[t.order[k]] : NULL;
            for (int q = 0; q < N_RES; q++)
                cells[1 + t.n_keys + q] = &r->res[q];
            out_row(o, cells);
            cell_free(&id);
        }
        out_end(o);
    }
    free(cols);
    free(cells);
    table_free(&t);
    return rc;
}

static int table_long(struct akt_results *const *hs, const char *path, char **ids, int n_ids,
                      const char *only, struct out *o, struct akt_error *e)
{
    static const char *const cols[] = {"id", "metric", "epoch", "value"};
    out_begin(o, cols, 4);
    int rc = 0, found = 0;
    for (int i = 0; i < n_ids && !rc; i++) {
        char **names = NULL;
        int n = 0;
        if (only) {
            names = malloc(sizeof *names);
            if (names && (names[0] = strdup(only)))
                n = 1;
        } else {
            rc = akt_results_metric_names(hs[i], ids[i], &names, &n, e);
        }
        if (!rc && only && n != 1)
            rc = akt_error_set(e, AKT_ENOMEM, path, "out of memory");
        struct cell idc = {0};
        if (!rc && cell_text(&idc, ids[i]))
            rc = akt_error_set(e, AKT_ENOMEM, path, "out of memory");
        for (int k = 0; k < n && !rc; k++) {
            char w[800];
            snprintf(w, sizeof w, "%s:/runs/%s/metrics/%s", path, ids[i], names[k]);
            int64_t *steps, rows;
            double *vals;
            int wide;
            struct cell mc = {0};
            rc = read_series(hs[i], w, ids[i], names[k], &steps, &vals, &rows, &wide, e);
            if (!rc && wide && only)
                rc = akt_error_set(e, AKT_EINVAL, w, "a table of several columns per epoch; "
                                                     "--long lists per-epoch scalars");
            if (!rc && !wide && rows > 0 && cell_text(&mc, names[k]))
                rc = akt_error_set(e, AKT_ENOMEM, path, "out of memory");
            for (int64_t q = 0; !rc && !wide && q < rows; q++) {
                struct cell ep = {.kind = C_INT, .i = steps[q]};
                struct cell v = {.kind = C_NUM, .x = vals[q]};
                const struct cell *row[4] = {&idc, &mc, &ep, &v};
                out_row(o, row);
                found = 1;
            }
            cell_free(&mc);
            free(steps);
            free(vals);
        }
        cell_free(&idc);
        akt_results_free_names(names, n);
    }
    if (!rc && only)
        rc = check_metric(hs, path, ids, n_ids, only, found, e);
    out_end(o);
    return rc;
}

/* ---- the command -------------------------------------------------------- */

/* Writes the table (len bytes) to out, or stdout when out is NULL. */
static int write_output(const char *out, const char *buf, size_t len, struct akt_error *e)
{
    if (!out) {
        if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0)
            return akt_error_set(e, AKT_EIO, "stdout", "write failed");
        return 0;
    }
    FILE *f = fopen(out, "w");
    if (!f)
        return akt_error_set(e, AKT_EIO, out, "cannot write the table: %s", strerror(errno));
    int bad = fwrite(buf, 1, len, f) != len;
    bad |= fclose(f) != 0;
    if (bad) {
        unlink(out);
        return akt_error_set(e, AKT_EIO, out, "writing the table failed (disk full?)");
    }
    return 0;
}

int akt_cmd_table(int argc, char **argv)
{
    static const struct option opts[] = {
        {"metric", required_argument, 0, 'm'}, {"format", required_argument, 0, 'f'},
        {"long", no_argument, 0, 'l'},         {"best", required_argument, 0, 'b'},
        {"out", required_argument, 0, 'o'},    {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *metric = "top1", *out_path = NULL;
    int metric_given = 0, long_form = 0, maximize = -1;
    enum fmt fmt = FMT_CSV;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'm':
            metric = optarg;
            metric_given = 1;
            break;
        case 'f':
            if (!strcmp(optarg, "csv"))
                fmt = FMT_CSV;
            else if (!strcmp(optarg, "json"))
                fmt = FMT_JSON;
            else if (!strcmp(optarg, "markdown") || !strcmp(optarg, "md"))
                fmt = FMT_MD;
            else
                return akt_cli_usage_error("table", "--format is csv, json or markdown, not '%s'",
                                           optarg);
            break;
        case 'l': long_form = 1; break;
        case 'b':
            if (strcmp(optarg, "max") && strcmp(optarg, "min"))
                return akt_cli_usage_error("table", "--best is max or min, not '%s'", optarg);
            maximize = !strcmp(optarg, "max");
            break;
        case 'o': out_path = optarg; break;
        case 'h': fputs(TABLE_USAGE, stdout); return 0;
        case ':': return akt_cli_usage_error("table", "option '%s' needs a value", argv[optind - 1]);
        default: return akt_cli_usage_error("table", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (argc - optind != 1)
        return akt_cli_usage_error("table", "exactly one results file is required");
    if (!*metric)
        return akt_cli_usage_error("table", "--metric needs a metric name");
    if (out_path && !*out_path)
        return akt_cli_usage_error("table", "--out needs a file name");
    if (maximize < 0)
        maximize = best_is_max(metric);
    const char *path = argv[optind];

    struct akt_error e = {0};
    /* the results file and its runs in progress (path.d/) */
    struct akt_results_view v;
    if (akt_results_view_open(&v, path, &e))
        return akt_cli_fail(&e);
    /* --out naming the results file would overwrite the results */
    struct stat a, b;
    if (out_path && stat(out_path, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev &&
        a.st_ino == b.st_ino) {
        akt_results_view_close(&v);
        akt_error_set(&e, AKT_EINVAL, out_path, "is the results file being read; choose another "
                                                "--out");
        return akt_cli_fail(&e);
    }
    char **ids = v.ids;
    int n_ids = v.n, rc = 0;
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    if (!rc && !mem)
        rc = akt_error_set(&e, AKT_ENOMEM, path, "out of memory");
    if (!rc) {
        struct out o = {.f = mem, .fmt = fmt};
        rc = long_form ? table_long(v.where, path, ids, n_ids, metric_given ? metric : NULL, &o,
                                    &e)
                       : table_wide(v.where, path, ids, n_ids, metric, maximize, &o, &e);
    }
    if (mem && fclose(mem) != 0 && !rc)
        rc = akt_error_set(&e, AKT_ENOMEM, path, "out of memory");
    akt_results_view_close(&v);
    if (!rc)
        rc = write_output(out_path, buf ? buf : "", len, &e);
    free(buf);
    return rc ? akt_cli_fail(&e) : 0;
}
