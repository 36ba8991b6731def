"""The assignment's chain graph of a VDM, x_0 -> x_1 -> ... -> x_T, with the encoder's steps
q(x_t | x_{t-1}) as arrows above the nodes and the decoder's steps p_theta(x_{t-1} | x_t) below,
and what one ELBO term compares lit on it: its two distributions, each drawn where it lives
on the chain (an encoder or decoder step, the prior on x_T, a closed-form marginal, a posterior).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from manim import DOWN, LEFT, RIGHT, UP, Circle, CurvedArrow, VGroup

from animations.mobjects.text import tex
from animations.palette import X0, XHAT, XT

# the nodes drawn, left to right; None: the dots standing for the latents in between
NODES = ("0", "1", None, "t-1", "t", "t+1", None, "T-1", "T")
LABEL_CLEARANCE = 0.1  # a label's corners stay this far inside its circle: nearer, it reads as touching the ring


def x(name: str) -> str:
    """The TeX of node ``name``: x_0, x_1, x_{t-1}, x_T."""
    return f"x_{name}" if len(name) == 1 else f"x_{{{name}}}"


@dataclass(frozen=True)
class Dist:
    """One distribution of an ELBO term, where it lives on the chain graph.

    ``kind``: "q", the encoder's step q(x_dst | x_src) (an arrow above, src -> dst); "p", the
    decoder's step p_theta(x_dst | x_src) (an arrow below); "prior", p(x_dst) on its node;
    "marginal", q(x_dst | x_src) in closed form over many steps (a long arrow above);
    "posterior", q(x_dst | x_src, x_0), the encoder's step turned round by Bayes (an arrow
    above, src -> dst, with x_0 ringed).
    """

    kind: str
    dst: str
    src: str | None = None

    @property
    def tex(self) -> str:
        """The distribution as the ELBO's formulas write it."""
        given = {"q": f"q({x(self.dst)} \\mid {x(self.src or '')})",
                 "marginal": f"q({x(self.dst)} \\mid {x(self.src or '')})",
                 "p": f"p_\\theta({x(self.dst)} \\mid {x(self.src or '')})",
                 "prior": f"p({x(self.dst)})",
                 "posterior": f"q({x(self.dst)} \\mid {x(self.src or '')}, x_0)"}
        return given[self.kind]


class ChainGraph(VGroup):
    """The chain's nodes (x_0 sky blue, latents orange), encoder arrows above, decoder arrows below.

    ``light(dist, colour)`` draws one distribution of a term on top, in the term's colour, with
    its formula beside it; the graph itself can be dimmed underneath (``fade_arrows``).
    """

    def __init__(self, radius: float = 0.4, buff: float = 0.62, font_size: float = 30):
        super().__init__()
        self.radius = radius
        self.nodes, self.index = VGroup(), {}
        for i, name in enumerate(NODES):
            if name is None:  # the dots take a node's place, so that arrows end above and below them, not on them
                self.nodes.add(VGroup(Circle(radius=radius, stroke_opacity=0), tex(r"\cdots", font_size=font_size + 6)))
                continue
            circle = Circle(radius=radius, color=X0 if name == "0" else XT, stroke_width=3)
            label = tex(x(name), font_size=font_size)
            reach = np.hypot(label.width / 2, label.height / 2)  # the label's corners from the circle's centre
            if reach > radius - LABEL_CLEARANCE:  # x_{T-1} is wider than the circle leaves room for
                label.scale((radius - LABEL_CLEARANCE) / reach)
            self.nodes.add(VGroup(circle, label.move_to(circle)))
            self.index[name] = i
        self.nodes.arrange(RIGHT, buff=buff)
        self.enc, self.dec = VGroup(), VGroup()
        for a, b in zip(self.nodes[:-1], self.nodes[1:]):
            self.enc.add(self._arrow(a, b, XT, 3, up=True))
            self.dec.add(self._arrow(b, a, XHAT, 3, up=False))
        self.add(self.nodes, self.enc, self.dec)

    def node(self, name: str):
        return self.nodes[self.index[name]]

    @staticmethod
    def _arrow(a, b, colour, width: float, up: bool, angle: float = 1.0):
        """An arc from node a to node b, over the top (up) or under the bottom; the sign of the angle turns
        it to the side it belongs on whichever way it runs."""
        rightward = b.get_center()[0] > a.get_center()[0]
        side = (a.get_top(), b.get_top()) if up else (a.get_bottom(), b.get_bottom())
        inset = RIGHT * 0.1 if rightward else LEFT * 0.1
        bend = -angle if up == rightward else angle
        return CurvedArrow(side[0] + inset, side[1] - inset, angle=bend, color=colour, stroke_width=width,
                           tip_length=0.2)

    def fade_arrows(self, opacity: float = 0.3) -> "ChainGraph":
        """The arrows faint, so that a term's lit ones stand out (the arcs' strokes and the tips' fill only: an
        arc given a fill would be drawn as a filled crescent)."""
        for arrow in [*self.enc, *self.dec]:
            arrow.set_stroke(opacity=opacity)
            for tip in arrow.get_tips():
                tip.set_fill(opacity=opacity)
        return self

    def light(self, dist: Dist, colour, font_size: float = 28) -> VGroup:
        """``dist`` drawn on the chain in ``colour`` (thick), with its formula next to it."""
        formula = tex(dist.tex, terms={dist.tex: colour}, font_size=font_size)
        if dist.kind == "prior":
            node = self.node(dist.dst)
            ring = Circle(radius=self.radius + 0.1, color=colour, stroke_width=6).move_to(node)
            formula.next_to(ring, DOWN, buff=0.12)
            return VGroup(ring, formula)
        a, b = self.node(dist.src), self.node(dist.dst)
        if dist.kind in ("q", "p"):
            arrow = self._arrow(a, b, colour, 6, up=dist.kind == "q")
        elif dist.kind == "marginal":
            arrow = self._arrow(a, b, colour, 6, up=True, angle=0.7)
        else:  # posterior: against the encoder's direction, higher than its arrow, conditioned on x_0 too
            arrow = self._arrow(a, b, colour, 6, up=True, angle=1.9)
        formula.next_to(arrow, UP if dist.kind != "p" else DOWN, buff=0.1)
        parts = VGroup(arrow, formula)
        if dist.kind == "posterior":
            parts.add(Circle(radius=self.radius + 0.1, color=colour, stroke_width=4).move_to(self.node("0")))
        return parts


@dataclass(frozen=True)
class ChainTerm:
    """An ELBO term as the chain graph shows it: its name and colour, its formula, the two distributions it
    compares, what it measures in words (``words``, on the slide) and what the lecturer says (``say``)."""

    name: str
    colour: str
    formula: str
    dists: tuple[Dist, Dist]
    words: str
    say: str
