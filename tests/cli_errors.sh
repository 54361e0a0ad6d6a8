#!/bin/bash
# The akt command-line contract (TAP output):
#   akt eval --teacher FILE --data FILE.bin [--batch N] [--threads N]
# ends stdout with `top1=XX.XX top5=XX.XX n=N` and exits 0; bad input exits 1
# (runtime) or 2 (usage) with exactly one stderr line `akt: error: ...` that
# names the file and the problem.
# Env: AKT_BIN (the binary), AKT_DATA (shared data), AKT_H5EDIT (tests/tools/h5edit).
set -u

CLI_NAME=cli_errors
. "$(dirname "$0")/cli_lib.sh"

printf 'this is a text file, not a teacher\n' >"$tmp/text_teacher.h5"
head -c $((3073 * 2 + 1000)) "$DATA" >"$tmp/truncated.bin"

# --- teacher errors ---------------------------------------------------------
check_error "missing teacher file" 1 "$tmp/no_teacher.h5" "No such file" -- \
    eval --teacher "$tmp/no_teacher.h5" --data "$DATA"

check_error "teacher that is not HDF5" 1 "$tmp/text_teacher.h5" "HDF5" -- \
    eval --teacher "$tmp/text_teacher.h5" --data "$DATA"

KEY=layer2.0.conv1.weight
if make_teacher "$tmp/dropped.h5" drop "$KEY"; then
    check_error "teacher without dataset $KEY" 1 "$tmp/dropped.h5" "$KEY" -- \
        eval --teacher "$tmp/dropped.h5" --data "$DATA"
else
    report "teacher without dataset $KEY" "could not make the broken teacher"
fi

if make_teacher "$tmp/reshaped.h5" reshape "$KEY" 16,32,3,3; then
    check_error "teacher with $KEY of the wrong shape" 1 "$tmp/reshaped.h5" "$KEY" \
        "[32,16,3,3]" "[16,32,3,3]" -- \
        eval --teacher "$tmp/reshaped.h5" --data "$DATA"
else
    report "teacher with $KEY of the wrong shape" "could not make the broken teacher"
fi

# --- data errors ------------------------------------------------------------
check_error "truncated CIFAR file" 1 "$tmp/truncated.bin" "truncated" -- \
    eval --teacher "$TEACHER" --data "$tmp/truncated.bin"

check_error "missing data file" 1 "$tmp/no_dir/test_batch.bin" "No such file" -- \
    eval --teacher "$TEACHER" --data "$tmp/no_dir/test_batch.bin"

# --- usage errors -----------------------------------------------------------
check_error "unknown option" 2 "--frobnicate" -- \
    eval --teacher "$TEACHER" --data "$DATA" --frobnicate

check_error "option without its value" 2 "--batch" -- \
    eval --teacher "$TEACHER" --data "$DATA" --batch

check_error "unknown command" 2 "frobnicate" -- \
    frobnicate

# --- akt train: bad configurations (refused before any training) -----------
check_error "train: unknown generator" 2 "unknown generator plugin 'nosuch'" -- \
    train --teacher "$TEACHER" --data "$DATA" --generator nosuch --loss akt
check_error "train: unknown loss" 2 "unknown loss plugin 'nosuch'" -- \
    train --teacher "$TEACHER" --data "$DATA" --generator gdfq --loss nosuch
check_error "train: bits out of range" 2 "wbits" "9" "[2, 8]" -- \
    train --teacher "$TEACHER" --data "$DATA" --generator gdfq --loss akt --wbits 9
check_error "train: unknown plugin parameter" 2 "loss.nosuch" "valid:" -- \
    train --teacher "$TEACHER" --data "$DATA" --generator gdfq --loss akt --set loss.nosuch=1
check_error "train: plugin parameter out of range" 2 "loss.lambda" "out of range" -- \
    train --teacher "$TEACHER" --data "$DATA" --generator gdfq --loss akt --set loss.lambda=-1
check_error "train: plugin parameter of the wrong type" 2 "generator.bns" -- \
    train --teacher "$TEACHER" --data "$DATA" --generator gdfq --loss akt --set generator.bns=abc
check_error "train: unknown run key" 2 "frobnicate" "unknown key" -- \
    train --teacher "$TEACHER" --data "$DATA" --generator gdfq --loss akt --set frobnicate=1
check_error "train: bad range_ema" 2 "range_ema" "as_coded, plain" -- \
    train --teacher "$TEACHER" --data "$DATA" --generator gdfq --loss akt --set range_ema=fast
check_error "train: bad milestone" 2 "milestones" "'x'" -- \
    train --teacher "$TEACHER" --data "$DATA" --generator gdfq --loss akt --set milestones=100,x
check_error "train: bad boolean" 2 "first_last_8bit" "true or false" -- \
    train --teacher "$TEACHER" --data "$DATA" --generator gdfq --loss akt --set first_last_8bit=maybe
check_error "train: bad data format" 2 "format" "cifar100-coarse" -- \
    train --teacher "$TEACHER" --data "$DATA" --generator gdfq --loss akt --format cifar7
check_error "train: missing teacher" 1 "$tmp/no_teacher.h5" "No such file" -- \
    train --teacher "$tmp/no_teacher.h5" --data "$DATA" --generator gdfq --loss akt

# --- silent wrong results (issue 14) ----------------------------------------
TINY=(--teacher "$TEACHER" --data "$DATA" --epochs 1 --iters 1 --batch 2 --threads 1
      --set warmup_epochs=0 --set tracker_epochs=1 --set eval_limit=10 --set eval_batch=10 --quiet)
check_error "train: --out with an empty name" 2 "--out" "empty" -- \
    train --generator gdfq --loss akt --out ""
check_error "run: --out with an empty name" 2 "--out" "empty" -- \
    run --out "" "$tmp/none.yaml"
# the last --generator wins and --loss is kept, in either order
run_akt train "${TINY[@]}" --generator gdfq --loss logit --generator qimera --out "$tmp/names.h5"
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
cfg=$(h5dump -a /runs/run/config "$tmp/names.h5" 2>/dev/null)
[[ $cfg == *"generator: qimera"* ]] || why+=("the stored config does not say 'generator: qimera'")
[[ $cfg == *"loss: logit"* ]] || why+=("the stored config does not say 'loss: logit'")
report "train: a repeated --generator: the last one wins, --loss is kept" "${why[@]}"

# a FIFO is refused before it is opened (opening one blocks until a writer comes)
mkfifo "$tmp/fifo"
LIMIT=20 check_error "eval: --data is a FIFO" 1 "$tmp/fifo" "FIFO" -- \
    eval --teacher "$TEACHER" --data "$tmp/fifo"
LIMIT=20 check_error "eval: --teacher is a FIFO" 1 "$tmp/fifo" "FIFO" -- \
    eval --teacher "$tmp/fifo" --data "$DATA"
LIMIT=20 check_error "train: --out is a FIFO" 1 "$tmp/fifo" "FIFO" -- \
    train "${TINY[@]}" --generator gdfq --loss akt --out "$tmp/fifo"
LIMIT=20 check_error "merge: an input is a FIFO" 1 "$tmp/fifo" "FIFO" -- \
    merge "$tmp/merged.h5" "$tmp/fifo"
LIMIT=20 check_error "run: the experiment file is a FIFO" 1 "$tmp/fifo" "FIFO" -- \
    run "$tmp/fifo" --dry-run
why=()
[ -e "$tmp/merged.h5" ] && why+=("$tmp/merged.h5 exists")
[ -e "$tmp/merged.h5.d" ] && why+=("$tmp/merged.h5.d exists")
[ -e "$tmp/fifo.h5.d" ] && why+=("$tmp/fifo.h5.d exists")
report "merge: a refused input makes nothing" "${why[@]}"

# YAML size and depth caps
printf 'matrix: %s%s\n' "$(printf '[%.0s' $(seq 5000))" "$(printf ']%.0s' $(seq 5000))" \
    >"$tmp/deep.yaml"
LIMIT=20 check_error "run: YAML nested 5000 levels" 2 "$tmp/deep.yaml:1:" "nested more than 32" -- \
    run "$tmp/deep.yaml" --dry-run
head -c 5000000 /dev/zero | tr '\0' '#' >"$tmp/big.yaml"
LIMIT=20 check_error "run: a 5 MB YAML file" 2 "$tmp/big.yaml" "larger than 4 MiB" -- \
    run "$tmp/big.yaml" --dry-run

# --- help -------------------------------------------------------------------
check_help "akt --help" eval -- --help
check_help "akt eval --help" --teacher --data -- eval --help
check_help "akt train --help" --generator --loss --set -- train --help

# --- success: the lossless subset gives the published 91.50 -----------------
# --batch 128 leaves a short last batch (1000 = 7*128 + 104).
run_akt eval --teacher "$TEACHER" --data "$DATA" --batch 128
last=$(tail -n 1 "$tmp/out")
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
[[ $last =~ ^top1=[0-9]+\.[0-9]{2}\ top5=[0-9]+\.[0-9]{2}\ n=[0-9]+$ ]] ||
    why+=("last stdout line '$last' is not 'top1=XX.XX top5=XX.XX n=N'")
[[ $last == "top1=91.50 "* ]] || why+=("top1 is not 91.50: '$last'")
[[ $last == *" n=1000" ]] || why+=("n is not 1000: '$last'")
report "eval on test_batch_lossless1000.bin: top1=91.50 n=1000" "${why[@]}"

cli_finish
