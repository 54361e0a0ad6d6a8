#!/bin/bash
# Sweeps that never lie (issue 13), TAP output: akt run refuses a stored run
# whose configuration changed (naming the run and the keys, no "skipped"
# line, the file untouched) and --rerun-changed runs it as ID.r2; an
# interrupted run resumes under another --threads (status kept, a note, the
# history recorded); a results file moved elsewhere still works with akt
# hessian and akt export from another folder, also when the data moved
# (AKT_DATA + the recorded name, checked by sha256); the root and run
# attributes say where a file comes from; keep_checkpoints: none.
# Env: AKT_BIN, AKT_DATA.
set -u
AKT=${AKT_BIN:-}
skip() { echo "1..0 # SKIP $*"; exit 0; }
[ -n "$AKT" ] && [ -x "$AKT" ] || skip "AKT_BIN is not an executable: '$AKT'"
[ -n "${AKT_DATA:-}" ] || skip "AKT_DATA is not set"
command -v h5dump >/dev/null || skip "no h5dump (hdf5-tools)"
command -v sha256sum >/dev/null || skip "no sha256sum"
AKT=$(realpath "$AKT")
DATA_ROOT=$(realpath "$AKT_DATA")
TEACHER=$DATA_ROOT/teachers/resnet20_cifar10_akamaster_optA.h5
DATA=$DATA_ROOT/cifar-10-batches-bin/test_batch_lossless1000.bin

tmp=$(mktemp -d "${TMPDIR:-/tmp}/akt_sweeps.XXXXXX") || exit 1
bg=
trap '[ -n "$bg" ] && kill -9 "$bg" 2>/dev/null; rm -rf "$tmp"' EXIT
. "$(dirname "$0")/tap.sh"
# tap.sh's run, keeping every stderr: none may hold a sanitizer report
run() {
    last_cmd="$*"
    timeout 600 "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    cat "$tmp/err" >>"$tmp/all_err"
}

# attr FILE OBJECT NAME: a string or number attribute's value (h5dump)
attr() {
    h5dump -a "$2/$3" "$1" 2>/dev/null | sed -n 's/^ *(0): "\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' | head -n 1
}

cat >"$tmp/t.yaml" <<'EOF'
name: t
teacher: teachers/resnet20_cifar10_akamaster_optA.h5
data: cifar-10-batches-bin/test_batch_lossless1000.bin
defaults: {generator: gdfq, loss: logit, epochs: 2, iters: 2, batch: 4, warmup_epochs: 1,
           tracker_epochs: 1, milestones: none, eval_limit: 20, seed: 0}
matrix:
  bits: [4, 3]
EOF
F=$tmp/t.h5
run "$AKT" run "$tmp/t.yaml" --out "$F" --threads 1 --quiet
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
report "a 2-run matrix" "${why[@]}"

# ---- 1. changed YAML: refused, nothing run, nothing changed
sed 's/seed: 0}/seed: 0, lr_student: 0.001}/; s/epochs: 2,/epochs: 3,/' "$tmp/t.yaml" >"$tmp/t2.yaml"
cp "$F" "$tmp/before.h5"
run "$AKT" run "$tmp/t2.yaml" --out "$F" --threads 1
why=()
[ "$rc" -eq 1 ] || why+=("exit status $rc, want 1")
for id in gdfq-logit-w4a4 gdfq-logit-w3a3; do
    grep -q "^akt: error: .*run '$id' is stored with another configuration (keys: .*epochs" "$tmp/err" ||
        why+=("no error naming run $id and key epochs")
done
grep -q "lr_student" "$tmp/err" || why+=("the key lr_student is not named")
grep -qi "skipped" "$tmp/err" "$tmp/out" && why+=("a 'skipped' line")
[ -s "$tmp/out" ] && why+=("a results table on stdout: $(head -n 1 "$tmp/out")")
cmp -s "$F" "$tmp/before.h5" || why+=("the results file changed")
[ -e "$F.d/gdfq-logit-w4a4.h5" ] && why+=("a run file was made")
report "changed lr_student and epochs: refused naming each run and the keys, nothing run" "${why[@]}"

# ---- --rerun-changed: the changed cells run as ID.r2, the old ones stay
run "$AKT" run "$tmp/t2.yaml" --out "$F" --threads 1 --rerun-changed --quiet
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
grep -qE '^gdfq-logit-w4a4\.r2 +[0-9.]+ +[0-9.]+ +done$' "$tmp/out" || why+=("no 'gdfq-logit-w4a4.r2 ... done' row")
grep -q "runs as 'gdfq-logit-w3a3.r2'" "$tmp/err" || why+=("no note naming the new id")
[ "$(attr "$F" /runs/gdfq-logit-w4a4.r2 status)" = done ] || why+=("run .r2 is not done in the file")
h5dump -a /runs/gdfq-logit-w4a4.r2/config "$F" | grep -q 'epochs: 3' || why+=("run .r2's config lacks epochs: 3")
h5dump -a /runs/gdfq-logit-w4a4/config "$F" | grep -q 'epochs: 2' || why+=("the old run's config changed")
[ "$(attr "$F" /runs/gdfq-logit-w4a4 final_top1)" = "$(attr "$tmp/before.h5" /runs/gdfq-logit-w4a4 final_top1)" ] ||
    why+=("the old run's final_top1 changed")
report "--rerun-changed: ID.r2 runs the new configuration, the old run stays" "${why[@]}"

run "$AKT" run "$tmp/t2.yaml" --out "$F" --threads 1 --rerun-changed
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
grep -qE '^gdfq-logit-w3a3\.r2 .* skipped$' "$tmp/out" || why+=("run .r2 is not skipped")
h5dump -n "$F" | grep -q '\.r3' && why+=("a run .r3 was made")
report "the same command again finds ID.r2 (skipped, no .r3)" "${why[@]}"

# ---- 5. progress: per iteration with an ETA on a terminal, per epoch always
sed 's/iters: 2,/iters: 3,/' "$tmp/t.yaml" >"$tmp/p.yaml"
run "$AKT" run "$tmp/p.yaml" --out "$tmp/p1.h5" --threads 1
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
grep -qE '^gdfq-logit-w4a4 epoch 0 \(1/2\)  top1 [0-9.]+ .* ETA [0-9]+s$' "$tmp/err" || why+=("no epoch line 'ID epoch 0 (1/2) ... ETA Ns'")
grep -qE '^gdfq-logit-w4a4 epoch 1 \(2/2\) .* ETA 0s$' "$tmp/err" || why+=("no last epoch line 'epoch 1 (2/2) ... ETA 0s'")
grep -q 'iter ' "$tmp/err" && why+=("iteration lines without a terminal")
report "akt run without a terminal: one line per epoch, 0-based, with an ETA" "${why[@]}"
if command -v script >/dev/null; then
    run script -qec "'$AKT' run '$tmp/p.yaml' --out '$tmp/p2.h5' --threads 1" /dev/null
    why=()
    [ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
    tr '\r' '\n' <"$tmp/out" | sed 's/\x1b\[K//g' >"$tmp/tty"
    grep -qE '^gdfq-logit-w3a3 epoch 1 \(2/2\)  iter 3/3  loss_g [0-9.]+  loss_q [0-9.]+  [0-9.]+ it/s  ETA [0-9]+s' "$tmp/tty" ||
        why+=("no iteration line 'ID epoch 1 (2/2)  iter 3/3 ... it/s  ETA Ns'")
    report "akt run on a terminal: a line per iteration with the rate and an ETA" "${why[@]}"
else
    report "akt run on a terminal # SKIP no script(1)"
fi

# ---- 2. interrupted, resumed with another --threads
cat >"$tmp/s.yaml" <<'EOF'
name: s
teacher: teachers/resnet20_cifar10_akamaster_optA.h5
data: cifar-10-batches-bin/test_batch_lossless1000.bin
defaults: {generator: gdfq, loss: logit, bits: 4, epochs: 3, iters: 40, batch: 4,
           warmup_epochs: 1, tracker_epochs: 1, milestones: none, eval_limit: 20}
matrix:
  seed: [0]
EOF
S=$tmp/s.h5
ID=gdfq-logit-w4a4-s0
"$AKT" run "$tmp/s.yaml" --out "$S" --threads 1 --quiet >/dev/null 2>&1 &
bg=$!
for _ in $(seq 1 600); do # until epoch 0 is saved in the run file
    "$AKT" status "$S" 2>/dev/null | grep -qE "^$ID +running +[12]/3 " && break
    sleep 0.1
done
# results/README.md's "A sweep in progress" example, on the file being written
PY=/usr/bin/python3
if [ -x "$PY" ] && "$PY" -c 'import h5py' 2>/dev/null; then
    awk '/^# The newest top-1 of every run/,/^```$/' "$(dirname "$0")/../results/README.md" |
        grep -v '^```' | sed "s|\"sweep.h5\"|\"$S\"|" >"$tmp/live.py"
    run "$PY" "$tmp/live.py"
    why=()
    [ "$rc" -eq 0 ] || why+=("exit status $rc")
    grep -qE "^$ID running [12] epochs [0-9.]+$" "$tmp/out" || why+=("no '$ID running N epochs TOP1' line")
    report "results/README.md's live-reading example on a run in progress" "${why[@]}"
else
    report "results/README.md's live-reading example # SKIP no /usr/bin/python3 with h5py"
fi
kill -INT "$bg"
wait "$bg"
bg=
why=()
[ "$(attr "$S" "/runs/$ID" status)" = interrupted ] || why+=("status '$(attr "$S" "/runs/$ID" status)', want interrupted")
ck=$(attr "$S" "/runs/$ID" checkpoint_epoch)
case $ck in 1 | 2) ;; *) why+=("checkpoint_epoch '$ck', want 1 or 2") ;; esac
report "SIGINT during the run: interrupted with completed epochs" "${why[@]}"

run "$AKT" status "$S"
status_before=$(grep "^$ID " "$tmp/out")
run "$AKT" run "$tmp/s.yaml" --out "$S" --threads 2
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
grep -q "^akt: note: run '$ID' resumes at epoch $ck with 2 threads, its earlier epochs ran with 1: .*bit-identical" "$tmp/err" ||
    why+=("no note on the other thread count")
grep -qE "^$ID +[0-9.]+ +[0-9.]+ +done$" "$tmp/out" || why+=("the run did not end done")
grep -q "epoch $ck ($((ck + 1))/3)" "$tmp/err" || why+=("no progress line for epoch $ck")
grep -q "epoch 0 (1/3)" "$tmp/err" && why+=("epoch 0 was run again")
[ "$(attr "$S" "/runs/$ID" status)" = done ] || why+=("stored status is not done")
[ "$(attr "$S" "/runs/$ID" threads)" = 2 ] || why+=("@threads '$(attr "$S" "/runs/$ID" threads)', want 2")
[ "$(attr "$S" "/runs/$ID" threads_history)" = "0:1,$ck:2" ] ||
    why+=("@threads_history '$(attr "$S" "/runs/$ID" threads_history)', want 0:1,$ck:2")
h5dump -a "/runs/$ID/config" "$S" | grep -q threads && why+=("@config holds threads")
report "resumed with --threads 2: a note, resumed at epoch $ck, done, threads recorded ($status_before)" "${why[@]}"

# ---- 4. provenance: root and run attributes
why=()
[ "$(attr "$F" / akt_version)" = "$("$AKT" --version | sed 's/^akt \([^ ]*\).*/\1/')" ] ||
    why+=("@akt_version '$(attr "$F" / akt_version)' is not akt --version's")
commit=$(attr "$F" / akt_commit)
[ -n "$commit" ] || why+=("no @akt_commit")
ver=$("$AKT" --version)
case $ver in *"(git "*) [[ $ver == *"(git $commit)" ]] || why+=("@akt_commit '$commit' is not the binary's ($ver)") ;;
*) [ "$commit" = unknown ] || why+=("@akt_commit '$commit', want unknown (no git)") ;; esac
[ "$(attr "$F" / host)" = "$(hostname)" ] || why+=("@host '$(attr "$F" / host)' is not $(hostname)")
[[ "$(attr "$F" / command_line)" == "$AKT run $tmp/t.yaml --out $F --threads 1 --quiet" ]] ||
    why+=("@command_line is '$(attr "$F" / command_line)'")
[ "$(attr "$F" / working_dir)" = "$(pwd -P)" ] || why+=("@working_dir '$(attr "$F" / working_dir)'")
R=/runs/gdfq-logit-w4a4.r2
[ "$(attr "$F" $R teacher_file)" = "$TEACHER" ] || why+=("@teacher_file '$(attr "$F" $R teacher_file)', want $TEACHER")
[ "$(attr "$F" $R data_file)" = "$DATA" ] || why+=("@data_file '$(attr "$F" $R data_file)', want $DATA")
[ "$(attr "$F" $R teacher_sha256)" = "$(sha256sum "$TEACHER" | cut -d' ' -f1)" ] || why+=("@teacher_sha256 is not sha256sum's")
[ "$(attr "$F" $R data_sha256)" = "$(sha256sum "$DATA" | cut -d' ' -f1)" ] || why+=("@data_sha256 is not sha256sum's")
[[ "$(attr "$F" $R command_line)" == *"--rerun-changed --quiet" ]] || why+=("the run's @command_line is '$(attr "$F" $R command_line)'")
report "root: version, commit, host, command line; run: resolved inputs with their sha256" "${why[@]}"

# ---- moved results file, and moved data
mkdir -p "$tmp/d/teachers" "$tmp/d/cifar-10-batches-bin" "$tmp/w" "$tmp/elsewhere/deep" "$tmp/cwd"
cp "$TEACHER" "$tmp/d/teachers/"
cp "$DATA" "$tmp/d/cifar-10-batches-bin/"
# a relative AKT_DATA, as the tests' own ../shared/data
(cd "$tmp/w" && AKT_DATA=../d "$AKT" train --generator gdfq --loss logit --epochs 1 --iters 2 \
    --batch 4 --set eval_limit=20 --set milestones=none --threads 1 --out m.h5 --quiet >/dev/null 2>&1)
mv "$tmp/w/m.h5" "$tmp/elsewhere/deep/m.h5"
M=$tmp/elsewhere/deep/m.h5
cd "$tmp/cwd" || exit 1
run env -u AKT_DATA "$AKT" hessian "$M" --run run --probes 1 --batch 2
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
grep -qE '^total +-?[0-9]' "$tmp/out" || why+=("no total")
report "akt hessian on a moved results file from another folder (recorded absolute paths)" "${why[@]}"
run env -u AKT_DATA "$AKT" export "$M" --run run --format onnx --out "$tmp/s.onnx"
why=()
[ "$rc" -eq 0 ] && [ -s "$tmp/s.onnx" ] || why+=("exit status $rc, no ONNX file")
report "akt export on a moved results file from another folder" "${why[@]}"

mv "$tmp/d" "$tmp/d2"
run env -u AKT_DATA "$AKT" hessian "$M" --run run --probes 1 --batch 2
why=()
[ "$rc" -eq 1 ] || why+=("exit status $rc, want 1")
grep -qF "teacher file is not found (set AKT_DATA to the folder that holds teachers/resnet20_cifar10_akamaster_optA.h5); tried" "$tmp/err" ||
    why+=("the error does not say what AKT_DATA must hold")
grep -qF "tried $tmp/d/teachers/resnet20_cifar10_akamaster_optA.h5 (missing), ../d/teachers/resnet20_cifar10_akamaster_optA.h5 (missing)" "$tmp/err" ||
    why+=("the error does not list the recorded and the configured path")
grep -q "^akt: error: " "$tmp/err" || why+=("no 'akt: error:' line")
report "data moved, no AKT_DATA: an error naming every path tried" "${why[@]}"
run env AKT_DATA="$tmp/d2" "$AKT" hessian "$M" --run run --probes 1 --batch 2
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
report "data moved: found under AKT_DATA by the recorded name" "${why[@]}"
cp "$DATA_ROOT/teachers/resnet32_cifar10_akamaster_optA.h5" "$tmp/d2/teachers/resnet20_cifar10_akamaster_optA.h5" 2>/dev/null ||
    printf 'x' >>"$tmp/d2/teachers/resnet20_cifar10_akamaster_optA.h5"
run env AKT_DATA="$tmp/d2" "$AKT" hessian "$M" --run run --probes 1 --batch 2
why=()
[ "$rc" -eq 1 ] || why+=("exit status $rc, want 1")
grep -q "resnet20_cifar10_akamaster_optA.h5 (other contents: sha256 differs)" "$tmp/err" ||
    why+=("a file with other contents under the recorded name is not refused by its sha256")
report "another file under the recorded name: refused (sha256)" "${why[@]}"
cd "$tmp" || exit 1

# ---- keep_checkpoints: none
for k in final none; do
    "$AKT" train --generator gdfq --loss logit --epochs 2 --iters 2 --batch 4 --set eval_limit=20 \
        --set milestones=none --set warmup_epochs=1 --set tracker_epochs=1 --threads 1 \
        --set keep_checkpoints=$k --out "$tmp/k_$k.h5" --quiet >"$tmp/k_$k.out" 2>&1
done
why=()
h5dump -n "$tmp/k_final.h5" | grep -q ' /runs/run/checkpoint$' || why+=("final: no checkpoint group")
h5dump -n "$tmp/k_none.h5" | grep -q '/runs/run/checkpoint' && why+=("none: a checkpoint group is left")
h5dump -n "$tmp/k_none.h5" | grep -q ' /runs/run/tensors/best/student/conv1.weight$' || why+=("none: no tensors/best/student")
cmp -s "$tmp/k_final.out" "$tmp/k_none.out" || why+=("the two runs printed other figures")
sf=$(stat -c %s "$tmp/k_final.h5")
sn=$(stat -c %s "$tmp/k_none.h5")
[ "$sn" -lt "$sf" ] || why+=("none is $sn bytes, final $sf")
[ "$(attr "$tmp/k_none.h5" /runs/run keep_checkpoints)" = none ] || why+=("no @keep_checkpoints none")
report "keep_checkpoints: none drops the checkpoint ($sn bytes against $sf)" "${why[@]}"
run "$AKT" hessian "$tmp/k_none.h5" --run run --probes 1
why=()
[ "$rc" -eq 1 ] || why+=("exit status $rc, want 1")
grep -q "kept no checkpoint (keep_checkpoints: none" "$tmp/err" || why+=("no error saying the checkpoint was dropped")
report "akt hessian on a run without checkpoint: a clear error" "${why[@]}"
run "$AKT" train --generator gdfq --loss logit --epochs 1 --set keep_checkpoints=some --out "$tmp/x.h5"
why=()
[ "$rc" -eq 2 ] || why+=("exit status $rc, want 2")
grep -q "keep_checkpoints: 'some' is not one of: final, none" "$tmp/err" || why+=("no error naming the key and its values")
report "keep_checkpoints: a bad value is refused" "${why[@]}"

why=()
grep -qE 'Sanitizer|runtime error' "$tmp/all_err" && why+=("$(grep -m1 -E 'Sanitizer|runtime error' "$tmp/all_err")")
report "no sanitizer report in any command's stderr" "${why[@]}"

finish
