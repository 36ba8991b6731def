"""Scene 2, a VDM is a Markovian hierarchical VAE with three restrictions.

    p(x_{0:T}) = p(x_T) prod_t p_theta(x_{t-1} | x_t)      q(x_{1:T} | x_0) = prod_t q(x_t | x_{t-1})

1. every latent x_t has the data's dimension; 2. the encoder is a fixed linear
Gaussian q(x_t | x_{t-1}) = N(sqrt(alpha_t) x_{t-1}, (1 - alpha_t) I); 3. the
schedule drives x_T to N(0, I) (sqrt(alpha_bar_T) from vdm.schedule).

Render: manim -pql animations/mhvae.py MarkovianHVAE
"""

from __future__ import annotations

import torch
from manim import (DOWN, LEFT, RIGHT, UP, Circle, CurvedArrow, FadeIn, GrowFromCenter, LaggedStart, Title,
                   VGroup, Write)

from animations import common as c
from vdm.diffusion import forward_chain

NODE_T = ("0", "1", "2", None, "T-1", "T")  # None: the dots between x_2 and x_{T-1}


class MarkovianHVAE(c.LectureScene):
    def construct(self):
        self.schedule = c.lecture_schedule()
        T = self.schedule.T
        x0 = c.example_x0(1)[0]
        self.chain = forward_chain(self.schedule, x0, generator=torch.Generator().manual_seed(0))
        self.node_steps = [0, 1, 2, None, T - 1, T]
        self.section_graph()
        self.section_joint()
        self.section_restrictions()

    def section_graph(self):
        self.next_section("encoder and decoder chains")
        title = Title("A VDM is a Markovian hierarchical VAE", font_size=38)
        nodes = VGroup()
        for name in NODE_T:
            if name is None:
                nodes.add(c.tex(r"\cdots", font_size=40))
                continue
            key = "x_0" if name == "0" else ("x_{" + name + "}" if len(name) > 1 else "x_" + name)
            circle = Circle(radius=0.45, color=c.X0 if name == "0" else c.XT, stroke_width=3)
            nodes.add(VGroup(circle, c.tex(key, font_size=34).move_to(circle)))
        nodes.arrange(RIGHT, buff=1.1).shift(UP * 0.9)
        enc, dec = VGroup(), VGroup()
        for a, b in zip(nodes[:-1], nodes[1:]):
            enc.add(CurvedArrow(a.get_top() + RIGHT * 0.1, b.get_top() + LEFT * 0.1, angle=-1.0, color=c.XT,
                                stroke_width=3, tip_length=0.18))
            dec.add(CurvedArrow(b.get_bottom() + LEFT * 0.1, a.get_bottom() + RIGHT * 0.1, angle=-1.0,
                                color=c.XHAT, stroke_width=3, tip_length=0.18))
        enc_label = c.tex(r"q(x_t \mid x_{t-1})\ \text{encoder}", font_size=30).next_to(enc, UP, buff=0.1)
        dec_label = c.tex(r"p_\theta(x_{t-1} \mid x_t)\ \text{decoder}", font_size=30).next_to(dec, DOWN, buff=0.1)
        self.play(Write(title))
        self.play(LaggedStart(*[GrowFromCenter(n) for n in nodes], lag_ratio=0.15))
        self.pause(1)
        self.play(FadeIn(enc), FadeIn(enc_label))
        self.pause(1)
        self.play(FadeIn(dec), FadeIn(dec_label))
        self.pause(1)
        self.nodes, self.title = nodes, title
        self.graph = VGroup(nodes, enc, dec, enc_label, dec_label)

    def section_joint(self):
        self.next_section("joint and posterior")
        fs = 34
        joint = c.tex(r"p(x_{0:T}) = p(x_T)\prod_{t=1}^{T} p_\theta(x_{t-1} \mid x_t)", font_size=fs)
        post = c.tex(r"q(x_{1:T} \mid x_0) = \prod_{t=1}^{T} q(x_t \mid x_{t-1})", font_size=fs)
        VGroup(joint, post).arrange(RIGHT, buff=1.0).to_edge(DOWN, buff=1.0)
        self.play(FadeIn(joint, shift=UP * 0.2))
        self.pause(1)
        self.play(FadeIn(post, shift=UP * 0.2))
        self.pause(1)
        self.remove(joint, post)

    def section_restrictions(self):
        self.next_section("three restrictions make it a VDM")
        fs = 30
        a_T = float(self.schedule.signal_coef()[self.schedule.T])
        items = VGroup(
            c.tex(r"1.\ \ x_t \in \mathbb{R}^{3\times 32\times 32}", r"\text{: every latent has the data's dimension}",
                  font_size=fs),
            c.tex(r"2.\ \ q(x_t \mid x_{t-1}) = \mathcal{N}\!\left(x_t;\ \sqrt{\alpha_t}\, x_{t-1},\ "
                  r"(1-\alpha_t)\,\mathbf{I}\right)", r"\text{: a fixed encoder, not learned}", font_size=fs),
            c.tex(r"3.\ \ q(x_T \mid x_0) \approx \mathcal{N}(0, \mathbf{I})", r"\text{: here }",
                  r"\sqrt{\bar{\alpha}_T}" + f" = {a_T:.4f}", font_size=fs),
        ).arrange(DOWN, aligned_edge=LEFT, buff=0.3).to_edge(DOWN, buff=0.35)
        images = []
        for node, t in zip(self.nodes, self.node_steps):
            if t is None:
                continue
            img = c.pixel_image(self.chain[t], height=0.75)
            img.move_to([node.get_center()[0], items.get_top()[1] + 0.65, 0])
            images.append((node, img))
        self.play(FadeIn(items[0], shift=UP * 0.2))
        # restriction 1 made visible: each node is an image of the data's size
        self.play(*[FadeIn(img, shift=DOWN * 0.2) for _, img in images])
        self.pause(1)
        self.play(FadeIn(items[1], shift=UP * 0.2))
        self.pause(1)
        self.play(FadeIn(items[2], shift=UP * 0.2))
        self.pause(1)
        self.items = items
