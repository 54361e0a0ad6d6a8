/* Fuzz target: the CIFAR binary loader (akt_cifar_load). The first byte
 * picks the format (auto, cifar10, cifar100 fine, cifar100 coarse), the rest
 * is the file. */
#include "akt/data.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const enum akt_cifar_format formats[4] = {AKT_CIFAR_AUTO, AKT_CIFAR10,
                                                     AKT_CIFAR100_FINE, AKT_CIFAR100_COARSE};
    const char *path = fuzz_file(data + 1, size - 1, ".bin");
    if (!path)
        return 0;
    struct akt_dataset d;
    struct akt_error e;
    if (akt_cifar_load(&d, path, formats[data[0] % 4], &e) == 0) {
        /* a loaded set must be usable: one normalised batch of the first records */
        float mean[3] = {0.5f, 0.5f, 0.5f}, std[3] = {0.25f, 0.25f, 0.25f};
        int n = d.n < 2 ? d.n : 2;
        float *x = malloc((size_t)n * 3 * 32 * 32 * sizeof *x);
        int labels[2];
        if (x && n > 0)
            akt_dataset_batch(&d, 0, n, mean, std, x, labels);
        free(x);
        akt_dataset_free(&d);
    }
    unlink(path);
    return 0;
}
