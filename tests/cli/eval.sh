#!/usr/bin/env bash
# fsdiff eval: a small real run on ivf/val and med/val (files, CSV shape and numbers, bold best
# entries, HTML that only references existing images, hr: methods, JSON, thread-count invariance,
# infinite PSNR), then bad inputs: one `fsdiff: error:` line naming the problem, non-zero exit, and
# neither OUT nor a temporary folder left behind. Reads pairs from $FSDIFF_DATA; writes only to a
# temporary directory (removed at exit).
set -u
pass=0; fail=0
check() { if eval "$2"; then echo "ok    $1"; pass=$((pass+1)); else echo "FAIL  $1"; fail=$((fail+1)); fi; }
B="$FSD_BIN"; D="$FSDIFF_DATA"; PY="${FSD_PYTHON:-/usr/bin/python3}"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
t_start=$(date +%s)
# temporary folders of eval (OUT.tmp-*, OUT.old-*) left in $T
leftovers() { ls -d "$T"/*.tmp-* "$T"/*.old-* 2>/dev/null | wc -l; }
one_error() { [[ $(printf '%s\n' "$1" | wc -l) -eq 1 && "$1" == "fsdiff: error: "* ]]; }

out=$("$B" eval --help); rc=$?
check "eval --help lists the method forms" '[[ $rc -eq 0 && "$out" == *hr:NAME* && "$out" == *model:PATH* && "$out" == *--limit* ]]'
out=$("$B" --help); check "fsdiff --help lists eval" '[[ "$out" == *"eval "* ]]'

# ---- a small real run per set: 3 pairs x 5 methods at x4
M="average,laplacian,gff,gradient,hr:gff"
for set in ivf med; do
  O="$T/out_$set"
  "$B" eval --quiet --data "$D/$set/val" --scale 4 --limit 3 --methods "$M" --out "$O" > "$T/$set.txt"; rc=$?
  check "$set: eval runs (rc $rc)" '[[ $rc -eq 0 ]]'
  check "$set: results.csv, summary.md, report.html, img/ exist" '[[ -s "$O/results.csv" && -s "$O/summary.md" && -s "$O/report.html" && -d "$O/img" ]]'
  check "$set: no temporary folder left" '[[ $(leftovers) -eq 0 ]]'
  check "$set: stdout has the table (header + 5 methods)" '[[ $(grep -c "^| " "$T/$set.txt") -eq 6 ]]'
  res=$("$PY" - "$O" "$M" <<'EOF' 2>&1
import csv, math, os, re, sys
o, methods = sys.argv[1], sys.argv[2].split(",")
metrics = "EN SD SF AG MI SCD VIF Qabf SSIM CC PSNR".split()
msgs = []
rows = list(csv.DictReader(open(f"{o}/results.csv")))
hdr = open(f"{o}/results.csv").readline().strip().split(",")
if hdr != ["image", "method", "scale"] + metrics + ["seconds"]: msgs.append(f"header {hdr}")
if len(rows) != 3 * len(methods): msgs.append(f"{len(rows)} rows, expected {3 * len(methods)}")
if [r["method"] for r in rows[:len(methods)]] != methods: msgs.append("method order")
if len({r["image"] for r in rows}) != 3: msgs.append("images")
for r in rows:
    for k in metrics + ["scale", "seconds"]:
        try: v = float(r[k])
        except ValueError: msgs.append(f"{r['image']} {r['method']} {k}={r[k]!r} not numeric"); continue
        if k != "PSNR" and not math.isfinite(v): msgs.append(f"{k} not finite")
    if float(r["scale"]) != 4: msgs.append("scale column")
    if not (0 < float(r["VIF"]) < 2 and 0 < float(r["Qabf"]) < 1 and 0 <= float(r["SSIM"]) <= 2): msgs.append(f"range {r}")
# the hr: ceiling beats its SR-then-fuse twin on VIF and Qabf for every image
for img in {r["image"] for r in rows}:
    g = {r["method"]: r for r in rows if r["image"] == img}
    for k in ["VIF", "Qabf"]:
        if not float(g["hr:gff"][k]) > float(g["gff"][k]): msgs.append(f"{img}: hr:gff {k} not above gff")
md = open(f"{o}/summary.md").read()
table = [l for l in md.splitlines() if l.startswith("| ")]
if len(table) != 1 + len(methods): msgs.append(f"summary table has {len(table)} rows")
bold = md.count("**") // 2 - 1  # minus the "**bold**" in the legend
# one best per metric among the 4 LR methods; none for the single hr: ceiling (nothing to compare)
if bold != len(metrics): msgs.append(f"{bold} bold cells, expected {len(metrics)}")
if "**" in [l for l in table if l.startswith("| hr:gff |")][0]: msgs.append("the lone hr: row has bold cells")
# mean of the CSV == the table's gff VIF entry
vif = [float(r["VIF"]) for r in rows if r["method"] == "gff"]
cell = [l for l in table if l.startswith("| gff |")][0].split("|")[2 + metrics.index("VIF")]
mean = float(cell.replace("*", "").split("±")[0])
if abs(mean - sum(vif) / 3) > 6e-4: msgs.append(f"summary VIF {mean} vs csv mean {sum(vif) / 3}")
html = open(f"{o}/report.html").read()
srcs = re.findall(r'src="([^"]+)"', html)
missing = [s for s in srcs if not os.path.isfile(os.path.join(o, s))]
if missing: msgs.append(f"missing images {missing[:3]}")
unused = set(os.listdir(f"{o}/img")) - {os.path.basename(s) for s in srcs}
if unused: msgs.append(f"unreferenced images {sorted(unused)[:3]}")
# 3 sheets: 4 inputs + 5 methods, thumbnail + crop each
if len(srcs) != 3 * (4 + len(methods)) * 2: msgs.append(f"{len(srcs)} images in the HTML")
if html.count("<svg") != len(metrics): msgs.append(f"{html.count('<svg')} charts")
for m in methods:
    if f">{m}<" not in html: msgs.append(f"{m} not captioned")
if "<b>" not in html or not html.rstrip().endswith("</html>"): msgs.append("html body")
from PIL import Image
for s in srcs[:4]: Image.open(os.path.join(o, s)).verify()
print("; ".join(msgs) if msgs else "OK")
EOF
)
  check "$set: CSV 3x5 rows all numeric, 11 bold cells, summary = CSV mean, HTML images exist, 11 charts ($res)" '[[ "$res" == OK ]]'
done

# ---- JSON, --force replacement, same numbers on 1 and 2 threads
O="$T/out_med"
js=$("$B" eval --json --threads 1 --data "$D/med/val" --limit 3 --methods "$M" --out "$O" --force); rc=$?
res=$("$PY" - "$js" "$O" <<'EOF' 2>&1
import csv, json, sys
j = json.loads(sys.argv[1])
msgs = []
if j["pairs"] != 3 or j["a"] != "mri" or j["b"] != "other" or j["scale"] != 4: msgs.append("header")
if [m["name"] for m in j["methods"]] != "average,laplacian,gff,gradient,hr:gff".split(","): msgs.append("methods")
if not j["methods"][4]["uses_hr"] or j["methods"][0]["uses_hr"]: msgs.append("uses_hr")
if set(j["methods"][0]["metrics"]) != set("EN SD SF AG MI SCD VIF Qabf SSIM CC PSNR".split()): msgs.append("keys")
rows = [r for r in csv.DictReader(open(sys.argv[2] + "/results.csv")) if r["method"] == "laplacian"]
m = sum(float(r["Qabf"]) for r in rows) / 3
if abs(m - j["methods"][1]["metrics"]["Qabf"]["mean"]) > 1e-8: msgs.append("json mean != csv mean")
print("; ".join(msgs) if msgs else "OK")
EOF
)
check "--json on stdout, with --force over the previous run ($res)" '[[ $rc -eq 0 && "$res" == OK && $(leftovers) -eq 0 ]]'
cut -d, -f1-14 "$O/results.csv" > "$T/t1.csv"
"$B" eval --quiet --threads 2 --data "$D/med/val" --limit 3 --methods "$M" --out "$T/out_t2" > /dev/null
cut -d, -f1-14 "$T/out_t2/results.csv" > "$T/t2.csv"
check "metrics identical with 1 and 2 threads" 'cmp -s "$T/t1.csv" "$T/t2.csv"'

# ---- --every K then --limit N: pairs 0, K, 2K, ... of the sorted list
"$B" eval --quiet --data "$D/med/val" --every 11 --limit 6 --methods average --sheets 0 --out "$T/out_every" > /dev/null; rc=$?
want=$(ls "$D/med/val/mri" | sed 's/\.[^.]*$//' | awk 'NR % 11 == 1' | head -6 | tr '\n' ' ')
got=$(tail -n +2 "$T/out_every/results.csv" | cut -d, -f1 | tr '\n' ' ')
check "--every 11 --limit 6 picks pairs 0, 11, ..., 55 ($got)" '[[ $rc -eq 0 && "$got" == "$want" && ! -e "$T/out_every/img" ]]'

# ---- A == B: hr:average returns the source itself, PSNR = inf, left out of the mean and said so
mkdir -p "$T/same/a" "$T/same/b"
cp "$D/med/val/mri/ct_20014.png" "$T/same/a/x.png"; cp "$D/med/val/mri/ct_20014.png" "$T/same/b/x.png"
cp "$D/med/val/mri/pet_25024.png" "$T/same/a/y.png"; cp "$D/med/val/other/pet_25024.png" "$T/same/b/y.png"
"$B" eval --quiet --data "$T/same" --methods hr:average,bicubic-a --out "$T/out_same" > /dev/null; rc=$?
check "identical sources: PSNR inf in the CSV, mean over the finite value, noted in summary.md" \
  '[[ $rc -eq 0 && $(grep -c "^x,hr:average,4,.*,inf," "$T/out_same/results.csv") -eq 1 && "$(cat "$T/out_same/summary.md")" == *"1 infinite value"* ]]'

# ---- bad inputs
mk() { mkdir -p "$T/$1/ir" "$T/$1/vi"; }
MRI="$D/med/val/mri/ct_20014.png"; CT="$D/med/val/other/ct_20014.png"
mkdir -p "$T/empty"
mk nopartner; cp "$MRI" "$T/nopartner/ir/a.png"; cp "$CT" "$T/nopartner/vi/a.png"; cp "$MRI" "$T/nopartner/ir/b.png"
mk sizes; cp "$MRI" "$T/sizes/ir/a.png"; cp "$D/ivf/val/ir/msrs_00013N.png" "$T/sizes/vi/a.png"
mk corrupt; cp "$MRI" "$T/corrupt/ir/a.png"; cp "$CT" "$T/corrupt/vi/a.png"
cp "$MRI" "$T/corrupt/ir/b.png"; head -c 2000 "$CT" > "$T/corrupt/vi/b.png"
mk noimages
errcase() { # name, expected substring, args...
  local name=$1 want=$2; shift 2
  rm -rf "$T/out_bad"
  local err; err=$("$B" eval --quiet "$@" --out "$T/out_bad" 2>&1 >/dev/null); local rc=$?
  check "$name: one error line naming it, exit $rc, nothing left ($err)" \
    '[[ $rc -ne 0 ]] && one_error "$err" && [[ "$err" == *"$want"* && ! -e "$T/out_bad" && $(leftovers) -eq 0 ]]'
}
errcase "empty data folder" "no modality folders" --data "$T/empty"
errcase "modality folders without images" "is empty" --data "$T/noimages"
errcase "missing data folder" "$T/nothere" --data "$T/nothere"
errcase "pair missing its partner" "ir/b.png has no partner" --data "$T/nopartner"
errcase "mismatched sizes" "sizes/vi/a.png is 640x480" --data "$T/sizes"
errcase "corrupt PNG (second pair, after the first was processed)" "corrupt/vi/b.png" --data "$T/corrupt" --threads 1
errcase "scale leaving < 8 px" "256x256 at scale 40 gives 6x6" --data "$D/med/val" --limit 2 --scale 40
errcase "unknown method" "unknown method 'pca' (valid: average|laplacian|gff|gradient" --data "$D/med/val" --methods gff,pca
errcase "model: missing model file" "x.safetensors" --data "$D/med/val" --methods model:x.safetensors
errcase "method listed twice" "listed twice" --data "$D/med/val" --methods gff,gff
errcase "scale below 1" "--scale" --data "$D/med/val" --scale 0.5
errcase "unknown option" "unknown option" --data "$D/med/val" --bogus

# existing OUT: refused without --force and left as it was; a failed --force run keeps the old one
O="$T/out_keep"; "$B" eval --quiet --data "$D/med/val" --limit 1 --methods average --out "$O" > /dev/null
sum0=$(md5sum "$O/results.csv")
err=$("$B" eval --quiet --data "$D/med/val" --limit 1 --methods gff --out "$O" 2>&1 >/dev/null); rc=$?
check "existing OUT without --force: one error line, OUT untouched" \
  '[[ $rc -ne 0 ]] && one_error "$err" && [[ "$err" == *"already exists"* && "$(md5sum "$O/results.csv")" == "$sum0" && $(leftovers) -eq 0 ]]'
err=$("$B" eval --quiet --data "$T/corrupt" --methods gff --out "$O" --force 2>&1 >/dev/null); rc=$?
check "failed --force run: old OUT kept, nothing else left" \
  '[[ $rc -ne 0 && "$(md5sum "$O/results.csv")" == "$sum0" && $(leftovers) -eq 0 ]]'
"$B" eval --quiet --data "$D/med/val" --limit 1 --methods gff --out "$O" --force > /dev/null; rc=$?
check "--force replaces OUT after success" '[[ $rc -eq 0 && $(grep -c ",gff," "$O/results.csv") -eq 1 && $(grep -c ",average," "$O/results.csv") -eq 0 && $(leftovers) -eq 0 ]]'
mkdir -p "$T/out_other"; echo keep > "$T/out_other/notes.txt"
err=$("$B" eval --quiet --data "$D/med/val" --limit 1 --methods gff --out "$T/out_other" --force 2>&1 >/dev/null); rc=$?
check "--force refuses a folder that is not an eval output" '[[ $rc -ne 0 && "$err" == *"no results.csv"* && -f "$T/out_other/notes.txt" ]]'

echo "eval.sh took $(( $(date +%s) - t_start )) s"
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
