"""Plots: a curve on axes, histograms side by side, and a schedule's log SNR(t) beside the assignment's."""

from __future__ import annotations

import numpy as np
from manim import DOWN, LEFT, RIGHT, UP, WHITE, Axes, Rectangle, Tex, VGroup, VMobject

from animations.latex import schedule_tex
from animations.lecture_data import lecture_schedule
from animations.mobjects.text import label, labels, one_line
from animations.palette import ALPHA, SCHEDULE


class EdgeAxes(Axes):
    """Axes whose y axis stands at the left end of the x range (the x axis at the bottom of the y range), outside
    the plotted data, instead of at x = 0: no curve or bar drawn on the axes passes over the y axis's tick numbers.
    With x = 0 inside the x range, the x axis gets the tick and number at 0 that plain Axes leave to the y axis."""

    @staticmethod
    def _origin_shift(axis_range) -> float:
        return axis_range[0]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        axis = self.x_axis
        if axis.x_min < 0 < axis.x_max:
            tick = axis.get_tick(0, axis.tick_size)
            axis.ticks.add(tick)
            if getattr(axis, "numbers", None) is not None and len(axis.numbers):
                number = axis.get_number_mobject(0, font_size=axis.font_size)
                axis.numbers.add(number)


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
        runs.append((ref, ALPHA, "the assignment's schedule"))
    else:
        runs[0] = (schedule, ALPHA, "this run (the assignment's schedule)")
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
        legend.add(one_line(rf"{who}: {schedule_tex(s)}", colour, 20))
        sentences.append(_snr_sentence(who, t_one, t, y, s.T))
    legend.arrange(DOWN, aligned_edge=LEFT, buff=0.1).next_to(axes, UP, buff=0.2).align_to(axes, LEFT)
    panel.add(axes, VGroup(ticks_x, ticks_y, x_lab, y_lab), VGroup(one, one_lab), curves, legend)
    panel.axes, panel.legend, panel.sentences, panel.y0 = axes, legend, sentences, y0
    return panel


def nice_step(span: float, ticks: int = 5) -> float:
    """A round tick spacing (1, 2 or 5 times a power of ten) for about ``ticks`` ticks over ``span``."""
    raw = max(span, 1e-12) / ticks
    base = 10 ** np.floor(np.log10(raw))
    return float(next(m * base for m in (1, 2, 5, 10) if m * base >= raw))


def round_range(lo: float, hi: float, ticks: int = 4) -> tuple[float, float, float]:
    """(lo', hi', step): [lo, hi] widened to multiples of a round step (nice_step of the widened span, so
    that an axis over [lo', hi'] with that step has round numbers at its ticks)."""
    for _ in range(8):
        step = nice_step(hi - lo, ticks)
        lo2, hi2 = np.floor(lo / step) * step, np.ceil(hi / step) * step
        if nice_step(hi2 - lo2, ticks) == step:
            return float(lo2), float(hi2), step
        lo, hi = lo2, hi2
    return float(lo2), float(hi2), step


def histogram_edges(values, bins: int = 24, ticks: int = 5) -> np.ndarray:
    """Common bin edges for a set of value arrays, so histograms side by side compare: the values' range,
    padded, widened to round tick positions (round_range), in about ``bins`` bins that fit the ticks."""
    v = np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in values])
    lo, hi = float(v.min()), float(v.max())
    pad = (hi - lo) * 0.05 if hi > lo else max(abs(lo) * 0.01, 0.5)  # one value only: a bin round it
    lo, hi, step = round_range(lo - pad, hi + pad, ticks)
    n = int(round((hi - lo) / step))
    return np.linspace(lo, hi, n * max(1, int(round(bins / n))) + 1)


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
    step = nice_step(hi - lo, 5)  # round ticks where the edges came from histogram_edges (ticks = 5)
    axes = EdgeAxes(x_range=[lo, hi, step], y_range=[0, top * 1.1, max(nice_step(top, 3), 1)], x_length=width,
                y_length=height, tips=False, axis_config={"stroke_width": 2},
                x_axis_config={"include_numbers": True, "font_size": 20,
                               "decimal_number_config": {"num_decimal_places": max(0, -int(np.floor(np.log10(step)))),
                                                         "group_with_commas": False}},
                y_axis_config={"include_numbers": True, "font_size": 18,
                               "decimal_number_config": {"num_decimal_places": 0}})
    bars = histogram_bars(axes, values, edges, color)
    cap = Tex(caption, font_size=26, color=color).next_to(axes, UP, buff=0.15)
    return VGroup(axes, bars, cap)
