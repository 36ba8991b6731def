"""Every scene renders to a video through animations.render (what `vdm render` calls), and the CLI's errors.

The renders use low quality with tiny frames (128x72, 3 fps) so that all six
fit the test budget; the frame tests check the pictures at full size.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import imageio_ffmpeg
import pytest

from animations import render as r
from vdm_cli.main import main

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
    # manim-slides' file: one slide per pause of the scene (every step ends with one)
    from built_scenes import get

    slides = json.loads((tmp_path / "slides" / f"{r.SCENES[name][1]}.json").read_text())["slides"]
    assert len(slides) == get(r.scene_class(name)).pauses
    assert all(Path(s["file"]).is_file() for s in slides)
    RENDERED[name] = tmp_path


RENDERED: dict = {}


def _revealjs_or_skip():
    try:
        return r.revealjs_dir()
    except ValueError as e:
        pytest.skip(str(e))


@needs_rendering
def test_slides_export_offline_html_and_pdf(tmp_path):
    """The HTML has one <section> per step and loads reveal.js from the copied npm package, nothing remote."""
    _revealjs_or_skip()
    name = "mhvae"
    out = RENDERED.get(name)
    if out is None:
        out = tmp_path
        r.render(name, "low", out, progress=lambda _: None, overrides=TINY)
    from built_scenes import get

    pauses = get(r.scene_class(name)).pauses
    notes, html, pdf = r.export_slides([name], out, progress=lambda _: None)
    text = html.read_text()
    assert text.count("<section") == pauses
    live = re.sub(r"<!--.*?-->", "", text, flags=re.S)  # the template's commented-out examples are not loaded
    refs = re.findall(r'(?:src|href)="([^"]+)"', live)
    assert refs and not [u for u in refs if u.startswith(("http:", "https:", "//"))], refs
    for u in refs:
        assert (html.parent / u).is_file(), u  # every script, stylesheet and video is there, offline
    assert pdf.read_bytes()[:5] == b"%PDF-" and pdf.read_bytes().count(b"/Type /Page") - pdf.read_bytes().count(
        b"/Type /Pages") == pauses
    # the pages are 1080p stills, not the videos' frames (128x72 here; 854x480 at low quality: unreadable)
    sizes = pdf_image_sizes(pdf)
    assert len(sizes) == pauses and all(w >= 1920 and h >= 1080 for w, h in sizes), sizes
    # the stills are kept and reused: a second export draws nothing again
    lines = []
    r.export_slides([name], out, html=False, progress=lines.append)
    assert not any("drawn again" in line for line in lines) and len(pdf_image_sizes(pdf)) == pauses


def pdf_image_sizes(pdf: Path) -> list[tuple[int, int]]:
    """(width, height) of every image in the PDF, in file order (Pillow writes one per page, dictionaries in clear)."""
    data = pdf.read_bytes()
    return [(int(w), int(h)) for w, h in re.findall(rb"/Subtype /Image.*?/Width (\d+).*?/Height (\d+)", data, re.S)]


def _png(path: Path, size) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size).save(path)


def test_pdf_stills_are_reused_only_when_current(tmp_path):
    """Stills count as the PDF's pages only when 1080p, one per slide and no older than the slides; the PDF has
    one page per still at its full size."""
    cls = r.SCENES["mhvae"][1]
    slides = tmp_path / "slides" / f"{cls}.json"
    slides.parent.mkdir(parents=True)
    slides.write_text(json.dumps({"slides": [{"file": "a.mp4"}, {"file": "b.mp4"}]}))
    stills = [tmp_path / "stills" / cls / f"{i:03d}.png" for i in (1, 2)]
    for p in stills:
        _png(p, (1920, 1080))
    assert r.stills_for("mhvae", tmp_path) == stills
    os.utime(slides, (stills[0].stat().st_mtime + 10,) * 2)  # the scene was rendered again after its stills
    assert r.stills_for("mhvae", tmp_path) == []
    os.utime(slides, (stills[0].stat().st_mtime - 10,) * 2)
    stills[1].unlink()  # a slide short
    assert r.stills_for("mhvae", tmp_path) == []
    _png(stills[1], (1920, 1080))
    _png(stills[0], (854, 480))  # a video-sized frame is no page
    assert r.stills_for("mhvae", tmp_path) == []
    _png(stills[0], (1920, 1080))
    pdf = r.write_pdf(stills, tmp_path / "lecture.pdf")
    assert pdf_image_sizes(pdf) == [(1920, 1080)] * 2


@needs_rendering
def test_slides_of_a_relative_out_folder_export_as_written_in_the_readme(tmp_path, monkeypatch, capsys):
    """`vdm render ... --out videos` then `vdm slides --no-render --out videos`, from the folder holding videos/: the
    slide files named their videos by a relative path that manim-slides joined to the folder again (videos/videos/)."""
    _revealjs_or_skip()
    from vdm_cli.main import main

    monkeypatch.chdir(tmp_path)
    name = "mhvae"
    r.render(name, "low", "videos", progress=lambda _: None, overrides=TINY)
    assert main(["slides", name, "--no-render", "--no-pdf", "--out", "videos"]) == 0, capsys.readouterr().err
    html = tmp_path / "videos" / "lecture.html"
    refs = re.findall(r'data-background-video="([^"]+)"', html.read_text())
    assert refs and all((html.parent / u).is_file() for u in refs), refs
    # every slide carries its presenter notes into the HTML's speaker view and into lecture-notes.md, in order
    notes = [s["notes"] for s in json.loads((tmp_path / "videos" / "slides" / "MarkovianHVAE.json").read_text())["slides"]]
    assert len(notes) == len(refs) and all(notes)
    assert html.read_text().count('<aside class="notes"') == len(notes)
    listed = re.findall(r"^\d+\. (.*)$", (tmp_path / "videos" / "lecture-notes.md").read_text(), re.M)
    assert listed == notes


@needs_rendering
@pytest.mark.skipif(shutil.which("chromium") is None, reason="the screenshot needs Debian's chromium")
def test_html_slides_open_in_headless_chromium(tmp_path):
    """Headless Chromium opens the exported HTML offline and paints its third slide (not a blank page)."""
    _revealjs_or_skip()
    name = "mhvae"
    out = RENDERED.get(name) or tmp_path
    if name not in RENDERED:
        r.render(name, "low", out, progress=lambda _: None, overrides=TINY)
    html = r.export_slides([name], out, pdf=False, progress=lambda _: None)[1]
    shot = tmp_path / "slide.png"
    subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--window-size=854,480",
                    "--virtual-time-budget=4000", f"--screenshot={shot}", html.resolve().as_uri() + "#/2"],
                   check=True, capture_output=True, timeout=120)
    from PIL import Image
    import numpy as np

    px = np.asarray(Image.open(shot).convert("RGB"))
    assert px.shape[:2] == (480, 854) and (px.max(axis=2) > 100).mean() > 0.001  # something bright is drawn


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
    # the repository root on PYTHONPATH and as cwd: the test passes wherever pytest was started
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PATH": str(bindir), "PYTHONPATH": os.pathsep.join(
        [str(root), *filter(None, [os.environ.get("PYTHONPATH")])])}
    out = subprocess.run([str(bindir / "python3"), "-m", "vdm_cli", "render", "posterior", "--out", str(tmp_path / "v")],
                         env=env, cwd=root, capture_output=True, text=True, timeout=120)
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


def test_render_bad_run_is_one_sentence(capsys, tmp_path):
    """--run replaces VDM_CHECKPOINT: a path that is no run or checkpoint is refused before rendering."""
    (tmp_path / "notarun").mkdir()
    assert main(["render", "backward", "--run", str(tmp_path / "notarun"), "--out", str(tmp_path / "v")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("vdm render:") and "Traceback" not in err
    assert not (tmp_path / "v").exists() or not list((tmp_path / "v").glob("*.mp4"))


def test_newest_run_skips_runs_without_a_checkpoint(tmp_path):
    from animations.lecture_data import newest_run

    assert newest_run(tmp_path / "nothing-here") is None
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    assert newest_run(tmp_path) is None  # a broken run is skipped, not an error


def test_present_without_qt_is_one_sentence_before_rendering(monkeypatch, capsys, tmp_path):
    """`vdm slides --present` where manim-slides cannot open a window says so first, without a traceback."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: None if name in r.QT_BINDINGS else real(name, *a, **k))
    assert main(["slides", "mhvae", "--out", str(tmp_path / "v"), "--present"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("vdm slides:") and "Qt bindings" in err and "lecture.html" in err
    assert not (tmp_path / "v").exists()  # refused before anything was rendered


def test_present_without_a_display_is_one_sentence(monkeypatch, capsys, tmp_path):
    import importlib.util
    import sys as _sys

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a, **k: object() if name == "PySide6" else real(name, *a, **k))
    for var in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(_sys, "platform", "linux")
    assert main(["slides", "mhvae", "--out", str(tmp_path / "v"), "--present"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no display" in err and not (tmp_path / "v").exists()


def test_a_still_draws_each_translucent_fill_once(tmp_path):
    """A slide's still shows a fill of opacity 0.2 over black as the video does, 0.2 x 255 = 51 grey; drawn over
    manim's kept background of the last animation it came out twice as opaque (92)."""
    from manim import LEFT, WHITE, FadeIn, Rectangle, Square, tempconfig

    from animations.lecture_scene import LectureScene

    class Tint(LectureScene):
        def construct(self):
            self.play(FadeIn(Square(1).shift(3 * LEFT)))  # on screen, still, while the tint fades in
            self.play(FadeIn(Rectangle(width=4, height=2, stroke_width=0, fill_color=WHITE, fill_opacity=0.2)))
            self.pause(1, "a tint")

    with tempconfig({"dry_run": True, "disable_caching": True, "pixel_width": 160, "pixel_height": 90,
                     "media_dir": str(tmp_path / "media"), "verbosity": "WARNING", "progress_bar": "none"}):
        Tint(skip_animations=True, stills=tmp_path).render()
    from PIL import Image

    with Image.open(tmp_path / "001.png") as im:
        assert im.getpixel((80, 45)) == (51, 51, 51)
