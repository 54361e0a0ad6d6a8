/* The final tensors of a run (results/README.md, /runs/<id>/tensors): what a
 * researcher inspects after a run: the integer weights with their
 * per-channel scale and zero point (SPEC 2: w = (q + zp) / scale), the
 * student as trained, the activation ranges, a batch of generated images
 * with labels, and the teacher's and student's attention maps (AKT's spatial
 * and channel maps) on that batch. */
#include <stdio.h>
#include <stdlib.h>

#include "akt/distill.h"
#include "internal.h"

#define FINAL_IMAGES 16

static int write_quantized_weights(struct akt_results *out, const char *id, struct akt_run *r,
                                   struct akt_error *e)
{
    const struct akt_resnet *n = &r->student.net;
    int rc = 0;
    for (int i = 0; i < n->n_params && !rc; i++) {
        const struct akt_param *p = &n->params[i];
        int is_weight = p->kind == AKT_PARAM_WEIGHT && (p->ndim == 4 || p->ndim == 2);
        if (!is_weight)
            continue;
        int bits = akt_student_weight_bits(&r->student, i), rows = p->shape[0];
        int64_t cols = p->n / rows;
        int *q = malloc(p->n * sizeof *q);
        float *scale = malloc(rows * sizeof *scale), *zp = malloc(rows * sizeof *zp);
        AKT_ASSERT(q && scale && zp);
        const float *w = n->values + p->offset;
        for (int c = 0; c < rows; c++) {
            /* the fake quantizer's own parameters (SPEC 2), row = output channel */
            const float *row = w + c * cols;
            float lo = row[0], hi = row[0];
            for (int64_t k = 1; k < cols; k++) {
                lo = row[k] < lo ? row[k] : lo;
                hi = row[k] > hi ? row[k] : hi;
            }
            struct akt_qparams qp = akt_quant_params(lo, hi, bits);
            scale[c] = qp.scale;
            zp[c] = qp.zero_point;
            for (int64_t k = 0; k < cols; k++)
                q[c * cols + k] = (int)akt_quant_level(row[k], qp);
        }
        char grp[96];
        snprintf(grp, sizeof grp, "tensors/quant/%s", p->name);
        rc = akt_results_write(out, id, grp, "q", AKT_I32, q, 1, (int[]){(int)p->n}, e);
        if (!rc)
            rc = akt_results_write(out, id, grp, "scale", AKT_F32, scale, 1, &rows, e);
        if (!rc)
            rc = akt_results_write(out, id, grp, "zero_point", AKT_F32, zp, 1, &rows, e);
        if (!rc)
            rc = akt_results_write(out, id, grp, "shape", AKT_I32, p->shape, 1, &p->ndim, e);
        if (!rc)
            rc = akt_results_write(out, id, grp, "bits", AKT_I32, &bits, 1, (int[]){1}, e);
        free(q);
        free(scale);
        free(zp);
    }
    return rc;
}

/* The student as trained, every state_dict key in float32, and what rebuilds
 * it without the teacher file (`akt eval --student`, `akt export`):
 * tensors/student/<key>, input_mean, input_std and the group's attributes
 * depth, num_classes, shortcut, bn_eps, wbits, abits, first_last_8bit. */
static int write_student(struct akt_results *out, const char *id, const struct akt_run *r,
                         struct akt_error *e)
{
    const struct akt_student *st = &r->student;
    const struct akt_resnet *n = &st->net;
    const char *grp = "tensors/student";
    int rc = 0;
    for (int i = 0; i < n->n_params && !rc; i++) {
        const struct akt_param *p = &n->params[i];
        rc = akt_results_write(out, id, grp, p->name, AKT_F32, n->values + p->offset, p->ndim,
                               p->shape, e);
    }
    if (!rc)
        rc = akt_results_write(out, id, grp, "input_mean", AKT_F32, n->mean, 1, (int[]){3}, e);
    if (!rc)
        rc = akt_results_write(out, id, grp, "input_std", AKT_F32, n->std, 1, (int[]){3}, e);
    struct { const char *name; double v; } a[] = {
        {"depth", n->depth}, {"num_classes", n->num_classes}, {"bn_eps", n->bn_eps},
        {"wbits", st->wbits}, {"abits", st->abits}, {"first_last_8bit", st->first_last_8bit}};
    for (size_t i = 0; i < sizeof a / sizeof a[0] && !rc; i++)
        rc = akt_results_attr_set(out, id, grp, a[i].name, AKT_F64, &a[i].v, e);
    if (!rc)
        rc = akt_results_attr_set(out, id, grp, "shortcut", AKT_STR,
                                  n->shortcut == AKT_SHORTCUT_PAD ? "pad" : "conv1x1", e);
    return rc;
}

int akt__write_final_tensors(struct akt_results *out, const char *id, struct akt_run *r,
                             struct akt_error *e)
{
    int rc = write_quantized_weights(out, id, r, e);
    if (!rc)
        rc = write_student(out, id, r, e);
    if (rc)
        return rc;
    const int na = r->student.n_acts;
    float *ranges = malloc(2 * (size_t)na * sizeof *ranges);
    AKT_ASSERT(ranges);
    for (int i = 0; i < na; i++) {
        ranges[2 * i] = r->student.act[i].lo;
        ranges[2 * i + 1] = r->student.act[i].hi;
    }
    rc = akt_results_write(out, id, "tensors", "act_range", AKT_F32, ranges, 2, (int[]){na, 2}, e);
    free(ranges);
    if (rc)
        return rc;
    struct akt_tape *t = &r->tape;
    akt_tape_reset(t);
    int rec = t->recording;
    t->recording = 0;
    /* the one batch size of this call, for the generator and the networks */
    const int batch = r->host.batch;
    r->host.batch = FINAL_IMAGES;
    struct akt_gen_batch gb;
    if ((rc = akt__sample(r, t, &gb, e)))
        goto out;
    if ((rc = akt_results_write(out, id, "tensors", "images", AKT_F32, gb.x->data, 4,
                                gb.x->shape, e)) ||
        (rc = akt_results_write(out, id, "tensors", "labels", AKT_I32, gb.labels, 1,
                                (int[]){FINAL_IMAGES}, e)))
        goto out;
    int tracking = r->student.tracking;
    r->student.tracking = 0;
    struct akt_resnet_out to, so;
    akt__teacher_forward(r, t, gb.x, &to);
    akt__student_forward(r, t, gb.x, &so);
    r->student.tracking = tracking;
    for (int i = 0; i < to.n_features && !rc; i++) {
        struct akt_tensor *tsp, *tch, *ssp, *sch;
        akt_attention_maps(t, to.features[i], &tsp, &tch);
        akt_attention_maps(t, so.features[i], &ssp, &sch);
        /* spatial maps are stored [B, H*W] (results/README.md) */
        int bhw[2] = {tsp->shape[0], tsp->shape[1] * tsp->shape[2]};
        tsp = akt_view(t, tsp, 2, bhw);
        ssp = akt_view(t, ssp, 2, bhw);
        char name[32];
        struct { const char *who; struct akt_tensor *m; } maps[4] = {
            {"teacher_spatial", tsp}, {"teacher_channel", tch},
            {"student_spatial", ssp}, {"student_channel", sch}};
        for (int k = 0; k < 4 && !rc; k++) {
            snprintf(name, sizeof name, "%s_F%d", maps[k].who, i + 1);
            rc = akt_results_write(out, id, "tensors/attention", name, AKT_F32, maps[k].m->data,
                                   maps[k].m->ndim, maps[k].m->shape, e);
        }
    }
out:
    t->recording = rec;
    r->host.batch = batch;
    return rc;
}

