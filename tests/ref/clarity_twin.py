"""PyTorch twin of the clarity encoder (src/nn/clarity.c), written from docs/model.md
"Clarity encoder". Parameter names are the C names without the "clarity." prefix."""
import json

import torch
import torch.nn.functional as F
from torch import nn

DEG_CENTER = (1.5, 2.0, 12.5)  # log2 scale, blur sigma (HR px), noise sigma (0..255)
DEG_HALF = (1.5, 2.0, 12.5)
NEUTRAL, LEAD, FOLLOW = 0, 1, 2


def default_config(context_dim=512, **over):
    c = dict(widths=[32, 64, 96, 128], groups=8, pool=2, context_dim=context_dim, blur_weight=0.5, threshold=1.5,
             lambda_=0.1)
    c.update(over)
    return c


def config_json(c):
    d = {k: c[k] for k in ("widths", "groups", "pool", "context_dim", "blur_weight", "threshold")}
    d["lambda"] = c["lambda_"]
    return json.dumps(d)


def normalise(p):
    return (p - p.new_tensor(DEG_CENTER)) / p.new_tensor(DEG_HALF)


def denormalise(n):
    return n * n.new_tensor(DEG_HALF) + n.new_tensor(DEG_CENTER)


def decide(c, deg, mode):
    """deg (B, 2, 3) physical -> roles (B, 2) long. Hard rule, no gradient."""
    B = deg.shape[0]
    roles = torch.zeros(B, 2, dtype=torch.long)
    if mode != "clarity":
        return roles
    score = deg[:, :, 0] + c["blur_weight"] * deg[:, :, 1]
    blur = score > c["threshold"]
    for b in range(B):
        if blur[b, 0] and not blur[b, 1]:
            roles[b] = torch.tensor([LEAD, FOLLOW])
        elif blur[b, 1] and not blur[b, 0]:
            roles[b] = torch.tensor([FOLLOW, LEAD])
    return roles


class Stage(nn.Module):
    def __init__(self, cin, cout, groups):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride=2, padding=1)
        self.norm = nn.GroupNorm(groups, cout, eps=1e-5)

    def forward(self, x):
        return F.silu(self.norm(self.conv(x)))


class ClarityEncoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        ws, D = c["widths"], c["context_dim"]
        C, self.P = ws[-1], c["pool"] ** 2
        self.stages = nn.ModuleList(Stage(cin, cout, c["groups"]) for cin, cout in zip([3] + ws[:-1], ws))
        self.deg = nn.Sequential(nn.Linear(C, C), nn.SiLU(), nn.Linear(C, 3))
        self.token_global = nn.Linear(C, D)
        if self.P:
            self.token_pool = nn.Linear(C, D)
            self.pos_emb = nn.Parameter(torch.zeros(self.P, D))
        self.modality_emb = nn.Parameter(torch.zeros(2, D))
        self.role_emb = nn.Parameter(torch.zeros(3, D))

    def forward(self, src0, src1, mode="clarity", roles=None, target=None):
        """Returns ctx (B, T, D), deg (B, 2, 3) physical, roles (B, 2), loss (lambda * MSE or None)."""
        B = src0.shape[0]
        x = torch.cat([src0, src1], 0)  # rows s * B + b
        for st in self.stages:
            x = st(x)
        g = x.mean(dim=(2, 3))
        pred = self.deg(g)  # (2B, 3) normalised
        deg = denormalise(pred).view(2, B, 3).transpose(0, 1)
        if roles is None:
            roles = decide(self.c, deg.detach(), mode)
        toks = [self.token_global(g)[:, None]]
        if self.P:
            pl = F.adaptive_avg_pool2d(x, self.c["pool"]).flatten(2).transpose(1, 2)  # (2B, P, C)
            toks.append(self.token_pool(pl) + self.pos_emb)
        tok = torch.cat(toks, 1)  # (2B, 1+P, D)
        tok = tok.view(2, B, 1 + self.P, -1)
        out = []
        for s in range(2):
            out.append(tok[s] + self.modality_emb[s] + self.role_emb[roles[:, s]][:, None])
        ctx = torch.cat(out, 1)
        loss = None
        if target is not None:
            tn = normalise(target).transpose(0, 1).reshape(2 * B, 3)
            loss = self.c["lambda_"] * ((pred - tn) ** 2).mean()
        return ctx, deg, roles, loss


def randomize_(m, seed):
    """Non-trivial parameters: convs/linears ~ U(+-1/sqrt(fan_in)) (bias too), norms 1 + 0.2 N,
    embeddings 0.5 N."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name.endswith("emb"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif ".norm." in name:
                base = 1.0 if name.endswith("weight") else 0.0
                p.copy_(base + 0.2 * torch.randn(p.shape, generator=g))
            else:
                fan = p.shape[1] * (p[0, 0].numel() if p.dim() == 4 else 1) if p.dim() > 1 else p.shape[0]
                bound = fan ** -0.5
                p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * bound)
    return m
