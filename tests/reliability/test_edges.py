"""Files that are not what they seem, and the moments between two steps of a writer.

Each test puts one thing where a run file belongs (a hard link out of the run, a FIFO, an
unbounded file, a loop of links, insane statistics in a valid checkpoint) or stops a writer
between two of its steps, and checks the one sentence a user gets instead of a hang, a
traceback or a write outside the run.
"""

from __future__ import annotations

import fcntl
import os
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
