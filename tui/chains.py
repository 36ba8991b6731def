"""The forward and backward chains the chain screen steps through, computed once with vdm.

Everything numeric comes from vdm: the schedule's tensors, vdm.diffusion.forward_chain,
vdm.sample.sample and vdm.elbo.matching_kl. Frames are
kept as uint8 H x W x 3 arrays (vdm.images.as_hwc), so stepping is a lookup.
Pixels outside [-1, 1] (x_t has unbounded noise) are clipped for display only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class ScheduleTable:
    """Per-t numbers of a schedule as numpy arrays, index = t (0..T)."""

    describe: str
    alpha: np.ndarray
    alpha_bar: np.ndarray
    snr: np.ndarray
    log_snr: np.ndarray
    signal: np.ndarray  # sqrt(alpha_bar_t)
    noise: np.ndarray  # sqrt(1 - alpha_bar_t)

    @property
    def T(self) -> int:
        return len(self.alpha) - 1

    @classmethod
    def of(cls, schedule) -> "ScheduleTable":
        return cls(schedule.describe(), schedule.alpha.numpy(), schedule.alpha_bar.numpy(), schedule.snr.numpy(),
                   schedule.log_snr.numpy(), schedule.signal_coef().numpy(), schedule.noise_coef().numpy())


@dataclass
class ForwardChain:
    """x_0 .. x_T of one image: frames[t] is x_t."""

    table: ScheduleTable
    frames: np.ndarray  # uint8 [T+1, H, W, 3]
    source: str
    seed: int

    @property
    def T(self) -> int:
        return self.table.T


@dataclass
class BackwardChain:
    """One ancestral sampling run x_T .. x_0, with what each step saw.

    x[t] = x_t; x0_hat[t] = x̂_0(x_t, t); mean[t] = the posterior mean of x_{t-1}
    given x_t and x̂_0; var[t] = sigma_q^2(t); matching[t] (nats per image, t >= 2)
    = KL(q(x_{t-1} | x_t, x_0 = ref) || p(x_{t-1} | x_t)), the denoising-matching
    term at this x_t, where ref is the true x_0 in oracle mode (so it is exactly 0)
    and the chain's own final sample x_0 otherwise (how far this step's prediction
    was from where the chain ended).
    """

    table: ScheduleTable
    x: np.ndarray
    x0_hat: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    matching: np.ndarray
    matching_bpd: np.ndarray
    source: str
    seed: int
    oracle: bool = field(default=False)

    @property
    def T(self) -> int:
        return self.table.T


def forward(schedule, image, seed: int = 0, source: str = "") -> ForwardChain:
    """Simulate q(x_t | x_{t-1}) step by step from a uint8 [3, H, W] image."""
    import torch

    from vdm.data import to_float
    from vdm.diffusion import forward_chain
    from vdm.images import as_hwc

    g = torch.Generator().manual_seed(seed)
    x0 = to_float(image[None])
    chain = forward_chain(schedule, x0, generator=g)[:, 0]
    return ForwardChain(ScheduleTable.of(schedule), as_hwc(chain), source, seed)


def backward(denoiser, schedule, seed: int = 0, image=None, source: str = "", progress=None) -> BackwardChain:
    """Ancestral sampling of one image with vdm.sample.sample, and the matching term at every t.

    ``denoiser`` None means oracle mode on ``image`` (uint8 [3, H, W]).
    """
    import torch

    from vdm.data import to_float
    from vdm.denoiser import Oracle
    from vdm.elbo import matching_kl, nats_to_bpd
    from vdm.images import as_hwc
    from vdm.sample import sample

    oracle = denoiser is None
    if oracle:
        if image is None:
            raise ValueError("oracle mode needs a data image.")
        x0_true = to_float(image[None])
        denoiser = Oracle(x0_true)
        shape = tuple(image.shape)
    else:
        shape = (3, 32, 32)
    with torch.no_grad():
        x, chain = sample(denoiser, schedule, 1, shape=shape, seed=seed, return_chain=True, progress=progress)
        ref = x0_true if oracle else x
        T = schedule.T
        dims = ref[0].numel()
        matching = np.zeros(T + 1)
        if T >= 2:
            ts = torch.arange(2, T + 1)
            x_t = chain.x[2:, 0]
            kl = matching_kl(schedule, x_t.double(), ref.expand_as(x_t).double(), chain.x0_hat[2:, 0].double(), ts)
            matching[2:] = kl.numpy()
    return BackwardChain(ScheduleTable.of(schedule), as_hwc(chain.x[:, 0]), as_hwc(chain.x0_hat[:, 0]),
                         as_hwc(chain.mean[:, 0]), chain.var.double().numpy(), matching,
                         np.asarray(nats_to_bpd(matching, dims)), source, seed, oracle)


def fmt(v: float) -> str:
    """A number for the side panel: 6 significant digits, ∞ for infinity."""
    if math.isinf(v):
        return "∞"
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.4e}"
    return f"{v:.6g}"
