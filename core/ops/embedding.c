/* Embedding lookup: rows of a table selected by integer labels. */
#include "internal.h"

static void embedding_forward(float *y, const float *table, const int *labels, int batch, int D)
{
    AKT_PARALLEL_FOR((int64_t)batch * D)
    for (int b = 0; b < batch; b++)
        memcpy(y + (int64_t)b * D, table + (int64_t)labels[b] * D, (size_t)D * sizeof(float));
}

/* Scatter-add in batch order: a repeated label sums its rows the same way
 * every time. Serial, since two samples may share a row. */
static void embedding_backward(float *dtable, const float *dy, const int *labels, int batch, int D)
{
    for (int b = 0; b < batch; b++) {
        float *row = dtable + (int64_t)labels[b] * D;
        const float *g = dy + (int64_t)b * D;
        for (int d = 0; d < D; d++)
            row[d] += g[d];
    }
}

static void embedding_bw(struct akt_tape *t, const struct akt_node *n)
{
    (void)t;
    embedding_backward(n->in[0]->grad, n->out->grad, n->labels, n->ip[0], n->ip[1]);
}

struct akt_tensor *akt_embedding(struct akt_tape *t, struct akt_tensor *table, const int *labels,
                                 int batch)
{
    AKT_ASSERT(table->ndim == 2 && batch >= 0);
    AKT_ASSERT(batch == 0 || labels);
    int V = table->shape[0], D = table->shape[1];
    for (int b = 0; b < batch; b++)
        AKT_ASSERT(labels[b] >= 0 && labels[b] < V);
    struct akt_tensor *y = akt_tensor_newv(t, 0, 2, batch, D);
    embedding_forward(y->data, table->data, labels, batch, D);
    struct akt_node *nd = akt_tape_push(t, embedding_bw, "embedding", y, table, NULL, NULL, NULL);
    if (nd) {
        /* the caller's label array may not live until backward */
        int *copy = akt_tape_alloc(t, (size_t)(batch > 0 ? batch : 1) * sizeof(int));
        if (batch > 0)
            memcpy(copy, labels, (size_t)batch * sizeof(int));
        nd->labels = copy;
        nd->ip[0] = batch;
        nd->ip[1] = D;
    }
    return y;
}
