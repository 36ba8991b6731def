"""A tinted backdrop behind a part of a formula, the way a highlighter marks a line on paper.

A white box round a part drawn with a fixed margin runs through its neighbours wherever TeX sets them
closer than that margin (a bracket beside a bracket, a plus sign before a square root). The backdrop
takes the margin it can have: on each side at most ``pad``, and never past half the gap to the nearest
glyph that is not part of what it marks. It sits behind the text, so nothing is drawn over a glyph.
"""

from __future__ import annotations

import numpy as np
from manim import RoundedRectangle

from animations.palette import BOX

TINT_OPACITY = 0.2  # white text on white at 0.2 over black: contrast ratio about 12:1, the tint still clear


def glyph_bounds(mobject, leave_out=()) -> list[np.ndarray]:
    """[x0, y0, x1, y1] of every drawn glyph (family member with points and some fill or stroke) of
    ``mobject``, but those in ``leave_out`` (ids)."""
    out = []
    for m in mobject.family_members_with_points():
        if id(m) not in leave_out and (m.get_fill_opacity() > 0.05 or m.get_stroke_width() > 0):
            p = m.points
            out.append(np.array([p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()]))
    return out


def fitted_margins(target: np.ndarray, others: list[np.ndarray], pad: float) -> np.ndarray:
    """Margins [left, bottom, right, top] round the box ``target`` = [x0, y0, x1, y1]: each ``pad`` at most,
    cut to half the gap to every box in ``others`` the padded box would reach. A box apart from the target
    on both axes (a corner neighbour) cuts the axis where it lies farther (the smaller cut); a box that
    already overlaps the target cannot be kept clear and is left alone."""
    m = np.full(4, float(pad))
    for g in others:
        box = target + m * np.array([-1, -1, 1, 1])
        if g[2] <= box[0] or g[0] >= box[2] or g[3] <= box[1] or g[1] >= box[3]:
            continue  # does not reach the box as it is now
        gaps = {0: target[0] - g[2], 2: g[0] - target[2], 1: target[1] - g[3], 3: g[1] - target[3]}
        side, gap = max(gaps.items(), key=lambda kv: kv[1])
        if gap <= 0:
            continue
        m[side] = min(m[side], gap / 2)
    return m


class Backdrop(RoundedRectangle):
    """The backdrop behind ``target`` among ``context`` (the whole formula, or the whole board): margins from
    fitted_margins against every glyph of ``context`` outside ``target``; drawn behind the text (z-index -1)."""

    def __init__(self, target, context, pad: float = 0.1, color=BOX, opacity: float = TINT_OPACITY):
        own = {id(m) for m in target.family_members_with_points()}
        others = glyph_bounds(context, leave_out=own)
        inner = np.array(glyph_bounds(target))
        box = np.array([inner[:, 0].min(), inner[:, 1].min(), inner[:, 2].max(), inner[:, 3].max()])
        margins = fitted_margins(box, others, pad)
        x0, y0 = box[0] - margins[0], box[1] - margins[1]
        x1, y1 = box[2] + margins[2], box[3] + margins[3]
        radius = min(0.05, (x1 - x0) / 4, (y1 - y0) / 4)
        super().__init__(width=x1 - x0, height=y1 - y0, corner_radius=radius, stroke_width=0,
                         fill_color=color, fill_opacity=opacity)
        self.move_to([(x0 + x1) / 2, (y0 + y1) / 2, 0])
        self.set_z_index(-1)
        self.bounds = np.array([x0, y0, x1, y1])
        self.marks = own  # ids of the glyphs it marks: the only ones it may lie under


def covered_glyphs(backdrop: Backdrop, mobjects) -> list[np.ndarray]:
    """Bounds of the glyphs of ``mobjects`` (what is on screen) that reach into ``backdrop`` without being
    what it marks: none, where it was fitted to the board it is shown on."""
    x0, y0, x1, y1 = backdrop.bounds
    return [g for m in mobjects if m is not backdrop for g in glyph_bounds(m, leave_out=backdrop.marks)
            if g[0] < x1 - 1e-6 and g[2] > x0 + 1e-6 and g[1] < y1 - 1e-6 and g[3] > y0 + 1e-6]
