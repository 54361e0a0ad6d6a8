/* Fuzz target: the YAML experiment parser (akt_experiment_load: libyaml
 * document, schema, matrix expansion and the validation of every cell).
 * Paths resolve against a data root that holds a teacher and a data file,
 * so valid files get past the path checks. */
#include <string.h>
#include <sys/stat.h>

#include "akt/experiment.h"
#include "akt/registry.h"
#include "fuzz.h"

static struct akt_registry g_reg;
static char g_root[512];

static void touch(const char *rel)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", g_root, rel);
    FILE *f = fopen(p, "wb");
    if (f)
        fclose(f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    struct akt_error e;
    akt_registry_init(&g_reg);
    if (akt_registry_load_default(&g_reg, &e))
        fprintf(stderr, "fuzz_yaml: plugins: %s: %s\n", e.where, e.what);
    const char *dir = getenv("TMPDIR");
    snprintf(g_root, sizeof g_root, "%s/akt_fuzz_root_%d", dir && *dir ? dir : "/tmp",
             (int)getpid());
    char p[700];
    mkdir(g_root, 0700);
    snprintf(p, sizeof p, "%s/teachers", g_root);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/cifar-10-batches-bin", g_root);
    mkdir(p, 0700);
    touch("teachers/resnet20_cifar10_akamaster_optA.h5");
    touch("teachers/resnet56_cifar10_akamaster_optA.h5");
    touch("cifar-10-batches-bin/test_batch_lossless1000.bin");
    touch("cifar-10-batches-bin/test_batch.bin");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file(data, size, ".yaml");
    if (!path)
        return 0;
    struct akt_experiment x;
    struct akt_error e;
    if (akt_experiment_load(&x, path, &g_reg, g_root, &e) == 0)
        akt_experiment_free(&x);
    unlink(path);
    return 0;
}
