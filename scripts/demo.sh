#!/usr/bin/env bash
# The main job, one command on a fresh Debian machine: installs what is missing, builds fsdiff
# (Release), and runs it on real pairs from ${FSDIFF_DATA:-../shared/data}.
#
# Until the FS-Diff diffusion model exists, the job is `fsdiff eval` at x4 on a handful of ivf/val
# and med/val pairs with the classical "SR then fuse" baselines (bicubic upsampling, then average /
# laplacian / gff / gradient fusion) and the gff fusion of the HR sources as the ceiling. Reports go
# to demo-out/ (git-ignored); re-running replaces them.
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
METHODS="average,laplacian,gff,gradient,hr:gff"
OUT=demo-out
mkdir -p "$OUT"
cat <<EOF

== fsdiff demo: joint fusion + x4 super-resolution on real pairs
NOTE: the FS-Diff diffusion model does not exist yet (later issue). This demo evaluates the classical
      "SR then fuse" baselines instead: each low-resolution input is bicubic-upsampled to the HR size
      and fused with average / laplacian / gff / gradient; hr:gff fuses the HR sources (the ceiling).
      Once the model exists it joins these as the method model:PATH.
data: $DATA ($PAIRS pairs of ivf/val and of med/val, spread over each set's sources)

EOF
for set in ivf med; do
  every=4; [[ $set == med ]] && every=11 # ivf: MSRS, RoadScene, TNO; med: MRI-CT, -PET, -SPECT
  echo "== $set/val, x4"
  "$B" eval --data "$DATA/$set/val" --scale 4 --every $every --limit "$PAIRS" --methods "$METHODS" \
    --out "$OUT/$set-val-x4" --force
  echo
done
echo "reports:"
for set in ivf med; do echo "  $(pwd)/$OUT/$set-val-x4/report.html   (summary.md, results.csv beside it)"; done
