"""Reads a safetensors file written by the C writer (tests/test_safetensors.c) with our own
independent Python reader and checks it against expectations. argv: written.safetensors convert.safetensors
Prints 'ok' and exits 0 if every tensor matches torch's own conversion bit for bit."""
import sys

import numpy as np

from common import load_safetensors


def main():
    written, meta = load_safetensors(sys.argv[1])
    ref, _ = load_safetensors(sys.argv[2])
    checks = {"as_f32": ref["f32"], "as_f16": ref["as_f16"], "as_bf16": ref["as_bf16"]}
    bad = 0
    for k, want in checks.items():
        got = written[k].astype(np.float32)
        same = np.array_equal(got.view(np.uint32), want.astype(np.float32).view(np.uint32))
        if not same:
            i = int(np.argmax(got.view(np.uint32) != want.astype(np.float32).view(np.uint32)))
            print(f"mismatch {k} at {i}: {got[i]!r} vs {want[i]!r}")
            bad += 1
    if meta.get("fsdiff.test") != "value with \"quotes\" and \\ backslash":
        print("metadata mismatch:", meta)
        bad += 1
    if written["shaped"].shape != (2, 3, 1):
        print("shape mismatch", written["shaped"].shape)
        bad += 1
    print("ok" if not bad else "FAIL")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
