"""The core's commands: sample, forward, tune-alpha, elbo, model (torch is imported inside each)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from vdm.config import IMAGE_SAMPLES, POINT_SAMPLES, TrainConfig
from vdm_cli.errors import CommandError

ELBO_IMAGES, ELBO_POINTS = 64, 1000  # vdm elbo's default held-out items (points are cheap: T calls on all at once)


def reverse_steps(asked: int | None, T: int, run) -> int:
    """K, the reverse steps to sample in: the --steps asked, else the run's own --sample-steps (what its grids
    were drawn with), else all T."""
    own = run.config.sample_steps if run is not None else 0
    K = asked if asked is not None else (own or T)
    if not 1 <= K <= T:
        raise CommandError(f"--steps must lie in 1..{T} (this model's T), got {K}.")
    return K


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
    K = reverse_steps(args.steps, T, run)
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
    if not path.strip():
        raise CommandError(f"the output file name is empty ({path!r}); give one ending in {' or '.join(suffixes)}.")
    if p.suffix.lower() not in suffixes:
        raise CommandError(f"{path!r} must end in {' or '.join(suffixes)}.")
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
