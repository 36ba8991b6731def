"""A peer under `vdm score`: lucidrains' denoising-diffusion-pytorch on the shapes data, after equal CPU budgets.

    nice -n 5 .venv/bin/python benchmarks/bench_peer.py --budgets 3 10 --out /tmp/peer   # venv, data, runs, table
    .venv/bin/python benchmarks/bench_peer.py --budgets 3 10 --out /tmp/peer             # again: the table only
    .venv/bin/python benchmarks/bench_peer.py --budgets 0.2 --out /tmp/peer-check --n-samples 64 --sampling-timesteps 5
                                                                   # the whole path in a minute (numbers meaningless)

What it does, in order:
1. Makes the peer's own virtual environment once (default benchmarks/.peer-venv, git-ignored; --venv elsewhere)
   with torch==2.14.1, torchvision==0.29.1 and the pip package denoising-diffusion-pytorch, so the peer never enters
   the project's dependencies. Its installed version is in each result and in the table's heading.
2. Exports the embedded shapes training images (vdm.data.load("shapes", "train"): 20,000 32x32 RGB images) as PNGs
   to OUT/data/shapes-train, the folder the peer's Trainer reads.
3. Runs benchmarks/peer_driver.py in that environment for each budget: the README's API (Unet, GaussianDiffusion,
   Trainer), one thread, seed 0, stopped when its process's CPU time (utime + stime from /proc/PID/stat, torch's
   import and the set-up included, as in bench_likelihood.py) reaches the budget; then 256 samples from the
   Trainer's EMA model with its own sampler, timed apart (not in the budget), one PNG each, and a grid.
4. Scores the samples' folder with `vdm score FOLDER --json` (Fréchet distance in the shapes classifier's
   features, precision/recall, tiles holding a shape) and prints one row a budget.

The peer's configuration, the README's scaled for 32x32 RGB on one CPU thread:
- Unet(dim=32, dim_mults=(1, 2, 4)): the README has dim=64, dim_mults=(1, 2, 4, 8) for 128x128 images. Three
  levels (32, 16, 8 pixels; full attention at 8x8, linear attention above) suit 32x32. At dim=64 a trial made 6
  updates of 32 images in 28.6 CPU s on one thread (6.7 images/s) and took 1.26 CPU s a sampling step of 32
  images; dim=32 (2.6M parameters): 18-19 images/s, 0.57 CPU s a sampling step.
- GaussianDiffusion(image_size=32, timesteps=1000, sampling_timesteps=50): the README's 1000 training steps and
  its defaults (v prediction, sigmoid schedule); the README samples with DDIM at 250 steps: for 256 images at
  0.57 CPU s a step of 32 that is longer than the 10-minute budget. 50 DDIM steps: 240 CPU s measured.
- Trainer(train_batch_size=32, train_lr=8e-5, ema_decay=0.995, amp=False, calculate_fid=False): the README's batch,
  learning rate and EMA, without its gradient_accumulate_every=2 (every update counts once); amp off (a CPU);
  calculate_fid off (it downloads Inception weights). Its other defaults are kept (Adam betas (0.9, 0.99), EMA
  every 10 updates, horizontal flips, gradient clipping at 1), except: its DataLoader's workers (cpu_count(),
  other processes, not counted in the budget) are 0, and its milestone grids and checkpoints (every 1,000
  updates) are off.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

HERE = Path(__file__).resolve().parent
VDM = str(Path(sys.executable).with_name("vdm"))
PEER_PACKAGES = ["torch==2.14.1", "torchvision==0.29.1", "denoising-diffusion-pytorch"]
CONFIG = {"dim": 32, "dim_mults": [1, 2, 4], "batch": 32, "lr": 8e-5, "ema_decay": 0.995, "timesteps": 1000,
          "sampling_timesteps": 50, "n_samples": 256, "seed": 0}


def peer_venv(path: Path) -> Path:
    """The peer's python, making its virtual environment first when there is none."""
    py = path / "bin" / "python"
    if not py.exists():
        print(f"making the peer's environment in {path} (a minute or more)", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *PEER_PACKAGES], check=True)
    return py


def peer_version(py: Path) -> str:
    return subprocess.run([str(py), "-c", "import importlib.metadata as m; print(m.version('denoising-diffusion-pytorch'))"],
                          check=True, capture_output=True, text=True).stdout.strip()


def export_shapes(folder: Path) -> int:
    """The shapes training images as PNGs in `folder` (kept: not written again when all are there)."""
    from PIL import Image

    from vdm.data import load

    x = load("shapes", "train")
    if folder.is_dir() and len(list(folder.glob("*.png"))) == len(x):
        return len(x)
    folder.mkdir(parents=True, exist_ok=True)
    for i, img in enumerate(x.permute(0, 2, 3, 1).numpy()):
        Image.fromarray(img).save(folder / f"{i:05d}.png")
    return len(x)


def run_peer(py: Path, data: Path, budget_min: float, out: Path) -> dict:
    """peer_driver.py for one budget, its log in out/driver.log; its result.json."""
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", CUDA_VISIBLE_DEVICES="", HF_HUB_OFFLINE="1",
               TQDM_DISABLE="1")
    c = CONFIG
    argv = [str(py), str(HERE / "peer_driver.py"), "--data", str(data), "--out", str(out), "--budget-min", str(budget_min),
            "--dim", str(c["dim"]), "--dim-mults", *map(str, c["dim_mults"]), "--batch", str(c["batch"]),
            "--lr", str(c["lr"]), "--ema-decay", str(c["ema_decay"]), "--timesteps", str(c["timesteps"]),
            "--sampling-timesteps", str(c["sampling_timesteps"]), "--n-samples", str(c["n_samples"]),
            "--seed", str(c["seed"])]
    t0 = time.monotonic()
    with open(out / "driver.log", "w") as log:
        subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, check=True, env=env)
    r = json.loads((out / "result.json").read_text())
    r.update(wall_s=round(time.monotonic() - t0, 1), commit=_commit(), load_after=os.getloadavg())
    (out / "result.json").write_text(json.dumps(r, indent=1))
    return r


def score(folder: Path) -> dict:
    """`vdm score FOLDER --json`, kept next to the folder."""
    rep = subprocess.run([VDM, "score", str(folder), "--json"], check=True, capture_output=True, text=True).stdout
    (folder.parent / "score.json").write_text(rep)
    return json.loads(rep)


def _commit() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=HERE, capture_output=True,
                          text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "benchmarks/bench_peer.py", "benchmarks/peer_driver.py"],
                           check=False, cwd=HERE.parent, capture_output=True, text=True)
    return head + (" (bench_peer/peer_driver with uncommitted changes)" if dirty.stdout.strip() else "")


def _cells(c: dict) -> str:
    """FD | precision | recall | shapes of one column of vdm score's report ("-" where it has none)."""
    f = lambda key, fmt: "-" if c.get(key) is None else fmt.format(c[key])
    return " | ".join([f("fd", "{:.1f}"), f("precision", "{:.2f}"), f("recall", "{:.2f}"), f("shapes", "{:.0%}")])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budgets", type=float, nargs="+", default=[3, 10], help="CPU minutes per run")
    ap.add_argument("--out", required=True)
    ap.add_argument("--venv", default=str(HERE / ".peer-venv"), help="the peer's virtual environment (made when missing)")
    ap.add_argument("--n-samples", type=int, default=CONFIG["n_samples"], help="fewer for a quick check of the path")
    ap.add_argument("--sampling-timesteps", type=int, default=CONFIG["sampling_timesteps"])
    args = ap.parse_args()
    CONFIG.update(n_samples=args.n_samples, sampling_timesteps=args.sampling_timesteps)
    out = Path(args.out)
    py = peer_venv(Path(args.venv))
    version = peer_version(py)
    data = out / "data" / "shapes-train"
    n = export_shapes(data)
    print(f"denoising-diffusion-pytorch {version}; {n} shapes training images in {data}", flush=True)
    rows = []
    for budget in args.budgets:
        run = out / f"peer-{budget:g}min"
        if (run / "result.json").exists() and (run / "score.json").exists():
            print(f"{run.name}: already there, not run again", flush=True)
            r, s = json.loads((run / "result.json").read_text()), json.loads((run / "score.json").read_text())
        else:
            r = run_peer(py, data, budget, run)
            print(json.dumps({k: r[k] for k in ("updates", "cpu_s_at_stop", "train_wall_s", "sample_wall_s", "wall_s")}),
                  flush=True)
            s = score(run / "images")
        rows.append((budget, run, r, s))
    c = CONFIG
    print(f"\ndenoising-diffusion-pytorch {version}: Unet(dim={c['dim']}, dim_mults={tuple(c['dim_mults'])}), "
          f"GaussianDiffusion(timesteps={c['timesteps']}, sampling_timesteps={c['sampling_timesteps']}), "
          f"batch {c['batch']}, lr {c['lr']:g}, EMA {c['ema_decay']}; one thread, seed {c['seed']}; "
          f"{c['n_samples']} samples scored by `vdm score`\n")
    print(f"| budget (CPU min) | updates | images/s (training) | sampling {c['n_samples']} (CPU s / wall s) | Fréchet distance | "
          "precision | recall | tiles holding a shape |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for budget, run, r, s in rows:
        sm = s["samples"]
        print(f"| {budget:g} | {r['updates']:,} | {r['images_per_s']:.1f} | {r['sample_cpu_s']:.0f} / {r['sample_wall_s']:.0f} | "
              f"{_cells(sm)} |")
    if rows:
        h, z = rows[-1][3]["held_out"], rows[-1][3]["noise"]
        if h:
            print(f"| held-out images | | | | {_cells(h)} |")
        print(f"| uniform noise | | | | {_cells(z)} |")
        print("\ngrids: " + ", ".join(str(run / "grid.png") for _, run, _, _ in rows))


if __name__ == "__main__":
    main()
