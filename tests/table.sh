#!/bin/bash
# akt table on a results file that akt run wrote (TAP output): a tiny matrix
# (gdfq/adadfq x logit, plus gdfq+akt), then
#   - without Python: the CSV header, one row per run, as many fields in every
#     row as in the header, best/final top-1 equal to the stored attributes
#     (h5dump), a plugin key of one generator empty in the other's row, the
#     long form, JSON and Markdown shapes;
#   - with Debian's pandas (/usr/bin/python3; a TAP skip of those tests
#     without it): pandas.read_csv / read_json load the output in one line and
#     every cell equals what h5py reads from the file, a failed run and a run
#     with no epochs included;
#   - bad input: one-line errors naming the file, the metric or the path.
# Usage: table.sh [PYTHON]  (default /usr/bin/python3; '' = not found)
# Env: AKT_BIN (the binary), AKT_DATA (shared data).
set -u

PY=${1-/usr/bin/python3}
AKT=${AKT_BIN:-}
skip_all() { echo "1..0 # SKIP $*"; exit 0; }
[ -n "$AKT" ] && [ -x "$AKT" ] || skip_all "AKT_BIN is not an executable: '$AKT'"
[ -n "${AKT_DATA:-}" ] || skip_all "AKT_DATA is not set"
command -v h5dump >/dev/null || skip_all "h5dump not found (Debian: hdf5-tools)"
pandas_ok=0
if [ -n "$PY" ] && [ -x "$PY" ] && "$PY" -c 'import pandas, h5py, yaml' 2>/dev/null; then
    pandas_ok=1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/akt_table.XXXXXX") || exit 1
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
    results+=("$line")
}
skip() { results+=("ok $((${#results[@]} + 1)) - $1 # SKIP $2"); }
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
# csv_fields LINE: the number of fields of one CSV line (quotes respected)
csv_fields() {
    awk '{ n = 1; q = 0
           for (i = 1; i <= length($0); i++) {
               c = substr($0, i, 1)
               if (c == "\"") q = !q
               else if (c == "," && !q) n++
           }
           print n }' <<<"$1"
}
# col NAME: 1-based index of NAME in the CSV header $tmp/table.csv (no quoted names)
col() { head -n 1 "$tmp/table.csv" | tr ',' '\n' | grep -nxF -- "$1" | cut -d: -f1; }
# field ID N: field N of the row of run ID (fields without quoted commas)
field() { awk -F, -v id="$1" -v n="$2" '$1 == id { print $n }' "$tmp/table.csv"; }
# attr ID NAME: a numeric run attribute, via h5dump
attr() {
    h5dump -a "/runs/$1/$2" "$H5" 2>/dev/null | sed -n 's/^ *(0): *//p'
}
same_num() { awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; exit !(a != "" && b != "" && d < 1e-9 && d > -1e-9) }'; }

cat >"$tmp/tiny.yaml" <<'EOF'
name: tiny
teacher: teachers/resnet20_cifar10_akamaster_optA.h5
data: cifar-10-batches-bin/test_batch_lossless1000.bin
defaults:
  bits: 4
  epochs: 2
  iters: 1
  batch: 4
  warmup_epochs: 1
  tracker_epochs: 1
  milestones: none
  eval_limit: 50
  seed: 0
matrix:
  generator: [gdfq, adadfq]
  loss: [logit]
include:
  - {generator: gdfq, loss: akt}
EOF

run "$AKT" run "$tmp/tiny.yaml" --dry-run
ids=$(awk '{print $2}' "$tmp/out" | sort)
H5=$tmp/tiny.h5
run "$AKT" run "$tmp/tiny.yaml" --out "$H5" --threads 2 --quiet
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
[ "$(grep -c . <<<"$ids")" -eq 3 ] || why+=("dry run lists '$ids', want 3 runs")
report "akt run tiny.yaml writes 3 runs" "${why[@]}"
[ "$rc" -eq 0 ] || finish
md5_before=$(md5sum <"$H5")

# --- CSV, checked without Python -------------------------------------------------
run "$AKT" table "$H5"
cp "$tmp/out" "$tmp/table.csv"
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
[ -s "$tmp/err" ] && why+=("stderr is not empty")
header=$(head -n 1 "$tmp/table.csv")
[[ $header == id,teacher,data,* ]] || why+=("header does not start with 'id,teacher,data,': '$header'")
[[ $header == *,status,status_message,top1_fp,top1_before,best_top1,best_epoch,final_top1,final_epoch ]] ||
    why+=("header does not end with the result columns: '$header'")
for k in generator generator.bns loss wbits abits epochs iters batch seed milestones first_last_8bit; do
    [ -n "$(col "$k")" ] || why+=("no column '$k'")
done
[ "$(head -n 1 "$tmp/table.csv" | tr ',' '\n' | sort | uniq -d)" = "" ] || why+=("a column name twice")
[ "$(tail -n +2 "$tmp/table.csv" | cut -d, -f1)" = "$ids" ] ||
    why+=("first column is not the run ids in order: $(tail -n +2 "$tmp/table.csv" | cut -d, -f1 | tr '\n' ' ')")
nh=$(csv_fields "$header")
while IFS= read -r line; do
    n=$(csv_fields "$line")
    [ "$n" -eq "$nh" ] || why+=("a row with $n fields, header has $nh: '${line:0:60}...'")
done < <(tail -n +2 "$tmp/table.csv")
report "CSV: header, one row per run in id order, same field count" "${why[@]}"

why=()
for id in $ids; do
    for m in best_top1 final_top1 top1_before top1_fp; do
        want=$(attr "$id" "$m")
        got=$(field "$id" "$(col "$m")")
        same_num "$got" "$want" || why+=("$id: $m is '$got' in the table, '$want' in the file")
    done
    [ "$(field "$id" "$(col status)")" = done ] || why+=("$id: status is not 'done'")
    [ "$(field "$id" "$(col final_epoch)")" = 1 ] || why+=("$id: final_epoch is not 1")
    gen=$(field "$id" "$(col generator)")
    bns=$(field "$id" "$(col generator.bns)")
    case $gen in
    gdfq) [ -n "$bns" ] || why+=("$id: generator.bns empty for gdfq") ;;
    adadfq) [ -z "$bns" ] || why+=("$id: generator.bns is '$bns' for adadfq, which has no such key") ;;
    *) why+=("$id: generator is '$gen'") ;;
    esac
    [ "$(field "$id" "$(col milestones)")" = "[]" ] || why+=("$id: milestones is not '[]'")
done
report "CSV: best/final/before/fp top-1 equal the stored attributes; missing keys empty" "${why[@]}"

# --metric: best of a loss is its minimum (default), --best max flips it
run "$AKT" table "$H5" --metric loss_q
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
[[ $(head -n 1 "$tmp/out") == *,best_loss_q,best_epoch,final_loss_q,final_epoch ]] ||
    why+=("header does not end with best_loss_q,best_epoch,final_loss_q,final_epoch")
run "$AKT" table "$H5" --long --metric loss_q
cp "$tmp/out" "$tmp/long_q.csv"
run "$AKT" table "$H5" --metric loss_q --best max
cp "$tmp/out" "$tmp/max_q.csv"
run "$AKT" table "$H5" --metric loss_q
for id in $ids; do
    lo=$(awk -F, -v id="$id" '$1 == id { print $4 }' "$tmp/long_q.csv" | sort -g | head -n 1)
    hi=$(awk -F, -v id="$id" '$1 == id { print $4 }' "$tmp/long_q.csv" | sort -g | tail -n 1)
    nf=$(csv_fields "$(head -n 1 "$tmp/out")")
    got=$(awk -F, -v id="$id" -v n=$((nf - 3)) '$1 == id { print $n }' "$tmp/out")
    gmax=$(awk -F, -v id="$id" -v n=$((nf - 3)) '$1 == id { print $n }' "$tmp/max_q.csv")
    same_num "$got" "$lo" || why+=("$id: best_loss_q '$got', smallest loss_q '$lo'")
    same_num "$gmax" "$hi" || why+=("$id: --best max gives '$gmax', largest loss_q '$hi'")
done
report "--metric loss_q: best is the minimum, --best max the maximum" "${why[@]}"

# --- long form, JSON, Markdown shapes --------------------------------------------
run "$AKT" table "$H5" --long --metric top1
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
[ "$(head -n 1 "$tmp/out")" = "id,metric,epoch,value" ] || why+=("header is not 'id,metric,epoch,value'")
[ "$(tail -n +2 "$tmp/out" | grep -c ',top1,')" -eq 6 ] || why+=("not 6 top1 rows (3 runs x 2 epochs)")
[ "$(tail -n +2 "$tmp/out" | grep -vc ',top1,')" -eq 0 ] || why+=("rows of other metrics with --metric top1")
for id in $ids; do
    got=$(awk -F, -v id="$id" '$1 == id && $3 == 1 { print $4 }' "$tmp/out")
    same_num "$got" "$(attr "$id" final_top1)" || why+=("$id: top1 of epoch 1 is '$got', final_top1 differs")
done
run "$AKT" table "$H5" --long
grep -q ',loss_q,' "$tmp/out" && grep -q ',time_s,' "$tmp/out" || why+=("--long without --metric lacks loss_q or time_s")
grep -q ',act_range,' "$tmp/out" && why+=("--long lists the table metric act_range")
report "--long: id,metric,epoch,value rows" "${why[@]}"

run "$AKT" table "$H5" --format json
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
[ "$(head -n 1 "$tmp/out")" = "[" ] && [ "$(tail -n 1 "$tmp/out")" = "]" ] || why+=("not a JSON array")
[ "$(grep -c '^{"id": ' "$tmp/out")" -eq 3 ] || why+=("not 3 records")
grep -q '"generator.bns": null' "$tmp/out" || why+=("no null for adadfq's missing generator.bns")
grep -q '"milestones": \[\]' "$tmp/out" || why+=("milestones is not the JSON array []")
grep -q '"first_last_8bit": false' "$tmp/out" || why+=("first_last_8bit is not the JSON false")
report "JSON: 3 records, null for a missing key, typed values" "${why[@]}"

run "$AKT" table "$H5" --format markdown
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
[[ $(head -n 1 "$tmp/out") == "| id | teacher | "*" | final_epoch |" ]] || why+=("no Markdown header")
[[ $(sed -n 2p "$tmp/out") =~ ^(\|---)+\|$ ]] || why+=("no |---| separator line")
[ "$(grep -c '^| ' "$tmp/out")" -eq 4 ] || why+=("not header + 3 rows")
report "Markdown: header, separator, one row per run" "${why[@]}"

# --out, and the results file untouched by everything above
run "$AKT" table "$H5" --out "$tmp/o.csv"
why=()
[ "$rc" -eq 0 ] || why+=("exit status $rc, want 0")
[ -s "$tmp/out" ] && why+=("stdout not empty with --out")
cmp -s "$tmp/o.csv" "$tmp/table.csv" || why+=("--out file differs from stdout's table")
[ "$(md5sum <"$H5")" = "$md5_before" ] || why+=("akt table changed the results file")
report "--out FILE; the results file is not modified" "${why[@]}"

# --- pandas ----------------------------------------------------------------------
if [ "$pandas_ok" -eq 1 ]; then
    # a copy with one failed run (a comma in its message) and one without epochs
    last_cmd="h5py: mark a run failed, add a run that has not started"
    first=$(head -n 1 <<<"$ids")
    cp "$H5" "$tmp/edited.h5"
    "$PY" - "$tmp/edited.h5" "$first" 2>"$tmp/err" <<'EOF'
import sys, h5py
with h5py.File(sys.argv[1], "r+") as f:
    r = f["runs"][sys.argv[2]]
    r.attrs["status"] = "failed"
    r.attrs["status_message"] = 'loss is NaN at epoch 1, iteration 0 ("x")'
    for a in ("final_top1", "best_top1", "top1_before"):
        del r.attrs[a]
    for m in r["metrics"].values():  # keep epoch 0 only
        m["step"].resize((1,))
        m["value"].resize((1,) + m["value"].shape[1:])
    n = f["runs"].create_group("zz-new")
    n.attrs["config"] = "id: \"zz-new\"\ngenerator: gdfq\nloss: akt\nwbits: 4\nnote: \"a, b\"\n"
    n.attrs["status"] = "running"
    n.attrs["status_message"] = ""
    n.create_group("metrics")
EOF
    edited_rc=$?
    for form in csv json long; do
        case $form in
        csv) run "$AKT" table "$tmp/edited.h5" --out "$tmp/p.csv" ;;
        json) run "$AKT" table "$tmp/edited.h5" --format json --out "$tmp/p.json" ;;
        long) run "$AKT" table "$tmp/edited.h5" --long --out "$tmp/p_long.csv" ;;
        esac
        [ "$rc" -eq 0 ] || break
    done
    why=()
    [ "$edited_rc" -eq 0 ] || why+=("editing the copy with h5py failed")
    [ "$rc" -eq 0 ] || why+=("akt table on the edited copy: exit status $rc")
    if [ "${#why[@]}" -eq 0 ]; then
        last_cmd="pandas.read_csv / read_json, compared with h5py"
        "$PY" - "$tmp/edited.h5" "$tmp/p.csv" "$tmp/p.json" "$tmp/p_long.csv" >"$tmp/py" 2>"$tmp/err" <<'EOF'
import math, numbers, re, sys
import h5py, pandas as pd, yaml

h5, csv, js, long_csv = sys.argv[1:5]
# one line each; the float options make pandas parse every digit (its fast
# default parsers are off in the last bit), so cells can be compared exactly
for df in (pd.read_csv(csv), pd.read_json(js), pd.read_csv(long_csv)):
    assert len(df) > 0
wide = {"csv": pd.read_csv(csv, float_precision="round_trip"),
        "json": pd.read_json(js, precise_float=True)}
long = pd.read_csv(long_csv, float_precision="round_trip")
bad = []

def missing(x):
    return x is None or (isinstance(x, float) and math.isnan(x))

def same(got, want):
    if missing(want):
        return missing(got)
    if isinstance(want, bool):  # got: bool, numpy.bool_, or 0.0/1.0 beside a NaN
        return str(got) == str(want) or (isinstance(got, numbers.Real) and got == want)
    if isinstance(want, numbers.Real) and isinstance(got, numbers.Real):
        return float(got) == float(want)
    return str(got) == str(want)

with h5py.File(h5, "r") as f:
    runs = f["runs"]
    for name, df in wide.items():
        if list(df["id"]) != sorted(runs):
            bad.append(f"{name}: ids {list(df['id'])}, want {sorted(runs)}")
            continue
        keys = []
        for rid, run in runs.items():
            row = df[df["id"] == rid].iloc[0]
            cfg = yaml.safe_load(run.attrs["config"])
            # PyYAML reads YAML 1.1, where 1e-4 (no dot) is a string; YAML
            # 1.2 and pandas read it as the number it is
            for k, v in cfg.items():
                if isinstance(v, str) and re.fullmatch(r"[-+]?[0-9.]+[eE][-+]?[0-9]+", v):
                    cfg[k] = float(v)
            keys += [k for k in cfg if k not in keys and k != "id"]
            for k, v in cfg.items():
                if k == "id":
                    continue
                got = row[k]
                if isinstance(v, list):  # milestones: "[]" in CSV, a list in JSON
                    want = v if name == "json" else "[" + ", ".join(map(str, v)) + "]"
                    ok = list(got) == want if name == "json" else got == want
                elif name == "csv" and isinstance(v, str):
                    ok = str(got) == v
                else:
                    ok = same(got, v)
                if not ok:
                    bad.append(f"{name}: {rid}.{k} = {got!r}, config has {v!r}")
            for a in ("status", "status_message"):
                want = run.attrs[a]
                if want == "" and name == "csv":
                    want = None  # an empty CSV field reads as NaN
                if not same(row[a], want):
                    bad.append(f"{name}: {rid}.{a} = {row[a]!r}, file has {want!r}")
            for a in ("top1_fp", "top1_before"):
                if not same(row[a], run.attrs.get(a)):
                    bad.append(f"{name}: {rid}.{a} = {row[a]!r}, file has {run.attrs.get(a)!r}")
            top1 = run["metrics"].get("top1")
            if top1 is None:
                want = dict(best_top1=None, best_epoch=None, final_top1=None, final_epoch=None)
            else:
                s, v = list(top1["step"][:]), list(top1["value"][:])
                b = max(range(len(v)), key=lambda i: (v[i], -i))
                want = dict(best_top1=v[b], best_epoch=s[b], final_top1=v[-1], final_epoch=s[-1])
                for a in ("best_top1", "final_top1"):
                    if a in run.attrs and run.attrs[a] != want[a]:
                        bad.append(f"{rid}: series {a} {want[a]} != attribute {run.attrs[a]}")
            for a, w in want.items():
                if not same(row[a], w):
                    bad.append(f"{name}: {rid}.{a} = {row[a]!r}, want {w!r}")
        cols = ["id"] + keys + ["status", "status_message", "top1_fp", "top1_before",
                                "best_top1", "best_epoch", "final_top1", "final_epoch"]
        if sorted(df.columns) != sorted(cols):
            bad.append(f"{name}: columns {sorted(set(df.columns) ^ set(cols))} differ")
    # long form: every scalar series, exactly
    want_rows = 0
    for rid, run in runs.items():
        for m, g in run["metrics"].items():
            if g["value"].ndim != 1:
                continue
            sel = long[(long["id"] == rid) & (long["metric"] == m)]
            want_rows += len(g["step"])
            if list(sel["epoch"]) != list(g["step"][:]) or list(sel["value"]) != list(g["value"][:]):
                bad.append(f"long: {rid} {m} differs from the file")
    if len(long) != want_rows or list(long.columns) != ["id", "metric", "epoch", "value"]:
        bad.append(f"long: {len(long)} rows / columns {list(long.columns)}, want {want_rows}")
print("\n".join(bad) if bad else "all equal")
sys.exit(1 if bad else 0)
EOF
        prc=$?
        [ "$prc" -eq 0 ] || while IFS= read -r l; do why+=("$l"); done <"$tmp/py"
        [ "$prc" -eq 0 ] || [ -s "$tmp/py" ] || why+=("the pandas check failed (exit $prc)")
    fi
    report "pandas: read_csv/read_json/--long load in one line, every cell as in h5py" "${why[@]}"
else
    skip "pandas: read_csv/read_json/--long load in one line, every cell as in h5py" \
        "pandas, h5py or yaml not importable by '$PY' (Debian: python3-pandas python3-h5py python3-yaml)"
fi

# --- a file that akt is still writing (HDF5 file locking would refuse it) -------
LIVE=$tmp/live.h5
last_cmd="akt table on $LIVE while akt train writes it"
"$AKT" train --generator gdfq --loss logit --epochs 100000 --iters 1 --batch 4 \
    --set warmup_epochs=1 --set tracker_epochs=1 --set eval_limit=20 --set milestones=none \
    --threads 1 --quiet --out "$LIVE" >/dev/null 2>"$tmp/err" &
pid=$!
alive=""
for _ in $(seq 1 600); do
    if "$AKT" table "$LIVE" --long --metric top1 >"$tmp/live.csv" 2>/dev/null &&
        grep -q ',top1,' "$tmp/live.csv"; then
        kill -0 "$pid" 2>/dev/null && alive=1
        break
    fi
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
done
kill -9 "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
why=()
[ -n "$alive" ] || why+=("no top1 row read while the writer was running")
run "$AKT" table "$LIVE" # after kill -9: the epochs flushed so far, status running
[ "$rc" -eq 0 ] || why+=("after kill -9: exit status $rc")
cp "$tmp/out" "$tmp/table.csv"
[ "$(field run "$(col status)")" = running ] || why+=("status of the killed run is not 'running'")
[ -n "$(field run "$(col best_top1)")" ] || why+=("no best_top1 for the killed run")
[ -z "$(field run "$(col top1_fp)")" ] || why+=("top1_fp although the run never ended")
report "a file akt train is writing reads; after kill -9 the run is 'running' with its epochs" "${why[@]}"

# --- bad input -------------------------------------------------------------------
# check_error DESC WANT_RC FACT... -- ARGS...: one stderr line 'akt: error: ...'
check_error() {
    local desc=$1 want=$2
    shift 2
    local facts=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        facts+=("$1")
        shift
    done
    shift
    run "$AKT" "$@"
    local why=()
    [ "$rc" -eq "$want" ] || why+=("exit status $rc, want $want")
    [ "$(grep -c '' "$tmp/err")" -eq 1 ] || why+=("stderr has $(grep -c '' "$tmp/err") lines, want 1")
    grep -q '^akt: error: ' "$tmp/err" || why+=("stderr does not start with 'akt: error: '")
    for f in "${facts[@]}"; do
        grep -qiF -- "$f" "$tmp/err" || why+=("stderr does not mention '$f'")
    done
    [ -s "$tmp/out" ] && why+=("something on stdout: '$(head -c 80 "$tmp/out")'")
    report "$desc" "${why[@]}"
}
printf 'not hdf5\n' >"$tmp/text.h5"
TEACHER=$AKT_DATA/teachers/resnet20_cifar10_akamaster_optA.h5
check_error "missing results file" 1 "$tmp/none.h5" "No such file" -- table "$tmp/none.h5"
why=()
[ -e "$tmp/none.h5" ] && why+=("$tmp/none.h5 exists")
report "a missing results file is not created" "${why[@]}"
check_error "a file that is not HDF5" 1 "$tmp/text.h5" "not an HDF5 file" -- table "$tmp/text.h5"
check_error "an HDF5 file that is not a results file" 1 "$TEACHER" "akt_schema_version" -- \
    table "$TEACHER"
check_error "unknown metric" 1 "$H5" "'nosuch'" "top1" "loss_q" -- table "$H5" --metric nosuch
check_error "unknown metric (--long)" 1 "$H5" "'nosuch'" -- table "$H5" --long --metric nosuch
check_error "a table metric" 1 "act_range" "per-epoch scalar" -- table "$H5" --metric act_range
check_error "unwritable --out" 1 "$tmp/no_dir/t.csv" "No such file" -- \
    table "$H5" --out "$tmp/no_dir/t.csv"
check_error "--out is a folder" 1 "$tmp" -- table "$H5" --out "$tmp"
check_error "--out is the results file" 1 "$H5" "results file" -- table "$H5" --out "$H5"
why=()
[ "$(md5sum <"$H5")" = "$md5_before" ] || why+=("the results file changed")
report "the results file survives --out RESULTS.h5" "${why[@]}"
check_error "unknown format" 2 "xml" -- table "$H5" --format xml
check_error "bad --best" 2 "--best" -- table "$H5" --best sideways
check_error "no results file" 2 "results file" -- table
check_error "two results files" 2 "results file" -- table "$H5" "$H5"

finish
