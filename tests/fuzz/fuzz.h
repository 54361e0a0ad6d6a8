/* Shared by the fuzz targets (tests/fuzz/fuzz_*.c): each is a libFuzzer
 * entry point, LLVMFuzzerTestOneInput, over one of akt's file readers. The
 * readers take paths, so the input is written to a per-process file first.
 * Built with -Dfuzz=true (clang, -fsanitize=fuzzer); replay.c replays saved
 * inputs (the corpus and every crash found) through the same entry point in
 * the normal test suite. */
#ifndef AKT_FUZZ_H
#define AKT_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* data written to $TMPDIR/akt_fuzz_<pid><suffix>; the path (static) or NULL */
static inline const char *fuzz_file(const uint8_t *data, size_t size, const char *suffix)
{
    static char path[512];
    const char *dir = getenv("TMPDIR");
    snprintf(path, sizeof path, "%s/akt_fuzz_%d%s", dir && *dir ? dir : "/tmp", (int)getpid(),
             suffix);
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    size_t w = size ? fwrite(data, 1, size, f) : 0;
    int bad = w != size;
    bad |= fclose(f) != 0;
    return bad ? NULL : path;
}

#endif
