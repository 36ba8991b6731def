"""A run stopped and resumed ends bitwise identical to an uninterrupted one.

Each scenario stops a run at one moment (right after a mid-epoch checkpoint, right after an
epoch-end checkpoint, by SIGTERM on an epoch's last batch or mid-epoch), resumes it with
``Trainer(resume=True)`` and compares every tensor of the final checkpoint (weights, EMA,
BatchNorm statistics, Adam moments and step counts, generator states) with torch.equal
against a run that was never stopped. Evaluation and sample grids run at every epoch end
in between, so the test also shows that they consume none of the training randomness.
"""

from __future__ import annotations

import os
import signal

import pytest

from reliability_helpers import assert_same_state, newest, records, tiny_cfg
from vdm import checkpoint as ckpt
from vdm.train import Trainer

# 256 images in batches of 64: 4 steps an epoch, 2 epochs; checkpoints every 3 steps and at epoch ends
SETUP = dict(batch_size=64, epochs=2, ckpt_every=3, ema=0.9, sample_every=1)


class Killed(BaseException):
    """Stands for SIGKILL: nothing in the trainer catches it."""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    runs = tmp_path_factory.mktemp("ref")
    cfg = tiny_cfg(runs, "ref", **SETUP)
    Trainer(cfg, runs / "ref").run()
    return newest(runs / "ref")


def _kill_after_checkpoint(monkeypatch, at_step: int):
    real = Trainer.save_checkpoint

    def save(self, owed=()):
        path = real(self, owed)
        if self.step == at_step:
            raise Killed
        return path

    monkeypatch.setattr(Trainer, "save_checkpoint", save)


@pytest.mark.parametrize("at_step, where", [(3, "mid-epoch"), (4, "epoch boundary")])
def test_resume_after_kill_is_bitwise_identical(reference, tmp_path, monkeypatch, at_step, where):
    cfg = tiny_cfg(tmp_path, "run", **SETUP)
    run = tmp_path / "run"
    _kill_after_checkpoint(monkeypatch, at_step)
    with pytest.raises(Killed):
        Trainer(cfg, run).run()
    monkeypatch.undo()
    assert newest(run).step == at_step
    resumed = Trainer(cfg, run, resume=True)
    assert resumed.step == at_step
    resumed.run()
    n = assert_same_state(newest(run), reference)
    assert n > 40  # model, ema, optimizer and rng tensors were all there to compare
    starts = [r for r in records(run) if r["kind"] == "start"]
    assert [s["step"] for s in starts] == [0, at_step]


def test_resume_after_sigterm_is_bitwise_identical(reference, tmp_path):
    """SIGTERM on an epoch's last batch: the stop saves before the epoch end, the resume does it."""
    stop_at = 4
    cfg = tiny_cfg(tmp_path, "run", **SETUP)
    run = tmp_path / "run"

    def progress(tr):
        if tr.step == stop_at:
            os.kill(os.getpid(), signal.SIGTERM)  # the trainer's handler turns it into a clean stop

    out = Trainer(cfg, run).run(progress)
    assert out["reason"] == "SIGTERM" and out["step"] == stop_at
    assert newest(run).step == stop_at
    assert records(run)[-1]["kind"] == "end" and records(run)[-1]["reason"] == "SIGTERM"
    Trainer(cfg, run, resume=True).run()
    assert_same_state(newest(run), reference)


def test_resume_with_nothing_saved_yet_starts_over(reference, tmp_path, monkeypatch):
    """Killed before the first checkpoint (config.json written): the resume starts at step 0."""
    cfg = tiny_cfg(tmp_path, "run", **SETUP)
    run = tmp_path / "run"

    def progress(tr):
        if tr.step == 2:
            raise Killed

    with pytest.raises(Killed):
        Trainer(cfg, run).run(progress)
    assert (run / "config.json").is_file() and not ckpt.list_checkpoints(run / "checkpoints")
    tr = Trainer(cfg, run, resume=True, echo=lambda *a: None)
    assert tr.step == 0
    tr.run()
    assert_same_state(newest(run), reference)


def test_resumed_adam_moments_keep_their_parameters_memory_format(tmp_path):
    """channels_last weights: the moments loaded from a checkpoint share each parameter's strides.

    safetensors stores tensors contiguous; CUDA's fused Adam refuses moments whose layout differs
    from their parameter's (it failed the first step after a resume on a GPU).
    """
    cfg = tiny_cfg(tmp_path, "run", batch_size=64, epochs=1, channels_last="on")
    run = tmp_path / "run"
    Trainer(cfg, run).run()
    tr = Trainer(tiny_cfg(tmp_path, "run", batch_size=64, epochs=2, channels_last="on"), run, resume=True)
    four_d = [p for p in tr.model.net.parameters() if p.dim() == 4]
    assert four_d and all(p.stride() != p.contiguous().stride() for p in four_d)  # the case is exercised
    for p in tr.model.net.parameters():
        for k in ("exp_avg", "exp_avg_sq"):
            assert tr.opt.state[p][k].stride() == p.stride(), k
    tr.run()
