"""The run's noise schedule on screen: the log SNR(t) curve drawn is the run's, beside the assignment's.

A tiny run with a learned schedule (``--schedule learned --prediction x0-precond``, T = 20, one
epoch) is trained once for the module; the training scene is built from it with
animations skipped (no video). The drawn points are read back through the axes and compared with
vdm.continuous.snr_curve, and with log SNR recomputed here from each schedule's alpha_bar (the
learned one) and from alpha = 0.01^(2/T) (the assignment's constant one, sqrt(alpha^T) = 0.01).
"""

from __future__ import annotations

import numpy as np
import pytest

from animations.latex import schedule_tex
from animations.mobjects.plots import snr_one_at
from built_scenes import build_with_run, get, layout_problems

T = 20


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory):
    from vdm.train import Trainer, TrainConfig

    root = tmp_path_factory.mktemp("runs")
    cfg = TrainConfig(runs_dir=str(root), name="learned", T=T, limit=64, batch_size=32, epochs=1, eval_size=32,
                      n_samples=4, sample_every=1, threads=1, log_every=1, schedule="learned",
                      prediction="x0-precond")
    Trainer(cfg, root / "learned", echo=lambda *a: None).run()
    return root / "learned"


@pytest.fixture(scope="module")
def scenes(learned_run):
    from animations.backward_diffusion import BackwardDiffusion
    from animations.training import Training

    return {"training": build_with_run(Training, learned_run), "backward": build_with_run(BackwardDiffusion, learned_run)}


def drawn(panel, i):
    """(t, log SNR) of curve i, read off the screen through the panel's axes (y is log SNR - y0)."""
    line = panel.curves[i][0]
    pts = np.array([panel.axes.p2c(p) for p in line.get_anchors()])
    keep = np.ones(len(pts), bool)
    keep[1:] = np.any(np.abs(np.diff(pts, axis=0)) > 1e-12, axis=1)
    pts = pts[keep]
    return pts[:, 0], pts[:, 1] + panel.y0


@pytest.mark.parametrize("name", ["training"])
def test_learned_curve_is_snr_curve(scenes, name):
    from vdm.continuous import snr_curve

    scene = scenes[name]
    s = scene.schedule
    assert s.kind == "learned"
    panel = scene.snr
    t_ref, y_ref = (v.numpy() for v in snr_curve(s))
    t, y = drawn(panel, 0)
    np.testing.assert_allclose(t, t_ref, atol=1e-6)
    np.testing.assert_allclose(y, y_ref, rtol=1e-6, atol=1e-5)
    # at t = k/T the curve is the discrete schedule's log SNR, from its own alpha_bar
    ab = s.alpha_bar.double().numpy()
    on_steps = np.interp(np.arange(1, T + 1) / T, t, y)
    np.testing.assert_allclose(on_steps, np.log(ab[1:] / (1 - ab[1:])), rtol=1e-4, atol=1e-4)
    # named by describe(), on screen
    assert panel.curves[0][3] == s.describe()
    assert schedule_tex(s) in panel.legend[0].tex_string


@pytest.mark.parametrize("name", ["training"])
def test_constant_schedule_beside_it(scenes, name):
    panel = scenes[name].snr
    assert len(panel.curves) == 2
    t, y = drawn(panel, 1)
    s = np.arange(1, T + 1)
    alpha = 0.01 ** (2 / T)
    np.testing.assert_allclose(t, s / T, atol=1e-9)
    np.testing.assert_allclose(y, np.log(alpha ** s / (1 - alpha ** s)), rtol=1e-5, atol=1e-5)
    assert "constant alpha" in panel.curves[1][3]


@pytest.mark.parametrize("name", ["training"])
def test_sentences_follow_from_the_curves(scenes, name):
    """Where each curve puts SNR = 1, found here by interpolating t against the (decreasing) log SNR."""
    panel = scenes[name].snr
    for (line, t, y, _desc, t_one, _colour), sentence, cap in zip(panel.curves, panel.sentences, panel.captions):
        assert y[0] > 0 > y[-1]  # both cross SNR = 1 on this run
        expect = float(np.interp(0.0, y[::-1], t[::-1]))
        assert t_one == pytest.approx(expect, abs=1e-9)
        assert f"$t/T = {expect:.2f}$" in sentence and f"step {expect * T:.0f} of {T}" in sentence
        assert sentence in cap.tex_string


def test_snr_one_at_edge_cases():
    t = np.array([0.0, 0.5, 1.0])
    assert snr_one_at(t, np.array([2.0, 1.0, 0.5])) is None
    assert snr_one_at(t, np.array([-1.0, -2.0, -3.0])) == 0.0
    assert snr_one_at(t, np.array([2.0, 0.0, -1.0])) == 0.5
    assert snr_one_at(t, np.array([3.0, 1.0, -1.0])) == pytest.approx(0.75)


def test_layout_with_a_learned_run(scenes):
    for scene in scenes.values():
        problems = layout_problems(scene)
        assert not problems, "\n".join(problems[:20])


def test_the_schedule_is_drawn_once_in_the_lecture(scenes):
    """The training scene draws the run's schedule; the backward scene, right after it, names it without drawing
    the same chart again (it did, 15 s of the same picture)."""
    from animations.backward_diffusion import BackwardDiffusion

    assert scenes["training"].snr is not None
    for scene in (get(BackwardDiffusion), scenes["backward"]):
        assert not hasattr(scene, "snr") and "the schedule it samples with" not in scene.slide_names


def test_learned_run_loss_is_not_called_an_mse(scenes, learned_run):
    """A learned run trains on the continuous -ELBO in bits/dim; its evals' MSE is another unit, not drawn with it."""
    import json

    scene = scenes["training"]
    recs = [json.loads(line) for line in (learned_run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    last_eval = [r for r in recs if r["kind"] == "eval"][-1]
    assert len(scene.eval_dots) == 0
    assert f"held-out MSE {last_eval['eval_loss']:.4f}" in " ".join(scene.loss_facts) and "(unweighted)" in scene.loss_facts


def test_an_edm_run_loss_is_not_called_an_mse(tmp_path):
    """--weighting edm trains on ||x_0 - x̂_0||^2 / c_out^2, not the MSE its evals report: no eval dots on
    its axis, the held-out value named an MSE, the axis named after the weighted error, and all in the frame."""
    import json

    from animations.training import Training
    from vdm.train import Trainer, TrainConfig

    cfg = TrainConfig(runs_dir=str(tmp_path), name="edm", T=T, limit=64, batch_size=32, epochs=1, eval_size=32,
                      n_samples=4, sample_every=1, threads=1, log_every=1, prediction="x0-precond", weighting="edm")
    Trainer(cfg, tmp_path / "edm", echo=lambda *a: None).run()
    scene = build_with_run(Training, tmp_path / "edm")
    recs = [json.loads(line) for line in (tmp_path / "edm" / "metrics.jsonl").read_text().splitlines() if line.strip()]
    last_eval = [r for r in recs if r["kind"] == "eval"][-1]
    assert len(scene.eval_dots) == 0
    assert f"held-out MSE {last_eval['eval_loss']:.4f}" in " ".join(scene.loss_facts) and "(unweighted)" in scene.loss_facts
    problems = layout_problems(scene)
    assert not problems, "\n".join(problems[:20])


def test_the_backward_strip_shows_each_step_once():
    from animations.backward_diffusion import strip_steps

    assert strip_steps(500) == [500, 41, 11, 4, 1, 0]
    assert strip_steps(20) == [20, 5, 2, 1, 0]  # 21^0.1 - 1 = 0.36 rounds to 0, as 21^0 - 1 does
    for T in range(1, 1001):
        s = strip_steps(T)
        assert len(s) == len(set(s)) and s[0] == T and s[-1] == 0 and s == sorted(s, reverse=True)
