"""What the scenes show is what vdm computes: curves, coefficients, histograms and images.

Each scene is built once (animations skipped, no video; the frame tests' build
when they ran first, see built_scenes.py), then its mobjects are
read back (curve points through the axes, numbers on screen, image pixels)
and compared with vdm's own functions, called here independently.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from manim import MathTex
from manim.mobject.types.image_mobject import RESAMPLING_ALGORITHMS
from manim.utils.color import ManimColor

from animations.mobjects.images import pixel_image, set_pixels
from animations.mobjects.live_number import LiveNumber
from animations.mobjects.text import tex
from animations.palette import ALPHA, EPS, RECONSTRUCTION, TERM_COLORS, X0, XHAT, XT
from built_scenes import get
from vdm.data import shapes, to_float
from vdm.diffusion import forward_chain, posterior, posterior_coefs, q_sample
from vdm.elbo import elbo, gaussian_log_prob
from vdm.images import as_hwc
from vdm.schedule import Schedule

def x0_test(n=1):
    return to_float(shapes(4, "test")[0][:n])


def curve_points(axes, line):
    """(x, y) in the axes' coordinates of a polyline's corners."""
    anchors = line.get_anchors()
    pts = np.array([axes.p2c(p) for p in anchors])
    # set_points_as_corners stores each inner corner twice (end of one segment, start of the next)
    keep = np.ones(len(pts), bool)
    keep[1:] = np.any(np.abs(np.diff(pts, axis=0)) > 1e-12, axis=1)
    return pts[keep]


def pixels(mob):
    return mob.pixel_array[:, :, :3]


def displayed(number):
    """The characters a LiveNumber shows: one glyph per character of its formatted value."""
    return number.fmt.format(number.get_value()), len(number.glyphs)


@pytest.fixture(scope="module")
def forward():
    from animations.forward_diffusion import ForwardDiffusion
    return get(ForwardDiffusion)


@pytest.fixture(scope="module")
def post():
    from animations.posterior import Posterior
    return get(Posterior)


@pytest.fixture(scope="module")
def elbo_scenes():
    from animations.elbo_consistency import ConsistencyELBO
    from animations.elbo_denoising import DenoisingELBO
    return get(ConsistencyELBO), get(DenoisingELBO)


class Leaky(torch.nn.Module):
    """x̂_0 = x_0 + 0.3 (x_t - sqrt(alpha_bar_t) x_0), written here again from its formula."""

    def __init__(self, x0, s):
        super().__init__()
        self.x0, self.s = x0, s

    def forward(self, x_t, t):
        a = self.s.alpha_bar.sqrt().to(x_t.dtype)[t].reshape(-1, 1, 1, 1)
        return self.x0 + 0.3 * (x_t - a * self.x0)


@pytest.fixture(scope="module")
def elbo_reference():
    """The ELBO draws recomputed here: one image 200 times, T = 20, the imperfect x̂_0, full sum over t."""
    x0 = x0_test(1).repeat(200, 1, 1, 1)
    s = Schedule.constant(T=20)
    return {form: elbo(Leaky(x0, s), s, x0, form=form, estimator="full",
                       generator=torch.Generator().manual_seed(int(form == "denoising")))
            for form in ("consistency", "denoising")}


# -- forward diffusion ------------------------------------------------------------------

def test_forward_curves_are_vdms(forward):
    s = Schedule.constant(T=500)
    ts = np.arange(0, 501, 5)
    signal, noise = (curve_points(forward.axes, g) for g in forward.graphs)
    np.testing.assert_allclose(signal[:, 0], ts, atol=1e-6)
    np.testing.assert_allclose(signal[:, 1], s.signal_coef()[ts].numpy(), atol=1e-6)
    np.testing.assert_allclose(noise[:, 1], (1 - s.alpha_bar[ts]).numpy(), atol=1e-6)


def test_forward_curves_follow_alpha(forward):
    """The curves are recomputed by vdm.schedule for the alpha on screen."""
    forward.alpha.set_value(0.95)
    try:
        forward.graphs.update()
        signal = curve_points(forward.axes, forward.graphs[0])
        ts = np.arange(0, 501, 5)
        np.testing.assert_allclose(signal[:, 1], Schedule.constant(0.95, 500).signal_coef()[ts].numpy(), atol=1e-6)
        assert not np.allclose(signal[:, 1], Schedule.constant(T=500).signal_coef()[ts].numpy(), atol=1e-3)
    finally:
        forward.alpha.set_value(Schedule.constant(T=500).params[0])
        forward.graphs.update()


def test_forward_strip_is_the_chain(forward):
    from animations.forward_diffusion import STRIP_T

    chain = forward_chain(Schedule.constant(T=500), x0_test(1)[0], generator=torch.Generator().manual_seed(0))
    for t, img in zip(STRIP_T, forward.strip_images):
        assert img.resampling_algorithm == RESAMPLING_ALGORITHMS["nearest"]
        np.testing.assert_array_equal(pixels(img), as_hwc(chain[t][None])[0])


# -- posterior ----------------------------------------------------------------------

@pytest.mark.parametrize("t", [2, 7, 250, 500])
def test_posterior_coefficients_shown_are_vdms(post, t):
    c_x0, c_xt, var = posterior_coefs(Schedule.constant(T=500))
    post.t_tracker.set_value(t)
    post.panel.update()
    assert post.num_t.get_value() == t
    assert post.num_c_x0.get_value() == pytest.approx(float(c_x0[t]), abs=1e-12)
    assert post.num_c_xt.get_value() == pytest.approx(float(c_xt[t]), abs=1e-12)
    assert post.num_var.get_value() == pytest.approx(float(var[t]), abs=1e-12)
    for n in (post.num_c_x0, post.num_c_xt, post.num_var, post.num_t):
        text, glyphs = displayed(n)
        assert glyphs == len(text)


@pytest.mark.parametrize("t", [2, 40])
def test_posterior_density_is_vdms(post, t):
    from animations.posterior import GRID

    s = Schedule.constant(T=500)
    x0 = x0_test(1)[0, 0, 16, 16].double().reshape(1)
    x_t = q_sample(s, x0, t, torch.tensor([0.7], dtype=torch.float64))
    mean, var = posterior(s, x_t, x0, t)
    post.t_tracker.set_value(t)
    post.curves.update()
    pts = curve_points(post.axes, post.curves[0])  # drawn first (thick, under the likelihood)
    np.testing.assert_allclose(pts[:, 0], GRID.numpy(), atol=1e-9)
    np.testing.assert_allclose(pts[:, 1], gaussian_log_prob(GRID, mean, var).exp().numpy(), rtol=1e-6, atol=1e-9)
    # its peak sits at c_x0 x_0 + c_xt x_t (posterior_coefs), the mean the panel shows
    c_x0, c_xt, _ = posterior_coefs(s)
    peak = pts[np.argmax(pts[:, 1]), 0]
    assert abs(peak - float(c_x0[t] * x0 + c_xt[t] * x_t)) <= float(GRID[1] - GRID[0])


def test_posterior_picture_notes_state_the_factors_widths(post):
    """The widths the product-of-Gaussians notes state, against the closed forms: q(x_t | x_(t-1)) as a function
    of x_(t-1) has std sqrt((1 - alpha) / alpha); the prior q(x_(t-1) | x_0) std sqrt(1 - alpha^(t-1))."""
    import re

    from animations.posterior import PRODUCT_T

    alpha = float(Schedule.constant(T=500).alpha[1])
    notes = post.slide_notes[:8]
    for k, t in enumerate(PRODUCT_T):
        like = float(re.search(r"standard deviation (\d\.\d+)", notes[4 * k]).group(1))
        prior = float(re.search(r"standard deviation (\d\.\d+)", notes[4 * k + 1]).group(1))
        assert like == pytest.approx(np.sqrt((1 - alpha) / alpha), abs=6e-4), (t, notes[4 * k])
        assert prior == pytest.approx(np.sqrt(1 - alpha ** (t - 1)), abs=6e-4), (t, notes[4 * k + 1])
    assert notes[0] != notes[4] and notes[1] != notes[5]  # the second picture is not introduced again


# -- the two ELBO scenes ----------------------------------------------------------------

def test_consistency_histogram_is_vdms(elbo_scenes, elbo_reference):
    scene = elbo_scenes[0]
    totals = elbo_reference["consistency"].total.double().numpy()
    bars = scene.histogram[1]
    np.testing.assert_array_equal(bars.counts, np.histogram(totals, bins=bars.edges)[0])
    assert bars.counts.sum() == 200 and (bars.edges[0] < totals.min()) and (bars.edges[-1] > totals.max())
    for row, (name, v) in zip(scene.table_rows, elbo_reference["consistency"].terms().items()):
        assert_mean_and_error_shown(row[1].tex_string + " " + row[2].tex_string, v.double().numpy())
    # the total in bits/dim with its error too: nats / (D ln 2), D = 3 * 32 * 32
    foot = scene.table_foot[0].tex_string
    bits = totals / (3 * 32 * 32 * np.log(2))
    assert_mean_and_error_shown(foot.split("draws); ")[1].removesuffix(" bits/dim}"), bits)
    # never the oracle: every matching term is positive and random
    assert (elbo_reference["denoising"].matching > 0).all() and elbo_reference["denoising"].matching.std() > 0


def test_histogram_ticks_are_round_numbers(elbo_scenes, elbo_reference):
    """The x axis is labelled at multiples of 1, 2 or 5 times a power of ten (once at a quarter of the padded
    range: 16374, 16429, ...), at least four labels, and the bins cover every draw."""
    for axes, totals in ((elbo_scenes[0].histogram[0], elbo_reference["consistency"].total),
                         (elbo_scenes[1].panels[0][0], elbo_reference["consistency"].total)):
        shown = np.array([n.number for n in axes.x_axis.numbers], dtype=np.float64)
        step = np.diff(shown)[0]
        mantissa = step / 10 ** np.floor(np.log10(step))
        assert len(shown) >= 4 and np.allclose(np.diff(shown), step)
        assert any(np.isclose(mantissa, m) for m in (1, 2, 5)) and np.allclose(shown / step, np.round(shown / step))
        assert axes.x_range[0] < totals.min().item() and axes.x_range[1] > totals.max().item()


def test_a_spread_of_zero_is_written_not_left_blank(elbo_scenes, elbo_reference):
    """A log axis has no bar for a std of 0 (the denoising form's prior term, a closed-form KL): a "0" stands in
    its slot, above the axis floor, and nowhere else."""
    spread = elbo_scenes[1].spread
    axes, zeros = spread[0], [m for m in spread[2] if getattr(m, "tex_string", None) == "0"]
    nil = [(i, j) for i, k in enumerate(("reconstruction", "prior", "matching", "total"))
           for j, form in enumerate(("consistency", "denoising"))
           if elbo_reference[form].terms()[k].double().std() == 0]
    assert nil == [(1, 1)] and len(zeros) == 1
    x, y = axes.p2c(zeros[0].get_center())[:2]
    assert 1 + 0.12 + 0.38 < x < 1 + 0.12 + 2 * 0.38 and 0 < y < 0.5


def assert_mean_and_error_shown(text: str, draws: np.ndarray):
    """``text`` is "mean ± error" of ``draws`` (or "mean exact" where every draw is the same): the error with two
    significant digits (whole numbers from 10 up), the mean rounded to the error's last digit."""
    words = text.replace("$-$", "-").replace(r"$\pm$", "±").replace(",", "").split()
    mean, se = draws.mean(), draws.std(ddof=1) / np.sqrt(len(draws))
    if words[-1] == "exact":
        assert draws.std() == 0 and len(words) == 2
        assert float(words[0]) == pytest.approx(mean, rel=5e-3)  # three significant digits
        return
    assert words[1] == "±" and len(words) == 3
    decimals = len(words[2].split(".")[1]) if "." in words[2] else 0
    assert float(words[2]) == pytest.approx(se, abs=0.5 * 10.0 ** -decimals)
    assert 10 <= float(words[2]) * 10 ** decimals < 100 or (decimals == 0 and se >= 10)
    assert (len(words[0].split(".")[1]) if "." in words[0] else 0) == decimals
    assert abs(float(words[0]) - mean) <= 0.5 * 10.0 ** -decimals + 1e-9 * abs(mean)


def test_compare_table_shows_each_term_to_its_error(elbo_scenes, elbo_reference):
    """Each cell is the term's mean to its error's second digit; the denoising form's prior term, the same KL in
    every draw of one image, says "exact" and its value, not "0.0 ± 0.0"."""
    rows = elbo_scenes[1].compare_rows
    assert [r[0].tex_string for r in rows[1:]] == ["reconstruction", "prior matching", "matching terms",
                                                   r"total $-$ELBO"]
    for r, k in zip(rows[1:], ("reconstruction", "prior", "matching", "total")):
        for cell, form in ((r[1], "consistency"), (r[2], "denoising")):
            assert_mean_and_error_shown(cell.tex_string, elbo_reference[form].terms()[k].double().numpy())
    assert rows[2][2].tex_string.endswith("exact")


def test_denoising_form_has_lower_spread(elbo_scenes, elbo_reference):
    left, right = elbo_scenes[1].panels
    a = elbo_reference["consistency"].total.double().numpy()
    b = elbo_reference["denoising"].total.double().numpy()
    np.testing.assert_array_equal(left[1].edges, right[1].edges)  # one x scale for both
    np.testing.assert_array_equal(left[1].counts, np.histogram(a, bins=left[1].edges)[0])
    np.testing.assert_array_equal(right[1].counts, np.histogram(b, bins=right[1].edges)[0])
    assert b.std() < a.std()
    # the caption says what the numbers say: agreement within 3 standard errors, or not
    se = np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
    agree = abs(a.mean() - b.mean()) <= 3 * se
    text = elbo_scenes[1].caption.tex_string
    assert ("they agree within their Monte Carlo error" in text) == agree
    assert f"{a.mean():,.1f}" in text and f"{b.mean():,.1f}" in text
    # the log-scale spread panel shows each term's std per draw, as computed here
    spreads = elbo_scenes[1].spread.spreads
    for form, e in elbo_reference.items():
        for k, v in e.terms().items():
            assert spreads[form][k] == pytest.approx(float(v.double().numpy().std(ddof=1)), rel=1e-9, abs=1e-12)


# -- backward diffusion, MHVAE ------------------------------------------------------------

def test_backward_strip_is_the_sampler_chain():
    """Without an image run the strip is the 2-D model's chain (vdm.cloud.backward_cloud), never the oracle's."""
    from animations import model2d
    from animations.backward_diffusion import BackwardDiffusion
    from vdm.cloud import backward_cloud

    scene = get(BackwardDiffusion)
    pm = model2d.point_model()
    _, chain = backward_cloud(pm.denoiser, pm.schedule, model2d.N_CLOUD, 0)
    assert len(scene.strip_clouds) == len(scene.strip_steps)
    for step, cloud in zip(scene.strip_steps, scene.strip_clouds):
        np.testing.assert_allclose(cloud.points_shown, chain.x[step].double().numpy(), atol=1e-6)


def test_backward_strip_notes_follow_the_chain():
    """The strip's notes say how much of the final sample each shown step holds: on a chain made as
    x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps the squared correlation is a_t (to sampling error), and the
    notes name the two shown steps with the largest gain, wherever the schedule puts them."""
    from types import SimpleNamespace

    import torch

    from animations.backward_diffusion import BackwardDiffusion, final_share, strip_words

    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 3, 32, 32, generator=g)
    a = torch.tensor([1.0, 0.97, 0.9, 0.2, 0.05, 0.0])  # t = 0 .. 5
    x = torch.stack([a_t.sqrt() * x0 + (1 - a_t).sqrt() * torch.randn(x0.shape, generator=g) for a_t in a])
    steps = [5, 3, 2, 0]
    share = final_share(SimpleNamespace(x=x), steps)
    np.testing.assert_allclose(share, a[steps].numpy(), atol=0.03)
    words = strip_words(steps, share)
    assert "between t = 3 and t = 2" in words and "t = 5: 0.00" in words, words
    shown = get(BackwardDiffusion)
    assert shown.slide_notes[-1] == strip_words(shown.strip_steps, final_share(shown.chain, shown.strip_steps))


def test_mhvae_shows_vdms_final_signal():
    from animations.mhvae import MarkovianHVAE

    scene = get(MarkovianHVAE)
    value = float(Schedule.constant(T=500).signal_coef()[500])
    assert f"{value:.4f}" in scene.items[2].tex_string


def test_mhvae_jensen_numbers():
    """The chord picture's numbers: Y = 0.5 or 4 with probability 1/2, log E[Y] >= E[log Y], recomputed here."""
    import math

    from animations.mhvae import MarkovianHVAE

    scene = get(MarkovianHVAE)
    log_mean, mean_log = math.log(2.25), (math.log(0.5) + math.log(4.0)) / 2
    assert log_mean > mean_log
    shown = [m.tex_string for m in scene.jensen_side]
    assert f"= {log_mean:.2f}" in shown[1] and f"= {mean_log:.2f}" in shown[2]
    assert f"{log_mean - mean_log:.2f}" in shown[3]


def test_mhvae_hands_over_to_the_consistency_scene():
    """The mhvae scene ends on Jensen's bound; the consistency scene starts from that bound and does not redo it."""
    from animations.elbo_consistency import ConsistencyELBO
    from animations.mhvae import MarkovianHVAE

    mh, cons = get(MarkovianHVAE), get(ConsistencyELBO)
    last = mh.likelihood[-1]
    assert last.rel.tex_string == r"\geq" and mh.likelihood[0].tex_string.startswith(r"\log p(x_0)")
    bound = last.submobjects[-1].tex_string
    first = cons.split[0]
    assert first.submobjects[-1].tex_string == bound  # the same E_q[log p / q]
    # the derivation of the bound lives in the mhvae scene only
    assert not any(r"\log \int" in line.tex_string or r"\geq" in line.tex_string for line in cons.split)
    assert "Jensen's inequality" not in cons.slide_names and "the log-likelihood and Jensen's inequality" in mh.slide_names


# -- shared helpers ----------------------------------------------------------------------

def test_one_colour_per_quantity():
    m = tex(r"x_t = \sqrt{\bar{\alpha}_t}\, x_0 + \sqrt{1-\bar{\alpha}_t}\,\epsilon", "+ R",
            terms={"+ R": RECONSTRUCTION})
    for quantity, colour in (("x_t", XT), ("x_0", X0), (r"\bar{\alpha}_t", ALPHA), (r"\epsilon", EPS)):
        part = m.get_part_by_tex(quantity)
        assert part is not None and ManimColor(part.get_color()) == ManimColor(colour), quantity
    assert ManimColor(m[1].get_color()) == ManimColor(RECONSTRUCTION)
    assert len(set(map(str, (X0, XT, ALPHA, EPS, XHAT, *TERM_COLORS.values())))) == 9


def test_pixel_image_is_sharp_and_exact():
    img = shapes(1, "test")[0][0]
    m = pixel_image(img, height=2)
    assert m.resampling_algorithm == RESAMPLING_ALGORITHMS["nearest"] and m.height == pytest.approx(2)
    np.testing.assert_array_equal(pixels(m), img.permute(1, 2, 0).numpy())
    noise = torch.rand(3, 32, 32) * 2 - 1
    set_pixels(m, noise)
    np.testing.assert_array_equal(pixels(m), as_hwc(noise[None])[0])


def test_live_number_redraws_in_place():
    n = LiveNumber(0.5, "{:.4f}")
    n.shift([1.5, -2.0, 0])
    left, zero_y = n.glyphs[0].get_left()[0], n.glyphs[-1].get_center()[1]  # the last glyph is a 0
    n.set_value(-0.25)
    assert n.get_value() == -0.25 and len(n.glyphs) == len("-0.2500")
    assert abs(n.glyphs[0].get_left()[0] - left) < 0.05  # stays where it was moved
    assert n.glyphs[-1].get_center()[1] == pytest.approx(zero_y)  # on the same baseline
    n.set_value(12.0)
    assert len(n.glyphs) == len("12.0000")


@pytest.mark.parametrize("value, fmt, size", [(0.301, "{:.3f}", 30), (100, "{:d}", 24), (-1.2119, "{:.4f}", 36)])
def test_live_number_is_spaced_as_tex_sets_the_same_string(value, fmt, size):
    """Each glyph where LaTeX puts that character in the same string (MathTex, one part per character): once
    each glyph was advanced by its ink width plus a fixed gap, and "0.301" read as "0.3 0 1"."""
    text = fmt.format(value)
    n = LiveNumber(value, fmt, font_size=size)
    ref = MathTex(*text, font_size=size)
    got = np.array([g.get_left()[0] for g in n.glyphs]) - n.glyphs[0].get_left()[0]
    want = np.array([p.get_left()[0] for p in ref]) - ref[0].get_left()[0]
    np.testing.assert_allclose(got, want, atol=0.01 * size / 48)


# -- the pictures before the algebra -------------------------------------------------------

def test_pixel_density_is_the_closed_form(forward):
    """The one-pixel curve is N(sqrt(alpha_bar_t) x_0, 1 - alpha_bar_t), written out here in float64,
    and the histogram under it is of the step-by-step chain, which the closed form describes."""
    from animations.forward_diffusion import PIXEL_GRID, PIXEL_STOPS

    s = Schedule.constant(T=500)
    ab = np.cumprod(s.alpha.double().numpy())
    x0 = float(x0_test(1)[0, 0, 16, 16])
    assert float(forward.pixel_x0) == pytest.approx(x0)
    for t in PIXEL_STOPS:
        m, v = np.sqrt(ab[t]) * x0, 1 - ab[t]
        expected = np.exp(-(PIXEL_GRID - m) ** 2 / (2 * v)) / np.sqrt(2 * np.pi * v)
        np.testing.assert_allclose(forward.pixel_density(t), expected, rtol=1e-5, atol=1e-9)
        chain = forward.pixel_chain[t].numpy()  # 4,000 chains: mean and variance within Monte Carlo error
        assert abs(chain.mean() - m) < 4 * np.sqrt(v / len(chain)) and abs(chain.var() / v - 1) < 0.1
    assert forward.pixel_stops == list(PIXEL_STOPS)  # the sweep stops where the captions say


def test_product_of_gaussians_is_vdms_posterior(post):
    """likelihood x prior, normalised on the grid, is vdm.diffusion.posterior's density (the caption's gap)."""
    from animations.posterior import PRODUCT_T

    for t in PRODUCT_T:
        d = post.product_curves(t)
        np.testing.assert_allclose(d["product"], d["posterior"], rtol=1e-6, atol=1e-9)
        assert post.product_checks[t] < 1e-6


def test_captions_claim_a_sign_or_an_agreement_only_as_far_as_the_errors_allow():
    """The consistency sum is called negative only beyond 2 standard errors (a trained run's one-t draws gave
    -4,288 ± 3,725); two means 2.3 standard errors apart are not said to agree: the number of errors is said, with
    why the algebra still makes them equal."""
    from types import SimpleNamespace

    from animations.elbo_panels import compare_caption, sign_caption

    rng = np.random.default_rng(1)

    def draws(matching):
        m = torch.tensor(matching)
        terms = {"reconstruction": torch.ones(len(m)), "prior": torch.full((len(m),), 1.5), "matching": m, "total": m}
        return SimpleNamespace(total=m, terms=lambda: terms)

    wide = rng.normal(0, 1, 200)
    wide = (wide - wide.mean()) / wide.std(ddof=1) * 3725 * np.sqrt(200) - 4288  # mean -4,288, standard error 3,725
    assert "negative (" not in sign_caption(draws(wide)) and "do not settle its sign" in sign_caption(draws(wide))
    assert "negative ($-$1,368" in sign_caption(draws(rng.normal(-1368, 1, 200)))
    a = rng.normal(0, 1, 200)
    a = (a - a.mean()) / a.std(ddof=1)  # mean 0, standard error 1/sqrt(200) each
    se = np.sqrt(2 / 200)
    text = compare_caption(a, a + 2.3 * se)
    assert "agree" not in text and "2.3 standard errors apart" in text and "equal in expectation" in text
    assert "they agree within" in compare_caption(a, a + 1.0 * se)
    assert "do not agree" in compare_caption(a, a + 3.5 * se)


def test_a_spread_is_written_to_three_significant_digits():
    from animations.elbo_panels import spread

    assert [spread(v) for v in (52548.9, 2811.8, 999.6, 12.345, 1.934, 0.00261, 0.0)] == \
        ["52,500", "2,810", "1,000", "12.3", "1.93", "0.00261", "0"]


def test_posterior_picture_notes_follow_the_curves_drawn(post):
    """The closed-form posterior is drawn before the white product that lies on it, and each slide's notes speak
    of the curve that slide adds (the notes once ran one slide behind the pictures: "the white curve lies on the
    posterior" over a slide without the white curve)."""
    notes = post.slide_notes
    closed = [i for i, n in enumerate(notes) if n.startswith("The posterior in closed form")]
    assert closed and all(notes[i + 1].startswith("Multiply the two factors") for i in closed)
    assert all(notes[i - 1].startswith("The second factor is the prior") for i in closed)
    # the product's gap to the posterior is said where the product is drawn, not a slide before it
    assert all("gap" not in notes[i] and "largest gap" in notes[i + 1] for i in closed)
