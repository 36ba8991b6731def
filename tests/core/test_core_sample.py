"""Ancestral sampling: the oracle recovers x_0, seeds, the returned chain, the chain's law."""

from __future__ import annotations

import math

import pytest
import torch

from vdm.data import shapes, to_float
from vdm.denoiser import Oracle
from vdm.diffusion import posterior, posterior_coefs, q_sample
from vdm.sample import sample
from vdm.schedule import Schedule

T = 20


def squash(x_t, t):
    """A non-oracle denoiser that uses x_t (so the seed matters for the sample)."""
    return torch.tanh(1.5 * x_t)


@pytest.fixture(scope="module")
def x0():
    return to_float(shapes(4, "test")[0])


def test_oracle_sampling_returns_x0(x0):
    s = Schedule.constant(None, T)
    out = sample(Oracle(x0), s, n=4, seed=0)
    assert out.shape == x0.shape and out.dtype == torch.float32
    torch.testing.assert_close(out, x0, atol=1e-6, rtol=0)


def test_seeds(x0):
    s = Schedule.cosine(T)
    a = sample(squash, s, n=3, shape=(3, 8, 8), seed=7)
    b = sample(squash, s, n=3, shape=(3, 8, 8), seed=7)
    c = sample(squash, s, n=3, shape=(3, 8, 8), seed=8)
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3
    with pytest.raises(ValueError, match="0"):
        sample(squash, s, n=0)
    calls = []
    sample(squash, s, n=1, shape=(3, 2, 2), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i, T) for i in range(1, T + 1)]


def test_chain(x0):
    s = Schedule.linear(T, 1e-3, 0.3)
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(64, 3, 4, 4, generator=g)
    loud = lambda x_t, t: 3.0 * x_t  # noqa: E731  -- beyond [-1, 1], so clipping shows
    x, ch = sample(loud, s, seed=1, x_T=x_T, return_chain=True)
    assert ch.T == T
    for name in ("x", "x0_hat", "mean"):
        assert getattr(ch, name).shape == (T + 1, 64, 3, 4, 4), name
    assert torch.equal(ch.x[T], x_T)
    assert torch.equal(ch.x[0], x)
    assert ch.var.shape == (T + 1,)
    torch.testing.assert_close(ch.var, posterior_coefs(s)[2].float())
    assert float(ch.x0_hat[1:].abs().max()) <= 1.0  # clip=True keeps x̂_0 where the data live
    z = []
    for t in range(1, T + 1):
        torch.testing.assert_close(ch.x0_hat[t], (3.0 * ch.x[t]).clamp(-1, 1))
        mean, var = posterior(s, ch.x[t], ch.x0_hat[t], t)
        torch.testing.assert_close(ch.mean[t], mean, atol=1e-5, rtol=1e-5)
        if t > 1:
            z.append((ch.x[t - 1] - ch.mean[t]) / math.sqrt(float(var)))
    torch.testing.assert_close(ch.x[0], ch.mean[1])  # no noise on the last step
    # the noise each step adds is standard normal once divided by sigma_q(t)
    z = torch.stack(z)
    assert abs(float(z.mean())) < 5 / math.sqrt(z.numel())
    assert abs(float(z.var()) - 1) < 5 * math.sqrt(2 / z.numel())


def test_chain_with_oracle_follows_q_of_x_t_given_x0():
    """Started from x_T ~ q(x_T|x_0), ancestral sampling with the true x_0 has marginals q(x_t|x_0) at every t."""
    s = Schedule.constant(None, T)
    n = 20000
    x0 = torch.tensor([-0.8, 0.1, 0.6, 1.0]).view(1, 4, 1, 1).expand(n, 4, 1, 1).contiguous()
    x_T = q_sample(s, x0, T, torch.randn(x0.shape, generator=torch.Generator().manual_seed(3)))
    _, ch = sample(Oracle(x0), s, seed=4, x_T=x_T, return_chain=True)
    for t in (2, 5, 10, 15):
        ab = float(s.alpha_bar[t])
        mean, var = ch.x[t].double().mean(0).flatten(), ch.x[t].double().var(0).flatten()
        want = math.sqrt(ab) * x0[0].flatten().double()
        assert torch.all((mean - want).abs() < 5 * math.sqrt((1 - ab) / n)), (t, mean, want)
        assert torch.all((var - (1 - ab)).abs() < 5 * (1 - ab) * math.sqrt(2 / n)), (t, var)
