"""Scene 4, the smarter ELBO (exercise 3): Bayes, telescoping, denoising matching, and its lower variance.

    q(x_t | x_{t-1}) = q(x_t | x_{t-1}, x_0) = q(x_{t-1} | x_t, x_0) q(x_t | x_0) / q(x_{t-1} | x_0)
    prod_{t=2}^T q(x_t | x_0) / q(x_{t-1} | x_0) = q(x_T | x_0) / q(x_1 | x_0)
    log p(x_0) >= E[log p(x_0|x_1)] - KL(q(x_T|x_0) || p(x_T))
                  - sum_{t=2}^T E_{q(x_t|x_0)} KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t))

Then both estimators on the same N draws of one image (common.elbo_draws):
each denoising term averages over one variable with a closed-form KL, each
consistency term over three, so the second histogram is far narrower.

Render: manim -pql animations/elbo_denoising.py DenoisingELBO
"""

from __future__ import annotations

from manim import DOWN, LEFT, RIGHT, UP, Brace, FadeIn, GrowFromEdge, Scene, Title, VGroup, Write

from animations import common as c

PRIOR = r"- D_{\mathrm{KL}}\!\left(q(x_T \mid x_0) \,\|\, p(x_T)\right)"
DENOISE = (r"- \sum_{t=2}^{T} \mathbb{E}_{q(x_t \mid x_0)}\left[D_{\mathrm{KL}}\!\left(q(x_{t-1} \mid x_t, x_0)"
           r" \,\|\, p_\theta(x_{t-1} \mid x_t)\right)\right]")


class DenoisingELBO(Scene):
    def construct(self):
        self.draws = c.elbo_draws()
        self.title = Title("The smarter ELBO: denoising matching (exercise 3)", font_size=38)
        self.add(self.title)
        self.section_bayes()
        self.section_result()
        self.section_variance()

    def section_bayes(self):
        self.next_section("Bayes and the telescoping product")
        fs = 32
        markov = c.tex(r"q(x_t \mid x_{t-1}) = q(x_t \mid x_{t-1}, x_0)", r"\ \text{(Markov)}", font_size=fs)
        bayes = c.tex(r"= \frac{q(x_{t-1} \mid x_t, x_0)\, q(x_t \mid x_0)}{q(x_{t-1} \mid x_0)}",
                      r"\ \text{(Bayes)}", font_size=fs)
        expanded = c.tex(r"\prod_{t=2}^{T} \frac{q(x_t \mid x_0)}{q(x_{t-1} \mid x_0)} = "
                         r"\frac{q(x_2 \mid x_0)}{q(x_1 \mid x_0)}\cdot\frac{q(x_3 \mid x_0)}{q(x_2 \mid x_0)}"
                         r"\cdots\frac{q(x_T \mid x_0)}{q(x_{T-1} \mid x_0)}", font_size=fs)
        telescoped = c.tex(r"= \frac{q(x_T \mid x_0)}{q(x_1 \mid x_0)}", r"\ \text{(telescoping)}", font_size=fs)
        group = VGroup(markov, bayes, expanded, telescoped).arrange(DOWN, buff=0.45).next_to(self.title, DOWN, buff=0.5)
        bayes.align_to(markov, LEFT).shift(RIGHT * 1.0)
        telescoped.align_to(expanded, LEFT).shift(RIGHT * 1.0)
        for m in group:
            self.play(FadeIn(m, shift=DOWN * 0.2), run_time=0.8)
        self.wait(0.5)
        c.cut(self, self.title)

    def section_result(self):
        self.next_section("the denoising-matching terms")
        fs = 30
        terms = {c.RECON_TEX: c.RECONSTRUCTION, PRIOR: c.PRIOR, DENOISE: c.DENOISING}
        top = c.tex(r"\log p(x_0) \ \geq\ ", c.RECON_TEX, PRIOR, terms=terms, font_size=fs)
        bottom = c.tex(DENOISE, terms=terms, font_size=fs)
        VGroup(top, bottom).arrange(DOWN, buff=1.1).next_to(self.title, DOWN, buff=0.5)
        names = VGroup()
        for part, name, colour in ((top[1], "reconstruction", c.RECONSTRUCTION), (top[2], "prior matching", c.PRIOR),
                                   (bottom[0], "denoising matching", c.DENOISING)):
            brace = Brace(part, DOWN, buff=0.08, color=colour)
            names.add(VGroup(brace, c.label(name, colour, 28).next_to(brace, DOWN, buff=0.08)))
        why = c.label(r"each term: an expectation over one $x_t$ of a KL between two Gaussians, in closed form"
                      r" (exercise 2: over $x_{t-1}, x_t, x_{t+1}$)", size=24).to_edge(DOWN, buff=0.4)
        self.play(FadeIn(top), FadeIn(bottom))
        self.play(*[FadeIn(n, shift=UP * 0.1) for n in names])
        self.play(FadeIn(why))
        self.wait(0.5)
        c.cut(self)

    def section_variance(self):
        self.next_section("both estimators on the same draws")
        cons, den = self.draws["consistency"], self.draws["denoising"]
        a, b = cons.total.double().numpy(), den.total.double().numpy()
        edges = c.histogram_edges([a, b])
        title = Title(r"$-$ELBO of one image, drawn " + f"{len(a)} times, both forms", font_size=36)
        sub = c.label(c.denoiser_name(), size=26).next_to(title, DOWN, buff=0.15)
        left = c.histogram_panel(a, edges, c.CONSISTENCY, rf"consistency (ex. 2): std {a.std():.1f} nats", width=5.6)
        right = c.histogram_panel(b, edges, c.DENOISING, rf"denoising matching (ex. 3): std {b.std():.1f} nats",
                                  width=5.6)
        VGroup(left, right).arrange(RIGHT, buff=0.8).shift(DOWN * 0.3)
        means = c.label(rf"means: {a.mean():,.1f} and {b.mean():,.1f} nats: the same bound, "
                        rf"{cons.bpd()['total']:.3f} vs {den.bpd()['total']:.3f} bits/dim", size=26)
        means.to_edge(DOWN, buff=0.35)
        self.play(Write(title), FadeIn(sub))
        self.play(FadeIn(left[0]), FadeIn(left[2]), FadeIn(right[0]), FadeIn(right[2]))
        self.play(GrowFromEdge(left[1], DOWN), GrowFromEdge(right[1], DOWN))
        self.play(FadeIn(means))
        self.panels = (left, right)
        self.wait(0.5)
