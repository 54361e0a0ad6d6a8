/* Run settings: the table (defaults, ranges, help, where each value lives),
 * the one validated setter shared by --set, YAML experiments and stored
 * configs, and the YAML dump stored with every result. */
#include "akt/run.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ---------------------------------------------------------- the table ---
 * Defaults are SPEC's (5); ranges are what the runner can do, not what is
 * sensible. The order is that of the stored config. */
#define FIELD(f) offsetof(struct akt_run_config, f), sizeof(((struct akt_run_config *)0)->f)
#define NUM(k, t, d, l, h, txt) {.key = k, .type = t, .def = d, .lo = l, .hi = h, .help = txt}
#define TEXT(k, d, txt) {.key = k, .type = AKT_PT_STRING, .def_text = d, .help = txt}

static int out_check(const char *text, char *why, size_t n)
{
    if (*text)
        return 0;
    snprintf(why, n, "empty path: name the results file"); /* "" would mean: no file */
    return -1;
}

static const struct akt_run_setting SETTINGS[] = {
    {TEXT("id", "run", "run id in the results file (akt run: from the matrix)"), FIELD(id), 0,
     AKT_SETTING_QUOTED},
    {TEXT("teacher", "", "FP32 teacher HDF5 file (required)"), FIELD(teacher_path), 0,
     AKT_SETTING_QUOTED},
    {TEXT("data", "", "evaluation set, a CIFAR binary file, never used for training (required)"),
     FIELD(data_path), 0, AKT_SETTING_QUOTED},
    {{.key = "format", .type = AKT_PT_CHOICE, .def = AKT_CIFAR_AUTO,
      .choices = "auto|cifar10|cifar100|cifar100-coarse",
      .help = "format of the evaluation file (auto: from its size)"},
     FIELD(data_format), 0, 0},
    {TEXT("generator", "", "generator plugin (see `akt plugins`; required)"), FIELD(generator), 0,
     AKT_SETTING_PLUGIN},
    {TEXT("loss", "", "student loss plugin (see `akt plugins`; required)"), FIELD(loss), 0,
     AKT_SETTING_PLUGIN},
    {NUM("wbits", AKT_PT_INT, 4, 2, 8, "weight bits"), FIELD(wbits), 0, 0},
    {NUM("abits", AKT_PT_INT, 4, 2, 8, "activation bits"), FIELD(abits), 0, 0},
    {NUM("bits", AKT_PT_INT, 4, 2, 8, "wbits and abits at once"), FIELD(wbits),
     offsetof(struct akt_run_config, abits), AKT_SETTING_ALIAS},
    {NUM("epochs", AKT_PT_INT, 400, 1, 100000, "epochs"), FIELD(epochs), 0, 0},
    {NUM("iters", AKT_PT_INT, 200, 1, 10000000, "iterations per epoch"), FIELD(iters), 0, 0},
    {NUM("batch", AKT_PT_INT, 200, 1, 100000, "images per iteration"), FIELD(batch), 0, 0},
    {NUM("seed", AKT_PT_INT, 0, 0, 2147483647, "RNG seed"), FIELD(seed), 0, 0},
    /* threads and keep_checkpoints are execution settings: how a run is
     * computed or stored, not what it computes, so not in the stored config */
    {NUM("threads", AKT_PT_INT, 2, 1, 256,
         "worker threads (an execution setting: not part of the run's identity)"),
     FIELD(threads), 0, AKT_SETTING_UNSTORED},
    {NUM("warmup_epochs", AKT_PT_INT, 4, 0, 100000,
         "the student's SGD starts at this epoch (0-based)"),
     FIELD(warmup_epochs), 0, 0},
    {NUM("tracker_epochs", AKT_PT_INT, 4, 0, 100000,
         "the activation range trackers run in the epochs before this one"),
     FIELD(tracker_epochs), 0, 0},
    {NUM("lr_student", AKT_PT_FLOAT, 1e-4, 0, 10, "the student's SGD learning rate"),
     FIELD(lr_student), 0, 0},
    {NUM("lr_generator", AKT_PT_FLOAT, 0, 0, 10,
         "the generator's learning rate (0: the plugin's own, 1e-3 for gdfq, qimera and adadfq)"),
     FIELD(lr_generator), 0, 0},
    {NUM("momentum", AKT_PT_FLOAT, 0.9, 0, 1, "the student's SGD momentum"), FIELD(momentum), 0,
     0},
    {NUM("weight_decay", AKT_PT_FLOAT, 1e-4, 0, 1, "the student's SGD weight decay"),
     FIELD(weight_decay), 0, 0},
    {{.key = "milestones", .type = AKT_PT_LIST, .lo = 1, .hi = 100000, .def_text = "100,200,300",
      .help = "epochs at which both learning rates are multiplied by gamma"},
     FIELD(milestones), offsetof(struct akt_run_config, n_milestones), 0},
    {NUM("gamma", AKT_PT_FLOAT, 0.1, 0, 1, "learning-rate factor at each milestone"),
     FIELD(gamma), 0, 0},
    {NUM("first_last_8bit", AKT_PT_BOOL, 0, 0, 1, "keep the first conv and the FC layer at 8 bits (SPEC 3)"),
     FIELD(first_last_8bit), 0, 0},
    {{.key = "range_ema", .type = AKT_PT_CHOICE, .def = AKT_EMA_AS_CODED,
      .choices = "as_coded|plain",
      .help = "range tracker EMA: as_coded feeds the bias-corrected value back (the official code), plain does not (SPEC 3)"},
     FIELD(range_ema), 0, 0},
    {NUM("eval_batch", AKT_PT_INT, 200, 1, 100000, "images per evaluation batch"),
     FIELD(eval_batch), 0, 0},
    {NUM("eval_limit", AKT_PT_INT, 0, 0, 100000000,
         "evaluate on the first N records only (0: all; for tests)"),
     FIELD(eval_limit), 0, 0},
    {{.key = "keep_checkpoints", .type = AKT_PT_CHOICE, .def = AKT_KEEP_CHECKPOINT_FINAL,
      .choices = "final|none",
      .help = "final: a finished run keeps its last checkpoint; none: it is dropped (an execution setting)"},
     FIELD(keep_checkpoints), 0, AKT_SETTING_UNSTORED},
    {{.key = "out", .type = AKT_PT_STRING, .def_text = "", .check = out_check,
      .help = "results HDF5 file (akt train --out; akt run takes --out only)"},
     FIELD(out_path), 0, AKT_SETTING_QUOTED | AKT_SETTING_UNSTORED},
};
#define N_SETTINGS ((int)(sizeof SETTINGS / sizeof SETTINGS[0]))

/* the storage akt_run_setting promises */
_Static_assert(sizeof(enum akt_cifar_format) == sizeof(int), "format is stored as an int");
_Static_assert(sizeof(enum akt_range_ema) == sizeof(int), "range_ema is stored as an int");
_Static_assert(sizeof(((struct akt_run_config *)0)->seed) == 8, "seed is a uint64_t");
_Static_assert(AKT_MAX_MILESTONES <= AKT_PARAM_LIST_MAX, "milestones fit a parsed list");

const struct akt_run_setting *akt_run_settings(int *n)
{
    *n = N_SETTINGS;
    return SETTINGS;
}

const struct akt_run_setting *akt_run_setting_find(const char *key)
{
    for (int i = 0; i < N_SETTINGS; i++)
        if (!strcmp(SETTINGS[i].def.key, key))
            return &SETTINGS[i];
    return NULL;
}

static void *field(struct akt_run_config *c, size_t off)
{
    return (char *)c + off;
}

static const void *cfield(const struct akt_run_config *c, size_t off)
{
    return (const char *)c + off;
}

static int list_max(const struct akt_run_setting *s)
{
    return s->def.type == AKT_PT_LIST ? (int)(s->size / sizeof(int)) : 0;
}

/* Stores a parsed value (not STRING) into its field. */
static void store(struct akt_run_config *c, const struct akt_run_setting *s,
                  const struct akt_param_parsed *x)
{
    switch (s->def.type) {
    case AKT_PT_FLOAT: *(float *)field(c, s->off) = (float)x->num; break;
    case AKT_PT_LIST:
        for (int i = 0; i < x->n; i++)
            ((int *)field(c, s->off))[i] = (int)x->item[i];
        *(int *)field(c, s->off2) = x->n;
        break;
    default:
        if (s->size == sizeof(uint64_t))
            *(uint64_t *)field(c, s->off) = (uint64_t)x->num;
        else
            *(int *)field(c, s->off) = (int)x->num;
        if (s->flags & AKT_SETTING_ALIAS)
            *(int *)field(c, s->off2) = (int)x->num;
        break;
    }
}

void akt_run_config_defaults(struct akt_run_config *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < N_SETTINGS; i++) {
        const struct akt_run_setting *s = &SETTINGS[i];
        struct akt_param_parsed x = {.num = s->def.def};
        if (s->flags & AKT_SETTING_ALIAS)
            continue;
        if (s->def.type == AKT_PT_STRING) {
            snprintf(field(c, s->off), s->size, "%s", s->def.def_text);
            continue;
        }
        if (s->def.type == AKT_PT_LIST)
            AKT_ASSERT(akt_param_parse(&s->def, s->def.def_text, list_max(s), &x, s->def.key,
                                       NULL) == 0);
        store(c, s, &x);
    }
}

/* ------------------------------------------------------------- setting --- */
static int set_plugin(struct akt_run_config *c, const struct akt_registry *reg,
                      const struct akt_run_setting *s, const char *v, const char *w,
                      struct akt_error *e)
{
    int is_gen = s->off == offsetof(struct akt_run_config, generator);
    const struct akt_plugin *p =
        reg ? akt_registry_find(reg, is_gen ? AKT_PLUGIN_GENERATOR : AKT_PLUGIN_LOSS, v) : NULL;
    if (!p)
        return akt_error_set(e, AKT_EINVAL, w, "unknown %s plugin '%s' (see 'akt plugins')",
                             s->def.key, v);
    snprintf(field(c, s->off), s->size, "%s", v);
    akt_params_defaults(p, is_gen ? &c->gen_params : &c->loss_params);
    return 0;
}

static int set_plugin_param(struct akt_run_config *c, const struct akt_registry *reg,
                            const char *key, const char *v, const char *w, struct akt_error *e)
{
    int is_gen = key[0] == 'g';
    const char *name = is_gen ? c->generator : c->loss;
    const struct akt_plugin *p =
        reg && *name
            ? akt_registry_find(reg, is_gen ? AKT_PLUGIN_GENERATOR : AKT_PLUGIN_LOSS, name)
            : NULL;
    if (!p)
        return akt_error_set(e, AKT_EINVAL, w, "set %s before its parameters",
                             is_gen ? "generator" : "loss");
    return akt_params_set(p, is_gen ? &c->gen_params : &c->loss_params, key + (is_gen ? 10 : 5),
                          v, w, e);
}

static int unknown_key(const char *w, struct akt_error *e)
{
    char keys[600] = "";
    size_t used = 0;
    for (int i = 0; i < N_SETTINGS && used < sizeof keys; i++)
        used += (size_t)snprintf(keys + used, sizeof keys - used, "%s%s", i ? " " : "",
                                 SETTINGS[i].def.key);
    return akt_error_set(e, AKT_EINVAL, w,
                         "unknown key (run keys: %s; plugin parameters: generator.KEY loss.KEY)",
                         keys);
}

int akt_run_config_set(struct akt_run_config *c, const struct akt_registry *reg, const char *key,
                       const char *v, const char *where, struct akt_error *e)
{
    char w[700];
    snprintf(w, sizeof w, "%s%s%s", where ? where : "", where && *where ? " " : "", key);
    if (!v)
        v = "";
    if (!strncmp(key, "generator.", 10) || !strncmp(key, "loss.", 5))
        return set_plugin_param(c, reg, key, v, w, e);
    const struct akt_run_setting *s = akt_run_setting_find(key);
    if (!s)
        return unknown_key(w, e);
    struct akt_param_parsed x;
    int rc = akt_param_parse(&s->def, v, list_max(s), &x, w, e);
    if (rc)
        return rc;
    if (s->def.type != AKT_PT_STRING) {
        store(c, s, &x);
        return 0;
    }
    if (strlen(v) >= s->size)
        return akt_error_set(e, AKT_EINVAL, w, "value longer than %zu characters", s->size - 1);
    if (s->flags & AKT_SETTING_PLUGIN)
        return set_plugin(c, reg, s, v, w, e);
    memcpy(field(c, s->off), v, strlen(v) + 1);
    return 0;
}

/* ---------------------------------------------------------------- help --- */
/* The default as a user writes it ("" for none). */
static const char *default_text(const struct akt_run_setting *s, char *buf, size_t n)
{
    const struct akt_param_def *d = &s->def;
    switch (d->type) {
    case AKT_PT_FLOAT: return akt_param_format_num((float)d->def, 1, buf, n);
    case AKT_PT_INT: snprintf(buf, n, "%.0f", d->def); return buf;
    case AKT_PT_BOOL: snprintf(buf, n, "%s", d->def ? "true" : "false"); return buf;
    case AKT_PT_CHOICE: return akt_param_choice_name(d->choices, (int)d->def, buf, n);
    default: snprintf(buf, n, "%s", d->def_text ? d->def_text : ""); return buf;
    }
}

static void sb_printf(char **s, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void sb_printf(char **s, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (*len + (size_t)k + 1 > *cap) {
        *cap = (*len + (size_t)k + 1) * 2;
        *s = realloc(*s, *cap);
        AKT_ASSERT(*s);
    }
    va_start(ap, fmt);
    vsnprintf(*s + *len, *cap - *len, fmt, ap);
    va_end(ap);
    *len += (size_t)k;
}

char *akt_run_settings_help(int markdown)
{
    char *s = NULL, desc[200], def[64];
    size_t len = 0, cap = 0;
    sb_printf(&s, &len, &cap, "%s", "");
    if (markdown)
        sb_printf(&s, &len, &cap, "| key | value | default | meaning |\n|---|---|---|---|\n");
    for (int i = 0; i < N_SETTINGS; i++) {
        const struct akt_run_setting *st = &SETTINGS[i];
        akt_param_describe(&st->def, list_max(st), desc, sizeof desc);
        default_text(st, def, sizeof def);
        if (st->flags & AKT_SETTING_ALIAS)
            def[0] = 0;
        if (markdown)
            sb_printf(&s, &len, &cap, "| `%s` | %s | %s%s%s | %s |\n", st->def.key, desc,
                      *def ? "`" : "", *def ? def : "-", *def ? "`" : "", st->def.help);
        else
            sb_printf(&s, &len, &cap, "  %-16s %s%s%s%s\n  %-16s   %s\n", st->def.key, desc,
                      *def ? " (default " : "", def, *def ? ")" : "", "", st->def.help);
    }
    if (markdown)
        sb_printf(&s, &len, &cap, "| `generator.KEY`, `loss.KEY` | see `akt plugins` | the "
                                  "plugin's | the plugin's parameters |\n");
    else
        sb_printf(&s, &len, &cap, "  %-16s %s\n", "generator.KEY",
                  "the plugin's parameters (see 'akt plugins'); also loss.KEY");
    return s;
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

static int emit_params(yaml_emitter_t *em, const char *prefix, const struct akt_plugin *p,
                       const struct akt_param_values *v)
{
    char key[160], buf[128];
    int ok = 1;
    for (int i = 0; ok && p && i < p->n_params; i++) {
        snprintf(key, sizeof key, "%s.%s", prefix, p->params[i].key);
        ok = emit_kv(em, key, akt_params_format(p, v, i, buf, sizeof buf),
                     YAML_PLAIN_SCALAR_STYLE);
    }
    return ok;
}

/* One setting of the table: key and value as akt_run_config_set reads them. */
static int emit_setting(yaml_emitter_t *em, const struct akt_run_config *c,
                        const struct akt_run_setting *s)
{
    const yaml_scalar_style_t P = YAML_PLAIN_SCALAR_STYLE;
    const void *f = cfield(c, s->off);
    char buf[64];
    switch (s->def.type) {
    case AKT_PT_STRING:
        return emit_kv(em, s->def.key, f,
                       s->flags & AKT_SETTING_QUOTED ? YAML_DOUBLE_QUOTED_SCALAR_STYLE : P);
    case AKT_PT_FLOAT:
        return emit_kv(em, s->def.key, akt_param_format_num(*(const float *)f, 1, buf, sizeof buf),
                       P);
    case AKT_PT_INT:
        if (s->size == sizeof(uint64_t))
            return emit_int(em, s->def.key, (long long)*(const uint64_t *)f);
        return emit_int(em, s->def.key, *(const int *)f);
    case AKT_PT_BOOL: return emit_kv(em, s->def.key, *(const int *)f ? "true" : "false", P);
    case AKT_PT_CHOICE:
        return emit_kv(em, s->def.key,
                       akt_param_choice_name(s->def.choices, *(const int *)f, buf, sizeof buf), P);
    case AKT_PT_LIST: {
        yaml_event_t ev;
        int ok = emit_scalar(em, s->def.key, P) &&
                 yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1,
                                                      YAML_FLOW_SEQUENCE_STYLE) &&
                 yaml_emitter_emit(em, &ev);
        int n = *(const int *)cfield(c, s->off2);
        for (int i = 0; ok && i < n; i++) {
            snprintf(buf, sizeof buf, "%d", ((const int *)f)[i]);
            ok = emit_scalar(em, buf, P);
        }
        return ok && yaml_sequence_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev);
    }
    }
    return 0;
}

static int emit_config(yaml_emitter_t *em, const struct akt_run_config *c,
                       const struct akt_plugin *gen, const struct akt_plugin *loss)
{
    yaml_event_t ev;
    int ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) &&
             yaml_emitter_emit(em, &ev) &&
             yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) &&
             yaml_emitter_emit(em, &ev) &&
             yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE) &&
             yaml_emitter_emit(em, &ev);
    for (int i = 0; ok && i < N_SETTINGS; i++) {
        const struct akt_run_setting *s = &SETTINGS[i];
        if (s->flags & (AKT_SETTING_ALIAS | AKT_SETTING_UNSTORED))
            continue;
        ok = emit_setting(em, c, s);
        if (ok && (s->flags & AKT_SETTING_PLUGIN)) { /* its parameters follow the name */
            int is_gen = s->off == offsetof(struct akt_run_config, generator);
            ok = emit_params(em, s->def.key, is_gen ? gen : loss,
                             is_gen ? &c->gen_params : &c->loss_params);
        }
    }
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

/* A whole-text finite number. */
static int text_number(const char *s, double *x)
{
    char *end;
    if (!*s || isspace((unsigned char)*s))
        return 0;
    *x = strtod(s, &end);
    return !*end && isfinite(*x);
}

/* Values written differently may be the same number: 1e-4 and 0.0001, or
 * 9.99999975e-05 (how akt wrote float settings before) and 1e-4 for a
 * float setting. */
static int same_value(const char *key, const char *a, const char *b)
{
    double x, y;
    if (!strcmp(a, b))
        return 1;
    if (!text_number(a, &x) || !text_number(b, &y))
        return 0;
    const struct akt_run_setting *s = akt_run_setting_find(key);
    if (s && s->def.type == AKT_PT_FLOAT)
        return (float)x == (float)y;
    return x == y;
}

/* Execution settings: how a run is computed, not what it computes, so not
 * part of its identity. Configs that earlier akt versions stored still have
 * threads. */
static int is_execution_key(const char *key)
{
    return !strcmp(key, "threads") || !strcmp(key, "keep_checkpoints");
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
        if (!v || !same_value(la.key[i], v, la.val[i])) {
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
