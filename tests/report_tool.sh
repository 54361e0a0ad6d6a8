#!/bin/bash
# tools/akt_report.py on a results file that akt itself wrote (TAP output):
# a tiny matrix (gdfq/adadfq x logit/akt, W4A4, plus seeds 1 and 2 of one
# cell), then the text and Markdown tables (every cell mean ± std over its
# seeds, cells with fewer than 3 seeds marked), report.md and the three PNGs.
# Skips (exit 0) when /usr/bin/python3, h5py, numpy or matplotlib is missing.
# Usage: report_tool.sh [PYTHON]  (default /usr/bin/python3; '' = not found)
# Env: AKT_BIN (the binary), AKT_DATA (shared data), AKT_SOURCE_ROOT (the tree).
set -u

PY=${1-/usr/bin/python3}
[ -n "$PY" ] || { echo "1..0 # SKIP /usr/bin/python3 not found"; exit 0; }
AKT=${AKT_BIN:-}
TOOL=${AKT_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}/tools/akt_report.py
skip() { echo "1..0 # SKIP $*"; exit 0; }
[ -x "$PY" ] || skip "$PY not found"
"$PY" -c 'import h5py, numpy' 2>/dev/null || skip "h5py/numpy not importable by $PY (Debian: python3-h5py python3-numpy)"
"$PY" -c 'import matplotlib' 2>/dev/null || skip "matplotlib not importable by $PY (Debian: python3-matplotlib)"
[ -n "$AKT" ] && [ -x "$AKT" ] || skip "AKT_BIN is not an executable: '$AKT'"
[ -n "${AKT_DATA:-}" ] || skip "AKT_DATA is not set"
[ -f "$TOOL" ] || skip "no $TOOL"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/akt_report_tool.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

. "$(dirname "$0")/tap.sh"

cat >"$tmp/tiny.yaml" <<'EOF'
name: tiny
teacher: teachers/resnet20_cifar10_akamaster_optA.h5
data: cifar-10-batches-bin/test_batch_lossless1000.bin
defaults:
  bits: 4
  epochs: 2
  iters: 2
  batch: 8
  warmup_epochs: 1
  tracker_epochs: 1
  milestones: none
  eval_limit: 100
  seed: 0
matrix:
  generator: [gdfq, adadfq]
  loss: [logit, akt]
include:
  - {generator: gdfq, loss: logit, seed: 1}
  - {generator: gdfq, loss: logit, seed: 2}
EOF

# --- the results file ------------------------------------------------------------
run "$AKT" run "$tmp/tiny.yaml" --dry-run
ids=$(awk '{print $2}' "$tmp/out")
nids=$(printf '%s\n' $ids | grep -c .)
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
[ "$nids" -eq 6 ] || why+=("$nids runs listed, want 6")
report "akt run --dry-run lists the 6 runs" "${why[@]}"

H5=$tmp/tiny.h5
run "$AKT" run "$tmp/tiny.yaml" --out "$H5" --threads 2 --quiet
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
[ -s "$H5" ] || why+=("no results file $H5")
report "akt run tiny.yaml writes a results file" "${why[@]}"
[ "$rc" -eq 0 ] && [ -s "$H5" ] || finish

# --- text table ------------------------------------------------------------------
run "$PY" "$TOOL" "$H5" --out "$tmp/rep"
cp "$tmp/out" "$tmp/text"
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
for id in $ids; do
    grep -qF -- "$id" "$tmp/text" || why+=("run id '$id' not in the text output")
done
grep -qE '^method +W4A4$' "$tmp/text" || why+=("no text header 'method  W4A4'")
grep -q 'Not done' "$tmp/text" && why+=("a 'Not done' section although every run is done")
report "text report: exit 0, header, every run id" "${why[@]}"

# Every cell: the row "ARCH generator+loss" holds the runs' best and final
# top-1, each mean ± sample std over the cell's seeds, and (n=N); a cell with
# fewer than 3 seeds is marked * (std "-" for one run). ARCH is the run's
# depth attribute (the teacher's architecture).
"$PY" - "$H5" >"$tmp/cells" 2>"$tmp/err" <<'PYEOF'
import statistics, sys
import h5py
cells = {}
with h5py.File(sys.argv[1], "r") as f:
    for rid, run in f["runs"].items():
        cfg = dict(l.split(": ", 1) for l in run.attrs["config"].splitlines() if ": " in l)
        key = f"resnet{int(run.attrs['depth'])} {cfg['generator']}+{cfg['loss']}"
        cells.setdefault(key, []).append((run.attrs["best_top1"], run.attrs["final_top1"]))
for key, v in cells.items():
    b, fi = [x[0] for x in v], [x[1] for x in v]
    if len(v) == 1:
        text = f"{b[0]:.2f} ± - / {fi[0]:.2f} ± - (n=1)"
    else:
        text = (f"{statistics.mean(b):.2f} ± {statistics.stdev(b):.2f} / "
                f"{statistics.mean(fi):.2f} ± {statistics.stdev(fi):.2f} (n={len(v)})")
    print(f"{key}\t{text}{' *' if len(v) < 3 else ''}")
PYEOF
last_cmd="read the cells with h5py"
why=()
ncells=$(grep -c . "$tmp/cells")
[ "$ncells" -eq 4 ] || why+=("$ncells rows from h5py, want 4")
row_line() { awk -v r="$1 " 'index($0, r) == 1' "$tmp/text"; }
while IFS=$'\t' read -r row cell; do
    row_line "$row" | grep -qF -- "$cell" ||
        why+=("row '$row' does not hold '$cell': '$(row_line "$row")'")
done <"$tmp/cells"
row_line "resnet20 gdfq+logit" | grep -qF '(n=3)' || why+=("gdfq+logit is not the n=3 cell")
row_line "resnet20 gdfq+logit" | grep -qF '(n=3) *' && why+=("the 3-seed cell is marked *")
row_line "resnet20 gdfq+akt" | grep -qE '± - / [0-9.]+ ± - \(n=1\) \*' ||
    why+=("a one-run cell is not 'B ± - / F ± - (n=1) *'")
grep -qF '* fewer than 3 seeds' "$tmp/text" || why+=("no note on the * mark")
report "text table: every cell mean ± std of best and final top-1, n, * below 3 seeds" "${why[@]}"

# --- Markdown --------------------------------------------------------------------
run "$PY" "$TOOL" "$H5" --out "$tmp/rep" --markdown
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
grep -qxF '| method | W4A4 |' "$tmp/out" || why+=("no Markdown header '| method | W4A4 |'")
grep -qxF '|---|:---:|' "$tmp/out" || why+=("no Markdown separator '|---|:---:|' under it")
for id in $ids; do
    grep -qF -- "| $id |" "$tmp/out" || why+=("run id '$id' not in a Markdown row")
done
cmp -s "$tmp/out" "$tmp/rep/report.md" || why+=("--markdown output differs from report.md")
report "--markdown: header, rows, same as report.md" "${why[@]}"

# --- PNGs ------------------------------------------------------------------------
why=()
for png in top1 losses images; do
    f=$tmp/rep/$png.png
    if [ ! -s "$f" ]; then
        why+=("no $png.png")
    elif [ "$(head -c 8 "$f" | od -An -tx1 | tr -d ' \n')" != 89504e470d0a1a0a ]; then
        why+=("$png.png does not start with the PNG signature")
    fi
done
report "top1.png, losses.png, images.png are PNG files" "${why[@]}"

# --- default folder: NAME_report/ next to the first file ----------------------
run "$PY" "$TOOL" "$H5" --no-plots
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
[ -s "$tmp/tiny_report/report.md" ] || why+=("no $tmp/tiny_report/report.md")
report "default output folder tiny_report/" "${why[@]}"

# --- a run that is not done: listed below the table, left out of its cell -------
cp "$H5" "$tmp/failed.h5"
last_cmd="mark gdfq-logit-w4a4-s1 failed with h5py"
"$PY" -c 'import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    r = f["runs/gdfq-logit-w4a4-s1"]
    r.attrs["status"] = "failed"
    r.attrs["status_message"] = "loss is NaN at epoch 2"' "$tmp/failed.h5" 2>"$tmp/err"
run "$PY" "$TOOL" "$tmp/failed.h5" --out "$tmp/rep_failed" --no-plots
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
sed -n '/^Not done/,$p' "$tmp/out" >"$tmp/notdone"
grep -E '^gdfq-logit-w4a4-s1 +failed +2/2 +loss is NaN' "$tmp/notdone" >/dev/null ||
    why+=("'Not done' does not list 'gdfq-logit-w4a4-s1 failed 2/2 loss is NaN...'")
grep -E '^resnet20 gdfq\+logit ' "$tmp/out" | grep -qF '(n=2) *' ||
    why+=("the failed run still counts in its cell (want n=2, marked *)")
report "a failed run is listed with status and epochs done" "${why[@]}"

# --- bad input -------------------------------------------------------------------
printf 'not hdf5\n' >"$tmp/text.h5"
run "$PY" "$TOOL" "$tmp/text.h5" --out "$tmp/rep_bad"
why=()
[ "$rc" -ne 0 ] || why+=("exit status 0 for a file that is not HDF5")
grep -qF "$tmp/text.h5" "$tmp/err" || why+=("stderr does not name the file")
grep -q Traceback "$tmp/err" && why+=("a Python traceback instead of an error line")
report "a file that is not HDF5 is an error naming it" "${why[@]}"

finish
