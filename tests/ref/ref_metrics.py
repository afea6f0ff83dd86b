"""Reference twin for src/metrics: every fusion metric written again from its published definition,
in plain numpy float64, with different algorithms from the C code where possible (direct 2-D window
sums instead of separable filters, np.corrcoef, np.gradient, np.bincount histograms, vectorised
masks for the clamps). scikit-image's structural_similarity is a second, external SSIM reference.

Cases: real source pairs from the data directory (infrared/visible and MRI/PET/CT validation pairs,
colour converted to grey with round(0.299 R + 0.587 G + 0.114 B), cropped to at most 256x256), fused
with two simple rules (rounded mean, max). Each case stores A, B, F as F32 [h, w] tensors and the
expected values as metadata strings at full double precision:
  <NAME> for every fusion metric (EN SD SF AG MI SCD VIF Qabf SSIM CC PSNR),
  sr_PSNR / sr_SSIM for F against REF = A (the single-reference super-resolution pair),
  parts (vif_a, ssim_a, mi_a, ...), skimage_ssim_a / skimage_ssim_b, and qabf_matlab (the variant with
  the MATLAB code's G = gF quirk when gA == gF, for docs/metrics.md; not what the C code computes).
"""
import os

import numpy as np
from PIL import Image

from common import case_dir, save_safetensors

NAMES = ["EN", "SD", "SF", "AG", "MI", "SCD", "VIF", "Qabf", "SSIM", "CC", "PSNR"]

# (set, split, name, crop w, crop h, fusion rules)
CASES = [
    ("ivf", "val", "roadscene_FLIR_00455", 256, 200, ["mean", "max"]),
    ("ivf", "val", "tno_athena_helicopter", 233, 197, ["mean", "max"]),
    ("ivf", "val", "msrs_00013N", 256, 256, ["mean"]),
    ("med", "val", "pet_25024", 256, 256, ["mean", "max"]),
    ("med", "val", "ct_2005", 256, 256, ["max"]),
]


# ----------------------------------------------------------------------------------- loading
def load_grey(path):
    im = Image.open(path)
    if im.mode in ("L", "I;16", "I"):
        a = np.asarray(im, dtype=np.float64)
        if a.max() > 255:
            a = np.floor(a / 257.0 + 0.5)
        return a
    rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
    # round half up of the weighted sum, exactly as integers: (299 R + 587 G + 114 B + 500) // 1000
    s = 299 * rgb[..., 0] + 587 * rgb[..., 1] + 114 * rgb[..., 2]
    return np.floor((s + 500) / 1000)


def centre_crop(x, w, h):
    H, W = x.shape
    w, h = min(w, W), min(h, H)
    y0, x0 = (H - h) // 2, (W - w) // 2
    return x[y0:y0 + h, x0:x0 + w]


# ------------------------------------------------------------------------------------ metrics
def bins(x):
    return np.clip(np.floor(x + 0.5), 0, 255).astype(np.int64).ravel()


def entropy(f):
    p = np.bincount(bins(f), minlength=256) / f.size
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def sd(f):
    return float(np.std(f))


def spatial_frequency(f):
    rf = np.mean(np.diff(f, axis=1) ** 2)
    cf = np.mean(np.diff(f, axis=0) ** 2)
    return float(np.sqrt(rf + cf))


def average_gradient(f):
    gy, gx = np.gradient(f)
    return float(np.mean(np.sqrt((gx ** 2 + gy ** 2) / 2)))


def mutual_info(x, y):
    joint = np.bincount(bins(x) * 256 + bins(y), minlength=65536).reshape(256, 256) / x.size
    px, py = joint.sum(axis=1), joint.sum(axis=0)
    outer = px[:, None] * py[None, :]
    nz = joint > 0
    return float((joint[nz] * np.log2(joint[nz] / outer[nz])).sum())


def corr(x, y):
    return float(np.corrcoef(x.ravel(), y.ravel())[0, 1])


def psnr_pair(x, y):
    return float(10 * np.log10(255.0 ** 2 / np.mean((x - y) ** 2)))


def gauss2d(n, sd_):
    c = (n - 1) / 2
    yy, xx = np.mgrid[0:n, 0:n] - c
    k = np.exp(-(xx ** 2 + yy ** 2) / (2 * sd_ ** 2))
    return k / k.sum()


def filter_valid(x, k):
    """MATLAB filter2(k, x, 'valid'): direct sum of shifted slices."""
    n = k.shape[0]
    oh, ow = x.shape[0] - n + 1, x.shape[1] - n + 1
    out = np.zeros((oh, ow))
    for i in range(n):
        for j in range(n):
            out += k[i, j] * x[i:i + oh, j:j + ow]
    return out


def ssim_pair(x, y):
    k = gauss2d(11, 1.5)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = filter_valid(x, k), filter_valid(y, k)
    vx = filter_valid(x * x, k) - mx ** 2
    vy = filter_valid(y * y, k) - my ** 2
    cxy = filter_valid(x * y, k) - mx * my
    m = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(m.mean())


def skimage_ssim(x, y):
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        return None
    return float(structural_similarity(x, y, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                       data_range=255))


def vifp(ref, dist):
    """vifp_mscale (Sheikh & Bovik), ref = reference, dist = distorted, sigma_n^2 = 2."""
    num = den = 0.0
    for scale in range(1, 5):
        n = 2 ** (4 - scale + 1) + 1
        k = gauss2d(n, n / 5)
        if scale > 1:
            ref = filter_valid(ref, k)[::2, ::2]
            dist = filter_valid(dist, k)[::2, ::2]
        mu1, mu2 = filter_valid(ref, k), filter_valid(dist, k)
        s1 = filter_valid(ref * ref, k) - mu1 ** 2
        s2 = filter_valid(dist * dist, k) - mu2 ** 2
        s12 = filter_valid(ref * dist, k) - mu1 * mu2
        s1 = np.maximum(s1, 0)
        s2 = np.maximum(s2, 0)
        g = s12 / (s1 + 1e-10)
        sv = s2 - g * s12
        m = s1 < 1e-10
        g[m] = 0
        sv[m] = s2[m]
        s1[m] = 0
        m = s2 < 1e-10
        g[m] = 0
        sv[m] = 0
        m = g < 0
        sv[m] = s2[m]
        g[m] = 0
        sv[sv <= 1e-10] = 1e-10
        num += np.log10(1 + g ** 2 * s1 / (sv + 2)).sum()
        den += np.log10(1 + s1 / 2).sum()
    return float(num / den)


def conv2_same(x, kern):
    """MATLAB conv2(x, kern, 'same') for a 3x3 kernel: true convolution, zero padding."""
    p = np.pad(x, 1)
    h, w = x.shape
    out = np.zeros_like(x)
    for u in range(3):
        for v in range(3):
            # out(i,j) = sum kern(u,v) x(i - (u-1), j - (v-1))
            out += kern[u, v] * p[2 - u:2 - u + h, 2 - v:2 - v + w]
    return out


def qabf(a, b, f, matlab_equal_quirk=False):
    h1 = np.array([[1, 2, 1], [0, 0, 0], [-1, -2, -1]], dtype=np.float64)
    h3 = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)

    def grad(x):
        gx, gy = conv2_same(x, h3), conv2_same(x, h1)
        g = np.sqrt(gx ** 2 + gy ** 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            al = np.where(gx == 0, np.pi / 2, np.arctan(gy / np.where(gx == 0, 1, gx)))
        return g, al

    ga, aa = grad(a)
    gb, ab = grad(b)
    gf, af = grad(f)

    def q(gs, as_, gf_, af_):
        with np.errstate(divide="ignore", invalid="ignore"):
            G = np.where(gs > gf_, gf_ / gs, gs / gf_)
        eq = gs == gf_
        G[eq] = gf_[eq] if matlab_equal_quirk else 1.0
        A = 1 - np.abs(as_ - af_) / (np.pi / 2)
        qg = 0.9994 / (1 + np.exp(-15 * (G - 0.5)))
        qa = 0.9879 / (1 + np.exp(-22 * (A - 0.8)))
        return qg * qa

    num = (q(ga, aa, gf, af) * ga + q(gb, ab, gf, af) * gb).sum()
    return float(num / (ga + gb).sum())


def all_metrics(a, b, f):
    p = {}
    p["mi_a"], p["mi_b"] = mutual_info(f, a), mutual_info(f, b)
    p["vif_a"], p["vif_b"] = vifp(a, f), vifp(b, f)
    p["ssim_a"], p["ssim_b"] = ssim_pair(f, a), ssim_pair(f, b)
    p["cc_a"], p["cc_b"] = corr(f, a), corr(f, b)
    v = {
        "EN": entropy(f), "SD": sd(f), "SF": spatial_frequency(f), "AG": average_gradient(f),
        "MI": p["mi_a"] + p["mi_b"], "SCD": corr(f - b, a) + corr(f - a, b),
        "VIF": p["vif_a"] + p["vif_b"], "Qabf": qabf(a, b, f), "SSIM": p["ssim_a"] + p["ssim_b"],
        "CC": 0.5 * (p["cc_a"] + p["cc_b"]),
        "PSNR": float(10 * np.log10(255.0 ** 2 / ((np.mean((f - a) ** 2) + np.mean((f - b) ** 2)) / 2))),
    }
    return v, p


def fuse(a, b, rule):
    if rule == "mean":
        return np.floor((a + b) / 2 + 0.5)
    if rule == "max":
        return np.maximum(a, b)
    raise ValueError(rule)


def generate(out_dir, data_dir):
    d = case_dir(out_dir, "metrics")
    made = 0
    for set_, split, name, cw, ch, rules in CASES:
        da, db = ("ir", "vi") if set_ == "ivf" else ("mri", "other")
        pa = os.path.join(data_dir, set_, split, da, name + ".png")
        pb = os.path.join(data_dir, set_, split, db, name + ".png")
        a = centre_crop(load_grey(pa), cw, ch)
        b = centre_crop(load_grey(pb), cw, ch)
        for rule in rules:
            f = fuse(a, b, rule)
            v, parts = all_metrics(a, b, f)
            meta = {"w": a.shape[1], "h": a.shape[0], "source": f"{set_}/{split}/{name}", "fusion": rule,
                    "names": ",".join(NAMES)}
            for k in NAMES:
                meta[k] = repr(v[k])
            for k, x in parts.items():
                meta[k] = repr(x)
            meta["sr_PSNR"] = repr(psnr_pair(f, a))
            meta["sr_SSIM"] = repr(parts["ssim_a"])
            for tag, ref in (("a", a), ("b", b)):
                s = skimage_ssim(f, ref)
                if s is not None:
                    meta["skimage_ssim_" + tag] = repr(s)
                    # skimage filters with reflect padding, then averages the map cropped by (11-1)/2:
                    # exactly the valid region, so it must agree with the direct definition.
                    if abs(s - parts["ssim_" + tag]) > 1e-9:
                        raise AssertionError(f"{name}: skimage SSIM {s} != twin {parts['ssim_' + tag]}")
            meta["qabf_matlab"] = repr(qabf(a, b, f, matlab_equal_quirk=True))
            save_safetensors(os.path.join(d, f"{name}_{rule}.safetensors"),
                             {"a": a.astype(np.float32), "b": b.astype(np.float32), "f": f.astype(np.float32),
                              "expected": np.array([v[k] for k in NAMES], dtype=np.float64)},
                             metadata=meta, dtypes={"expected": "F64"})
            made += 1
    if made < 3:
        raise RuntimeError("too few metric cases")


if __name__ == "__main__":
    import sys
    import time
    t0 = time.time()
    generate(sys.argv[1] if len(sys.argv) > 1 else "/tmp/ref_metrics",
             os.environ.get("FSDIFF_DATA", "/work/shared/data"))
    print(f"{time.time() - t0:.1f}s")
