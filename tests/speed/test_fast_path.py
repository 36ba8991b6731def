"""The trainer's fast path computes what a plain training loop computes.

The plain loop is written here as the assignment implies it: the network, Adam, a shuffled pass
over the data, t ~ U{1..T}, x_t = q_sample(...), MSE to x_0. Same seeds, float32.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from vdm import data as datasets
from vdm.diffusion import q_sample
from vdm.nets import AssignmentNet
from vdm.schedule import make_schedule
from vdm.train import TrainConfig, Trainer

SEED, T, N, B, STEPS = 3, 20, 64, 16, 6


def plain_loop(fused: bool):
    """The reference: the trainer's random protocol (order from (seed, epoch), t and eps from seed + 1)."""
    torch.manual_seed(SEED)
    net = AssignmentNet(T)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, fused=True) if fused else \
        torch.optim.Adam(net.parameters(), lr=1e-3, foreach=False)
    s = make_schedule("constant", T, None)
    x = datasets.load("shapes", "train", limit=N)
    g = torch.Generator().manual_seed(SEED + 1)
    losses, epoch = [], 0
    while len(losses) < STEPS:
        order = torch.randperm(N, generator=torch.Generator().manual_seed(SEED * 1_000_003 + epoch))
        for i in range(0, N, B):
            if len(losses) == STEPS:
                break
            x0 = datasets.to_float(x[order[i: i + B]])
            t = torch.randint(1, T + 1, (len(x0),), generator=g)
            eps = torch.randn(x0.shape, generator=g)
            loss = F.mse_loss(net(q_sample(s, x0, t, eps), t), x0)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        epoch += 1
    return net, losses


def fast_path(tmp_path):
    cfg = TrainConfig(limit=N, batch_size=B, T=T, epochs=2, seed=SEED, eval_size=0, threads=1)
    tr = Trainer(cfg, tmp_path / "run")
    assert tr.cfg.precision == "auto" and not tr.autocast and not tr.channels_last  # the CPU defaults
    losses = []
    while len(losses) < STEPS:
        order = tr.epoch_order(tr.epoch)
        for i in range(tr.steps_per_epoch):
            if len(losses) == STEPS:
                break
            loss = tr.loss_on(tr.train_data[order[i * B: (i + 1) * B]])
            tr.opt.zero_grad(set_to_none=True)
            loss.backward()
            tr.opt.step()
            losses.append(loss.item())
        tr.epoch += 1
    return tr, losses


def test_fast_path_equals_the_plain_loop(tmp_path):
    tr, fast = fast_path(tmp_path)
    ref_net, ref = plain_loop(fused=True)
    # the same float ops in the same order: equal to the bit
    assert fast == ref
    for (k, a), b in zip(tr.model.net.state_dict().items(), ref_net.state_dict().values()):
        assert torch.equal(a, b), k
    # against Adam's for-loop implementation, which rounds differently: the losses still agree
    # closely (weights do not elementwise: Adam turns round-off into lr-sized steps where a gradient
    # is zero in exact arithmetic, as for the convolution biases in front of BatchNorm)
    _, loop = plain_loop(fused=False)
    assert loop[0] == fast[0]
    assert fast == pytest.approx(loop, rel=1e-4)


def test_the_trainers_x_t_is_q_sample(tmp_path):
    """The step draws x_t from a device table instead of q_sample (no host check of t): same numbers."""
    cfg = TrainConfig(limit=8, batch_size=8, T=T, epochs=1, seed=SEED, eval_size=0, threads=1)
    tr = Trainer(cfg, tmp_path / "run")
    seen = {}
    real = tr.train_net.forward
    tr.train_net.forward = lambda x_t, t: seen.setdefault("x", (x_t, t)) and real(x_t, t)
    g = torch.Generator().manual_seed(0)
    tr.loss_on(tr.train_data, gen=g)
    x_t, t = seen["x"]
    g = torch.Generator().manual_seed(0)
    t2 = torch.randint(1, T + 1, (8,), generator=g)
    eps = torch.randn((8, 3, 32, 32), generator=g)
    assert torch.equal(t, t2)
    assert torch.equal(x_t, q_sample(tr.schedule, datasets.to_float(tr.train_data), t2, eps))


def test_bf16_and_channels_last_run_and_stay_close(tmp_path):
    """The GPU defaults (bf16 autocast, channels_last) on the CPU: a finite loss near fp32's."""
    cfg = TrainConfig(limit=16, batch_size=16, T=T, epochs=1, seed=SEED, eval_size=0, threads=1,
                      precision="bf16", channels_last="on")
    tr = Trainer(cfg, tmp_path / "run")
    assert tr.autocast and tr.channels_last
    x = tr.train_data
    lb = tr.loss_on(x, gen=torch.Generator().manual_seed(1))
    lb.backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in tr.model.net.parameters())
    cfg32 = TrainConfig(limit=16, batch_size=16, T=T, epochs=1, seed=SEED, eval_size=0, threads=1, precision="fp32")
    l32 = Trainer(cfg32, tmp_path / "run32").loss_on(x, gen=torch.Generator().manual_seed(1))
    assert torch.isfinite(lb) and abs(lb.item() - l32.item()) < 0.02 * l32.item()
    assert lb.item() != l32.item()  # bf16 did change the arithmetic


def test_bad_speed_flags_are_one_sentence(tmp_path):
    with pytest.raises(ValueError, match="unknown precision 'fp8'"):
        Trainer(TrainConfig(precision="fp8", limit=8, eval_size=0), tmp_path / "r")
    with pytest.raises(ValueError, match="--channels-last must be auto, on or off"):
        Trainer(TrainConfig(channels_last="yes", limit=8, eval_size=0), tmp_path / "r")
