/* Setting values from text (akt/params.h): one parser and one number
 * formatter for plugin parameters and run settings. */
#include "akt/params.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* --------------------------------------------------------------- choices -- */
int akt_param_choice_count(const char *choices)
{
    int n = 1;
    for (const char *c = choices; *c; c++)
        n += *c == '|';
    return n;
}

int akt_param_choice_find(const char *choices, const char *name)
{
    size_t len = strlen(name);
    int i = 0;
    for (const char *c = choices;; i++) {
        const char *bar = strchr(c, '|');
        size_t l = bar ? (size_t)(bar - c) : strlen(c);
        if (l == len && !strncmp(c, name, len))
            return i;
        if (!bar)
            return -1;
        c = bar + 1;
    }
}

const char *akt_param_choice_name(const char *choices, int i, char *buf, size_t n)
{
    const char *c = choices;
    for (; i > 0 && c; i--) {
        c = strchr(c, '|');
        if (c)
            c++;
    }
    if (!c || i < 0) {
        snprintf(buf, n, "%s", "");
        return buf;
    }
    const char *bar = strchr(c, '|');
    int l = bar ? (int)(bar - c) : (int)strlen(c);
    snprintf(buf, n, "%.*s", l, c);
    return buf;
}

/* "a|b|c" as "a, b, c" for messages. */
static const char *choices_list(const char *choices, char *buf, size_t n)
{
    size_t j = 0;
    for (const char *c = choices; *c && j + 3 < n; c++) {
        if (*c == '|') {
            buf[j++] = ',';
            buf[j++] = ' ';
        } else {
            buf[j++] = *c;
        }
    }
    buf[j] = 0;
    return buf;
}

/* --------------------------------------------------------------- numbers -- */
const char *akt_param_format_num(double x, int float32, char *buf, size_t n)
{
    if (!isfinite(x) || x == 0) {
        snprintf(buf, n, x == 0 ? (signbit(x) ? "-0" : "0") : "%g", x);
        return buf;
    }
    /* the fewest significant digits that read back as x */
    char e[40];
    int p = 1, maxp = float32 ? 9 : 17;
    for (; p <= maxp; p++) {
        snprintf(e, sizeof e, "%.*e", p - 1, x);
        double y = strtod(e, NULL);
        if (float32 ? (float)y == (float)x : y == x)
            break;
    }
    if (p > maxp)
        p = maxp;
    /* e is [-]D[.DDD]e[+-]XX: its digits and exponent */
    char digits[24];
    int nd = 0, neg = e[0] == '-';
    const char *s = e + neg;
    for (; *s && *s != 'e'; s++)
        if (*s != '.')
            digits[nd++] = *s;
    digits[nd] = 0;
    int x10 = atoi(s + 1);
    char out[64];
    size_t o = 0;
    if (neg)
        out[o++] = '-';
    /* plain from 1e-3 to below 1e6 (0.001, 1000) and beyond when not
     * longer than with an exponent (123456792); else 1e-4, 2.5e7 */
    int plain_len = x10 + 1 >= nd ? x10 + 1 : nd + 1;
    int exp_len = (nd > 1 ? nd + 1 : 1) + 1 + snprintf(NULL, 0, "%d", x10);
    if (x10 < -3 || (x10 >= 6 && plain_len > exp_len)) {
        out[o++] = digits[0];
        if (nd > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, (size_t)nd - 1);
            o += (size_t)nd - 1;
        }
        o += (size_t)snprintf(out + o, sizeof out - o, "e%d", x10);
    } else if (x10 < 0) {
        out[o++] = '0';
        out[o++] = '.';
        for (int k = 0; k < -x10 - 1; k++)
            out[o++] = '0';
        memcpy(out + o, digits, (size_t)nd);
        o += (size_t)nd;
    } else {
        for (int k = 0; k <= x10 || k < nd; k++) {
            if (k == x10 + 1)
                out[o++] = '.';
            out[o++] = k < nd ? digits[k] : '0';
        }
    }
    out[o] = 0;
    snprintf(buf, n, "%s", out);
    return buf;
}

int akt_param_parse_bool(const char *s, int *out)
{
    if (!strcasecmp(s, "true") || !strcasecmp(s, "yes") || !strcmp(s, "1"))
        *out = 1;
    else if (!strcasecmp(s, "false") || !strcasecmp(s, "no") || !strcmp(s, "0"))
        *out = 0;
    else
        return -1;
    return 0;
}

const char *akt_param_describe(const struct akt_param_def *d, int max_items, char *buf,
                               size_t n)
{
    char a[40], b[40], cl[300];
    switch (d->type) {
    case AKT_PT_FLOAT:
        snprintf(buf, n, "a number in [%s, %s]", akt_param_format_num(d->lo, 0, a, sizeof a),
                 akt_param_format_num(d->hi, 0, b, sizeof b));
        break;
    case AKT_PT_INT:
        snprintf(buf, n, "an integer in [%s, %s]", akt_param_format_num(d->lo, 0, a, sizeof a),
                 akt_param_format_num(d->hi, 0, b, sizeof b));
        break;
    case AKT_PT_BOOL: snprintf(buf, n, "true or false"); break;
    case AKT_PT_CHOICE:
        snprintf(buf, n, "one of: %s", choices_list(d->choices ? d->choices : "", cl, sizeof cl));
        break;
    case AKT_PT_STRING: snprintf(buf, n, "text"); break;
    case AKT_PT_LIST:
        snprintf(buf, n, "a list of integers in [%s, %s] (at most %d) or none",
                 akt_param_format_num(d->lo, 0, a, sizeof a),
                 akt_param_format_num(d->hi, 0, b, sizeof b), max_items);
        break;
    default: snprintf(buf, n, "?"); break;
    }
    return buf;
}

/* A whole-text number: 0 and *x, or -1 (empty, leading blank, junk after). */
static int whole_double(const char *s, double *x)
{
    if (!*s || isspace((unsigned char)s[0])) /* strtod would skip blanks */
        return -1;
    char *end;
    errno = 0;
    *x = strtod(s, &end);
    return *end ? -1 : 0;
}

static int whole_int(const char *s, double *x, int *overflow)
{
    if (!*s || isspace((unsigned char)s[0]))
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end)
        return -1;
    *overflow = errno == ERANGE;
    *x = (double)v;
    return 0;
}

static int out_of_range(const struct akt_param_def *d, const char *value, const char *where,
                        struct akt_error *e)
{
    char a[40], b[40];
    return akt_error_set(e, AKT_EINVAL, where, "%s is out of range [%s, %s]", value,
                         akt_param_format_num(d->lo, 0, a, sizeof a),
                         akt_param_format_num(d->hi, 0, b, sizeof b));
}

static int parse_list(const struct akt_param_def *d, const char *value, int max_items,
                      struct akt_param_parsed *out, const char *where, struct akt_error *e)
{
    char desc[200], item[64];
    out->n = 0;
    const char *p = value, *end = value + strlen(value);
    while (p < end && isspace((unsigned char)*p))
        p++;
    if (p < end && *p == '[') {
        p++;
        while (end > p && isspace((unsigned char)end[-1]))
            end--;
        if (end == p || end[-1] != ']')
            return akt_error_set(e, AKT_EINVAL, where, "expects %s, got '%s' (no closing ])",
                                 akt_param_describe(d, max_items, desc, sizeof desc), value);
        end--;
    }
    if ((size_t)(end - p) == 4 && !strncmp(p, "none", 4))
        return 0;
    while (p < end) {
        while (p < end && (*p == ',' || isspace((unsigned char)*p)))
            p++;
        if (p == end)
            break;
        const char *q = p;
        while (q < end && *q != ',' && !isspace((unsigned char)*q))
            q++;
        snprintf(item, sizeof item, "%.*s", (int)(q - p), p);
        double x;
        int overflow = 0;
        if (whole_int(item, &x, &overflow) || (size_t)(q - p) >= sizeof item)
            return akt_error_set(e, AKT_EINVAL, where, "expects %s, got '%s' in '%s'",
                                 akt_param_describe(d, max_items, desc, sizeof desc), item,
                                 value);
        if (overflow || x < d->lo || x > d->hi)
            return out_of_range(d, item, where, e);
        if (out->n == max_items)
            return akt_error_set(e, AKT_EINVAL, where, "'%s' has more than %d items", value,
                                 max_items);
        out->item[out->n++] = x;
        p = q;
    }
    return 0;
}

int akt_param_parse(const struct akt_param_def *d, const char *value, int max_items,
                    struct akt_param_parsed *out, const char *where, struct akt_error *e)
{
    char desc[400];
    memset(out, 0, sizeof *out);
    if (!value)
        value = "";
    switch (d->type) {
    case AKT_PT_FLOAT: {
        double x;
        if (whole_double(value, &x))
            return akt_error_set(e, AKT_EINVAL, where, "expects %s, got '%s'",
                                 akt_param_describe(d, 0, desc, sizeof desc), value);
        if (!isfinite(x))
            return akt_error_set(e, AKT_EINVAL, where, "%s is not a finite number", value);
        if (x < d->lo || x > d->hi)
            return out_of_range(d, value, where, e);
        out->num = x;
        return 0;
    }
    case AKT_PT_INT: {
        double x;
        int overflow = 0;
        if (whole_int(value, &x, &overflow))
            return akt_error_set(e, AKT_EINVAL, where, "expects %s, got '%s'",
                                 akt_param_describe(d, 0, desc, sizeof desc), value);
        if (overflow || x < d->lo || x > d->hi) /* beyond long long: beyond any range too */
            return out_of_range(d, value, where, e);
        out->num = x;
        return 0;
    }
    case AKT_PT_BOOL: {
        int b;
        if (akt_param_parse_bool(value, &b))
            return akt_error_set(e, AKT_EINVAL, where,
                                 "expects true or false, got '%s' (true/false, yes/no, 1/0 in "
                                 "any case)", value);
        out->num = b;
        return 0;
    }
    case AKT_PT_CHOICE: {
        int c = akt_param_choice_find(d->choices, value);
        if (c < 0)
            return akt_error_set(e, AKT_EINVAL, where, "'%s' is not one of: %s", value,
                                 choices_list(d->choices, desc, sizeof desc));
        out->num = c;
        return 0;
    }
    case AKT_PT_STRING: {
        char why[256];
        if (d->check && d->check(value, why, sizeof why))
            return akt_error_set(e, AKT_EINVAL, where, "'%.100s': %s", value, why);
        return 0;
    }
    case AKT_PT_LIST:
        if (max_items > AKT_PARAM_LIST_MAX)
            max_items = AKT_PARAM_LIST_MAX;
        return parse_list(d, value, max_items, out, where, e);
    }
    return akt_error_set(e, AKT_EINVAL, where, "unknown parameter type %d", (int)d->type);
}
