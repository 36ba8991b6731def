"""The ``vdm`` command line: train, sample, forward, tune-alpha, elbo, model.

Bad input ends with one sentence on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
import signal
import sys
from pathlib import Path

from vdm import DEFAULT_T
from vdm.config import (ALPHA_MARGIN, DATASETS, IDENTITY_KEYS, MAX_COUNT, MAX_POINTS, MAX_T, MAX_THREADS, MODELS,
                        IMAGE_SAMPLES, POINT_DATASETS, POINT_DEFAULTS, POINT_SAMPLES, POINTS_TEST, POINTS_TRAIN,
                        PRECISIONS,
                        PREDICTIONS, RESUME_MUST_MATCH, SCHEDULES, TrainConfig, fresh_config)

EXIT_USAGE = 2
ELBO_IMAGES, ELBO_POINTS = 64, 1000  # vdm elbo's default held-out items (points are cheap: T calls on all at once)


class CommandError(Exception):
    """A problem the user can fix, reported as one sentence."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one sentence (and the exit status 2), not the usage block."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see {self.prog} --help).\n")

    def _get_values(self, action, arg_strings):
        # argparse drops a '--' given as an option's value (--T=--) and hands back [] untyped
        if action.option_strings and action.nargs is None and arg_strings == ["--"]:
            self.error(f"argument {'/'.join(action.option_strings)}: expected a value, got '--'")
        return super()._get_values(action, arg_strings)


def _seed(s: str) -> int:
    try:
        v = int(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {s[:40]!r}") from None
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
        try:
            v = int(s)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {s[:40]!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"expected a number >= {lo}, got {v}")
        return v
    return parse


_positive_int = _int_at_least(1)
_nonneg_int = _int_at_least(0)


def _finite_float(s: str) -> float:
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {s[:40]!r}") from None
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


def _command_word(argv: list[str]) -> str:
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
                   help="network (default: auto, the assignment's for images, mlp for 2-D points)")
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
                   help="sample in K evenly spaced steps from t = T to t = 1 (1..T; default: all T)")
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


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=MODELS, default="assignment")
    p.add_argument("--T", type=_bounded_int(MAX_T), default=DEFAULT_T)
    p.set_defaults(func=cmd_model)


def _render_args(p: argparse.ArgumentParser, scene_nargs: str | None = None) -> None:
    p.add_argument("scene", nargs=scene_nargs, default="all",
                   help="forward, mhvae, elbo-consistency, elbo-denoising, posterior, training, backward or all")
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
    ("render", dict(help="render the Manim lecture scenes to video",
                    description="Render one scene of animations/ or all of them with Manim (needs LaTeX)."), _render_args),
    ("slides", dict(help="render the lecture as slides and export offline HTML and PDF",
                    description="Render scenes with a pause at every derivation step (manim-slides), then write "
                                "OUT/lecture.html (reveal.js from npm, no CDN) and OUT/lecture.pdf."), _slides_args),
    ("tui", dict(help="the terminal UI: watch a run live, step through the chains",
                 description="Attach to a run directory (live or finished): curves, samples, GPU; "
                             "and the chain screen (forward chain, sampling chain). Keys: ? in the app."), _tui_args),
]


# -- commands ----------------------------------------------------------------------

def cmd_train(args) -> int:
    from dataclasses import fields

    from vdm import distributed
    from vdm.nets import summary
    from vdm.run import Run, open_run, sample_path
    from vdm.train import Trainer, TrainingStopped, new_run_dir

    names = {f.name for f in fields(TrainConfig)}
    given = {k: v for k, v in vars(args).items() if k in names and v is not None}
    if args.resume is not None:  # --resume "" is a mistake, not a fresh run
        run = open_run(args.resume)
        run_dir, cfg = run.path, run.config
        # a must-match value edited by hand in the config (--weighting default on an edm run) is refused too
        run.check_config_is_the_checkpoints([k for k in RESUME_MUST_MATCH if k not in IDENTITY_KEYS])
        for k, v in given.items():
            if k in ("name", "runs_dir"):
                continue  # the run is the directory given to --resume
            if k not in RESUME_MUST_MATCH:
                setattr(cfg, k, v)
            elif v != getattr(cfg, k):
                have = getattr(cfg, k)
                have = "tuned" if k == "alpha" and have is None else have
                flag = "--" + k.replace("_", "-")
                raise CommandError(f"cannot resume {run_dir} with {k} {v} vs the run's {have}: a resumed run keeps its "
                                   f"model, schedule, data and optimizer, so drop {flag} or start a new run.")
    else:
        cfg = fresh_config(given)
        run_dir = new_run_dir(cfg)
    rank = distributed.from_env()
    if rank.enabled:  # under torchrun: plain progress from rank 0, silence from the others
        args.tui, args.no_tui = False, True
        if not rank.main:
            args.quiet = True
            sys.stdout = open(os.devnull, "w")
    if args.tui or (not args.no_tui and not args.quiet and sys.stdin.isatty() and sys.stdout.isatty()):
        from tui.training import train_with_tui

        return _after_ui(args, train_with_tui(Run(run_dir, cfg), fresh=args.resume is None))
    trainer = Trainer(cfg, run_dir, resume=args.resume is not None)
    print(f"run: {run_dir}")
    print(f"schedule: {trainer.schedule.describe()}; device: {trainer.device}")
    print(summary(trainer.model.net))
    bar = None
    if not args.quiet:
        from tqdm import tqdm

        total = trainer.steps_per_epoch * cfg.epochs
        bar = tqdm(total=total, initial=trainer.step, unit="step", dynamic_ncols=True, file=sys.stderr)
    first = (trainer.step, trainer.elapsed)  # for the rate: the steps this session has trained

    def progress(tr):
        """The bar follows the limit that binds: with --minutes, its total is the step the time limit
        reaches at the rate so far when that comes before the last epoch's (so % and ETA are honest)."""
        if bar is not None:
            limit = "epochs"
            if cfg.minutes:
                ds, dt = tr.step - first[0], tr.elapsed - first[1]
                if ds > 0 and dt > 0:
                    at_limit = tr.step + ds / dt * max(cfg.minutes * 60 - tr.elapsed, 0.0)
                    if at_limit < total:
                        bar.total, limit = max(int(at_limit), tr.step), f"{cfg.minutes:g} min"
                    else:
                        bar.total = total
            bar.update(tr.step - bar.n)
            bar.set_postfix(epoch=f"{tr.epoch + tr.batch_in_epoch / tr.steps_per_epoch:.2f}", limit=limit)

    try:
        result = trainer.run(progress)
    except TrainingStopped as e:
        if bar is not None:
            bar.close()
        raise CommandError(str(e)) from None
    finally:
        distributed.cleanup()  # leave the process group (torchrun) before the prints
    if bar is not None:
        if result["reason"] == "time limit":  # the limit that bound is reached: 100 %
            bar.total = bar.n
            bar.refresh()
        bar.close()
    ev = result.get("eval")
    print(f"stopped ({result['reason']}) at step {result['step']}, epoch {result['epoch']}.")
    if ev:
        from vdm.report import train_summary_line

        print(train_summary_line(ev, len(trainer.eval_data), run_dir))
    print(f"samples: {sample_path(run_dir)}")
    if result["reason"] in ("SIGINT", "SIGTERM"):
        # a stop asked for and carried out (checkpoint saved) is a success, status 0, as for --minutes;
        # the terminal UI stops its training child this way
        print(f"vdm train: stopped by {result['reason']} at step {result['step']} with a checkpoint saved; "
              f"continue with: vdm train --resume {run_dir}")
    return 0


def cmd_sample(args) -> int:
    import numpy as np
    from tqdm import tqdm

    from vdm.images import grid, save_animation, save_npy, save_png, scatter
    from vdm.run import open_model
    from vdm.sample import sample
    from vdm.train import pick_device

    device = pick_device(args.device)
    den, meta, run = open_model(args.checkpoint, device, use_ema=not args.no_ema)
    _check_out(args.out, (".png",))
    if args.animation:
        _check_out(args.animation, (".gif", ".mp4"))
    T = den.schedule.T
    K = T if args.steps is None else args.steps
    if not 1 <= K <= T:
        raise CommandError(f"--steps must lie in 1..{T} (this model's T), got {K}.")
    points = meta.get("model") == "mlp"
    n = args.n or (POINT_SAMPLES if points else IMAGE_SAMPLES)
    with tqdm(total=K, unit="step", file=sys.stderr, dynamic_ncols=True) as bar:
        res = sample(den, den.schedule, n, (2,) if points else (3, 32, 32), seed=args.seed, device=device, steps=K,
                     sampler=args.sampler, return_chain=bool(args.animation), progress=lambda i, k: bar.update(1),
                     clip=not points)  # x̂_0 of points is not bounded to [-1, 1]
    x = res[0] if args.animation else res
    if points:  # a scatter of the samples (orange) over the held-out data (grey), and the numbers beside it
        data = _points_of(run, meta)
        picture = lambda v: scatter(v.cpu(), data)  # noqa: E731
        save_npy(x.cpu().numpy(), Path(args.out).with_suffix(".npy"))
    else:
        picture = lambda v: grid(v, scale=2)  # noqa: E731
    save_png(picture(x), args.out)
    how = "" if K == T and args.sampler == "ancestral" else f", {args.sampler} in {K} of {T} steps"
    also = f"; the points in {Path(args.out).with_suffix('.npy')}" if points else ""
    print(f"wrote {args.out} ({n} samples, step {meta.get('step')} of {meta.get('model')}{how}{also})")
    if args.animation:
        chain = res[1]  # rows i = 0..K along the steps visited, t_i = chain.t[i]
        rows = np.unique(np.linspace(K, 0, args.frames).round().astype(int))[::-1]
        frames = [np.concatenate([picture(chain.x[i]), picture(chain.x0_hat[i])], 1) for i in rows]
        frames += [frames[-1]] * 10
        save_animation(frames, args.animation)
        print(f"wrote {args.animation} (left x_t, right x̂_0, t = {T}..0)")
    return 0


def _points_of(run, meta):
    """The held-out points a 2-D model's samples are drawn over: its run's, or those its checkpoint's config names."""
    from vdm import data as datasets

    if run is not None:
        return run.test_images()
    cfg = meta.get("config") if isinstance(meta.get("config"), dict) else {}
    try:
        c = TrainConfig.from_dict(cfg)
    except ValueError:
        return None
    return datasets.load(c.data, "test", n=c.data_n, seed=c.seed) if c.points else None


def _check_out(path: str, suffixes) -> None:
    p = Path(path)
    if p.suffix.lower() not in suffixes:
        raise CommandError(f"{path} must end in {' or '.join(suffixes)}.")
    if p.parent != Path("") and not p.parent.exists():
        raise CommandError(f"the folder {p.parent} for {path} does not exist.")


def cmd_forward(args) -> int:
    import numpy as np
    import torch

    from vdm import data as datasets
    from vdm.config import is_points
    from vdm.diffusion import forward_chain
    from vdm.images import grid, save_animation, save_png
    from vdm.schedule import make_schedule

    schedule = make_schedule(args.schedule, args.T, args.alpha)
    _check_out(args.out, (".png",))
    if args.animation:
        _check_out(args.animation, (".gif", ".mp4"))
    if is_points(args.data):
        return _forward_points(args, schedule)
    if args.image:
        x = datasets.load_image(args.image)[None]
    else:
        imgs = datasets.load(args.data, "test", args.data_dir)
        if args.index >= len(imgs):
            raise CommandError(f"--index {args.index} is past the end of the data set ({len(imgs)} images).")
        x = imgs[args.index: args.index + 1]
    g = torch.Generator().manual_seed(args.seed)
    chain = forward_chain(schedule, datasets.to_float(x), generator=g)[:, 0]  # [T+1, 3, 32, 32]
    T = schedule.T
    ts = np.unique(np.linspace(0, T, args.steps).round().astype(int))
    save_png(grid(chain[ts], ncol=len(ts), scale=3), args.out)
    print(f"wrote {args.out}: x_t at t = {', '.join(map(str, ts))} ({schedule.describe()})")
    if args.animation:
        step = max(1, T // 100)
        frames = [grid(chain[t: t + 1], scale=8) for t in range(0, T + 1, step)]
        save_animation(frames + [frames[-1]] * 10, args.animation)
        print(f"wrote {args.animation}")
    return 0


def _forward_points(args, schedule) -> int:
    """vdm forward on 2-D data: the whole held-out cloud x_t at evenly spaced t, a strip of scatters and an animation."""
    import numpy as np

    from vdm import data as datasets
    from vdm.cloud import forward_cloud
    from vdm.images import save_animation, save_png, scatter
    from vdm.points import noise_of

    if args.image:
        raise CommandError(f"--image takes an image file; --data {args.data} is a cloud of 2-D points, shown whole.")
    x0 = datasets.load(args.data, "test", seed=args.seed)
    chain = forward_cloud(schedule, x0, args.seed)  # [T+1, N, 2]
    T = schedule.T
    ts = np.unique(np.linspace(0, T, args.steps).round().astype(int))
    save_png(np.concatenate([scatter(chain[t], size=200) for t in ts], 1), args.out)
    print(f"wrote {args.out}: the {len(x0):,} held-out {args.data} points ({noise_of(args.data)}) as x_t at "
          f"t = {', '.join(map(str, ts))} ({schedule.describe()})")
    if args.animation:
        step = max(1, T // 100)
        frames = [scatter(chain[t]) for t in range(0, T + 1, step)]
        save_animation(frames + [frames[-1]] * 10, args.animation)
        print(f"wrote {args.animation}")
    return 0


def cmd_tune_alpha(args) -> int:
    import numpy as np

    from vdm.schedule import Schedule, tune_alpha

    alpha = tune_alpha(args.T, args.final_signal)
    s = Schedule.constant(alpha, args.T)
    print(f"alpha = {alpha:.6f}  for T = {args.T}")
    print(f"criterion: sqrt(alpha^T) = {args.final_signal:g}, i.e. alpha = {args.final_signal:g}^(2/T); "
          f"SNR(T) = {float(s.snr[-1]):.3g}")
    print(f"{'t':>6} {'alpha_bar_t':>12} {'sqrt(ab_t)':>11} {'sqrt(1-ab_t)':>13} {'SNR(t)':>11} {'log SNR':>8}")
    for t in np.unique(np.linspace(1, args.T, args.rows).round().astype(int)):
        ab = float(s.alpha_bar[t])
        print(f"{t:>6} {ab:>12.6f} {math.sqrt(ab):>11.5f} {math.sqrt(1 - ab):>13.5f} "
              f"{float(s.snr[t]):>11.4g} {float(s.log_snr[t]):>8.2f}")
    return 0


def cmd_elbo(args) -> int:
    from vdm import data as datasets
    from vdm.config import is_points
    from vdm.report import ElboOptions, elbo_report, format_report, nan_to_null
    from vdm.run import open_model
    from vdm.train import pick_device

    device = pick_device(args.device)
    den, meta, run = open_model(args.checkpoint, device, use_ema=not args.no_ema)
    cfg = run.config if run is not None else TrainConfig()  # a lone checkpoint file: the default data
    name = args.data or cfg.data
    if is_points(name) != (meta.get("model") == "mlp"):
        raise CommandError(f"the model {meta.get('model')} of {args.checkpoint} does not take --data {name}.")
    test = datasets.load(name, "test", args.data_dir or cfg.data_dir, n=cfg.data_n, seed=cfg.seed)
    points = is_points(name)
    n = args.n or (ELBO_POINTS if points else ELBO_IMAGES)
    opts = ElboOptions(args.estimator, args.proposal, args.draws, args.decoder, args.calibration_n,
                       args.batch_size or (n if points else 64), args.seed)
    try:
        summary = elbo_report(den, meta, name, test, n, opts, device)
    except ValueError as e:
        raise CommandError(str(e)) from None
    if den.schedule.kind == "learned":  # the same model's continuous-time bound, beside the discrete-T one
        from vdm.continuous import report, report_numbers

        summary["continuous"] = report_numbers(den, test[:n], opts.batch_size, args.seed, device, args.draws)
    if args.json:
        import json

        print(json.dumps(nan_to_null(summary), allow_nan=False))
        return 0
    print(format_report(summary))
    if "continuous" in summary:
        print(report(summary["continuous"]))
    return 0


def cmd_model(args) -> int:
    from vdm.nets import build_net, summary

    print(summary(build_net(args.model, args.T)))
    return 0


def cmd_render(args) -> int:
    from animations.render import render

    render(args.scene, args.quality, args.out, gif=args.gif, sections=args.sections,
           progress=lambda line: print(line, flush=True), run=args.run)
    return 0


def cmd_slides(args) -> int:
    from animations.render import export_slides, render, scene_names

    names = scene_names(args.scene)
    progress = lambda line: print(line, flush=True)  # noqa: E731
    if args.present:
        from animations.render import check_present

        check_present()  # before minutes of rendering: a machine that cannot present says so now
    if not args.no_render:
        render(args.scene, args.quality, args.out, gif=args.gif, sections=args.sections, progress=progress, run=args.run)
    export_slides(names, args.out, html=True, pdf=not args.no_pdf, progress=progress)
    if args.present:
        from animations.render import SCENES

        subprocess_args = [sys.executable, "-m", "manim_slides", "present", "--folder", str(Path(args.out) / "slides"),
                           *[SCENES[n][1] for n in names]]
        import subprocess

        return subprocess.run(subprocess_args).returncode
    return 0


def _serve_tui(args) -> int:
    """`vdm tui --serve`: textual-serve runs `vdm tui ...` (these arguments, less --serve) per browser visitor."""
    import shlex

    try:
        from textual_serve.server import Server
    except ImportError:
        raise CommandError("vdm tui --serve needs textual-serve: .venv/bin/pip install textual-serve") from None
    argv = [sys.executable, "-m", "vdm.cli", "tui"]
    if args.run:
        argv.append(str(Path(args.run).resolve()))
    for flag, value in (("--checkpoint", args.checkpoint), ("--image", args.image)):
        if value:
            argv += [flag, str(Path(value).resolve())]
    argv += ["--index", str(args.index), "--T", str(args.T), "--seed", str(args.seed)] + (["--chain"] if args.chain else [])
    argv += ["--data", args.data] if args.data else []
    print(f"serving vdm tui on http://{args.host}:{args.port} (ctrl+c stops)", flush=True)
    Server(shlex.join(argv), host=args.host, port=args.port, title="vdm").serve()
    return 0


def cmd_tui(args) -> int:
    if getattr(args, "serve", False):
        if args.run and Path(args.run).exists() and not Path(args.run).is_dir():
            raise CommandError(f"{args.run} is a file, not a run directory; give the run's folder (runs/<name>) "
                               f"or a folder of runs (runs/).")
        return _serve_tui(args)
    if args.image:
        from vdm import data as datasets  # torch: only imported when needed, so the monitor starts fast

        datasets.load_image(args.image)  # one sentence now rather than an empty screen
    tailer = None
    runs_root = None
    if args.run:
        p = Path(args.run)
        if p.exists() and not p.is_dir():
            raise CommandError(f"{p} is a file, not a run directory; give the run's folder (runs/<name>) "
                               f"or a folder of runs (runs/).")
        from tui.run_list import is_runs_folder

        if is_runs_folder(p):
            runs_root, args.run = p, None  # `vdm tui runs/`: the list of its runs
    if args.run and not args.chain:
        from vdm.run import metrics_path
        from vdm.tailer import MetricsTailer

        tailer = MetricsTailer(metrics_path(args.run))
        tailer.start_catch_up()  # a long log is read on other processes while the UI below imports
    from tui.app import ChainSource, run_app
    from tui.colour import truecolor_env

    truecolor_env()  # inside tmux, truecolor when the outer terminal has it (tmux does not pass COLORTERM)
    source = ChainSource(args.run, args.checkpoint, args.image, args.index, args.T, args.seed, data=args.data)
    start = "chain" if args.chain or not (args.run or runs_root) else ("runs" if runs_root else "monitor")
    run_app(args.run, source=source, start=start, tailer=tailer, runs_root=runs_root)
    return _after_ui(args, 0)


def _after_ui(args, code: int) -> int:
    """The exit status after the terminal UI; the `vdm` program leaves at once.

    Python's teardown of a process that loaded torch and a model takes seconds (2.2 s
    measured after a sampling chain), a wait after `q` with nothing left to do: the
    app has restored the terminal, and training runs in its own process.
    """
    if getattr(args, "leave_at_once", False):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


# -- entry point ---------------------------------------------------------------------

def cpu_env() -> None:
    """OpenMP threads that sleep rather than spin while they wait (before torch loads libgomp).

    torch's default (spinning) collapses when other processes share the cores: a training step
    of the assignment's network took 2-5x longer with 2 spinning threads on 2 busy cores
    (benchmarks/RESULTS.md). Sleeping costs little on an idle machine. An explicit setting wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv=None) -> int:
    """The command line; a Ctrl-C at any moment (torch's import takes seconds) is status 130, never a traceback.

    Three phases for the `vdm` program itself (argv None). While torch loads, a Ctrl-C ends the
    process at once (status 130): a KeyboardInterrupt raised inside torch's C++ start-up callbacks
    is uncatchable there (pybind11 calls std::terminate, status -6), and nothing is written yet.
    While the command runs, Ctrl-C is a KeyboardInterrupt, so that what it writes is finished or
    removed. Once it is done, a late Ctrl-C is ignored: the interpreter's shutdown would restore
    the default action and turn a finished command into death by signal.
    """
    console = argv is None  # the `vdm` program itself, not a caller in the same process
    argv = sys.argv[1:] if argv is None else list(argv)
    command = f"vdm {_command_word(argv)}".strip()
    if console:
        signal.signal(signal.SIGINT, lambda signum, frame: _leave_interrupted(command))
    try:
        cpu_env()
        parser = build_parser(only=_command_word(argv))  # imports torch for most commands
        args = parser.parse_args(argv)
        args.leave_at_once = console
        if console:
            if args.command != "tui":  # torch now, while a Ctrl-C still ends the process at once: the choices
                # (vdm.config) no longer import it, and a KeyboardInterrupt inside its C++ start-up is
                # uncatchable (pybind11 calls std::terminate, status -6)
                try:
                    import torch  # noqa: F401
                except ImportError:
                    pass  # a command that needs it says so in its own sentence
            signal.signal(signal.SIGINT, signal.default_int_handler)
        status = _run_command(args)
    except KeyboardInterrupt:
        print(f"{command}: interrupted.", file=sys.stderr)
        status = 130
    finally:
        if console:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
    return status


def _leave_interrupted(command: str):
    """SIGINT before the command has begun: say so and leave now (see main)."""
    os.write(2, f"{command}: interrupted.\n".encode())
    os._exit(130)


def _run_command(args) -> int:
    """args.func, its failures mapped to one sentence and an exit status."""
    try:
        return args.func(args)
    except (CommandError, ValueError) as e:
        print(f"vdm {args.command}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:  # `vdm ... | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit flush cannot fail again
        return 0
    except OSError as e:
        reason = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
                  errno.EACCES: "permission denied", errno.EDQUOT: "the disk quota is exceeded"}.get(e.errno, e.strerror or str(e))
        where = f" at {e.filename}" if e.filename else ""
        print(f"vdm {args.command}: {reason}{where}; nothing already saved was changed.", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"vdm {args.command}: not enough memory for this request; ask for fewer images or steps.", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"vdm {args.command}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
