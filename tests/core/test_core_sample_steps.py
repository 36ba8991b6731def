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
