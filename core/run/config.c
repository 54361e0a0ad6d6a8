/* Run configuration: SPEC defaults, one validated setter shared by --set and
 * YAML experiments, and the YAML dump stored with every result. */
#include "akt/run.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

void akt_run_config_defaults(struct akt_run_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "run");
    c->data_format = AKT_CIFAR_AUTO;
    c->wbits = c->abits = 4;
    c->epochs = 400;
    c->iters = 200;
    c->batch = 200;
    c->seed = 0;
    c->threads = 2;
    c->warmup_epochs = 4;
    c->tracker_epochs = 4;
    c->lr_student = 1e-4f;
    c->lr_generator = 0; /* the plugin's */
    c->momentum = 0.9f;
    c->weight_decay = 1e-4f;
    c->milestones[0] = 100;
    c->milestones[1] = 200;
    c->milestones[2] = 300;
    c->n_milestones = 3;
    c->gamma = 0.1f;
    c->range_ema = AKT_EMA_AS_CODED;
    c->eval_batch = 200;
}

/* ------------------------------------------------------------- parsing --- */
static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int parse_num(const char *s, double lo, double hi, float *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !isfinite(v) || v < lo || v > hi)
        return -1;
    *out = (float)v;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "1"))
        *out = 1;
    else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "0"))
        *out = 0;
    else
        return -1;
    return 0;
}

static int copy_str(char *dst, size_t n, const char *v, const char *where, const char *key,
                    struct akt_error *e)
{
    if (strlen(v) >= n)
        return akt_error_set(e, AKT_EINVAL, where, "%s: value longer than %zu characters", key,
                             n - 1);
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

struct int_key {
    const char *key;
    size_t off;
    long lo, hi;
};

static const struct int_key INT_KEYS[] = {
    {"wbits", offsetof(struct akt_run_config, wbits), 2, 8},
    {"abits", offsetof(struct akt_run_config, abits), 2, 8},
    {"epochs", offsetof(struct akt_run_config, epochs), 1, 100000},
    {"iters", offsetof(struct akt_run_config, iters), 1, 10000000},
    {"batch", offsetof(struct akt_run_config, batch), 1, 100000},
    {"threads", offsetof(struct akt_run_config, threads), 1, 256},
    {"warmup_epochs", offsetof(struct akt_run_config, warmup_epochs), 0, 100000},
    {"tracker_epochs", offsetof(struct akt_run_config, tracker_epochs), 0, 100000},
    {"eval_batch", offsetof(struct akt_run_config, eval_batch), 1, 100000},
    {"eval_limit", offsetof(struct akt_run_config, eval_limit), 0, 100000000},
};

struct float_key {
    const char *key;
    size_t off;
    double lo, hi;
};

static const struct float_key FLOAT_KEYS[] = {
    {"lr_student", offsetof(struct akt_run_config, lr_student), 0, 10},
    {"lr_generator", offsetof(struct akt_run_config, lr_generator), 0, 10},
    {"momentum", offsetof(struct akt_run_config, momentum), 0, 1},
    {"weight_decay", offsetof(struct akt_run_config, weight_decay), 0, 1},
    {"gamma", offsetof(struct akt_run_config, gamma), 0, 1},
};

int akt_run_config_set(struct akt_run_config *c, const struct akt_registry *reg, const char *key,
                       const char *v, const char *where, struct akt_error *e)
{
    char w[700];
    snprintf(w, sizeof w, "%s%s%s", where ? where : "", where && *where ? " " : "", key);
    for (size_t i = 0; i < sizeof INT_KEYS / sizeof INT_KEYS[0]; i++)
        if (!strcmp(key, INT_KEYS[i].key)) {
            long x;
            if (parse_long(v, INT_KEYS[i].lo, INT_KEYS[i].hi, &x))
                return akt_error_set(e, AKT_EINVAL, w, "'%s' is not an integer in %ld..%ld", v,
                                     INT_KEYS[i].lo, INT_KEYS[i].hi);
            *(int *)((char *)c + INT_KEYS[i].off) = (int)x;
            return 0;
        }
    for (size_t i = 0; i < sizeof FLOAT_KEYS / sizeof FLOAT_KEYS[0]; i++)
        if (!strcmp(key, FLOAT_KEYS[i].key)) {
            float x;
            if (parse_num(v, FLOAT_KEYS[i].lo, FLOAT_KEYS[i].hi, &x))
                return akt_error_set(e, AKT_EINVAL, w, "'%s' is not a number in [%g, %g]", v,
                                     FLOAT_KEYS[i].lo, FLOAT_KEYS[i].hi);
            *(float *)((char *)c + FLOAT_KEYS[i].off) = x;
            return 0;
        }
    if (!strcmp(key, "bits")) {
        long x;
        if (parse_long(v, 2, 8, &x))
            return akt_error_set(e, AKT_EINVAL, w, "'%s' is not an integer in 2..8", v);
        c->wbits = c->abits = (int)x;
        return 0;
    }
    if (!strcmp(key, "seed")) {
        long x;
        if (parse_long(v, 0, 2147483647L, &x))
            return akt_error_set(e, AKT_EINVAL, w, "'%s' is not an integer in 0..2147483647", v);
        c->seed = (uint64_t)x;
        return 0;
    }
    if (!strcmp(key, "milestones")) {
        c->n_milestones = 0;
        if (!strcmp(v, "none") || !strcmp(v, "[]") || !*v)
            return 0;
        char buf[256];
        snprintf(buf, sizeof buf, "%s", v);
        char *p = buf;
        if (*p == '[')
            p++;
        char *close = strchr(p, ']');
        if (close)
            *close = 0;
        for (char *tok = strtok(p, ", "); tok; tok = strtok(NULL, ", ")) {
            long x;
            if (c->n_milestones == AKT_MAX_MILESTONES)
                return akt_error_set(e, AKT_EINVAL, w, "at most %d milestones", AKT_MAX_MILESTONES);
            if (parse_long(tok, 1, 100000, &x))
                return akt_error_set(e, AKT_EINVAL, w, "milestone '%s' is not an epoch in 1..100000",
                                     tok);
            c->milestones[c->n_milestones++] = (int)x;
        }
        return 0;
    }
    if (!strcmp(key, "first_last_8bit")) {
        if (parse_bool(v, &c->first_last_8bit))
            return akt_error_set(e, AKT_EINVAL, w, "'%s' is not true or false", v);
        return 0;
    }
    if (!strcmp(key, "range_ema")) {
        if (!strcmp(v, "as_coded"))
            c->range_ema = AKT_EMA_AS_CODED;
        else if (!strcmp(v, "plain"))
            c->range_ema = AKT_EMA_PLAIN;
        else
            return akt_error_set(e, AKT_EINVAL, w, "'%s' is not one of as_coded, plain", v);
        return 0;
    }
    if (!strcmp(key, "format")) {
        if (!strcmp(v, "auto")) c->data_format = AKT_CIFAR_AUTO;
        else if (!strcmp(v, "cifar10")) c->data_format = AKT_CIFAR10;
        else if (!strcmp(v, "cifar100")) c->data_format = AKT_CIFAR100_FINE;
        else if (!strcmp(v, "cifar100-coarse")) c->data_format = AKT_CIFAR100_COARSE;
        else
            return akt_error_set(e, AKT_EINVAL, w,
                                 "'%s' is not one of auto, cifar10, cifar100, cifar100-coarse", v);
        return 0;
    }
    if (!strcmp(key, "keep_checkpoints")) {
        if (!strcmp(v, "final"))
            c->keep_checkpoints = AKT_KEEP_CHECKPOINT_FINAL;
        else if (!strcmp(v, "none"))
            c->keep_checkpoints = AKT_KEEP_CHECKPOINT_NONE;
        else
            return akt_error_set(e, AKT_EINVAL, w, "'%s' is not one of final, none", v);
        return 0;
    }
    if (!strcmp(key, "id"))
        return copy_str(c->id, sizeof c->id, v, w, key, e);
    if (!strcmp(key, "teacher"))
        return copy_str(c->teacher_path, sizeof c->teacher_path, v, w, key, e);
    if (!strcmp(key, "data"))
        return copy_str(c->data_path, sizeof c->data_path, v, w, key, e);
    if (!strcmp(key, "out")) {
        if (!*v) /* "" would silently mean: no results file */
            return akt_error_set(e, AKT_EINVAL, w, "empty path: name the results file");
        return copy_str(c->out_path, sizeof c->out_path, v, w, key, e);
    }
    if (!strcmp(key, "generator") || !strcmp(key, "loss")) {
        int is_gen = key[0] == 'g';
        enum akt_plugin_kind kind = is_gen ? AKT_PLUGIN_GENERATOR : AKT_PLUGIN_LOSS;
        const struct akt_plugin *p = reg ? akt_registry_find(reg, kind, v) : NULL;
        if (!p)
            return akt_error_set(e, AKT_EINVAL, w, "unknown %s plugin '%s' (see 'akt plugins')",
                                 key, v);
        int rc = copy_str(is_gen ? c->generator : c->loss, sizeof c->generator, v, w, key, e);
        if (!rc)
            akt_params_defaults(p, is_gen ? &c->gen_params : &c->loss_params);
        return rc;
    }
    if (!strncmp(key, "generator.", 10) || !strncmp(key, "loss.", 5)) {
        int is_gen = key[0] == 'g';
        const char *name = is_gen ? c->generator : c->loss;
        const struct akt_plugin *p =
            reg && *name ? akt_registry_find(reg, is_gen ? AKT_PLUGIN_GENERATOR : AKT_PLUGIN_LOSS,
                                             name)
                         : NULL;
        if (!p)
            return akt_error_set(e, AKT_EINVAL, w, "set %s before its parameters",
                                 is_gen ? "generator" : "loss");
        return akt_params_set(p, is_gen ? &c->gen_params : &c->loss_params,
                              key + (is_gen ? 10 : 5), v, w, e);
    }
    return akt_error_set(e, AKT_EINVAL, w,
                         "unknown key (run keys: id teacher data format generator loss wbits abits "
                         "bits epochs iters batch seed threads warmup_epochs tracker_epochs "
                         "lr_student lr_generator momentum weight_decay milestones gamma "
                         "first_last_8bit range_ema eval_batch eval_limit keep_checkpoints out; plugin "
                         "parameters: "
                         "generator.KEY loss.KEY)");
}

int akt_run_config_check(const struct akt_run_config *c, const struct akt_registry *reg,
                         struct akt_error *e)
{
    if (c->wbits < 2 || c->wbits > 8 || c->abits < 2 || c->abits > 8)
        return akt_error_set(e, AKT_EINVAL, "bits", "wbits %d / abits %d: each must be in 2..8",
                             c->wbits, c->abits);
    if (c->epochs < 1 || c->iters < 1 || c->batch < 1 || c->eval_batch < 1)
        return akt_error_set(e, AKT_EINVAL, "schedule",
                             "epochs, iters, batch and eval_batch must be >= 1");
    if (!akt_registry_find(reg, AKT_PLUGIN_GENERATOR, c->generator))
        return akt_error_set(e, AKT_EINVAL, "generator",
                             "unknown generator plugin '%s' (see 'akt plugins')", c->generator);
    if (!akt_registry_find(reg, AKT_PLUGIN_LOSS, c->loss))
        return akt_error_set(e, AKT_EINVAL, "loss", "unknown loss plugin '%s' (see 'akt plugins')",
                             c->loss);
    if (!c->teacher_path[0])
        return akt_error_set(e, AKT_EINVAL, "teacher", "no teacher file given");
    if (!c->data_path[0])
        return akt_error_set(e, AKT_EINVAL, "data", "no evaluation data file given");
    return 0;
}

/* --------------------------------------------------------- YAML dump ---
 * The stored config is a flat YAML map written by libyaml's emitter, so any
 * path (quotes, backslashes, newlines) comes back exactly; ids and paths
 * are double-quoted, everything else plain where YAML allows it. For the
 * usual values this is the text earlier akt versions wrote by hand. */
struct sbuf {
    char *s;
    size_t n, cap;
};

static int sb_write(void *data, unsigned char *buf, size_t size)
{
    struct sbuf *b = data;
    if (b->n + size + 1 > b->cap) {
        size_t cap = (b->n + size + 1) * 2 + 256;
        char *s = realloc(b->s, cap);
        if (!s)
            return 0;
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->n, buf, size);
    b->n += size;
    b->s[b->n] = 0;
    return 1;
}

static int emit_scalar(yaml_emitter_t *em, const char *v, yaml_scalar_style_t style)
{
    yaml_event_t ev;
    return yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)v, (int)strlen(v), 1, 1,
                                        style) &&
           yaml_emitter_emit(em, &ev);
}

static int emit_kv(yaml_emitter_t *em, const char *k, const char *v, yaml_scalar_style_t style)
{
    return emit_scalar(em, k, YAML_PLAIN_SCALAR_STYLE) && emit_scalar(em, v, style);
}

static int emit_int(yaml_emitter_t *em, const char *k, long long v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%lld", v);
    return emit_kv(em, k, buf, YAML_PLAIN_SCALAR_STYLE);
}

static int emit_float(yaml_emitter_t *em, const char *k, float v)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.9g", v);
    return emit_kv(em, k, buf, YAML_PLAIN_SCALAR_STYLE);
}

static int emit_params(yaml_emitter_t *em, const char *prefix, const struct akt_plugin *p,
                       const struct akt_param_values *v)
{
    char key[160], buf[64];
    int ok = 1;
    for (int i = 0; ok && p && i < p->n_params; i++) {
        snprintf(key, sizeof key, "%s.%s", prefix, p->params[i].key);
        ok = emit_kv(em, key, akt_params_format(p, v, i, buf, sizeof buf),
                     YAML_PLAIN_SCALAR_STYLE);
    }
    return ok;
}

static int emit_config(yaml_emitter_t *em, const struct akt_run_config *c,
                       const struct akt_plugin *gen, const struct akt_plugin *loss)
{
    static const char *formats[] = {"auto", "cifar10", "cifar100", "cifar100-coarse"};
    const yaml_scalar_style_t Q = YAML_DOUBLE_QUOTED_SCALAR_STYLE, P = YAML_PLAIN_SCALAR_STYLE;
    yaml_event_t ev;
    int ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) &&
             yaml_emitter_emit(em, &ev) &&
             yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) &&
             yaml_emitter_emit(em, &ev) &&
             yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE) &&
             yaml_emitter_emit(em, &ev);
    ok = ok && emit_kv(em, "id", c->id, Q) && emit_kv(em, "teacher", c->teacher_path, Q) &&
         emit_kv(em, "data", c->data_path, Q) && emit_kv(em, "format", formats[c->data_format], P);
    ok = ok && emit_kv(em, "generator", c->generator, P) &&
         emit_params(em, "generator", gen, &c->gen_params) && emit_kv(em, "loss", c->loss, P) &&
         emit_params(em, "loss", loss, &c->loss_params);
    ok = ok && emit_int(em, "wbits", c->wbits) && emit_int(em, "abits", c->abits) &&
         emit_int(em, "epochs", c->epochs) && emit_int(em, "iters", c->iters) &&
         emit_int(em, "batch", c->batch) && emit_int(em, "seed", (long long)c->seed) &&
         emit_int(em, "warmup_epochs", c->warmup_epochs) &&
         emit_int(em, "tracker_epochs", c->tracker_epochs);
    ok = ok && emit_float(em, "lr_student", c->lr_student) &&
         emit_float(em, "lr_generator", c->lr_generator) &&
         emit_float(em, "momentum", c->momentum) &&
         emit_float(em, "weight_decay", c->weight_decay);
    ok = ok && emit_scalar(em, "milestones", P) &&
         yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_FLOW_SEQUENCE_STYLE) &&
         yaml_emitter_emit(em, &ev);
    for (int i = 0; ok && i < c->n_milestones; i++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%d", c->milestones[i]);
        ok = emit_scalar(em, buf, P);
    }
    ok = ok && yaml_sequence_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev);
    ok = ok && emit_float(em, "gamma", c->gamma) &&
         emit_kv(em, "first_last_8bit", c->first_last_8bit ? "true" : "false", P) &&
         emit_kv(em, "range_ema", c->range_ema == AKT_EMA_PLAIN ? "plain" : "as_coded", P) &&
         emit_int(em, "eval_batch", c->eval_batch) && emit_int(em, "eval_limit", c->eval_limit);
    ok = ok && yaml_mapping_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev) &&
         yaml_document_end_event_initialize(&ev, 1) && yaml_emitter_emit(em, &ev) &&
         yaml_stream_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev) &&
         yaml_emitter_flush(em);
    return ok;
}

/* The same keys akt_run_config_set takes, so a stored config can be
 * replayed exactly (akt_run_config_text_each). */
char *akt_run_config_yaml(const struct akt_run_config *c, const struct akt_plugin *gen,
                          const struct akt_plugin *loss)
{
    struct sbuf b = {0};
    yaml_emitter_t em;
    if (!yaml_emitter_initialize(&em))
        return NULL;
    yaml_emitter_set_output(&em, sb_write, &b);
    yaml_emitter_set_width(&em, -1); /* never fold a long path */
    yaml_emitter_set_unicode(&em, 1);
    int ok = emit_config(&em, c, gen, loss);
    yaml_emitter_delete(&em);
    if (!ok) { /* e.g. a path that is not UTF-8 */
        free(b.s);
        return NULL;
    }
    return b.s;
}

/* ------------------------------------------------- reading it back --- */

int akt_run_config_text_each(const char *text, akt_config_pair_fn fn, void *user,
                             const char *where, struct akt_error *e)
{
    size_t len = strlen(text);
    if (len > AKT_CONFIG_TEXT_MAX)
        return akt_error_set(e, AKT_EFORMAT, where, "stored config is %zu bytes (at most %d)",
                             len, AKT_CONFIG_TEXT_MAX);
    yaml_parser_t ps;
    yaml_document_t doc;
    if (!yaml_parser_initialize(&ps))
        return akt_error_set(e, AKT_ENOMEM, where, "cannot initialise the YAML parser");
    yaml_parser_set_input_string(&ps, (const unsigned char *)text, len);
    if (!yaml_parser_load(&ps, &doc)) {
        int rc = akt_error_set(e, AKT_EFORMAT, where, "stored config is not YAML: %s at line %lu",
                               ps.problem ? ps.problem : "syntax error",
                               (unsigned long)ps.problem_mark.line + 1);
        yaml_parser_delete(&ps);
        return rc;
    }
    int rc = 0;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root && root->type != YAML_MAPPING_NODE)
        rc = akt_error_set(e, AKT_EFORMAT, where, "stored config is not a map of key: value");
    char *val = NULL;
    for (yaml_node_pair_t *p = root ? root->data.mapping.pairs.start : NULL;
         !rc && root && p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&doc, p->value);
        int line = (int)k->start_mark.line + 1;
        if (k->type != YAML_SCALAR_NODE) {
            rc = akt_error_set(e, AKT_EFORMAT, where, "stored config line %d: a key must be text",
                               line);
            break;
        }
        /* a value: a scalar, or a list of scalars joined with "," */
        size_t n = 1;
        int ok = v->type == YAML_SCALAR_NODE || v->type == YAML_SEQUENCE_NODE;
        if (v->type == YAML_SCALAR_NODE)
            n += v->data.scalar.length;
        for (yaml_node_item_t *it = v->type == YAML_SEQUENCE_NODE ? v->data.sequence.items.start
                                                                  : NULL;
             ok && it && it < v->data.sequence.items.top; it++) {
            yaml_node_t *c = yaml_document_get_node(&doc, *it);
            ok = c->type == YAML_SCALAR_NODE;
            n += ok ? c->data.scalar.length + 1 : 0;
        }
        if (!ok) {
            rc = akt_error_set(e, AKT_EFORMAT, where,
                               "stored config line %d: '%s' must be a value or a list of values",
                               line, (const char *)k->data.scalar.value);
            break;
        }
        val = malloc(n);
        AKT_ASSERT(val);
        val[0] = 0;
        if (v->type == YAML_SCALAR_NODE) {
            memcpy(val, v->data.scalar.value, v->data.scalar.length);
            val[v->data.scalar.length] = 0;
        } else {
            size_t o = 0;
            for (yaml_node_item_t *it = v->data.sequence.items.start;
                 it < v->data.sequence.items.top; it++) {
                yaml_node_t *c = yaml_document_get_node(&doc, *it);
                if (o)
                    val[o++] = ',';
                memcpy(val + o, c->data.scalar.value, c->data.scalar.length);
                o += c->data.scalar.length;
                val[o] = 0;
            }
        }
        rc = fn((const char *)k->data.scalar.value, val, line, user);
        free(val);
        val = NULL;
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&ps);
    return rc;
}

/* key/value pairs of one stored config */
struct kv_list {
    int n, cap;
    char **key, **val;
};

static int kv_add(const char *key, const char *value, int line, void *user)
{
    (void)line;
    struct kv_list *l = user;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->key = realloc(l->key, (size_t)l->cap * sizeof *l->key);
        l->val = realloc(l->val, (size_t)l->cap * sizeof *l->val);
        AKT_ASSERT(l->key && l->val);
    }
    l->key[l->n] = strdup(key);
    l->val[l->n] = strdup(value);
    AKT_ASSERT(l->key[l->n] && l->val[l->n]);
    l->n++;
    return 0;
}

static void kv_free(struct kv_list *l)
{
    for (int i = 0; i < l->n; i++) {
        free(l->key[i]);
        free(l->val[i]);
    }
    free(l->key);
    free(l->val);
}

static const char *kv_get(const struct kv_list *l, const char *key)
{
    for (int i = 0; i < l->n; i++)
        if (!strcmp(l->key[i], key))
            return l->val[i];
    return NULL;
}

/* Appends key to the comma-separated list in buf (once). */
static void add_key(char *buf, size_t n, const char *key)
{
    size_t l = strlen(buf);
    snprintf(buf + l, n - l, "%s%s", l ? ", " : "", key);
}

/* Execution settings: how a run is computed, not what it computes, so not
 * part of its identity. Configs that earlier akt versions stored still have
 * them. */
static int is_execution_key(const char *key)
{
    return !strcmp(key, "threads");
}

int akt_run_config_text_diff(const char *a, const char *b, char *keys, size_t n)
{
    struct kv_list la = {0}, lb = {0};
    if (n)
        keys[0] = 0;
    int rc = akt_run_config_text_each(a, kv_add, &la, "config", NULL);
    if (!rc)
        rc = akt_run_config_text_each(b, kv_add, &lb, "config", NULL);
    int differ = 0;
    for (int i = 0; !rc && i < la.n; i++) {
        if (is_execution_key(la.key[i]))
            continue;
        const char *v = kv_get(&lb, la.key[i]);
        if (!v || strcmp(v, la.val[i])) {
            differ = 1;
            add_key(keys, n, la.key[i]);
        }
    }
    for (int i = 0; !rc && i < lb.n; i++)
        if (!is_execution_key(lb.key[i]) && !kv_get(&la, lb.key[i])) {
            differ = 1;
            add_key(keys, n, lb.key[i]);
        }
    kv_free(&la);
    kv_free(&lb);
    return rc ? rc : differ;
}

/* akt_config_text_get: stops at the key and copies its value */
struct text_get {
    const char *key;
    char *buf;
    size_t n;
    int found;
};

static int text_get_pair(const char *key, const char *value, int line, void *user)
{
    (void)line;
    struct text_get *g = user;
    if (strcmp(key, g->key))
        return 0;
    snprintf(g->buf, g->n, "%s", value);
    g->found = 1;
    return 1;
}

int akt_config_text_get(const char *text, const char *key, char *buf, size_t n)
{
    if (!text || !key || !buf || !n)
        return -1;
    struct text_get g = {key, buf, n, 0};
    akt_run_config_text_each(text, text_get_pair, &g, "config", NULL);
    return g.found ? 0 : -1;
}
