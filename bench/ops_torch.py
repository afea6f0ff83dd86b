"""PyTorch CPU side and driver of `bench/ops`: for every case of bench_ops_bench (C, bench/ops_bench.c)
it runs our op (`bench_ops_bench --case I`) and right after it the same op in PyTorch CPU with
torch.set_num_threads(N), so both see the same machine load, and prints one table with the ratios.

Usage: ops_torch.py --bench PATH/bench_ops_bench [--threads N] [--filter SUBSTR] [--case I,J] [--reps R]
                    [--min-time S] [--best] [--conv-algo auto|im2col|winograd|winograd-s2|direct]
       ops_torch.py --selftest     (the chunked torch selective scan against the naive loop)

Adding an op family: add a function below that takes the case's integer arguments (the same ones as
the C case table) and returns (forward, backward) callables (backward None: forward only), or a
list of (variant, forward, backward) to time several PyTorch formulations against one run of ours,
and register it in OPS under the op name the C bench uses. Forward runs under no_grad; backward is torch.autograd.grad of a stored
graph w.r.t. every input and parameter, added into persistent gradient buffers (what our
*_backward computes: it accumulates), so the forward is not re-timed inside the backward.
"""
import argparse
import os
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


def _fwd_bwd(torch, f, inputs):
    """(forward, backward) of y = f(*inputs): forward under no_grad, backward via _grad_fn on one
    stored graph with a random dy (a scalar 1 for 0-d outputs, like our dloss = 1)."""
    def fwd():
        with torch.no_grad():
            return f(*inputs)

    y = f(*inputs)
    dy = torch.ones_like(y) if y.dim() == 0 else torch.randn_like(y)
    return fwd, _grad_fn(torch, y, inputs, dy)


def _leaf(t):
    return t.detach().requires_grad_(True)


def groupnorm(torch, a):
    B, C, H, W, G = a
    F = torch.nn.functional
    x, w, b = _leaf(torch.randn(B, C, H, W)), _leaf(torch.randn(C)), _leaf(torch.randn(C))
    return _fwd_bwd(torch, lambda x, w, b: F.group_norm(x, G, w, b, eps=1e-5), [x, w, b])


def layernorm(torch, a):
    N, C = a
    F = torch.nn.functional
    x, w, b = _leaf(torch.randn(N, C)), _leaf(torch.randn(C)), _leaf(torch.randn(C))
    return _fwd_bwd(torch, lambda x, w, b: F.layer_norm(x, (C,), w, b, eps=1e-5), [x, w, b])


def layernorm_cm(torch, a):
    """(B, C, L) normalised over C: torch has no channel-major LayerNorm, so transpose to (B, L, C),
    F.layer_norm, transpose back (a view: no final .contiguous(), which favours torch slightly)."""
    B, C, H, W = a
    F = torch.nn.functional
    x, w, b = _leaf(torch.randn(B, C, H * W)), _leaf(torch.randn(C)), _leaf(torch.randn(C))
    f = lambda x, w, b: F.layer_norm(x.transpose(1, 2), (C,), w, b, eps=1e-5).transpose(1, 2)
    return _fwd_bwd(torch, f, [x, w, b])


def linear(torch, a):
    N, i, o = a
    F = torch.nn.functional
    x, W, b = _leaf(torch.randn(N, i)), _leaf(torch.randn(o, i) * 0.05), _leaf(torch.randn(o))
    return _fwd_bwd(torch, F.linear, [x, W, b])


def _act(name):
    def op(torch, a):
        B, C, H, W = a
        F = torch.nn.functional
        f = {"silu": F.silu, "gelu": F.gelu, "softplus": F.softplus}[name]  # gelu: exact erf; softplus: beta 1, threshold 20
        return _fwd_bwd(torch, f, [_leaf(torch.rand(B, C, H, W) * 8 - 4)])
    return op


def geglu(torch, a):
    N, Fd = a
    gelu = torch.nn.functional.gelu

    def f(x):
        v, g = x.chunk(2, dim=-1)  # [value | gate]
        return v * gelu(g)

    return _fwd_bwd(torch, f, [_leaf(torch.randn(N, 2 * Fd))])


def noise_emb(torch, a):
    """SR3's PositionalEncoding, as written there (frequencies recomputed every call)."""
    B, C = a
    import math

    def f(gamma):
        count = C // 2
        step = torch.arange(count, dtype=gamma.dtype) / count
        enc = gamma.unsqueeze(1) * torch.exp(-math.log(1e4) * step.unsqueeze(0))
        return torch.cat([torch.sin(enc), torch.cos(enc)], dim=-1)

    return _fwd_bwd(torch, f, [_leaf(torch.rand(B))])


def _loss(name):
    def op(torch, a):
        F = torch.nn.functional
        f = {"l1_loss": F.l1_loss, "mse_loss": F.mse_loss}[name]  # reduction="mean"
        return _fwd_bwd(torch, f, [_leaf(torch.randn(*a)), _leaf(torch.randn(*a))])
    return op


def _adam(decoupled):
    def op(torch, a):
        (n,) = a
        p = torch.nn.Parameter(torch.randn(n))
        p.grad = torch.randn(n)
        if decoupled:
            opt = torch.optim.AdamW([p], lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, foreach=False)
        else:
            opt = torch.optim.Adam([p], lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, foreach=False)
        return opt.step, None
    return op


def attention(torch, a):
    """Two PyTorch variants of the attention core, both timed against the same run of ours:
      tok:   the model's layout. q (B, Nq, H*dh), k, v (B, Nk, H*dh) token-major like ours; torch
             splits heads (view + transpose), softmax(q k^T * scale) v, merges heads back to a
             contiguous (B, Nq, H*dh) (what ldm/diffusers attention does with rearrange).
      heads: q, k, v already (B, H, N, dh) contiguous and out left as (B, H, Nq, dh): the core
             alone, torch's most favourable layout.
    Autograd keeps P = softmax(...) for its backward (like our saveP = 1); the P flag of the case
    only changes our side."""
    B, Nq, Nk, H, dh, _saveP = a
    C, scale = H * dh, dh ** -0.5

    def core(q, k, v):
        return torch.softmax(q @ k.transpose(-1, -2) * scale, dim=-1) @ v

    def tok(q, k, v):
        split = lambda t, n: t.view(B, n, H, dh).transpose(1, 2)
        return core(split(q, Nq), split(k, Nk), split(v, Nk)).transpose(1, 2).reshape(B, Nq, C)

    t_in = [_leaf(torch.randn(B, n, C)) for n in (Nq, Nk, Nk)]
    h_in = [_leaf(torch.randn(B, H, n, dh)) for n in (Nq, Nk, Nk)]
    return [("tok",) + _fwd_bwd(torch, tok, t_in), ("heads",) + _fwd_bwd(torch, core, h_in)]


def conv1d_causal(torch, a):
    """Mamba's depthwise causal conv: F.conv1d(groups=D, padding=K-1)[..., :L]; reverse = flip,
    conv, flip (what a bidirectional Vim-style block does in torch)."""
    B, D, L, K, rev = a
    F = torch.nn.functional

    def f(x, w, b):
        if rev:
            x = x.flip(-1)
        y = F.conv1d(x, w.unsqueeze(1), b, padding=K - 1, groups=D)[..., :L]
        return y.flip(-1) if rev else y

    return _fwd_bwd(torch, f, [_leaf(torch.randn(B, D, L)), _leaf(torch.randn(D, K)), _leaf(torch.randn(D))])


def scan_chunked(torch, u, delta, A_log, Bm, Cm, D, z, T):
    """Selective scan in vectorised PyTorch, O(L) work, numerically safe (no exp of positive
    cumulative sums): split L into nc = L/T chunks of T steps.
      1. within every chunk at once, the recurrence from a zero state: T Python steps over
         (B, E, N, nc) tensors;
      2. the state entering each chunk: nc Python steps over (B, E, N) tensors,
         H_c = P_c H_{c-1} + h_end_c with P_c the chunk's total decay;
      3. h = h_local + exp(cumsum(delta A)) * H_in (decays <= 1, so no overflow).
    The big tensors are (T, B, E, N, nc): the step index outermost, so every Python step works on
    a contiguous slice (with the step index innermost each step would stride through memory and
    the whole thing runs ~10x slower).
    u, delta, z (B, E, L); A_log (E, N); Bm, Cm (B, N, L); D (E); L % T == 0."""
    Bsz, E, L = u.shape
    N, nc = A_log.shape[1], L // T
    steps_first = lambda t: t.reshape(t.shape[0], t.shape[1], nc, T).permute(3, 0, 1, 2).contiguous()
    dl, du, Bp, Cp = (steps_first(t) for t in (delta, delta * u, Bm, Cm))     # (T, B, E|N, nc)
    A = -torch.exp(A_log)
    dtA = dl[:, :, :, None, :] * A[None, None, :, :, None]                   # (T, B, E, N, nc)
    dBu = du[:, :, :, None, :] * Bp[:, :, None, :, :]
    # unbind, not indexing: the backward of T index ops would materialise T full-size zero
    # gradients; unbind's backward is one stack.
    dA, dBu_t = torch.exp(dtA).unbind(0), dBu.unbind(0)
    h, hs = dBu_t[0], [dBu_t[0]]
    for t in range(1, T):
        h = dA[t] * h + dBu_t[t]
        hs.append(h)
    hloc = torch.stack(hs)                              # (T, B, E, N, nc)
    decay = torch.exp(torch.cumsum(dtA, dim=0))         # prod of dA from the chunk start through t
    P_end, h_end = decay[T - 1].unbind(-1), hs[T - 1].unbind(-1)
    H = torch.zeros(Bsz, E, N, dtype=u.dtype)
    carries = [H]
    for c in range(nc - 1):
        H = P_end[c] * H + h_end[c]
        carries.append(H)
    h = hloc + decay * torch.stack(carries, dim=-1)     # (T, B, E, N, nc)
    y = (h * Cp[:, :, None, :, :]).sum(3)               # (T, B, E, nc)
    y = y.permute(1, 2, 3, 0).reshape(Bsz, E, L) + D[None, :, None] * u
    return y * torch.nn.functional.silu(z)


def scan_naive(torch, u, delta, A_log, Bm, Cm, D, z):
    """The definition: a sequential loop over t (only for the self-test at small L)."""
    A = -torch.exp(A_log)
    h = torch.zeros(u.shape[0], u.shape[1], A.shape[1], dtype=u.dtype)
    ys = []
    for t in range(u.shape[2]):
        dt = delta[:, :, t, None]
        h = torch.exp(dt * A) * h + dt * Bm[:, None, :, t] * u[:, :, t, None]
        ys.append((h * Cm[:, None, :, t]).sum(-1) + D * u[:, :, t])
    return torch.stack(ys, dim=-1) * torch.nn.functional.silu(z)


def _scan_inputs(torch, B, E, N, L, dtype=None):
    dt = dtype or torch.float32
    F = torch.nn.functional
    u = torch.randn(B, E, L, dtype=dt)
    delta = F.softplus(torch.rand(B, E, L, dtype=dt) * 2 - 2)           # like ours: softplus(U(-1,1) - 1)
    A_log = torch.log(torch.arange(1, N + 1, dtype=dt)).repeat(E, 1)     # S4D-real init
    Bm, Cm = torch.randn(B, N, L, dtype=dt), torch.randn(B, N, L, dtype=dt)
    D, z = torch.randn(E, dtype=dt), torch.randn(B, E, L, dtype=dt)
    return [_leaf(t) for t in (u, delta, A_log, Bm, Cm, D, z)]


SCAN_T = 128  # chunk length of the torch formulation (~sqrt(L) at L = 16384: 128 + 128 Python steps)


def selective_scan(torch, a):
    """No fused selective scan in torch 1.13; the naive loop (16384 Python steps forward, a
    ~100k-node autograd graph backward) takes seconds per call, so the twin is scan_chunked above
    (checked against the naive loop by `ops_torch.py --selftest`). Reverse = flip u, delta, B, C,
    z in time, scan, flip y back."""
    B, E, N, L, rev = a
    T = SCAN_T if L % SCAN_T == 0 else 1

    def f(u, delta, A_log, Bm, Cm, D, z):
        if rev:
            u, delta, Bm, Cm, z = (t.flip(-1) for t in (u, delta, Bm, Cm, z))
        y = scan_chunked(torch, u, delta, A_log, Bm, Cm, D, z, T)
        return y.flip(-1) if rev else y

    return _fwd_bwd(torch, f, _scan_inputs(torch, B, E, N, L))


def selftest(torch):
    """The chunked torch scan equals the naive loop (float64, values and all 7 gradients)."""
    torch.manual_seed(1)
    worst = 0.0
    for (B, E, N, L, T) in [(2, 3, 16, 64, 8), (1, 2, 5, 48, 16), (1, 2, 4, 12, 1)]:
        ins = _scan_inputs(torch, B, E, N, L, torch.float64)
        y1 = scan_chunked(torch, *ins, T)
        y0 = scan_naive(torch, *ins)
        dy = torch.randn_like(y0)
        g1 = torch.autograd.grad(y1, ins, dy)
        g0 = torch.autograd.grad(y0, ins, dy)
        for p, q in [(y1, y0)] + list(zip(g1, g0)):
            worst = max(worst, ((p - q).abs().max() / q.abs().max().clamp_min(1e-30)).item())
    ok = worst < 1e-10
    print(f"selftest: chunked torch scan vs naive loop (float64, y and 7 grads): max rel error {worst:.2e} "
          f"({'ok' if ok else 'FAIL'}, tolerance 1e-10)")
    return 0 if ok else 1


OPS = {"conv2d": conv2d, "upsample2x": upsample2x, "channel_bias": channel_bias, "concat": concat,
       "groupnorm": groupnorm, "layernorm": layernorm, "layernorm_cm": layernorm_cm, "linear": linear,
       "silu": _act("silu"), "gelu": _act("gelu"), "softplus": _act("softplus"), "geglu": geglu,
       "noise_emb": noise_emb, "l1_loss": _loss("l1_loss"), "mse_loss": _loss("mse_loss"),
       "adam": _adam(False), "adamw": _adam(True), "attention": attention, "conv1d_causal": conv1d_causal,
       "selective_scan": selective_scan}


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


def cpu_snapshot():
    """(wall s, busy CPU seconds of the whole machine, CPU seconds of this process and its children)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    t = os.times()
    return time.perf_counter(), busy, t.user + t.system + t.children_user + t.children_system


def other_load(s0, s1):
    """Share of the machine's CPUs that OTHER processes used between two snapshots (0..1): the
    noise indicator printed per case (the bench itself uses --threads cores at most)."""
    wall = s1[0] - s0[0]
    other = (s1[1] - s0[1]) - (s1[2] - s0[2])
    return max(0.0, other / (wall * (os.cpu_count() or 1))) if wall > 0 else 0.0


def run_c(bench, args):
    out = subprocess.run([bench] + args, check=True, capture_output=True, text=True).stdout
    return [line.split("\t") for line in out.splitlines() if line]


NOISY = 0.10  # other processes' CPU share above which a row is marked noisy


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bench", help="path of the bench_ops_bench executable")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--filter", default="", help="only ops whose name contains this")
    ap.add_argument("--case", default="", help="only these case indices (comma list, as bench_ops_bench --list)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--min-time", type=float, default=0.3)
    ap.add_argument("--best", action="store_true")
    ap.add_argument("--conv-algo", default="auto", choices=["auto", "im2col", "winograd", "winograd-s2", "direct"])
    ap.add_argument("--selftest", action="store_true", help="check the torch scan formulation and exit")
    a = ap.parse_args()

    import torch
    torch.set_num_threads(a.threads)
    if a.selftest:
        return selftest(torch)
    if not a.bench:
        ap.error("--bench is required")
    torch.manual_seed(0)
    common = ["--threads", str(a.threads), "--reps", str(a.reps), "--min-time", str(a.min_time),
              "--conv-algo", a.conv_algo] + (["--best"] if a.best else [])

    stat = "best" if a.best else "median"
    print(f"fsdiff ops vs PyTorch {torch.__version__} CPU, {a.threads} threads each, {stat} of >= {a.reps} runs "
          f"and >= {a.min_time:g} s per op and direction; each case runs ours, then PyTorch")
    sg = run_c(a.bench, ["--tsv", "--sgemm-only"] + common)[0]
    sgemm = float(sg[2])
    print(f"machine sgemm ({sg[1].replace(',', 'x')}, same OpenBLAS, {a.threads} threads): {sgemm:.1f} GFLOP/s")
    hdr = (f"{'op':<14} {'shape':<37} {'unit':>7} | {'ours fwd':>17} {'torch fwd':>17} {'ratio':>5} | "
           f"{'ours bwd':>17} {'torch bwd':>17} {'ratio':>5} | {'fwd/sgemm':>9} {'other':>5}")
    print(hdr)
    print("-" * len(hdr))
    conv_fwd_pct, conv_ratios, slow, noisy = [], [], [], 0
    cell = lambda work, t: f"{work / t * 1e-9:7.1f} ({t * 1e3:7.3f}ms)"
    for idx, op, args in run_c(a.bench, ["--list"]):
        if a.filter not in op or (a.case and idx not in a.case.split(",")):
            continue
        args = [int(v) for v in args.split(",")]
        snap0 = cpu_snapshot()
        r = run_c(a.bench, ["--tsv", "--no-sgemm", "--case", idx] + common)[0]
        label, unit = r[3], r[4]
        fw, bw, tf, tb = float(r[5]), float(r[6]), float(r[7]) * 1e-3, float(r[8]) * 1e-3
        pct = f"{100 * fw / tf * 1e-9 / sgemm:8.0f}%" if unit == "GFLOP/s" else ""
        ours_b = cell(bw, tb) if tb > 0 else f"{'-':>17}"
        if op not in OPS:
            busy = other_load(snap0, cpu_snapshot())
            noisy += busy > NOISY
            print(f"{op:<14} {label:<37} {unit:>7} | {cell(fw, tf)} {'no torch twin':>17} {'':>5} | {ours_b} "
                  f"{'':>17} {'':>5} | {pct:>9} {100 * busy:4.0f}%", flush=True)
            continue
        variants = OPS[op](torch, args)
        if isinstance(variants, tuple):
            variants = [("",) + variants]
        for name, f_fwd, f_bwd in variants:
            pf = time_it(f_fwd, a.reps, a.min_time, a.best)
            pb = time_it(f_bwd, a.reps, a.min_time, a.best) if f_bwd and tb > 0 else 0
            busy = other_load(snap0, cpu_snapshot())  # ours and this torch variant
            noisy += busy > NOISY
            rf = pf / tf  # ours/PyTorch speed = their time / our time
            rb = pb / tb if pb else 0
            lab = f"{label} t:{name}" if name else label
            torch_b = cell(bw, pb) if pb else f"{'-':>17}"
            rbs = f"{rb:5.2f}" if pb else f"{'':>5}"
            print(f"{op:<14} {lab:<37} {unit:>7} | {cell(fw, tf)} {cell(fw, pf)} {rf:5.2f} | "
                  f"{ours_b} {torch_b} {rbs} | {pct:>9} {100 * busy:4.0f}%", flush=True)
            slow += [(op, idx, lab, d, x, busy) for d, x in (("fwd", rf), ("bwd", rb)) if x and x < 1.0]
            if op == "conv2d":
                conv_ratios += [rf, rb]
                if args[5] == 3:
                    conv_fwd_pct.append(100 * fw / tf * 1e-9 / sgemm)
        del variants
    print("-" * len(hdr))
    print("ratio = ours/PyTorch speed (>1: ours faster). conv FLOPs are direct-convolution FLOPs "
          "(2*B*Cout*Cin*k*k*Ho*Wo fwd, 2x that bwd) whatever the algorithm; (wino) = Winograd F(2x2,3x3), (wino-s2) = its polyphase stride-2 form, (direct) = direct 3x3; A/B = forward A, backward B.")
    print("Backward on both sides = all input and parameter gradients, accumulated into persistent buffers.")
    print("GB/s = compulsory bytes read + written; Gupd/s = 1e9 scan state updates (B*E*N*L per call); "
          "attention t:tok = torch given our token-major layout, t:heads = torch given contiguous heads.")
    if conv_fwd_pct:
        print(f"conv 3x3 forward as % of sgemm: min {min(conv_fwd_pct):.0f}%, median "
              f"{statistics.median(conv_fwd_pct):.0f}%, max {max(conv_fwd_pct):.0f}%")
    if conv_ratios:
        print(f"conv ours/PyTorch over all conv cases, fwd and bwd: min {min(conv_ratios):.2f}, median "
              f"{statistics.median(conv_ratios):.2f}")
    print(f"other = share of the {os.cpu_count()} CPUs used by other processes while the row was measured; "
          f"{noisy} row(s) above {100 * NOISY:.0f}% (noisy: rerun them with --case I)")
    if slow:
        print(f"{len(slow)} ratio(s) < 1.0 (case index, other load):")
        for o, i, l, d, x, b in slow:
            print(f"  [{i}] {o} {l} {d} {x:.2f}  (other {100 * b:.0f}%{', noisy' if b > NOISY else ''})")
    else:
        print("every ratio >= 1.0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
