"""Scene 1, forward diffusion: an image dissolving into noise, and the closed form q(x_t | x_0).

    x_t = sqrt(alpha_t) x_{t-1} + sqrt(1 - alpha_t) eps          (one step, vdm.diffusion.forward_chain)
    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I) (exercise 1b, reparameterisation)

Render: manim -pql animations/forward_diffusion.py ForwardDiffusion
"""

from __future__ import annotations

import numpy as np
import torch
from manim import (DOWN, LEFT, RIGHT, UP, Axes, Create, DashedLine, FadeIn, FadeOut, Group, LaggedStart, Rectangle,
                   SurroundingRectangle, Title, ValueTracker, VGroup, Write, always_redraw, linear)

from animations.lecture_data import example_x0, lecture_schedule
from animations.lecture_scene import LectureScene, cut, morph, play_derivation
from animations.mobjects.images import framed, pixel_image, set_pixels
from animations.mobjects.live_number import LiveNumber
from animations.mobjects.plots import EdgeAxes, polyline, snr_one_at
from animations.mobjects.text import derivation, label, labels, one_line, tex
from animations.palette import ALPHA, BOX, EPS, X0, XT
from vdm.diffusion import forward_chain, q_mean_var, q_sample
from vdm.elbo import gaussian_log_prob
from vdm.continuous import snr_curve
from vdm.schedule import DEFAULT_FINAL_SIGNAL, Schedule, tune_alpha

STRIP_T = (0, 3, 10, 30, 100, 500)  # log-spaced: with constant alpha only t < 38 keeps SNR above 1
CHAIN_SECONDS = 8.0  # the sweep 0..T, log-spaced in t: as long on t < 20 as on 20 < t < 500
CURVE_STEP = 5  # plot every 5th t: 101 points per curve keeps the alpha sweep light
ALPHA_SWEEP = (0.95, 0.995)
PIXEL_STOPS = (1, 3, 10, 30, 100, 500)  # log-spaced t where the one-pixel sweep stops
PIXEL_DRAWS = 4000  # independent runs of the chain for one pixel: the histogram under the density
PIXEL_GRID = np.linspace(-3.2, 3.2, 321)


def log_t(u: float, T: int) -> int:
    """t at fraction u of a log-spaced sweep: (T + 1)^u - 1, so equal times cover equal ratios of t + 1."""
    return max(0, min(T, int(round((T + 1) ** u - 1))))


class ForwardDiffusion(LectureScene):
    def construct(self):
        self.schedule = lecture_schedule()
        self.x0 = example_x0(1)[0]
        g = torch.Generator().manual_seed(0)
        self.chain = forward_chain(self.schedule, self.x0, generator=g)  # [T+1, 3, 32, 32]
        self.noise = torch.randn(self.x0.shape, generator=g)
        self.section_chain()
        self.section_pixel()
        self.section_closed_form()
        self.section_curves()
        self.section_alpha()

    # -- 1. the chain -------------------------------------------------------------------
    def section_chain(self):
        self.next_section("the forward chain")
        T = self.schedule.T
        title = Title(r"Forward diffusion: $q(x_t \mid x_{t-1})$, step by step", font_size=36)
        step = tex(r"x_t = \sqrt{\alpha_t}\, x_{t-1} + \sqrt{1-\alpha_t}\,\epsilon", font_size=36)
        step.next_to(title, DOWN)
        u = ValueTracker(0)  # the sweep's fraction; t = log_t(u)

        def t_now() -> int:
            return log_t(u.get_value(), T)

        big = pixel_image(self.chain[0], height=3.2).shift(LEFT * 3.2 + UP * 0.2)
        big.add_updater(lambda m: set_pixels(m, self.chain[t_now()]))
        t_label = VGroup(tex("t ="), LiveNumber(0, "{:.0f}")).arrange(RIGHT)
        t_label[1].add_updater(lambda m: m.set_value(t_now()))
        t_label.next_to(big, DOWN)
        coef = VGroup(tex(r"\sqrt{\bar{\alpha}_t} ="), LiveNumber(1.0, "{:.3f}"))
        coef.arrange(RIGHT)
        coef[1].add_updater(lambda m: m.set_value(float(self.schedule.signal_coef()[t_now()])))
        info = VGroup(
            label(rf"constant $\alpha = {self.schedule.params[0]:.5f}$, $T = {T}$", ALPHA),
            coef,
        ).arrange(DOWN, aligned_edge=LEFT).next_to(big, RIGHT, buff=1.0)
        self.play(Write(title, run_time=1), FadeIn(step, run_time=1))
        self.add(big, t_label, info)
        self.pause(1, "The forward process only adds noise. At every step we shrink the image a little, by the "
                      "square root of alpha, and add a little Gaussian noise, with variance one minus alpha. Nothing "
                      "here is learned. On the right: how much of the original image is left.")
        self.play(u.animate.set_value(1), run_time=CHAIN_SECONDS, rate_func=linear)
        big.clear_updaters()
        t_label[1].clear_updaters()
        coef[1].clear_updaters()

        strip = VGroup()
        frames = []
        for tt, lab in zip(STRIP_T, labels(*[f"t={tt}" for tt in STRIP_T], size=26, math=True)):
            img = pixel_image(self.chain[tt], height=1.5)
            frames.append(img)
            strip.add(VGroup(framed(img), lab))
        for img, cell in zip(frames, strip):
            cell[1].next_to(cell[0], DOWN, buff=0.1)
        strip.arrange(RIGHT, buff=0.35).shift(DOWN * 0.8)
        for img, cell in zip(frames, strip):
            img.move_to(cell[0])
        self.play(FadeOut(big), FadeOut(t_label), FadeOut(info))
        self.play(LaggedStart(*[FadeIn(VGroup(cell), img) for cell, img in zip(strip, frames)], lag_ratio=0.3),
                  run_time=2)
        self.strip_images = frames
        self.pause(2, "Watch the image as t runs from 0 to T, and the number on the right fall. Then the same chain "
                      "at a few steps. The steps are spaced logarithmically, because everything "
                      "interesting happens early: by t = 100 the image is hard to recognise, and at t = T it is pure "
                      "noise. Keep this picture in mind when we choose alpha at the end of this part.")
        cut(self)  # the next section is the next slide

    # -- 1b. one pixel's Gaussian, before any algebra ------------------------------------------------
    def pixel_density(self, t: int) -> np.ndarray:
        """q(x_t | x_0) over PIXEL_GRID for this pixel's x_0 (vdm.diffusion.q_mean_var, vdm.elbo.gaussian_log_prob)."""
        m, v = q_mean_var(self.schedule, self.pixel_x0, t)
        grid = torch.as_tensor(PIXEL_GRID, dtype=torch.float64)
        return gaussian_log_prob(grid, m, v).exp().numpy()

    def pixel_bars(self, t: int) -> VGroup:
        """The histogram (as a density) of x_t over PIXEL_DRAWS runs of the step-by-step chain."""
        values = self.pixel_chain[t].numpy()
        dens, edges = np.histogram(values, bins=np.linspace(-3.2, 3.2, 65), density=True)
        bars = VGroup()
        for d, lo, hi in zip(dens, edges[:-1], edges[1:]):
            if d <= 0:
                continue
            p0, p1 = self.pixel_axes.c2p(lo, 0), self.pixel_axes.c2p(hi, min(d, 3.4))
            bars.add(Rectangle(width=p1[0] - p0[0], height=p1[1] - p0[1], stroke_width=0, fill_color=XT,
                               fill_opacity=0.45).move_to((p0 + p1) / 2))
        return bars

    def section_pixel(self):
        """One pixel, PIXEL_DRAWS times down the chain: its values spread into the Gaussian q(x_t | x_0)."""
        self.next_section("one pixel's Gaussian spreading")
        T = self.schedule.T
        self.pixel_x0 = self.x0[0, 16, 16].double().reshape(1)  # red channel, centre pixel
        g = torch.Generator().manual_seed(1)
        self.pixel_chain = forward_chain(self.schedule, self.pixel_x0.expand(PIXEL_DRAWS).clone(), generator=g)
        title = Title(r"One pixel, " + f"{PIXEL_DRAWS:,}" + r" runs of the chain: $q(x_t \mid x_0)$ spreads",
                      font_size=36)
        self.pixel_axes = axes = EdgeAxes(x_range=[-3.2, 3.2, 1], y_range=[0, 3.4, 1], x_length=8.6, y_length=4.0,
                                      tips=False, axis_config={"include_numbers": True, "font_size": 22}
                                      ).shift(LEFT * 1.9 + DOWN * 0.1)
        x_lab = label(r"$x_t$: the pixel's value after $t$ steps (data scale $[-1, 1]$)", size=24)
        x_lab.next_to(axes.x_axis, DOWN, buff=0.4)
        y_lab = label("density", size=24).rotate(np.pi / 2).next_to(axes, LEFT, buff=0.1)
        u = ValueTracker(0.0)

        def t_now() -> int:
            return max(1, log_t(u.get_value(), T))

        density = always_redraw(lambda: polyline(axes, PIXEL_GRID, self.pixel_density(t_now()), XT, 4))
        bars = always_redraw(lambda: self.pixel_bars(t_now()))
        x0_line = DashedLine(axes.c2p(float(self.pixel_x0), 0), axes.c2p(float(self.pixel_x0), 3.3), color=X0,
                             stroke_width=2)
        fs = 30
        num_t = LiveNumber(1, "{:.0f}", fs)
        num_m = LiveNumber(0.0, "{:.3f}", fs, X0)
        num_v = LiveNumber(0.0, "{:.3f}", fs, EPS)
        panel = VGroup(VGroup(tex("t =", font_size=fs), num_t).arrange(RIGHT, buff=0.15),
                       VGroup(tex(r"\sqrt{\bar{\alpha}_t}\, x_0 =", font_size=fs), num_m).arrange(RIGHT, buff=0.15),
                       VGroup(tex(r"1-\bar{\alpha}_t =", font_size=fs), num_v).arrange(RIGHT, buff=0.15),
                       ).arrange(DOWN, aligned_edge=LEFT, buff=0.3).next_to(axes, RIGHT, buff=0.4).align_to(axes, UP)

        def refresh(_):
            t = t_now()
            m, v = q_mean_var(self.schedule, self.pixel_x0, t)
            num_t.set_value(t)
            num_m.set_value(float(m))
            num_v.set_value(float(v))

        panel.add_updater(refresh)
        refresh(None)
        legend = VGroup(label(r"bars: $x_t$ of the " + f"{PIXEL_DRAWS:,}" + r" chains", XT, 22),
                        label(r"curve: $\mathcal{N}(\sqrt{\bar{\alpha}_t}\,x_0,\ 1-\bar{\alpha}_t)$", XT, 22),
                        label(rf"dashed: this pixel's $x_0 = {float(self.pixel_x0):.3f}$", X0, 22),
                        ).arrange(DOWN, aligned_edge=LEFT).next_to(panel, DOWN, buff=0.5, aligned_edge=LEFT)
        self.play(Write(title, run_time=1), Create(axes), FadeIn(x_lab), FadeIn(y_lab), FadeIn(x0_line))
        self.add(bars, density)
        self.play(FadeIn(panel), FadeIn(legend))
        self.pause(2, "Before any algebra, one pixel. We run the chain thousands of times from the same starting "
                      "value and histogram where the pixel ends up after t steps. The curve is the Gaussian the closed "
                      "form predicts; the dashed line is where the pixel started.")
        def note(t: int) -> str:
            m, v = (float(x) for x in q_mean_var(self.schedule, self.pixel_x0, t))
            kept = float(self.schedule.signal_coef()[t])
            if t == 1:
                return r"one step: a narrow Gaussian around $\sqrt{\alpha}\,x_0$, variance $1 - \alpha$"
            if t == T:
                return rf"$t = T$: mean {m:.3f}, variance {v:.3f}: $\mathcal{{N}}(0, 1)$ whatever $x_0$ was"
            side = ">" if v ** 0.5 > abs(m) else "<"
            return (rf"$\sqrt{{\bar{{\alpha}}_t}} = {kept:.3f}$ of $x_0$ kept; noise std ${v ** 0.5:.3f} {side}$ "
                    rf"$|\text{{mean}}| = {abs(m):.3f}$; the histogram of the chains follows the curve")

        def say(t: int) -> str:
            m, v = (float(x) for x in q_mean_var(self.schedule, self.pixel_x0, t))
            if t == 1:
                return ("After one step the pixel has barely moved: a narrow Gaussian around its start, shrunk by "
                        "the square root of alpha, with variance one minus alpha.")
            if t == T:
                return (f"At t = T the mean is {m:.3f} and the variance {v:.3f}: a standard normal, whatever the "
                        "pixel was. This is why the prior p(x_T) can be a fixed standard Gaussian.")
            first = t == next(s for s in PIXEL_STOPS if s > 1)
            return (f"At t = {t} the mean has shrunk to {m:.3f} and the spread grown to a standard deviation of "
                    f"{v ** 0.5:.3f}. " + ("The histogram of the simulated chains sits on the predicted Gaussian: the "
                                           "closed form is not an approximation." if first else
                                           "The histogram still sits on the curve."))

        caption = None
        self.pixel_stops = []
        for stop in PIXEL_STOPS:
            if stop > T:
                continue
            target = np.log(stop + 1) / np.log(T + 1)
            new_cap = one_line(note(stop), size=26).to_edge(DOWN, buff=0.3)
            if caption is not None:  # the last stop's numbers leave before t moves on: no frame shows them stale
                self.play(FadeOut(caption), run_time=0.4)
            self.play(u.animate.set_value(target), run_time=2.5, rate_func=linear)
            trace = polyline(axes, PIXEL_GRID, self.pixel_density(stop), XT, 2).set_stroke(opacity=0.35)
            self.add(trace)
            self.play(FadeIn(new_cap), run_time=0.5)
            caption = new_cap
            self.pixel_stops.append(t_now())
            self.pause(1, say(stop), hold=4.0)  # a caption of numbers needs about 4 s to be read
        panel.clear_updaters()
        self.pixel_panel = (num_t, num_m, num_v)
        self.pixel_curves = (density, bars)
        cut(self)

    # -- 2. the closed form ---------------------------------------------------------------
    def section_closed_form(self):
        """Exercise 1b: unroll x_t = sqrt(alpha) x_{t-1} + sqrt(1 - alpha) eps, add the independent
        Gaussians' variances, and reach alpha_bar_t = alpha^t, q(x_t | x_0) = N(sqrt(alpha^t) x_0, (1 - alpha^t) I)."""
        self.next_section("the closed form q(x_t | x_0)")
        title = Title(r"Reparameterisation: from $x_{t-1}$ back to $x_0$ (exercise 1b, constant $\alpha$)",
                      font_size=34)
        rows = [
            (r"x_t", "=", (r"\sqrt{\alpha}\, x_{t-1} +", r"\sqrt{1-\alpha}\,\epsilon_{t-1}^*")),
            (None, "=", (r"\sqrt{\alpha}", r"\left(\sqrt{\alpha}\, x_{t-2} + \sqrt{1-\alpha}\,\epsilon_{t-2}^*\right)",
                         r"+ \sqrt{1-\alpha}\,\epsilon_{t-1}^*")),
            (None, "=", r"\alpha\, x_{t-2} + \sqrt{\alpha(1-\alpha)}\,\epsilon_{t-2}^* + \sqrt{1-\alpha}\,\epsilon_{t-1}^*"),
            (None, "=", (r"\alpha\, x_{t-2} +", r"\sqrt{\alpha(1-\alpha) + (1-\alpha)}\,\epsilon_{t-2}")),
            (None, "=", (r"\alpha\, x_{t-2} +", r"\sqrt{1-\alpha^2}", r"\,\epsilon_{t-2}")),
            (None, "=", (r"\cdots\ =\ ", r"\sqrt{\alpha^t}\, x_0 + \sqrt{1-\alpha^t}\,\epsilon_0")),
        ]
        notes = [
            r"one step of the chain, $\epsilon^* \sim \mathcal{N}(0, \mathbf{I})$ fresh at every step",
            r"the same step once more, for $x_{t-1}$",
            r"multiply out",
            r"two independent Gaussians: their sum is Gaussian, the variances add",
            r"$\alpha - \alpha^2 + 1 - \alpha = 1 - \alpha^2$",
            r"after $t$ steps: the signal is scaled by $\sqrt{\alpha^t}$, the variances add to $1 - \alpha^t$",
        ]
        focus = [r"\sqrt{1-\alpha}\,\epsilon_{t-1}^*",
                 r"\left(\sqrt{\alpha}\, x_{t-2} + \sqrt{1-\alpha}\,\epsilon_{t-2}^*\right)",
                 None,
                 r"\sqrt{\alpha(1-\alpha) + (1-\alpha)}\,\epsilon_{t-2}",
                 r"\sqrt{1-\alpha^2}",
                 r"\sqrt{\alpha^t}\, x_0 + \sqrt{1-\alpha^t}\,\epsilon_0"]
        self.play(Write(title, run_time=1))
        say = [
            "Exercise 1b: where is x_t after t steps, given only x_0? Start from one step of the chain. Each step "
            "draws its own fresh noise, which I mark with a star.",
            "The previous step has the same form, so substitute it for x_(t-1).",
            "Multiply out. Now x_(t-2) appears once, and there are two independent noise terms.",
            "Two independent zero-mean Gaussians add to one Gaussian whose variance is the sum of the variances. "
            "So the two noise terms become one, with a new standard normal epsilon.",
            "The variance simplifies to one minus alpha squared. The pattern is already visible: the signal "
            "coefficient is a power of alpha, and the noise variance is one minus that power squared.",
            "Repeat t times: the signal is scaled by the square root of alpha to the t, and the variances add up to "
            "one minus alpha to the t. One Gaussian draw replaces t steps.",
        ]
        play_derivation(self, rows, notes, say=say, below=title, font_size=30, buff=0.28, transform=True,
                        focus=focus)
        cut(self, title)
        rows2 = [
            (r"\bar{\alpha}_t", "=", r"\prod_{s=1}^{t} \alpha_s = \alpha^t"),
            (r"q(x_t \mid x_0)", "=", r"\mathcal{N}\!\left(x_t;\ \sqrt{\bar{\alpha}_t}\, x_0,\ "
                                    r"(1-\bar{\alpha}_t)\,\mathbf{I}\right)"),
            (None, "=", r"\mathcal{N}\!\left(x_t;\ \sqrt{\alpha^t}\, x_0,\ (1-\alpha^t)\,\mathbf{I}\right)"),
        ]
        res = derivation(rows2, font_size=38, buff=0.45).next_to(title, DOWN, buff=0.6)
        res.set_x(0)
        box = SurroundingRectangle(res[1:], buff=0.15, color=BOX)
        a = self.schedule.params[0]
        role = label(rf"the role of $\alpha$: close to 1, each step adds little noise ($1 - \alpha = {1 - a:.4f}$); "
                     rf"$\alpha^t \to 0$ makes $x_T$ pure noise", size=26).next_to(res, DOWN, buff=0.6)
        self.play(FadeIn(res[0], shift=0.2 * DOWN))
        self.pause(1, "In general the schedule may change alpha at every step; alpha-bar is the product of all the "
                      "alphas so far. With the assignment's constant alpha it is simply alpha to the t.")
        self.play(FadeIn(res[1], shift=0.2 * DOWN))
        morph(self, res[1], res[2], run_time=1.5)
        self.play(Create(box))
        self.pause(2, "The result of exercise 1b: q(x_t given x_0) is a Gaussian with mean the square root of "
                      "alpha-bar times x_0 and variance one minus alpha-bar. This is what makes training cheap: any "
                      "x_t is one draw away from the data.")
        self.play(FadeIn(role))
        self.pause(1, "So alpha has two jobs. Close to one, each step adds only a little noise, so one step is easy "
                      "to undo. And its power must go to zero by step T, so that x_T is pure noise and matches the "
                      "prior.")
        cut(self)

    # -- 3. the two coefficients against t ------------------------------------------------------
    def curves(self, schedule: Schedule):
        """(sqrt(alpha_bar_t), 1 - alpha_bar_t) as line graphs on self.axes, every CURVE_STEP-th t."""
        ts = list(range(0, schedule.T + 1, CURVE_STEP))
        signal = schedule.signal_coef()[ts].tolist()
        noise_var = (1.0 - schedule.alpha_bar[ts]).tolist()
        return VGroup(polyline(self.axes, ts, signal, X0), polyline(self.axes, ts, noise_var, EPS))

    def section_curves(self):
        self.next_section("sqrt(alpha_bar_t) and 1 - alpha_bar_t against t")
        T = self.schedule.T
        self.axes = Axes(x_range=[0, T, T // 5], y_range=[0, 1, 0.25], x_length=8, y_length=4.4, tips=False,
                         axis_config={"include_numbers": True, "font_size": 24}).shift(LEFT * 1.4 + DOWN * 0.3)
        x_lab = label(r"step $t$ (of $T = " + str(T) + "$)", size=26).next_to(self.axes.x_axis, DOWN, buff=0.45)
        y_lab = label("coefficient (no unit)", size=26).rotate(1.5708).next_to(self.axes.y_axis, LEFT, buff=0.45)
        x_lab = VGroup(x_lab, y_lab)
        self.graphs = self.curves(self.schedule)
        legend = VGroup(
            tex(r"\sqrt{\bar{\alpha}_t}", r"\ \text{: signal kept of } x_0", font_size=30),
            tex(r"1-\bar{\alpha}_t", r"\ \text{: noise variance}", font_size=30),
        ).arrange(DOWN, aligned_edge=LEFT).next_to(self.axes, RIGHT, buff=0.4).shift(UP * 1.2)
        legend[0][0].set_color(X0)
        legend[1][0].set_color(EPS)
        title = Title(r"$q(x_t \mid x_0)$: how much signal is left at step $t$", font_size=36)
        self.play(Write(title, run_time=1), Create(self.axes, run_time=1), FadeIn(x_lab, run_time=1))
        self.play(Create(self.graphs), FadeIn(legend), run_time=2.5)
        self.pause(2, "The two coefficients of the closed form against t: the fraction of the signal that is kept, "
                      "in blue, and the noise variance, in grey. They cross early, and most of the chain is "
                      "spent where almost no signal is left.")
        self.curve_title, self.legend, self.x_lab = title, legend, x_lab

    # -- 4. what changing alpha does -------------------------------------------------------------
    def section_alpha(self):
        self.next_section("changing alpha")
        T = self.schedule.T
        tuned = self.schedule.params[0]
        self.alpha = ValueTracker(tuned)

        def schedule_now():
            return Schedule.constant(float(self.alpha.get_value()), T)

        self.remove(self.graphs)
        self.graphs = always_redraw(lambda: self.curves(schedule_now()))
        self.add(self.graphs)
        readout = VGroup(tex(r"\alpha ="), LiveNumber(tuned, "{:.4f}", color=ALPHA))
        readout.arrange(RIGHT).next_to(self.legend, DOWN, buff=0.5, aligned_edge=LEFT)
        readout[1].add_updater(lambda m: m.set_value(self.alpha.get_value()))
        # x_100 for the current alpha, with the same noise draw: the image follows the curve
        t_show = min(50, T)
        img = pixel_image(q_sample(self.schedule, self.x0, t_show, self.noise), height=1.6)
        img.add_updater(lambda m: set_pixels(m, q_sample(schedule_now(), self.x0, t_show, self.noise)))
        img_group = VGroup(framed(img), tex(f"x_t,\\ t={t_show}", font_size=28))
        img_group[1].next_to(img_group[0], DOWN, buff=0.1)
        img_group.next_to(readout, DOWN, buff=0.4, aligned_edge=LEFT)
        img.move_to(img_group[0])
        self.play(FadeIn(readout), FadeIn(img_group), FadeIn(img))
        self.pause(1, f"Exercise 1a asks how to choose alpha. Here is what alpha does: the curves and the image at "
                      f"t = {t_show}, always with the same noise draw, follow alpha as I change it.")
        for a in (*ALPHA_SWEEP, tuned):
            self.play(self.alpha.animate.set_value(a), run_time=3)
            at = float(Schedule.constant(a, T).signal_coef()[t_show])
            self.pause(1, f"Alpha = {a:.4f}: at t = {t_show} the image keeps {at:.2f} of its amplitude. "
                          + ("A smaller alpha destroys the image within a few dozen steps." if a < tuned else
                             "A larger alpha keeps the image longer, but then x_T is not yet noise." if a > tuned else
                             "Back at the assignment's tuned value."), hold=1.5)
        img.clear_updaters()
        readout[1].clear_updaters()
        self.section_choice()

    # -- 5. the criterion for alpha, and a schedule that blends throughout -------------------------------
    def section_choice(self):
        """Exercise 1a: alpha from sqrt(alpha^T) = final signal (vdm.schedule.tune_alpha), where that puts
        SNR(t) = alpha_bar_t / (1 - alpha_bar_t) = 1 (vdm.continuous.snr_curve), and the cosine schedule at the
        same T, whose SNR crosses 1 about half way: the same images side by side."""
        self.next_section("choosing alpha: the criterion and what it does")
        cut(self)
        T = self.schedule.T
        a = tune_alpha(T, DEFAULT_FINAL_SIGNAL)
        cosine = Schedule.cosine(T=T)
        crossing = {}
        for name, sched in (("constant", self.schedule), ("cosine", cosine)):
            t, y = snr_curve(sched)
            crossing[name] = snr_one_at(t.numpy(), y.numpy()) * T
        self.snr_one = crossing
        title = Title(r"Choosing $\alpha$ (exercise 1a)", font_size=36)
        rule = derivation([(r"\sqrt{\bar{\alpha}_T} = \sqrt{\alpha^T}", "=", f"{DEFAULT_FINAL_SIGNAL:g}"),
                           (r"\alpha", "=", rf"{DEFAULT_FINAL_SIGNAL:g}^{{2/T}} = {a:.5f}")], font_size=34, buff=0.3)
        rule.next_to(title, DOWN, buff=0.35)
        why = one_line(rf"criterion: after $T = {T}$ steps keep 1\% of the image's amplitude, so $x_T$ is "
                       r"indistinguishable from $\mathcal{N}(0, \mathbf{I})$", size=24).next_to(rule, DOWN, buff=0.25)
        steps = sorted({0, 10, int(round(crossing["constant"])), 100, int(round(crossing["cosine"])), 400, T})
        g = torch.Generator().manual_seed(0)
        noise = torch.randn(self.x0.shape, generator=g)
        rows = Group()
        for sched, colour, name in ((self.schedule, ALPHA, r"constant $\alpha$"), (cosine, X0, "cosine")):
            cells = Group(*[pixel_image(q_sample(sched, self.x0, t, noise), height=1.25) for t in steps])
            cells.arrange(RIGHT, buff=0.2)
            rows.add(Group(label(name, colour, 26), cells).arrange(RIGHT, buff=0.3))
        heads = VGroup(*labels(*[f"$t = {t}$" for t in steps], size=22))
        rows.arrange(DOWN, buff=0.45, aligned_edge=RIGHT).next_to(why, DOWN, buff=0.6)
        for h, cell in zip(heads, rows[0][1]):
            h.next_to(cell, UP, buff=0.1)
        result = VGroup(
            one_line(rf"constant $\alpha$: SNR $= 1$ at step {crossing['constant']:.0f} of {T}: noise outweighs the image "
                     rf"after the first {100 * crossing['constant'] / T:.0f}\% of the chain", ALPHA, 24),
            one_line(rf"cosine: SNR $= 1$ at step {crossing['cosine']:.0f}: the image blends into noise throughout; "
                     r"both end in noise at $T$", X0, 24),
        ).arrange(DOWN, buff=0.1).to_edge(DOWN, buff=0.25)
        self.play(Write(title, run_time=1), FadeIn(rule), FadeIn(why))
        self.pause(3, f"The assignment's criterion: after T = {T} steps, keep one percent of the image's amplitude. "
                      f"The square root of alpha to the T equals {DEFAULT_FINAL_SIGNAL:g}, so alpha is "
                      f"{DEFAULT_FINAL_SIGNAL:g} to the power 2 over T, {a:.5f}. Then x_T is noise for all practical "
                      "purposes, and the prior matching term is tiny.")
        self.play(FadeIn(heads), FadeIn(rows[0]))
        self.pause(2, f"But the criterion only looks at the last step. The signal-to-noise ratio, alpha-bar over one "
                      f"minus alpha-bar, falls to one already at step {crossing['constant']:.0f} of {T}: after that the "
                      "noise is stronger than the image, and the rest of the chain turns noise into slightly "
                      "different noise.")
        self.play(FadeIn(rows[1]), FadeIn(result))
        self.pause(3, f"An alternative that blends throughout: the cosine schedule of Nichol and Dhariwal, with the "
                      f"same T. Its SNR crosses one at step {crossing['cosine']:.0f}, about half way, and the images "
                      "fade evenly. It still ends in noise at step T. The constant alpha is not wrong, it fulfils the "
                      "criterion; it spends most of its steps where there is nothing left to see. A smaller target "
                      "than one percent would make this worse, a larger one would leave signal in x_T.")
