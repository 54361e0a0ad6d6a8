# Shared by the command-line test scripts (cli_errors.sh, cli_crafted.sh):
# source it with CLI_NAME set; it skips the script (TAP plan 1..0) without
# the binary or the data, makes $tmp and gives the check helpers below. End
# the script with cli_finish.
# Env: AKT_BIN (the binary), AKT_DATA (shared data), AKT_H5EDIT (tests/tools/h5edit).
AKT=${AKT_BIN:-}
if [ -z "$AKT" ] || [ ! -x "$AKT" ]; then
    echo "1..0 # SKIP AKT_BIN is not an executable: '${AKT}'"
    exit 0
fi
if [ -z "${AKT_DATA:-}" ]; then
    echo "1..0 # SKIP AKT_DATA is not set"
    exit 0
fi
TEACHER=$AKT_DATA/teachers/resnet20_cifar10_akamaster_optA.h5
DATA=$AKT_DATA/cifar-10-batches-bin/test_batch_lossless1000.bin
H5EDIT=${AKT_H5EDIT:-}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/akt_${CLI_NAME:-cli}.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# Results are collected first so the plan line can come first.
results=()
failed=0
report() { # report DESC [REASON...]: ok when no reason is given
    local desc=$1
    shift
    local i=$((${#results[@]} + 1))
    if [ $# -eq 0 ]; then
        results+=("ok $i - $desc")
        return
    fi
    failed=$((failed + 1))
    local line="not ok $i - $desc"
    for r in "$@"; do line+=$'\n'"#   $r"; done
    line+=$'\n'"#   command: ${last_cmd}"
    while IFS= read -r l; do line+=$'\n'"#   stderr: $l"; done <"$tmp/err"
    while IFS= read -r l; do line+=$'\n'"#   stdout: $l"; done < <(tail -n 5 "$tmp/out")
    results+=("$line")
}

# Extra environment (NAME=VALUE words) for the akt runs, e.g.
# akt_env=(AKT_MEM_LIMIT=1G); empty by default.
akt_env=()
run_akt() { # stdout, stderr and status into $tmp/out, $tmp/err, $rc
    last_cmd="${akt_env[*]}${akt_env[*]:+ }akt $*"
    timeout "${LIMIT:-600}" env "${akt_env[@]}" "$AKT" "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}

# check_error DESC WANT_RC FACT... -- ARGS...
# FACTs are fixed strings the one stderr line must contain (case-insensitive).
check_error() {
    local desc=$1 want=$2
    shift 2
    local facts=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        facts+=("$1")
        shift
    done
    shift
    run_akt "$@"
    local why=()
    [ "$rc" -eq "$want" ] || why+=("exit status $rc, want $want")
    local lines
    lines=$(grep -c '' "$tmp/err")
    [ "$lines" -eq 1 ] || why+=("stderr has $lines lines, want exactly 1")
    head -n 1 "$tmp/err" | grep -q '^akt: error: ' || why+=("stderr does not start with 'akt: error: '")
    ! grep -qE 'Sanitizer|runtime error' "$tmp/err" || why+=("stderr has a sanitizer report")
    for f in "${facts[@]}"; do
        grep -qiF -- "$f" "$tmp/err" || why+=("stderr does not mention '$f'")
    done
    report "$desc" "${why[@]}"
}

# check_help DESC WORD... -- ARGS...: exit 0 and a usage text on stdout.
check_help() {
    local desc=$1
    shift
    local words=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        words+=("$1")
        shift
    done
    shift
    run_akt "$@"
    local why=()
    [ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
    for w in usage "${words[@]}"; do
        grep -qiF -- "$w" "$tmp/out" || why+=("stdout does not mention '$w'")
    done
    report "$desc" "${why[@]}"
}

# Broken files (tests/tools/h5edit), made from good ones. A failure to make
# one is a failure.
make_h5() { # make_h5 IN OUT OP ARGS...
    last_cmd="h5edit $*"
    : >"$tmp/out"
    if [ -z "$H5EDIT" ] || [ ! -x "$H5EDIT" ]; then
        echo "AKT_H5EDIT is not an executable: '$H5EDIT'" >"$tmp/err"
        return 1
    fi
    "$H5EDIT" "$@" 2>"$tmp/err"
}
make_teacher() { make_h5 "$TEACHER" "$@"; } # make_teacher OUT OP ARGS...

cli_finish() { # the plan, the results; the status says whether all passed
    echo "1..${#results[@]}"
    printf '%s\n' "${results[@]}"
    [ "$failed" -eq 0 ]
}

