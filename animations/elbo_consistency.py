"""Scene 3, the ELBO with consistency terms (exercise 2), derived and then estimated with vdm.elbo.

    log p(x_0) >= E_{q(x_1|x_0)}[log p(x_0|x_1)]                                   reconstruction
                - E_{q(x_{T-1}|x_0)}[KL(q(x_T|x_{T-1}) || p(x_T))]                   prior matching
                - sum_{t=1}^{T-1} E_{q(x_{t-1},x_t,x_{t+1}|x_0)}[log q(x_t|x_{t-1}) / p(x_t|x_{t+1})]   consistency

The estimate: one image drawn N times (common.elbo_draws), so the spread of the
totals is the estimator's own Monte Carlo noise.

Render: manim -pql animations/elbo_consistency.py ConsistencyELBO
"""

from __future__ import annotations

from manim import DOWN, LEFT, RIGHT, UP, Brace, FadeIn, GrowFromEdge, Group, Scene, Title, VGroup, Write

from animations import common as c

PRIOR = r"- \mathbb{E}_{q(x_{T-1} \mid x_0)}\left[D_{\mathrm{KL}}\!\left(q(x_T \mid x_{T-1}) \,\|\, p(x_T)\right)\right]"
CONSIST = (r"- \sum_{t=1}^{T-1} \mathbb{E}_{q(x_{t-1}, x_t, x_{t+1} \mid x_0)}"
           r"\left[\log \frac{q(x_t \mid x_{t-1})}{p_\theta(x_t \mid x_{t+1})}\right]")


class ConsistencyELBO(Scene):
    def construct(self):
        self.draws = c.elbo_draws()["consistency"]
        self.section_derivation()
        self.section_terms()
        self.section_estimate()

    def section_derivation(self):
        self.next_section("the derivation")
        title = Title("The ELBO with consistency terms (exercise 2)", font_size=38)
        fs = 30
        lines = VGroup(
            c.tex(r"\log p(x_0) \ \geq\ \mathbb{E}_{q(x_{1:T} \mid x_0)}\left[\log "
                  r"\frac{p(x_{0:T})}{q(x_{1:T} \mid x_0)}\right]", font_size=fs),
            c.tex(r"=\ \mathbb{E}_{q}\left[\log \frac{p(x_T)\, p_\theta(x_0 \mid x_1)\prod_{t=1}^{T-1} "
                  r"p_\theta(x_t \mid x_{t+1})}{q(x_T \mid x_{T-1})\prod_{t=1}^{T-1} q(x_t \mid x_{t-1})}\right]",
                  font_size=fs),
            c.tex(r"=\ \mathbb{E}_{q}\left[\log p_\theta(x_0 \mid x_1)\right] + \mathbb{E}_{q}\left[\log "
                  r"\frac{p(x_T)}{q(x_T \mid x_{T-1})}\right] + \sum_{t=1}^{T-1}\mathbb{E}_{q}\left[\log "
                  r"\frac{p_\theta(x_t \mid x_{t+1})}{q(x_t \mid x_{t-1})}\right]", font_size=fs),
        ).arrange(DOWN, aligned_edge=LEFT, buff=0.4).next_to(title, DOWN, buff=0.5)
        note = c.label(r"the decoder product re-indexed to pair $p_\theta(x_t \mid x_{t+1})$ with "
                       r"$q(x_t \mid x_{t-1})$", size=26).next_to(lines, DOWN, buff=0.5)
        self.play(Write(title))
        for line in lines:
            self.play(FadeIn(line, shift=DOWN * 0.2), run_time=0.8)
        self.play(FadeIn(note))
        self.wait(0.5)
        c.cut(self, title)
        self.title = title

    def section_terms(self):
        self.next_section("the three terms, named")
        fs = 30
        terms = {c.RECON_TEX: c.RECONSTRUCTION, PRIOR: c.PRIOR, CONSIST: c.CONSISTENCY}
        top = c.tex(r"\log p(x_0) \ \geq\ ", c.RECON_TEX, PRIOR, terms=terms, font_size=fs)
        bottom = c.tex(CONSIST, terms=terms, font_size=fs)
        VGroup(top, bottom).arrange(DOWN, buff=1.1).next_to(self.title, DOWN, buff=0.5)
        names = VGroup()
        for part, name, colour in ((top[1], "reconstruction", c.RECONSTRUCTION), (top[2], "prior matching", c.PRIOR),
                                   (bottom[0], "consistency", c.CONSISTENCY)):
            brace = Brace(part, DOWN, buff=0.08, color=colour)
            names.add(VGroup(brace, c.label(name, colour, 28).next_to(brace, DOWN, buff=0.08)))
        self.play(FadeIn(top), FadeIn(bottom))
        for n in names:
            self.play(FadeIn(n, shift=UP * 0.1), run_time=0.6)
        self.formula = VGroup(top, bottom, names)
        self.wait(0.5)
        c.cut(self)

    def section_estimate(self):
        self.next_section("its Monte Carlo estimate")
        e = self.draws
        n, T = e.total.shape[0], e.per_t.shape[1] - 1 if e.per_t is not None else None
        what = rf"one image, {n} draws" + (rf", $T = {T}$" if T else "") + rf", {c.denoiser_name()}"
        title = Title(r"Monte Carlo estimate of $-\mathrm{ELBO}$ (consistency form)", font_size=36)
        sub = c.label(what, size=26).next_to(title, DOWN, buff=0.15)
        image = c.pixel_image(c.example_images(1)[0], height=1.2)
        nats = e.nats()
        spec = (("reconstruction", "reconstruction", c.RECONSTRUCTION), ("prior", "prior matching", c.PRIOR),
                ("matching", "consistency", c.CONSISTENCY), ("total", r"total $-$ELBO", "#FFFFFF"))
        cells = c.labels(*[name for _, name, _ in spec], *[f"{nats[key]:,.1f}" for key, _, _ in spec],
                         colors=[colour for *_, colour in spec] * 2)
        rows = VGroup(*[VGroup(cells[i], cells[i + len(spec)]) for i in range(len(spec))])
        for r in rows:  # the parts come from one Tex line: put each number by its name first
            r[1].next_to(r[0], RIGHT, buff=0.3)
        rows.arrange(DOWN, aligned_edge=LEFT, buff=0.25)
        right = max(r[0].get_right()[0] for r in rows) + 2.2
        for r in rows:  # numbers in one right-aligned column, on their name's line
            r[1].move_to(r[0]).shift(RIGHT * (right - r[1].get_right()[0]))
        unit = c.label(rf"nats per image (mean of {n}); {e.bpd()['total']:.3f} bits/dim", size=24)
        table = VGroup(rows, unit.next_to(rows, DOWN, buff=0.3, aligned_edge=LEFT))
        Group(image, table).arrange(DOWN, buff=0.4).to_edge(LEFT, buff=0.6).shift(DOWN * 0.5)
        totals = e.total.double().numpy()
        edges = c.histogram_edges([totals])
        panel = c.histogram_panel(totals, edges, c.CONSISTENCY, rf"$-$ELBO per draw: std {totals.std():.1f} nats")
        panel.to_edge(RIGHT, buff=0.6).shift(DOWN * 0.4)
        self.play(Write(title), FadeIn(sub))
        self.play(FadeIn(image), FadeIn(table))
        self.play(FadeIn(panel[0]), FadeIn(panel[2]))
        self.play(GrowFromEdge(panel[1], DOWN))
        self.histogram = panel
        self.table_rows = rows
        self.wait(0.5)
