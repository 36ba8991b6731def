"""A non-finite loss or gradient stops training, names the step, keeps the last good checkpoint."""

from __future__ import annotations

import math

import pytest
import torch

from reliability_helpers import newest, tiny_cfg, train_argv
from vdm import checkpoint as ckpt
from vdm_cli.main import main
from vdm.train import Trainer, TrainingStopped

SETUP = dict(batch_size=64, epochs=2, ckpt_every=2, eval_size=0)


def _finite(c) -> bool:
    return all(bool(torch.isfinite(v).all()) for k, v in c.tensors.items() if v.is_floating_point())


def test_nan_loss_stops_naming_the_step(tmp_path, monkeypatch):
    run = tmp_path / "run"
    real = Trainer.loss_on

    def loss_on(self, x, gen=None):
        loss = real(self, x, gen)
        return loss * math.nan if self.step + 1 == 5 else loss

    monkeypatch.setattr(Trainer, "loss_on", loss_on)
    with pytest.raises(TrainingStopped, match=r"the loss became non-finite at step 5; the last good checkpoint "
                                              r"ckpt-00000004\.json is kept\.$"):
        Trainer(tiny_cfg(tmp_path, "run", **SETUP), run).run()
    c = newest(run)
    assert c.step == 4 and _finite(c)


def test_inf_gradient_stops_naming_the_step(tmp_path):
    run = tmp_path / "run"
    tr = Trainer(tiny_cfg(tmp_path, "run", **SETUP), run)
    w = tr.model.net.down2[0].weight
    w.register_hook(lambda g: torch.full_like(g, math.inf) if tr.step + 1 == 3 else g)
    with pytest.raises(TrainingStopped, match=r"the gradient became non-finite at step 3; .*ckpt-00000002\.json is kept"):
        tr.run()
    c = newest(run)
    assert c.step == 2 and _finite(c)
    assert torch.isfinite(w).all()  # the bad step was never applied


def test_non_finite_weights_never_replace_a_checkpoint(tmp_path):
    """Devices that read the loss back lazily may step on a NaN; the checkpoint writer refuses it."""
    run = tmp_path / "run"
    tr = Trainer(tiny_cfg(tmp_path, "run", **SETUP), run)
    tr.save_checkpoint()
    good = (run / "checkpoints" / "ckpt-00000000.safetensors").read_bytes()
    tr.step = 1
    with torch.no_grad():
        tr.model.net.up1[0].weight[0, 0, 0, 0] = math.nan
    with pytest.raises(TrainingStopped, match="non-finite by step 1; the last good checkpoint ckpt-00000000.json is kept"):
        tr.save_checkpoint()
    assert [p.name for p in ckpt.list_checkpoints(run / "checkpoints")] == ["ckpt-00000000.json"]
    assert (run / "checkpoints" / "ckpt-00000000.safetensors").read_bytes() == good
    assert _finite(newest(run))


def test_cli_huge_learning_rate_one_sentence_nonzero(tmp_path, capsys):
    """lr 1e30 blows the weights up for real; the CLI prints one sentence naming the step, exits 2."""
    cfg = tiny_cfg(tmp_path, "run", **dict(SETUP, ckpt_every=1), lr=1e30)
    rc = main(train_argv(cfg))
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("vdm train: training stopped: the loss became non-finite at step ")
    step = int(err.split("at step ")[1].split(";")[0])
    c = newest(tmp_path / "run")
    assert c.step == step - 1 and _finite(c)
