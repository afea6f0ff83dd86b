#!/usr/bin/env bash
# fsdiff fuse end to end with a tiny random model (written by `test_fuse --make-model`): outputs and
# their PNG text chunks, the size rule, determinism, --save-steps, --json, the default-model lookup,
# context files, batch mode, and one-line errors that leave no output file.
# Inputs are MRI/PET/CT pairs from $FSDIFF_DATA shrunk with `fsdiff degrade` (16x16 and 8x8), so
# every run is a 32x32 output with 2-3 steps of the tiny net.
set -u
pass=0; fail=0
check() { if eval "$2"; then echo "ok    $1"; pass=$((pass+1)); else echo "FAIL  $1"; fail=$((fail+1)); fi; }
B="$FSD_BIN"; D="$FSDIFF_DATA"; PY="${FSD_PYTHON:-/usr/bin/python3}"
MK="$(dirname "$B")/tests/test_fuse"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
unset FSDIFF_MODEL
# On a machine shared with other OpenMP jobs, spinning workers make each of the net's many small
# parallel regions wait for a descheduled thread: measured 4.8 s per run instead of 0.07 s with
# 2 threads at load 5.5. Passive waiting keeps this test fast there; results are the same.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
# Across thread counts the bytes are identical only where the BLAS is split-invariant (fsdiff --version
# says); otherwise (OpenBLAS's AVX2 kernels) images from different --threads must agree to 1 grey level.
if "$B" --version | grep -q "independent of the thread count: yes"; then invariant=1; else invariant=0; fi
# same_or_close A B...: identical files, or (not invariant) every pixel within 1 grey level of A's
same_or_close() {
  if [[ $invariant -eq 1 ]]; then [[ $(md5sum "$@" | cut -d" " -f1 | sort -u | wc -l) -eq 1 ]]; return; fi
  "$PY" -c '
import sys
from PIL import Image, ImageChops
ims = [Image.open(f) for f in sys.argv[1:]]
def worst(a, b):
    e = ImageChops.difference(a, b).getextrema()
    return max(hi for _, hi in e) if isinstance(e[0], tuple) else e[1]
sys.exit(0 if all(i.size == ims[0].size and i.mode == ims[0].mode and worst(i, ims[0]) <= 1 for i in ims) else 1)
' "$@"
}

"$MK" --make-model "$T/tiny.safetensors" && "$MK" --make-model "$T/noclar.safetensors" --no-clarity; rc=$?
check "tiny models written by test_fuse --make-model" '[[ $rc -eq 0 && -s "$T/tiny.safetensors" && -s "$T/noclar.safetensors" ]]'
M="$T/tiny.safetensors"

# inputs: MRI x16 (16x16, grey), PET x32 (8x8, RGB), CT x16 (16x16, grey)
"$B" degrade --quiet --scale 16 "$D/med/val/mri/pet_25024.png" -o "$T/mri.png"
"$B" degrade --quiet --scale 32 "$D/med/val/other/pet_25024.png" -o "$T/pet.png"
"$B" degrade --quiet --scale 16 "$D/med/val/other/ct_2005.png" -o "$T/ct.png"
"$B" degrade --quiet --scale 16 "$D/med/val/mri/ct_2005.png" -o "$T/mri_ct.png"

out=$("$B" --help); check "fsdiff --help lists fuse" '[[ "$out" == *fuse* ]]'
out=$("$B" fuse --help); rc=$?
check "fuse --help: size rule, samplers, tiling, batch" '[[ $rc -eq 0 && "$out" == *"larger input"* && "$out" == *dpmpp2m* && "$out" == *--tile* && "$out" == *--ir-dir* ]]'

# ---- one pair
err=$("$B" fuse --model "$M" --ir "$T/mri.png" --vi "$T/pet.png" --scale 2 --steps 3 --seed 5 -o "$T/a.png" 2>&1 >/dev/null); rc=$?
check "MRI 16x16 + PET 8x8 at x2 runs" '[[ $rc -eq 0 && -s "$T/a.png" ]]'
check "prints model, sampler, steps and seed" '[[ "$err" == *tiny.safetensors* && "$err" == *"sampler ddim"* && "$err" == *"3 steps"* && "$err" == *"seed 5"* ]]'
res=$("$PY" - "$T/a.png" <<'EOF'
import sys
from PIL import Image
im = Image.open(sys.argv[1]); t = im.text
need = {"fsdiff.sampler": "ddim", "fsdiff.steps": "3", "fsdiff.seed": "5", "fsdiff.scale": "2",
        "fsdiff.context": "clarity", "fsdiff.version": None, "fsdiff.model": None, "Software": None}
bad = [k for k, v in need.items() if k not in t or (v is not None and t[k] != v)]
print("OK" if im.size == (32, 32) and im.mode == "RGB" and not bad and t["fsdiff.model"].endswith("tiny.safetensors")
      else f"{im.size} {im.mode} missing/wrong {bad} {t}")
EOF
)
check "32x32 RGB with tEXt model/sampler/steps/seed/scale/context/version ($res)" '[[ "$res" == OK ]]'
err=$("$B" fuse --quiet --model "$M" --a "$T/mri.png" --b "$T/pet.png" --scale 2 --steps 3 --seed 5 --threads 1 -o "$T/a1.png" 2>&1); rc=$?
check "--a/--b aliases, --quiet prints nothing" '[[ $rc -eq 0 && -z "$err" ]]'
check "same seed, 1 thread vs default: identical files (or within 1 grey level: BLAS split-invariant $invariant)" 'same_or_close "$T/a.png" "$T/a1.png"'
"$B" fuse --quiet --model "$M" --ir "$T/mri.png" --vi "$T/pet.png" --scale 2 --steps 3 --seed 6 -o "$T/a2.png"
check "another seed: a different image" '[[ -s "$T/a.png" && -s "$T/a2.png" ]] && ! cmp -s "$T/a.png" "$T/a2.png"'
# determinism with fresh noise at every step (ddpm) and tiling: same seed -> the same bytes across runs
# and across --threads 1, 2 and 3
for th in 1 2 3 2; do
  "$B" fuse --quiet --model "$M" --ir "$T/mri.png" --vi "$T/pet.png" --scale 2 --sampler ddpm --steps 3 --tile 16 \
    --overlap 4 --seed 9 --threads $th -o "$T/d$th.png" && [[ -e "$T/d$th.png" ]] && cp "$T/d$th.png" "$T/d${th}_$RANDOM.png"
done
check "ddpm + 3x3 tiles, seed 9: bit-identical across runs; across --threads 1/2/3 too (or within 1 grey level: BLAS split-invariant $invariant)" \
  '[[ $(ls "$T"/d[123]_*.png | wc -l) -eq 4 && $(md5sum "$T"/d2_*.png | cut -d" " -f1 | sort -u | wc -l) -eq 1 ]] && same_or_close "$T"/d[123]_*.png'
"$B" fuse --quiet --model "$M" --ir "$T/mri_ct.png" --vi "$T/ct.png" --scale 2 --steps 2 -o "$T/g.png"
res=$("$PY" -c "from PIL import Image; im = Image.open('$T/g.png'); print(im.mode, im.size)")
check "grey + grey gives a grey output ($res)" '[[ "$res" == "L (32, 32)" ]]'

# sampler options, tiling, --save-steps, --json
js=$("$B" fuse --quiet --model "$M" --ir "$T/mri.png" --vi "$T/pet.png" --scale 2 --sampler dpmpp2m --steps 2 \
      --tile 16 --overlap 4 --save-steps "$T/steps.png" --json -o "$T/t.png"); rc=$?
res=$(echo "$js" | "$PY" -c "
import json, sys
j = json.load(sys.stdin); i = j['info']
print('OK' if i['sampler'] == 'dpmpp2m' and i['steps'] == 2 and i['tiling']['tiles'] == 9 and i['tiling']['overlap'] == 4
      and i['output'] == {'w': 32, 'h': 32, 'c': 3} and i['inputs'][1]['factor'] == 4 and len(i['clarity']) == 2
      and i['memory']['estimate'] > 0 and j['output'].endswith('t.png') else j)" 2>&1)
check "--json parses: dpmpp2m, 2 steps, 3x3 tiles, sizes, clarity roles, memory ($res)" '[[ $rc -eq 0 && "$res" == OK ]]'
res=$("$PY" -c "from PIL import Image; im = Image.open('$T/steps.png'); print(im.size)")
check "--save-steps grid: cond A, cond B, 2 states in one row ($res)" '[[ "$res" == "(140, 32)" ]]'

# default model: $FSDIFF_MODEL, else a clear error saying where it looked
FSDIFF_MODEL="$M" "$B" fuse --quiet --ir "$T/mri.png" --vi "$T/pet.png" --scale 2 --steps 3 --seed 5 -o "$T/env.png"; rc=$?
check "\$FSDIFF_MODEL is the default model" '[[ $rc -eq 0 ]] && cmp -s "$T/a.png" "$T/env.png"'
err=$(FSDIFF_MODEL="$T/nope.safetensors" "$B" fuse --ir "$T/mri.png" --vi "$T/pet.png" --scale 2 -o "$T/x.png" 2>&1); rc=$?
check "FSDIFF_MODEL naming a missing file: one line" '[[ $rc -eq 1 && $(echo "$err" | wc -l) -eq 1 && "$err" == *nope.safetensors* ]]'
if [[ ! -e "$(dirname "$B")/../models/fsdiff-default.safetensors" && ! -e "$(dirname "$B")/../share/fsdiff/fsdiff-default.safetensors" ]]; then
  err=$("$B" fuse --ir "$T/mri.png" --vi "$T/pet.png" --scale 2 -o "$T/x.png" 2>&1); rc=$?
  check "no model anywhere: one line naming the places and --model" '[[ $rc -eq 1 && $(echo "$err" | wc -l) -eq 1 && "$err" == *FSDIFF_MODEL* && "$err" == *models/fsdiff-default.safetensors* && "$err" == *--model* ]]'
fi

# context files
err=$("$B" fuse --model "$T/noclar.safetensors" --ir "$T/mri.png" --vi "$T/pet.png" --scale 2 --steps 2 -o "$T/x.png" 2>&1); rc=$?
check "model without clarity encoder and no --context-file: one line" '[[ $rc -eq 1 && $(echo "$err" | wc -l) -eq 1 && "$err" == *context-file* ]]'
"$PY" - "$T" <<'EOF'
import json, struct, sys
import numpy as np
def save(path, arr):
    arr = np.ascontiguousarray(arr, dtype="<f4")
    hdr = json.dumps({"context": {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [0, arr.nbytes]}}).encode()
    hdr += b" " * (-len(hdr) % 8)
    open(path, "wb").write(struct.pack("<Q", len(hdr)) + hdr + arr.tobytes())
rng = np.random.default_rng(0)
save(sys.argv[1] + "/ctx.safetensors", rng.standard_normal((10, 64)))
save(sys.argv[1] + "/ctx_bad.safetensors", rng.standard_normal((3, 64)))
EOF
"$B" fuse --quiet --model "$T/noclar.safetensors" --context-file "$T/ctx.safetensors" --ir "$T/mri.png" --vi "$T/pet.png" --scale 2 --steps 2 -o "$T/c.png"; rc=$?
check "--context-file (10, 64) with a model without encoder" '[[ $rc -eq 0 && -s "$T/c.png" ]]'
err=$("$B" fuse --model "$M" --context-file "$T/ctx_bad.safetensors" --ir "$T/mri.png" --vi "$T/pet.png" --scale 2 -o "$T/x.png" 2>&1); rc=$?
check "context file of the wrong shape: one line" '[[ $rc -eq 1 && $(echo "$err" | wc -l) -eq 1 && "$err" == *ctx_bad* ]]'

# ---- errors: one line, exit 1, no output file
rm -f "$T/x.png"
err_case() { # name, expected substring, args...
  local name="$1" want="$2"; shift 2
  err=$("$B" fuse "$@" 2>&1); rc=$?
  check "$name: one line ($err)" '[[ $rc -eq 1 && $(echo "$err" | wc -l) -eq 1 && "$err" == "fsdiff: error: "*"$want"* && ! -e "$T/x.png" ]]'
}
"$PY" -c "from PIL import Image; Image.open('$T/pet.png').resize((8, 4)).save('$T/rect.png')"
err_case "size rule: 8x4 gets x4 wide but x8 high" "larger input" --model "$M" --ir "$T/mri.png" --vi "$T/rect.png" --scale 2 -o "$T/x.png"
"$B" degrade --quiet --scale 20 "$D/med/val/other/pet_25024.png" -o "$T/pet13.png"
err_case "size rule: 13x13 is no integer factor of 32" "13x13" --model "$M" --ir "$T/mri.png" --vi "$T/pet13.png" --scale 2 -o "$T/x.png"
err_case "missing input" "missing.png" --model "$M" --ir "$T/missing.png" --vi "$T/pet.png" --scale 2 -o "$T/x.png"
printf 'not a model' > "$T/bad.safetensors"
err_case "corrupt model" "bad.safetensors" --model "$T/bad.safetensors" --ir "$T/mri.png" --vi "$T/pet.png" --scale 2 -o "$T/x.png"
err_case "missing model" "none.safetensors" --model "$T/none.safetensors" --ir "$T/mri.png" --vi "$T/pet.png" --scale 2 -o "$T/x.png"
err_case "scale 17" "--scale" --model "$M" --ir "$T/mri.png" --vi "$T/pet.png" --scale 17 -o "$T/x.png"
err_case "no --scale" "--scale" --model "$M" --ir "$T/mri.png" --vi "$T/pet.png" -o "$T/x.png"
err_case "bad sampler" "ddpm" --model "$M" --ir "$T/mri.png" --vi "$T/pet.png" --scale 2 --sampler euler -o "$T/x.png"
err_case "unknown option" "--colour" --model "$M" --ir "$T/mri.png" --vi "$T/pet.png" --scale 2 --colour -o "$T/x.png"
err_case "output not .png" ".jpg" --model "$M" --ir "$T/mri.png" --vi "$T/pet.png" --scale 2 -o "$T/x.jpg"
err_case "tile not a multiple of the U-Net factor" "multiple of 2" --model "$M" --ir "$T/mri.png" --vi "$T/pet.png" --scale 2 --tile 33 -o "$T/x.png"
err_case "steps > T" "T = 50" --model "$M" --ir "$T/mri.png" --vi "$T/pet.png" --scale 2 --steps 60 -o "$T/x.png"
err_case "--max-memory below the estimate suggests --tile" "--tile" --model "$M" --ir "$T/mri.png" --vi "$T/pet.png" --scale 2 --max-memory 2M -o "$T/x.png"
err_case "--save-steps with an error" "larger input" --model "$M" --ir "$T/mri.png" --vi "$T/pet13.png" --scale 2 --save-steps "$T/xs.png" -o "$T/x.png"
check "no --save-steps grid after an error" '[[ ! -e "$T/xs.png" ]]'

# ---- batch: pairs by stem, unmatched reported, continue on error, final count, non-zero exit
mkdir -p "$T/bi" "$T/bv"
cp "$T/mri.png" "$T/bi/p1.png"; cp "$T/pet.png" "$T/bv/p1.png"
cp "$T/mri_ct.png" "$T/bi/p2.png"; cp "$T/ct.png" "$T/bv/p2.png"
cp "$T/mri.png" "$T/bi/p3.png"; cp "$T/pet13.png" "$T/bv/p3.png"       # violates the size rule
cp "$T/mri.png" "$T/bi/lonely.png"                                     # no partner
js=$("$B" fuse --model "$M" --ir-dir "$T/bi" --vi-dir "$T/bv" --out-dir "$T/bo" --scale 2 --steps 2 --json 2>"$T/err.txt"); rc=$?
err=$(cat "$T/err.txt")
check "batch: exit 1 when a pair fails" '[[ $rc -eq 1 ]]'
check "batch: good pairs written, failed pair not" '[[ -s "$T/bo/p1.png" && -s "$T/bo/p2.png" && ! -e "$T/bo/p3.png" && ! -e "$T/bo/lonely.png" ]]'
check "batch: unmatched file reported" '[[ "$err" == *lonely.png*"no partner"* ]]'
check "batch: the failing pair named, final count" '[[ "$err" == *"error: p3:"*13x13* && "$err" == *"1 of 3 pairs failed"* ]]'
res=$(echo "$js" | "$PY" -c "
import json, sys
j = json.load(sys.stdin)
print('OK' if j['fused'] == 2 and j['failed'] == 1 and j['unmatched'] == 1 and [p['ok'] for p in j['pairs']] == [True, True, False] else j)" 2>&1)
check "batch --json parses ($res)" '[[ "$res" == OK ]]'
res=$("$PY" -c "from PIL import Image; print(Image.open('$T/bo/p1.png').mode, Image.open('$T/bo/p2.png').mode)")
check "batch: RGB for MRI+PET, grey for MRI+CT ($res)" '[[ "$res" == "RGB L" ]]'
rm "$T/bv/p3.png" "$T/bi/p3.png" "$T/bi/lonely.png"
"$B" fuse --quiet --model "$M" --a-dir "$T/bi" --b-dir "$T/bv" --out-dir "$T/bo2" --scale 2 --steps 2; rc=$?
check "batch of good pairs: exit 0, --a-dir/--b-dir aliases" '[[ $rc -eq 0 && -s "$T/bo2/p1.png" && -s "$T/bo2/p2.png" ]]'
err_case "batch needs all three folders" "--out-dir" --model "$M" --ir-dir "$T/bi" --vi-dir "$T/bv" --scale 2
err_case "batch with --save-steps" "one pair" --model "$M" --ir-dir "$T/bi" --vi-dir "$T/bv" --out-dir "$T/bo3" --scale 2 --save-steps "$T/s.png"

# ---- eval: model:PATH on 64x64 HR crops at x4; its output is what `fsdiff fuse` makes of the same LR pair
mkdir -p "$T/ev/mri" "$T/ev/other"
"$PY" - "$D/med/val" "$T/ev" <<'EOF'
import sys
from PIL import Image
src, dst = sys.argv[1:]
for name in ["ct_2005", "pet_25024"]:
    for mod in ["mri", "other"]:
        Image.open(f"{src}/{mod}/{name}.png").crop((96, 96, 160, 160)).save(f"{dst}/{mod}/{name}.png")
EOF
"$B" eval --quiet --data "$T/ev" --scale 4 --methods "gff,model:$M?steps=2&seed=3" --out "$T/evout" --sheets 1 --json > "$T/ev.json"; rc=$?
res=$("$PY" - "$T" <<'EOF'
import csv, json, sys
t = sys.argv[1]
rows = list(csv.DictReader(open(f"{t}/evout/results.csv")))
j = json.load(open(f"{t}/ev.json"))
models = [r for r in rows if r["method"].startswith("model:")]
print("OK" if len(rows) == 4 and len(models) == 2 and all(float(r["VIF"]) > 0 for r in models) else rows)
EOF
)
check "eval --methods gff,model:PATH?steps=2&seed=3: results.csv rows, --json parses ($res)" '[[ $rc -eq 0 && "$res" == OK ]]'
"$B" degrade --quiet --scale 4 "$T/ev/mri/pet_25024.png" -o "$T/ev_a.png"
"$B" degrade --quiet --scale 4 "$T/ev/other/pet_25024.png" -o "$T/ev_b.png"
"$B" fuse --quiet --model "$M" --a "$T/ev_a.png" --b "$T/ev_b.png" --scale 4 --steps 2 --seed 3 -o "$T/ev_f.png"
"$B" metrics --a "$T/ev/mri/pet_25024.png" --b "$T/ev/other/pet_25024.png" --fused "$T/ev_f.png" --json > "$T/ev_m.json"
res=$("$PY" - "$T" <<'EOF'
import csv, json, sys
t = sys.argv[1]
row = [r for r in csv.DictReader(open(f"{t}/evout/results.csv")) if r["image"] == "pet_25024" and r["method"].startswith("model:")][0]
m = json.load(open(f"{t}/ev_m.json"))
m = m.get("metrics", m)
bad = [k for k in ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "CC", "PSNR"]
       if abs(float(row[k]) - float(m[k])) > 1e-6 * max(1.0, abs(float(m[k])))]
print("OK" if not bad else f"{bad}: {row} vs {m}")
EOF
)
check "eval's model output = fsdiff fuse on the same LR pair (all 11 metrics agree: $res)" '[[ "$res" == OK ]]'

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
