"""Reference cases for tests/test_diffusion.c: β schedules (SR3 make_beta_schedule and
set_new_noise_schedule, written from their definitions), step spacing, the SR3 training draw and the
three samplers on a toy problem with a closed-form denoiser.

The noise is shared exactly: this file reimplements the C counter RNG (Philox4x32-10 + Box-Muller,
src/core/rng.c, from the published Philox definition) in numpy, so the twin draws the same x_T, z and
ε as the C code. The samplers run in float64 but round every stored tensor (ε̂, x̂₀, x) to float32 at
the same points as the C code, so both sides follow the same trajectory.

out/diffusion/schedule/*.safetensors  meta kind,T,beta_start,beta_end; F64 betas, acp, acp_prev,
                                       sqrt_prev (T+1), post_var, post_logvar, post_c1, post_c2
out/diffusion/levels.safetensors       I32 "<spacing>_<T>_<K>" -> K levels (visit order)
out/diffusion/train/*.safetensors      meta T,kind,beta_*,seed,stream,sample0,B,nps,per_sample;
                                       x0, t (I32), gamma, eps, x_t
out/diffusion/sample/*.safetensors     meta sampler,spacing,K,T,kind,beta_*,eta,seed,B,nps,s;
                                       mu (nps), x_T (n), x (K, n) states after each step,
                                       x0 (K, n) clamped x̂₀ of each step, y (n) result
Toy problem: x0 ~ N(mu, s²) per element, independent; the exact ε prediction at level γ is
  ε̂ = σ (x_t - γ mu) / (γ² s² + σ²),  σ = √(1 - γ²).
"""
import math
import os

import numpy as np

from common import case_dir, save_safetensors

M32 = np.uint64(0xFFFFFFFF)


# ---------------------------------------------------------------- counter RNG twin
def philox4x32(key, ctr_hi, ctr_lo):
    """Philox4x32-10 on arrays of 64-bit counters; returns 4 uint64 arrays holding 32-bit words."""
    ctr_lo = np.asarray(ctr_lo, dtype=np.uint64)
    ctr_hi = np.broadcast_to(np.asarray(ctr_hi, dtype=np.uint64), ctr_lo.shape)
    c0, c1 = ctr_lo & M32, ctr_lo >> np.uint64(32)
    c2, c3 = ctr_hi & M32, ctr_hi >> np.uint64(32)
    k0, k1 = np.uint64(key & 0xFFFFFFFF), np.uint64(key >> 32)
    m0, m1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
    w0, w1 = 0x9E3779B9, 0xBB67AE85
    for _ in range(10):
        p0 = m0 * c0  # < 2^64: exact in uint64
        p1 = m1 * c2
        hi0, lo0 = p0 >> np.uint64(32), p0 & M32
        hi1, lo1 = p1 >> np.uint64(32), p1 & M32
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = np.uint64((int(k0) + w0) & 0xFFFFFFFF)
        k1 = np.uint64((int(k1) + w1) & 0xFFFFFFFF)
    return c0, c1, c2, c3


def rng_normal(seed, stream, offset, n):
    """fsd_rng_normal: element e uses block e>>1 of stream^2^63, words (0,1) or (2,3), Box-Muller cos."""
    e = np.arange(offset, offset + n, dtype=np.uint64)
    v = philox4x32(seed, (stream ^ 0x8000000000000000) & 0xFFFFFFFFFFFFFFFF, e >> np.uint64(1))
    odd = (e & np.uint64(1)).astype(bool)
    a = np.where(odd, v[2], v[0])
    b = np.where(odd, v[3], v[1])
    u1 = ((a >> np.uint64(8)).astype(np.float64) + 1.0) / 16777216.0
    u2 = (b >> np.uint64(8)).astype(np.float64) / 16777216.0
    return (np.sqrt(-2.0 * np.log(u1)) * np.cos(6.283185307179586 * u2)).astype(np.float32)


def rng_uniform1(seed, stream, index):
    v = philox4x32(seed, stream ^ 0x4000000000000000, np.array([index], dtype=np.uint64))
    bits = ((int(v[0][0]) << 21) ^ (int(v[1][0]) >> 11)) & ((1 << 53) - 1)
    return bits / 9007199254740992.0


def rng_u32(seed, stream, index):
    v = philox4x32(seed, stream ^ 0x2000000000000000, np.array([index], dtype=np.uint64))
    return int(v[0][0])


# ---------------------------------------------------------------- schedules (SR3)
def _warmup_beta(start, end, T, frac):
    betas = end * np.ones(T, dtype=np.float64)
    w = int(T * frac)
    betas[:w] = np.linspace(start, end, w, dtype=np.float64)
    return betas


def make_beta_schedule(kind, T, start=1e-4, end=2e-2, cosine_s=8e-3):
    if kind == "quad":
        return np.linspace(start ** 0.5, end ** 0.5, T, dtype=np.float64) ** 2
    if kind == "linear":
        return np.linspace(start, end, T, dtype=np.float64)
    if kind == "warmup10":
        return _warmup_beta(start, end, T, 0.1)
    if kind == "warmup50":
        return _warmup_beta(start, end, T, 0.5)
    if kind == "const":
        return end * np.ones(T, dtype=np.float64)
    if kind == "cosine":
        import torch
        ts = torch.arange(T + 1, dtype=torch.float64) / T + cosine_s
        al = torch.cos(ts / (1 + cosine_s) * math.pi / 2).pow(2)
        al = al / al[0]
        return (1 - al[1:] / al[:-1]).clamp(max=0.999).numpy()
    raise ValueError(kind)


class Schedule:
    def __init__(self, kind, T, start, end):
        b = make_beta_schedule(kind, T, start, end)
        self.T = T
        self.betas = b
        self.alphas = 1.0 - b
        self.acp = np.cumprod(self.alphas)
        self.acp_prev = np.append(1.0, self.acp[:-1])
        self.sqrt_prev = np.sqrt(np.append(1.0, self.acp))
        self.post_var = b * (1.0 - self.acp_prev) / (1.0 - self.acp)
        self.post_logvar = np.log(np.maximum(self.post_var, 1e-20))
        self.post_c1 = b * np.sqrt(self.acp_prev) / (1.0 - self.acp)
        self.post_c2 = (1.0 - self.acp_prev) * np.sqrt(self.alphas) / (1.0 - self.acp)


def _lam(a):
    return 0.5 * (math.log(a) - math.log1p(-a))


def levels_logsnr(sch, K):
    """Uniform in λ from level T-1 to level 0, nearest level, forced strictly decreasing with room
    for the remaining steps."""
    T = sch.T
    lam = np.array([_lam(a) for a in sch.acp])
    lo, hi = lam[T - 1], lam[0]
    out = []
    for j in range(K):
        target = lo if K == 1 else lo + (hi - lo) * j / (K - 1)
        d = np.abs(lam - target)
        i = int(T - 1 - np.argmin(d[::-1]))  # nearest λ; a tie goes to the higher level
        if j > 0:
            i = min(i, out[-1] - 1)
        i = max(i, K - 1 - j)
        out.append(i)
    out[0] = T - 1
    if K > 1:
        out[-1] = 0
    return out


def levels(T, K, spacing, sch=None):
    """Visit order (descending). Rounding half up, as the C side (integer arithmetic)."""
    if spacing == "logsnr":
        return levels_logsnr(sch, K)
    out = []
    for j in range(K):
        r = K - 1 - j
        if spacing == "linspace":
            v = T - 1 if K == 1 else (2 * (T - 1) * r + (K - 1)) // (2 * (K - 1))
        elif spacing == "trailing":
            v = (2 * T * (K - j) + K) // (2 * K) - 1
        elif spacing == "leading":
            v = r * T // K
        else:
            raise ValueError(spacing)
        out.append(v)
    return out


# ---------------------------------------------------------------- samplers (float32 storage emulated)
def f32(a):
    return np.asarray(a, dtype=np.float64).astype(np.float32).astype(np.float64)


def toy_eps(x, gamma_f, mu, s, B):
    g = float(np.float32(gamma_f))
    sig2 = 1.0 - g * g
    m = np.tile(mu.astype(np.float64), B)
    return f32(math.sqrt(sig2) * (x - g * m) / (g * g * s * s + sig2))


def sample(sch, kind, lv, eta, seed, mu, s, B):
    nps = mu.size
    n = B * nps
    x = f32(rng_normal(seed, 0, 0, n))
    xT = x.copy()
    K = len(lv)
    xs, x0s = [], []
    x0_prev = None
    lam = _lam
    for k in range(K):
        i = lv[k]
        j = lv[k + 1] if k + 1 < K else -1
        a = sch.acp[i]
        b = sch.acp[j] if j >= 0 else 1.0
        eps = toy_eps(x, np.float32(sch.sqrt_prev[i + 1]), mu, s, B)
        x0 = f32(np.clip(math.sqrt(1.0 / a) * x - math.sqrt(1.0 / a - 1.0) * eps, -1.0, 1.0))
        z = rng_normal(seed, k + 1, 0, n).astype(np.float64)
        if kind == "ddpm":
            if j == i - 1:  # the authors' buffers
                c1, c2, sd = sch.post_c1[i], sch.post_c2[i], math.exp(0.5 * sch.post_logvar[i])
            else:           # respaced chain (improved-DDPM): beta' = 1 - acp_i / acp_j
                beta = 1.0 - a / b
                var = beta * (1.0 - b) / (1.0 - a)
                c1 = beta * math.sqrt(b) / (1.0 - a)
                c2 = (1.0 - b) * math.sqrt(1.0 - beta) / (1.0 - a)
                sd = math.exp(0.5 * math.log(max(var, 1e-20)))
            if j < 0:
                sd = 0.0
            x = f32(c1 * x0 + c2 * x + sd * z)
        elif kind == "ddim" or j < 0:
            if j < 0:
                x = x0.copy()
            else:
                e2 = (x - math.sqrt(a) * x0) / math.sqrt(1.0 - a)
                sig = eta * math.sqrt((1.0 - b) / (1.0 - a)) * math.sqrt(1.0 - a / b)
                dirc = math.sqrt(max(1.0 - b - sig * sig, 0.0))
                x = f32(math.sqrt(b) * x0 + dirc * e2 + sig * z)
        elif kind == "dpmpp2m":
            h = lam(b) - lam(a)
            ratio = math.sqrt((1.0 - b) / (1.0 - a))
            coef = math.sqrt(b) * -math.expm1(-h)
            if k == 0:
                D = x0
            else:
                r = (lam(a) - lam(sch.acp[lv[k - 1]])) / h
                D = (1.0 + 1.0 / (2.0 * r)) * x0 - 1.0 / (2.0 * r) * x0_prev
            x = f32(ratio * x + coef * D)
        else:
            raise ValueError(kind)
        x0_prev = x0
        xs.append(x.copy())
        x0s.append(x0.copy())
    return xT, np.stack(xs), np.stack(x0s), x


# ---------------------------------------------------------------- training draw
def train_draw(sch, seed, stream, sample0, B, x0, per_sample):
    nps = x0.size // B
    ts, gs, eps, xt = [], [], [], []
    for b in range(B):
        g = sample0 + b
        u = rng_u32(seed, stream, g if per_sample else sample0)
        t = 1 + ((u * sch.T) >> 32)
        lo, hi = sch.sqrt_prev[t - 1], sch.sqrt_prev[t]
        gm = np.float32(lo + (hi - lo) * rng_uniform1(seed, stream, g))
        e = rng_normal(seed, stream, g * nps, nps)
        gd = float(gm)
        xb = x0[b * nps:(b + 1) * nps].astype(np.float64)
        xt.append((gd * xb + math.sqrt(1.0 - gd * gd) * e.astype(np.float64)).astype(np.float32))
        ts.append(t)
        gs.append(gm)
        eps.append(e)
    return (np.array(ts, dtype=np.int32), np.array(gs, dtype=np.float32), np.concatenate(eps),
            np.concatenate(xt))


# ---------------------------------------------------------------- cases
SCHEDULES = [  # name, kind, T, start, end
    ("linear_2000", "linear", 2000, 1e-6, 1e-2),
    ("linear_1000", "linear", 1000, 1e-4, 2e-2),
    ("quad_1000", "quad", 1000, 1e-4, 2e-2),
    ("quad_7", "quad", 7, 1e-3, 0.3),
    ("cosine_1000", "cosine", 1000, 0.0, 0.0),
    ("cosine_37", "cosine", 37, 0.0, 0.0),
    ("warmup10_1000", "warmup10", 1000, 1e-4, 2e-2),
    ("warmup50_37", "warmup50", 37, 1e-4, 2e-2),
    ("warmup10_5", "warmup10", 5, 1e-4, 2e-2),  # int(0.5) = 0: no ramp at all
    ("const_100", "const", 100, 0.0, 2e-2),
]

SAMPLES = [  # name, sampler, T, kind, start, end, K, spacing, eta, seed, s
    ("ddpm_t50_full", "ddpm", 50, "linear", 1e-4, 0.2, 50, "linspace", 0.0, 11, 0.5),
    ("ddpm_t50_k10", "ddpm", 50, "linear", 1e-4, 0.2, 10, "linspace", 0.0, 12, 0.5),
    ("ddpm_t50_k10_trailing", "ddpm", 50, "linear", 1e-4, 0.2, 10, "trailing", 0.0, 13, 0.5),
    ("ddim_eta0_k10", "ddim", 1000, "linear", 1e-4, 2e-2, 10, "linspace", 0.0, 21, 0.5),
    ("ddim_eta1_k10", "ddim", 1000, "linear", 1e-4, 2e-2, 10, "linspace", 1.0, 22, 0.5),
    ("ddim_eta0.5_k7_leading", "ddim", 1000, "cosine", 0.0, 0.0, 7, "leading", 0.5, 23, 0.5),
    ("dpmpp2m_k5", "dpmpp2m", 1000, "linear", 1e-4, 2e-2, 5, "linspace", 0.0, 31, 0.5),
    ("dpmpp2m_k10", "dpmpp2m", 1000, "linear", 1e-4, 2e-2, 10, "linspace", 0.0, 32, 0.5),
    ("dpmpp2m_k20", "dpmpp2m", 1000, "linear", 1e-4, 2e-2, 20, "linspace", 0.0, 33, 0.5),
    ("dpmpp2m_k10_trailing_cos", "dpmpp2m", 1000, "cosine", 0.0, 0.0, 10, "trailing", 0.0, 34, 0.5),
    ("dpmpp2m_k20_logsnr", "dpmpp2m", 1000, "linear", 1e-4, 2e-2, 20, "logsnr", 0.0, 35, 0.5),
    ("ddim_eta0_k10_logsnr", "ddim", 1000, "linear", 1e-4, 2e-2, 10, "logsnr", 0.0, 36, 0.5),
]

LEVEL_CASES = [(sp, T, K) for sp in ("linspace", "trailing", "leading")
               for T, K in ((1000, 1), (1000, 10), (1000, 20), (1000, 1000), (50, 10), (50, 50), (7, 3),
                            (2000, 7), (10, 4), (37, 12))]

TRAIN = [  # name, kind, T, start, end, seed, stream, sample0, B, nps, per_sample
    ("batch_t", "linear", 2000, 1e-6, 1e-2, 5, 3, 40, 4, 48, 0),
    ("sample_t", "linear", 2000, 1e-6, 1e-2, 5, 3, 40, 4, 48, 1),
    ("cosine_t10", "cosine", 10, 0.0, 0.0, 99, 0, 0, 6, 12, 1),
]


def generate(out_dir, data_dir):
    d = case_dir(out_dir, "diffusion/schedule")
    for name, kind, T, st, en in SCHEDULES:
        s = Schedule(kind, T, st, en)
        tens = {k: getattr(s, k) for k in ("betas", "acp", "acp_prev", "sqrt_prev", "post_var", "post_logvar",
                                           "post_c1", "post_c2")}
        save_safetensors(os.path.join(d, name + ".safetensors"), tens,
                         {"kind": kind, "T": T, "beta_start": repr(st), "beta_end": repr(en)},
                         dtypes={k: "F64" for k in tens})

    d = case_dir(out_dir, "diffusion")
    lv = {f"{sp}_{T}_{K}": np.array(levels(T, K, sp), dtype=np.int32) for sp, T, K in LEVEL_CASES}
    for kind, T, st, en in (("linear", 1000, 1e-4, 2e-2), ("cosine", 1000, 0.0, 0.0), ("linear", 2000, 1e-6, 1e-2),
                            ("linear", 50, 1e-4, 0.2)):
        sch = Schedule(kind, T, st, en)
        for K in (1, 2, 5, 10, 20, 37, T // 2, T):
            lv[f"logsnr_{kind}_{T}_{K}"] = np.array(levels_logsnr(sch, K), dtype=np.int32)
    save_safetensors(os.path.join(d, "levels.safetensors"), lv)

    d = case_dir(out_dir, "diffusion/train")
    for name, kind, T, st, en, seed, stream, s0, B, nps, per in TRAIN:
        sch = Schedule(kind, T, st, en)
        x0 = np.random.default_rng(seed + 7).uniform(-1, 1, B * nps).astype(np.float32)
        t, g, e, xt = train_draw(sch, seed, stream, s0, B, x0, per)
        save_safetensors(os.path.join(d, name + ".safetensors"), {"x0": x0, "t": t, "gamma": g, "eps": e, "x_t": xt},
                         {"kind": kind, "T": T, "beta_start": repr(st), "beta_end": repr(en), "seed": seed,
                          "stream": stream, "sample0": s0, "B": B, "nps": nps, "per_sample": per})

    d = case_dir(out_dir, "diffusion/sample")
    B, nps = 2, 3 * 8 * 8
    for name, smp, T, kind, st, en, K, sp, eta, seed, s in SAMPLES:
        sch = Schedule(kind, T, st, en)
        mu = np.random.default_rng(seed + 100).uniform(-0.5, 0.5, nps).astype(np.float32)
        lv = levels(T, K, sp, sch)
        xT, xs, x0s, y = sample(sch, smp, lv, eta, seed, mu.astype(np.float64), s, B)
        save_safetensors(os.path.join(d, name + ".safetensors"),
                         {"mu": mu, "x_T": xT.astype(np.float32), "x": xs.astype(np.float32),
                          "x0": x0s.astype(np.float32), "y": y.astype(np.float32)},
                         {"sampler": smp, "spacing": sp, "K": K, "T": T, "kind": kind, "beta_start": repr(st),
                          "beta_end": repr(en), "eta": repr(eta), "seed": seed, "B": B, "nps": nps, "s": repr(s)})
