"""--sample-steps K: the run's grids are drawn in K reverse steps (K network calls), as `vdm sample --steps K`."""

from __future__ import annotations

import pytest
import torch

from vdm.config import TrainConfig, fresh_config
from vdm.train import Trainer


@pytest.mark.parametrize("bad, words", [
    (dict(sample_steps=-1), "must not be negative"),
    (dict(T=50, sample_steps=51), "at most T = 50"),
])
def test_sample_steps_out_of_range_is_one_sentence(bad, words):
    with pytest.raises(ValueError, match=words):
        TrainConfig(**bad).validate()


@pytest.mark.parametrize("K", [0, 7])
def test_a_grid_takes_K_network_calls(tmp_path, K):
    cfg = fresh_config(dict(data="gmm", T=40, sample_steps=K, n_samples=64, runs_dir=str(tmp_path), name="r"))
    tr = Trainer(cfg, tmp_path / "r", echo=lambda *a: None)
    calls = []
    handle = tr.eval_model.net.register_forward_hook(lambda mod, inp, out: calls.append(inp[0].shape[0]))
    x = tr.draw_samples()
    handle.remove()
    assert calls == [64] * (K or cfg.T)  # one call a step, on the whole batch
    assert x.shape == (64, 2) and bool(torch.isfinite(x).all())


def test_vdm_sample_defaults_to_the_runs_own_steps(tiny_run, tmp_path, capsys, monkeypatch):
    """A run trained with --sample-steps K is sampled in K steps by `vdm sample` unless --steps says otherwise."""
    import json
    import shutil

    import numpy as np
    from PIL import Image

    from testkit import run_main
    from vdm.denoiser import load_denoiser
    from vdm.images import grid
    from vdm.sample import sample

    run_dir = tmp_path / "run"
    shutil.copytree(tiny_run[1], run_dir)
    cfg = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps(dict(cfg, sample_steps=5)))
    monkeypatch.chdir(tmp_path)
    den, _ = load_denoiser(run_dir)
    for flags, K in (([], 5), (["--steps", str(den.schedule.T)], den.schedule.T)):
        rc, out, err = run_main(["sample", run_dir, "--n", "4", "--seed", "3", "--out", "s.png", "--animation", "",
                                 "--device", "cpu", *flags], capsys)
        assert rc == 0, err
        with Image.open("s.png") as im:
            png = np.asarray(im.convert("RGB"))
        assert np.array_equal(png, grid(sample(den, den.schedule, 4, seed=3, steps=K), scale=2))
        assert (f"in {K} of {den.schedule.T} steps" in out) == (K != den.schedule.T)
