"""tools/convert_pth.py on a randomly initialised twin, for tests/test_nn_unet.c (case nn/convert).

A twin with the authors' layout (unidirectional stem Mamba, T=1 context token) is saved as an SR3
generator checkpoint would be (torch.save of a state_dict with the "denoise_fn." prefix and the
authors' unused prompt/text_mlp/prompt_mlp tensors), converted with the tool, and the twin's
outputs and gradients are written beside it; the C test opens the converted file and compares.
"""
import os
import subprocess
import sys

import torch

import fsdiff_twin as tw
from ref_nn_unet import twin_model, write_io

here = os.path.dirname(os.path.abspath(__file__))


def generate(out_dir, data_dir):
    # the float64 scan's decaying products reach subnormals (< 1e-308), which are ~100x slower
    # and numerically irrelevant here
    torch.set_flush_denormal(True)
    d = os.path.join(out_dir, "nn", "convert")
    os.makedirs(d, exist_ok=True)
    c = tw.make_config("tiny", mamba="forward", context_tokens=1)
    model = twin_model(c, 11)
    sd = {"denoise_fn." + k: v.float() for k, v in model.state_dict().items()}
    C = c["base_channels"]
    sd["denoise_fn.prompt"] = torch.rand(1, C)
    sd["denoise_fn.text_mlp.0.weight"] = torch.rand(C, c["context_dim"])
    sd["denoise_fn.prompt_mlp.weight"] = torch.rand(C, C)
    pth = os.path.join(d, "twin.pth")
    torch.save(sd, pth)
    tool = os.path.join(here, "..", "..", "tools", "convert_pth.py")
    # the config is given as the preset plus what differs; the Mamba mode is read off the tensors
    r = subprocess.run([sys.executable, tool, pth, os.path.join(d, "params.safetensors"), "--preset", "tiny",
                        "--set", "context_tokens=1"], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("convert_pth failed: " + r.stderr + r.stdout)
    # a mis-shaped checkpoint must be refused with the tensor named
    bad = dict(sd)
    bad["denoise_fn.final_conv.block.3.bias"] = torch.zeros(4)
    torch.save(bad, os.path.join(d, "bad.pth"))
    r = subprocess.run([sys.executable, tool, os.path.join(d, "bad.pth"), os.path.join(d, "bad.safetensors"),
                        "--preset", "tiny", "--set", "context_tokens=1"], capture_output=True, text=True)
    if r.returncode == 0 or "final_conv.block.3.bias" not in r.stderr:
        raise RuntimeError("convert_pth accepted a mis-shaped tensor: " + r.stderr)
    os.remove(os.path.join(d, "bad.pth"))
    write_io(d, model, c, 3011, "convert")
