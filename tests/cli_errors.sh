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
check_error "train: bits out of range" 2 "wbits" "2..8" -- \
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
