#!/bin/bash
# Faults under test (issue 9, item 6; results/README.md "Crash safety"):
#   faults.sh signals  SIGINT and SIGTERM in the middle of `akt train` and of
#                      `akt run`: akt stops after saving, the run says
#                      "interrupted" in OUT.h5 with its completed epochs,
#                      the exit status is 1, and the same command again
#                      resumes and ends bit-identical to an uninterrupted run
#   faults.sh kills    SIGKILL at random moments of one `akt train`, ~20
#                      times, the same command again after each kill; the
#                      end is bit-identical to an uninterrupted run. The
#                      moments come from bash's $RANDOM seeded with
#                      AKT_FAULT_SEED (default 1, printed): a failure is
#                      replayed with the same seed (AKT_QUICK: 10 kills)
#   faults.sh disk     a full disk (an injected ENOSPC from the N-th write on,
#                      tests/tools/killshim.c, at three moments; and a real
#                      full tmpfs where `mount -t tmpfs` is allowed) and an
#                      output folder that turns read-only mid-run: exit
#                      status 1 with one error line naming the file, no
#                      crash or sanitizer report, the run file stays
#                      readable with the epochs saved before, a finished run
#                      beside it in OUT.h5 is untouched, and once the disk
#                      is writable again the same command resumes and ends
#                      bit-identical.
# Bit-identical: tests/tools/h5same over the run group, the timestamps
# (created) and the wall-clock time_s aside.
set -u
mode=${1:?usage: faults.sh signals|kills|disk}
akt=${AKT_BIN:?} shim=${AKT_KILLSHIM:?} same=${AKT_H5SAME:?}
if [ ! -r "${AKT_DATA:-}/teachers/resnet20_cifar10_akamaster_optA.h5" ]; then
    echo "1..0 # SKIP no teacher under AKT_DATA"
    exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/akt_faults.XXXXXX")
mounted=""
cleanup() {
    [ -n "$mounted" ] && umount "$mounted" 2>/dev/null
    chmod -R u+w "$tmp" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
export OMP_WAIT_POLICY=passive ASAN_OPTIONS=${ASAN_OPTIONS:-}:verify_asan_link_order=0

n_test=0 failed=0
ok() { n_test=$((n_test + 1)); echo "ok $n_test - $*"; }
not_ok() { n_test=$((n_test + 1)); failed=$((failed + 1)); echo "not ok $n_test - $*"; }
check() { # check DESC REASON...: ok when every reason is empty
    local desc=$1 why=""
    shift
    for r in "$@"; do [ -n "$r" ] && why+="${why:+; }$r"; done
    if [ -z "$why" ]; then ok "$desc"; else not_ok "$desc: $why"; fi
}

# a short run: 4 epochs of one iteration, a second or so each
epochs=4
train_args=(train --generator gdfq --loss akt --epochs $epochs --iters 2 --batch 4 --seed 3
            --threads 1 --set warmup_epochs=1 --set tracker_epochs=1 --set milestones=none
            --set eval_limit=20 --set eval_batch=20)

# attr FILE OBJ NAME: an attribute's value, as h5dump prints it ("" if absent)
attr() {
    h5dump -a "$2/$3" "$1" 2>/dev/null | sed -n 's/^ *(0): *//p' | tr -d '"' | head -1
}
# rows FILE RUN: rows of metric top1
rows() {
    h5dump -H -d "/runs/$2/metrics/top1/value" "$1" 2>/dev/null |
        sed -n 's/.*DATASPACE *SIMPLE *{ *( *\([0-9]*\) *).*/\1/p' | head -1
}
# differs A B RUN: "" when run RUN is bit-identical in both, else the difference
differs() {
    "$same" "$1" "$2" --group "/runs/$3" --ignore created --ignore time_s --ignore command_line 2>&1 || true
}
# one_error FILE: "" when stderr FILE ends in one 'akt: error:' line and has no
# sanitizer report, else what is wrong
one_error() {
    local n
    n=$(grep -c '^akt: error: ' "$1")
    if grep -qE 'Sanitizer|runtime error' "$1"; then
        echo "sanitizer report: $(grep -m1 -E 'Sanitizer|runtime error' "$1")"
    elif [ "$n" -ne 1 ]; then
        echo "$n 'akt: error:' lines on stderr, want 1: $(tail -2 "$1" | tr '\n' ' ')"
    fi
}
# wait_line LOG PATTERN PID: until PATTERN is in LOG (0) or PID ended (1)
wait_line() {
    while kill -0 "$3" 2>/dev/null; do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    grep -q -- "$2" "$1" 2>/dev/null
}

ref=$tmp/ref.h5
make_ref() {
    ref_t0=$(date +%s%N)
    "$akt" "${train_args[@]}" --quiet --out "$ref" >"$tmp/ref.out" 2>"$tmp/ref.err" ||
        not_ok "the uninterrupted run failed: $(tail -1 "$tmp/ref.err")"
    ref_t1=$(date +%s%N)
}

# --- signals ------------------------------------------------------------
# interrupt_train SIG: SIG after epoch 2's line, then the same command again
interrupt_train() {
    local sig=$1 d=$tmp/$1
    mkdir -p "$d"
    local out=$d/out.h5 why=()
    "$akt" "${train_args[@]}" --out "$out" >"$d/out1" 2>"$d/err1" &
    local pid=$!
    wait_line "$d/err1" "^epoch 1 (2/" $pid || why+=("no epoch 2 line before the run ended")
    kill -s "$sig" $pid
    wait $pid
    local st=$?
    [ $st -eq 1 ] || why+=("exit status $st after SIG$sig, want 1")
    why+=("$(one_error "$d/err1")")
    grep -q "interrupted in epoch" "$d/err1" || why+=("stderr does not say 'interrupted in epoch'")
    local status ck r
    status=$(attr "$out" /runs/run status)
    ck=$(attr "$out" /runs/run checkpoint_epoch)
    r=$(rows "$out" run)
    [ "$status" = interrupted ] || why+=("status '$status' in OUT.h5, want interrupted")
    [ -n "$ck" ] && [ "$ck" -ge 2 ] && [ "$ck" -lt $epochs ] ||
        why+=("checkpoint_epoch '$ck', want 2..$((epochs - 1))")
    [ "$r" = "$ck" ] || why+=("top1 has $r rows, checkpoint_epoch is $ck")
    [ ! -e "$out.d/run.h5" ] || why+=("the run file is still there")
    check "akt train, SIG$sig after epoch 2: stops after saving, status interrupted, $ck epochs kept" \
        "${why[@]}"
    why=()
    if ! "$akt" "${train_args[@]}" --quiet --out "$out" >"$d/out2" 2>"$d/err2"; then
        why+=("the rerun failed: $(tail -1 "$d/err2")")
    fi
    cmp -s "$d/out2" "$tmp/ref.out" || why+=("rerun printed '$(cat "$d/out2")', want '$(cat "$tmp/ref.out")'")
    [ "$(attr "$out" /runs/run status)" = done ] || why+=("status is not done after the rerun")
    why+=("$(differs "$ref" "$out" run)")
    check "akt train, SIG$sig: the rerun resumes at epoch $((ck + 1)) and ends bit-identical" "${why[@]}"
}

# interrupt_run SIG: akt run of a 2-run experiment, SIG in the first run
interrupt_run() {
    local sig=$1 d=$tmp/run_$1
    mkdir -p "$d"
    local out=$d/out.h5 why=()
    "$akt" run "$tmp/x.yaml" --out "$out" >"$d/out1" 2>"$d/err1" &
    local pid=$!
    wait_line "$d/err1" "epoch 1 (2/" $pid || why+=("no epoch 2 line before the run ended")
    kill -s "$sig" $pid
    wait $pid
    local st=$?
    [ $st -eq 1 ] || why+=("exit status $st after SIG$sig, want 1")
    grep -qE 'Sanitizer|runtime error' "$d/err1" && why+=("sanitizer report")
    grep -q "interrupted in epoch" "$d/err1" || why+=("stderr does not say 'interrupted in epoch'")
    local status ck
    status=$(attr "$out" "/runs/$id1" status)
    ck=$(attr "$out" "/runs/$id1" checkpoint_epoch)
    [ "$status" = interrupted ] || why+=("status of $id1 '$status', want interrupted")
    [ -n "$ck" ] && [ "$ck" -ge 2 ] && [ "$ck" -lt $epochs ] ||
        why+=("checkpoint_epoch '$ck', want 2..$((epochs - 1))")
    [ -z "$(attr "$out" "/runs/$id2" status)" ] || why+=("the second run $id2 was started")
    check "akt run, SIG$sig in the first run: it stops after saving, status interrupted, the second not started" \
        "${why[@]}"
    why=()
    "$akt" run "$tmp/x.yaml" --quiet --out "$out" >"$d/out2" 2>"$d/err2" ||
        why+=("the rerun failed: $(tail -1 "$d/err2")")
    for id in "$id1" "$id2"; do
        [ "$(attr "$out" "/runs/$id" status)" = done ] || why+=("$id is not done")
        why+=("$(differs "$tmp/xref.h5" "$out" "$id")")
    done
    check "akt run, SIG$sig: the rerun resumes the first run, runs the second, both bit-identical" \
        "${why[@]}"
}

# --- kills --------------------------------------------------------------
kills() {
    # AKT_QUICK (the sanitizer build, several times slower): 10 kills
    local seed=${AKT_FAULT_SEED:-1} want=${AKT_FAULT_KILLS:-${AKT_QUICK:+10}} d=$tmp/kills
    want=${want:-20}
    mkdir -p "$d"
    echo "# SIGKILL moments from RANDOM=$seed (AKT_FAULT_SEED=$seed replays them)"
    RANDOM=$seed
    local out=$d/out.h5 span
    # the moments are spread over the uninterrupted run's wall time
    span=$(((ref_t1 - ref_t0) / 1000000)) # ms
    local k=0 tries=0 seen="" st scale=1 last=none
    while [ $k -lt "$want" ] && [ $tries -lt $((want * 3)) ]; do
        tries=$((tries + 1))
        # 2.5%..12.5% of the run's time (a start and about one epoch), times
        # scale: on a loaded machine the runs get slower than the timed
        # one, so a kill that found no new checkpoint lengthens the next
        local ms=$(((span / 40 + RANDOM % (span / 10 + 1)) * scale))
        "$akt" "${train_args[@]}" --quiet --out "$out" >"$d/out" 2>"$d/err" &
        local pid=$!
        sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
        if kill -9 $pid 2>/dev/null; then
            wait $pid 2>/dev/null
            st=$?
            if [ $st -ne 137 ]; then # it ended on its own just before
                [ $st -eq 0 ] && break
                not_ok "kill $((k + 1)) (${ms} ms): exit status $st: $(tail -1 "$d/err")"
                return
            fi
            k=$((k + 1))
            local f=$out.d/run.h5 ck=""
            [ -e "$f" ] && ck=$(attr "$f" /runs/run checkpoint_epoch)
            seen+=" ${ms}ms:${ck:-none}"
            if [ "${ck:-none}" = "$last" ]; then
                [ $scale -lt 8 ] && scale=$((scale + 1))
            elif [ $scale -gt 1 ]; then
                scale=$((scale - 1))
            fi
            last=${ck:-none}
        else
            wait $pid # finished before the kill
            st=$?
            [ $st -eq 0 ] || { not_ok "run $tries ended with $st: $(tail -1 "$d/err")"; return; }
            break
        fi
    done
    echo "# $k kills (moment: epochs in the run file at the kill):$seen"
    local why=()
    "$akt" "${train_args[@]}" --quiet --out "$out" >"$d/out" 2>"$d/err" ||
        why+=("the last rerun failed: $(tail -1 "$d/err")")
    cmp -s "$d/out" "$tmp/ref.out" || why+=("it printed '$(cat "$d/out")', want '$(cat "$tmp/ref.out")'")
    why+=("$(differs "$ref" "$out" run)")
    [ "$(ls "$out.d" 2>/dev/null)" = lock ] || why+=("left behind in OUT.h5.d: $(ls "$out.d" | tr '\n' ' ')")
    # the kills must have landed in training, not only in start-ups
    local progressed
    progressed=$(echo "$seen" | tr ' ' '\n' | sed -n 's/.*:\([0-9]\)/\1/p' | sort -u | wc -l)
    [ "$k" -ge $((want / 2)) ] || why+=("only $k kills landed before the run finished")
    [ "$progressed" -ge 2 ] || why+=("the kills saw fewer than 2 distinct checkpoints: $seen")
    check "$k SIGKILLs at random moments of one run (seed $seed), a rerun after each: bit-identical" \
        "${why[@]}"
}

# --- disk ---------------------------------------------------------------
# after_fault NAME OUT ERR MIN_EPOCHS BESIDE_COPY: the checks after a write
# fault; fills why[]
after_fault() {
    local name=$1 out=$2 err=$3 min=$4 beside=$5
    echo "# $name: $(grep -m1 '^akt: error' "$err")"
    why+=("$(one_error "$err")")
    grep -qF "$out" "$err" || why+=("the error does not name the file ($out...): $(tail -1 "$err")")
    local f=$out.d/run.h5 ck r
    if [ -e "$f" ]; then
        ck=$(attr "$f" /runs/run checkpoint_epoch)
        r=$(rows "$f" run)
        h5dump -H "$f" >/dev/null 2>&1 || why+=("the run file is unreadable")
    else
        ck=$(attr "$out" /runs/run checkpoint_epoch)
        r=$(rows "$out" run)
    fi
    [ "${r:-0}" -ge "$min" ] || why+=("${r:-0} epochs kept, want >= $min")
    [ "${ck:-0}" = "${r:-0}" ] || why+=("checkpoint_epoch ${ck:-none} but ${r:-0} epochs")
    if [ -n "$beside" ]; then
        local dd
        dd=$("$same" "$beside" "$out" --group /runs/other 2>&1) || why+=("the finished run beside it changed: $dd")
    fi
    kept=${r:-0}
}

# resume_checks OUT: the same command on a writable disk ends bit-identical
resume_checks() {
    local out=$1 d
    d=$(dirname "$out")
    "$akt" "${train_args[@]}" --quiet --out "$out" >"$d/out2" 2>"$d/err2" ||
        why+=("the rerun failed: $(tail -1 "$d/err2")")
    why+=("$(differs "$ref" "$out" run)")
}

beside=$tmp/beside.h5
make_beside() {
    "$akt" "${train_args[@]}" --epochs 1 --seed 9 --set id=other --quiet --out "$beside" \
        >/dev/null 2>"$tmp/beside.err" || not_ok "making the finished run: $(tail -1 "$tmp/beside.err")"
    rm -rf "$beside.d"
}

# enospc NAME WHICH DESC: ENOSPC from write index WHICH of the write log on
enospc() {
    local name=$1 n=$2 desc=$3 d=$tmp/$1
    mkdir -p "$d"
    local out=$d/out.h5 why=() kept=0 base=""
    if [ "$name" = commit ]; then
        cp "$beside" "$out"
        cp "$beside" "$d/beside_copy.h5"
        base=$d/beside_copy.h5
    fi
    env LD_PRELOAD="$shim" AKT_ENOSPC_AT_WRITE="$n" "$akt" "${train_args[@]}" --quiet \
        --out "$out" >"$d/out1" 2>"$d/err1"
    local st=$?
    [ $st -eq 1 ] || why+=("exit status $st, want 1")
    grep -q "No space left on device" "$d/err1" || why+=("the error does not say 'No space left on device'")
    after_fault "$name" "$out" "$d/err1" "$4" "$base"
    check "full disk (ENOSPC from write $n: $desc): exit 1, the error names the file, $kept epochs kept" \
        "${why[@]}"
    why=()
    resume_checks "$out"
    check "full disk ($desc): once there is space, the same command ends bit-identical" "${why[@]}"
}

# full_tmpfs: a real full file system: a small tmpfs, filled after epoch 2
full_tmpfs() {
    local m=$tmp/mnt
    mkdir -p "$m"
    if [ "$(id -u)" -ne 0 ] || ! mount -t tmpfs -o size=96m akt_faults "$m" 2>/dev/null; then
        ok "# SKIP a full tmpfs: mount -t tmpfs is not allowed here (the injected ENOSPC above covers it)"
        return
    fi
    mounted=$m
    local out=$m/out.h5 why=() kept=0
    cp "$beside" "$out"
    "$akt" "${train_args[@]}" --out "$out" >"$tmp/tmpfs.out" 2>"$tmp/tmpfs.err" &
    local pid=$!
    wait_line "$tmp/tmpfs.err" "^epoch 1 (2/" $pid || why+=("no epoch 2 line before the run ended")
    dd if=/dev/zero of="$m/fill" bs=1M >/dev/null 2>&1 # until the disk is full
    wait $pid
    local st=$?
    [ $st -eq 1 ] || why+=("exit status $st, want 1")
    grep -q "No space left on device" "$tmp/tmpfs.err" ||
        why+=("the error does not say 'No space left on device'")
    after_fault tmpfs "$out" "$tmp/tmpfs.err" 2 "$beside"
    check "full tmpfs after epoch 2: exit 1, the error names the file, $kept epochs kept" "${why[@]}"
    why=()
    rm -f "$m/fill"
    resume_checks "$out"
    check "full tmpfs: after freeing space the same command ends bit-identical" "${why[@]}"
    umount "$m" && mounted=""
}

# read_only: the output folder (and OUT.h5.d) turns read-only after epoch
# 2. root ignores permissions, so as root akt runs without
# CAP_DAC_OVERRIDE (setpriv), where the kernel enforces them.
read_only() {
    local d=$tmp/ro why=() kept=0
    local -a drop=()
    if [ "$(id -u)" -eq 0 ]; then
        if ! command -v setpriv >/dev/null ||
            ! setpriv --bounding-set=-dac_override,-dac_read_search true 2>/dev/null; then
            ok "# SKIP read-only folder: root without setpriv cannot be refused a write"
            return
        fi
        drop=(setpriv --bounding-set=-dac_override,-dac_read_search --)
    fi
    mkdir -p "$d/sub"
    local out=$d/sub/new.h5
    chmod a-w "$d/sub"
    "${drop[@]}" "$akt" "${train_args[@]}" --quiet --out "$out" >"$d/out0" 2>"$d/err0"
    local st=$?
    [ $st -eq 1 ] || why+=("exit status $st, want 1")
    why+=("$(one_error "$d/err0")")
    echo "# read-only from the start: $(grep -m1 '^akt: error' "$d/err0")"
    grep -qF "$out" "$d/err0" || why+=("the error does not name $out: $(tail -1 "$d/err0")")
    grep -q "Permission denied" "$d/err0" || why+=("the error does not say 'Permission denied'")
    [ ! -e "$out" ] || why+=("$out was made")
    check "read-only output folder: refused with exit 1 naming the file" "${why[@]}"
    chmod u+w "$d/sub"
    why=()
    out=$d/out.h5
    cp "$beside" "$out"
    "${drop[@]}" "$akt" "${train_args[@]}" --out "$out" >"$d/out1" 2>"$d/err1" &
    local pid=$!
    wait_line "$d/err1" "^epoch 1 (2/" $pid || why+=("no epoch 2 line before the run ended")
    chmod -R a-w "$d"
    wait $pid
    st=$?
    [ $st -eq 1 ] || why+=("exit status $st, want 1")
    grep -q "Permission denied" "$d/err1" || why+=("the error does not say 'Permission denied'")
    after_fault ro "$out" "$d/err1" 2 "$beside"
    check "output folder read-only after epoch 2: exit 1, the error names the file, $kept epochs kept" \
        "${why[@]}"
    chmod -R u+w "$d"
    why=()
    resume_checks "$out"
    check "read-only folder: writable again, the same command ends bit-identical" "${why[@]}"
}

# the write log of an uninterrupted run: where each phase starts
phase_start() { # phase_start LOG K: the first write index after the K-th rename
    awk -v k="$2" '$1 == "R" { r++; next } r == k { print $1; exit }' "$1"
}
first_write_to() { # first_write_to LOG SUFFIX: first write to a path ending in SUFFIX
    awk -v s="$2" '$1 != "R" && substr($2, length($2) - length(s) + 1) == s { print $1; exit }' "$1"
}

case $mode in
signals)
    make_ref
    interrupt_train INT
    interrupt_train TERM
    cat >"$tmp/x.yaml" <<EOF
name: faults
teacher: teachers/resnet20_cifar10_akamaster_optA.h5
data: cifar-10-batches-bin/test_batch_lossless1000.bin
defaults: {generator: gdfq, loss: akt, epochs: $epochs, iters: 2, batch: 4, threads: 1,
           warmup_epochs: 1, tracker_epochs: 1, milestones: none, eval_limit: 20,
           eval_batch: 20}
matrix: {seed: [3, 4]}
EOF
    if ! "$akt" run "$tmp/x.yaml" --quiet --out "$tmp/xref.h5" >/dev/null 2>"$tmp/xref.err"; then
        not_ok "the uninterrupted akt run failed: $(tail -1 "$tmp/xref.err")"
    else
        ids=$(h5ls "$tmp/xref.h5/runs" | awk '{print $1}')
        id1=$(echo "$ids" | sed -n 1p) id2=$(echo "$ids" | sed -n 2p)
        interrupt_run INT
        interrupt_run TERM
    fi
    ;;
kills)
    # more, shorter epochs: a kill every epoch or so still lets the run advance
    epochs=10
    train_args=(train --generator gdfq --loss akt --epochs $epochs --iters 1 --batch 4 --seed 3
                --threads 1 --set warmup_epochs=1 --set tracker_epochs=1 --set milestones=none
                --set eval_limit=20 --set eval_batch=20)
    make_ref
    kills
    ;;
disk)
    make_ref
    make_beside
    log=$tmp/writes.log
    mkdir -p "$tmp/logged"
    cp "$beside" "$tmp/logged/out.h5"
    env LD_PRELOAD="$shim" AKT_WRITE_LOG="$log" "$akt" "${train_args[@]}" --quiet \
        --out "$tmp/logged/out.h5" >/dev/null 2>&1
    # renames: 1 the run file made, 2.. one per epoch, then the final one,
    # then OUT.h5's replacement
    enospc start 1 "the first write: no results file can be made" 0
    enospc epoch "$(phase_start "$log" 3)" "saving epoch 3" 2
    enospc commit "$(first_write_to "$log" /out.h5.tmp)" "the commit into OUT.h5 beside a finished run" $epochs
    full_tmpfs
    read_only
    ;;
*)
    echo "usage: faults.sh signals|kills|disk" >&2
    exit 2
    ;;
esac

echo "1..$n_test"
[ $failed -eq 0 ]
