/* SHA-256 (core/base/sha256.c) against FIPS 180-4's examples and the NIST
 * one-million-'a' vector, fed in uneven pieces (every block boundary case),
 * and a file hashed block by block; the shell test sweeps.sh checks files
 * against sha256sum. Also the provenance helpers' shell quoting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "akt/akt.h"

static void test_vectors(void **state)
{
    (void)state;
    static const struct { const char *in, *want; } v[] = {
        {"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
        {"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
        {"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
        {"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqr"
         "lmnopqrsmnopqrstnopqrstu",
         "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
    };
    char hex[65];
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        akt_sha256_hex(v[i].in, strlen(v[i].in), hex);
        assert_string_equal(hex, v[i].want);
    }
}

/* One million 'a' in pieces of 1, 2, ... 127 bytes, so that the buffered
 * tail crosses every offset of a 64-byte block. */
static void test_million_a_in_pieces(void **state)
{
    (void)state;
    char *a = malloc(1000000);
    assert_non_null(a);
    memset(a, 'a', 1000000);
    struct akt_sha256 s;
    akt_sha256_init(&s);
    size_t done = 0, piece = 1;
    while (done < 1000000) {
        size_t n = piece < 1000000 - done ? piece : 1000000 - done;
        akt_sha256_update(&s, a + done, n);
        done += n;
        piece = piece % 127 + 1;
    }
    char hex[65];
    akt_sha256_final(&s, hex);
    assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* lengths around the padding boundary (55, 56, 63, 64, 65 bytes), in
     * one piece and byte by byte: the same digest */
    for (size_t n = 50; n < 130; n++) {
        char one[65], bytes[65];
        akt_sha256_hex(a, n, one);
        akt_sha256_init(&s);
        for (size_t k = 0; k < n; k++)
            akt_sha256_update(&s, a + k, 1);
        akt_sha256_final(&s, bytes);
        assert_string_equal(one, bytes);
    }
    free(a);
}

static void test_file(void **state)
{
    (void)state;
    char path[] = "/tmp/akt_sha256_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "wb");
    assert_non_null(f);
    /* 3 MiB + 5 bytes: more than one of the reader's 1 MiB blocks */
    size_t n = 3 * 1048576 + 5;
    unsigned char *b = malloc(n);
    assert_non_null(b);
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 2654435761u >> 13);
    assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
    char want[65], got[65];
    akt_sha256_hex(b, n, want);
    struct akt_error e = {0};
    assert_int_equal(akt_sha256_file(path, got, &e), 0);
    assert_string_equal(got, want);
    unlink(path);
    assert_int_equal(akt_sha256_file(path, got, &e), AKT_EIO); /* gone: an error naming it */
    assert_non_null(strstr(e.where, "akt_sha256_"));
    free(b);
}

static void test_command_line_quoting(void **state)
{
    (void)state;
    char *argv[] = {"akt", "run", "my exp.yaml", "--set", "id=it's", "", NULL};
    akt_provenance_set_args(6, argv);
    assert_string_equal(akt_provenance_command_line(),
                        "akt run 'my exp.yaml' --set 'id=it'\\''s' ''");
    assert_true(akt_provenance_host()[0] != 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_million_a_in_pieces),
        cmocka_unit_test(test_file),
        cmocka_unit_test(test_command_line_quoting),
    };
    return cmocka_run_group_tests_name("unit_sha256", tests, NULL, NULL);
}
