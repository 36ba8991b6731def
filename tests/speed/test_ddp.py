"""DDP under torchrun, two CPU ranks with gloo, against one process with the same global batch.

Run A: 2 ranks for 1 epoch, then resumed by 1 process for a 2nd epoch (another world size).
Run B: 1 process for 2 epochs. The global batch is 15 in both, split 7 + 8 (so the loss scaling
W n_r / n matters). Only the torchrun part is a subprocess; the rest runs in this process.

What must agree tightly: the loss and gradient norm of the first step (the global-batch mean
over both ranks, with global-batch BatchNorm statistics), and the losses of the later steps. The weights agree elementwise almost
everywhere; not to the bit, as the all-reduce sums in another order, and Adam's g / sqrt(v)
makes an lr-sized step out of round-off wherever the gradient is zero in exact arithmetic: the
convolution biases in front of a BatchNorm (which removes any per-channel constant) and the
running means that follow them are left out of the elementwise comparison for that reason.
"""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys

import pytest
import torch

from vdm import checkpoint as ckpt

ARGS = ["--limit", "45", "--batch-size", "15", "--T", "20", "--eval-size", "0", "--n-samples", "1",
        "--sample-every", "0", "--log-every", "1", "--threads", "1", "--quiet", "--no-tui", "--seed", "5"]
LR = 1e-3
STEPS = 6
# Round-off, not the machine it was first run on, sets the tolerances. Two ranks and one process sum
# the same float32 terms in other orders; such a sum of n terms differs by about sqrt(n) eps relative
# (a random walk of per-addition errors). The most terms one gradient entry or BatchNorm statistic
# sums is the global batch times the largest feature map.
N_SUM = 15 * 32 * 32
ROUND = math.sqrt(N_SUM) * torch.finfo(torch.float32).eps  # 1.5e-5
# A reordered gradient moves Adam's scale-free step lr m/sqrt(v) by its relative error, each step, and
# the error passes through up to 8 layers (x 8) with a margin of 2: a weight differs by at most
# WEIGHT_TOL at the median. A real fault (a wrong loss scale, rank-local BatchNorm statistics) moves
# weights by O(lr) per step, 10^3 times more.
WEIGHT_TOL = 16 * STEPS * LR * ROUND  # 1.4e-6
# Elements whose exact gradient is 0 get an lr-sized Adam step from round-off alone: a few per cent
# of a tensor may exceed 8 times WEIGHT_TOL (never 2 lr per step, checked on every element).
WEIGHT_TAIL = 8 * WEIGHT_TOL
# BatchNorm's running variance is a statistic, not an Adam-stepped weight: relative to its value, 8
# layers x 2 of the round-off of one sum per step.
VAR_REL_TOL = 16 * STEPS * ROUND  # 1.4e-3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return env


def _run(cmd, cwd):
    p = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    return p


def _train_records(run):
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in recs if r["kind"] == "train"}, recs


def _in_process(argv):
    from vdm_cli.main import main

    old = torch.get_num_threads()
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(old)


@pytest.mark.slow
def test_two_gloo_ranks_match_one_process_and_resume_under_another_world_size(tmp_path, monkeypatch):
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(k, raising=False)
    runs = tmp_path / "runs"
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
                str(_free_port()), "-m", "vdm_cli", "train", "--runs-dir", str(runs)]
    # A: 2 ranks, epoch 1 (3 steps of 15 = 7 + 8 images)
    _run(torchrun + ["--name", "ddp", "--epochs", "1"] + ARGS, tmp_path)
    a_steps, a_recs = _train_records(runs / "ddp")
    # rank 0 alone wrote the run: one start record, each step logged once, nothing else in runs/
    assert [r["kind"] for r in a_recs].count("start") == 1 and sorted(a_steps) == [1, 2, 3]
    assert [p.name for p in runs.iterdir()] == ["ddp"]
    # B: 1 process, 2 epochs
    _in_process(["train", "--runs-dir", str(runs), "--name", "one", "--epochs", "2"] + ARGS)
    # A continues in 1 process: the data order and noise depend on (seed, epoch, global batch) only
    _in_process(["train", "--resume", str(runs / "ddp"), "--epochs", "2"] + ARGS)
    a_steps, _ = _train_records(runs / "ddp")
    b_steps, _ = _train_records(runs / "one")
    assert sorted(a_steps) == sorted(b_steps) == list(range(1, 7))
    # step 1, same weights: the loss is a mean of 15 x 3072 positive squared errors, which torch sums
    # by cascades (relative error <= log2(n) eps whatever the order); the gradient norm collects
    # gradients that are reordered signed sums (ROUND)
    loss_tol = math.ceil(math.log2(15 * 3072)) * torch.finfo(torch.float32).eps
    assert a_steps[1]["grad_norm"] == pytest.approx(b_steps[1]["grad_norm"], rel=ROUND)
    assert a_steps[1]["loss"] == pytest.approx(b_steps[1]["loss"], rel=loss_tol)
    for s in range(1, 7):  # later steps: the weights have drifted apart by WEIGHT_TOL, the losses a little
        assert a_steps[s]["loss"] == pytest.approx(b_steps[s]["loss"], rel=1e-4), s
        assert a_steps[s]["grad_norm"] == pytest.approx(b_steps[s]["grad_norm"], rel=1e-3), s
    a, b = ckpt.load(runs / "ddp"), ckpt.load(runs / "one")
    assert a.step == b.step == 6
    bn_cancelled = {f"{m}.0.bias" for m in ("down1", "down2", "down3", "down4", "up1", "up2", "up3", "up4")}
    bn_cancelled |= {f"{m}.1.running_mean" for m in ("down1", "down2", "down3", "down4", "up1", "up2", "up3", "up4")}
    wa, wb = a.group("model"), b.group("model")
    assert wa.keys() == wb.keys()
    for k in wb:
        if not wb[k].is_floating_point():
            assert torch.equal(wa[k], wb[k]), k  # num_batches_tracked
            continue
        d = (wa[k] - wb[k]).abs()
        assert d.max() <= STEPS * 2 * LR, k  # never more than Adam's largest possible drift over 6 steps
        if k.endswith("running_var"):
            assert (d <= VAR_REL_TOL * wb[k].abs()).all(), (k, float((d / wb[k].abs()).max()))
        elif k not in bn_cancelled:
            assert (d <= WEIGHT_TAIL).float().mean() >= 0.97, (k, float((d <= WEIGHT_TAIL).float().mean()))
            assert d.median() <= WEIGHT_TOL, (k, float(d.median()))
