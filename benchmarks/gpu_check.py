"""The GPU path in one command: every step in its own process, under a time limit, then one table.

    bash benchmarks/gpu_check.sh                      # on a CUDA machine (sets up Python, then this)
    bash benchmarks/gpu_check.sh --dry-run            # the same steps on the CPU at tiny sizes (CI runs it)
    bash benchmarks/gpu_check.sh --budget-s 420       # the whole within 420 s of the start; later steps skip
    bash benchmarks/gpu_check.sh --only sample panel  # some steps (names: --list)

The steps, in order (sizes of the GPU run; --dry-run: T = 10, batch 8, a handful of images, 1 thread):

  cuda-tests      the suite's CUDA tests (tests/core/test_core_cuda.py)
  train-default   images/s of `vdm train`'s trainer over a short window: the assignment's network,
                  batch 128, T = 500, random uint8 images of CIFAR-10's shape, the CUDA defaults (bf16
                  autocast, channels_last, fused Adam)      (bench_train.ours_rate)
  train-compile   the same with --compile
  train-graphs    the same with --compile --cuda-graphs
  train-200       the full 200 epochs (50,000 random images) with the fastest of the three, wall time
                  from process start to the end (compiling, one evaluation and one sample grid
                  included)                                  (bench_train.cifar_run)
  reference       the assignment-style loop (DataLoader, ToTensor, 2 workers, a .to(device) copy and
                  loss.item() per step) on the same device, and ours / it   (bench_train.reference_rate)
  profile         the torch profiler's top kernels of one bf16 step, against the step's FLOPs and
                  bytes and the device's measured matmul and copy rates  (bench_train.profile_step)
  sample          256 samples of 500 steps: seconds, and the overhead over the bare network calls
                                                             (bench_sample.timed_rounds)
  panel           the terminal UI's GPU panel (tui.gpu.GpuReader, NVML) beside `nvidia-smi
                  --query-gpu=...` while a `vdm train` run trains; dry run: a fake NVML against a
                  fake nvidia-smi (status "skipped: needs CUDA", the comparison code still runs)
  torchrun        `torchrun --nproc-per-node 1 -m vdm_cli train`: a short run that writes its run
                  directory, then resumes it; and an all-reduce and a DDP step on NCCL (gloo on a CPU)
  sample-compile  vdm.sample(compile=True) (CUDA graphs on a GPU): seconds, after its compiling call

A step that fails is recorded with its one-line reason and the next one runs; each has its own time
limit, and none starts past the overall budget (--budget-s, counted from --started-at): those are
"skipped: budget". The log (gpu_check.sh writes it), gpu_check.json (every step, rewritten after
each) and profile.txt go to $OUT when it is set (else --out, else a temporary folder).
Goals (the GPU run is read against them): train-200 under 120 s; reference: ours at least 5x the
assignment loop; sample: 256 x 500 steps under 10 s; panel: equal to nvidia-smi's readings.
On --dry-run the goals are not judged: "met" shows in parentheses what the CPU numbers would give.
"""

from __future__ import annotations

import time

PROCESS_T0 = time.time()  # a child's "end to end" starts here, before torch loads

import argparse  # noqa: E402
import collections  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import traceback  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

from vdm.run import is_run, metrics_path  # noqa: E402 (torch-free: the run layout's names, once)

NEEDS_CUDA = "skipped: needs CUDA"
BUDGET = "skipped: budget"


@dataclass(frozen=True)
class Step:
    name: str
    title: str
    limit_s: float  # on a GPU
    dry_limit_s: float
    goal: str = ""


STEPS = [
    Step("cuda-tests", "the suite's CUDA tests", 120, 40),
    Step("train-default", "train window: bf16, channels_last, fused Adam", 90, 30),
    Step("train-compile", "train window: + --compile", 200, 40),
    Step("train-graphs", "train window: + --compile --cuda-graphs", 200, 40),
    Step("train-200", "200 epochs at CIFAR-10's size, the fastest flags", 300, 40, "< 120 s"),
    Step("reference", "the assignment-style loop, and ours / it", 90, 30, ">= 5x"),
    Step("profile", "profiler: top kernels, FLOPs and bytes of a step", 90, 30),
    Step("sample", "256 samples of 500 steps", 90, 30, "< 10 s"),
    Step("panel", "GPU panel (NVML) beside nvidia-smi while training", 90, 40, "= nvidia-smi"),
    Step("torchrun", "torchrun --nproc-per-node 1: run, resume; NCCL", 180, 60),
    Step("sample-compile", "vdm.sample(compile=True)", 150, 30),
]
BY_NAME = {s.name: s for s in STEPS}
TRAIN_WINDOWS = {"train-default": {}, "train-compile": {"compile": True},
                 "train-graphs": {"compile": True, "cuda_graphs": True}}
COMPILING = ("train-compile", "train-graphs", "train-200", "sample-compile")
MIN_START_S = {False: 20.0, True: 3.0}  # no step starts with less of the budget left (GPU, dry run)

# sizes: the GPU run's, and the dry run's on the CPU
SIZES = {
    False: dict(device="cuda", T=500, batch=128, warm=60, steps=320, log_every=20, epochs=200, limit=0,
                eval_size=256, n_samples=64, ref_warm=10, ref_steps=100, prof_warm=20, prof_steps=200,
                prof_profiled=10, sample_n=256, sample_T=500, sample_rounds=3, panel_reads=5, panel_gap=1.0,
                tr_limit=2560, tr_T=100, tr_eval=128, tr_samples=16, mm=8192, copy_bytes=2**30),
    True: dict(device="cpu", T=10, batch=8, warm=2, steps=4, log_every=2, epochs=2, limit=16,
               eval_size=8, n_samples=2, ref_warm=1, ref_steps=2, prof_warm=1, prof_steps=2,
               prof_profiled=1, sample_n=4, sample_T=10, sample_rounds=1, panel_reads=2, panel_gap=0.2,
               tr_limit=16, tr_T=10, tr_eval=8, tr_samples=2, mm=256, copy_bytes=2**23),
}
SMI_FIELDS = ("index", "name", "utilization.gpu", "memory.used", "memory.total", "temperature.gpu", "power.draw")


# =====================================================================================================
# the steps (each runs in a fresh child process: `gpu_check.py --child NAME`)
# =====================================================================================================
class Ctx:
    """What a child knows: the sizes, its time limit, a scratch folder, the results of earlier steps."""

    def __init__(self, args):
        self.dry = args.dry_run
        self.z = SIZES[self.dry]
        self.timeout = args.timeout
        self.work = Path(args.work)
        self.out = Path(args.out)
        self.data_dir = str(self.work / "data")  # CIFAR-10 is not there: random images of its size
        self.earlier = {r["name"]: r for r in json.loads(Path(args.ctx).read_text())["steps"]} if args.ctx else {}

    def runs(self, name: str) -> Path:
        p = self.work / "runs" / name
        p.mkdir(parents=True, exist_ok=True)
        return p

    def flags(self, **flags) -> dict:
        if self.dry:
            # other jobs share the CPU; and the CUDA defaults (bf16 autocast, channels_last) are asked
            # for explicitly, so that the CPU runs their code path too
            flags.update(threads=1, precision="bf16", channels_last="on")
        return flags


def step_cuda_tests(c: Ctx) -> dict:
    import torch

    p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
                        "tests/core/test_core_cuda.py"], cwd=ROOT, capture_output=True, text=True,
                       timeout=max(c.timeout - 10, 5))
    print(p.stdout[-4000:] + p.stderr[-2000:])
    counts = {k: int(v) for v, k in re.findall(r"(\d+) (passed|failed|skipped|errors?)", p.stdout)}
    summary = ", ".join(f"{v} {k}" for k, v in counts.items()) or "no summary"
    res = dict(value=summary, detail=dict(counts=counts, returncode=p.returncode))
    if p.returncode != 0:
        return dict(res, status="failed", reason=f"pytest exited {p.returncode}: {summary}")
    if torch.cuda.is_available() and counts.get("skipped"):
        return dict(res, status="failed", reason=f"CUDA tests skipped on a CUDA machine: {summary}")
    if not torch.cuda.is_available():
        res["value"] = f"{summary} (no CUDA)"
    return res


def _train_window(c: Ctx, flags: dict) -> dict:
    import bench_train

    z = c.z
    bench_train.use_random_cifar10()
    rate, warm_s = bench_train.ours_rate(z["T"], z["steps"], z["warm"], z["batch"], z["device"], c.runs("window"),
                                         log_every=z["log_every"], data="cifar10", data_dir=c.data_dir,
                                         **c.flags(**flags))
    comp = compile_counters()
    note = f"; compiling + first {z['warm']} steps {warm_s:.0f} s" if flags.get("compile") else ""
    if comp.get("cudagraph_skips"):
        note += f"; CUDA graphs skipped {comp['cudagraph_skips']} time(s)"
    return dict(value=f"{rate:,.0f} img/s{note}", number=rate, unit="img/s",
                detail=dict(flags=flags, images_per_s=rate, warm_s=warm_s, warm_steps=z["warm"], steps=z["steps"],
                            batch=z["batch"], T=z["T"], log_every=z["log_every"], compile_counters=comp))


def compile_counters() -> dict:
    """TorchDynamo's graph breaks and inductor's CUDA-graph skips in this process (the log says why)."""
    try:
        from torch._dynamo.utils import counters
    except ImportError:
        return {}
    return dict(graph_breaks=sum(counters["graph_break"].values()), unique_graphs=counters["stats"].get("unique_graphs", 0),
                cudagraph_skips=counters["inductor"].get("cudagraph_skips", 0))


def step_train_default(c: Ctx) -> dict:
    return _train_window(c, TRAIN_WINDOWS["train-default"])


def step_train_compile(c: Ctx) -> dict:
    return _train_window(c, TRAIN_WINDOWS["train-compile"])


def step_train_graphs(c: Ctx) -> dict:
    return _train_window(c, TRAIN_WINDOWS["train-graphs"])


def _fastest(c: Ctx) -> tuple[str | None, dict, float | None]:
    ok = [(r["number"], name) for name, r in c.earlier.items()
          if name in TRAIN_WINDOWS and r.get("status") == "ok" and r.get("number")]
    if not ok:
        return None, {}, None
    rate, name = max(ok)
    return name, TRAIN_WINDOWS[name], rate


def step_train_200(c: Ctx) -> dict:
    import bench_train

    z = c.z
    name, flags, _ = _fastest(c)
    # the trainer's own time limit, so that a slow run stops, saves and says how far it got
    minutes = max(c.timeout - 40 - (time.time() - PROCESS_T0), 10) / 60
    r = bench_train.cifar_run(c.flags(**flags), z["epochs"], c.data_dir, c.runs("train-200"), minutes=minutes,
                              batch=z["batch"], T=z["T"], limit=z["limit"], n_samples=z["n_samples"],
                              eval_size=z["eval_size"])
    wall = time.time() - PROCESS_T0
    per_epoch = r["train_s"] / max(r["steps"] / r["steps_per_epoch"], 1e-9)
    detail = dict(r, chosen=name or "train-default (no window ran)", end_to_end_s=wall,
                  extrapolated_train_s=per_epoch * r["epochs_asked"], compile_counters=compile_counters())
    flags_s = " ".join(f"--{k.replace('_', '-')}" for k, v in flags.items() if v is True) or "defaults"
    res = dict(value=f"{wall:.1f} s end to end ({r['train_s']:.1f} s training, {r['images_per_s']:,.0f} img/s; {flags_s})",
               number=wall, unit="s", met=r["reason"] == "done" and wall < 120, detail=detail)
    if r["reason"] != "done":
        res.update(status="failed", reason=f"stopped ({r['reason']}) after {r['steps']} steps of "
                   f"{r['steps_per_epoch'] * r['epochs_asked']} in {r['train_s']:.0f} s; all "
                   f"{r['epochs_asked']} epochs at this rate: {detail['extrapolated_train_s']:.0f} s")
    return res


def step_reference(c: Ctx) -> dict:
    import torch

    import bench_train

    z = c.z
    n = (z["ref_warm"] + z["ref_steps"]) * z["batch"]
    images = bench_train.random_cifar10()[:n]
    rate = bench_train.reference_rate(images, z["T"], z["ref_steps"], z["ref_warm"], z["batch"], torch.device(z["device"]))
    name, _, ours = _fastest(c)
    detail = dict(reference_images_per_s=rate, ours=name, ours_images_per_s=ours, warm=z["ref_warm"], steps=z["ref_steps"])
    if ours is None:
        return dict(value=f"{rate:,.0f} img/s; no train window to compare", number=None, detail=detail)
    ratio = ours / rate
    detail["ratio"] = ratio
    return dict(value=f"{ratio:.1f}x ({ours:,.0f} vs {rate:,.0f} img/s, {name})", number=ratio, unit="x",
                met=ratio >= 5, detail=detail)


def ceilings(device, mm: int, copy_bytes: int) -> dict:
    """The device's measured matmul rate (bf16 on CUDA, fp32 on a CPU) and copy bandwidth (read + write)."""
    import torch

    import bench_train

    dev = torch.device(device)
    dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
    a = torch.randn(mm, mm, device=dev, dtype=dt)
    b = torch.randn(mm, mm, device=dev, dtype=dt)

    def timed(fn, reps):
        for _ in range(3):
            fn()
        bench_train._sync(dev)
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        bench_train._sync(dev)
        return (time.perf_counter() - t0) / reps

    mm_s = timed(lambda: a @ b, 10)
    x = torch.empty(copy_bytes, dtype=torch.uint8, device=dev)
    y = torch.empty_like(x)
    cp_s = timed(lambda: y.copy_(x), 10)
    return dict(matmul_tflops=2 * mm**3 / mm_s / 1e12, matmul_dtype=str(dt).replace("torch.", ""),
                copy_gbytes_per_s=2 * copy_bytes / cp_s / 1e9)


def step_profile(c: Ctx) -> dict:
    import bench_train

    z = c.z
    p = bench_train.profile_step(z["device"], z["batch"], z["T"], z["prof_warm"], z["prof_steps"], z["prof_profiled"], top=12)
    table = p.pop("table")
    print(table)
    (c.out / "profile.txt").write_text(table)
    ceil = ceilings(z["device"], z["mm"], z["copy_bytes"])
    t_flops = p["flops"] / (ceil["matmul_tflops"] * 1e12)
    t_bytes = p["bytes"] / (ceil["copy_gbytes_per_s"] * 1e9)
    step_s = p["step_ms"] / 1e3
    p.update(ceilings=ceil, flops_bound_ms=t_flops * 1e3, bytes_bound_ms=t_bytes * 1e3,
             roofline_fraction=max(t_flops, t_bytes) / step_s, busy_fraction=p["kernel_ms_per_step"] / p["step_ms"])
    top = p["kernels"][0]["name"][:40] if p["kernels"] else "-"
    return dict(value=f"{p['step_ms']:.2f} ms/step: {p['flops'] / 1e9:.0f} GFLOP ({p['tflops']:.1f} TFLOP/s), "
                      f"~{p['bytes'] / 1e9:.2f} GB ({p['gbytes_per_s']:.0f} GB/s); roofline {p['roofline_fraction']:.0%}, "
                      f"kernels busy {p['busy_fraction']:.0%}; top: {top}",
                number=p["step_ms"], unit="ms", detail=p)


def step_sample(c: Ctx) -> dict:
    import torch

    import bench_sample

    z = c.z
    t = bench_sample.timed_rounds(z["sample_T"], z["sample_n"], torch.device(z["device"]), z["sample_rounds"], diffusers=False)
    ours = statistics.median(t["ours"])
    bare = statistics.median(t["bare"])
    overhead = statistics.median(o / b - 1 for o, b in zip(t["ours"], t["bare"]))
    return dict(value=f"{ours:.2f} s for {z['sample_n']} x {z['sample_T']} steps; bare network {bare:.2f} s, "
                      f"overhead {100 * overhead:+.1f} %",
                number=ours, unit="s", met=ours < 10,
                detail=dict(times=t, seconds=ours, bare_s=bare, overhead=overhead, n=z["sample_n"], T=z["sample_T"]))


def step_sample_compile(c: Ctx) -> dict:
    import torch

    import bench_sample

    z = c.z
    t0 = time.perf_counter()
    t = bench_sample.timed_rounds(z["sample_T"], z["sample_n"], torch.device(z["device"]), z["sample_rounds"],
                                  compile=True, diffusers=False, plain=False)
    s = statistics.median(t["compiled"])
    return dict(value=f"{s:.2f} s for {z['sample_n']} x {z['sample_T']} steps (after compiling; "
                      f"{time.perf_counter() - t0:.0f} s in all)",
                number=s, unit="s", detail=dict(times=t, seconds=s, compile_counters=compile_counters()))


# -- the panel ----------------------------------------------------------------------------------------
def parse_smi(text: str) -> list[dict]:
    """`nvidia-smi --query-gpu=<SMI_FIELDS> --format=csv,noheader,nounits` as readings in the panel's units
    (MiB, per cent, degrees C, W); "[N/A]" and the like are None."""
    out = []
    for line in text.strip().splitlines():
        cells = [x.strip() for x in line.split(",")]
        if len(cells) != len(SMI_FIELDS):
            raise ValueError(f"unexpected nvidia-smi line {line!r}")

        def num(s):
            try:
                return float(s)
            except ValueError:
                return None

        out.append(dict(index=int(cells[0]), name=cells[1], util=num(cells[2]), mem_used=num(cells[3]),
                        mem_total=num(cells[4]), temp=num(cells[5]), power=num(cells[6])))
    return out


def parse_smi_apps(text: str) -> dict:
    apps = {}
    for line in text.strip().splitlines():
        cells = [x.strip() for x in line.split(",")]
        if len(cells) >= 2 and cells[0].isdigit():
            try:
                apps[int(cells[0])] = float(cells[1])
            except ValueError:
                apps[int(cells[0])] = None
    return apps


def panel_reading(g) -> dict:
    """A tui.gpu.GpuReading in nvidia-smi's units."""
    mib = 2**20
    return dict(index=g.index, name=g.name, util=g.util, mem_used=None if g.mem_used is None else g.mem_used / mib,
                mem_total=None if g.mem_total is None else g.mem_total / mib, temp=g.temp, power=g.power,
                apps={pid: (None if used is None else used / mib) for pid, used in (g.processes or [])})


TOLERANCE = dict(util=5.0, mem_used=2.0, mem_total=1.0, temp=1.0, power=0.05)  # power: relative


def compare(before: dict, panel: dict, after: dict) -> list[str]:
    """The fields where the panel's reading lies outside nvidia-smi's readings just before and after it
    (by more than TOLERANCE: per-cent points, MiB, degrees, or a fraction of the watts)."""
    bad = []
    if panel["name"] != before["name"]:
        bad.append(f"name {panel['name']!r} vs {before['name']!r}")
    for k, tol in TOLERANCE.items():
        a, p, b = before[k], panel[k], after[k]
        if p is None and a is None:
            continue
        if p is None or a is None or b is None:
            bad.append(f"{k} {p} vs {a}..{b}")
            continue
        lo, hi = min(a, b), max(a, b)
        slack = tol * hi if k == "power" else tol
        if not lo - slack <= p <= hi + slack:
            bad.append(f"{k} {p:.1f} vs {a:.1f}..{b:.1f}")
    return bad


class FakeNvml:
    """A stand-in for pynvml on a machine without a GPU: one 'GPU' whose numbers drift with each read,
    and fake_smi() prints them as nvidia-smi does (MiB rounded, W to 2 decimals)."""

    class NVMLError(Exception):
        pass

    NVML_TEMPERATURE_GPU = 0

    def __init__(self):
        self.n = 0
        self.pid = os.getpid()

    def _state(self):
        return dict(util=40 + self.n % 7, used=(4096 + self.n) * 2**20, total=143771 * 2**20, temp=41,
                    power_mw=250_000 + 1000 * (self.n % 3))

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return b"Fake GPU (dry run)"

    def nvmlDeviceGetUtilizationRates(self, h):
        self.n += 1
        return type("U", (), {"gpu": self._state()["util"], "memory": 0})()

    def nvmlDeviceGetMemoryInfo(self, h):
        s = self._state()
        return type("M", (), {"used": s["used"], "total": s["total"], "free": s["total"] - s["used"]})()

    def nvmlDeviceGetTemperature(self, h, sensor):
        return self._state()["temp"]

    def nvmlDeviceGetPowerUsage(self, h):
        return self._state()["power_mw"]

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [type("P", (), {"pid": self.pid, "usedGpuMemory": 1024 * 2**20})()]

    def smi(self, args: list[str]) -> str:
        s = self._state()
        if any(a.startswith("--query-compute-apps") for a in args):
            return f"{self.pid}, 1024\n"
        return (f"0, Fake GPU (dry run), {s['util']}, {s['used'] // 2**20}, {s['total'] // 2**20}, {s['temp']}, "
                f"{s['power_mw'] / 1000:.2f}\n")


def real_smi(args: list[str]) -> str:
    return subprocess.run(["nvidia-smi"] + args, capture_output=True, text=True, check=True, timeout=20).stdout


def _has_train_record(metrics: Path) -> bool:
    try:
        lines = metrics.read_text().splitlines()
    except OSError:
        return False
    for line in lines:
        try:
            if json.loads(line).get("kind") == "train":
                return True
        except ValueError:
            continue
    return False


def step_panel(c: Ctx) -> dict:
    import torch

    from tui.gpu import GpuReader

    z = c.z
    fake = None if torch.cuda.is_available() else FakeNvml()
    if fake is None and shutil.which("nvidia-smi") is None:
        return dict(status="failed", reason="nvidia-smi is not on PATH")
    smi = fake.smi if fake else real_smi
    reader = GpuReader(nvml=fake) if fake else GpuReader()
    if not reader.available:
        return dict(status="failed", reason=f"the panel reads nothing: {reader.reason}")
    runs = c.runs("panel")
    cmd = [sys.executable, "-m", "vdm_cli", "train", "--runs-dir", str(runs), "--name", "panel", "--data", "shapes",
           "--epochs", "100", "--minutes", f"{max(c.timeout - 30, 10) / 60:.2f}", "--eval-size", "0",
           "--sample-every", "0", "--n-samples", "1", "--T", str(z["tr_T"]), "--device", z["device"],
           "--log-every", str(z["log_every"]), "--batch-size", str(z["batch"]), "--quiet", "--no-tui"]
    if c.dry:
        cmd += ["--limit", "64", "--threads", "1"]
    trainer = subprocess.Popen(cmd, cwd=ROOT)
    if fake:
        fake.pid = trainer.pid  # the fake GPU runs the trainer, as the real one would
    metrics = metrics_path(runs / "panel")
    try:
        t0 = time.time()
        while not _has_train_record(metrics):
            if trainer.poll() is not None:
                return dict(status="failed", reason=f"the training run exited ({trainer.returncode}) before its first record")
            if time.time() - t0 > c.timeout / 2:
                return dict(status="failed", reason="the training run wrote no train record in time")
            time.sleep(0.2)
        query = [f"--query-gpu={','.join(SMI_FIELDS)}", "--format=csv,noheader,nounits"]
        apps_q = ["--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
        reads, bad = [], []
        for i in range(z["panel_reads"]):
            before = parse_smi(smi(query))[0]
            g = reader.read()
            after = parse_smi(smi(query))[0]
            apps = parse_smi_apps(smi(apps_q))
            if not g:
                bad.append(f"read {i}: the panel read nothing ({reader.reason})")
                break
            p = panel_reading(g[0])
            diff = compare(before, p, after)
            if set(p["apps"]) != set(apps):
                diff.append(f"processes {sorted(p['apps'])} vs {sorted(apps)}")
            else:
                diff += [f"pid {pid} memory {p['apps'][pid]} vs {apps[pid]} MiB" for pid in apps
                         if p["apps"][pid] is not None and apps[pid] is not None and abs(p["apps"][pid] - apps[pid]) > 2]
            bad += [f"read {i}: {d}" for d in diff]
            reads.append(dict(smi_before=before, panel=p, smi_after=after, smi_apps=apps))
            time.sleep(z["panel_gap"])
        trainer_seen = any(trainer.pid in r["panel"]["apps"] for r in reads)
    finally:
        if trainer.poll() is None:
            trainer.send_signal(signal.SIGTERM)  # the trainer saves and leaves
            try:
                trainer.wait(timeout=30)
            except subprocess.TimeoutExpired:
                trainer.kill()
                trainer.wait()
        reader.close()
    last = reads[-1] if reads else None
    detail = dict(reads=reads, differences=bad, tolerance=TOLERANCE, trainer_pid=trainer.pid,
                  trainer_pid_seen=trainer_seen, fake=bool(fake))
    if last:
        p = last["panel"]

        def f(v):
            return "-" if v is None else f"{v:.0f}"

        summary = (f"util {f(p['util'])}%, mem {f(p['mem_used'])}/{f(p['mem_total'])} MiB, {f(p['temp'])} C, "
                   f"{f(p['power'])} W; trainer pid {'seen' if trainer_seen else 'not seen'} by NVML")
    else:
        summary = "no reading"
    value = ("equal" if not bad else f"{len(bad)} differ: {bad[0]}") + f" ({len(reads)} reads; {summary})"
    res = dict(value=value, number=len(bad), met=not bad and bool(reads), detail=detail)
    if fake:
        # nothing of NVML or nvidia-smi exists here: the comparison code ran on a fake of both
        res.update(status=NEEDS_CUDA if not bad else "failed",
                   reason=("no nvidia-smi on a CPU; a fake NVML and nvidia-smi compared: " + value)[:160])
    return res


# -- torchrun -------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "1", "--master-addr", "127.0.0.1",
           "--master-port", str(_free_port())] + args
    print("$ " + " ".join(cmd[1:]), flush=True)
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    print(p.stdout[-3000:] + p.stderr[-3000:], flush=True)
    if p.returncode != 0:
        err = [ln for ln in (p.stderr + p.stdout).splitlines() if ln.strip()]
        raise RuntimeError(f"torchrun {' '.join(args[:3])} exited {p.returncode}: {_reason_line(err)}")
    return p


def dist_smoke(device: str) -> dict:
    """Under torchrun: join the group (NCCL on CUDA, gloo on a CPU), an all-reduce, and one DDP step of the
    assignment's network (SyncBatchNorm on CUDA)."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from vdm.nets import AssignmentNet

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    if cuda:
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(dev)
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend, device_id=dev if cuda else None)
    try:
        x = torch.full((4,), float(dist.get_rank() + 1), device=dev)
        dist.all_reduce(x)
        net = AssignmentNet(10).to(dev)
        if cuda:
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        ddp = DDP(net, device_ids=[dev.index] if cuda else None)
        img = torch.randn(4, 3, 32, 32, device=dev)
        loss = (ddp(img, torch.ones(4, dtype=torch.long, device=dev)) - img).pow(2).mean()
        loss.backward()
        grads_ok = all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in net.parameters())
        if cuda:
            torch.cuda.synchronize()
        return dict(backend=dist.get_backend(), world=dist.get_world_size(), all_reduce=float(x[0]),
                    expected=float(dist.get_world_size() * (dist.get_world_size() + 1) / 2), ddp_grads_finite=grads_ok)
    finally:
        dist.destroy_process_group()


def step_torchrun(c: Ctx) -> dict:
    import torch

    from vdm import checkpoint as ckpt

    z = c.z
    runs = c.runs("torchrun")
    deadline = time.time() + c.timeout - 10
    common = ["--limit", str(z["tr_limit"]), "--batch-size", str(z["batch"]), "--T", str(z["tr_T"]),
              "--eval-size", str(z["tr_eval"]), "--n-samples", str(z["tr_samples"]), "--sample-every", "0",
              "--device", z["device"], "--quiet", "--no-tui"] + (["--threads", "1"] if c.dry else [])
    _torchrun(["-m", "vdm_cli", "train", "--runs-dir", str(runs), "--name", "tr", "--data", "shapes", "--epochs", "1"]
              + common, deadline - time.time())
    run = runs / "tr"
    first = ckpt.load(run).step
    _torchrun(["-m", "vdm_cli", "train", "--resume", str(run), "--epochs", "2"] + common, deadline - time.time())
    recs = [json.loads(line) for line in metrics_path(run).read_text().splitlines() if line.strip()]
    starts = [r for r in recs if r["kind"] == "start"]
    ends = [r for r in recs if r["kind"] == "end"]
    spe = starts[0]["steps_per_epoch"]
    last = ckpt.load(run).step
    problems = []
    if not is_run(run):
        problems.append("no config.json")
    if [s["step"] for s in starts] != [0, spe]:
        problems.append(f"start records at steps {[s['step'] for s in starts]}, expected [0, {spe}]")
    if [e["reason"] for e in ends] != ["done", "done"]:
        problems.append(f"end records {[e['reason'] for e in ends]}")
    if first != spe or last != 2 * spe:
        problems.append(f"checkpoints at step {first} then {last}, expected {spe} then {2 * spe}")
    train_steps = sorted(r["step"] for r in recs if r["kind"] == "train")
    if train_steps != sorted(set(train_steps)) or train_steps[-1] != 2 * spe:
        problems.append(f"train records at steps {train_steps}")
    p = _torchrun([str(Path(__file__).resolve()), "--dist-smoke", z["device"]], deadline - time.time())
    smoke = json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("{")][-1])
    if smoke["all_reduce"] != smoke["expected"] or not smoke["ddp_grads_finite"]:
        problems.append(f"{smoke['backend']} smoke: {smoke}")
    want = "nccl" if torch.cuda.is_available() else "gloo"
    if smoke["backend"] != want:
        problems.append(f"backend {smoke['backend']}, expected {want}")
    detail = dict(steps_per_epoch=spe, first_checkpoint=first, last_checkpoint=last, smoke=smoke,
                  note="one rank: vdm runs as a single process (it joins a process group only for 2 or more ranks); "
                       "the smoke step exercises the backend itself")
    value = f"run {first} steps, resumed to {last}; {smoke['backend']} all-reduce + DDP step"
    if problems:
        return dict(status="failed", reason="; ".join(problems)[:160], value=value, detail=detail)
    return dict(value=value, detail=detail)


CHILDREN = {
    "cuda-tests": step_cuda_tests, "train-default": step_train_default, "train-compile": step_train_compile,
    "train-graphs": step_train_graphs, "train-200": step_train_200, "reference": step_reference,
    "profile": step_profile, "sample": step_sample, "panel": step_panel, "torchrun": step_torchrun,
    "sample-compile": step_sample_compile,
}
assert list(CHILDREN) == [s.name for s in STEPS]


def eager_compile_for_dry_run() -> None:
    """--dry-run: torch.compile traces with TorchDynamo and runs the graphs eagerly (backend "eager");
    inductor's code generation would take minutes on a small CPU. The mode (CUDA graphs) is dropped."""
    import torch

    real = torch.compile

    def compile(model=None, *, mode=None, backend=None, **kw):
        kw = {k: v for k, v in kw.items() if k in ("fullgraph", "dynamic")}
        return real(model, backend="eager", **kw) if model is not None else (lambda m: real(m, backend="eager", **kw))

    torch.compile = compile


def run_child(args) -> int:
    result = Path(args.result)
    try:
        if args.dry_run:
            import torch

            torch.set_num_threads(1)
            eager_compile_for_dry_run()
        res = CHILDREN[args.child](Ctx(args))
        code = 0
    except BaseException as e:  # the step failed: its one line goes into the table, the traceback into the log
        traceback.print_exc()
        res = dict(status="failed", reason=_reason_line([f"{type(e).__name__}: {e}"]))
        code = 1
    result.write_text(json.dumps(res, default=_jsonable))
    return code


def _jsonable(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (set, tuple)):
        return list(o)
    return str(o)


# =====================================================================================================
# the driver: one child per step, a time limit each, an overall budget, the table
# =====================================================================================================
def _reason_line(lines) -> str:
    lines = [ln.strip() for ln in lines if ln.strip()]
    for ln in reversed(lines):
        if re.match(r"^[\w.]*(Error|Exception|Interrupt|Exit)\b", ln):
            return ln[:160]
    return (lines[-1] if lines else "no output")[:160]


def _kill_group(proc: subprocess.Popen) -> None:
    """The step's child and everything it started (DataLoader workers, compile workers, torchrun ranks)."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def run_step(step: Step, args, work: Path, out: Path, results_path: Path, timeout: float) -> dict:
    res_file = work / f"{step.name}.result.json"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", step.name, "--result", str(res_file),
           "--ctx", str(results_path), "--timeout", f"{timeout:.1f}", "--work", str(work), "--out", str(out)]
    if args.dry_run:
        cmd.append("--dry-run")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the vdm command sets it
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    if args.dry_run:
        env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if step.name in COMPILING and not args.dry_run:
        env.setdefault("TORCH_LOGS", "perf_hints,graph_breaks")  # why a graph breaks or CUDA graphs are skipped
    t0 = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            errors="replace", start_new_session=True)
    tail = collections.deque(maxlen=40)

    def pump():
        for line in proc.stdout:
            tail.append(line)
            sys.stdout.write(f"  {step.name} | {line}")
            sys.stdout.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(proc)
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    # leftovers of the group (a DataLoader worker, a rank) are not waited for
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    reader.join(timeout=5)
    seconds = time.time() - t0
    res = {}
    if res_file.exists():
        try:
            res = json.loads(res_file.read_text())
        except ValueError:
            res = {}
    if timed_out:
        res = dict(res, status="failed", reason=f"time limit: stopped after {seconds:.0f} s")
    elif proc.returncode != 0 and res.get("status", "ok") == "ok":
        res = dict(res, status="failed", reason=res.get("reason") or _reason_line(tail) or f"exit {proc.returncode}")
    status = res.get("status", "ok")
    return dict(name=step.name, title=step.title, status=status, reason=res.get("reason", ""),
                value=res.get("value", ""), number=res.get("number"), unit=res.get("unit", ""), goal=step.goal,
                met=res.get("met") if step.goal else None, seconds=round(seconds, 1), limit_s=round(timeout, 1),
                detail=res.get("detail", {}))


def met_text(r: dict, dry: bool) -> str:
    if not r["goal"] or r["met"] is None or r["status"] != "ok":
        return "-"
    t = "yes" if r["met"] else "no"
    return f"({t})" if dry else t


def table(results: list[dict], dry: bool) -> str:
    head = ("step", "status", "s", "goal", "met", "result")
    rows = []
    for r in results:
        status = r["status"]
        text = r["value"] if r["status"] == "ok" else (r["reason"] or r["value"])
        rows.append((r["name"], status, f"{r['seconds']:.0f}" if r["seconds"] is not None else "-", r["goal"] or "-",
                     met_text(r, dry), text))
    w = [max(len(str(x[i])) for x in rows + [head]) for i in range(5)]
    lines = ["  ".join(f"{c:<{w[i]}}" for i, c in enumerate(head[:5])) + "  " + head[5]]
    lines.append("  ".join("-" * w[i] for i in range(5)) + "  " + "-" * 6)
    for x in rows:
        lines.append("  ".join(f"{str(c):<{w[i]}}" for i, c in enumerate(x[:5])) + "  " + str(x[5]))
    return "\n".join(lines)


def write_json(path: Path, doc: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=1, default=_jsonable))
    os.replace(tmp, path)


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "vdm", "tui", "benchmarks"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return (head or "unknown") + (" (with uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--dry-run", action="store_true", help="the same steps on the CPU at tiny sizes")
    ap.add_argument("--budget-s", type=float, default=None,
                    help="no step starts after this many seconds from --started-at (default: 450; dry run 300)")
    ap.add_argument("--started-at", type=float, default=None, help="Unix time the budget counts from (default: now)")
    ap.add_argument("--only", nargs="+", metavar="STEP", help="run only these steps")
    ap.add_argument("--skip", nargs="+", metavar="STEP", default=[], help="leave these steps out")
    ap.add_argument("--out", default=None, help="folder for gpu_check.json and profile.txt (default: $OUT, else a temporary one)")
    ap.add_argument("--list", action="store_true", help="the steps and their time limits")
    ap.add_argument("--keep-work", action="store_true", help="keep the scratch folder (run directories)")
    ap.add_argument("--setup-s", type=float, default=None, help=argparse.SUPPRESS)  # from gpu_check.sh
    ap.add_argument("--setup-note", default="", help=argparse.SUPPRESS)
    ap.add_argument("--setup-status", default="ok", help=argparse.SUPPRESS)
    # a child: one step in this process
    ap.add_argument("--child", choices=list(CHILDREN), help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    ap.add_argument("--ctx", help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=60.0, help=argparse.SUPPRESS)
    ap.add_argument("--work", help=argparse.SUPPRESS)
    ap.add_argument("--dist-smoke", metavar="DEVICE", help=argparse.SUPPRESS)  # under torchrun
    args = ap.parse_args(argv)
    if args.dist_smoke:
        print(json.dumps(dist_smoke(args.dist_smoke)), flush=True)
        return 0
    if args.child:
        return run_child(args)
    if args.list:
        for s in STEPS:
            print(f"{s.name:<15} limit {s.limit_s:>4.0f} s (dry run {s.dry_limit_s:.0f} s)  {s.title}")
        return 0
    unknown = [n for n in (args.only or []) + args.skip if n not in BY_NAME]
    if unknown:
        print(f"gpu_check: no step named {', '.join(unknown)}; the steps: {', '.join(BY_NAME)}.", file=sys.stderr)
        return 2

    dry = args.dry_run
    started = args.started_at or PROCESS_T0
    budget = args.budget_s if args.budget_s is not None else (300.0 if dry else 450.0)
    out = Path(args.out or os.environ.get("OUT") or tempfile.mkdtemp(prefix="vdm-gpu-check-out-"))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vdm-gpu-check-"))
    results_path = out / "gpu_check.json"
    doc = dict(dry_run=dry, date=f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC", commit=commit(),
               host=platform.node(), python=sys.executable, budget_s=budget,
               setup=dict(status=args.setup_status, seconds=args.setup_s, note=args.setup_note), steps=[])
    write_json(results_path, doc)
    print(f"gpu_check: {'DRY RUN on the CPU, tiny sizes' if dry else 'GPU run'}; budget {budget:.0f} s from the start "
          f"({time.time() - started:.0f} s spent on setup); results in {out}", flush=True)
    def not_run(step, status, reason=""):
        return dict(name=step.name, title=step.title, status=status, reason=reason, value="", number=None, unit="",
                    goal=step.goal, met=None, seconds=None, limit_s=None, detail={})

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    interrupted = False
    for step in STEPS:
        limit = step.dry_limit_s if dry else step.limit_s
        left = budget - (time.time() - started)
        if interrupted:
            r = not_run(step, "skipped: interrupted")
        elif (args.only and step.name not in args.only) or step.name in args.skip:
            r = not_run(step, "skipped: not asked")
        elif left < MIN_START_S[dry]:
            r = not_run(step, BUDGET, f"{max(left, 0):.0f} s of the budget left")
        else:
            print(f"\n== {step.name}: {step.title} (limit {min(limit, left):.0f} s) ==", flush=True)
            t0 = time.time()
            try:
                r = run_step(step, args, work, out, results_path, min(limit, left))
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the step's processes are gone; the table still comes
                interrupted = True
                r = dict(not_run(step, "failed", "interrupted"), seconds=round(time.time() - t0, 1))
            print(f"== {step.name}: {r['status']} in {r['seconds']:.0f} s: "
                  f"{r['value'] if r['status'] == 'ok' else r['reason']}", flush=True)
        doc["steps"].append(r)
        doc["total_s"] = round(time.time() - started, 1)
        write_json(results_path, doc)
    doc["total_s"] = round(time.time() - started, 1)
    write_json(results_path, doc)
    if not args.keep_work:
        shutil.rmtree(work, ignore_errors=True)
    setup = f"setup: {args.setup_status}" + (f", {args.setup_s:.0f} s" if args.setup_s is not None else "") + \
        (f" ({args.setup_note})" if args.setup_note else "")
    print()
    print(f"gpu_check {'DRY RUN (CPU, tiny sizes: no figure here is a GPU figure; goals not judged)' if dry else 'on the GPU'}"
          f", {doc['date']}, commit {doc['commit']}, {doc['host']}")
    print(setup)
    print(table(doc["steps"], dry))
    print(f"total {doc['total_s']:.0f} s of a {budget:.0f} s budget; {results_path}")
    failed = [r["name"] for r in doc["steps"] if r["status"].startswith("failed")]
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 130 if interrupted else 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
