"""Sampling in fewer steps: the posterior between non-adjacent steps, strided ancestral sampling and DDIM.

Each against an independent route: the T-step sampler as it was written before strided steps
(copied below), Gaussian conditioning of the joint of (x_s, x_t) built from the one-step chain,
the composition of adjacent posteriors, the oracle, and Monte Carlo marginals.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from test_core_cli import run as cli_run  # main(argv) -> (status, stdout, stderr)
from vdm.denoiser import Oracle
from vdm.diffusion import ddim_coefs, posterior, posterior_coefs, reverse_table, q_sample, step_sequence
from vdm.sample import sample


@pytest.fixture(scope="module")
def x0():
    from vdm.data import shapes, to_float

    return to_float(shapes(4, "test")[0])


def squash(x_t, t):
    """A denoiser that is not the oracle and depends on x_t and t (so every coefficient matters)."""
    return torch.tanh(1.5 * x_t) * (1.0 - t.float().view(-1, 1, 1, 1) / 1000.0)


def todays_table(schedule):
    """float64 (c_x0, c_xt, var) per t as vdm.diffusion.posterior_coefs had them before strided steps (9c109e6)."""
    a, ab = schedule.alpha, schedule.alpha_bar
    ab_prev = torch.cat([torch.ones(1, dtype=ab.dtype), ab[:-1]])
    denom = 1.0 - ab
    denom[0] = 1.0
    c_x0 = ab_prev.sqrt() * (1.0 - a) / denom
    c_xt = a.sqrt() * (1.0 - ab_prev) / denom
    var = (1.0 - a) * (1.0 - ab_prev) / denom
    c_x0[0], c_xt[0], var[0] = 1.0, 0.0, 0.0
    return c_x0, c_xt, var


def todays_sampler(denoiser, schedule, n, shape, seed):
    """The T-step ancestral sampler as vdm.sample had it before strided steps (commit 9c109e6), inlined."""
    c_x0, c_xt, var = todays_table(schedule)
    c_x0, c_xt, std = c_x0.float(), c_xt.float(), var.sqrt().float()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n,) + shape, generator=g)
    for t in range(schedule.T, 0, -1):
        x0_hat = denoiser(x, torch.full((n,), t, dtype=torch.long)).clamp(-1.0, 1.0)
        mean = c_x0[t] * x0_hat + c_xt[t] * x
        x = mean + std[t] * torch.randn(x.shape, generator=g) if t > 1 else mean
    return x


@pytest.mark.parametrize("kind", ["constant", "linear", "cosine"])
def test_K_equal_to_T_is_todays_sampler_bit_for_bit(kind, schedules):
    s = schedules(40)[kind]
    want = todays_sampler(squash, s, 5, (3, 6, 6), seed=11)
    for steps in (None, s.T, tuple(range(1, s.T + 1))):
        got = sample(squash, s, 5, shape=(3, 6, 6), seed=11, steps=steps)
        assert torch.equal(got, want), steps
    x, chain = sample(squash, s, 5, shape=(3, 6, 6), seed=11, steps=s.T, return_chain=True)
    assert torch.equal(x, want) and torch.equal(chain.t, torch.arange(s.T + 1)) and chain.K == chain.T == s.T
    for old, new, strided in zip(todays_table(s), posterior_coefs(s), posterior_coefs(s, range(1, s.T + 1))):
        assert torch.equal(new, old) and torch.equal(strided, old)  # the float64 table too, not only its float32 use


def test_the_step_sequence_is_evenly_spaced_from_T_to_1():
    assert step_sequence(500) == tuple(range(1, 501))
    assert step_sequence(500, 1) == (500,)
    assert step_sequence(500, 2) == (1, 500)
    assert step_sequence(10, 4) == (1, 4, 7, 10)
    for T in (2, 7, 50, 500, 1000):
        for K in sorted({1, 2, 3, 10, 20, 50, 100, T // 2, T - 1, T} & set(range(1, T + 1))):
            ts = np.array(step_sequence(T, K))
            assert len(ts) == K and ts[-1] == T and (K == 1 or ts[0] == 1)
            assert (np.diff(ts) > 0).all()
            if K > 1:  # linspace(1, T, K) to the nearest step
                assert np.abs(ts - np.linspace(1, T, K)).max() <= 0.5


def _joint_by_the_chain(alpha, s, t):
    """Var(x_s | x_0), Cov(x_s, x_t | x_0), Var(x_t | x_0) and the x_0 coefficients, step by step
    from q(x_r | x_{r-1}) alone (no closed form): x_r = sqrt(alpha_r) x_{r-1} + sqrt(1 - alpha_r) eps_r."""
    m, v = 1.0, 0.0  # x_r = m x_0 + noise of variance v
    for r in range(1, s + 1):
        m, v = math.sqrt(alpha[r]) * m, alpha[r] * v + (1 - alpha[r])
    m_s, v_s, cov, v_t, m_t = m, v, v, v, m
    for r in range(s + 1, t + 1):
        cov *= math.sqrt(alpha[r])
        m_t, v_t = math.sqrt(alpha[r]) * m_t, alpha[r] * v_t + (1 - alpha[r])
    return m_s, v_s, cov, v_t, m_t


@pytest.mark.parametrize("kind", ["constant", "linear", "cosine"])
def test_the_posterior_between_steps_is_gaussian_conditioning(kind, schedules):
    """q(x_s | x_t, x_0): the joint of (x_s, x_t) given x_0, conditioned on x_t (Schur complement), float64."""
    sch = schedules(50)[kind]
    alpha = sch.alpha.tolist()
    rng = np.random.default_rng(1)
    x0, x_t = rng.uniform(-1, 1, size=6), rng.normal(size=6)
    pairs = [(0, 1), (0, 50), (1, 2), (3, 4), (1, 50), (7, 31), (20, 21), (49, 50), (0, 17), (12, 40)]
    for s, t in pairs:
        m_s, v_s, cov, v_t, m_t = _joint_by_the_chain(alpha, s, t)
        mean_want = m_s * x0 + cov / v_t * (x_t - m_t * x0)
        var_want = v_s - cov ** 2 / v_t
        mean, var = posterior(sch, torch.from_numpy(x_t), torch.from_numpy(x0), t, s=s)
        np.testing.assert_allclose(mean.numpy(), mean_want, rtol=1e-9, atol=1e-12)
        assert float(var) == pytest.approx(var_want, rel=1e-9, abs=1e-15)
    # a batch of (s, t), one pair per image, gives each image its own pair's rows
    s_b, t_b = torch.tensor([0, 7, 20]), torch.tensor([50, 31, 21])
    xb, x0b = torch.from_numpy(np.stack([x_t] * 3)), torch.from_numpy(np.stack([x0] * 3))
    mean, var = posterior(sch, xb, x0b, t_b, s=s_b)
    for i in range(3):
        m_i, v_i = posterior(sch, xb[i:i + 1], x0b[i:i + 1], int(t_b[i]), s=int(s_b[i]))
        torch.testing.assert_close(mean[i:i + 1], m_i, rtol=1e-12, atol=1e-12)
        assert float(var[i]) == pytest.approx(float(v_i), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("kind", ["constant", "cosine"])
def test_the_posterior_between_steps_is_the_composition_of_adjacent_ones(kind, schedules):
    """s = t - 1 is today's posterior exactly; for s < t - 1 chaining q(x_{r-1} | x_r, x_0) from r = t down to s + 1
    (mean and variance pushed through each linear-Gaussian step) gives the same Gaussian."""
    sch = schedules(40)[kind]
    c_x0, c_xt, var = posterior_coefs(sch)
    rng = np.random.default_rng(2)
    x0, x_t = torch.from_numpy(rng.uniform(-1, 1, size=5)), torch.from_numpy(rng.normal(size=5))
    for t in range(1, 41):
        assert all(torch.equal(a, b) for a, b in zip(posterior(sch, x_t, x0, t, s=t - 1), posterior(sch, x_t, x0, t)))
    for s, t in [(0, 40), (5, 9), (10, 30), (38, 40), (0, 3)]:
        m, v = x_t.clone(), 0.0
        for r in range(t, s, -1):  # x_{r-1} = c_x0 x_0 + c_xt x_r + sigma z
            m, v = float(c_x0[r]) * x0 + float(c_xt[r]) * m, float(c_xt[r]) ** 2 * v + float(var[r])
        mean, v_got = posterior(sch, x_t, x0, t, s=s)
        torch.testing.assert_close(mean, m, rtol=1e-10, atol=1e-12)
        assert float(v_got) == pytest.approx(v, rel=1e-10, abs=1e-15)


@pytest.mark.parametrize("kind", ["constant", "linear", "cosine"])
def test_ddim_with_eta_one_is_the_ancestral_posterior(kind, schedules):
    sch = schedules(50)[kind]
    for K in (50, 20, 7, 1):
        steps = step_sequence(50, K)
        anc, ddim1 = posterior_coefs(sch, steps), ddim_coefs(sch, steps, eta=1.0)
        for a, d in zip(anc, ddim1):
            torch.testing.assert_close(d, a, rtol=1e-10, atol=1e-12)
        # eta scales the standard deviation: sigma^2 = eta^2 var_q; eta = 0 adds no noise at all
        torch.testing.assert_close(ddim_coefs(sch, steps, eta=0.5)[2], 0.25 * anc[2], rtol=1e-12, atol=0)
        assert float(ddim_coefs(sch, steps, eta=0.0)[2].abs().max()) == 0.0
        table = reverse_table(sch, steps=steps, eta=0.0)
        assert not any(table.noisy)


@pytest.mark.parametrize("sampler", ["ancestral", "ddim"])
def test_the_oracle_returns_x0_in_any_number_of_steps(sampler, x0):
    from vdm.schedule import Schedule

    sch = Schedule.cosine(100)
    for K in (100, 50, 10, 3, 1):
        out = sample(Oracle(x0), sch, n=x0.shape[0], seed=0, steps=K, sampler=sampler)
        torch.testing.assert_close(out, x0, atol=2e-6, rtol=0)


def test_ddim_with_the_oracle_keeps_the_noise_it_started_from(x0):
    """Deterministic DDIM with x̂_0 = x_0 from x_T = sqrt(ab_T) x_0 + sqrt(1 - ab_T) eps stays on
    x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps at every step it visits (eps_hat = eps throughout)."""
    from vdm.schedule import Schedule

    sch = Schedule.cosine(200)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(5))
    x_T = q_sample(sch, x0, 200, eps)
    _, chain = sample(Oracle(x0), sch, seed=0, x_T=x_T, steps=13, sampler="ddim", return_chain=True)
    assert chain.K == 13 and chain.T == 200 and chain.t.tolist() == [0] + list(step_sequence(200, 13))
    for i, t in enumerate(chain.t.tolist()):
        torch.testing.assert_close(chain.x[i], q_sample(sch, x0, t, eps), atol=1e-5, rtol=0)
        assert chain.index(t) == i
    assert float(chain.var.abs().max()) == 0.0
    with pytest.raises(ValueError, match="did not visit"):
        chain.index(2)


@pytest.mark.parametrize("sampler,eta", [("ancestral", None), ("ddim", 0.5)])
def test_strided_chains_with_the_oracle_have_the_marginals_of_q(sampler, eta):
    """Started from x_T ~ q(x_T|x_0) with the true x_0, a strided chain (ancestral, or DDIM with any eta)
    has the marginals q(x_t | x_0) at every step it visits (Monte Carlo, 5 standard errors)."""
    from vdm.schedule import Schedule

    sch = Schedule.constant(None, 60)
    n = 20000
    x0 = torch.tensor([-0.8, 0.1, 0.6, 1.0]).view(1, 4, 1, 1).expand(n, 4, 1, 1).contiguous()
    x_T = q_sample(sch, x0, 60, torch.randn(x0.shape, generator=torch.Generator().manual_seed(3)))
    _, ch = sample(Oracle(x0), sch, seed=4, x_T=x_T, steps=7, sampler=sampler, eta=eta, return_chain=True)
    for i in range(1, ch.K):
        t = int(ch.t[i])
        ab = float(sch.alpha_bar[t])
        mean, var = ch.x[i].double().mean(0).flatten(), ch.x[i].double().var(0).flatten()
        want = math.sqrt(ab) * x0[0].flatten().double()
        assert torch.all((mean - want).abs() < 5 * math.sqrt((1 - ab) / n)), (t, mean, want)
        assert torch.all((var - (1 - ab)).abs() < 5 * (1 - ab) * math.sqrt(2 / n)), (t, var)


def test_a_strided_chain_is_indexed_by_the_steps_it_visited():
    from vdm.schedule import Schedule

    sch = Schedule.linear(30, 1e-3, 0.3)
    x, ch = sample(squash, sch, 3, shape=(3, 4, 4), seed=2, steps=6, return_chain=True)
    assert ch.K == 6 and ch.T == 30 and ch.x.shape == (7, 3, 3, 4, 4) and torch.equal(ch.x[0], x)
    ts = ch.t.tolist()
    assert ts == [0, 1, 7, 13, 18, 24, 30]
    for i in range(1, 7):
        torch.testing.assert_close(ch.x0_hat[i], squash(ch.x[i], torch.full((3,), ts[i])).clamp(-1, 1))
        mean, var = posterior(sch, ch.x[i], ch.x0_hat[i], ts[i], s=ts[i - 1])
        torch.testing.assert_close(ch.mean[i], mean, atol=1e-5, rtol=1e-5)
        assert float(ch.var[i]) == pytest.approx(float(var), rel=1e-6)
    calls = []
    sample(squash, sch, 1, shape=(3, 2, 2), steps=6, progress=lambda d, n: calls.append((d, n)))
    assert calls == [(i, 6) for i in range(1, 7)]


def test_bad_steps_and_samplers_are_refused():
    from vdm.schedule import Schedule

    sch = Schedule.constant(None, 20)
    for bad in (0, -1, 21, True, 2.5, "10"):
        with pytest.raises(ValueError, match="steps"):
            sample(squash, sch, 1, shape=(3, 2, 2), steps=bad)
    for bad in ((3, 2, 10), (0, 5), (5, 21), ()):
        with pytest.raises(ValueError, match="steps"):
            sample(squash, sch, 1, shape=(3, 2, 2), steps=bad)
    with pytest.raises(ValueError, match="sampler"):
        sample(squash, sch, 1, shape=(3, 2, 2), sampler="euler")
    with pytest.raises(ValueError, match="eta"):
        sample(squash, sch, 1, shape=(3, 2, 2), sampler="ddim", eta=1.5)
    with pytest.raises(ValueError, match="eta"):
        sample(squash, sch, 1, shape=(3, 2, 2), eta=0.3)
    with pytest.raises(ValueError, match="s must come before t"):
        posterior(sch, torch.zeros(2, 3), torch.zeros(2, 3), 5, s=5)


def test_vdm_sample_steps_on_the_command_line(tiny_run, tmp_path, capsys, monkeypatch):
    from PIL import Image

    from vdm.denoiser import load_denoiser
    from vdm.images import grid

    _, run_dir, _ = tiny_run  # T = 20
    monkeypatch.chdir(tmp_path)
    for argv, words in ((["--steps", "0"], ">= 1"), (["--steps", "21"], "1..20"), (["--steps", "ten"], "whole number"),
                        (["--sampler", "euler"], "invalid choice")):
        rc, out, err = cli_run(["sample", run_dir, "--n", "2", "--out", "s.png", *argv], capsys)
        assert rc == 2 and words in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    rc, out, err = cli_run(["sample", run_dir, "--n", "4", "--seed", "3", "--steps", "5", "--sampler", "ddim",
                            "--out", "s.png", "--animation", "s.gif", "--frames", "4", "--device", "cpu"], capsys)
    assert rc == 0, err
    assert "ddim in 5 of 20 steps" in out
    den, _ = load_denoiser(run_dir)
    want = grid(sample(den, den.schedule, 4, seed=3, steps=5, sampler="ddim"), scale=2)
    with Image.open("s.png") as im:
        assert np.array_equal(np.asarray(im.convert("RGB")), want)


@pytest.mark.parametrize("eta", [0.0, 0.6])
def test_ddim_matches_diffusers_ddim_scheduler(eta):
    """An independent implementation: diffusers' DDIMScheduler on a uniform stride (its "leading" steps, counted from 0)."""
    diffusers = pytest.importorskip("diffusers")
    from vdm.schedule import Schedule

    T, K = 50, 10
    sch = Schedule.cosine(T)
    ddim = diffusers.DDIMScheduler(num_train_timesteps=T, trained_betas=(1 - sch.alpha[1:]).numpy(), prediction_type="sample",
                                   clip_sample=False, set_alpha_to_one=True, timestep_spacing="leading")
    ddim.set_timesteps(K)
    ours = [int(k) + 1 for k in ddim.timesteps.flip(0)]  # diffusers' k is our t = k + 1: 1, 6, ..., 46
    c_x0, c_xt, var = ddim_coefs(sch, ours, eta)
    g = torch.Generator().manual_seed(0)
    x0, x_t, z = (torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64) for _ in range(3))
    for i, k in enumerate(ddim.timesteps.flip(0).tolist(), start=1):
        want = ddim.step(x0, k, x_t, eta=eta, variance_noise=z).prev_sample
        got = c_x0[i] * x0 + c_xt[i] * x_t + var[i].sqrt() * z
        torch.testing.assert_close(got, want, rtol=1e-4, atol=2e-5)  # diffusers keeps alphas_cumprod in float32
