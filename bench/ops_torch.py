"""PyTorch CPU side and driver of `bench/ops`: for every case of bench_ops_bench (C, bench/ops_bench.c)
it runs our op (`bench_ops_bench --case I`) and right after it the same op in PyTorch CPU with
torch.set_num_threads(N), so both see the same machine load, and prints one table with the ratios.

Usage: ops_torch.py --bench PATH/bench_ops_bench [--threads N] [--filter SUBSTR] [--reps R]
                    [--min-time S] [--best] [--conv-algo auto|im2col|winograd]

Adding an op family: add a function below that takes the case's integer arguments (the same ones as
the C case table) and returns (forward, backward) callables, and register it in OPS under the op
name the C bench uses. Forward runs under no_grad; backward is torch.autograd.grad of a stored
graph w.r.t. every input and parameter, added into persistent gradient buffers (what our
*_backward computes: it accumulates), so the forward is not re-timed inside the backward.
"""
import argparse
import statistics
import subprocess
import sys
import time


def _grad_fn(torch, y, inputs, dy):
    """Backward like ours: every input/parameter gradient, ACCUMULATED into persistent buffers
    (our *_backward does +=). Without the accumulation PyTorch's concat/bias backward would only
    return views of dy and copy nothing."""
    bufs = [torch.zeros_like(t) for t in inputs]

    def run():
        for b, g in zip(bufs, torch.autograd.grad(y, inputs, dy, retain_graph=True)):
            b.add_(g)

    return run


def conv2d(torch, a):
    B, Ci, H, W, Co, k, s, p = a
    F = torch.nn.functional
    x = torch.randn(B, Ci, H, W, requires_grad=True)
    w = (torch.randn(Co, Ci, k, k) * 0.1).requires_grad_(True)
    b = torch.randn(Co, requires_grad=True)

    def fwd():
        with torch.no_grad():
            return F.conv2d(x, w, b, stride=s, padding=p)

    y = F.conv2d(x, w, b, stride=s, padding=p)
    return fwd, _grad_fn(torch, y, [x, w, b], torch.randn_like(y))


def upsample2x(torch, a):
    B, C, H, W = a
    x = torch.randn(B, C, H, W, requires_grad=True)
    up = lambda t: torch.nn.functional.interpolate(t, scale_factor=2, mode="nearest")

    def fwd():
        with torch.no_grad():
            return up(x)

    y = up(x)
    return fwd, _grad_fn(torch, y, [x], torch.randn_like(y))


def channel_bias(torch, a):
    B, C, H, W = a
    x = torch.randn(B, C, H, W, requires_grad=True)
    bias = torch.randn(B, C, requires_grad=True)

    def fwd():
        with torch.no_grad():
            return x + bias[:, :, None, None]

    y = x + bias[:, :, None, None]
    return fwd, _grad_fn(torch, y, [x, bias], torch.randn_like(y))


def concat(torch, a):
    B, Ca, Cb, H, W = a
    xa = torch.randn(B, Ca, H, W, requires_grad=True)
    xb = torch.randn(B, Cb, H, W, requires_grad=True)

    def fwd():
        with torch.no_grad():
            return torch.cat([xa, xb], 1)

    y = torch.cat([xa, xb], 1)
    return fwd, _grad_fn(torch, y, [xa, xb], torch.randn_like(y))


OPS = {"conv2d": conv2d, "upsample2x": upsample2x, "channel_bias": channel_bias, "concat": concat}


def time_it(fn, reps, min_time, best):
    """Median (or best) wall time in seconds: one warm-up, then >= reps runs and >= min_time seconds."""
    fn()
    ts = []
    start = time.perf_counter()
    while len(ts) < 200 and (len(ts) < reps or time.perf_counter() - start < min_time):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return min(ts) if best else statistics.median(ts)


def run_c(bench, args):
    out = subprocess.run([bench] + args, check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", required=True, help="path of the bench_ops_bench executable")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--filter", default="", help="only ops whose name contains this")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.3)
    ap.add_argument("--best", action="store_true")
    ap.add_argument("--conv-algo", default="auto", choices=["auto", "im2col", "winograd"])
    a = ap.parse_args()

    import torch
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    common = ["--threads", str(a.threads), "--reps", str(a.reps), "--min-time", str(a.min_time),
              "--conv-algo", a.conv_algo] + (["--best"] if a.best else [])

    stat = "best" if a.best else "median"
    print(f"fsdiff ops vs PyTorch {torch.__version__} CPU, {a.threads} threads each, {stat} of >= {a.reps} runs "
          f"and >= {a.min_time:g} s per op and direction; each case runs ours, then PyTorch")
    sg = run_c(a.bench, ["--tsv", "--sgemm-only"] + common)[0]
    sgemm = float(sg[2])
    print(f"machine sgemm ({sg[1].replace(',', 'x')}, same OpenBLAS, {a.threads} threads): {sgemm:.1f} GFLOP/s")
    hdr = (f"{'op':<13} {'shape':<32} {'unit':>7} | {'ours fwd':>16} {'torch fwd':>16} {'ratio':>5} | "
           f"{'ours bwd':>16} {'torch bwd':>16} {'ratio':>5} | {'fwd/sgemm':>9}")
    print(hdr)
    print("-" * len(hdr))
    conv_fwd_pct, ratios = [], []
    for idx, op, args in run_c(a.bench, ["--list"]):
        if a.filter not in op:
            continue
        args = [int(v) for v in args.split(",")]
        r = run_c(a.bench, ["--tsv", "--no-sgemm", "--case", idx] + common)[0]
        label, unit = r[3], r[4]
        fw, bw, tf, tb = float(r[5]), float(r[6]), float(r[7]) * 1e-3, float(r[8]) * 1e-3
        cell = lambda work, t: f"{work / t * 1e-9:7.1f} ({t * 1e3:6.2f}ms)"
        if op not in OPS:
            print(f"{op:<13} {label:<32} {unit:>7} | {cell(fw, tf)} {'-':>16} {'':>5} | {cell(bw, tb)}  "
                  "(no PyTorch twin in ops_torch.py)", flush=True)
            continue
        f_fwd, f_bwd = OPS[op](torch, args)
        pf = time_it(f_fwd, a.reps, a.min_time, a.best)
        pb = time_it(f_bwd, a.reps, a.min_time, a.best)
        del f_fwd, f_bwd
        rf, rb = pf / tf, pb / tb  # ours/PyTorch speed = their time / our time
        extra = ""
        if op == "conv2d":
            pct = 100 * fw / tf * 1e-9 / sgemm
            extra = f"{pct:8.0f}%"
            if args[5] == 3:
                conv_fwd_pct.append(pct)
            ratios += [rf, rb]
        print(f"{op:<13} {label:<32} {unit:>7} | {cell(fw, tf)} {cell(fw, pf)} {rf:5.2f} | "
              f"{cell(bw, tb)} {cell(bw, pb)} {rb:5.2f} | {extra:>9}", flush=True)
    print("-" * len(hdr))
    print("ratio = ours/PyTorch speed (>1: ours faster). conv FLOPs are direct-convolution FLOPs "
          "(2*B*Cout*Cin*k*k*Ho*Wo fwd, 2x that bwd) whatever the algorithm; (wino) = Winograd F(2x2,3x3).")
    print("Backward on both sides = all input and parameter gradients, accumulated into persistent buffers.")
    if conv_fwd_pct:
        print(f"conv 3x3 forward as % of sgemm: min {min(conv_fwd_pct):.0f}%, median "
              f"{statistics.median(conv_fwd_pct):.0f}%, max {max(conv_fwd_pct):.0f}%")
    if ratios:
        print(f"conv ours/PyTorch over all conv cases, fwd and bwd: min {min(ratios):.2f}, median "
              f"{statistics.median(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
