"""SVG snapshots of both screens at 80x24 with fixed content (pytest-textual-snapshot).

Deterministic: a fixed metrics file and sample grid, a frozen clock (elapsed and
ETA), a fake NVML, and chains with a fixed seed. Update the baselines with
`pytest tests/tui/test_snapshots.py --snapshot-update` after a deliberate change.
"""


from tui.app import ChainSource, VdmApp
from tui.gpu import GpuReader
from tui_fixtures import FakeNvml, five_runs, write_run


async def _until(pilot, cond, timeout=60.0):
    import time

    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out waiting for the app"
        await pilot.pause(0.05)


def test_monitor_screen(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the status line shows the run path: keep it the same on every machine
    write_run(tmp_path / "run", n_train=30)
    # one GPU reading, at mount: the panel's count of readings must not depend on how long the test takes
    app = VdmApp("run", poll_interval=0.05, clock=lambda: 1031.0, gpu_factory=lambda: GpuReader(nvml=FakeNvml()),
                 gpu_interval=3600.0)

    async def ready(pilot):
        s = app.screen
        await _until(pilot, lambda: len(s.state.train["step"]) == 30 and s.sample_image is not None)
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


def test_chain_screen_forward(snap_compare):
    app = VdmApp(None, source=ChainSource(T=20, index=5), start="chain", gpu_factory=lambda: GpuReader(nvml=object()))

    async def ready(pilot):
        await _until(pilot, lambda: app.screen.chains["forward"] is not None)
        await pilot.press("right", "right", "right", "right", "right", "right", "right")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


def test_chain_screen_backward_oracle(snap_compare):
    app = VdmApp(None, source=ChainSource(T=20, index=5), start="chain", gpu_factory=lambda: GpuReader(nvml=object()))

    async def ready(pilot):
        await pilot.press("b")
        await _until(pilot, lambda: app.screen.chains["backward"] is not None)
        await pilot.press("right_square_bracket", "right", "right")
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)



def test_run_list(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the title shows the folder: keep it the same on every machine
    five_runs(tmp_path / "runs")
    app = VdmApp(None, runs_root="runs", clock=lambda: 1100.0, gpu_factory=lambda: GpuReader(nvml=object()))

    async def ready(pilot):
        await _until(pilot, lambda: app.screen.ready)
        await pilot.pause(0.2)

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)


def test_overlay_of_five_runs(snap_compare, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    five_runs(tmp_path / "runs")
    app = VdmApp(None, runs_root="runs", clock=lambda: 1100.0, gpu_factory=lambda: GpuReader(nvml=object()))

    async def ready(pilot):
        await _until(pilot, lambda: app.screen.ready)
        await pilot.press("o")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=(80, 24), run_before=ready)
