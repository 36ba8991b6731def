"""`vdm tui runs/`: every run under a folder, as a table; open one, or overlay several on the same axes.

The table needs few records of each run: its start, evaluations and end, and its newest train
records. A SummaryTailer (vdm.tailer) finds those by a byte search and parses nothing else, so
five logs of 100,000 lines are listed in a fraction of a second. The overlay needs every train
record: it reads the runs it shows with the columnar tailer, run by run in a thread worker,
drawing each as it arrives; both refresh every few seconds from the bytes appended since.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer

from tui.plot import CURVE_BINDINGS, CurveKeys, Plot, Series, View, duration, ema, with_error, x_of, x_span
from tui.dialogs import FIRST_KEYS
from tui.readout import Readout
from tui.run_state import RunState, ago, own_objective, pid_alive
from vdm.run import METRICS, is_run
from vdm.tailer import MetricsTailer, SummaryTailer

COLOURS = ("#4fc3f7", "#f06292", "#ffd54f", "#81c784", "#ba68c8", "#ff8a65", "#e0e0e0", "#4db6ac")  # hues apart in any theme


def loss_quantity(config) -> str:
    """What a run's train loss measures: the overlay puts only runs of one quantity on a train-loss axis (an
    EDM-weighted loss near 0.4, an MSE and a learned run's -ELBO near 8 on one axis squash each other flat)."""
    own = own_objective(config)
    if own:
        return own
    prediction = config.get("prediction") if isinstance(config, dict) else None
    return "MSE of ε" if prediction == "eps" else "MSE of x̂_0"  # x0 and x0-precond both predict x_0


def find_runs(root: Path) -> list[Path]:
    """The run directories directly under root (a config.json or a metrics.jsonl), by name."""
    try:
        kids = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return []
    return [p for p in kids if is_run(p) or (p / METRICS).is_file()]


def is_runs_folder(path: Path) -> bool:
    """A folder that is no run itself but holds runs (what `vdm tui runs/` is given)."""
    return path.is_dir() and not is_run(path) and not (path / METRICS).exists() and bool(find_runs(path))


class RunEntry:
    """One run: its tailer and folded state; ``summary``: only what the list shows (vdm.tailer.SummaryTailer)."""

    def __init__(self, path: Path, summary: bool = False):
        self.path = path
        self.state = RunState(path)
        self.tailer = SummaryTailer(path / METRICS) if summary else MetricsTailer(path / METRICS)
        self.polled = False  # read to its end at least once
        self._reading = threading.Lock()  # one reader at a time (a refresh may start before the last one ends)

    def update(self, lock: threading.Lock) -> None:
        """Read what was appended since, folding it in under ``lock`` (held only to fold: drawing waits for
        no parse)."""
        with self._reading:
            while True:
                batch = self.tailer.poll()
                with lock:
                    if self.tailer.restarted:
                        self.state.clear()
                    self.state.add(batch)
                if self.tailer.behind == 0:
                    self.polled = True
                    return

    def status(self, now: float, pid_check=pid_alive) -> str:
        st = self.state
        if st.start is None:
            return "no records yet"
        if st.end is not None:
            return f"finished ({st.end.get('reason')})"
        alive, why = st.alive(now, pid_check)
        return "training" if alive else "stopped responding"

    def last_bpd(self) -> tuple[float, float | None] | None:
        """The newest held-out -ELBO (bits/dim) and the error its record states (None: it states none), or None.

        The newest, not the lowest: the lowest of several noisy estimates is the luckiest draw, not the best model.
        """
        total, se = self.state.column("eval", "total"), self.state.column("eval", "total_se")
        ok = np.flatnonzero(np.isfinite(total))
        if not len(ok):
            return None
        e = float(se[ok[-1]])
        return float(total[ok[-1]]), (e if np.isfinite(e) else None)


class RunsRead(Message):
    def __init__(self, done: bool = True):
        super().__init__()
        self.done = done


class RunsScreen(Screen):
    """The table of runs under a folder."""

    BINDINGS = [
        *FIRST_KEYS,
        Binding("enter", "open", "open run"),
        Binding("space", "mark", "mark"),
        Binding("o", "overlay", "overlay marked"),
        Binding("r", "rescan", "rescan", show=False),
    ]

    def __init__(self, root: Path, clock=time.time, refresh_s: float = 3.0):
        super().__init__()
        self.root = Path(root)
        self.clock = clock
        self.refresh_s = refresh_s
        self.entries: dict[str, RunEntry] = {}  # summaries, for the table
        self.full: dict[str, RunEntry] = {}  # every record, for the overlay (read when first overlaid)
        self.marked: set[str] = set()
        self.lock = threading.Lock()
        self.pid_check = pid_alive
        self.ready = False

    def compose(self) -> ComposeResult:
        yield Readout(id="runs-title")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Readout(id="runs-help")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#runs-title", Readout).update(f"[b]runs[/] under {self.root} · reading …")
        self.query_one("#runs-help", Readout).update(
            "enter: open · space: mark · o: overlay the marked runs (or all) · q: quit")
        self.read_runs()
        self.set_interval(self.refresh_s, self.read_runs)

    @work(thread=True, exclusive=True, group="runs")
    def read_runs(self) -> None:
        for path in find_runs(self.root):
            with self.lock:
                entry = self.entries.get(path.name)
                if entry is None:
                    entry = self.entries[path.name] = RunEntry(path, summary=True)
            try:
                entry.update(self.lock)
            except OSError:
                continue
            if not self.ready:
                self.post_message(RunsRead(done=False))  # the first time, the table fills run by run
        self.post_message(RunsRead())  # then once a refresh (the ages move)

    def on_runs_read(self, m: RunsRead) -> None:
        self.ready = self.ready or m.done  # every run read once
        if self.is_current:  # under the overlay or a run's monitor: rebuilt when shown again
            self._fill()

    def on_screen_resume(self) -> None:
        if self.entries:
            self._fill()

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        now = self.clock()
        with self.lock:
            rows, ranks = [], []
            for name, e in sorted(self.entries.items()):
                last = e.last_bpd()
                st = e.state
                total = st.total_steps
                rows.append((name, "●" if name in self.marked else "", name, e.status(now, self.pid_check),
                             f"{st.step:,}" + (f"/{total:,}" if total and not st.time_binds() else ""),
                             with_error(*last) if last is not None else "-", ago(st.record_age(now)) + " ago"
                             if st.last_time is not None else "-"))
                ranks.append(last[0] if last is not None else float("inf"))
            # ranked by the newest -ELBO, lowest first (its error beside it says which places are a toss-up);
            # runs without one after, by name
            rows = [r for _, r in sorted(zip(ranks, rows), key=lambda p: p[0])]
        keep = table.cursor_row
        table.clear(columns=True)  # columns again: their widths follow the longest cell
        heads = ("", "run", "status", "steps", "-ELBO b/d (last)", "last update")
        for j, label in enumerate(heads):
            width = max([len(label)] + [len(r[j + 1]) for r in rows])
            table.add_column(label, key=label or "mark", width=width)
        for name, *cells in rows:
            table.add_row(*cells, key=name)
        if rows:
            table.move_cursor(row=min(keep, len(rows) - 1))
        self.query_one("#runs-title", Readout).update(f"[b]{len(rows)} runs[/] under {self.root}")

    def _current(self) -> str | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        return table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value

    def action_mark(self) -> None:
        name = self._current()
        if name is None:
            return
        self.marked.symmetric_difference_update({name})
        self._fill()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def action_open(self) -> None:
        name = self._current()
        if name is not None:
            self.app.open_run_dir(self.root / name)

    def action_overlay(self) -> None:
        with self.lock:
            names = sorted(self.marked) or sorted(self.entries)
        if not names:
            self.notify("no runs to overlay.", severity="warning")
            return
        self.app.push_screen(OverlayScreen(self, names))

    def action_rescan(self) -> None:
        self.read_runs()


class OverlayRead(Message):
    pass


class OverlayScreen(CurveKeys, Screen):
    """Several runs on the same axes, a colour each: the held-out -ELBO in bits/dim, and the train losses of one
    quantity at a time (``t`` the next: an MSE, EDM's weighted loss and a learned run's -ELBO share no axis).

    Each run is read whole once (its summary in the list has no train curve), in a worker, and
    drawn as soon as it is read; every few seconds only the bytes appended since are read.
    """

    BINDINGS = [*FIRST_KEYS, Binding("escape", "app.pop_screen", "back"), Binding("t", "next_loss", "next loss"),
                Binding("l", "toggle_log", "log scale"), *CURVE_BINDINGS]

    def __init__(self, runs: RunsScreen, names: list[str], refresh_s: float | None = None):
        super().__init__()
        self.runs, self.names = runs, names
        self.log_scale = False
        self.view = View()
        self.refresh_s = runs.refresh_s if refresh_s is None else refresh_s
        self.pending = len(names)  # runs not read yet
        self._cols: list[tuple[str, str, dict, dict, float | None]] = []
        self._copies: dict[str, tuple] = {}  # name -> ((state, version), train columns, eval columns)
        self._what: dict[str, str] = {}  # what each run's train loss measures (loss_quantity)
        self.group = 0  # which of those quantities the train-loss plot shows

    def compose(self) -> ComposeResult:
        yield Readout(id="overlay-title")
        with Vertical(id="overlay-body"):
            # the train losses of one quantity at a time (loss_quantity; t: the next); legends of one line
            yield Plot(id="overlay-loss", legend=True, legend_rows=1)
            yield Plot(id="overlay-bpd", legend=True, legend_rows=1)
        yield Footer()

    def on_mount(self) -> None:
        self.draw()
        self.read()
        self.set_interval(self.refresh_s, self.read)

    @work(thread=True, exclusive=True, group="overlay")
    def read(self) -> None:
        entries = []
        with self.runs.lock:
            for name in self.names:
                entry = self.runs.full.get(name)
                if entry is None:
                    entry = self.runs.full[name] = RunEntry(self.runs.root / name)
                entries.append(entry)
        for entry in entries:
            before = (entry.polled, entry.state.version)
            try:
                entry.update(self.runs.lock)
            except OSError:
                entry.polled = True  # unreadable now: drawn as far as it was read
            if (entry.polled, entry.state.version) != before:  # drawn run by run, and only when it changed
                self.post_message(OverlayRead())

    def on_overlay_read(self, m: OverlayRead) -> None:
        self.draw()

    def draw(self) -> None:
        """Copy each read run's columns, then draw them through the view."""
        cols = []
        with self.runs.lock:
            for i, name in enumerate(self.names):
                e = self.runs.full.get(name)
                if e is None:
                    continue
                st = e.state
                # copied again only when the run changed: drawn run by run, five runs are not copied fifteen times
                key = (id(st), st.version)
                if self._copies.get(name, (None,))[0] != key:
                    self._copies[name] = (key, {k: st.column("train", k) for k in ("step", "loss", "time")},
                                          {k: st.column("eval", k) for k in ("step", "total", "total_se", "time")})
                _, tr, ev = self._copies[name]
                if st.start is not None:  # its config is known
                    self._what[name] = loss_quantity(st.config)
                cols.append((name, COLOURS[i % len(COLOURS)], tr, ev, st.first_time))
            self.pending = sum(1 for n in self.names if n not in self.runs.full or not self.runs.full[n].polled)
        self._cols = cols
        self.draw_curves()

    def curve_span(self) -> float:
        w = self.view.wall
        return x_span(*[x_of(c, w, t0) for _, _, tr, ev, t0 in self._cols for c in (tr, ev)])

    def draw_curves(self) -> None:
        v = self.view
        groups: dict[str, tuple[list, list]] = {}  # what the train loss measures -> (its runs' series, faint)
        bpd = []
        lo, hi = v.window(0.0, self.curve_span())
        for name, c, tr, ev, t0 in self._cols:
            tx, ex = x_of(tr, v.wall, t0), x_of(ev, v.wall, t0)
            loss, faint = groups.setdefault(self._what.get(name, "MSE of x̂_0"), ([], []))
            if v.smoothing:
                loss.append(Series(name, tx, ema(tr["loss"], v.smoothing), c, raw=tr["loss"]))
                faint.append(Series(name, tx, tr["loss"], "dim " + c, faint=True))
            else:
                loss.append(Series(name, tx, tr["loss"], c))
            bpd.append(Series(name, ex, ev["total"], c, err=ev["total_se"]))
        fmt = duration if v.wall else None
        log = " (log)" if self.log_scale else ""
        kinds = list(groups.items()) or [("", ([], []))]
        self.group %= len(kinds)
        what, (loss, faint) = kinds[self.group]
        lp = self.query_one("#overlay-loss", Plot)
        lp.set_series(loss + faint, x_range=(lo, hi), x_format=fmt)
        lp.border_title = f"train loss: {what}{log}" if what else "train loss" + log
        lp.border_subtitle = v.describe()
        bp = self.query_one("#overlay-bpd", Plot)
        bp.set_series(bpd, x_range=(lo, hi), x_format=fmt)
        bp.border_title = "held-out -ELBO bits/dim" + log
        bp.border_subtitle = "last ↓min ↑max in view"
        reading = f" · reading {self.pending} …" if self.pending else ""
        others = f" · {len(kinds)} kinds of train loss, [b]t[/]: the next" if len(kinds) > 1 else ""
        self.query_one("#overlay-title", Readout).update(f"[b]{len(self.names)} runs[/]{others}{reading}")

    def action_next_loss(self) -> None:
        """The train losses of the next quantity (an MSE, EDM's weighted loss, a learned run's -ELBO)."""
        self.group += 1
        self.draw_curves()

    def action_toggle_log(self) -> None:
        self.log_scale = not self.log_scale
        for p in self.query(Plot):
            p.set_log(self.log_scale)
        self.draw_curves()
