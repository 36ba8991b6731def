"""Which training recipe gives samples a learner would keep, after 3 and after 10 CPU minutes.

    python3 benchmarks/bench_recipe.py train --budgets 3 --recipes main unet --out /tmp/recipe   # the runs
    python3 benchmarks/bench_recipe.py table --out /tmp/recipe                                   # score them

The runs follow `bench_likelihood.py`'s protocol: one thread, seed 0, the embedded shapes data, stopped by
SIGTERM when the trainer's own CPU time reaches the budget (so two runs may share two cores and a busy
machine slows the benchmark without changing what each recipe was given). `--jobs 2` runs two at once.

The table scores each run twice over: what a learner sees, by `vdm score` (256 samples, the run's own
sampler settings unless a recipe names others: tiles holding a shape, the Fréchet distance in the shapes
classifier's features, precision and recall), and the bound, by `vdm elbo` (256 held-out images,
importance-sampled t), so the trade-off between the two stays visible.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_likelihood import VDM, evaluate, steps_of, train  # noqa: E402 (a sibling script, not a package)

# the README main job's flags before this benchmark chose among recipes
MAIN = ["--schedule", "cosine", "--prediction", "x0-precond", "--weighting", "edm", "--batch-size", "32",
        "--ema", "0.995", "--n-samples", "36"]
RECIPES = {
    "main": MAIN,
    # the project's U-Net (GroupNorm, a time embedding in every block, full-resolution 3x3 convolutions):
    # the assignment's network sees t only as an input plane and draws its output with one transposed convolution
    "unet": MAIN + ["--model", "unet"],
    # epsilon prediction (DDPM's loss): the network removes noise rather than drawing the image
    "eps": ["--schedule", "cosine", "--prediction", "eps", "--batch-size", "32", "--ema", "0.995", "--n-samples", "36"],
    "unet-eps": ["--schedule", "cosine", "--prediction", "eps", "--batch-size", "32", "--ema", "0.995",
                 "--n-samples", "36", "--model", "unet"],
    "lr2e-3": MAIN + ["--lr", "2e-3"],
    "unet-lr2e-3": MAIN + ["--model", "unet", "--lr", "2e-3"],
    "batch64": [*MAIN[:7], "64", *MAIN[8:]],
    "ema0.999": [*MAIN[:9], "0.999", *MAIN[10:]],
    "small": MAIN + ["--model", "unet-small"],
    "small-lr2e-3": MAIN + ["--model", "unet-small", "--lr", "2e-3"],
    "small-b16": [*MAIN[:7], "16", *MAIN[8:], "--model", "unet-small"],
    "small-ema0.99": [*MAIN[:9], "0.99", *MAIN[10:], "--model", "unet-small"],
    # the U-Net at 16 channels, a higher rate, and grids in 100 reverse steps (a grid is training time lost)
    "small-fast": MAIN + ["--model", "unet-small", "--lr", "2e-3", "--sample-steps", "100"],
    "small-fast-lr3e-3": MAIN + ["--model", "unet-small", "--lr", "3e-3", "--sample-steps", "100"],
    "small-fast-b16": [*MAIN[:7], "16", *MAIN[8:], "--model", "unet-small", "--lr", "2e-3", "--sample-steps", "100"],
    "small-fast-b16-lr1e-3": [*MAIN[:7], "16", *MAIN[8:], "--model", "unet-small", "--sample-steps", "100"],
    "small-fast-ema0.99": [*MAIN[:9], "0.99", *MAIN[10:], "--model", "unet-small", "--lr", "2e-3", "--sample-steps", "100"],
    "unet-b64": [*MAIN[:7], "64", *MAIN[8:], "--model", "unet"],
}


def score(run: Path, extra: list[str]) -> dict:
    """`vdm score RUN --json` (256 samples) with the sampler flags `extra`."""
    out = subprocess.run([VDM, "score", str(run), "--json", *extra], check=True, capture_output=True, text=True).stdout
    return json.loads(out)["samples"]


def cmd_train(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    todo = [(f"{r}-{b:g}min", RECIPES[r], b) for b in args.budgets for r in args.recipes
            if not (out / f"{r}-{b:g}min").exists()]

    def one(job):
        name, flags, budget = job
        row = train(name, flags, budget, out)
        (out / f"{name}.train.json").write_text(json.dumps(row, indent=1))
        print(json.dumps({k: row[k] for k in ("name", "cpu_s_at_stop", "wall_s", "status")}), flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, todo))


def cmd_table(args) -> None:
    out = Path(args.out)
    sampler = args.sampler.split()
    print("| run | updates | tiles holding a shape | Fréchet distance | precision | recall | -ELBO bits/dim |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for tj in sorted(out.glob("*.train.json")):
        t = json.loads(tj.read_text())
        run = out / t["name"]
        key = "score" + ("-" + "_".join(sampler) if sampler else "") + ".json"
        cached = run / key
        if not cached.exists():
            cached.write_text(json.dumps(score(run, sampler)))
        s = json.loads(cached.read_text())
        elbo = "-"
        if not args.no_elbo:
            if not (run / "elbo.json").exists():
                evaluate(run, 256, 2)
            rep = json.loads((run / "elbo.json").read_text())["forms"]["denoising"]
            first = next(iter(rep.values()))
            elbo = f"{first['total']:.2f} ± {first['mc_standard_error']:.2f}"
        print(f"| {t['name']} | {steps_of(run):,} | {100 * s['shapes']:.0f} % | {s['fd']:.0f} | {s['precision']:.2f} | "
              f"{s['recall']:.2f} | {elbo} |", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train")
    tr.add_argument("--budgets", type=float, nargs="+", default=[3], help="CPU minutes per run")
    tr.add_argument("--recipes", nargs="+", default=["main", "unet"], choices=list(RECIPES))
    tr.add_argument("--jobs", type=int, default=1, help="runs at once (one thread each)")
    tr.add_argument("--out", required=True)
    tb = sub.add_parser("table")
    tb.add_argument("--out", required=True)
    tb.add_argument("--sampler", default="", help="vdm score's sampler flags, e.g. '--sampler ddim --steps 50'")
    tb.add_argument("--no-elbo", action="store_true", help="the samples' score only")
    args = ap.parse_args()
    {"train": cmd_train, "table": cmd_table}[args.cmd](args)


if __name__ == "__main__":
    main()
