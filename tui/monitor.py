"""The monitor screen: a run's metrics, curves, samples and the GPU, live.

A thread worker tails metrics.jsonl (vdm.tailer.MetricsTailer) and folds the
records into a RunState under a lock; it posts a message when something
changed, and the screen redraws from a snapshot. Nothing is re-read: a
million-line log is parsed once, then only the bytes appended since.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path

import numpy as np
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, ProgressBar, Sparkline, Static
from textual.worker import get_current_worker

from tui.gpu import GpuReader
from tui.image import HalfBlockImage
from tui.plot import Plot, Series
from tui.readout import Readout
from tui.run import RunState
from vdm.run import METRICS, is_run
from vdm.tailer import MetricsTailer

TILE, PAD = 32, 1  # vdm.images.grid's tile size and padding in the sample PNGs


def hms(seconds: float | None) -> str:
    if seconds is None:
        return "--:--:--"
    s = int(round(max(seconds, 0)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def sample_crop(img: np.ndarray, width: int, height: int, min_px: int = 12) -> tuple[np.ndarray, int, int]:
    """The top-left k x k samples of a sample grid, k as large as keeps min_px pixels a sample.

    Returns (image, k, samples in the grid); the whole image and k = 0 when its
    layout is not vdm.images.grid's (32-pixel tiles, 1-pixel padding, an integer upscale).
    """
    h, w = img.shape[:2]
    for scale in (1, 2, 3, 4, 6, 8):
        if h % scale or w % scale:
            continue
        hh, ww = h // scale, w // scale
        if (hh - PAD) % (TILE + PAD) or (ww - PAD) % (TILE + PAD):
            continue
        nrow, ncol = (hh - PAD) // (TILE + PAD), (ww - PAD) // (TILE + PAD)
        native = img[::scale, ::scale]
        avail = min(width, 2 * height)
        k = int(np.clip(avail // min_px, 1, min(nrow, ncol)))
        side = PAD + k * (TILE + PAD)
        return native[:side, :side], k, nrow * ncol
    return img, 0, 0


class RunUpdated(Message):
    pass


class SampleLoaded(Message):
    def __init__(self, image: np.ndarray | None, mtime: float, error: str = ""):
        super().__init__()
        self.image, self.mtime, self.error = image, mtime, error


class SamplesScreen(ModalScreen):
    """The newest sample grid, as large as the terminal allows."""

    BINDINGS = [Binding("escape,g,q", "dismiss", "close")]

    def __init__(self, image: np.ndarray):
        super().__init__()
        self.image = image

    def compose(self) -> ComposeResult:
        yield HalfBlockImage(self.image, id="samples-full")

    def action_dismiss(self) -> None:
        self.dismiss()


class MonitorScreen(Screen):
    BINDINGS = [
        Binding("l", "toggle_log", "log scale"),
        Binding("g", "samples", "samples"),
        Binding("r", "reload", "reload"),
    ]

    def __init__(self, run_dir: Path | None, poll_interval: float = 0.5, clock=time.time, gpu_factory=GpuReader,
                 tailer: MetricsTailer | None = None):
        super().__init__()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.poll_interval = poll_interval
        self.clock = clock
        self.gpu_factory = gpu_factory
        self.state = RunState(self.run_dir)
        self.lock = threading.Lock()
        if self.run_dir is None:
            self.tailer = None
        elif tailer is not None and tailer.path == self.run_dir / "metrics.jsonl":
            self.tailer = tailer
        else:
            self.tailer = MetricsTailer(self.run_dir / "metrics.jsonl")
        self.sample_image: np.ndarray | None = None
        self.sample_mtime = 0.0
        self.gpu: GpuReader | None = None
        self.gpu_hist: deque = deque([0.0] * 60, maxlen=60)
        self.log_scale = False
        self._warned_missing = False
        self._drawn_version = -1

    @property
    def bad_lines(self) -> int:
        """Lines skipped since the log was last read from its start."""
        return self.state.bad

    # -- layout -----------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Readout(id="status")
        with Horizontal(id="progress-row"):
            yield ProgressBar(total=None, show_eta=False, id="steps-bar")
            yield Readout(id="progress-text")
        with Horizontal(id="monitor-body"):
            with Vertical(id="monitor-left"):
                yield Plot(id="loss-plot")
                yield Plot(id="bpd-plot")
            with Vertical(id="monitor-right"):
                yield HalfBlockImage(id="samples")
                yield Static("", id="stats")
                with Vertical(id="gpu-panel"):
                    yield Readout(id="gpu-text")
                    yield Sparkline(list(self.gpu_hist), id="gpu-spark")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#loss-plot").border_title = "loss"
        self.query_one("#bpd-plot").border_title = "ELBO bits/dim"
        self.query_one("#samples").border_title = "samples"
        self.query_one("#gpu-panel").border_title = "GPU"
        self.gpu = self.gpu_factory()
        self._update_gpu()
        self.set_interval(2.0, self._update_gpu)
        self.set_interval(1.0, self._tick)
        if self.run_dir is None:
            self.query_one("#status", Readout).update("no run attached: vdm tui RUN_DIR (the chain screen works without one)")
            return
        if not self.run_dir.is_dir():
            self.notify(f"{self.run_dir} does not exist (yet); waiting for a run to appear there.",
                        severity="warning", timeout=8)
        elif not is_run(self.run_dir) and not (self.run_dir / METRICS).exists():
            self.notify(f"{self.run_dir} is not a run directory (no config.json or metrics.jsonl); waiting.",
                        severity="warning", timeout=8)
        self._draw()
        self.tail()

    # -- the tail worker (a thread: parsing a long log must not block the UI) ---
    @work(thread=True, exclusive=True, group="tail")
    def tail(self) -> None:
        worker = get_current_worker()
        tailer = self.tailer
        last_post = 0.0
        # a long log already there (attaching to a big run) is read on other processes first
        batch = tailer.catch_up(cancelled=lambda: worker.is_cancelled)
        while not worker.is_cancelled:
            if batch is None:
                batch = tailer.poll()
            changed = bool(batch.good or batch.bad) or tailer.restarted
            if changed:
                with self.lock:
                    if worker.is_cancelled:
                        break
                    if tailer.restarted:
                        self.state.clear()
                    self.state.add(batch)
            batch = None
            self._check_samples()
            caught_up = tailer.behind == 0
            now = time.monotonic()
            # while catching up on a long log, redraw now and then: each redraw copies and plots every point
            if changed and (caught_up or now - last_post > 1.5):
                self.post_message(RunUpdated())
                last_post = now
            if caught_up:
                time.sleep(self.poll_interval)

    def _check_samples(self) -> None:
        path = self.run_dir / "samples" / "latest.png"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return
        if mtime == self.sample_mtime:
            return
        self.sample_mtime = mtime
        try:
            from PIL import Image

            with Image.open(path) as im:
                img = np.asarray(im.convert("RGB"))
        except Exception as e:  # a PNG of another kind, or unreadable
            self.post_message(SampleLoaded(None, mtime, f"{path} could not be read ({type(e).__name__})."))
            return
        self.post_message(SampleLoaded(img, mtime))

    def on_run_updated(self, message: RunUpdated) -> None:
        self._draw()

    def on_sample_loaded(self, message: SampleLoaded) -> None:
        if message.error:
            self.notify(message.error, severity="warning")
            return
        self.sample_image = message.image
        self._draw_samples()

    def on_resize(self) -> None:
        self._draw_samples()

    # -- drawing ------------------------------------------------------------------
    def _draw(self) -> None:
        with self.lock:
            st = self.state
            version = st.version
            if version != self._drawn_version:
                train = {k: st.column("train", k) for k in ("step", "loss")}
                ev = {k: st.column("eval", k) for k in ("step", "eval_loss", "total", "reconstruction", "prior", "matching")}
                lr = st.last_train.get("lr") if st.last_train else None
                ips = st.last_train.get("images_per_s") if st.last_train else None
                last_eval = st.last_eval
                last_sample = st.last_sample
            records, bad = st.records, st.bad
        if version != self._drawn_version:
            self._drawn_version = version
            x_hi = max(train["step"][-1] if len(train["step"]) else 0, ev["step"][-1] if len(ev["step"]) else 0, 1)
            self.query_one("#loss-plot", Plot).set_series(
                [Series("train", train["step"], train["loss"], "cyan"),
                 Series("held-out", ev["step"], ev["eval_loss"], "magenta")], x_range=(0, x_hi))
            self.query_one("#bpd-plot", Plot).set_series(
                [Series("total", ev["step"], ev["total"], "white"),
                 Series("reconstruction", ev["step"], ev["reconstruction"], "cyan"),
                 Series("matching", ev["step"], ev["matching"], "magenta"),
                 Series("prior", ev["step"], ev["prior"], "yellow")], x_range=(0, x_hi))
            self._set_legends(len(train["step"]))
            lines = [f"lr {lr:.2e}" if lr is not None else "lr -",
                     f"images/s {ips:,.0f}" if ips is not None else "images/s -"]
            if len(train["loss"]):
                lines[0] += f"  loss {train['loss'][-1]:.4f}"
            if last_eval:
                b = last_eval.get("bpd") or {}
                lines[1] += f"  held-out {last_eval.get('eval_loss', float('nan')):.4f}"
                lines.append(f"ELBO {b.get('total', float('nan')):.3f} bpd at step {last_eval.get('step')}")
                lines.append(f" rec {b.get('reconstruction', float('nan')):.3f} + prior {b.get('prior', float('nan')):.4f}")
                lines.append(f" + matching {b.get('matching', float('nan')):.3f}")
            else:
                lines.append("ELBO: after the first epoch")
            lines.append(f"records {records:,}" + (f"  [b red]{bad} bad lines[/]" if bad else ""))
            self.query_one("#stats", Static).update("\n".join(lines))
            if last_sample:
                self.query_one("#samples").border_subtitle = f"step {last_sample.get('step')}"
        self._tick()

    def _set_legends(self, n_train: int) -> None:
        loss = self.query_one("#loss-plot", Plot)
        loss.border_title = "loss" + (" (log)" if self.log_scale else "")
        loss.border_subtitle = "[cyan]━ train[/] [magenta]━ held-out[/]"
        self.query_one("#bpd-plot", Plot).border_subtitle = "[white]━ total[/] [cyan]━ rec[/] [magenta]━ match[/] [yellow]━ prior[/]"

    def _tick(self) -> None:
        """Status line and progress: the clock moves them even when no record arrives."""
        now = self.clock()
        with self.lock:
            st = self.state
            step, total, epoch, epochs = st.step, st.total_steps, st.epoch, st.epochs
            running, end, start, device = st.running, st.end, st.start, st.device
            elapsed, eta = st.elapsed(now), st.eta(now)
        if self.run_dir is None:
            return
        behind, size, ahead = self.tailer.behind, self.tailer.size, self.tailer.reading_ahead
        if ahead:
            state = f"reading metrics.jsonl: {ahead[0] / 2**20:,.0f} MiB on {ahead[1]} processes"
        elif behind > (1 << 22):
            state = f"reading metrics.jsonl {100 * (size - behind) / size:.0f}%"
        elif start is None:
            state = "waiting for metrics.jsonl" if not self.tailer.exists else "waiting for the first record"
        elif end is not None:
            state = f"finished ({end.get('reason')})"
        else:
            state = "[green]training[/]"
        proc = getattr(self.app, "process", None)
        if proc is not None and not proc.running and end is None and start is not None:
            state = "[red]training process gone[/]"
        self.query_one("#status", Readout).update(f"{state} · {device if start else '-'} · [b]{self.run_dir}[/]")
        bar = self.query_one("#steps-bar", ProgressBar)
        if total:
            bar.update(total=total, progress=step)
        ep = f"{epoch:.2f}/{epochs}" if epochs else f"{epoch:.2f}"
        tot = f"/{total:,}" if total else ""
        self.query_one("#progress-text", Readout).update(
            f" step {step:,}{tot} · ep {ep} · {hms(elapsed)} · ETA {hms(eta) if running else '-'}")

    def _draw_samples(self) -> None:
        if self.sample_image is None:
            return
        w = self.query_one("#samples", HalfBlockImage)
        cw, ch = w.content_size
        if cw < 1 or ch < 1:
            return
        img, k, n = sample_crop(self.sample_image, cw, ch)
        w.set_image(img, key=(self.sample_mtime, k, img.shape))
        with self.lock:
            step = self.state.last_sample.get("step") if self.state.last_sample else None
        shown = f"{k * k} of {n}" if k else "all"
        w.border_title = f"samples ({shown})"
        w.border_subtitle = f"step {step}" if step is not None else ""

    def _update_gpu(self) -> None:
        text = self.query_one("#gpu-text", Readout)
        spark = self.query_one("#gpu-spark", Sparkline)
        readings = self.gpu.read() if self.gpu else []
        if not readings:
            reason = self.gpu.reason if self.gpu else ""
            text.update(f"[b]CPU only[/]\n{reason}")
            spark.display = False
            return
        g = readings[0]
        self.gpu_hist.append(g.util or 0.0)
        parts = [f"[b]{g.name}[/]" + (f" (+{len(readings) - 1})" if len(readings) > 1 else "")]
        util = f"{g.util:.0f}%" if g.util is not None else "-"
        mem = f"{g.mem_used / 2**30:.1f}/{g.mem_total / 2**30:.0f} GiB" if g.mem_used is not None else "-"
        temp = f"{g.temp:.0f}°C" if g.temp is not None else "-"
        power = f"{g.power:.0f} W" if g.power is not None else "-"
        parts.append(f"util {util} · mem {mem}")
        parts.append(f"{temp} · {power}")
        text.update("\n".join(parts))
        spark.display = True
        spark.data = list(self.gpu_hist)

    # -- actions ------------------------------------------------------------------
    def action_toggle_log(self) -> None:
        self.log_scale = not self.log_scale
        self.query_one("#loss-plot", Plot).set_log(self.log_scale)
        self._set_legends(0)

    def action_samples(self) -> None:
        if self.sample_image is None:
            self.notify("no sample grid yet: the run writes one after each epoch.")
            return
        self.app.push_screen(SamplesScreen(self.sample_image))

    def action_reload(self) -> None:
        if self.tailer is None:
            return
        self.workers.cancel_group(self, "tail")
        with self.lock:
            self.tailer = MetricsTailer(self.run_dir / "metrics.jsonl")
            self.state.clear()
            self.sample_mtime = 0.0
        self._drawn_version = -1
        self._draw()
        self.tail()

    def on_unmount(self) -> None:
        if self.gpu:
            self.gpu.close()
