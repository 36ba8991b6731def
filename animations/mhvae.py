"""Scene 2, a VDM is a Markovian hierarchical VAE (exercise 2, first half: up to the bound).

    p(x_{0:T}) = p(x_T) prod_t p_theta(x_{t-1} | x_t)      q(x_{1:T} | x_0) = prod_t q(x_t | x_{t-1})

1. every latent x_t has the data's dimension; 2. the encoder is a fixed linear
Gaussian q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, (1 - alpha_t) I); 3. the
schedule drives x_T to N(0, I) (sqrt(alpha_bar_T) from vdm.schedule).

Then the bound, as on a board:

    log p(x_0) = log int p(x_{0:T}) dx_{1:T}
               = log int q(x_{1:T}|x_0) p(x_{0:T}) / q(x_{1:T}|x_0) dx_{1:T}
               = log E_q[p(x_{0:T}) / q(x_{1:T}|x_0)]
              >= E_q[log p(x_{0:T}) / q(x_{1:T}|x_0)]                        (Jensen: log is concave)

and Jensen drawn: the chord of log between two values of Y lies below the curve, so the
mean of log Y (on the chord) is at most log of the mean of Y (on the curve); a probe slides along the
chord with the curve above it, and the two values of Y close in on their mean until the gap (the KL) is zero,
the side's numbers following the picture. The next scene
(elbo_consistency.py) starts from this bound.

Render: manim -pql animations/mhvae.py MarkovianHVAE
"""

from __future__ import annotations

import numpy as np
import torch
from manim import (DOWN, LEFT, RIGHT, UP, Axes, Circle, Create, CurvedArrow, DashedLine, Dot, FadeIn, FadeOut,
                   GrowFromCenter, LaggedStart, Line, SurroundingRectangle, Title, ValueTracker, VGroup, Write,
                   always_redraw, linear)

from animations.lecture_data import example_x0, lecture_schedule
from animations.lecture_scene import LectureScene, cut, play_derivation
from animations.mobjects.images import pixel_image
from animations.mobjects.live_number import LiveNumber
from animations.mobjects.plots import polyline
from animations.mobjects.text import label, one_line, tex
from animations.palette import ALPHA, BOX, EPS, X0, XHAT, XT
from vdm.diffusion import forward_chain

NODE_T = ("0", "1", "2", None, "T-1", "T")  # None: the dots between x_2 and x_{T-1}
NODE_R = 0.52  # the nodes' radius
NODE_FILL = 0.72  # the widest label spans at most this share of the circle's diameter
JOINT = r"\frac{p(x_{0:T})}{q(x_{1:T} \mid x_0)}"
JENSEN_Y = (0.5, 4.0)  # the two equally likely values of Y in the picture of Jensen's inequality


class MarkovianHVAE(LectureScene):
    def construct(self):
        self.schedule = lecture_schedule()
        T = self.schedule.T
        x0 = example_x0(1)[0]
        self.chain = forward_chain(self.schedule, x0, generator=torch.Generator().manual_seed(0))
        self.node_steps = [0, 1, 2, None, T - 1, T]
        self.section_graph()
        self.section_restrictions()
        self.section_joint()
        self.section_likelihood()
        self.section_jensen()

    def section_graph(self):
        self.next_section("encoder and decoder chains")
        title = Title("A VDM is a Markovian hierarchical VAE (exercise 2)", font_size=38)
        nodes = VGroup()
        for name in NODE_T:
            if name is None:  # the dots take a node's place, so that the arrows end above and below them, not on them
                nodes.add(VGroup(Circle(radius=NODE_R, stroke_opacity=0), tex(r"\cdots", font_size=40)))
                continue
            key = "x_0" if name == "0" else ("x_{" + name + "}" if len(name) > 1 else "x_" + name)
            circle = Circle(radius=NODE_R, color=X0 if name == "0" else XT, stroke_width=3)
            label = tex(key, font_size=34)
            if label.width > NODE_FILL * 2 * NODE_R:  # x_{T-1} inside its circle, clear of the stroke
                label.scale_to_fit_width(NODE_FILL * 2 * NODE_R)
            nodes.add(VGroup(circle, label.move_to(circle)))
        nodes.arrange(RIGHT, buff=1.0).shift(UP * 0.9)
        enc, dec = VGroup(), VGroup()
        for a, b in zip(nodes[:-1], nodes[1:]):
            enc.add(CurvedArrow(a.get_top() + RIGHT * 0.1, b.get_top() + LEFT * 0.1, angle=-1.0, color=XT,
                                stroke_width=3, tip_length=0.18))
            dec.add(CurvedArrow(b.get_bottom() + LEFT * 0.1, a.get_bottom() + RIGHT * 0.1, angle=-1.0,
                                color=XHAT, stroke_width=3, tip_length=0.18))
        enc_label = tex(r"q(x_t \mid x_{t-1})\ \text{encoder}", font_size=30).next_to(enc, UP, buff=0.1)
        dec_label = tex(r"p_\theta(x_{t-1} \mid x_t)\ \text{decoder}", font_size=30).next_to(dec, DOWN, buff=0.1)
        self.play(Write(title))
        self.play(LaggedStart(*[GrowFromCenter(n) for n in nodes], lag_ratio=0.15))
        self.pause(1, "Exercise 2 reads a diffusion model as a variational autoencoder with a whole chain of latents: "
                      "the data x_0 on the left, then latents x_1 up to x_T.")
        self.play(FadeIn(enc), FadeIn(enc_label))
        self.pause(1, "The encoder q goes up the chain, one step at a time: each latent is drawn given only the one "
                      "before it. That is the Markov property, and it is the forward diffusion we just saw.")
        self.play(FadeIn(dec), FadeIn(dec_label))
        self.pause(1, "The decoder p-theta goes back down, again one step at a time. It is the only part with "
                      "parameters: learning a diffusion model means learning these reverse steps.")
        self.nodes, self.title = nodes, title
        self.graph = VGroup(nodes, enc, dec, enc_label, dec_label)

    def section_joint(self):
        """The chain rule down the decoder and up the encoder, then the Markov property: one factor per edge."""
        self.next_section("joint and posterior")
        cut(self, self.title)
        rows = [
            (r"p(x_{0:T})", "=", (r"p(x_T)", r"\prod_{t=1}^{T} p(x_{t-1} \mid x_{t:T})")),
            (None, "=", (r"p(x_T)", r"\prod_{t=1}^{T} p_\theta(x_{t-1} \mid x_t)")),
            (r"q(x_{1:T} \mid x_0)", "=", r"\prod_{t=1}^{T} q(x_t \mid x_{0:t-1})"),
            (None, "=", r"\prod_{t=1}^{T} q(x_t \mid x_{t-1})"),
        ]
        notes = [r"the chain rule, from the top: $x_T$ first, then each latent given all those above it",
                 r"Markov: the decoder's $x_{t-1}$ depends only on the latent just above, $x_t$",
                 r"the posterior (encoder), the chain rule from the bottom: each $x_t$ given all below it",
                 r"Markov again: the encoder's $x_t$ depends only on $x_{t-1}$; a product of the fixed Gaussians"]
        say = ["The joint of the decoder, by the chain rule taken from the top: first x_T, then each latent given "
               "everything above it. This holds for any distribution.",
               "The Markov property of the decoder: each x_(t-1) depends only on the latent just above it. One "
               "learned factor per arrow of the graph.",
               "The encoder, the approximate posterior of the VAE, by the chain rule from the bottom: each x_t "
               "given everything below it, x_0 included.",
               "Markov again: each x_t depends only on x_(t-1). The encoder is a product of the fixed Gaussian "
               "steps; it has no parameters."]
        self.joint = play_derivation(self, rows, notes, say=say, below=self.title, font_size=34, buff=0.45,
                                     focus=[r"\prod_{t=1}^{T} p(x_{t-1} \mid x_{t:T})",
                                            r"\prod_{t=1}^{T} p_\theta(x_{t-1} \mid x_t)",
                                            r"\prod_{t=1}^{T} q(x_t \mid x_{0:t-1})",
                                            r"\prod_{t=1}^{T} q(x_t \mid x_{t-1})"])
        cut(self, self.title)

    def section_likelihood(self):
        """log p(x_0) as an expectation under the encoder, and Jensen's inequality: the ELBO."""
        self.next_section("the log-likelihood and Jensen's inequality")
        rows = [
            (r"\log p(x_0)", "=", (r"\log \int", r"p(x_{0:T})", r"\, dx_{1:T}")),
            (None, "=", (r"\log \int", r"q(x_{1:T} \mid x_0)\, " + JOINT, r"\, dx_{1:T}")),
            (None, "=", (r"\log", r"\mathbb{E}_{q(x_{1:T} \mid x_0)}\left[" + JOINT + r"\right]")),
            (None, r"\geq", (r"\mathbb{E}_{q(x_{1:T} \mid x_0)}\left[\log " + JOINT + r"\right]")),
        ]
        notes = [r"the likelihood of an image: the joint with every latent $x_1, \dots, x_T$ integrated out",
                 r"multiply and divide by the encoder $q(x_{1:T} \mid x_0)$: nothing changes where $q > 0$",
                 r"an integral against a density is an expectation: a mean over chains drawn by the encoder",
                 r"Jensen: $\log$ is concave, so $\log \mathbb{E}[Y] \geq \mathbb{E}[\log Y]$; the right side is the ELBO"]
        say = ["What we would like to maximise: the likelihood of an image. It is the joint with all T latents "
               "integrated out, an integral over T times 3072 dimensions that we cannot compute.",
               "The usual VAE trick: multiply and divide by the encoder. Nothing changes wherever q is positive.",
               "An integral of a density times something is an expectation: the average of the ratio over chains "
               "drawn by the encoder. Those we can sample, by running the forward diffusion.",
               "But the log sits outside the expectation. Jensen's inequality moves it inside at the price of an "
               "inequality: the log of a mean is at least the mean of the log. The right side is the evidence lower "
               "bound, the ELBO."]
        self.likelihood = play_derivation(
            self, rows, notes, say=say, below=self.title, font_size=32, buff=0.45, transform=True,
            focus=[r"\log \int", r"q(x_{1:T} \mid x_0)\, " + JOINT,
                   r"\mathbb{E}_{q(x_{1:T} \mid x_0)}\left[" + JOINT + r"\right]", r"\geq"])
        cut(self, self.title)

    def section_jensen(self):
        """Jensen drawn: Y takes two values with probability 1/2; the chord's midpoint lies below the curve."""
        self.next_section("why it is a lower bound: the chord of the concave log")
        y1, y2 = JENSEN_Y
        mean_y = (y1 + y2) / 2
        log_mean, mean_log = float(np.log(mean_y)), float((np.log(y1) + np.log(y2)) / 2)
        self.jensen_numbers = (mean_y, log_mean, mean_log)
        axes = Axes(x_range=[0, 5, 1], y_range=[-1.5, 2, 0.5], x_length=7.0, y_length=4.2, tips=False,
                    axis_config={"stroke_width": 2, "include_numbers": True, "font_size": 20},
                    y_axis_config={"decimal_number_config": {"num_decimal_places": 1}},
                    x_axis_config={"decimal_number_config": {"num_decimal_places": 0}})
        axes.next_to(self.title, DOWN, buff=0.5).to_edge(LEFT, buff=1.2)
        xs = np.linspace(0.25, 5, 200)
        curve = polyline(axes, xs, np.log(xs), ALPHA, 4)
        # below the whole plot: the t axis runs through its middle (log Y = 0), where the picture is
        x_lab = label(r"$Y = p(x_{0:T}) / q(x_{1:T} \mid x_0)$, $x_{1:T} \sim q(x_{1:T} \mid x_0)$",
                      size=22).next_to(axes, DOWN, buff=0.2)
        curve_lab = tex(r"\log Y", font_size=28, color=ALPHA).next_to(axes.c2p(5, np.log(5)), UP, buff=0.15)
        p1, p2 = axes.c2p(y1, np.log(y1)), axes.c2p(y2, np.log(y2))
        chord = Line(p1, p2, color=X0, stroke_width=3)
        dots = VGroup(Dot(p1, color=X0), Dot(p2, color=X0))
        on_chord = Dot(axes.c2p(mean_y, mean_log), color=X0)
        on_curve = Dot(axes.c2p(mean_y, log_mean), color=ALPHA)
        drop = DashedLine(axes.c2p(mean_y, 0), axes.c2p(mean_y, log_mean), color=EPS, stroke_width=2)
        gap = Line(on_chord.get_center(), on_curve.get_center(), color=BOX, stroke_width=5)
        side = VGroup(
            label(rf"$Y = {y1:g}$ or ${y2:g}$, each with probability $\frac{{1}}{{2}}$", size=24),
            label(rf"$\log \mathbb{{E}}[Y] = \log {mean_y:g} = {log_mean:.2f}$", ALPHA, 24),
            label(rf"$\mathbb{{E}}[\log Y] = \frac{{1}}{{2}}(\log {y1:g} + \log {y2:g}) = {mean_log:.2f}$", X0, 24),
            label(rf"gap ${log_mean:.2f} - {mean_log:.2f} = {log_mean - mean_log:.2f}$ $\geq 0$", size=24),
        ).arrange(DOWN, aligned_edge=LEFT, buff=0.3).next_to(axes, RIGHT, buff=0.3).shift(UP * 0.4)
        caps = [one_line(r"the mean of $\log Y$ lies on the chord, $\log$ of the mean on the curve: "
                         r"a concave curve is above its chords", size=24),
                one_line(r"the gap is $D_{\mathrm{KL}}(q(x_{1:T} \mid x_0) \,\|\, p(x_{1:T} \mid x_0))$: "
                         r"zero only if the encoder is the true posterior ($Y$ constant)", size=24)]
        for cap in caps:
            cap.to_edge(DOWN, buff=0.35)
        self.play(Create(axes), FadeIn(x_lab))
        self.play(Create(curve), FadeIn(curve_lab), run_time=1.5)
        self.play(FadeIn(dots), FadeIn(side[0]))
        self.pause(2, f"Why is it a lower bound? Take the simplest random variable: Y is {y1:g} or {y2:g}, each with "
                      "probability one half. The yellow curve is the log.")
        self.play(Create(chord), FadeIn(on_chord), FadeIn(side[2]))
        self.pause(3, f"The mean of log Y is the midpoint of the chord between the two points: {mean_log:.2f}.")
        self.play(Create(drop), FadeIn(on_curve), FadeIn(side[1]))
        self.pause(2, f"The log of the mean of Y is on the curve above the same point: {log_mean:.2f}.")
        self.play(Create(gap), FadeIn(side[3]), FadeIn(caps[0]))
        # "a concave curve is above its chords", shown: a probe slides along the whole chord, the curve above it
        x = ValueTracker(y1)

        def probe():
            xv = x.get_value()
            on = float(np.interp(xv, [y1, y2], [np.log(y1), np.log(y2)]))
            top, bottom = axes.c2p(xv, float(np.log(xv))), axes.c2p(xv, on)
            if top[1] - bottom[1] < 1e-3:  # at the chord's ends the curve meets it
                return VGroup(Dot(bottom, radius=0.06, color=BOX))
            return VGroup(Line(bottom, top, color=BOX, stroke_width=2.5), Dot(bottom, radius=0.06, color=X0),
                          Dot(top, radius=0.06, color=ALPHA))

        slider = always_redraw(probe)
        self.add(slider)
        self.play(x.animate.set_value(y2), run_time=3, rate_func=linear)
        self.remove(slider)
        self.pause(1, f"A concave curve lies above its chords: wherever we stand on the chord, the curve is above "
                      f"it. So the gap, {log_mean - mean_log:.2f} here, is never negative. With Y the ratio of the "
                      "joint to the encoder, this is exactly the step we took.", hold=2.5)
        self.play(FadeIn(caps[1]), caps[0].animate.next_to(caps[1], UP, buff=0.15))
        # "zero only if Y is constant", shown: the two values of Y close in on their mean, the chord shrinks onto
        # the curve and the gap closes; the side's numbers follow the picture while it moves
        spread = ValueTracker(1.0)

        def values():
            s = max(spread.get_value(), 1e-3)
            return mean_y - s * (mean_y - y1), mean_y + s * (y2 - mean_y)

        def picture():
            a, b = values()
            pa, pb = axes.c2p(a, float(np.log(a))), axes.c2p(b, float(np.log(b)))
            mid = axes.c2p(mean_y, float((np.log(a) + np.log(b)) / 2))
            return VGroup(Line(pa, pb, color=X0, stroke_width=3), Dot(pa, color=X0), Dot(pb, color=X0),
                          Line(mid, on_curve.get_center(), color=BOX, stroke_width=5), Dot(mid, color=X0))

        fs = 24
        live = VGroup(
            VGroup(label(r"$Y =$", size=fs), LiveNumber(y1, "{:.2f}", fs), label("or", size=fs),
                   LiveNumber(y2, "{:.2f}", fs), label(r", each with probability $\frac{1}{2}$", size=fs)),
            VGroup(label(r"$\mathbb{E}[\log Y] =$", X0, fs), LiveNumber(mean_log, "{:.2f}", fs, X0)),
            VGroup(label("gap", size=fs), LiveNumber(log_mean - mean_log, "{:.2f}", fs), label(r"$\geq 0$", size=fs)),
        )
        for row, k in zip(live, (0, 2, 3)):
            row.arrange(RIGHT, buff=0.12).move_to(side[k], aligned_edge=LEFT)
        live[0][4].shift(LEFT * 0.1)  # the comma against its number

        def follow(_):
            a, b = values()
            m = float((np.log(a) + np.log(b)) / 2)
            live[0][1].set_value(a)
            live[0][3].set_value(b)
            live[1][1].set_value(m)
            live[2][1].set_value(log_mean - m)

        moving = always_redraw(picture)
        fixed = (chord, dots, on_chord, gap)  # removed one by one: removing a group not on screen removes nothing
        # one after the other: a cross-fade of two sentences in one place is unreadable
        self.play(FadeOut(side[0]), FadeOut(side[2]), FadeOut(side[3]), run_time=0.4)
        self.play(FadeIn(live), run_time=0.4)
        self.remove(*fixed)
        self.add(moving, on_curve)
        live.add_updater(follow)
        self.play(spread.animate.set_value(0.0), run_time=3)
        self.wait(1)
        self.play(spread.animate.set_value(1.0), run_time=2)
        live.clear_updaters()
        self.remove(moving)
        self.add(dots, chord, on_chord, drop, on_curve, gap)  # back in the order they were drawn in
        box = SurroundingRectangle(side[3], buff=0.08, color=BOX, stroke_width=2.5)
        self.play(FadeOut(live), run_time=0.4)
        self.play(FadeIn(side[0]), FadeIn(side[2]), FadeIn(side[3]), Create(box), run_time=0.6)
        self.pause(1, f"For the ELBO the gap has a name: the KL divergence from the encoder to the true posterior of "
                      f"the latents. It vanishes only if Y is constant: as the two values of Y close in on their mean, "
                      f"{mean_y:g}, the chord shrinks onto the curve and the gap closes to zero. That is the case where "
                      f"the encoder is the true posterior. Back at {y1:g} and {y2:g} the gap is "
                      f"{log_mean - mean_log:.2f} again. Next we split the ELBO into terms we can compute.", hold=3)
        self.jensen_side = side

    def section_restrictions(self):
        self.next_section("three restrictions make it a VDM")
        fs = 30
        a_T = float(self.schedule.signal_coef()[self.schedule.T])
        items = VGroup(
            tex(r"1.\ \ x_t \in \mathbb{R}^{3\times 32\times 32}", r"\text{: every latent has the data's dimension}",
                font_size=fs),
            tex(r"2.\ \ q(x_t \mid x_{t-1}) = \mathcal{N}\!\left(x_t;\ \sqrt{\alpha_t}\, x_{t-1},\ "
                r"(1-\alpha_t)\,\mathbf{I}\right)", r"\text{: a fixed encoder, not learned}", font_size=fs),
            tex(r"3.\ \ q(x_T \mid x_0) \approx \mathcal{N}(0, \mathbf{I})", r"\text{: here }",
                r"\sqrt{\bar{\alpha}_T}" + f" = {a_T:.4f}", font_size=fs),
        ).arrange(DOWN, aligned_edge=LEFT, buff=0.3).to_edge(DOWN, buff=0.35)
        images = []
        for node, t in zip(self.nodes, self.node_steps):
            if t is None:
                continue
            img = pixel_image(self.chain[t], height=0.75)
            img.move_to([node.get_center()[0], items.get_top()[1] + 0.65, 0])
            images.append((node, img))
        self.play(FadeIn(items[0], shift=UP * 0.2))
        # restriction 1 made visible: each node is an image of the data's size
        self.play(*[FadeIn(img, shift=DOWN * 0.2) for _, img in images])
        self.pause(1, "Three restrictions turn a general hierarchical VAE into a diffusion model. First: every latent "
                      "has the data's dimension. Each node of the chain is an image of the same size.")
        self.play(FadeIn(items[1], shift=UP * 0.2))
        self.pause(2, "Second: the encoder is not learned. Each step is the fixed linear Gaussian of the forward "
                      "process.")
        self.play(FadeIn(items[2], shift=UP * 0.2))
        self.pause(3, f"Third: the schedule is chosen so that the last latent is a standard Gaussian. With the "
                      f"assignment's alpha, {100 * a_T:.2g} percent of the image's amplitude is left at step T.")
        self.items = items
