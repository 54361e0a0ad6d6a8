#!/usr/bin/env bash
# Side-by-side speed check: Debian's PyTorch 1.13 CPU baseline, then akt, in
# one run on the same machine (the machines are shared and noisy, so only
# numbers taken together are comparable).
#
# usage: tools/bench_torch.sh [BUILD_DIR] [-- extra akt bench options]
#   BUILD_DIR  meson build folder holding core/akt (default: build)
# Environment: THREADS (2), REPS (20), BATCHES ("32 128"). Both runs inherit
# OMP_WAIT_POLICY: on these shared VMs "passive" avoids multi-ms stalls when a
# spinning OpenMP worker gets descheduled (measure both ways). Unset, akt
# picks "passive" itself (core/cli/main.c) and PyTorch keeps libgomp's
# spinning default. Both sides reject calls other processes disturbed and
# wait for a quiet machine (up to 300 s each time), so on a busy machine a
# run can take many minutes.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-build}"
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
case "$build" in /*) ;; *) build="$here/$build" ;; esac
akt="$build/core/akt"
threads="${THREADS:-2}"
reps="${REPS:-20}"
batches="${BATCHES:-32 128}"
baseline="$here/../shared/bench/torch_baseline.py"

[ -x "$akt" ] || { echo "bench_torch.sh: no akt binary at $akt (meson compile -C $build)" >&2; exit 1; }
[ -f "$baseline" ] || { echo "bench_torch.sh: missing $baseline" >&2; exit 1; }

echo "## $(date -u +%FT%TZ) $(nproc) CPUs, OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}, OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-(unset)}"
echo "## PyTorch (torch_baseline.py; _mt = glibc malloc tuned)"
# Debian's interpreter sees python3-torch; a venv python would not
/usr/bin/python3 "$baseline" --only 'train_step|fwd_eval' --threads "$threads" \
    --reps "$reps" --batches $batches 2>&1 | grep -v '^#   ' || true
echo "## akt bench"
bargs=()
for b in $batches; do bargs+=(--batch "$b"); done
"$akt" bench --threads "$threads" --reps "$reps" "${bargs[@]}" "$@"
