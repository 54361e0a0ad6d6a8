/* Plugin loading (dlopen) and parameter validation, host side. */
#ifndef AKT_REGISTRY_H
#define AKT_REGISTRY_H

#include "akt/params.h"
#include "akt/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

struct akt_registry_entry {
    const struct akt_plugin *plugin;
    char path[512]; /* the .so it came from */
};

struct akt_registry {
    int n, cap;
    struct akt_registry_entry *entries;
    int n_handles;
    void **handles; /* dlopen handles, closed by akt_registry_free */
};

void akt_registry_init(struct akt_registry *r);
/* Loads one .so and registers every descriptor it enumerates. Refuses, with
 * the file named: a missing/unloadable file (dlerror text), a missing
 * akt_plugin_get, a descriptor whose abi differs from AKT_PLUGIN_ABI (both
 * numbers named), a size too small, a missing name/create/destroy or op, an
 * unknown kind, a bad parameter table (default outside its range, ...), and a
 * name already registered for the same kind (both files named). */
int akt_registry_load_file(struct akt_registry *r, const char *path, struct akt_error *e);
/* Every *.so in dir, in name order (deterministic). */
int akt_registry_load_dir(struct akt_registry *r, const char *dir, struct akt_error *e);
/* The plugin search path, in order: the folders in dirs (each may be a
 * colon-separated list; `--plugin-dir`), then those of $AKT_PLUGIN_PATH
 * (colon-separated), then the build and install folders compiled in
 * (AKT_PLUGIN_DIRS; builtin, when not NULL, is another colon-separated
 * list instead: an installed akt's own folder). User folders add to the
 * built-in ones, never replace
 * them. A file name an earlier folder already provided is skipped (as PATH
 * does: a user's build of akt_losses.so shadows the installed one); a
 * plugin name already registered from another file is an error naming both.
 * A user folder that does not exist is an error; a missing built-in folder
 * (the install folder before `meson install`) is skipped. */
int akt_registry_load_search_path(struct akt_registry *r, const char *const *dirs, int n_dirs,
                                  const char *builtin, struct akt_error *e);
/* akt_registry_load_search_path without --plugin-dir folders. */
int akt_registry_load_default(struct akt_registry *r, struct akt_error *e);
const struct akt_plugin *akt_registry_find(const struct akt_registry *r, enum akt_plugin_kind kind,
                                           const char *name);
void akt_registry_free(struct akt_registry *r);

/* Parameter values: defaults, then validated assignments from text. */
void akt_params_defaults(const struct akt_plugin *p, struct akt_param_values *v);
int akt_params_find(const struct akt_plugin *p, const char *key); /* index or -1 */
/* Parses value for key (numbers, true/false/yes/no/1/0 in any case, a choice
 * name, or text for STRING, checked by the parameter's check hook); where is
 * prefixed to errors, e.g. "--set loss.lambda" or "exp.yaml:12:5 loss.lambda".
 * Unknown key (listing the valid ones), wrong type, out of range, unknown
 * choice (listing the choices) are errors. */
int akt_params_set(const struct akt_plugin *p, struct akt_param_values *v, const char *key,
                   const char *value, const char *where, struct akt_error *e);
/* Text of a value as a user would write it ("1000", "true", "batchmean"). */
const char *akt_params_format(const struct akt_plugin *p, const struct akt_param_values *v, int i,
                              char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif
