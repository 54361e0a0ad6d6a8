/* Setting values from text: the one parser and formatter behind every
 * setting a user writes, plugin parameters (akt/registry.h) and run
 * settings (akt/run.h) alike, driven by a parameter table entry (struct
 * akt_param_def, akt/plugin.h). So `--set`, YAML experiments and stored
 * configs accept the same spellings and give the same messages. */
#ifndef AKT_PARAMS_H
#define AKT_PARAMS_H

#include <stddef.h>

#include "akt/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most items of a LIST value. */
#define AKT_PARAM_LIST_MAX 16

struct akt_param_parsed {
    double num; /* FLOAT, INT, BOOL (0 or 1), CHOICE (the index) */
    int n;      /* LIST: items in item[] */
    double item[AKT_PARAM_LIST_MAX];
};

/* Parses value as d describes it:
 *   FLOAT   a finite decimal in [lo, hi] ("1e-4", "0.9");
 *   INT     a base-10 integer in [lo, hi];
 *   BOOL    true/false, yes/no, 1/0, in any case (akt_param_parse_bool);
 *   CHOICE  one of d->choices by name;
 *   STRING  any text passing d->check (the caller copies it);
 *   LIST    integers in [lo, hi] separated by "," or blanks, optionally in
 *           [ ], at most max_items of them; "", "[]" or "none" for none.
 * A wrong value is AKT_EINVAL with where (e.g. "--set lr_student",
 * "exp.yaml:3:15 lr_student") and a message naming the value and what is
 * accepted: "expects a number in [0, 10], got 'abc'", "20 is out of range
 * [0, 10]", "'fast' is not one of: as_coded, plain". */
int akt_param_parse(const struct akt_param_def *d, const char *value, int max_items,
                    struct akt_param_parsed *out, const char *where, struct akt_error *e);
/* 0 and *out = 1 or 0 for the spellings above, -1 for anything else. */
int akt_param_parse_bool(const char *s, int *out);
/* What d accepts, as the messages and the help say it: "an integer in
 * [2, 8]", "a number in [0, 10]", "true or false", "one of: a, b", "text",
 * "a list of integers in [1, 100000] (at most 8) or none". */
const char *akt_param_describe(const struct akt_param_def *d, int max_items, char *buf,
                               size_t n);
/* The shortest decimal that reads back as x: as the same float when
 * float32 is non-zero (a float setting), else as the same double. Written
 * with an exponent below 1e-3 ("1e-4", "2.5e-5"), plainly up to 1e6
 * ("0.001", "0.9", "1000") and beyond when that is not longer ("123456792",
 * but "1e8"); "inf"/"nan" as such. Never longer than "%.9g" / "%.17g"
 * would be, by more than one character. */
const char *akt_param_format_num(double x, int float32, char *buf, size_t n);

/* CHOICE lists, "sum|batchmean|mean": the number of names, the index of
 * name (-1 when absent), name i into buf ("" when out of range). */
int akt_param_choice_count(const char *choices);
int akt_param_choice_find(const char *choices, const char *name);
const char *akt_param_choice_name(const char *choices, int i, char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
