#!/usr/bin/env bash
# fsdiff info / --help / --version / bad arguments: exit codes and one-line errors.
set -u
pass=0; fail=0
check() { if eval "$2"; then echo "ok    $1"; pass=$((pass+1)); else echo "FAIL  $1"; fail=$((fail+1)); fi; }
B="$FSD_BIN"; R="$FSD_REF_DIR/safetensors"
out=$("$B" --version); check "--version prints BLAS and SIMD facts" '[[ "$out" == *BLAS:* && "$out" == *SIMD:* ]]'
out=$("$B" --help); check "--help lists info" '[[ "$out" == *info* ]]'
out=$("$B" info "$R/good/model_F16.safetensors"); check "info lists tensors and parameter count" '[[ "$out" == *"0.weight"*"[5, 3, 3, 3]"* && "$out" == *"parameters: 191"* ]]'
out=$("$B" info --json "$R/good/model_BF16.safetensors")
check "info --json is valid JSON" 'echo "$out" | "$FSD_PYTHON" -c "import json,sys; d=json.load(sys.stdin); assert d[\"parameters\"]==191 and len(d[\"tensor_list\"])==9"'
err=$("$B" info "$R/malformed/overlap.safetensors" 2>&1 >/dev/null); rc=$?
check "malformed file: exit 1, one error line" '[[ $rc -eq 1 && $(echo "$err" | wc -l) -eq 1 && "$err" == "fsdiff: error:"*overlapping* ]]'
err=$("$B" info /nonexistent.safetensors 2>&1); rc=$?
check "missing file: exit 1, names the file" '[[ $rc -eq 1 && "$err" == *"/nonexistent.safetensors: cannot open"* ]]'
err=$("$B" info --frobnicate x 2>&1); rc=$?
check "unknown flag refused" '[[ $rc -ne 0 && "$err" == *"unknown option"* ]]'
err=$("$B" no-such-command 2>&1); rc=$?
check "unknown command refused" '[[ $rc -ne 0 && "$err" == *"unknown command"* ]]'
err=$("$B" info --threads abc x 2>&1); rc=$?
check "bad --threads value refused" '[[ $rc -ne 0 && "$err" == *"not an integer"* ]]'
echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
