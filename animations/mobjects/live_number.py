"""A number that changes every frame without ghosts (LiveNumber)."""

from __future__ import annotations

import numpy as np
from manim import WHITE, MathTex, VGroup, VMobject


class LiveNumber(VGroup):
    """A number redrawn every frame from pre-rendered TeX glyphs, into a fixed set of glyph slots.

    manim's DecimalNumber deep-copies a TeX mobject per character on every
    set_value (about 0.1 s on this machine); this copies only the glyph outlines.

    The slots never change: set_value rewrites their points in place and empties
    the slots it does not need. Replacing the submobjects instead (as this class
    once did) leaves ghost digits: Scene.play captures the flattened family of
    every moving mobject when the animation starts and draws that list on every
    frame, so the first value's glyphs stay on screen under each new value's.
    """

    _glyphs: dict = {}
    _metrics: dict = {}

    def __init__(self, value: float, fmt: str = "{:.4f}", font_size: float = 36, color=WHITE,
                 slots: int | None = None):
        super().__init__()
        self.fmt, self.font_size_, self.color_ = fmt, font_size, color
        # enough slots for the widest value this number is likely to show; more are added
        # only outside an animation (when a value is wider than any seen before)
        n = max(len(fmt.format(value)), slots or 0, 8)
        self.add(*[VMobject(fill_color=color, fill_opacity=1.0, stroke_width=0) for _ in range(n)])
        self.value = None
        self._origin = None
        self._draw(value)

    @classmethod
    def _glyph_table(cls, font_size):
        if font_size not in cls._glyphs:
            chars = "0123456789.-"
            m = MathTex(*chars, font_size=font_size)
            cls._glyphs[font_size] = {ch: part.family_members_with_points()[0] for ch, part in zip(chars, m)}
        return cls._glyphs[font_size]

    @classmethod
    def _metric_table(cls, font_size):
        """{char: (ink offset, advance)} as TeX sets them: where a character's ink starts after the end of the
        one before, and how far the next one starts (digits are all one advance wide in TeX's fonts). Measured
        between zeros, so the numbers look as the same string set by MathTex does."""
        if font_size not in cls._metrics:
            z = MathTex(*["0"] * 11, font_size=font_size)
            adv = (z[10].get_left()[0] - z[0].get_left()[0]) / 10
            table = {}
            for ch in "0123456789.":
                m = MathTex("0", ch, "0", font_size=font_size)
                start = m[0].get_left()[0] + adv
                table[ch] = (m[1].get_left()[0] - start, m[2].get_left()[0] - start)
            m = MathTex("-", "0", font_size=font_size)  # a leading minus (unary: no space of a binary one)
            table["-"] = (0.0, m[1].get_left()[0] - m[0].get_left()[0])
            cls._metrics[font_size] = table
        return cls._metrics[font_size]

    @property
    def glyphs(self) -> list:
        """The slots that show a character now (the others have no points)."""
        return [m for m in self.submobjects if m.has_points()]

    def _draw(self, value):
        table = self._glyph_table(self.font_size_)
        metrics = self._metric_table(self.font_size_)
        text = self.fmt.format(value)
        while len(self.submobjects) < len(text):
            self.add(VMobject(fill_color=self.color_, fill_opacity=1.0, stroke_width=0))
        # the translation the number got since the last draw (shift, next_to, arrange ...)
        offset = np.zeros(3) if self._origin is None else self.submobjects[0].points[0] - self._origin
        x = 0.0
        for i, slot in enumerate(self.submobjects):
            if i >= len(text):
                slot.clear_points()
                continue
            g = table[text[i]]
            pts = g.points.copy()
            ink, advance = metrics[text[i]]
            pts[:, 0] += x + ink - g.get_left()[0]
            if i == 0:
                self._origin = pts[0].copy()  # slot 0's first point before any translation
            slot.set_points(pts + offset)
            x += advance
        self.value = value
        return self

    def set_value(self, value: float):
        """Redraw in place: the same slots, the new glyphs, the translation the old ones had."""
        if value != self.value:
            self._draw(value)
        return self

    def get_value(self) -> float:
        return self.value
