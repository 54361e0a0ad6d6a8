/* The fake host of the plugin tests (plugin_generators.c, plugin_loader.c,
 * plugin_losses.c, plugin_sota.c; the runner's own host is core/run/host.c):
 * a struct akt_host whose ctx is a struct fake_host that records the
 * metrics (each name's latest value, the calls), counts log lines (printed
 * as TAP comments) and runs the networks it is given for the forwards.
 * Include after cmocka (failures go through fail_msg). Tests only,
 * header-only. */
#ifndef AKT_TEST_FAKE_HOST_H
#define AKT_TEST_FAKE_HOST_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "akt/plugin.h"

#define FAKE_MAX_METRICS 16
struct fake_host {
    int n;                                /* metric names reported */
    char name[FAKE_MAX_METRICS][32];
    double value[FAKE_MAX_METRICS];       /* each name's latest value */
    int calls;                            /* metric() calls in all */
    int once;                             /* 1: a name reported twice fails the test */
    int log_lines;
    const struct akt_resnet *teacher, *student; /* the forwards' networks (may be NULL) */
};

static inline void host_metric(const struct akt_host *h, const char *name, double value)
{
    struct fake_host *f = h->ctx;
    f->calls++;
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->name[i], name)) {
            if (f->once)
                fail_msg("metric %s reported twice in one call", name);
            f->value[i] = value;
            return;
        }
    assert_true(f->n < FAKE_MAX_METRICS);
    snprintf(f->name[f->n], sizeof f->name[0], "%s", name);
    f->value[f->n++] = value;
}

static inline void host_log(const struct akt_host *h, const char *fmt, ...)
{
    struct fake_host *f = h->ctx;
    if (f)
        f->log_lines++;
    va_list ap;
    va_start(ap, fmt);
    printf("# ");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
}

/* The frozen teacher and the student as plain networks (no quantizers). */
static inline void host_teacher_forward(const struct akt_host *h, struct akt_tape *t,
                                        struct akt_tensor *x, struct akt_resnet_out *out)
{
    const struct fake_host *f = h->ctx;
    assert_non_null(f->teacher);
    struct akt_resnet_opts o = {0};
    akt_resnet_forward(f->teacher, t, x, &o, out);
}

static inline void host_student_forward(const struct akt_host *h, struct akt_tape *t,
                                        struct akt_tensor *x, struct akt_resnet_out *out)
{
    const struct fake_host *f = h->ctx;
    assert_non_null(f->student);
    struct akt_resnet_opts o = {0};
    akt_resnet_forward(f->student, t, x, &o, out);
}

/* A host of num_classes classes and batch images at bits for both, on f
 * (cleared; once as given); rng may be NULL. It lends no networks until
 * fake_host_lend. */
static inline struct akt_host fake_host_make(struct fake_host *f, int once, int num_classes,
                                             int batch, int bits, struct akt_rng *rng)
{
    memset(f, 0, sizeof *f);
    f->once = once;
    return (struct akt_host){.abi = AKT_PLUGIN_ABI, .size = sizeof(struct akt_host), .rng = rng,
                             .num_classes = num_classes, .batch = batch, .wbits = bits,
                             .abits = bits, .metric = host_metric, .log = host_log,
                             .ctx = f};
}

/* The teacher (h->teacher and teacher_forward) and the student
 * (student_forward; may be NULL) the host lends. */
static inline void fake_host_lend(struct akt_host *h, const struct akt_resnet *teacher,
                                  const struct akt_resnet *student)
{
    struct fake_host *f = h->ctx;
    h->teacher = f->teacher = teacher;
    h->teacher_forward = host_teacher_forward;
    f->student = student;
    h->student_forward = student ? host_student_forward : NULL;
}

/* The latest value of a metric, or NULL when it was not reported. */
static inline const double *metric(const struct fake_host *f, const char *name)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->name[i], name))
            return &f->value[i];
    return NULL;
}

#endif
