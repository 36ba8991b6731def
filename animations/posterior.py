"""Scene 5, the posterior q(x_{t-1} | x_t, x_0) (exercise 4): a product of Gaussians, completed to a square.

    q(x_{t-1} | x_t, x_0) = q(x_t | x_{t-1}) q(x_{t-1} | x_0) / q(x_t | x_0) = N(mu_q, sigma_q^2 I)
    mu_q = [sqrt(alpha_t)(1 - alpha_bar_{t-1}) x_t + sqrt(alpha_bar_{t-1})(1 - alpha_t) x_0] / (1 - alpha_bar_t)
    sigma_q^2 = (1 - alpha_t)(1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)

Then the coefficients of mu_q = c_x0(t) x_0 + c_xt(t) x_t live as t sweeps
(vdm.diffusion.posterior_coefs), over the three 1-D densities in x_{t-1} for one
pixel: q(x_t | x_{t-1}) (as a function of x_{t-1}), q(x_{t-1} | x_0) and the posterior.

Render: manim -pql animations/posterior.py Posterior
"""

from __future__ import annotations

import numpy as np
import torch
from manim import (DOWN, LEFT, RIGHT, UP, Axes, DashedLine, FadeIn, FadeOut, SurroundingRectangle, Title,
                   TransformMatchingTex, ValueTracker, VGroup, Write, always_redraw, linear)

from animations import common as c
from vdm.diffusion import forward_step, posterior, posterior_coefs, q_mean_var, q_sample
from vdm.elbo import gaussian_log_prob

GRID = torch.linspace(-1.6, 1.6, 161, dtype=torch.float64)  # values of x_{t-1}
T_END = 2  # sweep t from T down to 2, where prior and likelihood are equally wide
SWEEP_STOPS = (100, 40, 10, T_END)  # the sweep pauses at each; log-spaced, so most of its time is at small t


def log_u(t: float, T: int) -> float:
    """The sweep's fraction for step t: log(t + 1) / log(T + 1) (forward_diffusion.log_t inverted)."""
    return float(np.log(t + 1) / np.log(T + 1))


class Posterior(c.LectureScene):
    def construct(self):
        self.schedule = c.lecture_schedule()
        self.coefs = posterior_coefs(self.schedule)
        # one pixel (red channel, centre of the example image) and a fixed noise draw,
        # so x_t moves smoothly with t instead of jumping each frame
        self.x0 = c.example_x0(1)[0, 0, 16, 16].double().reshape(1)
        self.eps = torch.tensor([0.7], dtype=torch.float64)
        self.title = Title(r"The posterior $q(x_{t-1} \mid x_t, x_0)$ (exercise 4)", font_size=38)
        self.add(self.title)
        self.section_bayes()
        self.section_square()
        self.section_live()

    # -- what the plot shows, all from vdm ---------------------------------------------------
    def x_t(self, t: int) -> torch.Tensor:
        return q_sample(self.schedule, self.x0, t, self.eps)

    def densities(self, t: int) -> dict:
        """Densities over GRID (values of x_{t-1}) at step t: likelihood, prior, posterior."""
        s, x_t = self.schedule, self.x_t(t)
        step_mean = forward_step(s, GRID, t, torch.zeros_like(GRID))  # sqrt(alpha_t) x_{t-1}
        like = gaussian_log_prob(x_t, step_mean, s.beta[t]).exp()
        m, v = q_mean_var(s, self.x0, t - 1)
        prior = gaussian_log_prob(GRID, m, v).exp()
        pm, pv = posterior(s, x_t, self.x0, t)
        post = gaussian_log_prob(GRID, pm, pv).exp()
        return {"likelihood": like, "prior": prior, "posterior": post}

    def section_bayes(self):
        """Bayes with the Markov property, the three Gaussians, their exponents (exercise 4, first half)."""
        self.next_section("Bayes: a product of Gaussians")
        fs = 28
        rows = [
            (r"q(x_{t-1} \mid x_t, x_0)", "=",
             r"\frac{q(x_t \mid x_{t-1}, x_0)\, q(x_{t-1} \mid x_0)}{q(x_t \mid x_0)}"),
            (None, "=", r"\frac{\mathcal{N}(x_t;\ \sqrt{\alpha_t}\, x_{t-1},\ (1-\alpha_t)\mathbf{I})\ "
                        r"\mathcal{N}(x_{t-1};\ \sqrt{\bar{\alpha}_{t-1}}\, x_0,\ (1-\bar{\alpha}_{t-1})\mathbf{I})}"
                        r"{\mathcal{N}(x_t;\ \sqrt{\bar{\alpha}_t}\, x_0,\ (1-\bar{\alpha}_t)\mathbf{I})}"),
            (None, r"\propto", r"\exp\left\{-\frac{1}{2}\left[\frac{(x_t - \sqrt{\alpha_t}\, x_{t-1})^2}{1-\alpha_t}"
                               r" + \frac{(x_{t-1} - \sqrt{\bar{\alpha}_{t-1}}\, x_0)^2}{1-\bar{\alpha}_{t-1}}"
                               r" - \frac{(x_t - \sqrt{\bar{\alpha}_t}\, x_0)^2}{1-\bar{\alpha}_t}\right]\right\}"),
        ]
        notes = [r"Bayes; $q(x_t \mid x_{t-1}, x_0) = q(x_t \mid x_{t-1})$ by the Markov property",
                 r"all three are Gaussians we know: one step, and the closed form twice (exercise 1b)",
                 r"keep the exponents; the normalisers do not depend on $x_{t-1}$"]
        lines = c.derivation(rows, font_size=fs, buff=0.4).next_to(self.title, DOWN, buff=0.45)
        lines.set_x(0)
        caps = [c.label(n, size=26).to_edge(DOWN, buff=0.4) for n in notes]
        self.play(FadeIn(lines[0], shift=DOWN * 0.2), FadeIn(caps[0]))
        self.pause(1)
        for line, cap, old in zip(lines[1:], caps[1:], caps[:-1]):
            self.play(FadeIn(line, shift=DOWN * 0.2), FadeOut(old), FadeIn(cap), run_time=1.2)
            self.pause(1)
        c.cut(self, self.title)

    def section_square(self):
        """Completing the square in x_{t-1}: 1/sigma_q^2 is the quadratic coefficient, and
        mu_q = sigma_q^2 times the linear coefficient; then the seed's constant-alpha form."""
        self.next_section("completing the square")
        fs = 28
        rows = [
            (None, "=", r"\exp\left\{-\frac{1}{2}\left[\left(\frac{\alpha_t}{1-\alpha_t} + "
                        r"\frac{1}{1-\bar{\alpha}_{t-1}}\right) x_{t-1}^2 - 2\left(\frac{\sqrt{\alpha_t}\, x_t}{1-\alpha_t}"
                        r" + \frac{\sqrt{\bar{\alpha}_{t-1}}\, x_0}{1-\bar{\alpha}_{t-1}}\right) x_{t-1} + C(x_t, x_0)\right]\right\}"),
            (r"\frac{1}{\sigma_q^2(t)}", "=", r"\frac{\alpha_t}{1-\alpha_t} + \frac{1}{1-\bar{\alpha}_{t-1}}"
                                           r" = \frac{1-\bar{\alpha}_t}{(1-\alpha_t)(1-\bar{\alpha}_{t-1})}"),
            (r"\mu_q", "=", r"\sigma_q^2(t)\left(\frac{\sqrt{\alpha_t}\, x_t}{1-\alpha_t}"
                            r" + \frac{\sqrt{\bar{\alpha}_{t-1}}\, x_0}{1-\bar{\alpha}_{t-1}}\right)"),
            (None, "=", r"\frac{\sqrt{\alpha_t}(1-\bar{\alpha}_{t-1})\, x_t + \sqrt{\bar{\alpha}_{t-1}}(1-\alpha_t)"
                        r"\, x_0}{1-\bar{\alpha}_t}"),
        ]
        notes = [r"expand the squares and collect powers of $x_{t-1}$; $C$ holds what does not depend on it",
                 r"a Gaussian's exponent is $-\frac{1}{2}\left(x^2/\sigma^2 - 2\mu x/\sigma^2\right)$: "
                 r"the quadratic coefficient is $1/\sigma_q^2$",
                 r"and the linear coefficient is $\mu_q / \sigma_q^2$",
                 r"multiply out, with $1 - \bar{\alpha}_t = \alpha_t(1 - \bar{\alpha}_{t-1}) + (1 - \alpha_t)$"]
        lines = c.derivation(rows, font_size=fs, buff=0.38).next_to(self.title, DOWN, buff=0.4)
        lines.set_x(0)
        caps = [c.label(n, size=26).to_edge(DOWN, buff=0.4) for n in notes]
        self.play(FadeIn(lines[0], shift=DOWN * 0.2), FadeIn(caps[0]))
        self.pause(1)
        for prev, line, cap, old in zip(lines[:-1], lines[1:], caps[1:], caps[:-1]):
            self.play(FadeIn(line, shift=DOWN * 0.2), FadeOut(old), FadeIn(cap), run_time=1.2)
            self.pause(1)
        c.cut(self, self.title)
        # the seed's form: constant alpha, so alpha_bar_{t-1} = alpha^{t-1}
        res = c.derivation([
            (r"\mu_q", "=", r"\frac{\sqrt{\alpha}(1-\alpha^{t-1})\, x_t + \sqrt{\alpha^{t-1}}(1-\alpha)\, x_0}{1-\alpha^t}"),
            (r"\sigma_q^2(t)", "=", r"\frac{(1-\alpha)(1-\alpha^{t-1})}{1-\alpha^t}"),
        ], font_size=38, buff=0.5).next_to(self.title, DOWN, buff=0.8)
        res.set_x(0)
        head = c.label(r"with the constant $\alpha$ of the assignment: $\bar{\alpha}_{t-1} = \alpha^{t-1}$", size=30)
        head.next_to(self.title, DOWN, buff=0.3)
        box = SurroundingRectangle(res, buff=0.2, color=c.BOX)
        q = c.tex(r"q(x_{t-1} \mid x_t, x_0) = \mathcal{N}\!\left(x_{t-1};\ \mu_q(x_t, x_0),\ \sigma_q^2(t)\,\mathbf{I}\right)",
                  font_size=34).next_to(box, DOWN, buff=0.5)
        self.play(FadeIn(head), FadeIn(res))
        self.play(FadeIn(box), FadeIn(q))
        self.pause(3)
        c.cut(self, self.title)

    def section_live(self):
        self.next_section("live coefficients and densities as t sweeps")
        T = self.schedule.T
        c_x0, c_xt, var = self.coefs
        self.t_tracker = ValueTracker(T)

        def t_now() -> int:
            return max(2, min(T, int(round(self.t_tracker.get_value()))))

        fs = 34
        self.num_c_x0 = c.LiveNumber(float(c_x0[T]), "{:.4f}", fs, c.X0)
        self.num_c_xt = c.LiveNumber(float(c_xt[T]), "{:.4f}", fs, c.XT)
        self.num_var = c.LiveNumber(float(var[T]), "{:.4f}", fs)
        self.num_t = c.LiveNumber(T, "{:.0f}", fs)
        mu = VGroup(c.tex(r"\mu_q =", font_size=fs), self.num_c_x0, c.tex(r"\, x_0 +", font_size=fs),
                    self.num_c_xt, c.tex(r"\, x_t", font_size=fs)).arrange(RIGHT, buff=0.15)
        sig = VGroup(c.tex(r"\sigma_q^2(t) =", font_size=fs), self.num_var).arrange(RIGHT, buff=0.15)
        tl = VGroup(c.tex("t =", font_size=fs), self.num_t).arrange(RIGHT, buff=0.15)
        panel = VGroup(tl, mu, sig).arrange(RIGHT, buff=0.7).next_to(self.title, DOWN, buff=0.3)
        for n in (self.num_c_x0, self.num_c_xt, self.num_var):
            n.shift(UP * 0.02)

        def refresh(_):
            t = t_now()
            self.num_t.set_value(t)
            self.num_c_x0.set_value(float(c_x0[t]))
            self.num_c_xt.set_value(float(c_xt[t]))
            self.num_var.set_value(float(var[t]))

        panel.add_updater(refresh)

        self.axes = Axes(x_range=[-1.6, 1.6, 0.4], y_range=[0, 4.5, 1], x_length=9.0, y_length=3.9, tips=False,
                         axis_config={"include_numbers": True, "font_size": 20}).to_edge(DOWN, buff=0.9).shift(LEFT * 1.0)
        x_lab = c.label(r"$x_{t-1}$: one pixel's value (data scale $[-1, 1]$)", size=24)
        x_lab.next_to(self.axes.x_axis, DOWN, buff=0.4)
        y_lab = c.label("density (per unit of pixel value)", size=22).rotate(1.5708)
        y_lab.next_to(self.axes, LEFT, buff=0.15)  # the y axis sits at x_{t-1} = 0, mid-plot: label the box's edge
        styles = {"likelihood": (c.XT, r"$q(x_t \mid x_{t-1})$ in $x_{t-1}$", 3),
                  "prior": (c.X0, r"$q(x_{t-1} \mid x_0)$", 3),
                  "posterior": (c.POSTERIOR, r"$q(x_{t-1} \mid x_t, x_0)$, thick", 7)}

        def curves():
            t = t_now()
            d = self.densities(t)
            # the posterior first and thick, the likelihood thin on top: while the prior is wide they coincide
            order = ("posterior", "likelihood", "prior")
            group = VGroup(*[c.polyline(self.axes, GRID.tolist(), d[k].tolist(), styles[k][0], styles[k][2])
                             for k in order])
            x0_line = DashedLine(self.axes.c2p(float(self.x0), 0), self.axes.c2p(float(self.x0), 4.3),
                                 color=c.X0, stroke_width=2)
            group.add(x0_line)
            return group

        self.curves = always_redraw(curves)
        legend = VGroup(*c.labels(*[text for _, text, _ in styles.values()],
                                  colors=[colour for colour, _, _ in styles.values()], size=24),
                        c.label(r"dashed line: $x_0$ of this pixel", c.X0, 24))
        legend.arrange(DOWN, aligned_edge=LEFT).next_to(self.axes, RIGHT, buff=0.2).shift(UP * 0.8)
        self.play(FadeIn(panel), FadeIn(self.axes), FadeIn(x_lab), FadeIn(y_lab), FadeIn(legend))
        self.add(self.curves)
        self.pause(2)
        # a log-spaced sweep (u = log(t + 1) / log(T + 1)), pausing at each stop: t < 40, where the
        # posterior leaves the likelihood, gets most of the time
        u = ValueTracker(log_u(T, T))
        self.t_tracker.add_updater(lambda m: m.set_value((T + 1) ** u.get_value() - 1))
        self.add(self.t_tracker)
        for stop in SWEEP_STOPS:
            self.play(u.animate.set_value(log_u(stop, T)), run_time=4, rate_func=linear)
            self.pause(2)
        self.t_tracker.clear_updaters()
        self.panel = panel
