#!/bin/bash
# Layers point one way (issue 9; README "Layout"): every #include "..." of
# core/ and plugins/ names a header of its own layer or one below, never one
# above (TAP output). The layers, lowest first:
#   0 base      core/base, akt/base.h
#   1 autograd  core/autograd, akt/tensor.h (the tensor, the tape, every op)
#   2 ops       core/ops (their internal headers)
#   3 nn, data  core/nn, core/data, akt/{nn,student,distill,optim,eval,data,akt}.h
#   4 io        core/io, akt/results.h
#   5 plugin    core/plugin, plugins/, akt/{plugin,registry,params}.h
#   6 run       core/run, akt/{run,export}.h
#   7 config    core/config, akt/experiment.h
#   8 cli       core/cli
# A file's own folder (its internal headers) is its layer. The headers outside
# core/include are private to their folder (core/nn reaches the ops through
# akt/tensor.h, never core/ops/internal.h); the one exception is core/io's
# HDF5 attribute and ONNX helpers, which core/run/export.c writes with.
# akt_version.h (made by the build) may be included anywhere; plugins/ folders
# share their headers among themselves. Usage: layers.sh [SOURCE_ROOT]
set -u
root=${1:-${AKT_SOURCE_ROOT:-$(dirname "$0")/..}}
cd "$root" || { echo "1..0 # SKIP no source root '$root'"; exit 0; }

# layer_of PATH (relative to the source root): the layer, or "" when unknown
layer_of() {
    case $1 in
    core/include/akt/base.h) echo 0 ;;
    core/include/akt/tensor.h) echo 1 ;;
    core/include/akt/nn.h | core/include/akt/student.h | core/include/akt/distill.h | \
        core/include/akt/optim.h | core/include/akt/eval.h | core/include/akt/data.h | \
        core/include/akt/akt.h) echo 3 ;;
    core/include/akt/results.h) echo 4 ;;
    core/include/akt/plugin.h | core/include/akt/registry.h | core/include/akt/params.h) echo 5 ;;
    core/include/akt/run.h | core/include/akt/export.h) echo 6 ;;
    core/include/akt/experiment.h) echo 7 ;;
    core/base/*) echo 0 ;;
    core/autograd/*) echo 1 ;;
    core/ops/*) echo 2 ;;
    core/nn/* | core/data/*) echo 3 ;;
    core/io/*) echo 4 ;;
    core/plugin/* | plugins/*) echo 5 ;;
    core/run/*) echo 6 ;;
    core/config/*) echo 7 ;;
    core/cli/*) echo 8 ;;
    *) echo "" ;;
    esac
}

# known_upward FILE INCLUDE: the one upward include left, to be removed:
# core/io/merge.c compares stored configs with akt_run_config_text_diff
# (core/run/config.c), which belongs below io (a config-text module)
known_upward() { [ "$1" = core/io/merge.c ] && [ "$2" = akt/run.h ]; }

# private_elsewhere FILE TARGET: TARGET is another core folder's own header
private_elsewhere() {
    local f=$1 target=$2
    case $target in
    core/include/*) return 1 ;;
    core/io/h5attr.h | core/io/onnx.h) [ "$f" = core/run/export.c ] && return 1 ;;
    esac
    case $f in plugins/*) [[ $target == plugins/* ]] && return 1 ;; esac
    [ "$(dirname "$f")" != "$(dirname "$target")" ]
}

n=0 bad=0
out=()
while IFS= read -r f; do
    [ -f "$f" ] || continue
    lf=$(layer_of "$f")
    [ -n "$lf" ] || continue
    dir=$(dirname "$f")
    while IFS= read -r inc; do
        [ "$inc" = akt_version.h ] && continue
        case $inc in
        akt/*) target=core/include/$inc ;;
        *) target=$(realpath -m --relative-to=. "$dir/$inc") ;;
        esac
        n=$((n + 1))
        lt=$(layer_of "$target")
        if [ -z "$lt" ]; then
            bad=$((bad + 1))
            out+=("$f includes \"$inc\": $target is in no layer")
        elif [ "$lt" -gt "$lf" ] && ! known_upward "$f" "$inc"; then
            bad=$((bad + 1))
            out+=("$f (layer $lf) includes \"$inc\" (layer $lt, above it)")
        elif private_elsewhere "$f" "$target"; then
            bad=$((bad + 1))
            out+=("$f includes \"$inc\", a header private to $(dirname "$target")")
        fi
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
done < <(git ls-files --cached --others --exclude-standard 'core/*.c' 'core/*.h' 'plugins/*.c' \
             'plugins/*.h' 2>/dev/null ||
         find core plugins -name '*.[ch]')

# the count of includes checked, then one line per violation
echo "1..$((bad + 1))"
[ "$n" -gt 50 ] && echo "ok 1 - $n #include lines of core/ and plugins/ checked" ||
    { echo "not ok 1 - only $n #include lines found (is '$root' the source root?)"; bad=$((bad + 1)); }
i=1
for l in "${out[@]}"; do
    i=$((i + 1))
    echo "not ok $i - $l"
done
[ "$bad" -eq 0 ]
