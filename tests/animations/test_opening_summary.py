"""The lecture opens with what diffusion does (noise to data, from the 2-D model, under 30 s) and closes with
its three results and the loss they lead to, on one slide."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from animations import model2d as m2
from animations import render as r
from animations.opening import MAX_SECONDS, Opening
from animations.summary import CLOSED_FORM, ELBO, LOSS, POSTERIOR, Summary
from built_scenes import get


def test_the_lecture_opens_and_closes_with_them():
    names = list(r.SCENES)
    assert names[0] == "opening" and names[-1] == "summary"


def test_opening_is_noise_to_data_in_under_30_seconds():
    scene = get(Opening)
    assert scene.renderer.time < MAX_SECONDS == 30.0
    samples, chain = m2.backward_paths()
    assert torch.equal(scene.noise, chain.x[-1]) and torch.equal(scene.samples, chain.x[0])
    assert abs(float(scene.noise.std()) - 1.0) < 0.1  # x_T: standard Gaussian noise
    # the last caption's shares are measured on what is drawn: the samples at t = 0 and the data beside them
    got, real = scene.mode_shares
    assert got == m2.near_modes(scene.samples) and real == m2.near_modes(m2.held_out())
    shown = " ".join(text for text, _ in scene.layout_log[-1][1])
    for p, n, before in ((got, len(scene.samples), " of the samples"), (real, len(m2.held_out()), " of the data")):
        m = re.search(r"(\d+\.\d+) \$\\pm\$ (\d+\.\d+)\\,\\%" + before, shown)
        assert m, shown  # the share with its binomial error, in percent
        assert float(m.group(1)) == pytest.approx(100 * p, abs=0.06)
        assert float(m.group(2)) == pytest.approx(100 * np.sqrt(p * (1 - p) / n), abs=0.06)
    assert m2.near_modes(scene.noise) < got  # the chain gathered the noise towards the clusters


def test_summary_ends_on_all_three_results_and_the_loss():
    scene = get(Summary)
    shown = {text for text, _ in scene.layout_log[-1][1]}
    formulas = [*CLOSED_FORM, *POSTERIOR, *[p for parts in ELBO for p in parts], *LOSS]
    missing = [f for f in formulas if not any(f in s for s in shown)]
    assert not missing, missing
    assert {"closed form", "posterior", "ELBO", "loss"} <= shown
    assert len(scene.slide_notes) == 4
