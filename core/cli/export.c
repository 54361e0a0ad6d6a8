/* akt export: a finished run's quantized student as ONNX (QDQ) or as a
 * PyTorch-loadable HDF5 state_dict (core/run/export.c). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "akt/export.h"
#include "cli.h"

static const char *EXPORT_USAGE =
    "usage: akt export RESULTS.h5 --run ID --format onnx|torch --out FILE\n"
    "\n"
    "Writes the quantized student of a finished run, rebuilt from the results\n"
    "file alone (its final tensors; the teacher file is not needed):\n"
    "  onnx   an ONNX model (opset 13) in QDQ form: int8 weights with per-channel\n"
    "         scale and zero point (DequantizeLinear), activation QuantizeLinear /\n"
    "         DequantizeLinear with the tracked ranges (a Clip to the k-bit levels\n"
    "         below 8 bits); input 'image' [N,3,32,32] = pixel / 255 in [0,1] (the\n"
    "         teacher's normalisation is in the graph), output 'logits'\n"
    "  torch  an HDF5 file of state_dict keys (the fake-quantized weights the\n"
    "         student computes with, BN and FC bias as trained), the integer\n"
    "         weights and the activation quantizers; tools/akt_student.py builds the\n"
    "         fake-quantized model in PyTorch from it and evaluates it\n"
    "\n"
    "  --run ID          run id in the results file (required)\n"
    "  --format F        onnx or torch (required)\n"
    "  --out FILE        the file to write (required; replaced when it exists)\n";

int akt_cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {
        {"run", required_argument, 0, 'r'},
        {"format", required_argument, 0, 'f'},
        {"out", required_argument, 0, 'o'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *id = NULL, *format = NULL, *out = NULL;
    optind = 1;
    opterr = 0;
    int ch;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'r': id = optarg; break;
        case 'f': format = optarg; break;
        case 'o': out = optarg; break;
        case 'h': fputs(EXPORT_USAGE, stdout); return 0;
        case ':': return akt_cli_usage_error("export", "option '%s' needs a value",
                                             argv[optind - 1]);
        default: return akt_cli_usage_error("export", "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind + 1 != argc)
        return akt_cli_usage_error("export", "expected one results file, got %d arguments",
                                   argc - optind);
    if (!id)
        return akt_cli_usage_error("export", "--run is required");
    if (!format || (strcmp(format, "onnx") && strcmp(format, "torch")))
        return akt_cli_usage_error("export", "--format must be onnx or torch%s%s%s",
                                   format ? ", got '" : "", format ? format : "",
                                   format ? "'" : "");
    if (!out || !*out)
        return akt_cli_usage_error("export", "--out is required");
    struct akt_error e = {0};
    const char *path = argv[optind];
    int rc = !strcmp(format, "onnx") ? akt_export_onnx(path, id, out, &e)
                                     : akt_export_torch(path, id, out, &e);
    if (rc)
        return akt_cli_fail(&e);
    printf("wrote %s (%s, run %s)\n", out, format, id);
    return 0;
}
