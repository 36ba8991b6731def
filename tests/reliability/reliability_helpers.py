"""Shared pieces of the reliability tests: tiny runs, state comparison, training processes.

Training processes are real OS processes running the ``vdm`` command line
(``vdm_cli.main.main``). To keep 20 kills within the time budget they are forked from a
server that has already imported torch and vdm (multiprocessing's forkserver), so a
process starts in a fraction of a second instead of the ten seconds an import of
torch can take on a busy machine; what runs after the fork is the same code the
``vdm`` console script runs.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sys
from pathlib import Path

import torch

from vdm import checkpoint as ckpt
from vdm.train import TrainConfig

# the brief's tiny run: T 20, 256 images, batches of 32 (8 steps per epoch), one thread
TINY = dict(T=20, limit=256, batch_size=32, eval_size=16, n_samples=4, sample_every=0, threads=1, log_every=1)


def tiny_cfg(runs_dir, name="run", **kw) -> TrainConfig:
    return TrainConfig(**dict(TINY, runs_dir=str(runs_dir), name=name, **kw))


def train_argv(cfg: TrainConfig, resume: bool = False) -> list[str]:
    """The ``vdm train`` command line for a TrainConfig (or, with ``resume``, its --resume form)."""
    run = Path(cfg.runs_dir) / cfg.name
    if resume:
        return ["train", "--resume", str(run), "--quiet", "--threads", "1"]
    argv = ["train", "--runs-dir", cfg.runs_dir, "--name", cfg.name, "--quiet"]
    for k in ("T", "limit", "batch_size", "eval_size", "n_samples", "sample_every", "threads", "log_every",
              "epochs", "ckpt_every", "ema", "seed", "lr"):
        argv += ["--" + k.replace("_", "-"), str(getattr(cfg, k))]
    return argv


def newest(run) -> ckpt.Checkpoint:
    return ckpt.load(run)


def assert_same_state(a: ckpt.Checkpoint, b: ckpt.Checkpoint, groups=("model", "ema", "optim", "rng")) -> int:
    """Every tensor of the named groups bitwise equal (torch.equal); returns how many were compared."""
    assert a.step == b.step, f"steps differ: {a.step} vs {b.step}"
    n = 0
    for g in groups:
        ta, tb = a.group(g), b.group(g)
        assert ta.keys() == tb.keys(), f"{g}: tensor names differ"
        for k in ta:
            assert ta[k].dtype == tb[k].dtype and torch.equal(ta[k], tb[k]), f"{g}/{k} differs at step {a.step}"
            n += 1
    return n


def records(run) -> list[dict]:
    from vdm.metrics import read_all

    return read_all(Path(run) / "metrics.jsonl")[0]


def run_cli(argv: list[str], log: str) -> None:
    """Process target: the ``vdm`` command line with its output in ``log``; exits with its status."""
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    from vdm_cli.main import main

    code = main(argv)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


_CTX = None


def forkserver():
    """A multiprocessing context whose server has torch and vdm imported already."""
    global _CTX
    if _CTX is None:
        _CTX = multiprocessing.get_context("forkserver")
        _CTX.set_forkserver_preload(["torch", "torch._dynamo", "vdm_cli.main", "vdm.train", "reliability_helpers"])
    return _CTX


def start(argv: list[str], log) -> multiprocessing.Process:
    p = forkserver().Process(target=run_cli, args=(argv, str(log)), daemon=True)
    p.start()
    return p


def read_json(path) -> dict:
    return json.loads(Path(path).read_text())


def save_killed_at(directory: str, step: int, kill_at: int) -> None:
    """Process target: ckpt.save(step) that dies like SIGKILL (os._exit, no cleanup) at its kill_at-th
    file system event: a write (half of the bytes written first), an fsync, a rename or an unlink."""
    import builtins

    import vdm.atomic

    count = [0]

    def event():
        count[0] += 1
        if count[0] == kill_at:
            os._exit(137)

    class HalfWriter:
        def __init__(self, f):
            self.f = f

        def write(self, data):
            count[0] += 1
            if count[0] == kill_at:
                self.f.write(data[: len(data) // 2])
                self.f.flush()
                os._exit(137)
            return self.f.write(data)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def wrap(fn):
        def inner(*a, **k):
            event()
            return fn(*a, **k)
        return inner

    vdm.atomic.open = lambda path, mode="r", *a, **k: HalfWriter(builtins.open(path, mode, *a, **k))
    os.fsync, os.replace, os.unlink = wrap(os.fsync), wrap(os.replace), wrap(os.unlink)
    ckpt.save(directory, step, small_state(step), {"model": "assignment", "schedule": {"kind": "constant", "T": 20}})
    os._exit(0)


def small_state(step: int) -> dict:
    g = torch.Generator().manual_seed(step)
    return {"model/w": torch.randn(64, 64, generator=g), "optim/0/exp_avg": torch.randn(64, 64, generator=g)}


def trained_run(directory, name="run", **kw) -> Path:
    """A tiny run trained for one epoch in this process (one checkpoint, an eval, a sample grid)."""
    from vdm.train import Trainer

    cfg = tiny_cfg(directory, name, **dict(dict(epochs=1), **kw))
    run = Path(directory) / name
    Trainer(cfg, run, echo=lambda *a: None).run()
    return run


def rewrite_checkpoint(run, tensors=None, meta=None) -> Path:
    """Replace the run's newest checkpoint by one whose tensors and/or sidecar a function changed.

    ``tensors(dict) -> dict`` edits the tensors (the SHA-256 recomputed, so the file is *intact*:
    only its content is crafted); ``meta(dict) -> dict`` edits the sidecar after it is written.
    """
    c = ckpt.load(run)
    sidecar = c.path
    t = tensors(dict(c.tensors)) if tensors else c.tensors
    for f in ckpt.list_checkpoints(sidecar.parent):
        f.unlink()
        f.with_suffix(".safetensors").unlink(missing_ok=True)
    sidecar = ckpt.save(sidecar.parent, c.step, t, {k: v for k, v in c.meta.items()}, keep=10)
    if meta:
        sidecar.write_text(json.dumps(meta(read_json(sidecar))))
    return sidecar


def run_cli_killed_in(where: str, at_step: int, argv: list[str], log: str) -> None:
    """Process target: ``vdm`` as run_cli, which SIGKILLs itself on reaching ``where`` at step ``at_step``.

    ``where``: "eval" (inside the evaluation), "sample" (inside the sampling, before the grid
    is written), "grid" (the grid's temporary file written, not yet renamed), "end" (before
    the end record). A real kill of a real process, aimed where a timer cannot aim.
    """
    import signal

    import vdm.atomic
    from vdm.metrics import MetricsWriter
    from vdm.train import Trainer

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def aimed(fn):
        def inner(self, *a, **k):
            if self.step == at_step:
                die()
            return fn(self, *a, **k)
        return inner

    if where == "eval":
        Trainer.evaluate = aimed(Trainer.evaluate)
    elif where == "sample":
        Trainer.write_samples = aimed(Trainer.write_samples)
    elif where == "grid":
        real_write = Trainer.write_samples

        def write_samples(self, x):
            if self.step == at_step:
                real_replace = os.replace

                def replace(src, dst, *a, **k):
                    if str(dst).endswith(".png"):
                        die()
                    return real_replace(src, dst, *a, **k)
                vdm.atomic.os.replace = replace
            return real_write(self, x)
        Trainer.write_samples = write_samples
    elif where == "end":
        real = MetricsWriter.write

        def write(self, kind, **fields):
            if kind == "end" and fields.get("step") == at_step:
                die()
            return real(self, kind, **fields)
        MetricsWriter.write = write
    run_cli(argv, log)
