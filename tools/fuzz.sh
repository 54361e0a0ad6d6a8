#!/usr/bin/env bash
# Runs every libFuzzer target of tests/fuzz for a bounded time under the
# sanitizers and prints how many inputs each executed.
#
#   tools/fuzz.sh [BUILD_DIR] [SECONDS]   (defaults: build-fuzz, 60)
#
# BUILD_DIR is set up (when missing) as
#   CC=clang meson setup BUILD_DIR -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
#       -Dbuildtype=debugoptimized -Dcpu=portable
# Each target starts from a copy of its committed corpus
# (tests/fuzz/corpus/TARGET) and of its saved crashes (tests/fuzz/regressions/
# TARGET). A crash stops that target; its input is kept under
# BUILD_DIR/fuzz-artifacts/TARGET/: minimise it (fuzz_TARGET -minimize_crash=1
# FILE), fix the bug, and commit the input to tests/fuzz/regressions/TARGET/,
# where the test suite replays it (suite 'fuzz'). Exit status 1 when a target
# crashed.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
build="${1:-build-fuzz}"
secs="${2:-60}"
case "$build" in /*) ;; *) build="$here/$build" ;; esac
export AKT_DATA="${AKT_DATA:-$here/../shared/data}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}"
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
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
for t in yaml teacher cifar results; do
    bin="$build/tests/fuzz/fuzz_$t"
    [ -x "$bin" ] || continue
    mkdir -p "$work/$t" "$build/fuzz-artifacts/$t"
    cp -r "$here/tests/fuzz/corpus/$t/." "$work/$t/" 2>/dev/null || true
    cp -r "$here/tests/fuzz/regressions/$t/." "$work/$t/" 2>/dev/null || true
    rm -f "$work/$t/.keep"
    log="$build/fuzz-artifacts/$t.log"
    rc=0
    # -rss_limit_mb: the readers must refuse huge sizes, not allocate them
    (cd "$work" && "$bin" "$work/$t" -max_total_time="$secs" -print_final_stats=1 \
        -rss_limit_mb=2048 -timeout=30 -artifact_prefix="$build/fuzz-artifacts/$t/" \
        >"$log" 2>&1) || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    speed=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    result="ok"
    if [ "$rc" -ne 0 ]; then
        result="CRASH (exit $rc): $(grep -m1 -E 'ERROR|SUMMARY|deadly' "$log" || true); see $log"
        status=1
    fi
    printf '%-10s %12s %10s %s\n' "$t" "${execs:-?}" "${speed:-?}" "$result"
done
exit $status
