/* Fuzz target: the teacher HDF5 loader (akt_resnet_load), attributes
 * (arch, num_classes, shortcut, input_mean/std, bn_eps) and datasets. */
#include "akt/nn.h"
#include "fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size, ".h5");
    if (!path)
        return 0;
    struct akt_resnet m;
    struct akt_error e;
    if (akt_resnet_load(&m, path, &e) == 0)
        akt_resnet_free(&m);
    unlink(path);
    return 0;
}
