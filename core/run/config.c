/* Run configuration: SPEC defaults, one validated setter shared by --set and
 * YAML experiments, and the YAML dump stored with every result. */
#include "akt/run.h"

#include <yaml.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    if (!strcmp(key, "id"))
        return copy_str(c->id, sizeof c->id, v, w, key, e);
    if (!strcmp(key, "teacher"))
        return copy_str(c->teacher_path, sizeof c->teacher_path, v, w, key, e);
    if (!strcmp(key, "data"))
        return copy_str(c->data_path, sizeof c->data_path, v, w, key, e);
    if (!strcmp(key, "out"))
        return copy_str(c->out_path, sizeof c->out_path, v, w, key, e);
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
                         "first_last_8bit range_ema eval_batch eval_limit out; plugin parameters: "
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

/* --------------------------------------------------------- YAML dump --- */
struct sbuf {
    char *s;
    size_t n, cap;
};

static void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (b->s && (size_t)k < b->cap - b->n) {
            b->n += k;
            return;
        }
        b->cap = b->cap * 2 + k + 256;
        b->s = realloc(b->s, b->cap);
        AKT_ASSERT(b->s);
    }
}

static void yaml_params(struct sbuf *b, const char *prefix, const struct akt_plugin *p,
                        const struct akt_param_values *v)
{
    char buf[64];
    for (int i = 0; p && i < p->n_params; i++)
        sb_printf(b, "%s.%s: %s\n", prefix, p->params[i].key,
                  akt_params_format(p, v, i, buf, sizeof buf));
}

/* Flat "key: value" lines, the same keys akt_run_config_set takes, so a
 * stored config can be replayed exactly. Paths are quoted. */
char *akt_run_config_yaml(const struct akt_run_config *c, const struct akt_plugin *gen,
                          const struct akt_plugin *loss)
{
    static const char *formats[] = {"auto", "cifar10", "cifar100", "cifar100-coarse"};
    struct sbuf b = {0};
    sb_printf(&b, "id: \"%s\"\n", c->id);
    sb_printf(&b, "teacher: \"%s\"\n", c->teacher_path);
    sb_printf(&b, "data: \"%s\"\n", c->data_path);
    sb_printf(&b, "format: %s\n", formats[c->data_format]);
    sb_printf(&b, "generator: %s\n", c->generator);
    yaml_params(&b, "generator", gen, &c->gen_params);
    sb_printf(&b, "loss: %s\n", c->loss);
    yaml_params(&b, "loss", loss, &c->loss_params);
    sb_printf(&b, "wbits: %d\nabits: %d\nepochs: %d\niters: %d\nbatch: %d\nseed: %llu\n",
              c->wbits, c->abits, c->epochs, c->iters, c->batch, (unsigned long long)c->seed);
    sb_printf(&b, "threads: %d\nwarmup_epochs: %d\ntracker_epochs: %d\n", c->threads,
              c->warmup_epochs, c->tracker_epochs);
    sb_printf(&b, "lr_student: %.9g\nlr_generator: %.9g\nmomentum: %.9g\nweight_decay: %.9g\n",
              c->lr_student, c->lr_generator, c->momentum, c->weight_decay);
    sb_printf(&b, "milestones: [");
    for (int i = 0; i < c->n_milestones; i++)
        sb_printf(&b, "%s%d", i ? ", " : "", c->milestones[i]);
    sb_printf(&b, "]\ngamma: %.9g\nfirst_last_8bit: %s\nrange_ema: %s\neval_batch: %d\n", c->gamma,
              c->first_last_8bit ? "true" : "false",
              c->range_ema == AKT_EMA_PLAIN ? "plain" : "as_coded", c->eval_batch);
    sb_printf(&b, "eval_limit: %d\n", c->eval_limit);
    return b.s;
}

/* ----------------------------------------------------- YAML lookup --- */
int akt_config_text_get(const char *text, const char *key, char *buf, size_t n)
{
    yaml_parser_t p;
    if (!text || !key || !buf || !n || !yaml_parser_initialize(&p))
        return -1;
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    /* a flat mapping: at depth 1, keys and values alternate */
    int depth = 0, is_key = 1, found = 0, rc = -1;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev))
            break;
        int done = ev.type == YAML_STREAM_END_EVENT;
        if (ev.type == YAML_MAPPING_START_EVENT || ev.type == YAML_SEQUENCE_START_EVENT) {
            if (depth == 1 && !is_key && found) /* the key holds a collection */
                done = 1;
            depth++;
        } else if (ev.type == YAML_MAPPING_END_EVENT || ev.type == YAML_SEQUENCE_END_EVENT) {
            depth--;
            if (depth == 1)
                is_key = 1;
        } else if (ev.type == YAML_SCALAR_EVENT && depth == 1) {
            const char *v = (const char *)ev.data.scalar.value;
            if (is_key) {
                found = !strcmp(v, key);
            } else if (found) {
                snprintf(buf, n, "%s", v);
                rc = 0;
                done = 1;
            }
            is_key = !is_key;
        }
        yaml_event_delete(&ev);
        if (done)
            break;
    }
    yaml_parser_delete(&p);
    return rc;
}
