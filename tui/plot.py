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
from textual.binding import Binding
from textual.strip import Strip
from textual.widget import Widget

from vdm.report import error_decimals

# bit of the braille dot at (row 0..3, column 0..1) of a cell (Unicode U+2800 block)
_DOT = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]], dtype=np.uint16)
GUTTER = 8  # characters for the y labels
CURSOR = Style(color="bright_white", bold=True)
PLAIN = Style()  # never a None style: Textual's NO_COLOR filter reads .color of every segment's style

# Line styles, for a terminal without colour (NO_COLOR), where they are what tells the series apart: which
# dot columns (2 to a cell) a line keeps, and the glyph its legend entry starts with.
DASHES = {
    "solid": (lambda c: np.ones_like(c, dtype=bool), "━"),
    "dotted": (lambda c: c % 2 == 0, "┈"),  # one dot column of each cell: a thin line
    "dashed": (lambda c: c // 6 % 2 == 0, "╍"),  # 3 cells on, 3 off
    "dashdot": (lambda c: np.isin(c % 10, (0, 1, 2, 3, 4, 5, 8)), "┉"),  # 3 cells on, 1 off, a dot, 1 off
    "sparse": (lambda c: c % 4 == 0, "·"),  # a dot every other cell: a reference line, under the curves
}


# A reference line's grey: as grey50 on 256 colours and more, and on 16 (TERM=xterm) the terminal's dark grey,
# where grey50 is rounded to the white of the curves (Rich's downgrade puts the cut between the two).
REFERENCE_GREY = "grey46"


@dataclass
class Series:
    name: str
    x: np.ndarray
    y: np.ndarray
    color: str
    stats: bool = True  # last, min and max in the legend (a reference line has none)
    faint: bool = False  # drawn under the others and without a legend entry (the raw curve behind its smoothing)
    raw: np.ndarray | None = None  # the values the legend's last, min and max are of, when y is smoothed
    key: str = ""  # a reference line's legend entry (its name and value), where it has no stats
    err: np.ndarray | None = None  # each point's standard error: drawn as an error bar y ± err, and in the legend
    dash: str = "solid"  # its line style (DASHES) where the plot has no colour


def ema(y: np.ndarray, weight: float) -> np.ndarray:
    """TensorBoard's debiased exponential moving average over the finite values of y, in order.

    s_i = w s_{i-1} + (1 - w) y_i with s_{-1} = 0, shown as s_i / (1 - w^{i+1}) so the first
    points are not pulled towards 0. Non-finite values stay where they are and are skipped.
    """
    y = np.asarray(y, dtype=np.float64)
    if weight <= 0 or len(y) == 0:
        return y.copy()
    from scipy.signal import lfilter

    out = y.copy()
    ok = np.isfinite(y)
    v = y[ok]
    s = lfilter([1.0 - weight], [1.0, -weight], v)
    with np.errstate(under="ignore"):
        s /= 1.0 - weight ** np.arange(1, len(v) + 1, dtype=np.float64)
    out[ok] = s
    return out


def window_stats(x: np.ndarray, y: np.ndarray, lo: float, hi: float) -> tuple[float, float, float] | None:
    """(last, min, max) of the finite points with lo <= x <= hi, or None; last in file order (the newest)."""
    ok = np.isfinite(x) & np.isfinite(y) & (x >= lo) & (x <= hi)
    if not ok.any():
        return None
    ys = y[ok]
    return float(ys[-1]), float(ys.min()), float(ys.max())


class View:
    """What part of the history the plots show, and how: smoothing, x axis, zoom, scroll.

    The window is 1/zoom of the whole x range; it follows the newest point (``end`` None)
    until scrolled back, and follows again once scrolled to the end.
    """

    SMOOTHING = (0.0, 0.6, 0.8, 0.9, 0.95, 0.99, 0.999)
    MAX_ZOOM = 1024

    def __init__(self):
        self.smooth_i = 0
        self.wall = False  # x: wall time since the run's first record, else step
        self.zoom = 1
        self.end: float | None = None

    @property
    def smoothing(self) -> float:
        return self.SMOOTHING[self.smooth_i]

    def smooth_more(self, d: int = 1) -> None:
        self.smooth_i = min(max(self.smooth_i + d, 0), len(self.SMOOTHING) - 1)

    def window(self, lo: float, hi: float) -> tuple[float, float]:
        """The x range shown, out of the whole range [lo, hi]."""
        if hi <= lo:
            return lo, max(hi, lo + 1.0)
        width = (hi - lo) / self.zoom
        end = hi if self.end is None else min(max(self.end, lo + width), hi)
        return end - width, end

    def zoom_by(self, f: int, lo: float, hi: float) -> None:
        """Zoom in (f > 1) or out (f < 1) about the window's centre, or at the newest point while following."""
        a, b = self.window(lo, hi)
        z = self.zoom * f if f >= 1 else self.zoom // round(1 / f)
        self.zoom = int(min(max(z, 1), self.MAX_ZOOM))
        if self.end is not None:
            self.end = min((a + b) / 2 + (hi - lo) / self.zoom / 2, hi)
            if self.end >= hi or self.zoom == 1:
                self.end = None

    def scroll(self, frac: float, lo: float, hi: float) -> None:
        """Move the window by frac of its width (negative: back in time)."""
        a, b = self.window(lo, hi)
        end = b + frac * (b - a)
        self.end = None if end >= hi else max(end, lo + (b - a))

    def reset(self) -> None:
        self.zoom, self.end = 1, None

    def describe(self) -> str:
        parts = ["x wall time" if self.wall else "x step",
                 f"EMA {self.smoothing:g}" if self.smoothing else "raw"]
        parts.append("all" if self.zoom == 1 else f"zoom {self.zoom}x" + ("" if self.end is None else " ◀"))
        return " · ".join(parts)


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


def short(v: float) -> str:
    """Three significant digits (the legend's min and max)."""
    if not math.isfinite(v):
        return "-"
    a = abs(v)
    return f"{v:.2e}" if a != 0 and (a >= 1e5 or a < 1e-3) else f"{v:.3g}"


def last_error(s: Series, x_lo: float, x_hi: float) -> float | None:
    """The error of a series' newest point in [x_lo, x_hi] (None without errors, or where it states none)."""
    if s.err is None:
        return None
    x, y, e = np.asarray(s.x, float), np.asarray(s.y, float), np.asarray(s.err, float)
    ok = np.flatnonzero(np.isfinite(x) & np.isfinite(y) & (x >= x_lo) & (x <= x_hi))
    return float(e[ok[-1]]) if len(ok) and np.isfinite(e[ok[-1]]) else None


def with_error(v: float, se: float | None) -> str:
    """v ± se with v to the decimal of the error's second significant digit (6.78±0.043 -> "6.780±0.043");
    a value without an error as :func:`nice` writes it."""
    if se is None or not math.isfinite(se) or se <= 0 or not math.isfinite(v):
        return nice(v)
    digits = error_decimals(se)
    return f"{v:.{digits}f}±{se:.{digits}f}"


def legend_lines(series: list[Series], width: int, x_lo: float, x_hi: float, dashes: bool = False,
                 rows: int | None = None) -> list[list[tuple[str, Style]]]:
    """Each series' '━ name last ↓min ↑max' over the x window, flowed into lines of ``width`` cells; with
    ``dashes`` each entry starts with its line style's glyph (DASHES) instead of ━. ``rows``: at most that
    many lines, the entries shortened to '━ name last', then to '━ name', until they fit."""
    entries = []
    for s in series:
        if s.faint or not (s.stats or s.key):
            continue
        glyph = DASHES.get(s.dash, DASHES["solid"])[1] if dashes else "━"
        if s.stats:
            st = window_stats(np.asarray(s.x, float), np.asarray(s.y if s.raw is None else s.raw, float), x_lo, x_hi)
            last = "-" if st is None else with_error(st[0], last_error(s, x_lo, x_hi))
            full = f"{glyph} {s.name} " + ("-" if st is None else f"{last} ↓{short(st[1])} ↑{short(st[2])}")
            levels = (full, f"{glyph} {s.name} {last}", f"{glyph} {s.name}")
        else:
            levels = (f"{glyph} {s.key}", f"{glyph} {s.key}", f"{glyph} {s.name}")
        entries.append((levels, Style.parse(s.color)))
    for level in range(3):
        lines = _flow([(levels[level], style) for levels, style in entries], width)
        if rows is None or len(lines) <= rows:
            break
    return lines


def _flow(entries: list[tuple[str, Style]], width: int) -> list[list[tuple[str, Style]]]:
    """Legend entries two spaces apart in lines of ``width`` cells (an entry longer than a line is cut)."""
    lines: list[list[tuple[str, Style]]] = [[]]
    used = 0
    for entry, style in entries:
        if used and used + 2 + len(entry) > width:
            lines.append([])
            used = 0
        if used:
            lines[-1].append(("  ", PLAIN))
            used += 2
        lines[-1].append((entry[: max(width - used, 0)], style))
        used += len(entry)
    return [l for l in lines if l]


def render(series: list[Series], width: int, height: int, log: bool = False,
           x_range: tuple[float, float] | None = None, axis_style: str = "grey50", legend: bool = False,
           x_format=None, empty: str = "", dashes: bool = False, legend_rows: int | None = None,
           y_range: tuple[float, float] | None = None) -> list[Strip]:
    """The plot as ``height`` strips of ``width`` cells: y labels, braille area, an x axis line, and with
    ``legend`` each series' last, min and max value in the x range below it. ``dashes``: each line in its
    series' style (Series.dash), for a terminal without colour. ``legend_rows``: the legend's most lines
    (legend_lines). ``y_range``: a fixed y axis (a share in percent on 0-100) instead of the data's range.

    Only the points inside ``x_range`` are drawn (a zoomed window); ``x_format`` writes the x labels.
    With no point to draw, the plot is blank but for ``empty`` (or "no points in view" when the
    series have points outside the window).
    """
    xs = [s.x for s in series if len(s.x)]
    if x_range is None:
        if xs:
            x_lo = min(float(np.nanmin(x)) for x in xs)
            x_hi = max(float(np.nanmax(x)) for x in xs)
        else:
            x_lo, x_hi = 0.0, 1.0
    else:
        x_lo, x_hi = x_range
    key_rows = legend_lines(series, width, x_lo, x_hi, dashes, legend_rows) if legend else []
    key_rows = key_rows[: max(height - 3, 0)]  # the plot keeps two rows and its axis
    plot_w = max(width - GUTTER, 1)
    plot_h = max(height - 1 - len(key_rows), 1)
    W, H = plot_w * 2, plot_h * 4
    # the faint series (raw curves behind their smoothing) go last: they colour only cells nobody else has
    order = [i for i, s in enumerate(series) if not s.faint] + [i for i, s in enumerate(series) if s.faint]
    series = [series[i] for i in order]
    def scaled(y):
        if not log:
            return y
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(y > 0, np.log10(np.where(y > 0, y, 1.0)), np.nan)

    cols, bars = [], []
    for s in series:
        x, y = np.asarray(s.x, float), np.asarray(s.y, float)
        e = None if s.err is None else np.asarray(s.err, float)
        if x_range is not None:  # outside the window would pile up in the edge columns
            inside = (x >= x_lo) & (x <= x_hi)
            x, y = x[inside], y[inside]
            e = None if e is None else e[inside]
        cols.append(downsample(x, scaled(y), W, x_lo, x_hi))
        # an error bar from y - err to y + err in each dot column holding a point (NaN elsewhere)
        bars.append(None if e is None else (downsample(x, scaled(y - e), W, x_lo, x_hi)[0],
                                            downsample(x, scaled(y + e), W, x_lo, x_hi)[1]))
    finite = [c[i][np.isfinite(c[i])] for c in cols for i in (0, 1)]
    finite += [b[i][np.isfinite(b[i])] for b in bars if b is not None for i in (0, 1)]
    finite = [f for f in finite if len(f)]
    if finite:
        y_lo = min(float(f.min()) for f in finite)
        y_hi = max(float(f.max()) for f in finite)
    else:  # nothing to draw: say so, rather than draw an axis from 0 to 1 that no number is on
        say = "no points in view" if any(len(s.x) for s in series if s.stats and not s.faint) else empty
        strips = [Strip.blank(width, PLAIN) for _ in range(height)]
        if say:
            strips[(plot_h - 1) // 2] = Strip([Segment(say[:width].center(width), Style.parse(axis_style))], width)
        return strips
    if y_range is not None and not log:  # on a log scale the data's range (a fixed 0 has no logarithm)
        y_lo, y_hi = float(y_range[0]), float(y_range[1])
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
        if dashes and not series[k].faint:  # the gaps of its line style (its lone points stay whole cells)
            dots &= DASHES.get(series[k].dash, DASHES["solid"])[0](np.arange(W))[None, :]
        cell = np.zeros((plot_h, plot_w), dtype=np.uint16)
        for dy in range(4):
            for dx in range(2):
                cell |= dots[dy::4, dx::2].astype(np.uint16) * _DOT[dy, dx]
        bits |= cell
        free = (cell > 0) & (owner < 0)
        owner[free] = k
        if series[k].faint:
            continue
        pts = np.zeros((H, W), dtype=bool)
        real = np.flatnonzero(np.isfinite(last))
        pts[np.clip(np.rint((y_hi - last[real]) * scale).astype(np.int64), 0, H - 1), real] = True
        pcell = pts.reshape(plot_h, 4, plot_w, 2).any(axis=(1, 3))
        point_cells.append((len(real), k, pcell))
        if series[k].stats and len(real) == 1:
            # a lone point (a run's first evaluation, a run of one record) is a full cell ⣿: one dot in a
            # corner and the plot reads as empty. Two or more have the line between them.
            bits[pcell] = 0xFF
    for _, k, pcell in sorted(point_cells, key=lambda p: -p[0]):  # densest first: the sparsest has the last word
        owner[pcell] = k
    # error bars last, dimmed: they take only cells no line holds (a bar through its own point keeps the point)
    for k, b in enumerate(bars):
        if b is None:
            continue
        have = np.flatnonzero(np.isfinite(b[0]) & np.isfinite(b[1]))
        if not len(have):
            continue
        dots = np.zeros((H, W), dtype=bool)
        top = np.clip(np.rint((y_hi - b[1][have]) * scale).astype(np.int64), 0, H - 1)
        bot = np.clip(np.rint((y_hi - b[0][have]) * scale).astype(np.int64), 0, H - 1)
        rows = np.arange(H)[:, None]
        dots[:, have] = (rows >= top[None, :]) & (rows <= bot[None, :])
        cell = np.zeros((plot_h, plot_w), dtype=np.uint16)
        for dy in range(4):
            for dx in range(2):
                cell |= dots[dy::4, dx::2].astype(np.uint16) * _DOT[dy, dx]
        bits |= cell
        owner[(cell > 0) & (owner < 0)] = len(series) + k
    styles = [Style.parse(s.color) for s in series] + [Style.parse(s.color) + Style(dim=True) for s in series]
    axis = Style.parse(axis_style)
    labels = {0: _ylabel(y_hi, log), plot_h - 1: _ylabel(y_lo, log)}
    if plot_h >= 5:
        labels[(plot_h - 1) // 2] = _ylabel((y_hi + y_lo) / 2, log)
    strips = []
    # each row's braille characters decoded at once from their code points (no Python per cell)
    chars = (bits.astype("<u4") + 0x2800).tobytes().decode("utf-32-le")
    for r in range(plot_h):
        segs = [Segment(labels.get(r, "").rjust(GUTTER - 1)[: GUTTER - 1] + "┤" if r in labels else " " * (GUTTER - 1) + "│", axis)]
        row_owner = owner[r]
        text = chars[r * plot_w:(r + 1) * plot_w]
        # runs of equal owner become one segment
        bounds = [0, *(np.flatnonzero(row_owner[1:] != row_owner[:-1]) + 1).tolist(), plot_w]
        for a, b in zip(bounds, bounds[1:]):
            o = int(row_owner[a])
            segs.append(Segment(text[a:b], styles[o] if o >= 0 else PLAIN))
        strips.append(Strip(segs, width))
    fmt = x_format or nice
    left, right = fmt(x_lo), fmt(x_hi)
    gap = max(plot_w - len(left) - len(right), 1)
    strips.append(Strip([Segment(" " * (GUTTER - 1) + "└", axis), Segment((left + " " * gap + right)[:plot_w], axis)], width))
    for row in key_rows:
        strips.append(Strip([Segment(t, st) for t, st in row]).extend_cell_length(width, PLAIN).crop(0, width))
    return strips


def _ylabel(v: float, log: bool) -> str:
    return nice(10 ** v) if log else nice(v)


class Plot(Widget):
    """A braille plot of a few series; redraws only when the data, size or scale change."""

    DEFAULT_CSS = "Plot { height: 1fr; }"

    def __init__(self, *, log: bool = False, legend: bool = False, legend_rows: int | None = None,
                 id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self.legend_rows = legend_rows  # the legend's most lines: its entries shortened to fit
        self.series: list[Series] = []
        self.log_scale = log
        self.legend = legend  # each series' last, min and max in view, under the axis
        self.x_format = None
        self.empty = ""  # what the plot says while it has no point to draw
        self.cursor: float | None = None
        self.x_range: tuple[float, float] | None = None
        self.y_range: tuple[float, float] | None = None  # a fixed y axis, else the data's range
        self._key = None
        self._strips: list[Strip] = []
        self._version = 0

    def set_series(self, series: list[Series], x_range=None, x_format=None) -> None:
        self.series = series
        self.x_range = x_range
        self.x_format = x_format
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
        dashes = self.app.no_color  # without colour, the line style is what tells the series apart
        key = (self._version, w, h, self.log_scale, dashes)
        if key != self._key:
            self._strips = render(self.series, w, h, self.log_scale, self.x_range, legend=self.legend,
                                  x_format=self.x_format, empty=self.empty,
                                  dashes=dashes, legend_rows=self.legend_rows,
                                  y_range=self.y_range) if w > GUTTER and h > 1 else []
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


def duration(seconds: float) -> str:
    """An x label of the wall-time axis: 0:04:12, or 3 d 4 h past a day."""
    if not math.isfinite(seconds):
        return "-"
    s = int(round(max(seconds, 0)))
    if s >= 86400:
        return f"{s // 86400} d {s // 3600 % 24} h"
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def x_of(columns: dict, wall: bool, t0: float | None) -> np.ndarray:
    """A run's x values of one record kind: its steps, or its records' `time` less the run's first (seconds)."""
    if not wall:
        return columns["step"]
    return columns["time"] - (t0 if t0 is not None else 0.0)


def x_span(*xs: np.ndarray) -> float:
    """The largest finite x of the arrays, at least 1 (the whole history is [0, x_span])."""
    his = [float(np.nanmax(x)) for x in xs if len(x) and np.isfinite(x).any()]
    return max(his + [1.0])


CURVE_BINDINGS = [
    Binding("s", "smooth(1)", "smooth"),
    Binding("S", "smooth(-1)", "less smooth", show=False),
    Binding("w", "x_axis", "step/time"),
    Binding("plus,equals_sign", "zoom(2)", "zoom in"),
    Binding("minus", "zoom(0.5)", "zoom out", show=False),
    Binding("0", "zoom_reset", "whole history", show=False),
    Binding("left", "scroll(-0.25)", "scroll", show=False),
    Binding("right", "scroll(0.25)", "scroll", show=False),
]


class CurveKeys:
    """The keys of a screen of curves: smoothing (s / S), x by step or wall time (w), zoom (+ - 0), scroll
    (left right). The screen has ``view`` (a View), ``curve_span()`` (the whole x range's end) and
    ``draw_curves()``."""

    view: View

    def curve_span(self) -> float:
        raise NotImplementedError

    def draw_curves(self) -> None:
        raise NotImplementedError

    def action_smooth(self, d: int) -> None:
        self.view.smooth_more(d)
        self.draw_curves()

    def action_x_axis(self) -> None:
        self.view.wall = not self.view.wall
        self.view.reset()  # a window in steps means nothing in seconds
        self.draw_curves()

    def action_zoom(self, f: float) -> None:
        self.view.zoom_by(f, 0.0, self.curve_span())
        self.draw_curves()

    def action_zoom_reset(self) -> None:
        self.view.reset()
        self.draw_curves()

    def action_scroll(self, frac: float) -> None:
        self.view.scroll(frac, 0.0, self.curve_span())
        self.draw_curves()
