#!/bin/bash
# Run settings from the command line (TAP output): README.md's list is the
# table akt prints (akt train --help-settings) and `akt train --help` lists
# every key; booleans read alike for run settings and plugin parameters;
# bad values name their source, key, value and range (--set and YAML);
# `akt run --set` reaches every cell's stored config, floats stored as
# written (1e-4), and a rerun without it is a changed configuration.
# Env: AKT_BIN, AKT_DATA, AKT_SOURCE_ROOT (README.md).
set -u
CLI_NAME=settings
. "$(dirname "$0")/cli_lib.sh"
README=${AKT_SOURCE_ROOT:-$(dirname "$0")/..}/README.md

# --- one table: README, --help ------------------------------------------------
run_akt train --help-settings
cp "$tmp/out" "$tmp/table.md"
sed -n '/^<!-- settings:begin/,/^<!-- settings:end/p' "$README" | sed '1d;$d' >"$tmp/readme.md"
why=()
[ "$rc" -eq 0 ] || why+=("akt train --help-settings: exit status $rc")
[ -s "$tmp/table.md" ] || why+=("akt train --help-settings printed nothing")
grep -q '^| `lr_student` | a number in \[0, 10\] | `1e-4` |' "$tmp/table.md" ||
    why+=("no lr_student row with its range and default")
if ! diff -u "$tmp/readme.md" "$tmp/table.md" >"$tmp/diff"; then
    why+=("README.md's run settings differ from akt train --help-settings (run tools/readme_settings.sh):")
    while IFS= read -r l; do why+=("$l"); done <"$tmp/diff"
fi
report "README.md's run settings are the table (tools/readme_settings.sh)" "${why[@]}"

run_akt train --help
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc")
n=0
while IFS='|' read -r _ key value _; do # every row of the table, key and range
    key=$(echo "$key" | tr -d '` ')
    value=$(echo "$value" | sed 's/^ *//; s/ *$//')
    case $key in key | ---* | *.KEY*) continue ;; esac
    n=$((n + 1))
    grep -qF -- "  $(printf '%-16s' "$key") $value" "$tmp/out" ||
        why+=("--help has no line '  $key  $value'")
done <"$tmp/table.md"
[ "$n" -ge 25 ] || why+=("only $n settings in the table")
report "akt train --help lists every setting with its range ($n)" "${why[@]}"

# --- an experiment for the rest -------------------------------------------------
cat >"$tmp/x.yaml" <<'EOF'
name: x
teacher: teachers/resnet20_cifar10_akamaster_optA.h5
data: cifar-10-batches-bin/test_batch_lossless1000.bin
defaults:
  generator: qimera
  loss: akt
  epochs: 1
  iters: 1
  batch: 2
  milestones: none
  eval_limit: 10
  lr_student: 0.0005
matrix:
  seed: [0, 1]
EOF

# --- booleans: the same spellings for a run setting and plugin parameters ------
why=()
for b in true True TRUE yes Yes 1 false False NO no 0; do
    run_akt run "$tmp/x.yaml" --dry-run --quiet --set first_last_8bit=$b \
        --set generator.disentangle=$b
    [ "$rc" -eq 0 ] || why+=("first_last_8bit=$b and generator.disentangle=$b: exit status $rc: $(head -n 1 "$tmp/err")")
done
report "booleans: true/True/TRUE/yes/1/false/NO/0 for first_last_8bit and generator.disentangle" \
    "${why[@]}"
check_error "bool: the same refusal for a run setting" 2 "--set first_last_8bit" "'maybe'" \
    "true or false" -- run "$tmp/x.yaml" --dry-run --set first_last_8bit=maybe
check_error "bool: the same refusal for a plugin parameter" 2 "--set generator.disentangle" \
    "'maybe'" "true or false" -- run "$tmp/x.yaml" --dry-run --set generator.disentangle=maybe

# --- bad values: source, key, value, range --------------------------------------
check_error "train --set: float out of range" 2 "--set lr_student" "20" "[0, 10]" -- \
    train --teacher "$TEACHER" --data "$DATA" --generator gdfq --loss akt --set lr_student=20
check_error "train --set: not a number" 2 "--set momentum" "'fast'" "a number in [0, 1]" -- \
    train --teacher "$TEACHER" --data "$DATA" --generator gdfq --loss akt --set momentum=fast
check_error "train --set: plugin parameter out of range" 2 "--set loss.lambda" "-1" \
    "out of range [0, " -- \
    train --teacher "$TEACHER" --data "$DATA" --generator gdfq --loss akt --set loss.lambda=-1
check_error "run --set: bad value, in every cell's validation" 2 "--set lr_student" "'abc'" \
    "a number in [0, 10]" -- run "$tmp/x.yaml" --dry-run --set lr_student=abc
check_error "run --set: id is the matrix's" 2 "--set id" "matrix" -- \
    run "$tmp/x.yaml" --dry-run --set id=mine
check_error "run --set: not KEY=VALUE" 2 "--set" "KEY=VALUE" -- \
    run "$tmp/x.yaml" --dry-run --set lr_student
sed 's/^  lr_student: 0.0005/  lr_student: 20/' "$tmp/x.yaml" >"$tmp/bad.yaml"
check_error "YAML: file, line and column, key, value, range" 2 "$tmp/bad.yaml:12:15 lr_student" \
    "20 is out of range [0, 10]" -- run "$tmp/bad.yaml" --dry-run
sed 's/^  loss: akt/  loss: akt\n  loss.T_fd: x/' "$tmp/x.yaml" >"$tmp/bad2.yaml"
check_error "YAML: a plugin parameter the same way" 2 "$tmp/bad2.yaml:7:14 loss.T_fd" "'x'" \
    "a number in [" -- run "$tmp/bad2.yaml" --dry-run

# --- akt run --set reaches every cell's stored config ----------------------------
F=$tmp/x.h5
config() { h5dump -a "/runs/$1/config" "$F" 2>/dev/null; }
run_akt run "$tmp/x.yaml" --out "$F" --quiet --set lr_student=1e-4 --set loss.lambda=7 \
    --set generator.lr=2.5e-5 --set weight_decay=0.0005
why=()
[ "$rc" -eq 0 ] || why+=("akt run --set: exit status $rc")
for id in qimera-akt-w4a4-s0 qimera-akt-w4a4-s1; do
    c=$(config "$id")
    [ -n "$c" ] || why+=("$id: no stored config")
    for want in "lr_student: 1e-4" "loss.lambda: 7" "generator.lr: 2.5e-5" "weight_decay: 5e-4" \
        "momentum: 0.9" "gamma: 0.1"; do
        grep -qF -- "$want" <<<"$c" || why+=("$id: stored config has no '$want'")
    done
    ! grep -qE 'e-05|9999' <<<"$c" || why+=("$id: a float stored as %.9g: $(grep -E 'e-05|9999' <<<"$c")")
done
report "akt run --set: every cell's stored config has the values, floats as written (1e-4)" \
    "${why[@]}"

# the stored config is what a rerun is compared with: the same run without
# the --set is another configuration
run_akt train --teacher "$TEACHER" --data "$DATA" --generator qimera --loss akt --epochs 1 \
    --iters 1 --batch 2 --set milestones=none --set eval_limit=10 --set lr_student=0.0005 \
    --set id=qimera-akt-w4a4-s0 --out "$F" --quiet
why=()
[ "$rc" -ne 0 ] || why+=("the run without the --set values was accepted")
for k in lr_student loss.lambda generator.lr weight_decay; do
    grep -qF "$k" "$tmp/err" || why+=("the refusal does not name $k")
done
grep -q "different configuration" "$tmp/err" || why+=("no 'different configuration'")
report "the same run without the --set values is a different configuration" "${why[@]}"
# with them (written another way), it is the same run: reported, not refused
run_akt train --teacher "$TEACHER" --data "$DATA" --generator qimera --loss akt --epochs 1 \
    --iters 1 --batch 2 --set milestones=none --set eval_limit=10 --set lr_student=0.0001 \
    --set loss.lambda=7.0 --set generator.lr=0.000025 --set weight_decay=5e-4 \
    --set id=qimera-akt-w4a4-s0 --out "$F" --quiet
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc: the same values written otherwise were refused")
report "the same values written otherwise (0.0001 for 1e-4) are the same configuration" "${why[@]}"

cli_finish
