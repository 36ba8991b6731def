"""Legibility, checked on the built scenes: in both chain graphs (the mhvae scene's, the ELBO scenes') each
node's label lies inside its circle, clear of the stroke, and no arrow (its arc or its head) runs over the dots that stand for the latents in
between; the elbo-consistency caption on the consistency term is two whole lines; the density plots' y axes
(forward, posterior) stand at the left edge of the plotted range, so no curve passes over their numbers and none
needs a patch behind it; a derivation line that comes
out of the previous one moves only whole matching parts; a training example's coefficients precede their images;
a derivation's marked part is tinted with margins that stop short of its neighbours."""

from __future__ import annotations

import numpy as np
import pytest
from manim import Circle

from built_scenes import get


def _graph():
    from animations.mhvae import NODE_T, MarkovianHVAE

    scene = get(MarkovianHVAE)
    nodes, enc, dec = scene.graph[0], scene.graph[1], scene.graph[2]
    return NODE_T, nodes, [*enc, *dec]


def _elbo_graph():
    """The chain graph the ELBO scenes light their terms on (mobjects.chain_graph)."""
    from animations.mobjects.chain_graph import NODES, ChainGraph

    return NODES, ChainGraph().nodes, None


@pytest.mark.parametrize("graph", [_graph, _elbo_graph], ids=["mhvae", "elbo scenes"])
def test_every_label_inside_its_circle(graph):
    names, nodes, _ = graph()
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
    # the ELBO's term E[log p / q] is minus a KL where it is one, never positive: what breaks the reading is that
    # it can be positive (a caption said "can be negative", which a -KL is too)
    assert "log-ratio can be positive" in why[0].tex_string


def test_tick_numbers_stay_clear_of_a_curve():
    """A thick curve drawn across the whole plotted x range at the height of the y axis's number "1" passes beside
    it, not over it (the y axis stands at the range's left edge, not at x = 0): the number's pixels hold none of the
    curve's red, and the curve's own pixels are whole (no patch cuts a gap into them). The data's coordinates are
    those of plain Axes, and the x axis numbers its 0, which the y axis no longer marks."""
    from manim import RED, Axes, Camera

    from animations.mobjects.plots import EdgeAxes, polyline

    kw = dict(x_range=[-1.6, 1.6, 0.4], y_range=[0, 4.5, 1], x_length=8.6, y_length=3.8, tips=False,
              axis_config={"include_numbers": True, "font_size": 20})
    axes, plain = EdgeAxes(**kw), Axes(**kw)
    for xy in [(-1.6, 0), (0, 0), (1.6, 4.5), (0.4, 1.0)]:
        assert np.allclose(axes.c2p(*xy), plain.c2p(*xy))
    assert np.isclose(axes.y_axis.get_start()[0], axes.c2p(-1.6, 0)[0])
    assert any(np.isclose(float(n.get_value()), 0) for n in axes.x_axis.numbers)
    one = axes.y_axis.numbers[0]
    assert one.get_right()[0] < axes.c2p(-1.6, 0)[0]
    y = axes.p2c(one.get_center())[1]
    xs = np.linspace(-1.6, 1.6, 400)
    curve = polyline(axes, xs, np.full_like(xs, y), RED, 12)  # straight across, at the number "1"
    camera = Camera(pixel_width=1920, pixel_height=1080)
    camera.capture_mobjects([axes, curve])
    frame = np.asarray(camera.get_image().convert("RGB")).astype(int)
    h, w = frame.shape[:2]
    fw, fh = camera.frame_width, camera.frame_height

    def px(point):
        return int((point[0] + fw / 2) / fw * w), int((fh / 2 - point[1]) / fh * h)

    (x0, y0), (x1, y1) = px(one.get_corner(np.array([-1, 1, 0]))), px(one.get_corner(np.array([1, -1, 0])))
    pixels = frame[y0 + 1:y1 - 1, x0 + 1:x1 - 1].reshape(-1, 3)
    reddish = (pixels[:, 0] > 150) & (pixels[:, 1] < 110)
    assert not reddish.any(), f"{reddish.sum()} pixels of the curve over the tick number"
    assert (pixels.min(1) > 200).any(), "the tick number is not drawn"
    (cx0, cy), (cx1, _) = px(axes.c2p(-1.5, y)), px(axes.c2p(1.5, y))
    row = frame[cy, cx0:cx1]
    assert ((row[:, 0] > 150) & (row[:, 1] < 110)).all(), "a gap in the curve"


@pytest.mark.parametrize("scene_name, attrs", [("forward", ["pixel_axes"]), ("posterior", ["product_axes", "axes"])])
def test_density_y_axes_stand_left_of_the_data(scene_name, attrs):
    from animations import render as r

    scene = get(r.scene_class(scene_name))
    for attr in attrs:
        axes = getattr(scene, attr)
        left = axes.c2p(axes.x_range[0], 0)[0]
        assert np.isclose(axes.y_axis.get_start()[0], left), attr
        numbers = axes.y_axis.numbers
        assert len(numbers) and all(n.get_right()[0] < left for n in numbers), attr
        assert not any(hasattr(n, "background_rectangle") for n in numbers), attr


def test_derivation_morphs_move_only_whole_matching_parts():
    """A derivation line that comes out of the previous one (mhvae's likelihood, forward's closed form) moves only
    parts that are the same TeX in both lines, each to one place; the rest fades out or in where it stands. (The
    TransformMatchingTex it replaces merged repeated parts and flew the others over the new ones: "log p(log)".)"""
    from animations.lecture_scene import morph_plan
    from animations.mhvae import MarkovianHVAE

    lines = get(MarkovianHVAE).likelihood
    for old, new in zip(lines[:-1], lines[1:]):
        pairs, gone, fresh = morph_plan(old, new)
        assert all(p.tex_string == q.tex_string for p, q in pairs)
        assert sorted(map(id, [p for p, _ in pairs] + gone)) == sorted(map(id, old.submobjects))
        assert sorted(map(id, [q for _, q in pairs] + fresh)) == sorted(map(id, new.submobjects))
        assert len({id(q) for _, q in pairs}) == len(pairs)  # no two parts merge into one


def test_training_coefficients_precede_their_images():
    """One training example reads left to right: 0.751 · x_0 + 0.661 · eps = x_t, each coefficient just left of the
    image it multiplies, with the scene's own schedule's values."""
    from animations.training import Training

    scene = get(Training)
    for row, (t, a, b, *_rest) in zip(scene.rows, scene.example_texts):
        x0_img, eps_img, xt_img = row.imgs[:3]
        coef_a, coef_b, eq = row[0], row[2], row[4]
        assert f"{a:.3f}" in coef_a.tex_string and f"{b:.3f}" in coef_b.tex_string and "=" in eq.tex_string
        assert coef_a.get_right()[0] < x0_img.get_left()[0] < x0_img.get_right()[0] < coef_b.get_left()[0]
        assert coef_b.get_right()[0] < eps_img.get_left()[0] < eps_img.get_right()[0] < eq.get_left()[0]
        assert eq.get_right()[0] < xt_img.get_left()[0]
        assert a == pytest.approx(float(scene.schedule.signal_coef()[t]))


def test_a_backdrop_keeps_off_its_neighbours():
    """The margins round a marked part: the full pad where nothing is near; half the gap where a neighbour is
    nearer than the pad (beside, above, or off a corner, where the farther axis gives way); a neighbour that
    already overlaps the part leaves the margins alone."""
    from animations.mobjects.highlight import fitted_margins

    part = np.array([0.0, 0.0, 1.0, 0.5])
    assert np.allclose(fitted_margins(part, [np.array([3.0, 0, 4, 0.5])], 0.1), [0.1, 0.1, 0.1, 0.1])
    plus = np.array([-0.3, 0.1, -0.04, 0.4])  # 0.04 to the left: the left margin is 0.02
    assert np.allclose(fitted_margins(part, [plus], 0.1), [0.02, 0.1, 0.1, 0.1])
    below = np.array([0.2, -0.5, 0.8, -0.06])
    assert np.allclose(fitted_margins(part, [plus, below], 0.1), [0.02, 0.03, 0.1, 0.1])
    corner = np.array([1.05, 0.58, 1.5, 1.0])  # 0.05 right, 0.08 up: the top gives way to 0.04
    assert np.allclose(fitted_margins(part, [corner], 0.1), [0.1, 0.1, 0.1, 0.04])
    inside = np.array([0.9, 0.1, 1.2, 0.3])  # kerned into the part
    assert np.allclose(fitted_margins(part, [inside], 0.1), [0.1, 0.1, 0.1, 0.1])
