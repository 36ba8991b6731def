"""Live numbers show only their current value: no ghost glyphs of the first value during an animation.

The bug this guards against: LiveNumber once replaced its submobjects in set_value, and
Scene.play, which captures the flattened family of the moving mobjects when an animation
starts, kept drawing the first value's glyphs under every new one ("t = 500" over "100").

The check renders real frames (Cairo, small): a number driven by an updater from one
value to another during play(), the last frame of that animation, against

- a static render of the new value (a number made with it, never animated), and
- an independent bound: MathTex of the new digits, typeset by LaTeX at the same place,
  gives the box the ink may occupy; the old value's extra digits would lie outside it.
"""

from __future__ import annotations

import numpy as np
import pytest
from manim import LEFT, MathTex, Scene, ValueTracker, tempconfig

from animations.mobjects.live_number import LiveNumber
from built_scenes import TEX

SMALL = {"pixel_width": 480, "pixel_height": 270, "frame_rate": 10, "dry_run": True,
         "disable_caching": True, "tex_dir": str(TEX), "verbosity": "WARNING", "progress_bar": "none"}
PLACE = LEFT * 2 + 0.5 * np.array([0, 1, 0])


def frame_of(build):
    """The camera's frame after ``build(scene)`` ran inside construct (the last frame it drew)."""
    TEX.mkdir(exist_ok=True)
    out = {}

    class One(Scene):
        def construct(self):
            build(self)
            out["frame"] = self.renderer.get_frame().copy()
            out["camera"] = self.renderer.camera

    with tempconfig(SMALL):
        One().render()
    return out["frame"], out["camera"]


def animated(old, new, fmt):
    def build(scene):
        n = LiveNumber(old, fmt, font_size=48).move_to(PLACE, aligned_edge=LEFT)
        tracker = ValueTracker(old)
        n.add_updater(lambda m: m.set_value(round(tracker.get_value(), 6)))
        scene.add(n)
        # the value jumps at the first frame: every frame of this play() shows `new`, while what
        # play() captured when it started was the number showing `old`
        scene.play(tracker.animate.set_value(new), run_time=0.5, rate_func=lambda _: 1.0)
        n.clear_updaters()
    return build


def static(new, fmt, first=None):
    def build(scene):
        # placed exactly as the animated one: drawn first with the old value's left edge, then set
        n = LiveNumber(first if first is not None else new, fmt, font_size=48).move_to(PLACE, aligned_edge=LEFT)
        n.set_value(new)
        scene.add(n)
        scene.wait(0.1)
    return build


def ink(frame):
    return frame[:, :, :3].max(axis=2) > 40


@pytest.mark.parametrize("old, new, fmt", [(500, 7, "{:.0f}"), (0.4330, 1.0, "{:.3f}"), (-0.25, 0.0043, "{:.4f}")])
def test_frame_after_a_change_shows_only_the_new_digits(old, new, fmt):
    moving, camera = frame_of(animated(old, new, fmt))
    still, _ = frame_of(static(new, fmt, first=old))
    # where the number is drawn, the animated frame is the static frame of the new value
    assert ink(still).any()
    np.testing.assert_array_equal(ink(moving), ink(still))
    # and, independently of LiveNumber, the ink lies inside the box LaTeX gives the new digits
    ref = MathTex(fmt.format(new), font_size=48)
    left = LiveNumber(old, fmt, font_size=48).move_to(PLACE, aligned_edge=LEFT).get_left()[0]
    ref.move_to(PLACE, aligned_edge=LEFT).shift(LEFT * (ref.get_left()[0] - left))
    ys, xs = np.nonzero(ink(moving))
    x_right = camera.points_to_pixel_coords(ref, np.array([ref.get_right()]))[0][0]
    slack = 0.12 * 48 / 48 * camera.pixel_width / camera.frame_width * 2  # the glyph spacing LiveNumber adds
    assert xs.max() <= x_right + slack + 2, (xs.max(), x_right)


def test_slots_are_fixed():
    """set_value keeps the same glyph objects: what play() captured stays what is drawn."""
    n = LiveNumber(500, "{:.0f}")
    before = list(n.submobjects)
    n.set_value(7)
    assert n.submobjects == before and len(n.glyphs) == 1
    n.set_value(-12.5)
    assert n.submobjects[:len(before)] == before and len(n.glyphs) == len("-12")
