"""PyTorch twin of the multi-head attention core (src/ops/attention.c), for tests/test_ops_attention.c.

out = softmax(q_h k_h^T * dh^-1/2) v_h per head, heads = contiguous dh-channel slices of the
token-major (B, N, H*dh) tensors, exactly as the model's CrossAttention splits them
(rearrange 'b n (h d) -> (b h) n d'). Computed in float64 with autograd; cases in <out>/attention/.
"""
import math

import numpy as np

from common import case_dir, randn, reference, save_safetensors


def _attention(q, k, v, H):
    import torch
    B, Nq, C = q.shape
    Nk = k.shape[1]
    dh = C // H

    def heads(x, n):
        return x.reshape(B, n, H, dh).transpose(1, 2)  # (B, H, n, dh)

    qh, kh, vh = heads(q, Nq), heads(k, Nk), heads(v, Nk)
    p = torch.softmax(qh @ kh.transpose(-1, -2) * (1.0 / math.sqrt(dh)), dim=-1)
    return (p @ vh).transpose(1, 2).reshape(B, Nq, C)


# name, B, Nq, Nk, H, dh, input scale. Self-attention has Nk = Nq; cross-attention a few context
# tokens (Nk = 1 is the model's single-token DA-CLIP context). "rowblocks" has Nq = 300 > the
# kernel's row block (65536 / Nk = 218 rows) so blocking and its remainder are exercised;
# "large_logits" has |logits| ~ 100, which overflows e^x without the row-max subtraction.
# Nk <= 16 takes the kernel's direct small-key path (self_small, cross_nk1, cross_nk5), Nk > 16 the
# GEMM path (cross_nk17 is just above the switch).
CASES = [
    ("self_small", 2, 16, 16, 2, 8, 1.0),
    ("self_dh32", 2, 33, 33, 3, 32, 0.5),
    ("self_rowblocks", 1, 300, 300, 2, 16, 0.5),
    ("self_large_logits", 1, 24, 24, 2, 8, 6.0),
    ("cross_nk1", 2, 70, 1, 2, 32, 1.0),  # 70 rows: several 32-row tasks, a partial 8-row group
    ("cross_nk5", 2, 17, 5, 4, 8, 1.0),
    ("cross_nk17", 2, 40, 17, 2, 32, 1.0),
    ("cross_large_logits", 1, 24, 6, 2, 8, 6.0),
]


def generate(out_dir, data_dir):
    d = case_dir(out_dir, "attention")
    for i, (name, B, Nq, Nk, H, dh, sc) in enumerate(CASES):
        C = H * dh
        inputs = {
            "q": randn((B, Nq, C), 100 + 10 * i, sc),
            "k": randn((B, Nk, C), 101 + 10 * i, sc),
            "v": randn((B, Nk, C), 102 + 10 * i),
        }
        store = reference(lambda q, k, v: _attention(q, k, v, H), inputs, ["q", "k", "v"], dy_seed=103 + 10 * i)
        meta = {"op": "attention", "B": B, "Nq": Nq, "Nk": Nk, "H": H, "dh": dh, "input_scale": sc}
        save_safetensors(f"{d}/{name}.safetensors", store, meta)
