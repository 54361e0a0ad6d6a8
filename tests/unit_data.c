/* CIFAR loader: formats, every error path, normalisation, the real files. */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "akt/data.h"

#define REC10 3073
#define REC100 3074

static char tmpdir[256];

/* Deterministic pixel pattern, different per record and per byte. */
static uint8_t pix(int rec, int j) { return (uint8_t)(rec * 37 + j * 11 + (j >> 10) * 5); }

static void path_of(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", tmpdir, name);
}

static void write_file(const char *path, const uint8_t *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(buf, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* n CIFAR-10 records with the given labels; returns a malloc'd buffer. */
static uint8_t *make10(int n, const uint8_t *labels)
{
    uint8_t *b = malloc((size_t)n * REC10);
    assert_non_null(b);
    for (int i = 0; i < n; i++) {
        b[(size_t)i * REC10] = labels[i];
        for (int j = 0; j < AKT_CIFAR_PIXELS; j++)
            b[(size_t)i * REC10 + 1 + j] = pix(i, j);
    }
    return b;
}

static uint8_t *make100(int n, const uint8_t *coarse, const uint8_t *fine)
{
    uint8_t *b = malloc((size_t)n * REC100);
    assert_non_null(b);
    for (int i = 0; i < n; i++) {
        b[(size_t)i * REC100] = coarse[i];
        b[(size_t)i * REC100 + 1] = fine[i];
        for (int j = 0; j < AKT_CIFAR_PIXELS; j++)
            b[(size_t)i * REC100 + 2 + j] = pix(i, j);
    }
    return b;
}

static void check_pixels(const struct akt_dataset *d)
{
    for (int i = 0; i < d->n; i++)
        for (int j = 0; j < AKT_CIFAR_PIXELS; j++)
            if (d->pixels[(size_t)i * AKT_CIFAR_PIXELS + j] != pix(i, j))
                fail_msg("record %d pixel %d: got %d want %d", i, j,
                         d->pixels[(size_t)i * AKT_CIFAR_PIXELS + j], pix(i, j));
}

/* The failed load left an empty dataset, and the error names what it should. */
static void expect_error(int rc, int code, const struct akt_dataset *d, const struct akt_error *e,
                         const char *path, const char *fact1, const char *fact2)
{
    char msg[1100];
    akt_error_format(e, msg, sizeof msg);
    print_message("# error: %s\n", msg);
    assert_int_equal(rc, code);
    assert_int_equal(e->code, code);
    assert_int_equal(d->n, 0);
    assert_null(d->labels);
    assert_null(d->pixels);
    assert_non_null(strstr(e->where, path));
    if (fact1 && !strstr(e->what, fact1))
        fail_msg("'%s' does not mention '%s'", e->what, fact1);
    if (fact2 && !strstr(e->what, fact2))
        fail_msg("'%s' does not mention '%s'", e->what, fact2);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(p);
}

static int setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/akt_unit_data_XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------ formats --- */
static void test_cifar10_small(void **state)
{
    (void)state;
    char p[512];
    path_of(p, sizeof p, "c10.bin");
    const uint8_t lab[3] = {0, 9, 4};
    uint8_t *b = make10(3, lab);
    write_file(p, b, 3 * REC10);
    free(b);

    const enum akt_cifar_format fmts[2] = {AKT_CIFAR10, AKT_CIFAR_AUTO};
    for (int k = 0; k < 2; k++) {
        struct akt_dataset d;
        struct akt_error e = {0};
        assert_int_equal(akt_cifar_load(&d, p, fmts[k], &e), AKT_OK);
        assert_int_equal(d.n, 3);
        assert_int_equal(d.num_classes, 10);
        assert_memory_equal(d.labels, lab, 3);
        check_pixels(&d);
        akt_dataset_free(&d);
        assert_null(d.pixels);
        akt_dataset_free(&d); /* twice is harmless */
    }
}

static void test_cifar100_fine_and_coarse(void **state)
{
    (void)state;
    char p[512];
    path_of(p, sizeof p, "c100.bin");
    const uint8_t coarse[3] = {19, 0, 7}, fine[3] = {99, 0, 42};
    uint8_t *b = make100(3, coarse, fine);
    write_file(p, b, 3 * REC100);
    free(b);

    struct akt_dataset d;
    struct akt_error e = {0};
    assert_int_equal(akt_cifar_load(&d, p, AKT_CIFAR100_FINE, &e), AKT_OK);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.num_classes, 100);
    assert_memory_equal(d.labels, fine, 3);
    check_pixels(&d);
    akt_dataset_free(&d);

    assert_int_equal(akt_cifar_load(&d, p, AKT_CIFAR100_COARSE, &e), AKT_OK);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.num_classes, 20);
    assert_memory_equal(d.labels, coarse, 3);
    check_pixels(&d);
    akt_dataset_free(&d);

    /* 9222 bytes only divides into 3074-byte records: AUTO means fine labels */
    assert_int_equal(akt_cifar_load(&d, p, AKT_CIFAR_AUTO, &e), AKT_OK);
    assert_int_equal(d.n, 3);
    assert_int_equal(d.num_classes, 100);
    assert_memory_equal(d.labels, fine, 3);
    check_pixels(&d);
    akt_dataset_free(&d);
}

/* ------------------------------------------------------------- errors --- */
static void test_truncated(void **state)
{
    (void)state;
    char p[512];
    path_of(p, sizeof p, "trunc10.bin");
    const uint8_t lab[3] = {1, 2, 3};
    uint8_t *b = make10(3, lab);
    write_file(p, b, 2 * REC10 + 100); /* 6246 bytes: fits neither record size */
    free(b);

    struct akt_dataset d;
    struct akt_error e = {0};
    int rc = akt_cifar_load(&d, p, AKT_CIFAR10, &e);
    expect_error(rc, AKT_EFORMAT, &d, &e, p, "truncated", "6246 bytes");
    if (!strstr(e.what, "3073") || !strstr(e.what, "100 bytes"))
        fail_msg("'%s' should give the record size and the 100-byte tail", e.what);

    /* AUTO cannot tell which format was meant, so it must say so */
    rc = akt_cifar_load(&d, p, AKT_CIFAR_AUTO, &e);
    expect_error(rc, AKT_EFORMAT, &d, &e, p, "truncated", "explicitly");

    /* a whole number of CIFAR-10 records read as CIFAR-100 */
    path_of(p, sizeof p, "whole10.bin");
    b = make10(3, lab);
    write_file(p, b, 3 * REC10); /* 9219 = 2*3074 + 3071 */
    free(b);
    rc = akt_cifar_load(&d, p, AKT_CIFAR100_FINE, &e);
    expect_error(rc, AKT_EFORMAT, &d, &e, p, "truncated", "3074-byte CIFAR-100");
    assert_non_null(strstr(e.what, "3071 bytes"));

    /* one byte short of 3 CIFAR-100 records */
    path_of(p, sizeof p, "trunc100.bin");
    const uint8_t c[3] = {1, 2, 3}, f[3] = {4, 5, 6};
    b = make100(3, c, f);
    write_file(p, b, 3 * REC100 - 1);
    free(b);
    rc = akt_cifar_load(&d, p, AKT_CIFAR100_COARSE, &e);
    expect_error(rc, AKT_EFORMAT, &d, &e, p, "truncated", "3073 bytes");
}

static void test_empty(void **state)
{
    (void)state;
    char p[512];
    path_of(p, sizeof p, "empty.bin");
    write_file(p, NULL, 0);
    const enum akt_cifar_format fmts[2] = {AKT_CIFAR_AUTO, AKT_CIFAR10};
    for (int k = 0; k < 2; k++) {
        struct akt_dataset d;
        struct akt_error e = {0};
        int rc = akt_cifar_load(&d, p, fmts[k], &e);
        expect_error(rc, AKT_EFORMAT, &d, &e, p, "empty", NULL);
    }
}

static void test_bad_labels(void **state)
{
    (void)state;
    char p[512];
    struct akt_dataset d;
    struct akt_error e = {0};

    path_of(p, sizeof p, "badlab10.bin");
    const uint8_t lab[3] = {9, 0, 10};
    uint8_t *b = make10(3, lab);
    write_file(p, b, 3 * REC10);
    free(b);
    int rc = akt_cifar_load(&d, p, AKT_CIFAR10, &e);
    expect_error(rc, AKT_EFORMAT, &d, &e, p, "record 2", "label 10");

    /* a bad fine byte is an error even when coarse labels are asked for */
    path_of(p, sizeof p, "badfine.bin");
    const uint8_t c[3] = {0, 19, 5}, f[3] = {0, 100, 7};
    b = make100(3, c, f);
    write_file(p, b, 3 * REC100);
    free(b);
    rc = akt_cifar_load(&d, p, AKT_CIFAR100_COARSE, &e);
    expect_error(rc, AKT_EFORMAT, &d, &e, p, "record 1", "fine label 100");

    path_of(p, sizeof p, "badcoarse.bin");
    const uint8_t c2[3] = {20, 0, 0}, f2[3] = {0, 0, 0};
    b = make100(3, c2, f2);
    write_file(p, b, 3 * REC100);
    free(b);
    rc = akt_cifar_load(&d, p, AKT_CIFAR100_FINE, &e);
    expect_error(rc, AKT_EFORMAT, &d, &e, p, "record 0", "coarse label 20");
}

static void test_directory_and_missing(void **state)
{
    (void)state;
    struct akt_dataset d;
    struct akt_error e = {0};
    int rc = akt_cifar_load(&d, tmpdir, AKT_CIFAR10, &e);
    expect_error(rc, AKT_EIO, &d, &e, tmpdir, "directory", NULL);

    char p[512];
    path_of(p, sizeof p, "no_such_file.bin");
    rc = akt_cifar_load(&d, p, AKT_CIFAR_AUTO, &e);
    expect_error(rc, AKT_EIO, &d, &e, p, "cannot open", strerror(ENOENT));
}

/* 3073*3074 bytes is 3074 CIFAR-10 records or 3073 CIFAR-100 records. */
static void test_auto_ambiguous(void **state)
{
    (void)state;
    char p[512];
    path_of(p, sizeof p, "ambiguous.bin");
    size_t len = (size_t)REC10 * REC100;
    uint8_t *b = calloc(len, 1); /* all labels 0: valid in both formats */
    assert_non_null(b);
    write_file(p, b, len);
    free(b);

    struct akt_dataset d;
    struct akt_error e = {0};
    int rc = akt_cifar_load(&d, p, AKT_CIFAR_AUTO, &e);
    expect_error(rc, AKT_EINVAL, &d, &e, p, "ambiguous", "explicitly");

    assert_int_equal(akt_cifar_load(&d, p, AKT_CIFAR10, &e), AKT_OK);
    assert_int_equal(d.n, REC100);
    akt_dataset_free(&d);
    assert_int_equal(akt_cifar_load(&d, p, AKT_CIFAR100_COARSE, &e), AKT_OK);
    assert_int_equal(d.n, REC10);
    akt_dataset_free(&d);
}

/* ------------------------------------------------------ normalisation --- */
static void test_batch_values(void **state)
{
    (void)state;
    char p[512];
    path_of(p, sizeof p, "batch.bin");
    const uint8_t lab[3] = {5, 6, 7};
    uint8_t *b = make10(3, lab);
    /* record 1 starts with the extremes so exact values can be checked */
    b[REC10 + 1] = 0;
    b[REC10 + 2] = 255;
    b[REC10 + 1 + 1024] = 255;
    b[REC10 + 1 + 2048] = 0;
    write_file(p, b, 3 * REC10);
    free(b);

    struct akt_dataset d;
    struct akt_error e = {0};
    assert_int_equal(akt_cifar_load(&d, p, AKT_CIFAR10, &e), AKT_OK);

    /* mean/std 0.5 maps 0 -> -1 and 255 -> 1 exactly */
    const float half[3] = {0.5f, 0.5f, 0.5f};
    float x[2 * AKT_CIFAR_PIXELS];
    int y[2] = {-1, -1};
    akt_dataset_batch(&d, 1, 2, half, half, x, y);
    assert_int_equal(y[0], 6);
    assert_int_equal(y[1], 7);
    assert_true(x[0] == -1.0f);
    assert_true(x[1] == 1.0f);
    assert_true(x[1024] == 1.0f);
    assert_true(x[2048] == -1.0f);

    /* per-channel mean/std, bit-exact against the PyTorch order of operations */
    const float mean[3] = {0.485f, 0.456f, 0.406f}, std[3] = {0.229f, 0.224f, 0.225f};
    akt_dataset_batch(&d, 1, 2, mean, std, x, y);
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < 1024; k++) {
                uint8_t u = d.pixels[(size_t)(1 + i) * AKT_CIFAR_PIXELS + c * 1024 + k];
                float want = ((float)u / 255.0f - mean[c]) / std[c];
                float got = x[i * AKT_CIFAR_PIXELS + c * 1024 + k];
                if (memcmp(&got, &want, sizeof got) != 0)
                    fail_msg("image %d c %d k %d (u8 %d): got %.9g want %.9g", i, c, k, u, got,
                             want);
            }
    /* a hand-computed value: (0/255 - 0.485) / 0.229 */
    assert_float_equal(x[0], -2.117904f, 1e-5f);

    /* labels may be left out; count 0 touches nothing */
    akt_dataset_batch(&d, 0, 1, mean, std, x, NULL);
    akt_dataset_batch(&d, 3, 0, mean, std, x, y);
    akt_dataset_free(&d);
}

/* ------------------------------------------------------ the real files --- */
static int real_path(char *out, size_t n, const char *name)
{
    const char *dir = getenv("AKT_DATA");
    if (!dir || !*dir)
        return 0;
    snprintf(out, n, "%s/cifar-10-batches-bin/%s", dir, name);
    return 1;
}

static void test_real_lossless1000(void **state)
{
    (void)state;
    char p[1024];
    if (!real_path(p, sizeof p, "test_batch_lossless1000.bin")) {
        print_message("# AKT_DATA is not set: skipping the real CIFAR-10 file\n");
        skip();
    }
    struct akt_dataset d;
    struct akt_error e = {0};
    int rc = akt_cifar_load(&d, p, AKT_CIFAR_AUTO, &e);
    if (rc)
        fail_msg("%s: %s", e.where, e.what);
    assert_int_equal(d.n, 1000);
    assert_int_equal(d.num_classes, 10);
    const uint8_t first[10] = {3, 8, 8, 0, 6, 6, 1, 6, 3, 1};
    assert_memory_equal(d.labels, first, 10);
    akt_dataset_free(&d);
}

static void test_real_test_batch(void **state)
{
    (void)state;
    char p[1024];
    if (!real_path(p, sizeof p, "test_batch.bin")) {
        print_message("# AKT_DATA is not set: skipping the real CIFAR-10 file\n");
        skip();
    }
    struct akt_dataset d;
    struct akt_error e = {0};
    int rc = akt_cifar_load(&d, p, AKT_CIFAR10, &e);
    if (rc)
        fail_msg("%s: %s", e.where, e.what);
    assert_int_equal(d.n, 10000);
    int hist[10] = {0};
    for (int i = 0; i < d.n; i++)
        hist[d.labels[i]]++;
    for (int c = 0; c < 10; c++)
        assert_int_equal(hist[c], 1000);
    akt_dataset_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cifar10_small),
        cmocka_unit_test(test_cifar100_fine_and_coarse),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_bad_labels),
        cmocka_unit_test(test_directory_and_missing),
        cmocka_unit_test(test_auto_ambiguous),
        cmocka_unit_test(test_batch_values),
        cmocka_unit_test(test_real_lossless1000),
        cmocka_unit_test(test_real_test_batch),
    };
    return cmocka_run_group_tests_name("unit_data", tests, setup, teardown);
}
