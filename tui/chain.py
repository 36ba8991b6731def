"""The chain screen: step through the forward chain x_0 -> x_T or a backward (sampling) chain.

Chains are computed once in a thread worker (tui.chain_data, all vdm); stepping then
only looks up a frame and the schedule's numbers at t, and the rendered strips of
frames already seen are cached by HalfBlockImage.
"""

from __future__ import annotations

import numpy as np
from rich.markup import escape
from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.css.query import NoMatches
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Footer, ProgressBar
from textual.worker import get_current_worker

from tui.chain_data import BackwardChain, ForwardChain, fmt
from tui.dialogs import FIRST_KEYS, PickImageScreen
from tui.image import HalfBlockImage
from tui.plot import Plot, Series
from tui.readout import Readout

SPEEDS = (1, 2, 5, 10, 20, 30, 60)  # frames per second
STEP_CHOICES = (None, 100, 50, 20, 10)  # K of the backward chain, `k` cycles: None is every step (K = T)
SAMPLERS = ("ancestral", "ddim")  # vdm.sample.SAMPLERS, `d` switches


class Scrubber(Widget):
    """A one-line bar of the position 0..total; click or drag to seek."""

    DEFAULT_CSS = "Scrubber { height: 1; }"
    position = reactive(0)
    total = reactive(1)

    class Seek(Message):
        def __init__(self, position: int):
            super().__init__()
            self.position = position

    def render(self) -> Text:
        w = max(self.size.width, 2)
        frac = self.position / self.total if self.total else 0.0
        head = min(int(round(frac * (w - 1))), w - 1)
        t = Text()
        t.append("━" * head, "bold cyan")
        t.append("●", "bold white")
        t.append("─" * (w - head - 1), "grey42")
        return t

    def _seek(self, x: int) -> None:
        w = max(self.size.width - 1, 1)
        self.post_message(self.Seek(int(round(min(max(x, 0), w) / w * self.total))))

    def on_mouse_down(self, event: events.MouseDown) -> None:
        self.capture_mouse()
        self._seek(event.x)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        if event.button:
            self._seek(event.x)

    def on_mouse_up(self, event: events.MouseUp) -> None:
        self.release_mouse()


class ChainReady(Message):
    def __init__(self, chain, error: str = ""):
        super().__init__()
        self.chain, self.error = chain, error


class ChainProgress(Message):
    def __init__(self, done: int, total: int):
        super().__init__()
        self.done, self.total = done, total


class ChainScreen(Screen):
    BINDINGS = [
        *FIRST_KEYS,
        Binding("left", "step(-1)", "t-1", show=False),
        Binding("right", "step(1)", "t+1", show=False),
        Binding("left_square_bracket", "step(-10)", "-10", show=False),
        Binding("right_square_bracket", "step(10)", "+10", show=False),
        Binding("home", "jump(0)", "start", show=False),
        Binding("end", "jump(-1)", "end", show=False),
        Binding("space", "play", "play/pause"),
        Binding("plus,equals_sign", "speed(1)", "faster", show=False),
        Binding("minus", "speed(-1)", "slower", show=False),
        Binding("f", "mode('forward')", "forward"),
        Binding("b", "mode('backward')", "backward"),
        Binding("n", "image(1)", "next image"),
        Binding("p", "image(-1)", "prev", show=False),
        Binding("i", "pick", "pick image", show=False),
        Binding("s", "seed", "new seed"),
        Binding("o", "oracle", "oracle/model"),
        Binding("k", "steps", "sampling steps", show=False),  # named in the backward chain's info box
        Binding("d", "sampler", "ancestral/DDIM", show=False),
    ]

    def __init__(self, source):
        super().__init__()
        self.source = source  # tui.app.ChainSource: data, schedule, checkpoint
        self.mode = "forward"
        self.chains: dict[str, ForwardChain | BackwardChain | None] = {"forward": None, "backward": None}
        self.pos = {"forward": 0, "backward": 0}  # steps taken along the chain (backward: T - t)
        self.fps_i = 3
        self.playing = None
        self.seed = source.seed
        self.use_oracle = not source.has_model
        self.steps: int | None = None  # K of the backward chain (None: every step)
        self.sampler = "ancestral"
        self._computing: str | None = None
        self.prerendered = False  # every frame of the shown chain is drawn ahead, for this size

    def compose(self) -> ComposeResult:
        yield Readout(id="chain-title")
        with ContentSwitcher(initial="forward-view", id="chain-body"):
            with Horizontal(id="forward-view"):
                yield HalfBlockImage(id="fwd-image")
                with Vertical(id="fwd-side"):
                    yield Readout(id="fwd-info")
                    yield Plot(id="fwd-plot")
            with Vertical(id="backward-view"):
                with Horizontal(id="bwd-images"):
                    for name, title in (("x", "x_t"), ("x0", "x̂_0(x_t, t)"), ("mean", "posterior mean")):
                        img = HalfBlockImage(id=f"bwd-{name}", classes="bwd-image")
                        img.border_title = title
                        yield img
                yield Readout(id="bwd-info")
        yield ProgressBar(total=100, show_eta=False, id="chain-progress")
        yield Scrubber(id="scrubber")
        yield Readout(id="scrub-text")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#chain-progress").display = False
        self._mounted()
        self.compute()

    def _mounted(self) -> None:
        """What a screen of this kind sets up once its widgets are there (a subclass with other widgets
        overrides this, not on_mount: Textual calls the handlers of every class in the MRO)."""
        self.query_one("#fwd-image").border_title = "x_t"
        self.query_one("#fwd-plot").border_title = "schedule"

    def on_screen_resume(self) -> None:
        """Shown again: when the app has another source now (a run opened from the run list), take it up."""
        src = getattr(self.app, "source", None)
        if src is None or src is self.source:
            return
        self.source = src
        self.seed, self.use_oracle = src.seed, not src.has_model
        self.pos = {"forward": 0, "backward": 0}
        self._recompute_all()

    # -- computing the chains -------------------------------------------------------
    def compute(self) -> None:
        """Start the worker for the current mode's chain (a new one replaces a running one)."""
        self.chains[self.mode] = None
        self._computing = self.mode
        bar = self.query_one("#chain-progress", ProgressBar)
        bar.update(total=100, progress=0)
        bar.display = True
        self.show()
        self._title("computing …")
        self._compute(self.mode, self.seed, self.use_oracle, self.steps, self.sampler)

    @work(thread=True, exclusive=True, group="chain")
    def _compute(self, mode: str, seed: int, oracle: bool, steps: int | None, sampler: str) -> None:
        from tui import chain_data as chains

        try:
            src = self.source
            image, label = src.image()
            if mode == "forward":
                chain = chains.forward(src.schedule(), image, seed, label)
            else:
                den = None if oracle else src.denoiser()
                schedule = den.schedule if den is not None else src.schedule()
                what = f"oracle on {label}" if den is None else f"model {src.checkpoint_label}"
                K = None if steps is None or steps >= schedule.T else steps  # a K above the run's T is every step
                chain = chains.backward(den, schedule, seed, image if den is None else None, what, steps=K, sampler=sampler,
                                        progress=lambda d, n: self.post_message(ChainProgress(d, n)) if d % 10 == 0 or d == n else None)
        except (ValueError, OSError) as e:
            self.post_message(ChainReady(None, str(e)))
            return
        except Exception as e:  # anything else (a schedule that cannot be built): a sentence, never "computing" forever
            self.post_message(ChainReady(None, f"the {mode} chain failed: {type(e).__name__}: {e}"))
            return
        if not get_current_worker().is_cancelled:  # a newer request (seed, image, source, K) replaced this one
            self.post_message(ChainReady(chain))

    def on_chain_progress(self, m: ChainProgress) -> None:
        self.query_one("#chain-progress", ProgressBar).update(total=m.total, progress=m.done)

    def on_chain_ready(self, m: ChainReady) -> None:
        self.query_one("#chain-progress").display = False
        self._computing = None
        if m.error:
            self.notify(m.error, severity="error", timeout=8)
            self._failed(m.error)
            return
        self._ready(m.chain)

    def _failed(self, error: str) -> None:
        """A chain could not be made: fall back to one that can (the oracle, the constant schedule)."""
        if self.mode == "backward" and not self.use_oracle:
            self.use_oracle = True  # keep working: fall back to the oracle
            self.notify("showing the oracle chain instead (x̂_0 = the true x_0).")
            self.compute()
        elif not getattr(self.source, "fallback_schedule", True):
            self.source.fallback_schedule = True  # the run's schedule failed: the constant one for T
            self.notify(f"showing the chain of the constant schedule, T = {self.source.T}, instead.")
            self.compute()
        else:
            self.query_one("#scrub-text", Readout).set(f"no chain: {error}")

    def _ready(self, chain) -> None:
        """A chain was computed: keep it and show it."""
        kind = "forward" if isinstance(chain, ForwardChain) else "backward"
        self.chains[kind] = chain
        self.pos[kind] = min(self.pos[kind], chain.K)
        self._restore_t(kind, chain)
        if kind == "forward":
            self._plot_schedule(chain.table)
        self.show()

    def _plot_schedule(self, tab) -> None:
        """The schedule plot, x in steps 0..T. A learned schedule: its log SNR(t) = -gamma(t) from
        vdm.continuous.snr_curve at x = T t (the curve it was trained as, between the discrete steps
        too), named with its endpoints. Any other kind: signal √ᾱ_t and noise √(1-ᾱ_t) per step."""
        import numpy as np

        plot = self.query_one("#fwd-plot", Plot)
        if tab.curve is not None:
            t, log_snr = tab.curve
            g0, g1 = tab.gamma_ends
            plot.border_title = "log SNR(t) = -γ(t), learned"
            plot.border_subtitle = f"[yellow]━ γ_min {g0:.2f} … γ_max {g1:.2f}[/]"
            plot.set_series([Series("log SNR", t * tab.T, log_snr, "yellow")], x_range=(0, tab.T))
        else:
            plot.border_title = "schedule"
            plot.border_subtitle = "[cyan]━ √ᾱ_t[/] [magenta]━ √(1-ᾱ_t)[/]"
            ts = np.arange(tab.T + 1, dtype=float)
            plot.set_series([Series("signal", ts, tab.signal, "cyan"), Series("noise", ts, tab.noise, "magenta")],
                            x_range=(0, tab.T))

    def on_resize(self) -> None:
        self._window = (None, None, 0, -1)  # the frames drawn ahead were for the old size
        self.call_after_refresh(self._maybe_prerender)

    @work(thread=True, exclusive=True, group="prerender")
    def _prerender(self) -> None:
        """Draw the frames around t ahead of time, nearest first, as many as the image caches hold."""
        worker = get_current_worker()
        c, mode = self.chain, self.mode
        if c is None:
            return
        try:
            if mode == "forward":
                targets = [(self.query_one("#fwd-image", HalfBlockImage), "f", c.frames)]
            else:
                targets = [(self.query_one(f"#bwd-{n}", HalfBlockImage), n, fr)
                           for n, fr in (("x", c.x), ("x0", c.x0_hat), ("mean", c.mean))]
        except NoMatches:  # the screen was taken down (the app quitting) before this thread began
            return
        now = self.frame()
        # half the cache on each side of the frame shown, so stepping either way finds its frames drawn
        half = max(min(w.frames_that_fit() for w, _, _ in targets) // 2 - 1, 1)
        lo, hi = max(now - half, 0), min(now + half, c.K)
        self._window = (mode, id(c), lo, hi)
        for i in sorted(range(lo, hi + 1), key=lambda i: abs(i - now)):
            for w, name, frames in targets:
                if worker.is_cancelled or self.chain is not c:
                    return
                cw, ch = w.content_size
                if cw > 0 and ch > 0:
                    w.prime(frames[i], (name, id(c), i), cw, ch)
        self.prerendered = True

    def _maybe_prerender(self) -> None:
        """Move the pre-drawn window along when t nears its edge (or the chain or mode changed)."""
        c = self.chain
        if c is None:
            return
        mode, cid, lo, hi = getattr(self, "_window", (None, None, 0, -1))
        i = self.frame()
        margin = max((hi - lo) // 4, 1)
        inside = mode == self.mode and cid == id(c) and (lo == 0 or i >= lo + margin) and (hi == c.K or i <= hi - margin)
        if not inside:
            self.prerendered = False
            self._prerender()

    _keep_t: int | None = None  # the step t a recomputed backward chain opens at (k, d keep the place)

    def _restore_t(self, kind: str, chain) -> None:
        """Open a recomputed backward chain at the step it was left at: the row whose t_i is nearest."""
        if kind == "backward" and self._keep_t is not None:
            i = int(np.abs(np.asarray(chain.steps) - self._keep_t).argmin())
            self.pos[kind] = chain.K - i
            self._keep_t = None

    # -- showing a frame --------------------------------------------------------------
    @property
    def chain(self):
        return self.chains[self.mode]

    def frame(self) -> int:
        """The row of the chain shown: t for the forward chain, i = K - steps taken for the backward one."""
        p = self.pos[self.mode]
        return p if self.mode == "forward" else self.chain.K - p

    def t(self) -> int:
        """The step t shown (the backward chain's t_i)."""
        i = self.frame()
        return i if self.mode == "forward" else int(self.chain.steps[i])

    def _title(self, extra: str = "") -> None:
        c = self.chain
        if self.mode == "forward":
            head = "[b]forward chain[/] q(x_t | x_{t-1})"
        elif self.sampler == "ddim":
            head = "[b]backward chain[/] DDIM x_s = √ᾱ_s x̂_0 + √(1-ᾱ_s) ε̂"
        elif self.steps is None:
            head = "[b]backward chain[/] p(x_{t-1} | x_t) = q(x_{t-1} | x_t, x̂_0)"
        else:
            head = "[b]backward chain[/] p(x_s | x_t) = q(x_s | x_t, x̂_0)"
        if c is not None:
            head += f" · {escape(c.source)} · seed {c.seed} · {c.table.describe}"
        self.query_one("#chain-title", Readout).update(f"{head} {extra}".strip())

    def show(self) -> None:
        c = self.chain
        self._title()
        if c is None:
            self.query_one("#scrub-text", Readout).set("computing the chain …")
            self._show_computing()
            return
        self._show_scrub(c)
        self._show_view(c)
        self._maybe_prerender()

    def _show_computing(self) -> None:
        """While a chain is computed: the image frames stay until the new ones come (they are of the same image)."""

    def _show_scrub(self, c) -> None:
        """The scrubber at the position along the chain, and the line under it: t, play state and speed."""
        scrub = self.query_one(Scrubber)
        T, t = c.T, self.t()
        scrub.total = c.K
        scrub.position = self.pos[self.mode]
        fps = SPEEDS[self.fps_i]
        state = "▶ playing" if self.playing else "❚❚ paused"
        drawn = ""
        if self.playing and getattr(self, "shown_frames", 0) >= 5:
            import time

            rate = self.shown_frames / max(time.monotonic() - self._play_t0, 1e-6)
            if rate < 0.9 * fps:
                drawn = f" (drawing {rate:.0f}/s: frames skipped to keep the speed)"
        where = "" if c.K == T else f" (step {self.pos[self.mode]} of {c.K})"
        self.query_one("#scrub-text", Readout).update(f"t = {t} / {T}{where}   {state} at {fps} steps/s{drawn}")

    def _show_view(self, c) -> None:
        """The frames and numbers of the chain at the position shown."""
        T, t, tab = c.T, self.t(), c.table
        if self.mode == "forward":
            self.query_one("#fwd-image", HalfBlockImage).set_image(c.frames[t], key=("f", id(c), t))
            learned = ""
            if tab.gamma_ends is not None:  # the log SNR line below is -γ(t/T) of the run's learned γ (t = 0 is x_0: ∞)
                learned = f"[b]learned γ[/] γ_min {tab.gamma_ends[0]:.2f}, γ_max {tab.gamma_ends[1]:.2f}\n"
            info = self.query_one("#fwd-info", Readout)
            info.styles.height = 8 if learned else 7
            info.update(
                learned +
                f"[b]t[/] = {t} / {T}\n"
                f"[b]alpha_t[/] = {fmt(float(tab.alpha[t]))}\n"
                f"[b]alpha_bar_t[/] = {fmt(float(tab.alpha_bar[t]))}\n"
                f"[b]SNR(t)[/] = {fmt(float(tab.snr[t]))}\n"
                f"[b]log SNR(t)[/] = {'-γ(t/T) = ' if learned and t > 0 else ''}{fmt(float(tab.log_snr[t]))}\n"
                f"[b]signal[/] √ᾱ_t = {fmt(float(tab.signal[t]))}\n"
                f"[b]noise[/] √(1-ᾱ_t) = {fmt(float(tab.noise[t]))}")
            self.query_one("#fwd-plot", Plot).set_cursor(float(t))
        else:
            self._show_backward(c, self.frame())

    def _show_backward(self, c, i: int) -> None:
        """The three frames of row i and its numbers: t = t_i, the next step s = t_{i-1}, the step's variance and KL."""
        tab, T, t = c.table, c.T, int(c.steps[i])
        for name, frames in (("x", c.x), ("x0", c.x0_hat), ("mean", c.mean)):
            self.query_one(f"#bwd-{name}", HalfBlockImage).set_image(frames[i], key=(name, id(c), i))
        every = c.K == T  # every step: s = t - 1, the notation of the bonus exercise
        s = "t-1" if every else "s"
        self.query_one("#bwd-mean").border_title = f"mean of x_{{{s}}}" if i >= 1 else "x_0"
        ref = "the true x_0 (oracle: exactly 0)" if c.oracle else "the chain's final x_0"
        if i >= 2 and c.sampler == "ddim":
            match = "∞: DDIM's step is deterministic (p(x_s|x_t) is a point mass)"
        elif i >= 2:
            match = f"{fmt(float(c.matching[i]))} nats = {fmt(float(c.matching_bpd[i]))} bits/dim, with x_0 = {ref}"
        elif i == 1:
            match = f"- (t = {t} is the {'reconstruction term' if t == 1 else 'last step'})"
        else:
            match = "- (x_0: the sample)"
        nxt = "" if every or i == 0 else f" → s = {int(c.steps[i - 1])}"
        var = "posterior variance sigma_q^2(t)" if every and c.sampler == "ancestral" else \
            f"variance of x_{s} given x_t" if i >= 1 else "variance"
        K = f"all {T}" if every else f"{c.K} of {T}"
        self.query_one("#bwd-info", Readout).update(
            f"[b]t[/] = {t} / {T}{nxt}   [b]alpha_bar_t[/] = {fmt(float(tab.alpha_bar[t]))}   "
            f"[b]SNR(t)[/] = {fmt(float(tab.snr[t]))}\n"
            f"[b]{var}[/] = {fmt(float(c.var[i]))}   std = {fmt(float(c.var[i]) ** 0.5)}\n"
            f"[b]denoising matching[/] KL(q(x_{{{s}}}|x_t, x_0) || p(x_{{{s}}}|x_t)) at this x_t:\n"
            f"  {match}\n"
            f"[b]k[/] steps: {K}   [b]d[/] sampler: {c.sampler}")

    # -- actions ----------------------------------------------------------------------
    def action_step(self, d: int) -> None:
        c = self.chain
        if c is None:
            return
        self.pos[self.mode] = min(max(self.pos[self.mode] + d, 0), c.K)
        self.show()

    def action_jump(self, where: int) -> None:
        c = self.chain
        if c is None:
            return
        self.pos[self.mode] = c.K if where < 0 else 0
        self.show()

    def on_scrubber_seek(self, m: Scrubber.Seek) -> None:
        if self.chain is not None:
            self.pos[self.mode] = min(max(m.position, 0), self.chain.K)
            self.show()

    def action_play(self) -> None:
        if self.playing:
            self.playing.stop()
            self.playing = None
        elif self.chain is not None:
            if self.pos[self.mode] >= self.chain.K:
                self.pos[self.mode] = 0
            self._play_from()
            self.playing = self.set_interval(1 / SPEEDS[self.fps_i], self._advance)
        self.show()

    def _play_from(self) -> None:
        import time

        self._play_t0, self._play_p0 = time.monotonic(), self.pos[self.mode]
        self.shown_frames = 0  # frames actually drawn since, for the label's measured rate

    def _advance(self) -> None:
        """The frame the clock says is due at this speed: when drawing is slower, frames are skipped, not slowed."""
        import time

        c = self.chain
        if c is not None and self.pos[self.mode] < c.K:
            due = self._play_p0 + int((time.monotonic() - self._play_t0) * SPEEDS[self.fps_i])
            self.pos[self.mode] = min(max(due, self.pos[self.mode] + 1), c.K)
            self.shown_frames += 1
        if c is None or self.pos[self.mode] >= c.K:  # the end: stop, and say so
            if self.playing:
                self.playing.stop()
                self.playing = None
        self.show()

    def action_speed(self, d: int) -> None:
        self.fps_i = min(max(self.fps_i + d, 0), len(SPEEDS) - 1)
        if self.playing:
            self.playing.stop()
            self._play_from()
            self.playing = self.set_interval(1 / SPEEDS[self.fps_i], self._advance)
        self.show()

    def action_mode(self, mode: str) -> None:
        if self.playing:
            self.action_play()
        self.mode = mode
        self.query_one(ContentSwitcher).current = f"{mode}-view"
        if self.chain is None and self._computing != mode:
            self.compute()
        else:
            self.show()

    def action_image(self, d: int) -> None:
        try:
            self.source.step_image(d)
        except ValueError as e:
            self.notify(str(e), severity="error")
            return
        self._recompute_all()

    def action_pick(self) -> None:
        def done(value: str | None) -> None:
            if value is None:
                return
            try:
                self.source.pick(value)
            except ValueError as e:
                self.notify(str(e), severity="error")
                return
            self._recompute_all()

        self.app.push_screen(PickImageScreen(), done)

    def action_seed(self) -> None:
        self.seed += 1
        self._recompute_all()

    def action_oracle(self) -> None:
        if not self.source.has_model:
            self.notify("no checkpoint: attach to a run that has one, or pass --checkpoint; the oracle is all there is.")
            return
        self.use_oracle = not self.use_oracle
        self.chains["backward"] = None
        if self.mode == "backward":
            self.compute()

    def action_steps(self) -> None:
        """The next K of STEP_CHOICES that is below the schedule's T (every step after the smallest)."""
        T = next((c.T for c in self.chains.values() if c is not None), self.source.T)  # the chains' own T once known
        choices = [k for k in STEP_CHOICES if k is None or k < T]
        self.steps = choices[(choices.index(self.steps) + 1) % len(choices)] if self.steps in choices else None
        self._backward_changed(f"sampling in {'every step' if self.steps is None else f'{self.steps} steps'} of {T}")

    def action_sampler(self) -> None:
        self.sampler = SAMPLERS[(SAMPLERS.index(self.sampler) + 1) % len(SAMPLERS)]
        self._backward_changed(f"the {self.sampler} sampler")

    def _backward_changed(self, what: str) -> None:
        """A new K or sampler: the backward chain is sampled again (now when it is shown, else when it is next),
        shown at the step t it was at (the nearest step the new chain visits)."""
        self._keep_t = self.t() if self.mode == "backward" and self.chain is not None else None
        self.chains["backward"] = None
        self.pos["backward"] = 0
        if self.mode == "backward":
            self.compute()
        else:
            self.notify(f"{what}: the backward chain (b) samples with it.")

    def _recompute_all(self) -> None:
        self.chains = {"forward": None, "backward": None}
        self.compute()
