"""What every scene shares: one colour per quantity, sharp 32x32 images, and the vdm numbers.

Colours are fixed across the lecture, so x_0 is always blue, x_t orange, alpha
yellow, and each ELBO term has its own colour in every formula and plot.
Scenes do no math: the schedule, chains, posterior and ELBO terms come from
``vdm`` through the functions below (cached, so a scene computes them once).

Environment:
    VDM_CHECKPOINT  a run directory or checkpoint file; the ELBO and sampling
                    scenes then use its trained x̂_0(x_t, t) and its schedule.
    VDM_DATA_DIR    where CIFAR-10 lives (cifar-10-batches-py); its test images
                    replace the embedded shapes when present.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from manim import (BLUE, GREEN, GREY_B, ORANGE, PINK, PURPLE_B, RED, RIGHT, TEAL, UP, WHITE, YELLOW,
                   Axes, ImageMobject, MathTex, Rectangle, Tex, VGroup, VMobject, config)
from manim.mobject.svg.svg_mobject import VMobjectFromSVGPath
from manim.mobject.types.image_mobject import RESAMPLING_ALGORITHMS
from manim.utils.images import change_to_rgba_array

from vdm import data as vdm_data
from vdm.denoiser import Oracle, load_denoiser
from vdm.elbo import elbo
from vdm.images import as_hwc
from vdm.schedule import Schedule

# -- colours: one per quantity, the same in every scene ---------------------------------

X0 = BLUE
XT = ORANGE
XHAT = TEAL
ALPHA = YELLOW
EPS = GREY_B
RECONSTRUCTION = GREEN
PRIOR = RED
CONSISTENCY = PURPLE_B
DENOISING = PINK
TERM_COLORS = {"reconstruction": RECONSTRUCTION, "prior": PRIOR,
               "consistency": CONSISTENCY, "denoising": DENOISING}
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

T_LECTURE = 500  # the assignment's T; alpha is tuned so that sqrt(alpha^T) = 0.01


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


def cut(scene, *keep) -> None:
    """End a section with a hard cut: everything leaves the screen but ``keep``.

    (scene.remove(group) would leave behind the parts that were animated in one by one.)
    """
    scene.clear()
    scene.add(*keep)


def label(text: str, color=WHITE, size: float = 28) -> Tex:
    return Tex(text, color=color, font_size=size)


def labels(*texts: str, colors=None, size: float = 28, math: bool = False) -> list:
    """Several labels from one LaTeX run (one Tex, one part each), to be placed one by one.

    Each LaTeX call costs about half a second, so a strip of six labels made
    this way renders as fast as one.
    """
    parts = list((MathTex if math else Tex)(*texts, arg_separator=r"\quad ", font_size=size))
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


def lecture_schedule(T: int = T_LECTURE) -> Schedule:
    """The assignment's constant schedule with the tuned alpha."""
    return Schedule.constant(T=T)


@lru_cache(maxsize=None)
def checkpoint_denoiser(path: str | None = None):
    """(denoiser, schedule) of VDM_CHECKPOINT (or ``path``), or None when none is given."""
    path = path or os.environ.get("VDM_CHECKPOINT") or None
    if not path:
        return None
    den, meta = load_denoiser(path, "cpu")
    return den, den.schedule


def denoiser_name() -> str:
    return "trained checkpoint" if checkpoint_denoiser() else r"oracle $\hat{x}_0 = x_0$"


@lru_cache(maxsize=None)
def elbo_draws(n: int = 200, T: int = 20, seed: int = 0) -> dict:
    """-ELBO of one image drawn n times, both forms: {form: vdm.elbo.ELBO}, the spread is pure Monte Carlo.

    Without a checkpoint: T steps of the tuned constant schedule, the oracle
    denoiser and the full sum over t. With VDM_CHECKPOINT: its schedule and
    model, and the uniform-t estimator (one network call per term instead of T).
    """
    torch.manual_seed(seed)
    x0 = example_x0(1).repeat(n, 1, 1, 1)
    ck = checkpoint_denoiser()
    if ck is None:
        den, s, estimator = Oracle(x0), Schedule.constant(T=T), "full"
    else:
        (den, s), estimator = ck, "uniform"
    out = {}
    with torch.no_grad():
        for form in ("consistency", "denoising"):
            g = torch.Generator().manual_seed(seed)
            out[form] = elbo(den, s, x0, form=form, estimator=estimator, generator=g)
    return out


def polyline(axes, xs, ys, color, stroke_width: float = 4) -> VMobject:
    """The points (xs[i], ys[i]) joined by straight segments on ``axes`` (one vectorised c2p call)."""
    pts = axes.c2p(np.asarray(xs, dtype=np.float64), np.asarray(ys, dtype=np.float64))
    line = VMobject(stroke_color=color, stroke_width=stroke_width)
    line.set_points_as_corners(np.asarray(pts).T)  # c2p on arrays returns [3, N]
    return line


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
