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
from manim import (DOWN, LEFT, RIGHT, UP, WHITE, Create, DashedLine, FadeIn, FadeOut, SurroundingRectangle, Title,
                   ValueTracker, VGroup, always_redraw, linear)

from animations.latex import plain_text, sci
from animations.lecture_data import example_x0, lecture_schedule
from animations.lecture_scene import LectureScene, cut, play_derivation
from animations.mobjects.live_number import LiveNumber
from animations.mobjects.plots import EdgeAxes, polyline
from animations.mobjects.text import derivation, label, labels, one_line, tex
from animations.palette import BOX, POSTERIOR, X0, XT
from vdm.diffusion import forward_step, posterior, posterior_coefs, q_mean_var, q_sample
from vdm.elbo import gaussian_log_prob

GRID = torch.linspace(-1.6, 1.6, 161, dtype=torch.float64)  # values of x_{t-1}
# the quadratic and linear coefficients of x_{t-1} in the exponent, boxed where they are read off
QUAD = r"\frac{\alpha_t}{1-\alpha_t} + \frac{1}{1-\bar{\alpha}_{t-1}}"
LIN = r"\left(\frac{\sqrt{\alpha_t}\, x_t}{1-\alpha_t} + \frac{\sqrt{\bar{\alpha}_{t-1}}\, x_0}{1-\bar{\alpha}_{t-1}}\right)"
T_END = 2  # sweep t from T down to 2, where prior and likelihood are equally wide
SWEEP_STOPS = (100, 40, 10, T_END)  # the sweep pauses at each; log-spaced, so most of its time is at small t
PRODUCT_T = (20, 2)  # the product of Gaussians shown at these steps: likelihood narrower, then both as wide


def log_u(t: float, T: int) -> float:
    """The sweep's fraction for step t: log(t + 1) / log(T + 1) (forward_diffusion.log_t inverted)."""
    return float(np.log(t + 1) / np.log(T + 1))


class Posterior(LectureScene):
    def construct(self):
        self.schedule = lecture_schedule()
        self.coefs = posterior_coefs(self.schedule)
        # one pixel (red channel, centre of the example image) and a fixed noise draw,
        # so x_t moves smoothly with t instead of jumping each frame
        self.x0 = example_x0(1)[0, 0, 16, 16].double().reshape(1)
        self.eps = torch.tensor([0.7], dtype=torch.float64)
        self.title = Title(r"The posterior $q(x_{t-1} \mid x_t, x_0)$ (exercise 4)", font_size=38)
        self.add(self.title)
        self.section_product()
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
        # as a function of x_{t-1}, N(x_t; sqrt(alpha_t) x_{t-1}, beta_t) has width sqrt(beta_t / alpha_t)
        widths = (float((s.beta[t] / s.alpha[t]).sqrt()), float(torch.as_tensor(v).sqrt()))
        return {"likelihood": like, "prior": prior, "posterior": post, "widths": widths}

    def product_curves(self, t: int) -> dict:
        """At step t: likelihood and prior over GRID (vdm), their pointwise product normalised on the grid,
        and vdm.diffusion.posterior's density, which the product must equal."""
        d = self.densities(t)
        prod = (d["likelihood"] * d["prior"]).numpy()
        prod = prod / np.trapezoid(prod, GRID.numpy())
        return {"likelihood": d["likelihood"].numpy(), "prior": d["prior"].numpy(), "product": prod,
                "posterior": d["posterior"].numpy(), "widths": d["widths"]}

    def section_product(self):
        """Before the algebra: two Gaussians in x_{t-1} multiplied point by point are the posterior."""
        self.next_section("two Gaussians multiply into the posterior")
        axes = EdgeAxes(x_range=[-1.6, 1.6, 0.4], y_range=[0, 4.5, 1], x_length=8.6, y_length=3.8, tips=False,
                    axis_config={"include_numbers": True, "font_size": 20}).to_edge(DOWN, buff=1.55).shift(LEFT * 1.6)
        x_lab = label(r"$x_{t-1}$: one pixel's value", size=24).next_to(axes.x_axis, DOWN, buff=0.35)
        y_lab = label("density", size=22).rotate(np.pi / 2).next_to(axes, LEFT, buff=0.1)
        self.product_axes = axes
        grid = GRID.numpy()
        self.play(FadeIn(axes), FadeIn(x_lab), FadeIn(y_lab))
        self.product_checks = {}
        keep = VGroup()
        for t in PRODUCT_T:
            d = self.product_curves(t)
            gap = float(np.abs(d["product"] - d["posterior"]).max() / d["posterior"].max())
            self.product_checks[t] = gap
            like = polyline(axes, grid, d["likelihood"], XT, 3)
            prior = polyline(axes, grid, d["prior"], X0, 3)
            post = polyline(axes, grid, d["posterior"], POSTERIOR, 8)
            prod = polyline(axes, grid, d["product"], WHITE, 2.5)
            head = label(rf"$t = {t}$", size=30).next_to(self.title, DOWN, buff=0.25)
            lines = [(like, r"likelihood $q(x_t \mid x_{t-1})$ as a function of $x_{t-1}$ "
                            r"(a Gaussian: the step read backwards)", XT),
                     (prior, r"prior $q(x_{t-1} \mid x_0)$: where the chain can be after $t-1$ steps", X0),
                     (post, r"the posterior $q(x_{t-1} \mid x_t, x_0)$ in closed form", POSTERIOR),
                     (prod, r"their product, point by point, scaled to area 1 (white): the same curve", WHITE)]
            s_like, s_prior = d["widths"]  # the standard deviations, not read off the grid (it cuts the prior)
            widths = (f"standard deviation {s_like:.3f}", f"standard deviation {s_prior:.3f}")
            if t == PRODUCT_T[0]:
                first_like = s_like
                say = [f"Exercise 4: the posterior of one step back, given x_t and x_0. First as a picture, for one "
                       f"pixel at t = {t}. As a function of x_(t-1), the step q of x_t given x_(t-1) is a Gaussian: "
                       f"the forward step read backwards, {widths[0]}.",
                       "The second factor is the prior: where the chain can be after t-1 steps from x_0, the closed "
                       f"form of exercise 1b; here {widths[1]}.",
                       "The posterior in closed form: the result we are about to derive, drawn from its formula.",
                       "Multiply the two factors point by point and rescale to area one: the white curve lies on the "
                       f"posterior, their largest gap {plain_text(sci(100 * gap))} percent of its peak, rounding only. "
                       "Bayes' rule, drawn."]
            else:
                same = abs(s_like - first_like) <= 0.01 * first_like
                say = [f"The same picture at t = {t}, one step from the data. The step read backwards " +
                       (f"is as wide as at t = {PRODUCT_T[0]}, {widths[0]}: every step adds the same noise." if same
                        else f"now has {widths[0]}."),
                       f"The prior, after only {t - 1} step{'s' if t != 2 else ''} from x_0, is narrow too: "
                       f"{widths[1]}.",
                       "The closed-form posterior again, between the two this time.",
                       "And again the product of the two factors lies on it, their largest gap "
                       f"{plain_text(sci(100 * gap))} percent of its peak."]
            legend = VGroup(*labels(r"likelihood", r"prior", r"posterior", r"product",
                                    colors=[XT, X0, POSTERIOR, WHITE], size=24))
            legend.arrange(DOWN, aligned_edge=LEFT).next_to(axes, RIGHT, buff=0.3).align_to(axes, UP)
            self.play(FadeIn(head))
            caption = None
            for k in range(4):  # the thick posterior before, so under, the thin white product; say[k] is line k's
                curve, text, _ = lines[k]
                cap = one_line(text, size=24).to_edge(DOWN, buff=0.3)
                anims = [Create(curve), FadeIn(legend[k]), FadeIn(cap)]
                if caption is not None:
                    anims.append(FadeOut(caption))
                self.play(*anims, run_time=1.5)
                caption = cap
                self.pause(1, say[k])
            keep = VGroup(like, prior, post, prod, legend, head, caption)
            if t != PRODUCT_T[-1]:
                self.play(FadeOut(keep))
        wide = one_line(r"the narrower factor wins: the posterior sits nearer the likelihood at large $t$, "
                        r"between both where they are equally wide", size=24).to_edge(DOWN, buff=0.3)
        self.play(FadeOut(keep[-1]), FadeIn(wide))
        self.pause(2, "The product of two Gaussians follows the narrower one. At large t the likelihood is much "
                      "narrower than the prior, so the posterior sits on it; at small t both are about as wide and the "
                      "posterior lies between them.")
        cut(self, self.title)

    def section_bayes(self):
        """Bayes with the Markov property, the three Gaussians, their exponents (exercise 4, first half)."""
        self.next_section("Bayes: a product of Gaussians")
        fs = 28
        rows = [
            (r"q(x_{t-1} \mid x_t, x_0)", "=",
             (r"q(x_t \mid x_{t-1}, x_0)", r"\, q(x_{t-1} \mid x_0) \,\big/\, q(x_t \mid x_0)")),
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
        say = ["Now the algebra. Bayes' rule with x_0 in every condition; by the Markov property the first factor is "
               "just the forward step.",
               "All three factors are Gaussians we know: the step, and the closed form at t-1 and at t.",
               "Keep only the exponents. The normalising constants do not depend on x_(t-1), so they only rescale."]
        play_derivation(self, rows, notes, say=say, below=self.title, font_size=fs, buff=0.4,
                        focus=[r"q(x_t \mid x_{t-1}, x_0)", None, None])
        cut(self, self.title)

    def section_square(self):
        """Completing the square in x_{t-1}: 1/sigma_q^2 is the quadratic coefficient, and
        mu_q = sigma_q^2 times the linear coefficient; then the seed's constant-alpha form."""
        self.next_section("completing the square")
        fs = 28
        rows = [
            (r"q(x_{t-1} \mid x_t, x_0)", r"\propto", r"\exp\left\{-\frac{1}{2}\left[\left(\frac{\alpha_t}{1-\alpha_t} + "
                        r"\frac{1}{1-\bar{\alpha}_{t-1}}\right) x_{t-1}^2 - 2\left(\frac{\sqrt{\alpha_t}\, x_t}{1-\alpha_t}"
                        r" + \frac{\sqrt{\bar{\alpha}_{t-1}}\, x_0}{1-\bar{\alpha}_{t-1}}\right) x_{t-1} + C(x_t, x_0)\right]\right\}"),
            (r"\frac{1}{\sigma_q^2(t)}", "=", (QUAD, r"= \frac{1-\bar{\alpha}_t}{(1-\alpha_t)(1-\bar{\alpha}_{t-1})}")),
            (r"\mu_q", "=", (r"\sigma_q^2(t)", LIN)),
            (None, "=", r"\frac{\sqrt{\alpha_t}(1-\bar{\alpha}_{t-1})\, x_t + \sqrt{\bar{\alpha}_{t-1}}(1-\alpha_t)"
                        r"\, x_0}{1-\bar{\alpha}_t}"),
        ]
        notes = [r"expand the squares and collect powers of $x_{t-1}$; $C$ holds what does not depend on it",
                 r"a Gaussian's exponent is $-\frac{1}{2}\left(x^2/\sigma^2 - 2\mu x/\sigma^2\right)$: "
                 r"the quadratic coefficient is $1/\sigma_q^2$",
                 r"and the linear coefficient is $\mu_q / \sigma_q^2$",
                 r"multiply out, with $1 - \bar{\alpha}_t = \alpha_t(1 - \bar{\alpha}_{t-1}) + (1 - \alpha_t)$"]
        say = ["Expand the squares and collect the powers of x_(t-1). Everything without x_(t-1) goes into C.",
               "Compare with a Gaussian's exponent: the coefficient of x squared is one over the variance. That gives "
               "the posterior variance, which depends only on t, not on the data.",
               "The coefficient of x is the mean over the variance, so the mean is the variance times it.",
               "Multiplied out: the posterior mean is a weighted average of x_t and x_0, with weights that depend "
               "only on the schedule."]
        play_derivation(self, rows, notes, say=say, below=self.title, font_size=fs, buff=0.38,
                        focus=[None, QUAD, LIN, None])
        cut(self, self.title)
        # the seed's form: constant alpha, so alpha_bar_{t-1} = alpha^{t-1}
        res = derivation([
            (r"\mu_q", "=", r"\frac{\sqrt{\alpha}(1-\alpha^{t-1})\, x_t + \sqrt{\alpha^{t-1}}(1-\alpha)\, x_0}{1-\alpha^t}"),
            (r"\sigma_q^2(t)", "=", r"\frac{(1-\alpha)(1-\alpha^{t-1})}{1-\alpha^t}"),
        ], font_size=38, buff=0.5)
        head = label(r"with the constant $\alpha$ of the assignment: $\bar{\alpha}_{t-1} = \alpha^{t-1}$", size=30)
        head.next_to(self.title, DOWN, buff=0.3)
        # below the heading with room for the box's own margin (0.2), so the box never cuts the heading
        res.next_to(head, DOWN, buff=0.45).set_x(0)
        box = SurroundingRectangle(res, buff=0.2, color=BOX)
        q = tex(r"q(x_{t-1} \mid x_t, x_0) = \mathcal{N}\!\left(x_{t-1};\ \mu_q(x_t, x_0),\ \sigma_q^2(t)\,\mathbf{I}\right)",
                font_size=34).next_to(box, DOWN, buff=0.5)
        self.play(FadeIn(head), FadeIn(res))
        self.play(FadeIn(box), FadeIn(q))
        self.pause(4, "With the assignment's constant alpha, alpha-bar is a power of alpha. This is the answer to "
                      "exercise 4: the posterior is Gaussian, with this mean, linear in x_t and x_0, and this variance.")
        cut(self, self.title)

    def section_live(self):
        self.next_section("live coefficients and densities as t sweeps")
        T = self.schedule.T
        c_x0, c_xt, var = self.coefs
        self.t_tracker = ValueTracker(T)

        def t_now() -> int:
            return max(2, min(T, int(round(self.t_tracker.get_value()))))

        fs = 34
        self.num_c_x0 = LiveNumber(float(c_x0[T]), "{:.4f}", fs, X0)
        self.num_c_xt = LiveNumber(float(c_xt[T]), "{:.4f}", fs, XT)
        self.num_var = LiveNumber(float(var[T]), "{:.4f}", fs)
        self.num_t = LiveNumber(T, "{:.0f}", fs)
        mu = VGroup(tex(r"\mu_q =", font_size=fs), self.num_c_x0, tex(r"\, x_0 \:+", font_size=fs),
                    self.num_c_xt, tex(r"\, x_t", font_size=fs)).arrange(RIGHT, buff=0.15)  # \: the space TeX sets round a +
        sig = VGroup(tex(r"\sigma_q^2(t) =", font_size=fs), self.num_var).arrange(RIGHT, buff=0.15)
        tl = VGroup(tex("t =", font_size=fs), self.num_t).arrange(RIGHT, buff=0.15)
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

        self.axes = EdgeAxes(x_range=[-1.6, 1.6, 0.4], y_range=[0, 4.5, 1], x_length=9.0, y_length=3.9, tips=False,
                         axis_config={"include_numbers": True, "font_size": 20}).to_edge(DOWN, buff=0.9).shift(LEFT * 1.0)
        x_lab = label(r"$x_{t-1}$: one pixel's value (data scale $[-1, 1]$)", size=24)
        x_lab.next_to(self.axes.x_axis, DOWN, buff=0.4)
        y_lab = label("density (per unit of pixel value)", size=22).rotate(1.5708)
        y_lab.next_to(self.axes, LEFT, buff=0.15)
        styles = {"likelihood": (XT, r"$q(x_t \mid x_{t-1})$ in $x_{t-1}$", 3),
                  "prior": (X0, r"$q(x_{t-1} \mid x_0)$", 3),
                  "posterior": (POSTERIOR, r"$q(x_{t-1} \mid x_t, x_0)$, thick", 7)}

        def curves():
            t = t_now()
            d = self.densities(t)
            # the posterior first and thick, the likelihood thin on top: while the prior is wide they coincide
            order = ("posterior", "likelihood", "prior")
            group = VGroup(*[polyline(self.axes, GRID.tolist(), d[k].tolist(), styles[k][0], styles[k][2])
                             for k in order])
            x0_line = DashedLine(self.axes.c2p(float(self.x0), 0), self.axes.c2p(float(self.x0), 4.3),
                                 color=X0, stroke_width=2)
            group.add(x0_line)
            return group

        self.curves = always_redraw(curves)
        legend = VGroup(*labels(*[text for _, text, _ in styles.values()],
                                colors=[colour for colour, _, _ in styles.values()], size=24),
                        label(r"dashed line: $x_0$ of this pixel", X0, 24))
        legend.arrange(DOWN, aligned_edge=LEFT).next_to(self.axes, RIGHT, buff=0.2).shift(UP * 0.8)
        self.play(FadeIn(panel), FadeIn(self.axes), FadeIn(x_lab), FadeIn(y_lab), FadeIn(legend))
        self.add(self.curves)
        self.pause(2, f"Now the coefficients live, for one pixel, as t sweeps down from {T}. At large t the mean is "
                      "almost all x_t: the posterior follows the step back.")
        # a log-spaced sweep (u = log(t + 1) / log(T + 1)), pausing at each stop: t < 40, where the
        # posterior leaves the likelihood, gets most of the time
        u = ValueTracker(log_u(T, T))
        self.t_tracker.add_updater(lambda m: m.set_value((T + 1) ** u.get_value() - 1))
        self.add(self.t_tracker)
        for stop in SWEEP_STOPS:
            self.play(u.animate.set_value(log_u(stop, T)), run_time=4, rate_func=linear)
            # the panel's updater reads the tracker before the tracker's own updater runs: bring both to the
            # stop, or the held frame shows the step one frame earlier (103 for 100)
            for m in (self.t_tracker, panel, self.curves):
                m.update()
            t = t_now()
            watch = "Watch the weight on x_0 grow as t gets small. " if stop == SWEEP_STOPS[0] else ""
            self.pause(2, watch + f"t = {t}: the mean is {float(c_x0[t]):.4f} times x_0 plus {float(c_xt[t]):.4f} times x_t, "
                          f"the variance {float(var[t]):.4f}. "
                          + ("Close to the data, at small t, x_0 carries real weight: the posterior knows where the "
                             "pixel is going." if t <= 10 else "The weight on x_0 is still small."))
        self.t_tracker.clear_updaters()
        self.panel = panel
