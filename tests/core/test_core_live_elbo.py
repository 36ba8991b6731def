"""The trainer's held-out -ELBO (what the monitor shows) is `vdm elbo --estimator importance`'s estimate on the same
items, and the error it states is its own Monte Carlo error: agreement and honesty, tested statistically."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from vdm import data as datasets
from vdm import train as train_mod
from vdm.config import TrainConfig
from vdm.report import ElboOptions, elbo_report
from vdm.run import metrics_path, open_model, open_run
from vdm.train import Trainer

Z = 4.0  # a two-sided 4-sigma band: a correct estimator fails it once in 16,000 runs


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    cfg = TrainConfig(runs_dir=str(root), name="r", T=20, limit=256, batch_size=32, eval_size=64, n_samples=4,
                      sample_every=0, threads=1, log_every=8, epochs=3, schedule="cosine", prediction="x0-precond",
                      ema=0.9)
    Trainer(cfg, root / "r").run()
    return root / "r", cfg


def _last_eval(run: Path) -> dict:
    recs = [json.loads(line) for line in metrics_path(run).read_text().splitlines()]
    return [r for r in recs if r["kind"] == "eval"][-1]


def test_the_monitors_elbo_agrees_with_vdm_elbo_within_its_errors(trained):
    run, cfg = trained
    ev = _last_eval(run)
    assert ev["estimator"] == {"name": "importance", "draws": train_mod.EVAL_DRAWS, "items": cfg.eval_size}
    den, meta, _ = open_model(str(run), "cpu", use_ema=True)
    test = datasets.load(cfg.data, "test", cfg.data_dir, n=cfg.data_n, seed=cfg.seed)
    s = elbo_report(den, meta, cfg.data, test, cfg.eval_size, ElboOptions("importance", "pilot", 4, "fixed", seed=3))
    row = s["forms"]["denoising"]["fixed"]
    a, sa, b, sb = ev["bpd"]["total"], ev["bpd_mc_se"], row["total"], row["mc_standard_error"]
    # both estimate the mean -ELBO of the same items under the same checkpoint: only their Monte Carlo errors part them
    assert abs(a - b) <= Z * math.hypot(sa, sb), (a, sa, b, sb)
    # and that error is the estimator's alone (items fixed), below the items' spread the old number carried
    assert 0 < sa < ev["bpd_se"]


def test_the_stated_error_is_the_spread_of_repeated_evaluations(trained, monkeypatch):
    """Twelve evaluations of the same weights with other seeds scatter by the stated Monte Carlo error."""
    run, cfg = trained
    tr = Trainer(open_run(run).config, run, resume=True)
    totals, stated = [], []
    for seed in range(12):
        monkeypatch.setattr(train_mod, "EVAL_SEED", 1000 + seed)
        ev = tr.evaluate()
        totals.append(ev["bpd"]["total"])
        stated.append(ev["bpd_mc_se"])
    ratio = float(np.std(totals, ddof=1) / np.mean(stated))
    # s / sigma over 11 degrees of freedom: below 0.35 or above 2.5 with probability under 1e-3
    assert 0.35 < ratio < 2.5, (ratio, totals, stated)


def _records(run: Path) -> list[dict]:
    return [json.loads(line) for line in metrics_path(run).read_text().splitlines()]


def test_a_time_limited_run_evaluates_and_samples_by_the_clock(tmp_path, monkeypatch):
    """Before its first epoch ends, a --minutes run has evaluations and small grids at the clock's marks, each
    with the seconds it took; the epoch's own schedule would have none."""
    monkeypatch.setattr(train_mod, "CLOCK_FIRST_S", 0.2)
    monkeypatch.setattr(train_mod, "CLOCK_SHARE", 1.0)  # every mark taken
    cfg = TrainConfig(runs_dir=str(tmp_path), name="c", T=20, limit=4096, batch_size=8, eval_size=16, n_samples=36,
                      threads=1, log_every=4, epochs=5, minutes=0.04)
    Trainer(cfg, tmp_path / "c").run()
    recs = _records(tmp_path / "c")
    spe = 4096 // 8
    mid = [r for r in recs if r["kind"] == "eval" and r["step"] % spe]
    grids = [r for r in recs if r["kind"] == "sample" and r["step"] % spe]
    assert len(mid) >= 2 and len(grids) >= 2, [(r["kind"], r["step"]) for r in recs if r["kind"] != "train"]
    # the clock's grids are small; the one at the stop is the run's full grid
    assert [g["n"] for g in grids] == [train_mod.CLOCK_SAMPLES] * (len(grids) - 1) + [36]
    assert all(r["seconds"] > 0 for r in recs if r["kind"] in ("eval", "sample"))


def test_the_clock_skips_marks_once_evaluating_costs_more_than_its_share(tmp_path, monkeypatch):
    monkeypatch.setattr(train_mod, "CLOCK_FIRST_S", 0.2)
    monkeypatch.setattr(train_mod, "CLOCK_SHARE", 0.0)  # the first mark, then none: its cost is over any share
    cfg = TrainConfig(runs_dir=str(tmp_path), name="c", T=20, limit=4096, batch_size=8, eval_size=16, n_samples=4,
                      threads=1, log_every=4, epochs=5, minutes=0.04)
    Trainer(cfg, tmp_path / "c").run()
    recs = _records(tmp_path / "c")
    spe = 4096 // 8
    mid = [r for r in recs if r["kind"] == "eval" and r["step"] % spe]
    end = [r for r in recs if r["kind"] == "end"][0]
    assert end["reason"] == "time limit" and len(mid) == 2  # the mark's, and the one at the stop


def test_a_share_is_written_with_its_binomial_error():
    """percent_with_error: the share and sqrt(p (1 - p) / n), both in percent to the error's second significant
    digit; checked against the spread of simulated binomial shares, and the edge cases with no spread."""
    import numpy as np

    from vdm.report import percent_with_error, share_error

    sims = np.random.default_rng(0).binomial(2000, 0.96, 20000) / 2000
    assert share_error(0.96, 2000) == pytest.approx(sims.std(), rel=0.02)
    assert percent_with_error(0.9595, 2000) == "95.95 ± 0.44 %"
    assert percent_with_error(0.5, 100) == "50.0 ± 5.0 %"
    assert percent_with_error(1.0, 36) == "100 %" and percent_with_error(0.0, 36) == "0 %"
