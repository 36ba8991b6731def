"""The lecture's 2-D model: a Gaussian-mixture ring, a small MLP trained on it, and its exact references.

Without an image run the generative parts of the lecture (the 2-D scene, the training scene's loss
curve and samples, the backward scene's chain) use a model of 2-D points, which trains in well under a
minute on a CPU: ``vdm.train.Trainer`` on ``--data gmm`` with the points defaults of
``vdm.config.fresh_config`` and SETTINGS. It is trained once per set of settings and kept in a cache
folder named after them (CACHE, or $VDM_LECTURE_CACHE), so rendering several scenes, or rendering
again, trains once. `vdm render --run RUN` with a 2-D run uses that run instead.

Every number comes from vdm: the chains from vdm.cloud, the ELBO terms from vdm.elbo, the mixture's
density and its Bayes-optimal denoiser from vdm.gmm. Nothing here is a formula.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from animations.latex import tex_text
from animations.lecture_data import lecture_source

# what the lecture trains: the README's `vdm train --data gmm` (the points defaults: cosine T = 100, x0-precond,
# EDM weighting, MLP, EMA, 150 epochs; under a minute on one CPU thread), seeded, evaluated every 15 epochs so
# that the training scene has a curve
SETTINGS = {"data": "gmm", "seed": 0, "eval_every": 15, "sample_every": 15, "threads": 1}
DATA_WORDS = {"gmm": "8 Gaussians on a ring", "gmm-grid": "25 Gaussians on a grid", "moons": "two moons",
              "swissroll": "a Swiss roll"}  # the 2-D data sets as a slide names them
N_TRACED = 6  # points whose whole path is drawn
N_CLOUD = 2000  # points in a cloud (the held-out split's size)


def cache_root() -> Path:
    return Path(os.environ.get("VDM_LECTURE_CACHE") or Path(tempfile.gettempdir()) / f"vdm-lecture-2d-{os.getuid()}")


def settings_key(settings: dict) -> str:
    """The cache folder's name: the data set and a hash of the whole config the settings resolve to
    (vdm.config.fresh_config: a change of the points defaults trains afresh)."""
    from dataclasses import asdict

    from vdm.config import fresh_config

    cfg = asdict(fresh_config(dict(settings)))
    for k in ("runs_dir", "name"):
        cfg.pop(k, None)
    text = json.dumps(cfg, sort_keys=True)
    return f"{settings.get('data', 'gmm')}-{hashlib.sha1(text.encode()).hexdigest()[:10]}"


def _complete(path: Path) -> bool:
    from vdm.run import is_run, open_run

    if not is_run(path):
        return False
    try:
        run = open_run(path)
        records, _ = run.metrics()
        return run.checkpoint() is not None and any(r.get("kind") == "end" for r in records)
    except ValueError:
        return False


def trained_run(settings: dict | None = None, progress=None):
    """The vdm.run.Run of the lecture's 2-D model with ``settings`` (default SETTINGS): from the cache, or
    trained now (seeded, in this process) into a staging folder that is then renamed into place."""
    from vdm.config import fresh_config
    from vdm.run import open_run
    from vdm.train import Trainer

    settings = dict(SETTINGS if settings is None else settings)
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    final = root / settings_key(settings)
    if _complete(final):
        return open_run(final)
    if final.exists():  # a broken or unfinished folder: train afresh
        shutil.rmtree(final, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix="staging-", dir=root))
    name = "run"
    cfg = fresh_config(dict(settings, runs_dir=str(staging), name=name))
    if progress is not None:
        progress(f"training the lecture's 2-D model ({settings['data']}, {cfg.epochs} epochs) into {final} ...")
    threads = torch.get_num_threads()
    try:
        Trainer(cfg, staging / name, echo=lambda *a: None).run()
    finally:
        torch.set_num_threads(threads)
    try:
        os.rename(staging / name, final)
    except OSError:  # another process put its copy there first: the same settings, the same model
        pass
    shutil.rmtree(staging, ignore_errors=True)
    return open_run(final)


@dataclass(frozen=True)
class PointModel:
    """The 2-D model the scenes draw with: its denoiser, schedule and run, the data set's mixture (None for
    a data set without one) and ``note``, a short line of LaTeX text naming it on screen (the schedule apart)."""

    denoiser: object
    schedule: object
    run: object
    data: str
    mixture: object | None
    note: str
    trained_here: bool
    what: str  # the note without its "2-D model: "
    detail: str = ""  # plain words for the presenter notes: which run, and how it was chosen


def given_points_run():
    """The 2-D run given with `vdm render --run`, or None (no run, or an image run)."""
    src = lecture_source()
    return src.points_run


@lru_cache(maxsize=None)
def point_model() -> PointModel:
    """The 2-D model: the --run one when that is a 2-D run, else the lecture's own (trained_run)."""
    from vdm import gmm

    run = given_points_run()
    here = run is None
    if here:
        run = trained_run()
    den, meta = run.denoiser("cpu")
    den.eval()
    data = run.config.data
    mixture = gmm.layout(data) if gmm.is_mixture(data) else None
    words = DATA_WORDS.get(data, data)
    what = (rf"{tex_text(words)}, {run.config.epochs} epochs, trained for this lecture" if here
            else rf"{tex_text(words)}, {run.config.epochs} epochs")
    note = rf"2-D model: {what}"
    detail = (f"The 2-D model was trained for this lecture: {run.config.epochs} epochs of vdm train on this "
              f"data, seed {run.config.seed}." if here else
              f"The 2-D model is the run {run.name}, given with --run ({run.path}).")
    return PointModel(den, run.schedule, run, data, mixture, note, here, what, detail)


def prepare(progress=print) -> PointModel:
    """point_model(), saying first when the lecture's model has to be trained (before any scene renders)."""
    if given_points_run() is None:
        trained_run(progress=progress)
    return point_model()


def reset() -> None:
    """Forget the chosen model and everything computed from it (lecture_data.use_run calls this)."""
    for f in (point_model, held_out, forward_paths, backward_paths, elbo_table, matching_bits):
        f.cache_clear()


# -- what the scenes draw ---------------------------------------------------------------------------

@lru_cache(maxsize=None)
def held_out() -> torch.Tensor:
    """The run's held-out points, float32 [N, 2] (N_CLOUD of them at most)."""
    return point_model().run.test_images()[:N_CLOUD].float()


@lru_cache(maxsize=None)
def forward_paths(seed: int = 0) -> torch.Tensor:
    """[T+1, N, 2]: the held-out points through the forward chain, step by step (vdm.cloud.forward_cloud)."""
    from vdm.cloud import forward_cloud

    pm = point_model()
    return forward_cloud(pm.schedule, held_out(), seed)


@lru_cache(maxsize=None)
def backward_paths(n: int = N_CLOUD, seed: int = 0):
    """(samples [n, 2], Chain): the model's sampler from x_T ~ N(0, I), every step (vdm.cloud.backward_cloud)."""
    from vdm.cloud import backward_cloud

    pm = point_model()
    return backward_cloud(pm.denoiser, pm.schedule, n, seed)


def traced(n: int = N_TRACED) -> list[int]:
    """Which points get their path drawn: every (N // n)-th, so that they start on different modes."""
    N = len(held_out())
    return [int(i * N / n) for i in range(n)]


@dataclass(frozen=True)
class Estimate:
    """A mean over the held-out points and its standard error (std / sqrt(n))."""

    mean: float
    se: float

    @classmethod
    def of(cls, values: torch.Tensor) -> "Estimate":
        v = values.double()
        n = len(v)
        return cls(float(v.mean()), float(v.std() / math.sqrt(n)) if n > 1 else 0.0)


@lru_cache(maxsize=None)
def elbo_table(seed: int = 0) -> dict:
    """-ELBO term by term (vdm.elbo, denoising form, the full sum over t) of the model and of the mixture's
    optimal denoiser (vdm.gmm.OptimalDenoiser) on the held-out points, on the same noise (one generator
    seed for both, so the x_t they meet are the same), and the true -log q(x_0) (vdm.gmm), all in nats
    per point, each an Estimate.

    Returns {"model": {term: Estimate}, "optimal": {...} or None, "nll": Estimate or None,
    "model_minus_optimal", "optimal_gap", "model_gap": Estimates of the per-point differences
    (None without a mixture), "n": points, "per_point": the raw per-point tensors}.
    """
    from vdm import gmm
    from vdm.elbo import elbo

    pm = point_model()
    x0 = held_out()
    out = {"n": len(x0)}
    per = {}
    with torch.no_grad():
        for who, den in (("model", pm.denoiser),
                         ("optimal", gmm.OptimalDenoiser(pm.mixture, pm.schedule) if pm.mixture is not None else None)):
            if den is None:
                out[who] = None
                continue
            e = elbo(den, pm.schedule, x0, "denoising", "full", generator=torch.Generator().manual_seed(seed))
            per[who] = {k: v.double() for k, v in e.terms().items()}
            out[who] = {k: Estimate.of(v) for k, v in per[who].items()}
    if pm.mixture is not None:
        nll = -pm.mixture.log_prob(x0)
        per["nll"] = nll
        out["nll"] = Estimate.of(nll)
        out["model_minus_optimal"] = Estimate.of(per["model"]["total"] - per["optimal"]["total"])
        out["optimal_gap"] = Estimate.of(per["optimal"]["total"] - nll)
        out["model_gap"] = Estimate.of(per["model"]["total"] - nll)
    else:
        out["nll"] = out["model_minus_optimal"] = out["optimal_gap"] = out["model_gap"] = None
    out["per_point"] = per
    return out


@lru_cache(maxsize=None)
def matching_bits(seed: int = 0) -> dict:
    """Where the bits go: the denoising-matching terms of -ELBO t by t (vdm.elbo, denoising form, the full
    estimator's per_t) of the model on its held-out points, each the mean over the points in bits per point, on
    the noise elbo_table uses (the same generator seed).

    Returns {"t": [T-1] ints 2..T, "bits": [T-1] floats (term t), "total": the matching term in bits per point
    (vdm's own sum of the terms), "total_se": its standard error over the points (std / sqrt(n)), "share": [T-1] cumulative share of the total up to each t, "half" and "most":
    the smallest t whose cumulative share reaches 1/2 and 9/10, "first": the share of t = 2 alone, "T", "n"}.
    """
    from vdm.elbo import elbo

    pm = point_model()
    x0 = held_out()
    with torch.no_grad():
        e = elbo(pm.denoiser, pm.schedule, x0, "denoising", "full", generator=torch.Generator().manual_seed(seed))
    bits = (e.per_t.double().mean(0) / math.log(2))[2:].numpy()
    total = float(e.matching.double().mean()) / math.log(2)
    total_se = float(e.matching.double().std() / math.sqrt(len(x0))) / math.log(2)
    share = np.cumsum(bits) / bits.sum()
    t = np.arange(2, pm.schedule.T + 1)
    return {"t": t, "bits": bits, "total": total, "total_se": total_se, "share": share, "half": int(t[np.argmax(share >= 0.5)]),
            "most": int(t[np.argmax(share >= 0.9)]), "first": float(bits[0] / bits.sum()), "T": pm.schedule.T,
            "n": len(x0)}


def near_modes(points: torch.Tensor, radius: float | None = None) -> float:
    """Share of ``points`` within ``radius`` (default 3 component stds) of a mixture mean: how much of a cloud
    lies on the data's modes."""
    mix = point_model().mixture
    r = 3 * mix.std if radius is None else radius
    d = torch.cdist(points.double(), mix.means).min(1).values
    return float((d < r).double().mean())
