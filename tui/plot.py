"""Line plots in braille: 2 x 4 dots per terminal cell, any number of points.

A curve of a million points is first reduced to the min and max of each dot
column (``downsample``), so drawing costs O(width) after one O(n) numpy pass.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip
from textual.widget import Widget

# bit of the braille dot at (row 0..3, column 0..1) of a cell (Unicode U+2800 block)
_DOT = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.uint16)
GUTTER = 8  # characters for the y labels
CURSOR = Style(color="bright_white", bold=True)
PLAIN = Style()  # never a None style: Textual's NO_COLOR filter reads .color of every segment's style


@dataclass
class Series:
    name: str
    x: np.ndarray
    y: np.ndarray
    color: str


def downsample(x: np.ndarray, y: np.ndarray, n: int, x_lo: float, x_hi: float):
    """Per bucket of x (n buckets over [x_lo, x_hi]): (min y, max y, last y), NaN where empty.

    Keeping min and max (not a mean) keeps spikes visible at any zoom, like an
    oscilloscope; "last" lets the drawing connect neighbouring buckets.
    """
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    lo = np.full(n, np.nan)
    hi = np.full(n, np.nan)
    last = np.full(n, np.nan)
    if len(x) == 0:
        return lo, hi, last
    span = x_hi - x_lo
    b = np.zeros(len(x), dtype=np.int64) if span <= 0 else ((x - x_lo) * (n / span)).astype(np.int64)
    np.clip(b, 0, n - 1, out=b)
    if np.any(b[1:] < b[:-1]):  # not sorted by x (a resumed run repeats steps): sort once
        order = np.argsort(b, kind="stable")
        b, y = b[order], y[order]
    starts = np.flatnonzero(np.r_[True, b[1:] != b[:-1]])
    ends = np.r_[starts[1:], len(b)] - 1
    idx = b[starts]
    lo[idx] = np.minimum.reduceat(y, starts)
    hi[idx] = np.maximum.reduceat(y, starts)
    last[idx] = y[ends]
    return lo, hi, last


def nice(v: float) -> str:
    if not math.isfinite(v):
        return "-"
    a = abs(v)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{v:.1e}"
    return f"{v:.4g}"


def render(series: list[Series], width: int, height: int, log: bool = False,
           x_range: tuple[float, float] | None = None, axis_style: str = "grey50") -> list[Strip]:
    """The plot as ``height`` strips of ``width`` cells: y labels, braille area, an x axis line."""
    plot_w = max(width - GUTTER, 1)
    plot_h = max(height - 1, 1)
    W, H = plot_w * 2, plot_h * 4
    xs = [s.x for s in series if len(s.x)]
    if x_range is None:
        if xs:
            x_lo = min(float(np.nanmin(x)) for x in xs)
            x_hi = max(float(np.nanmax(x)) for x in xs)
        else:
            x_lo, x_hi = 0.0, 1.0
    else:
        x_lo, x_hi = x_range
    cols = []
    for s in series:
        y = s.y
        if log:
            with np.errstate(divide="ignore", invalid="ignore"):
                y = np.where(y > 0, np.log10(np.where(y > 0, y, 1.0)), np.nan)
        cols.append(downsample(s.x, y, W, x_lo, x_hi))
    finite = [c[i][np.isfinite(c[i])] for c in cols for i in (0, 1)]
    finite = [f for f in finite if len(f)]
    if finite:
        y_lo = min(float(f.min()) for f in finite)
        y_hi = max(float(f.max()) for f in finite)
    else:
        y_lo, y_hi = 0.0, 1.0
    if y_hi - y_lo < 1e-12:
        y_lo, y_hi = y_lo - 0.5, y_hi + 0.5
    # dot grid: which series owns each cell. A cell has one colour; where lines cross, the series
    # listed first wins (the train loss over the held-out line drawn across it), except in the cells
    # of a sparser series' own points (an evaluation), which that series keeps: both stay visible.
    bits = np.zeros((plot_h, plot_w), dtype=np.uint16)
    owner = np.full((plot_h, plot_w), -1, dtype=np.int16)
    point_cells = []
    scale = (H - 1) / (y_hi - y_lo)
    for k, (lo, hi, last) in enumerate(cols):
        dots = np.zeros((H, W), dtype=bool)
        have = np.flatnonzero(np.isfinite(lo))
        if len(have) == 0:
            continue
        # columns between two buckets with points (a sparse series) get the straight line between them
        span = np.arange(have[0], have[-1] + 1)
        line = np.interp(span, have, last[have])
        lo_s = np.where(np.isfinite(lo[span]), lo[span], line)
        hi_s = np.where(np.isfinite(hi[span]), hi[span], line)
        last_s = np.where(np.isfinite(last[span]), last[span], line)
        r_top = np.rint((y_hi - hi_s) * scale).astype(np.int64)
        r_bot = np.rint((y_hi - lo_s) * scale).astype(np.int64)
        r_last = np.rint((y_hi - last_s) * scale).astype(np.int64)
        # join each column to the previous one's last value so steep segments have no gaps
        prev = np.r_[r_last[0], r_last[:-1]]
        top = np.minimum(r_top, prev)
        bot = np.maximum(r_bot, prev)
        rows = np.arange(H)[:, None]
        dots[:, span] = (rows >= top[None, :]) & (rows <= bot[None, :])
        cell = np.zeros((plot_h, plot_w), dtype=np.uint16)
        for dy in range(4):
            for dx in range(2):
                cell |= dots[dy::4, dx::2].astype(np.uint16) * _DOT[dy, dx]
        bits |= cell
        free = (cell > 0) & (owner < 0)
        owner[free] = k
        pts = np.zeros((H, W), dtype=bool)
        real = np.flatnonzero(np.isfinite(last))
        pts[np.clip(np.rint((y_hi - last[real]) * scale).astype(np.int64), 0, H - 1), real] = True
        pcell = pts.reshape(plot_h, 4, plot_w, 2).any(axis=(1, 3))
        point_cells.append((len(real), k, pcell))
    for _, k, pcell in sorted(point_cells, key=lambda p: -p[0]):  # densest first: the sparsest has the last word
        owner[pcell] = k
    styles = [Style.parse(s.color) for s in series]
    axis = Style.parse(axis_style)
    labels = {0: _ylabel(y_hi, log), plot_h - 1: _ylabel(y_lo, log)}
    if plot_h >= 5:
        labels[(plot_h - 1) // 2] = _ylabel((y_hi + y_lo) / 2, log)
    strips = []
    for r in range(plot_h):
        segs = [Segment(labels.get(r, "").rjust(GUTTER - 1)[: GUTTER - 1] + "┤" if r in labels else " " * (GUTTER - 1) + "│", axis)]
        row_bits, row_owner = bits[r], owner[r]
        text = "".join(chr(0x2800 + int(b)) for b in row_bits)
        # runs of equal owner become one segment
        start = 0
        for i in range(1, plot_w + 1):
            if i == plot_w or row_owner[i] != row_owner[start]:
                o = int(row_owner[start])
                segs.append(Segment(text[start:i], styles[o] if o >= 0 else PLAIN))
                start = i
        strips.append(Strip(segs, width))
    left, right = nice(x_lo), nice(x_hi)
    gap = max(plot_w - len(left) - len(right), 1)
    strips.append(Strip([Segment(" " * (GUTTER - 1) + "└", axis), Segment((left + " " * gap + right)[:plot_w], axis)], width))
    return strips


def _ylabel(v: float, log: bool) -> str:
    return nice(10 ** v) if log else nice(v)


class Plot(Widget):
    """A braille plot of a few series; redraws only when the data, size or scale change."""

    DEFAULT_CSS = "Plot { height: 1fr; }"

    def __init__(self, *, log: bool = False, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.series: list[Series] = []
        self.log_scale = log
        self.cursor: float | None = None
        self.x_range: tuple[float, float] | None = None
        self._key = None
        self._strips: list[Strip] = []
        self._version = 0

    def set_series(self, series: list[Series], x_range=None) -> None:
        self.series = series
        self.x_range = x_range
        self._version += 1
        self.refresh()

    def set_cursor(self, x: float | None) -> None:
        if x != self.cursor:
            self.cursor = x
            self.refresh()

    def set_log(self, log: bool) -> None:
        if log != self.log_scale:
            self.log_scale = log
            self.refresh()

    def render_line(self, y: int) -> Strip:
        w, h = self.content_size
        key = (self._version, w, h, self.log_scale)
        if key != self._key:
            self._strips = render(self.series, w, h, self.log_scale, self.x_range) if w > GUTTER and h > 1 else []
            self._key = key
        if y >= len(self._strips):
            return Strip.blank(w, PLAIN)
        strip = self._strips[y]
        if self.cursor is None or y >= len(self._strips) - 1:
            return strip
        # the cursor is drawn over the cached plot, so moving it costs no re-plot
        lo, hi = self.x_range or (0.0, 1.0)
        if hi <= lo:
            return strip
        col = GUTTER + int(min(max((self.cursor - lo) / (hi - lo), 0.0), 1.0) * (w - GUTTER - 1))
        return Strip.join([strip.crop(0, col), Strip([Segment("│", CURSOR)], 1), strip.crop(col + 1, w)])
