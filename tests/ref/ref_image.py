"""Reference twin of the image layer (src/image): Pillow is the oracle.

Writes under out_dir/image/:
  resize_<src>_<down|up>.safetensors  crops of real images (data_dir) and Pillow's bicubic resizes of
                                      them: 'u8_<tag>' = Image.resize(size, BICUBIC) on the 8-bit image,
                                      'f_<tag>' = the same per channel on mode "F" (float path).
  load_<name>.safetensors             a file (real data image, or one Pillow wrote into files/) and
                                      Pillow's decode of it: a crop + a position-weighted checksum.
  color_<src>.safetensors             Pillow convert('L') / convert('YCbCr') and the float64 formulas.
  blur_<src>_<sigma>.safetensors      Gaussian blur in float64 (PyTorch reflect pad + conv2d).
  degrade_<name>.safetensors          blur -> round -> Pillow bicubic down (and back up for --up).
  files/                              images written by Pillow (BMP, TGA, PNM, JPEG, palette/RGBA/LA/16-bit
                                      PNG) for the loader tests and the corrupt-file tests.
Planar float layout [c, h, w] on the 0..255 scale everywhere. Integer images are stored as F16
(exact for 0..255) to keep the files small.
"""
import glob
import os
import struct
import zlib

import numpy as np
from PIL import Image

from common import case_dir, save_safetensors

BICUBIC = Image.BICUBIC


def planar(a):
    """HxW or HxWxC array -> [c, h, w] float32."""
    a = np.asarray(a)
    if a.ndim == 2:
        a = a[:, :, None]
    return np.ascontiguousarray(a.transpose(2, 0, 1).astype(np.float32))


def pick(data_dir, sub, mode, prefer=None):
    """A real image from data_dir/sub with the given PIL mode (preferred name first, else sorted order)."""
    if not os.path.isdir(os.path.join(data_dir, sub)):
        raise RuntimeError(f"data folder {os.path.join(data_dir, sub)} not found (configure with FSDIFF_DATA=...)")
    files = sorted(glob.glob(os.path.join(data_dir, sub, "*.png")))
    if prefer:
        files = [f for f in files if os.path.basename(f).startswith(prefer)] + files
    for f in files:
        with Image.open(f) as im:
            if im.mode == mode:
                return f
    raise RuntimeError(f"no {mode} image under {data_dir}/{sub}")


def crop(im, w, h, fx=0.5, fy=0.5):
    """A w x h crop around (fx, fy) of the image (relative position)."""
    x0 = int((im.width - w) * fx)
    y0 = int((im.height - h) * fy)
    return im.crop((x0, y0, x0 + w, y0 + h))


def pil_resize_f(im, size):
    """Pillow's float path: each channel as mode 'F', resized with BICUBIC."""
    chans = im.split() if im.mode == "RGB" else [im]
    out = [np.asarray(Image.fromarray(np.asarray(c, dtype=np.float32), mode="F").resize(size, BICUBIC))
           for c in chans]
    return np.stack(out, 0).astype(np.float32)


def resize_cases(d, tag, im, direction):
    if direction == "down":
        src = crop(im, 120, 96, 0.45, 0.55)
        sizes = {"d2": (60, 48), "d4": (30, 24), "d8": (15, 12), "d3.3": (round(120 / 3.3), round(96 / 3.3)),
                 "aniso": (50, 130)}
    else:
        src = crop(im, 21, 17, 0.4, 0.5)
        sizes = {"u2": (42, 34), "u4": (84, 68), "u8": (168, 136)}
    t = {"src": planar(src)}
    meta = {"tags": " ".join(sizes), "mode": src.mode, "source": tag}
    for k, (w, h) in sizes.items():
        t["u8_" + k] = planar(src.resize((w, h), BICUBIC))
        t["f_" + k] = pil_resize_f(src, (w, h))
        meta["size_" + k] = f"{w}x{h}"
    dt = {k: "F16" for k in t if not k.startswith("f_")}
    save_safetensors(os.path.join(d, f"resize_{tag}_{direction}.safetensors"), t, meta, dt)


def checksum(p):
    """sum_i p_i * (i mod 251 + 1) over the flattened planar image, in float64."""
    flat = p.reshape(-1).astype(np.float64)
    wts = (np.arange(flat.size) % 251 + 1).astype(np.float64)
    return float(np.dot(flat, wts))


def load_case(d, name, path, ref, tol=0.0):
    """ref: [c, h, w] float32 values the C loader must produce (within tol)."""
    c, h, w = ref.shape
    cw, ch = min(48, w), min(40, h)
    x0, y0 = (w - cw) // 3, (h - ch) // 2
    meta = {"file": os.path.abspath(path), "w": w, "h": h, "c": c, "x0": x0, "y0": y0, "cw": cw, "ch": ch,
            "checksum": repr(checksum(ref)), "tol": tol}
    save_safetensors(os.path.join(d, f"load_{name}.safetensors"),
                     {"crop": np.ascontiguousarray(ref[:, y0:y0 + ch, x0:x0 + cw])}, meta)


def write_png16(path, a):
    """Minimal 16-bit PNG writer (Pillow cannot write 16-bit RGB): a is HxWx3 or HxWx4 uint16."""
    h, w, c = a.shape
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + a[y].astype(">u2").tobytes() for y in range(h))

    def chunk(t, data):
        return struct.pack(">I", len(data)) + t + data + struct.pack(">I", zlib.crc32(t + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def load_cases(d, data_dir, ir_path, vi_path, pet_path):
    files = os.path.join(d, "files")
    os.makedirs(files, exist_ok=True)
    # real data files, decoded by Pillow
    for name, p in (("data_ir", ir_path), ("data_vi", vi_path), ("data_pet", pet_path)):
        with Image.open(p) as im:
            load_case(d, name, p, planar(im))
    vi = crop(Image.open(vi_path).convert("RGB"), 64, 48)
    ir = crop(Image.open(ir_path).convert("L"), 64, 48)
    g = np.random.default_rng(7)

    def w(name, im, ref, tol=0.0, **kw):
        p = os.path.join(files, name)
        im.save(p, **kw)
        load_case(d, os.path.splitext(name)[0] + "_" + os.path.splitext(name)[1][1:], p, ref, tol)
        return p

    # lossless 8-bit formats: the C loader must match exactly
    w("rgb.png", vi, planar(vi))
    w("grey.png", ir, planar(ir))
    w("rgb.bmp", vi, planar(vi))
    w("grey.bmp", ir, planar(ir.convert("RGB")))  # 8-bit BMP = palette image: 3 equal planes by our rule
    w("rgb.tga", vi, planar(vi))
    w("grey.tga", ir, planar(ir))
    w("rgb.ppm", vi, planar(vi))
    w("grey.pgm", ir, planar(ir))
    pal = vi.quantize(64)
    w("palette.png", pal, planar(pal.convert("RGB")))
    rgba = vi.copy()
    rgba.putalpha(Image.fromarray(g.integers(0, 256, (48, 64), dtype=np.uint8)))
    w("rgba.png", rgba, planar(vi))  # alpha is dropped, not composited
    la = ir.copy()
    la.putalpha(Image.fromarray(g.integers(0, 256, (48, 64), dtype=np.uint8)))
    w("la.png", la, planar(ir))
    # 16-bit PNGs: grey written by Pillow (mode I;16), RGB/RGBA written by hand; loader divides by 257
    a16 = (np.asarray(ir, dtype=np.uint16) * 257 + g.integers(0, 257, (48, 64))).astype(np.uint16)
    im16 = Image.fromarray(a16)  # mode "I;16"
    assert im16.mode == "I;16", im16.mode
    w("grey16.png", im16, (a16.astype(np.float32) / np.float32(257))[None])
    rgb16 = (np.asarray(vi, dtype=np.uint16) * 257 + g.integers(0, 257, (48, 64, 3))).astype(np.uint16)
    p = os.path.join(files, "rgb16.png")
    write_png16(p, rgb16)
    load_case(d, "rgb16_png", p, planar(rgb16.astype(np.float32) / np.float32(257)))
    rgba16 = np.concatenate([rgb16, g.integers(0, 65536, (48, 64, 1)).astype(np.uint16)], 2)
    p = os.path.join(files, "rgba16.png")
    write_png16(p, rgba16)
    load_case(d, "rgba16_png", p, planar(rgb16.astype(np.float32) / np.float32(257)))
    # JPEG: reference is libjpeg's decode (via Pillow); stb_image's IDCT / chroma upsampling may
    # differ by a few grey levels, so these cases carry a tolerance (see test_image.c).
    for name, im, kw in (("rgb.jpg", vi, {"quality": 90}), ("grey.jpg", ir, {"quality": 90}),
                         ("prog.jpg", vi, {"quality": 85, "progressive": True})):
        pth = os.path.join(files, name)
        im.save(pth, **kw)
        with Image.open(pth) as j:
            load_case(d, os.path.splitext(name)[0] + "_jpg", pth, planar(j), tol=8.0)


def color_cases(d, tag, im):
    src = crop(im, 64, 48, 0.3, 0.6)
    a = planar(src).astype(np.float64)
    r, g, b = a
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 + (b - y) / 1.772
    cr = 128 + (r - y) / 1.402
    save_safetensors(os.path.join(d, f"color_{tag}.safetensors"), {
        "src": planar(src), "grey_pil": planar(src.convert("L")), "ycbcr_pil": planar(src.convert("YCbCr")),
        "grey_f64": y[None], "ycbcr_f64": np.stack([y, cb, cr])}, {"source": tag},
        {"src": "F16", "grey_pil": "F16", "ycbcr_pil": "F16"})


def gauss_blur(a, sigma):
    """[c, h, w] float64 numpy -> blurred, PyTorch reflect pad + depthwise conv2d with the 2-D kernel."""
    import torch
    import torch.nn.functional as F
    r = int(np.ceil(3 * sigma))
    x = np.arange(-r, r + 1, dtype=np.float64)
    k1 = np.exp(-x * x / (2 * sigma * sigma))
    k1 /= k1.sum()
    k2 = torch.tensor(np.outer(k1, k1))[None, None]
    t = torch.tensor(a, dtype=torch.float64)[:, None]  # [c, 1, h, w]
    t = F.pad(t, (r, r, r, r), mode="reflect")
    return F.conv2d(t, k2)[:, 0].numpy()


def blur_cases(d, tag, im):
    src = crop(im, 64, 48, 0.6, 0.4)
    for sigma in (0.8, 1.5, 2.5):
        save_safetensors(os.path.join(d, f"blur_{tag}_{sigma}.safetensors"),
                         {"src": planar(src), "ref": gauss_blur(planar(src).astype(np.float64), sigma)},
                         {"sigma": repr(sigma), "source": tag}, {"src": "F16"})


def degrade_case(d, name, im, scale, blur):
    a = planar(im)
    if blur > 0:
        b = np.clip(np.floor(gauss_blur(a.astype(np.float64), blur) + 0.5), 0, 255).astype(np.uint8)
        hr = Image.fromarray(b[0] if b.shape[0] == 1 else b.transpose(1, 2, 0))
    else:
        hr = im
    size = (int(np.floor(im.width / scale + 0.5)), int(np.floor(im.height / scale + 0.5)))
    lr = hr.resize(size, BICUBIC)
    up = lr.resize(im.size, BICUBIC)
    save_safetensors(os.path.join(d, f"degrade_{name}.safetensors"),
                     {"src": a, "ref": planar(lr), "ref_up": planar(up)},
                     {"scale": repr(scale), "blur": repr(blur)}, {"src": "F16", "ref": "F16", "ref_up": "F16"})


def generate(out_dir, data_dir):
    d = case_dir(out_dir, "image")
    ir_path = pick(data_dir, "ivf/val/ir", "L", "roadscene_")
    vi_path = pick(data_dir, "ivf/val/vi", "RGB", os.path.basename(ir_path)[:-4])
    mri_path = pick(data_dir, "med/val/mri", "L", "pet_")
    pet_path = pick(data_dir, "med/val/other", "RGB", "pet_")
    ims = {k: Image.open(p) for k, p in (("ir", ir_path), ("vi", vi_path), ("mri", mri_path), ("pet", pet_path))}
    for im in ims.values():
        im.load()
    for tag, im in ims.items():
        resize_cases(d, tag, im, "down")
        resize_cases(d, tag, im, "up")
    load_cases(d, data_dir, ir_path, vi_path, pet_path)
    color_cases(d, "vi", ims["vi"])
    color_cases(d, "pet", ims["pet"])
    blur_cases(d, "ir", ims["ir"])
    blur_cases(d, "vi", ims["vi"])
    degrade_case(d, "mri_x4", ims["mri"], 4.0, 0.0)  # the whole 256x256 slice
    degrade_case(d, "mri_x3.5_blur1.2", ims["mri"], 3.5, 1.2)
    degrade_case(d, "vi_x2_blur0.8", crop(ims["vi"], 200, 150), 2.0, 0.8)
    degrade_case(d, "ir_x8", crop(ims["ir"], 240, 160), 8.0, 0.0)
