"""numpy twins of the classical fusion methods (src/fusion/*.c), written from the definitions in
docs/fusion.md, on crops of real pairs from the data directory.

Each case fusion/<name>.safetensors holds the grey inputs a, b (h, w; PIL convert("L") of the
pair, cropped) and the expected outputs y_average, y_laplacian, y_gff (clipped to 0..255) and
y_gradient (the raw screened-Poisson solution, not clipped, solved with explicit DCT matrices);
metadata: lap_levels, lambda.

The sums inside the pyramid and the saliency filter run in the same tap order as the C code
(k = -R..R, horizontal pass first) in float64, so the max-|.| selections see identical values.
Borders use np.pad (reflect / edge) and box means use cumulative sums, i.e. a different
implementation of the same definitions.
"""
import math
import os

import numpy as np
from PIL import Image

from common import case_dir, save_safetensors

# ---------------------------------------------------------------- laplacian pyramid

BINOM = [1.0 / 16, 4.0 / 16, 6.0 / 16, 4.0 / 16, 1.0 / 16]


def default_levels(w, h):
    levels = 1
    while levels < 6:
        w, h = (w + 1) // 2, (h + 1) // 2
        if w < 8 or h < 8:
            break
        levels += 1
    return levels


def conv_axis(x, taps, axis, mode):
    """sum_k taps[k] * x[i + k - R] along axis, border by np.pad(mode), in tap order."""
    r = len(taps) // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (r, r)
    xp = np.pad(x, pad, mode=mode)
    n = x.shape[axis]
    acc = np.zeros_like(x)
    for k, t in enumerate(taps):
        sl = [slice(None), slice(None)]
        sl[axis] = slice(k, k + n)
        acc = acc + t * xp[tuple(sl)]
    return acc


def reduce_(g):
    t = conv_axis(g, BINOM, 1, "reflect")[:, ::2]
    return conv_axis(t, BINOM, 0, "reflect")[::2, :]


def expand(g, shape):
    up = np.zeros(shape)
    up[::2, ::2] = g
    taps2 = [2.0 * t for t in BINOM]
    return conv_axis(conv_axis(up, taps2, 1, "reflect"), taps2, 0, "reflect")


def laplacian_pyramid(x, levels):
    gs = [x]
    for _ in range(levels - 1):
        gs.append(reduce_(gs[-1]))
    return [gs[i] - expand(gs[i + 1], gs[i].shape) for i in range(levels - 1)] + [gs[-1]]


def fuse_laplacian(a, b, levels):
    la, lb = laplacian_pyramid(a, levels), laplacian_pyramid(b, levels)
    f = [np.where(np.abs(y) > np.abs(x), y, x) for x, y in zip(la[:-1], lb[:-1])]
    r = 0.5 * (la[-1] + lb[-1])
    for d in reversed(f):
        r = d + expand(r, d.shape)
    return np.clip(r, 0, 255)


# ---------------------------------------------------------------- guided filtering fusion (Li et al. 2013)

def box_mean(x, r):
    """Mean over the (2r+1)^2 window clipped to the image (sum / number of pixels inside)."""
    def along(x, axis):
        n = x.shape[axis]
        c = np.concatenate([np.zeros_like(np.take(x, [0], axis=axis)), np.cumsum(x, axis=axis)], axis=axis)
        i = np.arange(n)
        lo, hi = np.maximum(i - r, 0), np.minimum(i + r, n - 1)
        s = np.take(c, hi + 1, axis=axis) - np.take(c, lo, axis=axis)
        cnt = (hi - lo + 1).astype(np.float64)
        return s / (cnt[None, :] if axis == 1 else cnt[:, None])
    return along(along(x, 1), 0)


def gauss_taps(radius, sigma):
    g = [math.exp(-(k * k) / (2.0 * sigma * sigma)) for k in range(-radius, radius + 1)]
    s = 0.0
    for v in g:
        s = s + v
    return [v / s for v in g]


def saliency(x, taps):
    p = np.pad(x, 1, mode="edge")
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4.0 * x
    return conv_axis(conv_axis(np.abs(lap), taps, 1, "edge"), taps, 0, "edge")


def guided_filter(guide, p, r, eps):
    mi, mp = box_mean(guide, r), box_mean(p, r)
    var = box_mean(guide * guide, r) - mi * mi
    cov = box_mean(guide * p, r) - mi * mp
    a = cov / (var + eps)
    b = mp - a * mi
    return box_mean(a, r) * guide + box_mean(b, r)


def fuse_gff(a, b, mean_r=15, gauss_r=5, sigma=5.0, r1=45, eps1=0.3, r2=7, eps2=1e-6):
    s2 = 255.0 * 255.0
    ba, bb = box_mean(a, mean_r), box_mean(b, mean_r)
    taps = gauss_taps(gauss_r, sigma)
    pa = (saliency(a, taps) >= saliency(b, taps)).astype(np.float64)
    pb = 1.0 - pa
    wba, wbb = guided_filter(a, pa, r1, eps1 * s2), guided_filter(b, pb, r1, eps1 * s2)
    wda, wdb = guided_filter(a, pa, r2, eps2 * s2), guided_filter(b, pb, r2, eps2 * s2)

    def norm(x, y):
        x, y = np.clip(x, 0, 1), np.clip(y, 0, 1)
        s = x + y
        ok = s > 1e-12
        return np.where(ok, x / np.where(ok, s, 1), 0.5), np.where(ok, y / np.where(ok, s, 1), 0.5)

    wba, wbb = norm(wba, wbb)
    wda, wdb = norm(wda, wdb)
    f = wba * ba + wbb * bb + wda * (a - ba) + wdb * (b - bb)
    return np.clip(f, 0, 255)


# ---------------------------------------------------------------- gradient-domain fusion

def dct_matrix(n):
    k = np.arange(n)[:, None]
    j = np.arange(n)[None, :]
    c = np.cos(np.pi * (2 * j + 1) * k / (2.0 * n)) * np.sqrt(2.0 / n)
    c[0, :] = np.sqrt(1.0 / n)
    return c


def grad_fwd(x):
    gx = np.zeros_like(x)
    gy = np.zeros_like(x)
    gx[:, :-1] = x[:, 1:] - x[:, :-1]
    gy[:-1, :] = x[1:, :] - x[:-1, :]
    return gx, gy


def div_bwd(gx, gy):
    """-(adjoint of grad_fwd): backward differences with zero outside."""
    dx = gx.copy()
    dx[:, 1:] -= gx[:, :-1]
    dy = gy.copy()
    dy[1:, :] -= gy[:-1, :]
    return dx + dy


def fuse_gradient(a, b, lam):
    axg, ayg = grad_fwd(a)
    bxg, byg = grad_fwd(b)
    use_b = bxg ** 2 + byg ** 2 > axg ** 2 + ayg ** 2
    gx, gy = np.where(use_b, bxg, axg), np.where(use_b, byg, ayg)
    f = lam * np.maximum(a, b) - div_bwd(gx, gy)
    h, w = a.shape
    ch, cw = dct_matrix(h), dct_matrix(w)
    mx = 4.0 * np.sin(np.pi * np.arange(w) / (2.0 * w)) ** 2
    my = 4.0 * np.sin(np.pi * np.arange(h) / (2.0 * h)) ** 2
    F = ch @ f @ cw.T
    U = F / (lam + mx[None, :] + my[:, None])
    u = ch.T @ U @ cw
    # the discrete equation must hold: lambda (u - u0) - div(grad u - g) = 0
    ux, uy = grad_fwd(u)
    res = lam * (u - np.maximum(a, b)) - div_bwd(ux - gx, uy - gy)
    assert np.abs(res).max() < 1e-8, np.abs(res).max()
    return u


# ---------------------------------------------------------------- cases

def load_grey(path):
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.float64)


def crop(x, w, h, x0=None, y0=None):
    H, W = x.shape
    w, h = min(w, W), min(h, H)
    if x0 is None:
        x0, y0 = (W - w) // 2, (H - h) // 2
    return x[y0:y0 + h, x0:x0 + w]


def generate(out_dir, data_dir):
    d = case_dir(out_dir, "fusion")
    lam = 0.05
    # (name, folder a, folder b, crop w, h, x0, y0, laplacian levels: 0 = default)
    cases = [
        ("ivf_roadscene", "ivf/val/ir", "ivf/val/vi", "roadscene_FLIR_00455.png", 128, 128, None, None, 0),
        ("med_pet", "med/val/mri", "med/val/other", "pet_25024.png", 128, 128, None, None, 0),
        ("med_ct_odd", "med/val/mri", "med/val/other", "ct_2005.png", 97, 75, 70, 90, 0),
        ("ivf_tno_tiny", "ivf/val/ir", "ivf/val/vi", "tno_athena_helicopter.png", 13, 9, None, None, 3),
    ]
    for name, fa, fb, fname, w, h, x0, y0, levels in cases:
        pa, pb = os.path.join(data_dir, fa, fname), os.path.join(data_dir, fb, fname)
        a = crop(load_grey(pa), w, h, x0, y0)
        b = crop(load_grey(pb), w, h, x0, y0)
        hh, ww = a.shape
        lv = levels or default_levels(ww, hh)
        out = {
            "a": a.astype(np.float32),
            "b": b.astype(np.float32),
            "y_average": 0.5 * (a + b),
            "y_laplacian": fuse_laplacian(a, b, lv),
            "y_gff": fuse_gff(a, b),
            "y_gradient": fuse_gradient(a, b, lam),
        }
        save_safetensors(os.path.join(d, name + ".safetensors"), out,
                         metadata={"lap_levels": levels, "lap_levels_used": lv, "lambda": lam,
                                   "source": f"{fa}/{fname} + {fb}/{fname}"})
