/* CIFAR-10 / CIFAR-100 binary batches: load, validate, normalise. */
#include "akt/data.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define REC10 (1 + AKT_CIFAR_PIXELS)
#define REC100 (2 + AKT_CIFAR_PIXELS)
#define CHUNK_RECORDS 256 /* staging buffer of ~0.8 MB: no second copy of the file */

static const char *format_name(enum akt_cifar_format f)
{
    return f == AKT_CIFAR10 ? "CIFAR-10" : "CIFAR-100";
}

/* Picks the format from the file size, or explains why it cannot. */
static int pick_format(long long size, enum akt_cifar_format *f, const char *path,
                       struct akt_error *e)
{
    int fits10 = size % REC10 == 0, fits100 = size % REC100 == 0;
    if (fits10 && fits100)
        return akt_error_set(e, AKT_EINVAL, path,
                             "ambiguous: %lld bytes is a whole number of both %d-byte CIFAR-10 "
                             "and %d-byte CIFAR-100 records; give the format explicitly",
                             size, REC10, REC100);
    if (!fits10 && !fits100)
        return akt_error_set(e, AKT_EFORMAT, path,
                             "truncated or not CIFAR: %lld bytes is a whole number of neither "
                             "%d-byte CIFAR-10 records (last record has %lld bytes) nor %d-byte "
                             "CIFAR-100 records (last record has %lld bytes); give the format "
                             "explicitly to see which one is meant",
                             size, REC10, size % REC10, REC100, size % REC100);
    *f = fits10 ? AKT_CIFAR10 : AKT_CIFAR100_FINE;
    return AKT_OK;
}

/* read() until n bytes or EOF; returns bytes read or -1 (errno set). */
static ssize_t read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Copies nrec staged records into d at record index first, checking labels. */
static int unpack(struct akt_dataset *d, const uint8_t *buf, int first, int nrec,
                  enum akt_cifar_format f, const char *path, struct akt_error *e)
{
    size_t rec = f == AKT_CIFAR10 ? REC10 : REC100;
    for (int i = 0; i < nrec; i++) {
        const uint8_t *r = buf + (size_t)i * rec;
        int idx = first + i;
        if (f == AKT_CIFAR10) {
            if (r[0] >= 10)
                return akt_error_set(e, AKT_EFORMAT, path,
                                     "record %d: label %d is out of range 0..9 for CIFAR-10",
                                     idx, r[0]);
            d->labels[idx] = r[0];
        } else {
            /* Both bytes are checked whichever is used: a bad one means a bad file. */
            if (r[0] >= 20)
                return akt_error_set(e, AKT_EFORMAT, path,
                                     "record %d: coarse label %d is out of range 0..19 for "
                                     "CIFAR-100",
                                     idx, r[0]);
            if (r[1] >= 100)
                return akt_error_set(e, AKT_EFORMAT, path,
                                     "record %d: fine label %d is out of range 0..99 for "
                                     "CIFAR-100",
                                     idx, r[1]);
            d->labels[idx] = f == AKT_CIFAR100_COARSE ? r[0] : r[1];
        }
        memcpy(d->pixels + (size_t)idx * AKT_CIFAR_PIXELS, r + (rec - AKT_CIFAR_PIXELS),
               AKT_CIFAR_PIXELS);
    }
    return AKT_OK;
}

static int load_fd(struct akt_dataset *d, int fd, const char *path, enum akt_cifar_format f,
                   struct akt_error *e)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return akt_error_set(e, AKT_EIO, path, "cannot stat: %s", strerror(errno));
    if (S_ISDIR(st.st_mode))
        return akt_error_set(e, AKT_EIO, path, "is a directory, expected a CIFAR .bin file");
    if (!S_ISREG(st.st_mode))
        return akt_error_set(e, AKT_EIO, path, "not a regular file, expected a CIFAR .bin file");
    long long size = (long long)st.st_size;
    if (size == 0)
        return akt_error_set(e, AKT_EFORMAT, path, "empty file (0 bytes), expected CIFAR records");

    if (f == AKT_CIFAR_AUTO) {
        int rc = pick_format(size, &f, path, e);
        if (rc)
            return rc;
    }
    long long rec = f == AKT_CIFAR10 ? REC10 : REC100;
    if (size % rec != 0)
        return akt_error_set(e, AKT_EFORMAT, path,
                             "truncated: %lld bytes is not a multiple of the %lld-byte %s record; "
                             "last record has %lld bytes",
                             size, rec, format_name(f), size % rec);
    if (size / rec > INT_MAX)
        return akt_error_set(e, AKT_EFORMAT, path, "too large: %lld records (limit %d)",
                             size / rec, INT_MAX);

    int n = (int)(size / rec);
    d->n = n;
    d->num_classes = f == AKT_CIFAR10 ? 10 : f == AKT_CIFAR100_FINE ? 100 : 20;
    d->labels = malloc((size_t)n);
    d->pixels = malloc((size_t)n * AKT_CIFAR_PIXELS);
    int chunk = n < CHUNK_RECORDS ? n : CHUNK_RECORDS;
    uint8_t *buf = malloc((size_t)chunk * (size_t)rec);
    int rc = AKT_OK;
    if (!d->labels || !d->pixels || !buf) {
        rc = akt_error_set(e, AKT_ENOMEM, path, "out of memory for %d records (%lld bytes)", n,
                           size);
        goto out;
    }
    for (int first = 0; first < n && rc == AKT_OK; first += chunk) {
        int nrec = n - first < chunk ? n - first : chunk;
        size_t want = (size_t)nrec * (size_t)rec;
        ssize_t got = read_full(fd, buf, want);
        if (got < 0)
            rc = akt_error_set(e, AKT_EIO, path, "read error at record %d: %s", first,
                               strerror(errno));
        else if ((size_t)got != want) /* the file shrank after fstat */
            rc = akt_error_set(e, AKT_EIO, path,
                               "short read: file ended at byte %lld, expected %lld bytes",
                               (long long)first * rec + (long long)got, size);
        else
            rc = unpack(d, buf, first, nrec, f, path, e);
    }
out:
    free(buf);
    return rc;
}

int akt_cifar_load(struct akt_dataset *d, const char *path, enum akt_cifar_format f,
                   struct akt_error *e)
{
    AKT_ASSERT(d && path);
    memset(d, 0, sizeof *d);
    if (f != AKT_CIFAR_AUTO && f != AKT_CIFAR10 && f != AKT_CIFAR100_FINE &&
        f != AKT_CIFAR100_COARSE)
        return akt_error_set(e, AKT_EINVAL, path, "unknown CIFAR format %d", (int)f);

    int rc = akt_file_check(path, NULL, e); /* a FIFO would block the open */
    if (rc)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return akt_error_set(e, AKT_EIO, path, "cannot open: %s", strerror(errno));
    rc = load_fd(d, fd, path, f, e);
    close(fd);
    if (rc)
        akt_dataset_free(d); /* callers get an empty dataset on any failure */
    return rc;
}

void akt_dataset_free(struct akt_dataset *d)
{
    if (!d)
        return;
    free(d->labels);
    free(d->pixels);
    memset(d, 0, sizeof *d);
}

void akt_dataset_batch(const struct akt_dataset *d, int start, int count, const float mean[3],
                       const float std[3], float *x, int *labels)
{
    AKT_ASSERT(d && start >= 0 && count >= 0 && start <= d->n && count <= d->n - start);
    if (x) {
        AKT_ASSERT(mean && std);
        /* One table per channel, each entry computed by exactly the expression
         * the PyTorch goldens use, so the lookup is bit-identical to it. */
        float lut[3][256];
        for (int c = 0; c < 3; c++)
            for (int v = 0; v < 256; v++)
                lut[c][v] = ((float)v / 255.0f - mean[c]) / std[c];
        for (int i = 0; i < count; i++) {
            const uint8_t *p = d->pixels + (size_t)(start + i) * AKT_CIFAR_PIXELS;
            float *o = x + (size_t)i * AKT_CIFAR_PIXELS;
            for (int c = 0; c < 3; c++)
                for (int k = 0; k < 1024; k++)
                    o[c * 1024 + k] = lut[c][p[c * 1024 + k]];
        }
    }
    if (labels)
        for (int i = 0; i < count; i++)
            labels[i] = d->labels[start + i];
}
