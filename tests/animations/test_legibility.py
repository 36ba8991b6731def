"""Legibility, checked on the built scenes: in the mhvae scene's chain graph each node's label lies inside its
circle, clear of the stroke, and no arrow (its arc or its head) runs over the dots that stand for the latents in
between; the elbo-consistency caption on the consistency term is two whole lines."""

from __future__ import annotations

import numpy as np
from manim import Circle

from built_scenes import get


def _graph():
    from animations.mhvae import NODE_T, MarkovianHVAE

    scene = get(MarkovianHVAE)
    nodes, enc, dec = scene.graph[0], scene.graph[1], scene.graph[2]
    return NODE_T, nodes, [*enc, *dec]


def test_every_label_inside_its_circle():
    names, nodes, _ = _graph()
    for name, node in zip(names, nodes):
        if name is None:
            continue
        circle, label = node[0], node[1]
        centre, r = circle.get_center(), circle.width / 2
        x0, y0 = label.get_corner(np.array([-1, -1, 0]))[:2]
        x1, y1 = label.get_corner(np.array([1, 1, 0]))[:2]
        far = max(np.hypot(x - centre[0], y - centre[1]) for x in (x0, x1) for y in (y0, y1))
        assert far < r - 0.1, f"x_{name}'s label reaches {far:.3f} from the centre of a circle of radius {r:.3f}"


def test_no_arrow_over_the_dots():
    names, nodes, arrows = _graph()
    for name, node in zip(names, nodes):
        if name is not None:
            continue
        glyph = node[1] if isinstance(node[0], Circle) else node
        lo = glyph.get_corner(np.array([-1, -1, 0])) - 0.05
        hi = glyph.get_corner(np.array([1, 1, 0])) + 0.05
        for arrow in arrows:
            pts = np.concatenate([arrow.points, *[tip.points for tip in arrow.get_tips()]])
            inside = np.all((pts[:, :2] >= lo[:2]) & (pts[:, :2] <= hi[:2]), axis=1)
            assert not inside.any(), "an arrow runs over the dots between the nodes"


def test_consistency_caption_is_two_whole_lines():
    """The caption on why the consistency term is not a KL: two sentences, neither broken across lines (a line
    of this size is under 0.5 units tall; a broken one is twice that)."""
    from animations.elbo_consistency import ConsistencyELBO

    why = get(ConsistencyELBO).why
    assert len(why) == 2
    assert all(line.height < 0.5 for line in why), [round(line.height, 2) for line in why]
    assert "log-ratio can be negative" in why[0].tex_string
