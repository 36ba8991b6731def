"""Truecolor inside tmux: tmux does not pass COLORTERM to the programs in it, so Rich (and Textual)
fall back to 256 colours there, and sample images posterise.

``truecolor_env`` sets COLORTERM=truecolor for this process when it runs inside tmux and tmux says
the attached client has RGB colour (``#{client_termfeatures}`` lists ``RGB``, tmux 3.2 and later;
it does when the outer terminal is known to have it or ``terminal-features`` says so), as other
terminal programs detect it. NO_COLOR, an explicit COLORTERM, or no answer leave everything as is.
"""

from __future__ import annotations

import os
import subprocess


def tmux_client_has_rgb(environ=os.environ, run=subprocess.run) -> bool | None:
    """Whether the tmux client this process is shown in has RGB colour (None: not in tmux, or no answer)."""
    if not environ.get("TMUX"):
        return None
    try:
        out = run(["tmux", "display-message", "-p", "#{client_termfeatures}"], capture_output=True, text=True,
                  timeout=2)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    features = {f.strip() for f in out.stdout.strip().split(",")}
    return "RGB" in features


def truecolor_env(environ=os.environ, run=subprocess.run) -> bool:
    """Set COLORTERM=truecolor inside tmux when its client has RGB; True when it did."""
    if "NO_COLOR" in environ or environ.get("COLORTERM"):
        return False
    if tmux_client_has_rgb(environ, run):
        environ["COLORTERM"] = "truecolor"
        return True
    return False
