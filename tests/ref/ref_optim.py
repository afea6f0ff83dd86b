"""Reference cases for tests/test_ops_optim.c: torch.optim.Adam / AdamW, 5 steps on one parameter
vector with random gradients, in float64.

out/linear/optim/*.safetensors: p0 (initial), g1..g5 (gradient used at step t), p1..p5 (parameters
after step t), m5, v5 (exp_avg, exp_avg_sq after step 5); metadata: op (adam | adamw), lr, beta1,
beta2, eps, weight_decay, n, steps. Hyper-parameters are float32-representable values so the C side
(float config) and torch use the same numbers.
"""
import os

import numpy as np

from common import case_dir, randn, save_safetensors


def _f32(v):
    return float(np.float32(v))


def generate(out_dir, data_dir):
    import torch
    d = case_dir(out_dir, "linear/optim")
    cases = [("adam_lr1e-3", "adam", 1e-3, 0.9, 0.999, 1e-8, 0.0, 1000),
             ("adam_l2_wd1e-2", "adam", 1e-3, 0.9, 0.999, 1e-8, 1e-2, 1001),
             ("adamw_wd1e-2", "adamw", 1e-3, 0.9, 0.999, 1e-8, 1e-2, 999),
             ("adamw_b05_09_eps1e-6_wd0.1", "adamw", 5e-3, 0.5, 0.9, 1e-6, 0.1, 37)]
    seed = 900
    for name, op, lr, b1, b2, eps, wd, n in cases:
        seed += 10
        lr, b1, b2, eps, wd = map(_f32, (lr, b1, b2, eps, wd))
        p0 = randn((n,), seed)
        p = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
        cls = torch.optim.Adam if op == "adam" else torch.optim.AdamW
        opt = cls([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
        store = {"p0": p0}
        for t in range(1, 6):
            # grads of varied scale, some exactly zero
            g = randn((n,), seed + t, 10.0 ** (-t + 2))
            g[::11] = 0.0
            p.grad = torch.tensor(g, dtype=torch.float64)
            opt.step()
            store[f"g{t}"] = g
            store[f"p{t}"] = p.detach().numpy().astype(np.float32)
        st = opt.state[p]
        store["m5"] = st["exp_avg"].numpy().astype(np.float32)
        store["v5"] = st["exp_avg_sq"].numpy().astype(np.float32)
        save_safetensors(os.path.join(d, name + ".safetensors"), store,
                         {"op": op, "lr": repr(lr), "beta1": repr(b1), "beta2": repr(b2), "eps": repr(eps),
                          "weight_decay": repr(wd), "n": n, "steps": 5})
