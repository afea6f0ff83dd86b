"""PyTorch twins of the Mamba ops (src/ops/mamba.c), for tests/test_ops_mamba.c. Cases in <out>/mamba/.

conv1d: depthwise causal conv as Mamba builds it, F.conv1d(x, w[:, None], b, padding=K-1,
        groups=D)[..., :L] (tap K-1 = current token). The reverse direction is literally
        flip -> conv -> flip.
scan:   a naive float64 loop over t of the selective-scan recurrence (the definition, written from
        the math like mamba_ssm's selective_scan_ref), gradients by autograd. The reverse direction
        is literally: flip u, delta, B, C, z in time, scan, flip y back.
"""
import numpy as np

from common import case_dir, randn, reference, save_safetensors


def _conv1d(x, w, bias, reverse):
    import torch
    import torch.nn.functional as F
    D, K = w.shape
    L = x.shape[-1]
    if reverse:
        x = torch.flip(x, [-1])
    y = F.conv1d(x, w.unsqueeze(1), bias, padding=K - 1, groups=D)[..., :L]
    return torch.flip(y, [-1]) if reverse else y


def _scan(u, delta, A_log, Bm, Cm, D, z):
    """u, delta, z (B, E, L); A_log (E, N); Bm, Cm (B, N, L); D (E)."""
    import torch
    A = -torch.exp(A_log)
    Bsz, E, L = u.shape
    h = torch.zeros(Bsz, E, A.shape[1], dtype=u.dtype)
    ys = []
    for t in range(L):
        dt = delta[:, :, t, None]                                    # (B, E, 1)
        h = torch.exp(dt * A) * h + dt * Bm[:, None, :, t] * u[:, :, t, None]
        ys.append((h * Cm[:, None, :, t]).sum(-1) + D * u[:, :, t])
    y = torch.stack(ys, dim=-1)
    if z is not None:
        y = y * torch.nn.functional.silu(z)
    return y


def _scan_dir(reverse, **t):
    import torch
    z = t.get("z")
    if not reverse:
        return _scan(t["u"], t["delta"], t["A_log"], t["Bm"], t["Cm"], t["D"], z)
    f = lambda x: torch.flip(x, [-1])
    y = _scan(f(t["u"]), f(t["delta"]), t["A_log"], f(t["Bm"]), f(t["Cm"]), t["D"], f(z) if z is not None else None)
    return f(y)


def _softplus_np(x):
    return np.log1p(np.exp(-np.abs(x))) + np.maximum(x, 0)


def generate(out_dir, data_dir):
    d = case_dir(out_dir, "mamba")
    # ---- depthwise causal conv1d: (B, D, L, K, bias?)
    conv_cases = [(2, 5, 37, 4, True), (1, 3, 3, 4, True), (2, 4, 20, 3, False)]
    for i, (B, D, L, K, has_bias) in enumerate(conv_cases):
        for rev in (0, 1):
            s = 1000 + 10 * i + rev
            inputs = {"x": randn((B, D, L), s), "w": randn((D, K), s + 1, 0.5)}
            if has_bias:
                inputs["bias"] = randn((D,), s + 2, 0.5)
            fn = (lambda x, w, bias=None, rev=rev: _conv1d(x, w, bias, rev))
            store = reference(fn, inputs, list(inputs), dy_seed=s + 3)
            meta = {"op": "conv1d", "B": B, "D": D, "L": L, "K": K, "reverse": rev}
            save_safetensors(f"{d}/conv1d_{i}_{'rev' if rev else 'fwd'}.safetensors", store, meta)

    # ---- selective scan: (B, E, N, L); both lengths are odd / not multiples of the test chunk 16
    scan_shapes = [(2, 5, 16, 37), (1, 3, 7, 50)]
    for i, (B, E, N, L) in enumerate(scan_shapes):
        for rev in (0, 1):
            for gated in (0, 1):
                s = 2000 + 100 * i + 10 * rev + gated
                inputs = {
                    "u": randn((B, E, L), s),
                    # softplus'ed like the model's dt: (0.05 .. 2), so exp(delta A) spans ~1 .. 1e-14
                    "delta": _softplus_np(randn((B, E, L), s + 1, 1.0) - 1.0).astype(np.float32),
                    # S4D-real init log(1..N) plus noise, so rows differ
                    "A_log": (np.log(np.arange(1, N + 1, dtype=np.float32))[None, :]
                              + randn((E, N), s + 2, 0.2)).astype(np.float32),
                    "Bm": randn((B, N, L), s + 3),
                    "Cm": randn((B, N, L), s + 4),
                    "D": randn((E,), s + 5),
                }
                if gated:
                    inputs["z"] = randn((B, E, L), s + 6)
                fn = (lambda rev=rev, **t: _scan_dir(rev, **t))
                store = reference(fn, inputs, list(inputs), dy_seed=s + 7)
                meta = {"op": "selective_scan", "B": B, "E": E, "N": N, "L": L, "reverse": rev,
                        "gated": gated, "chunk": 16}
                name = f"scan_{i}_{'rev' if rev else 'fwd'}_{'z' if gated else 'noz'}"
                save_safetensors(f"{d}/{name}.safetensors", store, meta)
