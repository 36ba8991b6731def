"""Render the lecture's scenes with manim's Python API: `vdm render <scene|all>`.

Videos land in OUT/<Scene>.mp4 (OUT/<Scene>.gif with ``gif``); manim's working
files (TeX, partial movies) in OUT/media/. Needs LaTeX and dvisvgm, checked first.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import time
from pathlib import Path

# name -> (module, class); the order is the lecture's
SCENES = {
    "forward": ("animations.forward_diffusion", "ForwardDiffusion"),
    "mhvae": ("animations.mhvae", "MarkovianHVAE"),
    "elbo-consistency": ("animations.elbo_consistency", "ConsistencyELBO"),
    "elbo-denoising": ("animations.elbo_denoising", "DenoisingELBO"),
    "posterior": ("animations.posterior", "Posterior"),
    "backward": ("animations.backward_diffusion", "BackwardDiffusion"),
}
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
           sections: bool = False, progress=print, overrides: dict | None = None) -> list[Path]:
    """Render scene `name` (or "all") into `out`; returns the written videos (and GIFs).

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
    out = Path(out)
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
        "verbosity": "WARNING",
        # manim's per-animation bars are for a terminal; in a log they are thousands of lines
        "progress_bar": "display" if sys.stderr.isatty() else "none",
        "format": "mp4",
        **(overrides or {}),
    }
    with tempconfig(options):
        scene = cls()
        scene.render()
        return Path(scene.renderer.file_writer.movie_file_path)


def to_gif(video: Path, gif: Path, width: int = 480, fps: int = 15) -> Path:
    """The video as a GIF with its own palette (ffmpeg from imageio-ffmpeg)."""
    import imageio_ffmpeg

    graph = (f"fps={fps},scale={width}:-1:flags=lanczos,split[a][b];"
             "[a]palettegen=stats_mode=diff[p];[b][p]paletteuse=dither=bayer")
    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "error", "-y", "-i", str(video), "-vf", graph, str(gif)]
    subprocess.run(cmd, check=True)
    return gif
