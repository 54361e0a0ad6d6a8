#!/bin/bash
# The kill scan (issue 14, results/README.md "Crash safety"): a short
# `akt train` is SIGKILLed at its N-th write (tests/tools/killshim.c counts
# write/pwrite/writev on fds >= 3), the same command is run again, and the
# results must end bit-identical to an uninterrupted run (h5same, time_s
# and the timestamps aside). Scenarios:
#   new    a new results file
#   beside a results file that already holds a finished run, which must
#          stay unchanged (every attribute and dataset, timestamps included)
#   disk   a new file with every edit made on disk (the path results files
#          over 64 MiB take: a byte copy, then HDF5's own small writes)
# Every write index is tried in new and beside. disk has hundreds of HDF5
# writes; it tries the first and last write to each file of each phase (the
# file's creation, every epoch's run-file replacement, the final tensors,
# the commit into the results file, the removal) plus every STRIDE-th.
# AKT_CRASH_FULL=1 tries every index there too; AKT_QUICK=1 (the sanitizer
# build, where a run is several times slower) tries only the first and
# last write of each phase, and skips disk.
set -u
akt=${AKT_BIN:?} shim=${AKT_KILLSHIM:?} same=${AKT_H5SAME:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export OMP_WAIT_POLICY=passive ASAN_OPTIONS=${ASAN_OPTIONS:-}:verify_asan_link_order=0
args=(train --generator gdfq --loss akt --epochs 3 --iters 2 --batch 4 --seed 3 --threads 1
      --set warmup_epochs=1 --set tracker_epochs=1 --set milestones=none
      --set eval_limit=20 --set eval_batch=20 --quiet)
if [ ! -r "${AKT_DATA:-}/teachers/resnet20_cifar10_akamaster_optA.h5" ]; then
    echo "1..0 # SKIP no teacher under AKT_DATA"
    exit 0
fi
n_test=0 failed=0
ok() { n_test=$((n_test + 1)); echo "ok $n_test - $*"; }
not_ok() { n_test=$((n_test + 1)); failed=$((failed + 1)); echo "not ok $n_test - $*"; }

# akt under the shim: run OUT [VAR=VALUE...]; stdout to $tmp/stdout
run() {
    local out=$1
    shift
    # in a subshell, so the "Killed" notice goes to the log, not the TAP stream
    (env "$@" LD_PRELOAD="$shim" "$akt" "${args[@]}" --out "$out" >"$tmp/stdout" 2>"$tmp/stderr") \
        2>>"$tmp/shell"
}

# The sample of kill indices from a write log ("INDEX PATH" per write, "R
# PATH" per rename): the first and last write of every phase (consecutive
# writes to one file, up to a rename), and every stride-th index.
sample() {
    local log=$1 stride=$2
    awk -v s="$stride" '
        $1 == "R" { if (last) print last; prev = ""; next }
        { if ($2 != prev) { if (last) print last; print $1 }
          prev = $2; last = $1; if ($1 % s == 0) print $1 }
        END { if (last) print last }' "$log" | sort -nu
}

# scenario NAME BASE EXTRA_ENV...: BASE is copied to the results file first
# ("" = none). Sets the TAP lines and the figures.
scenario() {
    local name=$1 base=$2
    shift 2
    local dir=$tmp/$name
    mkdir -p "$dir"
    local out=$dir/ref.h5
    [ -n "$base" ] && cp "$base" "$out"
    if ! run "$out" AKT_WRITE_COUNT="$dir/count" AKT_WRITE_LOG="$dir/log" "$@"; then
        not_ok "$name: uninterrupted run failed: $(tail -1 "$tmp/stderr")"
        return
    fi
    local ref_line total indices
    ref_line=$(cat "$tmp/stdout")
    total=$(cat "$dir/count")
    local quick=${AKT_QUICK:-} full=${AKT_CRASH_FULL:-}
    if [ -n "$quick" ] && [ -z "$full" ]; then
        indices=$(sample "$dir/log" 1000000) # the phases' first and last writes
    elif [ "$name" = disk ] && [ -z "$full" ]; then
        indices=$(sample "$dir/log" 23)
    else
        indices=$(seq 1 "$total")
    fi
    local tried=0 bad=0 t0=$SECONDS k why
    for k in $indices; do
        why=""
        local w=$dir/w.h5
        rm -rf "$w" "$w.d" "$w.tmp"
        [ -n "$base" ] && cp "$base" "$w"
        run "$w" AKT_KILL_AT_WRITE="$k" "$@"
        local st=$?
        if [ $st -ne 137 ]; then
            why="kill at write $k: exit $st, expected 137 (SIGKILL)"
        elif ! run "$w" "$@"; then
            why="kill at write $k: the rerun failed: $(tail -1 "$tmp/stderr")"
        elif [ "$(cat "$tmp/stdout")" != "$ref_line" ]; then
            why="kill at write $k: the rerun printed '$(cat "$tmp/stdout")', expected '$ref_line'"
        elif ! d=$("$same" "$out" "$w" --group /runs/run --ignore created --ignore time_s \
            --ignore command_line); then # its --out differs per kill index
            why="kill at write $k: results differ from the uninterrupted run: $d"
        elif [ -n "$base" ] && ! d=$("$same" "$base" "$w" --group /runs/other); then
            why="kill at write $k: the finished run beside it changed: $d"
        elif [ -e "$w.tmp" ] || [ "$(ls "$w.d")" != lock ]; then
            why="kill at write $k: left behind: $(ls "$w.d" | tr '\n' ' ') $(ls "$w.tmp" 2>/dev/null)"
        fi
        tried=$((tried + 1))
        if [ -n "$why" ]; then
            bad=$((bad + 1))
            echo "# $name: $why"
        fi
    done
    local secs=$((SECONDS - t0))
    if [ $bad -eq 0 ] && [ $tried -gt 0 ]; then
        ok "$name: $tried of $total write indices killed, every rerun bit-identical ($secs s)"
    else
        not_ok "$name: $bad of $tried kill indices (of $total writes) did not resume bit-identical"
    fi
}

# the finished run for 'beside', with another seed and id
base=$tmp/base.h5
if ! env "$akt" "${args[@]}" --seed 9 --set id=other --out "$base" >/dev/null 2>"$tmp/stderr"; then
    not_ok "making the finished run: $(tail -1 "$tmp/stderr")"
fi
rm -rf "$base.d"

scenario new ""
scenario beside "$base"
[ -n "${AKT_QUICK:-}" ] && [ -z "${AKT_CRASH_FULL:-}" ] || scenario disk "" AKT_RESULTS_MEM_EDIT_MAX=0

# a finished run is skipped and its file left as it is
w=$tmp/new/ref.h5
cp "$w" "$tmp/copy.h5"
if run "$w" && "$same" "$tmp/copy.h5" "$w" >/dev/null; then
    ok "a finished run is not run again and its file is unchanged"
else
    not_ok "rerunning a finished run changed its file"
fi

echo "1..$n_test"
[ $failed -eq 0 ]
