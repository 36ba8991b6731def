"""`vdm tui runs/`: every run under a folder, as a table; open one, or overlay several on the same axes.

Each run's metrics.jsonl is read once by the columnar tailer (vdm.tailer) in a thread worker
and folded into a RunState; the table and the overlay draw from those states. The table is
refreshed every few seconds (only bytes appended since are read), so live runs move.
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

from tui.plot import Plot, Series
from tui.readout import Readout
from tui.run import RunState, ago, pid_alive
from vdm.run import METRICS, is_run
from vdm.tailer import MetricsTailer

COLOURS = ("cyan", "magenta", "yellow", "green", "bright_red", "bright_blue", "white", "bright_magenta")


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
    """One run of the list: its tailer and folded state."""

    def __init__(self, path: Path):
        self.path = path
        self.state = RunState(path)
        self.tailer = MetricsTailer(path / METRICS)

    def update(self) -> None:
        while True:
            batch = self.tailer.poll()
            if self.tailer.restarted:
                self.state.clear()
            self.state.add(batch)
            if self.tailer.behind == 0:
                return

    def status(self, now: float, pid_check=pid_alive) -> str:
        st = self.state
        if st.start is None:
            return "no records yet"
        if st.end is not None:
            return f"finished ({st.end.get('reason')})"
        alive, why = st.alive(now, pid_check)
        return "training" if alive else "stopped responding"

    def best_bpd(self) -> float | None:
        total = self.state.column("eval", "total")
        total = total[np.isfinite(total)]
        return float(total.min()) if len(total) else None


class RunsRead(Message):
    def __init__(self, done: bool = True):
        super().__init__()
        self.done = done


class RunsScreen(Screen):
    """The table of runs under a folder."""

    BINDINGS = [
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
        self.entries: dict[str, RunEntry] = {}
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
                    entry = self.entries[path.name] = RunEntry(path)
            try:
                with self.lock:
                    entry.update()
            except OSError:
                continue
            self.post_message(RunsRead(done=False))  # the table fills run by run while the rest are read
        self.post_message(RunsRead())

    def on_runs_read(self, m: RunsRead) -> None:
        self.ready = self.ready or m.done  # every run read once
        self._fill()

    def _fill(self) -> None:
        table = self.query_one(DataTable)
        now = self.clock()
        with self.lock:
            rows = []
            for name, e in sorted(self.entries.items()):
                best = e.best_bpd()
                st = e.state
                total = st.total_steps
                rows.append((name, "●" if name in self.marked else "", name, e.status(now, self.pid_check),
                             f"{st.step:,}" + (f"/{total:,}" if total and not st.time_binds() else ""),
                             f"{best:.3f}" if best is not None else "-", ago(st.record_age(now)) + " ago"
                             if st.last_time is not None else "-"))
        keep = table.cursor_row
        table.clear(columns=True)  # columns again: their widths follow the longest cell
        heads = ("", "run", "status", "steps", "best -ELBO b/d", "last update")
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


class OverlayScreen(Screen):
    """Several runs on the same axes, a colour each: train loss, and -ELBO in bits/dim."""

    BINDINGS = [Binding("escape", "app.pop_screen", "back"), Binding("l", "toggle_log", "log scale")]

    def __init__(self, runs: RunsScreen, names: list[str]):
        super().__init__()
        self.runs, self.names = runs, names
        self.log_scale = False

    def compose(self) -> ComposeResult:
        yield Readout(id="overlay-title")
        with Vertical(id="overlay-body"):
            yield Plot(id="overlay-loss")
            yield Plot(id="overlay-bpd")
        yield Readout(id="overlay-legend")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#overlay-title", Readout).update(f"[b]{len(self.names)} runs[/] on the same axes · by step")
        self.draw()

    def draw(self) -> None:
        loss, bpd, legend = [], [], []
        x_hi = 1.0
        with self.runs.lock:
            for i, name in enumerate(self.names):
                e = self.runs.entries.get(name)
                if e is None:
                    continue
                c = COLOURS[i % len(COLOURS)]
                st = e.state
                tx, ty = st.column("train", "step"), st.column("train", "loss")
                ex, ey = st.column("eval", "step"), st.column("eval", "total")
                x_hi = max(x_hi, float(tx[-1]) if len(tx) else 0.0, float(ex[-1]) if len(ex) else 0.0)
                loss.append(Series(name, tx, ty, c))
                bpd.append(Series(name, ex, ey, c))
                legend.append(f"[{c}]━ {name}[/]")
        lp, bp = self.query_one("#overlay-loss", Plot), self.query_one("#overlay-bpd", Plot)
        lp.set_series(loss, x_range=(0, x_hi))
        bp.set_series(bpd, x_range=(0, x_hi))
        log = " (log)" if self.log_scale else ""
        lp.border_title = "train loss" + log
        bp.border_title = "held-out -ELBO bits/dim" + log
        self.query_one("#overlay-legend", Readout).update("  ".join(legend))

    def action_toggle_log(self) -> None:
        self.log_scale = not self.log_scale
        for p in self.query(Plot):
            p.set_log(self.log_scale)
        self.draw()
