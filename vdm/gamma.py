"""gamma(t) = -log SNR(t) on [0, 1] as a monotone network with learned endpoints: the learned schedule's function.

A Schedule of kind "learned" (vdm.schedule) is this network read at t/T; vdm.continuous trains it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

GAMMA_MIN = -13.3  # VDM's initial endpoints (configs/cifar10.py): SNR(0) = e^13.3, SNR(1) = e^-5
GAMMA_MAX = 5.0
N_FEATURES = 1024  # VDM's NoiseSchedule_NNet
NONLINEAR_INIT = 0.1  # scale of the nonlinear part at initialisation: gamma starts within a few % of linear

def _inv_softplus(y: float) -> float:
    return y + math.log(-math.expm1(-y))


class GammaNet(nn.Module):
    """gamma(t) = gamma_min + R (g(t) - g(0)) / (g(1) - g(0)), increasing in t on [0, 1].

        g(t) = |w1| t + (1/n) sum_k |w3_k| phi(|w2_k| (2t - 1) + b2_k),  phi(h) = 2 sigmoid(h) - 1
        R    = softplus(rho) > 0

    g is VDM's NoiseSchedule_NNet (weights made positive, so g' >= |w1| > 0); the normalisation
    makes the endpoints parameters of their own: gamma(0) = gamma_min and gamma(1) = gamma_min + R,
    exactly. Parameters are float32; evaluation is in t's dtype (float64 for the discrete view).
    Initialised from its own generator, so the initial schedule is a function of nothing else.
    """

    def __init__(self, gamma_min: float = GAMMA_MIN, gamma_max: float = GAMMA_MAX, n_features: int = N_FEATURES,
                 seed: int = 0, nonlinear_init: float = NONLINEAR_INIT):
        super().__init__()
        if not (math.isfinite(gamma_min) and math.isfinite(gamma_max) and gamma_max > gamma_min):
            raise ValueError(f"gamma_max must exceed gamma_min, got {gamma_min!r} and {gamma_max!r}.")
        g = torch.Generator().manual_seed(seed)
        self.gamma_min = nn.Parameter(torch.tensor(float(gamma_min)))
        self.rho = nn.Parameter(torch.tensor(_inv_softplus(gamma_max - gamma_min)))
        self.w1 = nn.Parameter(torch.ones(()))
        self.w2 = nn.Parameter(torch.randn(n_features, generator=g))
        self.b2 = nn.Parameter(torch.zeros(n_features))
        self.w3 = nn.Parameter(torch.randn(n_features, generator=g) * nonlinear_init)

    # -- the function and its derivative ----------------------------------------------------
    def _g(self, t: torch.Tensor):
        """(g(t), g'(t)) elementwise, g'(t) = |w1| + (1/n) sum_k |w3_k| phi'(h_k) 2 |w2_k|, phi' = 2 s (1 - s)."""
        dt = t.dtype
        w2, b2, w3 = self.w2.to(dt).abs(), self.b2.to(dt), self.w3.to(dt).abs()
        h = (2 * t[..., None] - 1) * w2 + b2
        s = torch.sigmoid(h)
        n = w2.numel()
        g = self.w1.to(dt).abs() * t + ((2 * s - 1) * w3).sum(-1) / n
        dg = self.w1.to(dt).abs() + (2 * s * (1 - s) * 2 * w2 * w3).sum(-1) / n
        return g, dg

    def with_derivative(self, t: torch.Tensor):
        """(gamma(t), gamma'(t)), analytic: gamma'(t) = R g'(t) / (g(1) - g(0))."""
        if not torch.is_tensor(t) or not t.is_floating_point():
            raise ValueError(f"t must be a float tensor in [0, 1], got {type(t).__name__} {getattr(t, 'dtype', '')}.")
        g, dg = self._g(t)
        ends, _ = self._g(torch.tensor([0.0, 1.0], dtype=t.dtype, device=t.device))
        span = ends[1] - ends[0]
        R = F.softplus(self.rho.to(t.dtype))
        gm = self.gamma_min.to(t.dtype)
        return gm + R * (g - ends[0]) / span, R * dg / span

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.with_derivative(t)[0]

    def endpoints(self) -> tuple[float, float]:
        """(gamma(0), gamma(1)) = (gamma_min, gamma_min + R) as floats: -log SNR at t = 0 and t = 1."""
        gm = float(self.gamma_min.detach())
        return gm, gm + float(F.softplus(self.rho.detach().double()))

    # -- weights as a flat list (a schedule's params) ---------------------------------------
    def to_params(self) -> tuple:
        """[gamma_min, rho, w1, w2..., b2..., w3...] as Python floats (float32 values, exactly)."""
        parts = [self.gamma_min.view(1), self.rho.view(1), self.w1.view(1), self.w2, self.b2, self.w3]
        return tuple(float(v) for v in torch.cat([p.detach().float().cpu() for p in parts]).tolist())

    @classmethod
    def from_params(cls, params) -> "GammaNet":
        """Inverse of :meth:`to_params`; anything that is not 3 + 3n finite numbers is a ValueError."""
        p = list(params)
        if len(p) < 6 or (len(p) - 3) % 3 or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in p):
            raise ValueError(f"a learned schedule's params are 3 + 3n finite numbers (gamma_min, rho, w1, w2, b2, w3), "
                             f"got {len(p)} values{'' if len(p) < 6 else ' or a non-finite one'}.")
        n = (len(p) - 3) // 3
        net = cls(n_features=n)
        flat = torch.tensor(p, dtype=torch.float32)
        with torch.no_grad():
            net.gamma_min.copy_(flat[0])
            net.rho.copy_(flat[1])
            net.w1.copy_(flat[2])
            net.w2.copy_(flat[3: 3 + n])
            net.b2.copy_(flat[3 + n: 3 + 2 * n])
            net.w3.copy_(flat[3 + 2 * n:])
        if float(net.w1.detach().abs()) == 0.0 or not math.isfinite(float(F.softplus(net.rho.detach().double()))):
            raise ValueError("a learned schedule needs w1 != 0 (so that gamma increases strictly) and a finite rho.")
        return net
