"""Reference cases for tests/test_ops_act.c: SiLU, exact GELU, softplus (beta 1, threshold 20) and
GEGLU, computed by torch.nn.functional in float64 with autograd.

out/linear/act/*.safetensors: op=silu|gelu|softplus: x, y, dy, dx;  op=geglu: x (N,2F), y (N,F), dy, dx.
Inputs mix normal draws with a sweep over [-30, 30] (saturation of sigmoid / erf / softplus) and the
softplus threshold neighbourhood.
"""
import os

import numpy as np

from common import case_dir, randn, reference, save_safetensors


def generate(out_dir, data_dir):
    import torch.nn.functional as F
    d = case_dir(out_dir, "linear/act")
    ops = {"silu": lambda x: F.silu(x), "gelu": lambda x: F.gelu(x), "softplus": lambda x: F.softplus(x)}
    sweep = np.linspace(-30.0, 30.0, 1201, dtype=np.float32)
    special = np.array([0.0, -0.0, 1e-6, -1e-6, 19.9, 19.999, 20.0, 20.001, 20.5, 25.0, -20.0, -25.0,
                        -80.0, -100.0, 80.0, 3.0, -3.0], dtype=np.float32)
    seed = 700
    for op, fn in ops.items():
        seed += 10
        cases = [(f"{op}_3x5x7", randn((3, 5, 7), seed, 3.0)),
                 (f"{op}_sweep_1218", np.concatenate([sweep, special]))]
        for name, x in cases:
            store = reference(fn, {"x": x}, ["x"])
            save_safetensors(os.path.join(d, name + ".safetensors"), store, {"op": op, "n": x.size})

    def geglu(x):
        a, g = x.chunk(2, dim=-1)  # value first, gate second (diffusers/ldm GEGLU)
        return a * F.gelu(g)
    for name, N, Fd in [("geglu_n7_f5", 7, 5), ("geglu_n4_f64", 4, 64), ("geglu_n1_f1", 1, 1)]:
        seed += 10
        x = randn((N, 2 * Fd), seed, 2.5)
        store = reference(geglu, {"x": x}, ["x"])
        save_safetensors(os.path.join(d, name + ".safetensors"), store, {"op": "geglu", "N": N, "F": Fd})
