# TAP helpers of the shell tests (sourced after $tmp is made): results are
# collected first so the plan line can come first.
#   report DESC [REASON...]  ok when no reason is given, else not ok with the
#                            reasons, the last command and its output's tail
#   run CMD...               stdout, stderr and status into $tmp/out,
#                            $tmp/err and $rc (10 minutes at most)
#   finish                   prints the plan and the results, exits 0 or 1
results=()
failed=0
last_cmd=
report() {
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
    while IFS= read -r l; do line+=$'\n'"#   stderr: $l"; done < <(tail -n 10 "$tmp/err" 2>/dev/null)
    while IFS= read -r l; do line+=$'\n'"#   stdout: $l"; done < <(tail -n 5 "$tmp/out" 2>/dev/null)
    results+=("$line")
}
run() {
    last_cmd="$*"
    timeout 600 "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}
finish() {
    echo "1..${#results[@]}"
    printf '%s\n' "${results[@]}"
    [ "$failed" -eq 0 ]
    exit
}
