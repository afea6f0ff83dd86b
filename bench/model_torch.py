"""PyTorch side and driver of `bench/model`: the whole FS-Diff U-Net, ours (bench_model_bench, C,
bench/model_bench.c) against its PyTorch twin (tests/ref/fsdiff_twin.py) in float32 with
torch.set_num_threads(N), same N, same config, same shapes. Per case it runs ours and right after it
the twin, each in its own process (so each max RSS is that case's), and prints one table; with
--save the table goes to bench/MODEL_RESULTS.md too, with the date and machine facts.

Cases (default): the `cpu` preset at 128x128, inference forward (B=1 and B=4) and training step
(B=4), each with the preset's bidirectional Mamba stem and without it (`mamba=none`: the U-Net
alone); then one B=1 forward at 640x480 (one sampler step of `fuse` at that size).
  forward       ours: fsd_net_forward(train=0);  twin: model.eval() under torch.no_grad()
  training step ours: zero grads, fsd_net_forward(train=1), L1 loss + its gradient, fsd_net_backward,
                fsd_adam_step over all parameters;  twin: model.train(), opt.zero_grad(), forward,
                F.l1_loss, backward, torch.optim.Adam.step() (default settings of torch 1.13)

Usage: model_torch.py --bench PATH/bench_model_bench [--threads N] [--reps R] [--min-time S] [--best]
                      [--presets cpu,tiny,paper] [--filter SUBSTR] [--no-fuse] [--save FILE]
  --presets  tiny and paper run at 64x64 (B=4), cpu at 128x128
  --worker   (internal) run one twin case in this process and print one TSV line
"""
import argparse
import datetime
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def rss_bytes():
    """Peak RSS of this process image (VmHWM; ru_maxrss would include the forking parent's)."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


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


def fast_selective_scan(torch, F):
    """The twin's selective_scan (same maths, same outputs) with everything but the recurrence
    vectorised: exp(delta A) and delta B u for all tokens up front, then one fused multiply-add per
    token in the time loop (the twin's own loop does ~8 small ops per token, which makes its
    autograd graph at 128x128 take minutes). PyTorch has no CPU scan kernel; this is the cheapest
    plain-PyTorch form."""

    def scan(u, delta, A, Bm, Cm, D, z, reverse=False):
        L = u.shape[-1]
        # token-major (L, B, E, N) and unbind: one backward node for all tokens (indexing [..., t]
        # would make autograd build a full-size zero gradient per token, O(L^2))
        dA = torch.exp(delta.permute(2, 0, 1)[..., None] * A).unbind(0)
        dBu = ((delta * u).permute(2, 0, 1)[..., None] * Bm.permute(2, 0, 1)[:, :, None, :]).unbind(0)
        h = u.new_zeros(dA[0].shape)
        hs = [None] * L
        for t in (range(L - 1, -1, -1) if reverse else range(L)):
            h = torch.addcmul(dBu[t], h, dA[t])
            hs[t] = h
        y = torch.einsum("lben,nbl->bel", torch.stack(hs), Cm.permute(1, 0, 2)) + D[None, :, None] * u
        return y * F.silu(z)

    return scan


def worker(a):
    """One twin case in this process: prints  twin<TAB>ms<TAB>params<TAB>rss_base<TAB>rss_max<TAB>runs."""
    import torch
    import torch.nn.functional as F
    sys.path.insert(0, os.path.join(ROOT, "tests", "ref"))
    import fsdiff_twin as tw
    if not a.slow_scan:
        tw.selective_scan = fast_selective_scan(torch, F)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    over = {} if a.mamba is None else {"mamba": a.mamba}
    c = tw.make_config(a.preset, **over)
    model = tw.UNet(c).float()
    B, H, W = a.batch, a.height, a.width
    x = torch.rand(B, c["in_channels"], H, W) * 2 - 1
    gamma = torch.rand(B) * 0.8 + 0.1
    ctx = torch.rand(B, c["context_tokens"], c["context_dim"]) * 2 - 1
    target = torch.rand(B, c["out_channels"], H, W) * 2 - 1
    nparams = sum(p.numel() for p in model.parameters())
    rss0 = rss_bytes()
    if a.mode == "fwd":
        model.eval()

        def run():
            with torch.no_grad():
                model(x, gamma, ctx)
    else:
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)

        def run():
            opt.zero_grad()
            loss = F.l1_loss(model(x, gamma, ctx), target)
            loss.backward()
            opt.step()
    t = time_it(run, a.reps, a.min_time, a.best)
    n = max(a.reps, 1)
    print(f"twin\t{t * 1e3:.3f}\t{nparams}\t{rss0}\t{rss_bytes()}\t{n}")
    return 0


def run_ours(bench, preset, mode, B, H, W, mamba, common):
    args = [bench, "--tsv", "--preset", preset, "--mode", mode, "--batch", str(B), "--size", f"{H}x{W}"] + common
    if mamba:
        args += ["--mamba", mamba]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    r = [line.split("\t") for line in out.splitlines() if line.startswith("model\t")][0]
    keys = ["ms", "params", "act", "ws", "state", "rss0", "rss"]
    v = dict(zip(keys, [float(r[6])] + [int(s) for s in r[7:13]]))
    return v


def run_twin(preset, mode, B, H, W, mamba, a):
    args = [sys.executable, os.path.abspath(__file__), "--worker", "--preset", preset, "--mode", mode,
            "--batch", str(B), "--height", str(H), "--width", str(W), "--threads", str(a.threads),
            "--reps", str(a.reps), "--min-time", str(a.min_time)] + (["--best"] if a.best else [])
    if mamba:
        args += ["--mamba", mamba]
    out = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    r = [line.split("\t") for line in out.splitlines() if line.startswith("twin\t")][0]
    return {"ms": float(r[1]), "params": int(r[2]), "rss0": int(r[3]), "rss": int(r[4])}


def machine_facts(threads):
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()
    import torch
    return (f"{datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}, {platform.node()}: {cpu}, "
            f"{os.cpu_count()} logical CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
            f"PyTorch {torch.__version__} (float32, {threads} threads, "
            f"{torch.__config__.parallel_info().splitlines()[0] if hasattr(torch, '__config__') else ''}), "
            f"ours: OpenBLAS + OpenMP, {threads} threads")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", help="path of the bench_model_bench executable")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--min-time", type=float, default=1.0)
    ap.add_argument("--best", action="store_true")
    ap.add_argument("--presets", default="cpu")
    ap.add_argument("--filter", default="")
    ap.add_argument("--no-fuse", action="store_true")
    ap.add_argument("--save", default="")
    # worker-only
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--mode", default="fwd", choices=["fwd", "train"])
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--height", type=int, default=128)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--mamba", default=None)
    ap.add_argument("--slow-scan", action="store_true", help="(worker) keep the twin's own per-token scan loop")
    a = ap.parse_args()
    if a.worker:
        return worker(a)
    if not a.bench:
        ap.error("--bench is required")

    common = ["--threads", str(a.threads), "--reps", str(a.reps), "--min-time", str(a.min_time)]
    common += ["--best"] if a.best else []
    cases = []  # (label, preset, mode, B, H, W, mamba override)
    for preset in [p for p in a.presets.split(",") if p]:
        S = 128 if preset == "cpu" else 64
        for mamba, tag in ((None, ""), ("none", " mamba=none")):
            if preset == "cpu":
                cases.append((f"{preset}{tag}", preset, "fwd", 1, S, S, mamba))
            cases.append((f"{preset}{tag}", preset, "fwd", 4, S, S, mamba))
            cases.append((f"{preset}{tag}", preset, "train", 4, S, S, mamba))
    if not a.no_fuse:
        cases.append(("cpu (fuse step)", "cpu", "fwd", 1, 480, 640, None))
        cases.append(("cpu (fuse step) mamba=none", "cpu", "fwd", 1, 480, 640, "none"))
    cases = [c for c in cases if a.filter in f"{c[0]} {c[2]}"]

    lines = []

    def emit(s=""):
        print(s, flush=True)
        lines.append(s)

    stat = "best" if a.best else "median"
    facts = machine_facts(a.threads)
    emit(f"fsdiff U-Net vs its PyTorch twin (tests/ref/fsdiff_twin.py), {a.threads} threads each, {stat} of "
         f">= {a.reps} runs and >= {a.min_time:g} s per case after one warm-up; each case runs ours, then the twin")
    emit(f"machine: {facts}")
    emit()
    MiB = 1.0 / 1048576
    hdr = (f"| {'config':<26} | {'step':<5} | {'B':>1} | {'H x W':>7} | {'ours ms':>8} | {'torch ms':>8} | {'ratio':>5} | "
           f"{'ours act+ws+state MiB':>21} | {'ours RSS MiB':>12} | {'torch RSS MiB':>13} |")
    emit(hdr)
    emit("|" + "|".join("-" * (len(col)) for col in hdr.split("|")[1:-1]) + "|")
    for label, preset, mode, B, H, W, mamba in cases:
        o = run_ours(a.bench, preset, mode, B, H, W, mamba, common)
        t = run_twin(preset, mode, B, H, W, mamba, a)
        if o["params"] != t["params"]:
            emit(f"WARNING: parameter counts differ: ours {o['params']}, twin {t['params']}")
        ratio = t["ms"] / o["ms"]
        mem = f"{o['act'] * MiB:.0f}+{o['ws'] * MiB:.0f}+{o['state'] * MiB:.0f}={(o['act'] + o['ws'] + o['state']) * MiB:.0f}"
        emit(f"| {label:<26} | {'fwd' if mode == 'fwd' else 'train':<5} | {B:>1} | {f'{H}x{W}':>7} | {o['ms']:8.1f} | "
             f"{t['ms']:8.1f} | {ratio:5.2f} | {mem:>21} | {o['rss'] * MiB:5.0f} ({o['rss0'] * MiB:4.0f}) | "
             f"{t['rss'] * MiB:6.0f} ({t['rss0'] * MiB:4.0f}) |")
    emit()
    emit("ratio = torch time / our time (> 1: ours faster). step: fwd = one inference forward (train=0 / no_grad, "
         "eval); train = zero grads + forward (dropout on) + L1 loss + backward + Adam over all parameters.")
    emit("ours act+ws+state: peak activation arena + peak scratch arena + parameters (train: + gradients + Adam m, v), "
         "from fsd_net_memory. RSS: process max RSS at the end (in parentheses: after building the net and "
         "inputs, before the first run; for torch that includes the ~200+ MiB of the torch import).")
    emit("Mamba stem: PyTorch has no CPU selective-scan kernel; the twin's scan runs as fast_selective_scan here "
         "(vectorised except one fused multiply-add per token in a Python loop over the H*W tokens), so the "
         "mamba=none rows are the fair comparison of the convolution/attention U-Net alone.")
    if a.save:
        with open(a.save, "w") as f:
            f.write("# bench/model results\n\nCommand: `bench/model " + " ".join(sys.argv[3:]) + "`\n\n```\n")
            f.write("\n".join(lines[:2]) + "\n```\n\n" + "\n".join(lines[3:]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
