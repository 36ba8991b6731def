"""The app driven by Textual's Pilot: stepping the forward chain, and a metrics file that grows."""

import os
import re

import pytest

from tui_fixtures import FakeTraining, text, wait_for
from tui.app import ChainSource, VdmApp

pytestmark = pytest.mark.anyio
from tui.gpu import GpuReader
from vdm.schedule import Schedule



async def test_forward_chain_keys_step_t_and_show_vdms_numbers():
    T = 20
    ab = Schedule.constant(None, T).alpha_bar
    app = VdmApp(None, source=ChainSource(T=T), start="chain", gpu_factory=lambda: GpuReader(nvml=object()))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: screen.chains["forward"] is not None)
        assert screen.t() == 0

        async def press_and_check(keys, want_t):
            await pilot.press(*keys)
            assert screen.t() == want_t
            info = text(app, "#fwd-info")
            assert f"t = {want_t} / {T}" in info
            shown = float(re.search(r"alpha_bar_t = ([-+.\deE]+)", info).group(1))
            assert shown == pytest.approx(float(ab[want_t]), rel=1e-5)
            assert f"t = {want_t} / {T}" in text(app, "#scrub-text")

        await press_and_check(["right"], 1)
        await press_and_check(["right", "right"], 3)
        await press_and_check(["right_square_bracket"], 13)
        await press_and_check(["right_square_bracket"], 20)  # clamped at T
        await press_and_check(["left"], 19)
        await press_and_check(["left_square_bracket"], 9)
        await press_and_check(["home"], 0)
        await press_and_check(["end"], 20)
        # the frame shown is the chain's frame at t
        img = screen.query_one("#fwd-image")
        assert img.image is screen.chains["forward"].frames[20] or (img.image == screen.chains["forward"].frames[20]).all()
        # play from the start runs to the end by itself
        await pilot.press("home", "space")
        await wait_for(pilot, lambda: screen.t() == T, timeout=20)
        assert screen.playing is None


async def test_backward_oracle_chain_lands_on_the_data_image():
    T = 20
    app = VdmApp(None, source=ChainSource(T=T, index=3), start="chain", gpu_factory=lambda: GpuReader(nvml=object()))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await pilot.press("b")
        await wait_for(pilot, lambda: screen.chains["backward"] is not None)
        c = screen.chains["backward"]
        assert c.oracle and screen.t() == T
        assert "0 nats" in text(app, "#bwd-info")  # the oracle's matching term is exactly 0
        await pilot.press("end")
        assert screen.t() == 0
        from vdm.data import shapes
        from vdm.images import as_hwc

        truth = as_hwc(shapes(4, "test")[0][3:4])[0]
        assert (c.x[0].astype(int) - truth.astype(int)).__abs__().max() <= 1


async def test_monitor_follows_a_growing_metrics_file(tmp_path):
    from tui_fixtures import record, write_run

    run = write_run(tmp_path / "run", n_train=5, with_sample=False)
    metrics = run / "metrics.jsonl"
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 2000.0, gpu_factory=lambda: GpuReader(nvml=object()))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.state.train["step"]) == 5)
        await pilot.pause(0.1)
        assert "step 10/80" in text(app, "#progress-text")
        assert screen.bad_lines == 0
        # the run goes on: three records, a garbage line, and half of the next record
        with open(metrics, "a") as f:
            for i in range(6, 9):
                f.write(record("train", 1000.0 + i, step=i * 2, epoch=i * 0.1, loss=0.123, lr=1e-3, grad_norm=0.1,
                               images_per_s=500.0, elapsed=float(i), device="cpu", memory_mb=1.0))
            f.write("{garbage\n")
            half = record("train", 1010.0, step=30, epoch=1.5, loss=0.2, lr=1e-3, grad_norm=0.1,
                          images_per_s=500.0, elapsed=10.0, device="cpu", memory_mb=1.0)
            f.write(half[:30])
        await wait_for(pilot, lambda: len(screen.state.train["step"]) == 8)
        await pilot.pause(0.2)
        assert screen.bad_lines == 1
        assert "step 16/80" in text(app, "#progress-text")
        stats = text(app, "#stats")
        assert "loss 0.1230" in stats and "1 bad lines" in stats
        plot = screen.query_one("#loss-plot")
        assert len(plot.series[0].x) == 8 and plot.series[0].x[-1] == 16
        # the rest of the half line arrives
        with open(metrics, "a") as f:
            f.write(half[30:])
        await wait_for(pilot, lambda: len(screen.state.train["step"]) == 9)
        await pilot.pause(0.2)
        assert "step 30/80" in text(app, "#progress-text") and screen.bad_lines == 1


async def test_monitor_reads_a_long_log_on_other_processes_then_tails_it(tmp_path):
    """What `vdm tui` does on a long log: child processes read it while the screen starts, then tail -f."""
    from tui_fixtures import record, write_run
    from vdm.tailer import MetricsTailer

    run = write_run(tmp_path / "run", n_train=3000, with_sample=False)
    metrics = run / "metrics.jsonl"
    tailer = MetricsTailer(metrics, catch_up_bytes=0)  # any backlog counts as long here
    assert tailer.start_catch_up()
    app = VdmApp(run, poll_interval=0.05, clock=lambda: 5000.0, gpu_factory=lambda: GpuReader(nvml=object()),
                 tailer=tailer)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await wait_for(pilot, lambda: len(screen.state.train["step"]) == 3000)
        assert screen.tailer is tailer and tailer.caught_up_bytes == metrics.stat().st_size
        assert screen.state.column("train", "step")[-1] == 6000 and len(screen.state.eval["step"]) == 300
        with open(metrics, "a") as f:
            f.write(record("train", 9000.0, step=6002, epoch=600.2, loss=0.05, lr=1e-3, grad_norm=0.1,
                           images_per_s=1.0, elapsed=3001.0, device="cpu", memory_mb=1.0))
        await wait_for(pilot, lambda: len(screen.state.train["step"]) == 3001)
        await pilot.pause(0.2)
        assert "step 6,002/80" in text(app, "#progress-text") and screen.bad_lines == 0
        assert tailer.caught_up_bytes < metrics.stat().st_size  # the new line came by polling


async def test_bad_run_directory_is_a_notification_not_a_crash(tmp_path):
    app = VdmApp(tmp_path / "nowhere", source=ChainSource(tmp_path / "nowhere", T=20), poll_interval=0.05,
                 gpu_factory=lambda: GpuReader(nvml=object()))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert any("does not exist" in n.message for n in app._notifications)
        assert "does not exist" in text(app, "#status") and "waiting" not in text(app, "#status")
        await pilot.press("2")  # the chain screen still works
        assert app.screen.__class__.__name__ == "ChainScreen"


async def test_checkpoint_of_another_model_is_refused_with_a_notification(tmp_path):
    """A run whose config names another schedule than the checkpoint: the backward chain falls back to the oracle."""
    from vdm import checkpoint as ckpt
    from vdm.nets import build_net
    from tui_fixtures import write_run

    run = write_run(tmp_path / "run", n_train=2, with_sample=False)
    net = build_net("assignment", 10)
    meta = {"model": "assignment", "prediction": "x0", "schedule": {"kind": "constant", "T": 10, "params": [0.4]},
            "step": 1}
    ckpt.save(run / "checkpoints", 1, {f"model/{k}": v for k, v in net.state_dict().items()}, meta)
    app = VdmApp(run, poll_interval=0.05, start="chain", gpu_factory=lambda: GpuReader(nvml=object()))
    async with app.run_test(size=(80, 24)) as pilot:
        screen = app.screen
        await pilot.press("b")
        await wait_for(pilot, lambda: screen.chains["backward"] is not None)
        msgs = [n.message for n in app._notifications]
        assert any("schedule differs" in m for m in msgs), msgs
        assert screen.chains["backward"].oracle and screen.use_oracle




@pytest.mark.parametrize("key, outcome", [("d", "detached"), ("s", "stopped")])
async def test_quit_while_training_asks_stop_or_detach(tmp_path, key, outcome):
    from tui.dialogs import QuitScreen
    from tui_fixtures import write_run

    run = write_run(tmp_path / "run", n_train=3, with_sample=False)
    proc = FakeTraining()
    app = VdmApp(run, process=proc, poll_interval=0.05, gpu_factory=lambda: GpuReader(nvml=object()))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("q")
        await pilot.pause(0.1)
        assert isinstance(app.screen, QuitScreen) and app.is_running
        await pilot.press("c")  # cancel: back to the monitor, training untouched
        await pilot.pause(0.1)
        assert not isinstance(app.screen, QuitScreen) and not proc.stopped
        await pilot.press("q")
        await pilot.pause(0.1)
        await pilot.press(key)
        await wait_for(pilot, lambda: app.outcome == outcome, 10)
    assert app.outcome == outcome
    assert proc.stopped == (outcome == "stopped")


@pytest.mark.parametrize("flags", [dict(compile=False, cuda_graphs=True), dict(compile=False, cuda_graphs=False)])
def test_the_training_child_trains_the_run_the_parent_wrote(tmp_path, flags):
    """No argv round trip: boolean flags (--cuda-graphs, --no-compile) reach the child through config.json.

    The child is the real `python -m vdm_cli train` process the monitor starts; it must train
    the run to its end (exit 0, a checkpoint) with exactly the configuration the parent wrote.
    """
    import subprocess

    from tui.training import TrainingProcess, child_argv
    from vdm.run import new_run, open_run
    from vdm.train import TrainConfig

    cfg = TrainConfig(runs_dir=str(tmp_path / "runs"), name="x", T=20, limit=64, batch_size=32, epochs=1,
                      eval_size=8, n_samples=4, threads=1, **flags)
    run = new_run(cfg)
    run.path.mkdir(parents=True)
    run.write_config()
    argv = child_argv(run.path)
    assert "--compile" not in argv and "--cuda-graphs" not in argv  # nothing travels as flags
    proc = TrainingProcess(argv, run.path).start()
    try:
        code = proc.proc.wait(300)
    except subprocess.TimeoutExpired:
        proc.stop(timeout=10)
        raise
    assert code == 0, proc.last_line()
    done = open_run(run.path)
    assert done.checkpoint() is not None and done.config.epochs == 1
    assert (done.config.compile, done.config.cuda_graphs) == (flags["compile"], flags["cuda_graphs"])


def test_a_second_tui_parent_for_the_same_new_run_is_refused(tmp_path, monkeypatch):
    """config.json is written under the run's lock: a second `vdm train --name X` cannot overwrite it."""
    import tui.training as training
    from vdm.run import new_run, open_run
    from vdm.train import TrainConfig

    started = []
    monkeypatch.setattr(training.TrainingProcess, "start", lambda self: started.append(self) or self)
    monkeypatch.setattr("tui.app.run_app", lambda *a, **k: "detached")
    monkeypatch.setattr(training.TrainingProcess, "poll", lambda self: None)
    first = new_run(TrainConfig(runs_dir=str(tmp_path), name="x", T=20, lr=0.002))
    assert training.train_with_tui(first, fresh=True) == 0 and len(started) == 1
    second = new_run(TrainConfig(runs_dir=str(tmp_path), name="x", T=20, lr=0.5))
    with pytest.raises(ValueError, match="already exists"):
        training.train_with_tui(second, fresh=True)
    assert len(started) == 1 and open_run(first.path).config.lr == 0.002  # the first run's config stands
    held = first.lock()  # while a writer holds the run, even a resume's parent is refused, naming it
    try:
        with pytest.raises(ValueError, match=str(os.getpid())):
            training.train_with_tui(open_run(first.path), fresh=False)
    finally:
        held.release()


def test_the_closing_report_of_the_training_child_is_read_from_its_log(tmp_path):
    """After the monitor closes, the trainer's closing lines (from its last 'stopped (') are printed again."""
    from tui.training import TrainingProcess

    proc = TrainingProcess([], tmp_path)
    assert proc.summary() == []  # no log yet
    proc.log_path.write_text("run: runs/x\nstopped (SIGINT) at step 3, epoch 0.\nresumed\n\n"
                             "stopped (done) at step 9, epoch 2.\nheld-out -ELBO 1.0 ± 0.1\nsamples: runs/x/s.png\n")
    assert proc.summary() == ["stopped (done) at step 9, epoch 2.", "held-out -ELBO 1.0 ± 0.1", "samples: runs/x/s.png"]


async def test_a_run_being_started_is_waited_for_and_says_so(tmp_path):
    """`vdm train`'s monitor before the child's first record: the status names the trainer it waits for;
    a folder with a config.json and no log yet is a run being started too."""
    run = tmp_path / "run"
    run.mkdir()
    app = VdmApp(run, process=FakeTraining(), poll_interval=0.05, gpu_factory=lambda: GpuReader(nvml=object()))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "starting the trainer (pid 4242)" in text(app, "#status"))
    (run / "config.json").write_text("{}")
    app = VdmApp(run, poll_interval=0.05, gpu_factory=lambda: GpuReader(nvml=object()))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: "a run being started: waiting for its first record" in text(app, "#status"))


async def test_quitting_a_finished_run_gives_its_closing_report(tmp_path):
    """As `vdm train --no-tui` ends: why it stopped, the last -ELBO with its error, the sample grid's path."""
    from tui_fixtures import record, write_run

    run = write_run(tmp_path / "run", n_train=20)
    app = VdmApp(run, poll_interval=0.05, gpu_factory=lambda: GpuReader(nvml=object()))
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.screen.state.last_eval is not None)
        assert app.closing_lines() == []  # live: nothing to report yet
        with open(run / "metrics.jsonl", "a") as f:
            f.write(record("eval", 1030.0, step=40, epoch=2, eval_loss=0.2, bpd_se=0.25, bpd_mc_se=0.05,
                           bpd={"reconstruction": 6.0, "prior": 1e-5, "matching": 1.25, "total": 7.25},
                           decoder="fixed", estimator={"name": "importance", "draws": 2, "items": 32}))
            f.write(record("end", 1031.0, step=40, epoch=2, reason="done", elapsed=31.0))
        await wait_for(pilot, lambda: app.screen.state.end is not None)
        await pilot.press("q")
    lines = app.closing_lines()
    assert lines[0] == "stopped (done) at step 40, epoch 2."
    assert "on 32 test images" in lines[1] and "= 7.250 ± 0.250" in lines[1]
    assert lines[-1] == f"samples: {run / 'samples' / 'latest.png'}"


async def test_an_80_column_footer_keeps_quit_and_help_on_every_screen(tmp_path):
    """The footer lists a screen's own keys first and cuts the end: q and ? stay on screen wherever it is."""
    from textual.widgets._footer import FooterKey

    from tui_fixtures import write_run

    for name in ("a", "b"):
        write_run(tmp_path / "runs" / name, n_train=3, with_sample=False)

    def shown(app) -> set[str]:
        keys = app.screen.query(FooterKey)
        return {k.key for k in keys if k.region.width and k.region.right <= 80}

    app = VdmApp(None, runs_root=tmp_path / "runs", poll_interval=0.05, gpu_factory=lambda: GpuReader(nvml=object()))
    async with app.run_test(size=(80, 24)) as pilot:
        for step in ("runs", "overlay", "monitor", "chain"):
            if step == "overlay":
                await pilot.press("o")
                await wait_for(pilot, lambda: type(app.screen).__name__ == "OverlayScreen")
            elif step in ("monitor", "chain"):
                await pilot.press("escape", "1" if step == "monitor" else "2")
                await wait_for(pilot, lambda: type(app.screen).__name__ == step.capitalize() + "Screen")
            await wait_for(pilot, lambda: {"q", "question_mark"} <= shown(app), 10)
