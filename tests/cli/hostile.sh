#!/usr/bin/env bash
# Hostile-input catalogue across every entry point (degrade, metrics, classic, fuse, info, eval,
# teacher, train): corrupt, truncated and absurd images, lying or inconsistent safetensors model
# files, broken configs, bad numbers and flags, unwritable, read-only and full output places.
# Every case must end with: a non-zero exit that is no signal (< 128), exactly one stderr line
# "fsdiff: error: ..." holding the expected words, and the output folder exactly as before (no new
# file, no temp file, the pre-existing file "keep.png" byte-identical, also when it is the target).
# The inputs are made at test time by hostile_gen.py from a fixed seed (no data set needed).
set -u
pass=0; fail=0; cases=0
check() { if eval "$2"; then echo "ok    $1"; pass=$((pass+1)); else echo "FAIL  $1"; fail=$((fail+1)); fi; }
B="$FSD_BIN"; PY="${FSD_PYTHON:-/usr/bin/python3}"
MK="$(dirname "$B")/tests/test_fuse"
HERE="$(cd "$(dirname "$0")" && pwd)"
T=$(mktemp -d /tmp/fsd_cli_hostile_XXXXXX); trap 'rm -rf "$T"' EXIT
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
unset FSDIFF_MODEL

"$MK" --make-model "$T/tiny.safetensors" >/dev/null && mkdir "$T/in" && "$PY" "$HERE/hostile_gen.py" "$T/in" "$T/tiny.safetensors"
rc=$?
check "hostile inputs generated (tiny model + hostile_gen.py)" '[[ $rc -eq 0 && -s "$T/in/ir.png" && -s "$T/in/wrong_dtype.safetensors" ]]'
I="$T/in"; M="$T/tiny.safetensors"; O="$T/o"; PRE=(); SETUP=:

# the output folder before every case: one pre-existing file that must survive untouched
reset_out() { rm -rf "$O"; mkdir -p "$O"; printf 'pre-existing output\n' > "$O/keep.png"; }
snapshot() { (cd "$1" && find . -printf '%p %y %s\n' | sort && find . -type f -exec md5sum {} + | sort); }

# hostile NAME WANT CMD ARGS... : runs `fsdiff CMD ARGS...` against a fresh $O
hostile() {
  local name="$1" want="$2"; shift 2
  cases=$((cases+1))
  reset_out
  eval "$SETUP"
  local before; before=$(snapshot "$O")
  local err; err=$("${PRE[@]}" "$B" "$@" 2>&1 >/dev/null); local rc=$?
  local after; after=$(snapshot "$O")
  local lines; lines=$(printf '%s\n' "$err" | wc -l)
  check "[$cases] $1 $name: exit $rc, one line ($err)" \
    '[[ $rc -ne 0 && $rc -lt 128 && $lines -eq 1 && "$err" == "fsdiff: error: "*"$want"* && "$before" == "$after" ]]'
  [[ "$before" == "$after" ]] || diff <(echo "$before") <(echo "$after") | sed 's/^/      /'
}

# ---------------------------------------------------------------- images (through degrade)
img() { hostile "$1" "$2" degrade --quiet --scale 2 "$I/$3" -o "$O/${4:-new.png}"; }
img "truncated PNG" "truncated PNG" trunc.png
img "PNG with a bad IDAT CRC" "CRC mismatch" crc.png keep.png
img "PNG 0x0 in IHDR" "zero size" zero.png
img "PNG 100000x100000 in IHDR (refused before allocating)" "over the limit" huge.png
img "16-bit PNG cut short" "truncated PNG" trunc16.png keep.png
img "16-bit PNG whose data inflates short" "corrupt or truncated PNG" short16.png
img "palette PNG without PLTE" "without a PLTE" noplte.png
img "truncated JPEG" "truncated JPEG" trunc.jpg keep.png
img "JPEG of garbage after SOI" "JPEG" garbage.jpg
img "JPEG SOF claiming 65535x65535" "over the limit" huge.jpg
img "truncated BMP" "truncated BMP" trunc.bmp keep.png
img "BMP header 100000x100000, no pixels" "over the limit" huge.bmp
img "16-bit PGM cut short" "truncated PNM" trunc16.pgm
img "54-byte BMP claiming 16000x16000 (refused before decoding)" "needs 768000000 bytes of pixels" amplify.bmp
img "35-byte PPM claiming 16000x16000 (refused before decoding)" "needs 768000000 bytes of pixels" amplify.ppm keep.png
img "text file named .png" "not a readable image" notimage.png
img "zero-length file" "empty file" empty.png keep.png
img "a directory as input" "is a directory" . new.png
hostile "missing input" "No such file" degrade --quiet --scale 2 "$I/nope.png" -o "$O/new.png"

# 16-bit and palette PNGs are no error: they load (16-bit as v/257)
"$B" degrade --quiet --scale 1 "$I/grey16bit.png" -o "$T/g16.png" && "$B" degrade --quiet --scale 1 "$I/palette.png" -o "$T/pal.png"; rc=$?
r=$("$PY" -c "
import sys, numpy as np; from PIL import Image
a = np.asarray(Image.open('$I/grey16bit.png'), dtype=float); g = np.asarray(Image.open('$T/g16.png'), dtype=float)
p = np.asarray(Image.open('$I/palette.png').convert('RGB'), dtype=int); q = np.asarray(Image.open('$T/pal.png'), dtype=int)
print(int(np.abs(np.floor(a / 257 + 0.5) - g).max()), int(np.abs(p - q).max()))" 2>&1)
check "16-bit PNG and palette PNG are accepted: max |diff| vs PIL (16-bit/257, palette RGB) ($r)" '[[ $rc -eq 0 && "$r" == "0 0" ]]'

# ---------------------------------------------------------------- numbers and flags
hostile "--scale 0" "out of range" degrade --quiet --scale 0 "$I/big.png" -o "$O/new.png"
hostile "--scale 1000 (result under 8 px)" "8 px" degrade --quiet --scale 1000 "$I/big.png" -o "$O/keep.png"
hostile "unknown flag" "unknown option" degrade --quiet --scale 2 --sharpen "$I/big.png" -o "$O/new.png"
hostile "--threads not a number" "not an integer" degrade --threads many --scale 2 "$I/big.png" -o "$O/new.png"

# ---------------------------------------------------------------- output places
# read-only folder: root ignores chmod, so use a read-only mount in a private mount namespace when we
# may (unshare -m); else chmod 555 (non-root) or, as root without unshare, a path under a regular FILE
mkdir -p "$T/mnt"
if unshare -m sh -c 'mount -t tmpfs -o size=16k none "$1" && mount -o remount,ro "$1"' _ "$T/mnt" 2>/dev/null; then ro_how=mount
elif [[ $(id -u) -ne 0 ]]; then ro_how=chmod; else ro_how=file; fi
cases=$((cases+1))
reset_out
case $ro_how in
  mount) err=$(unshare -m bash -c 'mount -t tmpfs -o size=1m none "$1" && printf "pre-existing output\n" > "$1/keep.png" &&
                 mount -o remount,ro "$1" && exec "$2" degrade --quiet --scale 2 "$3" -o "$1/keep.png"' _ "$O" "$B" "$I/big.png" 2>&1); rc=$?
         want="Read-only file system" ;;
  chmod) chmod 555 "$O"; err=$("$B" degrade --quiet --scale 2 "$I/big.png" -o "$O/keep.png" 2>&1); rc=$?; chmod 755 "$O"
         want="Permission denied" ;;
  file)  err=$("$B" degrade --quiet --scale 2 "$I/big.png" -o "$O/keep.png/new.png" 2>&1); rc=$?
         want="Not a directory" ;;
esac
check "[$cases] read-only output folder ($ro_how): exit $rc, one line ($err)" \
  '[[ $rc -ne 0 && $rc -lt 128 && $(echo "$err" | wc -l) -eq 1 && "$err" == "fsdiff: error: "*"$want"* && "$(cat "$O/keep.png")" == "pre-existing output" && $(ls "$O" | wc -l) -eq 1 ]]'

# full disk: a 16 KiB tmpfs holding the pre-existing file (ENOSPC); without unshare, a file-size
# limit (ulimit -f, SIGXFSZ ignored: EFBIG) on the same write path
cases=$((cases+1))
reset_out
if [[ $ro_how == mount ]]; then
  full_how="16 KiB tmpfs"
  err=$(unshare -m bash -c 'mount -t tmpfs -o size=16k none "$1" && printf "pre-existing output\n" > "$1/keep.png" &&
          "$2" degrade --quiet --scale 1 "$3" -o "$1/keep.png"; rc=$?; ls -A "$1" >&2; cat "$1/keep.png" >&2; exit $rc' _ "$O" "$B" "$I/big.png" 2>&1); rc=$?
  want="No space left on device"
  tail2=$(echo "$err" | tail -n +2 | tr '\n' ' '); err=$(echo "$err" | head -1)
  check "[$cases] full disk ($full_how): exit $rc, one line, only keep.png left, intact ($err | $tail2)" \
    '[[ $rc -ne 0 && $rc -lt 128 && "$err" == "fsdiff: error: "*"$want"* && "$tail2" == "keep.png pre-existing output " ]]'
else
  full_how="ulimit -f"
  err=$(trap '' XFSZ; ulimit -f 4; "$B" degrade --quiet --scale 1 "$I/big.png" -o "$O/keep.png" 2>&1); rc=$?
  check "[$cases] full disk ($full_how): exit $rc, one line ($err)" \
    '[[ $rc -ne 0 && $rc -lt 128 && $(echo "$err" | wc -l) -eq 1 && "$err" == "fsdiff: error: "*"File too large"* && "$(cat "$O/keep.png")" == "pre-existing output" && $(ls "$O" | wc -l) -eq 1 ]]'
fi
hostile "output under a regular file" "Not a directory" degrade --quiet --scale 2 "$I/big.png" -o "$O/keep.png/new.png"
hostile "output in /proc" "cannot create output" degrade --quiet --scale 2 "$I/big.png" -o /proc/fsdiff-hostile.png

# ---------------------------------------------------------------- metrics, classic
hostile "metrics: mismatched sizes" "size mismatch" metrics --quiet --a "$I/big.png" --b "$I/big48.png" --fused "$I/big.png"
hostile "metrics: truncated fused image" "truncated PNG" metrics --quiet --a "$I/big.png" --b "$I/big.png" --fused "$I/trunc.png"
hostile "metrics: unknown flag" "unknown option" metrics --quiet --a "$I/big.png" --b "$I/big.png" --fused "$I/big.png" --psnr-only
hostile "classic: mismatched sizes" "differ in size" classic --quiet --a "$I/big.png" --b "$I/big48.png" -o "$O/new.png"
hostile "classic: --scale 1000" "out of range" classic --quiet --scale 1000 --a "$I/big.png" --b "$I/big.png" -o "$O/new.png"
hostile "classic: corrupt JPEG source" "JPEG" classic --quiet --a "$I/big.png" --b "$I/garbage.jpg" -o "$O/keep.png"

# ---------------------------------------------------------------- fuse (model files and sizes)
F=(fuse --quiet --ir "$I/ir.png" --vi "$I/vi.png" --scale 2 --steps 2)
model() { hostile "$1" "$2" "${F[@]}" --model "$I/$3" -o "$O/${4:-new.png}"; }
model "model: header length beyond the file" "exceeds the file" lying_far.safetensors
model "model: header length 1000 too large (runs into the data)" "a wrong header length?" lying_header.safetensors
model "model: header length 16 too small (cuts the JSON)" "a wrong header length?" lying_short.safetensors keep.png
model "model: header length 2^62" "absurd" absurd_header.safetensors keep.png
model "model: header length 0" "header length is 0" zero_header.safetensors
model "model: truncated file" "outside the file's data buffer" trunc_model.safetensors
model "model: overlapping tensor spans" "overlapping" overlap.safetensors keep.png
model "model: span outside the file" "outside the file's data buffer" outside.safetensors
model "model: wrong dtype for a known tensor (I32)" "has dtype I32, expected a float type" wrong_dtype.safetensors
model "model: wrong shape for a known tensor" "expected [" wrong_shape.safetensors keep.png
model "model: a tensor missing" "missing tensor" missing_tensor.safetensors
model "model: NaN weight" "contains NaN" nan_weight.safetensors
model "model: Inf weight" "contains Inf" inf_weight.safetensors keep.png
model "model: no config metadata" "not an fsdiff model file" no_config.safetensors
model "model: absurd network config (base_channels 100000)" "base_channels 100000" absurd_config.safetensors
model "model: diffusion config steps > T" "absurd_diffusion.safetensors: diffusion config: steps" absurd_diffusion.safetensors
model "model: config metadata not valid JSON" "invalid JSON" broken_config_json.safetensors keep.png
model "model: tensor name with a newline (one line)" "unexpected tensor 'evil?name'" newline_name.safetensors
model "model: an image instead" "header" big.png
hostile "fuse: mismatched IR/VI (16x16 + 10x10 at x2)" "10x10" fuse --quiet --model "$M" --ir "$I/ir.png" --vi "$I/vi10.png" --scale 2 -o "$O/new.png"
hostile "fuse: --scale 0" "out of range" fuse --quiet --model "$M" --ir "$I/ir.png" --vi "$I/vi.png" --scale 0 -o "$O/new.png"
hostile "fuse: --scale 1 with 16x16 + 10x10" "10x10" fuse --quiet --model "$M" --ir "$I/ir.png" --vi "$I/vi10.png" --scale 1 -o "$O/new.png"
hostile "fuse: --scale 3 with 16x16 + 10x10" "10x10" fuse --quiet --model "$M" --ir "$I/ir.png" --vi "$I/vi10.png" --scale 3 -o "$O/keep.png"
hostile "fuse: --scale 1000" "out of range" fuse --quiet --model "$M" --ir "$I/ir.png" --vi "$I/vi.png" --scale 1000 -o "$O/new.png"
hostile "fuse: context file with NaN" "contains NaN" "${F[@]}" --model "$M" --context-file "$I/ctx_nan.safetensors" -o "$O/new.png"
hostile "fuse: truncated IR image" "truncated PNG" fuse --quiet --model "$M" --ir "$I/trunc.png" --vi "$I/vi.png" --scale 2 -o "$O/keep.png"
hostile "fuse: output under a regular file" "Not a directory" "${F[@]}" --model "$M" -o "$O/keep.png/x.png"
hostile "fuse: unknown flag" "unknown option" "${F[@]}" --model "$M" --turbo -o "$O/new.png"
# resource limit: a 32768x32768 output needs far more than the machine has (the default --max-memory);
# refused from the estimate before the large allocations - shown by a 3 GiB address-space limit
# (not under ASan, which reserves terabytes of address space)
PRE=(); ldd "$B" 2>/dev/null | grep -q libasan || PRE=(prlimit --as=$((3 << 30)))
hostile "fuse: 32768x32768 output over the machine's memory, refused before allocating${PRE:+ (under prlimit --as=3G)}" \
  "use a smaller --tile" fuse --quiet --model "$M" --ir "$I/flat4096.png" --vi "$I/flat4096.png" --scale 8 -o "$O/new.png"
PRE=()

# ---------------------------------------------------------------- info
hostile "info: lying header length" "a wrong header length?" info --quiet "$I/lying_header.safetensors"
hostile "info: overlapping spans" "overlapping" info --quiet "$I/overlap.safetensors"
hostile "info: a PNG" "safetensors" info --quiet "$I/big.png"

# ---------------------------------------------------------------- eval, teacher, train (data folders)
mkdir -p "$T/d/s/val/mri" "$T/d/s/val/other" "$T/d/s/train/mri" "$T/d/s/train/other"
cp "$I/big.png" "$T/d/s/val/mri/a.png"; cp "$I/big48.png" "$T/d/s/val/other/a.png"   # a mismatched pair
cp "$T/d/s/val/mri/a.png" "$T/d/s/train/mri/"; cp "$T/d/s/val/other/a.png" "$T/d/s/train/other/"
hostile "eval: mismatched pair" "differs in size" eval --quiet --data "$T/d/s/val" --methods average --out "$O/ev"
hostile "eval: --scale 0" "out of range" eval --quiet --data "$T/d/s/val" --scale 0 --out "$O/ev"
hostile "eval: unknown method" "frobnicate" eval --quiet --data "$T/d/s/val" --methods average,frobnicate --out "$O/ev"
hostile "eval: corrupt model method" "header" eval --quiet --data "$T/d/s/val" --methods "model:$I/lying_header.safetensors" --out "$O/ev"
hostile "teacher: missing data folder" "nowhere" teacher --quiet --data "$T/nowhere" --out "$O/te"
hostile "teacher: output under a regular file" "cannot create" teacher --quiet --data "$T/d" --out "$O/keep.png/te"
TR=(train --quiet --data "$T/d" --preset tiny --crops 32 --scales 2 --steps 2)
hostile "train: config JSON cut short" "invalid JSON" "${TR[@]}" --config "$I/cfg_truncated.json" --out "$O/run"
hostile "train: config with an absurd field" "base_channels" "${TR[@]}" --config "$I/cfg_absurd.json" --out "$O/run"
hostile "train: config with a misspelt (unknown) key" "base_chanels" "${TR[@]}" --config "$I/cfg_unknown.json" --out "$O/run"
hostile "train: config field of the wrong type" "channel_mults" "${TR[@]}" --config "$I/cfg_wrongtype.json" --out "$O/run"
hostile "train: config not an object" "JSON object" "${TR[@]}" --config "$I/cfg_notobject.json" --out "$O/run"
hostile "train: missing config file" "No such file" "${TR[@]}" --config "$I/none.json" --out "$O/run"
hostile "train: --init with a corrupt model" "overlapping" "${TR[@]}" --init "$I/overlap.safetensors" --out "$O/run"
hostile "train: --steps abc" "not an integer" "${TR[@]}" --steps abc --out "$O/run"
hostile "train: --out under a regular file" "Not a directory" "${TR[@]}" --out "$O/keep.png/run"
hostile "train: missing data folder" "nowhere" train --quiet --data "$T/nowhere" --preset tiny --out "$O/run"
# --resume on run folders whose checkpoint is not one: refused, the folder left exactly as it was
SETUP='mkdir "$O/run" && cp "$M" "$O/run/checkpoint.safetensors"'
hostile "train --resume: a model file as checkpoint (configs missing)" "missing configs" train --quiet --resume --out "$O/run"
SETUP='mkdir "$O/run" && cp "$I/trunc_model.safetensors" "$O/run/checkpoint.safetensors"'
hostile "train --resume: a truncated checkpoint" "outside the file's data buffer" train --quiet --resume --out "$O/run"
SETUP=:

echo "hostile cases: $cases (read-only: $ro_how, full disk: $full_how)"
echo "$pass passed, $fail failed"
[[ $fail -eq 0 && $cases -ge 40 ]]
