"""One writer per run, and pruning that keeps a verified checkpoint.

Two real ``vdm train`` processes on one run: started fresh with different settings, and
resumed twice at once. Exactly one trains; the other is refused with one sentence naming the
first's pid, config.json and the checkpoints agree, and no metrics record is duplicated. The
lock is the kernel's (flock): a SIGKILLed writer leaves none behind.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import torch

from reliability_helpers import newest, read_json, records, small_state, start, tiny_cfg, train_argv
from vdm import checkpoint as ckpt
from vdm.run import open_run


def _both(tmp_path, argvs):
    logs = [tmp_path / f"log{i}.txt" for i in range(2)]
    ps = [start(a, log) for a, log in zip(argvs, logs)]
    for p in ps:
        p.join(120)
    return [p.exitcode for p in ps], [log.read_text() for log in logs], [p.pid for p in ps]


def _refusal(text: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith("vdm train: ")]
    assert len(lines) == 1 and "Traceback" not in text, text[-1500:]
    return lines[0]


def test_two_fresh_trainers_with_different_settings(tmp_path):
    a = tiny_cfg(tmp_path, "run", epochs=3, lr=1e-3)
    b = tiny_cfg(tmp_path, "run", epochs=3, lr=2e-3)
    codes, logs, pids = _both(tmp_path, [train_argv(a), train_argv(b)])
    assert sorted(codes) == [0, 2], (codes, logs)
    loser = codes.index(2)
    msg = _refusal(logs[loser])
    assert f"pid {pids[1 - loser]}" in msg or "already exists" in msg, msg
    run = tmp_path / "run"
    winner_lr = (a, b)[1 - loser].lr
    assert read_json(run / "config.json")["lr"] == winner_lr
    assert newest(run).meta["config"]["lr"] == winner_lr, "checkpoints from one writer, config.json from the other"
    assert {r["pid"] for r in records(run) if r["kind"] == "start"} == {pids[1 - loser]}


def test_two_resumes_at_once(tmp_path):
    cfg = tiny_cfg(tmp_path, "run", epochs=1)
    run = tmp_path / "run"
    first = start(train_argv(cfg), tmp_path / "log.txt")
    first.join(120)
    assert first.exitcode == 0
    argv = train_argv(cfg, resume=True) + ["--epochs", "4"]
    codes, logs, pids = _both(tmp_path, [argv, argv])
    assert sorted(codes) == [0, 2], (codes, logs)
    loser = codes.index(2)
    assert f"pid {pids[1 - loser]}" in _refusal(logs[loser])
    steps = [r["step"] for r in records(run) if r["kind"] == "train"]
    assert steps == sorted(set(steps)), "metrics records duplicated by two writers"
    assert newest(run).step == 32
    assert open_run(run).checkpoint() is not None


def test_the_lock_dies_with_its_holder(tmp_path):
    cfg = tiny_cfg(tmp_path, "run", epochs=50)
    run = tmp_path / "run"
    p = start(train_argv(cfg), tmp_path / "log.txt")
    deadline = time.monotonic() + 60
    while not ckpt.list_checkpoints(run / "checkpoints") and time.monotonic() < deadline:
        time.sleep(0.05)
    second = open_run(run)
    with pytest.raises(ValueError, match=f"pid {p.pid}"):
        second.lock()
    os.kill(p.pid, signal.SIGKILL)
    p.join(30)
    second.lock().release()  # no stale lock: the kernel released it


def test_lock_in_one_process(tmp_path):
    cfg = tiny_cfg(tmp_path, "run")
    from vdm.run import Run

    run = Run(tmp_path / "run", cfg)
    held = run.lock(fresh=True)
    with pytest.raises(ValueError, match=f"being written by another vdm process \\(pid {os.getpid()}\\)"):
        run.lock()
    held.release()
    run.lock().release()


def test_pruning_keeps_a_complete_checkpoint_whatever_else_is_there(tmp_path):
    d = tmp_path / "checkpoints"
    meta = {"model": "assignment", "schedule": {"kind": "constant", "T": 20}}
    ckpt.save(d, 1, small_state(1), meta)
    good = ckpt.load(d).tensors
    # two sidecars whose tensors never came (another writer's, or a copy cut short), newer than anything
    for step in (5, 6):
        ckpt.save(d, step, small_state(step), meta)
        (d / f"ckpt-{step:08d}.safetensors").write_bytes(b"cut")
    ckpt.save(d, 4, small_state(4), meta, keep=2)
    assert ckpt.resolve(d).name == "ckpt-00000004.json"
    (d / "ckpt-00000004.safetensors").write_bytes(b"killed while being copied")  # the newest good one goes bad
    c = ckpt.load(d)
    assert c.step == 1 and all(torch.equal(c.tensors[k], good[k]) for k in good), "no complete checkpoint was kept"
