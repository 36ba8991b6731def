"""Ancestral sampling: x_T ~ N(0, I), then x_{t-1} ~ p(x_{t-1}|x_t) = q(x_{t-1} | x_t, x̂_0(x_t, t)) down to x_0.

At t = 1 the posterior variance is 0 and the posterior mean is x̂_0(x_1, 1),
which is returned as the sample (the decoder's mean, as in DDPM).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vdm.diffusion import posterior_coefs, posterior_table, reverse_step
from vdm.schedule import Schedule


@dataclass
class Chain:
    """A whole backward chain, indexed by t = 0..T.

    x[t]: x_t (x[0] is the sample); x0_hat[t], mean[t]: x̂_0(x_t, t) and the
    posterior mean of x_{t-1} given x_t (t >= 1; row 0 repeats the sample);
    var[t]: the posterior variance sigma_q^2(t), a float per t.
    """

    x: torch.Tensor
    x0_hat: torch.Tensor
    mean: torch.Tensor
    var: torch.Tensor

    @property
    def T(self) -> int:
        return self.x.shape[0] - 1


@torch.no_grad()
def sample(denoiser, schedule: Schedule, n: int = 16, shape=(3, 32, 32), *, seed: int | None = 0,
           device: str | torch.device = "cpu", x_T: torch.Tensor | None = None, clip: bool = True,
           return_chain: bool = False, progress=None, compile: bool = False):
    """Draw ``n`` samples; with ``return_chain`` also the :class:`Chain` of every step.

    ``clip`` keeps x̂_0 inside [-1, 1], where the data live. ``progress`` is
    called as progress(done_steps, T) after each step. ``compile`` runs the denoiser
    through torch.compile, with CUDA graphs on GPUs (mode reduce-overhead); the first call
    compiles. Sample many images at once: the per-step cost is T network calls on the batch.
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
    T = schedule.T
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
    # Per-t coefficients once, as device floats: the loop reads them without host syncs.
    table = posterior_table(schedule, device)  # per-t coefficients as device floats: no host syncs in the loop
    if return_chain:
        xs = torch.empty((T + 1,) + tuple(x.shape), device=device)
        x0s = torch.empty_like(xs)
        means = torch.empty_like(xs)
        xs[T] = x
    t_batch = torch.empty(n, dtype=torch.long, device=device)
    graphs = compile and torch.device(device).type == "cuda"
    net = torch.compile(denoiser, mode="reduce-overhead" if graphs else None) if compile else denoiser
    for t in range(T, 0, -1):
        t_batch.fill_(t)
        if graphs:
            torch.compiler.cudagraph_mark_step_begin()  # the graph's output buffer is reused next step
        x0_hat = net(x, t_batch)
        if clip:
            x0_hat = x0_hat.clamp(-1.0, 1.0)
        noise = torch.randn(x.shape, generator=g, device=device) if t > 1 else None
        x, mean = reverse_step(table, x, x0_hat, t, noise)
        if return_chain:
            x0s[t], means[t], xs[t - 1] = x0_hat, mean, x
        if progress is not None:
            progress(T - t + 1, T)
    if not return_chain:
        return x
    x0s[0] = x
    means[0] = x
    return x, Chain(xs, x0s, means, posterior_coefs(schedule)[2].float())
