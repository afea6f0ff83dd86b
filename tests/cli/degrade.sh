#!/usr/bin/env bash
# fsdiff degrade: output size and mode, bit-exact parity with Pillow through the CLI, --up, seeded
# noise determinism (also across thread counts), text chunks, and refusals (exit code, one error
# line, no output file, an existing output left untouched, no temp files left behind).
set -u
pass=0; fail=0
check() { if eval "$2"; then echo "ok    $1"; pass=$((pass+1)); else echo "FAIL  $1"; fail=$((fail+1)); fi; }
B="$FSD_BIN"; PY="${FSD_PYTHON:-/usr/bin/python3}"; D="${FSDIFF_DATA:-../shared/data}"
T=$(mktemp -d /tmp/fsd_cli_degrade_XXXXXX); trap 'rm -rf "$T"' EXIT
VI=$(ls "$D"/ivf/val/vi/roadscene_*.png | head -1)   # RGB
IR="$D/ivf/val/ir/$(basename "$VI")"                  # its grey partner
[[ -f "$VI" && -f "$IR" ]] || { echo "FAIL  data images not found under $D"; exit 1; }

out=$("$B" degrade --help); rc=$?
check "--help: exit 0, documents the options" '[[ $rc -eq 0 && "$out" == *--scale* && "$out" == *--noise* && "$out" == *--up* ]]'
out=$("$B" --help); check "fsdiff --help lists degrade" '[[ "$out" == *degrade* ]]'

# Pillow parity through the CLI: the file equals Image.resize(round(size / s), BICUBIC) exactly
pil() { "$PY" -c "$1" "${@:2}"; }
"$B" degrade --scale 4 "$VI" -o "$T/vi4.png" --quiet; rc=$?
check "degrade --scale 4 (RGB): exit 0" '[[ $rc -eq 0 && -f "$T/vi4.png" ]]'
r=$(pil 'import sys, numpy as np; from PIL import Image
a = Image.open(sys.argv[1]); b = Image.open(sys.argv[2])
size = (int(np.floor(a.width / 4 + 0.5)), int(np.floor(a.height / 4 + 0.5)))
ref = np.asarray(a.resize(size, Image.BICUBIC), dtype=int); got = np.asarray(b, dtype=int)
print(b.mode, b.size == size, int(np.abs(ref - got).max()), b.text.get("scale"), b.text.get("fsdiff-command"))' "$VI" "$T/vi4.png")
check "RGB x4: mode RGB, size round(W/4) x round(H/4), max |diff| vs Pillow 0, text chunks ($r)" '[[ "$r" == "RGB True 0 4 degrade" ]]'

"$B" degrade --scale=2.5 "$IR" -o "$T/ir.png" -q; rc=$?
r=$(pil 'import sys, numpy as np; from PIL import Image
a = Image.open(sys.argv[1]); b = Image.open(sys.argv[2])
size = (int(np.floor(a.width / 2.5 + 0.5)), int(np.floor(a.height / 2.5 + 0.5)))
ref = np.asarray(a.resize(size, Image.BICUBIC), dtype=int)
print(b.mode, b.size == size, int(np.abs(ref - np.asarray(b, dtype=int)).max()))' "$IR" "$T/ir.png")
check "grey x2.5 (--scale=2.5 form): mode L, size, max |diff| vs Pillow 0 ($r)" '[[ $rc -eq 0 && "$r" == "L True 0" ]]'

"$B" degrade --scale 4 --up "$VI" -o "$T/up.png" -q; rc=$?
r=$(pil 'import sys, numpy as np; from PIL import Image
a = Image.open(sys.argv[1]); b = Image.open(sys.argv[2])
lr = a.resize((int(np.floor(a.width / 4 + 0.5)), int(np.floor(a.height / 4 + 0.5))), Image.BICUBIC)
ref = np.asarray(lr.resize(a.size, Image.BICUBIC), dtype=int)
print(b.size == a.size, int(np.abs(ref - np.asarray(b, dtype=int)).max()), b.text.get("up"))' "$VI" "$T/up.png")
check "--up: back to the input size, equals Pillow down+up exactly ($r)" '[[ $rc -eq 0 && "$r" == "True 0 1" ]]'

# seeded noise: same seed -> same bytes (1 or 2 threads); another seed -> other bytes
"$B" degrade --scale 2 --blur 1.2 --noise 4 --seed 7 --threads 1 "$VI" -o "$T/n1.png" -q
"$B" degrade --scale 2 --blur 1.2 --noise 4 --seed 7 --threads 2 "$VI" -o "$T/n2.png" -q
"$B" degrade --scale 2 --blur 1.2 --noise 4 --seed 8 "$VI" -o "$T/n3.png" -q
"$B" degrade --scale 2 --blur 1.2 "$VI" -o "$T/n0.png" -q
check "same seed: identical files with 1 and 2 threads" 'cmp -s "$T/n1.png" "$T/n2.png"'
check "another seed: different file" '! cmp -s "$T/n1.png" "$T/n3.png"'
r=$(pil 'import sys, numpy as np; from PIL import Image
d = np.asarray(Image.open(sys.argv[1]), dtype=float) - np.asarray(Image.open(sys.argv[2]), dtype=float)
print("%.2f %.2f" % (d.mean(), d.std()))' "$T/n1.png" "$T/n0.png")
check "noise 4: mean ~0, std ~4 (clipping aside) ($r)" '"$PY" -c "m, s = map(float, \"$r\".split()); assert abs(m) < 0.2 and 3.6 < s < 4.3"'

# refusals: exit code, exactly one "fsdiff: error:" line, no output written
refuse() { # name, expected rc, message fragment, args...
    local name="$1" want="$2" frag="$3"; shift 3
    rm -f "$T/bad.png" "$T/bad.png.jpg"
    local err; err=$("$B" degrade "$@" 2>&1 >/dev/null); local rc=$?
    check "$name: exit $want, one error line, no output ($err)" \
        '[[ $rc -eq $want && $(printf "%s\n" "$err" | wc -l) -eq 1 && "$err" == "fsdiff: error: "*"$frag"* && ! -e "$T/bad.png" && ! -e "$T/bad.png.jpg" ]]'
}
printf 'P5\n8 8\n255\n' > "$T/short.pgm"; head -c 2000 "$VI" > "$T/trunc.png"; : > "$T/empty.png"
refuse "missing input" 1 "No such file" --scale 2 "$T/nope.png" -o "$T/bad.png"
refuse "truncated PNG" 1 "trunc.png" --scale 2 "$T/trunc.png" -o "$T/bad.png"
refuse "PGM without pixels" 1 "short.pgm" --scale 2 "$T/short.pgm" -o "$T/bad.png"
refuse "zero-length file" 1 "empty" --scale 2 "$T/empty.png" -o "$T/bad.png"
refuse "result under 8 px" 1 "8 px" --scale 60 "$VI" -o "$T/bad.png"
refuse "scale not a number" 2 "not a number" --scale abc "$VI" -o "$T/bad.png"
refuse "scale < 1" 2 "out of range" --scale 0.5 "$VI" -o "$T/bad.png"
refuse "scale nan" 2 "not a number" --scale nan "$VI" -o "$T/bad.png"
refuse "negative noise" 2 "out of range" --scale 2 --noise -1 "$VI" -o "$T/bad.png"
refuse "seed not an integer" 2 "not an integer" --scale 2 --seed 1.5 "$VI" -o "$T/bad.png"
refuse "missing --scale" 2 "--scale is required" "$VI" -o "$T/bad.png"
refuse "missing -o" 2 "no output" --scale 2 "$VI"
refuse "no input argument" 2 "no input" --scale 2 -o "$T/bad.png"
refuse "unknown option" 2 "unknown option" --scale 2 --frobnicate "$VI" -o "$T/bad.png"
refuse "non-PNG output" 2 "only PNG" --scale 2 "$VI" -o "$T/bad.png.jpg"
refuse "output directory missing" 1 "cannot create" --scale 2 "$VI" -o "$T/no/such/dir/bad.png"

# an existing output survives a failed run; no temp files are left behind
cp "$T/vi4.png" "$T/keep.png"
"$B" degrade --scale 2 "$T/trunc.png" -o "$T/keep.png" 2>/dev/null
check "failed run leaves the existing output untouched" 'cmp -s "$T/vi4.png" "$T/keep.png"'
check "no temp files left in the output directory" '[[ -z "$(ls "$T" | grep -i tmp)" ]]'

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
