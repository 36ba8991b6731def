"""A 2-D cloud through the chains: what the chain screen and the lecture's 2-D scene draw, computed once here.

    forward_cloud(schedule, x0)                 x_0 .. x_T of every point, q(x_t | x_{t-1}) step by step
    backward_cloud(den, schedule, n)            x_T .. x_0 by the sampler (vdm.sample), with x̂_0 at each step
    x0_field(den, t, schedule)                  where x̂_0(., t) sends each point of a grid
    density_grid(mixture, schedule, t)          q(x_t) on a grid of pixels, exact for a Gaussian mixture
    histogram_grid(points)                      the same picture estimated from points (any data set)
    denoiser_for(data, schedule, run)           the run's model, or the Bayes-optimal one of a mixture

Points are float tensors [N, 2]; grids cover [-view, view]^2 with row 0 at the top (y = +view), as
pictures and terminals draw them.
"""

from __future__ import annotations

import torch

from vdm import gmm
from vdm.diffusion import forward_chain
from vdm.images import POINT_VIEW
from vdm.sample import sample


def forward_cloud(schedule, x0: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """[T+1, N, 2]: row t is x_t of every point, simulated step by step from x_0 (one chain per point)."""
    g = torch.Generator().manual_seed(seed)
    return forward_chain(schedule, x0.float(), generator=g)


def backward_cloud(denoiser, schedule, n: int, seed: int = 0, steps=None, sampler: str = "ancestral"):
    """(samples [n, 2], vdm.sample.Chain) of the sampler from x_T ~ N(0, I): chain.x[i] is x_{t_i}, chain.x0_hat[i]
    the x̂_0 the model gave there. x̂_0 is not clipped: points are not bounded like pixels."""
    return sample(denoiser, schedule, n, (2,), seed=seed, clip=False, return_chain=True, steps=steps, sampler=sampler)


def grid_points(res: int, view: float = POINT_VIEW) -> torch.Tensor:
    """[res*res, 2] centres of a res x res grid of pixels over [-view, view]^2, row by row from the top."""
    c = (torch.arange(res, dtype=torch.float64) + 0.5) / res * 2 * view - view
    y, x = torch.meshgrid(c.flip(0), c, indexing="ij")
    return torch.stack([x.reshape(-1), y.reshape(-1)], 1)


@torch.no_grad()
def x0_field(denoiser, t: int, res: int = 15, view: float = POINT_VIEW) -> tuple[torch.Tensor, torch.Tensor]:
    """(x_t [res*res, 2], x̂_0(x_t, t) [res*res, 2]) on a grid: the arrows x_t -> x̂_0 show where the model denoises to."""
    x = grid_points(res, view).float()
    return x, denoiser(x, t).float()


def density_grid(mixture: gmm.GMM, schedule, t: int, res: int = 64, view: float = POINT_VIEW) -> torch.Tensor:
    """[res, res] density of q(x_t) at each pixel's centre (exact: the mixture diffused to alpha_bar_t)."""
    q_t = mixture.diffused(float(schedule.alpha_bar[t]))
    return q_t.log_prob(grid_points(res, view)).exp().reshape(res, res)


def histogram_grid(points: torch.Tensor, res: int = 64, view: float = POINT_VIEW) -> torch.Tensor:
    """[res, res] share of the points in each pixel (row 0 at the top), points outside the view left out."""
    p = points.double()
    col = ((p[:, 0] + view) / (2 * view) * res).floor().long()
    row = ((view - p[:, 1]) / (2 * view) * res).floor().long()
    ok = (col >= 0) & (col < res) & (row >= 0) & (row < res)
    h = torch.bincount(row[ok] * res + col[ok], minlength=res * res).double()
    return (h / max(len(p), 1)).reshape(res, res)


def denoiser_for(data: str, schedule, run=None, device="cpu"):
    """(denoiser, name): the run's newest model if a run is given, else the Bayes-optimal E[x_0 | x_t] of a
    Gaussian-mixture data set; a ValueError for other data sets without a run (no model to draw with)."""
    if run is not None:
        den, meta = run.denoiser(device)
        return den, f"{run.name} at step {meta.get('step')}"
    if gmm.is_mixture(data):
        return gmm.OptimalDenoiser(gmm.layout(data), schedule), "the optimal denoiser E[x_0 | x_t]"
    raise ValueError(f"--data {data} has no exact denoiser; train a run (vdm train --data {data}) and give it.")
