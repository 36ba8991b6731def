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

import torch
from manim import (DOWN, LEFT, RIGHT, UP, Axes, DashedLine, FadeIn, Scene, SurroundingRectangle, Title,
                   ValueTracker, VGroup, always_redraw, linear)

from animations import common as c
from vdm.diffusion import forward_step, posterior, posterior_coefs, q_mean_var, q_sample
from vdm.elbo import gaussian_log_prob

GRID = torch.linspace(-1.6, 1.6, 161, dtype=torch.float64)  # values of x_{t-1}
T_END = 2  # sweep t from T down to 2, where prior and likelihood are equally wide


class Posterior(Scene):
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
        self.next_section("Bayes: a product of Gaussians")
        fs = 30
        lines = VGroup(
            c.tex(r"q(x_{t-1} \mid x_t, x_0) = \frac{q(x_t \mid x_{t-1}, x_0)\, q(x_{t-1} \mid x_0)}{q(x_t \mid x_0)}",
                  font_size=fs),
            c.tex(r"= \frac{\mathcal{N}(x_t;\ \sqrt{\alpha_t}\, x_{t-1},\ (1-\alpha_t)\mathbf{I})\ "
                  r"\mathcal{N}(x_{t-1};\ \sqrt{\bar{\alpha}_{t-1}}\, x_0,\ (1-\bar{\alpha}_{t-1})\mathbf{I})}"
                  r"{\mathcal{N}(x_t;\ \sqrt{\bar{\alpha}_t}\, x_0,\ (1-\bar{\alpha}_t)\mathbf{I})}", font_size=fs),
            c.tex(r"\propto \exp\left\{-\frac{1}{2}\left[\frac{(x_t - \sqrt{\alpha_t}\, x_{t-1})^2}{1-\alpha_t}"
                  r" + \frac{(x_{t-1} - \sqrt{\bar{\alpha}_{t-1}}\, x_0)^2}{1-\bar{\alpha}_{t-1}}\right]\right\}",
                  font_size=fs),
        ).arrange(DOWN, aligned_edge=LEFT, buff=0.4).next_to(self.title, DOWN, buff=0.5)
        for line in lines:
            self.play(FadeIn(line, shift=DOWN * 0.2), run_time=0.8)
        self.wait(0.5)
        c.cut(self, self.title)

    def section_square(self):
        self.next_section("completing the square")
        fs = 30
        lines = VGroup(
            c.tex(r"= \exp\left\{-\frac{1}{2}\left[\left(\frac{\alpha_t}{1-\alpha_t} + \frac{1}{1-\bar{\alpha}_{t-1}}"
                  r"\right) x_{t-1}^2 - 2\left(\frac{\sqrt{\alpha_t}\, x_t}{1-\alpha_t} + \frac{\sqrt{\bar{\alpha}_{t-1}}"
                  r"\, x_0}{1-\bar{\alpha}_{t-1}}\right) x_{t-1}\right] + C\right\}", font_size=fs),
            c.tex(r"\frac{\alpha_t}{1-\alpha_t} + \frac{1}{1-\bar{\alpha}_{t-1}} = "
                  r"\frac{1-\bar{\alpha}_t}{(1-\alpha_t)(1-\bar{\alpha}_{t-1})} = \frac{1}{\sigma_q^2(t)}", font_size=fs),
            c.tex(r"\propto \mathcal{N}\!\left(x_{t-1};\ \mu_q,\ \sigma_q^2(t)\,\mathbf{I}\right)", font_size=fs),
        ).arrange(DOWN, aligned_edge=LEFT, buff=0.4).next_to(self.title, DOWN, buff=0.4)
        result = VGroup(
            c.tex(r"\mu_q = \frac{\sqrt{\alpha_t}(1-\bar{\alpha}_{t-1})\, x_t + \sqrt{\bar{\alpha}_{t-1}}(1-\alpha_t)"
                  r"\, x_0}{1-\bar{\alpha}_t}", font_size=34),
            c.tex(r"\sigma_q^2(t) = \frac{(1-\alpha_t)(1-\bar{\alpha}_{t-1})}{1-\bar{\alpha}_t}", font_size=34),
        ).arrange(RIGHT, buff=0.8).next_to(lines, DOWN, buff=0.5)
        box = SurroundingRectangle(result, buff=0.15)
        for line in lines:
            self.play(FadeIn(line, shift=DOWN * 0.2), run_time=0.8)
        self.play(FadeIn(result), FadeIn(box))
        self.wait(0.5)
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

        self.axes = Axes(x_range=[-1.6, 1.6, 0.4], y_range=[0, 4.5, 1], x_length=9.5, y_length=4.2, tips=False,
                         axis_config={"include_numbers": True, "font_size": 20}).to_edge(DOWN, buff=0.5).shift(LEFT * 1.2)
        styles = {"likelihood": (c.XT, r"$q(x_t \mid x_{t-1})$ in $x_{t-1}$"),
                  "prior": (c.X0, r"$q(x_{t-1} \mid x_0)$"),
                  "posterior": (c.ALPHA, r"$q(x_{t-1} \mid x_t, x_0)$")}

        def curves():
            t = t_now()
            d = self.densities(t)
            group = VGroup(*[c.polyline(self.axes, GRID.tolist(), d[k].tolist(), styles[k][0]) for k in styles])
            x0_line = DashedLine(self.axes.c2p(float(self.x0), 0), self.axes.c2p(float(self.x0), 4.3),
                                 color=c.X0, stroke_width=2)
            group.add(x0_line)
            return group

        self.curves = always_redraw(curves)
        legend = VGroup(*c.labels(*[text for _, text in styles.values()], r"dashed: this pixel's $x_0$",
                                  colors=[colour for colour, _ in styles.values()] + [c.X0], size=26))
        legend.arrange(DOWN, aligned_edge=LEFT).next_to(self.axes, RIGHT, buff=0.3).shift(UP * 0.8)
        self.play(FadeIn(panel), FadeIn(self.axes), FadeIn(legend))
        self.add(self.curves)
        self.play(self.t_tracker.animate.set_value(T_END), run_time=4, rate_func=linear)
        self.wait(0.5)
        self.panel = panel
