#!/bin/sh
# Puts the run settings table (`akt train --help-settings`, generated from
# the table in core/run/config.c) into README.md between the settings
# markers. Usage: tools/readme_settings.sh [AKT_BINARY] (default build/core/akt).
# tests/settings.sh checks that README.md and the binary agree.
set -eu
cd "$(dirname "$0")/.."
akt=${1:-build/core/akt}
table=$(mktemp)
out=$(mktemp)
trap 'rm -f "$table" "$out"' EXIT
"$akt" train --help-settings >"$table"
awk -v table="$table" '
    /^<!-- settings:begin/ { print; while ((getline l < table) > 0) print l; skip = 1; next }
    /^<!-- settings:end/ { skip = 0 }
    !skip { print }
' README.md >"$out"
grep -q '^<!-- settings:end' "$out" || { echo "readme_settings: no settings markers in README.md" >&2; exit 1; }
cat "$out" >README.md
