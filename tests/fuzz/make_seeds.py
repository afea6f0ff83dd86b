#!/usr/bin/python3
"""Writes the seed corpora of the fuzzing harnesses (tests/fuzz/corpus/<name>/seed_*): tiny valid
inputs of every format and feature the loaders handle, so the fuzzer starts from deep inside each
parser. Deterministic; run once, the files are kept in git (the fuzzer's own finds are added next to
them by `-merge=1`, see README.md). Usage: /usr/bin/python3 tests/fuzz/make_seeds.py"""
import io, json, os, struct, sys
import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))


def out(kind, name, data):
    d = os.path.join(HERE, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed_" + name), "wb") as f:
        f.write(data)


def img_bytes(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def images():
    rng = np.random.default_rng(7)
    grey = Image.fromarray(rng.integers(0, 256, (5, 7), dtype=np.uint8), "L")
    rgb = Image.fromarray(rng.integers(0, 256, (6, 4, 3), dtype=np.uint8), "RGB")
    rgba = Image.fromarray(rng.integers(0, 256, (3, 5, 4), dtype=np.uint8), "RGBA")
    la = Image.fromarray(rng.integers(0, 256, (4, 4, 2), dtype=np.uint8), "LA")
    g16 = Image.fromarray(rng.integers(0, 65536, (4, 6), dtype=np.uint16).astype(np.int32), "I").convert("I;16")
    pal = rgb.convert("P", palette=Image.ADAPTIVE, colors=8)
    out("image", "grey.png", img_bytes(grey, "PNG"))
    out("image", "rgb.png", img_bytes(rgb, "PNG"))
    out("image", "rgba.png", img_bytes(rgba, "PNG"))
    out("image", "la.png", img_bytes(la, "PNG"))
    out("image", "grey16.png", img_bytes(g16, "PNG"))
    out("image", "palette.png", img_bytes(pal, "PNG"))
    out("image", "interlaced.png", _adam7(rgb))
    out("image", "grey.jpg", img_bytes(grey.resize((16, 16)), "JPEG", quality=70))
    out("image", "rgb.jpg", img_bytes(rgb.resize((16, 8)), "JPEG", quality=70))
    out("image", "progressive.jpg", img_bytes(rgb.resize((16, 16)), "JPEG", quality=50, progressive=True))
    out("image", "rgb_420.jpg", img_bytes(rgb.resize((17, 9)), "JPEG", quality=60, subsampling=2))
    out("image", "rgb.bmp", img_bytes(rgb, "BMP"))
    out("image", "palette.bmp", img_bytes(pal, "BMP"))
    out("image", "grey.bmp", img_bytes(grey, "BMP"))
    out("image", "rgb.tga", img_bytes(rgb, "TGA"))
    out("image", "rgb_rle.tga", img_bytes(rgb, "TGA", compression="tga_rle"))
    out("image", "grey.pgm", img_bytes(grey, "PPM"))
    out("image", "rgb.ppm", img_bytes(rgb, "PPM"))
    out("image", "grey16.pgm", b"P5\n3 2\n65535\n" + np.arange(6, dtype=">u2").tobytes() * 1)
    out("image", "ascii.pgm", b"P2\n# comment\n3 2\n255\n0 1 2\n3 4 255\n")


def _adam7(im):
    """An interlaced PNG written by hand (Pillow cannot write Adam7): 4x4 grey, filter 0."""
    import zlib
    a = np.asarray(im.convert("L").resize((4, 4)))
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    raw = b""
    for x0, y0, dx, dy in passes:
        rows = [a[y, x0::dx] for y in range(y0, 4, dy)]
        if not rows or len(rows[0]) == 0:
            continue
        for r in rows:
            raw += b"\0" + r.tobytes()

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 0, 0, 0, 1)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def st_file(tensors, meta=None):
    """tensors: list of (name, dtype, shape, raw bytes)"""
    hdr, off, data = {}, 0, b""
    for name, dt, shape, raw in tensors:
        hdr[name] = {"dtype": dt, "shape": list(shape), "data_offsets": [off, off + len(raw)]}
        off += len(raw)
        data += raw
    if meta:
        hdr["__metadata__"] = meta
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


NET = {"preset": "tiny", "channel_mults": [1, 2], "context_dim": 64, "context_tokens": 2, "mamba": "bidirectional"}
CLARITY = {"widths": [8, 16], "groups": 8, "pool": 0, "context_dim": 64, "blur_weight": 0.5, "threshold": 1.5,
           "lambda": 0.1}
DIFF = {"schedule": "linear", "T": 50, "beta_start": 1e-6, "beta_end": 0.01, "sampler": "ddim", "steps": 3,
        "spacing": "linspace", "eta": 0, "context": "clarity"}


def safetensors():
    f32 = np.arange(6, dtype="<f4")
    out("safetensors", "f32.st", st_file([("w", "F32", (2, 3), f32.tobytes())]))
    out("safetensors", "dtypes.st", st_file([
        ("a", "F16", (3,), np.array([1, -2, 65504], "<f2").tobytes()),
        ("b", "BF16", (2,), np.array([0x3F80, 0xC000], "<u2").tobytes()),
        ("c", "F64", (1, 2), np.array([1.5, -0.25], "<f8").tobytes()),
        ("d", "I64", (1,), np.array([7], "<i8").tobytes()),
        ("e", "U8", (2,), b"\x01\x02"), ("f", "BOOL", (1,), b"\x01"), ("g", "I32", (1,), b"\0\0\0\0"),
        ("h", "I16", (1,), b"\0\0"), ("i", "I8", (1,), b"\0")]))
    out("safetensors", "scalar_empty.st", st_file([("s", "F32", (), b"\0\0\x80\x3f"), ("z", "F32", (0, 4), b"")]))
    out("safetensors", "nan.st", st_file([("n", "F32", (2,), np.array([np.nan, np.inf], "<f4").tobytes())]))
    out("safetensors", "meta.st", st_file([("x.weight", "F32", (1,), f32[:1].tobytes())],
                                          {"format": "pt", "note": "caf\u00e9 \\u0041"}))
    out("safetensors", "model.st", st_file(
        [("conv.weight", "F16", (2, 2), np.ones(4, "<f2").tobytes()),
         ("clarity.x", "F32", (1,), f32[:1].tobytes())],
        {"fsdiff.config": json.dumps(NET), "fsdiff.clarity": json.dumps(CLARITY),
         "fsdiff.diffusion": json.dumps(DIFF), "fsdiff.train": "{\"step\":3}"}))


def configs():
    out("config", "net.json", json.dumps(NET).encode())
    out("config", "net_full.json", json.dumps({
        "in_channels": 9, "out_channels": 3, "base_channels": 32, "channel_mults": [1, 2, 4], "res_blocks": 2,
        "attn_res": [16, 8], "image_size": 64, "d_head": 16, "norm_groups": 16, "context_dim": 128,
        "context_tokens": 10, "dropout": 0.1, "mamba": "forward", "mamba_bottleneck": "bidirectional",
        "mamba_divide_out": False, "d_state": 8, "d_conv": 3, "expand": 1}).encode())
    out("config", "clarity.json", json.dumps(CLARITY).encode())
    out("config", "diffusion.json", json.dumps(DIFF).encode())
    out("config", "diffusion_cos.json", b'{"schedule": "cosine", "T": 1000, "sampler": "dpmpp2m", "steps": 20, '
                                        b'"spacing": "trailing", "context": "mean"}')
    out("config", "json_misc.json", '[null, true, false, -0, 1e-3, 12345678901234567890, "\\ud83d\\ude00\\n", {"": {}}, []]'.encode())
    out("config", "json_unicode.json", '{"k\u00e9y": "\u4e2d\u6587", "esc": "\\"\\\\\\/\\b\\f\\r\\t"}'.encode())


if __name__ == "__main__":
    images()
    safetensors()
    configs()
    for k in ("image", "safetensors", "config"):
        d = os.path.join(HERE, "corpus", k)
        fs = os.listdir(d)
        print(k, len(fs), "files", sum(os.path.getsize(os.path.join(d, f)) for f in fs), "bytes")
