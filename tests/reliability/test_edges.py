"""Files that are not what they seem, and the moments between two steps of a writer.

Each test puts one thing where a run file belongs (a hard link out of the run, a FIFO, an
unbounded file, a loop of links, insane statistics in a valid checkpoint) or stops a writer
between two of its steps, and checks the one sentence a user gets instead of a hang, a
traceback or a write outside the run.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time

import pytest
from testkit import one_sentence, run_main

from vdm.run import LOCK, METRICS, Run


def _waiting_on(directory) -> bool:
    """Whether a flock on ``directory`` has a waiter in this process (Linux's /proc/locks: '->' lines)."""
    ino = os.stat(directory).st_ino
    with open("/proc/locks") as f:
        rows = [line.split() for line in f]
    return any("->" in r and str(os.getpid()) in r and any(w.endswith(f":{ino}") for w in r) for r in rows)


def _await(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.005)


def test_a_refused_writer_reads_the_pid_even_in_the_winners_first_instant(tmp_path, monkeypatch):
    """The winner is held right after its flock on .lock succeeds: a second writer arriving then must
    still be refused naming the winner's pid, never "pid unknown" (the loser waits for the pid, or the
    pid is there before the lock is visible)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / LOCK).write_text("999999999\n")  # a former holder's pid, long gone
    real_flock = fcntl.flock
    in_window, go_on = threading.Event(), threading.Event()

    def flock(fd, op):
        real_flock(fd, op)
        is_lock = os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) == LOCK
        if is_lock and op == fcntl.LOCK_EX | fcntl.LOCK_NB and threading.current_thread() is winner:
            in_window.set()
            go_on.wait(60)

    monkeypatch.setattr(fcntl, "flock", flock)
    held, refusal = [], []
    winner = threading.Thread(target=lambda: held.append(Run(run_dir, None).lock()))
    loser = threading.Thread(target=lambda: refusal.append(_refused(lambda: Run(run_dir, None).lock())))
    winner.start()
    _await(in_window.is_set, "the winner took the lock")
    loser.start()
    _await(lambda: not loser.is_alive() or _waiting_on(run_dir), "the loser tried")
    go_on.set()
    winner.join(60)
    loser.join(60)
    held[0].release()
    assert refusal and f"(pid {os.getpid()})" in refusal[0], refusal


def _refused(call) -> str:
    try:
        call()
    except ValueError as e:
        return str(e)
    return "not refused"


def _resume(run, capsys, *more) -> tuple[int, str]:
    """`vdm train --resume RUN` in this process: (status, the one sentence of stderr, or stderr itself)."""
    rc, _, err = run_main(["train", "--resume", run, "--quiet", "--threads", "1", *more], capsys)
    return rc, err


@pytest.mark.parametrize("name", [LOCK, METRICS])
def test_a_hard_link_out_of_the_run_is_refused_and_never_written(run, tmp_path, capsys, name):
    outside = tmp_path / "outside" / "v"
    outside.parent.mkdir()
    outside.write_bytes(b"precious\n")
    (run / name).unlink(missing_ok=True)
    os.link(outside, run / name)
    rc, err = _resume(run, capsys)
    assert rc == 2, err[-1500:]
    msg = one_sentence(err)
    assert f"{run / name} is a hard link (2 names" in msg, msg
    assert outside.read_bytes() == b"precious\n", "written through the link, outside the run"


def test_a_negative_running_variance_is_refused_by_every_command(run, tmp_path, capsys):
    """A valid checkpoint (SHA-256 agreeing) whose BatchNorm running variance is below 0: x / sqrt(var + eps) is NaN
    for every sample, so sample, elbo and resume refuse it, naming the statistic."""
    from reliability_helpers import rewrite_checkpoint

    def negative(t):
        k = next(k for k in sorted(t) if k.startswith("model/") and k.endswith(".running_var"))
        t[k] = t[k].clone()
        t[k][0] = -0.5
        return t

    rewrite_checkpoint(run, tensors=negative)
    out = tmp_path / "grid.png"
    for argv in (["sample", run, "--n", "4", "--out", out], ["elbo", run, "--n", "4", "--estimator", "uniform"],
                 ["train", "--resume", run, "--quiet", "--threads", "1", "--epochs", "2"]):
        rc, _, err = run_main(argv, capsys)
        assert rc == 2, (argv[0], err[-1500:])
        msg = one_sentence(err)
        assert "negative BatchNorm running variance (model/" in msg and "as low as -0.5" in msg, msg
    assert not out.exists(), "an image of NaN samples was written"


def test_no_image_is_drawn_from_non_finite_values():
    import torch

    from vdm.images import grid

    x = torch.zeros(4, 3, 8, 8)
    assert grid(x).dtype.name == "uint8"
    x[2, 1, 3, 3] = float("nan")
    with pytest.raises(ValueError, match="1 of the 768 pixel values to draw are NaN or infinite"):
        grid(x)


class _Unblocker:
    """If a reader still waits on ``fifo`` after ``after`` seconds, it is a hang: open the FIFO for writing
    (and close it) until the call under test returns, so that the test fails instead of hanging."""

    def __init__(self, *fifos, after: float = 60.0):
        self.fifos, self.after, self.done, self.fired = fifos, after, threading.Event(), False
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        if self.done.wait(self.after):
            return
        self.fired = True
        while not self.done.wait(0.05):
            for fifo in self.fifos:
                try:
                    os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                except OSError:  # no reader at this instant
                    pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.done.set()
        self.thread.join()


def _sidecar(run):
    from vdm import checkpoint as ckpt

    return ckpt.list_checkpoints(run / "checkpoints")[-1]


COMMANDS = {"sample": lambda run, tmp: ["sample", run, "--n", "4", "--out", tmp / "grid.png"],
            "elbo": lambda run, tmp: ["elbo", run, "--n", "4", "--estimator", "uniform"],
            "resume": lambda run, tmp: ["train", "--resume", run, "--quiet", "--threads", "1", "--epochs", "2"]}


@pytest.mark.parametrize("command", COMMANDS)
def test_a_fifo_where_the_sidecar_belongs_is_named_not_waited_on(run, tmp_path, capsys, command):
    side = _sidecar(run)
    side.unlink()
    os.mkfifo(side)
    with _Unblocker(side) as u:
        rc, _, err = run_main(COMMANDS[command](run, tmp_path), capsys)
    assert not u.fired, "blocked on the FIFO"
    assert rc == 2, err[-1500:]
    msg = one_sentence(err)
    assert f"{side} is a FIFO, not a vdm checkpoint sidecar" in msg, msg


@pytest.mark.parametrize("name", ["config", "points"])
def test_a_fifo_where_a_run_file_belongs_is_named_not_waited_on(run, name):
    from vdm.run import CONFIG, open_run, sample_path

    if name == "config":
        target = run / CONFIG
        target.unlink()
        os.mkfifo(target)
        with _Unblocker(target) as u, pytest.raises(ValueError, match=f"{target} is a FIFO, not a run config"):
            open_run(run)
    else:
        opened = open_run(run)
        target = sample_path(run, None, ".npy")
        os.mkfifo(target)
        with _Unblocker(target) as u:
            assert opened.latest_points() is None
    assert not u.fired, "blocked on the FIFO"


def _with_memory_cap(call, cap: int = 1 << 30) -> tuple[int, str]:
    """call() in a forked child whose address space may grow by ``cap`` bytes at most: (exit status, its stderr).

    A reader of an unbounded file fails there with MemoryError within a second instead of taking the machine."""
    import resource

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: no return from here
        status = 70
        try:
            os.close(r)
            os.dup2(w, 2)
            with open("/proc/self/status") as f:
                vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
            resource.setrlimit(resource.RLIMIT_AS, (vm + cap, vm + cap))
            status = call()
        except BaseException as e:  # noqa: BLE001  (reported to the parent, which fails the test)
            os.write(2, f"{type(e).__name__}: {e}\n".encode())
        finally:
            os._exit(status if isinstance(status, int) else 70)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        err = f.read().decode(errors="replace")
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), err


@pytest.mark.parametrize("command", ["sample", "resume"])
def test_a_sidecar_linked_to_dev_zero_is_named_not_read_until_memory_runs_out(run, tmp_path, command):
    import sys

    from vdm_cli.main import main

    side = _sidecar(run)
    side.unlink()
    side.symlink_to("/dev/zero")
    argv = [str(a) for a in COMMANDS[command](run, tmp_path)]

    def cli():
        sys.stderr = open(2, "w", closefd=False)
        code = main(argv)
        sys.stderr.flush()
        return code

    rc, err = _with_memory_cap(cli)
    assert rc == 2, err[-1500:]
    msg = one_sentence(err)
    assert f"{side} is a character device, not a vdm checkpoint sidecar" in msg, msg


@pytest.mark.parametrize("folder,command", [("checkpoints", "resume"), ("checkpoints", "sample"), ("samples", "resume")])
def test_a_loop_of_links_where_a_folder_belongs_is_one_sentence(run, tmp_path, capsys, folder, command):
    import shutil

    shutil.rmtree(run / folder)
    (run / folder).symlink_to(folder)  # itself
    rc, _, err = run_main(COMMANDS[command](run, tmp_path), capsys)
    assert rc == 2, err[-1500:]
    msg = one_sentence(err)
    assert f"{run / folder} is a loop of symbolic links" in msg, msg


def test_a_full_disk_under_the_metrics_log_names_it(tmp_path, monkeypatch, capsys):
    """The log's descriptor is pointed at /dev/full once open: every append fails with the kernel's own ENOSPC."""
    from reliability_helpers import tiny_cfg, train_argv

    from vdm.metrics import MetricsWriter

    real_init = MetricsWriter.__init__

    def on_a_full_disk(self, path):
        real_init(self, path)
        full = os.open("/dev/full", os.O_WRONLY)
        os.dup2(full, self._f.fileno())
        os.close(full)

    monkeypatch.setattr(MetricsWriter, "__init__", on_a_full_disk)
    cfg = tiny_cfg(tmp_path, "run", epochs=1)
    rc, _, err = run_main(train_argv(cfg), capsys)
    assert rc == 1, err[-1500:]
    assert one_sentence(err) == (f"vdm train: the disk is full at {tmp_path / 'run' / METRICS}; "
                                 "nothing already saved was changed.")


GARBAGE = [  # each a record whose kind and version parse, with a field of the wrong type
    '{"v": 1, "kind": "eval", "time": 1.0, "step": 5, "eval_loss": 0.1, "bpd": [1, 2]}',
    '{"v": 1, "kind": "train", "time": 1.0, "step": 6, "loss": "0.5"}',
    '{"v": 1, "kind": "train", "time": 1.0, "step": NaN, "loss": 0.5}',
    '{"v": 1, "kind": "eval", "time": 1.0, "step": 7, "eval_loss": [0.1]}',
    '{"v": 1, "kind": "eval", "time": 1.0, "step": 8, "eval_loss": 0.1, "bpd": {"total": "x"}}',
    '{"v": 1, "kind": "start", "time": 1.0, "step": 0, "total_steps": "many"}',
    '{"v": 1, "kind": "end", "time": "late", "step": 9}',
]


def test_the_training_scene_reads_the_log_by_the_monitors_rules(run):
    """Records of the wrong type are skipped and counted by the one reader (vdm.metrics), as the monitor skips
    them; the scene's curve holds the trainer's records and nothing else."""
    import json

    from animations.training import curve
    from vdm.run import open_run

    written = [json.loads(line) for line in (run / METRICS).read_text().splitlines()]
    with open(run / METRICS, "a") as f:
        f.write("\n".join(GARBAGE) + "\n")
        # fields the rules leave open, read by the scene only when they are numbers
        f.write(json.dumps({"v": 1, "kind": "eval", "time": 2.0, "step": 10, "eval_loss": 0.2, "bpd": None,
                            "bpd_se": [0.1], "reference": {"optimal": "x"}, "device": 3}) + "\n")
    records, bad = open_run(run).metrics()
    assert bad == len(GARBAGE)
    cv = curve(records)
    assert cv["train"] == [(r["step"], r["loss"]) for r in written if r["kind"] == "train"]
    assert cv["eval"] == [(r["step"], r["eval_loss"], r["bpd"]["total"]) for r in written if r["kind"] == "eval"] + [
        (10, 0.2, None)]
    device = next(r["device"] for r in reversed(written) if "device" in r)
    assert cv["bpd_se"] is None and cv["reference"] is None and cv["device"] == device


def test_the_monitor_skips_what_the_one_reader_skips(tmp_path):
    from tui.run_state import RunState
    from vdm.metrics import parse_line, valid
    from vdm.tailer import MetricsTailer

    log = tmp_path / METRICS
    good = '{"v": 1, "kind": "train", "time": 1.0, "step": 1, "loss": 0.5}'
    log.write_text("\n".join([good, *GARBAGE]) + "\n")
    state = RunState(tmp_path)
    batch = MetricsTailer(log).poll()
    state.add(batch)
    assert not any(valid(parse_line(g)) for g in GARBAGE)
    assert (batch.good, batch.bad) == (1, len(GARBAGE))
    assert list(state.train["step"]) == [1.0] and state.start is None and state.end is None


def _bomb_png(path, width: int = 30_000, height: int = 30_000) -> None:
    """A PNG header claiming width x height pixels (no pixel data follows): what a decompression bomb shows first."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                     + chunk(b"IEND", b""))


def test_a_decompression_bomb_grid_is_refused_alike_by_the_scene_and_the_monitor(run):
    from animations.training import sample_grid_pixels
    from tui.monitor import read_grid as monitor_reads
    from vdm.run import sample_grids

    _, grid = sample_grids(run)[-1]
    _bomb_png(grid)
    said = f"{grid} is a 30,000 x 30,000 image, more than the 67,108,864 pixels a sample grid can have"
    with pytest.raises(ValueError, match=said):
        sample_grid_pixels(grid)
    with pytest.raises(ValueError, match=said):
        monitor_reads(grid)


@pytest.mark.anyio
async def test_fifo_grids_never_block_the_monitor(run):
    """samples/latest.png and the step grid are FIFOs: the finished run still shows, [ [ then ? opens the help,
    q quits. On the old reader the UI thread (and the tail worker) waited on the FIFOs for a writer."""
    from tui.app import HelpScreen

    from tui.app import VdmApp
    from tui.gpu import GpuReader
    from vdm.run import sample_grids, sample_path

    fifos = [sample_path(run), sample_grids(run)[-1][1]]
    for f in fifos:
        f.unlink()
        os.mkfifo(f)
    app = VdmApp(run, poll_interval=0.05, gpu_factory=lambda: GpuReader(nvml=object()))
    with _Unblocker(*fifos) as u:
        async with app.run_test(size=(100, 30)) as pilot:
            monitor = app.screen

            async def until(cond, what):
                deadline = time.monotonic() + 60
                while not cond():
                    assert time.monotonic() < deadline, f"never happened: {what}"
                    await pilot.pause(0.05)

            await until(lambda: monitor.state.end is not None and monitor.query_one("#loss-plot").series,
                        "the finished run drawn")
            await pilot.press("left_square_bracket", "left_square_bracket", "question_mark")
            await until(lambda: isinstance(app.screen, HelpScreen), "the help opened")
    assert not u.fired, "blocked on a FIFO"


def test_a_run_without_its_metrics_log_is_said_in_words(run):
    """The scene's reading of the run (its loss section, up to where it reads the log), without drawing anything."""
    from types import SimpleNamespace

    from animations.training import Training
    from vdm.run import open_run

    (run / METRICS).unlink()
    opened = open_run(run)
    missing = f"{run} has no metrics log ({METRICS} is missing), so nothing of its training was recorded"
    with pytest.raises(ValueError, match=re.escape(missing + ".")):
        opened.metrics()
    scene = SimpleNamespace(next_section=lambda *a: None, shown_run=lambda: (opened, opened.schedule, ""))
    with pytest.raises(ValueError, match=re.escape(missing + "; the training scene needs a run that has trained.")):
        Training.section_run(scene)


@pytest.mark.parametrize("content", [b'{"slides": [{"notes": "a"}', b'{"slides": 3}', b"[]"])
def test_a_corrupt_slides_file_is_named(tmp_path, content):
    from animations.render import SCENES, export_slides

    slides = tmp_path / "slides" / f"{SCENES['forward'][1]}.json"
    slides.parent.mkdir()
    slides.write_bytes(content)
    with pytest.raises(ValueError) as e:
        export_slides(["forward"], tmp_path, html=False, pdf=False, progress=lambda *a: None)
    assert str(e.value).startswith(f"{slides} is not a slides file vdm wrote ("), str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("host,said", [("", None), ("0.0.0.0", "it listens beyond this machine"),
                                       ("localhost", "")])
def test_serving_the_monitor_says_where_it_listens(monkeypatch, capsys, host, said):
    pytest.importorskip("textual_serve")
    from textual_serve import server

    served = []
    monkeypatch.setattr(server.Server, "serve", lambda self, *a, **k: served.append((self.host, self.port)))
    rc, out, err = run_main(["tui", "--serve", "--host", host], capsys)
    if said is None:
        assert rc == 2 and not served, (out, err)
        assert one_sentence(err) == ("vdm tui: --host is empty; give the address to listen on: localhost (this machine "
                                     "only), or 0.0.0.0 for every network interface.")
    else:
        assert rc == 0 and served == [(host, 8000)], (out, err)
        assert (said in out) if said else ("beyond" not in out), out


@pytest.mark.parametrize("argv,said", [
    (["sample", "RUN", "--out", ""], "vdm sample: the output file name is empty (''); give one ending in .png."),
    (["sample", "RUN", "--out", "grid.jpg"], "vdm sample: 'grid.jpg' must end in .png."),
    (["tune-alpha", "--T", "1_000"], "expected a whole number, got '1_000'"),
    (["tune-alpha", "--T", "\u0661\u0662"], "expected a whole number, got '\u0661\u0662'"),
    (["tune-alpha", "--final-signal", "0.0_1"], "expected a number, got '0.0_1'"),
])
def test_the_command_line_says_what_was_typed(run, capsys, argv, said):
    rc, _, err = run_main([run if a == "RUN" else a for a in argv], capsys)
    assert rc == 2 and said in one_sentence(err), err


def test_numbers_as_the_readme_writes_them_are_taken():
    from vdm_cli.args import _finite_float, _positive_int

    assert [_positive_int(s) for s in ("3", "+7", " 12 ")] == [3, 7, 12]
    assert [_finite_float(s) for s in ("2e-4", "0.995", ".5", "3", "1E3", "-1.5e+2")] == [2e-4, 0.995, 0.5, 3.0, 1e3, -150.0]


@pytest.mark.parametrize("link", ["hard", "symbolic"])
def test_the_background_trainers_log_is_never_written_through_a_link(tmp_path, link):
    """`vdm train` in a terminal starts its trainer with output appended to the run's train.log: a link planted
    there would carry the output to a file outside the run."""
    from tui.training import TrainingProcess
    from vdm.run import train_log_path

    run = tmp_path / "run"
    run.mkdir()
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"mine\n")
    (os.link if link == "hard" else os.symlink)(outside, train_log_path(run))
    with pytest.raises(ValueError, match="train.log is a (hard|symbolic) link"):
        TrainingProcess(["--version-that-never-runs"], run).start()
    assert outside.read_bytes() == b"mine\n"
