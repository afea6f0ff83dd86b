"""Reference files for tests/test_safetensors.c.

good/: a PyTorch-style state dict saved as F32, F16 and BF16 (conversions done by torch, so they
are independent of our C rounding code), each with the exact float32 values the C reader must
produce (in `expected_*.safetensors`, F32).
malformed/: hand-made broken files plus malformed.json mapping file -> the message fragment the
C reader must report.
"""
import json
import os
import struct

import numpy as np

from common import case_dir, save_safetensors


def _raw(path, header_bytes, data=b"", length=None):
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes) if length is None else length))
        f.write(header_bytes)
        f.write(data)


def _hdr(obj):
    return json.dumps(obj).encode()


def generate(out_dir, data_dir):
    import torch
    torch.manual_seed(0)
    good = case_dir(out_dir, "safetensors/good")
    # A tiny module with PyTorch's naming (dots, numbers) and odd shapes.
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 5, 3), torch.nn.GroupNorm(1, 5), torch.nn.Linear(7, 3))
    sd = {k: v.detach().clone() for k, v in net.state_dict().items()}
    # include values that exercise rounding: tiny (half subnormals), large, ties, negative zero
    special = torch.tensor([0.0, -0.0, 1.0, -2.5, 65504.0, 65520.0, 1e-7, 6.1e-5, 5.96e-8, 3e-8, 1.0009765625,
                            1.00048828125, 3.14159265, -1e30, 1e-40, 7.0e4], dtype=torch.float32)
    sd["special.values"] = special
    sd["scalar"] = torch.tensor(0.75)
    sd["empty.buffer"] = torch.zeros(0, 4)
    for dt, tdt in (("F32", torch.float32), ("F16", torch.float16), ("BF16", torch.bfloat16)):
        conv = {k: v.to(tdt) for k, v in sd.items()}
        # write the converted bit patterns ourselves
        header, blobs, off = {}, [], 0
        for k, v in conv.items():
            if tdt == torch.bfloat16:
                raw = v.contiguous().view(torch.int16).numpy().astype("<i2").tobytes()
            else:
                raw = v.contiguous().numpy().astype(v.numpy().dtype.newbyteorder("<")).tobytes()
            header[k] = {"dtype": dt, "shape": list(v.shape), "data_offsets": [off, off + len(raw)]}
            blobs.append(raw)
            off += len(raw)
        header["__metadata__"] = {"format": "pt", "note": "written by ref_safetensors.py"}
        hb = json.dumps(header).encode()
        _raw(os.path.join(good, f"model_{dt}.safetensors"), hb, b"".join(blobs))
        save_safetensors(os.path.join(good, f"expected_{dt}.safetensors"),
                         {k: v.float().numpy() for k, v in conv.items()})
    # reference values for the C writer's conversion: f32 originals and torch's f16/bf16 of them
    vals = torch.cat([special, torch.randn(1000) * 10, torch.randn(100) * 1e-5])
    save_safetensors(os.path.join(good, "convert.safetensors"),
                     {"f32": vals.numpy(), "as_f16": vals.half().float().numpy(),
                      "as_bf16": vals.bfloat16().float().numpy()})
    # NaN in weights: valid file, rejected by fsd_st_load_f32(check_finite=1)
    save_safetensors(os.path.join(good, "nan_weights.safetensors"),
                     {"w": np.array([1.0, np.nan, 2.0], dtype=np.float32)})

    bad = case_dir(out_dir, "safetensors/malformed")
    t = lambda dt, shape, a, b: {"dtype": dt, "shape": shape, "data_offsets": [a, b]}
    cases = {}

    def add(name, expect, header=None, data=b"", length=None, raw_bytes=None):
        p = os.path.join(bad, name + ".safetensors")
        if raw_bytes is not None:
            with open(p, "wb") as f:
                f.write(raw_bytes)
        else:
            _raw(p, header, data, length)
        cases[name + ".safetensors"] = expect

    add("too_short", "too short", raw_bytes=b"\x05\x00\x00")
    add("empty_file", "too short", raw_bytes=b"")
    add("header_zero", "header length is 0", header=b"", length=0)
    add("header_exceeds_file", "exceeds the file", header=_hdr({}), length=4096)
    add("header_absurd", "is absurd", header=_hdr({}), length=1 << 60)
    add("not_json", "invalid JSON", header=b'{"a": [1, 2')
    add("not_object", "does not start with '{'", header=b"[1, 2, 3]")
    add("trailing_garbage", "trailing characters", header=b'{"__metadata__": {}} xx')
    add("bad_dtype", "unsupported dtype 'F8'", header=_hdr({"w": t("F8", [2], 0, 2)}), data=b"\0\0")
    add("dtype_not_string", "has no dtype string", header=_hdr({"w": {"dtype": 4, "shape": [1], "data_offsets": [0, 4]}}), data=b"\0" * 4)
    add("shape_span_mismatch", "does not match its byte span", header=_hdr({"w": t("F32", [2, 3], 0, 20)}), data=b"\0" * 20)
    add("negative_shape", "invalid shape entry", header=_hdr({"w": t("F32", [-1, 2], 0, 8)}), data=b"\0" * 8)
    add("float_shape", "invalid shape entry", header=_hdr({"w": t("F32", [1.5], 0, 4)}), data=b"\0" * 4)
    add("span_outside_file", "outside the file", header=_hdr({"w": t("F32", [4], 0, 16)}), data=b"\0" * 8)
    add("offsets_reversed", "out of order", header=_hdr({"w": t("F32", [0], 8, 4)}), data=b"\0" * 8)
    add("overlap", "overlapping data", header=_hdr({"a": t("F32", [2], 0, 8), "b": t("F32", [2], 4, 12)}), data=b"\0" * 12)
    add("missing_offsets", "needs data_offsets", header=_hdr({"w": {"dtype": "F32", "shape": [1]}}), data=b"\0" * 4)
    add("duplicate_name", "duplicate tensor name 'w'",
        header=b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}',
        data=b"\0" * 8)
    add("metadata_not_string", "is not a string", header=_hdr({"__metadata__": {"k": 3}}))
    add("bad_utf8_name", "invalid UTF-8", header=b'{"w\xff": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}', data=b"\0" * 4)
    add("deep_nesting", "nesting too deep", header=b'{"a":' + b"[" * 200 + b"]" * 200 + b"}")
    add("too_many_dims", "dimensions (max 8)", header=_hdr({"w": t("F32", [1] * 9, 0, 4)}), data=b"\0" * 4)
    add("entry_not_object", "is not an object", header=_hdr({"w": [1, 2]}))
    with open(os.path.join(bad, "malformed.json"), "w") as f:
        json.dump(cases, f, indent=1)
