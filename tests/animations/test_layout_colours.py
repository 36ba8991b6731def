"""Layout at every step's end and the colours: text inside the frame, no two text boxes overlapping,
every colour readable on the background and distinct from the others.

The scenes record, at every pause (the end of each slide), the bounding box of each
outermost piece of text on screen (lecture_scene.text_boxes). The scenes are built once
with animations skipped (built_scenes.py), so the boxes are the final positions.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from manim import config

from animations import render as r
from animations.palette import BACKGROUND, PALETTE
from built_scenes import get, layout_problems


def _scene(name):
    return get(r.scene_class(name))


# the opening (noise to data, under 30 s) and the closing summary are short by design; a topic has 5 steps or more
MIN_PAUSES = {"opening": 3, "summary": 4}


@pytest.mark.parametrize("name", list(r.SCENES))
def test_text_inside_the_frame_and_apart(name):
    scene = _scene(name)
    assert scene.pauses >= MIN_PAUSES.get(name, 5) and len(scene.layout_log) == scene.pauses
    problems = layout_problems(scene)
    assert not problems, "\n".join(problems[:20])


# -- colours ------------------------------------------------------------------------------

def _linear(hex_colour):
    v = np.array([int(hex_colour.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4)]) / 255
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def contrast(a, b):
    """WCAG 2 contrast ratio (L1 + 0.05) / (L2 + 0.05) of two sRGB colours."""
    la, lb = (float(_linear(x) @ [0.2126, 0.7152, 0.0722]) for x in (a, b))
    return (max(la, lb) + 0.05) / (min(la, lb) + 0.05)


def lab(hex_colour):
    """CIELAB (D65) of an sRGB colour."""
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    x = m @ _linear(hex_colour) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(x > 0.008856, np.cbrt(x), 7.787 * x + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def _hex(colour):
    from manim.utils.color import ManimColor

    return ManimColor(colour).to_hex()


def test_contrast_ratio_reference_values():
    # the formula against WCAG's own endpoints: white on black is 21, a colour on itself 1
    assert contrast("#FFFFFF", "#000000") == pytest.approx(21.0)
    assert contrast("#777777", "#777777") == pytest.approx(1.0)
    assert contrast("#767676", "#FFFFFF") == pytest.approx(4.54, abs=0.01)  # the well-known AA grey


@pytest.mark.parametrize("quantity", list(PALETTE))
def test_each_colour_is_readable_on_the_background(quantity):
    assert contrast(_hex(PALETTE[quantity]), BACKGROUND) >= 4.5
    assert _hex(config.background_color) == BACKGROUND.lower() or _hex(config.background_color) == BACKGROUND


def test_colours_are_distinct():
    pairs = [(ka, kb, float(np.linalg.norm(lab(_hex(a)) - lab(_hex(b)))))
             for (ka, a), (kb, b) in itertools.combinations(PALETTE.items(), 2)]
    close = [p for p in pairs if p[2] < 20]
    assert not close, close


def test_box_cutting_a_heading_is_found():
    """The posterior's old layout: the result's box ran through the heading above it (seen in a frame)."""
    from built_scenes import box_cuts_text

    heading = ("with the constant alpha", [-3.0, 2.3, 3.0, 2.7])
    inside = ("mu_q = ...", [-3.5, 0.5, 3.5, 2.0])
    box = [-3.7, 0.3, 3.7, 2.5]  # its top edge at 2.5 crosses the heading
    assert box_cuts_text([box], [heading, inside]) and "with the constant" in box_cuts_text([box], [heading])[0]
    assert not box_cuts_text([[-3.7, 0.3, 3.7, 2.2]], [heading, inside])  # moved down: clear of it
    # a derivation's focus box round one part of a line: the line holds the box's centre
    assert not box_cuts_text([[0.0, -0.3, 1.0, 0.3]], [("a line", [-4.0, -0.2, 4.0, 0.2])])
