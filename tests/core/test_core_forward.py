"""The forward chain simulated step by step against the closed form q(x_t | x_0), in float64."""

from __future__ import annotations

import math

import pytest
import torch

from vdm.diffusion import eps_from_x0, forward_chain, forward_step, q_mean_var, q_sample, x0_from_eps

N_CHAINS = 20000
Z = 5.0  # standard errors allowed: with a fixed seed, a real error shows up as many SEs


@pytest.mark.parametrize("kind", ["constant", "linear", "cosine"])
def test_chain_moments_match_closed_form(kind, schedules):
    s = schedules(30)[kind]
    x0_pixels = torch.tensor([-1.0, -0.3, 0.5, 1.0], dtype=torch.float64)
    x0 = x0_pixels.expand(N_CHAINS, 4).clone()
    g = torch.Generator().manual_seed(1)
    chain = forward_chain(s, x0, generator=g)  # [T+1, N, 4]
    assert chain.shape == (s.T + 1, N_CHAINS, 4) and chain.dtype == torch.float64
    assert torch.equal(chain[0], x0)
    n = N_CHAINS
    for t in (1, 3, 10, 20, s.T):
        ab = float(s.alpha_bar[t])
        mean_want = math.sqrt(ab) * x0_pixels
        var_want = 1.0 - ab
        mean = chain[t].mean(0)
        var = chain[t].var(0)
        se_mean = math.sqrt(var_want / n)
        se_var = var_want * math.sqrt(2.0 / (n - 1))  # Gaussian sample variance
        assert torch.all((mean - mean_want).abs() < Z * se_mean), (t, mean, mean_want)
        assert torch.all((var - var_want).abs() < Z * se_var), (t, var, var_want)
    # A chain, not independent draws: Cov(x_s, x_t) = sqrt(alpha_bar_t / alpha_bar_s) (1 - alpha_bar_s), s < t
    for s_, t in ((1, 2), (3, 10), (10, 20)):
        ab_s, ab_t = float(s.alpha_bar[s_]), float(s.alpha_bar[t])
        cov_want = math.sqrt(ab_t / ab_s) * (1 - ab_s)
        a, b = chain[s_] - chain[s_].mean(0), chain[t] - chain[t].mean(0)
        cov = (a * b).sum(0) / (n - 1)
        # var of the product of two Gaussians' centred values: v_s v_t + c^2
        se_cov = math.sqrt(((1 - ab_s) * (1 - ab_t) + cov_want ** 2) / n)
        assert torch.all((cov - cov_want).abs() < Z * se_cov), (s_, t, cov, cov_want)


def test_forward_step_is_the_one_step_formula(any_schedule):
    s = any_schedule
    x = torch.randn(5, 3, 4, 4, dtype=torch.float64)
    eps = torch.randn_like(x)
    for t in (1, 7, s.T):
        a = float(s.alpha[t])
        want = math.sqrt(a) * x + math.sqrt(1 - a) * eps
        torch.testing.assert_close(forward_step(s, x, t, eps), want, rtol=1e-12, atol=1e-12)
    # one t per image
    t = torch.tensor([1, 5, 9, 20, s.T])
    got = forward_step(s, x, t, eps)
    for i in range(5):
        torch.testing.assert_close(got[i], forward_step(s, x[i:i + 1], int(t[i]), eps[i:i + 1])[0])


def test_q_sample_and_eps_round_trip(any_schedule):
    s = any_schedule
    x0 = torch.rand(6, 3, 4, 4, dtype=torch.float64) * 2 - 1
    eps = torch.randn_like(x0)
    t = torch.tensor([1, 2, 5, 10, 30, s.T])
    x_t = q_sample(s, x0, t, eps)
    mean, var = q_mean_var(s, x0, t)
    ab = s.alpha_bar[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(x_t, ab.sqrt() * x0 + (1 - ab).sqrt() * eps)
    torch.testing.assert_close(mean, ab.sqrt() * x0)
    torch.testing.assert_close(var, (1 - ab).expand_as(var))
    torch.testing.assert_close(eps_from_x0(s, x_t, t, x0), eps)
    torch.testing.assert_close(x0_from_eps(s, x_t, t, eps), x0)
    # t = 0 is the clean image
    torch.testing.assert_close(q_sample(s, x0, 0, eps), x0)


@pytest.mark.parametrize("t", [0, 41, -1, 2.0])
def test_bad_t_is_refused(t, schedules):
    s = schedules(40)["constant"]
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="t must"):
        forward_step(s, x, t)
    with pytest.raises(ValueError, match="t must"):
        forward_chain(s, x, t_max=t if t != 0 else 41)
