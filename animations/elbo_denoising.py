"""Scene 4, the smarter ELBO (exercise 3): Markov and Bayes, the telescoping product cancelling
term by term, substitution into the ELBO, and the lower variance of its estimate.

    q(x_t | x_{t-1}) = q(x_t | x_{t-1}, x_0) = q(x_{t-1} | x_t, x_0) q(x_t | x_0) / q(x_{t-1} | x_0)
    prod_{t=2}^T q(x_t | x_0) / q(x_{t-1} | x_0) = q(x_T | x_0) / q(x_1 | x_0)
    log p(x_0) >= E[log p(x_0|x_1)] - KL(q(x_T|x_0) || p(x_T))
                  - sum_{t=2}^T E_{q(x_t|x_0)} KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t))

Each term lit on the chain graph, with what it measures in words (ON_CHAIN): reconstruction
q(x_1|x_0) against p_theta(x_0|x_1), prior matching the closed form q(x_T|x_0) against p(x_T),
denoising matching the posterior q(x_{t-1}|x_t,x_0) against p_theta(x_{t-1}|x_t).

Then both estimators on N draws of one image (lecture_data.elbo_draws, never the oracle),
term by term: each denoising term averages over one variable with a closed-form KL,
each consistency term over three. The caption comparing the means is computed.

Render: manim -pql animations/elbo_denoising.py DenoisingELBO
"""

from __future__ import annotations

from manim import DOWN, LEFT, RIGHT, UP, WHITE, Brace, Cross, FadeIn, MathTex, Title, VGroup, Write, config

from animations import elbo_panels
from animations.latex import RECON_TEX, plain_text
from animations.lecture_data import elbo_draws, elbo_model_note, elbo_model_words
from animations.elbo_consistency import RECON_WORDS
from animations.lecture_scene import LectureScene, cut, play_derivation, play_terms_on_chain
from animations.mobjects.chain_graph import ChainTerm, Dist
from animations.mobjects.plots import histogram_edges
from animations.mobjects.text import derivation, label, one_line, tex, unbroken_lines
from animations.palette import CONSISTENCY, DENOISING, PRIOR, RECONSTRUCTION

PRIOR_TEX = r"- D_{\mathrm{KL}}\!\left(q(x_T \mid x_0) \,\|\, p(x_T)\right)"
DENOISE = (r"- \sum_{t=2}^{T} \mathbb{E}_{q(x_t \mid x_0)}\left[D_{\mathrm{KL}}\!\left(q(x_{t-1} \mid x_t, x_0)"
           r" \,\|\, p_\theta(x_{t-1} \mid x_t)\right)\right]")
# exercise 3's terms on the chain graph: each compares two distributions, lit where they live on the chain
ON_CHAIN = (
    ChainTerm("reconstruction", RECONSTRUCTION, RECON_TEX, (Dist("q", "1", "0"), Dist("p", "0", "1")), RECON_WORDS,
              "Reconstruction is the same term as in exercise 2: the encoder's first step draws x_1 from the image, "
              "and the decoder's last step says how probable it makes x_0 from there."),
    ChainTerm("prior matching", PRIOR, PRIOR_TEX, (Dist("marginal", "T", "0"), Dist("prior", "T")),
              r"how far $x_T$ given $x_0$, in closed form, lies from the prior $p(x_T)$: no parameters, no sampling",
              "Prior matching now compares the closed form q of x_T given x_0, the whole forward chain in one jump, "
              "with the prior p of x_T. A KL divergence between two Gaussians, computed exactly; nothing in it is "
              "learned, and the noise schedule alone makes it small."),
    ChainTerm("denoising matching", DENOISING, DENOISE, (Dist("posterior", "t-1", "t"), Dist("p", "t-1", "t")),
              r"at each step: how far the decoder's step down from $x_t$ is from the true step down, which also "
              r"knows $x_0$",
              "Denoising matching compares two steps down, from x_t to x_(t-1): the true posterior q of x_(t-1) given "
              "x_t and x_0, which knows the clean image, and the decoder's step p-theta of x_(t-1) given x_t, which "
              "must guess it. Both are Gaussian, so each KL is exact, and it is zero when the decoder denoises as "
              "well as the posterior."),
)
# the telescoping product, one factor per part, so that the cancelling pairs can be crossed out
FACTORS = (r"\prod_{t=2}^{T} \frac{q(x_t \mid x_0)}{q(x_{t-1} \mid x_0)}", "=", r"q(x_2 \mid x_0)",
           r"q(x_1 \mid x_0)^{-1}", r"\cdot", r"q(x_3 \mid x_0)", r"q(x_2 \mid x_0)^{-1}", r"\cdots",
           r"q(x_T \mid x_0)", r"q(x_{T-1} \mid x_0)^{-1}")
CANCEL = ((2, 6), (5, 7), (7, 9))  # q(x_2) with q(x_2)^-1; q(x_3) and each next one with the dots; the dots with q(x_{T-1})^-1


class DenoisingELBO(LectureScene):
    def construct(self):
        self.draws = elbo_draws()
        self.title = Title("The smarter ELBO: denoising matching (exercise 3)", font_size=38)
        self.add(self.title)
        self.section_bayes()
        self.section_telescope()
        self.section_substitute()
        self.section_result()
        self.section_variance()

    def steps(self, rows, notes, say, fs=28, buff=0.35, focus=None):
        return play_derivation(self, rows, notes, say=say, below=self.title, font_size=fs, buff=buff, focus=focus)

    def section_bayes(self):
        self.next_section("Markov property and Bayes")
        rows = [
            (r"q(x_t \mid x_{t-1})", "=", r"q(x_t \mid x_{t-1}, x_0)"),
            (None, "=", r"\frac{q(x_{t-1} \mid x_t, x_0)\, q(x_t \mid x_0)}{q(x_{t-1} \mid x_0)}"),
        ]
        notes = [r"Markov: given $x_{t-1}$, the next step does not depend on $x_0$",
                 r"Bayes, in $x_{t-1}$ and $x_t$ given $x_0$"]
        say = ["Exercise 3 derives a second form of the ELBO. The key step: by the Markov property, adding x_0 to "
               "the condition of an encoder step changes nothing.",
               "Now Bayes' rule, with everything conditioned on x_0, turns the step around: it becomes the "
               "posterior of x_(t-1) given x_t and x_0, times a ratio of two marginals we know in closed form."]
        self.steps(rows, notes, say, fs=34, buff=0.5, focus=[r"q(x_t \mid x_{t-1}, x_0)", None])
        cut(self, self.title)

    def section_telescope(self):
        """The encoder's product rewritten with Bayes; its ratio of marginals cancels term by term."""
        self.next_section("the telescoping product")
        enc = derivation([
            (r"\prod_{t=1}^{T} q(x_t \mid x_{t-1})", "=", r"q(x_1 \mid x_0)\prod_{t=2}^{T} "
             r"\frac{q(x_{t-1} \mid x_t, x_0)\, q(x_t \mid x_0)}{q(x_{t-1} \mid x_0)}"),
        ], font_size=30).next_to(self.title, DOWN, buff=0.5)
        enc.set_x(0)
        product = MathTex(*FACTORS, font_size=26).next_to(enc, DOWN, buff=0.7)
        result = tex(r"\prod_{t=2}^{T} \frac{q(x_t \mid x_0)}{q(x_{t-1} \mid x_0)} = "
                     r"\frac{q(x_T \mid x_0)}{q(x_1 \mid x_0)}", font_size=34).next_to(product, DOWN, buff=0.7)
        note = label(r"each $q(x_s \mid x_0)$ above a line meets its inverse in the next factor", size=26)
        note.to_edge(DOWN, buff=0.4)
        self.play(FadeIn(enc))
        self.pause(1, "Apply this to every encoder factor except the first. The first, q of x_1 given x_0, is "
                      "already conditioned on x_0 and stays.")
        self.play(FadeIn(product), FadeIn(note))
        self.pause(1, "Look at the ratios of marginals alone, written out. Each marginal in a numerator meets the "
                      "same marginal in the denominator of the next factor.")
        dots = FACTORS.index(r"\cdots")

        def strike(i):
            return FadeIn(Cross(product[i], stroke_width=3, stroke_color=WHITE))

        for k, (i, j) in enumerate(CANCEL):
            # the dots stand for factors that cancel among themselves: a cross over them is a smudge, so only
            # their partner outside them is crossed
            self.play(*(strike(n) for n in (i, j) if n != dots), run_time=1.2)
            self.pause(0, "They cancel in pairs." if k == 0 else "And the next pair.", hold=1.5)
        self.play(FadeIn(result, shift=DOWN * 0.2))
        self.pause(2, "The product telescopes: only the last numerator, q of x_T given x_0, and the first "
                      "denominator, q of x_1 given x_0, survive.")
        self.product = product
        cut(self, self.title)

    def section_substitute(self):
        self.next_section("substituted into the ELBO")
        rows = [
            (r"\mathrm{ELBO}", "=", r"\mathbb{E}_{q}\left[\log \frac{p(x_T)\, p_\theta(x_0 \mid x_1)\prod_{t=2}^{T}"
                                   r" p_\theta(x_{t-1} \mid x_t)}{q(x_1 \mid x_0)\prod_{t=2}^{T} q(x_t \mid x_{t-1}, x_0)}\right]"),
            (None, "=", r"\mathbb{E}_{q}\left[\log \frac{p(x_T)\, p_\theta(x_0 \mid x_1)}{q(x_1 \mid x_0)}"
                        r" + \log \frac{q(x_1 \mid x_0)}{q(x_T \mid x_0)} + \log \prod_{t=2}^{T}"
                        r" \frac{p_\theta(x_{t-1} \mid x_t)}{q(x_{t-1} \mid x_t, x_0)}\right]"),
            (None, "=", r"\mathbb{E}_{q}\left[\log \frac{p(x_T)\, p_\theta(x_0 \mid x_1)}{q(x_T \mid x_0)}"
                        r" + \sum_{t=2}^{T} \log \frac{p_\theta(x_{t-1} \mid x_t)}{q(x_{t-1} \mid x_t, x_0)}\right]"),
            (None, "=", r"\mathbb{E}_{q(x_1 \mid x_0)}\left[\log p_\theta(x_0 \mid x_1)\right]"
                        r" + \mathbb{E}_{q(x_T \mid x_0)}\left[\log \frac{p(x_T)}{q(x_T \mid x_0)}\right]"
                        r" + \sum_{t=2}^{T} \mathbb{E}_{q(x_t, x_{t-1} \mid x_0)}\left[\log"
                        r" \frac{p_\theta(x_{t-1} \mid x_t)}{q(x_{t-1} \mid x_t, x_0)}\right]"),
        ]
        notes = [r"the encoder with the Markov property made explicit ($x_0$ in every factor)",
                 r"Bayes in every factor, and the telescoped ratio",
                 r"$q(x_1 \mid x_0)$ cancels",
                 r"each expectation reduced to its marginal; the inner ones over $x_T$ and $x_{t-1}$ are KLs"]
        say = ["Back to the ELBO, with the encoder written with x_0 in every factor.",
               "Replace every factor by Bayes' rule, and the product of marginal ratios by what it telescoped to.",
               "q of x_1 given x_0 appears once above and once below: it cancels. The prior's partner is now q of x_T "
               "given x_0, the closed form.",
               "Each expectation again needs only the variables it reads. The expectations over x_T and over "
               "x_(t-1) given x_t and x_0 are of log-ratios against their own distribution: they are KL divergences."]
        self.steps(rows, notes, say, fs=24, buff=0.45)
        cut(self, self.title)

    def section_result(self):
        self.next_section("the denoising-matching terms")
        fs = 30
        terms = {RECON_TEX: RECONSTRUCTION, PRIOR_TEX: PRIOR, DENOISE: DENOISING}
        top = tex(r"\log p(x_0) \ \geq\ ", RECON_TEX, PRIOR_TEX, terms=terms, font_size=fs)
        bottom = tex(DENOISE, terms=terms, font_size=fs)
        VGroup(top, bottom).arrange(DOWN, buff=1.1).next_to(self.title, DOWN, buff=0.5)
        bottom.align_to(top[1], LEFT)
        names = VGroup()
        for part, name, colour in ((top[1], "reconstruction", RECONSTRUCTION), (top[2], "prior matching", PRIOR),
                                   (bottom[0], "denoising matching", DENOISING)):
            brace = Brace(part, DOWN, buff=0.08, color=colour)
            names.add(VGroup(brace, label(name, colour, 28).next_to(brace, DOWN, buff=0.08)))
        self.play(FadeIn(top), FadeIn(bottom))
        self.play(FadeIn(names, shift=UP * 0.1), run_time=1)
        self.pause(3, "The ELBO of exercise 3: reconstruction, prior matching and denoising matching. The same "
                      "reconstruction term as before; the other two have changed. On the chain graph, what each "
                      "term now compares.")
        cut(self, self.title)
        self.next_section("what each term measures, on the chain")
        self.chain = play_terms_on_chain(
            self, ON_CHAIN,
            (r"each term compares two distributions on the chain: the encoder's steps $q$ above, the decoder's "
             r"$p_\theta$ below",
             "The chain graph again: the encoder's steps q above, going up, the decoder's steps p-theta below, "
             "going down. We light up the two distributions each term of the new ELBO compares."))
        cut(self)

    def section_why(self):
        """The argument of exercise 3 after its demonstration: one sentence per reason."""
        self.next_section("why the denoising form is the better target")
        cut(self, self.title)
        cons, den = self.draws["consistency"], self.draws["denoising"]
        ratio = float(cons.total.double().std() / den.total.double().std())
        head = label(r"why the denoising form is the better target", size=32).next_to(self.title, DOWN, buff=0.6)
        reasons = VGroup(
            one_line(r"1.\ one random variable per term: $x_t \sim q(x_t \mid x_0)$, "
                     r"where a consistency term needs $x_{t-1}, x_t, x_{t+1}$", size=28),
            one_line(r"2.\ inside it, a KL between two Gaussians in closed form: no sampling, never negative", size=28),
            one_line(r"3.\ the prior term needs no sampling: "
                     r"$D_{\mathrm{KL}}(q(x_T \mid x_0) \,\|\, p(x_T))$, where the other form draws $x_{T-1}$", size=28),
            one_line(rf"measured here: a spread per draw {ratio:.1f} times smaller" if ratio > 1 else
                     rf"measured here: the spread per draw is not smaller (ratio {ratio:.2f})", DENOISING, 28),
        ).arrange(DOWN, aligned_edge=LEFT, buff=0.4).next_to(head, DOWN, buff=0.6)
        self.play(FadeIn(head))
        say = ["First reason: each denoising term is an expectation over one random variable, x_t, drawn in closed "
               "form from x_0. A consistency term needs three latents drawn jointly, so its estimate is noisier.",
               "Second: what is inside the expectation is a KL divergence between two Gaussians, computed exactly. "
               "No sampling inside, and never negative.",
               "Third: the prior matching term needs no sampling at all, a KL in closed form given x_0. In the "
               "consistency form it needed x_(T-1) drawn, which adds noise to the estimate. Neither version has "
               "parameters, so neither affects the gradient; this is about the estimate's noise.",
               (f"And the demonstration agrees: a spread per draw {ratio:.1f} times smaller. Lower variance means "
                "less noisy gradients for the same number of draws: a better optimisation target." if ratio > 1 else
                f"Here the demonstration does not show it: the ratio of the spreads is {ratio:.2f}. The argument "
                "holds per term; say which model and estimator were used.")]
        for r, words in zip(reasons, say):
            self.play(FadeIn(r, shift=UP * 0.1))
            self.pause(1, words)
        self.reasons = reasons

    def section_variance(self):
        self.next_section("both estimators on the same image")
        cons, den = self.draws["consistency"], self.draws["denoising"]
        a, b = cons.total.double().numpy(), den.total.double().numpy()
        log = elbo_panels.needs_log([a, b])  # a trained run's one-t draws can have tails decades long
        ha, hb = elbo_panels.histogram_values([a, b], log)
        edges = histogram_edges([ha, hb])
        title = Title(r"$-$ELBO of one image, drawn " + f"{len(a)} times, both forms", font_size=36)
        sub = unbroken_lines(elbo_model_note(), size=22).next_to(title, DOWN, buff=0.12)
        left = elbo_panels.totals_panel(ha, edges, CONSISTENCY, rf"consistency (ex. 2): std {elbo_panels.spread(a.std())} nats",
                                        width=5.0, height=1.4, log=log)
        right = elbo_panels.totals_panel(hb, edges, DENOISING, rf"denoising matching (ex. 3): std {elbo_panels.spread(b.std())} nats",
                                         width=5.0, height=1.4, log=log)
        VGroup(left, right).arrange(RIGHT, buff=1.2).next_to(sub, DOWN, buff=0.2)
        tables = elbo_panels.compare_table(cons, den, size=20)
        self.compare_rows = tables.rows
        spread = elbo_panels.spread_panel(cons, den, width=3.4, height=1.4)
        low = VGroup(tables, spread).arrange(RIGHT, buff=1.2).next_to(VGroup(left, right), DOWN, buff=0.4)
        low.set_x(0)
        if low.width > 13.6:  # a trained run's numbers are longer: keep the row inside the frame
            low.scale_to_fit_width(13.6)
        means = label(elbo_panels.compare_caption(a, b), size=22).next_to(low, DOWN, buff=0.3)
        below = -config.frame_height / 2 + 0.2 - means.get_bottom()[1]  # a margin under the caption's last line
        if below > 0:
            low.shift(UP * min(below, 0.25))
            means.next_to(low, DOWN, buff=0.3 - max(0.0, below - 0.25))
        self.play(Write(title), FadeIn(sub))
        self.play(FadeIn(left), FadeIn(right))
        self.pause(2, f"Exercise 3 asks whether this is a better optimisation target. The same image, {len(a)} draws "
                      f"of each estimator. {elbo_model_words()} On the left the consistency form, standard deviation "
                      f"about {elbo_panels.spread(a.std())} nats; on the right the denoising form, about "
                      f"{elbo_panels.spread(b.std())} nats.")
        self.play(FadeIn(tables))
        self.pause(4, "Term by term, mean and standard error. The reconstruction terms agree; the other two terms "
                      "are split differently between the forms, and the totals estimate the same bound: how close their "
                      "means come, we read off in a moment.")
        self.play(FadeIn(spread))
        self.pause(2, "The spread of each term per draw, on a log scale: the matching terms are where the consistency "
                      "form loses, because each of its terms needs three random latents.")
        self.play(FadeIn(means))
        self.pause(2, "The two means: " + plain_text(elbo_panels.compare_caption(a, b)) + ". Both forms estimate "
                      "the same ELBO, one with far less noise.")
        self.section_why()
        self.panels = (left, right)
        self.spread = spread
        self.caption = means
