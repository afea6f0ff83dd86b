"""Reference cases for tests/test_ops_norm.c: GroupNorm, LayerNorm over rows, channel-major
LayerNorm, computed by torch.nn.functional in float64 with autograd.

Each case (out/norm/<name>.safetensors) holds x, weight, bias, dy and torch's y, mean, rstd, dx,
dweight, dbias; metadata: op (groupnorm | layernorm | layernorm_cm) and its shape parameters.
mean / rstd are the saved statistics in the C layout ([B*G] for GroupNorm, [N] for LayerNorm,
[B*L] for the channel-major variant), rstd = 1/sqrt(biased var + eps).
"""
import os

import numpy as np

from common import case_dir, randn, reference, save_safetensors


def _group_norm(G, eps):
    import torch.nn.functional as F
    return lambda x, weight, bias: F.group_norm(x, G, weight, bias, eps)


def _gn_stats(x, B, G, eps):
    xg = x.astype(np.float64).reshape(B * G, -1)
    mu = xg.mean(axis=1)
    var = xg.var(axis=1)  # biased, as GroupNorm
    return mu.astype(np.float32), (1.0 / np.sqrt(var + eps)).astype(np.float32)


def _row_stats(rows, eps):
    rows = rows.astype(np.float64)
    return rows.mean(axis=1).astype(np.float32), (1.0 / np.sqrt(rows.var(axis=1) + eps)).astype(np.float32)


def generate(out_dir, data_dir):
    import torch.nn.functional as F
    d = case_dir(out_dir, "norm")
    seed = 100

    # ---- GroupNorm: (name, B, C, H, W, G, eps, input offset, input scale)
    gn_cases = [
        ("gn_c96_g32_7x5", 2, 96, 7, 5, 32, 1e-5, 0.0, 1.0),
        ("gn_c64_g32_8x8_eps1e-6_shift", 3, 64, 8, 8, 32, 1e-6, 3.0, 0.5),  # mean far from 0
        ("gn_c6_g3_3x5", 1, 6, 3, 5, 3, 1e-5, 0.0, 2.0),
        ("gn_c5_g1_odd", 2, 5, 1, 7, 1, 1e-5, -1.0, 1.0),     # one group = whole sample
        ("gn_c8_g8_instance", 2, 8, 4, 3, 8, 1e-5, 0.0, 1.0),  # one channel per group
        ("gn_c64_g32_1x1", 4, 64, 1, 1, 32, 1e-5, 0.0, 1.0),   # 2 values per group
    ]
    for name, B, C, H, W, G, eps, off, sc in gn_cases:
        seed += 10
        x = randn((B, C, H, W), seed, sc) + np.float32(off)
        inputs = {"x": x.astype(np.float32), "weight": randn((C,), seed + 1, 0.5) + np.float32(1.0),
                  "bias": randn((C,), seed + 2, 0.5)}
        store = reference(_group_norm(G, eps), inputs, ["x", "weight", "bias"])
        store["mean"], store["rstd"] = _gn_stats(x, B, G, eps)
        save_safetensors(os.path.join(d, name + ".safetensors"), store,
                         {"op": "groupnorm", "B": B, "C": C, "HW": H * W, "G": G, "eps": repr(eps)})

    # ---- LayerNorm over the last dim: (name, N, C, eps, offset)
    ln_cases = [
        ("ln_n7_c33", 7, 33, 1e-5, 0.0),
        ("ln_n37_c256", 37, 256, 1e-5, 0.0),  # crosses the 16-row partial blocks
        ("ln_n5_c9", 5, 9, 1e-5, 2.0),
        ("ln_n1_c1024_shift", 1, 1024, 1e-5, -4.0),
    ]
    for name, N, C, eps, off in ln_cases:
        seed += 10
        x = randn((N, C), seed) + np.float32(off)
        inputs = {"x": x, "weight": randn((C,), seed + 1, 0.5) + np.float32(1.0),
                  "bias": randn((C,), seed + 2, 0.5)}
        store = reference(lambda x, weight, bias, C=C, eps=eps: F.layer_norm(x, (C,), weight, bias, eps),
                          inputs, ["x", "weight", "bias"])
        store["mean"], store["rstd"] = _row_stats(x, eps)
        save_safetensors(os.path.join(d, name + ".safetensors"), store,
                         {"op": "layernorm", "N": N, "C": C, "eps": repr(eps)})

    # ---- channel-major LayerNorm over C of (B, C, L): torch twin = permute + layer_norm + permute
    cm_cases = [
        ("lncm_b2_c9_7x5", 2, 9, 35, 1e-5, 0.0),   # the Mamba stem's LayerNorm(9) on an NCHW image
        ("lncm_b3_c9_l600", 3, 9, 600, 1e-5, 0.0),  # crosses the 512-position tile
        ("lncm_b1_c40_l50_shift", 1, 40, 50, 1e-5, 1.5),
        ("lncm_b2_c3_l1", 2, 3, 1, 1e-5, 0.0),
    ]
    for name, B, C, L, eps, off in cm_cases:
        seed += 10
        x = randn((B, C, L), seed) + np.float32(off)
        inputs = {"x": x, "weight": randn((C,), seed + 1, 0.5) + np.float32(1.0),
                  "bias": randn((C,), seed + 2, 0.5)}

        def fn(x, weight, bias, C=C, eps=eps):
            return F.layer_norm(x.permute(0, 2, 1), (C,), weight, bias, eps).permute(0, 2, 1)
        store = reference(fn, inputs, ["x", "weight", "bias"])
        store["mean"], store["rstd"] = _row_stats(x.transpose(0, 2, 1).reshape(B * L, C), eps)
        save_safetensors(os.path.join(d, name + ".safetensors"), store,
                         {"op": "layernorm_cm", "B": B, "C": C, "L": L, "eps": repr(eps)})
