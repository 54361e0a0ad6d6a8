/* A minimal ONNX writer (not installed): a graph of nodes, initializers,
 * inputs and outputs, serialised as the ModelProto protobuf of onnx.proto
 * (IR version 7, one default-domain opset). Only what `akt export` needs:
 * tensors are written as raw little-endian data. */
#ifndef AKT_IO_ONNX_H
#define AKT_IO_ONNX_H

#include <stddef.h>
#include <stdint.h>

#include "akt/base.h"

/* TensorProto.DataType values used here */
enum akt_onnx_type {
    AKT_ONNX_FLOAT = 1,
    AKT_ONNX_UINT8 = 2,
    AKT_ONNX_INT8 = 3,
    AKT_ONNX_INT32 = 6,
    AKT_ONNX_INT64 = 7
};

struct akt_onnx;

/* A node attribute, for akt_onnx_node's list (ended by a NULL name). */
struct akt_onnx_attr {
    const char *name;
    int kind;             /* 'i' one int, 'I' ints, 'f' one float, 's' a string */
    int64_t i;
    const int64_t *ints;
    int n_ints;
    float f;
    const char *s;
};

struct akt_onnx *akt_onnx_new(int opset, const char *graph_name);
void akt_onnx_free(struct akt_onnx *g);
/* ModelProto fields: producer, its version, a doc string, metadata entries */
void akt_onnx_model_info(struct akt_onnx *g, const char *producer, const char *version,
                         const char *doc);
void akt_onnx_meta(struct akt_onnx *g, const char *key, const char *value);
/* A constant (initializer): data holds prod(dims) elements of type t. */
void akt_onnx_initializer(struct akt_onnx *g, const char *name, enum akt_onnx_type t,
                          const void *data, int ndim, const int64_t *dims);
/* A graph input or output; a dim < 0 is symbolic, named dim_param. */
void akt_onnx_value(struct akt_onnx *g, int output, const char *name, enum akt_onnx_type t,
                    int ndim, const int64_t *dims, const char *dim_param);
/* A node: inputs (an empty string is an omitted optional input), outputs,
 * attributes (NULL or ended by a NULL name). */
void akt_onnx_node(struct akt_onnx *g, const char *op, const char *name, const char *const *in,
                   int n_in, const char *const *out, int n_out, const struct akt_onnx_attr *attr);
/* Serialises the model to path (written whole, then renamed into place). */
int akt_onnx_write(const struct akt_onnx *g, const char *path, struct akt_error *e);

#endif
