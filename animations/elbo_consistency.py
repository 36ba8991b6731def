"""Scene 3, the ELBO with consistency terms (exercise 2's second half), derived in full and then estimated with vdm.elbo.

It starts from the bound the MHVAE scene (mhvae.py) ends on, by Jensen's inequality:

    log p(x_0) >= E_{q(x_{1:T}|x_0)}[log p(x_{0:T}) / q(x_{1:T}|x_0)]
               = E_{q(x_1|x_0)}[log p(x_0|x_1)]                                                reconstruction
               - E_{q(x_{T-1}|x_0)}[KL(q(x_T|x_{T-1}) || p(x_T))]                              prior matching
               - sum_{t=1}^{T-1} E_{q(x_{t-1},x_t,x_{t+1}|x_0)}[log q(x_t|x_{t-1}) / p(x_t|x_{t+1})]   consistency

Each term is then lit on the chain graph (mobjects.chain_graph), with what it measures in
words: reconstruction compares q(x_1|x_0) with p_theta(x_0|x_1), prior matching q(x_T|x_{T-1})
with p(x_T), consistency q(x_t|x_{t-1}) with p_theta(x_t|x_{t+1}) (ON_CHAIN).

The estimate: one image drawn N times (lecture_data.elbo_draws, a trained run or a
deliberately imperfect x̂_0), so the spread is the estimator's own Monte Carlo noise.

Render: manim -pql animations/elbo_consistency.py ConsistencyELBO
"""

from __future__ import annotations

from manim import DOWN, LEFT, RIGHT, UP, Brace, FadeIn, Group, Title, VGroup, Write

from animations import elbo_panels
from animations.latex import RECON_TEX
from animations.lecture_data import elbo_draws, elbo_model_note, elbo_model_words, example_images
from animations.lecture_scene import LectureScene, cut, play_derivation, play_terms_on_chain
from animations.mobjects.chain_graph import ChainTerm, Dist
from animations.mobjects.images import pixel_image
from animations.mobjects.plots import histogram_edges
from animations.mobjects.text import label, one_line, tex, unbroken_lines
from animations.palette import CONSISTENCY, PRIOR, RECONSTRUCTION, X0

PRIOR_TEX = r"- \mathbb{E}_{q(x_{T-1} \mid x_0)}\left[D_{\mathrm{KL}}\!\left(q(x_T \mid x_{T-1}) \,\|\, p(x_T)\right)\right]"
CONSIST = (r"- \sum_{t=1}^{T-1} \mathbb{E}_{q(x_{t-1}, x_t, x_{t+1} \mid x_0)}"
           r"\left[\log \frac{q(x_t \mid x_{t-1})}{p_\theta(x_t \mid x_{t+1})}\right]")
JOINT = r"\frac{p(x_{0:T})}{q(x_{1:T} \mid x_0)}"
RECON_WORDS = r"how probable the decoder's last step makes the image $x_0$, from an $x_1$ the encoder drew"
# exercise 2's terms on the chain graph: each compares two distributions, lit where they live on the chain
ON_CHAIN = (
    ChainTerm("reconstruction", RECONSTRUCTION, RECON_TEX, (Dist("q", "1", "0"), Dist("p", "0", "1")), RECON_WORDS,
              "Reconstruction compares two steps at the bottom of the chain: the encoder's first step, q of x_1 "
              "given x_0, draws a latent, and the decoder's last step, p-theta of x_0 given x_1, says how probable "
              "it makes the original image. A log-likelihood of the data, as in any VAE: larger is better."),
    ChainTerm("prior matching", PRIOR, PRIOR_TEX, (Dist("q", "T", "T-1"), Dist("prior", "T")),
              r"how far the encoder's last step, from $x_{T-1}$, lands from the prior $p(x_T)$ that sampling starts from",
              "Prior matching compares the encoder's last step, q of x_T given x_(T-1), with the prior p of x_T, the "
              "standard Gaussian we draw from when we sample. It is a KL divergence, never negative, and nothing in "
              "it is learned: the noise schedule alone makes it small."),
    ChainTerm("consistency", CONSISTENCY, CONSIST, (Dist("q", "t", "t-1"), Dist("p", "t", "t+1")),
              r"at each latent $x_t$: how far the decoder's step down from $x_{t+1}$ is from the encoder's step up "
              r"from $x_{t-1}$",
              "Consistency looks at one latent x_t from both sides: the encoder reaches it going up from x_(t-1), "
              "the decoder going down from x_(t+1). The term asks both to give x_t the same distribution, at every "
              "t from 1 to T-1. Each of these terms needs three random latents: x_(t-1), x_t and x_(t+1)."),
)


class ConsistencyELBO(LectureScene):
    def construct(self):
        self.draws = elbo_draws()["consistency"]
        self.title = Title("The ELBO with consistency terms (exercise 2)", font_size=38)
        self.add(self.title)
        self.section_split()
        self.section_marginals()
        self.section_terms()
        self.section_estimate()

    def steps(self, rows, notes, say, fs=28, buff=0.35, transform=False, focus=None):
        """Show a derivation line by line, each with its note at the bottom and ``say`` as presenter notes."""
        return play_derivation(self, rows, notes, say=say, below=self.title, font_size=fs, buff=buff,
                               transform=transform, focus=focus)

    def section_split(self):
        """The MHVAE joint and posterior, the decoder product re-indexed, the log of a product split."""
        self.next_section("the MHVAE joint, split into three terms")
        rows = [
            (r"\mathrm{ELBO}", "=", r"\mathbb{E}_{q(x_{1:T} \mid x_0)}\left[\log " + JOINT + r"\right]"),
            (None, "=", r"\mathbb{E}_{q}\left[\log \frac{p(x_T)\prod_{t=1}^{T} p_\theta(x_{t-1} \mid x_t)}"
                        r"{\prod_{t=1}^{T} q(x_t \mid x_{t-1})}\right]"),
            (None, "=", r"\mathbb{E}_{q}\left[\log \frac{p(x_T)\, p_\theta(x_0 \mid x_1)\prod_{t=2}^{T} "
                        r"p_\theta(x_{t-1} \mid x_t)}{q(x_T \mid x_{T-1})\prod_{t=1}^{T-1} q(x_t \mid x_{t-1})}\right]"),
            (None, "=", r"\mathbb{E}_{q}\left[\log \frac{p(x_T)\, p_\theta(x_0 \mid x_1)\prod_{t=1}^{T-1} "
                        r"p_\theta(x_t \mid x_{t+1})}{q(x_T \mid x_{T-1})\prod_{t=1}^{T-1} q(x_t \mid x_{t-1})}\right]"),
            (None, "=", r"\mathbb{E}_{q}\left[\log p_\theta(x_0 \mid x_1)\right] + \mathbb{E}_{q}\left[\log "
                        r"\frac{p(x_T)}{q(x_T \mid x_{T-1})}\right] + \sum_{t=1}^{T-1}\mathbb{E}_{q}\left[\log "
                        r"\frac{p_\theta(x_t \mid x_{t+1})}{q(x_t \mid x_{t-1})}\right]"),
        ]
        notes = [r"the bound Jensen's inequality gave us: $\log p(x_0) \geq \mathrm{ELBO}$",
                 r"the MHVAE: $p(x_{0:T}) = p(x_T)\prod_t p_\theta(x_{t-1} \mid x_t)$, "
                 r"$q(x_{1:T} \mid x_0) = \prod_t q(x_t \mid x_{t-1})$; $\mathbb{E}_q$ is over $q(x_{1:T} \mid x_0)$",
                 r"take out the decoder's first factor and the encoder's last",
                 r"re-index the decoder product ($t \to t+1$) to pair $p_\theta(x_t \mid x_{t+1})$ with $q(x_t \mid x_{t-1})$",
                 r"the log of a product is a sum of logs; the expectation is linear"]
        say = ["We start from the bound of the previous part: the ELBO, an expectation over chains drawn by the "
               "encoder of the log-ratio of the joint to the encoder.",
               "Write both as the products of the hierarchical VAE: the prior on x_T times one decoder step per "
               "arrow, over one encoder step per arrow.",
               "Take out the two factors that have no partner: the decoder's last step down to x_0, and the "
               "encoder's last step up to x_T.",
               "Shift the index of the decoder product by one, so that each decoder factor p-theta of x_t given "
               "x_(t+1) stands over the encoder factor for the same x_t.",
               "The log of a product is a sum of logs, and the expectation of a sum is the sum of expectations. "
               "Three kinds of term remain."]
        self.split = self.steps(rows, notes, say, fs=26, buff=0.3, transform=False)
        cut(self, self.title)

    def section_marginals(self):
        """Each expectation over q(x_{1:T} | x_0) needs only the variables its log-ratio reads."""
        self.next_section("each expectation reduced to its marginal")
        rows = [
            (r"\mathbb{E}_{q(x_{1:T} \mid x_0)}\left[\log p_\theta(x_0 \mid x_1)\right]", "=",
             r"\mathbb{E}_{q(x_1 \mid x_0)}\left[\log p_\theta(x_0 \mid x_1)\right]"),
            (r"\mathbb{E}_{q(x_{1:T} \mid x_0)}\left[\log \frac{p(x_T)}{q(x_T \mid x_{T-1})}\right]", "=",
             r"- \mathbb{E}_{q(x_{T-1} \mid x_0)}\left[D_{\mathrm{KL}}\!\left(q(x_T \mid x_{T-1}) \,\|\, p(x_T)\right)\right]"),
            (r"\mathbb{E}_{q(x_{1:T} \mid x_0)}\left[\log \frac{p_\theta(x_t \mid x_{t+1})}{q(x_t \mid x_{t-1})}\right]", "=",
             r"\mathbb{E}_{q(x_{t-1}, x_t, x_{t+1} \mid x_0)}\left[\log \frac{p_\theta(x_t \mid x_{t+1})}{q(x_t \mid x_{t-1})}\right]"),
        ]
        notes = [r"only $x_1$ appears: the other latents integrate to 1",
                 r"$x_T$ drawn from $q(x_T \mid x_{T-1})$ itself: the inner expectation is a KL, $\geq 0$",
                 r"three variables: an unbiased estimate draws $x_{t-1} \sim q(x_{t-1} \mid x_0)$, "
                 r"then $x_t$, then $x_{t+1}$, jointly"]
        say = ["Each expectation is over the whole chain, but each term reads only a few latents. The first reads "
               "only x_1: the other latents integrate to one and disappear.",
               "The second reads x_(T-1) and x_T. Inner expectation over x_T drawn from the encoder's own last "
               "step: that is minus a KL divergence between that step and the prior, so it is never positive.",
               "The third reads three latents: x_(t-1), x_t and x_(t+1). To estimate it we must draw all three "
               "jointly from the encoder."]
        lines = self.steps(rows, notes, say, fs=24, buff=0.5, focus=[r[2] for r in rows])
        # two sentences, each on one line (a caption broken mid-phrase is hard to read)
        why = VGroup(
            one_line(r"not a KL: given $x_{t+1}$, $x_t$ does not follow $q(x_t \mid x_{t-1})$, "
                     r"so this expectation of a log-ratio can be positive (minus a KL never is)", size=26),
            one_line(r"the assignment's $\mathbb{E}_{q(x_{t-1}, x_{t+1} \mid x_0)}[D_{\mathrm{KL}}(\cdot)]$ "
                     r"means this joint expectation", size=26),
        ).arrange(DOWN, aligned_edge=LEFT).next_to(lines, DOWN, buff=0.5)
        self.why = why
        self.play(FadeIn(why, shift=UP * 0.1))
        self.pause(2, "Careful: the third term is not a KL divergence. Given x_(t+1), the variable x_t does not "
                      "follow q of x_t given x_(t-1), so this expectation of a log-ratio can be positive, which minus a KL "
                      "never is; in the tables later, which give every term with the sign of minus the ELBO, that "
                      "is a consistency term that can be negative. Written "
                      "as an expectation of a KL over x_(t-1) and x_(t+1), as the assignment does, it means this "
                      "joint expectation.")
        cut(self, self.title)

    def section_terms(self):
        self.next_section("the three terms, named")
        fs = 30
        terms = {RECON_TEX: RECONSTRUCTION, PRIOR_TEX: PRIOR, CONSIST: CONSISTENCY}
        top = tex(r"\log p(x_0) \ \geq\ ", RECON_TEX, PRIOR_TEX, terms=terms, font_size=fs)
        bottom = tex(CONSIST, terms=terms, font_size=fs)
        VGroup(top, bottom).arrange(DOWN, buff=1.1).next_to(self.title, DOWN, buff=0.5)
        bottom.align_to(top[1], LEFT)
        names = VGroup()
        for part, name, colour in ((top[1], "reconstruction", RECONSTRUCTION), (top[2], "prior matching", PRIOR),
                                   (bottom[0], "consistency", CONSISTENCY)):
            brace = Brace(part, DOWN, buff=0.08, color=colour)
            names.add(VGroup(brace, label(name, colour, 28).next_to(brace, DOWN, buff=0.08)))
        self.play(FadeIn(top), FadeIn(bottom))
        self.play(FadeIn(names, shift=UP * 0.1), run_time=1)
        self.pause(3, "The ELBO of exercise 2, in three parts: reconstruction, prior matching and consistency. "
                      "Exercise 2 asks us to interpret each term: we take them one at a time on the chain graph.")
        self.formula = VGroup(top, bottom, names)
        cut(self, self.title)
        self.next_section("what each term measures, on the chain")
        self.chain = play_terms_on_chain(
            self, ON_CHAIN,
            (r"each term compares two distributions on the chain: the encoder's steps $q$ above, the decoder's "
             r"$p_\theta$ below",
             "Back to the picture of the chain: the encoder's steps q above the nodes, going up, the decoder's "
             "steps p-theta below, going down. Each term of the ELBO compares two distributions on this chain; we "
             "light up the two, one term at a time."))
        cut(self)

    def section_estimate(self):
        self.next_section("its Monte Carlo estimate")
        e = self.draws
        n = e.total.shape[0]
        title = Title(r"Monte Carlo estimate of $-\mathrm{ELBO}$ (consistency form)", font_size=36)
        sub = unbroken_lines(rf"one image, {n} draws; " + elbo_model_note(), size=22).next_to(title, DOWN, buff=0.15)
        image = pixel_image(example_images(1)[0], height=1.0)
        table = elbo_panels.term_table(e, "consistency")
        if table.width > 6.0:  # a trained run's numbers are longer
            table.scale_to_fit_width(6.0)
        Group(image, table).arrange(DOWN, buff=0.3).to_edge(LEFT, buff=0.5).shift(DOWN * 0.4)
        image_name = tex(r"x_0", font_size=30, color=X0).next_to(image, LEFT, buff=0.2)  # the image the draws are of
        totals = e.total.double().numpy()
        log = elbo_panels.needs_log([totals])
        shown = elbo_panels.histogram_values([totals], log)[0]
        edges = histogram_edges([shown])
        panel = elbo_panels.totals_panel(shown, edges, CONSISTENCY, rf"$-$ELBO per draw: std {elbo_panels.spread(totals.std())} nats",
                                         log=log)
        panel.to_edge(RIGHT, buff=0.5).shift(DOWN * 0.3)
        verdict = label(elbo_panels.sign_caption(e), size=24).to_edge(DOWN, buff=0.3)
        self.play(Write(title), FadeIn(sub))
        self.play(FadeIn(image), FadeIn(image_name), FadeIn(table))
        self.pause(4, f"Now the numbers. We estimate each term for one image by drawing {n} independent chains from "
                      f"the encoder. The table gives each term's mean and its standard error, in nats per image. "
                      f"{elbo_model_words()}")
        self.play(FadeIn(panel))
        self.pause(2, f"The histogram of the total over the {n} draws: each draw of the chain gives a quite different "
                      f"value, a standard deviation of about {elbo_panels.spread(totals.std())} nats. Keep this spread in mind.")
        self.play(FadeIn(verdict))
        self.pause(2, "The sign of the consistency sum: it is a sum of expectations of log-ratios, not of KL "
                      "divergences, so nothing keeps it positive. Next: a form of the ELBO whose terms are all KLs.")
        self.histogram = panel
        self.table_rows = table.rows
        self.table_foot = table[1]
