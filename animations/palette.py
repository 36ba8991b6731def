"""One colour per quantity, the same in every scene: x_0 is always sky blue, x_t orange, alpha
yellow, and each ELBO term has its own colour in every formula and plot.

QUANTITY_COLORS maps the LaTeX of each quantity to its colour; mobjects.text.tex applies it.
"""

from __future__ import annotations

from manim import WHITE

# Chosen for a projector: every one has a contrast ratio of at least 4.5 against the
# black background (WCAG 2), and any two differ by at least 20 in CIELAB (Delta E 1976),
# both checked numerically by tests/animations/test_layout_colours.py. Boxes and
# highlights are white, so that no colour means two things.

BACKGROUND = "#000000"
X0 = "#58C4DD"              # sky blue
XT = "#FF862F"              # orange
XHAT = "#2FD9A0"            # mint
ALPHA = "#FFE14D"           # yellow
EPS = "#BBBBBB"             # grey
POSTERIOR = "#FF9E9E"       # salmon: q(x_{t-1} | x_t, x_0)
RECONSTRUCTION = "#A8E05F"  # lime
PRIOR = "#FF5C5C"           # red
CONSISTENCY = "#B79CFF"     # lavender (PURPLE_B was too dark on a projector)
DENOISING = "#FF6EC7"       # pink
SCHEDULE = "#A0C0FF"        # periwinkle: a run's own noise schedule (log SNR), beside alpha's yellow
BOX = WHITE
TERM_COLORS = {"reconstruction": RECONSTRUCTION, "prior": PRIOR,
               "consistency": CONSISTENCY, "denoising": DENOISING}
PALETTE = {"x_0": X0, "x_t": XT, "x̂_0": XHAT, "alpha": ALPHA, "eps": EPS, "posterior": POSTERIOR,
           **TERM_COLORS, "run schedule": SCHEDULE, "text": WHITE}

# Substrings MathTex isolates and colours. Write \bar{\alpha}_t with braces (never
# \bar\alpha_t): an isolated substring must not be the bare argument of a macro.
_LATENTS = ("x_t", "x_{t-1}", "x_{t+1}", "x_{t-2}", "x_T", "x_{T-1}", "x_1", "x_2", "x_3", "x_{1:T}", "x_{0:T}")
_ALPHAS = (r"\alpha", r"\alpha_t", r"\alpha_{t-1}", r"\alpha_1", r"\alpha_T",
           r"\bar{\alpha}_t", r"\bar{\alpha}_{t-1}", r"\bar{\alpha}_{t-2}", r"\bar{\alpha}_T")
QUANTITY_COLORS = {"x_0": X0, r"\hat{x}_0": XHAT, r"\epsilon": EPS,
                   **{k: XT for k in _LATENTS}, **{k: ALPHA for k in _ALPHAS}}
