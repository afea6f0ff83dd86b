"""Whole-network parity cases for tests/test_nn_unet.c (twin: tests/ref/fsdiff_twin.py).

Per case <out>/nn/<case>/:
  params.safetensors  every parameter under the authors' names + "fsdiff.config" metadata
                      (the C side loads it with fsd_net_load, which checks names and shapes)
  io.safetensors      x (B,9,H,W), gamma (B), ctx (B,T,Dc), eps (target noise), eps_hat (twin output),
                      loss (L1 mean), grad.<param name> for every parameter, dctx;
                      for the Adam case also adam_losses (10) and the Adam settings in metadata.
Everything is computed in float64 and stored as float32.
"""
import copy
import os

import numpy as np
import torch

from common import save_safetensors
import fsdiff_twin as tw

B, S = 2, 32
CASES = [
    # name, config overrides, run 10 Adam steps?
    ("none", dict(mamba="none"), False),
    ("fwd_bn", dict(mamba="forward", mamba_bottleneck="forward"), False),
    ("bidir", dict(mamba="bidirectional"), True),
    ("bidir_bn_sum", dict(mamba="bidirectional", mamba_bottleneck="bidirectional", mamba_divide_out=False), False),
]
ADAM = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, steps=10)


def _inputs(c, seed):
    g = np.random.default_rng(seed)
    x = g.uniform(-1, 1, size=(B, c["in_channels"], S, S)).astype(np.float32)
    gamma = g.uniform(0.05, 1.0, size=(B,)).astype(np.float32)
    ctx = g.standard_normal(size=(B, c["context_tokens"], c["context_dim"])).astype(np.float32)
    eps = g.standard_normal(size=(B, c["out_channels"], S, S)).astype(np.float32)
    return x, gamma, ctx, eps


def _t(a, grad=False):
    t = torch.tensor(a, dtype=torch.float64)
    return t.requires_grad_(grad)


def _adam_losses(model, x, gamma, ctx, eps, dtype):
    """Losses of ADAM["steps"] Adam steps on a copy of model in dtype (model itself is untouched),
    single-threaded so the float32 drift does not depend on the thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    m = copy.deepcopy(model).to(dtype)
    opt = torch.optim.Adam(m.parameters(), lr=ADAM["lr"], betas=(ADAM["beta1"], ADAM["beta2"]), eps=ADAM["eps"])
    t = [torch.tensor(a, dtype=dtype) for a in (x, gamma, ctx, eps)]
    losses = []
    for _ in range(ADAM["steps"]):
        opt.zero_grad()
        l = (m(t[0], t[1], t[2]) - t[3]).abs().mean()
        l.backward()
        losses.append(l.item())
        opt.step()
    torch.set_num_threads(threads)
    return losses


def write_io(d, model, c, seed, name, adam=False):
    """Runs the twin (float64) on deterministic inputs; writes d/io.safetensors."""
    x, gamma, ctx, eps = _inputs(c, seed)
    ctx_t = _t(ctx, True)
    y = model(_t(x), _t(gamma), ctx_t)
    loss = (y - _t(eps)).abs().mean()
    model.zero_grad()
    loss.backward()
    store = {"x": x, "gamma": gamma, "ctx": ctx, "eps": eps,
             "eps_hat": y.detach().float().numpy(), "loss": np.array([loss.item()], dtype=np.float32),
             "dctx": ctx_t.grad.float().numpy()}
    for k, p in model.named_parameters():
        store["grad." + k] = (p.grad if p.grad is not None else torch.zeros_like(p)).float().numpy()
    meta = {"case": name}
    if adam:
        f32 = _adam_losses(model, x, gamma, ctx, eps, torch.float32)  # before the float64 run moves model
        losses = _adam_losses(model, x, gamma, ctx, eps, torch.float64)
        store["adam_losses"] = np.array(losses, dtype=np.float32)
        meta.update({"adam_" + k: str(v) for k, v in ADAM.items()})
        # the same trajectory in float32: how far float32 rounding alone drifts from float64 (the L1
        # gradient's sign flips on near-zero residuals make late steps chaotic); the test allows that much
        store["adam_losses_f32"] = np.array(f32, dtype=np.float32)
    save_safetensors(os.path.join(d, "io.safetensors"), store, metadata=meta)


def twin_model(c, seed):
    torch.manual_seed(seed)
    model = tw.randomize_(tw.UNet(c), 1000 + seed).double()
    # round the parameters to float32 first: the C side sees exactly these values
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.float().double())
    return model


def generate(out_dir, data_dir):
    # the float64 scan's decaying products reach subnormals (< 1e-308), which are ~100x slower
    # and numerically irrelevant here
    torch.set_flush_denormal(True)
    torch.set_grad_enabled(True)
    for ci, (name, over, adam) in enumerate(CASES):
        d = os.path.join(out_dir, "nn", name)
        os.makedirs(d, exist_ok=True)
        c = tw.make_config("tiny", **over)
        model = twin_model(c, ci)
        sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
        save_safetensors(os.path.join(d, "params.safetensors"), sd, metadata={"fsdiff.config": tw.config_json(c)})
        write_io(d, model, c, 2000 + ci, name, adam)
