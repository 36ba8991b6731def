"""Closing: the lecture's three results on one slide, and the loss they lead to.

    closed form (ex. 1b)   q(x_t | x_0) = N(x_t; sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I),  alpha_bar_t = alpha^t
    posterior (ex. 4)      q(x_{t-1} | x_t, x_0) = N(x_{t-1}; mu_q(x_t, x_0), sigma_q^2(t) I)
                           mu_q = [sqrt(alpha_t)(1 - alpha_bar_{t-1}) x_t + sqrt(alpha_bar_{t-1})(1 - alpha_t) x_0] / (1 - alpha_bar_t)
                           sigma_q^2(t) = (1 - alpha_t)(1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)
    ELBO (ex. 3)           log p(x_0) >= reconstruction - prior matching - sum_t denoising matching
    loss (ex. 5)           L_simple = E_{t, x_0, eps} || x̂_0(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t) - x_0 ||^2 / D

The ELBO is written with the very strings the exercise-3 scene derives it in (elbo_denoising).

Render: vdm render summary   (or manim -pql animations/summary.py Summary)
"""

from __future__ import annotations

from manim import DOWN, LEFT, RIGHT, UP, FadeIn, SurroundingRectangle, Title, VGroup

from animations.elbo_denoising import DENOISE, PRIOR_TEX
from animations.latex import RECON_TEX
from animations.lecture_scene import LectureScene
from animations.mobjects.text import MAX_WIDTH, label, one_line, tex
from animations.palette import BOX, DENOISING, PRIOR, RECONSTRUCTION

CLOSED_FORM = (r"q(x_t \mid x_0) = \mathcal{N}\!\left(x_t;\ \sqrt{\bar{\alpha}_t}\, x_0,\ (1-\bar{\alpha}_t)\,"
               r"\mathbf{I}\right), \quad \bar{\alpha}_t = \alpha^t",)
POSTERIOR = (r"q(x_{t-1} \mid x_t, x_0) = \mathcal{N}\!\left(x_{t-1};\ \mu_q(x_t, x_0),\ \sigma_q^2(t)\,"
             r"\mathbf{I}\right)",
             r"\mu_q = \frac{\sqrt{\alpha_t}(1-\bar{\alpha}_{t-1})\, x_t + \sqrt{\bar{\alpha}_{t-1}}(1-\alpha_t)\, x_0}"
             r"{1-\bar{\alpha}_t}, \quad \sigma_q^2(t) = \frac{(1-\alpha_t)(1-\bar{\alpha}_{t-1})}{1-\bar{\alpha}_t}")
ELBO = ((r"\log p(x_0) \ \geq\ ", RECON_TEX, PRIOR_TEX), (DENOISE,))
MSE = (r"\left\| \hat{x}_0\!\left(\sqrt{\bar{\alpha}_t}\, x_0 + \sqrt{1-\bar{\alpha}_t}\,\epsilon,\ t\right)"
       r" - x_0 \right\|^2")
# the training scene's L_simple: the mean over the D values of x_0, so the 1/D is written here too
LOSS = (r"\mathcal{L}_{\mathrm{simple}} = \mathbb{E}_{t,\, x_0,\, \epsilon}\left[\frac{1}{D}" + MSE + r"\right]",)
TERMS = {RECON_TEX: RECONSTRUCTION, PRIOR_TEX: PRIOR, DENOISE: DENOISING}
NAME_WIDTH = 3.0  # the column of names on the left; the formulas start after it


class Summary(LectureScene):
    def construct(self):
        self.title = Title("Three results, and the loss they lead to", font_size=38)
        self.add(self.title)
        fs = 26
        link = one_line(r"with $p_\theta(x_{t-1} \mid x_t) = q(x_{t-1} \mid x_t, \hat{x}_0)$ each denoising KL is "
                        r"$\frac{1}{2}(\mathrm{SNR}(t-1) - \mathrm{SNR}(t))\,\|\hat{x}_0 - x_0\|^2$; drop the weight:",
                        size=22)
        blocks = [
            ("closed form", "exercise 1b", [tex(*CLOSED_FORM, font_size=fs)]),
            ("posterior", "exercise 4", [tex(line, font_size=fs) for line in POSTERIOR]),
            ("ELBO", "exercise 3", [tex(*parts, terms=TERMS, font_size=fs) for parts in ELBO]),
            ("loss", "exercise 5", [link, tex(*LOSS, font_size=fs + 2)]),
        ]
        rows = VGroup()
        for name, where, lines in blocks:
            head = VGroup(label(name, size=30), label(where, size=22)).arrange(DOWN, aligned_edge=LEFT, buff=0.08)
            body = VGroup(*lines).arrange(DOWN, aligned_edge=LEFT, buff=0.2)
            if body.width > MAX_WIDTH - NAME_WIDTH:
                body.scale_to_fit_width(MAX_WIDTH - NAME_WIDTH)
            body.next_to(head, RIGHT, buff=NAME_WIDTH - head.width).align_to(head, UP)
            rows.add(VGroup(head, body))
        rows.arrange(DOWN, aligned_edge=LEFT, buff=0.45).next_to(self.title, DOWN, buff=0.35).set_x(0)
        box = SurroundingRectangle(rows[3][1][1], buff=0.1, color=BOX, stroke_width=2.5)
        say = [
            "To close, the three results of the exercises on one slide. First, the closed form: any x_t is drawn from "
            "x_0 in one step, a Gaussian whose mean shrinks x_0 by the square root of alpha-bar and whose variance is "
            "one minus alpha-bar. No chain to run in training.",
            "Second, the posterior of one step back given x_0: a Gaussian again, with a mean that mixes x_t and x_0 "
            "and a variance that depends only on t. It is the target every reverse step is trained towards.",
            "Third, the ELBO in its denoising form: reconstruction, prior matching, and one KL per step between the "
            "posterior and the decoder. The matching terms are KLs between Gaussians, one random variable per term.",
            "And the loss: make each decoder step the posterior with the network's guess of x_0 in place of x_0. "
            "Each KL becomes a weighted squared error on x_0; drop the weight, draw t uniformly and x_t in closed "
            "form, and we have the mean squared error that trains the model.",
        ]
        for i, (row, words) in enumerate(zip(rows, say)):
            self.next_section(blocks[i][0])
            extra = [FadeIn(box)] if i == 3 else []  # the loss, boxed: where the lecture arrives
            self.play(FadeIn(row, shift=UP * 0.1), *extra)
            self.pause(len(row[1]) + 1, words)
        self.rows, self.link = rows, link
