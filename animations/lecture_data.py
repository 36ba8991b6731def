"""The lecture's data: example images, the assignment's schedule, the trained model the scenes
use, and the ELBO draws. Scenes do no math: everything here comes from ``vdm`` (cached, so a
scene computes it once).

The trained model (backward and ELBO scenes) is chosen with use_run (what
`vdm render --run RUN` calls): that run, else the newest run under runs/ with a
complete checkpoint, else none, and the scenes say which on screen.

Environment:
    VDM_DATA_DIR    where CIFAR-10 lives (cifar-10-batches-py); its test images
                    replace the embedded shapes when present.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from animations.latex import schedule_tex, tex_text
from vdm import data as vdm_data
from vdm import DEFAULT_T
from vdm.elbo import elbo
from vdm.schedule import Schedule


@lru_cache(maxsize=None)
def example_images(n: int = 4) -> torch.Tensor:
    """n test images, uint8 [n, 3, 32, 32]: CIFAR-10's when VDM_DATA_DIR holds it, else the embedded shapes."""
    data_dir = Path(os.environ.get("VDM_DATA_DIR", "data"))
    if (data_dir / "cifar-10-batches-py").is_dir():
        return vdm_data.cifar10(data_dir, "test", download=False)[:n]
    return vdm_data.shapes(n, "test")[0]


def example_x0(n: int = 1) -> torch.Tensor:
    """The first n example images as floats in [-1, 1]."""
    return vdm_data.to_float(example_images(max(n, 4))[:n])


def lecture_schedule(T: int = DEFAULT_T) -> Schedule:
    """The assignment's constant schedule with the tuned alpha (the exercises' own: alpha_t = alpha)."""
    return Schedule.constant(T=T)


# -- where the trained model comes from ------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """The model the backward and ELBO scenes use, one line saying so on screen, and where it came from
    for the presenter notes.

    ``denoiser`` is None without a trained run; ``schedule`` is then the lecture's.
    """

    denoiser: object | None
    schedule: Schedule
    run: object | None  # vdm.run.Run
    note: str           # LaTeX text for the students: what the model was trained on, or that there is none
    points_run: object | None = None  # a 2-D run given with --run (animations.model2d draws with it)
    detail: str = ""    # plain words for the presenter: which run, and how it was chosen


DATA_NAMES = {"cifar10": "CIFAR-10", "shapes": "32 by 32 images of coloured shapes", "folder": "a folder of images"}


_CHOICE = {"run": None, "search": True, "runs_dir": "runs"}


def use_run(run: str | os.PathLike | None = None, *, search: bool = True, runs_dir: str | os.PathLike = "runs") -> None:
    """Choose the model the scenes use: ``run`` (a run directory or checkpoint, as `vdm render --run`),
    else with ``search`` the newest run under ``runs_dir`` with a complete checkpoint, else none."""
    if run is not None:
        from vdm.run import open_model

        open_model(run, "cpu")  # a bad path is one ValueError sentence now, before any rendering
    _CHOICE.update(run=None if run is None else str(run), search=search, runs_dir=str(runs_dir))
    lecture_source.cache_clear()
    elbo_draws.cache_clear()
    import sys

    if "animations.model2d" in sys.modules:  # the 2-D model follows the choice too
        sys.modules["animations.model2d"].reset()


def newest_run(runs_dir: str | os.PathLike = "runs"):
    """The image run under ``runs_dir`` whose newest complete checkpoint is the most recent, or None
    (2-D runs are left out: the scenes' images need an image model; a 2-D run is used when given)."""
    from vdm.run import is_run, open_run

    best, best_time = None, -1.0
    root = Path(runs_dir)
    if not root.is_dir():
        return None
    for d in root.iterdir():
        if not is_run(d):
            continue
        try:
            run = open_run(d)
            if run.config.points:
                continue
            ck = run.checkpoint()
        except ValueError:
            continue  # a broken run is skipped here; `--run` names it with its sentence
        if ck is not None and ck.stat().st_mtime > best_time:
            best, best_time = run, ck.stat().st_mtime
    return best


@lru_cache(maxsize=None)
def lecture_source() -> Source:
    """The chosen model (see use_run): its denoiser and its own schedule, and how it was chosen."""
    from vdm.run import open_model

    path, how = _CHOICE["run"], "given with --run"
    if path is None and _CHOICE["search"]:
        run = newest_run(_CHOICE["runs_dir"])
        path, how = (None, None) if run is None else (run.path, f"the newest run under {_CHOICE['runs_dir']}/")
    if path is None:
        return Source(None, lecture_schedule(), None, "no trained run", detail="No trained image run was found.")
    den, meta, run = open_model(path, "cpu")
    den.eval()
    if run is not None and run.config.points:  # a 2-D run: no image model; animations.model2d uses it
        return Source(None, lecture_schedule(), None, "no image run", points_run=run,
                      detail=f"The 2-D run {run.name} was given with --run.")
    name = run.name if run is not None else Path(path).name
    data = DATA_NAMES.get(run.config.data, run.config.data) if run is not None else "images"
    return Source(den, den.schedule, run,
                  f"model: trained on {tex_text(data)}, schedule {schedule_tex(den.schedule)}",
                  detail=f"The model is the run {name} ({how}), schedule {den.schedule.describe()}.")


class LeakyOracle(torch.nn.Module):
    """A deliberately imperfect denoiser: x̂_0 = x_0 + lam (x_t - sqrt(alpha_bar_t) x_0) = x_0 + lam sqrt(1 - alpha_bar_t) eps.

    It leaves a fraction ``lam`` of the noise in its estimate, so its error grows with t
    and depends on x_t, like a real network's: every matching KL is then positive and
    random, which is what the variance demo compares (the oracle x̂_0 = x_0 makes every
    denoising-matching KL exactly 0 and says nothing about the estimator).
    """

    def __init__(self, x0: torch.Tensor, schedule: Schedule, lam: float = 0.3):
        super().__init__()
        self.x0, self.lam = x0, lam
        self.signal = schedule.signal_coef()

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        t = torch.as_tensor(t).reshape(-1)
        a = self.signal.to(x_t.dtype)[t].reshape(-1, *([1] * (x_t.ndim - 1)))
        return self.x0.to(x_t.dtype) + self.lam * (x_t - a * self.x0.to(x_t.dtype))


LEAK = 0.3
ELBO_T_NO_RUN = 20  # without a run: T = 20 of the tuned constant schedule, so the full sum over t stays cheap


def elbo_model_words() -> str:
    """What the ELBO scenes estimate with, in plain words for the presenter notes."""
    src = lecture_source()
    if src.denoiser is not None:
        return src.detail + (" Each draw picks one t for each term from a proposal that favours the steps where "
                              "the terms are large, and weights it by one over its probability: one network call "
                              "per term, and the same expectation as the sum over all t.")
    return (f"There is no trained image run here, so a deliberately imperfect denoiser stands in: it leaves "
            f"{LEAK:g} of the noise in its estimate of x_0, on {ELBO_T_NO_RUN} steps of the constant schedule, "
            "and every term of the sum over t is computed.")


def elbo_model_note() -> str:
    """What the ELBO scenes estimate with, as LaTeX text."""
    src = lecture_source()
    if src.denoiser is not None:
        return src.note + r", \\ one step $t$ per term, drawn more often where the terms are large"
    # a stand-in, said as such: no "no trained run" on a student's slide; the break keeps the formula on one line
    return (r"a deliberately imperfect stand-in for a trained network: \\ "
            rf"$\hat{{x}}_0 = x_0 + {LEAK:g}\,(x_t - \sqrt{{\bar\alpha_t}}\,x_0)$, "
            rf"constant $\alpha$, $T = {ELBO_T_NO_RUN}$, full sum over $t$")


@lru_cache(maxsize=None)
def elbo_draws(n: int = 200, seed: int = 0) -> dict:
    """-ELBO of one image drawn n times, both forms: {form: vdm.elbo.ELBO}; the spread is pure Monte Carlo.

    With a trained run (lecture_source): its model and schedule and the importance-sampled-t
    estimator (one network call per term instead of T; with t drawn uniformly, a trained run's
    per-draw spread is the t-draw's, decades wide in both forms, and hides the latents' spread
    that exercise 3 is about). Without one: LeakyOracle on
    T = 20 steps of the tuned constant schedule and the full sum over t. Never the
    oracle x̂_0 = x_0, whose matching terms are all 0.
    """
    torch.manual_seed(seed)
    x0 = example_x0(1).repeat(n, 1, 1, 1)
    src = lecture_source()
    if src.denoiser is None:
        s = Schedule.constant(T=ELBO_T_NO_RUN)
        den, estimator = LeakyOracle(x0, s, LEAK), "full"
    else:
        den, s, estimator = src.denoiser, src.schedule, "importance"
    out = {}
    with torch.no_grad():
        for form in ("consistency", "denoising"):
            g = torch.Generator().manual_seed(seed + (form == "denoising"))  # independent draws per form
            out[form] = elbo(den, s, x0, form=form, estimator=estimator, generator=g)
    return out


def agreement(a, b, z: float = 3.0) -> tuple[bool, float, float]:
    """(whether the means of the samples a and b agree within z standard errors, difference, its standard error)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = float(a.mean() - b.mean())
    se = float(np.sqrt(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b)))
    return abs(diff) <= z * se, diff, se
