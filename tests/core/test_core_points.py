"""2-D points: the exact mixture references against independent routes, and the ELBO on points.

- E[x_0 | x_t] of vdm.gmm against a Monte Carlo conditional mean (importance weights over draws of the data);
- q(x_t) of vdm.gmm against a histogram of the forward chain simulated step by step;
- the optimal denoiser's -ELBO >= the true -log p, the gap shrinking as T grows at the derived rate;
- both ELBO forms agreeing in expectation on points, as they do on images.
"""

from __future__ import annotations

import math

import pytest
import torch

from vdm import gmm, points
from vdm.diffusion import forward_chain, q_sample
from vdm.elbo import elbo, matching_kl, mc_standard_error
from vdm.schedule import Schedule, make_schedule

MIX = gmm.layout("gmm")


def test_layouts_are_the_documented_mixtures():
    ring, grid = gmm.layout("gmm"), gmm.layout("gmm-grid")
    assert ring.means.shape == (8, 2) and torch.allclose(ring.means.norm(dim=1), torch.ones(8, dtype=torch.float64))
    assert grid.means.shape == (25, 2) and float(grid.means.abs().max()) == pytest.approx(1.0)
    for m in (ring, grid):
        assert float(m.weights.sum()) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        gmm.layout("moons")


@pytest.mark.parametrize("name", ["gmm", "gmm-grid", "moons", "swissroll"])
def test_point_sets_are_deterministic_prefix_stable_and_split(name):
    a = points.make(name, 500, "train", seed=3)
    assert a.shape == (500, 2) and a.dtype == torch.float32
    assert torch.equal(points.make(name, 200, "train", seed=3), a[:200])  # --data-n N takes the first N
    assert not torch.equal(points.make(name, 200, "test", seed=3), a[:200])
    assert not torch.equal(points.make(name, 200, "train", seed=4), a[:200])
    assert float(a.abs().max()) < 2.0  # inside the scatter's view


def test_mixture_samples_follow_its_density():
    """The points of --data gmm are draws of vdm.gmm's mixture: the mean log-density of the draws is the
    mixture's negative entropy, which a Monte Carlo average of log q over its own draws estimates."""
    x = points.make("gmm", 20000, "train").double()
    # each point's nearest mean is its component (the modes are 7.6 std apart): shares near 1/8, spread std
    d = torch.cdist(x, MIX.means)
    share = torch.bincount(d.argmin(1), minlength=8).double() / len(x)
    assert torch.allclose(share, torch.full((8,), 1 / 8, dtype=torch.float64), atol=0.01)
    resid = x - MIX.means[d.argmin(1)]
    assert float(resid.std()) == pytest.approx(MIX.std, rel=0.03)


@pytest.mark.parametrize("t", [3, 30, 70])
def test_optimal_denoiser_is_the_monte_carlo_conditional_mean(t):
    """E[x_0 | x_t] by Bayes' rule with many draws of x_0: sum_i w_i x_0^i / sum_i w_i, w_i = q(x_t | x_0^i)."""
    s = make_schedule("cosine", 100)
    ab = float(s.alpha_bar[t])
    x0_draws = points.make("gmm", 400_000, "train", seed=11).double()
    # typical x_t (drawn from q(x_t) itself): where the weighted draws have an effective size to compare with
    x_t = q_sample(s, points.make("gmm", 6, "test").double(), t,
                   torch.randn(6, 2, generator=torch.Generator().manual_seed(t), dtype=torch.float64))
    logw = -((x_t[:, None, :] - math.sqrt(ab) * x0_draws[None]) ** 2).sum(-1) / (2 * (1 - ab))  # [4, M]
    w = torch.softmax(logw, dim=1)
    mc = w @ x0_draws
    ess = 1.0 / (w ** 2).sum(1)  # effective sample size of each weighted mean
    var = w @ (x0_draws ** 2) - mc ** 2
    exact = MIX.posterior_mean(x_t, ab)
    err = (exact - mc).abs()
    assert bool((err <= 5 * (var.clamp(min=1e-12) / ess[:, None]).sqrt() + 1e-6).all()), (exact, mc, ess)
    assert bool((ess > 100).all()), ess  # the comparison had enough draws to mean something


@pytest.mark.parametrize("t", [1, 10, 40])
def test_q_xt_density_against_the_simulated_forward_chain(t):
    """The closed-form mixture q(x_t) against a histogram of x_t simulated step by step (q(x_t | x_{t-1}))."""
    s = make_schedule("cosine", 100)
    x0 = points.make("gmm", 40000, "train", seed=5)
    g = torch.Generator().manual_seed(0)
    x_t = forward_chain(s, x0, generator=g, t_max=t)[t].double()
    edges = torch.linspace(-2.0, 2.0, 17, dtype=torch.float64)
    centres = (edges[:-1] + edges[1:]) / 2
    counts = torch.histogramdd(x_t, bins=[edges, edges]).hist
    # expected counts: the density integrated over each bin by a 4x4 midpoint rule
    sub = 4
    h = float(edges[1] - edges[0])
    off = (torch.arange(sub, dtype=torch.float64) + 0.5) / sub * h - h / 2
    px = (centres[:, None] + off[None]).reshape(-1)
    gx, gy = torch.meshgrid(px, px, indexing="ij")
    dens = MIX.diffused(float(s.alpha_bar[t])).log_prob(torch.stack([gx.reshape(-1), gy.reshape(-1)], 1)).exp()
    expected = dens.reshape(16, sub, 16, sub).sum((1, 3)) * (h / sub) ** 2 * len(x0)
    z = (counts - expected) / expected.clamp(min=1.0).sqrt()
    assert float(z.abs().max()) < 5.0, float(z.abs().max())
    assert float(counts.sum()) == pytest.approx(float(expected.sum()), rel=0.02)


def test_optimal_elbo_bounds_the_true_nll_and_the_gap_shrinks_with_T():
    """On average over the data, -ELBO of the optimal denoiser >= H(q) = E[-log q(x_0)], and the bound's gap
    falls as T grows with the endpoints SNR(1), SNR(T) held (T = 10, 40, 160: the steps shrink and the
    Gaussian reverse kernels p(x_{t-1}|x_t) fit better; the cosine schedule moves SNR(1) with T, so its gap
    need not fall monotonically)."""
    x0 = points.make("gmm", 3000, "test").double()
    nll = float((-MIX.log_prob(x0)).mean()) / 2
    gaps = []
    for T in (10, 40, 160):
        s = _log_snr_linear(T)
        g = torch.Generator().manual_seed(T)
        e = elbo(gmm.OptimalDenoiser(MIX, s), s, x0, "denoising", "full", generator=g)
        tot = e.total.double() / 2
        se = float(tot.std()) / math.sqrt(len(tot))
        assert float(tot.mean()) >= nll - 3 * se
        gaps.append(float(tot.mean()) - nll)
    assert gaps[0] > gaps[1] > gaps[2] > 0, gaps


def _log_snr_linear(T: int, lam_max: float = 8.0, lam_min: float = -8.0) -> Schedule:
    """log SNR(t) linear in t from lam_max at t = 1 to lam_min at t = T: endpoints that do not move with T."""
    lam = torch.linspace(lam_max, lam_min, T, dtype=torch.float64)
    return Schedule.from_alpha_bar(torch.sigmoid(lam))


def test_denoising_matching_converges_at_the_derived_rate():
    """Derivation. With x̂_0 = E[x_0|x_t] the denoising-matching sum is

        L_T = 1/2 sum_{t=2}^{T} (SNR(t-1) - SNR(t)) m(SNR(t)),   m(snr) = E||x_0 - E[x_0|x_snr]||^2

    a Riemann sum of L_inf = 1/2 int m(u) du over [SNR(T), SNR(1)] that takes each interval's lower end, where
    the mmse m (decreasing in snr) is largest. Per interval the excess is about -m'(snr) dSNR^2 / 2, so with
    log SNR = lambda(tau), tau = (t-1)/(T-1), linear with slope lambda' (fixed endpoints):

        L_T - L_inf ~ a / (T - 1),   a = 1/4 int_0^1 -(dm/dlambda) e^lambda lambda'^2 dtau

    Checked with vdm.elbo.matching_kl on common noise (the same x_0 and eps at every t, so L_T is a smooth
    function of T): the differences L_T - L_2T follow a / (T - 1) - a / (2T - 1) with the a computed from m.
    """
    x0 = points.make("gmm", 3000, "test", seed=2).double()
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def L(T: int) -> float:
        s = _log_snr_linear(T)
        opt = gmm.OptimalDenoiser(MIX, s)
        total = 0.0
        for t in range(2, T + 1):
            x_t = q_sample(s, x0, t, eps)
            total += float(matching_kl(s, x_t, x0, opt(x_t, t), t).mean())
        return total

    lam_max, lam_min = 8.0, -8.0
    lam = torch.linspace(lam_max, lam_min, 4001, dtype=torch.float64)

    def mmse(l: float) -> float:
        ab = 1.0 / (1.0 + math.exp(-l))
        x_t = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
        return float(((x0 - MIX.posterior_mean(x_t, ab)) ** 2).sum(1).mean())

    m = torch.tensor([mmse(float(v)) for v in lam[::20]], dtype=torch.float64)  # 201 points on the lambda grid
    lg = lam[::20]
    dm = torch.gradient(m, spacing=(lg,))[0]
    integrand = -dm * lg.exp() * (lam_min - lam_max) ** 2  # over tau in [0, 1]: lambda' = lam_min - lam_max
    a = 0.25 * float(torch.trapezoid(integrand, dx=1.0 / (len(lg) - 1)))
    Ls = {T: L(T) for T in (200, 400, 800)}
    for T in (200, 400):
        predicted = a / (T - 1) - a / (2 * T - 1)
        assert Ls[T] - Ls[2 * T] == pytest.approx(predicted, rel=0.15), (T, Ls, a)


def test_both_elbo_forms_agree_in_expectation_on_points():
    s = make_schedule("cosine", 50)
    x0 = points.make("gmm", 2000, "test").double()
    opt = gmm.OptimalDenoiser(MIX, s)
    totals = {}
    for form in ("consistency", "denoising"):
        draws = torch.stack([elbo(opt, s, x0, form, "full", generator=torch.Generator().manual_seed(k)).total
                             for k in range(3)])
        totals[form] = (float(draws.mean()), mc_standard_error(draws))
    (c, sc), (d, sd) = totals["consistency"], totals["denoising"]
    assert abs(c - d) < 4 * math.hypot(sc, sd) + 1e-3, totals


def test_the_density_decoder_and_points_elbo():
    """Points get a Gaussian density decoder (not the 256 pixel bins): with x̂_0 = x_0 exactly (the oracle),
    the reconstruction term is -log N(x_0; x_0, sigma_1^2) = D/2 log(2 pi sigma_1^2), negative for small sigma_1."""
    from vdm.denoiser import Oracle
    from vdm.elbo import decoder_std

    s = make_schedule("cosine", 50)
    x0 = points.make("moons", 64, "test").double()
    e = elbo(Oracle(x0), s, x0, "denoising", "full")
    assert e.continuous and e.decoder == "fixed"
    sig = decoder_std(s)
    assert torch.allclose(e.reconstruction, torch.full((64,), math.log(2 * math.pi * sig ** 2), dtype=torch.float64))
    assert float(e.matching.abs().max()) < 1e-9
    assert e.nats_per_dim()["reconstruction"] < 0


def test_mmd_floor_and_separation():
    te = points.make("moons", 1000, "test")
    tr = points.make("moons", 1000, "train")
    floor = points.mmd2(tr, te)
    assert 0 < floor < 0.02
    assert points.mmd2(points.make("gmm", 1000, "test"), te) > 20 * floor
    assert points.mmd2(te, te) == pytest.approx(0.0, abs=1e-12)
