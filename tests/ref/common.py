"""Shared helpers for the PyTorch/PIL reference twins.

Each ref_*.py module defines `generate(out_dir, data_dir)` and writes reference cases as
safetensors files under out_dir/<family>/. A case holds the inputs, the upstream gradient `dy`,
the reference outputs and gradients (computed in float64, stored as float32), and its parameters
as string metadata. The C tests (tests/test_*.c) read them back and compare.

The safetensors format is written and read here directly (Debian ships no python3-safetensors).
"""
import json
import os
import struct

import numpy as np

_DT = {np.dtype("float32"): "F32", np.dtype("float16"): "F16", np.dtype("float64"): "F64",
       np.dtype("int64"): "I64", np.dtype("int32"): "I32", np.dtype("uint8"): "U8"}
_NP = {v: k for k, v in _DT.items()}


def _bf16_bytes(a):
    """float32 array -> bfloat16 bytes, round to nearest even."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return rounded.astype(np.uint16).tobytes()


def save_safetensors(path, tensors, metadata=None, dtypes=None):
    """tensors: dict name -> array-like (or torch tensor). dtypes: optional dict name -> 'F32'|'F16'|'BF16'."""
    dtypes = dtypes or {}
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        if hasattr(t, "detach"):
            t = t.detach().cpu().numpy()
        a = np.asarray(t)
        want = dtypes.get(name)
        if want == "BF16":
            raw = _bf16_bytes(a.astype(np.float32))
            dt = "BF16"
        else:
            if want:
                a = a.astype(_NP[want])
            elif a.dtype == np.float64:
                a = a.astype(np.float32)
            a = np.array(a, order="C", copy=True)  # (ascontiguousarray would turn 0-d into 1-d)
            dt = _DT[a.dtype]
            raw = a.astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def load_safetensors(path):
    """-> (dict name -> float32/int numpy array, metadata dict)."""
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    for name, info in header.items():
        b, e = info["data_offsets"]
        buf = raw[base + b:base + e]
        if info["dtype"] == "BF16":
            u = np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16
            a = u.view(np.float32)
        else:
            a = np.frombuffer(buf, dtype=_NP[info["dtype"]].newbyteorder("<"))
        out[name] = a.reshape(info["shape"]).copy()
    return out, meta


def case_dir(out_dir, family):
    d = os.path.join(out_dir, family)
    os.makedirs(d, exist_ok=True)
    return d


def rand(shape, seed, scale=1.0):
    """float32 uniform in [-scale, scale], deterministic."""
    g = np.random.default_rng(seed)
    return (g.uniform(-1.0, 1.0, size=shape) * scale).astype(np.float32)


def randn(shape, seed, scale=1.0):
    g = np.random.default_rng(seed)
    return (g.standard_normal(size=shape) * scale).astype(np.float32)


def reference(fn, inputs, grad_names, dy_seed=12345):
    """Run fn(**tensors) in float64 with autograd.

    inputs: dict name -> float32 numpy array (stored exactly as given).
    grad_names: names of inputs that need gradients.
    fn returns one tensor (or a dict of named outputs; then dy_<name> weights each).
    Returns dict of tensors to store: inputs, 'y' (or 'y_<name>'), 'dy'..., 'd<name>' per grad name.
    """
    import torch
    t = {}
    for k, v in inputs.items():
        tt = torch.tensor(np.asarray(v), dtype=torch.float64)
        if k in grad_names:
            tt.requires_grad_(True)
        t[k] = tt
    out = fn(**t)
    store = dict(inputs)
    outs = out if isinstance(out, dict) else {"y": out}
    total = 0
    for i, (name, y) in enumerate(outs.items()):
        dy = randn(tuple(y.shape), dy_seed + i)
        dname = "dy" if name == "y" else "d" + name
        store[name] = y.detach().numpy().astype(np.float32)
        store[dname] = dy
        total = total + (y * torch.tensor(dy, dtype=torch.float64)).sum()
    if grad_names:
        total.backward()
        for k in grad_names:
            g = t[k].grad
            store["d" + k] = (g if g is not None else torch.zeros_like(t[k])).numpy().astype(np.float32)
    return store
