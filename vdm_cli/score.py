"""vdm score: how good a run's samples, or a folder or grid of images, are, measured offline (vdm.score)."""

from __future__ import annotations

import sys
from pathlib import Path

from vdm_cli.commands import reverse_steps
from vdm_cli.errors import CommandError

SCORE_IMAGES = 256  # samples drawn from a run: enough for a 64-dimensional covariance, minutes on a CPU
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


def cmd_score(args) -> int:
    import json

    from vdm import score as S
    from vdm.config import is_points
    from vdm.data import folder
    from vdm.run import is_run

    src = Path(args.source)
    data, data_dir = args.data, args.data_dir
    if is_run(src) or (src.is_file() and src.suffix.lower() not in IMAGE_SUFFIXES):
        images, what, cfg = _sample(args)
        data, data_dir = data or cfg.data, data_dir or cfg.data_dir
    elif src.is_dir():
        images, what = folder(src), f"images of {src}"
    elif src.is_file():
        images, what = S.grid_tiles(src, args.tile, args.pad), f"tiles of {src}"
    else:
        raise CommandError(f"{src} does not exist; give a run directory, a folder of PNG or JPEG images, or a grid PNG.")
    data, data_dir = data or "shapes", data_dir or "data"
    if is_points(data):
        raise CommandError(f"vdm score measures images, and --data {data} is 2-D points.")
    if args.n is not None:
        images = images[:args.n]
    if args.inception:
        space = S.inception_space(args.inception)
    else:
        space = S.shapes_space(data, announce=lambda: print(
            f"training the shapes classifier once (seconds), kept in {S.classifier_path()}", file=sys.stderr))
    if len(images) <= S.K_NEIGHBOURS:
        raise CommandError(f"{len(images)} images are too few to score; give at least {S.K_NEIGHBOURS + 1}.")
    r = S.report(images, data, space, data_dir, args.batch_size)
    print(json.dumps(r) if args.json else S.format_report(r, what))
    return 0


def _sample(args):
    """(samples uint8 [N, 3, 32, 32], what they are in words, the run's TrainConfig) of the run or checkpoint."""
    from tqdm import tqdm

    from vdm.config import TrainConfig
    from vdm.data import to_uint8
    from vdm.run import is_run, open_model, open_run
    from vdm.sample import sample
    from vdm.train import pick_device

    cfg = open_run(args.source).config if is_run(args.source) else None
    if cfg is not None and cfg.points:  # said before loading a model it cannot use
        raise CommandError(f"{args.source} is a run on 2-D points ({cfg.data}); vdm score measures images (read its "
                           "samples against the held-out points with vdm sample or vdm elbo).")
    device = pick_device(args.device)
    den, meta, run = open_model(args.source, device, use_ema=not args.no_ema)
    if meta.get("model") == "mlp":
        raise CommandError(f"{args.source} is a model of 2-D points; vdm score measures images.")
    cfg = run.config if run is not None else TrainConfig()
    T = den.schedule.T
    K = reverse_steps(args.steps, T, run)
    n = args.n or SCORE_IMAGES
    with tqdm(total=K, unit="step", file=sys.stderr, dynamic_ncols=True, desc=f"sampling {n} images") as bar:
        x = sample(den, den.schedule, n, (3, 32, 32), seed=args.seed, device=device, steps=K, sampler=args.sampler,
                   progress=lambda i, k: bar.update(1))
    how = f"{args.sampler}, {K} of {T} steps"
    return to_uint8(x).cpu(), f"samples of {args.source} (step {meta.get('step')}, {how})", cfg
