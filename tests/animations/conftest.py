"""Fixtures for the Manim scene tests.

manim's frames_comparison skips every Cairo test below Cairo 1.18, and Debian
12 ships 1.16: the threshold is lowered here, since the control frames in
control_data/ were made with this very Cairo. Regenerate them with
``python3 -m pytest tests/animations --set_test`` after a deliberate visual change.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import pytest

HAVE_MANIM = importlib.util.find_spec("manim") is not None
HAVE_LATEX = shutil.which("latex") is not None and shutil.which("dvisvgm") is not None

# Without manim or LaTeX only the tests that need neither (vdm render's error messages) run.
collect_ignore = [] if HAVE_MANIM and HAVE_LATEX else ["test_animations_frames.py", "test_animations_shown.py"]

# the lecture's 2-D model, trained once per machine (cached by its settings): a smaller one than the
# lecture's, so that the scenes without an image run build in seconds
TEST_POINT_SETTINGS = {"data": "gmm", "epochs": 32, "seed": 0, "eval_every": 8, "sample_every": 8, "threads": 1}

if HAVE_MANIM:
    from animations import model2d

    model2d.SETTINGS = TEST_POINT_SETTINGS

if HAVE_MANIM:
    import cairo
    from manim.utils.testing import frames_comparison as _fc

    _fc.MIN_CAIRO_VERSION = min(_fc.MIN_CAIRO_VERSION, cairo.cairo_version())

# One TeX cache for the whole session: every scene compiles its formulas once.
TEX_CACHE = Path(tempfile.gettempdir()) / f"vdm-test-tex-{os.getuid()}"


def pytest_addoption(parser):
    # frames_comparison reads these two; pytest_addoption runs for this conftest also when
    # it is not an initial one, which gives the options their defaults.
    for name, help_ in (("--set_test", "write the control frames of the graphical tests"),
                        ("--show_diff", "show a picture of a failing frame comparison")):
        try:
            parser.addoption(name, action="store_true", default=False, help=help_)
        except ValueError:  # already added by another conftest
            pass


@pytest.fixture(autouse=True)
def _no_checkpoint(monkeypatch):
    """Scenes use no trained run and the embedded data: a run under runs/ or CIFAR-10 would change every frame."""
    if HAVE_MANIM:
        from animations.lecture_data import use_run

        use_run(None, search=False)
    # the embedded shapes, even where a CIFAR-10 copy sits in ./data
    monkeypatch.setenv("VDM_DATA_DIR", str(Path(__file__).parent / "control_data" / "no-data-here"))


@pytest.fixture(scope="session")
def tex_cache():
    """The session's TeX cache folder (the frame tests name it themselves: fixtures would rename them)."""
    TEX_CACHE.mkdir(exist_ok=True)
    return TEX_CACHE
