"""2-D point clouds in the terminal: braille dots over density shading.

A terminal cell is about twice as tall as it is wide, so the square view [-V, V]^2 (V =
vdm.images.POINT_VIEW) is drawn on p columns and p/2 rows. Each cell holds a braille character
(2 x 4 dots, square dots) for the points, paths and segments that fall in it, and its background
is the density of a distribution at the cell (``Frame.shade``: exact q(x_t) of a Gaussian mixture,
vdm.cloud.density_grid, or a histogram of points, vdm.cloud.histogram_grid), on a log scale over
DECADES decades below its maximum so both the modes and the tails show.

A cell has one foreground colour: the layer drawn last that has a dot there owns it (paths over
heads over clouds over segments). A cloud's cells are brighter where more of its points fall:
0.45 + 0.55 log(1 + n) / log(1 + n_max), n the points in the cell.

Colours are truecolor; on a 256-colour terminal each is the nearest xterm colour (tui.image.nearest_256:
Rich's own downgrade turns the dim greys of the shading into black); with NO_COLOR the shading is
drawn with the characters · ░ ▒ in cells without dots, so the density still shows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from rich.color import Color, ColorTriplet, ColorType
from rich.segment import Segment
from rich.style import Style
from textual.reactive import reactive
from textual.strip import Strip
from textual.widget import Widget

from tui.image import PLAIN, _XTERM, nearest_256

_DOT = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.uint16)  # braille bit of (row, col)
DECADES = 3.0  # the shading spans this many decades of density below its maximum
SHADE_LEVELS = 10  # steps of the shading (equal styles run together into one segment)
BRIGHT_LEVELS = 6  # steps of a cloud's brightness
BASE = (20, 20, 26)  # the shading's colour at the lowest density it draws (a hair above the background)
MONO_SHADES = ((0.75, "▒"), (0.4, "░"), (0.05, "·"))  # NO_COLOR: the shading as characters, densest first

RGB = tuple[int, int, int]
# distinct, bright colours for the traced paths (readable on black in 256 colours too)
PATH_COLOURS: tuple[RGB, ...] = ((255, 85, 85), (85, 255, 85), (95, 175, 255), (255, 215, 0), (255, 95, 255),
                                 (0, 255, 255), (255, 175, 95), (215, 215, 255))


@dataclass(frozen=True, eq=False)
class Cloud:
    """Points [N, 2] drawn as braille dots of one colour, brighter where they crowd."""

    points: np.ndarray
    colour: RGB
    name: str = ""


@dataclass(frozen=True, eq=False)
class Segments:
    """Straight segments a[i] -> b[i] ([M, 2] each) in ``colour``, each end b[i] a dot of ``head``."""

    a: np.ndarray
    b: np.ndarray
    colour: RGB
    head: RGB


@dataclass(frozen=True, eq=False)
class Path:
    """A polyline through xy [K, 2] in ``colour``, its last point a whole cell ⣿ (where the point is now)."""

    xy: np.ndarray
    colour: RGB


@dataclass(frozen=True, eq=False)
class Frame:
    """What a CloudPanel draws. ``shade(res)`` gives a [res, res] density over the view, row 0 at the top
    (vdm.cloud's grids), or is None; it is called for the panel's size when the panel is drawn.
    Compared by identity: a new Frame is a new picture."""

    view: float
    shade: Callable[[int], np.ndarray] | None = None
    shade_colour: RGB = (70, 110, 190)
    clouds: tuple[Cloud, ...] = ()
    segments: tuple[Segments, ...] = ()
    paths: tuple[Path, ...] = ()
    title: str = ""
    note: str = ""  # the panel's lower border: what the shading is, the legend of colours
    meta: dict = field(default_factory=dict)  # the numbers behind the picture, for a reader (and the tests)


def square(cols: int, rows: int) -> tuple[int, int]:
    """(columns, rows) of the largest square view in cols x rows cells: 2 columns per row (cells are 1:2)."""
    ph = min(rows, cols // 2)
    return 2 * ph, ph


def to_dots(xy: np.ndarray, view: float, W: int, H: int) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) of the braille dot of each point of xy [N, 2] inside the view, on a W x H dot grid."""
    xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    c = np.floor((xy[:, 0] + view) / (2 * view) * W)
    r = np.floor((view - xy[:, 1]) / (2 * view) * H)
    ok = np.isfinite(c) & np.isfinite(r) & (c >= 0) & (c < W) & (r >= 0) & (r < H)
    return r[ok].astype(np.int64), c[ok].astype(np.int64)


def outside(points: np.ndarray, view: float) -> float:
    """The share of the points outside [-view, view]^2 (they are not drawn)."""
    p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if not len(p):
        return 0.0
    return float((~(np.abs(p) <= view).all(1)).mean())


def _line_dots(a: np.ndarray, b: np.ndarray, view: float, W: int, H: int) -> tuple[np.ndarray, np.ndarray]:
    """The dots on the straight segments a[i] -> b[i]: each sampled at one point per dot of its length."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    if not len(a):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    scale = np.array([W, H]) / (2 * view)
    n = int(min(np.nanmax(np.abs((b - a) * scale).max(1), initial=0.0), 4 * max(W, H))) + 2
    s = np.linspace(0.0, 1.0, n)[None, :, None]
    pts = a[:, None, :] + (b - a)[:, None, :] * s
    return to_dots(pts.reshape(-1, 2), view, W, H)


def _cells(r: np.ndarray, c: np.ndarray, ph: int, pw: int) -> tuple[np.ndarray, np.ndarray]:
    """(braille bits [ph, pw], dots counted per cell [ph, pw]) of dots (r, c)."""
    bits = np.zeros(ph * pw, dtype=np.uint16)
    cell = (r // 4) * pw + (c // 2)
    np.bitwise_or.at(bits, cell, _DOT[r % 4, c % 2])
    count = np.bincount(cell, minlength=ph * pw)
    return bits.reshape(ph, pw), count.reshape(ph, pw)


def shade_levels(grid: np.ndarray, ph: int, pw: int) -> np.ndarray:
    """A square density grid [pw, pw] (pw = 2 ph) as shading levels 0..1 of the ph x pw cells (each cell
    the mean of its two pixels): 1 + log10(p / p_max) / DECADES, clipped at 0, and exactly 0 where p = 0."""
    g = np.asarray(grid, dtype=np.float64)[: 2 * ph, :pw]
    g = g.reshape(ph, 2, pw).mean(1)
    top = g.max() if g.size else 0.0
    if not top > 0:
        return np.zeros((ph, pw))
    with np.errstate(divide="ignore"):
        lv = 1.0 + np.log10(np.where(g > 0, g / top, 1e-300)) / DECADES
    return np.where(g > 0, np.clip(lv, 0.0, 1.0), 0.0)


def _blend(a: RGB, b: RGB, w: float) -> RGB:
    return tuple(int(round(x + (y - x) * w)) for x, y in zip(a, b))


class _Palette:
    """rgb -> Rich Color for the terminal: truecolor, the nearest of the xterm 256, or Rich's own downgrade."""

    def __init__(self, system: str | None):
        self.system = system
        self._cache: dict = {}

    def __call__(self, rgb: RGB | None) -> Color | None:
        if rgb is None:
            return None
        c = self._cache.get(rgb)
        if c is None:
            if self.system == "256":
                c = _XTERM[int(nearest_256(np.array(rgb)))]
            else:  # truecolor, or a 16-colour terminal (where Rich picks the nearest of its 16)
                c = Color("", ColorType.TRUECOLOR, triplet=ColorTriplet(*rgb))
            self._cache[rgb] = c
        return c


def rasterise(frame: Frame, cols: int, rows: int, system: str | None = "truecolor",
              monochrome: bool = False) -> list[Strip]:
    """The frame as ``rows`` strips of ``cols`` cells: the square view centred, shading as backgrounds,
    the layers as braille dots (see the module's docstring for who owns a cell's colour)."""
    pw, ph = square(cols, rows)
    if pw < 2 or ph < 1:
        return [Strip.blank(cols, PLAIN) for _ in range(rows)]
    W, H, v = 2 * pw, 4 * ph, frame.view
    bits = np.zeros((ph, pw), dtype=np.uint16)
    fg_arr = np.full((ph, pw), -1, dtype=np.int64)  # index into colours (the owner's colour, with its brightness)
    colours: list[RGB] = []

    full = np.full((ph, pw), BRIGHT_LEVELS - 1)

    def own(mask: np.ndarray, level: np.ndarray, rgb_of) -> None:
        """Give the cells of ``mask`` to this layer at brightness ``level``; rgb_of(k) is its colour at level k."""
        idx = np.flatnonzero(mask.ravel())
        if not len(idx):
            return
        base = len(colours)
        colours.extend(rgb_of(k) for k in range(BRIGHT_LEVELS))
        fg_arr.ravel()[idx] = base + level.ravel()[idx]

    for seg in frame.segments:  # lowest first
        b, n = _cells(*_line_dots(seg.a, seg.b, v, W, H), ph, pw)
        bits |= b
        own(n > 0, full, lambda k, c=seg.colour: c)
    for cl in frame.clouds:
        b, n = _cells(*to_dots(cl.points, v, W, H), ph, pw)
        bits |= b
        top = max(int(n.max()), 1)
        bright = 0.45 + 0.55 * np.log1p(n) / math.log1p(top)
        level = np.clip(np.rint(bright * (BRIGHT_LEVELS - 1)), 0, BRIGHT_LEVELS - 1).astype(np.int64)
        own(n > 0, level, lambda k, c=cl.colour: _blend((0, 0, 0), c, k / (BRIGHT_LEVELS - 1)))
    for seg in frame.segments:  # the heads (x̂_0) over the clouds
        b, n = _cells(*to_dots(seg.b, v, W, H), ph, pw)
        bits |= b
        own(n > 0, full, lambda k, c=seg.head: c)
    for p in frame.paths:  # last: a traced point must not hide under the cloud it moves in
        xy = np.asarray(p.xy, dtype=np.float64).reshape(-1, 2)
        if len(xy) >= 2:
            b, n = _cells(*_line_dots(xy[:-1], xy[1:], v, W, H), ph, pw)
        else:
            b, n = _cells(*to_dots(xy, v, W, H), ph, pw)
        r, c = to_dots(xy[-1:], v, W, H)
        if len(r):  # where the point is now: a whole cell
            b[r[0] // 4, c[0] // 2] = 0xFF
            n[r[0] // 4, c[0] // 2] += 1
        bits |= b
        own(n > 0, full, lambda k, col=p.colour: col)
    shade = np.zeros((ph, pw))
    if frame.shade is not None:
        shade = shade_levels(frame.shade(pw), ph, pw)
    shade_i = np.rint(shade * (SHADE_LEVELS - 1)).astype(np.int64)
    shade_i[(shade > 0) & (shade_i == 0)] = 1 if SHADE_LEVELS > 1 else 0
    palette = _Palette(system)
    bg_rgb = [None] + [_blend(BASE, frame.shade_colour, k / (SHADE_LEVELS - 1)) for k in range(1, SHADE_LEVELS)]
    styles: dict = {}
    chars = (bits.astype("<u4") + 0x2800).tobytes().decode("utf-32-le")
    pad_l, pad_t = (cols - pw) // 2, (rows - ph) // 2
    blank = Strip.blank(cols, PLAIN)
    out = [blank] * pad_t
    for r in range(ph):
        segs = [Segment(" " * pad_l, PLAIN)] if pad_l else []
        run_text, run_style = [], None
        for c in range(pw):
            o, s = int(fg_arr[r, c]), int(shade_i[r, c])
            ch = chars[r * pw + c]
            if bits[r, c] == 0:
                ch = " "
                if monochrome and s:
                    ch = next((m for lim, m in MONO_SHADES if shade[r, c] >= lim), " ")
            key = (o if bits[r, c] else -1, s)
            st = styles.get(key)
            if st is None:
                fgc = palette(colours[o]) if key[0] >= 0 else None
                bgc = palette(bg_rgb[s]) if s else None
                st = Style(color=fgc, bgcolor=bgc) if (fgc or bgc) else PLAIN
                styles[key] = st
            if st is not run_style and run_text:
                segs.append(Segment("".join(run_text), run_style))
                run_text = []
            run_style = st
            run_text.append(ch)
        if run_text:
            segs.append(Segment("".join(run_text), run_style))
        out.append(Strip(segs, pad_l + pw).extend_cell_length(cols, PLAIN))
    out.extend([blank] * (rows - len(out)))
    return out[:rows]


def colour_system(widget: Widget) -> tuple[str | None, bool]:
    """(the console's colour system, whether NO_COLOR asks for none) of the app a widget is in."""
    app = widget.app
    return getattr(app.console, "color_system", None), bool(getattr(app, "no_color", False))


class CloudPanel(Widget):
    """A square view of the plane with a Frame in it (set ``frame``; a new Frame redraws), bordered and
    titled by the frame. The strips of the last frame and size are kept, so a repaint costs nothing."""

    DEFAULT_CSS = """
    CloudPanel { border: round $primary-darken-2; border-title-color: $text; height: 1fr; width: 1fr;
                 min-width: 20; min-height: 6; }
    """
    frame: reactive[Frame | None] = reactive(None, always_update=True)
    empty: reactive[str] = reactive("")  # what the panel says while it has no frame

    def __init__(self, *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self._key = None
        self._strips: list[Strip] = []

    def watch_frame(self, frame: Frame | None) -> None:
        if frame is not None:
            self.border_title = frame.title
            self.border_subtitle = frame.note
        self.refresh()

    def render_line(self, y: int) -> Strip:
        w, h = self.content_size
        frame = self.frame
        key = (id(frame), w, h)
        if key != self._key:
            self._key = key
            if frame is None:
                self._strips = [Strip.blank(w, PLAIN) for _ in range(h)]
                if self.empty and h:
                    self._strips[(h - 1) // 2] = Strip([Segment(self.empty[:w].center(w), Style(dim=True))], w)
            else:
                system, mono = colour_system(self)
                self._strips = rasterise(frame, w, h, system, mono)
        return self._strips[y] if y < len(self._strips) else Strip.blank(w, PLAIN)


SAMPLES, HELD_OUT = (255, 150, 40), (40, 70, 150)  # the monitor's scatter: samples over the held-out data


class PointSamples(CloudPanel):
    """A 2-D run's samples (orange braille, brighter where they crowd) over its held-out points (the shading:
    their histogram, vdm.cloud.histogram_grid), in the square view [-view, view]^2.

    Set ``view`` and ``reference`` once (the held-out points, loaded in a worker: they need torch), then
    ``samples`` and ``where`` (the step and its place among the kept samples) for every cloud shown.
    """

    samples: reactive[np.ndarray | None] = reactive(None, always_update=True)
    reference: reactive[np.ndarray | None] = reactive(None, always_update=True)
    view: reactive[float | None] = reactive(None)
    where: reactive[str] = reactive("")

    def on_mount(self) -> None:
        self._rebuild()

    def watch_samples(self) -> None:
        self._rebuild()

    def watch_reference(self) -> None:
        self._ref_hist = None
        self._rebuild()

    def watch_view(self) -> None:
        self._rebuild()

    def watch_where(self) -> None:
        self._rebuild()

    def _shade(self, res: int) -> np.ndarray:
        """The held-out points' histogram at ``res`` pixels a side (computed once per size)."""
        cache = getattr(self, "_ref_hist", None)
        if cache is None or cache[0] != res:
            import torch

            from vdm.cloud import histogram_grid

            cache = (res, histogram_grid(torch.from_numpy(np.ascontiguousarray(self.reference)), res, self.view).numpy())
            self._ref_hist = cache
        return cache[1]

    def _rebuild(self) -> None:
        pts, ref, view = self.samples, self.reference, self.view
        if view is None or pts is None:
            self.frame = None
            self.empty = "loading the held-out points …" if pts is not None else "no samples yet (after an evaluation)"
            self.border_title = "samples"
            self.border_subtitle = self.where or ""
            return
        off = outside(pts, view)
        title = f"[rgb{SAMPLES}]⣿[/] {len(pts):,} samples"
        if ref is not None:
            title += f" · [rgb{HELD_OUT}]█[/] held-out"
        note = self.where + (f" · {100 * off:.0f}% outside" if off >= 0.005 else "")
        self.frame = Frame(view, self._shade if ref is not None else None, HELD_OUT,
                           clouds=(Cloud(pts, SAMPLES, "samples"),), title=title, note=note,
                           meta={"n": len(pts)})
