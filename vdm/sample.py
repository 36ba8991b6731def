"""Sampling: x_T ~ N(0, I), then K steps x_{t_i} -> x_{t_{i-1}} down to x_0 with x̂_0(x_t, t).

The default is the bonus exercise's ancestral sampler over every step,
x_{t-1} ~ p(x_{t-1}|x_t) = q(x_{t-1} | x_t, x̂_0(x_t, t)). ``steps=K`` visits K
evenly spaced steps T = t_K > ... > t_1 = 1 (vdm.diffusion.step_sequence) with the
posterior between non-adjacent steps q(x_s | x_t, x̂_0); ``sampler="ddim"`` takes
DDIM's deterministic update instead (``eta`` in (0, 1] adds noise, 1 = ancestral).
At t_1 = 1 the variance is 0 and the mean, x̂_0(x_1, 1), is returned as the sample
(the decoder's mean, as in DDPM).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vdm.diffusion import reverse_table, reverse_coefs, reverse_step, step_sequence
from vdm.schedule import Schedule

SAMPLERS = ("ancestral", "ddim")


@dataclass
class Chain:
    """A whole backward chain, indexed by i = 0..K along the steps it visited, t[i] = t_i.

    t: LongTensor [K+1], 0 = t_0 < t_1 < ... < t_K = T; for the chain of every step t[i] = i,
    so rows are indexed by t itself. x[i]: x_{t_i} (x[0] is the sample); x0_hat[i], mean[i]:
    x̂_0(x_{t_i}, t_i) and the mean of x_{t_{i-1}} given x_{t_i} (i >= 1; row 0 repeats the
    sample); var[i]: the variance of that step (sigma_q^2(t) for ancestral sampling over
    every step; 0 for DDIM), a float per step.
    """

    x: torch.Tensor
    x0_hat: torch.Tensor
    mean: torch.Tensor
    var: torch.Tensor
    t: torch.Tensor

    @property
    def K(self) -> int:
        """The number of steps the chain took."""
        return self.x.shape[0] - 1

    @property
    def T(self) -> int:
        """The schedule's T, the first step (t_K)."""
        return int(self.t[-1])

    def index(self, t: int) -> int:
        """The row i of step t (t = t_i); a ValueError when the chain did not visit t."""
        hit = (self.t == t).nonzero()
        if not len(hit):
            raise ValueError(f"the chain did not visit t = {t}; it visited {self.K} steps of {self.T}.")
        return int(hit[0])


def sampling_steps(T: int, steps=None) -> tuple[int, ...]:
    """t_1 < ... < t_K for ``steps``: None or K (evenly spaced, :func:`vdm.diffusion.step_sequence`), or the steps themselves."""
    if isinstance(steps, (list, tuple, range)):
        return tuple(steps)  # checked where the table is built (vdm.diffusion.reverse_table)
    return step_sequence(T, steps)  # refuses anything but None or a whole number in 1..T


@torch.no_grad()
def sample(denoiser, schedule: Schedule, n: int = 16, shape=(3, 32, 32), *, seed: int | None = 0,
           device: str | torch.device = "cpu", x_T: torch.Tensor | None = None, clip: bool = True,
           return_chain: bool = False, progress=None, compile: bool = False, steps=None,
           sampler: str = "ancestral", eta: float | None = None):
    """Draw ``n`` samples; with ``return_chain`` also the :class:`Chain` of the steps taken.

    ``steps``: None (every step, the bonus exercise's sampler), K in 1..T (evenly spaced, K = T
    is every step and the same samples bit for bit) or an increasing sequence of steps in 1..T.
    ``sampler``: "ancestral" (p(x_s|x_t) = q(x_s | x_t, x̂_0)) or "ddim" (deterministic; ``eta``
    in [0, 1], default 0, interpolates to ancestral at 1). ``clip`` keeps x̂_0 inside
    [-1, 1], where the data live. ``progress`` is called as progress(done_steps, K) after each
    step. ``compile`` runs the denoiser through torch.compile, with CUDA graphs on GPUs (mode
    reduce-overhead); the first call compiles. Sample many images at once: the cost is K
    network calls on the batch.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a whole number of at least 1, got {n!r}.")
    if not (isinstance(shape, (tuple, list, torch.Size)) and len(shape) >= 1
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in shape)):
        raise ValueError(f"shape must be a tuple of positive whole numbers like (3, 32, 32), got {shape!r}.")
    if x_T is not None:
        if not torch.is_tensor(x_T) or not x_T.is_floating_point() or x_T.ndim < 2:
            raise ValueError(f"x_T must be a float tensor [n, C, H, W], got {type(x_T).__name__} "
                             f"{getattr(x_T, 'dtype', '')} of shape {tuple(getattr(x_T, 'shape', ()))}.")
        if not bool(torch.isfinite(x_T).all()):
            raise ValueError("x_T contains NaN or infinite values.")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}.")
    if sampler == "ancestral" and eta is not None:
        raise ValueError("eta applies to the DDIM sampler only (ancestral sampling is eta = 1).")
    eta = (0.0 if eta is None else eta) if sampler == "ddim" else None
    ts = sampling_steps(schedule.T, steps)
    # per-step coefficients once, as device floats: the loop reads them without host syncs
    table = reverse_table(schedule, device, steps=ts, eta=eta)
    K = table.K
    g = torch.Generator(device=device)
    if seed is not None:
        g.manual_seed(seed)
    else:
        g.seed()
    if x_T is None:
        x = torch.randn((n,) + tuple(shape), generator=g, device=device)
    else:
        x = x_T.to(device).float()
        n = x.shape[0]
    if return_chain:
        xs = torch.empty((K + 1,) + tuple(x.shape), device=device)
        x0s = torch.empty_like(xs)
        means = torch.empty_like(xs)
        xs[K] = x
    t_batch = torch.empty(n, dtype=torch.long, device=device)
    graphs = compile and torch.device(device).type == "cuda"
    net = torch.compile(denoiser, mode="reduce-overhead" if graphs else None) if compile else denoiser
    for i in range(K, 0, -1):
        t_batch.fill_(table.steps[i])
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()  # the graph's output buffer is reused next step
        x0_hat = net(x, t_batch)
        if clip:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
        noise = torch.randn(x.shape, generator=g, device=device) if table.noisy[i] else None
        x, mean = reverse_step(table, x, x0_hat, i, noise)
        if return_chain:
            x0s[i], means[i], xs[i - 1] = x0_hat, mean, x
        if progress is not None:
            progress(K - i + 1, K)
    if not return_chain:
        return x
    x0s[0] = x
    means[0] = x
    return x, Chain(xs, x0s, means, reverse_coefs(schedule, ts, eta)[2].float(), torch.tensor(table.steps))
