#!/usr/bin/env bash
# Time per zero-shot training iteration (SPEC 5), side by side: Debian's
# PyTorch 1.13 (tools/bench_zsq_torch.py) first, then akt bench-zsq, in one
# run on the same machine, for GDFQ+AKT and AdaDFQ+AKT. The machines are
# shared and noisy: only numbers taken together are comparable, and the
# "contended" counts on stderr say how many timed iterations overlapped with
# other processes' CPU use.
#
# usage: tools/bench_zsq.sh [BUILD_DIR] [-- extra akt bench-zsq options]
#   BUILD_DIR  meson build folder holding core/akt (default: build)
# Environment: THREADS (2), REPS (10 timed iterations), WARMUP (3),
#   BATCHES ("32 200"), DEPTHS ("20"; e.g. "20 56": each depth's shared teacher
#   teachers/resnetD_cifar10_akamaster_optA.h5, lines of depths other than 20
#   named _rD), AKT_DATA (default ../shared/data), PYTORCH_OPTS (extra options
#   of bench_zsq_torch.py, e.g. "--kl-double" or "--malloc both").
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-build}"
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
case "$build" in /*) ;; *) build="$here/$build" ;; esac
akt="$build/core/akt"
threads="${THREADS:-2}"
reps="${REPS:-10}"
warmup="${WARMUP:-3}"
batches="${BATCHES:-32 200}"
depths="${DEPTHS:-20}"
export AKT_DATA="${AKT_DATA:-$here/../shared/data}"

[ -x "$akt" ] || { echo "bench_zsq.sh: no akt binary at $akt (meson compile -C $build)" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "## $(date -u +%FT%TZ) $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), threads $threads, $reps timed iterations after $warmup warm-up"
echo "## OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-(unset)} OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)}"
echo "## PyTorch (tools/bench_zsq_torch.py, glibc malloc tuned) -- load:$(uptime | sed 's/.*load average://')"
# Debian's interpreter sees python3-torch; a venv python would not
for d in $depths; do
    /usr/bin/python3 "$here/tools/bench_zsq_torch.py" --threads "$threads" --reps "$reps" \
        --warmup "$warmup" --batches $batches --depth "$d" ${PYTORCH_OPTS:-} \
        >>"$tmp/torch.txt" 2>>"$tmp/torch.err"
done
cat "$tmp/torch.err" >&2
cat "$tmp/torch.txt"

echo "## akt bench-zsq -- load:$(uptime | sed 's/.*load average://')"
bargs=()
for b in $batches; do bargs+=(--batch "$b"); done
for d in $depths; do
    "$akt" bench-zsq --threads "$threads" --iters "$reps" --warmup "$warmup" "${bargs[@]}" \
        --depth "$d" "$@" >>"$tmp/akt.txt"
done
cat "$tmp/akt.txt"

echo "## side by side (median ms per iteration; speedup = PyTorch / akt)"
awk 'FNR == NR { if ($1 !~ /^#/) torch[$1] = $2; next }
     $1 !~ /^#/ { akt[$1] = $2; order[n++] = $1 }
     END {
       printf "%-24s %12s %12s %9s\n", "iteration", "pytorch_ms", "akt_ms", "speedup"
       for (i = 0; i < n; i++) {
         k = order[i]
         if (k in torch)
           printf "%-24s %12.1f %12.1f %8.2fx\n", k, torch[k], akt[k], torch[k] / akt[k]
         else
           printf "%-24s %12s %12.1f %9s\n", k, "-", akt[k], "-"
       }
     }' "$tmp/torch.txt" "$tmp/akt.txt"
