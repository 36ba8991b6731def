"""Diffusion in 2-D (after Sohl-Dickstein et al. 2015, Figure 1): a ring of Gaussians through the forward
chain to noise and back through a trained model's backward chain, then its bound term by term.

    forward   x_t = sqrt(alpha_t) x_{t-1} + sqrt(1 - alpha_t) eps          (vdm.cloud.forward_cloud)
    backward  x_{t-1} ~ q(x_{t-1} | x_t, x_0 = x̂_θ(x_t, t))                (vdm.cloud.backward_cloud)
    -ELBO     = reconstruction + prior matching + denoising matching     (vdm.elbo, every t)
    -ELBO - (-log q(x_0)) = KL(q(x_0) || p(x_0)) + E KL(q(x_{1:T}|x_0) || p(x_{1:T}|x_0)) >= 0

The model is animations.model2d's: a 2-D run given with --run, else a small MLP trained on the gmm ring
while the scene renders (seeded, cached). The shading behind each cloud is the exact q(x_t) of the
mixture (vdm.cloud.density_grid); the optimal denoiser E[x_0 | x_t] and -log q(x_0) are vdm.gmm's.

Render: vdm render diffusion-2d   (or manim -pql animations/diffusion_2d.py Diffusion2D)
"""

from __future__ import annotations

import numpy as np
from manim import (DOWN, LEFT, RIGHT, UP, WHITE, BraceBetweenPoints, Create, Dot, FadeIn, Group, Line, Title,
                   ValueTracker, VGroup, linear)

from animations import model2d as m2
from animations.cloud2d import CloudPanel, inside, place_head, set_path
from animations.latex import plain_text, schedule_tex, sci, tex_percent, tex_text
from animations.lecture_scene import LectureScene, cut
from animations.mobjects.live_number import LiveNumber
from animations.mobjects.text import MAX_WIDTH, derivation, label, labels, one_line, tex
from animations.palette import DENOISING, PRIOR, RECONSTRUCTION, X0, XHAT, XT
from vdm.report import error_decimals, percent_with_error

SWEEP_SECONDS = 8.0
TAIL = 5  # steps of a traced point's path drawn behind it, while the chain runs and in the side-by-side figure
DENSITY_RES = 96
PATH_COLOUR = WHITE


def snapshot_steps(T: int) -> list[int]:
    """The columns of the figure: t = 0, T/4, T/2, T."""
    return list(dict.fromkeys([0, T // 4, T // 2, T]))


def pm_fmt(e) -> str:
    """An Estimate as LaTeX: mean \\pm standard error, both to the error's second significant digit
    (vdm.report.error_decimals, as every table of the lecture), so that numbers shown side by side add up as
    shown; in powers of ten when the mean rounds to 0 there."""
    digits = error_decimals(e.se) if np.isfinite(e.se) and e.se > 0 else 2
    if e.mean != 0 and abs(e.mean) < 0.5 * 10 ** -digits:
        return rf"{sci(e.mean)} \pm {sci(e.se)}"
    return rf"{e.mean:.{digits}f} \pm {e.se:.{digits}f}"


class Diffusion2D(LectureScene):
    def construct(self):
        self.pm = m2.point_model()
        self.schedule = self.pm.schedule
        self.T = self.schedule.T
        self.fwd = m2.forward_paths()
        self.samples, self.chain = m2.backward_paths()
        self.traced = m2.traced()
        self.densities = self.exact_densities()
        self.title = Title(r"Diffusion in 2-D: to noise and back (after Sohl-Dickstein et al.\ 2015, Fig.\ 1)",
                           font_size=36)
        self.add(self.title)
        self.section_forward()
        self.section_backward()
        self.section_figure()
        self.section_terms()
        self.section_gaps()

    def exact_densities(self):
        """q(x_t) of the mixture on a grid for every t (vdm.cloud.density_grid), or None without a mixture."""
        from vdm.cloud import density_grid

        if self.pm.mixture is None:
            return None
        return [density_grid(self.pm.mixture, self.schedule, t, DENSITY_RES) for t in range(self.T + 1)]

    # -- one big panel with a live cloud, its exact density and a handful of paths ------------------------
    def live_panel(self, rows, order, colour_of, head: str, lines: list[str], say: str):
        """Sweep ``rows`` (a [K+1, N, 2] tensor indexed by t) through t in ``order`` on a big panel, the exact
        q(x_t) behind it and the traced points' paths growing, after a slide with presenter notes ``say``;
        returns (panel, cloud, t tracker)."""
        panel = CloudPanel(side=5.5).move_to([-3.3, -0.55, 0])
        t0 = order[0]
        shade = panel.shading(self.densities[t0]) if self.densities is not None else None
        cloud = panel.cloud(rows[t0], colour_of(t0))
        paths = [panel.path(rows[t0:t0 + 1, i], PATH_COLOUR) for i in self.traced]
        heads = [Dot(radius=0.06, color=PATH_COLOUR) for _ in self.traced]
        for i, d in zip(self.traced, heads):
            place_head(panel, d, rows[t0, i])
        u = ValueTracker(0.0)
        last = len(order) - 1

        def t_now() -> int:
            return order[max(0, min(last, int(round(u.get_value() * last))))]

        def draw(_m):
            t = t_now()
            cloud.colour = colour_of(t)
            cloud.show(rows[t])
            if shade is not None:
                shade.show(self.densities[t])
            lo, hi = (max(t0, t - TAIL), t) if t >= t0 else (t, min(t0, t + TAIL))
            for i, p, d in zip(self.traced, paths, heads):
                set_path(panel, p, rows[lo:hi + 1, i])
                place_head(panel, d, rows[t, i])

        num = LiveNumber(t0, "{:.0f}", 40)
        t_lab = VGroup(tex("t =", font_size=40), num).arrange(RIGHT, buff=0.15)
        num.add_updater(lambda m: m.set_value(t_now()))
        text = VGroup(one_line(head, size=28), *[one_line(s, size=22, width=6.6) for s in lines])
        text.arrange(DOWN, aligned_edge=LEFT, buff=0.22)
        side = VGroup(t_lab, text).arrange(DOWN, aligned_edge=LEFT, buff=0.45)
        side.next_to(panel, RIGHT, buff=0.4).align_to(panel, UP)
        parts = [panel, *([shade] if shade is not None else []), cloud, *paths, *heads]
        self.play(FadeIn(Group(*parts)), FadeIn(side))
        self.pause(len(lines) + 1, say)
        cloud.add_updater(draw)
        self.play(u.animate.set_value(1.0), run_time=SWEEP_SECONDS, rate_func=linear)
        cloud.clear_updaters()
        num.clear_updaters()
        draw(cloud)
        return panel, cloud, side

    def last_step_words(self) -> str:
        """Why the traced paths jump at large t, from the schedule: the noise std of the last step, sqrt(beta_T)."""
        std = float(self.schedule.beta[self.T].sqrt())
        if std < 0.5:
            return ""
        return (f" The last step alone adds noise of standard deviation {std:.2f}, so near t = T each step is close "
                "to a fresh draw and the white paths jump across the panel.")

    def data_line(self) -> str:
        from vdm.points import noise_of

        words, noise = m2.DATA_WORDS.get(self.pm.data, self.pm.data), noise_of(self.pm.data)
        if self.pm.mixture is not None:  # "8 Gaussians on a ring (8 Gaussians of std 0.1)" says 8 twice
            noise = f"each of std {self.pm.mixture.std:g}"
        return rf"{len(m2.held_out()):,} held-out points of {tex_text(words)} ({tex_text(noise)})"

    def section_forward(self):
        self.next_section("forward: the data dissolve into noise")
        shade = ["shading: the exact $q(x_t)$ of the mixture"] if self.densities is not None else []
        self.live_panel(
            self.fwd, list(range(self.T + 1)), lambda t: X0 if t == 0 else XT,
            r"$q$: $x_t = \sqrt{\alpha_t}\, x_{t-1} + \sqrt{1 - \alpha_t}\,\epsilon$, one step at a time",
            [self.data_line(), *shade, rf"white: {len(self.traced)} of the points and their last {TAIL} steps",
             rf"schedule {schedule_tex(self.schedule)}"],
            "Diffusion in two dimensions, where we can see the whole distribution at once, as in Sohl-Dickstein and "
            "colleagues' first figure. Each point is one data point; the shading is the exact density of x_t.")
        self.pause(2, "Watch the forward chain dissolve the clusters into a standard Gaussian. At t = T the points are "
                      "a standard Gaussian cloud: the data's structure is gone." + self.last_step_words())
        cut(self, self.title)

    def section_backward(self):
        self.next_section("backward: the model turns noise into data")
        x = self.chain.x  # row i is x_{t_i}; every step, so row t is x_t
        shade = (["shading: the exact $q(x_t)$, where $x_t$ should lie"] if self.densities is not None else [])
        panel, cloud, side = self.live_panel(
            x, list(range(self.T, -1, -1)), lambda t: XT,
            r"$p_\theta$: $x_{t-1} \sim q(x_{t-1} \mid x_t, \hat{x}_\theta(x_t, t))$ from $x_T \sim \mathcal{N}(0, \mathbf{I})$",
            [rf"{x.shape[1]:,} samples; white: {len(self.traced)} of them and their last {TAIL} steps", *shade,
             self.pm.note, rf"schedule {schedule_tex(self.schedule)}"],
            "Now backwards, with the trained model: fresh Gaussian noise, and at every step the posterior with the "
            "network's guess of x_0. " + self.pm.detail)
        if self.pm.mixture is not None:
            held = m2.held_out()
            got, data = m2.near_modes(self.samples), m2.near_modes(held)
            self.mode_shares = (got, data)
            r = 3 * self.pm.mixture.std
            g, d = percent_with_error(got, len(self.samples)), percent_with_error(data, len(held))
            cap = one_line(rf"at $t = 0$: {tex_percent(g)} of the samples lie within {r:g} (3 std) of a mode; "
                           rf"of the held-out data {tex_percent(d)}", size=24).to_edge(DOWN, buff=0.25)
            self.mode_caption = cap
            self.play(FadeIn(cap))
            self.pause(2, f"At t = 0, {g.replace(' %', ' percent')} of the samples lie within three standard "
                          f"deviations of one of the mixture's modes, against {d.replace(' %', ' percent')} of real "
                          "held-out data.")
        cut(self, self.title)

    # -- Figure 1: both chains side by side at a few t -------------------------------------------------------
    def section_figure(self):
        self.next_section("both chains, side by side")
        steps = snapshot_steps(self.T)
        self.figure_steps = steps
        side = 2.45
        top = [CloudPanel(side) for _ in steps]
        bottom = [CloudPanel(side) for _ in steps]
        Group(*top).arrange(RIGHT, buff=0.3)
        Group(*bottom).arrange(RIGHT, buff=0.3)
        grid = Group(Group(*top), Group(*bottom)).arrange(DOWN, buff=0.5)
        grid.next_to(self.title, DOWN, buff=0.65).set_x(1.2)
        heads = VGroup(*labels(*[f"$t = {t}$" for t in steps], size=26))
        for h, p in zip(heads, top):
            h.next_to(p, UP, buff=0.12)
        x = self.chain.x
        rows = []
        self.figure_clouds = {"forward": [], "backward": []}
        for name, panels, data, colour_of, tracks in (
                ("forward", top, self.fwd, lambda t: X0 if t == 0 else XT, lambda t: (max(0, t - TAIL), t)),
                ("backward", bottom, x, lambda t: XT, lambda t: (t, min(self.T, t + TAIL)))):
            cells = []
            for t, p in zip(steps, panels):
                parts = [p]
                if self.densities is not None:
                    parts.append(p.shading(self.densities[t]))
                cl = p.cloud(data[t], colour_of(t))
                self.figure_clouds[name].append(cl)
                lo, hi = tracks(t)
                parts += [cl, *[p.path(data[lo:hi + 1, i], PATH_COLOUR, 2) for i in self.traced],
                          *[Dot(p.c2p(data[t, i].numpy()), radius=0.045, color=PATH_COLOUR)
                            for i in self.traced if inside(data[t, i].numpy(), p.view)]]
                cells.append(Group(*parts))
            rows.append(cells)
        names = VGroup(
            VGroup(*labels(r"forward $q$", r"data $\to$ noise", size=24)).arrange(DOWN, aligned_edge=LEFT, buff=0.1),
            VGroup(*labels(r"backward $p_\theta$", r"noise $\to$ data", size=24)).arrange(DOWN, aligned_edge=LEFT,
                                                                                        buff=0.1))
        names[0].next_to(top[0], LEFT, buff=0.3)
        names[1].next_to(bottom[0], LEFT, buff=0.3)
        shade = "; shading: the exact $q(x_t)$" if self.densities is not None else ""
        cap = one_line(rf"top: the held-out points through $q$; bottom: the model's samples from $x_T${shade}; "
                       rf"white: {len(self.traced)} points and their {TAIL} steps before", size=22).to_edge(DOWN, buff=0.22)
        self.play(FadeIn(heads), FadeIn(names[0]), *[FadeIn(cell) for cell in rows[0]])
        self.pause(2, "Both chains side by side. Top: the data pushed through the forward process, from data to "
                      "noise.")
        self.play(FadeIn(names[1]), *[FadeIn(cell) for cell in reversed(rows[1])], FadeIn(cap))
        self.pause(3, "Bottom: the model's samples, from noise back to data, read from right to left. At each t the "
                      "two clouds should have the same distribution; that is what training asked for.")
        cut(self, self.title)

    # -- the bound, term by term -------------------------------------------------------------------------------
    def section_terms(self):
        self.next_section("the bound, term by term")
        tab = m2.elbo_table()
        self.table = tab
        have_opt = tab["optimal"] is not None
        names = [("reconstruction", r"\text{reconstruction}\ \ -\log p_\theta(x_0 \mid x_1)", RECONSTRUCTION),
                 ("prior", r"\text{prior matching}\ \ D_{\mathrm{KL}}(q(x_T \mid x_0) \,\|\, p(x_T))", PRIOR),
                 ("matching", r"\text{denoising matching}\ \ \textstyle\sum_{t=2}^{T} D_{\mathrm{KL}}(q(x_{t-1} \mid x_t, x_0)"
                              r" \,\|\, p_\theta(x_{t-1} \mid x_t))", DENOISING),
                 ("total", r"-\mathrm{ELBO}\ \ \text{(the sum)}", WHITE)]
        kinds = ["model"] + (["optimal"] if have_opt else [])
        self.shown_terms = {k: {} for k in kinds}
        cells = []
        for key, tex_, colour in names:
            row = [tex(tex_, font_size=26).set_color(colour)]
            for k in kinds:
                e = tab[k][key]
                s = pm_fmt(e)
                self.shown_terms[k][key] = s
                row.append(tex(s, font_size=30).set_color(colour))
            cells.append(row)
        head = [label("nats per point", size=24)] + [label(h, size=26) for h in
                                                     (r"model $\hat{x}_\theta$", r"optimal $\mathbb{E}[x_0 \mid x_t]$")[:len(kinds)]]
        all_rows = [head] + cells
        widths = [max(r[j].width for r in all_rows) for j in range(len(head))]
        xs = [0.0]
        for j in range(1, len(head)):
            xs.append(xs[-1] + widths[j - 1] / 2 + 0.6 + widths[j] / 2)
        y = 0.0
        table = VGroup()
        for i, r in enumerate(all_rows):
            for j, m in enumerate(r):
                if j == 0:
                    m.move_to([xs[0] + (widths[0] - m.width) / 2 * 0, y, 0]).align_to([xs[0] - widths[0] / 2, 0, 0], LEFT)
                else:
                    m.move_to([xs[j], y, 0])
                table.add(m)
            y -= 0.75 if i != len(all_rows) - 2 else 0.95
        table.next_to(self.title, DOWN, buff=0.5).set_x(0)
        if table.width > MAX_WIDTH:
            table.scale_to_fit_width(MAX_WIDTH)
        rule = Line(LEFT * table.width / 2, RIGHT * table.width / 2, stroke_width=1.5)
        rule.move_to([table.get_center()[0], (cells[2][0].get_bottom()[1] + cells[3][0].get_top()[1]) / 2, 0])
        n = tab["n"]
        cap1 = one_line(rf"mean $\pm$ standard error over {n:,} held-out points; every $t$ from 2 to {self.T}; "
                        r"both denoisers meet the same $x_t$", size=22)
        cap2 = one_line(r"$p_\theta(x_0 \mid x_1)$ is a Gaussian density: the reconstruction term and $-\log q$ "
                        r"can be negative", size=22)
        VGroup(cap1, cap2).arrange(DOWN, buff=0.1).to_edge(DOWN, buff=0.25)  # placed together, shown one by one
        self.play(FadeIn(VGroup(*head)), *[FadeIn(VGroup(*r)) for r in cells[:3]], FadeIn(cap1))
        self.pause(4, "The three terms of the ELBO for this model, in nats per point, averaged over the held-out "
                      "points, with every t summed. Beside it the same terms for the optimal denoiser, the exact "
                      "posterior mean of x_0, which we can compute for a Gaussian mixture.")
        self.play(Create(rule), FadeIn(VGroup(*cells[3])))
        self.pause(5, "The sum is the negative ELBO. The model's is only slightly above the optimal one.")
        self.term_table = table
        if tab["nll"] is not None:
            nll = tex(r"-\log q(x_0) = " + pm_fmt(tab["nll"]), font_size=30)
            self.shown_nll = pm_fmt(tab["nll"])
            why = one_line(r"the true $-\log q(x_0)$: the mixture's exact density, no model", size=22)
            grp = VGroup(nll, why).arrange(DOWN, buff=0.15).next_to(table, DOWN, buff=0.45)
            self.play(FadeIn(grp), FadeIn(cap2))
            self.pause(4, "And the true negative log-likelihood of the data, from the mixture's exact density, with no "
                          "model at all (vdm.gmm). A Gaussian density can exceed one, so these numbers can be "
                          "negative.")
        cut(self, self.title)

    # -- the gaps ------------------------------------------------------------------------------------------------
    def section_gaps(self):
        tab = self.table
        if tab["nll"] is None:
            return
        self.next_section("the gap: what no model removes, what training can")
        rows = [(r"\mathbb{E}[-\mathrm{ELBO}] - \mathbb{E}[-\log q(x_0)]", "=",
                 (r"D_{\mathrm{KL}}(q(x_0) \,\|\, p_\theta(x_0))",
                  r"+\ \mathbb{E}_{q(x_0)} D_{\mathrm{KL}}(q(x_{1:T} \mid x_0) \,\|\, p_\theta(x_{1:T} \mid x_0))",
                  r"\ \geq 0"))]
        line = derivation(rows, font_size=28)[0]
        if line.width > MAX_WIDTH:
            line.scale_to_fit_width(MAX_WIDTH)
        line.next_to(self.title, DOWN, buff=0.4).set_x(0)
        self.play(FadeIn(line))
        self.pause(2, "The gap between the bound and the true likelihood has two parts: how far the model's "
                      "distribution is from the data's, and how far the encoder is from the model's posterior. Both "
                      "are KL divergences, so both are non-negative. We cannot compute either KL here, only their "
                      "sum; the next picture splits that sum another way, by what could remove it.")
        nll, opt, mod = tab["nll"].mean, tab["optimal"]["total"].mean, tab["model"]["total"].mean
        lo, hi = min(nll, opt, mod), max(nll, opt, mod)
        pad = 0.08 * (hi - lo) + 1e-9
        width = 11.0
        x0 = -width / 2

        def X(v):
            return np.array([x0 + (v - lo + pad) / (hi - lo + 2 * pad) * width, -0.6, 0])

        axis = Line(X(lo - pad), X(hi + pad), stroke_width=2)
        marks = VGroup()
        labs = VGroup()
        for v, e, colour, text, up in ((nll, tab["nll"], X0, r"$-\log q(x_0)$", True),
                                       (opt, tab["optimal"]["total"], XHAT, r"optimal $-$ELBO", True),
                                       (mod, tab["model"]["total"], XT, r"model $-$ELBO", True)):
            marks.add(Dot(X(v), radius=0.09, color=colour))
            lab = VGroup(*labels(text, f"${pm_fmt(e)}$", colors=[colour, colour], size=24)).arrange(DOWN, buff=0.08)
            lab.next_to(X(v), UP if up else DOWN, buff=0.25)
            labs.add(lab)
        _spread_labels(labs, [m.get_center()[0] for m in marks])
        gap_o, gap_m = tab["optimal_gap"], tab["model_minus_optimal"]
        b1 = BraceBetweenPoints(X(min(nll, opt)), X(max(nll, opt)), direction=DOWN, buff=0.15)
        b2 = BraceBetweenPoints(X(min(opt, mod)), X(max(opt, mod)), direction=DOWN, buff=0.15)
        n1 = label(f"${pm_fmt(gap_o)}$", XHAT, 24).next_to(b1, DOWN, buff=0.1)
        n2 = label(f"${pm_fmt(gap_m)}$", XT, 24).next_to(b2, DOWN, buff=0.1)
        if n2.get_left()[0] < n1.get_right()[0] + 0.2 and n1.get_left()[0] < n2.get_right()[0] + 0.2:
            n2.next_to(n1, DOWN, buff=0.15).set_x(b2.get_center()[0])
        self.gap_numbers = {"optimal_gap": pm_fmt(gap_o), "model_minus_optimal": pm_fmt(gap_m)}
        t1 = one_line(rf"the bound's own gap: ${pm_fmt(gap_o)}$ nats (optimal $-$ELBO $-$ true $-\log q$)", XHAT, 24)
        t2 = one_line(rf"the model's distance from the optimal: ${pm_fmt(gap_m)}$ nats (model $-$ optimal, same $x_t$)",
                      XT, 24)
        t1.next_to(axis, DOWN, buff=1.7)
        t2.next_to(t1, DOWN, buff=0.2)
        self.play(Create(axis), FadeIn(marks), FadeIn(labs))
        self.pause(3, "The three numbers on one line: the true negative log-likelihood, the optimal denoiser's "
                      "negative ELBO, and the model's.")
        self.play(FadeIn(b1), FadeIn(n1), FadeIn(t1))
        why1 = one_line(rf"$\mathbb{{E}}[x_0 \mid x_t]$ minimises every term, so no $\hat{{x}}_0$ model on this schedule "
                        rf"($T = {self.T}$) gets below it: Gaussian steps cannot follow $q(x_{{1:T}} \mid x_0)$ exactly",
                        size=22).to_edge(DOWN, buff=0.25)
        self.play(FadeIn(why1))
        self.pause(3, f"The first gap, {plain_text(pm_fmt(gap_o))} nats, is the optimal denoiser's bound minus the "
                      "true negative log-likelihood: both KLs of the decomposition, for the best model there is. The "
                      "posterior mean of x_0 minimises every term, so no network that predicts x_0 on this schedule "
                      "gets below it: Gaussian reverse steps cannot follow the true reverse process exactly.")
        z = gap_m.mean / gap_m.se if gap_m.se > 0 else float("inf")
        mean_m = pm_fmt(gap_m).split(r" \pm ")[0]
        verdict = (rf"the network is {mean_m} nats per point above the best $\hat{{x}}_0$ there is "
                   rf"({z:.0f} standard errors from 0)" if z > 3 else
                   r"the network is within 3 standard errors of the best $\hat{x}_0$ there is")
        self.verdict = verdict
        why2 = one_line(verdict, size=22).next_to(why1, UP, buff=0.12)
        self.play(FadeIn(b2), FadeIn(n2), FadeIn(t2), FadeIn(why2))
        self.pause(4, f"The second gap, {plain_text(pm_fmt(gap_m))} nats, is the model's bound minus the optimal "
                      "one, and it is what training can still remove. Both bounds are measured on the same noisy "
                      "points, so they rise and fall together and their difference is known far more precisely "
                      "than either bound: that is why its error is smaller than theirs.")


def _spread_labels(labs: VGroup, xs: list[float], gap: float = 0.15) -> None:
    """Labels centred over their marks, unless two neighbours would overlap: then the left one ends at its mark
    and the right one starts at its own, and if even that overlaps the right one goes up a row."""
    order = sorted(range(len(xs)), key=lambda i: xs[i])
    for a, b in zip(order, order[1:]):
        la, lb = labs[a], labs[b]
        if la.get_right()[0] + gap <= lb.get_left()[0]:
            continue
        la.shift(RIGHT * (xs[a] - la.get_right()[0]))
        lb.shift(RIGHT * (xs[b] - lb.get_left()[0]))
        if la.get_right()[0] + gap > lb.get_left()[0]:
            lb.shift(UP * (la.get_top()[1] - lb.get_bottom()[1] + 0.1))
