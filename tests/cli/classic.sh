#!/usr/bin/env bash
# fsdiff classic / teacher: outputs, colour handling, --scale, one-line errors, atomic writes, cache.
# Reads pairs from $FSDIFF_DATA; writes only to a temporary directory (removed at exit).
set -u
pass=0; fail=0
check() { if eval "$2"; then echo "ok    $1"; pass=$((pass+1)); else echo "FAIL  $1"; fail=$((fail+1)); fi; }
B="$FSD_BIN"; D="$FSDIFF_DATA"; PY="${FSD_PYTHON:-/usr/bin/python3}"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

MRI="$D/med/val/mri/pet_25024.png"; PET="$D/med/val/other/pet_25024.png"
TIR="$D/ivf/val/ir/tno_marne_11.png"; TVI="$D/ivf/val/vi/tno_marne_11.png"
RIR="$D/ivf/val/ir/roadscene_FLIR_00455.png"

out=$("$B" classic --help); rc=$?
check "classic --help lists the methods" '[[ $rc -eq 0 && "$out" == *average*laplacian*gff*gradient* ]]'
out=$("$B" --help); check "fsdiff --help lists classic and teacher" '[[ "$out" == *classic* && "$out" == *teacher* ]]'

# every method on a grey + RGB pair (MRI + PET) and a grey + grey pair (TNO)
for m in average laplacian gff gradient; do
  "$B" classic --quiet --method $m --a "$MRI" --b "$PET" -o "$T/pet_$m.png"; rc=$?
  check "classic $m MRI+PET runs" '[[ $rc -eq 0 && -s "$T/pet_$m.png" ]]'
  "$B" classic --quiet --method $m --a "$TIR" --b "$TVI" -o "$T/tno_$m.png"; rc=$?
  check "classic $m TNO grey pair runs" '[[ $rc -eq 0 && -s "$T/tno_$m.png" ]]'
done
# modes and sizes; chroma of PET kept (8-bit rounding only); average = (a + b) / 2 up to rounding
res=$("$PY" - "$MRI" "$PET" "$TIR" "$TVI" "$T" <<'EOF' 2>&1
import sys
import numpy as np
from PIL import Image
mri, pet, tir, tvi, t = sys.argv[1:]
def ycc(a):
    a = a.astype(np.float64)
    y = .299 * a[..., 0] + .587 * a[..., 1] + .114 * a[..., 2]
    return y, 128 + (a[..., 2] - y) * .564, 128 + (a[..., 0] - y) * .713
msgs = []
for m in ["average", "laplacian", "gff", "gradient"]:
    o = Image.open(f"{t}/pet_{m}.png")
    g = Image.open(f"{t}/tno_{m}.png")
    if o.mode != "RGB" or o.size != Image.open(pet).size: msgs.append(f"pet_{m}: {o.mode} {o.size}")
    if g.mode != "L" or g.size != Image.open(tir).size: msgs.append(f"tno_{m}: {g.mode} {g.size}")
    _, cb, cr = ycc(np.asarray(o))
    _, cb0, cr0 = ycc(np.asarray(Image.open(pet).convert("RGB")))
    # where the fused RGB is not clipped, chroma is the source's up to the 8-bit rounding of R, G, B
    inside = (np.asarray(o) > 0).all(-1) & (np.asarray(o) < 255).all(-1)
    e = max(np.abs(cb - cb0)[inside].max(), np.abs(cr - cr0)[inside].max())
    if e > 1.5: msgs.append(f"pet_{m}: chroma differs by {e:.2f}")
a = np.asarray(Image.open(tir), dtype=np.float64); b = np.asarray(Image.open(tvi).convert("L"), dtype=np.float64)
avg = np.asarray(Image.open(f"{t}/tno_average.png"), dtype=np.float64)
if np.abs(avg - (a + b) / 2).max() > 0.5: msgs.append("tno_average is not (a+b)/2")
print("; ".join(msgs) if msgs else "OK")
EOF
)
check "outputs: RGB for MRI+PET (chroma kept), L for TNO, same sizes, average exact ($res)" '[[ "$res" == OK ]]'

# errors: one line, exit 1
err=$("$B" classic --method average --a "$MRI" --b "$RIR" -o "$T/x.png" 2>&1); rc=$?
check "different sizes: one line naming both files" '[[ $rc -eq 1 && $(echo "$err" | wc -l) -eq 1 && "$err" == "fsdiff: error:"*pet_25024.png*256x256*roadscene_FLIR_00455.png* ]]'
check "no output after an error" '[[ ! -e "$T/x.png" ]]'
err=$("$B" classic --a "$T/missing.png" --b "$PET" -o "$T/x.png" 2>&1); rc=$?
check "unreadable file: one line naming it" '[[ $rc -eq 1 && $(echo "$err" | wc -l) -eq 1 && "$err" == *missing.png* ]]'
printf 'not a png' > "$T/bad.png"
err=$("$B" classic --a "$T/bad.png" --b "$PET" -o "$T/x.png" 2>&1); rc=$?
check "corrupt file: one line naming it" '[[ $rc -eq 1 && $(echo "$err" | wc -l) -eq 1 && "$err" == *bad.png* ]]'
err=$("$B" classic --method pca --a "$MRI" --b "$PET" -o "$T/x.png" 2>&1); rc=$?
check "unknown method lists the valid ones" '[[ $rc -eq 1 && "$err" == *"unknown fusion method '"'"'pca'"'"'"*"average, laplacian, gff, gradient"* ]]'
err=$("$B" classic --a "$MRI" --b "$PET" -o "$T/nodir/x.png" 2>&1); rc=$?
check "unwritable output: error, no temp file left" '[[ $rc -eq 1 && $(echo "$err" | wc -l) -eq 1 && -z "$(ls "$T" | grep tmp)" ]]'
err=$("$B" classic --a "$MRI" --b "$PET" --scale 0.5 -o "$T/x.png" 2>&1); rc=$?
check "--scale below 1 refused" '[[ $rc -eq 1 && "$err" == *"--scale"* ]]'
err=$("$B" classic --a "$MRI" --b "$PET" --bogus -o "$T/x.png" 2>&1); rc=$?
check "unknown option refused" '[[ $rc -eq 1 && "$err" == *"unknown option"* ]]'

# SR then fuse: 128x128 LR (PIL bicubic down) -> x2 -> 256x256; unequal LR sizes with per-input scales
"$PY" -c "
from PIL import Image
import sys
Image.open('$MRI').resize((128, 128), Image.BICUBIC).save('$T/lr_mri.png')
Image.open('$PET').convert('RGB').resize((128, 128), Image.BICUBIC).save('$T/lr_pet.png')
Image.open('$PET').convert('RGB').resize((64, 64), Image.BICUBIC).save('$T/lr4_pet.png')
"
"$B" classic --quiet --method gff --a "$T/lr_mri.png" --b "$T/lr_pet.png" --scale 2 -o "$T/sr.png"; rc=$?
sz=$("$PY" -c "from PIL import Image; im=Image.open('$T/sr.png'); print(im.size, im.mode)")
check "--scale 2: 128x128 LR pair -> 256x256 RGB ($sz)" '[[ $rc -eq 0 && "$sz" == "(256, 256) RGB" ]]'
err=$("$B" classic --a "$T/lr_mri.png" --b "$T/lr4_pet.png" --scale 2 -o "$T/x.png" 2>&1); rc=$?
check "--scale: unequal upsampled sizes refused, names both" '[[ $rc -eq 1 && "$err" == *lr_mri.png*256x256*lr4_pet.png*128x128* ]]'
"$B" classic --quiet --a "$T/lr_mri.png" --b "$T/lr4_pet.png" --scale-a 2 --scale-b 4 -o "$T/sr2.png"; rc=$?
sz=$("$PY" -c "from PIL import Image; print(Image.open('$T/sr2.png').size)")
check "--scale-a 2 --scale-b 4 on 128 and 64 px inputs -> 256x256 ($sz)" '[[ $rc -eq 0 && "$sz" == "(256, 256)" ]]'

# SR then fuse with average on a grey pair = mean of the two PIL bicubic upsamplings (8-bit exact)
"$PY" -c "
from PIL import Image
Image.open('$TIR').resize((100, 80), Image.BICUBIC).save('$T/lr_tir.png')
Image.open('$TVI').convert('L').resize((100, 80), Image.BICUBIC).save('$T/lr_tvi.png')"
"$B" classic --quiet --method average --a "$T/lr_tir.png" --b "$T/lr_tvi.png" --scale 3 -o "$T/sr_avg.png"; rc=$?
res=$("$PY" -c "
import numpy as np; from PIL import Image
up = [np.asarray(Image.open(f).resize((300, 240), Image.BICUBIC), dtype=np.float64) for f in ('$T/lr_tir.png', '$T/lr_tvi.png')]
o = np.asarray(Image.open('$T/sr_avg.png'), dtype=np.float64)
print(o.shape == (240, 300) and np.abs(o - (up[0] + up[1]) / 2).max() <= 0.5)")
check "--scale 3 average = mean of PIL bicubic upsamplings (+-0.5)" '[[ $rc -eq 0 && "$res" == True ]]'

# teacher on a small copy of the layout: 2 sets x 1 split x 2 pairs
S="$T/data"
mkdir -p "$S/ivf/val/ir" "$S/ivf/val/vi" "$S/med/val/mri" "$S/med/val/other"
for n in tno_marne_11 roadscene_FLIR_00455; do cp "$D/ivf/val/ir/$n.png" "$S/ivf/val/ir/"; cp "$D/ivf/val/vi/$n.png" "$S/ivf/val/vi/"; done
for n in pet_25024 ct_2005; do cp "$D/med/val/mri/$n.png" "$S/med/val/mri/"; cp "$D/med/val/other/$n.png" "$S/med/val/other/"; done
err=$("$B" teacher --method gff --data "$S" --out "$T/tgt" 2>&1); rc=$?
check "teacher: 4 written ($err)" '[[ $rc -eq 0 && "$err" == *"4 pairs: 4 written, 0 skipped"* && -s "$T/tgt/med/val/pet_25024.png" && -s "$T/tgt/ivf/val/tno_marne_11.png" ]]'
"$B" classic --quiet --method gff --a "$S/med/val/mri/pet_25024.png" --b "$S/med/val/other/pet_25024.png" -o "$T/one.png"
same=$("$PY" -c "
import numpy as np; from PIL import Image
a = np.asarray(Image.open('$T/one.png')); b = np.asarray(Image.open('$T/tgt/med/val/pet_25024.png'))
print(a.shape == b.shape and (a == b).all())")
check "teacher target = classic output (pixels)" '[[ "$same" == True ]]'
err=$("$B" teacher --method gff --data "$S" --out "$T/tgt" 2>&1); rc=$?
check "teacher rerun: all cached" '[[ $rc -eq 0 && "$err" == *"0 written, 4 skipped"* ]]'
sleep 0.05; touch "$S/ivf/val/vi/tno_marne_11.png"
err=$("$B" teacher --method gff --data "$S" --out "$T/tgt" 2>&1); rc=$?
check "teacher: a newer input is redone" '[[ $rc -eq 0 && "$err" == *"1 written, 3 skipped"* ]]'
err=$("$B" teacher --method average --data "$S" --out "$T/tgt" 2>&1); rc=$?
check "teacher: another method on the same OUT refused" '[[ $rc -eq 1 && $(echo "$err" | wc -l) -eq 1 && "$err" == *"another method"* ]]'
err=$("$B" teacher --method average --force --data "$S" --out "$T/tgt" 2>&1); rc=$?
check "teacher --force rewrites all" '[[ $rc -eq 0 && "$err" == *"4 written, 0 skipped"* ]]'
cp "$D/ivf/val/ir/roadscene_FLIR_00455.png" "$S/med/val/other/ct_2005.png"; sleep 0.05; touch "$S/med/val/other/ct_2005.png"
err=$("$B" teacher --method average --data "$S" --out "$T/tgt" 2>&1); rc=$?
check "teacher: a pair of different sizes names both files" '[[ $rc -eq 1 && $(echo "$err" | wc -l) -eq 1 && "$err" == *"mri/ct_2005.png is 256x256"*"other/ct_2005.png is "* ]]'
rm "$S/med/val/other/ct_2005.png"
err=$("$B" teacher --method average --data "$S" --out "$T/tgt" 2>&1); rc=$?
check "teacher: missing partner named" '[[ $rc -eq 1 && $(echo "$err" | wc -l) -eq 1 && "$err" == *"med/val/mri/ct_2005.png has no partner in"*"med/val/other/"* ]]'
rm "$S/med/val/mri/ct_2005.png" "$S"/med/val/other/*
err=$("$B" teacher --method average --data "$S" --out "$T/tgt" 2>&1); rc=$?
check "teacher: empty folder named" '[[ $rc -eq 1 && "$err" == *"med/val/other is empty"* ]]'
err=$("$B" teacher --method average --data "$T/nope" --out "$T/tgt" 2>&1); rc=$?
check "teacher: missing data dir" '[[ $rc -eq 1 && "$err" == *"nope"* ]]'
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
