"""2-D point clouds: float32 [N, 2], scaled so that each coordinate has a root mean square near 0.5-0.8.

``gmm``, ``gmm-grid``: draws of the mixtures of :mod:`vdm.gmm` (exact density, optimal denoiser).
``moons``: two interleaved half circles (scikit-learn's make_moons layout), centred and scaled by
MOONS_SCALE, plus Gaussian noise of std MOONS_NOISE (in the scaled units).
``swissroll``: the spiral (u cos u, u sin u), u ~ U[1.5 pi, 4.5 pi], divided by SWISS_DIVISOR, plus Gaussian
noise of std SWISS_NOISE (scaled units).

A split is a function of (name, split, seed) alone, and point i is the same whatever n is.
:func:`mmd2` compares two clouds.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from vdm import gmm as mixtures

MOONS_SCALE, MOONS_NOISE = 0.8, 0.04
SWISS_DIVISOR, SWISS_NOISE = 10.0, 0.03
# kernel bandwidths of mmd2, in the data's units (a component of gmm-grid has std 0.06, the ring is 2 wide)
MMD_BANDWIDTHS = (0.05, 0.1, 0.2, 0.5, 1.0)


def noise_of(name: str) -> str:
    """The data set's noise, as a learner reads it in a caption."""
    if mixtures.is_mixture(name):
        g = mixtures.layout(name)
        return f"{len(g.weights)} Gaussians of std {g.std:g}"
    return {"moons": f"noise std {MOONS_NOISE:g}", "swissroll": f"noise std {SWISS_NOISE:g}"}[name]


def make(name: str, n: int, split: str = "train", seed: int = 0) -> torch.Tensor:
    """n points [n, 2] (float32) of the named data set's split."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}.")
    # independent streams per (seed, split, data set) for the uniforms and the normals, each drawn point by
    # point: point i is the same whatever n is, so --data-n N takes the first N of a larger set
    key = [seed, 0 if split == "train" else 1, sum(map(ord, name))]
    u = np.random.default_rng(key + [0]).random((n, 2))
    z = np.random.default_rng(key + [1]).standard_normal((n, 2))
    if mixtures.is_mixture(name):
        g = mixtures.layout(name)
        k = np.searchsorted(np.cumsum(g.weights.numpy()), u[:, 0] * (1 - 1e-12), side="right")
        x = g.means.numpy()[k] + g.std * z
    elif name == "moons":
        theta = math.pi * u[:, 1]
        upper = u[:, 0] < 0.5
        x = np.where(upper[:, None], np.stack([np.cos(theta), np.sin(theta)], 1),
                     np.stack([1 - np.cos(theta), 0.5 - np.sin(theta)], 1))
        x = (x - np.array([0.5, 0.25])) * MOONS_SCALE + MOONS_NOISE * z
    elif name == "swissroll":
        r = 1.5 * math.pi * (1 + 2 * u[:, 1])
        x = np.stack([r * np.cos(r), r * np.sin(r)], 1) / SWISS_DIVISOR + SWISS_NOISE * z
    else:
        raise ValueError(f"unknown 2-D data set {name!r}.")
    return torch.from_numpy(x.astype(np.float32))


def mmd2(x: torch.Tensor, y: torch.Tensor, bandwidths=MMD_BANDWIDTHS) -> float:
    """The squared maximum mean discrepancy between clouds x [n, D] and y [m, D] (biased V-statistic):

        MMD^2 = mean k(x, x') + mean k(y, y') - 2 mean k(x, y),   k = sum_h exp(-||a - b||^2 / (2 h^2))

    summed over the bandwidths h. 0 only for equal clouds; two independent draws of one distribution
    of n points each score about the same small number (the floor to read it against).
    """
    x, y = x.double(), y.double()

    def k(a, b):
        d2 = torch.cdist(a, b).pow(2)
        return sum(torch.exp(-d2 / (2 * h * h)).mean() for h in bandwidths)

    return float(k(x, x) + k(y, y) - 2 * k(x, y))
