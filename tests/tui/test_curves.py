"""Curves people can read: smoothing, x by step or wall time, zoom and scroll, last / min / max, log scale.

Every number is checked against an independent route: a plain Python loop for the moving average,
json.loads of the metrics file for the values, the records' own `time` fields for the wall-time axis.
"""

import json
import math

import numpy as np
import pytest

from tui.app import VdmApp
from tui.gpu import GpuReader
from tui.plot import Series, View, ema, legend_lines, render, window_stats
from tui_fixtures import wait_for, write_run

NO_GPU = {"gpu_factory": lambda: GpuReader(nvml=object())}
anyio = pytest.mark.anyio


def _ema_loop(y, w):
    """TensorBoard's smoothing written out: s = w s + (1 - w) y over finite values, debiased by 1 - w^n."""
    out, s, n = [], 0.0, 0
    for v in y:
        if not math.isfinite(v):
            out.append(v)
            continue
        n += 1
        s = w * s + (1 - w) * v
        out.append(s / (1 - w ** n))
    return np.array(out)


@pytest.mark.parametrize("w", [0.0, 0.6, 0.9, 0.999])
def test_ema_is_tensorboards_debiased_average(w):
    rng = np.random.default_rng(1)
    y = rng.normal(1.0, 0.3, 3000)
    y[[5, 700, 701]] = [np.nan, np.inf, np.nan]  # skipped, left where they are
    got = ema(y, w)
    want = _ema_loop(y, w)
    assert np.array_equal(np.isfinite(got), np.isfinite(want))
    ok = np.isfinite(want)
    assert np.allclose(got[ok], want[ok], rtol=1e-12, atol=1e-12)
    assert got[0] == pytest.approx(y[0])  # debiased: the first point is itself, not pulled to 0
    if w:
        assert got[ok].std() < y[np.isfinite(y)].std()


def test_view_zooms_at_the_newest_point_scrolls_back_and_follows_again():
    v = View()
    assert v.window(0, 100) == (0, 100)
    v.zoom_by(2, 0, 100)
    v.zoom_by(2, 0, 100)
    assert v.zoom == 4 and v.window(0, 100) == (75, 100) and v.end is None  # following the newest point
    assert v.window(0, 200) == (150, 200)  # the run grew: the window moves with it
    v.scroll(-0.25, 0, 200)
    assert v.window(0, 200) == (137.5, 187.5) and v.end == 187.5  # back a quarter of the window
    assert v.window(0, 400) == (87.5, 187.5)  # scrolled back: its end stays put as the run grows
    for _ in range(100):
        v.scroll(-0.25, 0, 400)
    assert v.window(0, 400) == (0, 100)  # no further than the start
    v.zoom_by(0.5, 0, 400)
    assert v.zoom == 2 and v.window(0, 400) == (0, 200)
    for _ in range(100):
        v.scroll(0.25, 0, 400)
    assert v.end is None and v.window(0, 400) == (200, 400)  # at the end again: following
    v.reset()
    assert v.window(0, 400) == (0, 400) and "all" in v.describe()


def test_window_stats_and_legend_are_of_the_points_in_view():
    x = np.arange(100, dtype=float)
    y = (x - 30) ** 2
    assert window_stats(x, y, 0, 99) == (69 ** 2, 0.0, 69 ** 2)
    assert window_stats(x, y, 50, 60) == (900.0, 400.0, 900.0)
    assert window_stats(x, y, 200, 300) is None
    rows = legend_lines([Series("a", x, y, "cyan"), Series("raw", x, y, "cyan", faint=True),
                         Series("ref", x, y, "grey50", stats=False)], 60, 50, 60)
    line = "".join(t for t, _ in rows[0])
    assert line == "━ a 900 ↓400 ↑900" and len(rows) == 1  # faint and reference series have no entry


def test_a_zoomed_plot_draws_only_its_window_and_scales_y_to_it():
    x = np.arange(1000, dtype=float)
    y = np.where(x < 500, 100.0, 1.0 + x / 1000)  # a huge start, a small rise later
    strips = render([Series("a", x, y, "cyan")], 50, 10, x_range=(600, 900), legend=True)
    labels = [s.text[:7].strip() for s in strips[:-2]]
    assert labels[0] == "1.9" and "1.6" in labels[-1]  # y follows the window, not the 100 outside it
    assert "600" in strips[-2].text and "900" in strips[-2].text
    assert "━ a 1.9 ↓1.6 ↑1.9" in strips[-1].text


def _loss_plot(app):
    return app.screen.query_one("#loss-plot")


@anyio
async def test_monitor_keys_smooth_switch_to_wall_time_zoom_and_scroll(tmp_path):
    run = write_run(tmp_path / "run", n_train=40)
    recs = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in recs if r["kind"] == "train"]
    evals = [r for r in recs if r["kind"] == "eval"]
    loss = np.array([r["loss"] for r in train])
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1041.0, **NO_GPU)
    async with app.run_test(size=(100, 30)) as pilot:
        s = app.screen
        # the plot is redrawn at the refresh after the state has the rows (a loaded CI run saw it between)
        await wait_for(pilot, lambda: len(s.state.train["step"]) == 40 and len(_loss_plot(app).series) == 2
                       and len(_loss_plot(app).series[0].y) == 40)
        plot = _loss_plot(app)
        assert plot.border_subtitle == "x step · raw · all"
        assert np.array_equal(plot.series[0].y, loss)
        await pilot.pause(0.2)
        shown = "".join(st.text for st in plot._strips)
        # last, min and max of each series, by json.loads of the file
        assert f"━ train {loss[-1]:.4g} ↓{loss.min():.3g} ↑{loss.max():.3g}" in shown
        ev = [r["eval_loss"] for r in evals]
        assert f"━ held-out {ev[-1]:.4g} ↓{min(ev):.3g} ↑{max(ev):.3g}" in shown

        await pilot.press("s", "s", "s")  # 0.6, 0.8, 0.9
        assert plot.border_subtitle == "x step · EMA 0.9 · all"
        smooth, raw = plot.series[0], [x for x in plot.series if x.faint][0]
        assert np.allclose(smooth.y, _ema_loop(loss, 0.9)) and np.array_equal(raw.y, loss)
        await pilot.press("S")
        assert "EMA 0.8" in plot.border_subtitle

        await pilot.press("w")  # wall time: each record's `time` less the run's first record's
        assert "x wall time" in plot.border_subtitle
        t0 = min(r["time"] for r in recs)
        assert np.array_equal(plot.series[0].x, np.array([r["time"] for r in train]) - t0)
        held = [x for x in plot.series if x.name == "held-out"][0]
        assert np.array_equal(held.x, np.array([r["time"] for r in evals]) - t0)
        await pilot.pause(0.2)
        assert "0:00:40" in plot._strips[-3].text  # the x axis in h:mm:ss (40 s of records)

        await pilot.press("plus", "plus")  # a quarter of the history, at its newest end
        assert plot.x_range == (30.0, 40.0) and "zoom 4x" in plot.border_subtitle
        bpd = app.screen.query_one("#bpd-plot")
        assert bpd.x_range == plot.x_range  # both plots share the view
        await pilot.pause(0.2)
        inside = loss[(np.array([r["time"] for r in train]) - t0) >= 30]
        shown = "".join(st.text for st in plot._strips)
        assert f"━ train {inside[-1]:.4g} ↓{inside.min():.3g} ↑{inside.max():.3g}" in shown  # stats in view
        await pilot.press("left", "left")
        assert plot.x_range == (25.0, 35.0) and "◀" in plot.border_subtitle
        await pilot.press("right", "right", "right")
        assert plot.x_range == (30.0, 40.0) and "◀" not in plot.border_subtitle
        await pilot.press("0", "w")
        assert plot.x_range == (0.0, 80.0) and plot.border_subtitle == "x step · EMA 0.8 · all"


@anyio
async def test_log_scale_on_every_plot_of_the_monitor_and_the_overlay(tmp_path):
    root = tmp_path / "runs"
    for name in ("a", "b"):
        write_run(root / name, n_train=20, with_sample=False)
    app = VdmApp(None, runs_root=root, clock=lambda: 1100.0, **NO_GPU)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: app.screen.ready)
        await pilot.press("o")
        await wait_for(pilot, lambda: getattr(app.screen, "pending", 1) == 0)
        await pilot.press("l", "s", "w")
        plots = list(app.screen.query("Plot"))
        assert len(plots) == 2 and all(p.log_scale for p in plots)
        assert all("(log)" in p.border_title for p in plots)
        loss = app.screen.query_one("#overlay-loss")
        assert "EMA 0.6" in loss.border_subtitle and "wall time" in loss.border_subtitle
        assert sum(x.faint for x in loss.series) == 2  # each run's raw curve behind its smoothing
        await pilot.press("escape", "enter")  # the monitor of run a
        await wait_for(pilot, lambda: len(app.screen.query("#loss-plot")) == 1)
        await pilot.press("l")
        assert all(p.log_scale for p in app.screen.query("Plot"))
        assert all("(log)" in p.border_title for p in app.screen.query("Plot"))


# -- samples over time ----------------------------------------------------------------------------

def _grids(run, steps):
    """samples/step-*.png as vdm.train names them, each grid different (the images shifted by the step),
    and latest.png a copy of the last."""
    from vdm.data import shapes
    from vdm.images import grid, save_png

    x = shapes(4, "test")[0]
    for s in steps:
        g = grid(x.roll(s // 20, 0), scale=2)
        save_png(g, run / "samples" / f"step-{s:08d}.png")
    save_png(g, run / "samples" / "latest.png")


@anyio
async def test_samples_over_time_step_back_and_forth_through_every_grid(tmp_path):
    from PIL import Image

    from tui.image import grid_tiles

    run = write_run(tmp_path / "run", n_train=40, with_sample=False)
    _grids(run, [20, 40, 60, 80])
    (run / "samples" / "notes.png").write_bytes(b"not a grid of the trainer's")  # not step-*.png: not listed

    def tiles_of(step):  # independently: the file read by PIL, cut into tiles
        return grid_tiles(np.asarray(Image.open(run / "samples" / f"step-{step:08d}.png").convert("RGB")))

    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1041.0, **NO_GPU)
    async with app.run_test(size=(100, 30)) as pilot:
        s = app.screen
        w = s.query_one("#samples")
        # the label follows the grid list at the panel's next refresh (a loaded machine showed "step 80" first)
        await wait_for(pilot, lambda: s.sample_image is not None and len(s.grids) == 4
                       and w.border_subtitle.startswith("step 80 · newest 4/4"))
        assert np.array_equal(w.tiles, tiles_of(80))
        await pilot.press("left_square_bracket")
        assert np.array_equal(w.tiles, tiles_of(60)) and w.border_subtitle.startswith("step 60 · grid 3/4")
        await pilot.press("left_square_bracket", "left_square_bracket", "left_square_bracket")  # no further than the first
        assert np.array_equal(w.tiles, tiles_of(20)) and "step 20 · grid 1/4" in w.border_subtitle
        assert not np.array_equal(tiles_of(20), tiles_of(40))  # the grids differ: the test can tell them apart
        await pilot.press("right_square_bracket")
        assert np.array_equal(w.tiles, tiles_of(40))
        await pilot.pause(0.2)
        assert "(4 of 4)" in w.border_title  # every tile shown, separated (the mosaic)
        await pilot.press("g")  # full screen shows the grid scrubbed to, and scrubs too
        full = app.screen.query_one("#samples-full")
        assert np.array_equal(full.tiles, tiles_of(40)) and "step 40 · grid 2/4" in str(app.screen.query_one(
            "#samples-full-label").render())
        await pilot.press("right_square_bracket")
        assert np.array_equal(full.tiles, tiles_of(60))
        await pilot.press("escape", "right_square_bracket", "right_square_bracket")
        assert s.grid_pos is None and "newest" in w.border_subtitle  # following new grids again
        _grids(run, [100])  # the trainer writes another
        await wait_for(pilot, lambda: len(s.grids) == 5)
        await wait_for(pilot, lambda: np.array_equal(w.tiles, tiles_of(100)))


def test_unknown_fields_of_any_kind_are_skipped_not_counted_bad(tmp_path):
    """Another trainer may add fields (a learned schedule's gamma_min / gamma_max, nested or not):
    the columns, the summary of the run list and the state read past them."""
    from tui.run_state import RunState
    from tui_fixtures import record
    from vdm.tailer import MetricsTailer, SummaryTailer

    path = tmp_path / "metrics.jsonl"
    lines = [record("start", 1.0, step=0, total_steps=10, pid=1, gamma_min=-13.3, schedule={"kind": "learned"})]
    for i in range(1, 11):
        lines.append(record("train", 1.0 + i, step=i, loss=1.0 / i, elapsed=float(i), gamma_min=-13.3 + i,
                            gamma_max=5.0, extra={"kind": "eval", "deep": [1, {"a": None}]}))
    lines.append(record("eval", 12.0, step=10, eval_loss=0.2, gamma_min=-12.0, gamma_max=4.9,
                        bpd={"total": 3.0, "reconstruction": 1.0, "prior": 0.5, "matching": 1.5, "gamma": 7.0}))
    path.write_text("".join(lines))
    for tailer in (MetricsTailer(path), SummaryTailer(path, keep=4)):
        st = RunState()
        st.add(tailer.poll())
        assert st.bad == 0 and tailer.bad == 0
        assert st.column("eval", "total").tolist() == [3.0] and st.column("eval", "time").tolist() == [12.0]
        steps = st.column("train", "step").tolist()
        assert steps == ([8.0, 9.0, 10.0] if isinstance(tailer, SummaryTailer) else list(range(1, 11)))
        assert st.column("train", "time").tolist() == [1.0 + s for s in steps]
        assert st.step == 10 and st.total_steps == 10 and st.first_time == 1.0
