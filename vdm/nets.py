"""Denoising networks: f(x_t, t) for images of shape [B, 3, 32, 32] or 2-D points [B, 2].

``AssignmentNet`` is the course assignment's network, layer for layer (1,547,337
parameters). ``UNet`` is a stronger small UNet. ``PointMLP`` is a small MLP for points.
All take t as a LongTensor [B] of steps in 1..T and return a tensor shaped like x_t:
x̂_0 or ε̂, as the :class:`vdm.denoiser.Denoiser` around them decides.
"""

from __future__ import annotations

import math

import torch
from torch import nn
import torch.nn.functional as F

from vdm.config import MODELS



class AssignmentNet(nn.Module):
    """The assignment's network.

    Input: x_t with one more constant plane t/T*2 - 1 (4 channels). Four strided
    4x4 convolutions (32, 64, 128, 256 channels) with BatchNorm and ReLU, four
    transposed convolutions back up, each but the first fed the concatenation
    with the encoder feature of its size; tanh output, as x_0 lives in [-1, 1].
    With ``tanh=False`` (ε-prediction, ε ~ N(0, I), and the preconditioned F of x0-precond, of
    unit variance: neither is bounded) the output is linear.
    """

    def __init__(self, T: int, in_ch: int = 3, widths=(32, 64, 128, 256), tanh: bool = True):
        super().__init__()
        self.T = T
        w = widths

        def down(i, o):
            return nn.Sequential(nn.Conv2d(i, o, 4, 2, 1), nn.BatchNorm2d(o), nn.ReLU())

        def up(i, o, act=None):
            return nn.Sequential(nn.ConvTranspose2d(i, o, 4, 2, 1), nn.BatchNorm2d(o), act or nn.ReLU())

        self.down1 = down(in_ch + 1, w[0])
        self.down2 = down(w[0], w[1])
        self.down3 = down(w[1], w[2])
        self.down4 = down(w[2], w[3])
        self.up1 = up(w[3], w[2])
        self.up2 = up(2 * w[2], w[1])
        self.up3 = up(2 * w[1], w[0])
        self.up4 = up(2 * w[0], in_ch, nn.Tanh() if tanh else nn.Identity())

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        plane = (t.to(x.dtype) / self.T * 2 - 1).view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])
        h1 = self.down1(torch.cat([x, plane], 1))
        h2 = self.down2(h1)
        h3 = self.down3(h2)
        h4 = self.down4(h3)
        u = self.up1(h4)
        u = self.up2(torch.cat([u, h3], 1))
        u = self.up3(torch.cat([u, h2], 1))
        return self.up4(torch.cat([u, h1], 1))


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Transformer sinusoids: [cos(t w_k), sin(t w_k)], w_k = max_period^(-k/(dim/2))."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, i: int, o: int, emb: int, groups: int = 8):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, i)
        self.conv1 = nn.Conv2d(i, o, 3, padding=1)
        self.emb = nn.Linear(emb, o)
        self.norm2 = nn.GroupNorm(groups, o)
        self.conv2 = nn.Conv2d(o, o, 3, padding=1)
        self.skip = nn.Conv2d(i, o, 1) if i != o else nn.Identity()

    def forward(self, x, e):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(e)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """A small UNet: sinusoidal time embedding, GroupNorm, residual blocks, skips at every level.

    Unlike the assignment's network, which sees t only as an input plane and draws its 32x32 output with
    one transposed convolution from 16x16 features, every block here takes t and the top level works at
    full resolution: what removing per-pixel noise at small t needs. ``ch`` 32 is ``--model unet``, 16
    ``--model unet-small``."""

    def __init__(self, T: int, in_ch: int = 3, ch: int = 32, mults=(1, 2, 2)):
        super().__init__()
        self.T = T
        emb = ch * 4
        self.ch = ch
        self.time = nn.Sequential(nn.Linear(ch, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.stem = nn.Conv2d(in_ch, ch, 3, padding=1)
        chans = [ch * m for m in mults]
        self.downs = nn.ModuleList()
        self.pools = nn.ModuleList()
        prev = ch
        for i, c in enumerate(chans):
            self.downs.append(ResBlock(prev, c, emb))
            self.pools.append(nn.Conv2d(c, c, 3, stride=2, padding=1) if i < len(chans) - 1 else nn.Identity())
            prev = c
        self.mid = ResBlock(prev, prev, emb)
        self.ups = nn.ModuleList()
        self.unpools = nn.ModuleList()
        for i, c in reversed(list(enumerate(chans))):
            self.ups.append(ResBlock(prev + c, c, emb))
            self.unpools.append(nn.Upsample(scale_factor=2, mode="nearest") if i > 0 else nn.Identity())
            prev = c
        self.out = nn.Sequential(nn.GroupNorm(8, prev), nn.SiLU(), nn.Conv2d(prev, in_ch, 3, padding=1))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e = self.time(timestep_embedding(t, self.ch).to(x.dtype))
        h = self.stem(x)
        skips = []
        for block, pool in zip(self.downs, self.pools):
            h = block(h, e)
            skips.append(h)
            h = pool(h)
        h = self.mid(h, e)
        for block, unpool in zip(self.ups, self.unpools):
            h = block(torch.cat([h, skips.pop()], 1), e)
            h = unpool(h)
        return self.out(h)


class PointMLP(nn.Module):
    """An MLP for points x_t [B, D]: h = W_in x_t + E(t), then residual blocks h += W_2 SiLU(W_1 LN(h) + E_i(t)).

    E(t): sinusoids of t (:func:`timestep_embedding`, periods up to 4T) through a linear layer, added
    in every block, so each layer knows the noise level. ``width`` 128, ``depth`` 3 blocks: about 135k
    parameters; the output is linear (x̂_0 of points is not bounded).
    """

    def __init__(self, T: int, dim: int = 2, width: int = 128, depth: int = 3, emb: int = 64):
        super().__init__()
        self.T = T
        self.emb = emb
        self.time = nn.Sequential(nn.Linear(emb, width), nn.SiLU())
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(_MLPBlock(width) for _ in range(depth))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, dim))

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e = self.time(timestep_embedding(t, self.emb, max_period=4.0 * self.T).to(x.dtype))
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, e)
        return self.out(h)


class _MLPBlock(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.temb = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, h, e):
        return h + self.fc2(F.silu(self.fc1(self.norm(h)) + self.temb(e)))


def build_net(name: str, T: int, prediction: str = "x0") -> nn.Module:
    """The named network; the assignment's tanh output is kept only where the network's output is x̂_0 itself."""
    if name == "assignment":
        return AssignmentNet(T, tanh=prediction == "x0")
    if name == "unet":
        return UNet(T)
    if name == "unet-small":
        return UNet(T, ch=16)
    if name == "mlp":
        return PointMLP(T)
    raise ValueError(f"unknown model {name!r}; expected one of {', '.join(MODELS[1:])}.")


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def summary(net: nn.Module) -> str:
    """A layer table with parameter counts, ending in the total, as the assignment prints it."""
    rows = []
    for name, mod in net.named_modules():
        if len(list(mod.children())) == 0:
            n = sum(p.numel() for p in mod.parameters(recurse=False))
            rows.append((name, type(mod).__name__, n))
    width = max(len(r[0]) for r in rows) + 2
    lines = [f"{'layer':<{width}}{'type':<18}{'params':>12}", "-" * (width + 30)]
    lines += [f"{n:<{width}}{k:<18}{p:>12,}" for n, k, p in rows]
    lines += ["-" * (width + 30), f"Total params: {count_parameters(net):,}"]
    return "\n".join(lines)
