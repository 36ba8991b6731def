"""Gaussians, once: the KL between two, a log-density, its integral over a pixel's bin, nats as bits per
dimension, and the Monte Carlo error of a mean of draws. Both ELBOs (vdm.elbo, vdm.continuous) use these.
"""

from __future__ import annotations

import math

import torch


def nats_to_bpd(nats, dims: int):
    """nats per image -> bits per dimension: nats / (D ln 2)."""
    return nats / (dims * math.log(2.0))


def gaussian_kl(m1, v1, m2, v2):
    """KL(N(m1, v1) || N(m2, v2)) per element: 1/2 [log(v2/v1) + (v1 + (m1 - m2)^2)/v2 - 1]."""
    return 0.5 * (torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1.0)


def gaussian_log_prob(x, m, v):
    """log N(x; m, v) per element: -1/2 [log(2 pi v) + (x - m)^2 / v]."""
    return -0.5 * (torch.log(2 * math.pi * v) + (x - m) ** 2 / v)


def discretized_gaussian_log_likelihood(x0: torch.Tensor, mean: torch.Tensor, std) -> torch.Tensor:
    """log P(x_0) per element under N(mean, std^2) integrated over x_0's pixel bin.

    x_0 in [-1, 1] on the 256 levels k/127.5 - 1. A bin is x_0 +- 1/255, except the
    edge bins, which extend to -inf and +inf so that the 256 probabilities sum to 1.
    Computed in float64 with log_ndtr for the tails.
    """
    x = x0.double()
    m = mean.double()
    s = torch.as_tensor(std, dtype=torch.float64, device=x.device)
    upper = (x - m + 1.0 / 255) / s
    lower = (x - m - 1.0 / 255) / s
    log_cdf_upper = torch.special.log_ndtr(upper)
    log_sf_lower = torch.special.log_ndtr(-lower)
    # P(lower < z < upper) in log space: log(Phi(u) - Phi(l)), stable on both tails.
    mid = torch.where(
        lower > 0,
        log_sf_lower + torch.log1p(-torch.exp(torch.special.log_ndtr(-upper) - log_sf_lower).clamp(max=1 - 1e-15)),
        log_cdf_upper + torch.log1p(-torch.exp(torch.special.log_ndtr(lower) - log_cdf_upper).clamp(max=1 - 1e-15)),
    )
    out = torch.where(x < -0.999, log_cdf_upper, torch.where(x > 0.999, log_sf_lower, mid))
    return out.to(x0.dtype if x0.dtype.is_floating_point else torch.float32)


def prior_kl_nats(alpha_bar: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """KL(N(sqrt(alpha_bar) x_0, (1 - alpha_bar) I) || N(0, I)) per item, summed over its dimensions: the prior
    matching term at the last noise level, alpha_bar = alpha_bar_T (discrete) or sigmoid(-gamma(1)) (continuous).
    ``alpha_bar`` is a number or a tensor that broadcasts against x_0."""
    ab = torch.as_tensor(alpha_bar, dtype=x0.dtype, device=x0.device)
    m = ab.sqrt() * x0
    return gaussian_kl(m, (1.0 - ab).expand_as(m), torch.zeros_like(m), torch.ones_like(m)).flatten(1).sum(1)


def mc_standard_error(draws: torch.Tensor) -> float:
    """Monte Carlo standard error of mean_i mean_k draws[k, i], the images i held fixed ([K, n], K >= 2).

    Only the estimator's own randomness (t, x_t, x_1) counts: each image's variance over its K
    independent draws, s_i^2, gives Var = sum_i s_i^2 / (K n^2). The spread of the per-image
    estimates across images (std / sqrt(n)) also holds how much the images differ.
    """
    K, n = draws.shape
    if K < 2:
        return float("nan")
    return float(draws.double().var(0).sum().div(K).sqrt() / n)
