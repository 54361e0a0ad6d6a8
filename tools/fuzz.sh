#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz for a bounded time under the
# sanitizers and prints how many inputs each executed.
#
#   tools/fuzz.sh [BUILD_DIR] [SECONDS] [TARGET...]
#   (defaults: build-fuzz, 60, every target: yaml teacher cifar results)
#
# BUILD_DIR is set up (when missing) as
#   CC=clang meson setup BUILD_DIR -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
#       -Dbuildtype=debugoptimized -Dcpu=portable
# Each target starts from a copy of its committed corpus
# (tests/fuzz/corpus/TARGET) and of its saved crashes (tests/fuzz/regressions/
# TARGET). A crash in akt's code stops that target; its input is kept under
# BUILD_DIR/fuzz-artifacts/TARGET/ (logs: BUILD_DIR/fuzz-artifacts/TARGET.N.log):
# minimise it (fuzz_TARGET -minimize_crash=1
# FILE), fix the bug, and commit the input to tests/fuzz/regressions/TARGET/,
# where the test suite replays it (suite 'fuzz'). fuzz_results makes its own
# seeds (valid results and run files of a tiny run, a few MB: not committed)
# into its working corpus first (AKT_FUZZ_SEEDS).
#
# A crash whose first stack frame (past the sanitizer runtime, libc and
# malloc) is inside libhdf5 is HDF5 1.10's own (it does not validate its
# metadata, README.md "Crafted files"): it is counted and kept, and fuzzing
# goes on from the corpus so far for the time left; it does not fail the
# run (AKT_FUZZ_STRICT=1 makes it fail too). Exit status 1 when a target
# crashed in akt's code.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-build-fuzz}"
secs="${2:-60}"
targets="${*:3}"
case "$build" in /*) ;; *) build="$here/$build" ;; esac
export AKT_DATA="${AKT_DATA:-$here/../shared/data}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
# HDF5 1.10 leaks inside itself when H5Fopen fails on a corrupt file
# (tests/hdf5_leaks.supp): only allocations made in libhdf5 are ignored
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$here/tests/hdf5_leaks.supp:print_suppressions=0}"
export OMP_WAIT_POLICY=passive

if [ ! -d "$build" ]; then
    # b_lundef=false: clang links the sanitizer runtimes into executables only
    CC=clang meson setup "$build" -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
        -Dbuildtype=debugoptimized -Dcpu=portable
fi
meson compile -C "$build"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
status=0
printf '%-10s %12s %10s %s\n' target executions exec/s result
# classify LOG: "hdf5" when the report's first frame outside the sanitizer
# and fuzzer runtimes (and libc, malloc) is in libhdf5, else "akt"
classify() {
    local frame
    frame=$(sed -n '/ERROR\|deadly\|ALARM\|out-of-memory/,$p' "$1" | grep -E '^ *#[0-9]+ ' |
        grep -viE 'libclang_rt|sanitizer_|asan_|ubsan_|interceptor|libc\.so|fuzzer| in (malloc|calloc|realloc|free) ' |
        head -1 || true)
    if echo "$frame" | grep -q 'libhdf5' && [ -z "${AKT_FUZZ_STRICT:-}" ]; then
        echo hdf5
    else
        echo akt
    fi
}
for t in ${targets:-yaml teacher cifar results}; do
    bin="$build/tests/fuzz/fuzz_$t"
    [ -x "$bin" ] || continue
    mkdir -p "$work/$t" "$build/fuzz-artifacts/$t"
    cp -r "$here/tests/fuzz/corpus/$t/." "$work/$t/" 2>/dev/null || true
    cp -r "$here/tests/fuzz/regressions/$t/." "$work/$t/" 2>/dev/null || true
    rm -f "$work/$t/.keep"
    # A crash ends a libFuzzer run. One inside HDF5 is kept and fuzzing goes
    # on from the corpus so far for the time left (at most 20 restarts).
    execs=0 left=$secs round=0 hdf5=0 result=ok
    t0=$SECONDS
    while [ "$left" -gt 0 ] && [ $round -lt 20 ]; do
        round=$((round + 1))
        log="$build/fuzz-artifacts/$t.$round.log"
        rc=0
        # -rss_limit_mb: the readers must refuse huge sizes, not allocate them
        (cd "$work" && AKT_FUZZ_SEEDS="$work/$t" "$bin" "$work/$t" -max_total_time="$left" \
            -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
            -artifact_prefix="$build/fuzz-artifacts/$t/" >"$log" 2>&1) || rc=$?
        n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
        execs=$((execs + ${n:-0}))
        left=$((secs - (SECONDS - t0)))
        [ "$rc" -eq 0 ] && break
        what=$(grep -m1 -E 'ERROR|SUMMARY|deadly|timeout|out-of-memory' "$log" || true)
        if [ "$(classify "$log")" = hdf5 ]; then
            hdf5=$((hdf5 + 1))
            echo "# $t: inside HDF5, not akt: $what (see $log)"
            continue
        fi
        result="CRASH in akt (exit $rc): $what; see $log"
        status=1
        break
    done
    speed=$((execs / (SECONDS - t0 > 0 ? SECONDS - t0 : 1)))
    [ $hdf5 -gt 0 ] && [ "$result" = ok ] && result="ok; $hdf5 crash(es) inside HDF5 1.10 (README.md, 'Crafted files')"
    printf '%-10s %12s %10s %s\n' "$t" "$execs" "$speed" "$result"
done
exit $status
