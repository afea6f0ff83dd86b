"""Reference cases for tests/test_ops_linear.c: linear layer, SR3 noise-level embedding, L1 and MSE
losses, computed by torch in float64 with autograd.

out/linear/linear/*.safetensors   op=linear: x (N,in), W (out,in), [b], y, dy, dx, dW, [db]
out/linear/embed/*.safetensors    op=noise_embedding: gamma (B), y (B,C), dy, dgamma
out/linear/loss/*.safetensors     op=l1|mse: pred, target, y (0-d loss), dy (0-d), dpred, dtarget
"""
import math
import os

import numpy as np

from common import case_dir, rand, randn, reference, save_safetensors


def _noise_embedding(C):
    """The SR3 PositionalEncoding module, written from its definition."""
    import torch

    def fn(gamma):
        half = C // 2
        step = torch.arange(half, dtype=gamma.dtype) / half
        enc = gamma.unsqueeze(1) * torch.exp(-math.log(1e4) * step.unsqueeze(0))
        return torch.cat([torch.sin(enc), torch.cos(enc)], dim=-1)
    return fn


def generate(out_dir, data_dir):
    import torch.nn.functional as F

    # ---- linear: (name, N, in, out, bias)
    d = case_dir(out_dir, "linear/linear")
    seed = 500
    for name, N, nin, nout, bias in [("lin_n7_5to3_bias", 7, 5, 3, True),
                                     ("lin_n33_64to96_bias", 33, 64, 96, True),
                                     ("lin_n65_9to36_nobias", 65, 9, 36, False),  # Mamba in_proj shape
                                     ("lin_n600_17to3_bias", 600, 17, 3, True)]:   # 3 groups of <= 256 rows for db
        seed += 10
        inputs = {"x": randn((N, nin), seed), "W": randn((nout, nin), seed + 1, 1.0 / math.sqrt(nin))}
        grads = ["x", "W"]
        if bias:
            inputs["b"] = randn((nout,), seed + 2, 0.5)
            grads.append("b")
            fn = lambda x, W, b: F.linear(x, W, b)  # noqa: E731
        else:
            fn = lambda x, W: F.linear(x, W)  # noqa: E731
        store = reference(fn, inputs, grads)
        save_safetensors(os.path.join(d, name + ".safetensors"), store,
                         {"op": "linear", "N": N, "in": nin, "out": nout, "bias": int(bias)})

    # ---- noise-level embedding: (name, B, C); gamma in (0, 1] like sqrt(alpha_bar)
    d = case_dir(out_dir, "linear/embed")
    for name, B, C in [("emb_b5_c64", 5, 64), ("emb_b3_c10", 3, 10), ("emb_b1_c2", 1, 2)]:
        seed += 10
        g = (np.abs(rand((B,), seed)) * 0.999 + 0.001).astype(np.float32)
        store = reference(_noise_embedding(C), {"gamma": g}, ["gamma"])
        save_safetensors(os.path.join(d, name + ".safetensors"), store,
                         {"op": "noise_embedding", "B": B, "C": C})

    # ---- losses (means): (name, op, shape)
    d = case_dir(out_dir, "linear/loss")
    for name, op, shape in [("l1_3x5x7", "l1", (3, 5, 7)), ("l1_2x3x16x16", "l1", (2, 3, 16, 16)),
                            ("mse_3x5x7", "mse", (3, 5, 7)), ("mse_1x3x9x11", "mse", (1, 3, 9, 11))]:
        seed += 10
        pred = randn(shape, seed)
        target = randn(shape, seed + 1)
        # exact ties: PyTorch's L1 gradient is 0 where pred == target
        flat_p, flat_t = pred.reshape(-1), target.reshape(-1)
        flat_p[::7] = flat_t[::7]
        fn = (lambda pred, target: F.l1_loss(pred, target)) if op == "l1" else \
             (lambda pred, target: F.mse_loss(pred, target))
        store = reference(fn, {"pred": pred, "target": target}, ["pred", "target"])
        save_safetensors(os.path.join(d, name + ".safetensors"), store,
                         {"op": op, "n": int(np.prod(shape))})
