#!/bin/bash
# Errors of a run are never lost or garbled (issue 9, item 2; TAP output):
# a plugin whose create() fails is named once with its own reason; a plugin
# that reports more metrics than a run holds fails the run (no silent
# drop); plugin log lines reach main through the run callbacks; a failed
# final commit into the results file (injected by tests/tools/killshim.c,
# AKT_FAIL_RENAME_TO) is an error with no success line, and rerunning
# finishes the run; a failed run whose status cannot be saved says so.
# Env: AKT_BIN, AKT_DATA, AKT_PLUGIN_BUILD (the test plugins), AKT_KILLSHIM.
set -u
AKT=${AKT_BIN:-}
skip() { echo "1..0 # SKIP $*"; exit 0; }
[ -n "$AKT" ] && [ -x "$AKT" ] || skip "AKT_BIN is not an executable: '$AKT'"
[ -n "${AKT_DATA:-}" ] || skip "AKT_DATA is not set"
T=${AKT_PLUGIN_BUILD:-}/testing
for p in failing_create metrics nan_loss; do
    [ -f "$T/test_$p.so" ] || skip "no $T/test_$p.so"
done
SHIM=${AKT_KILLSHIM:-}
[ -f "$SHIM" ] || skip "AKT_KILLSHIM is not a file: '$SHIM'"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/akt_run_errors.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
. "$(dirname "$0")/tap.sh"
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:verify_asan_link_order=0
mkdir "$tmp/plug"
for p in failing_create metrics nan_loss; do ln -s "$T/test_$p.so" "$tmp/plug/"; done

TEACHER=$AKT_DATA/teachers/resnet20_cifar10_akamaster_optA.h5
DATA=$AKT_DATA/cifar-10-batches-bin/test_batch_lossless1000.bin
TINY=(train --teacher "$TEACHER" --data "$DATA" --generator gdfq --epochs 1 --iters 1
      --batch 2 --threads 1 --set warmup_epochs=0 --set tracker_epochs=1 --set eval_limit=10
      --set eval_batch=10 --quiet --plugin-dir "$tmp/plug")

# one_error: the common checks of a refused run into why (exit 1, one
# stderr line "akt: error: ..." besides test_metrics' log lines, no success
# line on stdout)
one_error() {
    [ "$rc" -eq 1 ] || why+=("exit status $rc, want 1")
    local n
    n=$(grep -vc '^akt: test_metrics: ' "$tmp/err")
    [ "$n" -eq 1 ] || why+=("stderr has $n lines besides log lines, want 1")
    grep -v '^akt: test_metrics: ' "$tmp/err" | grep -q '^akt: error: ' ||
        why+=("stderr does not start with 'akt: error: '")
    ! grep -q 'best_top1=' "$tmp/out" || why+=("a success line was printed")
}

# 1. create() fails: the plugin's own reason, "create failed" exactly once
run "$AKT" "${TINY[@]}" --loss test_failing_create --out "$tmp/c.h5"
why=()
one_error
want='akt: error: loss test_failing_create: create failed: test_failing_create: refusing to start (on purpose)'
[ "$(head -n 1 "$tmp/err")" = "$want" ] || why+=("stderr is not '$want'")
n=$(grep -o 'create failed' "$tmp/err" | wc -l)
[ "$n" -eq 1 ] || why+=("'create failed' appears $n times, want 1")
report "a loss whose create() fails: its reason, named once" "${why[@]}"

# 2. more metric names than a run holds (32; gdfq reports 2 of its own,
# gen.bns and gen.ce): an error naming the 33rd
run "$AKT" "${TINY[@]}" --loss test_metrics --out "$tmp/m.h5"
why=()
one_error
for f in "metric 'm30'" "32 a run holds" "loss test_metrics"; do
    grep -qF -- "$f" "$tmp/err" || why+=("stderr does not mention \"$f\"")
done
report "a loss reporting 40 metrics fails the run (no silent drop)" "${why[@]}"

# exactly 32 fit (30 + gdfq's 2); the plugin's log line reaches stderr
# through main
run "$AKT" "${TINY[@]}" --loss test_metrics --set loss.metrics=30 --out "$tmp/m32.h5"
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
grep -q '^best_top1=' "$tmp/out" || why+=("no best_top1= line")
grep -qx 'akt: test_metrics: epoch 0 iteration 0, 30 metrics' "$tmp/err" ||
    why+=("the plugin's log line is not on stderr as 'akt: LINE'")
report "32 metrics in all train; its log line is printed by main" "${why[@]}"

# 3. the final commit into the results file fails: an error, no success line
F=$tmp/f.h5
run env LD_PRELOAD="$SHIM" AKT_FAIL_RENAME_TO="$F" "$AKT" "${TINY[@]}" --loss logit --out "$F"
why=()
one_error
grep -qF "$F" "$tmp/err" || why+=("stderr does not name $F")
[ ! -e "$F" ] || why+=("$F exists after its commit failed")
report "a failed final commit is an error, with no best_top1= line" "${why[@]}"
run "$AKT" "${TINY[@]}" --loss logit --out "$F"
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
grep -q '^best_top1=' "$tmp/out" || why+=("no best_top1= line")
[ -f "$F" ] || why+=("no $F")
report "rerunning after the failed commit finishes the run" "${why[@]}"

# 4. a failed run (NaN loss) whose status 'failed' cannot be committed: both
F=$tmp/n.h5
run env LD_PRELOAD="$SHIM" AKT_FAIL_RENAME_TO="$F" "$AKT" "${TINY[@]}" --loss test_nan \
    --set loss.epoch=0 --set loss.iter=0 --out "$F"
why=()
one_error
for f in "student loss is NaN" "status 'failed' was not saved" "$F"; do
    grep -qF -- "$f" "$tmp/err" || why+=("stderr does not mention \"$f\"")
done
report "a failed run whose status cannot be saved reports both" "${why[@]}"

finish
