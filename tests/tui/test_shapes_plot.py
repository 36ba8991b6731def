"""The monitor's plot of the cheap sample score: the share of tiles holding a shape, per sample record.

A shapes run's sample records carry vdm.score.cheap_score's fields (cheap_n, cheap_shapes, ...): the plot under
the -ELBO shows each one at its step (or wall time), in percent with its binomial error, beside the share the
classifier gives held-out images (measured, here replaced by a fixed number so no classifier runs). Runs whose
sample records have no cheap score (2-D points, CIFAR-10, older logs) do not show the plot.
"""

import json
import math

import numpy as np
import pytest

import tui.monitor as monitor
from tui.app import VdmApp
from tui.gpu import GpuReader
from tui.plot import Plot
from tui_fixtures import wait_for, write_run

NO_GPU = {"gpu_factory": lambda: GpuReader(nvml=object())}
anyio = pytest.mark.anyio
SHARES = [0.0, 4 / 36, 0.5, 0.75]  # cheap_shapes of the four sample records, in order
HELD_OUT = 0.97


def scored_run(path, sizes=(36, 36, 36, 36)):
    """write_run's run with cheap_score's fields in its four sample records (steps 20, 40, 60, 80)."""
    run = write_run(path)
    log = run / "metrics.jsonl"
    out, k = [], 0
    for line in log.read_text().splitlines():
        r = json.loads(line)
        if r["kind"] == "sample":
            r.update(cheap_n=sizes[k], cheap_shapes=SHARES[k], cheap_fd=900.0 - 100 * k, cheap_fd_heldout=400.0)
            k += 1
        out.append(json.dumps(r))
    log.write_text("\n".join(out) + "\n")
    assert k == len(SHARES)
    return run


def expected(run):
    """(steps, times, shares, sizes) of the sample records, read back with json (not the monitor's reader)."""
    recs = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    s = [r for r in recs if r["kind"] == "sample"]
    t0 = min(r["time"] for r in recs)
    return (np.array([r["step"] for r in s], float), np.array([r["time"] - t0 for r in s], float),
            np.array([r["cheap_shapes"] for r in s]), np.array([r["cheap_n"] for r in s], float))


@pytest.fixture
def held_out(monkeypatch):
    calls = []

    def fake(n=monitor.HELD_OUT_SHAPES):
        calls.append(n)
        return HELD_OUT

    monkeypatch.setattr(monitor, "held_out_shape_share", fake)
    return calls


def plot_text(plot: Plot) -> str:
    w, h = plot.content_size
    return "\n".join(plot.render_line(y).text for y in range(h))


@anyio
async def test_one_point_per_sample_record_at_its_step_in_percent_with_binomial_error(tmp_path, held_out):
    run = scored_run(tmp_path / "r")
    steps, times, p, n = expected(run)
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1041.0, **NO_GPU)
    async with app.run_test(size=(200, 50)) as pilot:
        s = app.screen
        plot = s.query_one("#shapes-plot", Plot)
        await wait_for(pilot, lambda: plot.display and len(plot.series) == 2)  # the points, then the held-out line
        pts, ref = plot.series
        assert np.array_equal(pts.x, steps) and list(steps) == [20, 40, 60, 80]
        assert np.allclose(pts.y, [0.0, 100 * 4 / 36, 50.0, 75.0])
        assert np.allclose(pts.err, [100 * math.sqrt(q * (1 - q) / 36) for q in SHARES])
        assert plot.y_range == (0.0, 100.0)  # a share: the whole 0-100 axis, not the data's range
        assert np.allclose(ref.y, 100 * HELD_OUT) and not ref.stats and held_out == [monitor.HELD_OUT_SHAPES]
        assert ref.key == "held-out 97%" and f"{monitor.HELD_OUT_SHAPES} images" in plot.border_subtitle
        # the same x window as the -ELBO plot above it
        assert plot.x_range == s.query_one("#bpd-plot", Plot).x_range
        assert "cheap" in plot.border_title and "36 samples each" in plot.border_title
        await pilot.pause(0.2)
        shown = plot_text(plot)
        # the newest point's value ± its error in the legend (75 % of 36: ±7.2), the axis from 0 to 100
        assert "samples 75.0±7.2 ↓0 ↑75" in shown and "held-out 97%" in shown
        assert "100┤" in shown and "0┤" in shown
        await pilot.press("w")  # x by wall time: each point at its record's time since the run's first record
        await wait_for(pilot, lambda: np.array_equal(plot.series[0].x, times))
        assert plot.x_range == s.query_one("#bpd-plot", Plot).x_range
        await pilot.press("l")  # log scale on every plot, named in its title
        assert plot.log_scale and "(log)" in plot.border_title and "cheap" in plot.border_title


@anyio
async def test_grids_of_different_sizes_name_the_range_and_each_its_own_error(tmp_path, held_out):
    run = scored_run(tmp_path / "r", sizes=(16, 36, 36, 64))
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1041.0, **NO_GPU)
    async with app.run_test(size=(200, 50)) as pilot:
        plot = app.screen.query_one("#shapes-plot", Plot)
        await wait_for(pilot, lambda: plot.display and len(plot.series) == 2)
        n = np.array([16, 36, 36, 64])
        assert np.allclose(plot.series[0].err, 100 * np.sqrt(np.array(SHARES) * (1 - np.array(SHARES)) / n))
        await pilot.pause(0.1)
        assert "16-64 samples each, cheap score" in plot.border_title


@anyio
async def test_a_run_without_cheap_scores_has_no_shapes_plot(tmp_path, held_out):
    run = write_run(tmp_path / "r")  # sample records without cheap_* (points, CIFAR-10, older logs)
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1041.0, **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: len(s.state.eval["step"]) == 4 and s.state.last_sample is not None)
        await pilot.pause(0.2)
        plot = s.query_one("#shapes-plot", Plot)
        assert not plot.display and held_out == []  # nothing measured for it either
        left = s.query_one("#monitor-left")
        loss, bpd = s.query_one("#loss-plot"), s.query_one("#bpd-plot")
        assert loss.outer_size.height + bpd.outer_size.height == left.size.height  # the two plots keep the room
        assert bpd.legend_rows is None


@anyio
@pytest.mark.parametrize("size", [(80, 24), (200, 50)])
async def test_three_plots_stay_readable(tmp_path, held_out, size):
    """At 80x24 the shapes plot takes the least room and every plot keeps rows of curve; at 200x50 all are roomy."""
    run = scored_run(tmp_path / "r")
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1041.0, **NO_GPU)
    async with app.run_test(size=size) as pilot:
        s = app.screen
        plot = s.query_one("#shapes-plot", Plot)
        await wait_for(pilot, lambda: plot.display and len(plot.series) == 2)
        await pilot.pause(0.3)
        loss, bpd = s.query_one("#loss-plot", Plot), s.query_one("#bpd-plot", Plot)
        left = s.query_one("#monitor-left")
        assert loss.outer_size.height + bpd.outer_size.height + plot.outer_size.height == left.size.height
        assert plot.outer_size.height <= min(loss.outer_size.height, bpd.outer_size.height)
        assert plot.outer_size.height >= (6 if size[1] < 30 else 10)
        for p in (loss, bpd, plot):  # rows of curve: the height less the x axis and the legend's lines
            text = plot_text(p).splitlines()
            curve_rows = sum(1 for line in text if "┤" in line or line.startswith(" " * 7 + "│"))
            assert curve_rows >= (2 if size[1] < 30 else 6), (p.id, text)
            assert "no points" not in "\n".join(text)
        assert "cheap" in plot.border_title and len(plot.border_title) <= plot.size.width - 4


def test_sample_scores_keep_only_records_with_a_share():
    rows = monitor.sample_scores([
        {"kind": "sample", "step": 10, "time": 5.0, "cheap_shapes": 0.25, "cheap_n": 36},
        {"kind": "sample", "step": 20, "time": 6.0, "n": 64},  # no cheap score
        {"kind": "sample", "step": 30, "cheap_shapes": 1.5, "cheap_n": 36},  # not a share
        {"kind": "sample", "step": 40, "cheap_shapes": 0.5, "cheap_n": 0},  # no tiles
        {"kind": "eval", "step": 50, "cheap_shapes": 0.5, "cheap_n": 36},
        {"kind": "sample", "step": 60, "cheap_shapes": 0.5, "cheap_n": 16},  # no time: NaN, kept
    ])
    assert [r[0] for r in rows] == [10, 60] and rows[0][1:] == (5.0, 0.25, 36) and math.isnan(rows[1][1])
