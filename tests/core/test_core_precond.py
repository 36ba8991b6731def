"""x0-precond: x̂_0 = c_skip x_t + c_out F(c_in x_t, t) (EDM's preconditioning, variance-preserving form)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from vdm.data import shapes, to_float
from vdm.denoiser import PREDICTIONS, SIGMA_DATA, Denoiser, precond_coefs
from vdm.diffusion import q_sample
from vdm.nets import AssignmentNet, build_net
from vdm.schedule import Schedule


class Zero(nn.Module):
    """F ≡ 0, recording the input it was given."""

    def forward(self, x, t):
        self.seen = x
        return torch.zeros_like(x)


def test_precond_is_a_prediction_the_trainer_offers():
    assert "x0-precond" in PREDICTIONS
    # F has unit variance by construction: no tanh on it
    assert not isinstance(build_net("assignment", 20, "x0-precond").up4[-1], nn.Tanh)
    assert isinstance(build_net("assignment", 20, "x0").up4[-1], nn.Tanh)


@pytest.mark.parametrize("kind", ["cosine", "constant"])
def test_coefficients_are_the_least_squares_ones_monte_carlo(kind):
    """c_skip is the regression coefficient of x_0 on x_t, c_out the residual's std: checked by least squares on samples."""
    s = Schedule.cosine(500) if kind == "cosine" else Schedule.constant(None, 500)
    c_skip, c_out, c_in = precond_coefs(s)
    rng = np.random.default_rng(0)
    n = 400_000
    x0 = rng.normal(0.0, SIGMA_DATA, n)  # E[x_0^2] = sigma_d^2, the derivation's assumption
    eps = rng.normal(size=n)
    for t in (1, 10, 100, 250, 499):
        ab = float(s.alpha_bar[t])
        x_t = math.sqrt(ab) * x0 + math.sqrt(1 - ab) * eps
        c = float(np.dot(x_t, x0) / np.dot(x_t, x_t))  # argmin_c sum (x_0 - c x_t)^2
        resid = x0 - c * x_t
        # 400k samples: relative errors ~ 1/sqrt(n) = 1.6e-3
        assert float(c_skip[t]) == pytest.approx(c, rel=1e-2, abs=2e-3), t
        assert float(c_out[t]) == pytest.approx(float(np.sqrt(np.mean(resid ** 2))), rel=1e-2), t
        assert float(c_in[t]) == pytest.approx(1 / float(np.std(x_t)), rel=1e-2), t
        # the network's target F* = (x_0 - c_skip x_t) / c_out has unit variance at every t
        assert float(np.var((x0 - float(c_skip[t]) * x_t) / float(c_out[t]))) == pytest.approx(1.0, rel=1e-2)


def test_coefficients_equal_edms_in_the_variance_exploding_variable():
    """x_t = s y with y = x_0 + sigma n, sigma^2 = 1/SNR: EDM's c_skip/s, c_out and c_in/s, in float64."""
    s = Schedule.cosine(500)
    c_skip, c_out, c_in = precond_coefs(s)
    assert c_skip.dtype == torch.float64
    sd = SIGMA_DATA
    for t in range(0, 501, 7):
        ab = float(s.alpha_bar[t])
        sig2 = (1 - ab) / ab
        sc = math.sqrt(ab)
        assert float(c_skip[t]) == pytest.approx(sd ** 2 / (sig2 + sd ** 2) / sc, rel=1e-12)
        assert float(c_out[t]) == pytest.approx(math.sqrt(sig2) * sd / math.sqrt(sig2 + sd ** 2), rel=1e-10, abs=1e-300)
        assert float(c_in[t]) == pytest.approx(1 / math.sqrt(sig2 + sd ** 2) / sc, rel=1e-12)
    # t = 0 has no noise: x̂_0 = x_t exactly
    assert float(c_skip[0]) == 1.0 and float(c_out[0]) == 0.0


def test_f_zero_is_the_identity_at_small_t():
    """With F ≡ 0, x̂_0 = c_skip x_t: x_t / sqrt(alpha_bar_t) up to a factor 1 - 1/(SNR sigma_d^2) + ..."""
    s = Schedule.cosine(500)
    den = Denoiser(Zero(), s, "x0-precond").eval()
    x0 = to_float(shapes(16, "test")[0]).double()
    g = torch.Generator().manual_seed(0)
    snr = s.snr
    for t in (1, 2, 5):
        x_t = q_sample(s, x0, t, torch.randn(x0.shape, generator=g, dtype=torch.float64))
        x_hat = den(x_t, t)
        scaled = x_t / float(s.alpha_bar[t]) ** 0.5
        bound = 1.0 / (float(snr[t]) * SIGMA_DATA ** 2)  # 4.6e-4 at t = 1
        assert bound < 5e-3
        assert float((x_hat - scaled).abs().max()) <= bound * float(scaled.abs().max()) * 1.001
        # the network saw c_in x_t, of unit scale
        torch.testing.assert_close(den.net.seen, x_t * float(precond_coefs(s)[2][t]))
    # so copying costs nothing at t = 1: x̂_0's error is the noise x_1 carries, sqrt(1 - alpha_bar_1) / sqrt(alpha_bar_1)
    x1 = q_sample(s, x0, 1, torch.randn(x0.shape, generator=g, dtype=torch.float64))
    rms = float((den(x1, 1) - x0).pow(2).mean().sqrt())
    ab1 = float(s.alpha_bar[1])
    assert rms == pytest.approx(math.sqrt((1 - ab1) / ab1), rel=0.02)
    # while an x0 model whose network outputs 0 misses by the images' own RMS, 60 times more
    assert float(x0.pow(2).mean().sqrt()) > 50 * rms


def test_raw_is_x0_hat_and_target_is_x0():
    """The trainer's loss MSE(raw, target) is the assignment's MSE on x_0, for the preconditioned model too."""
    torch.manual_seed(0)
    s = Schedule.cosine(20)
    den = Denoiser(AssignmentNet(20, tanh=False), s, "x0-precond").eval()
    x0 = to_float(shapes(4, "test")[0])
    t = torch.tensor([1, 5, 12, 20])
    eps = torch.randn_like(x0)
    x_t = q_sample(s, x0, t, eps)
    with torch.no_grad():
        raw = den.raw(x_t, t)
        torch.testing.assert_close(raw, den(x_t, t))
        c_skip, c_out, c_in = (c.float()[t].view(-1, 1, 1, 1) for c in precond_coefs(s))
        torch.testing.assert_close(raw, c_skip * x_t + c_out * den.net(c_in * x_t, t))
    assert den.target(x0, x_t, t, eps) is x0
    # the weights are the network's: the coefficient tables are not in the state dict
    assert set(den.state_dict()) == {f"net.{k}" for k in den.net.state_dict()}


def test_precond_checkpoint_trains_saves_and_opens(tmp_path):
    from vdm.run import open_model
    from vdm.train import TrainConfig, Trainer

    cfg = TrainConfig(runs_dir=str(tmp_path), name="p", prediction="x0-precond", schedule="cosine", T=20,
                      epochs=1, limit=64, batch_size=32, eval_size=8, n_samples=4, device="cpu")
    tr = Trainer(cfg, tmp_path / "p", echo=lambda *a: None)
    out = tr.run()
    assert out["step"] == 2 and math.isfinite(out["eval"]["eval_loss"])
    den, meta, run = open_model(tmp_path / "p")
    assert den.prediction == "x0-precond" and meta["prediction"] == "x0-precond"
    x = to_float(shapes(3, "test")[0])
    t = torch.tensor([1, 10, 20])
    tr.model.eval()
    with torch.no_grad():
        torch.testing.assert_close(den(x, t), tr.model(x, t))


def test_weighting_edm_is_the_unweighted_mse_on_f(tmp_path):
    """--weighting edm on a fixed schedule: the loss is mean ||F - F*||^2 over pixels, F* = (x_0 - c_skip x_t) / c_out,
    formed here from the same draws of t and eps (the generator copied) and the coefficients' formula."""
    from vdm.data import to_float as tf
    from vdm.train import TrainConfig, Trainer

    cfg = TrainConfig(runs_dir=str(tmp_path), name="e", prediction="x0-precond", schedule="cosine", T=20,
                      weighting="edm", epochs=1, limit=16, batch_size=8, eval_size=8, n_samples=1, device="cpu")
    tr = Trainer(cfg, tmp_path / "e", echo=lambda *a: None)
    x = tr.train_data[:8]
    g = torch.Generator().manual_seed(7)
    g2 = torch.Generator().manual_seed(7)
    loss = tr.loss_on(x, gen=g)
    t = torch.randint(1, 21, (8,), generator=g2)
    eps = torch.randn(x.shape, generator=g2)
    x0 = tf(x)
    ab = Schedule.cosine(20).alpha_bar[t].view(-1, 1, 1, 1)
    x_t = (ab.sqrt() * x0.double() + (1 - ab).sqrt() * eps.double())
    d = SIGMA_DATA ** 2
    c_skip, c_out, c_in = ab.sqrt() * d / (ab * d + 1 - ab), ((1 - ab) * d / (ab * d + 1 - ab)).sqrt(), (ab * d + 1 - ab).rsqrt()
    f = tr.model.net((c_in * x_t).float(), t).double()  # train mode, the same batch: the same BatchNorm statistics
    want = ((x0.double() - c_skip * x_t) / c_out - f).pow(2).mean()
    assert float(loss) == pytest.approx(float(want), rel=1e-4)
    # the default loss is the assignment's MSE on x_0, c_out^2 times smaller term by term
    plain = ((c_skip * x_t + c_out * f - x0.double()).pow(2)).mean()
    assert float(plain) < 0.5 * float(want)
