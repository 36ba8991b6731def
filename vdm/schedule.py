"""Noise schedules of the discrete-time VDM.

A schedule is the list alpha_1..alpha_T of the forward chain
q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, (1 - alpha_t) I). Everything else
follows from it:

    alpha_bar_t = prod_{s<=t} alpha_s          (alpha_bar_0 = 1)
    SNR(t)      = alpha_bar_t / (1 - alpha_bar_t)   (SNR(0) = inf)

Tensors are indexed by t itself: index 0 is the clean image x_0, so
``alpha_bar[t]`` is alpha_bar_t for t = 0..T. They are kept in float64 so that
1 - alpha_bar_t keeps its digits near t = 0; callers cast to their dtype.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from functools import cached_property

import torch

import torch.nn.functional as F

from vdm import DEFAULT_T  # re-exported: vdm.schedule.DEFAULT_T
from vdm.config import SCHEDULES as KINDS
from vdm.gamma import GammaNet

# Exercise 1a: the final signal coefficient sqrt(alpha_bar_T) the default
# constant schedule is tuned to reach (see tune_alpha).
DEFAULT_FINAL_SIGNAL = 0.01


def tune_alpha(T: int = DEFAULT_T, final_signal: float = DEFAULT_FINAL_SIGNAL) -> float:
    """The constant alpha for which x_0 blends into noise over exactly T steps.

    Criterion: the signal coefficient of q(x_T | x_0) reaches ``final_signal``,
    sqrt(alpha^T) = final_signal, so alpha = final_signal^(2/T). With the default
    0.01, x_T keeps 1% of x_0's amplitude (SNR(T) = 1e-4): indistinguishable from
    N(0, I) by eye and in the prior-matching term, while no step is wasted on
    pure noise.
    """
    _check_T(T)
    if not (isinstance(final_signal, (int, float)) and 0.0 < final_signal < 1.0):
        raise ValueError(f"final_signal must lie in (0, 1), got {final_signal!r}.")
    return float(final_signal ** (2.0 / T))


def _check_T(T) -> None:
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be an integer >= 1, got {T!r}.")


@dataclass(frozen=True)
class Schedule:
    """alpha_t for t = 1..T, with everything derived from it.

    Build with :meth:`constant`, :meth:`linear`, :meth:`cosine` or
    :meth:`from_config`. ``kind`` and ``params`` describe how it was built, so a
    checkpoint can name its schedule and be refused by a model with another.
    """

    kind: str
    params: tuple
    alpha: torch.Tensor  # [T+1], alpha[0] = 1 by convention

    def __post_init__(self):
        a = self.alpha
        if a.ndim != 1 or a.numel() < 2:
            raise ValueError("a schedule needs at least one step (T >= 1).")
        a1 = a[1:]
        if not torch.isfinite(a1).all():
            raise ValueError("the schedule contains a non-finite alpha_t.")
        bad = ((a1 <= 0) | (a1 >= 1)).nonzero()
        if len(bad):
            t = int(bad[0]) + 1
            raise ValueError(f"alpha_t must lie in (0, 1), got alpha_{t} = {float(a[t])!r}.")

    # -- constructors -------------------------------------------------------
    @classmethod
    def constant(cls, alpha: float | None = None, T: int = DEFAULT_T) -> "Schedule":
        """The assignment's schedule: alpha_t = alpha for every t, so alpha_bar_t = alpha^t."""
        _check_T(T)
        if alpha is None:
            alpha = tune_alpha(T)
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) or not (0.0 < alpha < 1.0):
            raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}.")
        a = torch.full((T + 1,), float(alpha), dtype=torch.float64)
        a[0] = 1.0
        return cls("constant", (float(alpha),), a)

    @classmethod
    def linear(cls, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> "Schedule":
        """DDPM's betas beta_t = 1 - alpha_t, linear from beta_start to beta_end (Ho et al. 2020).

        The endpoints are DDPM's for T = 1000 and are given as they are; pass your
        own for other T.
        """
        _check_T(T)
        for name, v in (("beta_start", beta_start), ("beta_end", beta_end)):
            if not (isinstance(v, (int, float)) and 0.0 < v < 1.0):
                raise ValueError(f"{name} must lie in (0, 1), got {v!r}.")
        betas = torch.linspace(beta_start, beta_end, T, dtype=torch.float64)
        a = torch.cat([torch.ones(1, dtype=torch.float64), 1.0 - betas])
        return cls("linear", (float(beta_start), float(beta_end)), a)

    @classmethod
    def cosine(cls, T: int = 1000, s: float = 0.008, max_beta: float = 0.999) -> "Schedule":
        """Nichol & Dhariwal's alpha_bar_t = f(t)/f(0), f(t) = cos^2(((t/T + s)/(1 + s)) pi/2).

        alpha_t = alpha_bar_t / alpha_bar_{t-1}, with beta_t clipped at max_beta as
        in the paper so that the last step stays a proper Gaussian.
        """
        _check_T(T)
        if not (isinstance(s, (int, float)) and s > 0.0):
            raise ValueError(f"s must be positive, got {s!r}.")
        t = torch.arange(T + 1, dtype=torch.float64)
        f = torch.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2
        abar = f / f[0]
        betas = (1 - abar[1:] / abar[:-1]).clamp(min=1e-12, max=max_beta)
        a = torch.cat([torch.ones(1, dtype=torch.float64), 1.0 - betas])
        return cls("cosine", (float(s), float(max_beta)), a)

    @classmethod
    def from_alpha_bar(cls, alpha_bar, kind: str = "custom") -> "Schedule":
        """A schedule from alpha_bar_1..alpha_bar_T, which must decrease strictly inside (0, 1)."""
        ab = torch.as_tensor(alpha_bar, dtype=torch.float64).flatten()
        if ab.numel() < 1:
            raise ValueError("alpha_bar needs at least one value (T >= 1).")
        if not torch.isfinite(ab).all() or (ab <= 0).any() or (ab >= 1).any():
            raise ValueError("alpha_bar_t must lie in (0, 1) for every t >= 1.")
        full = torch.cat([torch.ones(1, dtype=torch.float64), ab])
        steps = full[1:] / full[:-1]
        if (steps >= 1).any():
            t = int((steps >= 1).nonzero()[0]) + 1
            raise ValueError(
                f"alpha_bar must decrease, but alpha_bar_{t} = {float(full[t])!r} "
                f"is not below alpha_bar_{t - 1} = {float(full[t - 1])!r}."
            )
        return cls(kind, tuple(float(v) for v in ab.tolist()), torch.cat([torch.ones(1, dtype=torch.float64), steps]))

    @classmethod
    def learned(cls, T: int, params=None) -> "Schedule":
        """alpha_bar_t = sigmoid(-gamma(t/T)) for a learned gamma (vdm.gamma.GammaNet).

        ``params`` are the gamma network's weights (GammaNet.to_params); None: its initial weights,
        gamma linear from -13.3 to 5 within a few per cent (VDM's starting point).
        """
        _check_T(T)
        return learned_schedule(GammaNet() if params is None else GammaNet.from_params(params), T)

    @classmethod
    def from_config(cls, cfg: dict) -> "Schedule":
        """Inverse of :meth:`config`. A config read from a file may be anything: all of it is a ValueError."""
        if not isinstance(cfg, dict) or not isinstance(cfg.get("params", []), (list, tuple)):
            raise ValueError(f"a schedule config is a dict with kind, T and a list of params, got {str(cfg)[:80]!r}.")
        kind = cfg.get("kind")
        T = cfg.get("T")
        p = list(cfg.get("params", []))
        try:
            if kind == "constant":
                if len(p) > 1:
                    raise TypeError("a constant schedule has one parameter")
                return cls.constant(p[0] if p else None, T)
            if kind == "linear":
                return cls.linear(T, *p)
            if kind == "cosine":
                return cls.cosine(T, *p)
            if kind == "custom":
                return cls.from_alpha_bar(p)
            if kind == "learned":
                return cls.learned(T, p)
        except (TypeError, RuntimeError) as e:  # too many parameters, or ones of the wrong type
            raise ValueError(f"the {kind} schedule config {str(cfg)[:80]!r} does not fit ({e}).") from None
        raise ValueError(f"unknown schedule kind {str(kind)[:40]!r}; expected one of {', '.join(KINDS)}.")

    def config(self) -> dict:
        return {"kind": self.kind, "T": self.T, "params": list(self.params)}

    # -- derived quantities -------------------------------------------------
    @property
    def T(self) -> int:
        return self.alpha.numel() - 1

    @property
    def beta(self) -> torch.Tensor:
        """1 - alpha_t, the variance each forward step adds."""
        return 1.0 - self.alpha

    @cached_property
    def alpha_bar(self) -> torch.Tensor:
        """alpha_bar_t = prod_{s=1}^t alpha_s, with alpha_bar_0 = 1."""
        return torch.cumprod(self.alpha, 0)

    @cached_property
    def snr(self) -> torch.Tensor:
        """SNR(t) = alpha_bar_t / (1 - alpha_bar_t); SNR(0) = inf."""
        ab = self.alpha_bar
        return ab / (1.0 - ab)

    @property
    def log_snr(self) -> torch.Tensor:
        ab = self.alpha_bar
        return torch.log(ab) - torch.log1p(-ab)

    def signal_coef(self) -> torch.Tensor:
        """sqrt(alpha_bar_t): how much of x_0 is left in x_t."""
        return self.alpha_bar.sqrt()

    def noise_coef(self) -> torch.Tensor:
        """sqrt(1 - alpha_bar_t): the standard deviation of the noise in x_t."""
        return (1.0 - self.alpha_bar).sqrt()

    def describe(self) -> str:
        if self.kind == "constant":
            return f"constant alpha = {self.params[0]:.6f}, T = {self.T}"
        if self.kind == "linear":
            return f"linear betas {self.params[0]:g}..{self.params[1]:g}, T = {self.T}"
        if self.kind == "cosine":
            return f"cosine (s = {self.params[0]:g}), T = {self.T}"
        if self.kind == "learned":
            ls = self.log_snr
            return f"learned gamma, log SNR {float(ls[1]):.2f} to {float(ls[-1]):.2f}, T = {self.T}"
        return f"{self.kind}, T = {self.T}"

    def __eq__(self, other):
        return isinstance(other, Schedule) and self.config() == other.config()

    def __hash__(self):
        return hash((self.kind, self.T, self.params))


def make_schedule(kind: str = "constant", T: int = DEFAULT_T, alpha: float | None = None) -> Schedule:
    """The schedule a command line asks for by name."""
    _check_T(T)
    if kind == "constant":
        return Schedule.constant(alpha, T)
    if alpha is not None:
        raise ValueError(f"--alpha only applies to the constant schedule, not to {kind!r}.")
    if kind == "linear":
        # DDPM's endpoints are for T = 1000; scale them so that any T ends as noisy.
        scale = 1000.0 / T
        return Schedule.linear(T, min(1e-4 * scale, 0.5), min(0.02 * scale, 0.999))
    if kind == "cosine":
        return Schedule.cosine(T)
    if kind == "learned":
        return Schedule.learned(T)  # the initial gamma: a run's trained one is in its checkpoints
    raise ValueError(f"unknown schedule {kind!r}; expected one of {', '.join(KINDS)}.")


def learned_schedule(gamma: GammaNet, T: int):
    """The Schedule of T steps at t/T: alpha_bar_t = sigmoid(-gamma(t/T)) for t = 1..T (alpha_bar_0 = 1).

    alpha_t = alpha_bar_t / alpha_bar_{t-1} is formed in log space, log alpha_t =
    logsigmoid(-gamma_t) - logsigmoid(-gamma_{t-1}), in float64: near t = 0 alpha_bar_t is within
    1e-6 of 1 and the steps differ by less than float32 resolves.
    """
    _check_T(T)
    with torch.no_grad():
        t = torch.arange(1, T + 1, dtype=torch.float64, device=gamma.w1.device) / T
        log_ab = torch.cat([torch.zeros(1, dtype=torch.float64), F.logsigmoid(-gamma(t)).cpu()])
        alpha = torch.exp(log_ab[1:] - log_ab[:-1])
    return Schedule("learned", gamma.to_params(), torch.cat([torch.ones(1, dtype=torch.float64), alpha]))
