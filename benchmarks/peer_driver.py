"""The peer's side of bench_peer.py: lucidrains' denoising-diffusion-pytorch, trained with its own Trainer for a
CPU-time budget, then sampled with its EMA model. Runs inside the peer's virtual environment and imports only the
peer, torch and the standard library (bench_peer.py starts it; by hand:

    benchmarks/.peer-venv/bin/python benchmarks/peer_driver.py --data DIR --out DIR --budget-min 3

). It writes OUT/images/NNNN.png (one PNG a sample), OUT/grid.png and OUT/result.json.

The budget is this process's CPU time (utime + stime of /proc/self/stat, all threads, torch's import and the
Trainer's set-up included, as in bench_likelihood.py): a watchdog thread sets the Trainer's step limit
(`train_num_steps`, which its loop tests before each update) to the current step once the budget is used, so the
loop ends after the update in flight. Sampling comes after and is timed apart.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import threading
import time
from pathlib import Path

CLOCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds() -> float:
    """utime + stime of this process (all its threads), in seconds."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="folder of training PNGs")
    ap.add_argument("--out", required=True)
    ap.add_argument("--budget-min", type=float, required=True, help="CPU minutes for import, set-up and training")
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--dim-mults", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=8e-5)
    ap.add_argument("--ema-decay", type=float, default=0.995)
    ap.add_argument("--timesteps", type=int, default=1000)
    ap.add_argument("--sampling-timesteps", type=int, default=250)
    ap.add_argument("--n-samples", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    random.seed(args.seed)
    torch.manual_seed(args.seed)

    import denoising_diffusion_pytorch.denoising_diffusion_pytorch as ddp
    from denoising_diffusion_pytorch import GaussianDiffusion, Trainer, Unet
    from denoising_diffusion_pytorch.version import __version__

    # The Trainer's DataLoader takes num_workers = cpu_count(): worker processes whose CPU time this process's
    # /proc/self/stat does not count, and more than one thread. 0 workers: the images are read in this process.
    ddp.cpu_count = lambda: 0

    out = Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    model = Unet(dim=args.dim, dim_mults=tuple(args.dim_mults))
    diffusion = GaussianDiffusion(model, image_size=32, timesteps=args.timesteps,
                                  sampling_timesteps=args.sampling_timesteps)
    trainer = Trainer(diffusion, args.data, train_batch_size=args.batch, train_lr=args.lr,
                      train_num_steps=10_000_000, ema_decay=args.ema_decay, amp=False, calculate_fid=False,
                      save_and_sample_every=10_000_000,  # no milestone grids or checkpoints inside the budget
                      results_folder=str(out / "results"))

    budget_s = 60 * args.budget_min
    stop = threading.Event()

    def watchdog() -> None:
        while not stop.is_set():
            if cpu_seconds() >= budget_s:
                trainer.train_num_steps = trainer.step  # the loop's `while self.step < self.train_num_steps`
                return
            time.sleep(0.2)

    setup_cpu = cpu_seconds()
    dog = threading.Thread(target=watchdog, daemon=True)
    dog.start()
    w0, c0 = time.monotonic(), cpu_seconds()
    trainer.train()
    train_wall, train_cpu = time.monotonic() - w0, cpu_seconds() - c0
    stop.set()
    cpu_at_stop = cpu_seconds()
    updates = trainer.step

    # sampling: the Trainer's own way (EMA model, its sampler, groups of the batch size), not in the budget
    ema_model = trainer.ema.ema_model
    ema_model.eval()
    torch.manual_seed(args.seed)
    w0, c0 = time.monotonic(), cpu_seconds()
    with torch.inference_mode():
        images = torch.cat([ema_model.sample(batch_size=n) for n in ddp.num_to_groups(args.n_samples, args.batch)])
    sample_wall, sample_cpu = time.monotonic() - w0, cpu_seconds() - c0

    from torchvision import utils

    for i, img in enumerate(images):
        utils.save_image(img, str(out / "images" / f"{i:04d}.png"))
    utils.save_image(images, str(out / "grid.png"), nrow=int(math.sqrt(args.n_samples)), padding=1)

    result = {
        "peer": "denoising-diffusion-pytorch", "peer_version": __version__, "torch": torch.__version__,
        "python": sys.version.split()[0], "threads": torch.get_num_threads(),
        "config": {"dim": args.dim, "dim_mults": args.dim_mults, "batch": args.batch, "lr": args.lr,
                   "ema_decay": args.ema_decay, "timesteps": args.timesteps,
                   "sampling_timesteps": diffusion.sampling_timesteps, "ddim": diffusion.is_ddim_sampling,
                   "objective": diffusion.objective, "beta_schedule": "sigmoid (default)", "seed": args.seed,
                   "params": sum(p.numel() for p in model.parameters()), "train_images": len(trainer.ds)},
        "budget_cpu_min": args.budget_min, "cpu_s_before_training": round(setup_cpu, 1),
        "cpu_s_at_stop": round(cpu_at_stop, 1), "updates": updates,
        "train_wall_s": round(train_wall, 1), "train_cpu_s": round(train_cpu, 1),
        "images_per_s": round(updates * args.batch / train_cpu, 1) if train_cpu else None,
        "sample_n": len(images), "sample_wall_s": round(sample_wall, 1), "sample_cpu_s": round(sample_cpu, 1),
    }
    (out / "result.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
