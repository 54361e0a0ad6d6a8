#!/bin/bash
# akt status on a results file and on an experiment (TAP output): a done, a
# failed (NaN loss), a running and a killed run, runs not started, the exit
# status, and bad input.
# Env: AKT_BIN, AKT_DATA, AKT_PLUGIN_BUILD (the test plugins).
set -u
AKT=${AKT_BIN:-}
skip() { echo "1..0 # SKIP $*"; exit 0; }
[ -n "$AKT" ] && [ -x "$AKT" ] || skip "AKT_BIN is not an executable: '$AKT'"
[ -n "${AKT_DATA:-}" ] || skip "AKT_DATA is not set"
NAN=${AKT_PLUGIN_BUILD:-}/testing/test_nan_loss.so
[ -f "$NAN" ] || skip "no $NAN"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/akt_status.XXXXXX") || exit 1
bg=
trap '[ -n "$bg" ] && kill -9 "$bg" 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/tap.sh"
mkdir "$tmp/plug"
ln -s "$NAN" "$tmp/plug/test_nan_loss.so"

cat >"$tmp/s.yaml" <<'EOF'
name: s
teacher: teachers/resnet20_cifar10_akamaster_optA.h5
data: cifar-10-batches-bin/test_batch_lossless1000.bin
defaults: {generator: gdfq, bits: 4, epochs: 2, iters: 2, batch: 4, warmup_epochs: 1,
           tracker_epochs: 1, milestones: none, eval_limit: 20, seed: 0}
matrix:
  loss: [logit, test_nan]
EOF
sed 's/^  loss: \[logit, test_nan\]/  loss: [logit, test_nan]\n  bits: [4, 3]/' "$tmp/s.yaml" >"$tmp/s2.yaml"
F=$tmp/s.h5
run "$AKT" run "$tmp/s.yaml" --out "$F" --plugin-dir "$tmp/plug" --quiet
why=()
[ "$rc" -eq 1 ] || why+=("akt run exit status $rc, want 1 (one run fails)")
report "a matrix with a failing run (exit 1)" "${why[@]}"

train() { # train ID [extra options...]: a tiny run into $F
    local id=$1
    shift
    # exec: in the background, $! is then akt itself (kill -9 must reach it)
    exec "$AKT" train --generator gdfq --loss logit --batch 4 --set eval_limit=20 --set milestones=none \
        --set id="$id" --out "$F" --quiet "$@"
}

# a run in progress: still being written when akt status reads the file
(train slow --epochs 50 --iters 50 >/dev/null 2>&1) &
bg=$!
for _ in $(seq 1 300); do
    [ -f "$F.d/slow.h5" ] && break
    sleep 0.2
done
run "$AKT" status "$F"
why=()
grep -qE '^slow +running +0/50 ' "$tmp/out" || why+=("no 'slow running 0/50' line")
report "a run in progress is 'running' (read from its run file)" "${why[@]}"
kill -9 "$bg"
wait "$bg" 2>/dev/null
bg=
(AKT_KILL_AFTER_ITERS=3 train killed --epochs 2 --iters 2 >/dev/null 2>&1)

run "$AKT" status "$F"
why=()
[ "$rc" -eq 1 ] || why+=("exit status $rc, want 1 while a run failed")
grep -qE '^gdfq-logit-w4a4 +done +2/2 +[0-9.]+ +[01] ' "$tmp/out" ||
    why+=("no 'gdfq-logit-w4a4 done 2/2 best epoch' line")
grep -qE '^gdfq-test_nan-w4a4 +failed +1/2 .*NaN' "$tmp/out" ||
    why+=("no 'gdfq-test_nan-w4a4 failed 1/2 ... NaN' line with its message")
grep -qE '^killed +killed +1/2 .*not finished' "$tmp/out" ||
    why+=("the SIGKILLed run is not 'killed 1/2 ... not finished'")
grep -qE '^slow +killed ' "$tmp/out" || why+=("the killed 'slow' run is not 'killed'")
report "done, failed with its message, killed (not finished); exit 1" "${why[@]}"

run "$AKT" status "$tmp/s2.yaml" --out "$F" --plugin-dir "$tmp/plug"
why=()
[ "$rc" -eq 1 ] || why+=("exit status $rc, want 1")
[ "$(grep -c 'not started' "$tmp/out")" -eq 2 ] || why+=("not 2 runs 'not started'")
grep -qE '^gdfq-logit-w3a3 +not started +0/2 ' "$tmp/out" || why+=("no 'gdfq-logit-w3a3 not started 0/2'")
grep -q '^killed ' "$tmp/out" && why+=("a run outside the experiment is listed")
report "an experiment: its runs, not started ones included" "${why[@]}"

mkdir "$tmp/ok"
run "$AKT" status "$tmp/s.yaml" --out "$tmp/ok/none.h5" --plugin-dir "$tmp/plug"
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0 (nothing failed, nothing run)")
[ "$(grep -c 'not started' "$tmp/out")" -eq 2 ] || why+=("not every run 'not started'")
report "an experiment never run: every run 'not started', exit 0" "${why[@]}"

run "$AKT" status "$tmp/nosuch.h5"
why=()
[ "$rc" -eq 1 ] || why+=("exit status $rc, want 1")
grep -q "nosuch.h5: cannot open" "$tmp/err" || why+=("stderr does not name the file")
report "a missing results file: an error naming it" "${why[@]}"
run "$AKT" status "$F" --out x.h5
why=()
[ "$rc" -eq 2 ] || why+=("exit status $rc, want 2")
report "--out without an experiment is a usage error" "${why[@]}"
finish
