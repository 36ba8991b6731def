"""Schedules against their definitions, computed here independently in numpy / plain Python."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from vdm.schedule import Schedule, make_schedule, tune_alpha


def test_constant_alpha_bar_is_alpha_to_the_t():
    alpha, T = 0.97, 60
    s = Schedule.constant(alpha, T)
    assert s.T == T and s.kind == "constant"
    assert float(s.alpha[0]) == 1.0
    assert torch.all(s.alpha[1:] == alpha)
    want = np.array([alpha ** t for t in range(T + 1)])
    np.testing.assert_allclose(s.alpha_bar.numpy(), want, rtol=1e-12, atol=0)
    np.testing.assert_allclose(s.beta[1:].numpy(), 1 - alpha, rtol=1e-12)


def test_linear_is_ddpm_linear_betas():
    T, b0, b1 = 100, 1e-4, 0.02
    s = Schedule.linear(T, b0, b1)
    betas = np.array([b0 + (b1 - b0) * i / (T - 1) for i in range(T)])
    np.testing.assert_allclose(s.beta[1:].numpy(), betas, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(s.alpha_bar[1:].numpy(), np.cumprod(1 - betas), rtol=1e-12)


@pytest.mark.parametrize("T", [10, 50, 1000])
def test_cosine_is_nichol_dhariwal(T):
    # improved-diffusion's betas_for_alpha_bar with the cosine alpha_bar, written out again here
    s_off, max_beta = 0.008, 0.999

    def f(u):
        return math.cos((u + s_off) / (1 + s_off) * math.pi / 2) ** 2

    betas = np.array([min(1 - f((i + 1) / T) / f(i / T), max_beta) for i in range(T)])
    sch = Schedule.cosine(T)
    np.testing.assert_allclose(sch.beta[1:].numpy(), betas, rtol=1e-10, atol=1e-13)
    # where beta is not clipped, alpha_bar_t is exactly f(t/T)/f(0)
    unclipped = np.cumprod(betas < max_beta).astype(bool)
    ab = np.array([f(t / T) / f(0) for t in range(1, T + 1)])
    np.testing.assert_allclose(sch.alpha_bar[1:].numpy()[unclipped], ab[unclipped], rtol=1e-10)
    assert betas[-1] == max_beta  # the last step is the clipped one, as in the paper


def test_snr_and_coefficients(any_schedule):
    s = any_schedule
    ab = s.alpha_bar.numpy()
    assert math.isinf(float(s.snr[0]))
    np.testing.assert_allclose(s.snr[1:].numpy(), ab[1:] / (1 - ab[1:]), rtol=1e-12)
    np.testing.assert_allclose(s.log_snr[1:].numpy(), np.log(ab[1:] / (1 - ab[1:])), rtol=1e-10, atol=1e-12)
    assert torch.all(s.snr[1:].diff() < 0), "SNR must decrease strictly"
    np.testing.assert_allclose((s.signal_coef() ** 2 + s.noise_coef() ** 2).numpy(), 1.0, rtol=1e-12)


@pytest.mark.parametrize("T", [1, 20, 500, 1000])
@pytest.mark.parametrize("target", [0.01, 0.1])
def test_tune_alpha_reaches_the_target(T, target):
    a = tune_alpha(T, target)
    assert 0 < a < 1
    assert math.sqrt(a ** T) == pytest.approx(target, rel=1e-9)
    s = Schedule.constant(a, T)
    assert float(s.signal_coef()[T]) == pytest.approx(target, rel=1e-9)


def test_default_constant_schedule_uses_tuned_alpha():
    s = Schedule.constant(None, 500)
    assert float(s.alpha[1]) == 0.01 ** (2 / 500)
    assert float(s.signal_coef()[500]) == pytest.approx(0.01, rel=1e-9)


def _raises_naming(value_text: str):
    return pytest.raises(ValueError, match=re.escape(value_text))


@pytest.mark.parametrize("alpha", [0.0, 1.0, 1.5, -0.2, float("nan"), float("inf")])
def test_constant_rejects_alpha_outside_open_unit_interval(alpha):
    with _raises_naming(repr(alpha)):
        Schedule.constant(alpha, 10)


@pytest.mark.parametrize("T", [0, -3, 2.5, "10", True])
def test_rejects_bad_T(T):
    for build in (lambda: Schedule.constant(0.9, T), lambda: Schedule.linear(T), lambda: Schedule.cosine(T),
                  lambda: tune_alpha(T)):
        with _raises_naming(f"got {T!r}"):
            build()


def test_from_alpha_bar_rejects_a_non_decreasing_alpha_bar():
    with pytest.raises(ValueError, match=r"alpha_bar_3 = 0\.95.*alpha_bar_2 = 0\.8"):
        Schedule.from_alpha_bar([0.9, 0.8, 0.95, 0.5])
    with pytest.raises(ValueError, match=r"alpha_bar_2 = 0\.9"):
        Schedule.from_alpha_bar([0.9, 0.9])  # flat: alpha_2 = 1 is not a noising step
    with pytest.raises(ValueError):
        Schedule.from_alpha_bar([0.9, 1.2])
    s = Schedule.from_alpha_bar([0.9, 0.5, 0.1])
    np.testing.assert_allclose(s.alpha[1:].numpy(), [0.9, 0.5 / 0.9, 0.1 / 0.5], rtol=1e-12)


def test_other_bad_parameters_name_the_value():
    with _raises_naming("1.5"):
        Schedule.linear(10, 1e-4, 1.5)
    with _raises_naming("-1"):
        Schedule.cosine(10, s=-1)
    with _raises_naming("1.5"):
        tune_alpha(500, 1.5)
    with _raises_naming("'spiral'"):
        make_schedule("spiral", 10)
    with _raises_naming("'linear'"):
        make_schedule("linear", 10, alpha=0.9)


@pytest.mark.parametrize("build", [
    lambda: Schedule.constant(0.97, 30),
    lambda: Schedule.constant(None, 30),
    lambda: Schedule.linear(40, 1e-3, 0.05),
    lambda: Schedule.cosine(25),
    lambda: Schedule.from_alpha_bar([0.9, 0.6, 0.2, 0.01]),
    lambda: make_schedule("linear", 50),
])
def test_config_round_trip(build):
    s = build()
    cfg = json.loads(json.dumps(s.config()))  # as it travels in a sidecar
    s2 = Schedule.from_config(cfg)
    assert s2 == s and s2.T == s.T and s2.describe() == s.describe()
    assert torch.equal(s2.alpha, s.alpha)


def test_from_config_rejects_unknown_kind():
    with _raises_naming("'spiral'"):
        Schedule.from_config({"kind": "spiral", "T": 10, "params": []})


def test_make_schedule_linear_ends_as_noisy_for_any_T():
    # DDPM's endpoints scaled by 1000/T: alpha_bar_T stays near DDPM's 4e-5 for smaller T
    for T in (100, 250, 1000):
        assert float(make_schedule("linear", T).alpha_bar[T]) < 1e-3
