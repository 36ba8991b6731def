"""What every scene shares: one colour per quantity, sharp 32x32 images, and the vdm numbers.

Colours are fixed across the lecture, so x_0 is always blue, x_t orange, alpha
yellow, and each ELBO term has its own colour in every formula and plot.
Scenes do no math: the schedule, chains, posterior and ELBO terms come from
``vdm`` through the functions below (cached, so a scene computes them once).

The trained model (backward and ELBO scenes) is chosen with use_run (what
`vdm render --run RUN` calls): that run, else the newest run under runs/ with a
complete checkpoint, else none, and the scenes say which on screen.

Environment:
    VDM_DATA_DIR    where CIFAR-10 lives (cifar-10-batches-py); its test images
                    replace the embedded shapes when present.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from manim import (DOWN, LEFT, RIGHT, UP, WHITE, Axes, Create, FadeIn, FadeOut, ImageMobject, MathTex, Rectangle,
                   Succession, SurroundingRectangle, Tex, TransformMatchingTex, VGroup, VMobject, config)
from manim.mobject.svg.svg_mobject import VMobjectFromSVGPath
from manim.mobject.types.image_mobject import RESAMPLING_ALGORITHMS
from manim.utils.images import change_to_rgba_array

from vdm import data as vdm_data
from vdm import DEFAULT_T
from vdm.elbo import elbo
from vdm.images import as_hwc
from vdm.schedule import Schedule

# -- colours: one per quantity, the same in every scene ---------------------------------
# Chosen for a projector: every one has a contrast ratio of at least 4.5 against the
# black background (WCAG 2), and any two differ by at least 20 in CIELAB (Delta E 1976),
# both checked numerically by tests/animations/test_layout_colours.py. Boxes and
# highlights are white, so that no colour means two things.

BACKGROUND = "#000000"
X0 = "#58C4DD"              # sky blue
XT = "#FF862F"              # orange
XHAT = "#2FD9A0"            # mint
ALPHA = "#FFE14D"           # yellow
EPS = "#BBBBBB"             # grey
POSTERIOR = "#FF9E9E"       # salmon: q(x_{t-1} | x_t, x_0)
RECONSTRUCTION = "#A8E05F"  # lime
PRIOR = "#FF5C5C"           # red
CONSISTENCY = "#B79CFF"     # lavender (PURPLE_B was too dark on a projector)
DENOISING = "#FF6EC7"       # pink
SCHEDULE = "#A0C0FF"        # periwinkle: a run's own noise schedule (log SNR), beside alpha's yellow
BOX = WHITE
TERM_COLORS = {"reconstruction": RECONSTRUCTION, "prior": PRIOR,
               "consistency": CONSISTENCY, "denoising": DENOISING}
PALETTE = {"x_0": X0, "x_t": XT, "x̂_0": XHAT, "alpha": ALPHA, "eps": EPS, "posterior": POSTERIOR,
           **TERM_COLORS, "run schedule": SCHEDULE, "text": WHITE}
# the reconstruction term, written the same in both ELBO forms (the other terms differ)
RECON_TEX = r"\mathbb{E}_{q(x_1 \mid x_0)}\left[\log p_\theta(x_0 \mid x_1)\right]"

# Substrings MathTex isolates and colours. Write \bar{\alpha}_t with braces (never
# \bar\alpha_t): an isolated substring must not be the bare argument of a macro.
_LATENTS = ("x_t", "x_{t-1}", "x_{t+1}", "x_{t-2}", "x_T", "x_{T-1}", "x_1", "x_2", "x_3", "x_{1:T}", "x_{0:T}")
_ALPHAS = (r"\alpha", r"\alpha_t", r"\alpha_{t-1}", r"\alpha_1", r"\alpha_T",
           r"\bar{\alpha}_t", r"\bar{\alpha}_{t-1}", r"\bar{\alpha}_{t-2}", r"\bar{\alpha}_T")
QUANTITY_COLORS = {"x_0": X0, r"\hat{x}_0": XHAT, r"\epsilon": EPS,
                   **{k: XT for k in _LATENTS}, **{k: ALPHA for k in _ALPHAS}}

# manim's cache hashes every play() call, which here costs more than rendering the
# frames (about half of a scene's time); these scenes are short, so render afresh.
config.disable_caching = True


def _drop_svg_path(init):
    """Forget the parsed SVG path once a glyph has its points.

    Every glyph of every TeX keeps its svgelements Path, and each copy() (every
    FadeIn, Transform and cache hit) deep-copies it: ~10 ms per glyph, most of a
    scene's render time. Nothing reads it after the points exist.
    """
    def wrapped(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.path_obj = None
    return wrapped


if not getattr(VMobjectFromSVGPath.__init__, "_vdm_light", False):
    VMobjectFromSVGPath.__init__ = _drop_svg_path(VMobjectFromSVGPath.__init__)
    VMobjectFromSVGPath.__init__._vdm_light = True

# Scenes compute on tiny tensors; more threads only fight manim for the two cores.
torch.set_num_threads(1)



def tex(*parts: str, terms: dict | None = None, **kwargs) -> MathTex:
    """MathTex with every quantity in its colour; ``terms`` maps whole parts to a term colour.

    A part coloured as a term wins over the quantities inside it, so a whole
    reconstruction term reads green.
    """
    m = MathTex(*parts, tex_to_color_map=QUANTITY_COLORS, **kwargs)
    for part in m:
        colour = (terms or {}).get(getattr(part, "tex_string", None))
        if colour is not None:
            part.set_color(colour)
    return m


# -- the lecture's scene: a slide at every step ----------------------------------------------

try:
    from manim_slides import Slide as _SlideBase
except ImportError:  # manim-slides is in the animations extra; without it the scenes still render as videos
    from manim import Scene as _SlideBase


def hold_time(lines: int = 1) -> float:
    """How long a result stays fully on screen before anything changes: 2 s plus 1 s per line."""
    return 2.0 + 1.0 * lines


class LectureScene(_SlideBase):
    """A manim-slides Slide whose every derivation step ends with ``pause``.

    ``pause(lines)`` holds the frame for hold_time(lines) (the video's reading time) and
    then ends the slide, so `vdm slides` stops there until the lecturer goes on. Every
    slide ends with a pause, so the number of slides is ``self.pauses`` exactly.
    ``next_section`` also names the video section (`vdm render --sections`).
    """

    def __init__(self, *args, output_folder=None, **kwargs):
        if _SlideBase.__name__ == "Slide":
            from manim_slides.slide.base import BaseSlide

            # BaseSlide's, not manim_slides.Slide's __init__: that one sets config["write_to_movie"],
            # which manim 0.22 no longer has (its movie is written unless dry_run)
            BaseSlide.__init__(self, *args, output_folder=Path(output_folder or Path(config.media_dir) / "slides"),
                               **kwargs)
        else:
            super().__init__(*args, **kwargs)
        self.pauses = 0
        self.slide_names: list[str] = []
        self.layout_log: list = []  # (section, text_boxes) at every pause: what the layout tests check
        self.box_log: list = []  # highlight_boxes at every pause, beside layout_log
        self._topic = "start"

    def next_section(self, name: str = "unnamed", **kwargs):
        self._topic = name
        from manim import Scene

        Scene.next_section(self, name, **kwargs)

    def pause(self, lines: int = 1, notes: str = "", hold: float | None = None):
        """Hold the result (2 s + 1 s per line unless ``hold``), then end this step's slide."""
        self.wait(hold_time(lines) if hold is None else hold)
        self.layout_log.append((self._topic, text_boxes(self)))
        self.box_log.append(highlight_boxes(self))
        self.pauses += 1
        self.slide_names.append(self._topic)
        if _SlideBase.__name__ == "Slide":
            from manim_slides.slide.base import BaseSlide

            BaseSlide.next_slide.__wrapped__(self, base_slide_config=type(self._base_slide_config)(notes=notes))

    def render(self, *args, **kwargs):
        """Scene.render, then (with a movie) manim-slides' slide files: one video per pause.

        Not Slide.render, which sets config["max_files_cached"] to infinity (manim 0.22
        refuses it); render.py sets -1 (unlimited) instead, so no partial movie is
        flushed before the slides are cut from them. Reversed videos are skipped: the
        HTML export does not play backwards.
        """
        from manim import Scene

        Scene.render(self, *args, **kwargs)
        if _SlideBase.__name__ == "Slide" and not (config.dry_run or self.renderer.skip_animations):
            self._save_slides(use_cache=False, flush_cache=False, skip_reversing=True)


def _collect(scene, pick) -> list:
    """pick(m) for the outermost mobjects on screen it accepts: each is visited top down, and where pick
    returns a list (possibly empty) that is taken and its submobjects are not visited; None descends."""
    out = []

    def visit(m):
        got = pick(m)
        if got is not None:
            out.extend(got)
            return
        for sub in m.submobjects:
            visit(sub)

    for m in scene.mobjects:
        visit(m)
    return out


def _bounds(points) -> list:
    return [float(points[:, 0].min()), float(points[:, 1].min()), float(points[:, 0].max()), float(points[:, 1].max())]


def text_boxes(scene) -> list:
    """(text, [x0, y0, x1, y1]) of every outermost piece of text on screen (TeX, live numbers),
    leaving out axis numbers, which belong to their axes."""
    from manim import Axes, SingleStringMathTex

    def pick(m):
        if isinstance(m, Axes):
            return []
        if isinstance(m, (SingleStringMathTex, LiveNumber)) or hasattr(m, "tex_string"):
            pts = [p.points for p in m.family_members_with_points() if p.get_fill_opacity() > 0.05]
            if not pts:
                return []
            name = m.fmt.format(m.value) if isinstance(m, LiveNumber) else getattr(m, "tex_string", "?")
            return [(name, _bounds(np.concatenate(pts)))]
        return None

    return _collect(scene, pick)


def highlight_boxes(scene) -> list:
    """[x0, y0, x1, y1] of every SurroundingRectangle on screen (the white boxes round a term or a result)."""
    return _collect(scene, lambda m: [_bounds(m.points)] if isinstance(m, SurroundingRectangle) and m.has_points()
                    else None)


def derivation(rows, font_size: float = 30, buff: float = 0.3, terms: dict | None = None) -> VGroup:
    """Lines of a derivation, one MathTex each, aligned on their relation sign.

    ``rows``: (lhs, relation, rhs) with lhs None on continuation lines; rhs is a string
    or a tuple of strings, its parts (each a MathTex part, so that one can be
    highlighted: ``part(line, tex)``). Each line's ``.rel`` is its relation's glyphs;
    the lines are shifted so that every relation starts at the same x, as on a board.
    """
    lines = VGroup()
    for lhs, rel, rhs in rows:
        rhs_parts = (rhs,) if isinstance(rhs, str) or rhs is None else tuple(rhs)
        parts = [p for p in (lhs, rel, *rhs_parts) if p]
        m = tex(*parts, terms=terms, font_size=font_size)
        skip = 0
        if lhs:  # the relation is the first part after the lhs's own pieces
            skip = next(i for i, p in enumerate(m) if getattr(p, "tex_string", None) == rel and i > 0)
        m.rel = m[skip] if getattr(m[skip], "tex_string", None) == rel else next(
            p for p in m if getattr(p, "tex_string", None) == rel)
        lines.add(m)
    lines.arrange(DOWN, buff=buff, aligned_edge=LEFT)
    x = max(m.rel.get_left()[0] for m in lines)
    for m in lines:
        m.shift(RIGHT * (x - m.rel.get_left()[0]))
    return lines


def part(line: MathTex, tex_string: str):
    """The part of a derivation line written as ``tex_string`` (a whole rhs part, lhs or relation)."""
    for p in line.submobjects:
        if getattr(p, "tex_string", None) == tex_string:
            return p
    raise KeyError(f"no part {tex_string[:60]!r} in this line")


MAX_WIDTH = 13.4  # of the 14.2-unit frame: what a derivation may span


def play_derivation(scene, rows, notes, *, below, font_size: float = 28, buff: float = 0.35,
                    transform: bool = False, focus=None, terms: dict | None = None, caption_size: float = 26):
    """Write a derivation on the board line by line, a slide per line; returns the lines.

    Each new line comes in (TransformMatchingTex from the previous one with
    ``transform``, else a fade from above) with its caption ``notes[i]`` at the bottom;
    ``focus[i]`` (a part of line i, see ``derivation``; or None) is then boxed while its
    caption talks about it. Every line stays on screen hold_time(lines shown) seconds:
    2 s plus 1 s per line on the board.
    """
    lines = derivation(rows, font_size=font_size, buff=buff, terms=terms)
    if lines.width > MAX_WIDTH:  # shrink first, then place: scaling moves the top edge
        lines.scale_to_fit_width(MAX_WIDTH)
    lines.next_to(below, DOWN, buff=0.4).set_x(0)
    caps = [one_line(n, size=caption_size).to_edge(DOWN, buff=0.4) for n in notes]
    focus = list(focus or [None] * len(lines))
    box = None
    for i, line in enumerate(lines):
        # the old caption leaves before the new one comes (a cross-fade of two sentences in one place is unreadable)
        cap = Succession(FadeOut(caps[i - 1]), FadeIn(caps[i])) if i else FadeIn(caps[i])
        out = []
        if box is not None:
            out.append(FadeOut(box))
        if transform and i:
            come = TransformMatchingTex(lines[i - 1].copy(), line)
        else:
            come = FadeIn(line, shift=DOWN * 0.2)
        scene.play(come, *out, cap, run_time=1.2 if i else 1.0)
        box = None
        if focus[i] is not None:
            box = SurroundingRectangle(part(line, focus[i]), buff=0.06, color=BOX, stroke_width=2.5)
            scene.play(Create(box), run_time=0.6)
        scene.pause(i + 1)
    return lines


def cut(scene, *keep) -> None:
    """End a section with a hard cut: everything leaves the screen but ``keep``.

    (scene.remove(group) would leave behind the parts that were animated in one by one.)
    """
    scene.clear()
    scene.add(*keep)


def label(text: str, color=WHITE, size: float = 28) -> Tex:
    return Tex(text, color=color, font_size=size)


def one_line(text: str, color=WHITE, size: float = 26, width: float | None = None) -> Tex:
    """A label LaTeX never breaks (an mbox), shrunk to ``width`` (MAX_WIDTH) only if it is wider."""
    m = Tex(r"\mbox{" + text + "}", color=color, font_size=size)
    width = MAX_WIDTH if width is None else width
    if m.width > width:
        m.scale_to_fit_width(width)
    return m


def sci(x: float, digits: int = 2) -> str:
    """x in LaTeX: 13.6, or 9.3 \\times 10^{-7} when it needs an exponent (never Python's 9.3e-07)."""
    text = f"{x:.{digits}g}"
    if "e" not in text:
        return text
    mant, exp = text.split("e")
    return rf"{mant} \times 10^{{{int(exp)}}}"


def labels(*texts: str, colors=None, size: float = 28, math: bool = False) -> list:
    """Several labels from one LaTeX run (one Tex, one part each), to be placed one by one.

    Each LaTeX call costs about half a second, so a strip of six labels made
    this way renders as fast as one.
    """
    # one line per part: in one paragraph LaTeX would break a part across lines at the text width
    parts = list((MathTex if math else Tex)(*texts, arg_separator=r"\\ ", font_size=size))
    for i, part in enumerate(parts):
        part.set_color((colors or [WHITE] * len(parts))[i])
    return parts


class LiveNumber(VGroup):
    """A number redrawn every frame from pre-rendered TeX glyphs, into a fixed set of glyph slots.

    manim's DecimalNumber deep-copies a TeX mobject per character on every
    set_value (about 0.1 s on this machine); this copies only the glyph outlines.

    The slots never change: set_value rewrites their points in place and empties
    the slots it does not need. Replacing the submobjects instead (as this class
    once did) leaves ghost digits: Scene.play captures the flattened family of
    every moving mobject when the animation starts and draws that list on every
    frame, so the first value's glyphs stay on screen under each new value's.
    """

    _glyphs: dict = {}

    def __init__(self, value: float, fmt: str = "{:.4f}", font_size: float = 36, color=WHITE,
                 slots: int | None = None):
        super().__init__()
        self.fmt, self.font_size_, self.color_ = fmt, font_size, color
        # enough slots for the widest value this number is likely to show; more are added
        # only outside an animation (when a value is wider than any seen before)
        n = max(len(fmt.format(value)), slots or 0, 8)
        self.add(*[VMobject(fill_color=color, fill_opacity=1.0, stroke_width=0) for _ in range(n)])
        self.value = None
        self._origin = None
        self._draw(value)

    @classmethod
    def _glyph_table(cls, font_size):
        if font_size not in cls._glyphs:
            chars = "0123456789.-"
            m = MathTex(*chars, font_size=font_size)
            cls._glyphs[font_size] = {ch: part.family_members_with_points()[0] for ch, part in zip(chars, m)}
        return cls._glyphs[font_size]

    @property
    def glyphs(self) -> list:
        """The slots that show a character now (the others have no points)."""
        return [m for m in self.submobjects if m.has_points()]

    def _draw(self, value):
        table = self._glyph_table(self.font_size_)
        text = self.fmt.format(value)
        while len(self.submobjects) < len(text):
            self.add(VMobject(fill_color=self.color_, fill_opacity=1.0, stroke_width=0))
        # the translation the number got since the last draw (shift, next_to, arrange ...)
        offset = np.zeros(3) if self._origin is None else self.submobjects[0].points[0] - self._origin
        x = 0.0
        for i, slot in enumerate(self.submobjects):
            if i >= len(text):
                slot.clear_points()
                continue
            g = table[text[i]]
            pts = g.points.copy()
            pts[:, 0] += x - g.get_left()[0]
            if i == 0:
                self._origin = pts[0].copy()  # slot 0's first point before any translation
            slot.set_points(pts + offset)
            x += g.width + 0.12 * self.font_size_ / 48 * (0.5 if text[i] == "." else 1.0)
        self.value = value
        return self

    def set_value(self, value: float):
        """Redraw in place: the same slots, the new glyphs, the translation the old ones had."""
        if value != self.value:
            self._draw(value)
        return self

    def get_value(self) -> float:
        return self.value


# -- images ----------------------------------------------------------------------------

def rgb(image: torch.Tensor) -> np.ndarray:
    """One image, uint8 [3, H, W] or float [3, H, W] in [-1, 1], as uint8 H x W x 3."""
    return as_hwc(image.unsqueeze(0))[0]


def pixel_image(image: torch.Tensor, height: float = 2.0) -> ImageMobject:
    """A 32x32 image drawn with nearest-neighbour resampling, so each pixel is a sharp square."""
    m = ImageMobject(rgb(image))
    m.set_resampling_algorithm(RESAMPLING_ALGORITHMS["nearest"])
    m.height = height
    return m


def set_pixels(mob: ImageMobject, image: torch.Tensor) -> None:
    """Replace the pixels of ``mob`` in place, keeping its opacity (for updaters)."""
    mob.pixel_array[:, :, :3] = change_to_rgba_array(rgb(image), "uint8")[:, :, :3]


def framed(mob, color=WHITE):
    """A thin frame around an image, so noise keeps a visible edge on black."""
    return VGroup(Rectangle(width=mob.width, height=mob.height, stroke_width=1.5, stroke_color=color).move_to(mob))


# -- data, schedule, denoiser -----------------------------------------------------------

@lru_cache(maxsize=None)
def example_images(n: int = 4) -> torch.Tensor:
    """n test images, uint8 [n, 3, 32, 32]: CIFAR-10's when VDM_DATA_DIR holds it, else the embedded shapes."""
    data_dir = Path(os.environ.get("VDM_DATA_DIR", "data"))
    if (data_dir / "cifar-10-batches-py").is_dir():
        return vdm_data.cifar10(data_dir, "test", download=False)[:n]
    return vdm_data.shapes(n, "test")[0]


def example_x0(n: int = 1) -> torch.Tensor:
    """The first n example images as floats in [-1, 1]."""
    return vdm_data.to_float(example_images(max(n, 4))[:n])


def lecture_schedule(T: int = DEFAULT_T) -> Schedule:
    """The assignment's constant schedule with the tuned alpha (the exercises' own: alpha_t = alpha)."""
    return Schedule.constant(T=T)


def tex_text(s: str) -> str:
    """A name (a run's, a path) made safe inside LaTeX text."""
    for ch in "\\&%$#_{}":
        s = s.replace(ch, "\\" + ch)
    return s.replace("--", "-{}-")  # not an en dash


# -- where the trained model comes from ------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """The model the backward and ELBO scenes use, and one line saying so on screen.

    ``denoiser`` is None without a trained run; ``schedule`` is then the lecture's.
    """

    denoiser: object | None
    schedule: Schedule
    run: object | None  # vdm.run.Run
    note: str           # LaTeX text: which run (and how it was chosen) or that there is none
    points_run: object | None = None  # a 2-D run given with --run (animations.model2d draws with it)


_CHOICE = {"run": None, "search": True, "runs_dir": "runs"}


def use_run(run: str | os.PathLike | None = None, *, search: bool = True, runs_dir: str | os.PathLike = "runs") -> None:
    """Choose the model the scenes use: ``run`` (a run directory or checkpoint, as `vdm render --run`),
    else with ``search`` the newest run under ``runs_dir`` with a complete checkpoint, else none."""
    if run is not None:
        from vdm.run import open_model

        open_model(run, "cpu")  # a bad path is one ValueError sentence now, before any rendering
    _CHOICE.update(run=None if run is None else str(run), search=search, runs_dir=str(runs_dir))
    lecture_source.cache_clear()
    elbo_draws.cache_clear()
    import sys

    if "animations.model2d" in sys.modules:  # the 2-D model follows the choice too
        sys.modules["animations.model2d"].reset()


def newest_run(runs_dir: str | os.PathLike = "runs"):
    """The image run under ``runs_dir`` whose newest complete checkpoint is the most recent, or None
    (2-D runs are left out: the scenes' images need an image model; a 2-D run is used when given)."""
    from vdm.run import is_run, open_run

    best, best_time = None, -1.0
    root = Path(runs_dir)
    if not root.is_dir():
        return None
    for d in root.iterdir():
        if not is_run(d):
            continue
        try:
            run = open_run(d)
            if run.config.points:
                continue
            ck = run.checkpoint()
        except ValueError:
            continue  # a broken run is skipped here; `--run` names it with its sentence
        if ck is not None and ck.stat().st_mtime > best_time:
            best, best_time = run, ck.stat().st_mtime
    return best


@lru_cache(maxsize=None)
def lecture_source() -> Source:
    """The chosen model (see use_run): its denoiser and its own schedule, and how it was chosen."""
    from vdm.run import open_model

    path, how = _CHOICE["run"], "given with --run"
    if path is None and _CHOICE["search"]:
        run = newest_run(_CHOICE["runs_dir"])
        path, how = (None, None) if run is None else (run.path, f"the newest run under {_CHOICE['runs_dir']}/")
    if path is None:
        return Source(None, lecture_schedule(), None, "no trained run")
    den, meta, run = open_model(path, "cpu")
    den.eval()
    if run is not None and run.config.points:  # a 2-D run: no image model; animations.model2d uses it
        return Source(None, lecture_schedule(), None, "no image run", points_run=run)
    name = run.name if run is not None else Path(path).name
    return Source(den, den.schedule, run,
                  f"model: run {tex_text(name)} ({tex_text(how)}), schedule {tex_text(den.schedule.describe())}")


class LeakyOracle(torch.nn.Module):
    """A deliberately imperfect denoiser: x̂_0 = x_0 + lam (x_t - sqrt(alpha_bar_t) x_0) = x_0 + lam sqrt(1 - alpha_bar_t) eps.

    It leaves a fraction ``lam`` of the noise in its estimate, so its error grows with t
    and depends on x_t, like a real network's: every matching KL is then positive and
    random, which is what the variance demo compares (the oracle x̂_0 = x_0 makes every
    denoising-matching KL exactly 0 and says nothing about the estimator).
    """

    def __init__(self, x0: torch.Tensor, schedule: Schedule, lam: float = 0.3):
        super().__init__()
        self.x0, self.lam = x0, lam
        self.signal = schedule.signal_coef()

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t).reshape(-1)
        a = self.signal.to(x_t.dtype)[t].reshape(-1, *([1] * (x_t.ndim - 1)))
        return self.x0.to(x_t.dtype) + self.lam * (x_t - a * self.x0.to(x_t.dtype))


LEAK = 0.3
ELBO_T_NO_RUN = 20  # without a run: T = 20 of the tuned constant schedule, so the full sum over t stays cheap


def elbo_model_note() -> str:
    """What the ELBO scenes estimate with, as LaTeX text."""
    src = lecture_source()
    if src.denoiser is not None:
        return src.note + ", uniform-$t$ estimator"
    return (rf"no trained run: a deliberately imperfect $\hat{{x}}_0 = x_0 + {LEAK:g}\,(x_t - \sqrt{{\bar\alpha_t}}\,x_0)$, "
            rf"constant $\alpha$, $T = {ELBO_T_NO_RUN}$, full sum over $t$")


@lru_cache(maxsize=None)
def elbo_draws(n: int = 200, seed: int = 0) -> dict:
    """-ELBO of one image drawn n times, both forms: {form: vdm.elbo.ELBO}; the spread is pure Monte Carlo.

    With a trained run (lecture_source): its model and schedule and the uniform-t
    estimator (one network call per term instead of T). Without one: LeakyOracle on
    T = 20 steps of the tuned constant schedule and the full sum over t. Never the
    oracle x̂_0 = x_0, whose matching terms are all 0.
    """
    torch.manual_seed(seed)
    x0 = example_x0(1).repeat(n, 1, 1, 1)
    src = lecture_source()
    if src.denoiser is None:
        s = Schedule.constant(T=ELBO_T_NO_RUN)
        den, estimator = LeakyOracle(x0, s, LEAK), "full"
    else:
        den, s, estimator = src.denoiser, src.schedule, "uniform"
    out = {}
    with torch.no_grad():
        for form in ("consistency", "denoising"):
            g = torch.Generator().manual_seed(seed + (form == "denoising"))  # independent draws per form
            out[form] = elbo(den, s, x0, form=form, estimator=estimator, generator=g)
    return out


def agreement(a, b, z: float = 3.0) -> tuple[bool, float, float]:
    """(whether the means of the samples a and b agree within z standard errors, difference, its standard error)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = float(a.mean() - b.mean())
    se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    return abs(diff) <= z * se, diff, se


def polyline(axes, xs, ys, color, stroke_width: float = 4) -> VMobject:
    """The points (xs[i], ys[i]) joined by straight segments on ``axes`` (one vectorised c2p call)."""
    pts = axes.c2p(np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64))
    line = VMobject(stroke_color=color, stroke_width=stroke_width)
    line.set_points_as_corners(np.asarray(pts).T)  # c2p on arrays returns [3, N]
    return line


# -- a run's noise schedule as log SNR(t), beside the assignment's ------------------------------------

def snr_one_at(t, log_snr) -> float | None:
    """The first t where log SNR falls to 0 (SNR = 1), linear between neighbouring points; None if it never does.

    (t, log_snr) as vdm.continuous.snr_curve returns them: t increasing, log SNR decreasing.
    """
    t, y = np.asarray(t, dtype=np.float64), np.asarray(log_snr, dtype=np.float64)
    below = np.nonzero(y <= 0)[0]
    if len(below) == 0 or below[0] == 0:
        return None if len(below) == 0 else float(t[0])
    i = int(below[0])
    return float(t[i - 1] + (t[i] - t[i - 1]) * y[i - 1] / (y[i - 1] - y[i]))


def _snr_sentence(name: str, t_one: float | None, t, y, T: int) -> str:
    if t_one is None:
        return rf"{name}: SNR $> 1$ everywhere (log SNR down to {float(np.min(y)):.2f})"
    if t_one <= float(t[0]):
        return rf"{name}: SNR $\leq 1$ already at $t/T = {float(t[0]):.3g}$"
    return rf"{name}: SNR $= 1$ at $t/T = {t_one:.2f}$ (step {t_one * T:.0f} of {T})"


def snr_panel(schedule, width: float = 7.6, height: float = 3.9) -> VGroup:
    """Labelled axes of log SNR against t/T: ``schedule``'s curve (vdm.continuous.snr_curve) and, when it is
    another schedule, the assignment's constant one at the same T (lecture_schedule) for comparison.

    SNR(t) = alpha_bar_t / (1 - alpha_bar_t); for a learned schedule log SNR(t) = -gamma(t). The
    group is [axes, tick and axis labels, the SNR = 1 line, curves, legend]. The axes' y is
    log SNR - ``.y0`` (manim puts the t axis at y = 0, and here it belongs at the bottom);
    ``.curves`` holds (polyline, t, log SNR, describe(), t at SNR = 1, colour) per curve, and
    ``.sentences`` one caption each, computed from its curve's numbers by snr_one_at.
    """
    from vdm.continuous import snr_curve

    runs = [(schedule, SCHEDULE, "this run")]
    ref = lecture_schedule(schedule.T)
    if schedule != ref:
        runs.append((ref, ALPHA, r"the assignment's constant $\alpha$"))
    else:
        runs[0] = (schedule, ALPHA, r"this run (the assignment's constant $\alpha$)")
    data = []
    for s, colour, who in runs:
        t, y = snr_curve(s)
        data.append((s, colour, who, t.numpy(), y.numpy()))
    lo = min(float(d[4].min()) for d in data)
    hi = max(float(d[4].max()) for d in data)
    step = 5 if hi - lo > 12 else 2
    y0, y1 = int(step * np.floor(lo / step)), int(step * np.ceil(hi / step))
    axes = Axes(x_range=[0, 1, 0.25], y_range=[0, y1 - y0, step], x_length=width, y_length=height, tips=False,
                axis_config={"stroke_width": 2})
    xs = [0, 0.25, 0.5, 0.75, 1]
    ticks_x = VGroup(*labels(*[f"{x:g}" for x in xs], size=20))
    for lab, x in zip(ticks_x, xs):
        lab.next_to(axes.c2p(x, 0), DOWN, buff=0.12)
    ks = list(range(y0, y1 + 1, step))
    ticks_y = VGroup(*labels(*[f"${k}$" for k in ks], size=20))
    for lab, k in zip(ticks_y, ks):
        lab.next_to(axes.c2p(0, k - y0), LEFT, buff=0.12)
    x_lab = label(r"$t/T$", size=24).next_to(ticks_x, DOWN, buff=0.15)
    y_lab = label(r"$\log \mathrm{SNR}(t)$", size=24).rotate(np.pi / 2).next_to(ticks_y, LEFT, buff=0.2)
    one = VMobject(stroke_color=WHITE, stroke_width=1.5, stroke_opacity=0.6)
    one.set_points_as_corners([axes.c2p(0, -y0), axes.c2p(1, -y0)])
    one_lab = label(r"SNR $= 1$", size=20).next_to(axes.c2p(1, -y0), RIGHT, buff=0.12)
    curves, legend, sentences = VGroup(), VGroup(), []
    panel = VGroup()
    panel.curves = []
    for s, colour, who, t, y in data:
        line = polyline(axes, t, y - y0, colour)
        curves.add(line)
        t_one = snr_one_at(t, y)
        panel.curves.append((line, t, y, s.describe(), t_one, colour))
        legend.add(one_line(rf"{who}: {tex_text(s.describe())}", colour, 20))
        sentences.append(_snr_sentence(who, t_one, t, y, s.T))
    legend.arrange(DOWN, aligned_edge=LEFT, buff=0.1).next_to(axes, UP, buff=0.2).align_to(axes, LEFT)
    panel.add(axes, VGroup(ticks_x, ticks_y, x_lab, y_lab), VGroup(one, one_lab), curves, legend)
    panel.axes, panel.legend, panel.sentences, panel.y0 = axes, legend, sentences, y0
    return panel


def play_snr(scene, schedule, below, why: str) -> VGroup:
    """Two slides: the schedule's log SNR curve beside the assignment's (snr_panel), then what the numbers say
    (where each curve puts SNR = 1) and ``why`` it matters here."""
    panel = snr_panel(schedule)
    panel.next_to(below, DOWN, buff=0.2).set_x(0.3)
    caps = VGroup(*[one_line(s, cv[5], 22) for s, cv in zip(panel.sentences, panel.curves)],
                  one_line(why, size=22)).arrange(DOWN, buff=0.1).to_edge(DOWN, buff=0.2)
    axes, labs, one, curves, legend = panel
    scene.play(Create(axes), FadeIn(labs), FadeIn(one), FadeIn(legend))
    scene.play(*[Create(cv) for cv in curves], run_time=2.0)
    scene.pause(len(legend) + 1)
    scene.play(FadeIn(caps))
    scene.pause(len(caps) + 1)
    panel.captions = caps
    return panel


def histogram_edges(values, bins: int = 24) -> np.ndarray:
    """Common bin edges for a set of value arrays, so histograms side by side compare."""
    v = np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in values])
    lo, hi = float(v.min()), float(v.max())
    pad = max((hi - lo) * 0.05, 1.0)
    return np.linspace(lo - pad, hi + pad, bins + 1)


def histogram_bars(axes, values, edges, color) -> VGroup:
    """Bars of numpy's histogram of ``values`` on ``axes``; the counts are kept on the group as .counts."""
    counts, _ = np.histogram(np.asarray(values, dtype=np.float64), bins=edges)
    bars = VGroup()
    for c, lo, hi in zip(counts, edges[:-1], edges[1:]):
        if c == 0:
            continue
        p0, p1 = axes.c2p(lo, 0), axes.c2p(hi, c)
        bar = Rectangle(width=abs(p1[0] - p0[0]), height=max(abs(p1[1] - p0[1]), 1e-3),
                        stroke_width=0.5, stroke_color=color, fill_color=color, fill_opacity=0.7)
        bar.move_to((p0 + p1) / 2)
        bars.add(bar)
    bars.counts = counts
    bars.edges = edges
    return bars


def histogram_panel(values, edges, color, caption: str, width: float = 5.5, height: float = 3.0) -> VGroup:
    """Axes, bars and a caption: [axes, bars, caption]; the x axis spans ``edges``, labelled at 4 ticks."""
    counts, _ = np.histogram(np.asarray(values, dtype=np.float64), bins=edges)
    top = max(int(counts.max()), 1)
    lo, hi = float(edges[0]), float(edges[-1])
    axes = Axes(x_range=[lo, hi, (hi - lo) / 4], y_range=[0, top * 1.1, max(top // 2, 1)], x_length=width,
                y_length=height, tips=False, axis_config={"stroke_width": 2},
                x_axis_config={"include_numbers": True, "font_size": 20,
                               "decimal_number_config": {"num_decimal_places": 0, "group_with_commas": False}},
                y_axis_config={"include_numbers": True, "font_size": 18,
                               "decimal_number_config": {"num_decimal_places": 0}})
    bars = histogram_bars(axes, values, edges, color)
    cap = Tex(caption, font_size=26, color=color).next_to(axes, UP, buff=0.15)
    return VGroup(axes, bars, cap)
