"""What a run may ask for, once and without torch: the choices, the bounds and :class:`TrainConfig`.

Every module that checks a name or a number against these lists imports them from here; the
command line reads them without waiting seconds for torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from vdm import DEFAULT_T

# -- the choices -------------------------------------------------------------------------------------
IMAGE_DATASETS = ("shapes", "cifar10", "folder")  # uint8 [N, 3, 32, 32]
# 2-D point clouds (float [N, 2]): gmm and gmm-grid are Gaussian mixtures, with exact references
# (vdm.gmm); moons and swissroll are curves with Gaussian noise of a stated std (vdm.points)
POINT_DATASETS = ("gmm", "gmm-grid", "moons", "swissroll")
DATASETS = IMAGE_DATASETS + POINT_DATASETS
MODELS = ("auto", "assignment", "unet", "unet-small", "mlp")  # auto: assignment for images, mlp for points
PREDICTIONS = ("x0", "eps", "x0-precond")
SCHEDULES = ("constant", "linear", "cosine", "learned")  # learned: vdm.continuous, gamma(t) trained with the model
WEIGHTINGS = ("default", "edm")  # what trains the network; "default": the assignment's MSE, or the -ELBO if learned
PRECISIONS = ("auto", "fp32", "bf16")

# -- bounds on numbers from a flag, a config.json or a sidecar -------------------------------------------
# so that a typo or a crafted file cannot ask for hours, terabytes or more threads than libgomp
# survives (--threads 3000 hung, 20000 aborted)
MAX_T = 10_000  # sampling walks all T steps
MAX_COUNT = 10_000  # image counts, frames, table rows
MAX_THREADS = 256
MAX_BATCH = 1 << 16
MAX_POINTS = 1_000_000  # --data-n: a 2-D data set of this size is 8 MB
MAX_STEP = 2**53  # steps, epochs: beyond this a JSON number no longer counts exactly
ALPHA_MARGIN = 1e-6  # alpha within this of 0 or 1 rounds to 0 or 1 in float32 (SNR 0 or inf)

# train settings a resumed run must keep: the checkpoint's weights, optimizer and data order belong to
# them. Every other setting (epochs, minutes, how often it reports, the device, precision, compile)
# may change. The first five are the model's identity, which the trainer checks against a checkpoint.
IDENTITY_KEYS = ("model", "prediction", "schedule", "T", "alpha")
RESUME_MUST_MATCH = IDENTITY_KEYS + ("data", "data_n", "limit", "batch_size", "lr", "ema", "seed", "weighting")

UNIFORM_BPD = 8.0  # -log2 of 1/256: a model uniform over the 256 pixel levels, the scale every image bound is read on
IMAGE_SAMPLES, POINT_SAMPLES = 64, 1_000  # samples drawn at each evaluation: a grid of images, a cloud of points
POINTS_TRAIN = 10_000  # default --data-n of a point data set; the test split has POINTS_TEST points
# A run with a time limit also evaluates and samples by the clock: after CLOCK_FIRST_S seconds of training, then
# at each doubling of it (10, 20, 40, 80 s ...), so a minutes-long run has a curve and grids before its first
# epoch ends; a mark skips evaluating (sampling) while it has taken more than CLOCK_SHARE of the time.
CLOCK_FIRST_S = 10.0
CLOCK_SHARE = 0.15
CLOCK_SAMPLES = 16  # the clock's image grids are small (sampling is T network calls a sample)
POINTS_TEST = 2_000


def is_points(data: str) -> bool:
    """Whether the data set is a 2-D point cloud (float [N, 2]) rather than images (uint8 [N, 3, 32, 32])."""
    return data in POINT_DATASETS


def model_for(data: str, model: str = "auto") -> str:
    """The network a data set gets: ``auto`` is the assignment's for images and the MLP for points."""
    if model != "auto":
        return model
    return "mlp" if is_points(data) else "assignment"


@dataclass
class TrainConfig:
    name: str = ""
    runs_dir: str = "runs"
    data: str = "shapes"
    data_dir: str = "data"
    data_n: int = 0  # points of a 2-D data set's training split (0: POINTS_TRAIN); images: unused
    limit: int = 0  # use only the first N training images (0: all)
    model: str = "auto"  # resolved on construction (model_for): a config.json always names the network
    prediction: str = "x0"
    schedule: str = "constant"
    T: int = DEFAULT_T
    alpha: float | None = None
    epochs: int = 200
    batch_size: int = 128
    lr: float = 1e-3
    ema: float = 0.0  # EMA decay of the weights; 0 turns it off
    # what trains the network: "default" (the assignment's MSE on x_0, or the -ELBO for --schedule learned)
    # or "edm" (EDM's weight 1/c_out(t)^2 on ||x_0 - x̂_0||^2; learned: the ELBO integrand times
    # vdm.continuous.edm_weight, gamma still trained on the ELBO). Reported bounds are always the ELBO.
    weighting: str = "default"
    seed: int = 0
    device: str = "auto"
    minutes: float = 0.0  # stop (with a checkpoint and samples) after this much wall time; 0: no limit
    eval_size: int = 256
    eval_every: int = 1  # epochs
    sample_every: int = 1  # epochs; 0: only at the end
    n_samples: int = 0  # 0: resolved on construction, 64 images (a grid) or 1,000 points (a scatter)
    sample_steps: int = 0  # the run's grids in this many evenly spaced reverse steps (0: all T, the assignment's)
    ckpt_every: int = 0  # steps; 0: once per epoch
    log_every: int = 20  # steps between loss read-backs (the only host syncs)
    keep: int = 2  # checkpoints kept
    threads: int = 0  # torch CPU threads; 0: torch's default
    # speed (benchmarks/RESULTS.md): none of these changes the model, so a resumed run may change them
    precision: str = "auto"  # fp32 | bf16 autocast | auto: bf16 on CUDA, fp32 on CPU (bf16 measured 20-40x slower on an AVX2 CPU)
    channels_last: str = "auto"  # on | off | auto: on for CUDA images, off on CPU (slower there, measured) and for points
    compile: bool = False  # torch.compile the network (minutes of compiling; pays on long runs)
    cuda_graphs: bool = False  # with --compile on CUDA: mode reduce-overhead (CUDA graphs)

    def __post_init__(self):
        if isinstance(self.model, str) and isinstance(self.data, str):
            self.model = model_for(self.data, self.model)
        if self.n_samples == 0 and isinstance(self.data, str):
            self.n_samples = POINT_SAMPLES if is_points(self.data) else IMAGE_SAMPLES

    @property
    def points(self) -> bool:
        return is_points(self.data)

    def validate(self) -> None:
        _one_of("model", self.model, MODELS[1:])
        _one_of("prediction", self.prediction, PREDICTIONS)
        _one_of("schedule", self.schedule, SCHEDULES)
        _one_of("data set", self.data, DATASETS)
        _one_of("weighting", self.weighting, WEIGHTINGS)
        _one_of("precision", self.precision, PRECISIONS)
        if (self.model == "mlp") != self.points:
            kind = "2-D points" if self.points else "images"
            raise ValueError(f"--model {self.model} does not take {kind} (--data {self.data}); "
                             f"use --model {model_for(self.data)} or leave --model out.")
        for k in ("epochs", "batch_size", "T", "n_samples", "log_every", "keep"):
            if getattr(self, k) < 1:
                raise ValueError(f"--{k.replace('_', '-')} must be at least 1, got {getattr(self, k)}.")
        for k in ("data_n", "limit", "eval_size", "eval_every", "sample_every", "sample_steps", "ckpt_every", "threads"):
            if getattr(self, k) < 0:
                raise ValueError(f"--{k.replace('_', '-')} must not be negative, got {getattr(self, k)}.")
        for k, hi in (("T", MAX_T), ("n_samples", MAX_COUNT), ("threads", MAX_THREADS), ("batch_size", MAX_BATCH),
                      ("data_n", MAX_POINTS), ("keep", 1000), ("epochs", MAX_STEP), ("limit", MAX_STEP),
                      ("eval_size", MAX_STEP), ("eval_every", MAX_STEP), ("sample_every", MAX_STEP),
                      ("ckpt_every", MAX_STEP), ("log_every", MAX_STEP)):
            if getattr(self, k) > hi:
                raise ValueError(f"--{k.replace('_', '-')} must be at most {hi:,}, got {str(getattr(self, k))[:24]}.")
        if not 0 <= self.seed < 2**32:
            raise ValueError(f"--seed must lie in 0..{2**32 - 1}, got {str(self.seed)[:24]}.")
        if self.points and self.schedule == "learned":
            raise ValueError("--schedule learned trains on images (its reconstruction term is discretized over the "
                             "256 pixel levels); for 2-D points use constant, linear or cosine.")
        if self.weighting == "edm" and self.prediction == "eps":
            raise ValueError("--weighting edm weights the error of x̂_0 (x0 or x0-precond), not an eps model's.")
        if self.sample_steps > self.T:
            raise ValueError(f"--sample-steps must be at most T = {self.T}, got {self.sample_steps}.")
        if self.alpha is not None and not (ALPHA_MARGIN <= self.alpha <= 1 - ALPHA_MARGIN):
            raise ValueError(f"--alpha must lie in [{ALPHA_MARGIN:g}, 1 - {ALPHA_MARGIN:g}], got {self.alpha!r}.")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"--lr must be a positive number, got {self.lr}.")
        if not (0.0 <= self.ema < 1.0):
            raise ValueError(f"--ema must lie in [0, 1), got {self.ema}.")
        if not (0 <= self.minutes < 1e9):
            raise ValueError(f"--minutes must be a non-negative number, got {self.minutes}.")
        if self.channels_last not in ("auto", "on", "off"):
            raise ValueError(f"--channels-last must be auto, on or off, got {self.channels_last!r}.")

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        """From a config.json: unknown keys are ignored; a value of the wrong type is a ValueError."""
        if not isinstance(d, dict):
            raise ValueError(f"a training config is a JSON object, got {type(d).__name__}.")
        out = {}
        for f in fields(cls):
            if f.name not in d:
                continue
            v, default = d[f.name], f.default
            if isinstance(default, bool):
                ok = isinstance(v, bool)
            elif isinstance(default, int):
                ok = isinstance(v, int) and not isinstance(v, bool)
            elif isinstance(default, float) or default is None:  # alpha: None (tuned) or a number
                ok = (v is None and default is None) or (isinstance(v, (int, float)) and not isinstance(v, bool))
            else:
                ok = isinstance(v, str)
            if not ok:
                raise ValueError(f"{f.name} has the value {str(v)[:40]!r} of the wrong type.")
            out[f.name] = v
        return cls(**out)


# what a fresh run on 2-D points takes for the settings not given: a model that trains in about a minute
# on 2 CPU cores (benchmarks/RESULTS.md). An epoch of 10,000 points is 20 steps, so evaluation (every t
# of 2,000 held-out points) and samples come every 25 epochs, not every epoch.
POINT_DEFAULTS = {"schedule": "cosine", "T": 100, "prediction": "x0-precond", "weighting": "edm", "batch_size": 512,
                  "lr": 2e-3, "ema": 0.99, "epochs": 150, "eval_size": POINTS_TEST, "eval_every": 25, "sample_every": 25}


def fresh_config(given: dict) -> TrainConfig:
    """The TrainConfig of a new run from the settings a user gave (``given``; the rest are defaults): the
    assignment's defaults for images, POINT_DEFAULTS for 2-D points (an eps model keeps the default weighting,
    which is the only one it takes; --alpha keeps the constant schedule it belongs to)."""
    given = dict(given)
    if is_points(given.get("data", TrainConfig.data)):
        for k, v in POINT_DEFAULTS.items():
            if k == "weighting" and given.get("prediction") == "eps":
                continue
            if k == "schedule" and given.get("alpha") is not None:
                continue
            given.setdefault(k, v)
    return TrainConfig(**given)


def _one_of(what: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"unknown {what} {str(value)[:40]!r}; expected one of {', '.join(choices)}.")
