"""Crafted but intact checkpoints, and numbers from files.

Every crafted checkpoint here has a correct SHA-256: the file is intact, only its content is
wrong. ``vdm train --resume`` and ``vdm sample`` must refuse it with one sentence naming
the tensor or field, never crash (a wrong-shaped Adam moment made fused CPU Adam write past
its buffer: SIGSEGV), never load it silently converted.
"""

from __future__ import annotations

import json
import signal

import pytest
import torch

from reliability_helpers import forkserver, read_json, rewrite_checkpoint, run_cli, small_state, train_argv, tiny_cfg
from testkit import one_sentence
from vdm import checkpoint as ckpt
from vdm_cli.main import main




def _resume(run, capsys, *extra):
    rc = main(["train", "--resume", str(run), "--quiet", "--threads", "1", "--epochs", "2", *extra])
    out, err = capsys.readouterr()
    return rc, out, err


def test_wrong_shape_adam_moment_is_refused_not_a_segfault(run, tmp_path):
    rewrite_checkpoint(run, tensors=lambda t: dict(t, **{"optim/0/exp_avg": torch.zeros(2)}))
    log = tmp_path / "log.txt"
    p = forkserver().Process(target=run_cli, args=(["train", "--resume", str(run), "--quiet", "--threads", "1",
                                                    "--epochs", "2"], str(log)), daemon=True)
    p.start()
    p.join(120)
    assert p.exitcode != -signal.SIGSEGV, "fused Adam wrote past its buffer"
    assert p.exitcode == 2, log.read_text()[-1000:]
    assert "optim/0/exp_avg" in log.read_text()


def _set(key, value):
    return lambda t: dict(t, **{key: value})


def _drop(key):
    return lambda t: {k: v for k, v in t.items() if k != key}


def _first_weight(t):
    return next(k for k in t if k.startswith("model/") and t[k].is_floating_point() and t[k].ndim > 1)


TENSOR_CASES = {  # crafted tensors -> what the one sentence must name
    "adam moment of int64": (lambda t: dict(t, **{"optim/0/exp_avg": t["optim/0/exp_avg"].long()}), "optim/0/exp_avg"),
    "adam moment flattened": (lambda t: dict(t, **{"optim/0/exp_avg_sq": t["optim/0/exp_avg_sq"].reshape(-1)}), "optim/0/exp_avg_sq"),
    "adam step of shape [3]": (_set("optim/0/step", torch.zeros(3)), "optim/0/step"),
    "optimizer tensor without a key": (_set("optim/7", torch.zeros(1)), "optim/7"),
    "optimizer tensor of a parameter past the end": (_set("optim/999/exp_avg", torch.zeros(1)), "optim/999/exp_avg"),
    "an unknown group": (_set("evil/x", torch.zeros(1)), "evil/x"),
    "no generator state": (_drop("rng/gen"), "rng/gen"),
    "generator state of float": (lambda t: dict(t, **{"rng/gen": t["rng/gen"].float()}), "rng/gen"),
    "cpu generator state cut": (lambda t: dict(t, **{"rng/torch_cpu": t["rng/torch_cpu"][:10]}), "rng/torch_cpu"),
    "a weight of int64": (lambda t: dict(t, **{_first_weight(t): t[_first_weight(t)].long()}), "int64"),
    "a weight with NaN": (lambda t: dict(t, **{_first_weight(t): t[_first_weight(t)] * float("nan")}), "non-finite"),
    "a weight missing": (lambda t: {k: v for k, v in t.items() if k != _first_weight(t)}, "lacks model/"),
}


@pytest.mark.parametrize("case", list(TENSOR_CASES))
def test_crafted_tensors_are_refused_on_resume(run, capsys, case):
    edit, names = TENSOR_CASES[case]
    rewrite_checkpoint(run, tensors=edit)
    before = (run / "metrics.jsonl").read_bytes()
    rc, _, err = _resume(run, capsys)
    assert rc == 2 and names in one_sentence(err), err
    assert (run / "metrics.jsonl").read_bytes() == before, "a refused resume wrote to the run"


def test_float16_weights_are_converted_with_a_notice(run, capsys):
    rewrite_checkpoint(run, tensors=lambda t: {k: v.half() if k.startswith("model/") and v.is_floating_point() else v
                                               for k, v in t.items()})
    rc, out, err = _resume(run, capsys)
    assert rc == 0, err
    assert "float16" in out and "converted" in out


META_CASES = {  # crafted sidecar -> what the one sentence must name
    "no epoch": (lambda m: {k: v for k, v in m.items() if k != "epoch"}, "epoch"),
    "epoch a string": (lambda m: dict(m, epoch="1"), "epoch"),
    "batch_in_epoch negative": (lambda m: dict(m, batch_in_epoch=-1), "batch_in_epoch"),
    "elapsed a list": (lambda m: dict(m, elapsed=[]), "elapsed"),
    "optimizer entry a list": (lambda m: dict(m, optim=[]), "optimizer"),
    "param_groups of another length": (lambda m: dict(m, optim=dict(m["optim"], param_groups=[])), "optimizer"),
    "lr a string": (lambda m: dict(m, optim=dict(m["optim"], param_groups=[dict(m["optim"]["param_groups"][0], lr="x")])), "optimizer"),
    "an unknown optimizer scalar": (lambda m: dict(m, optim=dict(m["optim"], scalars={"x/y": 1})), "x/y"),
    "a huge step": (lambda m: dict(m, step=10**30), "step"),
    "T of 1e8": (lambda m: dict(m, schedule=dict(m["schedule"], T=10**8)), "T"),
}


@pytest.mark.parametrize("case", list(META_CASES))
def test_crafted_sidecars_are_refused_on_resume(run, capsys, case):
    edit, names = META_CASES[case]
    rewrite_checkpoint(run, meta=edit)
    rc, _, err = _resume(run, capsys)
    assert rc == 2 and names in one_sentence(err), err


def test_sample_refuses_non_finite_weights(run, capsys, tmp_path):
    rewrite_checkpoint(run, tensors=lambda t: {k: v * float("inf") if k.startswith("model/") and v.is_floating_point()
                                               else v for k, v in t.items()})
    out = tmp_path / "s.png"
    rc = main(["sample", str(run), "--n", "2", "--out", str(out), "--device", "cpu"])
    assert rc == 2 and "non-finite" in one_sentence(capsys.readouterr().err)
    assert not out.exists()


def test_sample_refuses_a_sidecar_T_of_1e8_at_once(run, capsys, tmp_path):
    rewrite_checkpoint(run, meta=lambda m: dict(m, schedule=dict(m["schedule"], T=10**8)))
    rc = main(["sample", str(run), "--n", "2", "--out", str(tmp_path / "s.png"), "--device", "cpu"])
    assert rc == 2 and "10,000" in one_sentence(capsys.readouterr().err)


def test_a_nonfinite_checkpoint_is_never_the_last_good_one(run):
    from vdm.train import Trainer

    rewrite_checkpoint(run, tensors=lambda t: {k: v * float("nan") if k.startswith("model/") and v.is_floating_point()
                                               else v for k, v in t.items()})
    tr = Trainer(tiny_cfg(run.parent, "run", epochs=1), run)  # not resumed: only asks what it would keep
    assert "ckpt-" not in tr._kept() or ckpt.resolve(run).name in tr._kept()


def test_safetensors_whose_first_byte_is_0x80_is_not_a_pickle(tmp_path):
    """A valid file whose header length is 128 mod 256 starts with 0x80, a pickle's first byte."""
    from safetensors.torch import save as st_save

    meta = {"model": "assignment", "schedule": {"kind": "constant", "T": 20}}
    for n in range(1, 300):
        t = dict(small_state(1), **{"rng/" + "x" * n: torch.zeros(1)})
        if st_save(t, metadata={"format": ckpt.FORMAT})[0] == 0x80:
            break
    else:
        pytest.fail("no padding gave a header of 128 mod 256 bytes")
    side = ckpt.save(tmp_path, 1, t, meta)
    assert (tmp_path / "ckpt-00000001.safetensors").read_bytes()[:1] == b"\x80"
    c = ckpt.load(side)
    assert torch.equal(c.tensors["model/w"], t["model/w"])


CONFIG_CASES = {
    "T = 1e10": ("T", 10**10, "--T must be at most"),
    "n_samples = 1e12": ("n_samples", 10**12, "--n-samples must be at most"),
    "threads = 100000": ("threads", 100_000, "--threads must be at most"),
    "alpha = 0.9999999999999999": ("alpha", 0.9999999999999999, "--alpha must lie"),
    "seed = 2**40": ("seed", 2**40, "--seed must lie"),
    "batch_size = 2**40": ("batch_size", 2**40, "--batch-size must be at most"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_config_numbers_are_bounded_before_training(run, capsys, case):
    key, value, words = CONFIG_CASES[case]
    cfg = read_json(run / "config.json")
    (run / "config.json").write_text(json.dumps(dict(cfg, **{key: value})))
    before = (run / "metrics.jsonl").read_bytes()
    rc, _, err = _resume(run, capsys)
    assert rc == 2 and words in one_sentence(err), err
    assert (run / "metrics.jsonl").read_bytes() == before


@pytest.mark.parametrize("argv, words", [
    (["--threads", "100000"], "at most 256 threads"),
    (["--threads", "3000"], "at most 256 threads"),
    (["--alpha", "0.9999999999999999"], "expected alpha in"),
    (["--alpha", "1e-300"], "expected alpha in"),
])
def test_flag_bounds(tmp_path, capsys, argv, words):
    cfg = tiny_cfg(tmp_path, "x")
    try:
        rc = main(train_argv(cfg)[:-2] + argv)  # train_argv ends with --lr: the bound flag comes after
    except SystemExit as e:
        rc = e.code
    assert rc == 2 and words in one_sentence(capsys.readouterr().err)
    assert not (tmp_path / "x").exists()
