"""Diffusion in a minute: the README's 2-D commands, timed end to end, and how good their samples and bounds are.

    python3 benchmarks/bench_2d.py [--data gmm moons] [--repeats 1] [-- extra vdm train flags]

For each data set: `vdm train --data X --no-tui --quiet` in a fresh process (wall time from launch to exit,
Python start-up and torch import included), then, from its run directory:

- MMD^2 (vdm.points.mmd2) of the run's final 1,000 samples against 1,000 held-out points, beside the floor:
  1,000 training points against the same held-out ones (two draws of the data itself). Goal: within 2x.
- for gmm: the model's -ELBO minus the Bayes-optimal denoiser's on the same x_t, in nats per dimension, with
  its paired Monte Carlo error (vdm.report.exact_references, 1,000 held-out points, 4 draws). Goal: <= 0.05.
- updates, points per second of training (from the end record's training time) and the wall time.

Run it on a quiet machine (nothing else running): the wall time is the goal's measure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VDM = ROOT / ".venv" / "bin" / "vdm"


def one(data: str, extra: list[str], out: Path) -> dict:
    from vdm import gmm
    from vdm.points import mmd2
    from vdm.report import ElboOptions, exact_references
    from vdm.run import open_run

    name = f"{data}-{int(time.time() * 1000) % 10**8}"
    cmd = [str(VDM), "train", "--data", data, "--no-tui", "--quiet", "--name", name, "--runs-dir", str(out), *extra]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-2000:]}")
    run = open_run(out / name)
    recs, _ = run.metrics()
    end = next(r for r in reversed(recs) if r["kind"] == "end")
    cfg = run.config
    samples = run.latest_points()
    import torch

    held = run.test_images()[:1000]
    from vdm import data as datasets

    train = datasets.load(cfg.data, "train", n=cfg.data_n, seed=cfg.seed)[:1000]
    row = {"data": data, "wall_s": wall, "updates": end["step"], "train_s": end["elapsed"],
           "points_per_s": end["step"] * cfg.batch_size / end["elapsed"],
           "mmd2": mmd2(torch.from_numpy(samples[:1000]), held), "mmd2_floor": mmd2(train, held)}
    if gmm.is_mixture(data):
        den, _ = run.denoiser()
        ex = exact_references(den, gmm.layout(data), run.schedule, held, ElboOptions(draws=4))
        row.update(gap=ex["model_minus_optimal"]["nats"], gap_se=ex["model_minus_optimal"]["se_nats"],
                   model=ex["model"]["nats"], optimal=ex["optimal"]["nats"], nll=ex["nll"]["nats"])
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", nargs="+", default=["gmm", "moons"])
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("extra", nargs="*", help="flags passed on to vdm train (after --)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for _ in range(args.repeats):
            for data in args.data:  # alternating, so a change in the machine's load falls on both
                rows.append(one(data, args.extra, Path(d)))
                print(json.dumps(rows[-1]), flush=True)
    print("\n| data | wall s | updates | points/s | MMD² samples | MMD² floor | ratio | -ELBO gap to optimal (nats/dim) |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        gap = f"{r['gap']:.4f} ± {r['gap_se']:.4f}" if "gap" in r else "no exact reference"
        print(f"| {r['data']} | {r['wall_s']:.1f} | {r['updates']:,} | {r['points_per_s']:,.0f} | {r['mmd2']:.4f} | "
              f"{r['mmd2_floor']:.4f} | {r['mmd2'] / r['mmd2_floor']:.2f} | {gap} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
