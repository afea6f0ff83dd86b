#!/usr/bin/env bash
# fsdiff train on a tiny config and a mini data root (symlinks to 4 + 2 real medical pairs):
# outputs (checkpoint, EMA model usable as a model file, best model, train.csv, val.csv, loss
# curve), the loss going down, bit-exact --resume (a run stopped after 5 of 12 steps and resumed
# ends with byte-identical checkpoint and model files), a checkpoint left intact by a refused run,
# and refusals (one error line, non-zero exit).
set -u
pass=0; fail=0
check() { if eval "$2"; then echo "ok    $1"; pass=$((pass+1)); else echo "FAIL  $1"; fail=$((fail+1)); fi; }
B="$FSD_BIN"; D="${FSDIFF_DATA:-../shared/data}"
T=$(mktemp -d /tmp/fsd_cli_train_XXXXXX); trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=2

# mini data root: med/train 4 pairs, med/val 2 pairs (links, nothing copied)
source "$(dirname "$0")/mini_data.bash"
mini_data "$T/data" 4 2

out=$("$B" train --help); rc=$?
check "--help: exit 0, documents resume and the schedule" '[[ $rc -eq 0 && "$out" == *--resume* && "$out" == *--ckpt-every* && "$out" == *--val-every* ]]'

A=(--data "$T/data" --teacher "$T/teacher" --preset tiny --crops 32 --scales 2,4 --steps 12 --warmup 4
   --ckpt-every 4 --log-every 2 --val-every 6 --val-pairs 2 --val-steps 3 --val-crop 64 --seed 3 --quiet)
"$B" train "${A[@]}" --out "$T/a" 2>"$T/a.err"; rc=$?
check "12 steps: exit 0" '[[ $rc -eq 0 ]]'
for f in checkpoint.safetensors model.safetensors best.safetensors train.csv val.csv loss-curve.png run.json; do
  check "run dir has $f" '[[ -s "$T/a/$f" ]]'
done
check "no temp files left" '[[ -z "$(ls "$T/a" | grep -i tmp)" ]]'
check "teacher targets made (6 pairs)" '[[ $(ls "$T/teacher/med/train" | wc -l) -eq 4 && $(ls "$T/teacher/med/val" | wc -l) -eq 2 ]]'
rows=$(tail -n +2 "$T/a/train.csv" | wc -l)
check "train.csv: 6 rows (every 2 steps), header first" '[[ $rows -eq 6 && "$(head -1 "$T/a/train.csv")" == step,loss,* ]]'
first=$(sed -n 2p "$T/a/train.csv" | cut -d, -f2); last=$(tail -1 "$T/a/train.csv" | cut -d, -f2)
check "loss goes down ($first -> $last)" 'awk -v a="$first" -v b="$last" "BEGIN{exit !(b < a)}"'
check "val.csv: rows at steps 6 and 12" '[[ "$(cut -d, -f1 "$T/a/val.csv" | tr "\n" " ")" == "step 6 12 " ]]'
out=$("$B" info "$T/a/model.safetensors" 2>&1); rc=$?
check "model.safetensors is a readable model file (info)" '[[ $rc -eq 0 && "$out" == *clarity* ]]'

# export: fp16 model file with the recommended sampler in its metadata
"$B" export --model "$T/a/model.safetensors" -o "$T/a16.safetensors" --sampler dpmpp2m --steps 7 --quiet; rc=$?
out=$("$B" info "$T/a16.safetensors" 2>&1)
s32=$(stat -c %s "$T/a/model.safetensors"); s16=$(stat -c %s "$T/a16.safetensors")
check "export f16: exit 0, about half the size ($s16 of $s32 bytes), sampler/steps stored" '[[ $rc -eq 0 && $((s16 * 10)) -lt $((s32 * 6)) && "$out" == *'"'"'"sampler":"dpmpp2m","steps":7'"'"'* ]]'
err=$("$B" export --model "$T/a/model.safetensors" -o "$T/bad.safetensors" --dtype f8 2>&1); rc=$?
check "export: bad dtype refused, nothing written" '[[ $rc -ne 0 && "$err" == *dtype* && ! -e "$T/bad.safetensors" ]]'
err=$("$B" export --model "$T/a/model.safetensors" -o "$T/bad.safetensors" --steps 5000 2>&1); rc=$?
check "export: steps > T refused" '[[ $rc -ne 0 && "$err" == *steps* && ! -e "$T/bad.safetensors" ]]'

# bit-exact resume: 5 steps, stop, resume to 12
"$B" train "${A[@]}" --out "$T/b" --max-steps-now 5 2>/dev/null; rc1=$?
"$B" train --resume --out "$T/b" --quiet 2>/dev/null; rc2=$?
check "stop after 5 + --resume: exit 0, 0" '[[ $rc1 -eq 0 && $rc2 -eq 0 ]]'
check "resumed checkpoint byte-identical to the uninterrupted run" 'cmp -s "$T/a/checkpoint.safetensors" "$T/b/checkpoint.safetensors"'
check "resumed EMA model byte-identical" 'cmp -s "$T/a/model.safetensors" "$T/b/model.safetensors"'
check "resumed train.csv has the same loss column" '[[ "$(cut -d, -f1-6 "$T/a/train.csv" | grep -v "^5,")" == "$(cut -d, -f1-6 "$T/b/train.csv" | grep -v "^5,\|^6,")" || "$(cut -d, -f1-2 "$T/a/train.csv" | tail -3)" == "$(cut -d, -f1-2 "$T/b/train.csv" | tail -3)" ]]'

# refusals
sum=$(md5sum < "$T/a/checkpoint.safetensors")
err=$("$B" train "${A[@]}" --out "$T/a" 2>&1); rc=$?
check "existing checkpoint without --resume: refused, file intact" '[[ $rc -ne 0 && "$err" == *--resume* && "$(md5sum < "$T/a/checkpoint.safetensors")" == "$sum" ]]'
err=$("$B" train --resume --out "$T/a" --lr 0.1 --quiet 2>&1); rc=$?
check "--resume with a different optimiser setting: refused ($err)" '[[ $rc -ne 0 && "$err" == *differ* && $(echo "$err" | wc -l) -eq 1 ]]'
err=$("$B" train --resume --out "$T/nothing" 2>&1); rc=$?
check "--resume without a checkpoint: one error line" '[[ $rc -ne 0 && $(echo "$err" | wc -l) -eq 1 && "$err" == *"does not exist"* ]]'
err=$("$B" train "${A[@]}" --out "$T/c" --frobnicate 2>&1); rc=$?
check "unknown option: refused" '[[ $rc -ne 0 && "$err" == *frobnicate* && ! -e "$T/c/checkpoint.safetensors" ]]'
err=$("$B" train "${A[@]}" --out "$T/c" --crops 36 2>&1); rc=$?
check "crop not a multiple of 8: refused with a reason" '[[ $rc -ne 0 && $(echo "$err" | wc -l) -eq 1 && ! -e "$T/c/checkpoint.safetensors" ]]'
err=$("$B" train "${A[@]}" --out "$T/c" --data "$T/nowhere" 2>&1); rc=$?
check "missing data root: refused" '[[ $rc -ne 0 && "$err" == *nowhere* ]]'
err=$("$B" train "${A[@]}" --out "$T/c" --steps 0 2>&1); rc=$?
check "--steps 0: refused" '[[ $rc -ne 0 && "$err" == *steps* ]]'
err=$("$B" train "${A[@]}" --out "$T/d" --init "$T/a/train.csv" 2>&1); rc=$?
check "--init with a non-model file: refused" '[[ $rc -ne 0 && $(echo "$err" | wc -l) -eq 1 ]]'
"$B" train "${A[@]}" --out "$T/e" --init "$T/a/model.safetensors" --steps 2 --val-every 0 2>/dev/null; rc=$?
check "--init from a trained model: runs" '[[ $rc -eq 0 && -s "$T/e/model.safetensors" ]]'
# residual target with v-prediction: trains (with validation, which adds the base back), the model says so, fuse uses it
"$B" train "${A[@]}" --out "$T/r" --init "$T/a/model.safetensors" --target residual --residual-scale 3 --prediction v \
     --steps 3 --val-every 3 2>/dev/null; rc=$?
meta=$("$B" info "$T/r/model.safetensors" 2>&1)
check "--target residual --prediction v: runs, validates, stores target/method/scale/prediction" \
      '[[ $rc -eq 0 && $(tail -n +2 "$T/r/val.csv" | wc -l) -eq 1 && "$meta" == *residual_scale*3* && "$meta" == *residual_method*gff* && "$meta" == *'"'"'"prediction":"v"'"'"'* ]]'
# --teacher-method with --init from a residual model: the scale and prediction are inherited, the base method is the new one
"$B" train "${A[@]}" --teacher "$T/teacher-auto" --out "$T/s" --init "$T/r/model.safetensors" --teacher-method auto \
     --steps 2 --val-every 2 2>/dev/null; rc=$?
meta=$("$B" info "$T/s/model.safetensors" 2>&1)
check "--init residual + --teacher-method auto: auto teacher made, base auto, scale 3 and v kept" \
      '[[ $rc -eq 0 && $(head -c 40 "$T/teacher-auto/.fsdiff-teacher") == method=auto* && "$meta" == *'"'"'"residual_method":"auto"'"'"'* && "$meta" == *'"'"'"residual_scale":3'"'"'* && "$meta" == *'"'"'"prediction":"v"'"'"'* ]]'
# small inputs (32x32 -> 64x64): the tiny preset's attention is quadratic in the image size
ir=$(ls "$T/data/med/val/mri" | head -1)
"$B" degrade --scale 8 "$T/data/med/val/mri/$ir" -o "$T/r/a.png" --quiet && "$B" degrade --scale 8 "$T/data/med/val/other/$ir" -o "$T/r/b.png" --quiet
"$B" fuse --model "$T/r/model.safetensors" --ir "$T/r/a.png" --vi "$T/r/b.png" --scale 2 --steps 2 -o "$T/r/fused.png" \
     --quiet 2>/dev/null; rc=$?
check "fuse with the residual model" '[[ $rc -eq 0 && -s "$T/r/fused.png" ]]'
err=$("$B" fuse --model "$T/r/model.safetensors" --ir "$T/r/a.png" --vi "$T/r/b.png" --scale 2 --residual-shrink 70 -o "$T/r/f2.png" 2>&1); rc=$?
check "fuse --residual-shrink 70: refused" '[[ $rc -ne 0 && "$err" == *residual-shrink* && ! -e "$T/r/f2.png" ]]'
out=$("$B" fuse --model "$T/r/model.safetensors" --ir "$T/r/a.png" --vi "$T/r/b.png" --scale 2 --steps 2 --residual-shrink 2.5 --json --quiet -o "$T/r/f3.png" 2>&1); rc=$?
check "fuse --residual-shrink 2.5: used, reported in --json" '[[ $rc -eq 0 && -s "$T/r/f3.png" && "$out" == *'"'"'"residual_shrink":2.5'"'"'* ]]'
"$B" export --model "$T/r/model.safetensors" -o "$T/r/s.safetensors" --residual-shrink 3 --quiet; rc=$?
meta=$("$B" info "$T/r/s.safetensors" 2>&1)
check "export --residual-shrink stores it" '[[ $rc -eq 0 && "$meta" == *'"'"'"residual_shrink":3'"'"'* ]]'
err=$("$B" fuse --model "$T/a/model.safetensors" --ir "$T/r/a.png" --vi "$T/r/b.png" --scale 2 --residual-shrink 2 -o "$T/r/f4.png" 2>&1); rc=$?
check "fuse --residual-shrink with an image-target model: refused" '[[ $rc -ne 0 && $(echo "$err" | wc -l) -eq 1 && "$err" == *residual* && ! -e "$T/r/f4.png" ]]'
err=$("$B" export --model "$T/a/model.safetensors" -o "$T/r/s2.safetensors" --residual-shrink 3 2>&1); rc=$?
check "export --residual-shrink of an image-target model: refused" '[[ $rc -ne 0 && "$err" == *residual* && ! -e "$T/r/s2.safetensors" ]]'
"$B" train "${A[@]}" --out "$T/r2" --init "$T/r/model.safetensors" --steps 2 --val-every 0 2>/dev/null; rc=$?
meta=$("$B" info "$T/r2/model.safetensors" 2>&1)
check "--init from a residual v model keeps its target, scale and prediction" '[[ $rc -eq 0 && "$meta" == *'"'"'"residual_scale":3'"'"'* && "$meta" == *'"'"'"prediction":"v"'"'"'* ]]'
"$B" train "${A[@]}" --out "$T/r3" --init "$T/r/model.safetensors" --prediction eps --steps 1 --val-every 0 2>/dev/null; rc=$?
meta=$("$B" info "$T/r3/model.safetensors" 2>&1)
check "--init from a v model with --prediction eps: eps (no prediction key), residual kept" '[[ $rc -eq 0 && "$meta" != *prediction* && "$meta" == *residual_scale*3* ]]'
err=$("$B" train "${A[@]}" --out "$T/c" --prediction x0 2>&1); rc=$?
check "--prediction x0: refused" '[[ $rc -ne 0 && $(echo "$err" | wc -l) -eq 1 && "$err" == *prediction* ]]'
err=$("$B" train "${A[@]}" --out "$T/c" --target blend 2>&1); rc=$?
check "--target blend: refused" '[[ $rc -ne 0 && "$err" == *target* ]]'

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
