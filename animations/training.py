"""Scene 6, training (exercise 5): the denoising-matching term becomes a weighted MSE on x_0,
uniform t turns its sum into one expectation, where the bits of that sum go t by t (the lecture's 2-D
model's matching terms, animations.model2d.matching_bits), and a real run's loss and samples.

    KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t)) = w(t) ||x̂_0(x_t, t) - x_0||^2,  w(t) = (SNR(t-1) - SNR(t)) / 2
    sum_{t=2}^T E_{q(x_t|x_0)}[w(t) ||x̂_0 - x_0||^2] = (T - 1) E_{t ~ U{2..T}, eps}[w(t) ||x̂_0 - x_0||^2]
    L_simple = E_{t ~ U{1..T}, eps} [ ||x̂_0(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t) - x_0||^2 / D ]

w(t) is read off vdm.elbo.matching_kl itself (an error of 1 in one pixel), the corruption is
vdm.diffusion.q_sample, and the loss curve and sample grids are the run's own
(vdm.run.open_run: metrics.jsonl, samples/step-*.png). The run is lecture_data.lecture_source's:
`vdm render training --run RUN`, else the newest image run under runs/, named on screen. Without
an image run the screen says so in one line and the loss curve and samples are the lecture's 2-D
model's (animations.model2d: its metrics.jsonl and samples/step-*.npy, drawn as clouds).

Render: manim -pql animations/training.py Training
"""

from __future__ import annotations


import math

import numpy as np
import torch
from manim import (DOWN, LEFT, RIGHT, UP, WHITE, Arrow, Axes, Create, DashedLine, Dot, FadeIn, Group,
                   ImageMobject, LaggedStart, Line, Rectangle, SurroundingRectangle, Title, VGroup)
from manim.mobject.types.image_mobject import RESAMPLING_ALGORITHMS

from animations.latex import plain_text, schedule_tex, sci, tex_text
from animations.lecture_data import LEAK, LeakyOracle, example_images, example_x0, lecture_source
from animations.lecture_scene import LectureScene, cut, play_derivation, play_snr
from animations.mobjects.images import pixel_image
from animations.mobjects.plots import nice_step, polyline
from animations.mobjects.text import MAX_WIDTH, label, labels, one_line, tex
from animations.palette import BOX, DENOISING, EPS, SCHEDULE, X0, XHAT, XT
from vdm.diffusion import q_sample
from vdm.elbo import matching_kl
from vdm.images import grid as vdm_grid
from vdm.metrics import number
from vdm.report import error_decimals
from vdm.run import read_grid
from vdm.run import sample_grids as vdm_sample_grids
from vdm.score import GRID_TILE, grid_scale

N_DRAWS = 3  # training examples drawn on screen, one slide each
MAX_GRIDS = 3  # sample grids shown side by side, after a grid of the data
DOT_RADIUS = 0.045  # an evaluation's dot on the bound's plot
WEIGHT_TICKS = (2, 10, 50, 100, 250, 500)


# -- the numbers, all from vdm and the run -----------------------------------------------------------

def elbo_weight(schedule) -> np.ndarray:
    """w(t) for t = 2..T: the denoising-matching KL (vdm.elbo.matching_kl) of an error of 1 in one pixel.

    matching_kl is w(t) ||x̂_0 - x_0||^2, so an x̂_0 that is off by 1 in one value reads w(t) off it.
    """
    T = schedule.T
    t = torch.arange(2, T + 1)
    zero = torch.zeros(T - 1, 1, dtype=torch.float64)
    return matching_kl(schedule, zero, zero, torch.ones_like(zero), t).numpy()


def training_examples(denoiser, schedule, x0: torch.Tensor, n: int = N_DRAWS, seed: int = 0) -> dict:
    """n training examples of one image, as the trainer draws them: t ~ U{1..T}, eps ~ N(0, I), x_t from q_sample.

    Returns t, eps, x_t, x0_hat, the per-pixel MSE ||x̂_0 - x_0||^2 / D and, for t >= 2, the ELBO term it
    stands for, matching_kl in nats (NaN at t = 1, the reconstruction term's step).
    """
    g = torch.Generator().manual_seed(seed)
    T = schedule.T
    t = torch.randint(1, T + 1, (n,), generator=g)
    eps = torch.randn((n,) + tuple(x0.shape), generator=g)
    batch = x0.expand(n, *x0.shape)
    x_t = q_sample(schedule, batch, t, eps)
    with torch.no_grad():
        x0_hat = denoiser(x_t, t).float()
    mse = torch.nn.functional.mse_loss(x0_hat, batch, reduction="none").mean(dim=(1, 2, 3))
    kl = torch.full((n,), float("nan"), dtype=torch.float64)
    for i in range(n):
        if int(t[i]) >= 2:
            kl[i] = float(matching_kl(schedule, x_t[i:i + 1].double(), batch[i:i + 1].double(),
                                      x0_hat[i:i + 1].double(), int(t[i]))[0])
    return {"t": t, "eps": eps, "x_t": x_t, "x0_hat": x0_hat, "mse": mse, "kl": kl}


def curve(records: list[dict]) -> dict:
    """The run's loss over steps: train records' (step, loss), eval records' (step, eval_loss, bpd total), and
    ``bound``: (step, bpd total, its standard error) of the evals that state both.

    ``records`` are vdm.metrics.read_all's (Run.metrics): their numbers already checked by the rules every
    face reads by (vdm.metrics.valid); the fields those leave open are taken only when they are numbers.
    """
    train = [(r["step"], r["loss"]) for r in records if r["kind"] == "train"]
    evals = [(r["step"], r["eval_loss"], number((r.get("bpd") or {}).get("total"))) for r in records
             if r["kind"] == "eval" and "eval_loss" in r]
    ends = [r for r in records if r["kind"] in ("train", "end") and "elapsed" in r]
    refs = [r["reference"] for r in records if r["kind"] == "eval" and isinstance(r.get("reference"), dict)
            and all(number(r["reference"].get(k)) is not None for k in ("optimal", "optimal_se", "nll", "nll_se"))]
    ses = [number(r.get("bpd_se")) for r in records if r["kind"] == "eval" and "eval_loss" in r]
    bound = [(s, v, se) for (s, _, v), se in zip(evals, ses) if v is not None and se is not None]
    return {"train": train, "eval": evals, "bound": bound, "elapsed": ends[-1]["elapsed"] if ends else None,
            "reference": refs[-1] if refs else None, "bpd_se": ses[-1] if ses else None,
            "device": next((r["device"] for r in reversed(records) if isinstance(r.get("device"), str) and r["device"]),
                           None)}


def sample_grids(run, most: int = MAX_GRIDS) -> list[tuple[int, object]]:
    """(step, path) of up to ``most`` of the run's sample grids, evenly over its history, first and last kept."""
    found = vdm_sample_grids(run.path)
    if not found and run.latest_samples is not None:
        return [(-1, run.latest_samples)]
    if len(found) <= most:
        return found
    idx = sorted({round(i * (len(found) - 1) / (most - 1)) for i in range(most)})
    return [found[i] for i in idx]


def step_axes(x_max: float, y_max: float, y_text: str) -> tuple:
    """(axes, x label, y label) of a run's quantity over training steps: [0, x_max] by [0, y_max] at round ticks,
    at least two of them numbered on y (nice_step at 6: at 4, a y_max of 0.88 had one, 0.5), in the place the run's
    plots take under the title."""
    xs, ys = nice_step(x_max), nice_step(y_max, 6)
    axes = Axes(
        x_range=[0, x_max, xs], y_range=[0, y_max, ys], x_length=8.0, y_length=4.0, tips=False,
        axis_config={"include_numbers": True, "font_size": 20, "stroke_width": 2},
        x_axis_config={"decimal_number_config": {"num_decimal_places": 0, "group_with_commas": False}},
        # as many decimals as the tick step needs (a learned run's first losses are in the 100,000s)
        y_axis_config={"decimal_number_config": {"num_decimal_places": max(0, -int(np.floor(np.log10(ys)))),
                                                 "group_with_commas": False}}).shift(LEFT * 1.2 + DOWN * 0.6)
    x_lab = label("training step", size=24).next_to(axes.x_axis, DOWN, buff=0.4)
    # beside the tick numbers, however wide they came out, not at a fixed distance from the axis line
    y_lab = label(y_text, size=24).rotate(np.pi / 2).next_to(VGroup(axes.y_axis, *axes.y_axis.numbers), LEFT,
                                                                buff=0.25)
    return axes, x_lab, y_lab


GRID_SIDE = 4  # every grid shown as 4 x 4 samples: the trainer's grids by the clock hold 16, its last 36


def grid_pixels(images) -> np.ndarray:
    """The first GRID_SIDE^2 of ``images`` (uint8 [N, 3, 32, 32]) tiled as vdm writes a grid (vdm.images.grid)."""
    return vdm_grid(images[:GRID_SIDE ** 2], ncol=GRID_SIDE)


def grid_image(pixels, height: float) -> ImageMobject:
    """Grid pixels (uint8 [H, W, 3]) drawn with sharp pixels, ``height`` scene units tall."""
    m = ImageMobject(pixels)
    m.set_resampling_algorithm(RESAMPLING_ALGORITHMS["nearest"])
    m.height = height
    return m


def sample_grid_pixels(path) -> np.ndarray:
    """A run's sample grid, read as every face reads one (vdm.run.read_grid: a FIFO, a device or an image of
    absurd size is a ValueError naming the file), cut to its top-left GRID_SIDE x GRID_SIDE samples where it
    has more (the trainer's grids by the clock hold 4 x 4, its last 6 x 6: all show alike)."""
    a = read_grid(path)
    scale = grid_scale(a.shape[1], a.shape[0])
    side = None if scale is None else scale * (GRID_SIDE * GRID_TILE + 1)  # a vdm grid: tiles and 1-pixel lines
    return a[:side, :side] if side is not None and side <= min(a.shape[:2]) else a


class Training(LectureScene):
    def construct(self):
        self.src = lecture_source()
        self.schedule = self.src.schedule
        self.title = Title(r"Training $\hat{x}_0(x_t, t)$ (exercise 5)", font_size=38)
        self.add(self.title)
        self.section_loss()
        self.section_expectation()
        self.section_bits()
        self.section_weight()
        self.section_step()
        self.section_algorithm()
        self.section_run()
        self.section_schedule()
        self.section_samples()

    # -- 1. the ELBO term is a weighted MSE ------------------------------------------------------------
    def section_loss(self):
        self.next_section("the denoising term is a weighted MSE")
        coef = r"\frac{\bar{\alpha}_{t-1}(1-\alpha_t)^2}{(1-\bar{\alpha}_t)^2}"
        rows = [
            (r"D_{\mathrm{KL}}\!\left(q(x_{t-1} \mid x_t, x_0) \,\|\, p_\theta(x_{t-1} \mid x_t)\right)", "=",
             (r"\frac{1}{2\sigma_q^2(t)}", r"\left\| \mu_q(x_t, \hat{x}_0) - \mu_q(x_t, x_0) \right\|^2")),
            (None, "=", (r"\frac{1}{2\sigma_q^2(t)}", coef, r"\left\| \hat{x}_0(x_t, t) - x_0 \right\|^2")),
            (None, "=", (r"\frac{1}{2}\left(\mathrm{SNR}(t-1) - \mathrm{SNR}(t)\right)",
                         r"\left\| \hat{x}_0(x_t, t) - x_0 \right\|^2")),
        ]
        notes = [r"$p_\theta(x_{t-1} \mid x_t) = q(x_{t-1} \mid x_t, \hat{x}_0)$ has the same variance "
                 r"$\sigma_q^2(t)$: the KL is the means' squared distance over $2\sigma_q^2$",
                 r"$\mu_q$ is linear in $x_0$ with coefficient $\sqrt{\bar{\alpha}_{t-1}}(1-\alpha_t)/(1-\bar{\alpha}_t)$"
                 r" (exercise 4); the $x_t$ parts cancel",
                 r"with $\mathrm{SNR}(t) = \bar{\alpha}_t / (1 - \bar{\alpha}_t)$ the weight is "
                 r"$w(t) = \frac{1}{2}(\mathrm{SNR}(t-1) - \mathrm{SNR}(t))$"]
        say = ["Exercise 5: how do we train? Choose the decoder step as the true posterior with the network's guess of "
               "x_0 in place of x_0. Both Gaussians then have the same variance, and the KL between them is the "
               "squared distance of their means over twice the variance.",
               "The posterior mean is linear in x_0, and the x_t parts are the same in both means, so they cancel: "
               "what remains is a weighted squared error between the guess of x_0 and x_0 itself.",
               "The weight simplifies to half the drop in signal-to-noise ratio from step t-1 to step t. Every "
               "denoising-matching term is a weighted mean squared error."]
        play_derivation(self, rows, notes, say=say, below=self.title, font_size=28, buff=0.45,
                        focus=[r"\frac{1}{2\sigma_q^2(t)}", coef,
                               r"\frac{1}{2}\left(\mathrm{SNR}(t-1) - \mathrm{SNR}(t)\right)"])
        cut(self, self.title)

    # -- 2. uniform t: the sum over t as one expectation ------------------------------------------------
    def section_expectation(self):
        self.next_section("uniform t: one term per image per step")
        mse = r"\left\| \hat{x}_0\!\left(\sqrt{\bar{\alpha}_t}\, x_0 + \sqrt{1-\bar{\alpha}_t}\,\epsilon,\ t\right) - x_0 \right\|^2"
        rows = [
            (r"\sum_{t=2}^{T} \mathbb{E}_{q(x_t \mid x_0)}\left[D_{\mathrm{KL}}\right]", "=",
             (r"\sum_{t=2}^{T} \mathbb{E}_{q(x_t \mid x_0)}", r"\left[w(t) \left\| \hat{x}_0(x_t, t) - x_0 \right\|^2\right]")),
            (None, "=", (r"(T-1)\ \mathbb{E}_{t \sim \mathcal{U}\{2, \dots, T\}}", r"\mathbb{E}_{\epsilon \sim \mathcal{N}(0, \mathbf{I})}",
                         r"\left[w(t)\, " + mse + r"\right]")),
            (r"\mathcal{L}_{\mathrm{simple}}", "=", (r"\mathbb{E}_{t \sim \mathcal{U}\{1, \dots, T\}}\, "
                                                    r"\mathbb{E}_{\epsilon}", r"\left[\frac{1}{D}\, " + mse + r"\right]")),
        ]
        notes = [r"the denoising-matching sum of exercise 3: one weighted squared error per step $t$",
                 r"a sum of $T-1$ terms is $T-1$ times their mean over a uniform $t$; $x_t$ in closed form (exercise 1b)",
                 r"the simple loss of exercise 5: $w(t)$ and $T-1$ dropped, $t = 1$ joins, the mean over "
                 r"$D = 3 \cdot 32 \cdot 32$ values: the MSE on $x_0$"]
        say = ["The whole denoising-matching sum of exercise 3: one weighted squared error per step t, each an "
               "expectation over x_t.",
               "A sum of T-1 terms is T-1 times their average over a uniformly drawn t. So one random t per image "
               "gives an unbiased estimate, and x_t is one draw from the closed form.",
               "The loss most implementations train, and the one exercise 5 asks for: drop the weight, average over the "
               "pixels. A plain mean squared error on x_0, at a uniformly random step. Two more changes: the constant "
               "T-1 goes, it does not move the minimum; and t now starts at 1, because with a Gaussian decoder the "
               "reconstruction term is, up to constants, the same squared error at t = 1. A run may weight the steps "
               "otherwise; when we look at a real run, its loss is named."]
        play_derivation(self, rows, notes, say=say, below=self.title, font_size=26, buff=0.5,
                        focus=[None, r"(T-1)\ \mathbb{E}_{t \sim \mathcal{U}\{2, \dots, T\}}",
                               r"\left[\frac{1}{D}\, " + mse + r"\right]"])
        cut(self, self.title)

    # -- 3. where the bits go: the matching terms t by t, before the weight is looked at -----------------------
    def section_bits(self):
        self.next_section("where the bits go")
        from animations import model2d

        pm = model2d.point_model()
        b = model2d.matching_bits()
        self.bits = b
        d = error_decimals(b["total_se"])
        total = rf"{b['total']:.{d}f} $\pm$ {b['total_se']:.{d}f}"
        T, t, bits, share = b["T"], b["t"], b["bits"], b["share"]
        top = nice_step(bits.max(), 4) * np.ceil(bits.max() / nice_step(bits.max(), 4))
        step = nice_step(top, 4)
        axes = Axes(x_range=[0, T, nice_step(T, 5)], y_range=[0, top, step], x_length=9.0, y_length=4.0, tips=False,
                    axis_config={"stroke_width": 2, "include_ticks": True}).shift(DOWN * 0.35 + LEFT * 0.4)
        xs = np.arange(0, T + 1, nice_step(T, 5))
        ticks_x = VGroup(*labels(*[str(int(v)) for v in xs], size=22))
        for lab, v in zip(ticks_x, xs):
            lab.next_to(axes.c2p(v, 0), DOWN, buff=0.15)
        ys = np.arange(0, top + step / 2, step)
        ticks_y = VGroup(*labels(*[f"{v:g}" for v in ys], size=22))
        for lab, v in zip(ticks_y, ys):
            lab.next_to(axes.c2p(0, v), LEFT, buff=0.15)
        # the cumulative share on the right-hand scale: 0 at the axis, 100 % at the top
        shares = VGroup(*labels(r"0\,\%", r"50\,\%", r"100\,\%", colors=[SCHEDULE] * 3, size=22))
        for lab, f in zip(shares, (0, 0.5, 1)):
            lab.next_to(axes.c2p(T, f * top), RIGHT, buff=0.15)
        x_lab = label(r"step $t$", size=24).next_to(ticks_x, DOWN, buff=0.15)
        y_lab = label(r"bits per point", DENOISING, size=22).rotate(np.pi / 2).next_to(ticks_y, LEFT, buff=0.2)
        s_lab = label(r"share so far", SCHEDULE, size=22).rotate(-np.pi / 2).next_to(shares, RIGHT, buff=0.15)
        bars = VGroup(*[Rectangle(width=axes.x_length / T * 0.8, height=max(axes.c2p(0, v)[1] - axes.c2p(0, 0)[1], 1e-4),
                                  stroke_width=0, fill_color=DENOISING, fill_opacity=0.9)
                        .move_to(axes.c2p(k, 0), aligned_edge=DOWN) for k, v in zip(t, bits)])
        self.bits_axes, self.bits_bars = axes, bars
        head = one_line(rf"Where the bits go: the {T - 1} denoising-matching terms, "
                        rf"{tex_text(pm.what)}, {b['n']} held-out points", size=22).next_to(self.title, DOWN, buff=0.15)
        self.play(Create(axes), FadeIn(ticks_x), FadeIn(ticks_y), FadeIn(x_lab), FadeIn(y_lab), FadeIn(head))
        self.play(LaggedStart(*[FadeIn(bar) for bar in bars], lag_ratio=0.02), run_time=2)
        self.pause(2, f"Where do the bits of the ELBO go? Each bar is one denoising-matching term, the KL at step t, "
                      f"for the trained 2-D model, averaged over {b['n']} held-out points and written in bits. Together "
                      f"they are the matching term, {plain_text(total)} bits per point, or "
                      f"{b['total'] * math.log(2):.{d}f} nats. Step 2 alone is "
                      f"{bits[0]:.2f} bits; the last step is {bits[-1]:.4f}. {pm.detail} The terms come from the full "
                      f"sum over t of the ELBO, no sampling of t.")
        cumulative = polyline(axes, np.concatenate([[t[0] - 0.5], t + 0.5]), np.concatenate([[0], share]) * top,
                              SCHEDULE, stroke_width=3)
        half = DashedLine(axes.c2p(b["half"] + 0.5, 0), axes.c2p(b["half"] + 0.5, top), color=SCHEDULE, stroke_width=2)
        self.bits_caption = (rf"half of the {total} matching bits come from $t \le {b['half']}$ of {T}, "
                             rf"nine tenths from $t \le {b['most']}$; $t = 2$ alone holds "
                             rf"{100 * b['first']:.0f}\,\%")
        caption = one_line(self.bits_caption, size=24).to_edge(DOWN, buff=0.25)
        self.play(FadeIn(shares), FadeIn(s_lab), Create(cumulative), run_time=1.5)
        self.play(Create(half), FadeIn(caption))
        self.pause(3, f"The blue curve adds the bars up from the left. Half of the matching bits come from the steps up "
                      f"to t = {b['half']} of {T}, nine tenths from those up to t = {b['most']}, and step 2 alone holds "
                      f"{100 * b['first']:.0f} percent. The ELBO is decided at the first, least noisy steps; the "
                      f"many noisy steps add little. Next: the weight w(t) in each term, and what the simple loss, which "
                      f"drops it, does to this balance.")
        cut(self, self.title)

    # -- 4. the weight the simple loss drops -----------------------------------------------------------------
    def section_weight(self):
        self.next_section("the weight w(t) the simple loss drops")
        s = self.schedule
        T = s.T
        w = elbo_weight(s)
        self.weights = w
        logw = np.log10(w)
        lo, hi = int(np.floor(logw.min())), int(np.ceil(logw.max()))
        # t on a log axis too: u = log10(t); most of w's change is at small t. y is log10(w) - lo, so that
        # the t axis lies at the floor 10^lo (manim puts it at y = 0)
        self.weight_floor = lo
        self.weight_axes = axes = Axes(x_range=[np.log10(2), np.log10(T), 1], y_range=[0, hi - lo, 1], x_length=8.5,
                                       y_length=4.2, tips=False, axis_config={"stroke_width": 2},
                                       x_axis_config={"include_ticks": False}).shift(LEFT * 1.6 + DOWN * 0.15)
        ticks_x = VGroup(*labels(*[str(t) for t in WEIGHT_TICKS if t <= T], size=22))
        for lab, t in zip(ticks_x, [t for t in WEIGHT_TICKS if t <= T]):
            lab.next_to(axes.c2p(np.log10(t), 0), DOWN, buff=0.15)
        every = max(1, (hi - lo + 4) // 5)
        ticks_y = VGroup(*labels(*[rf"$10^{{{k}}}$" for k in range(lo, hi + 1, every)], size=22))
        for lab, k in zip(ticks_y, range(lo, hi + 1, every)):
            lab.next_to(axes.c2p(np.log10(2), k - lo), LEFT, buff=0.15)
        x_lab = label(r"step $t$ (log scale)", size=24).next_to(ticks_x, DOWN, buff=0.2)
        y_lab = label(r"ELBO weight $w(t)$ (nats per unit squared error, log)", size=22).rotate(np.pi / 2)
        y_lab.next_to(ticks_y, LEFT, buff=0.2)
        ts = np.arange(2, T + 1)
        self.weight_curve = polyline(axes, np.log10(ts), logw - lo, DENOISING)
        ratio = w[0] / w[-1]
        notes = VGroup(
            one_line(rf"$w(2) = {sci(w[0], 3)}$", DENOISING, 26),
            one_line(rf"$w({T}) = {sci(w[-1], 3)}$", DENOISING, 26),
            one_line(r"the ELBO weighs $t = 2$", size=24),
            one_line(rf"${sci(ratio)}$ times more", size=24),
            one_line(rf"than $t = {T}$", size=24),
        ).arrange(DOWN, aligned_edge=LEFT).next_to(axes, RIGHT, buff=0.3).shift(UP * 1.0)
        sched = label(r"schedule: " + schedule_tex(s), size=22)
        sched.next_to(self.title, DOWN, buff=0.15)
        self.play(Create(axes), FadeIn(ticks_x), FadeIn(ticks_y), FadeIn(x_lab), FadeIn(y_lab), FadeIn(sched))
        self.play(Create(self.weight_curve), run_time=2.5)
        self.play(FadeIn(notes))
        self.pause(3, f"Back from the 2-D model to the schedule of this part, {s.describe()}. What does dropping "
                      f"the weight change? The ELBO's weight against t, on log scales: "
                      f"{plain_text(sci(w[0], 3))} at t = 2, {plain_text(sci(w[-1]))} at t = {T}. The ELBO counts the first "
                      f"steps about {plain_text(sci(ratio))} times more than the last.")
        flat = one_line(r"$\mathcal{L}_{\mathrm{simple}}$ weighs every $t$ alike: it spends the network on large $t$,"
                        r" which the ELBO barely counts (Ho et al. 2020 drop it too, on the noise)", size=24)
        flat.to_edge(DOWN, buff=0.3)
        self.play(FadeIn(flat))
        self.pause(2, "The simple loss counts every t alike, so it spends the network's capacity on large t, where the "
                      "ELBO barely looks. Ho and colleagues dropped the weight too, for a network that predicts the "
                      "noise: their unweighted loss is, written on x_0, weighted by the signal-to-noise ratio, and "
                      "it gave better samples at the price of a worse likelihood. Which weighting gives the best "
                      "samples is found by trying, not derived.")
        self.weight_notes = notes
        cut(self, self.title)

    # -- 4. one training step, drawn ----------------------------------------------------------------------
    def denoiser_and_image(self):
        """(denoiser, x_0 [3, 32, 32] in [-1, 1], what x̂_0 is, as LaTeX text)."""
        src = self.src
        if src.denoiser is not None:
            images = src.run.test_images()[:1] if src.run is not None else example_images(1)
            from vdm.data import to_float

            self.who_words = src.detail
            return src.denoiser, to_float(images)[0], src.note
        x0 = example_x0(1)[0]
        den = LeakyOracle(x0.unsqueeze(0), self.schedule, LEAK)
        self.who_words = (f"There is no trained image run, so a deliberately imperfect denoiser that leaves {LEAK:g} of "
                          "the noise in its guess stands in for the network.")
        return den, x0, (r"the deliberately imperfect $\hat{x}_0 = x_0 + "
                         rf"{LEAK:g}\,(x_t - \sqrt{{\bar\alpha_t}}\,x_0)$ stands in for an image network")

    def section_step(self):
        self.next_section("one training step, drawn")
        den, x0, who = self.denoiser_and_image()
        ex = training_examples(den, self.schedule, x0)
        self.examples = ex
        sig, noi = self.schedule.signal_coef(), self.schedule.noise_coef()
        h = 1.05
        heads = labels(r"$x_0$", r"$\epsilon \sim \mathcal{N}(0, \mathbf{I})$", r"$x_t$", r"$\hat{x}_0(x_t, t)$",
                       colors=[X0, EPS, XT, XHAT], size=24)
        rows = Group()
        self.example_texts = []
        for i in range(len(ex["t"])):
            t = int(ex["t"][i])
            a, b = float(sig[t]), float(noi[t])
            kl = float(ex["kl"][i])
            nums = [rf"{a:.3f}\,\cdot", rf"+\ {b:.3f}\,\cdot", "="]
            texts = labels(*[f"${n}$" for n in nums], size=26)
            info_lines = [rf"$t = {t}$", rf"MSE $= {float(ex['mse'][i]):.4f}$",
                          (rf"term $= {kl:.4g}$ nats" if t >= 2 else r"$t = 1$: reconstruction")]
            info = VGroup(*labels(*info_lines, size=22)).arrange(DOWN, aligned_edge=LEFT, buff=0.08)
            self.example_texts.append((t, a, b, float(ex["mse"][i]), kl, info_lines))
            imgs = [pixel_image(x0, h), pixel_image(ex["eps"][i].clamp(-1, 1), h), pixel_image(ex["x_t"][i], h),
                    pixel_image(ex["x0_hat"][i].clamp(-1, 1), h)]
            arrow = Arrow(LEFT * 0.35, RIGHT * 0.35, buff=0, stroke_width=3, max_tip_length_to_length_ratio=0.3,
                          color=XHAT)
            # each coefficient before the image it multiplies: a x_0 + b eps = x_t, read left to right
            row = Group(texts[0], imgs[0], texts[1], imgs[1], texts[2], imgs[2], arrow, imgs[3],
                        info).arrange(RIGHT, buff=0.18)
            row.imgs = imgs
            rows.add(row)
        rows.arrange(DOWN, buff=0.28, aligned_edge=LEFT)
        for head, k in zip(heads, (1, 3, 5, 7)):
            head.next_to(rows[0][k], UP, buff=0.15)
        block = Group(VGroup(*heads), rows)
        block.next_to(self.title, DOWN, buff=0.3).set_x(0)
        if block.width > MAX_WIDTH:
            block.scale_to_fit_width(MAX_WIDTH)
        who_lab = one_line(who, size=20).to_edge(DOWN, buff=0.25)
        self.rows = rows
        self.play(FadeIn(VGroup(*heads)), FadeIn(who_lab))
        for row, (t, a, b, mse, kl, _) in zip(rows, self.example_texts):
            self.play(LaggedStart(*[FadeIn(m) for m in row], lag_ratio=0.12), run_time=2.0)
            self.pause(2, f"One training example: draw x_0, a step t = {t} and noise epsilon; x_t is {a:.3f} times x_0 "
                          f"plus {b:.3f} times the noise. The denoiser guesses x_0 from x_t; the loss is the mean "
                          f"squared error, {mse:.4f}, and the ELBO term it stands for is {kl:.4g} nats. "
                          + (self.who_words if t == int(ex["t"][0]) else ""))
        big_t = int(ex["t"].argmax())
        small_t = int(ex["t"].argmin())
        box = SurroundingRectangle(Group(rows[big_t][7], rows[big_t][8]), buff=0.06, color=BOX, stroke_width=2.5)
        # a network's guess from little signal is a blurry average; the stand-in's is x_0 plus more of the noise
        guess = "blurry" if self.src.denoiser is not None else "noisier"
        cap = one_line(rf"large $t$ ({int(ex['t'][big_t])}): little of $x_0$ is left in $x_t$, the guess is {guess} and its MSE"
                      rf" {float(ex['mse'][big_t]):.4f} is {'larger' if ex['mse'][big_t] > ex['mse'][small_t] else 'not larger'}"
                         rf" than at $t = {int(ex['t'][small_t])}$", size=24)
        cap.next_to(who_lab, UP, buff=0.2)
        self.step_caption = cap
        self.play(Create(box), FadeIn(cap))
        self.pause(3, f"Compare the rows: at t = {int(ex['t'][big_t])} little of x_0 is left in x_t, and the guess is "
                      f"worse than at t = {int(ex['t'][small_t])}. The weight w(t) makes the ELBO care much less about "
                      "that error.")
        cut(self, self.title)

    # -- 5. the algorithm ------------------------------------------------------------------------------
    def section_algorithm(self):
        self.next_section("the training loop")
        lines = VGroup(
            label(r"repeat", size=30),
            tex(r"x_0 \sim \text{data},\quad t \sim \mathcal{U}\{1, \dots, T\},\quad \epsilon \sim \mathcal{N}(0, \mathbf{I})",
                font_size=32),
            tex(r"x_t = \sqrt{\bar{\alpha}_t}\, x_0 + \sqrt{1-\bar{\alpha}_t}\,\epsilon", font_size=32),
            tex(r"\theta \leftarrow \theta - \eta\, \nabla_\theta \left\| \hat{x}_\theta(x_t, t) - x_0 \right\|^2",
                r"\quad \text{(Adam, a batch at a time)}", font_size=32),
            label(r"until the held-out loss stops falling", size=30),
        ).arrange(DOWN, aligned_edge=LEFT, buff=0.35)
        for m in lines[1:4]:
            m.shift(RIGHT * 0.8)
        lines.next_to(self.title, DOWN, buff=0.6).set_x(0)
        box = SurroundingRectangle(lines, buff=0.3, color=BOX, stroke_width=2)
        note = one_line(r"one $t$ and one $\epsilon$ per image, drawn afresh at every step", size=24)
        note.to_edge(DOWN, buff=0.4)
        say = {1: "The training loop. Draw a batch of images, one step t per image uniformly, and one noise draw.",
               3: "Corrupt each image in closed form, and take a gradient step on the squared error of the "
                  "network's guess of x_0."}
        for i, m in enumerate(lines):
            self.play(FadeIn(m, shift=DOWN * 0.15), *( [Create(box)] if i == 0 else []), run_time=1.0)
            if i in (1, 3):
                self.pause(i + 1, say[i])
        self.play(FadeIn(note))
        self.pause(len(lines), "Repeat until the held-out loss stops falling. Every step draws new t and new noise, "
                               "so the network sees every step of the chain. In this project that loop is vdm train.")
        cut(self, self.title)

    # -- 6. a real run's loss ------------------------------------------------------------------------------
    def no_run(self, what: str):
        """A run without any ``what`` yet (stopped before its first record): one line, then on."""
        msg = one_line(rf"this run has no {what} yet", size=30).move_to([0, 0, 0])
        self.play(FadeIn(msg))
        self.pause(1, f"This run has no {what} yet: it was stopped before it wrote one.")
        cut(self, self.title)

    def shown_run(self):
        """(run, its schedule, the line naming it): the image run, else the lecture's 2-D model's run."""
        if self.src.run is not None:  # the training examples were drawn with it and named it already
            self.run_words = "The record of the run whose model drew the training examples, as it trained."
            return self.src.run, self.schedule, self.src.note
        from animations import model2d

        pm = model2d.point_model()
        why = "no image run" if self.src.denoiser is None else "the checkpoint has no run folder"
        self.run_words = (f"There is {why}, so the lecture's 2-D model shows what training looks like: points "
                          f"instead of images, the same losses. {pm.detail}")
        return pm.run, pm.schedule, why + ", so the 2-D model shows training: " + pm.what

    def section_run(self):
        self.next_section("a real run: the loss")
        run, schedule, note = self.shown_run()
        self.shown = run
        try:
            records, _bad = run.metrics()
        except ValueError as e:  # vdm.run says what is missing; the scene says what it needs
            raise ValueError(f"{str(e).rstrip('.')}; the training scene needs a run that has trained.") from None
        cv = curve(records)
        self.curve = cv
        if not cv["train"]:
            return self.no_run("training record")
        # a --schedule learned run trains on the continuous-time -ELBO in bits/dim (vdm.continuous.training_nats),
        # a --weighting edm run on EDM's 1/c_out^2-weighted error: neither is the MSE its evals report, so the
        # two are not drawn on one axis
        learned = schedule.kind == "learned"
        edm = getattr(run.config, "weighting", "default") == "edm"
        points = run.config.points
        own = learned or edm
        evals = [] if own else cv["eval"]
        steps = [s for s, _ in cv["train"]] + [s for s, _, _ in evals]
        losses = [v for _, v in cv["train"]] + [v for _, v, _ in evals]
        x_max = max(steps) * 1.02
        y_max = max(losses) * 1.1
        y_text = (r"$-$ELBO trained on (bits/dim)" if learned else
                  r"$\|x_0 - \hat{x}_0\|^2 / c_{\mathrm{out}}^2$ (per value)" if edm else r"MSE on $x_0$ (per value)")
        axes, x_lab, y_lab = step_axes(x_max, y_max, y_text)
        self.loss_axes = axes
        who = one_line(note, size=20).next_to(self.title, DOWN, buff=0.15)
        self.run_note = who
        tr = np.array(cv["train"], dtype=np.float64)
        self.train_line = polyline(axes, tr[:, 0], tr[:, 1], XHAT)
        self.eval_dots = VGroup(*[Dot(axes.c2p(s, v), radius=0.07, color=X0) for s, v, _ in evals])
        first, last = cv["train"][0], cv["train"][-1]
        facts = [rf"{'weighted ' if edm and not learned else ''}train loss {first[1]:.4f} at step {first[0]}",
                 rf"$\to$ {last[1]:.4f} at step {last[0]}"]
        if cv["eval"]:
            s_e, v_e, bpd = cv["eval"][-1]
            facts.append(rf"held-out {'MSE ' if own else ''}{v_e:.4f} at step {s_e}")
            if own:  # the train loss above is another quantity
                facts.append("(unweighted)")
            if bpd is not None:  # with the estimate's standard error where the record states one
                se = cv["bpd_se"]
                facts.append(rf"$-$ELBO {bpd:.2f}" + (rf" $\pm$ {se:.2f}" if se is not None else "") + " bits/dim")
            ref = cv["reference"]
            if ref is not None:  # a Gaussian-mixture run: the optimal denoiser's -ELBO and the true -log q
                facts.append(rf"optimal $\hat{{x}}_0$: {ref['optimal']:.2f} $\pm$ {ref['optimal_se']:.2f} bits/dim")
                facts.append(rf"true $-\log q$: {ref['nll']:.2f} $\pm$ {ref['nll_se']:.2f} bits/dim")
            if points:
                facts.append("(bits of a density)")
        if cv["elapsed"] is not None:
            facts.append(rf"{cv['elapsed'] / 60:.1f} min on {tex_text(str(cv['device']))}")
        self.loss_facts = facts
        keys = ([label(r"train loss: continuous-time $-$ELBO", XHAT, 22)] if learned else
                # the weight 1/c_out(t)^2 is not derived on these slides: say what it is and why it is harmless
                [label(r"train loss: MSE on $x_0$ $/\, c_{\mathrm{out}}(t)^2$", XHAT, 22),
                 label(r"$c_{\mathrm{out}}(t)^2$: the error of the best", XHAT, 22),
                 label(r"linear guess of $x_0$ from $x_t$ (Karras", XHAT, 22),
                 label(r"et al. 2022); not the simple loss", XHAT, 22)] if edm else
                [label("train loss (mean per record)", XHAT, 22), label("held-out loss (eval)", X0, 22)])
        legend = VGroup(*keys, *labels(*facts, size=22)).arrange(DOWN, aligned_edge=LEFT, buff=0.12)
        legend.next_to(axes, RIGHT, buff=0.35).align_to(axes, UP)
        self.play(FadeIn(who), Create(axes), FadeIn(x_lab), FadeIn(y_lab))
        self.pause(2, "Now a real run. " + self.run_words)
        self.play(Create(self.train_line), run_time=3)
        self.play(FadeIn(self.eval_dots), FadeIn(legend))
        edm_words = ("This run did not train on the simple loss. It divided each t's squared error by c_out of t "
                     "squared, the weighting of Karras and colleagues, 2022; c_out of t squared is the error of the "
                     "best linear guess of x_0 from x_t, so every t counts about alike. A weight per t changes where "
                     "the network spends its capacity, not the best guess at any t, which is still the posterior "
                     "mean of x_0. So the train loss is weighted and the held-out MSE is not: the two numbers are "
                     "not comparable. " if edm and not learned else "")
        measured = "; ".join(plain_text(f) for f in facts).replace("; (unweighted)", " (unweighted)")
        self.pause(len(facts), edm_words + "Its loss curve as it trained, and on the right what the run measured: " +
                   measured + ".")
        cut(self, self.title)
        if points and cv["reference"] is not None and len(cv["bound"]) >= 2:
            self.section_bound(cv, who)

    def section_bound(self, cv: dict, who):
        """A 2-D run's held-out -ELBO at each evaluation, ± its standard error, between the optimal denoiser's
        -ELBO and the true -log q(x_0) (vdm.gmm, in the run's eval records): the progress a flat loss hides."""
        self.next_section("a real run: the bound")
        b, ref = np.array(cv["bound"], dtype=np.float64), cv["reference"]
        x_max = max(b[:, 0].max(), cv["train"][-1][0]) * 1.02
        y_max = max((b[:, 1] + b[:, 2]).max(), ref["optimal"] + ref["optimal_se"]) * 1.12
        axes, x_lab, y_lab = step_axes(x_max, y_max, r"held-out $-$ELBO (bits/dim)")
        self.bound_axes = axes
        lines = VGroup()
        for v, colour in ((ref["optimal"], XHAT), (ref["nll"], X0)):
            lines.add(DashedLine(axes.c2p(0, v), axes.c2p(x_max, v), color=colour, stroke_width=3))
        self.bound_bars = VGroup(*[Line(axes.c2p(s, v - e), axes.c2p(s, v + e), color=XT, stroke_width=3)
                                   for s, v, e in b])
        self.bound_dots = VGroup(*[Dot(axes.c2p(s, v), radius=DOT_RADIUS, color=XT) for s, v, _ in b])
        (s0, v0, e0), (s1, v1, e1) = b[0], b[-1]
        # a bar shorter than the dot it passes through is hidden by it: the legend says so instead of promising bars
        hidden = all(bar.height < 2 * DOT_RADIUS for bar in self.bound_bars)
        facts = [(rf"model: {v0:.2f} $\pm$ {e0:.2f} at step {s0:.0f}", XT),
                 (rf"$\to$ {v1:.2f} $\pm$ {e1:.2f} at step {s1:.0f}", XT),
                 (rf"optimal $\hat{{x}}_0 = \mathbb{{E}}[x_0 \mid x_t]$: {ref['optimal']:.2f} $\pm$ "
                  rf"{ref['optimal_se']:.2f}", XHAT),
                 (rf"true $-\log q(x_0)$: {ref['nll']:.2f} $\pm$ {ref['nll_se']:.2f}", X0),
                 (r"bits/dim; bars: $\pm$ one standard error" + (r" (within the dots)" if hidden else ""), WHITE)]
        self.bound_facts = [f for f, _ in facts]
        legend = VGroup(*labels(*self.bound_facts, colors=[c for _, c in facts], size=22)).arrange(
            DOWN, aligned_edge=LEFT, buff=0.12).next_to(axes, RIGHT, buff=0.35).align_to(axes, UP)
        over = legend.get_right()[0] - (MAX_WIDTH / 2)  # keep the legend inside the frame's margin
        if over > 0:
            VGroup(axes, x_lab, y_lab, self.bound_bars, self.bound_dots, lines, legend).shift(LEFT * over)
        self.play(FadeIn(who), Create(axes), FadeIn(x_lab), FadeIn(y_lab))
        self.play(FadeIn(self.bound_dots), FadeIn(self.bound_bars), FadeIn(legend[:2]))
        first, last = cv["train"][0][1], cv["train"][-1][1]
        self.pause(2, f"The loss hardly moved, {first:.2f} to {last:.2f}: most of it is what no denoiser can know "
                      f"about x_0 from x_t. The bound shows the progress: the held-out negative ELBO at each "
                      f"evaluation, with its standard error, fell from {v0:.2f} to {v1:.2f} bits per dimension.")
        self.play(Create(lines), FadeIn(legend[2:]))
        self.pause(3, f"For this data set both references are exact. The optimal denoiser, the true E[x_0 | x_t], "
                      f"reaches {ref['optimal']:.2f}: the model ends {v1 - ref['optimal']:.2f} above it. The true "
                      f"negative log-likelihood is {ref['nll']:.2f}: the distance from the optimal bound to it is the "
                      f"bound's own gap: Gaussian reverse steps, T of them, and the prior and decoder terms. No "
                      f"network closes it, since E[x_0 | x_t] is the best x-hat-0 there is.")
        cut(self, self.title)

    # -- 7. the run's noise schedule ------------------------------------------------------------------------
    def section_schedule(self):
        """The run's log SNR(t) beside the assignment's (a learned gamma(t) is -log SNR(t)); only with a run."""
        self.snr = None
        if self.src.denoiser is None:
            return
        self.next_section("the run's noise schedule")
        edm = self.src.run is not None and getattr(self.src.run.config, "weighting", "default") == "edm"
        why = (r"learned: $\gamma(t) = -\log \mathrm{SNR}(t)$ is trained on the ELBO, the network on EDM's weighting"
               if self.schedule.kind == "learned" and edm else
               r"learned: $\gamma(t) = -\log \mathrm{SNR}(t)$ is trained with the network on the ELBO"
               if self.schedule.kind == "learned" else r"the weight $w(t)$ and the loss's $x_t$ follow this curve")
        say = ("This run's noise schedule as log signal-to-noise ratio against the fraction of the chain, next to the "
               "assignment's constant alpha.", "Where each schedule crosses SNR = 1: the run's own schedule spreads "
               "the chain's steps over the whole range where the image is still visible.")
        self.snr = play_snr(self, self.schedule, self.title, why, say)
        cut(self, self.title)

    # -- 8. its samples over training --------------------------------------------------------------------
    def section_samples(self):
        self.next_section("its samples as training goes on")
        run = self.shown
        if run.config.points:
            return self.sample_clouds(run)
        grids = sample_grids(run)
        self.grids = grids
        if not grids:
            return self.no_run("sample grid")
        h = min(3.4, 12.8 / (len(grids) + 1) - 0.3)
        data = grid_image(grid_pixels(run.test_images()), h)
        imgs = [data] + [grid_image(sample_grid_pixels(p), h) for _, p in grids]
        names = labels("held-out data", *[("latest" if s < 0 else f"after step {s}") for s, _ in grids], size=24)
        cells = Group(*[Group(img, lab) for img, lab in zip(imgs, names)])
        for img, lab in zip(imgs, names):
            lab.next_to(img, DOWN, buff=0.15)
        cells.arrange(RIGHT, buff=0.3).next_to(self.title, DOWN, buff=0.9).set_x(0)
        self.data_image, self.grid_images = imgs[0], imgs[1:]
        who = self.run_note if hasattr(self, "run_note") else one_line(self.src.note, size=20)
        who.next_to(self.title, DOWN, buff=0.15)
        cap = one_line(r"left: held-out data; then samples from $x_T \sim \mathcal{N}(0, \mathbf{I})$ with the model "
                       r"as it was then", size=24).to_edge(DOWN, buff=0.4)
        self.play(FadeIn(who), FadeIn(cap), FadeIn(cells[0]))
        self.pause(1, f"On the left, {GRID_SIDE * GRID_SIDE} images of the data the run trained on, held out from "
                      "training: what its samples should come to look like.")
        for (st, _), cell in zip(grids, cells[1:]):
            self.play(FadeIn(cell, shift=UP * 0.1), run_time=1.0)
            self.pause(1, "Samples drawn during training " + ("at the end" if st < 0 else f"after step {st}") +
                       ", each from pure noise with the model as it was then" +
                       (" (the run's samples folder)." if st == grids[0][0] else "."), hold=2.5)
        self.pause(2, "From noise to something image-like: the samples improve as the loss falls.")

    def sample_clouds(self, run):
        """A 2-D run's samples over training (samples/step-*.npy) as clouds, over the data's exact density."""
        from animations import model2d
        from animations.cloud2d import CloudPanel
        from vdm.cloud import density_grid
        from vdm.run import read_points, sample_path

        found = [(st, read_points(sample_path(run.path, st, ".npy"))) for st, _ in sample_grids(run)]
        found = [(st, pts) for st, pts in found if pts is not None]
        self.grids = [(st, sample_path(run.path, st, ".npy")) for st, _ in found]
        if not found:
            return self.no_run("sample cloud")
        pm = model2d.point_model()
        side = min(3.2, (MAX_WIDTH - 0.3 * (len(found) - 1)) / len(found))
        panels = [CloudPanel(side) for _ in found]
        Group(*panels).arrange(RIGHT, buff=0.3).next_to(self.title, DOWN, buff=1.0).set_x(0)
        q0 = None if pm.mixture is None else density_grid(pm.mixture, pm.schedule, 0, 96)
        self.sample_points = [pts for _, pts in found]
        cells = []
        for p, (st, pts) in zip(panels, found):
            parts = [p] + ([p.shading(q0)] if q0 is not None else []) + [p.cloud(pts, XT)]
            cells.append(Group(*parts))
        names = labels(*[f"after step {st}" for st, _ in found], size=24)
        for lab, p in zip(names, panels):
            lab.next_to(p, DOWN, buff=0.15)
        who = self.run_note
        who.next_to(self.title, DOWN, buff=0.15)
        shade = r"; shading: the data's exact density" if q0 is not None else ""
        cap = one_line(rf"each cloud: {len(found[0][1]):,} samples from "
                       rf"$x_T \sim \mathcal{{N}}(0, \mathbf{{I}})$ with the model as it was then{shade}",
                       size=22).to_edge(DOWN, buff=0.4)
        self.play(FadeIn(who), FadeIn(cap))
        for (st, _), cell, lab in zip(found, cells, names):
            self.play(FadeIn(cell, shift=UP * 0.1), FadeIn(lab), run_time=1.0)
            self.pause(1, f"Samples drawn during training after step {st}, each from pure noise with the model as it was "
                          "then" + (", over the data's exact density." if q0 is not None else "."), hold=2.5)
        self.pause(2, "The cloud gathers onto the data as training goes on. " + pm.detail)
