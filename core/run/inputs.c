/* The files a run reads, teacher and evaluation data (results/README.md,
 * "Inputs"): recorded when the run starts as resolved absolute paths with
 * their SHA-256, checked when it resumes (the same bytes, or a refusal),
 * and found again for a stored run (akt hessian) when the results file or
 * the data moved. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const KEY[2] = {"teacher", "data"};

static char *config_path(struct akt_run_config *c, int k)
{
    return k == 0 ? c->teacher_path : c->data_path;
}

int akt__inputs_hash(const struct akt_run_config *c, struct akt__inputs *in, struct akt_error *e)
{
    memset(in, 0, sizeof *in);
    for (int k = 0; k < 2; k++) {
        const char *p = config_path((struct akt_run_config *)c, k);
        int rc = akt_sha256_file(p, in->sha[k], e);
        if (rc)
            return rc;
        if (akt_path_absolute(p, in->abs[k], sizeof in->abs[k]))
            return akt_error_set(e, AKT_EIO, p, "cannot resolve the %s file's absolute path",
                                 KEY[k]);
    }
    return 0;
}

int akt__inputs_check(struct akt_results *f, const char *file, const char *id,
                      const struct akt__inputs *in, struct akt_error *e)
{
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        char name[32];
        snprintf(name, sizeof name, "%s_sha256", KEY[k]);
        char *stored = akt_results_run_str(f, id, name);
        if (stored && strcmp(stored, in->sha[k])) {
            char w[1400];
            snprintf(w, sizeof w, "%s:/runs/%s", file, id);
            rc = akt_error_set(e, AKT_EINVAL, w,
                               "the %s file %s changed since the run started (sha256 %.12s..., "
                               "stored %.12s...): not resumed (nothing was changed); restore "
                               "the file or choose another id or results file",
                               KEY[k], in->abs[k], in->sha[k], stored);
        }
        free(stored);
    }
    return rc;
}

int akt__inputs_write(struct akt_results *h, const char *id, const struct akt__inputs *in,
                      struct akt_error *e)
{
    int rc = 0;
    for (int k = 0; k < 2 && !rc; k++) {
        char name[32];
        snprintf(name, sizeof name, "%s_file", KEY[k]);
        rc = akt_results_set_attr_str(h, id, name, in->abs[k], e);
        snprintf(name, sizeof name, "%s_sha256", KEY[k]);
        if (!rc)
            rc = akt_results_set_attr_str(h, id, name, in->sha[k], e);
    }
    return rc;
}

/* ------------------------------------------------- finding them again --- */

struct tried {
    char text[1600];
    size_t n;
};

static void tried_add(struct tried *t, const char *path, const char *why)
{
    if (t->n < sizeof t->text)
        t->n += snprintf(t->text + t->n, sizeof t->text - t->n, "%s%s (%s)", t->n ? ", " : "",
                         path, why);
}

/* The last `parts` components of path ("teachers/x.h5" for 2). */
static const char *tail_of(const char *path, int parts)
{
    const char *p = path + strlen(path);
    while (p > path && parts > 0) {
        p--;
        if (*p == '/' && --parts == 0)
            return p + 1;
    }
    return path;
}

/* 1 when candidate is the file (exists, and has the stored hash when one is
 * stored), else 0 with the reason in t. */
static int try_one(const char *cand, const char *sha, struct tried *t)
{
    int exists = 0;
    struct akt_error e2 = {0};
    if (!*cand || akt_file_check(cand, &exists, &e2) || !exists) {
        tried_add(t, cand, "missing");
        return 0;
    }
    char got[65];
    if (akt_sha256_file(cand, got, &e2)) {
        tried_add(t, cand, "unreadable");
        return 0;
    }
    if (sha && strcmp(sha, got)) {
        tried_add(t, cand, "other contents: sha256 differs");
        return 0;
    }
    return 1;
}

int akt__inputs_find(struct akt_results *f, const char *file, const char *id,
                     struct akt_run_config *c, struct akt_error *e)
{
    const char *root = getenv("AKT_DATA");
    char dir[1300];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        snprintf(dir, sizeof dir, ".");
    for (int k = 0; k < 2; k++) {
        char name[32], *p = config_path(c, k);
        snprintf(name, sizeof name, "%s_file", KEY[k]);
        char *stored = akt_results_run_str(f, id, name);
        snprintf(name, sizeof name, "%s_sha256", KEY[k]);
        char *sha = akt_results_run_str(f, id, name);
        /* where it was, where the config says, then the same names under
         * AKT_DATA and beside the results file */
        char hint[1100]; /* the name to look for, e.g. teachers/x.h5 */
        snprintf(hint, sizeof hint, "%s", tail_of(stored && *stored ? stored : p, 2));
        const char *name_of = stored && *stored ? stored : p;
        char cand[8][3400];
        int n = 0;
        if (stored)
            snprintf(cand[n++], sizeof cand[0], "%s", stored);
        snprintf(cand[n++], sizeof cand[0], "%s", p);
        for (int b = 0; b < 2; b++) {
            const char *base = b == 0 ? (root && *root ? root : NULL) : dir;
            if (!base)
                continue;
            if (p[0] != '/')
                snprintf(cand[n++], sizeof cand[0], "%s/%s", base, p);
            snprintf(cand[n++], sizeof cand[0], "%s/%s", base, tail_of(name_of, 2));
            snprintf(cand[n++], sizeof cand[0], "%s/%s", base, tail_of(name_of, 1));
        }
        struct tried t = {{0}, 0};
        int found = -1;
        for (int i = 0; i < n && found < 0; i++) {
            int dup = 0;
            for (int j = 0; j < i; j++)
                dup |= !strcmp(cand[i], cand[j]);
            if (!dup && try_one(cand[i], sha, &t))
                found = i;
        }
        free(stored);
        free(sha);
        if (found < 0) {
            char w[1400];
            snprintf(w, sizeof w, "%s:/runs/%s", file, id);
            return akt_error_set(e, AKT_EIO, w,
                                 "the run's %s file is not found (set AKT_DATA to the folder "
                                 "that holds %s); tried %s", KEY[k], hint, t.text);
        }
        if (strlen(cand[found]) >= sizeof c->teacher_path)
            return akt_error_set(e, AKT_EINVAL, cand[found], "path too long");
        snprintf(p, sizeof c->teacher_path, "%s", cand[found]);
    }
    return 0;
}
