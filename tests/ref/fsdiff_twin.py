"""PyTorch twin of the fsdiff network (the C code in src/nn), written from the architecture
description (docs/model.md, reference §1). Module and parameter names follow the authors'
FS-Diff code (model/sr3_modules/unet_Mamba.py, attention.py, Vim's mamba_simple.py) so that
their state_dict names are ours. The selective scan is a plain time loop (test sizes only).

Used by tests/ref/ref_nn_*.py (parity cases), tools/convert_pth.py (config handling) and later
by the benchmarks.
"""
import json
import math

import torch
import torch.nn.functional as F
from torch import nn

PRESETS = {
    "paper": dict(base_channels=64, channel_mults=[1, 2, 4, 8, 8], res_blocks=2, attn_res=[16], image_size=128,
                  dropout=0.2, context_dim=512, context_tokens=1),
    "cpu": dict(base_channels=32, channel_mults=[1, 2, 4, 4], res_blocks=1, attn_res=[16], image_size=128,
                dropout=0.1, context_dim=128, context_tokens=10),
    "tiny": dict(base_channels=32, channel_mults=[1, 2], res_blocks=1, attn_res=[16], image_size=32,
                 dropout=0.0, context_dim=64, context_tokens=2),
}
COMMON = dict(in_channels=9, out_channels=3, d_head=32, norm_groups=32, mamba="bidirectional",
              mamba_bottleneck="none", mamba_divide_out=True, d_state=16, d_conv=4, expand=2)


def make_config(preset="paper", **over):
    c = dict(COMMON)
    c.update(PRESETS[preset])
    for k, v in over.items():
        if k not in c:
            raise KeyError("unknown network config key %r" % k)
        c[k] = v
    return c


def config_json(c):
    """The same key order and formatting as fsd_net_config_to_json (the C side re-parses it anyway)."""
    keys = ["in_channels", "out_channels", "base_channels", "channel_mults", "res_blocks", "attn_res", "image_size",
            "d_head", "norm_groups", "context_dim", "context_tokens", "dropout", "mamba", "mamba_bottleneck",
            "mamba_divide_out", "d_state", "d_conv", "expand"]
    return json.dumps({k: c[k] for k in keys})


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)


class PositionalEncoding(nn.Module):
    """SR3/WaveGrad: [sin(g f_k), cos(g f_k)], f_k = exp(-ln(1e4) k / half)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, g):
        half = self.dim // 2
        f = torch.exp(-math.log(1e4) * torch.arange(half, dtype=g.dtype) / half)
        e = g[:, None] * f[None, :]
        return torch.cat([torch.sin(e), torch.cos(e)], dim=-1)


class FeatureWiseAffine(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.noise_func = nn.Sequential(nn.Linear(cin, cout))

    def forward(self, x, t):
        return x + self.noise_func(t)[:, :, None, None]


class Block(nn.Module):
    def __init__(self, dim, dim_out, groups, dropout=0.0):
        super().__init__()
        self.block = nn.Sequential(nn.GroupNorm(groups, dim), Swish(),
                                   nn.Dropout(dropout) if dropout else nn.Identity(),
                                   nn.Conv2d(dim, dim_out, 3, padding=1))

    def forward(self, x):
        return self.block(x)


class ResnetBlock(nn.Module):
    def __init__(self, dim, dim_out, temb, groups, dropout):
        super().__init__()
        self.noise_func = FeatureWiseAffine(temb, dim_out)
        self.block1 = Block(dim, dim_out, groups)
        self.block2 = Block(dim_out, dim_out, groups, dropout)
        self.res_conv = nn.Conv2d(dim, dim_out, 1) if dim != dim_out else nn.Identity()

    def forward(self, x, t):
        h = self.noise_func(self.block1(x), t)
        return self.block2(h) + self.res_conv(x)


class CrossAttention(nn.Module):
    def __init__(self, qdim, cdim, heads, dh):
        super().__init__()
        inner = heads * dh
        self.heads = heads
        self.scale = dh ** -0.5
        self.to_q = nn.Linear(qdim, inner, bias=False)
        self.to_k = nn.Linear(cdim, inner, bias=False)
        self.to_v = nn.Linear(cdim, inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, qdim), nn.Dropout(0.0))

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        B, Nq, _ = x.shape
        Nk = ctx.shape[1]
        h = self.heads
        q = self.to_q(x).view(B, Nq, h, -1).transpose(1, 2)
        k = self.to_k(ctx).view(B, Nk, h, -1).transpose(1, 2)
        v = self.to_v(ctx).view(B, Nk, h, -1).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1)
        o = (a @ v).transpose(1, 2).reshape(B, Nq, -1)
        return self.to_out(o)


class GEGLU(nn.Module):
    def __init__(self, din, dout):
        super().__init__()
        self.proj = nn.Linear(din, dout * 2)

    def forward(self, x):
        a, g = self.proj(x).chunk(2, dim=-1)
        return a * F.gelu(g)


class FeedForward(nn.Module):
    def __init__(self, dim, mult=4):
        super().__init__()
        self.net = nn.Sequential(GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim))

    def forward(self, x):
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    def __init__(self, dim, heads, dh, cdim):
        super().__init__()
        self.attn1 = CrossAttention(dim, dim, heads, dh)
        self.ff = FeedForward(dim)
        self.attn2 = CrossAttention(dim, cdim, heads, dh)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x, ctx):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), ctx) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    def __init__(self, ch, heads, dh, cdim, groups):
        super().__init__()
        inner = heads * dh
        self.norm = nn.GroupNorm(groups, ch, eps=1e-6)
        self.proj_in = nn.Conv2d(ch, inner, 1)
        self.transformer_blocks = nn.ModuleList([BasicTransformerBlock(inner, heads, dh, cdim)])
        self.proj_out = nn.Conv2d(inner, ch, 1)

    def forward(self, x, ctx):
        B, C, H, W = x.shape
        h = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)
        for blk in self.transformer_blocks:
            h = blk(h, ctx)
        h = h.transpose(1, 2).reshape(B, -1, H, W)
        return self.proj_out(h) + x


class ResnetBlocWithAttn(nn.Module):
    def __init__(self, dim, dim_out, c, with_attn):
        super().__init__()
        self.with_attn = with_attn
        self.res_block = ResnetBlock(dim, dim_out, c["base_channels"], c["norm_groups"], c["dropout"])
        if with_attn:
            self.attn = SpatialTransformer(dim_out, dim // c["d_head"], c["d_head"], c["context_dim"], c["norm_groups"])

    def forward(self, x, t, ctx):
        x = self.res_block(x, t)
        return self.attn(x, ctx) if self.with_attn else x


class Downsample(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, 2, 1)

    def forward(self, x):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


def selective_scan(u, delta, A, Bm, Cm, D, z, reverse=False):
    """u, delta, z (B, E, L); A (E, N); Bm, Cm (B, N, L) -> y (B, E, L). Plain loop."""
    Bsz, E, L = u.shape
    h = u.new_zeros(Bsz, E, A.shape[1])
    ys = [None] * L
    order = range(L - 1, -1, -1) if reverse else range(L)
    for t in order:
        d = delta[:, :, t, None]
        h = torch.exp(d * A) * h + d * Bm[:, None, :, t] * u[:, :, t, None]
        ys[t] = (h * Cm[:, None, :, t]).sum(-1)
    y = torch.stack(ys, dim=-1) + D[None, :, None] * u
    return y * F.silu(z)


class Mamba(nn.Module):
    """Vim's Mamba mixer: bimamba_type 'none' (forward) or 'v2' (bidirectional, with the *_b set)."""

    def __init__(self, dm, d_state=16, d_conv=4, expand=2, bidir=False, divide_out=True):
        super().__init__()
        E = expand * dm
        R = math.ceil(dm / 16)
        self.E, self.N, self.R, self.K = E, d_state, R, d_conv
        self.bidir, self.divide_out = bidir, divide_out
        self.in_proj = nn.Linear(dm, 2 * E, bias=False)
        self.conv1d = nn.Conv1d(E, E, d_conv, groups=E, padding=d_conv - 1, bias=True)
        self.x_proj = nn.Linear(E, R + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(R, E, bias=True)
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(E, 1)
        self.A_log = nn.Parameter(torch.log(A))
        self.D = nn.Parameter(torch.ones(E))
        self.out_proj = nn.Linear(E, dm, bias=False)
        if bidir:
            self.conv1d_b = nn.Conv1d(E, E, d_conv, groups=E, padding=d_conv - 1, bias=True)
            self.x_proj_b = nn.Linear(E, R + 2 * d_state, bias=False)
            self.dt_proj_b = nn.Linear(R, E, bias=True)
            self.A_b_log = nn.Parameter(torch.log(A.clone()))
            self.D_b = nn.Parameter(torch.ones(E))

    def _dir(self, xz, conv, xp, dtp, A_log, D):
        L = xz.shape[-1]
        x, z = xz.chunk(2, dim=1)
        x = F.silu(conv(x)[..., :L])
        dbc = xp(x.transpose(1, 2))  # (B, L, R + 2N)
        dt, Bm, Cm = torch.split(dbc, [self.R, self.N, self.N], dim=-1)
        delta = F.softplus(dtp(dt)).transpose(1, 2)  # (B, E, L)
        return selective_scan(x, delta, -torch.exp(A_log), Bm.transpose(1, 2), Cm.transpose(1, 2), D, z)

    def forward(self, h):  # h (B, L, dm)
        xz = self.in_proj(h).transpose(1, 2)  # (B, 2E, L)
        y = self._dir(xz, self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D)
        if self.bidir:
            yb = self._dir(xz.flip([-1]), self.conv1d_b, self.x_proj_b, self.dt_proj_b, self.A_b_log, self.D_b)
            y = y + yb.flip([-1])
            if self.divide_out:
                y = y / 2
        return self.out_proj(y.transpose(1, 2))


class MambaBlock(nn.Module):
    """Vim create_block(): LayerNorm + mixer; the caller adds the residual: x + mixer(norm(x))."""

    def __init__(self, dm, c, mode):
        super().__init__()
        self.norm = nn.LayerNorm(dm)
        self.mixer = Mamba(dm, c["d_state"], c["d_conv"], c["expand"], mode == "bidirectional", c["mamba_divide_out"])

    def forward(self, x):  # NCHW image; tokens in raster order
        B, C, H, W = x.shape
        t = x.flatten(2).transpose(1, 2)
        t = t + self.mixer(self.norm(t))
        return t.transpose(1, 2).reshape(B, C, H, W)


class UNet(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        C = c["base_channels"]
        self.noise_level_mlp = nn.Sequential(PositionalEncoding(C), nn.Linear(C, 4 * C), Swish(), nn.Linear(4 * C, C))
        mults = c["channel_mults"]
        pre = C
        feats = [pre]
        res = c["image_size"]
        downs = [nn.Conv2d(c["in_channels"], C, 3, padding=1)]
        for i, m in enumerate(mults):
            ch = C * m
            for _ in range(c["res_blocks"]):
                downs.append(ResnetBlocWithAttn(pre, ch, c, res in c["attn_res"]))
                feats.append(ch)
                pre = ch
            if i < len(mults) - 1:
                downs.append(Downsample(pre))
                feats.append(pre)
                res //= 2
        self.downs = nn.ModuleList(downs)
        self.mid = nn.ModuleList([ResnetBlocWithAttn(pre, pre, c, True), ResnetBlocWithAttn(pre, pre, c, False)])
        ups = []
        for i in reversed(range(len(mults))):
            ch = C * mults[i]
            for _ in range(c["res_blocks"] + 1):
                ups.append(ResnetBlocWithAttn(pre + feats.pop(), ch, c, res in c["attn_res"]))
                pre = ch
            if i > 0:
                ups.append(Upsample(pre))
                res *= 2
        self.ups = nn.ModuleList(ups)
        self.final_conv = Block(pre, c["out_channels"], c["norm_groups"])
        if c["mamba"] != "none":
            self.mamba = MambaBlock(c["in_channels"], c, c["mamba"])
        if c["mamba_bottleneck"] != "none":
            self.mid_mamba = MambaBlock(C * mults[-1], c, c["mamba_bottleneck"])

    def forward(self, x, gamma, ctx):
        t = self.noise_level_mlp(gamma)
        if self.c["mamba"] != "none":
            x = self.mamba(x)
        feats = []
        for layer in self.downs:
            x = layer(x, t, ctx) if isinstance(layer, ResnetBlocWithAttn) else layer(x)
            feats.append(x)
        if self.c["mamba_bottleneck"] != "none":
            x = self.mid_mamba(x)
        for layer in self.mid:
            x = layer(x, t, ctx)
        for layer in self.ups:
            if isinstance(layer, ResnetBlocWithAttn):
                x = layer(torch.cat((x, feats.pop()), dim=1), t, ctx)
            else:
                x = layer(x)
        return self.final_conv(x)


def randomize_(model, seed):
    """Deterministic non-trivial parameters (every bias, norm affine and Mamba parameter off its
    default) so that the parity test exercises every gradient path."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            u = torch.rand(p.shape, generator=g, dtype=torch.float64) * 2 - 1
            if name.endswith("A_log") or name.endswith("A_b_log"):
                p.copy_(torch.log(torch.arange(1, p.shape[1] + 1, dtype=torch.float64)).repeat(p.shape[0], 1) + 0.1 * u)
            elif p.dim() == 1 and (".norm" in name or "block.0" in name or name.endswith(".D") or name.endswith(".D_b")
                                   or "norm1" in name or "norm2" in name or "norm3" in name or name.startswith("mamba.norm")
                                   or name.startswith("mid_mamba.norm")):
                p.copy_((1.0 + 0.2 * u) if name.endswith("weight") or name.endswith("D") or name.endswith("D_b") else 0.1 * u)
            elif p.dim() == 1:
                p.copy_(0.1 * u)
            else:
                fan_in = p[0].numel()
                p.copy_(u / math.sqrt(fan_in))
    return model
