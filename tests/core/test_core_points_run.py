"""A 2-D run end to end: the points defaults, the run directory, the eval record's references, the commands."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from testkit import run_main as run_cli
from vdm import gmm
from vdm.config import POINT_DEFAULTS, POINTS_TRAIN, TrainConfig, fresh_config
from vdm.report import ElboOptions, exact_references
from vdm.run import metrics_path, open_run, read_points, sample_path
from vdm.train import Trainer


@pytest.fixture(scope="module")
def gmm_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("points")
    cfg = fresh_config(dict(data="gmm", runs_dir=str(d), name="g", epochs=4, eval_every=2, sample_every=2,
                            eval_size=500))
    Trainer(cfg, d / "g").run()
    return open_run(d / "g")


def _steps_per_epoch(cfg) -> int:
    return math.ceil(POINTS_TRAIN / cfg.batch_size)


def test_points_get_their_own_defaults_and_images_keep_the_assignments():
    c = fresh_config({"data": "moons"})
    assert c.model == "mlp" and c.n_samples == 1000
    assert {k: getattr(c, k) for k in POINT_DEFAULTS} == POINT_DEFAULTS
    assert fresh_config({"data": "moons", "T": 300, "schedule": "linear"}).T == 300  # given flags win
    assert fresh_config({"data": "moons", "prediction": "eps"}).weighting == "default"  # edm takes no eps model
    img = fresh_config({})
    assert (img.model, img.schedule, img.T, img.prediction, img.n_samples) == ("assignment", "constant", 500, "x0", 64)


@pytest.mark.parametrize("bad, words", [
    (dict(data="gmm", model="assignment"), "does not take 2-D points"),
    (dict(data="shapes", model="mlp"), "does not take images"),
    (dict(data="moons", schedule="learned", prediction="x0-precond"), "for 2-D points use"),
    (dict(data="gmm", data_n=-1), "must not be negative"),
])
def test_mismatched_settings_are_one_sentence(bad, words):
    with pytest.raises(ValueError, match=words):
        TrainConfig(**bad).validate()


def test_the_run_directory_of_points(gmm_run):
    cfg = gmm_run.config
    assert cfg.model == "mlp" and cfg.data == "gmm"
    pts = gmm_run.latest_points()
    assert pts is not None and pts.shape == (cfg.n_samples, 2) and pts.dtype == np.float32
    last = _steps_per_epoch(cfg) * cfg.epochs
    assert np.array_equal(read_points(sample_path(gmm_run.path, last, ".npy")), pts)
    assert sample_path(gmm_run.path).is_file()  # the scatter picture beside the numbers
    recs = [json.loads(line) for line in metrics_path(gmm_run.path).read_text().splitlines()]
    ev = [r for r in recs if r["kind"] == "eval"]
    assert len(ev) == 2 and all(r["density"] for r in ev)
    ref = ev[-1]["reference"]
    # the optimal denoiser met the model's noise: its -ELBO is the best possible, and on average above -log p
    assert ref["optimal"] <= ev[-1]["bpd"]["total"] + 3 * ev[-1]["bpd_se"]
    assert ref["nll"] <= ref["optimal"] + 3 * ref["optimal_se"]
    assert ref == ev[0]["reference"]  # computed once: the points and the schedule do not change
    gap = ev[-1]["gap_to_optimal"]  # point by point on the same x_t: the difference of the two means, a paired error
    assert gap["mean"] == pytest.approx(ev[-1]["bpd"]["total"] - ref["optimal"], abs=1e-9)
    # paired: below the error the difference of the two means would have if their noise were independent
    assert 0 < gap["se"] < math.hypot(ev[-1]["bpd_se"], ref["optimal_se"])


def test_a_trained_model_does_not_beat_the_optimal_denoiser(gmm_run):
    den, _ = gmm_run.denoiser()
    ex = exact_references(den, gmm.layout("gmm"), gmm_run.schedule, gmm_run.test_images()[:500], ElboOptions(draws=2))
    gap = ex["model_minus_optimal"]
    assert gap["nats"] >= -3 * gap["se_nats"]
    assert ex["nll"]["nats"] <= ex["optimal"]["nats"] + 3 * ex["optimal"]["se_nats"]
    assert ex["optimal_minus_nll"]["nats"] == pytest.approx(ex["optimal"]["nats"] - ex["nll"]["nats"])


def test_vdm_elbo_names_the_three_numbers_and_the_gaps(gmm_run, capsys):
    rc, out, err = run_cli(["elbo", gmm_run.path, "--n", 300, "--calibration-n", 100, "--draws", 2], capsys)
    assert rc == 0, err
    for words in ("model -ELBO", "optimal denoiser -ELBO", "true -log p(x_0)", "gap: model - optimal",
                  "gap: optimal - true", "Gaussian density", "nats"):
        assert words in out, words
    rc, out, err = run_cli(["elbo", gmm_run.path, "--n", 300, "--calibration-n", 100, "--json"], capsys)
    s = json.loads(out)
    assert s["density"] and s["references"]["uniform_bpd"] is None
    assert set(s["exact"]) >= {"model", "optimal", "nll", "model_minus_optimal", "optimal_minus_nll"}


def test_vdm_sample_and_forward_draw_clouds(gmm_run, tmp_path, capsys):
    out = tmp_path / "s.png"
    rc, _, err = run_cli(["sample", gmm_run.path, "--n", 200, "--steps", 20, "--out", out], capsys)
    assert rc == 0, err
    assert np.load(out.with_suffix(".npy"), allow_pickle=False).shape == (200, 2)
    rc, o, err = run_cli(["forward", "--data", "moons", "--schedule", "cosine", "--T", 50, "--steps", 4,
                          "--out", tmp_path / "f.png", "--animation", ""], capsys)
    assert rc == 0 and "held-out moons points" in o, err
    rc, _, err = run_cli(["forward", "--data", "moons", "--image", tmp_path / "f.png", "--out", tmp_path / "g.png"], capsys)
    assert rc == 2 and "cloud of 2-D points" in err


def test_a_points_run_resumes(gmm_run, tmp_path, capsys):
    import shutil

    run_dir = tmp_path / "copy"
    shutil.copytree(gmm_run.path, run_dir)
    rc, _, err = run_cli(["train", "--resume", run_dir, "--epochs", 5, "--no-tui", "--quiet"], capsys)
    assert rc == 0, err
    assert open_run(run_dir).checkpoint().name == f"ckpt-{_steps_per_epoch(gmm_run.config) * 5:08d}.json"
    rc, _, err = run_cli(["train", "--resume", run_dir, "--data-n", 500, "--no-tui", "--quiet"], capsys)
    assert rc == 2 and "data_n" in err
