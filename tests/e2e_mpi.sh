#!/bin/bash
# akt run under MPI (a -Dmpi=enabled build; meson registers this test only
# then): `mpirun -n 2 akt run X.yaml --out mpi.h5` on loopback gives each rank
# its runs (run K on rank K mod 2) in mpi.rankR.h5, rank 0 merges them into
# mpi.h5, and mpi.h5 equals a serial run's file (h5dump of every metric but
# the wall-clock time_s). TAP output.
# Env: AKT_BIN, AKT_DATA, AKT_MPIRUN (mpirun).
set -u

AKT=${AKT_BIN:-}
MPIRUN=${AKT_MPIRUN:-mpirun}
if [ -z "$AKT" ] || [ ! -x "$AKT" ] || [ -z "${AKT_DATA:-}" ]; then
    echo "1..0 # SKIP AKT_BIN or AKT_DATA missing"
    exit 0
fi
if [ "$(id -u)" = 0 ]; then # Open MPI refuses root without these
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/akt_mpi.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
cd "$tmp" || exit 1

cat >exp.yaml <<'EOF'
name: mpitest
teacher: teachers/resnet20_cifar10_akamaster_optA.h5
data: cifar-10-batches-bin/test_batch_lossless1000.bin
defaults:
  bits: 4
  epochs: 2
  iters: 2
  batch: 8
  warmup_epochs: 1
  tracker_epochs: 1
  milestones: none
  eval_limit: 100
  threads: 1
matrix:
  generator: [gdfq]
  loss: [logit, akt, channel]
EOF

n=0
fails=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() {
    n=$((n + 1))
    fails=$((fails + 1))
    echo "not ok $n - $1"
    shift
    for l in "$@"; do echo "#   $l"; done
}

# loopback only, no oversubscription check, no other transports
mpi=("$MPIRUN" -n 2 --oversubscribe --mca btl self,tcp --mca btl_tcp_if_include lo
     --mca oob_tcp_if_include lo)

if "${mpi[@]}" "$AKT" run exp.yaml --out mpi.h5 --quiet >mpi.out 2>mpi.err; then
    ok "mpirun -n 2 akt run exits 0"
else
    notok "mpirun -n 2 akt run exits 0" "$(tail -5 mpi.err)"
fi
if [ -f mpi.rank0.h5 ] && [ -f mpi.rank1.h5 ] && [ -f mpi.h5 ]; then
    ok "rank files mpi.rank0.h5, mpi.rank1.h5 and merged mpi.h5 exist"
else
    notok "rank files and merged file exist" "$(ls)"
fi
# runs 0 logit, 1 akt, 2 channel: rank 0 has 0 and 2, rank 1 has 1 (h5ls sorts)
r0=$(h5ls mpi.rank0.h5/runs 2>/dev/null | awk '{print $1}' | tr '\n' ' ')
r1=$(h5ls mpi.rank1.h5/runs 2>/dev/null | awk '{print $1}' | tr '\n' ' ')
if [ "$r0" = "gdfq-channel-w4a4 gdfq-logit-w4a4 " ] && [ "$r1" = "gdfq-akt-w4a4 " ]; then
    ok "runs split by K mod 2 (rank0: $r0; rank1: $r1)"
else
    notok "runs split by K mod 2" "rank0: $r0" "rank1: $r1"
fi
# the table printed once, by rank 0, with every run
if [ "$(grep -c ' done$' mpi.out)" = 3 ]; then
    ok "rank 0 prints the table of all 3 runs"
else
    notok "rank 0 prints the table of all 3 runs" "$(cat mpi.out)"
fi

# the same matrix serially
if "$AKT" run exp.yaml --out serial.h5 --quiet >serial.out 2>serial.err; then
    ok "serial akt run exits 0"
else
    notok "serial akt run exits 0" "$(tail -5 serial.err)"
fi
same=1
why=()
for id in gdfq-logit-w4a4 gdfq-akt-w4a4 gdfq-channel-w4a4; do
    for m in top1 top5 loss_g loss_q grad_norm act_range; do
        a=$(h5dump -d "/runs/$id/metrics/$m/value" serial.h5 2>&1 | grep -v '^HDF5')
        b=$(h5dump -d "/runs/$id/metrics/$m/value" mpi.h5 2>&1 | grep -v '^HDF5')
        if [ "$a" != "$b" ] || ! grep -q 'DATASET "/runs' <<<"$a"; then
            same=0
            why+=("$id $m differs")
        fi
    done
    ca=$(h5dump -a "/runs/$id/config" serial.h5 | grep -v '^HDF5')
    cb=$(h5dump -a "/runs/$id/config" mpi.h5 | grep -v '^HDF5')
    [ "$ca" = "$cb" ] || { same=0; why+=("$id config differs"); }
done
if [ $same = 1 ]; then
    ok "merged MPI results equal the serial run's (metrics, configs)"
else
    notok "merged MPI results equal the serial run's" "${why[@]}"
fi

# a second mpirun finds everything done (resume state: the rank files)
if "${mpi[@]}" "$AKT" run exp.yaml --out mpi.h5 --quiet >mpi2.out 2>mpi2.err &&
   [ "$(grep -c ' skipped$' mpi2.out)" = 3 ]; then
    ok "rerun under mpirun skips the 3 done runs"
else
    notok "rerun under mpirun skips the 3 done runs" "$(cat mpi2.out)" "$(tail -3 mpi2.err)"
fi
# --shard and mpirun together: a usage error
"${mpi[@]}" "$AKT" run exp.yaml --out x.h5 --shard 0/2 >/dev/null 2>shard.err
rc=$?
if [ $rc -ne 0 ] && grep -q -- '--shard cannot be combined' shard.err; then
    ok "--shard under mpirun is refused"
else
    notok "--shard under mpirun is refused" "exit $rc" "$(head -3 shard.err)"
fi

echo "1..$n"
[ $fails = 0 ]
