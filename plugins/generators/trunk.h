/* The GDFQ generator trunk (SPEC 3), shared by the gdfq, qimera and adadfq
 * generators, plus the pieces every generator loss uses (BNS loss, Adam).
 *
 * All parameters live in one allocation, `state`, laid out as
 *   params [n] | Adam m [n] | Adam v [n] | step [1]
 * so a checkpoint is one flat copy; gradients are a second allocation of n.
 * Inside params the arrays follow the order below (embedding first), each
 * padded to 16 floats so vector kernels see aligned rows. */
#ifndef AKT_GEN_TRUNK_H
#define AKT_GEN_TRUNK_H

#include "akt/nn.h"
#include "akt/plugin.h"

#define GEN_INIT_SIZE 8   /* 32 / 4: the trunk starts at 8x8 */
/* The descriptor's default learning rate (SPEC 3: Adam lr 1e-3). */
#define GEN_DEFAULT_LR 1e-3

/* The first five entries of every trunk generator's parameter table, in
 * this order: latent, lr, the BNS weight (its key and default given), Adam
 * betas. */
#define GEN_COMMON_PARAMS(latent_def, bns_key, bns_def, bns_help)                                \
    {.key = "latent", .type = AKT_PT_INT, .def = latent_def, .lo = 1, .hi = 4096,                \
     .help = "latent (noise and embedding) width"},                                              \
    {.key = "lr", .type = AKT_PT_FLOAT, .def = GEN_DEFAULT_LR, .lo = 0, .hi = 10,                \
     .help = "base Adam learning rate (the host's step schedule scales it)"},                    \
    {.key = bns_key, .type = AKT_PT_FLOAT, .def = bns_def, .lo = 0, .hi = 1e6, .help = bns_help}, \
    {.key = "adam_beta1", .type = AKT_PT_FLOAT, .def = 0.5, .lo = 0, .hi = 0.999999,             \
     .help = "Adam beta1"},                                                                      \
    {.key = "adam_beta2", .type = AKT_PT_FLOAT, .def = 0.999, .lo = 0, .hi = 0.999999,           \
     .help = "Adam beta2"}
#define GEN_CH0 128       /* channels after the first linear */

struct gen_net {
    int classes, latent;
    int dm_dim; /* Qimera's disentanglement mapping latent -> dm_dim; 0 = off */
    int l1_in;  /* input width of the first linear: latent, or dm_dim with DM */
    /* offsets into params */
    int64_t emb;              /* [classes, latent] */
    int64_t dm_w, dm_b;       /* [dm_dim, latent], [dm_dim] (only with DM) */
    int64_t l1_w, l1_b;       /* [128*8*8, l1_in], [128*8*8] */
    int64_t bn0_g, bn0_b;     /* [128] */
    int64_t c1_w, c1_b;       /* [128,128,3,3], [128] */
    int64_t bn1_g, bn1_b;     /* [128] */
    int64_t c2_w, c2_b;       /* [64,128,3,3], [64] */
    int64_t bn2_g, bn2_b;     /* [64] */
    int64_t c3_w, c3_b;       /* [3,64,3,3], [3] */
    int64_t n;                /* parameter floats, padding included */
    float *state;             /* 3n + 1 floats, see above */
    float *params, *adam_m, *adam_v, *step;
    float *grads;             /* n floats */
    float beta1, beta2, eps;
};

/* Lays out and initialises (PyTorch defaults, drawn from r) a trunk. The
 * embedding is N(0,1). Returns AKT_OK or AKT_ENOMEM with e set. */
int gen_net_init(struct gen_net *g, int classes, int latent, int dm_dim, float beta1, float beta2,
                 struct akt_rng *r, struct akt_error *e);
void gen_net_free(struct gen_net *g);

/* A tensor (in the tape's arena) over params + off, with its gradient. */
struct akt_tensor *gen_param(struct akt_tape *t, struct gen_net *g, int64_t off, int ndim,
                             const int *shape);

/* u [B, l1_in] -> image [B,3,32,32]: linear, BN, up, conv, BN(0.8), lrelu,
 * up, conv, BN(0.8), lrelu, conv, tanh, BN(no affine). */
struct akt_tensor *gen_trunk(struct gen_net *g, struct akt_tape *t, struct akt_tensor *u);

/* BN without affine over the channel axis of a 4-D view: the standardiser
 * used by Qimera (batch statistics, biased variance). */
struct akt_tensor *gen_standardise(struct akt_tape *t, struct akt_tensor *x4, float eps);

/* Adam on every parameter with learning rate lr, then zero the gradients. */
void gen_net_step(struct gen_net *g, float lr);
/* The same with the host's scheduled rate lr for the descriptor's
 * GEN_DEFAULT_LR: a user-set base rate base_lr follows the same schedule
 * (the ratio is exactly 1 by default). */
void gen_net_step_base(struct gen_net *g, float base_lr, float lr);

/* rows x cols of N(0,1) from r, and n labels uniform in 0..classes-1, on t */
struct akt_tensor *gen_noise(struct akt_tape *t, struct akt_rng *r, int rows, int cols);
int *gen_labels(struct akt_tape *t, struct akt_rng *r, int n, int classes);
/* GDFQ's sample (SPEC 3): z ~ N(0, I) first, then y, as the original draws
 * them; x = trunk(E[y] * z). *labels in the tape's arena. */
struct akt_tensor *gen_gdfq_sample(struct gen_net *g, struct akt_tape *t, struct akt_rng *r,
                                   int batch, int **labels);

/* L_BNS over every BN input the teacher recorded (SPEC 3); NULL with e set
 * when the teacher does not match its outputs. */
struct akt_tensor *gen_bns_loss(struct akt_tape *t, const struct akt_resnet *teacher,
                                const struct akt_resnet_out *out, struct akt_error *e);

#endif
