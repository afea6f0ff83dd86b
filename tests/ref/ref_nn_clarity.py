"""Clarity encoder parity cases for tests/test_nn_clarity.c (twin: tests/ref/clarity_twin.py).

Per case <out>/clarity/<case>/:
  params.safetensors  "clarity.*" parameters (float32) + "fsdiff.clarity" config metadata
  io.safetensors      src0, src1 (B,3,H,W); target (B,2,3) physical degradation; w (B,T,D) weights of
                      the test loss  L = sum(w * ctx) + lambda * MSE(pred_n, target_n);
                      roles_in (B,2) (case "given": roles forced) or absent (roles decided by the rule);
                      ctx, deg (B,2,3 physical), roles (B,2), loss (lambda * MSE), grad.<param> of L;
                      ctx_mean (mode "mean", case "rule" only).
Everything in float64, stored as float32.
"""
import os

import numpy as np
import torch

import clarity_twin as tw
from common import save_safetensors

# name, config overrides, B, H, W, forced roles (None: decided in "clarity" mode)
CASES = [
    ("given", dict(), 2, 32, 32, [[tw.LEAD, tw.FOLLOW], [tw.NEUTRAL, tw.NEUTRAL]]),
    # 24x40 -> 12x20 -> 6x10 -> 3x5: the 2x2 adaptive pool windows overlap (rows [0,2) [1,3), cols [0,3) [2,5))
    ("rule", dict(widths=[16, 32, 32]), 2, 24, 40, None),
]


def _t(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64)


def generate(out_dir, data_dir):
    torch.set_grad_enabled(True)
    for ci, (name, over, B, H, W, roles_in) in enumerate(CASES):
        d = os.path.join(out_dir, "clarity", name)
        os.makedirs(d, exist_ok=True)
        c = tw.default_config(64, **over)
        torch.manual_seed(ci)
        m = tw.randomize_(tw.ClarityEncoder(c), 500 + ci).double()
        with torch.no_grad():
            for p in m.parameters():
                p.copy_(p.float().double())
        g = np.random.default_rng(700 + ci)
        src0 = g.uniform(-1, 1, size=(B, 3, H, W)).astype(np.float32)
        src1 = g.uniform(-1, 1, size=(B, 3, H, W)).astype(np.float32)
        target = np.stack([g.uniform(0, 3, size=(B, 2)), g.uniform(0, 4, size=(B, 2)), g.uniform(0, 25, size=(B, 2))],
                          -1).astype(np.float32)
        if roles_in is None:
            # put the threshold between sample 0's two scores so the rule has a lead/follow pair;
            # every score is then at least `margin` from it (the C side must take the same decisions)
            with torch.no_grad():
                _, deg, _, _ = m(_t(src0), _t(src1), mode="mean")
            sc = deg[:, :, 0] + c["blur_weight"] * deg[:, :, 1]
            c["threshold"] = float(np.float32((sc[0, 0] + sc[0, 1]).item() / 2))
            margin = (sc - c["threshold"]).abs().min().item()
            assert margin > 1e-3, "case %s: scores too close to the threshold (%g)" % (name, margin)
        roles_t = torch.tensor(roles_in, dtype=torch.long) if roles_in is not None else None
        ctx, deg, roles, loss = m(_t(src0), _t(src1), mode="clarity", roles=roles_t, target=_t(target))
        w = g.standard_normal(size=tuple(ctx.shape)).astype(np.float32)
        m.zero_grad()
        ((ctx * _t(w)).sum() + loss).backward()
        store = {"src0": src0, "src1": src1, "target": target, "w": w, "ctx": ctx.detach().float().numpy(),
                 "deg": deg.detach().float().numpy(), "roles": roles.float().numpy(),
                 "loss": np.array([loss.item()], dtype=np.float32)}
        if roles_in is not None:
            store["roles_in"] = np.array(roles_in, dtype=np.float32)
        else:
            with torch.no_grad():
                store["ctx_mean"] = m(_t(src0), _t(src1), mode="mean")[0].float().numpy()
        for k, p in m.named_parameters():
            store["grad.clarity." + k] = p.grad.float().numpy()
        sd = {"clarity." + k: v.detach().float().numpy() for k, v in m.state_dict().items()}
        save_safetensors(os.path.join(d, "params.safetensors"), sd, metadata={"fsdiff.clarity": tw.config_json(c)})
        save_safetensors(os.path.join(d, "io.safetensors"), store, metadata={"case": name})
