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
    kind: str = ""
    # a learned schedule's own curve: vdm.continuous.snr_curve's (t in [0, 1], log SNR(t) = -gamma(t)),
    # and its endpoints (gamma(0), gamma(1)) = (gamma_min, gamma_max); None for any other kind
    curve: tuple[np.ndarray, np.ndarray] | None = None
    gamma_ends: tuple[float, float] | None = None

    @property
    def T(self) -> int:
        return len(self.alpha) - 1

    @classmethod
    def of(cls, schedule) -> "ScheduleTable":
        curve = ends = None
        if schedule.kind == "learned":
            from vdm.continuous import gamma_of, snr_curve

            t, log_snr = snr_curve(schedule)
            curve, ends = (t.numpy(), log_snr.numpy()), gamma_of(schedule).endpoints()
        return cls(schedule.describe(), schedule.alpha.numpy(), schedule.alpha_bar.numpy(), schedule.snr.numpy(),
                   schedule.log_snr.numpy(), schedule.signal_coef().numpy(), schedule.noise_coef().numpy(),
                   schedule.kind, curve, ends)


class Chain:
    """What every chain shares: the schedule's table and the steps t_0 < ... < t_K it visits.

    A chain without ``steps`` visits every t (K = T).
    """

    table: ScheduleTable  # no class attribute for steps: a dataclass below would take it for a default

    @property
    def T(self) -> int:
        return self.table.T

    @property
    def K(self) -> int:
        """Steps along the chain (frames - 1)."""
        steps = getattr(self, "steps", None)
        return self.table.T if steps is None else len(steps) - 1


@dataclass
class ForwardChain(Chain):
    """x_0 .. x_T of one image: frames[t] is x_t."""

    table: ScheduleTable
    frames: np.ndarray  # uint8 [T+1, H, W, 3]
    source: str
    seed: int


@dataclass
class BackwardChain(Chain):
    """One sampling run x_T .. x_0 on steps 0 = t_0 < t_1 < ... < t_K = T, with what each step saw.

    Frames and numbers are indexed by i = 0..K along the steps visited, steps[i] = t_i (for the
    chain of every step, i = t). x[i] = x_{t_i}; x0_hat[i] = x̂_0(x_{t_i}, t_i); mean[i] = the
    mean of x_{t_{i-1}} given x_{t_i} and x̂_0; var[i] = the variance of that step (sigma_q^2(t)
    for ancestral sampling over every step, 0 for DDIM); matching[i] (nats per image, i >= 2)
    = KL(q(x_s | x_t, x_0 = ref) || p(x_s | x_t)), s = t_{i-1}, t = t_i, the denoising-matching
    term of this step at this x_t, where ref is the true x_0 in oracle mode (so it is exactly 0)
    and the chain's own final sample x_0 otherwise (how far this step's prediction was from
    where the chain ended). DDIM's p(x_s | x_t) is a point mass: its KL is infinite.
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
    steps: np.ndarray | None = None  # t_i; None: every step (i = t)
    sampler: str = "ancestral"

    def __post_init__(self):
        if self.steps is None:
            self.steps = np.arange(len(self.x))


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


def backward(denoiser, schedule, seed: int = 0, image=None, source: str = "", progress=None,
             steps: int | None = None, sampler: str = "ancestral") -> BackwardChain:
    """One image sampled with vdm.sample.sample (``steps`` K and ``sampler`` as there), and the matching term of every step.

    ``denoiser`` None means oracle mode on ``image`` (uint8 [3, H, W]).
    """
    import torch

    from vdm.data import to_float
    from vdm.denoiser import Oracle
    from vdm.elbo import nats_to_bpd
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
        x, chain = sample(denoiser, schedule, 1, shape=shape, seed=seed, return_chain=True, progress=progress,
                          steps=steps, sampler=sampler)
        ref = x0_true if oracle else x
        matching = np.zeros(chain.K + 1)
        if sampler == "ddim":
            matching[2:] = np.inf  # p(x_s | x_t) is a point mass, q(x_s | x_t, x_0) is not
        elif chain.K >= 2:
            matching[2:] = step_kl(schedule, chain, ref).numpy()
    return BackwardChain(ScheduleTable.of(schedule), as_hwc(chain.x[:, 0]), as_hwc(chain.x0_hat[:, 0]),
                         as_hwc(chain.mean[:, 0]), chain.var.double().numpy(), matching,
                         np.asarray(nats_to_bpd(matching, ref[0].numel())), source, seed, oracle,
                         chain.t.numpy(), sampler)


def step_kl(schedule, chain, ref):
    """KL(q(x_s | x_t, x_0 = ref) || p(x_s | x_t)) in nats for the steps i = 2..K of an ancestral chain of one image.

    p(x_s | x_t) = q(x_s | x_t, x̂_0): two Gaussians of the one variance (vdm.diffusion.posterior
    between s = t_{i-1} and t = t_i, vdm.elbo.gaussian_kl); for the chain of every step this is
    vdm.elbo.matching_kl, 1/2 (SNR(s) - SNR(t)) ||x_0 - x̂_0||^2.
    """
    from vdm.diffusion import posterior
    from vdm.elbo import gaussian_kl

    t, s = chain.t[2:], chain.t[1:-1]
    x_t, x0_hat = chain.x[2:, 0].double(), chain.x0_hat[2:, 0].double()
    mu_q, var = posterior(schedule, x_t, ref.expand_as(x_t).double(), t, s=s)
    mu_p, _ = posterior(schedule, x_t, x0_hat, t, s=s)
    return gaussian_kl(mu_q, var.expand_as(mu_q), mu_p, var.expand_as(mu_p)).flatten(1).sum(1)


def fmt(v: float) -> str:
    """A number for the side panel: 6 significant digits, ∞ for infinity."""
    if math.isinf(v):
        return "∞"
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.4e}"
    return f"{v:.6g}"
