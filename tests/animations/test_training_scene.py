"""The training scene (exercise 5) with a real run: every number, curve and grid on screen is the run's.

A tiny run is trained once for the module (T = 20, three epochs, a sample grid each epoch);
the scene is built from it (animations skipped) and rendered once at low quality with tiny
frames. The checks read metrics.jsonl and the PNGs here with json and PIL, not through
the scene's own helpers, and recompute the weight and the examples from their formulas.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from animations import render as r
from animations.latex import sci
from animations.lecture_data import lecture_source, use_run
from built_scenes import TEX, build_with_run, layout_problems
from vdm.run import open_run

TINY_RENDER = {"pixel_width": 128, "pixel_height": 72, "frame_rate": 3,
               "tex_dir": str(Path(tempfile.gettempdir()) / f"vdm-test-tex-{os.getuid()}")}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from vdm.train import Trainer, TrainConfig

    root = tmp_path_factory.mktemp("runs")
    cfg = TrainConfig(runs_dir=str(root), name="lec", T=20, limit=96, batch_size=32, epochs=3, eval_size=32,
                      n_samples=4, sample_every=1, threads=1, log_every=1)
    Trainer(cfg, root / "lec", echo=lambda *a: None).run()
    return root / "lec"


@pytest.fixture(scope="module")
def scene(run_dir):
    from animations.training import Training

    return build_with_run(Training, run_dir)


def records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def curve_points(axes, line):
    pts = np.array([axes.p2c(p) for p in line.get_anchors()])
    keep = np.ones(len(pts), bool)
    keep[1:] = np.any(np.abs(np.diff(pts, axis=0)) > 1e-12, axis=1)
    return pts[keep]


def test_loss_curve_is_the_runs_metrics(scene, run_dir):
    recs = records(run_dir)
    train = np.array([(r["step"], r["loss"]) for r in recs if r["kind"] == "train"], dtype=np.float64)
    evals = [(r["step"], r["eval_loss"]) for r in recs if r["kind"] == "eval"]
    assert len(train) >= 6 and len(evals) == 3  # a record per step (log_every 1), an eval per epoch
    pts = curve_points(scene.loss_axes, scene.train_line)
    np.testing.assert_allclose(pts[:, :2], train, rtol=1e-6, atol=1e-6)
    dots = [scene.loss_axes.p2c(d.get_center()) for d in scene.eval_dots]
    np.testing.assert_allclose(np.array(dots)[:, :2], np.array(evals, dtype=np.float64), rtol=1e-6, atol=1e-6)


def test_numbers_shown_are_the_runs(scene, run_dir):
    recs = records(run_dir)
    train = [r for r in recs if r["kind"] == "train"]
    last_eval = [r for r in recs if r["kind"] == "eval"][-1]
    shown = " ".join(scene.loss_facts)
    assert f"{train[0]['loss']:.4f} at step {train[0]['step']}" in shown
    assert f"{train[-1]['loss']:.4f} at step {train[-1]['step']}" in shown
    assert f"held-out {last_eval['eval_loss']:.4f} at step {last_eval['step']}" in shown
    # the -ELBO with its error, as every -ELBO a learner is shown
    assert rf"{last_eval['bpd']['total']:.2f} $\pm$ {last_eval['bpd_se']:.2f} bits/dim" in shown
    end = [r for r in recs if r["kind"] == "end"][-1]
    assert f"{end['elapsed'] / 60:.1f} min" in shown
    # the screen says what the model was trained on; the run's name and how it was chosen are the presenter's
    assert "model: trained on" in scene.run_note.tex_string and "lec" not in scene.run_note.tex_string
    assert any("The model is the run lec" in n and "(given with --run)" in n for n in scene.slide_notes)


def test_sample_grids_are_the_runs_pngs(scene, run_dir):
    files = sorted((run_dir / "samples").glob("step-*.png"))
    assert len(files) == 3
    steps = [s for s, _ in scene.grids]
    assert steps == [int(f.stem.split("-")[1]) for f in files]  # three grids: all of them, oldest first
    for img, f in zip(scene.grid_images, files):
        png = np.asarray(Image.open(f).convert("RGB"))
        shown = img.pixel_array[:, :, :3]
        # the file's top-left corner, 4 samples across where the file has more: grids of 16 and of 36 alike
        np.testing.assert_array_equal(shown, png[:shown.shape[0], :shown.shape[1]])
        assert _tiles_across(shown) == min(4, _tiles_across(png))
    # beside them, 16 of the run's held-out images, in vdm's grid layout (1-pixel white lines)
    data = scene.data_image.pixel_array[:, :, :3]
    x = open_run(run_dir).test_images()[:16].permute(0, 2, 3, 1).numpy()
    assert _tiles_across(data) == 4
    for i in range(16):
        r, c = divmod(i, 4)
        np.testing.assert_array_equal(data[1 + 33 * r: 33 * (r + 1), 1 + 33 * c: 33 * (c + 1)], x[i])


def test_a_grid_of_36_shows_its_top_left_16(tmp_path):
    """The trainer's last grid holds 6 x 6 samples, those by the clock 4 x 4: the slide shows 4 x 4 of each, the
    file's own pixels (a 6 x 6 grid written at scale 3 by vdm.images.grid, cut here by hand)."""
    from animations.training import sample_grid_pixels
    from vdm.images import grid

    x = torch.randint(0, 250, (36, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "step-7.png"
    Image.fromarray(grid(x, ncol=6, scale=3)).save(path)
    shown = sample_grid_pixels(path)
    assert shown.shape == (3 * (4 * 33 + 1), 3 * (4 * 33 + 1), 3) and _tiles_across(shown) == 4
    tile = shown[3 + 3 * 33: 3 + 3 * 33 + 96: 3, 3: 3 + 96: 3]  # row 1, column 0: sample 6 of the 6-wide grid
    np.testing.assert_array_equal(tile, x[6].permute(1, 2, 0).numpy())


def _tiles_across(pixels) -> int:
    """Images across a grid, counted from its white separating lines (runs of all-white columns)."""
    white = (pixels == 255).all(axis=(0, 2))
    runs = int(white[0]) + int(np.sum(white[1:] & ~white[:-1]))
    return runs - 1


def test_weight_is_half_the_snr_difference(scene):
    """w(t), read off vdm.elbo.matching_kl, against (SNR(t-1) - SNR(t)) / 2 from alpha_bar in float64."""
    s = scene.schedule
    ab = np.cumprod(s.alpha.double().numpy())
    with np.errstate(divide="ignore"):  # SNR(0) is infinite; w starts at t = 2
        snr = ab / (1 - ab)
    np.testing.assert_allclose(scene.weights, 0.5 * (snr[1:-1] - snr[2:]), rtol=1e-5)
    w = scene.weights
    shown = " ".join(m.tex_string for m in scene.weight_notes)
    assert sci(w[0], 3) in shown and sci(w[-1], 3) in shown and sci(w[0] / w[-1]) in shown


def test_training_examples_follow_the_closed_form(scene, run_dir):
    """The drawn t, x_t and MSE, recomputed here: t ~ U{1..T} from seed 0, x_t = sqrt(ab) x_0 + sqrt(1-ab) eps."""
    from vdm.run import open_model

    ex = scene.examples
    s = scene.schedule
    g = torch.Generator().manual_seed(0)
    t = torch.randint(1, s.T + 1, (3,), generator=g)
    eps = torch.randn((3, 3, 32, 32), generator=g)
    assert torch.equal(ex["t"], t) and torch.equal(ex["eps"], eps)
    den, _, run = open_model(run_dir)
    from vdm.data import to_float

    x0 = to_float(run.test_images()[:1])[0]
    ab = s.alpha_bar.double()[t].reshape(-1, 1, 1, 1)
    x_t = ab.sqrt() * x0.double() + (1 - ab).sqrt() * eps.double()
    np.testing.assert_allclose(ex["x_t"].double().numpy(), x_t.numpy(), atol=1e-5)
    with torch.no_grad():
        x0_hat = den(ex["x_t"], t).double()
    err = ((x0_hat - x0.double()) ** 2).flatten(1)
    np.testing.assert_allclose(ex["mse"].double().numpy(), err.mean(1).numpy(), rtol=1e-5)
    ab_np = np.cumprod(s.alpha.double().numpy())
    for i in range(3):
        ti = int(t[i])
        text = " ".join(scene.example_texts[i][5])
        assert f"t = {ti}" in text and f"{float(err[i].mean()):.4f}" in text
        if ti >= 2:  # the ELBO term it stands for: w(t) ||x̂_0 - x_0||^2
            w = 0.5 * (ab_np[ti - 1] / (1 - ab_np[ti - 1]) - ab_np[ti] / (1 - ab_np[ti]))
            assert float(ex["kl"][i]) == pytest.approx(w * float(err[i].sum()), rel=1e-4)
            assert f"{float(ex['kl'][i]):.4g}" in text


def test_layout_with_a_run(scene):
    assert scene.pauses >= 15
    problems = layout_problems(scene)
    assert not problems, "\n".join(problems[:20])


def test_newest_run_is_used_and_said(run_dir):
    """Without --run the newest run under runs/ is used, and the presenter notes say it was chosen so."""
    try:
        use_run(None, search=True, runs_dir=run_dir.parent)
        src = lecture_source()
        assert src.run.path == run_dir
        assert "lec" in src.detail and f"the newest run under {run_dir.parent}/" in src.detail
    finally:
        use_run(None, search=False)


def test_renders_one_slide_per_pause(scene, run_dir, tmp_path):
    video = r.render("training", "low", tmp_path, progress=lambda _: None, overrides=TINY_RENDER, run=run_dir)[0]
    assert video.stat().st_size > 1000
    slides = json.loads((tmp_path / "slides" / "Training.json").read_text())["slides"]
    assert len(slides) == scene.pauses and all(Path(s["file"]).is_file() for s in slides)
    assert TEX.is_dir()


def test_constant_run_shows_its_one_schedule(scene):
    """A run on the assignment's own schedule: one log SNR curve, log(alpha^s / (1 - alpha^s)) at t = s/T."""
    panel = scene.snr
    assert len(panel.curves) == 1
    line = panel.curves[0][0]
    pts = np.array([panel.axes.p2c(p) for p in line.get_anchors()])
    keep = np.ones(len(pts), bool)
    keep[1:] = np.any(np.abs(np.diff(pts, axis=0)) > 1e-12, axis=1)
    pts = pts[keep]
    T = scene.schedule.T
    s = np.arange(1, T + 1)
    alpha = 0.01 ** (2 / T)
    np.testing.assert_allclose(pts[:, 0], s / T, atol=1e-9)
    np.testing.assert_allclose(pts[:, 1] + panel.y0, np.log(alpha ** s / (1 - alpha ** s)), rtol=1e-5, atol=1e-5)
    legend = panel.legend[0].tex_string
    assert "the assignment's schedule" in legend and legend.count("constant") == 1, legend  # not "constant: constant"


def test_elbo_scenes_with_a_run_draw_t_by_importance_and_estimate_the_full_sum(run_dir):
    """With a trained run each -ELBO draw takes one importance-sampled t per term (drawn uniformly, the t-draw's
    spread, decades wide for a trained model, hid the latents' spread the scene is about); its mean is the
    full sum over t, recomputed here with every t for the same image, within the two estimates' errors."""
    from animations.elbo_denoising import DenoisingELBO
    from animations.lecture_data import example_x0
    from vdm.elbo import elbo
    from vdm.run import open_run

    scene = build_with_run(DenoisingELBO, run_dir)
    assert {scene.draws[f].estimator for f in ("consistency", "denoising")} == {"importance"}
    run = open_run(run_dir)
    den, _ = run.denoiser("cpu")
    den.eval()
    x0 = example_x0(1).repeat(64, 1, 1, 1)
    with torch.no_grad():
        full = elbo(den, run.schedule, x0, form="denoising", estimator="full",
                    generator=torch.Generator().manual_seed(7)).total.double().numpy()
    shown = scene.draws["denoising"].total.double().numpy()
    se = np.sqrt(shown.var(ddof=1) / len(shown) + full.var(ddof=1) / len(full))
    assert abs(shown.mean() - full.mean()) < 4 * se
    problems = layout_problems(scene)  # a trained run's numbers are longer than the stand-in's
    assert not problems, "\n".join(problems[:20])
