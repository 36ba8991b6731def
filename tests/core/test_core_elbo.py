"""Both ELBOs (exercises 2 and 3): term identities, agreement in expectation, the decoder's bins."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch

from vdm.data import shapes, to_float
from vdm.denoiser import Oracle
from vdm.elbo import (decoder_std, discretized_gaussian_log_likelihood, elbo, gaussian_kl, gaussian_log_prob,
                      nats_to_bpd, prior_nats)
from vdm.schedule import Schedule

LEVELS = torch.arange(256, dtype=torch.float64) / 127.5 - 1.0
HALF_BIN = 1.0 / 255


def shrink(x_t, t):
    """A simple non-oracle denoiser: x̂_0 = clamp(0.8 x_t)."""
    return (0.8 * x_t).clamp(-1.0, 1.0)


@pytest.fixture(scope="module")
def small_problem():
    """16 distinct 8x8 crops of the shapes data, each repeated 128 times (2048 images, D = 192), T = 10."""
    imgs = to_float(shapes(16, "test")[0][:, :, 12:20, 12:20]).double()
    return Schedule.constant(None, 10), imgs.repeat_interleave(128, 0)


def _within_var(x: torch.Tensor, groups: int = 16) -> float:
    """Variance of an estimator for a fixed x_0: pooled over the repeats of each image."""
    return float(x.view(groups, -1).var(1).mean())


@pytest.mark.parametrize("which", ["shrink", "oracle"])
def test_both_forms_agree_and_denoising_has_lower_variance(small_problem, which):
    s, x0 = small_problem
    model = shrink if which == "shrink" else Oracle(x0)
    g = torch.Generator().manual_seed(0)
    den = elbo(model, s, x0, "denoising", "full", g)
    con = elbo(model, s, x0, "consistency", "full", g)
    n = x0.shape[0]
    v_d, v_c = _within_var(den.total), _within_var(con.total)
    diff = float(den.total.mean() - con.total.mean())
    se = math.sqrt((v_d + v_c) / n)
    assert abs(diff) < 4 * se, (diff, se)
    # the terms differ even though the totals agree: the check is not vacuous
    assert abs(float(den.prior.mean() - con.prior.mean())) > 20 * se
    # exercise 3 integrates x_{t-1} analytically: a lower variance than exercise 2's Monte Carlo
    assert v_d < v_c, (v_d, v_c)
    # the matching + prior part alone, where the forms differ, by a wide margin
    assert _within_var(den.matching + den.prior) < 0.5 * _within_var(con.matching + con.prior)
    assert den.dims == con.dims == 192


def test_matching_terms_match_their_closed_form(small_problem):
    """x̂_0 = c x_t is linear, so E_{x_t} ||x_0 - x̂_0||^2 = ||(1 - c sqrt(ab_t)) x_0||^2 + c^2 (1 - ab_t) D."""
    s, x0 = small_problem
    c = 0.8
    linear = lambda x_t, t: c * x_t  # noqa: E731
    alphas = [float(a) for a in s.alpha[1:]]
    ab = np.cumprod([1.0] + alphas)
    want = torch.zeros(x0.shape[0], dtype=torch.float64)
    sq0 = (x0 ** 2).flatten(1).sum(1)
    D = x0[0].numel()
    for t in range(2, s.T + 1):
        d_snr = ab[t - 1] / (1 - ab[t - 1]) - ab[t] / (1 - ab[t])
        want += 0.5 * d_snr * ((1 - c * math.sqrt(ab[t])) ** 2 * sq0 + c ** 2 * (1 - ab[t]) * D)
    g = torch.Generator().manual_seed(7)
    den = elbo(linear, s, x0, "denoising", "full", g)
    con = elbo(linear, s, x0, "consistency", "full", g)
    n = x0.shape[0]
    # the exact expectation, and the analytic prior KL(q(x_T|x_0) || N(0, I))
    prior = 0.5 * (ab[-1] * sq0 + D * (1 - ab[-1]) - D - D * math.log(1 - ab[-1]))
    torch.testing.assert_close(den.prior, prior, rtol=1e-9, atol=1e-9)
    for got in (den.matching, con.matching + con.prior - prior):
        se = math.sqrt(_within_var(got) / n)
        assert abs(float((got - want).mean())) < 4 * se, (float((got - want).mean()), se)


def test_uniform_estimator_is_T_minus_1_times_one_term():
    """Per image: (T - 1) KL_t at one t ~ U{2..T}, with the KL of the t that was drawn."""
    T = 10
    s = Schedule.constant(None, T)
    x0 = to_float(shapes(512, "test")[0][:, :, :4, :4]).double()
    calls = []

    def recording(x_t, t):
        out = torch.tanh(x_t) * 0.7
        calls.append((t.clone(), out))
        return out

    e = elbo(recording, s, x0, "denoising", "uniform", torch.Generator().manual_seed(8))
    (t, x0_hat), = [c for c in calls if int(c[0].min()) >= 2]
    assert set(t.tolist()) == set(range(2, T + 1))  # every t in 2..T is drawn from 512 images
    ab = np.cumprod([1.0] + [float(a) for a in s.alpha[1:]])
    d_snr = torch.tensor([ab[k - 1] / (1 - ab[k - 1]) - ab[k] / (1 - ab[k]) for k in t.tolist()], dtype=torch.float64)
    want = (T - 1) * 0.5 * d_snr * ((x0 - x0_hat) ** 2).flatten(1).sum(1)
    torch.testing.assert_close(e.matching, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("estimator", ["full", "uniform"])
def test_consistency_terms_see_a_joint_draw_of_the_chain(monkeypatch, estimator):
    """The consistency estimator evaluates log q(x_t|x_{t-1}) - log p(x_t|x_{t+1}) at x_{t-1}, x_t, x_{t+1}
    drawn jointly from q(.|x_0): each step's residual is standard normal and independent of the others."""
    import vdm.elbo as elbo_module

    T = 10
    s = Schedule.linear(T, 0.05, 0.4)
    x0 = to_float(shapes(256, "test")[0][:, :, :4, :4]).double()
    seen = []

    def spy(denoiser, schedule, x_prev, x_t, x_next, t):
        seen.append((x_prev, x_t, x_next, t.clone()))
        return torch.ones(x_t.shape[0], dtype=x_t.dtype)

    monkeypatch.setattr(elbo_module, "consistency_term", spy)
    e = elbo(shrink, s, x0, "consistency", estimator, torch.Generator().manual_seed(9))
    if estimator == "full":
        assert [int(c[3][0]) for c in seen] == list(range(1, T))
        assert torch.all(e.matching == T - 1)
        for (_, a_t, a_next, _), (b_prev, b_t, _, _) in zip(seen, seen[1:]):  # one chain, shifted by one step
            assert torch.equal(a_t, b_prev) and torch.equal(a_next, b_t)
    else:
        assert len(seen) == 1 and set(seen[0][3].tolist()) == set(range(1, T))
        torch.testing.assert_close(e.matching, torch.full_like(e.matching, T - 1.0))  # (T - 1) x one term
    alpha = s.alpha
    ab = torch.cumprod(alpha, 0)
    z1, z2, z3 = [], [], []
    for x_prev, x_t, x_next, t in seen:
        v = lambda x: x.view(-1, 1, 1, 1)  # noqa: E731
        tm1 = t - 1
        first = tm1 == 0
        assert torch.equal(x_prev[first], x0[first])  # x_0 itself where t = 1
        z1.append(((x_prev - v(ab[tm1].sqrt()) * x0) / v((1 - ab[tm1]).sqrt()))[~first])
        z2.append((x_t - v(alpha[t].sqrt()) * x_prev) / v((1 - alpha[t]).sqrt()))
        z3.append((x_next - v(alpha[t + 1].sqrt()) * x_t) / v((1 - alpha[t + 1]).sqrt()))
    z1, z2, z3 = (torch.cat(z).flatten() for z in (z1, z2, z3))
    for z in (z1, z2, z3):
        n = z.numel()
        assert abs(float(z.mean())) < 5 / math.sqrt(n)
        assert abs(float(z.var()) - 1) < 5 * math.sqrt(2 / n)
    n = z2.numel()
    assert abs(float((z2 * z3).mean())) < 5 / math.sqrt(n)  # the two steps' noises are independent


@pytest.mark.parametrize("form", ["denoising", "consistency"])
def test_uniform_estimator_agrees_with_full_in_expectation(small_problem, form):
    s, x0 = small_problem
    g = torch.Generator().manual_seed(1)
    full = elbo(shrink, s, x0, form, "full", g)
    uni = elbo(shrink, s, x0, form, "uniform", g)
    assert uni.per_t is None and full.per_t.shape == (x0.shape[0], s.T + 1)
    torch.testing.assert_close(full.matching, full.per_t.sum(1))
    n = x0.shape[0]
    se = math.sqrt((_within_var(full.matching) + _within_var(uni.matching)) / n)
    assert abs(float(full.matching.mean() - uni.matching.mean())) < 4 * se
    # one uniform t per image is the noisier estimate of the same sum
    assert _within_var(uni.matching) > _within_var(full.matching)


def test_oracle_denoising_terms_are_exactly_zero(small_problem):
    s, x0 = small_problem
    x0 = x0[::128]
    for est in ("full", "uniform"):
        e = elbo(Oracle(x0), s, x0, "denoising", est, torch.Generator().manual_seed(2))
        assert torch.all(e.matching == 0)
        if est == "full":
            assert torch.all(e.per_t == 0)
    # the reconstruction term of the oracle is the decoder's bin mass at its own mean, per pixel:
    # Phi(h/sigma) on the two edge levels, Phi(h/sigma) - Phi(-h/sigma) inside
    sigma = math.sqrt(1 - float(s.alpha[1]))
    z = HALF_BIN / sigma
    phi = 0.5 * (1 + math.erf(z / math.sqrt(2)))
    edge = (x0.abs() > 0.999).flatten(1).sum(1).double()
    inner = x0[0].numel() - edge
    want = -(edge * math.log(phi) + inner * math.log(2 * phi - 1))
    torch.testing.assert_close(e.reconstruction, want, rtol=1e-9, atol=1e-9)
    assert decoder_std(s) == pytest.approx(sigma, rel=1e-12)


@pytest.mark.parametrize("kind", ["constant", "linear"])
def test_each_denoising_term_is_half_snr_drop_times_squared_error(kind):
    """KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) = 1/2 (SNR(t-1) - SNR(t)) ||x_0 - x̂_0||^2, per t."""
    T = 12
    s = Schedule.constant(0.8, T) if kind == "constant" else Schedule.linear(T, 0.01, 0.3)
    alphas = [float(a) for a in s.alpha[1:]]
    alpha_bar = np.cumprod([1.0] + alphas)  # alpha_bar_0 .. alpha_bar_T, independent of s.alpha_bar
    snr = alpha_bar / np.where(alpha_bar < 1, 1 - alpha_bar, np.nan)
    seen = {}

    def recording(x_t, t):
        out = torch.tanh(1.3 * x_t) * 0.9
        seen[int(t[0])] = out  # in the full estimator every image of a call shares t
        return out

    x0 = to_float(shapes(8, "test")[0][:, :, :6, :6]).double()
    e = elbo(recording, s, x0, "denoising", "full", torch.Generator().manual_seed(3))
    assert torch.all(e.per_t[:, :2] == 0)
    for t in range(2, T + 1):
        sq = ((x0 - seen[t]) ** 2).flatten(1).sum(1)
        want = 0.5 * (snr[t - 1] - snr[t]) * sq
        torch.testing.assert_close(e.per_t[:, t], want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("mean,std", [
    (0.0, 0.1), (0.3, 0.01), (-1.0, 1e-4), (1.0, 1e-4), (0.5, 1e-7), (2 / 255, 1e-3), (-0.9961, 0.004),
    (5.0, 0.1), (-5.0, 0.1), (0.0, 100.0), (0.7, 3.0), (3.0, 1e-3),
])
def test_decoder_bins_sum_to_one(mean, std):
    logp = discretized_gaussian_log_likelihood(LEVELS, torch.full_like(LEVELS, mean), std)
    assert logp.dtype == torch.float64 and torch.all(torch.isfinite(logp)) and torch.all(logp <= 0)
    assert float(torch.logsumexp(logp, 0).exp()) == pytest.approx(1.0, abs=1e-9)


def _bin_mass(x: float, m: float, s: float) -> float:
    """P(bin of x) under N(m, s^2), with 60 digits: the edge bins run to -inf / +inf."""
    mpmath.mp.dps = 60
    zhi = mpmath.inf if x > 0.999 else (mpmath.mpf(x) + mpmath.mpf(1) / 255 - m) / s
    zlo = -mpmath.inf if x < -0.999 else (mpmath.mpf(x) - mpmath.mpf(1) / 255 - m) / s
    if zlo > 0:  # above the mean: the difference of two survival functions keeps the digits
        return float(mpmath.log(mpmath.ncdf(-zlo) - mpmath.ncdf(-zhi)))
    return float(mpmath.log(mpmath.ncdf(zhi) - mpmath.ncdf(zlo)))


@pytest.mark.parametrize("mean,std", [(0.0, 0.1), (0.2, 0.02), (-0.95, 0.3), (0.9, 0.05), (0.0, 0.0134), (0.1, 0.002), (1.4, 0.2)])
def test_decoder_matches_cdf_difference(mean, std):
    logp = discretized_gaussian_log_likelihood(LEVELS, torch.full_like(LEVELS, mean), std)
    # every bin with math.erf where the difference keeps its digits
    cdf = lambda v: 0.5 * (1 + math.erf(v / math.sqrt(2)))  # noqa: E731
    for k in range(256):
        x = float(LEVELS[k])
        hi = 1.0 if k == 255 else cdf((x + HALF_BIN - mean) / std)
        lo = 0.0 if k == 0 else cdf((x - HALF_BIN - mean) / std)
        if hi - lo > 1e-6:
            assert float(logp[k]) == pytest.approx(math.log(hi - lo), rel=1e-6), k
    # the far tails, which the erf difference cannot resolve, against 60-digit arithmetic
    for k in (0, 1, 40, 128, 200, 254, 255):
        assert float(logp[k]) == pytest.approx(_bin_mass(float(LEVELS[k]), mean, std), rel=1e-8, abs=1e-10), k


def test_gaussian_helpers_match_torch_distributions():
    g = torch.Generator().manual_seed(4)
    m1, m2 = torch.randn(50, generator=g, dtype=torch.float64), torch.randn(50, generator=g, dtype=torch.float64)
    v1, v2 = torch.rand(50, generator=g, dtype=torch.float64) + 0.1, torch.rand(50, generator=g, dtype=torch.float64) + 0.1
    N = torch.distributions.Normal
    torch.testing.assert_close(gaussian_kl(m1, v1, m2, v2), torch.distributions.kl_divergence(N(m1, v1.sqrt()), N(m2, v2.sqrt())))
    x = torch.randn(50, generator=g, dtype=torch.float64)
    torch.testing.assert_close(gaussian_log_prob(x, m1, v1), N(m1, v1.sqrt()).log_prob(x))
    s = Schedule.constant(0.9, 7)
    x0 = torch.rand(3, 2, 2, 2, generator=g, dtype=torch.float64) * 2 - 1
    ab = 0.9 ** 7
    want = torch.distributions.kl_divergence(N(math.sqrt(ab) * x0, math.sqrt(1 - ab)), N(0.0, 1.0)).flatten(1).sum(1)
    torch.testing.assert_close(prior_nats(s, x0), want)


def test_nats_to_bpd_and_elbo_units(small_problem):
    assert nats_to_bpd(3072 * math.log(2) * 3.5, 3072) == pytest.approx(3.5, rel=1e-12)
    s, x0 = small_problem
    e = elbo(shrink, s, x0[:64], "denoising", "uniform", torch.Generator().manual_seed(5))
    bpd, nats = e.bpd(), e.nats()
    assert set(bpd) == {"reconstruction", "prior", "matching", "total"}
    for k in bpd:
        assert bpd[k] == pytest.approx(nats[k] / (192 * math.log(2)), rel=1e-12)
    assert bpd["total"] == pytest.approx(bpd["reconstruction"] + bpd["prior"] + bpd["matching"], rel=1e-12)


def test_single_step_chain_has_no_matching_terms():
    s = Schedule.constant(0.5, 1)
    x0 = torch.rand(4, 3, 2, 2, dtype=torch.float64) * 2 - 1
    for form in ("denoising", "consistency"):
        for est in ("full", "uniform"):
            e = elbo(shrink, s, x0, form, est, torch.Generator().manual_seed(6))
            assert torch.all(e.matching == 0)
            # x_{T-1} = x_0: both priors are the same analytic KL
            torch.testing.assert_close(e.prior, prior_nats(s, x0))


@pytest.mark.parametrize("kwargs,msg", [
    ({"form": "elbo"}, "'elbo'"),
    ({"estimator": "stratified"}, "'stratified'"),
])
def test_bad_form_or_estimator(kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        elbo(shrink, Schedule.constant(0.9, 5), torch.zeros(2, 3, 2, 2), **kwargs)


def test_bad_x0():
    s = Schedule.constant(0.9, 5)
    x = torch.zeros(2, 3, 2, 2)
    x[1, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        elbo(shrink, s, x)
    with pytest.raises(ValueError, match="float"):
        elbo(shrink, s, torch.zeros(2, 3, 2, 2, dtype=torch.uint8))
