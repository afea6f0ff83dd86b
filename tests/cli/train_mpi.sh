#!/usr/bin/env bash
# Data-parallel training: `mpirun -np 2 fsdiff train --batch 4` (2 ranks x 2 samples, gradients
# summed with MPI_Allreduce) must equal `fsdiff train --batch 4` in one process: after 3 Adam steps
# the losses and every weight agree within 1e-5 (max |difference| of each tensor relative to
# max(its max |value|, 0.01); the only difference is the order of the float additions in the gradient
# sums). Adam's epsilon is 1e-4 here: with the default 1e-8, Adam turns gradients that are float
# rounding noise (parameters with no effect in exact arithmetic, e.g. a bias right before a
# GroupNorm whose groups hold one channel, docs/model.md) into full-size ±lr steps whose signs differ
# between any two summation orders. The config has dropout 0.1, so the per-global-sample dropout
# masks are exercised too. Skipped (exit 0 with a note) when
# fsdiff was built without MPI or mpirun is missing.
set -u
pass=0; fail=0
check() { if eval "$2"; then echo "ok    $1"; pass=$((pass+1)); else echo "FAIL  $1"; fail=$((fail+1)); fi; }
B="$FSD_BIN"; D="${FSDIFF_DATA:-../shared/data}"; PY="${FSD_PYTHON:-/usr/bin/python3}"
if ! "$B" --version | grep -q "MPI: yes" || ! command -v mpirun >/dev/null; then
  echo "skip  fsdiff built without MPI or no mpirun: data-parallel test not run"
  echo "0 passed, 0 failed"; exit 0
fi
T=$(mktemp -d /tmp/fsd_cli_mpi_XXXXXX); trap '[[ -n "${KEEP:-}" ]] || rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=self,vader OMPI_MCA_rmaps_base_oversubscribe=1
mkdir -p "$T/data/med/train/mri" "$T/data/med/train/other"
for f in $(ls "$D/med/train/mri" | head -4); do
  ln -s "$D/med/train/mri/$f" "$T/data/med/train/mri/$f"; ln -s "$D/med/train/other/$f" "$T/data/med/train/other/$f"
done
echo '{"preset":"tiny","dropout":0.1,"context_tokens":10}' > "$T/net.json"
A=(--data "$T/data" --teacher "$T/teacher" --config "$T/net.json" --crops 32 --scales 2,4 --batch 4 --steps 3
   --warmup 1 --adam-eps 1e-4 --ckpt-every 3 --log-every 1 --val-every 0 --seed 5 --threads 1 --quiet)
"$B" train "${A[@]}" --out "$T/one" 2>"$T/one.err"; rc1=$?
timeout 300 mpirun -np 2 "$B" train "${A[@]}" --out "$T/two" 2>"$T/two.err"; rc2=$?
check "1 process and 2 MPI ranks: exit 0, 0 ($(tail -1 "$T/two.err"))" '[[ $rc1 -eq 0 && $rc2 -eq 0 ]]'
r=$("$PY" - "$T/one" "$T/two" "$FSD_SOURCE_DIR/tests/ref" <<'PY'
import sys, numpy as np
sys.path.insert(0, sys.argv[3])
from common import load_safetensors
def load(d):
    t = load_safetensors(d + "/checkpoint.safetensors")
    return t[0] if isinstance(t, tuple) else t
a, b = load(sys.argv[1]), load(sys.argv[2])
worst = 0.0
for k in a:
    if k.startswith("train.adam_v"):  # squared gradients: compare via the weights they produce
        continue
    x, y = np.asarray(a[k], np.float64), np.asarray(b[k], np.float64)
    worst = max(worst, np.abs(x - y).max() / max(np.abs(x).max(), 0.01))
la = [float(l.split(",")[1]) for l in open(sys.argv[1] + "/train.csv").read().split("\n")[1:] if l]
lb = [float(l.split(",")[1]) for l in open(sys.argv[2] + "/train.csv").read().split("\n")[1:] if l]
dl = max(abs(p - q) / abs(p) for p, q in zip(la, lb)) if len(la) == len(lb) == 3 else 1.0
print(f"{worst:.2e} {dl:.2e} {len(a)}")
PY
)
read -r wr lr nt <<<"$r"
check "weights, EMA and Adam m within 1e-5 after 3 steps (worst rel $wr over $nt tensors)" 'awk -v w="$wr" "BEGIN{exit !(w <= 1e-5)}"'
check "the 3 logged losses within 1e-5 (worst rel $lr)" 'awk -v w="$lr" "BEGIN{exit !(w <= 1e-5)}"'
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
