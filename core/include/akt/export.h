/* A finished run's quantized student outside the training loop: rebuilt from
 * its results file alone (tensors/student, tensors/act_range; results/
 * README.md), evaluated on any data, or exported for deployment and for
 * PyTorch (core/run/export.c). */
#ifndef AKT_EXPORT_H
#define AKT_EXPORT_H

#include "akt/student.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a results file says about a finished run (besides the student). */
struct akt_student_info {
    double final_top1, best_top1;
    char status[32];
    char data_path[1024]; /* the evaluation file the run used (from its config) */
    int eval_limit;       /* > 0: the run evaluated its first N records */
};

/* The student of run id in the results file at path, as it ended: weights,
 * BN, bit widths, first_last_8bit and the final activation ranges (tracking
 * off). Errors name the file and the run: no such run (the runs present are
 * listed), a run without final tensors (not finished), a malformed group.
 * info may be NULL. Free with akt_student_free. */
int akt_student_load(struct akt_student *s, const char *path, const char *id,
                     struct akt_student_info *info, struct akt_error *e);

/* `akt export --format torch`: an HDF5 file with one float32 dataset per
 * state_dict key (the fake-quantized weight (q + zp) / scale for every conv
 * and the FC, the trained values for BN and the FC bias), the integer
 * weights under quant/<key>/{q,scale,zero_point,bits}, the activation
 * quantizers under act_quant/{scale,zero_point,bits,range}, and root
 * attributes describing the network; tools/akt_student.py rebuilds the
 * fake-quantized model in PyTorch from it. */
int akt_export_torch(const char *results, const char *id, const char *out, struct akt_error *e);
/* `akt export --format onnx`: the student as an ONNX model (opset 13) in QDQ
 * form: integer weights with per-channel scale and zero point
 * (DequantizeLinear), activation QuantizeLinear/DequantizeLinear with the
 * tracked ranges (and a Clip to the k-bit levels below 8 bits); input
 * "image" [N,3,32,32] float in [0,1] (pixel / 255, normalised inside the
 * graph), output "logits" [N,classes]. */
int akt_export_onnx(const char *results, const char *id, const char *out, struct akt_error *e);

#ifdef __cplusplus
}
#endif
#endif
