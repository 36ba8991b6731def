"""TeX in the lecture's colours: a formula with every quantity coloured, labels, one-line captions,
and a derivation aligned on its relation signs.
"""

from __future__ import annotations

from manim import DOWN, LEFT, RIGHT, WHITE, MathTex, Tex, VGroup
from manim.mobject.svg.svg_mobject import VMobjectFromSVGPath

from animations.palette import QUANTITY_COLORS


def _drop_svg_path(init):
    """Forget the parsed SVG path once a glyph has its points.

    Every glyph of every TeX keeps its svgelements Path, and each copy() (every
    FadeIn, Transform and cache hit) deep-copies it: ~10 ms per glyph, most of a
    scene's render time. Nothing reads it after the points exist.
    """
    def wrapped(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.path_obj = None
    return wrapped


if not getattr(VMobjectFromSVGPath.__init__, "_vdm_light", False):
    VMobjectFromSVGPath.__init__ = _drop_svg_path(VMobjectFromSVGPath.__init__)
    VMobjectFromSVGPath.__init__._vdm_light = True


def tex(*parts: str, terms: dict | None = None, **kwargs) -> MathTex:
    """MathTex with every quantity in its colour; ``terms`` maps whole parts to a term colour.

    A part coloured as a term wins over the quantities inside it, so a whole
    reconstruction term reads green.
    """
    m = MathTex(*parts, tex_to_color_map=QUANTITY_COLORS, **kwargs)
    for part in m:
        colour = (terms or {}).get(getattr(part, "tex_string", None))
        if colour is not None:
            part.set_color(colour)
    return m


FOCUS_SPACE = r"\mkern6mu"  # set each side of a part that will be marked: TeX sets parts closer than a margin


def derivation(rows, font_size: float = 30, buff: float = 0.3, terms: dict | None = None,
               focus: list | None = None) -> VGroup:
    """Lines of a derivation, one MathTex each, aligned on their relation sign.

    ``rows``: (lhs, relation, rhs) with lhs None on continuation lines; rhs is a string
    or a tuple of strings, its parts (each a MathTex part, so that one can be
    highlighted: ``part(line, tex)``). Each line's ``.rel`` is its relation's glyphs;
    the lines are shifted so that every relation starts at the same x, as on a board.
    ``focus[i]``, a part of line i (or None), gets FOCUS_SPACE on each side, as parts of their own
    (no glyphs), so that the mark round it has room.
    """
    lines = VGroup()
    focus = list(focus or [None] * len(rows))
    for (lhs, rel, rhs), mark in zip(rows, focus):
        rhs_parts = (rhs,) if isinstance(rhs, str) or rhs is None else tuple(rhs)
        parts = [p for p in (lhs, rel, *rhs_parts) if p]
        if mark is not None and mark in parts:
            k = parts.index(mark)
            parts[k:k + 1] = [FOCUS_SPACE, mark, FOCUS_SPACE]
        m = tex(*parts, terms=terms, font_size=font_size)
        skip = 0
        if lhs:  # the relation is the first part after the lhs's own pieces
            skip = next(i for i, p in enumerate(m) if getattr(p, "tex_string", None) == rel and i > 0)
        m.rel = m[skip] if getattr(m[skip], "tex_string", None) == rel else next(
            p for p in m if getattr(p, "tex_string", None) == rel)
        lines.add(m)
    lines.arrange(DOWN, buff=buff, aligned_edge=LEFT)
    x = max(m.rel.get_left()[0] for m in lines)
    for m in lines:
        m.shift(RIGHT * (x - m.rel.get_left()[0]))
    return lines


def part(line: MathTex, tex_string: str):
    """The part of a derivation line written as ``tex_string`` (a whole rhs part, lhs or relation)."""
    for p in line.submobjects:
        if getattr(p, "tex_string", None) == tex_string:
            return p
    raise KeyError(f"no part {tex_string[:60]!r} in this line")


MAX_WIDTH = 13.4  # of the 14.2-unit frame: what a derivation may span


def label(text: str, color=WHITE, size: float = 28) -> Tex:
    return Tex(text, color=color, font_size=size)


def one_line(text: str, color=WHITE, size: float = 26, width: float | None = None) -> Tex:
    """A label LaTeX never breaks (an mbox), shrunk to ``width`` (MAX_WIDTH) only if it is wider."""
    m = Tex(r"\mbox{" + text + "}", color=color, font_size=size)
    width = MAX_WIDTH if width is None else width
    if m.width > width:
        m.scale_to_fit_width(width)
    return m


def unbroken_lines(text: str, color=WHITE, size: float = 26) -> VGroup:
    """A label of one or more lines, broken only where ``text`` says (at ``\\\\``): each line a one_line, so LaTeX
    never breaks one inside a formula ("(s =" on one line, "0.008)" on the next), centred under each other."""
    return VGroup(*[one_line(t.strip(), color, size) for t in text.split("\\\\")]).arrange(DOWN, buff=0.1)


def labels(*texts: str, colors=None, size: float = 28, math: bool = False) -> list:
    """Several labels from one LaTeX run (one Tex, one part each), to be placed one by one.

    Each LaTeX call costs about half a second, so a strip of six labels made
    this way renders as fast as one.
    """
    # one line per part: in one paragraph LaTeX would break a part across lines at the text width
    parts = list((MathTex if math else Tex)(*texts, arg_separator=r"\\ ", font_size=size))
    for i, part in enumerate(parts):
        part.set_color((colors or [WHITE] * len(parts))[i])
    return parts
