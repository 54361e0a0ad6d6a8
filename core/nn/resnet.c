/* CIFAR ResNet-(6n+2) (SPEC 1): parameter table, init, copy, forward. */
#include "akt/nn.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const float CIFAR10_MEAN[3] = {0.4914f, 0.4822f, 0.4465f};
static const float CIFAR10_STD[3] = {0.2470f, 0.2435f, 0.2616f};
static const float CIFAR100_MEAN[3] = {0.5071f, 0.4867f, 0.4408f};
static const float CIFAR100_STD[3] = {0.2675f, 0.2557f, 0.2761f};

int akt_resnet_depth_valid(int depth)
{
    return depth >= 8 && (depth - 2) % 6 == 0 && (depth - 2) / 6 <= AKT_RESNET_MAX_N;
}

/* Parameters per network: stem conv + BN (5), per block 2 convs + 2 BNs (10)
 * plus a conv1x1 + BN shortcut (5) in the two down-sampling blocks, FC (2). */
static int param_count(int n, enum akt_shortcut sc)
{
    return 5 + 10 * AKT_RESNET_STAGES * n + (sc == AKT_SHORTCUT_CONV1X1 ? 10 : 0) + 2;
}

static int add_param(struct akt_resnet *m, const char *name, int kind, int ndim, int d0, int d1,
                     int d2, int d3)
{
    AKT_ASSERT(m->n_params < param_count(m->blocks_per_stage, m->shortcut));
    struct akt_param *p = &m->params[m->n_params];
    AKT_ASSERT(strlen(name) < sizeof p->name);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->kind = kind;
    p->ndim = ndim;
    int d[4] = {d0, d1, d2, d3};
    p->n = 1;
    for (int i = 0; i < 4; i++) {
        p->shape[i] = i < ndim ? d[i] : 1;
        if (i < ndim)
            p->n *= d[i];
    }
    p->offset = m->n_values;
    /* keep every array 16-float aligned for vector kernels */
    m->n_values += (p->n + 15) & ~(int64_t)15;
    return m->n_params++;
}

static void add_bn(struct akt_resnet *m, const char *prefix, int c)
{
    char name[48];
    static const char *fields[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < 4; i++) {
        snprintf(name, sizeof name, "%.30s.%s", prefix, fields[i]);
        add_param(m, name, i < 2 ? AKT_PARAM_WEIGHT : AKT_PARAM_BUFFER, 1, c, 0, 0, 0);
    }
}

/* Block b (0..3n-1), block b % n of stage b / n: input/output widths and
 * stride. */
static void block_geometry(int b, int n, int *cin, int *cout, int *stride)
{
    static const int widths[AKT_RESNET_STAGES] = {16, 32, 64};
    int s = b / n, i = b % n;
    *cout = widths[s];
    *cin = (i == 0 && s > 0) ? widths[s - 1] : widths[s];
    *stride = (i == 0 && s > 0) ? 2 : 1;
}

void akt_resnet_init(struct akt_resnet *m, int depth, int num_classes, enum akt_shortcut sc)
{
    AKT_ASSERT(akt_resnet_depth_valid(depth) && num_classes >= 1);
    memset(m, 0, sizeof *m);
    m->size = sizeof *m;
    m->depth = depth;
    const int n = m->blocks_per_stage = (depth - 2) / 6;
    m->n_features = AKT_RESNET_STAGES * n;
    m->n_acts = 1 + 2 * m->n_features;
    m->n_bn = 1 + 2 * m->n_features + (sc == AKT_SHORTCUT_CONV1X1 ? 2 : 0);
    m->num_classes = num_classes;
    m->shortcut = sc;
    m->params = calloc((size_t)param_count(n, sc), sizeof *m->params);
    AKT_ASSERT(m->params);
    m->bn_eps = 1e-5f;
    const float *mean = num_classes == 100 ? CIFAR100_MEAN : CIFAR10_MEAN;
    const float *std = num_classes == 100 ? CIFAR100_STD : CIFAR10_STD;
    memcpy(m->mean, mean, sizeof m->mean);
    memcpy(m->std, std, sizeof m->std);

    char name[64]; /* keys are at most 47 characters (akt_param.name) */
    add_param(m, "conv1.weight", AKT_PARAM_WEIGHT, 4, 16, 3, 3, 3);
    add_bn(m, "bn1", 16);
    for (int b = 0; b < m->n_features; b++) {
        int cin, cout, stride;
        block_geometry(b, n, &cin, &cout, &stride);
        char pre[32];
        snprintf(pre, sizeof pre, "layer%d.%d", b / n + 1, b % n);
        snprintf(name, sizeof name, "%s.conv1.weight", pre);
        add_param(m, name, AKT_PARAM_WEIGHT, 4, cout, cin, 3, 3);
        snprintf(name, sizeof name, "%s.bn1", pre);
        add_bn(m, name, cout);
        snprintf(name, sizeof name, "%s.conv2.weight", pre);
        add_param(m, name, AKT_PARAM_WEIGHT, 4, cout, cout, 3, 3);
        snprintf(name, sizeof name, "%s.bn2", pre);
        add_bn(m, name, cout);
        if (sc == AKT_SHORTCUT_CONV1X1 && (stride != 1 || cin != cout)) {
            /* akamaster option-B naming: shortcut = Sequential(conv1x1, BN) */
            snprintf(name, sizeof name, "%s.shortcut.0.weight", pre);
            add_param(m, name, AKT_PARAM_WEIGHT, 4, cout, cin, 1, 1);
            snprintf(name, sizeof name, "%s.shortcut.1", pre);
            add_bn(m, name, cout);
        }
    }
    add_param(m, "linear.weight", AKT_PARAM_WEIGHT, 2, num_classes, 64, 0, 0);
    add_param(m, "linear.bias", AKT_PARAM_WEIGHT, 1, num_classes, 0, 0, 0);
    AKT_ASSERT(m->n_params == param_count(n, sc));

    m->values = aligned_alloc(64, (size_t)m->n_values * sizeof(float));
    m->grads = aligned_alloc(64, (size_t)m->n_values * sizeof(float));
    AKT_ASSERT(m->values && m->grads);
    memset(m->values, 0, (size_t)m->n_values * sizeof(float));
    memset(m->grads, 0, (size_t)m->n_values * sizeof(float));
    /* BN defaults: gamma 1, running var 1 */
    for (int i = 0; i < m->n_params; i++) {
        struct akt_param *p = &m->params[i];
        size_t len = strlen(p->name);
        int is_bn = strstr(p->name, "bn") || strstr(p->name, "shortcut.1");
        if (is_bn && ((len > 7 && !strcmp(p->name + len - 7, ".weight")) ||
                      (len > 12 && !strcmp(p->name + len - 12, ".running_var"))))
            for (int64_t j = 0; j < p->n; j++)
                m->values[p->offset + j] = 1.0f;
    }
}

void akt_resnet_init_random(struct akt_resnet *m, struct akt_rng *r)
{
    for (int i = 0; i < m->n_params; i++) {
        struct akt_param *p = &m->params[i];
        int is_conv_or_fc = strstr(p->name, "conv") || strstr(p->name, "shortcut.0") ||
                            strstr(p->name, "linear");
        if (!is_conv_or_fc)
            continue;
        /* PyTorch default: kaiming_uniform(a=sqrt 5) = U(-1/sqrt(fan_in), +) for
         * weights, and the same bound for the linear bias */
        int fan_in = !strcmp(p->name, "linear.bias") ? 64 : (int)(p->n / p->shape[0]);
        float bound = 1.0f / sqrtf((float)fan_in);
        for (int64_t j = 0; j < p->n; j++)
            m->values[p->offset + j] = (float)((2 * akt_rng_uniform(r) - 1) * bound);
    }
}

const char *akt_resnet_arch(const struct akt_resnet *m, char *buf, size_t n)
{
    snprintf(buf, n, "resnet%d", m->depth);
    return buf;
}

void akt_resnet_copy(struct akt_resnet *dst, const struct akt_resnet *src)
{
    *dst = *src;
    dst->params = malloc((size_t)src->n_params * sizeof *dst->params);
    AKT_ASSERT(dst->params);
    memcpy(dst->params, src->params, (size_t)src->n_params * sizeof *dst->params);
    dst->values = aligned_alloc(64, (size_t)src->n_values * sizeof(float));
    dst->grads = aligned_alloc(64, (size_t)src->n_values * sizeof(float));
    AKT_ASSERT(dst->values && dst->grads);
    memcpy(dst->values, src->values, (size_t)src->n_values * sizeof(float));
    memset(dst->grads, 0, (size_t)src->n_values * sizeof(float));
}

void akt_resnet_free(struct akt_resnet *m)
{
    free(m->values);
    free(m->grads);
    free(m->params);
    m->values = m->grads = NULL;
    m->params = NULL;
    m->n_params = 0;
}

struct akt_param *akt_resnet_param(const struct akt_resnet *m, const char *name)
{
    for (int i = 0; i < m->n_params; i++)
        if (!strcmp(m->params[i].name, name))
            return (struct akt_param *)&m->params[i];
    return NULL;
}

struct akt_tensor akt_resnet_tensor(const struct akt_resnet *m, const struct akt_param *p, int grad)
{
    int with_grad = grad && p->kind == AKT_PARAM_WEIGHT;
    return akt_tensor_wrap(m->values + p->offset, with_grad ? m->grads + p->offset : NULL, p->ndim,
                           p->shape);
}

/* ------------------------------------------------------------ forward --- */
struct fwd {
    const struct akt_resnet *m;
    struct akt_tape *t;
    const struct akt_resnet_opts *o;
    struct akt_resnet_out *out;
    int next_param; /* params are consumed in table order */
    int next_act;
    struct akt_tensor **bn_inputs, **acts; /* out's arrays, still being filled */
    int *bn_index;
};

static struct akt_tensor *param_tensor(struct fwd *f, int idx)
{
    struct akt_tensor *p = akt_tape_alloc(f->t, sizeof *p);
    *p = akt_resnet_tensor(f->m, &f->m->params[idx], f->o->param_grads && f->t->recording);
    return p;
}

static struct akt_tensor *conv(struct fwd *f, struct akt_tensor *x, int stride, int pad)
{
    int idx = f->next_param++;
    struct akt_tensor *w = param_tensor(f, idx);
    if (f->o->quant && f->o->quant->weight)
        w = f->o->quant->weight(f->o->quant->ctx, f->t, idx, w);
    return akt_conv2d(f->t, x, w, NULL, stride, pad);
}

/* BN, with the ReLU after it fused in (one pass each way) when relu */
static struct akt_tensor *bn_maybe_relu(struct fwd *f, struct akt_tensor *x, int relu)
{
    int idx = f->next_param;
    f->next_param += 4;
    AKT_ASSERT(f->out->n_bn < f->m->n_bn);
    f->bn_inputs[f->out->n_bn] = x;
    f->bn_index[f->out->n_bn] = idx;
    f->out->n_bn++;
    struct akt_bn_params p = {
        .gamma = param_tensor(f, idx),
        .beta = param_tensor(f, idx + 1),
        .running_mean = f->m->values + f->m->params[idx + 2].offset,
        .running_var = f->m->values + f->m->params[idx + 3].offset,
        .eps = f->m->bn_eps,
        .momentum = 0.1f,
    };
    enum akt_bn_mode mode = f->o->bn_batch ? AKT_BN_BATCH : AKT_BN_EVAL;
    return relu ? akt_batchnorm_relu(f->t, x, &p, mode) : akt_batchnorm(f->t, x, &p, mode);
}

static struct akt_tensor *bn(struct fwd *f, struct akt_tensor *x) { return bn_maybe_relu(f, x, 0); }

/* x is a ReLU's output; the student's activation quantizer follows it */
static struct akt_tensor *act_q(struct fwd *f, struct akt_tensor *y)
{
    int idx = f->next_act++;
    AKT_ASSERT(idx < f->m->n_acts);
    if (f->o->quant && f->o->quant->act)
        y = f->o->quant->act(f->o->quant->ctx, f->t, idx, y);
    f->acts[idx] = y;
    return y;
}

void akt_resnet_forward(const struct akt_resnet *m, struct akt_tape *t, struct akt_tensor *x,
                        const struct akt_resnet_opts *o, struct akt_resnet_out *out)
{
    static const struct akt_resnet_opts defaults;
    if (!o)
        o = &defaults;
    AKT_ASSERT(x->ndim == 4 && x->shape[1] == 3 && x->shape[2] == 32 && x->shape[3] == 32);
    memset(out, 0, sizeof *out);
    out->size = sizeof *out;
    const int nf = m->n_features;
    struct akt_tensor **features = akt_tape_alloc(t, (size_t)nf * sizeof *features);
    int *stage = akt_tape_alloc(t, (size_t)nf * sizeof *stage);
    struct fwd f = {.m = m, .t = t, .o = o, .out = out,
                    .bn_inputs = akt_tape_alloc(t, (size_t)m->n_bn * sizeof(struct akt_tensor *)),
                    .bn_index = akt_tape_alloc(t, (size_t)m->n_bn * sizeof(int)),
                    .acts = akt_tape_alloc(t, (size_t)m->n_acts * sizeof(struct akt_tensor *))};
    out->features = features;
    out->feature_stage = stage;
    out->bn_inputs = f.bn_inputs;
    out->bn_index = f.bn_index;
    out->acts = f.acts;

    struct akt_tensor *h = act_q(&f, bn_maybe_relu(&f, conv(&f, x, 1, 1), 1));
    for (int b = 0; b < nf; b++) {
        int cin, cout, stride;
        block_geometry(b, m->blocks_per_stage, &cin, &cout, &stride);
        struct akt_tensor *u = act_q(&f, bn_maybe_relu(&f, conv(&f, h, stride, 1), 1));
        struct akt_tensor *body = bn(&f, conv(&f, u, 1, 1));
        features[b] = body;
        stage[b] = b / m->blocks_per_stage;
        struct akt_tensor *sc = h;
        if (stride != 1 || cin != cout) {
            if (m->shortcut == AKT_SHORTCUT_CONV1X1)
                sc = bn(&f, conv(&f, h, stride, 0));
            else
                sc = akt_subsample_pad(t, h, stride, (cout - cin) / 2);
        }
        h = act_q(&f, akt_add_relu(t, body, sc));
    }
    struct akt_tensor *pooled = akt_global_avgpool(t, h);
    int wi = f.next_param++;
    struct akt_tensor *w = param_tensor(&f, wi);
    if (o->quant && o->quant->weight)
        w = o->quant->weight(o->quant->ctx, t, wi, w);
    struct akt_tensor *bias = param_tensor(&f, f.next_param++);
    out->logits = akt_linear(t, pooled, w, bias);
    out->fc_weight = w;
    out->n_features = nf;
    out->n_acts = f.next_act;
    AKT_ASSERT(f.next_param == m->n_params && f.next_act == m->n_acts && out->n_bn == m->n_bn);
}
