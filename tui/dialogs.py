"""Modal screens: help, quit-while-training, and picking an image."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Markdown

HELP = """\
# vdm tui

**Screens**: `1` monitor (live training), `2` chain (step through the diffusion),
`ctrl+p` command palette, `?` this help, `q` quit.

## Monitor
Tails `metrics.jsonl` of the run like `tail -f`; lines that do not parse are
skipped and counted. `r` reloads the run from the start, `x` stops the run's
trainer (after asking; SIGINT to the pid in its start record). The status line
says "stopped responding" when that pid is gone or the trainer has written
nothing for ten times its usual interval, with the age of the last record, and
"stopping" from a stop until the run's end record (it saves, evaluates and samples
first; the ETA holds that end).

The -ELBO (bits/dim) is `vdm elbo --estimator importance` on the fixed held-out
images: one t each from an importance proposal, two draws; ± is its Monte Carlo
error with those images fixed, so two runs on the same data compare within it.
The run list ranks runs by their newest -ELBO. A run with `--minutes` evaluates
after 10 s of training and at each doubling (20, 40, 80 s ...) besides each
epoch, with a small grid of samples; evaluating and sampling are training time
lost, each kept under 15 % of it: the info panel says how much they took.

Curves (the overlay of several runs too): `l` log scale on every plot,
`s` / `S` more / less smoothing of the train loss (debiased EMA; the raw curve
stays, dimmed), `w` x axis by step or wall time, `+` / `-` zoom in / out,
`←` `→` scroll, `0` the whole history. Under each plot: every series' last
value, ↓min and ↑max in view.

Samples: `[` `]` step back and forth through every grid the run kept (past
the last: the newest again), `g` full screen.

## Chain
- `f` forward chain q(x_t | x_{t-1}) of a data image, `b` backward chain
  (ancestral sampling from the run's checkpoint, or the oracle x̂_0 = x_0).
- `←` `→` one step, `[` `]` ten steps, `home` `end`, click the scrubber.
- `space` play / pause, `+` `-` speed.
- `n` `p` next / previous data image (2-D: other traced points), `i` pick an image index or file,
  `s` a new seed, `o` oracle / model in the backward chain.

## 2-D points (gmm, gmm-grid, moons, swissroll)
The monitor's samples are a scatter (braille dots, brighter where they crowd) over
the held-out points (shading); the -ELBO is in bits/dim of a density (it can be
negative), with a mixture's exact references: the optimal denoiser's -ELBO and the
true -log p. The chain screen moves the whole cloud: left x_t over q(x_t) (exact
for a mixture, else a histogram) with the paths of six points (`n` `p` others),
right the x̂_0 field (each grid point x_t to x̂_0(x_t, t)); `o` the run's model or
the optimal denoiser E[x_0 | x_t] of a mixture, `k` fewer steps, `d` DDIM.

The backward chain shows x_t, the prediction x̂_0(x_t, t), the posterior mean of
x_{t-1} and its variance sigma_q^2(t), and the denoising-matching term
KL(q(x_{t-1}|x_t, x_0) || p(x_{t-1}|x_t)) at that x_t, with x_0 the true image for
the oracle (so the term is 0) and the chain's own final sample for a model.
"""


# The app's keys a newcomer needs most, first in every screen's bindings: the footer lists a screen's keys in
# their order and an 80-column one cuts the end of the list, where the app's own would come.
FIRST_KEYS = [Binding("q", "app.quit_app", "quit"), Binding("question_mark", "app.help", "help")]


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-box"):
            yield Markdown(HELP)

    def action_dismiss(self) -> None:
        self.dismiss()


class QuitScreen(ModalScreen[str]):
    """Training is running: stop it, detach from it, or stay."""

    BINDINGS = [Binding("s", "choose('stop')", "stop"), Binding("d", "choose('detach')", "detach"),
                Binding("escape,c", "choose('cancel')", "cancel")]

    def __init__(self, pid: int | None, run_dir: str):
        super().__init__()
        self.pid, self.run_dir = pid, run_dir

    def compose(self) -> ComposeResult:
        with Grid(id="quit-box"):
            yield Label(f"Training is still running (pid {self.pid}).\n"
                        f"[b]s[/]top it (it saves a checkpoint and samples first), "
                        f"[b]d[/]etach (it goes on; reattach with: vdm tui {self.run_dir}), "
                        f"or [b]c[/]ancel.", id="quit-question")
            yield Button("Stop training", variant="error", id="stop")
            yield Button("Detach", variant="primary", id="detach")
            yield Button("Cancel", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#detach", Button).focus()  # Enter detaches: the safe answer

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_choose(self, what: str) -> None:
        self.dismiss(what)


class StopScreen(ModalScreen[str]):
    """Stop a run this monitor did not start (SIGINT to the trainer's pid), or not."""

    BINDINGS = [Binding("s", "choose('stop')", "stop"), Binding("escape,c", "choose('cancel')", "cancel")]

    def __init__(self, pid: int, run_dir: str):
        super().__init__()
        self.pid, self.run_dir = pid, run_dir

    def compose(self) -> ComposeResult:
        with Grid(id="stop-box"):
            yield Label(f"Stop the training of {self.run_dir} (pid {self.pid})?\n"
                        f"It gets SIGINT: it saves a checkpoint, evaluates and writes samples, then exits. "
                        f"[b]s[/]top or [b]c[/]ancel.", id="stop-question")
            yield Button("Stop training", variant="error", id="stop")
            yield Button("Cancel", variant="primary", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()  # Enter cancels

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id)

    def action_choose(self, what: str) -> None:
        self.dismiss(what)


class PickImageScreen(ModalScreen[str | None]):
    BINDINGS = [Binding("escape", "cancel", "cancel")]

    def compose(self) -> ComposeResult:
        with Vertical(id="pick-box"):
            yield Label("Data image: an index into the test split, or an image file path")
            yield Input(placeholder="e.g. 17 or photo.png", id="pick-input")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
