#!/bin/bash
# `meson install`, then a plugin built outside the tree against the installed
# akt with pkg-config, as plugins/README.md ("Building a plugin outside the
# tree") shows (TAP output):
#   install_plugin.sh MESON BUILD_DIR          the meson test: installs
#       BUILD_DIR into a temporary DESTDIR (its prefix as configured); the
#       installed akt runs with LD_LIBRARY_PATH and --plugin-dir there
#   install_plugin.sh MESON BUILD_DIR PREFIX   CI (.ci/run): BUILD_DIR was
#       configured with --prefix=PREFIX (a temporary folder); a real install,
#       and the installed akt runs as a user would: no LD_LIBRARY_PATH, its
#       default plugin folder
# Env: AKT_SOURCE_ROOT (the tree), AKT_BIN (the build tree's akt, to compare
# versions), AKT_DATA (optional: a one-iteration run with the plugin), CC.
set -u

MESON=${1:-}
BUILD=${2:-}
PREFIX=${3:-}
SRC=${AKT_SOURCE_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
CC=${CC:-cc}
skip_all() { echo "1..0 # SKIP $*"; exit 0; }
[ -n "$MESON" ] && command -v "$MESON" >/dev/null || skip_all "meson not found: '$MESON'"
[ -d "$BUILD" ] || skip_all "no build folder '$BUILD'"
command -v pkg-config >/dev/null || skip_all "pkg-config not found (Debian: pkg-config)"
command -v "$CC" >/dev/null || skip_all "no C compiler '$CC'"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/akt_install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

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
    while IFS= read -r l; do line+=$'\n'"#   stderr: $l"; done < <(tail -n 10 "$tmp/err")
    while IFS= read -r l; do line+=$'\n'"#   stdout: $l"; done < <(tail -n 5 "$tmp/out")
    results+=("$line")
}
run() { # run CMD...: stdout, stderr and status into $tmp/out, $tmp/err, $rc
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

# --- install -----------------------------------------------------------------
if [ -n "$PREFIX" ]; then
    root=""
    run "$MESON" install -C "$BUILD" --quiet
else
    root=$tmp/dest
    run "$MESON" install -C "$BUILD" --no-rebuild --quiet --destdir "$root"
fi
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
pc=$(find "${root:-$PREFIX}" -name akt.pc -path '*/pkgconfig/*' 2>/dev/null | head -n 1)
[ -n "$pc" ] || why+=("no akt.pc installed")
report "meson install${PREFIX:+ --prefix $PREFIX}${root:+ --destdir}" "${why[@]}"
[ -n "$pc" ] || finish

export PKG_CONFIG_PATH=$(dirname "$pc")
[ -n "$root" ] && export PKG_CONFIG_SYSROOT_DIR=$root # -I and -L under DESTDIR
# a variable of akt.pc without DESTDIR (pkgconf prefixes the sysroot, others not)
var() {
    local v
    v=$(pkg-config --variable="$1" akt)
    [ -n "$root" ] && v=${v#"$root"}
    echo "$v"
}
prefix=$(var prefix)
libdir=$root$(var libdir)
includedir=$root$(var includedir)
plugindir=$root$(var plugindir)
bindir=$root$prefix/bin
why=()
[ -z "$PREFIX" ] || [ "$prefix" = "$PREFIX" ] || why+=("akt.pc prefix '$prefix', want '$PREFIX'")
[ "$(pkg-config --modversion akt)" = "$(sed -n "s/^ *version : '\(.*\)',$/\1/p" "$SRC/meson.build")" ] ||
    why+=("akt.pc Version '$(pkg-config --modversion akt)' is not the meson project version")
[ -x "$bindir/akt" ] || why+=("no $bindir/akt")
[ -e "$libdir/libakt.so" ] || why+=("no $libdir/libakt.so")
for h in "$SRC"/core/include/akt/*.h; do
    cmp -s "$h" "$includedir/akt/$(basename "$h")" || why+=("$includedir/akt/$(basename "$h") missing or different")
done
for p in akt_generators akt_losses; do
    [ -e "$plugindir/$p.so" ] || why+=("no $plugindir/$p.so")
done
report "installed: bin/akt, libakt.so, every public header, akt.pc, the plugins" "${why[@]}"

# How the installed akt is run: in DESTDIR its rpath and plugin folder point
# at the configured prefix, not here.
if [ -n "$root" ]; then
    akt_env=(env -u AKT_PLUGIN_PATH LD_LIBRARY_PATH="$libdir")
else
    akt_env=(env -u LD_LIBRARY_PATH -u AKT_PLUGIN_PATH)
fi
AKT_I=$bindir/akt

run "${akt_env[@]}" "$AKT_I" --version
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
if [ -n "${AKT_BIN:-}" ] && [ -x "$AKT_BIN" ]; then
    [ "$(cat "$tmp/out")" = "$("$AKT_BIN" --version)" ] ||
        why+=("'$(cat "$tmp/out")', the build tree's akt says '$("$AKT_BIN" --version)'")
fi
report "the installed akt runs${root:+ (LD_LIBRARY_PATH=DESTDIR libdir)}${PREFIX:+ without LD_LIBRARY_PATH}: --version" "${why[@]}"

# The shipped plugins: with --plugin-dir in DESTDIR; from the default folder
# in a real install. Never the build tree's files.
if [ -n "$root" ]; then
    run "${akt_env[@]}" "$AKT_I" plugins --plugin-dir "$plugindir"
else
    run "${akt_env[@]}" "$AKT_I" plugins
fi
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
for g in gdfq qimera adadfq; do
    grep -qE "^generator +$g\$" "$tmp/out" || why+=("generator $g not listed")
done
for l in logit akt; do
    grep -qE "^loss +$l\$" "$tmp/out" || why+=("loss $l not listed")
done
files=$(sed -n 's/^ *file: //p' "$tmp/out" | sort -u)
[ -n "$files" ] || why+=("no file: lines")
for f in $files; do
    [[ $f == "$plugindir"/* ]] || why+=("loaded $f, not from $plugindir")
done
report "the installed akt lists the installed plugins${PREFIX:+ from its default folder}" "${why[@]}"

if [ -n "$root" ]; then
    # no --plugin-dir: the installed akt looks only in its install folder
    # (the configured prefix's, absent or not), never in the build tree
    run "${akt_env[@]}" "$AKT_I" plugins
    why=()
    grep -q "file: $(cd "$BUILD" && pwd)" "$tmp/out" && why+=("the installed akt loaded the build tree's plugins")
    [ "$rc" -eq 0 ] || grep -qF "$(var plugindir)" "$tmp/err" ||
        why+=("exit status $rc and stderr does not name $(var plugindir)")
    report "the installed akt's default folder is its install folder, not the build tree" "${why[@]}"
fi

# --- the template, out of the tree ----------------------------------------------
mkdir -p "$tmp/my_plugin" "$tmp/plugins"
cp "$SRC/plugins/template/template_mse.c" "$tmp/my_plugin/"
so=$tmp/plugins/template_mse.so
# shellcheck disable=SC2046  # pkg-config's flags are meant to split
run "$CC" -std=c11 -Wall -Wextra -Werror -shared -fPIC -fvisibility=hidden -o "$so" \
    "$tmp/my_plugin/template_mse.c" $(pkg-config --cflags --libs akt)
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
[ -s "$so" ] || why+=("no $so")
pkg-config --cflags akt | grep -qF -- "-I$includedir" || why+=("pkg-config --cflags akt is not -I$includedir")
report "cc \$(pkg-config --cflags --libs akt) -shared -fPIC builds the template out of the tree" "${why[@]}"

run "${akt_env[@]}" "$AKT_I" plugins --plugin-dir "$tmp/plugins"
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
grep -qE '^loss +template_mse$' "$tmp/out" || why+=("loss template_mse not listed")
grep -qxF "    file: $so" "$tmp/out" || why+=("no 'file: $so'")
report "akt plugins --plugin-dir DIR lists the out-of-tree plugin" "${why[@]}"

if [ -n "${AKT_DATA:-}" ] && [ -d "$AKT_DATA/teachers" ]; then
    run "${akt_env[@]}" AKT_PLUGIN_PATH="$tmp/plugins:$plugindir" "$AKT_I" train \
        --generator gdfq --loss template_mse --epochs 1 --iters 1 --batch 4 \
        --set warmup_epochs=0 --set tracker_epochs=0 --set eval_limit=20 --set milestones=none \
        --set loss.weight=2 --threads 1 --out "$tmp/run.h5"
    why=()
    [ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
    grep -qE 'best_top1=[0-9.]+ final_top1=[0-9.]+' "$tmp/out" || why+=("no best_top1=... final_top1=... line")
    run "${akt_env[@]}" "$AKT_I" table "$tmp/run.h5"
    [ "$rc" -eq 0 ] && grep -q ',template_mse,' "$tmp/out" && head -n 1 "$tmp/out" | grep -q ',loss.weight,' ||
        why+=("akt table of the run lacks loss template_mse / column loss.weight")
    report "akt train with the out-of-tree plugin (one iteration), installed akt" "${why[@]}"
fi

finish
