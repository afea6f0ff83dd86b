#!/usr/bin/env bash
# fsdiff metrics: values on real pairs equal the numpy twin (tests/ref/ref_metrics.py) on the same
# files (grey and colour sources, fused PNG written here), --ref, --json, and one-line errors.
# Tolerance: 1e-6 relative (the JSON carries 12 significant digits; the library agrees with the twin
# to ~1e-12, see test_metrics).
set -u
pass=0; fail=0
check() { if eval "$2"; then echo "ok    $1"; pass=$((pass+1)); else echo "FAIL  $1"; fail=$((fail+1)); fi; }
B="$FSD_BIN"; D="${FSDIFF_DATA:-../shared/data}"; PY="${FSD_PYTHON:-/usr/bin/python3}"
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export PYTHONPATH="$FSD_SOURCE_DIR/tests/ref"

CT_A="$D/med/val/mri/ct_2005.png"; CT_B="$D/med/val/other/ct_2005.png"
RS_A="$D/ivf/val/ir/roadscene_FLIR_00455.png"; RS_B="$D/ivf/val/vi/roadscene_FLIR_00455.png"
# Fused images made with numpy: max rule for the CT pair, rounded mean for the IR/visible pair; small crops.
"$PY" - "$T" "$CT_A" "$CT_B" "$RS_A" "$RS_B" <<'EOF'
import sys
import numpy as np
from PIL import Image
from ref_metrics import load_grey
t, ca, cb, ra, rb = sys.argv[1:]
a, b = load_grey(ca), load_grey(cb)
Image.fromarray(np.maximum(a, b).astype(np.uint8), "L").save(f"{t}/ct_fused.png")
a, b = load_grey(ra), load_grey(rb)
Image.fromarray(np.floor((a + b) / 2 + 0.5).astype(np.uint8), "L").save(f"{t}/rs_fused.png")
Image.fromarray(a[:30, :30].astype(np.uint8), "L").save(f"{t}/small.png")
Image.fromarray(a[:100, :120].astype(np.uint8), "L").save(f"{t}/crop.png")
open(f"{t}/broken.png", "wb").write(b"\x89PNG\r\n\x1a\n not really a png")
EOF

# compare JSON from stdin with the twin on files A B F [REF]
cmp_twin() {
  "$PY" -c '
import json, sys
import numpy as np
from ref_metrics import load_grey, all_metrics, psnr_pair, ssim_pair, NAMES
d = json.load(sys.stdin)
a, b, f = (load_grey(p) for p in sys.argv[1:4])
want, _ = all_metrics(a, b, f)
worst = max(abs(d["metrics"][k] - want[k]) / max(abs(want[k]), 1e-6) for k in NAMES)
if len(sys.argv) > 4:
    r = load_grey(sys.argv[4])
    worst = max(worst, abs(d["sr"]["PSNR"] - psnr_pair(f, r)) / psnr_pair(f, r), abs(d["sr"]["SSIM"] - ssim_pair(f, r)) / ssim_pair(f, r))
print("max rel err vs twin %.2g" % worst, file=sys.stderr)
sys.exit(0 if worst <= 1e-6 else 1)
' "$@"
}

out=$("$B" metrics --a "$CT_A" --b "$CT_B" --fused "$T/ct_fused.png"); rc=$?
check "table lists every metric" '[[ $rc -eq 0 && "$out" == *EN*SD*SF*AG*MI*SCD*VIF*Qabf*SSIM*CC*PSNR* ]]'
"$B" metrics --a "$CT_A" --b "$CT_B" --fused "$T/ct_fused.png" --json > "$T/ct.json"; rc=$?
check "grey MRI/CT pair (--json) equals the twin" '[[ $rc -eq 0 ]] && cmp_twin "$CT_A" "$CT_B" "$T/ct_fused.png" < "$T/ct.json"'
"$B" metrics --a "$RS_A" --b "$RS_B" --fused "$T/rs_fused.png" --ref "$RS_A" --json > "$T/rs.json"; rc=$?
check "IR + colour visible pair with --ref equals the twin" '[[ $rc -eq 0 ]] && cmp_twin "$RS_A" "$RS_B" "$T/rs_fused.png" "$RS_A" < "$T/rs.json"'
out=$("$B" metrics --fused "$T/ct_fused.png" --ref "$CT_A"); rc=$?
check "--ref alone prints only the SR pair" '[[ $rc -eq 0 && "$out" == *PSNR*SSIM* && "$out" != *Qabf* ]]'
out=$("$B" metrics --a "$CT_A" --b "$CT_A" --fused "$CT_A" --json); rc=$?
check "identical images: PSNR is null in JSON, SSIM 2" '[[ $rc -eq 0 ]] && echo "$out" | "$PY" -c "import json,sys; m=json.load(sys.stdin)[\"metrics\"]; assert m[\"PSNR\"] is None and abs(m[\"SSIM\"]-2)<1e-9"'

err=$("$B" metrics --a "$CT_A" --b "$CT_B" --fused "$T/crop.png" 2>&1 >/dev/null); rc=$?
check "size mismatch: exit 1, one line naming both sizes" '[[ $rc -eq 1 && $(echo "$err" | wc -l) -eq 1 && "$err" == "fsdiff: error:"*256x256*120x100* ]]'
err=$("$B" metrics --a "$T/small.png" --b "$T/small.png" --fused "$T/small.png" 2>&1 >/dev/null); rc=$?
check "30x30 images: exit 1, one line saying too small" '[[ $rc -eq 1 && $(echo "$err" | wc -l) -eq 1 && "$err" == *"too small"* ]]'
err=$("$B" metrics --a "$CT_A" --b "$T/broken.png" --fused "$T/ct_fused.png" 2>&1 >/dev/null); rc=$?
check "corrupt file: exit 1, one line naming it" '[[ $rc -eq 1 && $(echo "$err" | wc -l) -eq 1 && "$err" == *broken.png* ]]'
err=$("$B" metrics --a "$CT_A" --b /nonexistent.png --fused "$T/ct_fused.png" 2>&1 >/dev/null); rc=$?
check "missing file: exit 1, one line naming it" '[[ $rc -eq 1 && $(echo "$err" | wc -l) -eq 1 && "$err" == *nonexistent.png* ]]'
err=$("$B" metrics --a "$CT_A" --fused "$T/ct_fused.png" 2>&1); rc=$?
check "--a without --b refused" '[[ $rc -ne 0 && "$err" == *"go together"* ]]'
err=$("$B" metrics --a "$CT_A" --b "$CT_B" 2>&1); rc=$?
check "missing --fused refused" '[[ $rc -ne 0 && "$err" == *"--fused is required"* ]]'
err=$("$B" metrics --fused "$T/ct_fused.png" 2>&1); rc=$?
check "nothing to compare refused" '[[ $rc -ne 0 && "$err" == *"nothing to compare"* ]]'
err=$("$B" metrics --frobnicate 2>&1); rc=$?
check "unknown option refused" '[[ $rc -ne 0 && "$err" == *"unknown option"* ]]'
out=$("$B" metrics --help); rc=$?
check "--help" '[[ $rc -eq 0 && "$out" == *"--fused"* ]]'
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
