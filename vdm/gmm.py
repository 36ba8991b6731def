"""Gaussian mixtures, where every quantity of the VDM is exact.

With data x_0 ~ sum_k w_k N(mu_k, s^2 I) the closed form q(x_t | x_0) = N(sqrt(abar_t) x_0, (1 - abar_t) I)
keeps the mixture a mixture:

    q(x_t) = sum_k w_k N(sqrt(abar_t) mu_k, v_t I),     v_t = abar_t s^2 + 1 - abar_t

and Bayes' rule gives the best possible denoiser, the posterior mean (Tweedie's formula per component):

    E[x_0 | x_t] = sum_k r_k(x_t) [mu_k + sqrt(abar_t) s^2 / v_t (x_t - sqrt(abar_t) mu_k)]
    r_k(x_t)     = w_k N(x_t; sqrt(abar_t) mu_k, v_t I) / q(x_t)

It minimises E||x_0 - x̂_0(x_t, t)||^2 at every t, so no x̂_0 model has a lower -ELBO on the same schedule
and decoder (every term is that squared error times a positive weight, or the decoder's Gaussian of it).
log q(x_0) is the data's own log-density: the -log p(x_0) that no model can beat on average.
Everything is computed in float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

# the layouts of --data gmm and --data gmm-grid: (means, component std)
RING_RADIUS, RING_K, RING_STD = 1.0, 8, 0.1
GRID_SIDE, GRID_SPACING, GRID_STD = 5, 0.5, 0.06


@dataclass(frozen=True)
class GMM:
    """sum_k weights[k] N(means[k], std^2 I): means [K, D], weights [K] summing to 1, one isotropic std."""

    means: torch.Tensor
    weights: torch.Tensor
    std: float

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def config(self) -> dict:
        """The mixture as JSON numbers (a run's config.json names it so that a reader can rebuild it)."""
        return {"means": self.means.tolist(), "weights": self.weights.tolist(), "std": self.std}

    def diffused(self, alpha_bar) -> "GMM":
        """q(x_t) = sum_k w_k N(sqrt(abar) mu_k, (abar s^2 + 1 - abar) I) for one number alpha_bar = abar_t."""
        ab = float(alpha_bar)
        return GMM(self.means * math.sqrt(ab), self.weights, math.sqrt(ab * self.std ** 2 + 1.0 - ab))

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log of the mixture's density at each row of x [N, D] (nats, float64)."""
        x = x.double()
        d2 = torch.cdist(x, self.means.to(x.device)).pow(2)  # [N, K]
        log_comp = -0.5 * d2 / self.std ** 2 - 0.5 * self.dim * math.log(2 * math.pi * self.std ** 2)
        return torch.logsumexp(log_comp + self.weights.to(x.device).log(), dim=1)

    def posterior_mean(self, x_t: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
        """E[x_0 | x_t] for rows x_t [N, D] at alpha_bar [N] (or one number): the Bayes-optimal x̂_0."""
        x = x_t.double()
        ab = torch.as_tensor(alpha_bar, dtype=torch.float64, device=x.device).reshape(-1, 1)  # [N or 1, 1]
        mu = self.means.to(x.device)
        s2 = self.std ** 2
        v = ab * s2 + 1.0 - ab  # [N, 1]
        centre = ab.sqrt()[:, :, None] * mu[None]  # [N, K, D]
        d2 = (x[:, None, :] - centre).pow(2).sum(-1)  # [N, K]
        r = torch.softmax(self.weights.to(x.device).log() - 0.5 * d2 / v, dim=1)  # the variance is the same for every k
        comp = mu[None] + (ab.sqrt() * s2 / v)[:, :, None] * (x[:, None, :] - centre)  # E[x_0 | x_t, k]
        return (r[:, :, None] * comp).sum(1)


def layout(name: str) -> GMM:
    """The mixture of a data set: ``gmm`` 8 equal Gaussians on a ring, ``gmm-grid`` 25 on a 5x5 grid."""
    if name == "gmm":
        a = torch.arange(RING_K, dtype=torch.float64) * (2 * math.pi / RING_K)
        means = RING_RADIUS * torch.stack([a.cos(), a.sin()], 1)
        return GMM(means, torch.full((RING_K,), 1.0 / RING_K, dtype=torch.float64), RING_STD)
    if name == "gmm-grid":
        c = (torch.arange(GRID_SIDE, dtype=torch.float64) - (GRID_SIDE - 1) / 2) * GRID_SPACING
        means = torch.cartesian_prod(c, c)
        return GMM(means, torch.full((GRID_SIDE ** 2,), 1.0 / GRID_SIDE ** 2, dtype=torch.float64), GRID_STD)
    raise ValueError(f"{name!r} is not a Gaussian-mixture data set; expected gmm or gmm-grid.")


def is_mixture(name: str) -> bool:
    return name in ("gmm", "gmm-grid")


class OptimalDenoiser(nn.Module):
    """x̂_0(x_t, t) = E[x_0 | x_t] of a mixture under a schedule: the best denoiser there is, which never sees x_0.

    Unlike :class:`vdm.denoiser.Oracle` (x̂_0 = the true x_0, which no model can know), this is a model
    in the ELBO's sense: a function of x_t and t alone. Its -ELBO is the lowest any x̂_0 model reaches.
    """

    def __init__(self, gmm: GMM, schedule):
        super().__init__()
        self.gmm = gmm
        self.schedule = schedule

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        if not torch.is_tensor(x_t) or x_t.ndim != 2 or x_t.shape[1] != self.gmm.dim:
            raise ValueError(f"the optimal denoiser of a {self.gmm.dim}-D mixture takes x_t [N, {self.gmm.dim}], "
                             f"got shape {tuple(getattr(x_t, 'shape', ()))}.")
        t = torch.as_tensor(t, device="cpu").long().expand(x_t.shape[0])
        ab = self.schedule.alpha_bar[t]
        return self.gmm.posterior_mean(x_t, ab.to(x_t.device)).to(x_t.dtype)

