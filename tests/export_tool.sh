#!/bin/bash
# akt export and akt eval --student on a short run (TAP output): the run is
# evaluated on all 1000 lossless test images, then
#   - akt eval --student prints its final_top1 exactly;
#   - the torch export, rebuilt by tools/akt_student.py in PyTorch, gives the
#     same top-1 exactly;
#   - the ONNX export passes onnx.checker (full check) and, run by a NumPy
#     interpreter (tests/tools/onnx_eval.py), gives the PyTorch logits;
#   - an unknown run, a run without final tensors and an unwritable output are
#     one-line errors naming what is wrong.
# The Python checks skip (TAP skip) when /usr/bin/python3 lacks torch, h5py or
# onnx; the C ones always run.
# Usage: export_tool.sh [PYTHON]  (default /usr/bin/python3; '' = not found)
# Env: AKT_BIN, AKT_DATA, AKT_SOURCE_ROOT.
set -u

PY=${1-/usr/bin/python3}
AKT=${AKT_BIN:-}
ROOT=${AKT_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
skip() { echo "1..0 # SKIP $*"; exit 0; }
[ -n "$AKT" ] && [ -x "$AKT" ] || skip "AKT_BIN is not an executable: '$AKT'"
[ -n "${AKT_DATA:-}" ] || skip "AKT_DATA is not set"
DATA=$AKT_DATA/cifar-10-batches-bin/test_batch_lossless1000.bin
[ -f "$DATA" ] || skip "no $DATA"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/akt_export_tool.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/tap.sh"
have_py() { [ -n "$PY" ] && [ -x "$PY" ] && "$PY" -c "import $1" 2>/dev/null; }
py_skip() { results+=("ok $((${#results[@]} + 1)) - $1 # SKIP $2"); }

# --- a short run, evaluated on all 1000 images ---------------------------------
# (plain range EMA: the ranges settle within the 20 calibration iterations, so
# the student is a real one, ~83 % top-1, not a degenerate one)
R=$tmp/r.h5
run "$AKT" train --generator gdfq --loss akt --epochs 3 --iters 10 --batch 16 --seed 3 \
    --set warmup_epochs=2 --set tracker_epochs=2 --set range_ema=plain --set milestones=none \
    --set eval_batch=250 --out "$R" --quiet
final=$(sed -n 's/.*final_top1=\([0-9.]*\).*/\1/p' "$tmp/out")
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc")
[ -n "$final" ] || why+=("no final_top1 in '$(cat "$tmp/out")'")
report "a short run ends with final_top1 ($final)" "${why[@]}"
[ "$rc" -eq 0 ] && [ -n "$final" ] || finish

# --- akt eval --student ----------------------------------------------------------
run "$AKT" eval --student "$R" --run run
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc")
grep -qx "top1=$final top5=[0-9.]* n=1000" "$tmp/out" ||
    why+=("'$(cat "$tmp/out")' is not top1=$final on 1000 images")
report "akt eval --student prints the run's final_top1 ($final)" "${why[@]}"
run "$AKT" eval --student "$R" --run run --data "$DATA" --limit 100 --batch 37
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc")
grep -q " n=100$" "$tmp/out" || why+=("--limit 100 did not evaluate 100 images")
report "akt eval --student --data --limit --batch" "${why[@]}"

# --- torch -----------------------------------------------------------------------
run "$AKT" export "$R" --run run --format torch --out "$tmp/s.h5"
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc")
[ -s "$tmp/s.h5" ] || why+=("no $tmp/s.h5")
[ -e "$tmp/s.h5.tmp" ] && why+=("the temporary file was left behind")
report "akt export --format torch" "${why[@]}"
if have_py "torch, h5py, numpy"; then
    run "$PY" "$ROOT/tools/akt_student.py" "$tmp/s.h5" --data "$DATA" --logits "$tmp/t.npy"
    why=()
    [ "$rc" -eq 0 ] || why+=("exit status $rc")
    grep -qx "top1=$final top5=[0-9.]* n=1000" "$tmp/out" ||
        why+=("PyTorch says '$(cat "$tmp/out")', akt's final_top1 is $final")
    report "PyTorch (tools/akt_student.py) reproduces final_top1 $final exactly" "${why[@]}"
else
    py_skip "PyTorch reproduces final_top1" "no torch/h5py/numpy for $PY (Debian: python3-torch python3-h5py)"
fi

# --- ONNX ------------------------------------------------------------------------
run "$AKT" export "$R" --run run --format onnx --out "$tmp/s.onnx"
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc")
[ -s "$tmp/s.onnx" ] || why+=("no $tmp/s.onnx")
report "akt export --format onnx" "${why[@]}"
if have_py "onnx, numpy"; then
    run "$PY" -c '
import sys, onnx
m = onnx.load(sys.argv[1])
onnx.checker.check_model(m, full_check=True)
ops = {n.op_type for n in m.graph.node}
assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops, ops
w = [t for t in m.graph.initializer if t.name == "layer1.0.conv1.weight.q"][0]
assert w.data_type == onnx.TensorProto.INT8, w.data_type
print("ok", len(m.graph.node), "nodes")' "$tmp/s.onnx"
    why=()
    [ "$rc" -eq 0 ] || why+=("onnx.checker or the QDQ structure check failed")
    report "onnx.checker accepts the model; int8 weights, Q/DQ nodes" "${why[@]}"
    if [ -s "$tmp/t.npy" ]; then
        run "$PY" "$ROOT/tests/tools/onnx_eval.py" "$tmp/s.onnx" "$DATA" 100 "$tmp/o.npy"
        why=()
        [ "$rc" -eq 0 ] || why+=("onnx_eval failed")
        if [ "$rc" -eq 0 ]; then
            run "$PY" -c '
import sys, numpy as np
o, t = np.load(sys.argv[1]), np.load(sys.argv[2])[:100]
d = float(np.abs(o - t).max())
print("max |onnx - torch| logit", d, "argmax agreement", float((o.argmax(1) == t.argmax(1)).mean()))
sys.exit(0 if d < 1e-2 * max(1.0, float(np.abs(t).max())) else 1)' "$tmp/o.npy" "$tmp/t.npy"
            [ "$rc" -eq 0 ] || why+=("ONNX and PyTorch logits differ: $(cat "$tmp/out")")
        fi
        report "the ONNX graph computes the PyTorch student's logits ($(head -c 80 "$tmp/out"))" "${why[@]}"
    else
        py_skip "the ONNX graph computes the PyTorch student's logits" "no PyTorch logits"
    fi
else
    py_skip "onnx.checker accepts the model" "no onnx/numpy for $PY (Debian: python3-onnx)"
fi

# --- bad input -------------------------------------------------------------------
run "$AKT" export "$R" --run nosuch --format onnx --out "$tmp/x.onnx"
why=()
[ "$rc" -eq 1 ] || why+=("exit status $rc, want 1")
grep -q "no run 'nosuch' (runs: run)" "$tmp/err" || why+=("stderr does not name the run and the runs present")
[ "$(wc -l <"$tmp/err")" -eq 1 ] || why+=("not one line")
[ -e "$tmp/x.onnx" ] && why+=("an output was written")
report "unknown run id: one line naming it and the runs present" "${why[@]}"

run env AKT_KILL_AFTER_ITERS=1 "$AKT" train --generator gdfq --loss logit --epochs 2 --iters 2 \
    --batch 4 --set eval_limit=10 --out "$tmp/killed.h5" --quiet
run "$AKT" eval --student "$tmp/killed.h5" --run run
why=()
[ "$rc" -eq 1 ] || why+=("exit status $rc, want 1")
grep -q "killed.h5: run 'run' has not ended: it is in .*killed.h5.d/run.h5 (status 'running'" \
    "$tmp/err" || why+=("stderr does not say that the run has not ended")
report "a run without final tensors (killed): one line naming file, run and status" "${why[@]}"

run "$AKT" export "$R" --run run --format torch --out "$tmp/no_dir/s.h5"
why=()
[ "$rc" -eq 1 ] || why+=("exit status $rc, want 1")
grep -q "no_dir/s.h5: cannot write" "$tmp/err" || why+=("stderr does not name the output")
report "an unwritable output: one line naming it" "${why[@]}"
run "$AKT" export "$R" --run run --format onnx --out "$tmp"
why=()
[ "$rc" -eq 1 ] || why+=("exit status $rc, want 1")
grep -q "exists and is not a regular file" "$tmp/err" || why+=("a folder as --out is not refused")
report "a folder as the output: refused" "${why[@]}"
run "$AKT" export "$R" --run run --format tflite --out "$tmp/x"
why=()
[ "$rc" -eq 2 ] || why+=("exit status $rc, want 2")
report "an unknown --format is a usage error" "${why[@]}"
run "$AKT" export "$tmp/nosuch.h5" --run run --format onnx --out "$tmp/x.onnx"
why=()
[ "$rc" -eq 1 ] || why+=("exit status $rc, want 1")
grep -q "nosuch.h5: cannot open" "$tmp/err" || why+=("stderr does not name the missing file")
report "a missing results file: one line naming it" "${why[@]}"

finish
