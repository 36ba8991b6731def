"""The monitor screen: a run's metrics, curves, samples and the GPU, live.

A thread worker tails metrics.jsonl (vdm.tailer.MetricsTailer) and folds the
records into a RunState under a lock; it posts a message when something
changed, and the screen redraws from a snapshot. Nothing is re-read: a
million-line log is parsed once, then only the bytes appended since.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer, ProgressBar
from textual.worker import get_current_worker

from tui.cloud import PointSamples
from tui.dialogs import FIRST_KEYS, StopScreen
from tui.gpu import GpuReader
from tui.image import HalfBlockImage, grid_tiles
from tui.panels import Elbo, RunNumbers, RunStats, RunStatus, StatusFacts
from tui.proc import ProcUsage
from tui.plot import (CURVE_BINDINGS, DASHES, REFERENCE_GREY, CurveKeys, Plot, Series, View, duration, ema, x_of,
                      x_span)
from tui.readout import Readout
from tui.run_state import RunState, hms, num, own_objective, pid_alive
from vdm.config import is_points
from vdm.config import CLOCK_FIRST_S, UNIFORM_BPD
from vdm.metrics import valid
from vdm.report import share_error
from vdm.run import CONFIG, METRICS, is_run, metrics_path, read_grid, read_points, sample_grids, sample_path
from vdm.tailer import MetricsTailer

BLOCKS = " ▁▂▃▄▅▆▇█"
# the -ELBO plot's references of a Gaussian-mixture run (its eval records' "reference", bits/dim of a density)
REFERENCES = (("optimal", "optimal denoiser", "green"), ("nll", "true -log p", "bright_blue"))


def exit_reason(code: int | None) -> str:
    """Why a trainer process ended, from its exit status: 'killed by SIGKILL' (a signal), 'exit status 1'."""
    import signal

    if code is None:
        return "the training process exited"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"the training process exited with status {code}"


# held-out shapes images the shapes plot's reference line is measured on (vdm.score's classifier, once a process)
HELD_OUT_SHAPES = 512


@lru_cache(maxsize=2)
def held_out_shape_share(n: int = HELD_OUT_SHAPES) -> float:
    """The share of n held-out shapes images that the shapes classifier gives one shape class over 0.9
    (vdm.score.shape_share): what the cheap score's tiles holding a shape reach for real data. Seconds of CPU."""
    from vdm.score import features, held_out, shape_share, shapes_space

    x, _ = held_out("shapes", n)
    _, probs = features(shapes_space(), x)
    return shape_share(probs)


def sample_scores(records) -> list[tuple[float, float, float, float]]:
    """(step, time, cheap_shapes, cheap_n) of each sample record carrying vdm.score.cheap_score's share of tiles
    holding a shape (runs of the shapes data); time NaN where the record has none."""
    out = []
    for r in records:
        if r.get("kind") != "sample" or not valid(r):
            continue
        step, share, n = num(r.get("step")), num(r.get("cheap_shapes")), num(r.get("cheap_n"))
        if step is None or share is None or not 0 <= share <= 1 or not n or n < 1:
            continue
        t = num(r.get("time"))
        out.append((step, t if t is not None else float("nan"), share, n))
    return out


GPU_INTERVAL_S = 2.0  # seconds between the GPU panel's readings: NVML is cheap, a sparkline a minute long


def spark_text(values) -> str:
    """A sparkline on a fixed 0-100 scale (a flat 3 % is not drawn as a full bar), one character a reading."""
    return "".join(BLOCKS[min(max(int(round(v / 100 * 8)), 0), 8)] for v in values)


class RunUpdated(Message):
    pass


class SampleLoaded(Message):
    """The newest samples: an image grid (image), or a 2-D run's points [N, 2] (points)."""

    def __init__(self, image: np.ndarray | None, mtime: float, error: str = "", grids=None, points=None):
        super().__init__()
        self.image, self.mtime, self.error, self.grids, self.points = image, mtime, error, grids, points


class ShapesReference(Message):
    """The held-out share of tiles holding a shape (held_out_shape_share), of n images, or why it is missing."""

    def __init__(self, share: float | None, n: int, error: str = ""):
        super().__init__()
        self.share, self.n, self.error = share, n, error


class HeldOutLoaded(Message):
    """A 2-D run's held-out points and the view every scatter shows (vdm.images.POINT_VIEW)."""

    def __init__(self, points: np.ndarray | None, view: float, error: str = ""):
        super().__init__()
        self.points, self.view, self.error = points, view, error


def show_grid(widget: HalfBlockImage, image: np.ndarray, key) -> None:
    """A sample grid in a widget: its tiles re-laid out to fill it, separated; any other image as it is."""
    tiles = grid_tiles(image)
    if tiles is None:
        widget.set_image(image, key=key)
        widget.border_title = "samples"
    else:
        widget.set_tiles(tiles, key=key)


class SamplesScreen(ModalScreen):
    """The sample grid shown on the monitor, as large as the terminal allows; [ ] step through the others."""

    BINDINGS = [Binding("escape,g,q", "dismiss", "close"),
                Binding("left_square_bracket", "grid(-1)", "earlier samples"),
                Binding("right_square_bracket", "grid(1)", "later samples")]

    def __init__(self, monitor: "MonitorScreen"):
        super().__init__()
        self.monitor = monitor

    def compose(self) -> ComposeResult:
        yield PointSamples(id="samples-full") if self.monitor.points else HalfBlockImage(id="samples-full")
        yield Readout(id="samples-full-label")

    def on_mount(self) -> None:
        self.show()

    def show(self) -> None:
        if self.monitor.points:
            points, label = self.monitor.shown_points()
            w = self.query_one("#samples-full", PointSamples)
            small = self.monitor.query_one("#point-samples", PointSamples)
            w.view, w.reference = small.view, small.reference
            w.samples, w.where = points, label
        else:
            image, key, label = self.monitor.shown_grid()
            w = self.query_one("#samples-full", HalfBlockImage)
            if image is not None:
                show_grid(w, image, key)
            w.border_subtitle = label
        self.query_one("#samples-full-label", Readout).update(f"{label} · escape: back")

    def action_grid(self, d: int) -> None:
        self.monitor.action_grid(d)
        self.show()

    def action_dismiss(self) -> None:
        self.dismiss()


class MonitorScreen(CurveKeys, Screen):
    BINDINGS = [
        *FIRST_KEYS,
        Binding("2", "app.switch_mode('chain')", "chain"),
        Binding("l", "toggle_log", "log scale"),
        *CURVE_BINDINGS,
        Binding("g", "samples", "samples"),
        Binding("left_square_bracket", "grid(-1)", "samples ◀", show=False),
        Binding("right_square_bracket", "grid(1)", "samples ▶", show=False),
        Binding("r", "reload", "reload"),
        Binding("x", "stop_run", "stop run"),
        Binding("escape", "back", "back to runs", show=False),
    ]

    def __init__(self, run_dir: Path | None, poll_interval: float = 0.5, clock=time.time, gpu_factory=GpuReader,
                 tailer: MetricsTailer | None = None, gpu_interval: float = GPU_INTERVAL_S):
        super().__init__()
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.poll_interval = poll_interval
        self.gpu_interval = gpu_interval  # seconds between readings of the GPU panel
        self.clock = clock
        self.gpu_factory = gpu_factory
        self.state = RunState(self.run_dir)
        self.lock = threading.Lock()
        if self.run_dir is None:
            self.tailer = None
        elif tailer is not None and tailer.path == metrics_path(self.run_dir):
            self.tailer = tailer
        else:
            self.tailer = MetricsTailer(metrics_path(self.run_dir))
        self.points = False  # a 2-D run (its start record's config says so): samples are a scatter
        self.sample_points: np.ndarray | None = None  # the newest samples of a 2-D run
        self._points_cache: OrderedDict = OrderedDict()  # step -> points, the last few scrubbed through
        self.sample_image: np.ndarray | None = None
        self.sample_mtime = 0.0
        self.grids: list[tuple[int, Path]] = []  # every samples/step-*.png, by step (listed by the tail worker)
        self.grid_pos: int | None = None  # the grid shown, an index into grids; None: the newest (latest.png)
        self._grid_cache: OrderedDict = OrderedDict()  # path -> image, the last few scrubbed through
        self.gpu: GpuReader | None = None
        self.gpu_hist: deque = deque(maxlen=60)  # real readings only, never padded
        self._proc: ProcUsage | None = None  # the trainer's CPU and memory, read from /proc without a GPU
        self.pid_check = pid_alive
        self.log_scale = False
        self.view = View()  # smoothing, x by step or wall time, zoom and scroll of every plot
        self._cols: dict | None = None  # the columns last copied from the state, for redrawing the curves
        self._scores: list[tuple] = []  # (step, time, cheap_shapes, cheap_n) of each scored sample record
        self.shapes_ref: tuple[float, int] | None = None  # (held-out share of tiles holding a shape, images)
        self._shapes_ref_state = ""  # "", "measuring", or why it could not be measured
        self._warned_missing = False
        self._drawn_version = -1

    @property
    def bad_lines(self) -> int:
        """Lines skipped since the log was last read from its start."""
        return self.state.bad

    # -- layout -----------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield RunStatus(id="status")
        with Horizontal(id="progress-row"):
            yield ProgressBar(total=None, show_eta=False, id="steps-bar")
            yield Readout(id="progress-text")
        with Horizontal(id="monitor-body"):
            with Vertical(id="monitor-left"):
                yield Plot(id="loss-plot", legend=True)
                yield Plot(id="bpd-plot", legend=True)
                yield Plot(id="shapes-plot", legend=True, legend_rows=1)
            with Vertical(id="monitor-right"):
                yield HalfBlockImage(id="samples")
                yield PointSamples(id="point-samples")
                yield RunStats(id="stats")
                with Vertical(id="gpu-panel"):
                    yield Readout(id="gpu-text")
                    yield Readout(id="gpu-spark")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#loss-plot").border_title = "loss"
        self.query_one("#loss-plot", Plot).empty = "no train record yet"
        self.query_one("#bpd-plot", Plot).empty = "after the first evaluation (the end of an epoch)"
        self.query_one("#bpd-plot").border_title = "-ELBO bits/dim"
        self.query_one("#shapes-plot").display = False  # only for runs whose sample records have a cheap score
        self.query_one("#shapes-plot", Plot).y_range = (0.0, 100.0)
        self.query_one("#samples").border_title = "samples"
        self.query_one("#point-samples").display = False
        self.query_one("#gpu-panel").border_title = "GPU"
        self.gpu = self.gpu_factory()
        self._update_gpu()
        self.set_interval(self.gpu_interval, self._update_gpu)
        self.set_interval(1.0, self._tick)
        if self.run_dir is None:
            self.query_one(RunStatus).facts = StatusFacts(
                "none", "no run attached: vdm tui RUN_DIR (the chain screen works without one)")
            return
        if not self.run_dir.is_dir():
            self.notify(f"{self.run_dir} does not exist.", severity="warning", timeout=8)
        elif not is_run(self.run_dir) and not metrics_path(self.run_dir).exists():
            self.notify(f"{self.run_dir} is not a run directory (no {CONFIG} or {METRICS}); waiting.",
                        severity="warning", timeout=8)
        self._draw()
        self.tail()

    def _awaited(self, proc) -> str:
        """What the status line says before the start record: only a run being started is waited for."""
        if proc is not None and proc.running:  # `vdm train`'s monitor: the child is importing, building, loading
            return f"starting the trainer (pid {proc.pid}): waiting for its first record"
        if self.tailer.problem:
            return self.tailer.problem
        if not self.run_dir.is_dir():
            return f"{self.run_dir} does not exist"
        if self.tailer.exists:  # emptied, or the trainer has not flushed its first line
            return "waiting for the first record"
        if is_run(self.run_dir):  # config.json written, the trainer not yet writing
            return "a run being started: waiting for its first record"
        return f"{self.run_dir.name} is not a run (no {CONFIG} or {self.tailer.path.name})"

    @work(thread=True, group="held-out")
    def _load_held_out(self) -> None:
        """A 2-D run's held-out points (vdm.run.Run.test_images) and the scatter's view, off the screen's thread."""
        from vdm.images import POINT_VIEW
        from vdm.run import open_run

        try:
            ref = open_run(self.run_dir).test_images().numpy()
        except (ValueError, OSError) as e:
            self.post_message(HeldOutLoaded(None, POINT_VIEW, f"the held-out points could not be loaded: {e}"))
            return
        self.post_message(HeldOutLoaded(ref, POINT_VIEW))

    def on_held_out_loaded(self, m: HeldOutLoaded) -> None:
        w = self.query_one("#point-samples", PointSamples)
        if m.error:
            self.notify(m.error, severity="warning")
        w.view, w.reference = m.view, m.points

    def _become_points(self) -> None:
        """The run is of 2-D points: the scatter replaces the image grid, and the held-out points load."""
        self.points = True
        self.sample_mtime = 0.0  # look again: latest.npy, not latest.png
        self.query_one("#samples").display = False
        self.query_one("#point-samples").display = True
        self._load_held_out()
        self._draw_samples()

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
                        self._scores = []
                    self.state.add(batch)
                    self._scores += sample_scores(batch.records)
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
        points = self.points
        path = sample_path(self.run_dir, None, ".npy" if points else ".png")
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return
        if mtime == self.sample_mtime:
            return
        self.sample_mtime = mtime
        grids = sample_grids(self.run_dir)  # a new latest sample: a new step-* beside it
        if points:
            cloud = read_points(path)
            self.post_message(SampleLoaded(None, mtime, "" if cloud is not None else f"{path} holds no 2-D points.",
                                           grids, points=cloud))
            return
        try:
            img = read_grid(path)
        except ValueError as e:
            self.post_message(SampleLoaded(None, mtime, str(e), grids))
            return
        self.post_message(SampleLoaded(img, mtime, grids=grids))

    def on_run_updated(self, message: RunUpdated) -> None:
        self._draw()

    def on_sample_loaded(self, message: SampleLoaded) -> None:
        if message.grids is not None:
            self.grids = message.grids
        if message.error:
            self.notify(message.error, severity="warning")
            return
        if message.points is not None:
            self.sample_points = message.points
        else:
            self.sample_image = message.image
        self._draw_samples()

    def on_resize(self) -> None:
        self._draw_samples()
        self.call_after_refresh(self._shapes_legend)

    # -- drawing ------------------------------------------------------------------
    def _draw(self) -> None:
        with self.lock:
            st = self.state
            version = st.version
            if version != self._drawn_version:
                train = {k: st.column("train", k) for k in ("step", "loss", "time")}
                ev = {k: st.column("eval", k) for k in ("step", "eval_loss", "total", "total_se", "reconstruction", "prior",
                                                         "matching",
                                                         "time")}
                t0 = st.first_time
                lr = num(st.last_train.get("lr")) if st.last_train else None
                ips = num(st.last_train.get("images_per_s")) if st.last_train else None
                last_eval = st.last_eval
                last_sample = st.last_sample
                scores = np.array(self._scores, dtype=np.float64).reshape(-1, 4)
                report_s, elapsed = st.report_s(), st.elapsed(self.clock(), False)
            records, bad = st.records, st.bad
            points = is_points(str(st.config.get("data", "")))
        if version != self._drawn_version:
            self._drawn_version = version
            if points and not self.points:
                self._become_points()
            sample = dict(zip(("step", "time", "shapes", "n"), scores.T))
            self._cols = {"train": train, "eval": ev, "sample": sample, "t0": t0,
                          "reference": (last_eval or {}).get("reference")}
            self.draw_curves()
            self.query_one(RunStats).numbers = RunNumbers(
                lr=lr, per_s=ips, loss=float(train["loss"][-1]) if len(train["loss"]) else None,
                elbo=Elbo.of(last_eval), points=self.points, own=bool(self._own()), records=records, bad=bad,
                report_s=report_s, elapsed=elapsed, after=self._first_eval_when(), sample=last_sample)
            if last_sample:  # the label of the grid shown (it used to be overwritten with the bare step here)
                self.query_one("#samples").border_subtitle = self.shown_grid()[2] or f"step {last_sample.get('step')}"
        self._tick()

    # -- curves: the plots share one View (smoothing, x axis, zoom, scroll) --------------
    def curve_span(self) -> float:
        c = self._cols
        if c is None:
            return 1.0
        return x_span(*(x_of(c[k], self.view.wall, c["t0"]) for k in ("train", "eval", "sample")))

    def draw_curves(self) -> None:
        """The plots from the columns last copied, through the view: the window, the smoothing, the x axis."""
        c = self._cols
        if c is None:
            return
        v, train, ev = self.view, c["train"], c["eval"]
        tx, ex, sx = (x_of(c[k], v.wall, c["t0"]) for k in ("train", "eval", "sample"))
        lo, hi = v.window(0.0, x_span(tx, ex, sx))
        fmt = duration if v.wall else None
        # a learned schedule or EDM's weighting trains on its own objective, while the held-out eval_loss
        # stays the plain MSE: two quantities that one axis would present as one. Its held-out is the -ELBO plot.
        held = [] if self._own() else [Series("held-out", ex, ev["eval_loss"], "magenta", dash="dashed")]
        if v.smoothing:  # the smoothed train loss over its raw curve, dimmed; the legend's numbers are the raw ones
            loss = [Series("train", tx, ema(train["loss"], v.smoothing), "cyan", raw=train["loss"]), *held,
                    Series("train, raw", tx, train["loss"], "dim cyan", faint=True)]
        else:
            loss = [Series("train", tx, train["loss"], "cyan"), *held]
        self.query_one("#loss-plot", Plot).set_series(loss, x_range=(lo, hi), x_format=fmt)
        terms = [Series("total", ex, ev["total"], "white", err=ev["total_se"])]  # each evaluation ± its stated error
        if not self.points:  # a density's terms span -3 to 5 bits/dim round a total near 1: on one axis they
            # would flatten the total and its two references into a line (the info panel lists the terms)
            terms += [Series("rec", ex, ev["reconstruction"], "cyan", dash="dotted"),
                      Series("match", ex, ev["matching"], "magenta", dash="dashed"),
                      Series("prior", ex, ev["prior"], "yellow", dash="dashdot")]
        bpd = self.query_one("#bpd-plot", Plot)
        # beside the shapes plot (a third plot: at 80x24 each has a few rows), the -ELBO's legend keeps to two lines
        # (its entries shortened to their last values where they would take more; the info panel has the terms)
        bpd.legend_rows = 2 if len(sx) else None
        bpd.set_series(terms + self._references(lo, hi) if len(ex) else [], x_range=(lo, hi), x_format=fmt)
        self._draw_shapes(sx, lo, hi, fmt)
        self._set_legends()

    def _draw_shapes(self, sx: np.ndarray, lo: float, hi: float, fmt) -> None:
        """The cheap score's tiles holding a shape, in percent, one point per sample record ± its binomial error
        sqrt(p (1 - p) / n), over the held-out share (measured once: held_out_shape_share). Shown only for runs
        whose sample records carry it (the shapes data); the other plots keep the room of the rest."""
        sm = self._cols["sample"]
        plot = self.query_one("#shapes-plot", Plot)
        if bool(len(sx)) != plot.display:
            plot.display = bool(len(sx))
            self.call_after_refresh(self._shapes_legend)  # its title in the words its new width holds
        if not len(sx):
            return
        if not self._shapes_ref_state and self.shapes_ref is None:
            self._shapes_ref_state = "measuring"
            self._measure_shapes_reference()
        p, n = sm["shapes"], sm["n"]
        err = 100 * share_error(p, n)
        series = [Series("samples", sx, 100 * p, "green", err=err)]
        if self.shapes_ref is not None:
            share, images = self.shapes_ref
            series.append(Series("held-out", np.array([lo, hi]), np.full(2, 100 * share), REFERENCE_GREY,
                                 stats=False, dash="sparse", key=f"held-out {100 * share:.0f}%"))
        plot.set_series(series, x_range=(lo, hi), x_format=fmt)

    @work(thread=True, group="shapes-ref")
    def _measure_shapes_reference(self) -> None:
        """The shapes plot's reference line, off the screen's thread (the classifier on held-out images)."""
        try:
            share = held_out_shape_share(HELD_OUT_SHAPES)
        except Exception as e:  # noqa: BLE001 - a missing classifier or data must not take the monitor down
            self.post_message(ShapesReference(None, HELD_OUT_SHAPES, f"{type(e).__name__}: {e}"))
            return
        self.post_message(ShapesReference(share, HELD_OUT_SHAPES))

    def on_shapes_reference(self, m: ShapesReference) -> None:
        if m.share is None:
            self._shapes_ref_state = f"no held-out line ({m.error})"
        else:
            self.shapes_ref, self._shapes_ref_state = (m.share, m.n), ""
        self.draw_curves()

    def _first_eval_when(self) -> str:
        """When the first -ELBO comes: by the clock for a time-limited run, else at the end of the first epoch; a run
        that ended (or died) without one will not have one."""
        st = self.state
        if st.start is not None and (st.end is not None or not st.alive(self.clock(), self.pid_check)[0]):
            return "none: the run ended before its first evaluation"
        if st.minutes:
            return f"after {CLOCK_FIRST_S:g} s of training"
        return "after the first epoch"

    def _references(self, lo: float, hi: float) -> list[Series]:
        """The -ELBO plot's reference lines across the window. Images: a model uniform over the 256 levels
        (vdm.config.UNIFORM_BPD), which every curve should fall below. 2-D points: none of that (a density has
        no levels); a Gaussian-mixture run's exact references from its eval records, each named with its
        standard error: the Bayes-optimal denoiser's -ELBO on the same noise (the lowest any model's
        -ELBO can be) and the true -log p(x_0) of the held-out points (what the ELBO bounds)."""
        xs = np.array([lo, hi])
        if not self.points:
            return [Series("uniform", xs, np.array([UNIFORM_BPD, UNIFORM_BPD]), REFERENCE_GREY,
                           stats=False, dash="sparse")]
        ref = self._cols.get("reference") if self._cols else None
        out = []
        if isinstance(ref, dict):
            for k, name, colour in REFERENCES:
                v, se = num(ref.get(k)), num(ref.get(f"{k}_se"))
                if v is not None:
                    out.append(Series(name, xs, np.array([v, v]), colour, stats=False, dash="sparse",
                                      key=f"{name} {v:.3f}" + (f"±{se:.3f}" if se is not None else "")))
        return out

    def _own(self) -> str | None:
        """The run's own train objective where it is not the held-out MSE (tui.run_state.own_objective), else None."""
        return own_objective(self.state.config)

    def _set_legends(self, n_train: int = 0) -> None:
        loss = self.query_one("#loss-plot", Plot)
        log = " (log)" if self.log_scale else ""
        own = self._own()
        loss.border_title = (f"train loss, {own} (held-out: -ELBO below)" if own else "loss") + log
        loss.border_subtitle = self.view.describe()
        bpd = self.query_one("#bpd-plot", Plot)
        if self.points:  # bits of a density: they can be negative, and no uniform model over levels exists
            bpd.border_title = "-ELBO, bits/dim of a density" + log
        else:
            glyph = DASHES["sparse"][1] if self.app.no_color else "━"
            bpd.border_title = ("-ELBO bits/dim" + log +
                                f" [{REFERENCE_GREY}]({glyph} {UNIFORM_BPD:g}: uniform)[/]")
        bpd.border_subtitle = "last ↓min ↑max in view"
        self._shapes_legend()

    def _shapes_legend(self) -> None:
        """The shapes plot's title, named as the cheap score it is, in as many words as its border holds."""
        plot = self.query_one("#shapes-plot", Plot)
        sm = (self._cols or {}).get("sample")
        log = " (log)" if self.log_scale else ""
        if sm is None or not len(sm["n"]):
            plot.border_title = "tiles holding a shape, % (cheap score)" + log  # hidden: no sample record has one
            return
        a, b = int(np.min(sm["n"])), int(np.max(sm["n"]))
        each = f"{a}" if a == b else f"{a}-{b}"
        room = plot.size.width - 4
        titles = [f"tiles holding a shape, % ({each} samples each, cheap score)",
                  f"tiles with a shape, % (cheap score, {each} each)", f"tiles with a shape % (cheap, {each} each)",
                  f"shape tiles % (cheap, {each} each)", "shape tiles % (cheap)"]
        plot.border_title = (next((t for t in titles if len(t) + len(log) <= room), titles[-1])
                             if room > 0 else titles[0]) + log
        ref = f"held-out: {self.shapes_ref[1]} images · " if self.shapes_ref else ""
        plot.border_subtitle = self._shapes_ref_state or f"{ref}± binomial"

    def _tick(self) -> None:
        """Status line and progress: the clock moves them even when no record arrives."""
        now = self.clock()
        with self.lock:
            st = self.state
            alive, why = st.alive(now, self.pid_check)
            step, total, epoch, epochs = st.step, st.total_steps, st.epoch, st.epochs
            running, end, start, device = st.running, st.end, st.start, st.device
            elapsed = st.elapsed(now, alive)
            eta = st.eta(now) if alive else None
            frac, time_binds, minutes, age = st.progress(now, alive), st.time_binds(), st.minutes, st.record_age(now)
            stopping = st.is_stopping
            can_stop = running and alive and st.pid is not None and not stopping
            elbo = Elbo.of(st.last_eval)
        if can_stop != getattr(self, "_can_stop", False):
            self._can_stop = can_stop
            self.refresh_bindings()
        if self.run_dir is None:
            return
        behind, size, ahead = self.tailer.behind, self.tailer.size, self.tailer.reading_ahead
        proc = getattr(self.app, "process", None)
        if proc is not None and not proc.running and end is None and start is not None:
            alive, why = False, exit_reason(proc.poll())
        name = self.tailer.path.name
        if ahead:
            facts = StatusFacts("reading", f"reading {name}: {ahead[0] / 2**20:,.0f} MiB on {ahead[1]} processes")
        elif behind > (1 << 22):
            facts = StatusFacts("reading", f"reading {name} {100 * (size - behind) / size:.0f}%")
        elif start is None:
            facts = StatusFacts("waiting", self._awaited(proc))
        elif end is not None:
            facts = StatusFacts("finished", str(end.get("reason")))
        elif not alive:
            facts = StatusFacts("dead", why)
        elif stopping:
            facts = StatusFacts("stopping", "saving, evaluating, sampling")
        else:
            facts = StatusFacts("training")
        self.query_one(RunStatus).facts = replace(facts, age=age, device=device, run=str(self.run_dir), elbo=elbo)
        bar = self.query_one("#steps-bar", ProgressBar)
        if frac is not None:
            bar.update(total=1000, progress=int(round(frac * 1000)))
        elif start is None:  # no record (a log emptied or replaced): nothing done yet, not the last run's 100 %
            bar.update(total=1000, progress=0)
        ep = f"{epoch:.2f}/{epochs}" if epochs and not time_binds else f"{epoch:.2f}"
        tot = f"/{total:,}" if total and not time_binds else ""
        clock = f"{hms(elapsed)}/{hms(minutes * 60)} limit" if time_binds else hms(elapsed)
        self.query_one("#progress-text", Readout).update(
            f" step {step:,}{tot} · ep {ep} · {clock} · ETA {hms(eta) if running and alive and eta is not None else '-'}")

    def _draw_samples(self) -> None:
        if self.points:
            points, label = self.shown_points()
            w = self.query_one("#point-samples", PointSamples)
            w.samples, w.where = points, label
            return
        image, key, label = self.shown_grid()
        w = self.query_one("#samples", HalfBlockImage)
        w.border_subtitle = label or "none yet (after an epoch)"
        cw, ch = w.content_size
        if image is None or cw < 1 or ch < 1:
            return
        show_grid(w, image, key)

    # -- samples over time: [ and ] step through every grid the run wrote ------------------
    def shown_grid(self) -> tuple[np.ndarray | None, object, str]:
        """(image, cache key, label) of the grid to show: the one scrubbed to, or the newest."""
        n = len(self.grids)
        if self.grid_pos is not None and self.grid_pos < n:
            step, path = self.grids[self.grid_pos]
            try:
                image = self._load_grid(path)
            except ValueError:  # said once, when it was stepped to (action_grid)
                return None, None, f"step {step:,}: unreadable · grid {self.grid_pos + 1}/{n} ([ ])"
            return image, ("grid", str(path)), f"step {step:,} · grid {self.grid_pos + 1}/{n} ([ ])"
        with self.lock:
            step = num(self.state.last_sample.get("step")) if self.state.last_sample else None
        if step is None and self.grids:
            step = self.grids[-1][0]
        if self.sample_image is None:
            return None, None, ""
        label = f"step {int(step):,}" if step is not None else ""
        if n > 1:
            label += f" · newest {n}/{n} ([ ])"
        return self.sample_image, self.sample_mtime, label

    def shown_points(self) -> tuple[np.ndarray | None, str]:
        """(points [N, 2], label) of a 2-D run's samples to show: those of the step scrubbed to, or the newest."""
        n = len(self.grids)
        if self.grid_pos is not None and self.grid_pos < n:
            step = self.grids[self.grid_pos][0]
            points = self._load_points(step)
            unreadable = "" if points is not None else ": unreadable"
            return points, f"step {step:,}{unreadable} · {self.grid_pos + 1}/{n} ([ ])"
        with self.lock:
            step = num(self.state.last_sample.get("step")) if self.state.last_sample else None
        if step is None and self.grids:
            step = self.grids[-1][0]
        label = f"step {int(step):,}" if step is not None else ""
        if n > 1:
            label += f" · newest {n}/{n} ([ ])"
        return self.sample_points, label

    def _load_points(self, step: int) -> np.ndarray | None:
        """The samples kept at ``step`` (vdm.run.sample_path(run, step, ".npy")), None when unreadable."""
        if step in self._points_cache:
            self._points_cache.move_to_end(step)
            return self._points_cache[step]
        points = read_points(sample_path(self.run_dir, step, ".npy"))
        if points is not None:
            self._points_cache[step] = points
            while len(self._points_cache) > 64:  # 1,000 points are 8 kB
                self._points_cache.popitem(last=False)
        return points

    def _load_grid(self, path: Path) -> np.ndarray:
        key = str(path)
        if key in self._grid_cache:
            self._grid_cache.move_to_end(key)
            return self._grid_cache[key]
        image = read_grid(path)
        self._grid_cache[key] = image
        while len(self._grid_cache) > 32:  # a grid of 64 samples is 0.8 MB
            self._grid_cache.popitem(last=False)
        return image

    def action_grid(self, d: int) -> None:
        """One grid earlier (d < 0) or later; later than the last is the newest again, following new grids."""
        if not self.grids and self.run_dir is not None:
            self.grids = sample_grids(self.run_dir)
        n = len(self.grids)
        if n == 0:
            self.notify("no sample grids yet: the run writes one after each epoch.")
            return
        pos = (n - 1 if self.grid_pos is None else self.grid_pos) + d
        self.grid_pos = None if pos >= n - 1 and d > 0 or pos >= n else max(pos, 0)
        if self.grid_pos is not None and self.points:
            step = self.grids[self.grid_pos][0]
            if self._load_points(step) is None:
                self.notify(f"{sample_path(self.run_dir, step, '.npy')} holds no 2-D points.", severity="warning")
        elif self.grid_pos is not None:
            try:
                self._load_grid(self.grids[self.grid_pos][1])
            except ValueError as e:
                self.notify(str(e), severity="warning")
        self._draw_samples()

    def _update_gpu(self) -> None:
        text = self.query_one("#gpu-text", Readout)
        spark = self.query_one("#gpu-spark", Readout)
        readings = self.gpu.read() if self.gpu else []
        if not readings:  # no NVML error text taking the samples' rows on a laptop: the trainer's own use instead
            lines = self._cpu_lines()
            reason = self.gpu.reason if self.gpu else ""
            head = "[b]CPU only[/] [dim]· no NVIDIA GPU"
            lines.insert(0, head + (f" ({reason})[/]" if reason and len(lines) == 0 else "[/]"))
            text.update("\n".join(lines))
            text.styles.height = len(lines)
            spark.display = False
            return
        text.styles.height = 3
        if readings[0].util is not None:  # a reading NVML could not give is left out, not drawn as 0
            self.gpu_hist.append(readings[0].util)
        parts = []
        for g in readings:
            util = f"{g.util:.0f}%" if g.util is not None else "-"
            mem = f"{g.mem_used / 2**30:.1f}/{g.mem_total / 2**30:.0f} GiB" if g.mem_used is not None else "-"
            temp = f"{g.temp:.0f}°C" if g.temp is not None else "-"
            power = f" {g.power:.0f} W" if g.power is not None else ""
            parts.append(f"[b]{g.index}[/] {g.name[:30]}")
            parts.append(f"  util {util} · mem {mem}")
            parts.append(f"  {temp}{' ·' + power if power else ''}")
            for pid, used in (g.processes or [])[:3]:
                parts.append(f"  pid {pid}" + (f" {used / 2**30:.1f} GiB" if used is not None else ""))
        n = len(self.gpu_hist)
        parts.append(f"GPU {readings[0].index} util every {self.gpu_interval:g} s ({n}):")
        text.styles.height = len(parts)
        text.update("\n".join(parts))
        spark.display = n > 0
        spark.update(f"0 [cyan]{spark_text(self.gpu_hist)}[/] 100%")

    def _cpu_lines(self) -> list[str]:
        """Without a GPU: the trainer's CPU % and resident memory (from /proc, when it runs on this machine) and
        the memory it logs (its peak resident set on a CPU, its peak CUDA allocation on a GPU)."""
        with self.lock:
            st = self.state
            pid, running, device = st.pid, st.running and st.end is None, st.device
            logged = num((st.last_train or {}).get("memory_mb"))
        lines = []
        if pid is not None and running:
            if self._proc is None or self._proc.pid != pid:
                self._proc = ProcUsage(pid)
            cpu, rss = self._proc.read()
            if rss is not None:
                # short lines: the panel is about 30 columns wide at 80
                lines.append(f"pid {pid}: CPU {f'{cpu:.0f}%' if cpu is not None else '…'} RSS {rss / 2**30:.2f} GiB")
            else:
                lines.append(f"pid {pid}: not on this machine")
        if logged is not None:
            what = "peak RSS" if device == "cpu" else f"peak {device} memory"
            lines.append(f"logged {what} {logged:,.0f} MiB")
        return lines

    # -- actions ------------------------------------------------------------------
    def action_toggle_log(self) -> None:
        self.log_scale = not self.log_scale
        self.query_one("#loss-plot", Plot).set_log(self.log_scale)
        self.query_one("#bpd-plot", Plot).set_log(self.log_scale)
        self.query_one("#shapes-plot", Plot).set_log(self.log_scale)  # a share of 0 % has no log: not drawn then
        self._set_legends(0)

    def action_back(self) -> None:
        """Opened from the run list (pushed over it): back to the list."""
        if len(self.app.screen_stack) > 1 and self.app.screen is self:
            self.workers.cancel_group(self, "tail")
            self.app.pop_screen()

    def check_action(self, action: str, parameters) -> bool | None:
        """x (stop run) is in the footer only while a trainer lives: a finished or dead run has none to stop."""
        if action == "stop_run":
            return getattr(self, "_can_stop", False)
        return True

    def action_stop_run(self) -> None:
        """Stop the run's trainer (SIGINT to the start record's pid: it saves, evaluates, writes samples), after asking."""
        import os
        import signal

        now = self.clock()
        with self.lock:
            pid, running = self.state.pid, self.state.running
            alive, _ = self.state.alive(now, self.pid_check)
        if not running or pid is None or not alive:
            self.notify("no live trainer to stop: the run has ended, or its pid is gone.", severity="warning")
            return

        def chosen(what: str | None) -> None:
            if what != "stop":
                return
            try:
                os.kill(pid, signal.SIGINT)
            except OSError as e:
                self.notify(f"could not signal pid {pid}: {e.strerror or e}.", severity="error")
                return
            self.notify(f"sent SIGINT to pid {pid}: it saves a checkpoint and samples, then stops.", timeout=10)
            self.stop_asked()

        self.app.push_screen(StopScreen(pid, str(self.run_dir)), chosen)

    def stop_asked(self) -> None:
        """A stop was sent to the trainer: "stopping" until its end record (it saves, evaluates and samples first)."""
        with self.lock:
            self.state.stop_asked = True
        self._tick()

    def action_samples(self) -> None:
        if (self.shown_points() if self.points else self.shown_grid())[0] is None:
            self.notify("no sample grid yet: the run writes one after each epoch.")
            return
        self.app.push_screen(SamplesScreen(self))

    def action_reload(self) -> None:
        if self.tailer is None:
            return
        self.workers.cancel_group(self, "tail")
        with self.lock:
            self.tailer = MetricsTailer(metrics_path(self.run_dir))
            self.state.clear()
            self._scores = []
            self.sample_mtime = 0.0
        self._drawn_version = -1
        self._draw()
        self.tail()

    def on_unmount(self) -> None:
        if self.gpu:
            self.gpu.close()
