"""The 2-D scene and the 2-D model the lecture falls back on without an image run.

The model is animations.model2d's, trained once per machine with conftest's small settings (32 epochs,
seeded) and cached. The checks recompute what the screen shows from vdm (vdm.elbo, vdm.gmm, vdm.cloud)
without the scene's helpers, read the texts the scenes put on screen, and check that the model's samples
land on the mixture's modes (a model that has not learnt the ring fails).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from animations import model2d as m2
from built_scenes import build, get, layout_problems

NUM = r"(-?\d+\.\d+)(?: \\times 10\^\{(-?\d+)\})?"


def shown_value(text: str) -> tuple[float, float]:
    """(mean, standard error) from a shown 'm \\pm s' (each possibly 'a \\times 10^{k}')."""
    m = re.fullmatch(NUM + r" \\pm " + NUM, text.strip())
    assert m, text
    a = float(m.group(1)) * 10 ** int(m.group(2) or 0)
    b = float(m.group(3)) * 10 ** int(m.group(4) or 0)
    return a, b


def decimals(text: str) -> float:
    """Half a unit in the last shown digit of the mean: the rounding a shown number carries."""
    mean = text.split(r"\pm")[0]
    digits = re.search(r"\.(\d+)", mean).group(1)
    scale = re.search(r"10\^\{(-?\d+)\}", mean)
    return 0.5 * 10 ** (-len(digits) + (int(scale.group(1)) if scale else 0))


@pytest.fixture(scope="module")
def scene():
    from animations.diffusion_2d import Diffusion2D

    return build(Diffusion2D)


@pytest.fixture(scope="module")
def model():
    m2.reset()
    return m2.point_model()


def test_terms_add_up_to_the_total(scene):
    for who, shown in scene.shown_terms.items():
        parts = [shown_value(shown[k])[0] for k in ("reconstruction", "prior", "matching")]
        total = shown_value(shown["total"])[0]
        slack = sum(decimals(shown[k]) for k in ("reconstruction", "prior", "matching", "total")) + 1e-12
        assert abs(sum(parts) - total) <= slack, (who, parts, total)


def test_terms_recompute_from_vdm(scene, model):
    """Every shown number, recomputed here: vdm.elbo on the run's held-out points (the full sum over t, seed 0,
    the same noise for both denoisers), vdm.gmm's optimal denoiser and exact -log q, std / sqrt(n) errors."""
    from vdm import gmm
    from vdm.elbo import elbo

    x0 = model.run.test_images()[:m2.N_CLOUD].float()
    mix = gmm.layout("gmm")
    n = len(x0)
    per = {}
    with torch.no_grad():
        for who, den in (("model", model.denoiser), ("optimal", gmm.OptimalDenoiser(mix, model.schedule))):
            e = elbo(den, model.schedule, x0, "denoising", "full", generator=torch.Generator().manual_seed(0))
            per[who] = {k: v.double() for k, v in e.terms().items()}
    nll = -mix.log_prob(x0)

    def check(text, values):
        mean, se = shown_value(text)
        assert mean == pytest.approx(float(values.mean()), abs=decimals(text) * 1.01, rel=1e-9)
        assert se == pytest.approx(float(values.std() / np.sqrt(n)), rel=0.05, abs=decimals(text) * 1.01)

    for who in ("model", "optimal"):
        for k in ("reconstruction", "prior", "matching", "total"):
            check(scene.shown_terms[who][k], per[who][k])
    check(scene.shown_nll, nll)
    check(scene.gap_numbers["optimal_gap"], per["optimal"]["total"] - nll)
    check(scene.gap_numbers["model_minus_optimal"], per["model"]["total"] - per["optimal"]["total"])
    # the bound holds on average, and the optimal denoiser is the better model
    assert per["optimal"]["total"].mean() > nll.mean()
    assert per["model"]["total"].mean() > per["optimal"]["total"].mean()


def test_the_gaps_read_as_the_differences_of_the_numbers_beside_them(scene):
    """Subtracting the shown bounds gives the shown gaps to within a fifth of their standard error (1.49 - 1.40
    beside "0.08 +- 0.01" read as a contradiction; it was rounding, of numbers cut at 2 decimals), and the
    verdict under them repeats the shown gap's digits."""
    nll = shown_value(scene.shown_nll)[0]
    opt, mod = (shown_value(scene.shown_terms[k]["total"])[0] for k in ("optimal", "model"))
    for key, diff in (("optimal_gap", opt - nll), ("model_minus_optimal", mod - opt)):
        gap, se = shown_value(scene.gap_numbers[key])
        assert abs(diff - gap) <= se / 5, (key, diff, scene.gap_numbers[key])
    shown = scene.gap_numbers["model_minus_optimal"].split(r" \pm ")[0]
    assert f"is {shown} nats" in scene.verdict or "within 3 standard errors" in scene.verdict, scene.verdict


def test_a_traced_path_is_cut_at_the_panel_edge():
    """A path through points inside and outside the panel's square draws exactly the parts inside: every drawn
    point is inside, and every point of the true segments that is inside lies on the drawn path (checked
    against 400 points along each segment, not against the clipping's own algebra)."""
    from manim import VMobject

    from animations.cloud2d import CloudPanel, clip_segment, set_path

    panel = CloudPanel(side=4.0, view=2.0)
    rng = np.random.default_rng(0)
    track = rng.normal(0, 2.0, (40, 2))  # about a third of the points outside [-2, 2]^2
    line = set_path(panel, VMobject(), track)
    drawn = line.points[:, :2] - panel.frame.get_center()[:2]
    assert np.all(np.abs(drawn) <= 2.0 + 1e-9)
    pieces = [line.points[i:i + 4] for i in range(0, len(line.points), 4)]  # cubic segments: 4 points each
    ends = np.array([[p[0, :2], p[3, :2]] for p in pieces]) - panel.frame.get_center()[:2]

    def on_path(x):
        a, b = ends[:, 0], ends[:, 1]
        u = np.clip(np.einsum("ij,ij->i", x - a, b - a) / np.maximum(np.einsum("ij,ij->i", b - a, b - a), 1e-18), 0, 1)
        return np.min(np.linalg.norm(a + u[:, None] * (b - a) - x, axis=1)) < 1e-6

    for a, b in zip(track[:-1], track[1:]):
        for u in np.linspace(0, 1, 400):
            x = a + u * (b - a)
            if np.all(np.abs(x) < 2.0 - 1e-6):
                assert on_path(x), (a, b, u)
    assert clip_segment([3, 3], [4, -5], 2.0) is None
    assert np.allclose(clip_segment([-3, 0], [3, 0], 2.0), [[-2, 0], [2, 0]])


def test_the_clouds_are_vdms_chains(scene, model):
    from vdm.cloud import backward_cloud, forward_cloud

    x0 = model.run.test_images()[:m2.N_CLOUD].float()
    fwd = forward_cloud(model.schedule, x0, 0)
    _, chain = backward_cloud(model.denoiser, model.schedule, m2.N_CLOUD, 0)
    for t, cl in zip(scene.figure_steps, scene.figure_clouds["forward"]):
        np.testing.assert_allclose(cl.points_shown, fwd[t].double().numpy(), atol=1e-6)
    for t, cl in zip(scene.figure_steps, scene.figure_clouds["backward"]):
        np.testing.assert_allclose(cl.points_shown, chain.x[t].double().numpy(), atol=1e-6)


def test_mode_caption_follows_its_numbers(scene, model):
    """Each share on the caption is the measured one with its binomial error sqrt(p (1 - p) / n), in percent:
    the samples' first, then the held-out data's."""
    got, data = scene.mode_shares
    shown = re.findall(r"(\d+(?:\.\d+)?) \$\\pm\$ (\d+(?:\.\d+)?)\\,\\%", scene.mode_caption.tex_string)
    assert len(shown) == 2, scene.mode_caption.tex_string
    for (mean, err), p, n in zip(shown, (got, data), (len(scene.samples), len(m2.held_out()))):
        assert float(mean) == pytest.approx(100 * p, abs=0.06)
        assert float(err) == pytest.approx(100 * np.sqrt(p * (1 - p) / n), abs=0.06)


def test_backward_chain_ends_on_the_modes(model):
    """The model's samples at t = 0 lie on the ring's eight modes, every mode is hit; x_T does not."""
    from vdm import gmm
    from vdm.cloud import backward_cloud

    samples, chain = backward_cloud(model.denoiser, model.schedule, 2000, seed=1)
    mix = gmm.layout("gmm")
    d = torch.cdist(samples.double(), mix.means)
    near = d.min(1).values < 3 * mix.std
    assert float(near.double().mean()) >= 0.5
    share = torch.bincount(d.argmin(1)[near], minlength=8).double() / len(samples)
    assert float(share.min()) >= 0.03, share  # every mode, none left out
    start = torch.cdist(chain.x[-1].double(), mix.means).min(1).values < 3 * mix.std
    assert float(start.double().mean()) < 0.35  # x_T ~ N(0, I) is not on the ring yet


PLACEHOLDERS = ("no trained run", "train one", "oracle", "vdm train}, then")


def all_texts(scene) -> list[str]:
    return [text for _, boxes in scene.layout_log for text, _ in boxes]


@pytest.mark.parametrize("name", ["training", "backward"])
def test_without_an_image_run_no_placeholder_and_no_oracle(name):
    from animations import render as r
    from vdm.denoiser import Oracle

    scene = get(r.scene_class(name))
    texts = all_texts(scene)
    for text in texts:
        assert not any(p in text.lower() for p in PLACEHOLDERS), text
    said = {t for t in texts if "no image run" in t}
    assert len(said) == 1, said  # said once, in one line
    assert not any(isinstance(v, Oracle) for v in vars(scene).values())
    problems = layout_problems(scene)
    assert not problems, "\n".join(problems[:20])


def test_backward_without_an_image_run_samples_the_2d_model(model):
    from animations.backward_diffusion import BackwardDiffusion

    scene = get(BackwardDiffusion)
    assert scene.points and scene.chain.x.shape[-1] == 2
    _, chain = m2.backward_paths()
    assert torch.equal(scene.chain.x, chain.x)
    for step, cl in zip(scene.strip_steps, scene.strip_clouds):
        np.testing.assert_array_equal(cl.points_shown, chain.x[step].double().numpy())
    assert scene.strip_steps[-1] == 0 and m2.near_modes(chain.x[0]) >= 0.5


def test_training_without_an_image_run_shows_the_2d_run(model):
    import json

    from animations.training import Training

    scene = get(Training)
    assert scene.shown.path == model.run.path
    recs = [json.loads(line) for line in (model.run.path / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = np.array([(r["step"], r["loss"]) for r in recs if r["kind"] == "train"], dtype=np.float64)
    pts = np.array([scene.loss_axes.p2c(p) for p in scene.train_line.get_anchors()])
    keep = np.ones(len(pts), bool)
    keep[1:] = np.any(np.abs(np.diff(pts, axis=0)) > 1e-12, axis=1)
    np.testing.assert_allclose(pts[keep][:, :2], train, rtol=1e-6, atol=1e-6)
    ref = [r for r in recs if r["kind"] == "eval"][-1]["reference"]
    assert any(f"{ref['nll']:.2f}" in f for f in scene.loss_facts)
    # its samples over training: the .npy files the trainer wrote, drawn as they are
    from vdm.run import read_points

    assert len(scene.sample_points) == len(scene.grids) >= 2
    for (step, path), pts in zip(scene.grids, scene.sample_points):
        np.testing.assert_array_equal(pts, read_points(path))


def test_training_shows_the_2d_runs_bound_falling_to_the_optimal_one(model):
    """The flat weighted loss hides the progress: the held-out -ELBO of each eval record, ± its standard error,
    is drawn over the exact references (the optimal denoiser's -ELBO and the true -log q) the records carry."""
    import json

    from animations.training import Training

    scene = get(Training)
    recs = [json.loads(line) for line in (model.run.path / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = [r for r in recs if r["kind"] == "eval"]
    want = np.array([(r["step"], r["bpd"]["total"], r["bpd_se"]) for r in evals], dtype=np.float64)
    ax = scene.bound_axes
    dots = np.array([ax.p2c(d.get_center())[:2] for d in scene.bound_dots])
    np.testing.assert_allclose(dots, want[:, :2], rtol=1e-6, atol=1e-6)
    for bar, (step, v, se) in zip(scene.bound_bars, want):
        lo, hi = sorted((ax.p2c(bar.get_start())[1], ax.p2c(bar.get_end())[1]))
        assert lo == pytest.approx(v - se, abs=1e-6) and hi == pytest.approx(v + se, abs=1e-6)
    ref = evals[-1]["reference"]
    shown = " ".join(scene.bound_facts)
    assert f"{want[0, 1]:.2f}" in shown and f"{want[-1, 1]:.2f}" in shown
    assert f"{ref['optimal']:.2f}" in shown and f"{ref['nll']:.2f}" in shown
    assert want[-1, 1] < want[0, 1]  # what the slide is there to show: the bound fell as the model trained


def test_a_2d_run_given_with_run_is_used(model, tmp_path):
    """`vdm render --run` with a 2-D run: the 2-D model is that run; the image scenes see no image run."""
    from animations.lecture_data import lecture_source, use_run

    try:
        use_run(model.run.path, search=False)
        src = lecture_source()
        assert src.denoiser is None and src.points_run.path == model.run.path
        pm = m2.point_model()
        assert pm.run.path == model.run.path and not pm.trained_here and "given with --run" in pm.detail
    finally:
        use_run(None, search=False)


def test_newest_run_leaves_2d_runs_out(model):
    from animations.lecture_data import newest_run

    assert newest_run(model.run.path.parent) is None or not newest_run(model.run.path.parent).config.points


def test_cache_is_keyed_by_the_settings():
    a = m2.settings_key({"data": "gmm", "epochs": 16})
    assert a == m2.settings_key({"epochs": 16, "data": "gmm"}) and a != m2.settings_key({"data": "gmm", "epochs": 17})
