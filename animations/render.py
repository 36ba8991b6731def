"""Render the lecture's scenes with manim's Python API: `vdm render <scene|all>`.

Videos land in OUT/<Scene>.mp4 (OUT/<Scene>.gif with ``gif``); manim's working
files (TeX, partial movies) in OUT/media/. Needs LaTeX and dvisvgm, checked first.
"""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

# name -> (module, class); the order is the lecture's
SCENES = {
    "opening": ("animations.opening", "Opening"),
    "forward": ("animations.forward_diffusion", "ForwardDiffusion"),
    "mhvae": ("animations.mhvae", "MarkovianHVAE"),
    "elbo-consistency": ("animations.elbo_consistency", "ConsistencyELBO"),
    "elbo-denoising": ("animations.elbo_denoising", "DenoisingELBO"),
    "posterior": ("animations.posterior", "Posterior"),
    "training": ("animations.training", "Training"),
    "backward": ("animations.backward_diffusion", "BackwardDiffusion"),
    "diffusion-2d": ("animations.diffusion_2d", "Diffusion2D"),
    "summary": ("animations.summary", "Summary"),
}
# the headings of OUT/lecture-notes.md, in the same order
TITLES = {
    "opening": "What a diffusion model does",
    "forward": "Forward diffusion and its closed form",
    "mhvae": "A VDM is a Markovian hierarchical VAE",
    "elbo-consistency": "The ELBO with consistency terms",
    "elbo-denoising": "The ELBO with denoising-matching terms",
    "posterior": "The posterior of one step",
    "training": "Training the denoiser",
    "backward": "Sampling: the backward chain",
    "diffusion-2d": "Diffusion in 2-D, to noise and back",
    "summary": "Three results and the loss they lead to",
}
# scenes that draw with the 2-D model (animations.model2d): always, or when no image run is chosen
POINT_SCENES, POINT_SCENES_WITHOUT_IMAGE_RUN = ("opening", "training", "diffusion-2d"), ("backward",)
QUALITIES = {"low": "low_quality", "medium": "medium_quality", "high": "high_quality", "4k": "fourk_quality"}
DEBIAN_PACKAGES = "texlive-latex-base texlive-latex-extra dvisvgm"


def check_latex() -> None:
    """ValueError naming the Debian packages when `latex` or `dvisvgm` is not on PATH."""
    missing = [tool for tool in ("latex", "dvisvgm") if shutil.which(tool) is None]
    if missing:
        raise ValueError(f"the scenes need LaTeX, but {' and '.join(missing)} "
                         f"{'is' if len(missing) == 1 else 'are'} not on PATH; install the Debian packages "
                         f"{DEBIAN_PACKAGES} (apt-get install {DEBIAN_PACKAGES}).")


def scene_names(name: str) -> list[str]:
    """The scene names `name` stands for ("all" for every one); accepts module and class names too."""
    if name == "all":
        return list(SCENES)
    for key, (module, cls) in SCENES.items():
        if name in (key, module.rsplit(".", 1)[1], cls, cls.lower()):
            return [key]
    raise ValueError(f"unknown scene {name!r}; expected all or one of {', '.join(SCENES)}.")


def scene_class(name: str):
    module, cls = SCENES[name]
    return getattr(importlib.import_module(module), cls)


def render(name: str, quality: str = "low", out: str | Path = "videos", gif: bool = False,
           sections: bool = False, progress=print, overrides: dict | None = None,
           run: str | Path | None = None, search_runs: bool = True) -> list[Path]:
    """Render scene `name` (or "all") into `out`; returns the written videos (and GIFs).

    The slides (manim-slides: one video per pause, OUT/slides/<Scene>.json) are written
    alongside. ``run``: the trained run (or checkpoint) the backward and ELBO scenes use;
    without it, with ``search_runs``, the newest run under runs/ with a complete checkpoint.
    ``overrides``: extra manim config (the tests render tiny frames at a low frame rate).
    """
    if quality not in QUALITIES:
        raise ValueError(f"unknown quality {quality!r}; expected one of {', '.join(QUALITIES)}.")
    names = scene_names(name)
    check_latex()
    try:
        import manim  # noqa: F401  (imported here: it takes seconds and only this command needs it)
    except ImportError:
        raise ValueError("manim is not installed; install it with pip install 'vdm[animations]' "
                         "(manim==0.22.*).") from None
    prepare(names, run, search_runs, progress)
    out = Path(out).resolve()  # absolute: the slide files name their videos by this path (a relative one was joined twice)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for i, key in enumerate(names, 1):
        cls = scene_class(key)
        progress(f"[{i}/{len(names)}] {key} ({cls.__name__}) at {quality} quality ...")
        start = time.perf_counter()
        video = render_scene(cls, quality, out, sections, overrides)
        written.append(video)
        if gif:
            written.append(to_gif(video, video.with_suffix(".gif")))
        progress(f"[{i}/{len(names)}] {key}: {time.perf_counter() - start:.1f} s -> {video}")
    return written


def prepare(names: list[str], run=None, search_runs: bool = True, progress=print) -> None:
    """Choose the run the scenes draw (a bad one is one sentence, before anything renders) and train the
    2-D model (cached) when a scene in ``names`` needs it."""
    from animations.lecture_data import lecture_source, use_run

    use_run(run, search=search_runs)
    if any(n in POINT_SCENES or (n in POINT_SCENES_WITHOUT_IMAGE_RUN and lecture_source().denoiser is None)
           for n in names):
        from animations import model2d

        model2d.prepare(progress)  # trains the 2-D model once (cached), saying so, before the first scene


def render_scene(cls, quality: str, out: Path, sections: bool = False, overrides: dict | None = None) -> Path:
    """One scene through manim's API, under a temporary config; returns the .mp4."""
    from manim import tempconfig

    media = out / "media"
    options = {
        "quality": QUALITIES[quality],
        "media_dir": str(media),
        "video_dir": str(out),
        "images_dir": str(media / "images"),
        "partial_movie_dir": str(media / "partial_movie_files" / "{scene_name}"),
        "sections_dir": str(out / "sections" / "{scene_name}"),
        "save_sections": sections,
        "disable_caching": True,
        "max_files_cached": -1,  # the slides are cut from every partial movie: keep them all
        "verbosity": "WARNING",
        # manim's per-animation bars are for a terminal; in a log they are thousands of lines
        "progress_bar": "display" if sys.stderr.isatty() else "none",
        "format": "mp4",
        **(overrides or {}),
    }
    outputs = scene_outputs(cls.__name__, out)
    started = time.time()
    set_aside(outputs)
    try:
        with tempconfig(options):
            scene = cls(output_folder=out / "slides")
            scene.render()
            video = Path(scene.renderer.file_writer.movie_file_path)
    except BaseException as e:
        undo_render(outputs, out, started)
        cause = os_error_in(e)
        if cause is not None and cause.errno is not None:  # a full disk, say: one sentence naming the folder
            raise OSError(cause.errno, cause.strerror or str(cause), str(out)) from None
        raise
    drop_set_aside(outputs)
    return video


# what a render of one scene writes into OUT and a user keeps (the slides play from slides/files/<Scene>)
def scene_outputs(cls_name: str, out: Path) -> list[Path]:
    return [out / f"{cls_name}.mp4", out / "sections" / cls_name, out / "slides" / f"{cls_name}.json",
            out / "slides" / "files" / cls_name]


def _previous(path: Path) -> Path:
    return path.with_name(f".{path.name}.previous")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def set_aside(outputs: list[Path]) -> None:
    """Rename the outputs of an earlier render aside (a rename needs no space) so that a failed render can put
    them back; a copy left by a render that was killed is the finished one and comes back first."""
    for path in outputs:
        previous = _previous(path)
        if previous.exists():
            _remove(path)
            previous.rename(path)
        if path.exists():
            path.rename(previous)


def drop_set_aside(outputs: list[Path]) -> None:
    """After a render that finished: its outputs replace the earlier ones; what it did not write (sections, when not
    asked for this time) comes back."""
    for path in outputs:
        previous = _previous(path)
        if path.exists():
            _remove(previous)
        elif previous.exists():
            previous.rename(path)


def undo_render(outputs: list[Path], out: Path, started: float) -> None:
    """After a failed render: remove what it half-wrote (its video, sections, slides, manim's partial movies and
    the TeX it wrote) and put back what an earlier render had finished."""
    for path in outputs:
        _remove(path)
        if _previous(path).exists():
            _previous(path).rename(path)
    name = outputs[0].stem
    _remove(out / "media" / "partial_movie_files" / name)
    for folder in (out / "media" / "partial_movie_files", out / "sections", out / "slides" / "files",
                   out / "slides"):
        try:
            folder.rmdir()  # only when this render made it and left it empty
        except OSError:
            pass
    tex = out / "media" / "Tex"
    for f in tex.glob("*") if tex.is_dir() else ():
        try:
            if f.is_file() and f.stat().st_mtime >= started:  # maybe cut short; a later render writes it again
                f.unlink()
        except OSError:
            pass


def os_error_in(e: BaseException) -> OSError | None:
    """The OSError an exception was raised from (manim wraps the encoder's "No space left on device"), if any."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, OSError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def to_gif(video: Path, gif: Path, width: int = 480, fps: int = 15) -> Path:
    """The video as a GIF with its own palette (ffmpeg from imageio-ffmpeg); on failure none is left half-written."""
    import errno

    import imageio_ffmpeg

    graph = (f"fps={fps},scale={width}:-1:flags=lanczos,split[a][b];"
             "[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=bayer")
    partial = gif.with_name(f".{gif.name}.partial")
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(video), "-vf", graph,
           "-f", "gif", str(partial)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        partial.unlink(missing_ok=True)
        if "No space left" in done.stderr:
            raise OSError(errno.ENOSPC, "No space left on device", str(gif.parent))
        last = (done.stderr.strip() or "no output").splitlines()[-1]
        raise ValueError(f"ffmpeg could not make {gif} from {video}: {last[:300]}")
    partial.replace(gif)
    return gif


# -- slides: the rendered scenes as a presentation ----------------------------------------------

REVEAL_VERSION = "6.0.1"  # the reveal.js that install.sh puts in .venv/reveal (npm), and manim-slides' default


def revealjs_dir() -> Path:
    """The reveal.js npm package (its dist/ is copied next to the HTML), or one ValueError sentence.

    VDM_REVEALJS names it; else .venv/reveal/node_modules/reveal.js, where install.sh puts it.
    """
    import os

    here = Path(__file__).resolve().parent.parent
    path = Path(os.environ.get("VDM_REVEALJS") or here / ".venv" / "reveal" / "node_modules" / "reveal.js")
    if not (path / "dist" / "reveal.js").is_file():
        raise ValueError(f"the HTML export needs the reveal.js package at {path} (no CDN at show time); install it "
                         f"with bash install.sh, or npm install --prefix .venv/reveal reveal.js@{REVEAL_VERSION}.")
    return path


# the PDF's page size in pixels: 1080p, whatever the videos' quality (a 480p page's tables cannot be read)
STILL_SIZE = (1920, 1080)
PDF_DPI = 144  # 1920 x 1080 pixels on a 13.33 x 7.5 inch page, a 16:9 presentation's size


def render_stills(name: str, out: str | Path, size: tuple[int, int] = STILL_SIZE,
                  overrides: dict | None = None) -> list[Path]:
    """Each slide's last frame of scene ``name`` at ``size`` pixels: OUT/stills/<Scene>/001.png, 002.png, ...

    The scene is built again with its animations skipped and no video written (a frame is drawn only at
    each pause), so 1080p stills cost a fraction of a 1080p render. Call prepare() first.
    """
    from manim import tempconfig

    out = Path(out).resolve()
    folder = out / "stills" / SCENES[name][1]
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()  # a scene with fewer slides than last time leaves none of the old pages behind
    options = {"pixel_width": size[0], "pixel_height": size[1], "dry_run": True, "disable_caching": True,
               "media_dir": str(out / "media"), "verbosity": "WARNING", "progress_bar": "none", **(overrides or {})}
    with tempconfig(options):
        try:
            scene_class(name)(skip_animations=True, stills=folder).render()
        except BaseException as e:
            for page in folder.glob("*.png"):  # a page cut short must not pass for a finished one (stills_for)
                page.unlink(missing_ok=True)
            cause = os_error_in(e)
            if cause is not None and cause.errno is not None:
                raise OSError(cause.errno, cause.strerror or str(cause), str(folder)) from None
            raise
    return sorted(folder.glob("*.png"))


MAX_SLIDES_BYTES = 1 << 24  # a scene's slides file is tens of kB


def read_slides(path: Path) -> list[dict]:
    """The slides of a slides file render() wrote (OUT/slides/<Scene>.json), or a ValueError naming the file: it must
    be a regular file of at most MAX_SLIDES_BYTES holding JSON whose "slides" is a list of objects."""
    from vdm.atomic import read_regular

    data = read_regular(path, MAX_SLIDES_BYTES, "a slides file")
    try:
        slides = json.loads(data)["slides"]
        ok = isinstance(slides, list) and all(isinstance(s, dict) for s in slides)
    except (ValueError, KeyError, TypeError, IndexError, RecursionError) as e:
        ok, why = False, type(e).__name__
    else:
        why = "no list of slides"
    if not ok:
        raise ValueError(f"{path} is not a slides file vdm wrote ({why}); render its scene again (vdm slides).")
    return slides


def stills_for(name: str, out: Path, size: tuple[int, int] = STILL_SIZE) -> list[Path]:
    """The stills of ``name`` in OUT/stills/<Scene>/ when they are at least ``size`` and as many as, and no
    older than, its slides (OUT/slides/<Scene>.json); else []: a scene rendered again needs new ones."""
    from PIL import Image

    cls = SCENES[name][1]
    slides = out / "slides" / f"{cls}.json"
    stills = sorted((out / "stills" / cls).glob("*.png"))
    if not stills or len(stills) != len(read_slides(slides)):
        return []
    if min(p.stat().st_mtime for p in stills) < slides.stat().st_mtime:
        return []
    with Image.open(stills[0]) as im:
        return stills if im.size[0] >= size[0] and im.size[1] >= size[1] else []


def write_pdf(pages: list[Path], target: Path, dpi: float = PDF_DPI) -> Path:
    """One PDF page per image, in order, each page the image's size at ``dpi`` (points = pixels * 72 / dpi).

    Written here, one image at a time, rather than by Pillow, whose multi-page PDF holds every page decoded
    at once (a lecture's 150 1080p frames, about 1 GB) or, appending, copies all earlier pages per page.
    JPEG at quality 92 keeps thin formula strokes sharp at a tenth of the PNG's size. Written whole or not at all
    (whole_file).
    """
    with whole_file(target) as partial:
        _write_pdf(pages, partial, dpi)
    return target


def _write_pdf(pages: list[Path], target: Path, dpi: float) -> None:
    import io

    from PIL import Image

    n = len(pages)
    offsets: list[int] = []
    with open(target, "wb") as f:
        def obj(body: bytes, stream: bytes | None = None) -> None:
            offsets.append(f.tell())
            f.write(b"%d 0 obj\n" % len(offsets) + body)
            if stream is not None:
                f.write(b"\nstream\n" + stream + b"\nendstream")
            f.write(b"\nendobj\n")

        f.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
        obj(b"<< /Type /Catalog /Pages 2 0 R >>")
        # page i (0-based) is objects 3i+3 (image), 3i+4 (drawing), 3i+5 (page)
        kids = b" ".join(b"%d 0 R" % (3 * i + 5) for i in range(n))
        obj(b"<< /Type /Pages /Kids [%s] /Count %d >>" % (kids, n))
        for i, page in enumerate(pages):
            with Image.open(page) as im:
                rgb = im.convert("RGB")
            jpeg = io.BytesIO()
            rgb.save(jpeg, "JPEG", quality=92)
            w, h = rgb.size
            pw, ph = w * 72 / dpi, h * 72 / dpi
            obj(b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
                b"/BitsPerComponent 8 /Filter /DCTDecode /Length %d >>" % (w, h, jpeg.getbuffer().nbytes),
                jpeg.getvalue())
            draw = b"q %.2f 0 0 %.2f 0 0 cm /Im0 Do Q" % (pw, ph)
            obj(b"<< /Length %d >>" % len(draw), draw)
            obj(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %.2f %.2f] /Resources << /XObject << /Im0 %d 0 R >> >> "
                b"/Contents %d 0 R >>" % (pw, ph, 3 * i + 3, 3 * i + 4))
        xref = f.tell()
        f.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(offsets) + 1))
        f.write(b"".join(b"%010d 00000 n \n" % o for o in offsets))
        f.write(b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(offsets) + 1, xref))


class whole_file:
    """``with whole_file(target) as partial:`` write ``partial`` (a hidden name beside ``target``); it replaces
    ``target`` only when complete. On failure the partial file is removed, ``target`` is as it was, and an OSError
    (a full disk) names the folder."""

    def __init__(self, target: Path):
        self.target = Path(target)
        self.partial = self.target.with_name(f".{self.target.name}.partial")

    def __enter__(self) -> Path:
        return self.partial

    def __exit__(self, kind, error, tb):
        if kind is None:
            self.partial.replace(self.target)
            return False
        self.partial.unlink(missing_ok=True)
        if isinstance(error, OSError) and error.errno is not None:
            raise OSError(error.errno, error.strerror or str(error), str(self.target.parent)) from None
        return False


def export_slides(names: list[str], out: str | Path, html: bool = True, pdf: bool = True,
                  progress=print, run: str | Path | None = None, search_runs: bool = True,
                  still_size: tuple[int, int] = STILL_SIZE, still_overrides: dict | None = None) -> list[Path]:
    """OUT/lecture.html (reveal.js from the npm package, copied to OUT/reveal.js: plays offline)
    and OUT/lecture.pdf (each slide's last frame at 1920 x 1080, whatever the videos' size: the stills
    render_stills() writes, rendered here for the scenes that have none current, with ``run``), from
    the slides render() wrote in OUT/slides."""
    out = Path(out).resolve()
    folder = out / "slides"
    classes = [SCENES[n][1] for n in names]
    missing = [c for c in classes if not (folder / f"{c}.json").is_file()]
    if missing:
        raise ValueError(f"no slides for {', '.join(missing)} in {folder}; render them first (vdm slides renders).")
    written = [write_lecture_notes(names, out)]
    progress(f"slides: {written[0]} (presenter notes, slide by slide)")
    base = [sys.executable, "-m", "manim_slides", "convert", "--folder", str(folder)]
    if html:
        reveal = revealjs_dir()
        dest = out / "reveal.js"
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(reveal / "dist", dest / "dist")
        target = out / "lecture.html"
        # cdn_url relative to the HTML: the template loads {cdn_url}/dist/reveal.js and its CSS
        _run([*base, "--to", "html", "-ccdn_url=reveal.js", "-cslide_number=true", "-cprogress=true",
              *classes, str(target)])
        written.append(target)
        progress(f"slides: {target} (reveal.js {REVEAL_VERSION} from {reveal}, offline)")
    if pdf:
        pages, stale = [], [n for n in names if not stills_for(n, out)]
        if stale:
            check_latex()
            prepare(stale, run, search_runs, progress)
        for name in names:
            if name in stale:
                progress(f"slides: the PDF's pages of {name} at {still_size[0]}x{still_size[1]} "
                         f"(drawn again without animation, whatever the videos' quality) ...")
                stills = render_stills(name, out, still_size, still_overrides)
                expected = len(read_slides(folder / f"{SCENES[name][1]}.json"))
                if len(stills) != expected:
                    raise ValueError(f"{name} drew {len(stills)} slides for the PDF but its videos have {expected}; "
                                     f"the run it draws has changed since: render it again (vdm slides {name}).")
            else:
                stills = stills_for(name, out, still_size)
            pages += stills
        target = write_pdf(pages, out / "lecture.pdf")
        written.append(target)
        progress(f"slides: {target} ({len(pages)} pages at {still_size[0]}x{still_size[1]})")
    return written


def write_lecture_notes(names: list[str], out: str | Path) -> Path:
    """OUT/lecture-notes.md: every slide's presenter notes in slide order, numbered as the HTML numbers its
    slides, under one heading per scene; read from the slide files render() wrote (OUT/slides/<Scene>.json)."""
    out = Path(out).resolve()
    lines, k = ["# Lecture notes", "", "What to say over each slide; the numbers are the slides' in lecture.html.", ""], 0
    for name in names:
        slides = read_slides(out / "slides" / f"{SCENES[name][1]}.json")
        lines += [f"## {TITLES[name]}", ""]
        for slide in slides:
            k += 1
            notes = slide.get('notes', '')
            lines += [f"{k}. {notes.strip() if isinstance(notes, str) else ''}", ""]
    target = out / "lecture-notes.md"
    with whole_file(target) as partial:
        partial.write_text("\n".join(lines))
    return target


QT_BINDINGS = ("PySide6", "PyQt6", "PyQt5", "PySide2")  # what manim-slides present can run on (qtpy)


def check_present() -> None:
    """ValueError (one sentence) when `manim-slides present` cannot open its window here:
    no Qt bindings installed, or no display (and no QT_QPA_PLATFORM chosen)."""
    import importlib.util
    import os

    if not any(importlib.util.find_spec(b) for b in QT_BINDINGS):
        raise ValueError("presenting needs Qt bindings, and none of " + ", ".join(QT_BINDINGS) + " is installed; "
                         "install one (pip install pyside6), or open OUT/lecture.html in a browser, which plays offline.")
    if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY") or os.environ.get("QT_QPA_PLATFORM")
            or sys.platform in ("darwin", "win32")):
        raise ValueError("presenting opens a window, and there is no display here (DISPLAY is not set); "
                         "open OUT/lecture.html in a browser instead, or present from a desktop session.")


def _run(cmd: list[str]) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise ValueError(f"manim-slides convert failed: {last[:300]}")
