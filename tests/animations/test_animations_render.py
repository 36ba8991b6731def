"""Every scene renders to a video through animations.render (what `vdm render` calls), and the CLI's errors.

The renders use low quality with tiny frames (128x72, 3 fps) so that all six
fit the test budget; the frame tests check the pictures at full size.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import imageio_ffmpeg
import pytest

from animations import render as r
from vdm.cli import main

TINY = {"pixel_width": 128, "pixel_height": 72, "frame_rate": 3,
        "tex_dir": str(Path(tempfile.gettempdir()) / f"vdm-test-tex-{os.getuid()}")}


def _frames(video: Path) -> int:
    return imageio_ffmpeg.count_frames_and_secs(str(video))[0]


needs_rendering = pytest.mark.skipif(
    shutil.which("latex") is None or shutil.which("dvisvgm") is None or importlib.util.find_spec("manim") is None,
    reason="rendering needs manim and LaTeX")


@needs_rendering
@pytest.mark.parametrize("name", list(r.SCENES))
def test_scene_renders_at_low_quality(name, tmp_path):
    lines = []
    written = r.render(name, "low", tmp_path, sections=True, progress=lines.append, overrides=TINY)
    video = written[0]
    assert video == tmp_path / f"{r.SCENES[name][1]}.mp4" and video.stat().st_size > 1000
    # several seconds of animation at 3 fps, not an empty or one-frame file
    assert _frames(video) >= 30
    # one video per section (at least three per scene), so the lecture can be stepped through
    sections = sorted((tmp_path / "sections" / r.SCENES[name][1]).glob("*.mp4"))
    assert len(sections) >= 3
    assert lines[0].startswith("[1/1]") and lines[-1].endswith(str(video))


def test_gif(tmp_path):
    video = tmp_path / "in.mp4"
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
           "testsrc=size=64x36:rate=5:duration=1", "-pix_fmt", "yuv420p", str(video)]
    subprocess.run(cmd, check=True)
    gif = r.to_gif(video, tmp_path / "out.gif", width=32)
    assert gif.read_bytes()[:6] == b"GIF89a"


def test_missing_latex_is_one_sentence(monkeypatch, capsys, tmp_path):
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "latex" else real(name, *a, **k))
    assert main(["render", "all", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("vdm render:")
    assert "latex" in err and "texlive-latex-base texlive-latex-extra dvisvgm" in err
    assert not list(tmp_path.iterdir())  # nothing rendered


def test_missing_latex_on_path(tmp_path):
    # the real situation: a PATH with python but without latex or dvisvgm
    import sys

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "python3").symlink_to(sys.executable)
    env = {**os.environ, "PATH": str(bindir)}
    out = subprocess.run([str(bindir / "python3"), "-m", "vdm.cli", "render", "posterior", "--out", str(tmp_path / "v")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "latex and dvisvgm are not on PATH" in out.stderr and "Traceback" not in out.stderr


def test_unknown_scene_and_quality(capsys, tmp_path):
    assert main(["render", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown scene 'nope'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown quality"):
        r.render("posterior", "8k", tmp_path)


def test_scene_names():
    assert r.scene_names("all") == list(r.SCENES)
    assert r.scene_names("posterior") == r.scene_names("Posterior") == ["posterior"]
    assert r.scene_names("forward_diffusion") == ["forward"]
