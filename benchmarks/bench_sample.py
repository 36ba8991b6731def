"""Sampling speed: vdm.sample against the bare network calls (the floor) and a diffusers loop.

    python3 benchmarks/bench_sample.py                 # T = 100, 64 images, 3 rounds, CPU
    python3 benchmarks/bench_sample.py --T 500 --n 256 --device cuda --compile

The floor is T calls of the network on the batch, nothing else. vdm.sample adds the posterior
step x_{t-1} = c_x0(t) clip(x̂_0) + c_xt(t) x_t + sigma_q(t) z per step; its overhead is
(sampler / floor - 1), goal under 10 %. The diffusers loop: DDPMScheduler(num_train_timesteps=T,
trained_betas=1 - alpha, prediction_type="sample", variance_type="fixed_small", clip_sample=True)
with the same network, x̂_0 = net(x, t + 1) (diffusers counts t from 0). The three run in
alternating rounds in one process; the table shows medians.
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

# as `vdm sample` runs (vdm.cli.cpu_env), for all three loops alike: they share this process
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--n", type=int, default=64, help="images sampled at once")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="also time vdm.sample(compile=True)")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args()

    from vdm.denoiser import Denoiser
    from vdm.nets import AssignmentNet
    from vdm.schedule import make_schedule

    device = torch.device(args.device)
    torch.manual_seed(0)
    schedule = make_schedule("constant", args.T, None)
    net = AssignmentNet(args.T).to(device).eval()
    den = Denoiser(net, schedule)
    bare(net, 3, args.n, device)  # warm the allocator and the convolution algorithms
    times = {"bare": [], "ours": [], "diffusers": [], "compiled": []}
    for r in range(args.rounds):
        times["bare"].append(bare(net, args.T, args.n, device))
        times["ours"].append(ours(den, schedule, args.n, device))
        times["diffusers"].append(diffusers_loop(net, schedule, args.n, device))
        if args.compile:
            if r == 0:
                ours(den, schedule, args.n, device, compile=True)  # compiling
            times["compiled"].append(ours(den, schedule, args.n, device, compile=True))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items() if v),
              file=sys.stderr, flush=True)
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
