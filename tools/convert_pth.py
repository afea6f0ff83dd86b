#!/usr/bin/python3
"""Convert a PyTorch FS-Diff / SR3 checkpoint (.pth state_dict) to an fsdiff safetensors file.

  /usr/bin/python3 tools/convert_pth.py CKPT.pth OUT.safetensors [--preset paper] [--config cfg.json]
                                        [--set key=value ...] [--dtype F32|F16] [--keep-unused]

The network config is not stored in the authors' checkpoints, so it comes from --preset (default
"paper": 64, [1,2,4,8,8], 2 res blocks, attention at 16, 128^2), a JSON file (--config) and
--set overrides. What can be read off the tensors is checked or filled in: the Mamba mode
("forward" when mamba.mixer.* is present, "bidirectional" when the *_b set is present too, "none"
otherwise), base_channels, context_dim. Every name and shape is then checked against the twin
(tests/ref/fsdiff_twin.py) built from that config; any missing, extra or mis-shaped tensor is
one error line naming it.

Accepted layouts: a plain state_dict, or a dict holding it under "state_dict"/"model"/"netG";
prefixes "module." (DataParallel) and "denoise_fn." (SR3's GaussianDiffusion wrapper) are
stripped. The authors' dead parameters (prompt, text_mlp.*, prompt_mlp.*: unused in their
forward) are dropped unless --keep-unused (which then fails, since the C network has no such
tensors). The output carries the config in __metadata__["fsdiff.config"] (see `fsdiff info`).
"""
import argparse
import json
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "tests", "ref"))

UNUSED_PREFIXES = ("prompt", "text_mlp.", "prompt_mlp.")


def _strip(sd):
    for key in ("state_dict", "model", "netG"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
    out = {}
    for k, v in sd.items():
        for pre in ("module.", "denoise_fn."):
            while k.startswith(pre):
                k = k[len(pre):]
        out[k] = v
    return out


def _parse_value(v):
    try:
        return json.loads(v)
    except ValueError:
        return v


def convert(src, dst, preset="paper", config=None, sets=(), dtype="F32", keep_unused=False):
    import torch
    import fsdiff_twin as tw
    from common import save_safetensors

    sd = _strip(torch.load(src, map_location="cpu"))
    if not keep_unused:
        sd = {k: v for k, v in sd.items() if not k.startswith(UNUSED_PREFIXES)}
    over = {}
    if config:
        with open(config) as f:
            over.update(json.load(f))
        preset = over.pop("preset", preset)
    for s in sets:
        if "=" not in s:
            raise SystemExit("convert_pth: --set wants key=value, got %r" % s)
        k, v = s.split("=", 1)
        over[k] = _parse_value(v)
    # facts read off the tensors
    if "mamba" not in over:
        over["mamba"] = ("bidirectional" if "mamba.mixer.A_b_log" in sd else
                         "forward" if "mamba.mixer.A_log" in sd else "none")
    if "mamba_bottleneck" not in over:
        over["mamba_bottleneck"] = ("bidirectional" if "mid_mamba.mixer.A_b_log" in sd else
                                    "forward" if "mid_mamba.mixer.A_log" in sd else "none")
    if "downs.0.weight" in sd and "base_channels" not in over:
        over["base_channels"] = int(sd["downs.0.weight"].shape[0])
    k2 = [k for k in sd if k.endswith("attn2.to_k.weight")]
    if k2 and "context_dim" not in over:
        over["context_dim"] = int(sd[k2[0]].shape[1])
    try:
        c = tw.make_config(preset, **over)
    except KeyError as e:
        raise SystemExit("convert_pth: %s" % e)
    want = {k: tuple(v.shape) for k, v in tw.UNet(c).state_dict().items()}
    for k in sd:
        if k not in want:
            raise SystemExit("convert_pth: %s: unexpected tensor '%s' for config %s" % (src, k, tw.config_json(c)))
    for k, shp in want.items():
        if k not in sd:
            raise SystemExit("convert_pth: %s: missing tensor '%s' for config %s" % (src, k, tw.config_json(c)))
        if tuple(sd[k].shape) != shp:
            raise SystemExit("convert_pth: %s: tensor '%s' has shape %s, the config needs %s"
                             % (src, k, list(sd[k].shape), list(shp)))
        if not torch.isfinite(sd[k].float()).all():
            raise SystemExit("convert_pth: %s: tensor '%s' has NaN/Inf values" % (src, k))
    tensors = {k: sd[k].detach().float().numpy() for k in want}
    save_safetensors(dst, tensors, metadata={"fsdiff.config": tw.config_json(c), "fsdiff.source": os.path.basename(src)},
                     dtypes={k: dtype for k in tensors} if dtype != "F32" else None)
    return c


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--preset", default="paper", choices=["paper", "cpu", "tiny"])
    ap.add_argument("--config", help="JSON file with network config keys (as docs/model.md)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--dtype", default="F32", choices=["F32", "F16", "BF16"])
    ap.add_argument("--keep-unused", action="store_true")
    a = ap.parse_args()
    c = convert(a.src, a.dst, a.preset, a.config, a.set, a.dtype, a.keep_unused)
    print("wrote %s (%s)" % (a.dst, json.dumps(c)))


if __name__ == "__main__":
    main()
