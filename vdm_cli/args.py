"""The ``vdm`` command line's options: one function per command adds them, with checked types.

Bad values are one sentence and exit status 2 (``_Parser.error``), never the usage block.
"""

from __future__ import annotations

import argparse
import math
import re

from vdm import DEFAULT_T
from vdm.config import (ALPHA_MARGIN, DATASETS, MAX_COUNT, MAX_POINTS, MAX_T, MAX_THREADS, MODELS, IMAGE_SAMPLES,
                        POINT_DATASETS, POINT_DEFAULTS, POINT_SAMPLES, POINTS_TEST, POINTS_TRAIN, PRECISIONS,
                        PREDICTIONS, SCHEDULES, TrainConfig)
from vdm_cli.commands import ELBO_IMAGES, ELBO_POINTS, cmd_elbo, cmd_forward, cmd_model, cmd_sample, cmd_tune_alpha
from vdm_cli.errors import EXIT_USAGE
from vdm_cli.faces import cmd_render, cmd_slides, cmd_tui
from vdm_cli.score import SCORE_IMAGES, cmd_score
from vdm_cli.train import cmd_train


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one sentence (and the exit status 2), not the usage block."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help).\n")

    def _get_values(self, action, arg_strings):
        # argparse drops a '--' given as an option's value (--T=--) and hands back [] untyped
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: expected a value, got '--'")
        return super()._get_values(action, arg_strings)


# what a number on the command line is: ASCII digits as the README writes them (Python's int() and float()
# also take 1_000 and other scripts' digits, which no one means here)
_INT = re.compile(r"\s*[+-]?[0-9]+\s*")
_FLOAT = re.compile(r"\s*[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?\s*|\s*[+-]?(inf|infinity|nan)\s*", re.I)


def _int(s: str) -> int:
    if not _INT.fullmatch(s):
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s[:40]!r}")
    return int(s)


def _seed(s: str) -> int:
    v = _int(s)
    if not 0 <= v < 2**32:
        raise argparse.ArgumentTypeError(f"expected a seed in 0..{2**32 - 1}, got {v}")
    return v


def _bounded_int(hi: int):
    def parse(s: str) -> int:
        v = _positive_int(s)
        if v > hi:
            raise argparse.ArgumentTypeError(f"expected a number <= {hi:,}, got {v}")
        return v
    return parse


def _int_at_least(lo: int):
    def parse(s: str) -> int:
        v = _int(s)
        if v < lo:
            raise argparse.ArgumentTypeError(f"expected a number >= {lo}, got {v}")
        return v
    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


def _finite_float(s: str) -> float:
    if not _FLOAT.fullmatch(s):
        raise argparse.ArgumentTypeError(f"expected a number, got {s[:40]!r}")
    v = float(s)
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {s[:40]!r}")
    return v


def _alpha(s: str) -> float:
    v = _finite_float(s)
    if not ALPHA_MARGIN <= v <= 1 - ALPHA_MARGIN:
        raise argparse.ArgumentTypeError(f"expected alpha in [{ALPHA_MARGIN:g}, 1 - {ALPHA_MARGIN:g}], got {s[:40]!r}")
    return v


def _threads(s: str) -> int:
    v = _nonneg_int(s)
    if v > MAX_THREADS:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_THREADS} threads, got {v}")
    return v


def _add_schedule_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--schedule", choices=SCHEDULES, default="constant", help="noise schedule (default: constant)")
    p.add_argument("--T", type=_bounded_int(MAX_T), default=DEFAULT_T, help=f"number of diffusion steps (default: {DEFAULT_T})")
    p.add_argument("--alpha", type=_alpha, default=None,
                   help="constant alpha; default: tuned so that sqrt(alpha^T) = 0.01 (see tune-alpha)")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The command line; with ``only``, the options of that command alone.

    Most commands' options take their choices from modules that import torch
    (seconds): ``vdm --help`` and ``vdm tui`` should not wait for it.
    """
    ap = _Parser(prog="vdm", description="Variational Diffusion Models: train, sample, inspect.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, kwargs, add_args in _COMMANDS:
        p = sub.add_parser(name, **kwargs)
        if only is None or only == name:
            add_args(p)
    return ap


def command_word(argv: list[str]) -> str:
    """The command of a command line ('' if none): the first word that is not an option."""
    return next((a for a in argv if not a.startswith("-")), "")


def _train_args(p: argparse.ArgumentParser) -> None:
    from dataclasses import fields

    d = TrainConfig()
    p.add_argument("--name", default="", help="run name (default: the date and time)")
    p.add_argument("--runs-dir", default=d.runs_dir, help="parent of run directories (default: runs)")
    p.add_argument("--resume", metavar="RUN", help="continue the run directory RUN from its last checkpoint")
    p.add_argument("--data", choices=DATASETS, default=d.data,
                   help="data set (default: shapes, embedded); gmm, gmm-grid, moons, swissroll are 2-D points, which "
                        "train in about a minute with their own defaults (README, 'Diffusion in a minute')")
    p.add_argument("--data-dir", default=d.data_dir, help="where CIFAR-10 lives or is downloaded to; the folder for --data folder")
    p.add_argument("--data-n", type=_bounded_int(MAX_POINTS), default=d.data_n,
                   help=f"training points of a 2-D data set (default: {POINTS_TRAIN:,}; the test split has {POINTS_TEST:,})")
    p.add_argument("--limit", type=_nonneg_int, default=0, help="use only the first N training images")
    p.add_argument("--model", choices=MODELS, default=d.model,
                   help="network (default: auto, the assignment's for images, mlp for 2-D points); unet: a U-Net "
                        "(time embedding and 3x3 convolutions at every resolution, 32 channels at the top, 0.62M "
                        "parameters, about 5x the assignment network's time a step on a CPU), unet-small: the same "
                        "with 16 channels (0.16M, about 2x)")
    p.add_argument("--prediction", choices=PREDICTIONS, default=d.prediction,
                   help="what the network predicts: x0 (the assignment's), eps, or x0-precond "
                        "(x̂_0 = c_skip(t) x_t + c_out(t) F, EDM's preconditioning; the same MSE on x_0)")
    _add_schedule_args(p)
    p.add_argument("--weighting", choices=("default", "edm"), default=d.weighting,
                   help="what trains the network: default (the assignment's MSE on x_0; the -ELBO for --schedule "
                        "learned) or edm (||x_0 - x̂_0||^2 / c_out(t)^2, Karras et al. 2022; with --schedule learned "
                        "the network on the ELBO's integrand reweighted so, gamma still on the ELBO). Bounds "
                        "reported are the ELBO either way")
    p.add_argument("--epochs", type=_positive_int, default=d.epochs)
    p.add_argument("--batch-size", type=_positive_int, default=d.batch_size)
    p.add_argument("--lr", type=_finite_float, default=d.lr)
    p.add_argument("--ema", type=_finite_float, default=d.ema, help="EMA decay of the weights, e.g. 0.999 (0: off)")
    p.add_argument("--seed", type=_seed, default=d.seed)
    p.add_argument("--device", default=d.device, help="auto, cpu or cuda")
    p.add_argument("--minutes", type=_finite_float, default=d.minutes,
                   help="stop when the run has trained this long in all (with --resume its earlier sessions count), "
                        "saving everything")
    p.add_argument("--eval-size", type=_nonneg_int, default=d.eval_size, help="held-out images evaluated each epoch")
    p.add_argument("--sample-every", type=_nonneg_int, default=d.sample_every, help="epochs between sample grids (0: only at the end)")
    p.add_argument("--n-samples", type=_bounded_int(MAX_COUNT), default=d.n_samples)
    p.add_argument("--sample-steps", type=_nonneg_int, default=d.sample_steps, metavar="K",
                   help="draw the run's sample grids in K evenly spaced reverse steps, as vdm sample --steps K "
                        "(default 0: all T steps); a grid costs K network calls a sample, time a time-limited run "
                        "does not train")
    p.add_argument("--ckpt-every", type=_nonneg_int, default=d.ckpt_every, help="steps between checkpoints (0: each epoch)")
    p.add_argument("--log-every", type=_positive_int, default=d.log_every, help="steps between metrics records")
    p.add_argument("--threads", type=_threads, default=d.threads, help=f"CPU threads, at most {MAX_THREADS} (0: torch's default)")
    p.add_argument("--precision", choices=PRECISIONS, default=d.precision,
                   help="bf16 autocast or fp32 (auto: bf16 on CUDA, fp32 on CPU)")
    p.add_argument("--channels-last", choices=("auto", "on", "off"), default=d.channels_last,
                   help="channels_last memory format (auto: on CUDA only)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=d.compile,
                   help="torch.compile the network (takes minutes to compile; pays on long runs)")
    p.add_argument("--cuda-graphs", action=argparse.BooleanOptionalAction, default=d.cuda_graphs,
                   help="with --compile on CUDA: capture CUDA graphs (mode reduce-overhead)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--tui", action="store_true", help="watch the training in the terminal UI (the default when run in a terminal)")
    p.add_argument("--no-tui", action="store_true", help="plain progress even in a terminal")
    # None marks a flag the user did not give: a fresh run takes TrainConfig's default, a resumed
    # run keeps its own value (and refuses a different one, see RESUME_MUST_MATCH)
    p.set_defaults(func=cmd_train, **{f.name: None for f in fields(TrainConfig) if f.name not in ("name", "runs_dir")})


def _sample_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a run directory or a ckpt-*.json / .safetensors file")
    p.add_argument("--n", type=_bounded_int(MAX_COUNT), default=None,
                   help=f"number of samples (default: {IMAGE_SAMPLES} images, {POINT_SAMPLES:,} points)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--out", default="samples.png", help="PNG grid to write")
    p.add_argument("--animation", default=None, help="also write the denoising as a .gif or .mp4")
    p.add_argument("--frames", type=_bounded_int(MAX_COUNT), default=60, help="frames in the animation")
    p.add_argument("--no-ema", action="store_true", help="use the raw weights even when EMA weights exist")
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=_int_at_least(1), default=None, metavar="K",
                   help="sample in K evenly spaced steps from t = T to t = 1 (1..T; default: the run's --sample-steps "
                        "if it set one, else all T)")
    p.add_argument("--sampler", choices=("ancestral", "ddim"), default="ancestral",
                   help="ancestral: x_s ~ q(x_s | x_t, x̂_0); ddim: DDIM's deterministic update (default: ancestral)")
    p.set_defaults(func=cmd_sample)


def _forward_args(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", help="an image file (centre-cropped, resized to 32x32)")
    src.add_argument("--index", type=_nonneg_int, default=0, help="index into the data set's test split")
    p.add_argument("--data", choices=DATASETS, default="shapes")
    p.add_argument("--data-dir", default="data")
    _add_schedule_args(p)
    p.add_argument("--steps", type=_bounded_int(MAX_COUNT), default=10, help="frames in the strip")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--out", default="forward.png", help="strip PNG to write")
    p.add_argument("--animation", default="forward.gif", help=".gif or .mp4 to write ('' for none)")
    p.set_defaults(func=cmd_forward)


def _tune_alpha_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--T", type=_bounded_int(MAX_T), default=DEFAULT_T)
    p.add_argument("--final-signal", type=_finite_float, default=0.01, help="target sqrt(alpha_bar_T) (default 0.01)")
    p.add_argument("--rows", type=_bounded_int(MAX_COUNT), default=11, help="rows of the SNR table")
    p.set_defaults(func=cmd_tune_alpha)


def _elbo_args(p: argparse.ArgumentParser) -> None:
    from vdm.elbo import ESTIMATORS

    p.add_argument("checkpoint", help="a run directory or a ckpt-*.json / .safetensors file")
    p.add_argument("--data", choices=DATASETS, default=None, help="data set (default: the run's)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--n", type=_positive_int, default=None,
                   help=f"held-out items, the first N of the test split (default: {ELBO_IMAGES} images, {ELBO_POINTS} points)")
    p.add_argument("--estimator", choices=ESTIMATORS, default="full",
                   help="full sum over t, one uniform t, or one importance-sampled t per image")
    p.add_argument("--proposal", choices=("pilot", "snr"), default="pilot",
                   help="p(t) of --estimator importance: from a pilot pass on calibration images, or from the SNR alone")
    p.add_argument("--draws", type=_bounded_int(MAX_COUNT), default=2,
                   help="independent estimates per image (2 or more give the Monte Carlo standard error)")
    p.add_argument("--decoder", choices=("fixed", "calibrated", "both"), default="both",
                   help="p(x_0|x_1): DDPM's std sqrt(1 - alpha_1), the std calibrated on held-out images, or both")
    p.add_argument("--calibration-n", type=_positive_int, default=256,
                   help="images that calibrate the decoder and the pilot: the last N of the test split")
    p.add_argument("--batch-size", type=_positive_int, default=None, help="default: 64 images, all points at once")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--no-ema", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true",
                   help="print the report's numbers as one JSON object (bound, terms, estimator, standard errors, "
                        "decoders, references) instead of the table")
    p.set_defaults(func=cmd_elbo)


def _score_args(p: argparse.ArgumentParser) -> None:
    from vdm.config import IMAGE_DATASETS

    p.add_argument("source", help="a run directory (or checkpoint file) to sample from, a folder of PNG or JPEG "
                                  "images, or a grid PNG")
    p.add_argument("--n", type=_bounded_int(MAX_COUNT), default=None,
                   help=f"images to score (default: {SCORE_IMAGES} samples from a run; every image of a folder or grid)")
    p.add_argument("--data", choices=IMAGE_DATASETS, default=None,
                   help="the data set whose held-out images they are scored against (default: the run's, else shapes)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--tile", type=_positive_int, default=None,
                   help="a grid's tile side in pixels (default: read from a grid vdm wrote)")
    p.add_argument("--pad", type=_nonneg_int, default=0, help="with --tile: pixels between the tiles (default: 0)")
    p.add_argument("--inception", default=None, metavar="PATH",
                   help="pytorch-fid's Inception weights file (pt_inception-2015-12-05-6726825d.pth) for FID's "
                        "features instead of the shapes classifier's")
    p.add_argument("--steps", type=_int_at_least(1), default=None, metavar="K",
                   help="sample in K evenly spaced steps (default: the run's --sample-steps if it set one, else all T)")
    p.add_argument("--sampler", choices=("ancestral", "ddim"), default="ancestral")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--batch-size", type=_positive_int, default=256, help="images per pass of the feature network")
    p.add_argument("--no-ema", action="store_true")
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print the numbers as one JSON object instead of the table")
    p.set_defaults(func=cmd_score)


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=MODELS, default="assignment")
    p.add_argument("--T", type=_bounded_int(MAX_T), default=DEFAULT_T)
    p.set_defaults(func=cmd_model)


def _render_args(p: argparse.ArgumentParser, scene_nargs: str | None = None) -> None:
    p.add_argument("scene", nargs=scene_nargs, default="all",
                   help="opening, forward, mhvae, elbo-consistency, elbo-denoising, posterior, training, backward, "
                        "diffusion-2d, summary or all")
    p.add_argument("--quality", choices=("low", "medium", "high", "4k"), default="low",
                   help="480p15, 720p30, 1080p60 or 2160p60 (default: low)")
    p.add_argument("--out", default="videos", help="folder for the videos (default: videos)")
    p.add_argument("--gif", action="store_true", help="also write each video as a GIF")
    p.add_argument("--sections", action="store_true", help="also write one video per section, for presenting")
    p.add_argument("--run", default=None,
                   help="the trained run (or checkpoint) the backward, training and ELBO scenes use "
                        "(default: the newest run under runs/ with a complete checkpoint; none: say so on screen)")
    p.set_defaults(func=cmd_render)


def _slides_args(p: argparse.ArgumentParser) -> None:
    _render_args(p, "?")
    p.add_argument("--no-render", action="store_true", help="export the slides already rendered in --out")
    p.add_argument("--no-pdf", action="store_true", help="only the HTML")
    p.add_argument("--present", action="store_true", help="then present them (manim-slides present; needs a display)")
    p.set_defaults(func=cmd_slides)


def _tui_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", default=None, help="a run directory (default: none, the chain screen only)")
    p.add_argument("--checkpoint", default=None, help="checkpoint for the backward chain (default: the run's newest)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--image", default=None, help="an image file for the chains")
    src.add_argument("--index", type=_nonneg_int, default=0, help="index into the test split for the chains")
    p.add_argument("--data", choices=POINT_DATASETS, default=None,
                   help="a 2-D data set for the chain screen without a run (gmm, gmm-grid: with the optimal denoiser "
                        "E[x_0|x_t]; moons, swissroll: the forward chain); its schedule is a fresh points run's")
    p.add_argument("--T", type=_bounded_int(MAX_T), default=DEFAULT_T,
                   help=f"steps of the schedule without a run (default: {DEFAULT_T}, constant; with --data a fresh points "
                        f"run's, {POINT_DEFAULTS['T']}, cosine)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--chain", action="store_true", help="open on the chain screen")
    p.add_argument("--serve", action="store_true",
                   help="serve the UI to web browsers (textual-serve) instead of this terminal; each visitor gets one")
    p.add_argument("--host", default="localhost", help="with --serve: the address to listen on (0.0.0.0: every one)")
    p.add_argument("--port", type=_bounded_int(65535), default=8000, help="with --serve: the port")
    p.set_defaults(func=cmd_tui)


_COMMANDS = [  # name, add_parser's help and description, the function adding the options
    ("train", dict(help="train a denoiser and write a run directory",
                   description="Train x̂_0(x_t, t) (exercise 5) and write runs/<name>/."), _train_args),
    ("sample", dict(help="ancestral sampling from a checkpoint",
                    description="Sample x_T ~ N(0, I) down to x_0 with a trained checkpoint (bonus exercise)."), _sample_args),
    ("forward", dict(help="a strip and an animation of an image going to noise (exercise 1a)",
                     description="Run the forward chain x_0 -> x_T step by step on one image."), _forward_args),
    ("tune-alpha", dict(help="the constant alpha for a given T (exercise 1a)",
                        description="alpha = s^(2/T): the final signal coefficient sqrt(alpha^T) reaches s."), _tune_alpha_args),
    ("elbo", dict(help="the ELBO term table of a checkpoint, in nats and bits/dim",
                  description="Both ELBO forms (exercises 2 and 3) on held-out images."), _elbo_args),
    ("model", dict(help="print a network's layers and parameter count"), _model_args),
    ("score", dict(help="sample quality, offline: a Fréchet distance, precision, recall, tiles holding a shape",
                   description="Score a run's samples (or a folder or grid of images) against held-out images in the "
                               "features of a classifier trained on the shapes data's labels: not comparable to "
                               "published FID."), _score_args),
    ("render", dict(help="render the Manim lecture scenes to video",
                    description="Render one scene of animations/ or all of them with Manim (needs LaTeX)."), _render_args),
    ("slides", dict(help="render the lecture as slides and export offline HTML and PDF",
                    description="Render scenes with a pause at every derivation step (manim-slides), then write "
                                "OUT/lecture.html (reveal.js from npm, no CDN) and OUT/lecture.pdf (each step at 1920x1080, "
                                "whatever --quality: the scenes are drawn again, one frame per step)."), _slides_args),
    ("tui", dict(help="the terminal UI: watch a run live, step through the chains",
                 description="Attach to a run directory (live or finished): curves, samples, GPU; "
                             "and the chain screen (forward chain, sampling chain). Keys: ? in the app."), _tui_args),
]
