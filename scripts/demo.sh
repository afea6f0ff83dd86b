#!/usr/bin/env bash
# The main job, one command on a fresh Debian machine: installs what is missing, builds fsdiff
# (Release), and runs it on real pairs from ${FSDIFF_DATA:-../shared/data}.
#
# The job: `fsdiff fuse` with the shipped model (models/fsdiff-default.safetensors) on two real
# low-resolution pairs (written to demo-out/fused/), then `fsdiff eval` at x4 on a handful of ivf/val
# and med/val pairs: the model against the classical "SR then fuse" baselines (bicubic upsampling, then
# average / laplacian / gff / gradient fusion) and the auto fusion of the HR sources (the teacher) as the ceiling.
# Reports go to demo-out/ (git-ignored); re-running replaces them. Without the model file the
# baselines alone are evaluated, and the script says so.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh

DATA="${FSDIFF_DATA:-$(cd .. && pwd)/shared/data}"
for set in ivf med; do
  if [[ ! -d "$DATA/$set/val" ]]; then
    echo "demo: no data at $DATA/$set/val (set FSDIFF_DATA to the data folder)" >&2
    exit 1
  fi
done
export FSDIFF_DATA="$DATA" # the test configuration reads it too

echo "== building fsdiff (Release)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release > /dev/null
cmake --build build -j"$(nproc)" --target fsdiff > /dev/null
B=build/fsdiff

PAIRS="${DEMO_PAIRS:-6}" # spread over each set: every 4th ivf pair, every 11th med pair
MODEL=models/fsdiff-default.safetensors
METHODS="average,laplacian,gff,gradient,hr:auto"
OUT=demo-out
mkdir -p "$OUT/fused" "$OUT/lr"
echo
echo "== fsdiff demo: joint fusion + x4 super-resolution on real pairs"
echo "data: $DATA ($PAIRS pairs of ivf/val and of med/val, spread over each set's sources)"
if [[ -f "$MODEL" ]]; then
  METHODS="model:$MODEL,$METHODS"
  echo "model: $MODEL"
  # two real pairs made low-resolution (x4 down, Pillow bicubic), then fused + super-resolved x4
  for pair in "ivf ir vi $(ls "$DATA/ivf/val/ir" | head -1)" "med mri other $(ls "$DATA/med/val/mri" | sed -n 12p)"; do
    read -r set a b name <<<"$pair"
    "$B" degrade --scale 4 "$DATA/$set/val/$a/$name" -o "$OUT/lr/$set-$a-$name" --quiet
    "$B" degrade --scale 4 "$DATA/$set/val/$b/$name" -o "$OUT/lr/$set-$b-$name" --quiet
    "$B" fuse --a "$OUT/lr/$set-$a-$name" --b "$OUT/lr/$set-$b-$name" --scale 4 --model "$MODEL" \
      -o "$OUT/fused/$set-$name"
  done
else
  echo "NOTE: $MODEL is missing: evaluating the classical \"SR then fuse\" baselines only"
fi
echo
for set in ivf med; do
  every=4; [[ $set == med ]] && every=11 # ivf: MSRS, RoadScene, TNO; med: MRI-CT, -PET, -SPECT
  echo "== $set/val, x4"
  "$B" eval --data "$DATA/$set/val" --scale 4 --every $every --limit "$PAIRS" --methods "$METHODS" \
    --out "$OUT/$set-val-x4" --force
  echo
done
echo "reports:"
for set in ivf med; do echo "  $(pwd)/$OUT/$set-val-x4/report.html   (summary.md, results.csv beside it)"; done
