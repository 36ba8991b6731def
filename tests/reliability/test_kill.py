"""Kill safety, and clean stops on SIGINT and SIGTERM.

The SIGKILL test kills a real training process (``vdm train``, then ``vdm train --resume``
again and again) at 20 moments drawn from a seeded generator. Checkpoints are written every
two steps and sample grids every epoch, so many kills land in the middle of a write. After
each kill: the newest complete checkpoint loads and verifies, it is at most one checkpoint
interval behind the last step the dead process logged, config.json and every sample PNG
read back whole, and metrics.jsonl has at most one cut line per kill. At the end the run
is resumed to an epoch end and its final state is compared bitwise with a run that was
never killed.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from PIL import Image

from reliability_helpers import assert_same_state, newest, read_json, records, start, tiny_cfg, train_argv
from testkit import installed_vdm
from vdm import checkpoint as ckpt
from vdm.metrics import read_all
from vdm.train import Trainer

KILLS = 20
CKPT_EVERY = 2
SEED = 20261130


def _temps(run: Path) -> list[Path]:
    return [p for p in run.rglob(".*.tmp*") if p.is_file()]


def _tail(log: Path, n: int = 2000) -> str:
    return log.read_text(errors="replace")[-n:] if log.exists() else ""


def test_sigkill_at_random_moments_loses_at_most_one_interval(tmp_path):
    rng = random.Random(SEED)
    # 8 steps an epoch; epochs never reached, the kills decide where the run is
    cfg = tiny_cfg(tmp_path, "run", epochs=10_000, ckpt_every=CKPT_EVERY, sample_every=1)
    run = tmp_path / "run"
    log = tmp_path / "log.txt"
    seen = {"mid-write": 0, "before the first record": 0, "steps lost": 0}
    deadline = time.monotonic() + 110
    for kill in range(KILLS):
        assert time.monotonic() < deadline, f"only {kill} kills in the time budget"
        before = newest(run).step if ckpt.list_checkpoints(run / "checkpoints") else 0
        p = start(train_argv(cfg, resume=(run / "config.json").exists()), log)
        time.sleep(rng.uniform(0.2, 2.2))
        os.kill(p.pid, signal.SIGKILL)
        p.join(30)
        assert p.exitcode == -signal.SIGKILL, f"the process ended by itself ({p.exitcode}): {_tail(log)}"

        seen["mid-write"] += bool(_temps(run))
        recs, bad = read_all(run / "metrics.jsonl") if (run / "metrics.jsonl").exists() else ([], 0)
        assert bad <= kill + 1, "more cut lines in metrics.jsonl than kills"
        mine = [r for r in recs if r.get("pid") == p.pid]
        if not mine:
            seen["before the first record"] += 1
            reached = before
        else:
            assert mine[0]["kind"] == "start" and mine[0]["step"] == before, "did not resume from the newest checkpoint"
            i = recs.index(mine[0])
            reached = max([before] + [r["step"] for r in recs[i:] if "step" in r])
        if not (run / "config.json").exists():
            continue  # killed before it wrote anything: the next start is a fresh one again
        read_json(run / "config.json")
        # temporaries (.<stem>.tmp<pid>-<random>.png, see vdm.atomic) are a killed writer's, not grids
        for png in [p for p in (run / "samples").glob("*.png") if not p.name.startswith(".")] if (run / "samples").exists() else []:
            with Image.open(png) as im:
                im.load()  # the whole image decodes: no half-written grid
        if ckpt.list_checkpoints(run / "checkpoints"):
            c = newest(run)  # resolves the newest checkpoint whose SHA-256 verifies, and loads it
            assert c.step >= before, "a kill lost a checkpoint that was complete before it"
            assert c.step >= reached - CKPT_EVERY, f"kill {kill}: at step {reached}, newest checkpoint {c.step}"
            seen["steps lost"] += reached - c.step
        else:
            assert reached <= CKPT_EVERY

    # training continues: resume to the next epoch end and compare with a run never killed
    last = newest(run)
    epochs = last.meta["epoch"] + 1
    p = start(train_argv(cfg, resume=True) + ["--epochs", str(epochs)], log)
    p.join(120)
    assert p.exitcode == 0, _tail(log)
    assert not [t for t in _temps(run) if t.parent.name == "checkpoints"], "stale temporaries were not cleaned"
    ref_cfg = tiny_cfg(tmp_path, "ref", epochs=epochs, ckpt_every=0, sample_every=0, eval_size=0)
    Trainer(ref_cfg, tmp_path / "ref").run()
    assert_same_state(newest(run), newest(tmp_path / "ref"))
    starts = [r for r in records(run) if r["kind"] == "start"]
    print(f"\n{KILLS} SIGKILLs: {seen['mid-write']} in the middle of a write, {seen['before the first record']} "
          f"during start-up; {len(starts)} starts; final step {newest(run).step}; "
          f"steps redone after kills {seen['steps lost']}")


def _wait_for_train_record(run: Path, proc, timeout: float = 90) -> None:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if (run / "metrics.jsonl").exists() and any(r["kind"] == "train" for r in records(run)):
            return
        if (proc.poll() if hasattr(proc, "poll") else proc.exitcode) is not None:
            break
        time.sleep(0.05)
    raise AssertionError("the training process never logged a step")


def _vdm() -> list[str]:
    exe = installed_vdm()
    return [exe] if exe else [sys.executable, "-m", "vdm_cli"]


def test_sigterm_saves_and_exits_0(tmp_path):
    """The real console script: SIGTERM mid-epoch saves a checkpoint and exits 0 saying how to resume."""
    cfg = tiny_cfg(tmp_path, "run", epochs=100, ckpt_every=1000, sample_every=0)
    run = tmp_path / "run"
    proc = subprocess.Popen(_vdm() + train_argv(cfg), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_train_record(run, proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    last = out.strip().splitlines()[-1]
    end = records(run)[-1]
    assert end["kind"] == "end" and end["reason"] == "SIGTERM"
    assert last == f"vdm train: stopped by SIGTERM at step {end['step']} with a checkpoint saved; continue with: vdm train --resume {run}"
    c = newest(run)
    assert c.step == end["step"] >= 1  # the stop saved where it stopped, off the checkpoint grid


def test_sigint_saves_and_exits_0(tmp_path):
    cfg = tiny_cfg(tmp_path, "run", epochs=100, ckpt_every=1000, sample_every=0)
    run = tmp_path / "run"
    log = tmp_path / "log.txt"
    p = start(train_argv(cfg), log)
    try:
        _wait_for_train_record(run, p)
        os.kill(p.pid, signal.SIGINT)
        p.join(90)
    finally:
        if p.exitcode is None:
            p.kill()
    assert p.exitcode == 0, _tail(log)
    assert "Traceback" not in _tail(log)
    assert "stopped by SIGINT at step" in _tail(log)
    end = records(run)[-1]
    assert end["reason"] == "SIGINT" and newest(run).step == end["step"]


def test_kill_at_every_point_of_a_checkpoint_write(tmp_path):
    """A process dies (os._exit, nothing cleaned up) at each file system event of ckpt.save in turn:
    every half-written file, fsync, rename and unlink. The newest verified checkpoint is always the
    old one or the new one, whole; the next save cleans up what the dead writer left."""
    from reliability_helpers import forkserver, save_killed_at, small_state

    pristine = tmp_path / "pristine"
    for s in (1, 2):
        ckpt.save(pristine, s, small_state(s), {"model": "assignment", "schedule": {"kind": "constant", "T": 20}})
    outcomes = {}
    for k in range(1, 40):
        d = tmp_path / f"k{k}"
        shutil.copytree(pristine, d)
        p = forkserver().Process(target=save_killed_at, args=(str(d), 3, k), daemon=True)
        p.start()
        p.join(60)
        c = ckpt.load(d)
        assert c.step in (2, 3)
        for name, v in small_state(c.step).items():
            assert torch.equal(c.tensors[name], v)
        outcomes[k] = c.step
        # the next writer finds the mess and leaves a clean directory with the newest two
        ckpt.save(d, 4, small_state(4), {"model": "assignment", "schedule": {"kind": "constant", "T": 20}})
        names = sorted(f.name for f in d.iterdir())
        assert names[-2:] == ["ckpt-00000004.json", "ckpt-00000004.safetensors"] and len(names) == 4, names
        if p.exitcode == 0:
            break  # the save ran to its end: every event before it was a kill point
        assert p.exitcode == 137
    assert p.exitcode == 0 and k > 8, f"only {k} events"
    assert set(outcomes.values()) == {2, 3}
    print(f"\nkilled ckpt.save at each of its {k - 1} file system events: newest checkpoint "
          f"{sum(v == 2 for v in outcomes.values())}x the old one, {sum(v == 3 for v in outcomes.values())}x the new one")
