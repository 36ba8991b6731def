"""A checkpoint of another model, schedule or T is refused on load, naming the difference.

``vdm train --resume RUN`` keeps the run's model, schedule, data and optimizer: a flag that
asks for another value is refused before anything is loaded or written; flags that only
lengthen or report on the run (--epochs, --minutes, ...) are taken.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import pytest

from reliability_helpers import newest, tiny_cfg, train_argv
from vdm import checkpoint as ckpt
from vdm_cli.main import main
from vdm.denoiser import load_denoiser
from vdm.train import Trainer

SETUP = dict(batch_size=64, epochs=1, eval_size=0)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished one-epoch run: 4 steps of the assignment's network, constant schedule, T 20."""
    runs = tmp_path_factory.mktemp("runs")
    cfg = tiny_cfg(runs, "run", **SETUP)
    assert main(train_argv(cfg)) == 0
    return cfg, runs / "run"


def _untouched(run):
    return sorted(p.name for p in (run / "checkpoints").iterdir()), (run / "metrics.jsonl").read_bytes()


@pytest.mark.parametrize("flags, named", [
    (["--T", "50"], "T 50 vs the run's 20"),
    (["--model", "unet"], "model unet vs the run's assignment"),
    (["--schedule", "cosine"], "schedule cosine vs the run's constant"),
    (["--prediction", "eps"], "prediction eps vs the run's x0"),
    (["--alpha", "0.5"], "alpha 0.5 vs the run's tuned"),
    (["--batch-size", "32"], "batch_size 32 vs the run's 64"),
    (["--seed", "3"], "seed 3 vs the run's 0"),
    (["--lr", "0.01"], "lr 0.01 vs the run's 0.001"),
    (["--limit", "128"], "limit 128 vs the run's 256"),
])
def test_resume_refuses_other_settings(trained, capsys, flags, named):
    _, run = trained
    before = _untouched(run)
    capsys.readouterr()
    rc = main(["train", "--resume", str(run), "--quiet", "--epochs", "2"] + flags)
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert named in err and f"drop {flags[0]}" in err
    assert _untouched(run) == before


def test_resume_takes_same_settings_and_longer_runs(trained, tmp_path, capsys):
    cfg, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    # the run's own values given again are fine; --epochs lengthens it
    rc = main(["train", "--resume", str(copy), "--quiet", "--T", "20", "--model", "assignment", "--epochs", "2"])
    assert rc == 0, capsys.readouterr().err
    assert newest(copy).step == 8


def test_edited_config_is_refused_by_the_checkpoint(trained, tmp_path, capsys):
    """config.json says T 50 but the checkpoint is of T 20: the checkpoint's sidecar decides."""
    _, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    conf = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(dict(conf, T=50)))
    rc = main(["train", "--resume", str(copy), "--quiet", "--epochs", "2"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1, err
    assert "T 20 vs 50" in err


@pytest.mark.parametrize("change, named", [
    (dict(T=50), "T 20 vs 50"),
    (dict(model="unet"), "model 'assignment', not 'unet'"),
    (dict(prediction="eps"), "prediction 'x0', not 'eps'"),
    (dict(schedule="cosine"), "kind 'constant' vs 'cosine'"),
    (dict(alpha=0.5), "params"),
])
def test_trainer_refuses_another_models_checkpoint(trained, change, named):
    cfg, run = trained
    with pytest.raises(ValueError, match=named):
        Trainer(replace(cfg, **change), run, resume=True)


def test_load_denoiser_refuses_what_was_not_expected(trained):
    _, run = trained
    den, meta = load_denoiser(run)
    ident = {"model": meta["model"], "prediction": meta["prediction"], "schedule": meta["schedule"]}
    load_denoiser(run, expected=ident)  # the control: its own identity is accepted
    with pytest.raises(ValueError, match="T 20 vs 500"):
        load_denoiser(run, expected=dict(ident, schedule=dict(ident["schedule"], T=500)))
    with pytest.raises(ValueError, match="model 'assignment', not 'unet'"):
        load_denoiser(run, expected=dict(ident, model="unet"))


def test_weights_of_another_network_are_refused(trained, tmp_path, capsys):
    """A sidecar that says unet over the assignment network's tensors: refused at the API and the CLI."""
    _, run = trained
    copy = tmp_path / "ck"
    shutil.copytree(run / "checkpoints", copy)
    side = ckpt.list_checkpoints(copy)[-1]
    meta = json.loads(side.read_text())
    side.write_text(json.dumps(dict(meta, model="unet")))
    with pytest.raises(ValueError, match="does not fit this model"):
        load_denoiser(side)
    rc = main(["sample", str(side), "--n", "1", "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("vdm sample: the checkpoint") and len(err.splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("key, value", [("weighting", "edm"), ("lr", 0.01), ("seed", 3), ("ema", 0.5)])
def test_a_hand_edited_training_setting_is_refused(trained, tmp_path, capsys, key, value):
    """config.json edited to another valid value of a setting the resume must keep (--weighting edm on a
    default run: another objective): the sidecar's saved config decides; the old code trained on silently."""
    _, run = trained
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    conf = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps(dict(conf, **{key: value})))
    before = _untouched(copy), (copy / "config.json").read_bytes()
    rc = main(["train", "--resume", str(copy), "--quiet", "--epochs", "2"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"config.json says {key} {value}" in err and "was trained with" in err, err
    assert (_untouched(copy), (copy / "config.json").read_bytes()) == before
