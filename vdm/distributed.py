"""Data-parallel training under torchrun: one process per device, the global batch split across ranks.

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; without them (a plain
``vdm train``) everything here is the identity of one process, rank 0 of 1.

Every rank walks the same global permutation of the data (a function of seed and epoch only) and
draws the same global t and eps; rank r keeps the rows [n r / W, n (r+1) / W) of each global batch
of n images. Rank r's loss is its mean squared error times W n_r / n, so that DDP's average of the
gradients over the W ranks is the gradient of the global-batch mean, even when n does not split
evenly:  (1/W) sum_r (W n_r / n) grad L_r = (1/n) sum_i grad l_i.

BatchNorm normalises with the batch statistics; per-rank statistics would differ from those of
the global batch, so under DDP every BatchNorm becomes a synchronised one: torch's SyncBatchNorm
on GPUs, :class:`GlobalBatchNorm2d` on CPUs (SyncBatchNorm is GPU-only). With both, the weights
after a step equal those of one process on the whole batch up to the order of float sums, and a
checkpoint resumes under any world size.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 writes the run directory; the others write nothing."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def from_env(environ=None) -> Dist:
    """RANK, WORLD_SIZE, LOCAL_RANK as torchrun sets them (rank 0 of 1 when unset)."""
    env = os.environ if environ is None else environ
    vals = {}
    for key, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", None)):
        raw = env.get(key)
        if raw is None or raw == "":
            vals[key] = default
            continue
        try:
            vals[key] = int(raw)
        except ValueError:
            raise ValueError(f"the environment variable {key}={raw!r} is not a whole number.") from None
    world, rank = vals["WORLD_SIZE"], vals["RANK"]
    local = rank if vals["LOCAL_RANK"] is None else vals["LOCAL_RANK"]
    if world < 1 or not (0 <= rank < world) or local < 0:
        raise ValueError(f"RANK={rank}, WORLD_SIZE={world}, LOCAL_RANK={local} do not describe a process of a group.")
    return Dist(rank, world, local)


def setup(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the process group torchrun describes: NCCL on GPUs, gloo on CPUs.

    Returns the rank's place and its device (cuda:LOCAL_RANK on GPUs).
    """
    d = from_env()
    if not d.enabled:
        return d, device
    if device.type == "cuda":
        if d.local_rank >= torch.cuda.device_count():
            raise ValueError(f"LOCAL_RANK {d.local_rank} has no GPU ({torch.cuda.device_count()} visible); "
                             f"start at most that many processes per node.")
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        for key in ("MASTER_ADDR", "MASTER_PORT"):
            if key not in os.environ:
                raise ValueError(f"WORLD_SIZE is {d.world} but {key} is not set; start the ranks with torchrun.")
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=d.rank, world_size=d.world,
                                device_id=device if device.type == "cuda" else None)
    return d, device


def cleanup(together: bool = True) -> None:
    """Leave the process group. ``together`` (every rank finished its run): wait at a barrier first, so that no
    rank tears down its connections while another still works (rank 0's closing evaluation and grid). Drop the
    DDP module first (its reducer holds the group): a group torn down at interpreter exit, with no Python left to
    run, aborted a rank on a loaded machine (SIGABRT, "terminate called without an active exception"). After a
    failure there is no barrier: the failed rank never reaches it."""
    if dist.is_available() and dist.is_initialized():
        if together:
            dist.barrier()
        dist.destroy_process_group()
        gc.collect()  # the group's last references (a DDP reducer) go now, while Python can still run their teardown


def shard(n: int, d: Dist) -> slice:
    """Rank r's rows of a global batch of n: [n r / W, n (r+1) / W), sizes differ by at most one."""
    return slice(n * d.rank // d.world, n * (d.rank + 1) // d.world)


def loss_scale(n: int, d: Dist) -> float:
    """W n_r / n: makes DDP's gradient average the gradient of the global-batch mean."""
    s = shard(n, d)
    return d.world * (s.stop - s.start) / n


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch over all ranks.

    mean = sum_r sum_i x / N, var = sum_r sum_i (x - mean)^2 / N (two passes, as torch's own BN),
    with autograd through the all-reduces (their backward is the all-reduce of the gradient).
    For CPUs and gloo, where torch's SyncBatchNorm refuses to run; same parameters and buffers
    as nn.BatchNorm2d, so checkpoints do not change.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = (0, 2, 3)
        count = torch.tensor(float(x.numel() // x.shape[1]), dtype=torch.float32, device=x.device)
        stats = all_reduce(torch.cat([x.float().sum(dims), count.view(1)]))
        n = stats[-1]
        mean = stats[:-1] / n
        centred = x.float() - mean.view(1, -1, 1, 1)
        var = all_reduce((centred * centred).sum(dims)) / n
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.lerp_(mean.detach().to(self.running_mean.dtype), m)
                unbiased = var.detach() * n / (n - 1).clamp(min=1)
                self.running_var.lerp_(unbiased.to(self.running_var.dtype), m)
        y = centred * torch.rsqrt(var + self.eps).view(1, -1, 1, 1)
        if self.affine:
            y = y * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return y.to(x.dtype)


def sync_batchnorm(net: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm of ``net`` made global-batch (in place; the parameter objects are kept)."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(net)
    for name, child in list(net.named_children()):
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, GlobalBatchNorm2d):
            g = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                  child.track_running_stats, device=device)
            with torch.no_grad():
                if child.affine:
                    g.weight, g.bias = child.weight, child.bias
                if child.track_running_stats:
                    g.running_mean, g.running_var = child.running_mean, child.running_var
                    g.num_batches_tracked = child.num_batches_tracked
            g.train(child.training)
            setattr(net, name, g)
        else:
            sync_batchnorm(child, device)
    return net


def wrap(net: nn.Module, d: Dist, device: torch.device) -> nn.Module:
    """The module to train through: ``net`` itself for one process, DDP around it for several.

    ``net`` keeps its own parameters (DDP shares them), so checkpoints, EMA and sampling use it.
    """
    if not d.enabled:
        return net
    from torch.nn.parallel import DistributedDataParallel as DDP

    ids = [device.index] if device.type == "cuda" else None
    return DDP(net, device_ids=ids, broadcast_buffers=False)


def all_mean(x: torch.Tensor, d: Dist) -> torch.Tensor:
    """The mean of x over the ranks (x itself for one process)."""
    if not d.enabled:
        return x
    y = x.detach().clone()
    dist.all_reduce(y)
    return y / d.world


STOP_REASONS = (None, "time limit", "SIGTERM", "SIGINT")


def agree_stop(reason: str | None, d: Dist, device: torch.device) -> str | None:
    """The stop reason of the group: the strongest of the ranks' (signals over time limits).

    Stops must be agreed, or the ranks that go on wait forever for the ones that stopped.
    """
    if not d.enabled:
        return reason
    code = torch.tensor([STOP_REASONS.index(reason) if reason in STOP_REASONS else 2], device=device)
    dist.all_reduce(code, op=dist.ReduceOp.MAX)
    return STOP_REASONS[int(code.item())]
