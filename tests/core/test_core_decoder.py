"""The decoder p(x_0|x_1): DDPM's fixed std and the std calibrated on held-out images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from vdm.data import shapes, to_float
from vdm.denoiser import Oracle
from vdm.diffusion import q_sample
from vdm.elbo import (Decoder, calibrate_decoder, decoder_std, elbo, fixed_decoder, nats_to_bpd,
                      reconstruction_nats)
from vdm.schedule import Schedule


def shrink(x_t, t):
    """An imperfect x̂_0: 0.9 x_t (errors of about a tenth of each pixel, far above the fixed std)."""
    return 0.9 * x_t


def _loglik_numpy(x0: np.ndarray, mean: np.ndarray, std: float) -> float:
    """sum log P(x_0) under N(mean, std^2) over the pixel bins, edge bins open: an independent route (scipy)."""
    h = 1.0 / 255
    up = norm.cdf((x0 - mean + h) / std)
    lo = norm.cdf((x0 - mean - h) / std)
    p = np.where(x0 < -0.999, up, np.where(x0 > 0.999, 1 - lo, up - lo))
    return float(np.log(np.maximum(p, 1e-300)).sum())


@pytest.fixture(scope="module")
def held_out():
    """Calibration and evaluation images: disjoint slices of the shapes test split, 8x8 crops."""
    x = to_float(shapes(96, "test")[0][:, :, 10:18, 10:18]).double()
    return x[:32], x[32:]


def test_fixed_decoder_is_ddpms():
    s = Schedule.cosine(50)
    d = fixed_decoder(s)
    assert d.name == "fixed" and float(d.std) == pytest.approx(decoder_std(s)) == pytest.approx(math.sqrt(1 - float(s.alpha[1])))
    assert "grey levels" in d.describe()


def test_calibrated_std_is_the_maximiser_on_a_grid(held_out):
    s = Schedule.cosine(50)
    x_cal, _ = held_out
    d = calibrate_decoder(shrink, s, x_cal, generator=torch.Generator().manual_seed(3))
    assert d.name == "calibrated" and d.std.shape == (3,)
    # the same x_1 draw, then a fine grid per channel, scored by scipy
    x1 = q_sample(s, x_cal, 1, torch.randn(x_cal.shape, generator=torch.Generator().manual_seed(3), dtype=x_cal.dtype))
    mean = shrink(x1, 1).numpy()
    x = x_cal.numpy()
    for c in range(3):
        best = float(d.std[c])
        f = lambda v: _loglik_numpy(x[:, c], mean[:, c], v)  # noqa: E731
        grid = np.exp(np.linspace(math.log(best) - 1.0, math.log(best) + 1.0, 201))
        vals = np.array([f(v) for v in grid])
        assert f(best) >= vals.max() - 1e-6 * abs(vals.max()), c
        # and the grid's own maximiser sits next to it (the grid steps by 1%)
        assert abs(math.log(grid[vals.argmax()] / best)) <= 0.011, c
        # a real maximum, not the search's edge
        assert f(best) > f(best * 1.2) and f(best) > f(best / 1.2)
    one = calibrate_decoder(shrink, s, x_cal, generator=torch.Generator().manual_seed(3), per_channel=False)
    assert one.std.ndim == 0 and float(d.std.min()) <= float(one.std) <= float(d.std.max())


def test_calibrated_beats_fixed_on_other_images_of_an_imperfect_model(held_out):
    s = Schedule.cosine(500)  # the main job's schedule: the fixed std is 1.2 grey levels
    x_cal, x_eval = held_out
    cal = calibrate_decoder(shrink, s, x_cal, generator=torch.Generator().manual_seed(0))
    fixed = fixed_decoder(s)
    r_fixed = reconstruction_nats(shrink, s, x_eval, torch.Generator().manual_seed(1), fixed)
    r_cal = reconstruction_nats(shrink, s, x_eval, torch.Generator().manual_seed(1), cal)
    dims = x_eval[0].numel()
    # the errors of 0.9 x_1 are several grey levels, the fixed std 1.2: the fixed decoder pays for it
    b_fixed, b_cal = float(nats_to_bpd(r_fixed.mean(), dims)), float(nats_to_bpd(r_cal.mean(), dims))
    assert b_fixed > 2 * b_cal and b_fixed - b_cal > 2, (b_fixed, b_cal)
    assert b_cal < 8  # better than uniform
    # elbo() records which decoder it used, and only the reconstruction term changes with it
    e_f = elbo(shrink, s, x_eval, "denoising", "uniform", torch.Generator().manual_seed(2))
    e_c = elbo(shrink, s, x_eval, "denoising", "uniform", torch.Generator().manual_seed(2), decoder=cal)
    assert (e_f.decoder, e_c.decoder) == ("fixed", "calibrated")
    torch.testing.assert_close(e_c.decoder_std, cal.std)
    torch.testing.assert_close(e_f.matching, e_c.matching)
    torch.testing.assert_close(e_f.prior, e_c.prior)
    assert bool((e_c.reconstruction < e_f.reconstruction).all())
    swapped = e_f.with_decoder(e_c.reconstruction, cal)
    assert swapped.decoder == "calibrated"
    torch.testing.assert_close(swapped.total, e_c.total)


def test_calibration_on_a_perfect_model_goes_to_the_search_floor(held_out):
    """The oracle's x̂_0 is exact: every pixel is in its bin, the likelihood grows as std shrinks."""
    s = Schedule.cosine(50)
    x_cal, _ = held_out
    d = calibrate_decoder(Oracle(x_cal), s, x_cal)
    assert float(d.std.max()) < 1.1e-4  # the search's floor, lo = 1e-4
    r = reconstruction_nats(Oracle(x_cal), s, x_cal, None, d)
    assert float(r.max()) < 1e-6  # half a bin is 39 stds


def test_decoder_std_broadcasts_per_channel():
    x = torch.zeros(2, 3, 4, 4)
    d = Decoder("calibrated", torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    assert d.shaped(x).shape == (1, 3, 1, 1)
    assert Decoder("fixed", torch.tensor(0.1)).shaped(x).ndim == 0
