"""Sampling speed: vdm.sample against the bare network calls (the floor) and a diffusers loop;
with --run, speed and quality of sampling in K of the T steps on a trained run.

    python3 benchmarks/bench_sample.py                 # T = 100, 64 images, 3 rounds, CPU
    python3 benchmarks/bench_sample.py --T 500 --n 256 --device cuda --compile
    python3 benchmarks/bench_sample.py --run runs/NAME --out DIR [--ks 500 100 50 20 10] [--n 64]

The floor is T calls of the network on the batch, nothing else. vdm.sample adds the posterior
step x_{t-1} = c_x0(t) clip(x̂_0) + c_xt(t) x_t + sigma_q(t) z per step; its overhead is
(sampler / floor - 1), goal under 10 %. The diffusers loop: DDPMScheduler(num_train_timesteps=T,
trained_betas=1 - alpha, prediction_type="sample", variance_type="fixed_small", clip_sample=True)
with the same network, x̂_0 = net(x, t + 1) (diffusers counts t from 0). The three run in
alternating rounds in one process; the table shows medians.

Fewer steps (--run): vdm.sample(steps=K, sampler=ancestral|ddim) with the run's newest
checkpoint (EMA weights when present), the same seed (so the same x_T) for every K, K = T, 100,
50, 20, 10 by default. Speed: samples per second of the whole call (n images at once) and ms per
step, median of --rounds rounds that alternate over every (sampler, K). Quality: a grid PNG per
(sampler, K) in --out, one comparison strip (rows K, the first 8 samples of each sampler), and
a distribution distance to held-out data: the unbiased squared MMD with a Gaussian kernel on the
3072 pixel values (as saved, 8-bit), exp(-||a - b||^2 / (2 h^2)), h the median pairwise distance
of the held-out reference (the first 1000 test images), samples against that reference. Its
noise floor is the same statistic for disjoint sets of n held-out images (mean and sd over ten).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# as `vdm sample` runs (vdm_cli.main.cpu_env), for all three loops alike: they share this process
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.no_grad()
def bare(net, T: int, n: int, device) -> float:
    x = torch.randn(n, 3, 32, 32, device=device)
    t = torch.empty(n, dtype=torch.long, device=device)
    _sync(device)
    t0 = time.perf_counter()
    for s in range(T, 0, -1):
        t.fill_(s)
        net(x, t)
    _sync(device)
    return time.perf_counter() - t0


def ours(den, schedule, n: int, device, compile: bool = False) -> float:
    from vdm.sample import sample

    _sync(device)
    t0 = time.perf_counter()
    sample(den, schedule, n, seed=0, device=device, compile=compile)
    _sync(device)
    return time.perf_counter() - t0


@torch.no_grad()
def diffusers_loop(net, schedule, n: int, device) -> float:
    from diffusers import DDPMScheduler

    T = schedule.T
    betas = (1 - schedule.alpha[1:]).double().numpy()
    sch = DDPMScheduler(num_train_timesteps=T, trained_betas=betas, prediction_type="sample",
                        variance_type="fixed_small", clip_sample=True)
    sch.set_timesteps(T)
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(n, 3, 32, 32, generator=g, device=device)
    tb = torch.empty(n, dtype=torch.long, device=device)
    _sync(device)
    t0 = time.perf_counter()
    for t in sch.timesteps:
        tb.fill_(int(t) + 1)
        x0 = net(x, tb)
        x = sch.step(x0, t, x, generator=g).prev_sample
    _sync(device)
    return time.perf_counter() - t0


def mmd2(x: torch.Tensor, y: torch.Tensor, h: float) -> float:
    """Unbiased MMD^2 between samples x [n, D] and y [m, D], Gaussian kernel k(a, b) = exp(-||a - b||^2 / (2 h^2)).

        MMD^2 = mean_{i != j} k(x_i, x_j) + mean_{i != j} k(y_i, y_j) - 2 mean_{i, j} k(x_i, y_j)
    """
    def k(a, b):
        return torch.exp(-torch.cdist(a, b).pow(2) / (2 * h * h))

    def off_diagonal_mean(a):
        kaa = k(a, a)
        n = a.shape[0]
        return float((kaa.sum() - kaa.diagonal().sum()) / (n * (n - 1)))

    return off_diagonal_mean(x) + off_diagonal_mean(y) - 2 * float(k(x, y).mean())


def _quantised(x: torch.Tensor) -> torch.Tensor:
    """Samples as they are saved (8-bit levels), flattened, in [-1, 1], float64."""
    from vdm.data import to_float, to_uint8

    return to_float(to_uint8(x)).flatten(1).double()


def fewer_steps(args) -> list[dict]:
    """Speed and quality of vdm.sample(steps=K, sampler=...) on a trained run: the table, grids, and rows."""
    from vdm.data import to_float
    from vdm.images import grid, save_png
    from vdm.run import open_run
    from vdm.sample import SAMPLERS, sample

    device = torch.device(args.device)
    run = open_run(args.run)
    den, meta = run.denoiser(device)
    schedule = den.schedule
    T = schedule.T
    ks = sorted({k for k in (args.ks or [T, 100, 50, 20, 10]) if 1 <= k <= T}, reverse=True)
    held = to_float(run.test_images()).flatten(1).double()
    ref, rest = held[:1000], held[1000:]
    h = float(torch.pdist(ref).median())
    floor = [mmd2(rest[i * args.n:(i + 1) * args.n], ref, h) for i in range(min(10, len(rest) // args.n))]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    times = {(sm, k): [] for sm in SAMPLERS for k in ks}
    samples = {}
    sample(den, schedule, args.n, seed=args.seed, device=device, steps=2)  # warm the allocator and the convolution algorithms
    for r in range(args.rounds):
        for key in times:
            sm, k = key
            _sync(device)
            t0 = time.perf_counter()
            x = sample(den, schedule, args.n, seed=args.seed, device=device, steps=k, sampler=sm)
            _sync(device)
            times[key].append(time.perf_counter() - t0)
            samples.setdefault(key, x.cpu())
            print(f"round {r + 1}/{args.rounds}: {sm} K = {k}: {times[key][-1]:.1f} s", file=sys.stderr, flush=True)
    rows = []
    for (sm, k), ts in times.items():
        x = samples[(sm, k)]
        save_png(grid(x, scale=2), out / f"{sm}_K{k:04d}.png")
        wall = statistics.median(ts)
        rows.append(dict(sampler=sm, K=k, samples_per_s=args.n / wall, ms_per_step=wall / k * 1e3, wall_s=wall,
                         mmd2=mmd2(_quantised(x), ref, h)))
    strip = [np.concatenate([grid(samples[(sm, k)][:8], ncol=8, scale=2) for sm in SAMPLERS], 1) for k in ks]
    save_png(np.concatenate(strip, 0), out / "compare.png")
    print(f"sampling in K of T = {T} steps: {run.path.name} (step {meta.get('step')}, {schedule.describe()}), "
          f"{args.n} images at once, {device}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"MMD^2 noise floor (held-out sets of {args.n} against the reference): "
          f"{statistics.mean(floor):.4f} ± {statistics.stdev(floor):.4f} (mean ± sd of {len(floor)}); h = {h:.2f}")
    print("| sampler | K | samples/s | ms/step | wall s | MMD^2 to held-out |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print("| {sampler} | {K} | {samples_per_s:.2f} | {ms_per_step:.1f} | {wall_s:.1f} | {mmd2:.4f} |".format(**row))
    print(f"grids: {out}/<sampler>_K<K>.png; rows K = {', '.join(map(str, ks))} of the first 8 samples, "
          f"ancestral left, DDIM right: {out / 'compare.png'}")
    return [dict(row, floor_mean=statistics.mean(floor), floor_sd=statistics.stdev(floor)) for row in rows]


def timed_rounds(T: int, n: int, device, rounds: int, compile: bool = False, diffusers: bool = True,
                 plain: bool = True) -> dict:
    """Seconds of each round, by loop: the bare network calls, vdm.sample, the diffusers loop (``diffusers``)
    and vdm.sample(compile=True) (``compile``; its first call, which compiles, is not timed), in
    alternating rounds on the assignment's network (random weights) at T steps, n images at once.
    ``plain=False`` leaves out the bare calls and the uncompiled sampler."""
    from vdm.denoiser import Denoiser
    from vdm.nets import AssignmentNet
    from vdm.schedule import make_schedule

    torch.manual_seed(0)
    schedule = make_schedule("constant", T, None)
    net = AssignmentNet(T).to(device).eval()
    den = Denoiser(net, schedule)
    bare(net, 3, n, device)  # warm the allocator and the convolution algorithms
    times = {"bare": [], "ours": [], "diffusers": [], "compiled": []}
    for r in range(rounds):
        if plain:
            times["bare"].append(bare(net, T, n, device))
            times["ours"].append(ours(den, schedule, n, device))
        if diffusers:
            times["diffusers"].append(diffusers_loop(net, schedule, n, device))
        if compile:
            if r == 0:
                ours(den, schedule, n, device, compile=True)  # compiling
            times["compiled"].append(ours(den, schedule, n, device, compile=True))
        print(f"round {r + 1}/{rounds}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items() if v),
              file=sys.stderr, flush=True)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--n", type=int, default=64, help="images sampled at once")
    ap.add_argument("--rounds", type=int, default=None, help="rounds (default: 3; with --run 1)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="also time vdm.sample(compile=True)")
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--run", help="a trained run: time and judge sampling in fewer steps instead")
    ap.add_argument("--ks", type=int, nargs="*", help="with --run: the K to sample with (default: T, 100, 50, 20, 10)")
    ap.add_argument("--seed", type=int, default=0, help="with --run: the seed of every K (the same x_T)")
    ap.add_argument("--out", default="sampling", help="with --run: folder for the grids")
    args = ap.parse_args()
    if not args.run:
        args.rounds = args.rounds or 3
    if args.run:
        args.rounds = args.rounds or 1
        rows = fewer_steps(args)
        if args.json:
            Path(args.json).write_text(json.dumps(rows))
        return

    device = torch.device(args.device)
    times = timed_rounds(args.T, args.n, device, args.rounds, compile=args.compile)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    per = {k: v / args.T * 1e3 for k, v in med.items()}
    rows = [("sample: bare network calls (the floor)", per["bare"], "ms/step", 1.0),
            ("sample: vdm.sample", per["ours"], "ms/step", med["ours"] / med["bare"]),
            ("sample: diffusers DDPMScheduler loop", per["diffusers"], "ms/step", med["diffusers"] / med["bare"])]
    if "compiled" in med:
        rows.append(("sample: vdm.sample(compile=True)", per["compiled"], "ms/step", med["compiled"] / med["bare"]))
    # the overhead of each round against the floor of the same round (adjacent in time: less noise)
    paired = [o / b - 1 for o, b in zip(times["ours"], times["bare"])]
    rows.append(("sample: vdm.sample overhead over the floor (median of rounds)", 100 * statistics.median(paired), "%", None))
    w = max(len(r[0]) for r in rows)
    print(f"sampling, assignment network, T = {args.T}, {args.n} images at once, {device}")
    print(f"{'measurement':<{w}}  {'median':>10}  {'unit':<8}  {'vs floor':>9}")
    for name, v, unit, ratio in rows:
        print(f"{name:<{w}}  {v:>10.2f}  {unit:<8}  {'' if ratio is None else f'{ratio:.3f}x':>9}")
    if args.json:
        Path(args.json).write_text(json.dumps([dict(name=r[0], value=r[1], unit=r[2], ratio=r[3]) for r in rows]))


if __name__ == "__main__":
    main()
