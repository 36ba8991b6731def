"""Scenes built once per test session: the frame tests store theirs, the content tests reuse them.

A scene is built with its animations skipped and without writing a video; the
frame tests (test_animations_frames.py, collected first) put theirs in BUILT, and
get() builds one only when a test runs on its own.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from manim import tempconfig

TEX = Path(tempfile.gettempdir()) / f"vdm-test-tex-{os.getuid()}"
NO_DATA = Path(__file__).parent / "control_data" / "no-data-here"
BUILT: dict = {}


def build(cls, run=None):
    """The scene after construct(), without rendering a video (no trained run unless ``run``, the embedded data)."""
    from animations.lecture_data import use_run

    TEX.mkdir(exist_ok=True)
    use_run(run, search=False)  # never a run that happens to sit in runs/
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VDM_DATA_DIR", str(NO_DATA))
        with tempconfig({"dry_run": True, "disable_caching": True, "tex_dir": str(TEX), "verbosity": "WARNING",
                         "progress_bar": "none"}):
            scene = cls(skip_animations=True)
            scene.render()
    use_run(None, search=False)
    return scene


def build_with_run(cls, run):
    """The scene built with ``run`` as `vdm render --run` would give it (not cached: BUILT is run-less)."""
    return build(cls, run)


EPS = 0.02  # boxes may touch: glyph outlines of neighbouring lines meet at their edges


def layout_problems(scene) -> list[str]:
    """At every pause: text leaving the frame, and pairs of text boxes that overlap (lecture_scene.text_boxes)."""
    import itertools

    from manim import config

    w, h = config.frame_width / 2, config.frame_height / 2
    problems = []
    for i, rects in enumerate(getattr(scene, "box_log", [])):
        problems += [f"step {i} ({scene.layout_log[i][0]}): {p}" for p in box_cuts_text(rects, scene.layout_log[i][1])]
    for i, marks in enumerate(getattr(scene, "mark_log", [])):
        problems += [f"step {i} ({scene.layout_log[i][0]}): {p}" for p in marks]
    for i, (topic, boxes) in enumerate(scene.layout_log):
        for text, (x0, y0, x1, y1) in boxes:
            if x0 < -w - EPS or x1 > w + EPS or y0 < -h - EPS or y1 > h + EPS:
                problems.append(f"step {i} ({topic}): {text[:50]!r} leaves the frame {x0:.2f}..{x1:.2f}, {y0:.2f}..{y1:.2f}")
        for (ta, a), (tb, b) in itertools.combinations(boxes, 2):
            ox = min(a[2], b[2]) - max(a[0], b[0])
            oy = min(a[3], b[3]) - max(a[1], b[1])
            if ox > EPS and oy > EPS:
                problems.append(f"step {i} ({topic}): {ta[:40]!r} overlaps {tb[:40]!r} ({ox:.2f} x {oy:.2f})")
    return problems


def box_cuts_text(rects, boxes) -> list[str]:
    """A highlight box whose frame runs through a text it is not drawn round.

    A text is left alone when it lies inside the box (the box frames it) or holds the box's centre
    (the box frames a part of it, as a derivation's focus does); any other overlap is a cut.
    """
    out = []
    for r in rects:
        cx, cy = (r[0] + r[2]) / 2, (r[1] + r[3]) / 2
        for text, (x0, y0, x1, y1) in boxes:
            inside = x0 >= r[0] - EPS and x1 <= r[2] + EPS and y0 >= r[1] - EPS and y1 <= r[3] + EPS
            holds = x0 <= cx <= x1 and y0 <= cy <= y1
            ox, oy = min(x1, r[2]) - max(x0, r[0]), min(y1, r[3]) - max(y0, r[1])
            if ox > EPS and oy > EPS and not inside and not holds:
                out.append(f"a box {[round(v, 2) for v in r]} cuts {text[:50]!r}")
    return out


def get(cls):
    if cls.__name__ not in BUILT:
        BUILT[cls.__name__] = build(cls)
    return BUILT[cls.__name__]
