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


def build(cls):
    """The scene after construct(), without rendering a video (no trained run, the embedded data)."""
    from animations import common

    TEX.mkdir(exist_ok=True)
    common.use_run(None, search=False)  # never a run that happens to sit in runs/
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VDM_DATA_DIR", str(NO_DATA))
        with tempconfig({"dry_run": True, "disable_caching": True, "tex_dir": str(TEX), "verbosity": "WARNING",
                         "progress_bar": "none"}):
            scene = cls(skip_animations=True)
            scene.render()
    return scene


def get(cls):
    if cls.__name__ not in BUILT:
        BUILT[cls.__name__] = build(cls)
    return BUILT[cls.__name__]
