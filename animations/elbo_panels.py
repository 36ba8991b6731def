"""Mobjects for the two ELBO scenes: the term table, the histogram of totals, the per-term spread
on a log scale, and captions computed from the numbers they describe.

Kept apart from the scenes (as ManimML keeps its mobjects), so both ELBO scenes draw
the same table and panels. Nothing here computes an ELBO: the numbers are
vdm.elbo.ELBO objects from lecture_data.elbo_draws.
"""

from __future__ import annotations

import numpy as np
from manim import DOWN, LEFT, RIGHT, UP, WHITE, Axes, Rectangle, Tex, VGroup

from animations.lecture_data import agreement
from animations.mobjects.plots import histogram_panel
from animations.mobjects.text import label, labels, one_line
from animations.palette import CONSISTENCY, DENOISING, PRIOR, RECONSTRUCTION
from vdm.gaussian import nats_to_bpd
from vdm.report import error_decimals

TERMS = ("reconstruction", "prior", "matching", "total")
NAMES = {"consistency": {"reconstruction": "reconstruction", "prior": "prior matching", "matching": "consistency",
                         "total": r"total $-$ELBO"},
         "denoising": {"reconstruction": "reconstruction", "prior": "prior matching", "matching": "denoising matching",
                       "total": r"total $-$ELBO"}}
COLOURS = {"reconstruction": RECONSTRUCTION, "prior": PRIOR, "total": WHITE}


def matching_colour(form: str):
    return CONSISTENCY if form == "consistency" else DENOISING


def spread(std: float) -> str:
    """A standard deviation per draw, to three significant digits (52,548.9 -> 52,500; 1.934 -> 1.93): the spread
    of a spread estimated from a few hundred heavy-tailed draws is itself large, so more digits are noise."""
    if std == 0 or not np.isfinite(std):
        return f"{std:g}"
    e = int(np.floor(np.log10(abs(std))))
    return f"{round(std, 2 - e):,.0f}" if e >= 2 else f"{std:,.{2 - e}f}"


def stats(e) -> dict:
    """{term: (mean, standard error of the mean, std per draw)} in nats per image."""
    out = {}
    for k, v in e.terms().items():
        x = v.double().numpy()
        out[k] = (float(x.mean()), float(x.std(ddof=1) / np.sqrt(len(x))), float(x.std(ddof=1)))
    return out


def mean_and_error(mean: float, se: float) -> tuple[str, str]:
    """(mean, "± error") as TeX, the mean ending at the error's second significant digit; a term that is the same
    every draw (se = 0: a KL in closed form given x_0) as three significant digits and "exact"."""
    if np.isfinite(se) and se > 1e-9 * abs(mean):
        d = error_decimals(se)
        return _minus(f"{mean:,.{d}f}"), rf"$\pm$ {se:,.{d}f}"
    d = max(0, 2 - int(np.floor(np.log10(abs(mean))))) if mean != 0 else 0
    return _minus(f"{mean:,.{d}f}"), "exact"


def _minus(number: str) -> str:
    """A leading minus as a minus sign, not the hyphen text mode sets for "-"."""
    return "$-$" + number[1:] if number.startswith("-") else number


def _foot(lines: list[str], cells: list[str], size: float) -> VGroup:
    """The lines under a table, left-aligned, one more where a cell says "exact", to say what that means."""
    if any(c.endswith("exact") for c in cells):
        lines = [*lines, "exact: a KL in closed form, the same in every draw"]
    return VGroup(*[one_line(t, size=size) for t in lines]).arrange(DOWN, aligned_edge=LEFT, buff=0.08)


def term_table(e, form: str, size: float = 26) -> VGroup:
    """name | mean | ± standard error, one row per term; ``.rows[i][1].tex_string`` is the mean shown."""
    st = stats(e)
    colours = [COLOURS.get(k, matching_colour(form)) for k in TERMS]
    shown = [mean_and_error(*st[k][:2]) for k in TERMS]
    cells = labels(*[NAMES[form][k] for k in TERMS], *[m for m, _ in shown], *[err for _, err in shown],
                   colors=colours * 3, size=size)
    n = len(TERMS)
    rows = VGroup(*[VGroup(cells[i], cells[i + n], cells[i + 2 * n]) for i in range(n)])
    for r in rows:
        r[1].next_to(r[0], RIGHT, buff=0.3)
        r[2].next_to(r[1], RIGHT, buff=0.2)
    rows.arrange(DOWN, aligned_edge=LEFT, buff=0.22)
    right = max(r[0].get_right()[0] for r in rows) + 1.9
    for r in rows:  # the means right-aligned in one column, the errors after them
        r[1].move_to(r[0]).shift(RIGHT * (right - r[1].get_right()[0]))
        r[2].next_to(r[1], RIGHT, buff=0.2)
    bpd, bpd_se = (nats_to_bpd(v, e.dims) for v in st["total"][:2])
    head = _foot([rf"nats per image: mean $\pm$ its standard error ({e.total.shape[0]} draws); "
                  rf"{' '.join(mean_and_error(bpd, bpd_se))} bits/dim"], [x for _, x in shown], size=20)
    table = VGroup(rows, head.next_to(rows, DOWN, buff=0.25, aligned_edge=LEFT))
    table.rows = rows
    return table


def compare_table(cons, den, size: float = 20) -> VGroup:
    """term | consistency form mean ± s.e. | denoising form mean ± s.e., in nats per image; ``.cells[form][term]``."""
    sc, sd = stats(cons), stats(den)
    names = {"reconstruction": "reconstruction", "prior": "prior matching", "matching": "matching terms",
             "total": r"total $-$ELBO"}
    texts = [r"term", r"consistency form", r"denoising form"]
    for k in TERMS:
        texts += [names[k], " ".join(mean_and_error(*sc[k][:2])), " ".join(mean_and_error(*sd[k][:2]))]
    colours = [WHITE, CONSISTENCY, DENOISING]
    for k in TERMS:
        colours += [COLOURS.get(k, WHITE), CONSISTENCY, DENOISING]
    cells = labels(*texts, colors=colours, size=size)
    rows = VGroup(*[VGroup(*cells[3 * i:3 * i + 3]) for i in range(len(TERMS) + 1)])
    widths = [max(r[j].width for r in rows) for j in range(3)]
    for r in rows:
        r[0].move_to([0, 0, 0], aligned_edge=LEFT)
        r[1].move_to([widths[0] + 0.35 + widths[1], 0, 0], aligned_edge=RIGHT)
        r[2].move_to([widths[0] + 0.35 + widths[1] + 0.35 + widths[2], 0, 0], aligned_edge=RIGHT)
    rows.arrange(DOWN, aligned_edge=LEFT, buff=0.16)
    for r in rows[1:]:  # keep the right-aligned number columns after arrange moved whole rows
        r[1].align_to(rows[0][1], RIGHT)
        r[2].align_to(rows[0][2], RIGHT)
    foot = _foot([rf"nats per image, mean $\pm$ standard error of {cons.total.shape[0]} draws"], texts, size=size - 2)
    table = VGroup(rows, foot.next_to(rows, DOWN, buff=0.15, aligned_edge=LEFT))
    table.rows = rows
    return table


def needs_log(samples) -> bool:
    """Whether histograms of these positive samples need a log axis: a range over ten times their median."""
    v = np.concatenate([np.asarray(x, dtype=np.float64).ravel() for x in samples])
    return bool(v.min() > 0 and (v.max() - v.min()) > 10 * np.median(v))


def histogram_values(samples, log: bool):
    """The values the histograms bin: the samples, or their log10 when ``log``."""
    return [np.log10(np.asarray(x, dtype=np.float64)) if log else np.asarray(x, dtype=np.float64) for x in samples]


def totals_panel(values, edges, colour, caption: str, width: float = 5.4, height: float = 2.8,
                 log: bool = False) -> VGroup:
    """plots.histogram_panel with its axes labelled: [axes, bars, caption, x label, y label].

    ``log``: ``values`` and ``edges`` are log10 of -ELBO (heavy-tailed estimates, a trained run's one-t draws).
    """
    panel = histogram_panel(values, edges, colour, caption, width=width, height=height)
    axes = panel[0]
    what = r"$\log_{10}$ of $-$ELBO of one draw (nats per image)" if log else r"$-$ELBO of one draw (nats per image)"
    xl = label(what, size=20).next_to(axes.x_axis, DOWN, buff=0.4)
    yl = label("draws", size=20).rotate(1.5708).next_to(axes.y_axis, LEFT, buff=0.35)
    panel.add(xl, yl)
    return panel


def sign_caption(e, z: float = 2.0) -> str:
    """What the prior and matching means say, in words that follow from their signs, sizes and errors: a sign
    is claimed only where the mean is more than ``z`` standard errors from 0."""
    st = stats(e)
    prior, (matching, se) = st["prior"][0], st["matching"][:2]
    shown = _minus(f"{matching:,.1f}")
    if matching < 0 and -matching > z * se:
        total = _minus(f"{prior + matching:,.1f}")
        return (rf"the consistency sum is negative ({shown} nats): a joint expectation of log-ratios, not a KL; "
                rf"with the prior term ({prior:+,.1f}) it sums to {total}")
    if matching < 0:
        mean, err = mean_and_error(matching, se)
        return (rf"the consistency sum is {mean} {err} nats: {len(e.total)} draws do not settle its sign; "
                rf"a joint expectation of log-ratios, not a KL, it may be negative")
    return rf"prior matching {prior:,.1f} and consistency {matching:,.1f} nats: both positive here"


def compare_caption(a, b, z: float = 3.0) -> str:
    """Whether the two estimators' mean -ELBO agree within z standard errors, with the numbers (to the error's
    second significant digit). Between 2 and z standard errors nothing is called agreement: the caption says
    how far apart they are, that the algebra makes their expectations equal, and why the error may be too small."""
    ok, diff, se = agreement(a, b, z)
    narrow, zs = ok and abs(diff) > 2 * se, abs(diff) / se if se > 0 else 0.0
    d = error_decimals(se) if np.isfinite(se) and se > 0 else 1
    ma, mb, diff, se = (_minus(f"{v:,.{d}f}") for v in (float(np.mean(a)), float(np.mean(b)), diff, se))
    if narrow:
        return (rf"means {ma} and {mb} nats, {zs:.1f} standard errors apart ({diff} $\pm$ {se}): equal in "
                rf"expectation (exercise 3); heavy-tailed draws make the error itself unreliable")
    if ok:
        return (rf"means {ma} and {mb} nats: they agree within their Monte Carlo error "
                rf"(difference {diff} $\pm$ {se}): the same bound, estimated twice")
    return (rf"means {ma} and {mb} nats differ by {diff}, more than {z:g} standard errors "
            rf"({se}): with this model the two estimates do not agree")


def spread_panel(cons, den, width: float = 5.6, height: float = 2.8) -> VGroup:
    """Per-term standard deviation per draw for both forms, bars on a log10 axis: [axes, bars, labels].

    ``.spreads`` holds {form: {term: std}} as drawn; a std of 0 has no bar, a "0" at the axis floor instead.
    """
    spreads = {"consistency": {k: v[2] for k, v in stats(cons).items()},
               "denoising": {k: v[2] for k, v in stats(den).items()}}
    values = [v for d in spreads.values() for v in d.values() if v > 0]
    lo = int(np.floor(np.log10(min(values)))) if values else -1
    hi = int(np.ceil(np.log10(max(values)))) if values else 1
    hi = max(hi, lo + 1)
    # y is log10(std) - lo, so that the x axis sits at the floor 10^lo, not at 10^0
    axes = Axes(x_range=[0, len(TERMS), 1], y_range=[0, hi - lo, 1], x_length=width, y_length=height, tips=False,
                axis_config={"stroke_width": 2}, x_axis_config={"include_ticks": False},
                y_axis_config={"include_numbers": False})
    every = max(1, (hi - lo + 3) // 4)  # at most about five tick labels
    ticks = VGroup(*[Tex(rf"$10^{{{k}}}$", font_size=18).next_to(axes.c2p(0, k - lo), LEFT, buff=0.1)
                     for k in range(lo, hi + 1, every)])
    bars, zeros = VGroup(), VGroup()
    for i, term in enumerate(TERMS):
        for j, (form, colour) in enumerate((("consistency", CONSISTENCY), ("denoising", DENOISING))):
            v = spreads[form][term]
            top = (np.log10(v) if v > 0 else lo) - lo
            x0, x1 = i + 0.12 + 0.38 * j, i + 0.12 + 0.38 * (j + 1)
            p0, p1 = axes.c2p(x0, 0), axes.c2p(x1, top)
            bar = Rectangle(width=abs(p1[0] - p0[0]), height=max(abs(p1[1] - p0[1]), 1e-3), stroke_width=0,
                            fill_color=colour, fill_opacity=0.85).move_to((p0 + p1) / 2)
            bars.add(bar)
            if v == 0:  # no bar on a log axis: say the spread is nil where the bar would stand
                zeros.add(Tex("0", font_size=18, color=colour).next_to(axes.c2p((x0 + x1) / 2, 0), UP, buff=0.06))
    names = labels("recon.", "prior", "matching", "total", size=18)
    for i, lab in enumerate(names):
        lab.next_to(axes.c2p(i + 0.5, 0), DOWN, buff=0.12)
    yl = label("std per draw (nats, log)", size=18).rotate(1.5708).next_to(ticks, LEFT, buff=0.15)
    panel = VGroup(axes, bars, VGroup(ticks, *names, yl, *zeros))
    panel.spreads = spreads
    return panel
