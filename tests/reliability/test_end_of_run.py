"""The end of a run survives a kill.

Real ``vdm train`` processes SIGKILL themselves at aimed moments after the last checkpoint
(inside the final evaluation, inside the final sampling, with the final grid written to its
temporary but not renamed, before the end record) and between an epoch's checkpoint and its
sample grid. The resumed run must finish what the checkpoint still owed: the eval record,
the sample grid (``latest.png`` the final one), the end record; and clean the temporaries
the killed writer left in ``samples/``. One more real process gets SIGTERM and, 0.3 s later,
SIGKILL. Runs of two steps an epoch keep the file near 40 s on two busy cores.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from reliability_helpers import forkserver, records, run_cli_killed_in, start, tiny_cfg, train_argv

EPOCHS = 2
LIMIT = 64  # two steps an epoch: these tests are about what comes after the steps
SPE = LIMIT // 32
FINAL = SPE * EPOCHS


def _kill_and_resume(tmp_path, where, at_step, plant=(), **kw):
    cfg = tiny_cfg(tmp_path, "run", epochs=EPOCHS, limit=LIMIT, **kw)
    run = tmp_path / "run"
    log = tmp_path / "log.txt"
    p = forkserver().Process(target=run_cli_killed_in, args=(where, at_step, train_argv(cfg), str(log)), daemon=True)
    p.start()
    p.join(90)
    assert p.exitcode == -signal.SIGKILL, f"not killed ({p.exitcode}): {log.read_text()[-800:]}"
    killed = records(run)
    (run / "samples").mkdir(exist_ok=True)
    for name in plant:  # what another killed writer left: a dead pid in the name
        (run / "samples" / name).write_bytes(b"half a png")
    r = start(train_argv(cfg, resume=True), log)
    r.join(90)
    assert r.exitcode == 0, log.read_text()[-800:]
    return run, killed, records(run)


def _assert_finished(run, recs):
    evals = [x["step"] for x in recs if x["kind"] == "eval"]
    samples = [x for x in recs if x["kind"] == "sample"]
    assert FINAL in evals, f"no final evaluation: eval steps {evals}"
    assert samples and samples[-1]["step"] == FINAL, "the final sample grid was lost"
    grid = run / "samples" / f"step-{FINAL:08d}.png"
    assert grid.is_file() and (run / "samples" / "latest.png").read_bytes() == grid.read_bytes(), \
        "latest.png is not the final grid"
    assert recs[-1]["kind"] == "end" and recs[-1]["reason"] == "done" and recs[-1]["step"] == FINAL
    assert not [p for p in (run / "samples").iterdir() if ".tmp" in p.name], "a temporary was left in samples/"


@pytest.mark.parametrize("where", ["eval", "sample", "grid"])
def test_kill_after_the_last_checkpoint_is_finished_on_resume(tmp_path, where):
    run, killed, recs = _kill_and_resume(tmp_path, where, FINAL)
    assert not any(x["kind"] == "end" for x in killed)
    _assert_finished(run, recs)
    # nothing done twice that was already done: at most one eval record at the final step
    assert [x["step"] for x in recs if x["kind"] == "eval"].count(FINAL) == 1


def test_kill_between_an_epochs_checkpoint_and_its_grid(tmp_path):
    stale = (".latest.tmp999999999-0123456789abcdef.png", ".latest.png.tmp999999999")
    run, killed, recs = _kill_and_resume(tmp_path, "sample", SPE, plant=stale, sample_every=1)
    assert SPE not in [x["step"] for x in killed if x["kind"] == "sample"]
    assert (run / "samples" / f"step-{SPE:08d}.png").is_file(), "the first epoch's grid was lost"
    _assert_finished(run, recs)


def test_sigterm_then_sigkill_leaves_a_finishable_run(tmp_path):
    cfg = tiny_cfg(tmp_path, "run", epochs=EPOCHS, limit=LIMIT)
    run = tmp_path / "run"
    log = tmp_path / "log.txt"
    p = start(train_argv(cfg), log)
    deadline = time.monotonic() + 60
    while not (run / "checkpoints").is_dir() and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGTERM)
    time.sleep(0.3)
    if p.is_alive():
        os.kill(p.pid, signal.SIGKILL)
    p.join(30)
    r = start(train_argv(cfg, resume=True), log)
    r.join(90)
    assert r.exitcode == 0, log.read_text()[-800:]
    _assert_finished(run, records(run))
