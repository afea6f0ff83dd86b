"""Reference twins for the convolution op family (tests/test_ops_conv.c).

Every case is computed by PyTorch in float64 with autograd (common.reference) and written to
<out>/conv/<op>_<n>.safetensors with the op name and its integer parameters as metadata:
  conv2d        x [B,Cin,H,W], w [Cout,Cin,k,k], b [Cout] (optional) -> y; dx, dw, db
  upsample2x    x [B,C,H,W] -> y [B,C,2H,2W] (nearest); dx
  channel_bias  x [B,C,H,W], bias [B,C] -> y = x + bias[:,:,None,None]; dx, dbias
  concat        a [B,Ca,H,W], b [B,Cb,H,W] -> y = cat([a, b], 1); da, db
  split         x [B,Ca+Cb,H,W] -> y_a = x[:, :Ca], y_b = x[:, Ca:]; dx (from dy_a, dy_b)
Shapes include odd sizes (7x7, 9x5, Cin 3, stride 2 with odd input) and sizes that make the C
code cut work into several bands / Winograd chunks.
"""
import os

from common import case_dir, rand, reference, save_safetensors


def _conv_cases():
    # (B, Cin, H, W, Cout, k, stride, pad, bias)
    return [
        (2, 3, 7, 7, 5, 3, 1, 1, True),      # odd square, Cin 3
        (2, 17, 9, 5, 16, 3, 1, 1, True),    # 9x5, Winograd-eligible (Cin, Cout >= 16), odd tiles
        (1, 8, 40, 40, 8, 3, 1, 1, False),   # large enough for several row bands / Winograd chunks
        (2, 4, 9, 7, 6, 3, 2, 1, True),      # stride 2, odd input
        (1, 3, 8, 8, 5, 3, 2, 1, False),     # stride 2, even input, no bias
        (1, 6, 33, 17, 7, 3, 2, 1, True),    # stride 2, several bands, odd both ways
        (2, 6, 5, 7, 4, 1, 1, 0, True),      # 1x1 skip conv, Cin != Cout
        (3, 20, 4, 4, 33, 1, 1, 0, False),   # 1x1, more outputs than inputs, B=3
        (2, 5, 6, 5, 3, 5, 1, 2, True),      # general k=5 through im2col
        (2, 16, 11, 13, 17, 3, 2, 1, True),  # stride 2 Winograd-eligible, odd H and W (odd Ho, Wo)
        (1, 3, 2, 3, 4, 3, 2, 1, False),     # stride 2 on a tiny input (one partial tile)
        (3, 17, 34, 22, 16, 3, 2, 1, True),  # stride 2, several chunks / tile rows per image
        (1, 5, 12, 70, 6, 3, 2, 1, True),    # stride 2, output rows of 35 (direct: 16+16+3 lanes), Cout 6
        (2, 3, 9, 37, 7, 3, 1, 1, True),     # stride 1, rows of 37, Cout 7 (direct: partial tiles)
        (2, 5, 9, 11, 32, 3, 2, 1, True),    # stride 2, odd sizes, Cout 32 (direct backward)
    ]


def generate(out_dir, data_dir):
    import torch
    import torch.nn.functional as F

    d = case_dir(out_dir, "conv")
    seed = 100
    for i, (B, Ci, H, W, Co, k, s, p, has_b) in enumerate(_conv_cases()):
        seed += 10
        inputs = {"x": rand((B, Ci, H, W), seed), "w": rand((Co, Ci, k, k), seed + 1, scale=0.5)}
        grads = ["x", "w"]
        if has_b:
            inputs["b"] = rand((Co,), seed + 2)
            grads.append("b")

        def fn(x, w, b=None, s=s, p=p):
            return F.conv2d(x, w, b, stride=s, padding=p)

        store = reference(fn, inputs, grads, dy_seed=seed + 3)
        meta = {"op": "conv2d", "B": B, "Cin": Ci, "H": H, "W": W, "Cout": Co, "k": k, "stride": s, "pad": p,
                "bias": int(has_b)}
        save_safetensors(os.path.join(d, f"conv2d_{i}.safetensors"), store, meta)

    for i, (B, C, H, W) in enumerate([(2, 3, 5, 7), (3, 2, 4, 4), (1, 1, 1, 1)]):
        seed += 10
        store = reference(lambda x: F.interpolate(x, scale_factor=2, mode="nearest"),
                          {"x": rand((B, C, H, W), seed)}, ["x"], dy_seed=seed + 1)
        save_safetensors(os.path.join(d, f"upsample2x_{i}.safetensors"), store,
                         {"op": "upsample2x", "B": B, "C": C, "H": H, "W": W})

    for i, (B, C, H, W) in enumerate([(2, 3, 5, 7), (1, 5, 3, 3)]):
        seed += 10
        store = reference(lambda x, bias: x + bias[:, :, None, None],
                          {"x": rand((B, C, H, W), seed), "bias": rand((B, C), seed + 1)}, ["x", "bias"],
                          dy_seed=seed + 2)
        save_safetensors(os.path.join(d, f"channel_bias_{i}.safetensors"), store,
                         {"op": "channel_bias", "B": B, "C": C, "H": H, "W": W})

    for i, (B, Ca, Cb, H, W) in enumerate([(2, 3, 2, 5, 7), (1, 1, 4, 3, 3)]):
        seed += 10
        store = reference(lambda a, b: torch.cat([a, b], dim=1),
                          {"a": rand((B, Ca, H, W), seed), "b": rand((B, Cb, H, W), seed + 1)}, ["a", "b"],
                          dy_seed=seed + 2)
        save_safetensors(os.path.join(d, f"concat_{i}.safetensors"), store,
                         {"op": "concat", "B": B, "Ca": Ca, "Cb": Cb, "H": H, "W": W})
        seed += 10
        store = reference(lambda x: {"y_a": x[:, :Ca], "y_b": x[:, Ca:]},
                          {"x": rand((B, Ca + Cb, H, W), seed)}, ["x"], dy_seed=seed + 1)
        save_safetensors(os.path.join(d, f"split_{i}.safetensors"), store,
                         {"op": "split", "B": B, "Ca": Ca, "Cb": Cb, "H": H, "W": W})
