/* ONNX ModelProto writer: protobuf wire format by hand (varints and
 * length-delimited fields), the field numbers of onnx.proto. Messages are
 * built bottom-up into growable buffers, so nothing needs protobuf's library.
 * Allocation failures are programmer-visible aborts: the models are a few MB. */
#include "onnx.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct buf {
    unsigned char *p;
    size_t n, cap;
};

static void put(struct buf *b, const void *data, size_t n)
{
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        AKT_ASSERT(b->p);
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void varint(struct buf *b, uint64_t v)
{
    unsigned char c[10];
    int k = 0;
    do {
        c[k] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v)
            c[k] |= 0x80;
        k++;
    } while (v);
    put(b, c, (size_t)k);
}

/* wire types: 0 varint, 2 length-delimited, 5 32-bit */
static void key(struct buf *b, int field, int wire) { varint(b, ((uint64_t)field << 3) | wire); }

static void f_int(struct buf *b, int field, int64_t v)
{
    key(b, field, 0);
    varint(b, (uint64_t)v); /* negative int64: ten bytes, as protobuf does */
}

static void f_bytes(struct buf *b, int field, const void *data, size_t n)
{
    key(b, field, 2);
    varint(b, n);
    put(b, data, n);
}

static void f_str(struct buf *b, int field, const char *s) { f_bytes(b, field, s, strlen(s)); }

static void f_msg(struct buf *b, int field, const struct buf *m) { f_bytes(b, field, m->p, m->n); }

static void f_float(struct buf *b, int field, float v)
{
    key(b, field, 5);
    unsigned char c[4];
    memcpy(c, &v, 4); /* little-endian hosts only (x86-64, aarch64) */
    put(b, c, 4);
}

static void buf_free(struct buf *b)
{
    free(b->p);
    b->p = NULL;
    b->n = b->cap = 0;
}

struct akt_onnx {
    int opset;
    char graph_name[64];
    struct buf graph; /* GraphProto fields, in the order they were added */
    struct buf meta;  /* ModelProto metadata_props entries */
    char producer[64], version[64];
    char *doc;
};

struct akt_onnx *akt_onnx_new(int opset, const char *graph_name)
{
    struct akt_onnx *g = calloc(1, sizeof *g);
    AKT_ASSERT(g);
    g->opset = opset;
    snprintf(g->graph_name, sizeof g->graph_name, "%s", graph_name);
    return g;
}

void akt_onnx_free(struct akt_onnx *g)
{
    if (!g)
        return;
    buf_free(&g->graph);
    buf_free(&g->meta);
    free(g->doc);
    free(g);
}

void akt_onnx_model_info(struct akt_onnx *g, const char *producer, const char *version,
                         const char *doc)
{
    snprintf(g->producer, sizeof g->producer, "%s", producer);
    snprintf(g->version, sizeof g->version, "%s", version);
    free(g->doc);
    g->doc = doc ? strdup(doc) : NULL;
}

void akt_onnx_meta(struct akt_onnx *g, const char *k, const char *v)
{
    struct buf e = {0};
    f_str(&e, 1, k); /* StringStringEntryProto: key 1, value 2 */
    f_str(&e, 2, v);
    f_msg(&g->meta, 14, &e); /* ModelProto.metadata_props */
    buf_free(&e);
}

static size_t type_size(enum akt_onnx_type t)
{
    switch (t) {
    case AKT_ONNX_FLOAT: return 4;
    case AKT_ONNX_UINT8: return 1;
    case AKT_ONNX_INT8: return 1;
    case AKT_ONNX_INT32: return 4;
    case AKT_ONNX_INT64: return 8;
    }
    return 0;
}

void akt_onnx_initializer(struct akt_onnx *g, const char *name, enum akt_onnx_type t,
                          const void *data, int ndim, const int64_t *dims)
{
    struct buf tp = {0};
    size_t n = 1;
    for (int i = 0; i < ndim; i++) {
        f_int(&tp, 1, dims[i]); /* TensorProto.dims */
        n *= (size_t)dims[i];
    }
    f_int(&tp, 2, t);      /* data_type */
    f_str(&tp, 8, name);   /* name */
    f_bytes(&tp, 9, data, n * type_size(t)); /* raw_data, little-endian */
    f_msg(&g->graph, 5, &tp); /* GraphProto.initializer */
    buf_free(&tp);
}

void akt_onnx_value(struct akt_onnx *g, int output, const char *name, enum akt_onnx_type t,
                    int ndim, const int64_t *dims, const char *dim_param)
{
    struct buf shape = {0}, tensor = {0}, type = {0}, vi = {0};
    for (int i = 0; i < ndim; i++) {
        struct buf d = {0};
        if (dims[i] < 0)
            f_str(&d, 2, dim_param ? dim_param : "N"); /* Dimension.dim_param */
        else
            f_int(&d, 1, dims[i]);                     /* Dimension.dim_value */
        f_msg(&shape, 1, &d);
        buf_free(&d);
    }
    f_int(&tensor, 1, t);          /* TypeProto.Tensor.elem_type */
    f_msg(&tensor, 2, &shape);     /* shape */
    f_msg(&type, 1, &tensor);      /* TypeProto.tensor_type */
    f_str(&vi, 1, name);           /* ValueInfoProto.name */
    f_msg(&vi, 2, &type);          /* type */
    f_msg(&g->graph, output ? 12 : 11, &vi); /* GraphProto.output / input */
    buf_free(&shape);
    buf_free(&tensor);
    buf_free(&type);
    buf_free(&vi);
}

void akt_onnx_node(struct akt_onnx *g, const char *op, const char *name, const char *const *in,
                   int n_in, const char *const *out, int n_out, const struct akt_onnx_attr *attr)
{
    struct buf nd = {0};
    for (int i = 0; i < n_in; i++)
        f_str(&nd, 1, in[i]);
    for (int i = 0; i < n_out; i++)
        f_str(&nd, 2, out[i]);
    f_str(&nd, 3, name);
    f_str(&nd, 4, op);
    for (const struct akt_onnx_attr *a = attr; a && a->name; a++) {
        struct buf ap = {0};
        f_str(&ap, 1, a->name);
        switch (a->kind) {
        case 'f':
            f_float(&ap, 2, a->f);
            f_int(&ap, 20, 1); /* AttributeProto.type FLOAT */
            break;
        case 'i':
            f_int(&ap, 3, a->i);
            f_int(&ap, 20, 2); /* INT */
            break;
        case 's':
            f_str(&ap, 4, a->s);
            f_int(&ap, 20, 3); /* STRING */
            break;
        case 'I':
            for (int k = 0; k < a->n_ints; k++)
                f_int(&ap, 8, a->ints[k]);
            f_int(&ap, 20, 7); /* INTS */
            break;
        default:
            AKT_ASSERT(0 && "unknown ONNX attribute kind");
        }
        f_msg(&nd, 5, &ap);
        buf_free(&ap);
    }
    f_msg(&g->graph, 1, &nd); /* GraphProto.node */
    buf_free(&nd);
}

int akt_onnx_write(const struct akt_onnx *g, const char *path, struct akt_error *e)
{
    struct buf graph = {0}, opset = {0}, model = {0};
    put(&graph, g->graph.p, g->graph.n);
    f_str(&graph, 2, g->graph_name); /* GraphProto.name */
    f_int(&opset, 2, g->opset);      /* OperatorSetIdProto.version (default domain) */
    f_int(&model, 1, 7);             /* ModelProto.ir_version: 7 goes with opset 13 */
    if (g->producer[0])
        f_str(&model, 2, g->producer);
    if (g->version[0])
        f_str(&model, 3, g->version);
    if (g->doc)
        f_str(&model, 6, g->doc);
    f_msg(&model, 7, &graph);
    f_msg(&model, 8, &opset);
    put(&model, g->meta.p, g->meta.n);
    buf_free(&graph);
    buf_free(&opset);

    char tmp[1200];
    int rc = 0;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        rc = akt_error_set(e, AKT_EIO, path, "cannot write: %s", strerror(errno));
    } else {
        int bad = fwrite(model.p, 1, model.n, f) != model.n;
        bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
        bad |= fclose(f) != 0;
        if (bad || rename(tmp, path) != 0) {
            rc = akt_error_set(e, AKT_EIO, path, "writing the model failed: %s", strerror(errno));
            unlink(tmp);
        }
    }
    buf_free(&model);
    return rc;
}
