#!/usr/bin/python3
"""Writes the hostile inputs of tests/cli/hostile.sh into OUT_DIR (argv[1]); argv[2] is a tiny valid
model file (test_fuse --make-model) that the model-file cases are mutated from. Everything is made
here from a fixed seed: nothing is read from the data set."""
import io, json, os, struct, sys, zlib
import numpy as np
from PIL import Image

out, model = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(11)


def put(name, data):
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)


def save(im, name, fmt=None, **kw):
    b = io.BytesIO()
    im.save(b, fmt or name.rsplit(".", 1)[1].upper().replace("JPG", "JPEG"), **kw)
    put(name, b.getvalue())
    return b.getvalue()


def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def png_raw(w, h, depth, ctype, raw, extra=b""):
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, ctype, 0, 0, 0)) + extra +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


# ---- good inputs (the hostile cases change one thing at a time)
grey16 = Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8), "L")
rgb8 = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8), "RGB")
big = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB")
save(grey16, "ir.png")
save(rgb8, "vi.png")
save(Image.fromarray(rng.integers(0, 256, (10, 10), dtype=np.uint8), "L"), "vi10.png")
png = save(big, "big.png")                       # 64x64 RGB, ~12 KB of noise
save(big.convert("L"), "big_grey.png")
save(big.resize((48, 48)), "big48.png")
jpg = save(big, "big.jpg", quality=90)

save(Image.new("L", (4096, 4096)), "flat4096.png")  # compresses to ~16 KB; x8 -> 32768 x 32768 output

# 16-bit and palette PNGs load (checked by the script: they are no error)
g16 = (rng.integers(0, 65536, (64, 64))).astype(">u2")
put("grey16bit.png", png_raw(64, 64, 16, 0, b"".join(b"\0" + g16[y].tobytes() for y in range(64))))
save(big.convert("P", palette=Image.ADAPTIVE, colors=16), "palette.png")

# ---- corrupt / truncated images
put("trunc.png", png[: len(png) // 2])
bad = bytearray(png)
bad[-20] ^= 0x55                                   # inside the IDAT data: its CRC no longer matches
put("crc.png", bytes(bad))
put("zero.png", png_raw(0, 0, 8, 0, b""))
put("huge.png", png_raw(100000, 100000, 8, 0, b"\0" * 64))
put("trunc16.png", png_raw(64, 64, 16, 0, b"".join(b"\0" + g16[y].tobytes() for y in range(64)))[:300])
# 16-bit data stream that inflates to too few bytes (chunks and CRCs all fine)
put("short16.png", png_raw(64, 64, 16, 0, b"\0" + g16[0].tobytes()))
# palette image without its PLTE chunk
put("noplte.png", png_raw(4, 4, 8, 3, b"".join(b"\0" + bytes([0, 1, 2, 3]) for _ in range(4))))
put("trunc.jpg", jpg[: len(jpg) // 2])
put("garbage.jpg", b"\xff\xd8\xff\xe0" + bytes(rng.integers(0, 256, 300, dtype=np.uint8)))
# baseline JPEG header claiming 65535 x 65535 (SOF0 edited), rest of a real file
j = bytearray(jpg)
k = j.find(b"\xff\xc0")
j[k + 5:k + 9] = struct.pack(">HH", 65535, 65535)
put("huge.jpg", bytes(j))
bmp = save(big, "big.bmp")
put("trunc.bmp", bmp[: len(bmp) // 3])
b2 = bytearray(bmp[:54])
b2[18:26] = struct.pack("<ii", 100000, 100000)
put("huge.bmp", bytes(b2))
put("trunc16.pgm", b"P5\n64 64\n65535\n" + b"\0" * 100)
b3 = bytearray(bmp[:54])
b3[18:26] = struct.pack("<ii", 16000, 16000)                      # under the pixel limit, 768 MB of pixels
put("amplify.bmp", bytes(b3))
put("amplify.ppm", b"P6\n16000 16000\n255\n" + b"\0" * 16)
put("notimage.png", b"this is a text file, not an image\n")
put("empty.png", b"")


# ---- safetensors
def st_read(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    return json.loads(b[8:8 + n]), b[8 + n:]


def st_write(name, hdr, data, hlen=None):
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    put(name, struct.pack("<Q", len(h) if hlen is None else hlen) + h + data)


hdr, data = st_read(model)
meta = hdr["__metadata__"]
names = [k for k in hdr if k != "__metadata__"]
first = min(names, key=lambda k: hdr[k]["data_offsets"][0])      # the tensor at offset 0
conv = next(k for k in names if len(hdr[k]["shape"]) == 4 and hdr[k]["shape"][0] != hdr[k]["shape"][1])
raw = open(model, "rb").read()
hl = struct.unpack("<Q", raw[:8])[0]

put("lying_header.safetensors", struct.pack("<Q", hl + 1000) + raw[8:])
put("lying_short.safetensors", struct.pack("<Q", hl - 16) + raw[8:])
put("lying_far.safetensors", struct.pack("<Q", len(raw)) + raw[8:])
put("absurd_header.safetensors", struct.pack("<Q", 1 << 62) + raw[8:])
put("trunc_model.safetensors", raw[: 8 + hl + len(data) // 2])
h = json.loads(json.dumps(hdr))
o = h[names[1]]["data_offsets"]
h[names[1]]["data_offsets"] = [o[0] - 4, o[1] - 4]                # overlaps its neighbour by 4 bytes
h[names[1]]["data_offsets"] = [o[0] - 4, o[1] - 4] if o[0] >= 4 else [o[0] + 4, o[1] + 4]
st_write("overlap.safetensors", h, data)
h = json.loads(json.dumps(hdr))
o = h[first]["data_offsets"]
h[first]["data_offsets"] = [len(data) + 64, len(data) + 64 + o[1] - o[0]]
st_write("outside.safetensors", h, data)
h = json.loads(json.dumps(hdr))
h[first]["dtype"] = "I32"                                         # same bytes, wrong dtype
st_write("wrong_dtype.safetensors", h, data)
h = json.loads(json.dumps(hdr))
s = h[conv]["shape"]
h[conv]["shape"] = [s[1], s[0]] + s[2:]                           # same numel, wrong shape
st_write("wrong_shape.safetensors", h, data)
h = json.loads(json.dumps(hdr))
del h[conv]
st_write("missing_tensor.safetensors", h, data)
for tag, val in (("nan", np.nan), ("inf", np.inf)):
    d = bytearray(data)
    o = hdr[conv]["data_offsets"][0]
    d[o + 8:o + 12] = np.array([val], "<f4").tobytes()
    st_write(tag + "_weight.safetensors", hdr, bytes(d))
h = json.loads(json.dumps(hdr))
del h["__metadata__"]
st_write("no_config.safetensors", h, data)
h = json.loads(json.dumps(hdr))
c = json.loads(meta["fsdiff.config"])
c["base_channels"] = 100000
h["__metadata__"]["fsdiff.config"] = json.dumps(c)
st_write("absurd_config.safetensors", h, data)
h = json.loads(json.dumps(hdr))
d = json.loads(meta["fsdiff.diffusion"])
d["steps"] = d["T"] + 1
h["__metadata__"]["fsdiff.diffusion"] = json.dumps(d)
st_write("absurd_diffusion.safetensors", h, data)
h = json.loads(json.dumps(hdr))
h["__metadata__"]["fsdiff.config"] = meta["fsdiff.config"][:-5]
st_write("broken_config_json.safetensors", h, data)
h = json.loads(json.dumps(hdr))
h["evil\nname"] = h.pop(first)                                    # a newline in a tensor name
st_write("newline_name.safetensors", h, data)
put("zero_header.safetensors", struct.pack("<Q", 0) + b"{}")


def ctx(name, arr):
    arr = np.ascontiguousarray(arr, "<f4")
    st_write(name, {"context": {"dtype": "F32", "shape": list(arr.shape), "data_offsets": [0, arr.nbytes]}},
             arr.tobytes())


cfg = json.loads(meta["fsdiff.config"])
cx = rng.standard_normal((cfg["context_tokens"], cfg["context_dim"]))
cx[0, 3] = np.nan
ctx("ctx_nan.safetensors", cx)

# ---- network configs for fsdiff train --config
put("cfg_truncated.json", b'{"preset": "tiny", "base_channels": 3')
put("cfg_absurd.json", json.dumps({"preset": "tiny", "base_channels": 1 << 20}).encode())
put("cfg_unknown.json", json.dumps({"preset": "tiny", "base_chanels": 32}).encode())
put("cfg_wrongtype.json", json.dumps({"preset": "tiny", "channel_mults": "1,2"}).encode())
put("cfg_notobject.json", b"[1, 2, 3]")
