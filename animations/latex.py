"""LaTeX strings the scenes share: numbers written for LaTeX, names made safe inside it, and
the one formula fragment both ELBO forms write the same. No manim and no torch here.
"""

from __future__ import annotations

# the reconstruction term, written the same in both ELBO forms (the other terms differ)
RECON_TEX = r"\mathbb{E}_{q(x_1 \mid x_0)}\left[\log p_\theta(x_0 \mid x_1)\right]"


def sci(x: float, digits: int = 2) -> str:
    """x in LaTeX: 13.6, or 9.3 \\times 10^{-7} when it needs an exponent (never Python's 9.3e-07)."""
    text = f"{x:.{digits}g}"
    if "e" not in text:
        return text
    mant, exp = text.split("e")
    return rf"{mant} \times 10^{{{int(exp)}}}"


def tex_text(s: str) -> str:
    """A name (a run's, a path) made safe inside LaTeX text."""
    for ch in "\\&%$#_{}":
        s = s.replace(ch, "\\" + ch)
    return s.replace("--", "-{}-")  # not an en dash


def schedule_tex(schedule) -> str:
    """A schedule's describe() as slide text: its symbols (alpha, T, s) set as math, like the formulas around them."""
    s = tex_text(schedule.describe())
    for word, math in (("alpha = ", r"$\alpha$ = "), ("T = ", "$T$ = "), ("(s = ", "($s$ = ")):
        s = s.replace(word, math)
    return s


def plain_text(s: str) -> str:
    """LaTeX text as plain words for presenter notes: the math delimiters and spacing dropped, a few symbols
    written out (``$-$ELBO 1.00 $\\pm$ 0.04`` reads -ELBO 1.00 ± 0.04)."""
    for tex_, plain in ((r"\pm", "±"), (r"\to", "→"), (r"\hat{x}_0", "x̂_0"), (r"\,", " "), (r"\%", "%"),
                        ("$", "")):
        s = s.replace(tex_, plain)
    return " ".join(s.split())
