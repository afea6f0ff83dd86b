"""Generate all reference data for the C tests: runs generate(out_dir, data_dir) of every
tests/ref/ref_*.py module. Usage: gen_all.py --out DIR [--data DIR] [--only NAME ...]"""
import argparse
import glob
import importlib.util
import os
import sys
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--data", default=os.environ.get("FSDIFF_DATA", os.path.join(here, "../../../shared/data")))
    ap.add_argument("--only", nargs="*", help="module names (e.g. ref_conv)")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    try:
        import torch
        torch.set_num_threads(2)
    except ImportError:
        print("python3-torch is required for the reference twins (apt-get install python3-torch)")
        return 1
    failed = 0
    for path in sorted(glob.glob(os.path.join(here, "ref_*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        if a.only and name not in a.only:
            continue
        t0 = time.time()
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(mod)
            mod.generate(a.out, a.data)
            print(f"ok    {name} ({time.time() - t0:.1f}s)")
        except Exception as e:  # report and continue, the C tests then fail on missing cases
            import traceback
            traceback.print_exc()
            print(f"FAIL  {name}: {e}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
