/* akt plugins: the generator and loss plugins found, with their parameters. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "akt/registry.h"
#include "cli.h"

static const char *PLUGINS_USAGE =
    "usage: akt plugins [--plugin-dir DIR]... [--help]\n"
    "\n"
    "Lists every generator and loss plugin found, the file it came from and its\n"
    "parameters: key, type, default, range or choices, and what it does. Set a\n"
    "parameter in an experiment's YAML or with --set loss.KEY=VALUE.\n"
    "\n"
    "  --plugin-dir DIR  look in DIR (every *.so) instead of the default folders;\n"
    "                    repeatable\n"
    "\n"
    "Default folders: $AKT_PLUGIN_PATH (colon-separated) if set, else the build\n"
    "tree's plugin folders (generators, losses, synq, hast, synthset), then the\n"
    "install folder (an installed akt: only the install folder). A file name\n"
    "found in an earlier folder hides the same name in later ones.\n"
    "Writing a plugin: plugins/README.md.\n";

#define MAX_DIRS 64

/* Shortest text that reads back as the same number ("1e8", "0.1"). */
static const char *num(double x, char *buf, size_t n)
{
    return akt_param_format_num(x, 0, buf, n);
}

/* Range or choices column of a parameter. */
static const char *domain(const struct akt_param_def *d, char *buf, size_t n)
{
    char a[32], b[32];
    switch (d->type) {
    case AKT_PT_FLOAT:
    case AKT_PT_INT: snprintf(buf, n, "[%s, %s]", num(d->lo, a, sizeof a), num(d->hi, b, sizeof b)); break;
    case AKT_PT_BOOL: snprintf(buf, n, "true|false"); break;
    case AKT_PT_CHOICE: snprintf(buf, n, "%s", d->choices); break;
    case AKT_PT_STRING: snprintf(buf, n, "text"); break;
    default: snprintf(buf, n, "?"); break;
    }
    return buf;
}

static const char *type_word(enum akt_ptype t)
{
    switch (t) {
    case AKT_PT_FLOAT: return "float";
    case AKT_PT_INT: return "int";
    case AKT_PT_BOOL: return "bool";
    case AKT_PT_CHOICE: return "choice";
    case AKT_PT_STRING: return "string";
    case AKT_PT_LIST: return "list"; /* run settings only */
    }
    return "?";
}

static int width(int w, const char *s)
{
    int l = (int)strlen(s);
    return l > w ? l : w;
}

static void print_plugin(const struct akt_registry_entry *en)
{
    const struct akt_plugin *p = en->plugin;
    int gen = p->kind == AKT_PLUGIN_GENERATOR;
    printf("%-9s %s\n", gen ? "generator" : "loss", p->name);
    if (p->summary[0])
        printf("    %s\n", p->summary);
    printf("    file: %s\n", en->path);
    if (gen) {
        /* lr is a float: print the float, not its double expansion */
        char lr[32];
        akt_param_format_num(p->ops.gen.lr, 1, lr, sizeof lr);
        printf("    learning rate %s, logit loss %s%s%s\n", lr,
               akt_logit_loss_name(p->ops.gen.logit_loss),
               p->ops.gen.needs_student ? ", runs the student" : "",
               p->ops.gen.update ? "" : ", nothing to train");
    } else {
        if (p->ops.loss.needs_features)
            printf("    uses the body outputs F_1..F_3n\n");
        if (p->ops.loss.prepare)
            printf("    prepares the student step's images (the teacher runs on them again)\n");
    }
    if (p->n_params == 0) {
        printf("    parameters: none\n");
        return;
    }
    /* Column widths from the header and every row, so the table lines up. */
    struct akt_param_values v;
    akt_params_defaults(p, &v);
    char def[AKT_PLUGIN_MAX_PARAMS][64], dom[AKT_PLUGIN_MAX_PARAMS][256];
    int wk = 3, wt = 4, wd = 7, wr = 13;
    for (int i = 0; i < p->n_params; i++) {
        akt_params_format(p, &v, i, def[i], sizeof def[i]);
        domain(&p->params[i], dom[i], sizeof dom[i]);
        wk = width(wk, p->params[i].key);
        wt = width(wt, type_word(p->params[i].type));
        wd = width(wd, def[i]);
        wr = width(wr, dom[i]);
    }
    printf("    parameters:\n");
    printf("      %-*s  %-*s  %-*s  %-*s  %s\n", wk, "key", wt, "type", wd, "default", wr,
           "range/choices", "help");
    for (int i = 0; i < p->n_params; i++) {
        const struct akt_param_def *d = &p->params[i];
        printf("      %-*s  %-*s  %-*s  %-*s  %s\n", wk, d->key, wt, type_word(d->type), wd,
               def[i], wr, dom[i], d->help ? d->help : "");
    }
}

/* Generators first, then losses, each by name. */
static int by_kind_name(const void *a, const void *b)
{
    const struct akt_plugin *p = (*(const struct akt_registry_entry *const *)a)->plugin;
    const struct akt_plugin *q = (*(const struct akt_registry_entry *const *)b)->plugin;
    if (p->kind != q->kind)
        return p->kind == AKT_PLUGIN_GENERATOR ? -1 : 1;
    return strcmp(p->name, q->name);
}

int akt_cmd_plugins(int argc, char **argv)
{
    static const struct option opts[] = {
        {"plugin-dir", required_argument, 0, 'd'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *dirs[MAX_DIRS];
    int n_dirs = 0;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (n_dirs == MAX_DIRS)
                return akt_cli_usage_error("plugins", "more than %d --plugin-dir options",
                                           MAX_DIRS);
            dirs[n_dirs++] = optarg;
            break;
        case 'h': fputs(PLUGINS_USAGE, stdout); return 0;
        case ':':
            return akt_cli_usage_error("plugins", "option '%s' needs a value", argv[optind - 1]);
        default: return akt_cli_usage_error("plugins", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return akt_cli_usage_error("plugins", "unexpected argument '%s'", argv[optind]);

    struct akt_registry reg;
    if (akt_cli_load_plugins(&reg, dirs, n_dirs))
        return 1;
    struct akt_error e = {0};
    if (reg.n == 0) {
        printf("no plugins found (see 'akt plugins --help' for where akt looks)\n");
        akt_registry_free(&reg);
        return 0;
    }
    const struct akt_registry_entry **order = malloc((size_t)reg.n * sizeof *order);
    if (!order) {
        akt_registry_free(&reg);
        akt_error_set(&e, AKT_ENOMEM, "plugins", "out of memory");
        return akt_cli_fail(&e);
    }
    for (int i = 0; i < reg.n; i++)
        order[i] = &reg.entries[i];
    qsort(order, (size_t)reg.n, sizeof *order, by_kind_name);
    for (int i = 0; i < reg.n; i++) {
        if (i)
            printf("\n");
        print_plugin(order[i]);
    }
    free(order);
    akt_registry_free(&reg);
    return 0;
}
