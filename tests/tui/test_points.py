"""2-D runs and chains in the terminal UI: the scatter of samples, the -ELBO references, the point chain screen."""

from pathlib import Path

import numpy as np
import pytest

from tui.app import ChainSource, VdmApp
from tui.cloud import Cloud, Frame, Path as Track, PointSamples, rasterise
from tui.gpu import GpuReader
from tui_fixtures import wait_for, write_run

anyio = pytest.mark.anyio
NO_GPU = dict(gpu_factory=lambda: GpuReader(nvml=object()))


def _train(root: Path, data: str) -> Path:
    """A tiny finished 2-D run: 2 epochs of 2,000 points, evaluated and sampled after each."""
    from vdm.config import fresh_config
    from vdm.train import Trainer

    cfg = fresh_config(dict(data=data, runs_dir=str(root), name=data, epochs=2, eval_every=1, sample_every=1,
                            eval_size=500, data_n=2000))
    run = root / data
    Trainer(cfg, run, echo=lambda *a: None).run()
    return run


@pytest.fixture(scope="module")
def gmm_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("runs"), "gmm")


@pytest.fixture(scope="module")
def moons_run(tmp_path_factory):
    return _train(tmp_path_factory.mktemp("runs"), "moons")


def _near_a_mode(points: np.ndarray, data: str = "gmm") -> float:
    """The share of points within 3 std of the nearest mean of the data's mixture (vdm.gmm.layout)."""
    from vdm.gmm import layout

    g = layout(data)
    d = np.sqrt(((points[:, None, :] - g.means.numpy()[None]) ** 2).sum(-1)).min(1)
    return float((d < 3 * g.std).mean())


async def _monitor_ready(pilot, s):
    await wait_for(pilot, lambda: s.points and s.sample_points is not None
                   and s.query_one("#point-samples", PointSamples).reference is not None
                   and len(s.state.eval["step"]) == 2, timeout=30)
    await pilot.pause(0.1)


@anyio
async def test_a_gmm_run_shows_its_samples_as_a_scatter_and_the_exact_references_by_name(gmm_run):
    import json

    from vdm.run import read_points, sample_grids, sample_path

    evals = [json.loads(l) for l in (gmm_run / "metrics.jsonl").read_text().splitlines() if '"eval"' in l]
    ref = evals[-1]["reference"]
    app = VdmApp(gmm_run, poll_interval=0.05, **NO_GPU)
    async with app.run_test(size=(100, 30)) as pilot:
        s = app.screen
        await _monitor_ready(pilot, s)
        assert not s.query_one("#samples").display and s.query_one("#point-samples").display
        panel = s.query_one("#point-samples", PointSamples)
        newest = read_points(sample_path(gmm_run, None, ".npy"))
        assert np.array_equal(panel.frame.clouds[0].points, newest)
        drawn = "".join(st.text for st in panel._strips)
        assert any(0x2801 <= ord(ch) <= 0x28FF for ch in drawn)  # braille dots: the samples
        assert "samples" in panel.border_title and "held-out" in panel.border_title

        bpd = s.query_one("#bpd-plot")
        assert "bits/dim of a density" in bpd.border_title and "uniform" not in bpd.border_title
        lines = {x.name: x for x in bpd.series}
        assert "uniform" not in lines
        assert lines["optimal denoiser"].y[0] == pytest.approx(ref["optimal"])
        assert lines["true -log p"].y[0] == pytest.approx(ref["nll"])
        legend = "".join(st.text for st in bpd._strips)
        assert f"optimal denoiser {ref['optimal']:.3f}±{ref['optimal_se']:.3f}" in legend
        assert f"true -log p {ref['nll']:.3f}" in legend

        # [ steps back through the samples the run kept, by step
        kept = sample_grids(gmm_run)
        await pilot.press("left_square_bracket")
        assert np.array_equal(panel.frame.clouds[0].points, read_points(sample_path(gmm_run, kept[0][0], ".npy")))
        assert f"step {kept[0][0]:,} · 1/{len(kept)}" in panel.border_subtitle
        await pilot.press("g")  # full screen: the same cloud, larger
        await pilot.pause(0.1)
        full = app.screen.query_one("#samples-full", PointSamples)
        assert np.array_equal(full.frame.clouds[0].points, panel.frame.clouds[0].points)


@anyio
async def test_a_moons_run_has_no_reference_lines_and_no_uniform_line(moons_run):
    app = VdmApp(moons_run, poll_interval=0.05, **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        await _monitor_ready(pilot, s)
        bpd = s.query_one("#bpd-plot")
        names = {x.name for x in bpd.series}
        assert "total" in names
        assert not names & {"optimal denoiser", "true -log p", "uniform"}
        assert "bits/dim of a density" in bpd.border_title
        assert s.query_one("#point-samples").display


@anyio
async def test_an_image_run_keeps_its_grid_and_the_uniform_line(tmp_path):
    from vdm.elbo import UNIFORM_BPD

    run = write_run(tmp_path / "run", n_train=20)
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1100.0, **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: s.sample_image is not None and len(s.state.eval["step"]) == 2)
        await pilot.pause(0.1)
        assert s.query_one("#samples").display and not s.query_one("#point-samples").display
        uniform = [x for x in s.query_one("#bpd-plot").series if x.name == "uniform"]
        assert len(uniform) == 1 and (uniform[0].y == UNIFORM_BPD).all()
        assert f"{UNIFORM_BPD:g}: uniform" in s.query_one("#bpd-plot").border_title


@anyio
async def test_the_backward_cloud_of_the_optimal_denoiser_ends_on_the_modes():
    """vdm tui --data gmm, 2 then b: from noise (few points at a mode) to the ring of modes (most points there)."""
    app = VdmApp(None, source=ChainSource(data="gmm"), start="chain", **NO_GPU)
    async with app.run_test(size=(100, 30)) as pilot:
        s = app.screen
        assert type(s).__name__ == "PointChainScreen"
        await wait_for(pilot, lambda: s.chains["forward"] is not None, timeout=30)
        panel = s.query_one("#cloud-xt")
        assert _near_a_mode(panel.frame.clouds[0].points) > 0.95  # x_0: the held-out points
        await pilot.press("end")
        x_T = panel.frame.clouds[0].points  # the forward chain at T: about N(0, I)
        assert np.std(x_T) == pytest.approx(1.0, abs=0.1) and _near_a_mode(x_T) < 0.3

        await pilot.press("b")
        await wait_for(pilot, lambda: s.chains["backward"] is not None, timeout=30)
        assert "optimal denoiser" in s.chains["backward"].denoiser
        start = panel.frame.clouds[0].points
        assert panel.frame.meta["t"] == 100 and _near_a_mode(start) < 0.3
        await pilot.press("end")
        assert panel.frame.meta["t"] == 0
        assert _near_a_mode(panel.frame.clouds[0].points) > 0.9
        # the x̂_0 field at t = 1 (one step back along the sampling): E[x_0 | x_1] moves the grid onto the modes
        await pilot.press("left")
        field = s.query_one("#cloud-field").frame
        assert field.meta["t"] == 1
        heads = field.segments[0].b
        near_grid = _near_a_mode(field.segments[0].a)
        assert _near_a_mode(heads) > near_grid


@anyio
async def test_the_point_chain_keys_fewer_steps_ddim_seed_and_other_paths():
    app = VdmApp(None, source=ChainSource(data="gmm"), start="chain", **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        await pilot.press("b")
        await wait_for(pilot, lambda: s.chains["backward"] is not None, timeout=30)
        panel = s.query_one("#cloud-xt")
        before = [p.xy.copy() for p in panel.frame.paths]
        await pilot.press("n")
        after = [p.xy for p in panel.frame.paths]
        assert len(after) == len(before) and not all(np.array_equal(a, b) for a, b in zip(before, after))
        await pilot.press("k")  # K = 50 of T = 100
        await wait_for(pilot, lambda: s.chains["backward"] is not None, timeout=30)
        assert s.chains["backward"].K == 50 and s.chains["backward"].steps[-1] == 100
        await pilot.press("d")
        await wait_for(pilot, lambda: s.chains["backward"] is not None, timeout=30)
        assert s.chains["backward"].sampler == "ddim"
        await pilot.press("end")
        assert _near_a_mode(panel.frame.clouds[0].points) > 0.9  # DDIM in 50 steps lands on the modes too
        seed = s.chains["backward"].seed
        await pilot.press("s")
        await wait_for(pilot, lambda: s.chains["backward"] is not None, timeout=30)
        assert s.chains["backward"].seed == seed + 1


@anyio
async def test_a_runs_chain_uses_its_model_and_o_switches_to_the_optimal_denoiser(gmm_run):
    app = VdmApp(gmm_run, source=ChainSource(gmm_run), start="chain", **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        await pilot.press("b")
        await wait_for(pilot, lambda: s.chains["backward"] is not None, timeout=30)
        assert s.chains["backward"].denoiser.startswith("gmm at step")
        await pilot.press("o")
        await wait_for(pilot, lambda: s.chains["backward"] is not None, timeout=30)
        assert "optimal denoiser" in s.chains["backward"].denoiser
        assert "optimal denoiser" in str(s.query_one("#cloud-info").render())


@anyio
async def test_moons_without_a_run_has_a_forward_chain_and_says_there_is_no_denoiser():
    app = VdmApp(None, source=ChainSource(data="moons"), start="chain", **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: s.chains["forward"] is not None, timeout=30)
        assert s.chains["forward"].field is None and s.query_one("#cloud-field").frame is None
        assert "no denoiser" in str(s.query_one("#cloud-info").render())
        assert "histogram" in s.query_one("#cloud-xt").border_subtitle
        # b asks for a backward chain there is no denoiser for: a sentence, then the forward chain again, not
        # panels that say "computing" for a chain that never comes
        await pilot.press("b")
        await wait_for(pilot, lambda: s.mode == "forward" and s.query_one("#cloud-xt").frame is not None, timeout=30)
        assert any("no exact denoiser" in n.message for n in app._notifications)


def test_a_point_lands_in_its_cell_and_colours_follow_the_terminal():
    # the view [-2, 2]^2 on 20 columns x 10 rows: x = y = 1.95 is the top right cell, its dot (row 0, col 1)
    f = Frame(2.0, clouds=(Cloud(np.array([[1.95, 1.95]]), (255, 150, 40)),))
    strips = rasterise(f, 20, 10, "truecolor")
    assert strips[0].text[19] == chr(0x2800 + 0x08) and strips[9].text.strip() == ""
    seg = [sg for sg in strips[0] if sg.text.strip()][0]
    assert seg.style.color.triplet is not None  # truecolor
    seg256 = [sg for sg in rasterise(f, 20, 10, "256")[0] if sg.text.strip()][0]
    assert seg256.style.color.number is not None and seg256.style.color.triplet is None  # an xterm colour
    # NO_COLOR: a density still shows, as characters in the cells without dots
    shade = Frame(2.0, shade=lambda res: np.ones((res, res)), paths=(Track(np.array([[0.0, 0.0]]), (255, 0, 0)),))
    mono = "".join(st.text for st in rasterise(shade, 20, 10, None, monochrome=True))
    assert "▒" in mono and "⣿" in mono


@anyio
async def test_the_run_list_opens_the_chain_screen_of_each_runs_kind(tmp_path, gmm_run):
    """An image run's chain screen first, then a 2-D run from the list: its chain screen is the point one."""
    import shutil

    from tui.chain import ChainScreen
    from tui.pointchain import PointChainScreen

    root = tmp_path / "runs"
    write_run(root / "a-images", n_train=20)
    shutil.copytree(gmm_run, root / "b-points")
    app = VdmApp(None, runs_root=root, clock=lambda: 1100.0, **NO_GPU)
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: getattr(app.screen, "ready", False))
        runs_screen = app.screen
        table = runs_screen.query_one("#runs-table")

        def to(name):  # the list is ranked by -ELBO: find the run by its name
            table.move_cursor(row=table.get_row_index(name))

        to("a-images")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is not runs_screen)
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, ChainScreen) and app.screen.chains["forward"] is not None)
        assert not isinstance(app.screen, PointChainScreen)
        app.switch_mode("runs")
        await pilot.pause(0.1)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen is runs_screen)
        to("b-points")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen is not runs_screen)
        await pilot.press("2")
        await wait_for(pilot, lambda: isinstance(app.screen, PointChainScreen)
                       and app.screen.chains["forward"] is not None, timeout=30)
        assert app.screen.source.run_dir == root / "b-points"
        assert app.screen.chains["forward"].denoiser.startswith("b-points at step")
