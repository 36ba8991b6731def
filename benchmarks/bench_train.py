"""Training speed of the assignment's network: vdm's trainer against the loop the assignment implies.

    python3 benchmarks/bench_train.py                  # CPU: rounds alternating reference / ours, medians
    python3 benchmarks/bench_train.py --compile        # also ours with torch.compile (minutes to compile)
    python3 benchmarks/bench_train.py --gpu            # on a GPU: the 200-epoch CIFAR-10-sized run, profiled

Reference ("as the assignment implies"): a torchvision-style Dataset of PIL images,
transforms.ToTensor + Normalize to [-1, 1], DataLoader(batch 128, shuffle, num_workers=2), a
.to(device) copy per batch, t ~ U{1..T}, x_t by the closed form, MSE, Adam, loss.item() per step.
Ours: vdm.train.Trainer.run() itself (data as uint8 on the device, converted in the step, fused
Adam, the loss read back every log_every steps), timed by its own metrics records.

Both train the same network on the same embedded shapes images. Each measurement is a fresh
process (so each gets the OpenMP setting its program would have: torch's default for the
reference, OMP_WAIT_POLICY=PASSIVE for ours, as vdm_cli.main.cpu_env sets it; "ref-env" is the
reference with vdm's setting, to show what the loop itself gains). The modes alternate in rounds;
each reports steady-state images/s (the first steps, which start the DataLoader workers or
compile, are left out); the table gives medians, and ratios to the reference of the same round.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from vdm.run import metrics_path  # noqa: E402 (after the path: run from a checkout)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402


# -- the reference loop ------------------------------------------------------------------
class ShapesPIL(torch.utils.data.Dataset):
    """The shapes images as a torchvision data set holds CIFAR-10: PIL images and a transform."""

    def __init__(self, images_uint8: torch.Tensor, transform):
        from PIL import Image

        arr = images_uint8.permute(0, 2, 3, 1).numpy()
        self.images = [Image.fromarray(np.ascontiguousarray(a)) for a in arr]
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.transform(self.images[i]), 0


def reference_rate(images, T: int, steps: int, warm: int, batch: int, device: torch.device, seed: int = 0) -> float:
    """images/s of the assignment-style loop over ``steps`` steps after ``warm`` steps."""
    from torchvision import transforms

    from vdm.nets import AssignmentNet
    from vdm.schedule import make_schedule

    torch.manual_seed(seed)
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    loader = torch.utils.data.DataLoader(ShapesPIL(images, tf), batch_size=batch, shuffle=True, num_workers=2)
    net = AssignmentNet(T).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    alpha_bar = make_schedule("constant", T, None).alpha_bar.float().to(device)
    done, t0, total = 0, None, 0.0
    while done < warm + steps:
        for x0, _ in loader:
            x0 = x0.to(device)
            t = torch.randint(1, T + 1, (x0.shape[0],), device=device)
            eps = torch.randn_like(x0)
            ab = alpha_bar[t].view(-1, 1, 1, 1)
            x_t = ab.sqrt() * x0 + (1 - ab).sqrt() * eps
            loss = F.mse_loss(net(x_t, t), x0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
            done += 1
            if done == warm:
                _sync(device)
                t0 = time.perf_counter()
            if done == warm + steps:
                break
    _sync(device)
    return steps * batch / (time.perf_counter() - t0)


# -- ours ------------------------------------------------------------------------------------
def ours_rate(T: int, steps: int, warm: int, batch: int, device: str, runs_dir: Path, log_every: int = 1,
              **flags) -> tuple[float, float]:
    """(steady images/s, seconds of the first ``warm`` steps) of Trainer.run() on ``warm + steps`` steps.

    ``log_every`` (a divisor of warm and steps): the steps between the trainer's loss read-backs, its only
    host syncs; 1 times every step, more lets a GPU queue work ahead as `vdm train` does (every 20)."""
    from vdm.train import TrainConfig, Trainer

    if warm % log_every or steps % log_every:
        raise ValueError(f"log_every {log_every} must divide warm {warm} and steps {steps}.")
    n = (warm + steps) * batch
    cfg = TrainConfig(limit=n, batch_size=batch, T=T, epochs=1, eval_size=0, sample_every=0, n_samples=1,
                      log_every=log_every, device=device, ckpt_every=0, **flags)
    run = Path(tempfile.mkdtemp(dir=runs_dir))
    tr = Trainer(cfg, run, echo=lambda *a: None)
    tr.draw_samples = lambda n=None: torch.zeros(0)  # the end-of-run sample grid is not training
    tr.write_samples = lambda x: run / "none.png"
    tr.run()
    recs = [json.loads(line) for line in metrics_path(run).read_text().splitlines()]
    el = {r["step"]: r["elapsed"] for r in recs if r["kind"] == "train"}
    steady = (el[warm + steps] - el[warm]) / steps
    return batch / steady, el[warm]


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    s = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    if torch.cuda.is_available():
        s += f", {torch.cuda.get_device_name()}"
    return s


MODES = {
    "ref": "reference loop (DataLoader, ToTensor, 2 workers), torch defaults",
    "ours": "vdm trainer, as `vdm train` runs it",
    "ref-env": "reference loop with vdm's OpenMP setting (attribution)",
    "compile": "vdm trainer --compile (steady state)",
    "bf16": "vdm trainer --precision bf16",
    "ours-1t": "vdm trainer --threads 1",
}


def child(args) -> None:
    """One measurement in this fresh process: prints {"rate": images/s, "warm_s": ...}."""
    from vdm.data import shapes

    mode = args.child
    if mode.startswith("ref"):
        images = shapes(max(args.steps + args.warm, 4) * args.batch, "train")[0]
        rate, warm = reference_rate(images, args.T, args.steps, args.warm, args.batch, torch.device(args.device)), 0.0
    else:
        flags = {"compile": {"compile": True}, "bf16": {"precision": "bf16"}, "ours-1t": {"threads": 1}}.get(mode, {})
        rate, warm = ours_rate(args.T, args.steps, args.warm, args.batch, args.device,
                               Path(tempfile.mkdtemp(prefix="vdm-bench-")), **flags)
    print(json.dumps({"rate": rate, "warm_s": warm, "threads": torch.get_num_threads()}))


def measure(mode: str, args) -> dict:
    env = dict(os.environ)
    if mode != "ref":  # what vdm_cli.main.cpu_env() does before torch loads; the plain reference keeps torch's default
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    cmd = [sys.executable, __file__, "--child", mode, "--steps", str(args.steps), "--warm", str(args.warm),
           "--batch", str(args.batch), "--T", str(args.T), "--device", args.device]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"bench_train {mode} failed:\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def cpu_bench(args) -> list[tuple]:
    """Rounds of fresh processes, alternating the modes; medians and per-round ratios."""
    modes = ["ref", "ours", "ref-env"] + [m for m in ("compile", "bf16", "ours-1t") if getattr(args, m.replace("-", "_"))]
    res = {m: [] for m in modes}
    for r in range(args.rounds):
        for m in modes:
            res[m].append(measure(m, args))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{m} {res[m][-1]['rate']:.1f}" for m in modes) + " img/s",
              file=sys.stderr, flush=True)
    rates = {m: [x["rate"] for x in v] for m, v in res.items()}
    rows = []
    for m in modes:
        # the ratio of each round against the reference of the same round (adjacent in time), then the median
        ratio = statistics.median(a / b for a, b in zip(rates[m], rates["ref"]))
        rows.append((f"train: {MODES[m]}", statistics.median(rates[m]), "img/s", ratio))
    if "compile" in res:
        rows.append(("train: --compile warm-up (compiling + first steps)", statistics.median(x["warm_s"] for x in res["compile"]), "s", None))
    return rows


# -- the GPU measurement ---------------------------------------------------------
def random_cifar10(split: str = "train") -> torch.Tensor:
    """Random uint8 images of CIFAR-10's size and shape: 50,000 train or 10,000 test [N, 3, 32, 32] (seeded)."""
    g = torch.Generator().manual_seed(0 if split == "train" else 1)
    return torch.randint(0, 256, (50000 if split == "train" else 10000, 3, 32, 32), dtype=torch.uint8, generator=g)


def use_random_cifar10() -> None:
    """From now on, in this process, --data cifar10 without the real set on disk reads random_cifar10
    (the real set may not be copyable to the machine). vdm.train calls vdm.data.load at run time."""
    import vdm.data as data

    real_load = data.load
    if getattr(real_load, "random_cifar10", False):
        return

    def load(name="shapes", split="train", data_dir="data", limit=None, n=0, seed=0):
        if name == "cifar10" and not Path(data_dir, "cifar-10-batches-py").exists():
            x = random_cifar10(split)
            return x[:limit] if limit else x
        return real_load(name, split, data_dir, limit, n, seed)

    load.random_cifar10 = True
    data.load = load


def cifar_run(flags: dict, epochs: int, data_dir: str, runs_dir: Path, minutes: float = 0.0, batch: int = 128,
              T: int = 500, limit: int = 0, n_samples: int = 64, eval_size: int = 256) -> dict:
    """`epochs` epochs of Trainer.run() at CIFAR-10's size (random images unless the set is in data_dir), one
    held-out evaluation and one sample grid at the end, a checkpoint per epoch; its seconds and images/s.
    ``minutes``: the trainer's own time limit (0: none), so that a slow run stops itself and says so."""
    from vdm.train import TrainConfig, Trainer

    use_random_cifar10()
    cfg = TrainConfig(data="cifar10", data_dir=data_dir, epochs=epochs, batch_size=batch, T=T, limit=limit,
                      eval_size=eval_size, eval_every=10**9, sample_every=0, n_samples=n_samples, log_every=500,
                      ckpt_every=0, minutes=minutes, **flags)
    tr = Trainer(cfg, Path(runs_dir) / ("run-" + "-".join(f"{k}{v}" for k, v in flags.items())), echo=lambda *a: None)
    t0 = time.perf_counter()
    res = tr.run()
    _sync(tr.device)
    wall = time.perf_counter() - t0
    return dict(flags=flags, steps=tr.step, epochs=tr.epoch, epochs_asked=epochs, reason=res["reason"],
                steps_per_epoch=tr.steps_per_epoch, train_s=tr.elapsed, wall_s=wall,
                images_per_s=tr.step * batch / max(tr.elapsed, 1e-9),
                memory_mb=torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None)


def gpu_bench(args) -> list[tuple]:
    """The 200-epoch assignment training at CIFAR-10's size on one GPU, and a profile of its step."""
    if not torch.cuda.is_available():
        raise SystemExit("--gpu needs a CUDA GPU.")
    rows = []
    runs = Path(tempfile.mkdtemp(prefix="vdm-gpu-"))
    variants = [{}, {"compile": True}] + ([{"compile": True, "cuda_graphs": True}, {"precision": "fp32"}] if args.all_variants else [])
    for flags in variants:
        p = subprocess.run([sys.executable, __file__, "--gpu-child", json.dumps(flags), "--epochs", str(args.epochs),
                            "--data-dir", args.data_dir, "--runs-dir", str(runs)], capture_output=True, text=True)
        if p.returncode != 0:
            print(p.stderr[-3000:], file=sys.stderr)
            rows.append((f"gpu {args.epochs} epochs {flags}", float("nan"), "failed", None))
            continue
        r = json.loads(p.stdout.strip().splitlines()[-1])
        print(json.dumps(r), file=sys.stderr, flush=True)
        rows.append((f"gpu: {args.epochs} epochs, flags {flags or 'default'}: training time", r["train_s"], "s", None))
        rows.append((f"gpu: {args.epochs} epochs, flags {flags or 'default'}", r["images_per_s"], "img/s", None))
    rows += gpu_profile()
    return rows


def gpu_profile() -> list[tuple]:
    """Where the time of a bf16 step goes, and the step against the network's FLOP roofline."""
    p = profile_step("cuda")
    print(p["table"], file=sys.stderr)
    return [("gpu: one bf16 step (batch 128)", p["step_ms"], "ms", None),
            ("gpu: achieved TFLOP/s (3 x forward FLOPs)", p["tflops"], "TFLOP/s", None)]


def profile_step(device: str = "cuda", batch: int = 128, T: int = 500, warm: int = 20, steps: int = 200,
                 profiled: int = 10, top: int = 15) -> dict:
    """One training step of the assignment's network as the trainer runs it on ``device`` (CUDA: bf16
    autocast, channels_last, fused Adam), timed over ``steps`` steps, its FLOPs and an estimate of its
    bytes, and the profiler's top kernels (top ops on a CPU) over ``profiled`` steps."""
    from torch.profiler import ProfilerActivity, profile

    from vdm.nets import AssignmentNet

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    net = AssignmentNet(T).to(dev)
    x = torch.randn(batch, 3, 32, 32, device=dev)
    if cuda:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True)
    t = torch.randint(1, T + 1, (batch,), device=dev)

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
            out = net(x, t)
        loss = F.mse_loss(out.float(), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warm):
        step()
    _sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(dev)
    per_step = (time.perf_counter() - t0) / steps
    flops = 3 * forward_flops(net) * batch  # forward + backward (two matmuls per forward one)
    act, params = activation_bytes(net, 2 if cuda else 4, batch)
    # bytes: each activation written and read once forward, read, its gradient written and read once
    # backward (5 passes); fused Adam reads weight, grad, m, v and writes weight, m, v (fp32)
    nbytes = 5 * act + 7 * 4 * params
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities) as prof:
        for _ in range(profiled):
            step()
        _sync(dev)
    events = prof.key_averages()
    kernels = []
    for e in events:
        dev_us = _first_attr(e, ("self_device_time_total", "self_cuda_time_total")) if cuda else None
        if cuda and (not dev_us or getattr(e, "device_type", None) != torch.autograd.DeviceType.CUDA):
            continue
        us = dev_us if cuda else _first_attr(e, ("self_cpu_time_total",))
        kernels.append(dict(name=e.key, calls=e.count // profiled or e.count, ms_per_step=us / profiled / 1e3))
    if cuda and not kernels:  # a profiler that marks no event as a device one: every event by its device time
        kernels = [dict(name=e.key, calls=e.count // profiled or e.count,
                        ms_per_step=_first_attr(e, ("self_device_time_total", "self_cuda_time_total")) / profiled / 1e3)
                   for e in events]
    kernels.sort(key=lambda k: -k["ms_per_step"])
    total = sum(k["ms_per_step"] for k in kernels)
    for k in kernels:
        k["share"] = k["ms_per_step"] / total if total else 0.0
    sort = next((k for k in ("self_device_time_total", "self_cuda_time_total") if hasattr(events[0], k)),
                "self_cpu_time_total") if cuda and len(events) else "self_cpu_time_total"
    return dict(device=str(dev), batch=batch, step_ms=per_step * 1e3, flops=flops, bytes=nbytes,
                activation_bytes=act, parameters=params, tflops=flops / per_step / 1e12,
                gbytes_per_s=nbytes / per_step / 1e9, kernel_ms_per_step=total, kernels=kernels[:top],
                table=events.table(sort_by=sort, row_limit=top))


def _first_attr(obj, names):
    for n in names:
        v = getattr(obj, n, None)
        if v is not None:
            return float(v)
    return 0.0


def activation_bytes(net, elem: int, batch: int) -> tuple[float, int]:
    """(bytes of every leaf module's output for a batch, at ``elem`` bytes an element; parameter count)."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        total += out.numel() * elem

    leaves = [m for m in net.modules() if not list(m.children())]
    hs = [m.register_forward_hook(hook) for m in leaves]
    dev = next(net.parameters()).device
    was = net.training
    net.eval()
    with torch.no_grad():
        net(torch.zeros(1, 3, 32, 32, device=dev), torch.ones(1, dtype=torch.long, device=dev))
    net.train(was)
    for h in hs:
        h.remove()
    return float(total * batch), sum(p.numel() for p in net.parameters())


def forward_flops(net) -> float:
    """2 x multiply-adds of one forward pass of one 32x32 image, by the convolutions' shapes."""
    total = 0

    def hook(mod, inp, out):
        nonlocal total
        w = mod.weight
        if isinstance(mod, torch.nn.ConvTranspose2d):
            total += 2 * inp[0][0].numel() * w.shape[1] * w.shape[2] * w.shape[3]
        else:
            total += 2 * out[0].numel() * w.shape[1] * w.shape[2] * w.shape[3]

    hs = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    dev = next(net.parameters()).device
    with torch.no_grad():
        net(torch.zeros(1, 3, 32, 32, device=dev), torch.ones(1, dtype=torch.long, device=dev))
    for h in hs:
        h.remove()
    return float(total)


def print_rows(rows, title: str) -> None:
    w = max(len(r[0]) for r in rows)
    print(title)
    print(f"{'measurement':<{w}}  {'median':>10}  {'unit':<8}  {'vs reference (median of rounds)':>32}")
    for name, v, unit, ratio in rows:
        rs = f"{ratio:.2f}x" if ratio is not None else ""
        print(f"{name:<{w}}  {v:>10.1f}  {unit:<8}  {rs:>32}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=8, help="timed steps per round")
    ap.add_argument("--warm", type=int, default=2, help="untimed steps per round")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--T", type=int, default=500)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--compile", action="store_true", help="also time ours with torch.compile")
    ap.add_argument("--bf16", action="store_true", help="also time ours with bf16 autocast")
    ap.add_argument("--gpu", action="store_true", help="the 200-epoch CIFAR-10-sized GPU run and profile")
    ap.add_argument("--epochs", type=int, default=200, help="epochs of the --gpu run")
    ap.add_argument("--data-dir", default="data", help="where CIFAR-10 is for --gpu (random uint8 data if not)")
    ap.add_argument("--ours-1t", action="store_true", help="also time ours with one thread")
    ap.add_argument("--all-variants", action="store_true", help="--gpu: also --cuda-graphs and fp32 (4 full runs)")
    ap.add_argument("--json", help="also write the rows here")
    ap.add_argument("--child", choices=tuple(MODES), help=argparse.SUPPRESS)
    ap.add_argument("--gpu-child", help=argparse.SUPPRESS)  # one --gpu run in this fresh process: flags as JSON
    ap.add_argument("--runs-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    if args.gpu_child:
        return print(json.dumps(cifar_run(json.loads(args.gpu_child), args.epochs, args.data_dir, Path(args.runs_dir))))
    print(f"machine: {machine()}", file=sys.stderr)
    rows = gpu_bench(args) if args.gpu else cpu_bench(args)
    print_rows(rows, f"training, assignment network, batch {args.batch}, {args.device}")
    if args.json:
        Path(args.json).write_text(json.dumps([dict(name=r[0], value=r[1], unit=r[2], ratio=r[3]) for r in rows]))


if __name__ == "__main__":
    main()
