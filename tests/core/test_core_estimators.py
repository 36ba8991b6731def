"""Estimators of the sum over t: importance-sampled t against the full sum; the Monte Carlo standard error."""

from __future__ import annotations

import math

import pytest
import torch

from vdm.data import shapes, to_float
from vdm.denoiser import precond_coefs
from vdm.elbo import (_draw_t, elbo, knot_proposal, mc_standard_error, pilot_proposal, proposal_from_sizes,
                      snr_proposal, t_range)
from vdm.schedule import Schedule

GROUPS, REPEATS = 16, 128


class Leaky:
    """A perturbed oracle, not the oracle: x̂_0 = x_0 + 0.3 (x_t - sqrt(alpha_bar_t) x_0) (the scenes' model)."""

    def __init__(self, x0, s):
        self.x0, self.s = x0, s

    def __call__(self, x_t, t):
        t = torch.as_tensor(t).expand(x_t.shape[0])
        ab = self.s.alpha_bar.to(x_t.dtype)[t].view(-1, 1, 1, 1)
        return self.x0 + 0.3 * (x_t - ab.sqrt() * self.x0)


@pytest.fixture(scope="module")
def problem():
    """16 distinct 8x8 crops of the shapes data, each repeated 128 times; cosine schedule, T = 50."""
    imgs = to_float(shapes(GROUPS + 8, "test")[0][:, :, 12:20, 12:20]).double()
    x0 = imgs[:GROUPS].repeat_interleave(REPEATS, 0)
    return Schedule.cosine(50), x0, imgs[GROUPS:]


def _draws(v: torch.Tensor) -> torch.Tensor:
    """[GROUPS * REPEATS] estimates -> [REPEATS, GROUPS]: the repeats of an image as its independent draws."""
    return v.view(GROUPS, REPEATS).T


@pytest.mark.parametrize("form", ["denoising", "consistency"])
def test_importance_agrees_with_the_full_sum_and_beats_uniform(problem, form):
    s, x0, x_pilot = problem
    pilot = pilot_proposal(Leaky(x_pilot, s), s, x_pilot, form, generator=torch.Generator().manual_seed(9))
    model = Leaky(x0, s)
    full = elbo(model, s, x0, form, "full", torch.Generator().manual_seed(0))
    imp = elbo(model, s, x0, form, "importance", torch.Generator().manual_seed(1), proposal=pilot)
    uni = elbo(model, s, x0, form, "uniform", torch.Generator().manual_seed(2))
    se = math.hypot(mc_standard_error(_draws(imp.matching)), mc_standard_error(_draws(full.matching)))
    diff = float(imp.matching.mean() - full.matching.mean())
    assert abs(diff) < 4 * se, (diff, se)
    var = lambda e: float(_draws(e.matching).var(0).mean())  # noqa: E731  within-image variance
    if form == "denoising":
        # not vacuous: the interval is narrow next to the sum itself
        assert se < 0.05 * float(full.matching.mean().abs())
        assert var(imp) < 0.5 * var(uni), (var(imp), var(uni))
    else:
        # every consistency term carries zero-mean noise of about the same size whatever its mean
        # (a log-ratio at one joint draw), so a proposal can follow little: no worse than uniform
        assert se < 0.5 * float(full.matching.mean().abs())
        assert var(imp) < 1.1 * var(uni), (var(imp), var(uni))
    assert imp.estimator == "importance" and imp.per_t is None


def test_the_snr_proposal_also_beats_uniform_on_the_denoising_form(problem):
    s, x0, _ = problem
    model = Leaky(x0, s)
    imp = elbo(model, s, x0, "denoising", "importance", torch.Generator().manual_seed(3))  # default: snr_proposal
    uni = elbo(model, s, x0, "denoising", "uniform", torch.Generator().manual_seed(3))
    assert float(_draws(imp.matching).var(0).mean()) < float(_draws(uni.matching).var(0).mean())


class Offset:
    """x̂_0 = x_0 + c_out(t) (1 + 3 t / T) e, one fixed direction e: term t is then the same at every x_t,
    1/2 (SNR(t-1) - SNR(t)) c_out(t)^2 (1 + 3 t / T)^2 ||e||^2, and a proposal proportional to it has no variance."""

    def __init__(self, x0, s):
        self.x0, self.s = x0, s
        self.c_out = precond_coefs(s)[1]

    def __call__(self, x_t, t):
        t = torch.as_tensor(t).expand(x_t.shape[0])
        scale = (self.c_out[t] * (1 + 3 * t / self.s.T)).to(x_t.dtype).view(-1, 1, 1, 1)
        return self.x0 + 0.1 * scale


def test_the_knot_proposal_finds_what_the_snr_proposal_misses(problem):
    """Pilot sizes at a few t, the Wiener filter's in between: on Offset, whose ratio to the Wiener filter grows
    smoothly 16-fold over t, the knot proposal removes most of the variance the snr proposal keeps, unbiased."""
    s, x0, x_pilot = problem
    knot = knot_proposal(Offset(x_pilot, s), s, x_pilot, knots=8, generator=torch.Generator().manual_seed(9))
    lo, hi = t_range(s, "denoising")
    assert bool((knot[lo:hi + 1] > 0).all()) and float(knot.sum()) == pytest.approx(1, abs=1e-12)
    model = Offset(x0, s)
    full = elbo(model, s, x0, "denoising", "full", torch.Generator().manual_seed(0))
    var = {}
    for name, p in (("knot", knot), ("snr", snr_proposal(s))):
        e = elbo(model, s, x0, "denoising", "importance", torch.Generator().manual_seed(1), proposal=p)
        var[name] = float(_draws(e.matching).var(0).mean())
        se = mc_standard_error(_draws(e.matching))
        assert abs(float(e.matching.mean() - full.matching.mean())) < 4 * se + 1e-9
    assert var["knot"] < 0.2 * var["snr"], var  # 11x lower here; what is left is mostly the uniform share (mix)


def test_uniform_proposal_is_the_uniform_estimator(problem):
    """Importance sampling with p(t) = 1/(T-1) weights every term by T - 1, as the uniform estimator does."""
    s, x0, _ = problem
    lo, hi = t_range(s, "denoising")
    p = proposal_from_sizes(torch.ones(s.T + 1), lo, hi, mix=1.0)
    assert float(p[lo:hi + 1].sum()) == pytest.approx(1.0) and float(p[:lo].sum()) == 0
    t, w = _draw_t(x0, lo, hi, p, torch.Generator().manual_seed(4))
    torch.testing.assert_close(w, torch.full_like(w, s.T - 1), rtol=1e-12, atol=0)
    assert int(t.min()) >= lo and int(t.max()) <= hi
    # and draws follow p: a proposal on three steps only (mix = 0 is refused, so nearly)
    q = proposal_from_sizes(torch.tensor([0.0] * 10 + [1.0, 2.0, 1.0] + [0.0] * (s.T - 12)), lo, hi, mix=1e-9)
    t, w = _draw_t(torch.zeros(20000, 1), lo, hi, q, torch.Generator().manual_seed(5))
    counts = torch.bincount(t, minlength=s.T + 1)[10:13].double() / len(t)
    torch.testing.assert_close(counts, torch.tensor([0.25, 0.5, 0.25], dtype=torch.float64), atol=0.015, rtol=0)
    torch.testing.assert_close(w, 1 / q[t].float(), rtol=1e-6, atol=0)


def test_mc_standard_error_is_the_spread_of_repeated_means(problem):
    """sqrt(sum_i s_i^2 / K) / n against the std of K whole-batch means / sqrt(K): two routes to one number."""
    s, x0, _ = problem
    e = elbo(Leaky(x0, s), s, x0, "denoising", "uniform", torch.Generator().manual_seed(5))
    d = _draws(e.total)  # [K = 128 draws, n = 16 images]
    want = float(d.mean(1).std() / math.sqrt(d.shape[0]))
    assert mc_standard_error(d) == pytest.approx(want, rel=0.3)
    # the spread across images is another, larger number here (the images differ more than the draws)
    spread = float(d.mean(0).std() / math.sqrt(d.shape[1]))
    assert spread != pytest.approx(mc_standard_error(d), rel=0.3)
    assert math.isnan(mc_standard_error(d[:1]))


def test_proposals_are_checked(problem):
    s, x0, _ = problem
    p = snr_proposal(s, "denoising")
    assert float(p.sum()) == pytest.approx(1.0) and bool((p[2:] > 0).all()) and float(p[:2].sum()) == 0
    # the uniform share bounds the weights: p(t) >= mix / (T - 1)
    assert float(p[2:].min()) >= 0.1 / (s.T - 1) * (1 - 1e-12)
    bad = p.clone()
    bad[10] = 0
    with pytest.raises(ValueError, match="positive"):
        elbo(Leaky(x0[:4], s), s, x0[:4], "denoising", "importance", proposal=bad)
    with pytest.raises(ValueError, match="T \\+ 1"):
        elbo(Leaky(x0[:4], s), s, x0[:4], "denoising", "importance", proposal=p[:-1])
