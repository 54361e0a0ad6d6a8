/* CIFAR-10 / CIFAR-100 in the official binary formats. Zero-shot training
 * never sees these images: they are for evaluation only. */
#ifndef AKT_DATA_H
#define AKT_DATA_H

#include "akt/base.h"

#ifdef __cplusplus
extern "C" {
#endif

enum akt_cifar_format {
    AKT_CIFAR_AUTO = 0,     /* from the file size, when only one format fits */
    AKT_CIFAR10 = 1,        /* 1 label byte + 3072 pixel bytes */
    AKT_CIFAR100_FINE = 2,  /* coarse byte, fine byte, 3072 pixel bytes; fine labels */
    AKT_CIFAR100_COARSE = 3 /* same records, coarse labels */
};

#define AKT_CIFAR_PIXELS 3072

struct akt_dataset {
    int n;            /* records */
    int num_classes;  /* 10, 100 or 20 */
    uint8_t *labels;  /* [n] */
    uint8_t *pixels;  /* [n, 3, 32, 32], planes R, G, B */
};

/* Whole file into memory. A size that is not a whole number of records, an
 * empty file, or a label out of range is an error naming the file. */
int akt_cifar_load(struct akt_dataset *d, const char *path, enum akt_cifar_format f,
                   struct akt_error *e);
void akt_dataset_free(struct akt_dataset *d);
/* Records [start, start+count) as floats (u8/255 - mean)/std, [count,3,32,32]. */
void akt_dataset_batch(const struct akt_dataset *d, int start, int count, const float mean[3],
                       const float std[3], float *x, int *labels);

#ifdef __cplusplus
}
#endif
#endif
