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


# The configuration a list of runs may differ in: (key in the run's config, column heading). The list shows
# those that differ between its runs (runs named by date are told apart by them).
CONFIG_COLUMNS = (("data", "data"), ("schedule", "schedule"), ("prediction", "pred"), ("weighting", "weighting"),
                  ("model", "model"), ("batch_size", "batch"), ("ema", "EMA"))


def config_cell(config, key: str) -> str:
    """One configuration value as the list shows it ('-' where the run does not say)."""
    v = config.get(key) if isinstance(config, dict) else None
    if v is None or isinstance(v, (dict, list)):
        return "-"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


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


def _number_or_text(v: str):
    """A configuration cell's sort key: numbers as numbers (a batch of 64 before one of 128), the rest as text."""
    try:
        return (0, float(v), "")
    except ValueError:
        return (1, 0.0, v)


class RunsRead(Message):
    def __init__(self, done: bool = True):
        super().__init__()
        self.done = done


class RunsScreen(Screen):
    """The table of runs under a folder: name, status, steps, the newest -ELBO with its error, the age of the last
    record, and the configuration columns (CONFIG_COLUMNS) whose values differ between the runs. Ranked by the
    -ELBO, lowest first; ``s`` (or a click on a heading) sorts by another column, again: the other way round."""

    BINDINGS = [
        *FIRST_KEYS,
        Binding("enter", "open", "open run"),
        Binding("space", "mark", "mark"),
        Binding("o", "overlay", "overlay marked"),
        Binding("s", "sort", "sort by"),
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
        self.sort_by = "-ELBO b/d (last)"  # the column the rows are ordered by
        self.descending = False
        self._columns: list[str] = []  # the headings shown now

    def compose(self) -> ComposeResult:
        yield Readout(id="runs-title")
        yield DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Readout(id="runs-help")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#runs-title", Readout).update(f"[b]runs[/] under {self.root} · reading …")
        self.query_one("#runs-help", Readout).update(
            "enter: open · space: mark · o: overlay the marked (or all) · s: sort")
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
        runs = []  # (name, {heading: (cell, sort key)})
        with self.lock:
            configs = {name: e.state.config for name, e in self.entries.items()}
            for name, e in sorted(self.entries.items()):
                last = e.last_bpd()
                st = e.state
                total = st.total_steps
                age = st.record_age(now) if st.last_time is not None else None
                cells = {
                    "": ("●" if name in self.marked else "", name not in self.marked),
                    "run": (name, name),
                    "status": (e.status(now, self.pid_check), e.status(now, self.pid_check)),
                    "steps": (f"{st.step:,}" + (f"/{total:,}" if total and not st.time_binds() else ""), st.step),
                    # the newest -ELBO, not the lowest (its error beside it says which places are a toss-up)
                    "-ELBO b/d (last)": (with_error(*last) if last is not None else "-",
                                         last[0] if last is not None else None),
                    "last update": (ago(age) + " ago" if age is not None else "-", age),
                }
                runs.append((name, cells))
        # only the configuration that tells these runs apart (of runs whose start record says)
        told = [cfg for cfg in configs.values() if isinstance(cfg, dict) and cfg]
        differ = [(key, head) for key, head in CONFIG_COLUMNS
                  if len({config_cell(cfg, key) for cfg in told}) > 1]
        for name, cells in runs:
            for key, head in differ:
                v = config_cell(configs[name], key)
                cells[head] = (v, _number_or_text(v))
        heads = ["", "run", "status", "steps", "-ELBO b/d (last)", *(h for _, h in differ), "last update"]
        if self.sort_by not in heads:
            self.sort_by, self.descending = "-ELBO b/d (last)", False
        self._columns = heads

        def order(item):
            k = item[1][self.sort_by][1]
            return (k is None, k if k is not None else 0, item[0])  # runs without the value last, then by name

        known = sorted((r for r in runs if r[1][self.sort_by][1] is not None), key=order, reverse=self.descending)
        runs = known + sorted((r for r in runs if r[1][self.sort_by][1] is None), key=lambda r: r[0])
        keep = table.cursor_row
        table.clear(columns=True)  # columns again: their widths follow the longest cell
        for label in heads:
            shown = label + ((" ↓" if self.descending else " ↑") if label == self.sort_by else "")
            width = max([len(shown)] + [len(cells[label][0]) for _, cells in runs])
            table.add_column(shown, key=label or "mark", width=width)
        for name, cells in runs:
            table.add_row(*(cells[h][0] for h in heads), key=name)
        if runs:
            table.move_cursor(row=min(keep, len(runs) - 1))
        self.query_one("#runs-title", Readout).update(f"[b]{len(runs)} runs[/] under {self.root}")

    def action_sort(self, column: str | None = None) -> None:
        """Order the rows by ``column``, by the next column when None (the mark column is skipped); the same
        column again: the other way round."""
        heads = [h for h in self._columns if h] or ["run"]
        if column is None:
            column = heads[(heads.index(self.sort_by) + 1) % len(heads)] if self.sort_by in heads else heads[0]
            self.descending = False
        elif column == self.sort_by:
            self.descending = not self.descending
        else:
            self.descending = False
        self.sort_by = column
        self._fill()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        if key and key != "mark":
            self.action_sort(key)

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
