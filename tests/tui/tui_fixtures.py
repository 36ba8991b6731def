"""Helpers of the terminal UI tests: a fixed run directory and a fake NVML (imported by the tests)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np


def record(kind: str, t: float, **fields) -> str:
    return json.dumps({"v": 1, "kind": kind, "time": t, **fields}) + "\n"


def write_run(run: Path, n_train: int = 40, with_sample: bool = True) -> Path:
    """A small finished-looking run: config.json, metrics.jsonl with train/eval/sample records, a sample grid."""
    from vdm.data import shapes
    from vdm.images import grid, save_png

    run.mkdir(parents=True, exist_ok=True)
    cfg = {"T": 20, "epochs": 4, "model": "assignment", "prediction": "x0", "data": "shapes", "minutes": 0,
           "schedule_config": {"kind": "constant", "T": 20, "params": [0.01 ** (2 / 20)]}}
    (run / "config.json").write_text(json.dumps(cfg))
    lines = [record("start", 1000.0, step=0, epoch=0, device="cpu", config=cfg, parameters=1, steps_per_epoch=20,
                    total_steps=80, pid=1)]
    for i in range(1, n_train + 1):
        lines.append(record("train", 1000.0 + i, step=i * 2, epoch=i * 2 / 20, loss=0.5 * np.exp(-i / 10) + 0.1,
                            lr=1e-3, grad_norm=0.2, images_per_s=400.0 + i, elapsed=float(i), device="cpu", memory_mb=10.0))
        if (i * 2) % 20 == 0:
            s = i * 2
            lines.append(record("eval", 1000.0 + i, step=s, epoch=s // 20, eval_loss=0.45 * np.exp(-i / 12) + 0.1,
                                bpd={"reconstruction": 6 - i / 20, "prior": 1e-5, "matching": 3 - i / 30,
                                     "total": 9 - i / 20 - i / 30}, bpd_mc_se=0.3 - i / 200, seconds=0.5))
            lines.append(record("sample", 1000.0 + i, step=s, epoch=s // 20, path="samples/latest.png", seconds=0.5,
                                n=64))
    (run / "metrics.jsonl").write_text("".join(lines))
    if with_sample:
        x, _ = shapes(4, "test")
        save_png(grid(x, scale=2), run / "samples" / "latest.png")
    return run



def five_runs(root: Path) -> Path:
    """root/alpha .. root/eps: five runs of 10, 15, .. 30 train records, without sample grids."""
    for i, name in enumerate(["alpha", "beta", "gamma", "delta", "eps"]):
        write_run(root / name, n_train=10 + 5 * i, with_sample=False)
    return root


def set_config(run: Path, **changes) -> Path:
    """A write_run run with other configuration values, in config.json and in its start record."""
    cfg = {**json.loads((run / "config.json").read_text()), **changes}
    (run / "config.json").write_text(json.dumps(cfg))
    log = run / "metrics.jsonl"
    first, rest = log.read_text().split("\n", 1)
    start = json.loads(first)
    start["config"] = cfg
    log.write_text(json.dumps(start) + "\n" + rest)
    return run


class FakeNvml:
    """The part of pynvml the reader uses, with fixed readings."""

    NVML_TEMPERATURE_GPU = 0

    def __init__(self, init_error: Exception | None = None):
        self.init_error = init_error

    def nvmlInit(self):
        if self.init_error:
            raise self.init_error

    def nvmlShutdown(self):
        pass

    def nvmlDeviceGetCount(self):
        return 1

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetName(self, h):
        return b"Fake GPU 80GB"

    def nvmlDeviceGetUtilizationRates(self, h):
        return SimpleNamespace(gpu=87, memory=40)

    nvmlMemory_v2 = 33554472  # pynvml's value

    def nvmlDeviceGetMemoryInfo(self, h, version=None):
        """Like a real driver: v1's ``used`` also counts the driver's reserve (here 600 MiB), v2's does not."""
        reserved = 600 * 2**20
        if version is not None and version == self.nvmlMemory_v2:
            return SimpleNamespace(used=12 * 2**30, reserved=reserved, total=80 * 2**30, free=68 * 2**30 - reserved)
        return SimpleNamespace(used=12 * 2**30 + reserved, total=80 * 2**30, free=68 * 2**30 - reserved)

    def nvmlDeviceGetTemperature(self, h, sensor):
        return 64

    def nvmlDeviceGetPowerUsage(self, h):
        return 312_000


class FakeTraining:
    """Stands in for tui.training.TrainingProcess: running until stopped."""

    def __init__(self):
        self.pid, self.stopped = 4242, False

    def poll(self):
        return 0 if self.stopped else None

    @property
    def running(self):
        return not self.stopped

    def stop(self, timeout=600.0):
        self.stopped = True
        return 0

    def last_line(self):
        return ""


def text(app, selector: str) -> str:
    """What a widget of the app's screen shows, as plain text."""
    return str(app.screen.query_one(selector).render())


async def wait_for(pilot, cond, timeout=60.0):
    """Let the app run until ``cond()`` holds; an AssertionError after ``timeout`` seconds."""
    import time

    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting for the app")
        await pilot.pause(0.05)
