"""The training step and the sampler's own work read nothing back from the device.

A read-back (.item(), float(t), bool(t), int(t.min())) is aten._local_scalar_dense; on a GPU
each one waits for the queue to drain. Counted here on the CPU with a dispatch mode, which
sees the same aten calls a GPU run would make.
"""

from __future__ import annotations

from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from vdm.sample import sample
from vdm.schedule import make_schedule
from vdm.train import TrainConfig, Trainer

READ_BACK = "aten._local_scalar_dense.default"


class CountOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[str(func)] += 1
        return func(*args, **(kwargs or {}))


def test_the_training_step_reads_nothing_back(tmp_path):
    tr = Trainer(TrainConfig(limit=16, batch_size=16, T=20, eval_size=0, threads=1, ema=0.9), tmp_path / "r")
    x = tr.train_data[tr.epoch_order(0)]
    for _ in range(2):  # the second step: Adam's state exists
        with CountOps() as c:
            loss = tr.loss_on(x)
            tr.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tr.model.parameters(), float("inf"))
            tr.opt.step()
            tr._ema_update()
    assert c.ops[READ_BACK] == 0
    assert sum(c.ops.values()) > 50  # the mode did see the step


def test_the_sampler_adds_a_few_ops_and_no_read_back_per_step():
    T, n = 25, 4
    s = make_schedule("constant", T, None)
    calls = []

    def den(x, t):  # a network of one op, so that the count is the sampler's own
        calls.append(t.clone())
        return x * 0.5

    with CountOps() as c:
        sample(den, s, n, device="cpu")
    assert len(calls) == T and [int(t[0]) for t in calls] == list(range(T, 0, -1))
    assert c.ops[READ_BACK] == 0
    own = sum(c.ops.values()) - 2 * T  # minus the clone and the multiply of the stub
    # per step: fill t, 3 table reads (select), clamp, 2 mul + add (the mean), randn, mul + add
    assert own <= 12 * T + 40, c.ops  # + the set-up: x_T, the coefficient tables
