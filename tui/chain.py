"""The chain screen: step through the forward chain x_0 -> x_T or a backward (sampling) chain.

Chains are computed once in a thread worker (tui.chains, all vdm); stepping then
only looks up a frame and the schedule's numbers at t, and the rendered strips of
frames already seen are cached by HalfBlockImage.
"""

from __future__ import annotations

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Footer, ProgressBar
from textual.worker import get_current_worker

from tui.chains import BackwardChain, ForwardChain, fmt
from tui.dialogs import PickImageScreen
from tui.image import HalfBlockImage
from tui.plot import Plot, Series
from tui.readout import Readout

SPEEDS = (1, 2, 5, 10, 20, 30, 60)  # frames per second


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
        self.query_one("#fwd-image").border_title = "x_t"
        self.query_one("#fwd-plot").border_title = "schedule"
        self.query_one("#fwd-plot").border_subtitle = "[cyan]━ √ᾱ_t[/] [magenta]━ √(1-ᾱ_t)[/]"
        self.query_one("#chain-progress").display = False
        self.compute()

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
        self._compute(self.mode, self.seed, self.use_oracle)

    @work(thread=True, exclusive=True, group="chain")
    def _compute(self, mode: str, seed: int, oracle: bool) -> None:
        from tui import chains

        try:
            src = self.source
            image, label = src.image()
            if mode == "forward":
                chain = chains.forward(src.schedule(), image, seed, label)
            else:
                den = None if oracle else src.denoiser()
                schedule = den.schedule if den is not None else src.schedule()
                what = f"oracle on {label}" if den is None else f"model {src.checkpoint_label}"
                chain = chains.backward(den, schedule, seed, image if den is None else None, what,
                                        progress=lambda d, n: self.post_message(ChainProgress(d, n)) if d % 10 == 0 or d == n else None)
        except (ValueError, OSError) as e:
            self.post_message(ChainReady(None, str(e)))
            return
        except Exception as e:  # anything else (a schedule that cannot be built): a sentence, never "computing" forever
            self.post_message(ChainReady(None, f"the {mode} chain failed: {type(e).__name__}: {e}"))
            return
        self.post_message(ChainReady(chain))

    def on_chain_progress(self, m: ChainProgress) -> None:
        self.query_one("#chain-progress", ProgressBar).update(total=m.total, progress=m.done)

    def on_chain_ready(self, m: ChainReady) -> None:
        self.query_one("#chain-progress").display = False
        self._computing = None
        if m.error:
            self.notify(m.error, severity="error", timeout=8)
            if self.mode == "backward" and not self.use_oracle:
                self.use_oracle = True  # keep working: fall back to the oracle
                self.notify("showing the oracle chain instead (x̂_0 = the true x_0).")
                self.compute()
            elif not getattr(self.source, "fallback_schedule", True):
                self.source.fallback_schedule = True  # the run's schedule failed: the constant one for T
                self.notify(f"showing the chain of the constant schedule, T = {self.source.T}, instead.")
                self.compute()
            else:
                self.query_one("#scrub-text", Readout).set(f"no chain: {m.error}")
            return
        chain = m.chain
        kind = "forward" if isinstance(chain, ForwardChain) else "backward"
        self.chains[kind] = chain
        self.pos[kind] = min(self.pos[kind], chain.T)
        if kind == "forward":
            tab = chain.table
            ts = __import__("numpy").arange(tab.T + 1, dtype=float)
            self.query_one("#fwd-plot", Plot).set_series(
                [Series("signal", ts, tab.signal, "cyan"), Series("noise", ts, tab.noise, "magenta")], x_range=(0, tab.T))
        self.show()

    def on_resize(self) -> None:
        self._window = (None, None, 0, -1)
        self.call_after_refresh(self._maybe_prerender)

    @work(thread=True, exclusive=True, group="prerender")
    def _prerender(self) -> None:
        """Draw the frames around t ahead of time, nearest first, as many as the image caches hold."""
        worker = get_current_worker()
        c, mode = self.chain, self.mode
        if c is None:
            return
        if mode == "forward":
            targets = [(self.query_one("#fwd-image", HalfBlockImage), "f", c.frames)]
        else:
            targets = [(self.query_one(f"#bwd-{n}", HalfBlockImage), n, fr)
                       for n, fr in (("x", c.x), ("x0", c.x0_hat), ("mean", c.mean))]
        now = self.t()
        # half the cache on each side of t, so stepping either way finds its frames drawn
        half = max(min(w.frames_that_fit() for w, _, _ in targets) // 2 - 1, 1)
        lo, hi = max(now - half, 0), min(now + half, c.T)
        self._window = (mode, id(c), lo, hi)
        for t in sorted(range(lo, hi + 1), key=lambda t: abs(t - now)):
            for w, name, frames in targets:
                if worker.is_cancelled or self.chain is not c:
                    return
                cw, ch = w.content_size
                if cw > 0 and ch > 0:
                    w.prime(frames[t], (name, id(c), t), cw, ch)
        self.prerendered = True

    def _maybe_prerender(self) -> None:
        """Move the pre-drawn window along when t nears its edge (or the chain or mode changed)."""
        c = self.chain
        if c is None:
            return
        mode, cid, lo, hi = getattr(self, "_window", (None, None, 0, -1))
        t = self.t()
        margin = max((hi - lo) // 4, 1)
        inside = mode == self.mode and cid == id(c) and (lo == 0 or t >= lo + margin) and (hi == c.T or t <= hi - margin)
        if not inside:
            self.prerendered = False
            self._prerender()

    # -- showing a frame --------------------------------------------------------------
    @property
    def chain(self):
        return self.chains[self.mode]

    def t(self) -> int:
        c = self.chain
        p = self.pos[self.mode]
        return p if self.mode == "forward" else c.T - p

    def _title(self, extra: str = "") -> None:
        c = self.chain
        if self.mode == "forward":
            head = "[b]forward chain[/] q(x_t | x_{t-1})"
        else:
            head = "[b]backward chain[/] p(x_{t-1} | x_t) = q(x_{t-1} | x_t, x̂_0)"
        if c is not None:
            head += f" · {c.source} · seed {c.seed} · {c.table.describe}"
        self.query_one("#chain-title", Readout).update(f"{head} {extra}".strip())

    def show(self) -> None:
        c = self.chain
        self._title()
        scrub = self.query_one(Scrubber)
        if c is None:
            self.query_one("#scrub-text", Readout).set("computing the chain …")
            return
        T = c.T
        t = self.t()
        scrub.total = T
        scrub.position = self.pos[self.mode]
        tab = c.table
        fps = SPEEDS[self.fps_i]
        state = "▶ playing" if self.playing else "❚❚ paused"
        drawn = ""
        if self.playing and getattr(self, "shown_frames", 0) >= 5:
            import time

            rate = self.shown_frames / max(time.monotonic() - self._play_t0, 1e-6)
            if rate < 0.9 * fps:
                drawn = f" (drawing {rate:.0f}/s: frames skipped to keep the speed)"
        self.query_one("#scrub-text", Readout).update(f"t = {t} / {T}   {state} at {fps} steps/s{drawn}")
        if self.mode == "forward":
            self.query_one("#fwd-image", HalfBlockImage).set_image(c.frames[t], key=("f", id(c), t))
            self.query_one("#fwd-info", Readout).update(
                f"[b]t[/] = {t} / {T}\n"
                f"[b]alpha_t[/] = {fmt(float(tab.alpha[t]))}\n"
                f"[b]alpha_bar_t[/] = {fmt(float(tab.alpha_bar[t]))}\n"
                f"[b]SNR(t)[/] = {fmt(float(tab.snr[t]))}\n"
                f"[b]log SNR(t)[/] = {fmt(float(tab.log_snr[t]))}\n"
                f"[b]signal[/] √ᾱ_t = {fmt(float(tab.signal[t]))}\n"
                f"[b]noise[/] √(1-ᾱ_t) = {fmt(float(tab.noise[t]))}")
            self.query_one("#fwd-plot", Plot).set_cursor(float(t))
        else:
            for name, frames in (("x", c.x), ("x0", c.x0_hat), ("mean", c.mean)):
                self.query_one(f"#bwd-{name}", HalfBlockImage).set_image(frames[t], key=(name, id(c), t))
            self.query_one("#bwd-mean").border_title = "mean of x_{t-1}" if t >= 1 else "x_0"
            if t >= 2:
                match = f"{fmt(float(c.matching[t]))} nats = {fmt(float(c.matching_bpd[t]))} bits/dim"
            elif t == 1:
                match = "- (t = 1 is the reconstruction term)"
            else:
                match = "- (x_0: the sample)"
            ref = "the true x_0 (oracle: exactly 0)" if c.oracle else "the chain's final x_0"
            self.query_one("#bwd-info", Readout).update(
                f"[b]t[/] = {t} / {T}   [b]alpha_bar_t[/] = {fmt(float(tab.alpha_bar[t]))}   "
                f"[b]SNR(t)[/] = {fmt(float(tab.snr[t]))}\n"
                f"[b]posterior variance[/] sigma_q^2(t) = {fmt(float(c.var[t]))}   "
                f"std = {fmt(float(c.var[t]) ** 0.5)}\n"
                f"[b]denoising matching[/] KL(q(x_{{t-1}}|x_t, x_0) || p(x_{{t-1}}|x_t)) at this x_t:\n"
                f"  {match}, with x_0 = {ref}")
        self._maybe_prerender()

    # -- actions ----------------------------------------------------------------------
    def action_step(self, d: int) -> None:
        c = self.chain
        if c is None:
            return
        self.pos[self.mode] = min(max(self.pos[self.mode] + d, 0), c.T)
        self.show()

    def action_jump(self, where: int) -> None:
        c = self.chain
        if c is None:
            return
        self.pos[self.mode] = c.T if where < 0 else 0
        self.show()

    def on_scrubber_seek(self, m: Scrubber.Seek) -> None:
        if self.chain is not None:
            self.pos[self.mode] = min(max(m.position, 0), self.chain.T)
            self.show()

    def action_play(self) -> None:
        if self.playing:
            self.playing.stop()
            self.playing = None
        elif self.chain is not None:
            if self.pos[self.mode] >= self.chain.T:
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
        if c is not None and self.pos[self.mode] < c.T:
            due = self._play_p0 + int((time.monotonic() - self._play_t0) * SPEEDS[self.fps_i])
            self.pos[self.mode] = min(max(due, self.pos[self.mode] + 1), c.T)
            self.shown_frames += 1
        if c is None or self.pos[self.mode] >= c.T:  # the end: stop, and say so
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

    def _recompute_all(self) -> None:
        self.chains = {"forward": None, "backward": None}
        self.compute()
