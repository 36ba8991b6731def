"""Every -ELBO on screen carries its error; runs rank by their newest -ELBO; the run's state is exact (stopping,
killed by a signal, an emptied log); the ETA holds the run's end."""

from __future__ import annotations

import json
import signal

import numpy as np
import pytest
from rich.style import Style

from tui.app import VdmApp
from tui.gpu import GpuReader
from tui.monitor import exit_reason
from tui.plot import Series, render, with_error
from tui.run_list import RunsScreen
from tui.run_state import RunState
from tui_fixtures import record, text, wait_for, write_run
from vdm.tailer import parse_batch

NO_GPU = dict(gpu_factory=lambda: GpuReader(nvml=object()))


def _state(*lines: str) -> RunState:
    st = RunState()
    st.add(parse_batch("".join(lines).encode()))
    return st


def test_a_value_is_written_to_the_digits_its_error_allows():
    assert with_error(6.78123, 0.0431) == "6.781±0.043"
    assert with_error(115.4, 4.19) == "115.4±4.2"
    assert with_error(0.51234, 0.00012) == "0.51234±0.00012"
    assert with_error(7.0, None) == "7"  # no error stated: the plain number


def test_error_bars_reach_from_y_minus_to_y_plus_the_error():
    """One point at y = 0 with error 1 between two far points: dots above and below it, in its column only."""
    x, y = np.array([0.0, 1.0, 2.0]), np.array([10.0, 0.0, -10.0])
    s = Series("total", x, y, "red", err=np.array([0.0, 5.0, 0.0]))
    strips = render([s], 8 + 21, 21)  # 20 rows of plot and its axis
    # the middle point's column: dots from y = 5 to y = -5, a quarter of the plot's height each way
    col = 8 + 10
    dim = [i for i, st in enumerate(strips[:-1]) if any(seg.style and seg.style.dim
                                                          for seg in st.crop(col, col + 1)._segments)]
    assert dim, "no error bar drawn"
    assert min(dim) < 10 < max(dim)  # above and below the point (the middle row)
    # the legend says the newest value with its error
    legend = "".join(seg.text for seg in render([s], 60, 8, legend=True)[-1]._segments)
    assert "total -10±0" not in legend and "━ total -10 " in legend  # its newest point states 0: no ± then
    s2 = Series("total", x, y, "red", err=np.array([0.0, 5.0, 0.25]))
    legend = "".join(seg.text for seg in render([s2], 60, 8, legend=True)[-1]._segments)
    assert "━ total -10.00±0.25" in legend


@pytest.mark.anyio
async def test_the_monitor_shows_the_elbo_with_its_error_everywhere(tmp_path):
    run = write_run(tmp_path / "run", n_train=30)
    ev = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if '"eval"' in l][-1]
    want = with_error(ev["bpd"]["total"], ev["bpd_mc_se"])
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1031.0, **NO_GPU)
    async with app.run_test(size=(120, 40)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: len(s.state.train["step"]) == 30 and want in text(app, "#stats"))
        assert f"-ELBO {want}" in text(app, "#status")
        assert f"-ELBO {want} bits/dim · step {ev['step']}" in text(app, "#stats")
        bpd = s.query_one("#bpd-plot")
        total = next(x for x in bpd.series if x.name == "total")
        assert total.err is not None and total.err[-1] == pytest.approx(ev["bpd_mc_se"])
        # what evaluating and sampling cost: 3 evaluations and 3 grids of 0.5 s in 30 s of training
        assert "eval+samples 3 s, 10% of the time" in text(app, "#stats")


@pytest.mark.anyio
async def test_the_info_panel_says_how_many_tiles_of_the_newest_grid_hold_a_shape(tmp_path):
    """The trainer scores each grid (vdm.score.cheap_score); the panel reads the newest sample record's score."""
    run = write_run(tmp_path / "run", n_train=30)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(record("sample", 1032.0, step=31, epoch=3, path="samples/latest.png", n=36, cheap_n=36,
                       cheap_shapes=9 / 36, cheap_fd=837.0, cheap_fd_heldout=418.0))
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1033.0, **NO_GPU)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: "tiles hold a shape" in text(app, "#stats"))
        assert "grid: 9 of 36 tiles hold a shape" in text(app, "#stats")


def _run(root, name, evals):
    run = root / name
    run.mkdir()
    lines = [record("start", 1000.0, step=0, epoch=0, device="cpu", config={"epochs": 1}, total_steps=10, pid=1)]
    for i, (v, se) in enumerate(evals):
        lines.append(record("eval", 1001.0 + i, step=i + 1, epoch=0, eval_loss=0.1, bpd={"total": v},
                            bpd_mc_se=se))
    lines.append(record("end", 1010.0, step=10, epoch=1, reason="done", elapsed=9.0))
    (run / "metrics.jsonl").write_text("".join(lines))


@pytest.mark.anyio
async def test_runs_rank_by_their_newest_elbo_with_its_error_not_their_luckiest(tmp_path):
    _run(tmp_path, "a-lucky", [(10.0, 0.5), (12.0, 0.5)])  # its best draw was the lowest of all, its last is not
    _run(tmp_path, "b-steady", [(11.5, 0.1), (11.0, 0.1)])
    _run(tmp_path, "c-none", [])
    app = VdmApp(None, runs_root=tmp_path, clock=lambda: 1020.0, **NO_GPU)
    async with app.run_test(size=(120, 30)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.ready
                       and app.screen.query_one("#runs-table").row_count == 3)
        table = app.screen.query_one("#runs-table")
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(3)]
        assert [r[1] for r in rows] == ["b-steady", "a-lucky", "c-none"], rows
        assert rows[0][4] == "11.00±0.10" and rows[1][4] == "12.00±0.50" and rows[2][4] == "-"
        assert any("-ELBO" in str(c.label) and "last" in str(c.label) for c in table.columns.values())


START = record("start", 1000.0, step=0, epoch=0, device="cpu", config={"epochs": 100, "minutes": 1, "n_samples": 64},
               total_steps=10_000, pid=1)


def _trains(n, t0=1000.0):
    return [record("train", t0 + i, step=10 * i, epoch=i / 100, loss=0.5, elapsed=float(i)) for i in range(1, n + 1)]


def test_the_eta_holds_the_final_evaluation_and_grid():
    """50 s of a 60 s limit done: 10 s of training left, then an evaluation (4 s) and a full grid (a 16-sample grid
    took 3 s, so 64 take 12 s)."""
    st = _state(START, *_trains(50), record("eval", 1050.0, step=500, bpd={"total": 7.0}, seconds=4.0),
                record("sample", 1050.0, step=500, path="s.png", seconds=3.0, n=16))
    assert st.time_binds()
    assert st.eta(1050.0) == pytest.approx(10.0 + 4.0 + 12.0)


def test_a_stopping_run_says_so_until_its_end_and_keeps_its_progress_basis():
    lines = [START, *_trains(50), record("eval", 1050.0, step=500, bpd={"total": 7.0}, seconds=4.0),
             record("sample", 1050.0, step=500, path="s.png", seconds=12.0, n=64)]
    st = _state(*lines)
    st.stop_asked = True  # the monitor sent SIGINT: stopping at once, before the trainer writes anything
    assert st.is_stopping and st.eta(1050.0) == pytest.approx(16.0)  # its end alone: evaluation and grid
    st = _state(*lines, record("stopping", 1051.0, step=500, reason="SIGINT", elapsed=51.0))
    assert st.is_stopping and st.eta(1055.0) == pytest.approx(12.0)  # counted from the stop
    before = st.progress(1060.0)
    st.add(parse_batch(record("end", 1070.0, step=500, epoch=5, reason="SIGINT", elapsed=51.0).encode()))
    assert not st.is_stopping and st.time_binds()  # the time basis it had, not 500 of 10,000 steps
    assert st.progress(1070.0) == pytest.approx(51.0 / 60.0) and before == pytest.approx(51.0 / 60.0, abs=0.2)


@pytest.mark.anyio
async def test_the_status_line_says_stopping_from_the_stop_until_the_end(tmp_path):
    run = write_run(tmp_path / "run", n_train=5, with_sample=False)
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1006.0, **NO_GPU)
    async with app.run_test(size=(100, 30)) as pilot:
        s = app.screen
        s.pid_check = lambda pid: True
        await wait_for(pilot, lambda: len(s.state.train["step"]) == 5 and "training" in text(app, "#status"))
        s.stop_asked()
        assert "stopping" in text(app, "#status") and not s.check_action("stop_run", ())
        with open(run / "metrics.jsonl", "a") as f:
            f.write(record("end", 1007.0, step=10, epoch=0.5, reason="SIGINT", elapsed=6.0))
        await wait_for(pilot, lambda: "finished (SIGINT)" in text(app, "#status"))


def test_a_signal_is_named_as_the_reason():
    assert exit_reason(-signal.SIGKILL) == "killed by SIGKILL"
    assert exit_reason(-signal.SIGTERM) == "killed by SIGTERM"
    assert exit_reason(1) == "the training process exited with status 1"


@pytest.mark.anyio
async def test_a_run_killed_before_its_first_evaluation_does_not_promise_one(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(record("start", 1000.0, step=0, epoch=0, device="cpu", config={"epochs": 2},
                                              total_steps=80, pid=1) + "".join(_trains(3)))
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1004.0, **NO_GPU)
    async with app.run_test(size=(100, 30)) as pilot:
        s = app.screen
        s.pid_check = lambda pid: False  # the trainer is gone
        await wait_for(pilot, lambda: len(s.state.train["step"]) == 3)
        s._drawn_version = -1
        s._draw()
        assert "run ended before its first evaluation" in text(app, "#stats")
        assert "after the first" not in text(app, "#stats")


@pytest.mark.anyio
async def test_an_emptied_log_empties_the_bar(tmp_path):
    run = write_run(tmp_path / "run", n_train=40, with_sample=False)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(record("end", 1041.0, step=80, epoch=4, reason="done", elapsed=40.0))
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1042.0, **NO_GPU)
    async with app.run_test(size=(100, 30)) as pilot:
        s = app.screen
        bar = s.query_one("#steps-bar")
        await wait_for(pilot, lambda: s.state.end is not None and bar.percentage == 1.0)
        (run / "metrics.jsonl").write_text("")
        await wait_for(pilot, lambda: s.state.start is None and "waiting for the first record" in text(app, "#status"))
        s._tick()
        assert bar.percentage == 0.0
