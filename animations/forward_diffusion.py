"""Scene 1, forward diffusion: an image dissolving into noise, and the closed form q(x_t | x_0).

    x_t = sqrt(alpha_t) x_{t-1} + sqrt(1 - alpha_t) eps          (one step, vdm.diffusion.forward_chain)
    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I) (exercise 1b, reparameterisation)

Render: manim -pql animations/forward_diffusion.py ForwardDiffusion
"""

from __future__ import annotations

import torch
from manim import (DOWN, LEFT, RIGHT, UP, UL, Axes, Create, FadeIn, FadeOut, LaggedStart,
                   Scene, SurroundingRectangle, Title, ValueTracker, VGroup, Write, always_redraw, linear)

from animations import common as c
from vdm.diffusion import forward_chain, q_sample
from vdm.schedule import Schedule

STRIP_T = (0, 25, 50, 100, 200, 500)
CURVE_STEP = 5  # plot every 5th t: 101 points per curve keeps the alpha sweep light
ALPHA_SWEEP = (0.95, 0.995)


class ForwardDiffusion(Scene):
    def construct(self):
        self.schedule = c.lecture_schedule()
        self.x0 = c.example_x0(1)[0]
        g = torch.Generator().manual_seed(0)
        self.chain = forward_chain(self.schedule, self.x0, generator=g)  # [T+1, 3, 32, 32]
        self.noise = torch.randn(self.x0.shape, generator=g)
        self.section_chain()
        self.section_closed_form()
        self.section_curves()
        self.section_alpha()

    # -- 1. the chain -------------------------------------------------------------------
    def section_chain(self):
        self.next_section("the forward chain")
        T = self.schedule.T
        title = Title(r"Forward diffusion: $q(x_t \mid x_{t-1})$, step by step", font_size=36)
        step = c.tex(r"x_t = \sqrt{\alpha_t}\, x_{t-1} + \sqrt{1-\alpha_t}\,\epsilon", font_size=36)
        step.next_to(title, DOWN)
        t = ValueTracker(0)
        big = c.pixel_image(self.chain[0], height=3.2).shift(LEFT * 3.2 + UP * 0.2)
        big.add_updater(lambda m: c.set_pixels(m, self.chain[int(round(t.get_value()))]))
        t_label = VGroup(c.tex("t ="), c.LiveNumber(0, "{:.0f}")).arrange(RIGHT)
        t_label[1].add_updater(lambda m: m.set_value(round(t.get_value())))
        t_label.next_to(big, DOWN)
        coef = VGroup(c.tex(r"\sqrt{\bar{\alpha}_t} ="), c.LiveNumber(1.0, "{:.3f}"))
        coef.arrange(RIGHT)
        coef[1].add_updater(lambda m: m.set_value(float(self.schedule.signal_coef()[int(round(t.get_value()))])))
        info = VGroup(
            c.label(rf"constant $\alpha = {self.schedule.params[0]:.5f}$, $T = {T}$", c.ALPHA),
            coef,
        ).arrange(DOWN, aligned_edge=LEFT).next_to(big, RIGHT, buff=1.0)
        self.play(Write(title, run_time=0.7), FadeIn(step, run_time=0.7))
        self.add(big, t_label, info)
        self.play(t.animate.set_value(T), run_time=2, rate_func=linear)
        big.clear_updaters()
        t_label[1].clear_updaters()
        coef[1].clear_updaters()

        strip = VGroup()
        frames = []
        for tt, lab in zip(STRIP_T, c.labels(*[f"t={tt}" for tt in STRIP_T], size=26, math=True)):
            img = c.pixel_image(self.chain[tt], height=1.5)
            frames.append(img)
            strip.add(VGroup(c.framed(img), lab))
        for img, cell in zip(frames, strip):
            cell[1].next_to(cell[0], DOWN, buff=0.1)
        strip.arrange(RIGHT, buff=0.35).shift(DOWN * 0.8)
        for img, cell in zip(frames, strip):
            img.move_to(cell[0])
        self.play(FadeOut(big), FadeOut(t_label), FadeOut(info))
        self.play(LaggedStart(*[FadeIn(VGroup(cell), img) for cell, img in zip(strip, frames)], lag_ratio=0.2))
        self.strip_images = frames
        self.wait(0.5)
        c.cut(self)  # the next section is the next slide

    # -- 2. the closed form ---------------------------------------------------------------
    def section_closed_form(self):
        self.next_section("the closed form q(x_t | x_0)")
        title = Title(r"Reparameterisation: from $x_{t-1}$ back to $x_0$ (exercise 1b)", font_size=36)
        fs = 32
        lines = VGroup(
            c.tex(r"x_t &= \sqrt{\alpha_t}\, x_{t-1} + \sqrt{1-\alpha_t}\,\epsilon_{t-1}^*", font_size=fs),
            c.tex(r"&= \sqrt{\alpha_t}\left(\sqrt{\alpha_{t-1}}\, x_{t-2} + \sqrt{1-\alpha_{t-1}}\,\epsilon_{t-2}^*\right)"
                  r" + \sqrt{1-\alpha_t}\,\epsilon_{t-1}^*", font_size=fs),
            c.tex(r"&= \sqrt{\alpha_t\alpha_{t-1}}\, x_{t-2} + \sqrt{1-\alpha_t\alpha_{t-1}}\,\epsilon_{t-2}"
                  r"\quad\text{(independent Gaussians: variances add)}", font_size=fs),
            c.tex(r"&= \cdots = \sqrt{\bar{\alpha}_t}\, x_0 + \sqrt{1-\bar{\alpha}_t}\,\epsilon_0,"
                  r"\qquad \bar{\alpha}_t = \prod_{s=1}^{t} \alpha_s", font_size=fs),
        ).arrange(DOWN, aligned_edge=LEFT, buff=0.35).next_to(title, DOWN, buff=0.5)
        result = c.tex(r"q(x_t \mid x_0) = \mathcal{N}\!\left(x_t;\ \sqrt{\bar{\alpha}_t}\, x_0,\ "
                       r"(1-\bar{\alpha}_t)\,\mathbf{I}\right)", font_size=40)
        result.next_to(lines, DOWN, buff=0.6)
        box = SurroundingRectangle(result, buff=0.15)
        self.play(Write(title, run_time=0.7))
        for line in lines:
            self.play(FadeIn(line, shift=0.2 * DOWN), run_time=0.5)
        self.play(Write(result), Create(box))
        self.wait(0.5)
        c.cut(self)

    # -- 3. the two coefficients against t ------------------------------------------------------
    def curves(self, schedule: Schedule):
        """(sqrt(alpha_bar_t), 1 - alpha_bar_t) as line graphs on self.axes, every CURVE_STEP-th t."""
        ts = list(range(0, schedule.T + 1, CURVE_STEP))
        signal = schedule.signal_coef()[ts].tolist()
        noise_var = (1.0 - schedule.alpha_bar[ts]).tolist()
        return VGroup(c.polyline(self.axes, ts, signal, c.X0), c.polyline(self.axes, ts, noise_var, c.EPS))

    def section_curves(self):
        self.next_section("sqrt(alpha_bar_t) and 1 - alpha_bar_t against t")
        T = self.schedule.T
        self.axes = Axes(x_range=[0, T, T // 5], y_range=[0, 1, 0.25], x_length=8, y_length=4.6, tips=False,
                         axis_config={"include_numbers": True, "font_size": 24}).shift(LEFT * 1.8 + DOWN * 0.4)
        x_lab = c.tex("t", font_size=30).next_to(self.axes.x_axis, RIGHT)
        self.graphs = self.curves(self.schedule)
        legend = VGroup(
            c.tex(r"\sqrt{\bar{\alpha}_t}", r"\ \text{: signal kept of } x_0", font_size=30),
            c.tex(r"1-\bar{\alpha}_t", r"\ \text{: noise variance}", font_size=30),
        ).arrange(DOWN, aligned_edge=LEFT).next_to(self.axes, RIGHT, buff=0.4).shift(UP * 1.2)
        legend[0][0].set_color(c.X0)
        legend[1][0].set_color(c.EPS)
        title = Title(r"$q(x_t \mid x_0)$: how much signal is left at step $t$", font_size=36)
        self.play(Write(title, run_time=0.7), Create(self.axes, run_time=0.7), FadeIn(x_lab, run_time=0.7))
        self.play(Create(self.graphs), FadeIn(legend), run_time=1.5)
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
        readout = VGroup(c.tex(r"\alpha ="), c.LiveNumber(tuned, "{:.4f}", color=c.ALPHA))
        readout.arrange(RIGHT).next_to(self.legend, DOWN, buff=0.5, aligned_edge=LEFT)
        readout[1].add_updater(lambda m: m.set_value(self.alpha.get_value()))
        # x_100 for the current alpha, with the same noise draw: the image follows the curve
        t_show = min(50, T)
        img = c.pixel_image(q_sample(self.schedule, self.x0, t_show, self.noise), height=1.6)
        img.add_updater(lambda m: c.set_pixels(m, q_sample(schedule_now(), self.x0, t_show, self.noise)))
        img_group = VGroup(c.framed(img), c.tex(f"x_t,\\ t={t_show}", font_size=28))
        img_group[1].next_to(img_group[0], DOWN, buff=0.1)
        img_group.next_to(readout, DOWN, buff=0.4, aligned_edge=LEFT)
        img.move_to(img_group[0])
        self.play(FadeIn(readout), FadeIn(img_group), FadeIn(img))
        for a in (*ALPHA_SWEEP, tuned):
            self.play(self.alpha.animate.set_value(a), run_time=1)
        note = c.label(r"tuned: $\sqrt{\alpha^T} = 0.01$, so $\alpha = 0.01^{2/T}$", c.ALPHA, 26)
        note.to_corner(UL).shift(DOWN * 0.9)
        self.play(FadeIn(note))
        self.wait(0.5)
        img.clear_updaters()
        readout[1].clear_updaters()
