"""Issue 13: the monitor tells the truth, never crashes on odd input, asks before stopping, lists runs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hs

from tui.app import VdmApp
from tui.gpu import GpuReader
from tui.run_state import RunState
from tui_fixtures import FakeNvml, FakeTraining, five_runs, record, text, wait_for, write_run
from vdm.tailer import parse_batch

ROOT = Path(__file__).resolve().parents[2]
NO_GPU = dict(gpu_factory=lambda: GpuReader(nvml=object()))



def dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


# -- 1. tracebacks ----------------------------------------------------------------------

@pytest.mark.anyio
async def test_no_color_draws_the_monitor_without_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    run = write_run(tmp_path / "run", n_train=20)
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1021.0, **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: len(s.state.train["step"]) == 20 and s.sample_image is not None)
        await pilot.pause(0.3)
        shot = app.export_screenshot()  # draws every widget through the NO_COLOR filter
        assert app.no_color and "loss" in shot and "samples" in shot


def test_vdm_tui_on_a_file_is_one_sentence(tmp_path):
    target = tmp_path / "README.md"
    target.write_text("# not a run\n")
    out = subprocess.run([sys.executable, "-m", "vdm_cli", "tui", str(target)], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert out.returncode != 0
    assert "Traceback" not in out.stderr and "is a file, not a run directory" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_vdm_tui_on_a_folder_that_does_not_exist_is_one_sentence(tmp_path):
    """A typo is said at once with a non-zero exit, not waited on for ever."""
    target = tmp_path / "runs" / "does-not-exist-yet"
    out = subprocess.run([sys.executable, "-m", "vdm_cli", "tui", str(target)], capture_output=True, text=True,
                         timeout=60, cwd=ROOT, stdin=subprocess.DEVNULL)
    assert out.returncode != 0 and not target.exists()
    assert "Traceback" not in out.stderr and f"{target} does not exist" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


ODD = hs.one_of(hs.none(), hs.booleans(), hs.text(max_size=5), hs.integers(-2**70, 2**70),
                hs.floats(allow_nan=False, allow_infinity=False), hs.lists(hs.integers(), max_size=2),
                hs.dictionaries(hs.text(max_size=3), hs.integers(), max_size=2))
FIELDS = {
    "start": ["step", "epoch", "device", "config", "parameters", "steps_per_epoch", "total_steps", "pid"],
    "train": ["step", "epoch", "loss", "lr", "grad_norm", "images_per_s", "elapsed", "device", "memory_mb"],
    "eval": ["step", "epoch", "eval_loss", "bpd"],
    "sample": ["step", "epoch", "path"],
    "end": ["step", "epoch", "reason", "elapsed"],
}


@hs.composite
def odd_record(draw):
    kind = draw(hs.sampled_from(sorted(FIELDS)))
    r = {"v": 1, "kind": kind, "time": draw(hs.one_of(hs.floats(0, 2e9), ODD))}
    for f in FIELDS[kind]:
        if draw(hs.booleans()):
            r[f] = draw(ODD)
    if kind == "start" and draw(hs.booleans()):
        r["config"] = {k: draw(ODD) for k in ("epochs", "minutes")}
    if kind == "eval" and draw(hs.booleans()):
        r["bpd"] = {k: draw(ODD) for k in ("total", "reconstruction", "prior", "matching")}
    return r


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hs.lists(odd_record(), min_size=1, max_size=8))
def test_odd_values_in_every_record_kind_are_skipped_and_counted(recs):
    st = RunState()
    lines = b"".join(json.dumps(r).encode() + b"\n" for r in recs)
    batch = parse_batch(lines)
    st.add(batch)
    assert st.records + st.bad == len(recs)
    # everything the status line reads, at any clock
    for now in (0.0, 1e9, 3e9):
        st.step, st.total_steps, st.epoch, st.epochs, st.config, st.minutes, st.pid, st.device
        st.elapsed(now), st.eta(now), st.progress(now), st.time_binds(), st.alive(now, lambda p: True)
        st.record_age(now)
    assert isinstance(st.config, dict)


@pytest.mark.anyio
async def test_a_start_record_of_strings_is_counted_not_a_crash(tmp_path):
    run = write_run(tmp_path / "run", n_train=3, with_sample=False)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(record("start", 1100.0, step="ten", total_steps="x", config="epochs=4", pid=1))
        f.write(record("start", 1101.0, step=6, total_steps=80, config={"epochs": "four", "minutes": "x"}, pid=1))
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1102.0, **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: s.state.records + s.state.bad >= 6)
        await pilot.pause(0.3)
        assert s.state.bad == 1  # the first: step, total_steps and config of the wrong type
        assert "step 6/80" in text(app, "#progress-text")  # the second: its odd config reads as none
        assert app.is_running


async def mark(pilot, runs, *names) -> None:
    """Mark runs of the list by name (space on each row): the list is ranked by -ELBO, not by name."""
    table = runs.query_one("#runs-table")
    for name in names:
        table.move_cursor(row=table.get_row_index(name))
        await pilot.press("space")


# -- 2. a dead trainer ------------------------------------------------------------------

@pytest.mark.anyio
async def test_a_killed_trainer_shows_as_stopped_responding_and_its_clock_stops(tmp_path):
    run = write_run(tmp_path / "run", n_train=5, with_sample=False)
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    start = json.loads(lines[0])
    start["pid"] = dead_pid()
    (run / "metrics.jsonl").write_text(json.dumps(start) + "\n" + "".join(lines[1:]))
    now = [1010.0]
    app = VdmApp(run, poll_interval=0.05, clock=lambda: now[0], **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: len(s.state.train["step"]) == 5)
        await pilot.pause(0.2)
        status, prog = text(app, "#status"), text(app, "#progress-text")
        assert "stopped responding" in status and f"pid {start['pid']} is gone" in status, status
        assert "training" not in status.replace("stopped responding", "")
        assert "last record 5 s ago" in status
        assert "ETA -" in prog and "0:00:05" in prog  # the training time of the last record, not 0:00:10
        now[0] = 1500.0
        s._tick()
        assert "0:00:05" in text(app, "#progress-text")  # does not count on


@pytest.mark.anyio
async def test_a_trainer_that_went_quiet_shows_as_stopped_responding(tmp_path):
    run = write_run(tmp_path / "run", n_train=5, with_sample=False)  # pid 1: alive
    now = [1006.0]
    app = VdmApp(run, poll_interval=0.05, clock=lambda: now[0], **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: len(s.state.train["step"]) == 5)
        await pilot.pause(0.2)
        assert "[green]" not in s.query_one("#status")._markup or "training" in text(app, "#status")
        assert "stopped responding" not in text(app, "#status")
        now[0] = 1005.0 + 600  # ten minutes without a record from a trainer that writes every second
        s._tick()
        status = text(app, "#status")
        assert "stopped responding" in status and "no record for 10 min, usually one every 1 s" in status and "10 min ago" in status


# -- 3. quitting --------------------------------------------------------------------------



@pytest.mark.anyio
async def test_the_palettes_quit_asks_and_enter_detaches(tmp_path):
    from tui.dialogs import QuitScreen

    run = write_run(tmp_path / "run", n_train=3, with_sample=False)
    proc = FakeTraining()
    app = VdmApp(run, process=proc, poll_interval=0.05, **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        await app.run_action("quit")  # what the command palette's "Quit" runs
        await wait_for(pilot, lambda: isinstance(app.screen, QuitScreen))
        assert app.is_running and not proc.stopped
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.outcome == "detached", 10)
    assert not proc.stopped


@pytest.mark.anyio
async def test_a_reattached_monitor_stops_its_run_after_asking(tmp_path):
    from tui.dialogs import StopScreen

    # SIGINT's default action in the fake trainer, as in one started from a shell: a child inherits an ignored
    # SIGINT from its parent (and Python then installs no handler), whatever ran before in this test process
    trainer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        run = write_run(tmp_path / "run", n_train=5, with_sample=False)
        lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
        start = json.loads(lines[0])
        start["pid"] = trainer.pid
        (run / "metrics.jsonl").write_text(json.dumps(start) + "\n" + "".join(lines[1:]))
        app = VdmApp(run, poll_interval=0.05, clock=lambda: 1006.0, **NO_GPU)
        async with app.run_test(size=(80, 24)) as pilot:
            s = app.screen
            await wait_for(pilot, lambda: len(s.state.train["step"]) == 5)
            await wait_for(pilot, lambda: "stop run" in _footer(app))  # a live trainer: x is offered
            # wait for each screen rather than a fixed pause: on a busy machine the dialog comes later, and a key
            # pressed before it lands on the monitor (s: smoothing) instead of the dialog
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, StopScreen))
            await pilot.press("enter")  # the default is Cancel
            await wait_for(pilot, lambda: not isinstance(app.screen, StopScreen))
            assert trainer.poll() is None
            await pilot.press("x")
            await wait_for(pilot, lambda: isinstance(app.screen, StopScreen))
            await pilot.press("s")
            # awaited, not trainer.wait(): a blocking wait would hold up the very loop that sends the signal
            await wait_for(pilot, lambda: trainer.poll() is not None, timeout=10)
            assert trainer.returncode == -signal.SIGINT  # python's default SIGINT handler: KeyboardInterrupt
    finally:
        if trainer.poll() is None:
            trainer.kill()


def _footer(app) -> list[str]:
    return [k.description for k in app.screen.query("FooterKey")]


@pytest.mark.anyio
async def test_a_finished_run_offers_no_stop_key(tmp_path):
    run = write_run(tmp_path / "run", n_train=5, with_sample=False)
    with open(run / "metrics.jsonl", "a") as f:
        f.write(record("end", 1006.0, step=10, epoch=0.5, reason="time limit", elapsed=6.0))
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1010.0, **NO_GPU)
    async with app.run_test(size=(200, 50)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: s.state.end is not None and "finished" in text(app, "#status"))
        await pilot.pause(0.2)
        keys = _footer(app)
        assert "reload" in keys and "stop run" not in keys  # the footer is there, without x


# -- 5. progress follows the limit that binds -------------------------------------------

def _timed_run(run: Path, end: bool) -> Path:
    """A 4-minute run of 200 epochs that reaches step 2,623 (the issue's example)."""
    run.mkdir(parents=True)
    cfg = {"epochs": 200, "minutes": 4}
    lines = [record("start", 0.0, step=0, epoch=0, device="cpu", config=cfg, steps_per_epoch=625,
                    total_steps=125_000, pid=1)]
    for i in range(1, 41):
        lines.append(record("train", 6.0 * i, step=int(2623 * i / 40), epoch=2623 * i / 40 / 625, loss=0.1, lr=1e-3,
                            grad_norm=0.1, images_per_s=100.0, elapsed=6.0 * i, device="cpu", memory_mb=1.0))
    if end:
        lines.append(record("end", 241.0, step=2623, epoch=4.19, reason="time limit", elapsed=240.0))
    (run / "metrics.jsonl").write_text("".join(lines))
    return run


@pytest.mark.anyio
@pytest.mark.parametrize("end", [True, False])
async def test_progress_follows_the_time_limit(tmp_path, end):
    run = _timed_run(tmp_path / "run", end)
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 240.0, **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: len(s.state.train["step"]) == 40)
        await pilot.pause(0.2)
        prog = text(app, "#progress-text")
        assert "/125,000" not in prog and "/200" not in prog, prog
        assert "0:04:00/0:04:00 limit" in prog, prog
        bar = s.query_one("#steps-bar")
        assert bar.percentage == pytest.approx(1.0)


@pytest.mark.timeout(240)
def test_the_plain_progress_bar_follows_the_time_limit(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "vdm_cli", "train", "--no-tui", "--runs-dir", str(tmp_path), "--name", "t", "--T", "20",
         "--limit", "256", "--batch-size", "32", "--epochs", "500", "--minutes", "0.15", "--eval-size", "16",
         "--n-samples", "4", "--log-every", "2", "--threads", "1"],
        capture_output=True, text=True, timeout=230, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert out.returncode == 0, out.stderr[-800:]
    last = out.stderr.replace("\r", "\n").strip().splitlines()
    bars = [l for l in last if "step/s" in l or "step [" in l]
    assert bars and bars[-1].lstrip().startswith("100%"), bars[-3:]
    assert "/4000" not in bars[-1] and "limit=0.15 min" in bars[-1], bars[-1]


# -- 6. colour ----------------------------------------------------------------------------

def test_truecolor_inside_tmux_when_the_client_has_rgb():
    from tui.colour import truecolor_env

    def tmux(features):
        return lambda *a, **k: SimpleNamespace(returncode=0, stdout=features + "\n")

    env = {"TMUX": "/tmp/tmux-0/default,1,0", "TERM": "tmux-256color"}
    assert truecolor_env(env, tmux("256,RGB,title,mouse")) and env["COLORTERM"] == "truecolor"
    env = {"TMUX": "/tmp/x,1,0"}
    assert not truecolor_env(env, tmux("256,title")) and "COLORTERM" not in env
    env = {"TMUX": "/tmp/x,1,0", "NO_COLOR": "1"}
    assert not truecolor_env(env, tmux("RGB")) and "COLORTERM" not in env
    env = {}  # not in tmux: nothing is asked
    assert not truecolor_env(env, lambda *a, **k: 1 / 0)


# -- 7. images ----------------------------------------------------------------------------

@pytest.mark.anyio
async def test_the_sample_panel_shows_every_sample_of_the_grid_at_80x24(tmp_path):
    from vdm.data import shapes
    from vdm.images import grid, save_png

    run = write_run(tmp_path / "run", n_train=20, with_sample=False)
    save_png(grid(shapes(16, "test")[0], scale=2), run / "samples" / "latest.png")
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1021.0, **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: s.sample_image is not None)
        await pilot.pause(0.3)
        title = s.query_one("#samples").border_title
        shown = int(title.split("(")[1].split(" of ")[0])
        assert shown >= 8 and "of 16" in title, title


# -- GPU panel ------------------------------------------------------------------------------

class TwoGpus(FakeNvml):
    def nvmlDeviceGetCount(self):
        return 2

    def nvmlDeviceGetName(self, h):
        return [b"Fake A100", b"Fake H100"][h]

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [SimpleNamespace(pid=1000 + h, usedGpuMemory=(h + 1) * 2**30)]


@pytest.mark.anyio
async def test_the_gpu_panel_shows_every_gpu_its_processes_and_no_invented_history(tmp_path):
    run = write_run(tmp_path / "run", n_train=3, with_sample=False)
    app = VdmApp(run, poll_interval=0.05, gpu_factory=lambda: GpuReader(nvml=TwoGpus()))
    async with app.run_test(size=(200, 50)) as pilot:
        s = app.screen
        await pilot.pause(0.3)
        gpu = text(app, "#gpu-text")
        assert "Fake A100" in gpu and "Fake H100" in gpu and "pid 1000 1.0 GiB" in gpu and "pid 1001 2.0 GiB" in gpu
        assert list(s.gpu_hist) == [87.0]  # one reading so far, not 60 with invented zeros
        assert "█" not in text(app, "#gpu-spark") or len(s.gpu_hist) == 1


# -- every run ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_the_run_list_shows_every_run_and_opens_one(tmp_path):
    from tui.monitor import MonitorScreen
    from tui.run_list import RunsScreen

    root = five_runs(tmp_path / "runs")
    (root / "notes.txt").write_text("not a run")
    app = VdmApp(None, runs_root=root, clock=lambda: 1100.0, **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        assert isinstance(s, RunsScreen)
        await wait_for(pilot, lambda: s.ready)
        await pilot.pause(0.2)
        table = s.query_one("#runs-table")
        assert table.row_count == 5
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(5)]
        assert sorted(r[1] for r in rows) == ["alpha", "beta", "delta", "eps", "gamma"]
        last = [float(r[4].split("±")[0]) if r[4] != "-" else float("inf") for r in rows]
        assert last == sorted(last)  # ranked by the newest -ELBO
        beta = next(r for r in rows if r[1] == "beta")
        assert beta[2] == "training" and beta[3] == "30/80" and beta[5].endswith("ago")
        assert float(beta[4].split("±")[0]) == pytest.approx(9 - 10 / 20 - 10 / 30, abs=1e-2)  # its evaluation at step 20
        table.move_cursor(row=table.get_row_index("beta"))
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, MonitorScreen) and app.screen.run_dir == root / "beta"
        await wait_for(pilot, lambda: len(app.screen.state.train["step"]) == 15)
        await pilot.press("escape")
        await wait_for(pilot, lambda: isinstance(app.screen, RunsScreen))


@pytest.mark.anyio
async def test_overlay_draws_the_marked_runs_a_colour_each(tmp_path):
    from tui.run_list import OverlayScreen

    root = five_runs(tmp_path / "runs")
    app = VdmApp(None, runs_root=root, clock=lambda: 1100.0, **NO_GPU)
    async with app.run_test(size=(120, 36)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: s.ready)
        await mark(pilot, s, "alpha", "delta")
        await pilot.press("o")
        assert isinstance(app.screen, OverlayScreen)
        await wait_for(pilot, lambda: app.screen.pending == 0 and len(app.screen.query_one("#overlay-loss").series) == 2)
        await pilot.pause(0.2)
        loss = app.screen.query_one("#overlay-loss")
        assert [x.name for x in loss.series] == ["alpha", "delta"]
        assert len({x.color for x in loss.series}) == 2
        legend = "".join(st.text for st in loss._strips[-2:])
        assert "━ alpha" in legend and "━ delta" in legend
        # every train record of each overlaid run is on the axes, though the list read only a summary
        assert [len(x.x) for x in loss.series] == [10, 25]


def test_vdm_tui_on_a_folder_of_runs_opens_the_list_not_a_wait(tmp_path):
    from tui.run_list import is_runs_folder

    root = five_runs(tmp_path / "runs")
    assert is_runs_folder(root) and not is_runs_folder(root / "alpha") and not is_runs_folder(tmp_path / "nowhere")


# -- 8. smaller things ---------------------------------------------------------------------

@pytest.mark.anyio
async def test_the_palettes_screenshot_goes_to_the_run_directory_and_says_where(tmp_path, monkeypatch):
    """The palette's own command, not only the action: into the run directory; without one, the current one."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # a server's home: no ~/Downloads
    (tmp_path / "home").mkdir()
    run = write_run(tmp_path / "run", n_train=3, with_sample=False)
    app = VdmApp(run, poll_interval=0.05, **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        shot, = [c for c in app.get_system_commands(app.screen) if c.title == "Screenshot"]
        shot.callback()
        await wait_for(pilot, lambda: list(run.glob("*.svg")))
        saved, = run.glob("*.svg")
        assert "<svg" in saved.read_text()[:2000]
        await wait_for(pilot, lambda: any(f"screenshot saved to {saved}" in n.message for n in app._notifications))
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    app = VdmApp(None, start="chain", **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        app.action_screenshot()
        saved, = here.glob("*.svg")
        await wait_for(pilot, lambda: [n.message for n in app._notifications] == [f"screenshot saved to {saved}"])


@pytest.mark.anyio
async def test_a_screenshot_that_cannot_be_written_says_why(tmp_path, monkeypatch):
    import errno

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    run = write_run(tmp_path / "run", n_train=3, with_sample=False)
    app = VdmApp(run, poll_interval=0.05, **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        monkeypatch.setattr(app, "save_screenshot", full)
        app.action_screenshot()
        await wait_for(pilot, lambda: any("could not be written" in n.message for n in app._notifications))
        said = [n.message for n in app._notifications if "could not be written" in n.message]
        assert said and os.strerror(errno.ENOSPC) in said[0] and str(Path.cwd()) in said[0]


@pytest.mark.anyio
async def test_playback_keeps_the_speed_it_names(tmp_path):
    from tui.app import ChainSource

    app = VdmApp(None, source=ChainSource(T=400), start="chain", **NO_GPU)
    async with app.run_test(size=(120, 36)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: s.chains["forward"] is not None)
        for _ in range(6):
            await pilot.press("plus")
        assert "at 60 steps/s" in text(app, "#scrub-text")
        await pilot.press("space")
        t0 = time.monotonic()
        await pilot.pause(2.0)
        dt = time.monotonic() - t0
        # 60 steps a second of wall time, whatever the drawing manages (frames are skipped, not slowed)
        assert s.t() >= 0.8 * 60 * dt - 10, (s.t(), dt)


@pytest.mark.anyio
async def test_a_run_whose_schedule_fails_falls_back_to_a_chain_that_works(tmp_path):
    from tui.app import ChainSource

    class BadSchedule(ChainSource):
        def schedule(self):
            if not self.fallback_schedule:
                raise RuntimeError("no such schedule")  # stands in for a schedule vdm cannot build
            return super().schedule()

    src = BadSchedule(None, T=20)
    app = VdmApp(None, source=src, start="chain", **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: s.chains["forward"] is not None, timeout=60)
        msgs = [n.message for n in app._notifications]
        assert any("no such schedule" in m for m in msgs) and any("constant schedule" in m for m in msgs), msgs


@pytest.mark.anyio
@pytest.mark.parametrize("size", [(80, 24), (120, 36)])
async def test_every_forward_coefficient_is_on_screen(size):
    """At 120 columns or fewer the info box used to wrap and lose its last line (the noise coefficient)."""
    from tui.app import ChainSource

    app = VdmApp(None, source=ChainSource(T=20), start="chain", **NO_GPU)
    async with app.run_test(size=size) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: s.chains["forward"] is not None)
        await pilot.press("right", "right", "right")
        await pilot.pause(0.2)
        info = s.query_one("#fwd-info")
        lines = str(info.render()).splitlines()
        assert len(lines) <= info.content_size.height, (lines, info.content_size)
        assert max(len(l) for l in lines) <= info.content_size.width, (lines, info.content_size)
        for word in ("t = 3 / 20", "alpha_t", "alpha_bar_t", "SNR(t)", "log SNR(t)", "signal", "noise"):
            assert any(word in l for l in lines), word


def test_ages_in_words_from_seconds_to_days():
    from tui.run_state import ago

    assert [ago(s) for s in (None, 5, 89, 90, 5399, 5400, 48 * 3600 - 1, 48 * 3600, 57 * 365 * 86400)] == [
        "-", "5 s", "89 s", "1 min", "89 min", "1 h 30 min", "47 h 59 min", "2 days", "20,805 days"]


@pytest.mark.anyio
@pytest.mark.parametrize("key, value, named", [("schedule", "learned", "learned γ: -ELBO"),
                                               ("weighting", "edm", "EDM-weighted")])
async def test_a_run_on_its_own_objective_keeps_its_held_out_mse_off_the_train_axis(tmp_path, key, value, named):
    """--schedule learned trains on the continuous -ELBO (bits/dim), --weighting edm on EDM's weighted error;
    the eval_loss of both is the plain x_0 MSE, another quantity."""
    run = write_run(tmp_path / "run", n_train=20, with_sample=False)
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    start = json.loads(lines[0])
    start["config"][key] = value
    (run / "metrics.jsonl").write_text(json.dumps(start) + "\n" + "".join(lines[1:]))
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1030.0, **NO_GPU)
    async with app.run_test(size=(120, 36)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: len(s.state.train["step"]) == 20 and s.query_one("#loss-plot").series)
        plot = s.query_one("#loss-plot")
        assert [x.name for x in plot.series] == ["train"] and named in str(plot.border_title)
        assert "held-out MSE" in text(app, "#stats")


@pytest.mark.anyio
async def test_a_plain_run_keeps_train_and_held_out_on_one_loss_axis(tmp_path):
    run = write_run(tmp_path / "run", n_train=20, with_sample=False)
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1030.0, **NO_GPU)
    async with app.run_test(size=(120, 36)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: len(s.state.train["step"]) == 20 and s.query_one("#loss-plot").series)
        plot = s.query_one("#loss-plot")
        assert [x.name for x in plot.series][:2] == ["train", "held-out"] and str(plot.border_title).startswith("loss")


@pytest.mark.anyio
async def test_the_overlay_puts_only_like_train_losses_on_one_axis(tmp_path):
    """An MSE, an EDM-weighted loss and a learned run's -ELBO are three quantities: the train-loss plot shows one
    at a time, titled with what it is (t: the next); the held-out -ELBO, one quantity, keeps every run."""
    from tui.plot import Plot
    from tui_fixtures import set_config

    root = five_runs(tmp_path / "runs")
    set_config(root / "delta", schedule="learned")
    set_config(root / "gamma", weighting="edm")
    set_config(root / "beta", prediction="x0-precond")  # an x_0 MSE as alpha's
    app = VdmApp(None, runs_root=root, clock=lambda: 1100.0, **NO_GPU)
    async with app.run_test(size=(120, 36)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: s.ready)
        await pilot.press("o")  # all five
        await wait_for(pilot, lambda: app.screen.pending == 0 and len(app.screen.query_one("#overlay-bpd").series) == 5)
        await pilot.pause(0.1)
        loss = app.screen.query_one("#overlay-loss", Plot)
        plots = {}
        for _ in range(3):  # t: each quantity's runs on their own axis, then round again
            plots[str(loss.border_title)] = sorted(x.name for x in loss.series)
            await pilot.press("t")
        assert plots == {"train loss: MSE of x̂_0": ["alpha", "beta", "eps"], "train loss: EDM-weighted": ["gamma"],
                         "train loss: learned γ: -ELBO": ["delta"]}
        assert str(loss.border_title) == "train loss: MSE of x̂_0"
        assert "3 kinds of train loss" in str(app.screen.query_one("#overlay-title").render())
        assert sorted(x.name for x in app.screen.query_one("#overlay-bpd", Plot).series) == sorted(
            ["alpha", "beta", "gamma", "delta", "eps"])


@pytest.mark.anyio
async def test_the_overlays_legends_are_one_line_at_80_columns(tmp_path):
    from tui.plot import Plot

    root = five_runs(tmp_path / "runs")
    app = VdmApp(None, runs_root=root, clock=lambda: 1100.0, **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: s.ready)
        await pilot.press("o")
        await wait_for(pilot, lambda: app.screen.pending == 0 and len(app.screen.query_one("#overlay-bpd").series) == 5)
        await pilot.pause(0.2)
        for plot in app.screen.query(Plot):
            rows = [plot.render_line(y).text for y in range(plot.content_size.height)]
            axis = max(i for i, r in enumerate(rows) if "└" in r)
            assert axis == len(rows) - 2, rows  # one legend line under the x axis
            assert all(f"━ {n}" in rows[-1] for n in ("alpha", "beta", "gamma", "delta", "eps")), rows[-1]
            assert axis >= 4  # rows left to the curves


def test_without_colour_each_line_has_its_own_style():
    """NO_COLOR: a solid curve and a reference at other heights are told apart by their dots and legend glyphs."""
    import numpy as np

    from tui.plot import Series, render

    x = np.array([0.0, 10.0])
    series = [Series("total", x, np.array([9.0, 9.0]), "white"),
              Series("rec", x, np.array([5.0, 5.0]), "cyan", dash="dotted"),
              Series("uniform", x, np.array([1.0, 1.0]), "grey50", stats=False, key="uniform 1", dash="sparse")]

    def rows(dashes):
        strips = render(series, 48, 12, legend=True, dashes=dashes)
        return ["".join(seg.text for seg in s).replace("\u2800", " ") for s in strips]  # blank braille: a space

    plain, styled = rows(False), rows(True)
    lines = [r for r in styled[:-2] if set(r[8:]) - {" "}]  # the three rows with dots (no axis, no legend)
    assert len(lines) == 3
    total, rec, ref = (l[8:].strip() for l in lines)
    assert len(set(total)) == 1 and len(total) == 40  # solid: every cell
    assert rec != total and len(rec) == 40 and rec[0] != total[0]  # dotted: every cell, half its dots
    assert set(ref[1::2]) == {" "} and set(ref[::2]) - {" "}  # sparse: a dot every other cell
    legend = " ".join(styled[-2:])
    assert "━ total" in legend and "┈ rec" in legend and "· uniform 1" in legend
    assert "┈" not in " ".join(plain) and "· uniform" not in " ".join(plain)  # in colour: one solid style


@pytest.mark.anyio
async def test_no_color_monitor_draws_the_elbo_terms_and_the_reference_in_other_styles(tmp_path, monkeypatch):
    from tui.plot import Plot

    monkeypatch.setenv("NO_COLOR", "1")
    run = write_run(tmp_path / "run", n_train=40)
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1041.0, **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: len(s.state.eval["step"]) == 4)
        await pilot.pause(0.2)
        bpd = s.query_one("#bpd-plot", Plot)
        shown = "\n".join(bpd.render_line(y).text for y in range(bpd.content_size.height))
        for entry in ("━ total ", "┈ rec ", "╍ match ", "┉ prior "):
            assert entry in shown, shown
        assert "· 8: uniform" in str(bpd.border_title)
        assert len({sr.dash for sr in bpd.series}) == len(bpd.series)  # no two lines alike


@pytest.mark.anyio
async def test_on_16_colours_the_reference_is_not_the_white_of_the_total(tmp_path, monkeypatch):
    from rich.color import ColorSystem
    from rich.style import Style

    from tui.plot import Plot

    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.delenv("COLORTERM", raising=False)
    run = write_run(tmp_path / "run", n_train=40)
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 1041.0, **NO_GPU)
    async with app.run_test(size=(80, 24)) as pilot:
        s = app.screen
        plot = s.query_one("#bpd-plot", Plot)
        # the records are read by the tail worker, the plot drawn after them: wait for the drawing
        await wait_for(pilot, lambda: {"total", "uniform"} <= {sr.name for sr in plot.series}
                       and len(s.state.eval["step"]) == 4)
        colours = {sr.name: Style.parse(sr.color).color.downgrade(ColorSystem.STANDARD) for sr in plot.series}
        assert colours["uniform"] != colours["total"]


@pytest.mark.anyio
async def test_the_run_list_shows_the_configuration_that_differs_and_sorts_by_any_column(tmp_path):
    from textual.widgets import DataTable

    from tui_fixtures import set_config

    root = five_runs(tmp_path / "runs")
    for name, batch in (("alpha", 128), ("beta", 64), ("gamma", 512), ("delta", 256), ("eps", 128)):
        set_config(root / name, batch_size=batch, ema=0.999)
    set_config(root / "beta", prediction="eps")
    set_config(root / "delta", schedule="learned")
    app = VdmApp(None, runs_root=root, clock=lambda: 1100.0, **NO_GPU)
    async with app.run_test(size=(160, 24)) as pilot:
        s = app.screen
        await wait_for(pilot, lambda: s.ready)
        table = s.query_one(DataTable)

        def column(head):
            keys = [c.key.value for c in table.ordered_columns]
            return [table.get_row_at(i)[keys.index(head)] for i in range(table.row_count)]

        heads = [c.key.value for c in table.ordered_columns]
        # what tells them apart, and only that: the same model, data and EMA everywhere
        assert {"pred", "batch"} <= set(heads) and not {"model", "data", "EMA"} & set(heads)
        assert column("pred") == ["x0" if n != "beta" else "eps" for n in column("run")]
        assert column("run") == ["eps", "delta", "gamma", "alpha", "beta"]  # ranked by the newest -ELBO
        s.action_sort("batch")
        await pilot.pause(0.05)
        assert [int(b) for b in column("batch")] == [64, 128, 128, 256, 512]  # as numbers, not as text
        s.action_sort("batch")  # again: the other way round
        await pilot.pause(0.05)
        assert [int(b) for b in column("batch")] == [512, 256, 128, 128, 64]
        assert "batch ↓" in [str(c.label) for c in table.ordered_columns]
        await pilot.press("s")  # the next column
        assert s.sort_by == heads[heads.index("batch") + 1]
