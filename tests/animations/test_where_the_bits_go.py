"""Where the bits go (training scene): the denoising-matching terms of the 2-D model t by t, as bars with their
cumulative share. The bars are the terms of vdm's full ELBO estimator and add up to its matching term; the
caption's numbers are recomputed here from the terms, not read from the scene's helpers."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from built_scenes import get


def _terms(per_point: bool = False):
    """The matching terms t = 2..T in bits per point, and the matching term, straight from vdm.elbo (and with
    ``per_point`` each point's matching term in bits)."""
    from animations import model2d
    from vdm.elbo import elbo

    pm = model2d.point_model()
    x0 = model2d.held_out()
    with torch.no_grad():
        e = elbo(pm.denoiser, pm.schedule, x0, "denoising", "full", generator=torch.Generator().manual_seed(0))
    out = (e.per_t.double().mean(0)[2:] / math.log(2)).numpy(), float(e.matching.double().mean()) / math.log(2)
    return (*out, (e.matching.double() / math.log(2)).numpy()) if per_point else out


def _scene():
    from animations.training import Training

    return get(Training)


def test_bars_are_the_matching_terms_and_add_up_to_the_matching_term():
    scene = _scene()
    bits, matching = _terms()
    axes, bars = scene.bits_axes, scene.bits_bars
    assert len(bars) == len(bits) == scene.bits["T"] - 1
    heights = np.array([axes.p2c(bar.get_top())[1] - axes.p2c(bar.get_bottom())[1] for bar in bars])
    assert np.allclose(heights, bits, rtol=1e-6, atol=1e-6)
    assert math.isclose(heights.sum(), matching, rel_tol=1e-6)
    # each bar stands over its own t
    centres = np.array([axes.p2c(bar.get_bottom())[0] for bar in bars])
    assert np.allclose(centres, np.arange(2, scene.bits["T"] + 1), atol=1e-6)


def test_caption_numbers_follow_from_the_terms():
    scene = _scene()
    bits, matching, per_point = _terms(per_point=True)
    share = np.cumsum(bits) / bits.sum()
    t = np.arange(2, len(bits) + 2)
    half, most = int(t[np.argmax(share >= 0.5)]), int(t[np.argmax(share >= 0.9)])
    caption = scene.bits_caption
    m = re.search(r"half of the ([0-9.]+) \$\\pm\$ ([0-9.]+) matching bits come from \$t \\le (\d+)\$ of (\d+), nine "
                  r"tenths from \$t \\le (\d+)\$; \$t = 2\$ alone holds (\d+)", caption)
    assert m, caption
    # the matching term with its standard error over the points, the mean to the error's second digit
    se = per_point.std() / math.sqrt(len(per_point))
    assert float(m.group(2)) == pytest.approx(se, rel=0.05, abs=0.0006)
    assert abs(float(m.group(1)) - matching) <= 0.5 * 10 ** -len(m.group(1).split(".")[1]) + 1e-12
    m = re.match(r".*?(\d+)\$ of (\d+), nine tenths from \$t \\le (\d+)\$; \$t = 2\$ alone holds (\d+)",
                 caption[caption.index("come from"):])
    half_shown, T, most_shown, first = (int(g) for g in m.groups())
    assert half_shown == half and T == len(bits) + 1 and most_shown == most
    assert first == round(100 * bits[0] / bits.sum())
    # what "half" and "nine tenths" mean: the steps before fall short, those up to it reach it
    assert share[half - 2] >= 0.5 > (share[half - 3] if half > 2 else 0)
    assert share[most - 2] >= 0.9 > share[most - 3]


def test_every_slide_of_the_section_has_notes():
    scene = _scene()
    notes = [n for name, n in zip(scene.slide_names, scene.slide_notes) if name == "where the bits go"]
    assert len(notes) == 2 and all(n.strip() for n in notes)
