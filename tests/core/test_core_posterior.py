"""q(x_{t-1} | x_t, x_0) three ways: the assignment's formula, Gaussian conditioning, diffusers' DDPMScheduler."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vdm.diffusion import posterior, posterior_coefs
from vdm.schedule import Schedule


def test_constant_alpha_is_the_assignments_formula():
    alpha, T = 0.95, 30
    s = Schedule.constant(alpha, T)
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(4, 3, 5, 5, generator=g, dtype=torch.float64)
    x0 = torch.rand(4, 3, 5, 5, generator=g, dtype=torch.float64) * 2 - 1
    for t in range(1, T + 1):
        mean_want = (math.sqrt(alpha) * (1 - alpha ** (t - 1)) * x_t
                     + math.sqrt(alpha ** (t - 1)) * (1 - alpha) * x0) / (1 - alpha ** t)
        var_want = (1 - alpha) * (1 - alpha ** (t - 1)) / (1 - alpha ** t)
        mean, var = posterior(s, x_t, x0, t)
        torch.testing.assert_close(mean, mean_want, rtol=1e-12, atol=1e-12)
        assert float(var) == pytest.approx(var_want, rel=1e-12, abs=1e-15)
    # a batch of different t gives the same rows
    t = torch.arange(1, 5)
    mean, var = posterior(s, x_t, x0, t)
    for i in range(4):
        m_i, v_i = posterior(s, x_t[i:i + 1], x0[i:i + 1], int(t[i]))
        torch.testing.assert_close(mean[i:i + 1], m_i)
        assert float(var[i]) == pytest.approx(float(v_i), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("kind", ["constant", "linear", "cosine"])
def test_any_schedule_is_gaussian_conditioning(kind, schedules):
    """Brute force: the joint Gaussian of (x_{t-1}, x_t) given x_0, conditioned with the Schur complement."""
    s = schedules(50)[kind]
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-1, 1, size=7)
    x_t = rng.normal(size=7)
    c_x0, c_xt, var = (c.numpy() for c in posterior_coefs(s))
    for t in range(2, s.T + 1):
        a_t = float(s.alpha[t])
        ab_prev = float(np.prod(s.alpha[1:t].numpy()))  # alpha_bar_{t-1} from the alphas themselves
        # x_{t-1} | x_0 ~ N(sqrt(ab_prev) x0, 1 - ab_prev); x_t = sqrt(a_t) x_{t-1} + sqrt(1 - a_t) eps
        mu = np.stack([np.sqrt(ab_prev) * x0, np.sqrt(a_t) * np.sqrt(ab_prev) * x0])  # [2, 7]
        v_prev = 1 - ab_prev
        cov = np.array([[v_prev, np.sqrt(a_t) * v_prev],
                        [np.sqrt(a_t) * v_prev, a_t * v_prev + (1 - a_t)]])
        # condition block 1 on block 2: mu_1 + S12 S22^-1 (x_t - mu_2), S11 - S12 S22^-1 S21
        mean_want = mu[0] + cov[0, 1] / cov[1, 1] * (x_t - mu[1])
        var_want = cov[0, 0] - cov[0, 1] ** 2 / cov[1, 1]
        mean, v = posterior(s, torch.from_numpy(x_t), torch.from_numpy(x0), t)
        np.testing.assert_allclose(mean.numpy(), mean_want, rtol=1e-9, atol=1e-12)
        assert float(v) == pytest.approx(var_want, rel=1e-9)
        assert var[t] == pytest.approx(var_want, rel=1e-9)
        np.testing.assert_allclose(c_x0[t] * x0 + c_xt[t] * x_t, mean_want, rtol=1e-9, atol=1e-12)
    # t = 1: x_0 is known, so the posterior is a point mass at x_0
    mean, v = posterior(s, torch.from_numpy(x_t), torch.from_numpy(x0), 1)
    np.testing.assert_allclose(mean.numpy(), x0, rtol=0, atol=1e-12)
    assert float(v) == 0.0


def test_posterior_refuses_bad_input(schedules):
    s = schedules(10)["constant"]
    with pytest.raises(ValueError, match="t must"):
        posterior(s, torch.zeros(2, 3), torch.zeros(2, 3), 0)
    with pytest.raises(ValueError, match="same shape"):
        posterior(s, torch.zeros(2, 3), torch.zeros(2, 4), 2)


@pytest.mark.parametrize("alpha", [None, 0.9])
def test_matches_diffusers_ddpm_scheduler(alpha):
    diffusers = pytest.importorskip("diffusers")
    from diffusers.utils.torch_utils import randn_tensor

    T = 50
    s = Schedule.constant(alpha, T)
    a = float(s.alpha[1])
    sched = diffusers.DDPMScheduler(num_train_timesteps=T, trained_betas=np.full(T, 1 - a), prediction_type="sample",
                                    variance_type="fixed_small", clip_sample=False)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(2, 3, 8, 8, generator=g) * 2 - 1
    x_t = torch.randn(2, 3, 8, 8, generator=g)

    def diffusers_mean(k, seed):
        # prev_sample = mean + sqrt(var_k) z, with z = randn_tensor(shape, generator) drawn inside step()
        prev = sched.step(model_output=x0, timestep=k, sample=x_t, generator=torch.Generator().manual_seed(seed)).prev_sample
        if k == 0:
            return prev  # step() adds no noise at its last index
        z = randn_tensor(x0.shape, generator=torch.Generator().manual_seed(seed), dtype=x0.dtype)
        return prev - sched._get_variance(k) ** 0.5 * z

    for k in range(T):
        t = k + 1
        mean, var = posterior(s, x_t, x0, t)
        assert mean.dtype == torch.float32
        m_d = diffusers_mean(k, seed=k)
        # the route is right: the mean recovered does not depend on the noise seed
        torch.testing.assert_close(diffusers_mean(k, seed=k + 1000), m_d, atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(mean, m_d, atol=1e-5, rtol=1e-4)
        v_d = float(sched._get_variance(k))
        assert float(var) == pytest.approx(v_d, rel=1e-4, abs=1e-5)
