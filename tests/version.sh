#!/bin/bash
# `akt --version` against the meson project version (TAP output): one line
# `akt X.Y.Z`, plus ` (git COMMIT)` when built from a git checkout, where
# COMMIT is the checkout's HEAD (abbreviated, `-dirty` with uncommitted
# changes).
# Usage: version.sh VERSION   (meson.project_version())
# Env: AKT_BIN (the binary), AKT_SOURCE_ROOT (the tree).
set -u

want=${1:-}
AKT=${AKT_BIN:-}
SRC=${AKT_SOURCE_ROOT:-}
if [ -z "$AKT" ] || [ ! -x "$AKT" ]; then
    echo "1..0 # SKIP AKT_BIN is not an executable: '$AKT'"
    exit 0
fi
n=0
failed=0
report() { # report DESC [REASON...]
    n=$((n + 1))
    if [ $# -eq 1 ]; then
        echo "ok $n - $1"
        return
    fi
    failed=$((failed + 1))
    echo "not ok $n - $1"
    shift
    for r in "$@"; do echo "#   $r"; done
}

echo "1..2"
out=$("$AKT" --version 2>&1)
rc=$?
why=()
[ -n "$want" ] || why+=("no expected version given")
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
[ "$(grep -c '' <<<"$out")" -eq 1 ] || why+=("$(grep -c '' <<<"$out") lines, want 1")
re="^akt ${want//./\\.}( \(git [0-9a-f]{7,40}(-dirty)?\))?$"
[[ $out =~ $re ]] || why+=("'$out' is not 'akt $want' [(git COMMIT)]")
report "akt --version is 'akt $want' (the meson project version)" "${why[@]}"

why=()
commit=$(sed -n 's/.*(git \([0-9a-f]*\)\(-dirty\)\{0,1\})$/\1/p' <<<"$out")
if [ -n "$SRC" ] && [ -e "$SRC/.git" ] && command -v git >/dev/null; then
    head=$(git -C "$SRC" rev-parse HEAD 2>/dev/null)
    [ -n "$commit" ] || why+=("no (git COMMIT) although $SRC is a git checkout")
    [ -n "$commit" ] && [[ $head == "$commit"* ]] || why+=("commit '$commit' is not HEAD $head")
    report "the commit is the checkout's HEAD" "${why[@]}"
else
    echo "ok 2 - the commit is the checkout's HEAD # SKIP not a git checkout (or no git)"
    n=2
fi

[ "$failed" -eq 0 ]
