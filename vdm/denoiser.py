"""x̂_0(x_t, t): what every ELBO term, the sampler and the trainer ask of a model.

A network predicts either x_0 (the assignment's choice) or the noise ε; the
:class:`Denoiser` turns either into x̂_0 with
x̂_0 = (x_t - sqrt(1 - alpha_bar_t) ε̂) / sqrt(alpha_bar_t).
:class:`Oracle` returns the true x_0, for which the posterior is exact.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from vdm.diffusion import eps_from_x0, x0_from_eps
from vdm.schedule import Schedule

PREDICTIONS = ("x0", "eps")


class Denoiser(nn.Module):
    def __init__(self, net: nn.Module, schedule: Schedule, prediction: str = "x0"):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {', '.join(PREDICTIONS)}, got {prediction!r}.")
        self.net = net
        self.schedule = schedule
        self.prediction = prediction

    def raw(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """The network's own output (x̂_0 or ε̂)."""
        return self.net(x_t, t)

    def target(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """What the network is trained to output: x_0, or the ε that made x_t."""
        return x0 if self.prediction == "x0" else eps

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        t = _as_batch_t(t, x_t, self.schedule.T)
        try:
            out = self.net(x_t, t)
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as e:
            # the network's own complaint (channels, sizes, dtypes), as one sentence
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"the network cannot take x_t of shape {tuple(x_t.shape)} and dtype {x_t.dtype} "
                             f"({msg[:200]}).") from None
        if self.prediction == "x0":
            return out
        return x0_from_eps(self.schedule, x_t, t, out.to(x_t.dtype))


class Oracle(nn.Module):
    """x̂_0 = the true x_0: the denoising-matching terms vanish and sampling returns x_0."""

    def __init__(self, x0: torch.Tensor):
        super().__init__()
        self.x0 = x0

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        if x_t.shape != self.x0.shape:
            raise ValueError(f"the oracle knows x_0 of shape {tuple(self.x0.shape)}, got x_t of shape {tuple(x_t.shape)}.")
        return self.x0.to(x_t.dtype)


def _as_batch_t(t, x: torch.Tensor, T: int) -> torch.Tensor:
    """t as a LongTensor [B], after checks that read no value back from the device (this runs every step)."""
    if not torch.is_tensor(x) or not x.is_floating_point() or x.ndim < 2:
        raise ValueError(f"x_t must be a float tensor [B, C, H, W], got {type(x).__name__} "
                         f"{getattr(x, 'dtype', '')} of shape {tuple(getattr(x, 'shape', ()))}.")
    if isinstance(t, int) and not isinstance(t, bool):
        if not 0 <= t <= T:
            raise ValueError(f"t must lie in 0..{T}, got {t}.")
        return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
    if not torch.is_tensor(t) or t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"t must be an integer step or a LongTensor of steps, got {type(t).__name__} {getattr(t, 'dtype', '')}.")
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] != x.shape[0]):
        raise ValueError(f"t must hold one step per image, shape [{x.shape[0]}], got {list(t.shape)}.")
    if t.device.type == "cpu" and t.numel() and not (0 <= int(t.min()) and int(t.max()) <= T):
        raise ValueError(f"t must lie in 0..{T}, got {int(t.min())}..{int(t.max())}.")
    return t.expand(x.shape[0]).to(x.device)


__all__ = ["Denoiser", "Oracle", "PREDICTIONS", "eps_from_x0"]


def load_denoiser(path, device="cpu", use_ema: bool = True, expected: dict | None = None):
    """The model of a checkpoint (a run directory or a checkpoint file), in eval mode, and its sidecar.

    ``use_ema`` takes the EMA weights when the checkpoint has them. ``expected``
    (model / prediction / schedule) refuses a checkpoint of another model.
    """
    from vdm import checkpoint as ckpt
    from vdm.nets import build_net

    c = ckpt.load(path)
    meta = c.meta
    if expected:
        ckpt.check_compatible(meta, expected)
    try:
        schedule = Schedule.from_config(meta["schedule"])
        net = build_net(meta["model"], schedule.T, meta.get("prediction", "x0"))
        group = "ema" if use_ema and c.group("ema") else "model"
        # names, shapes, dtypes and finiteness first: non-finite weights are refused, never sampled
        for note in ckpt.check_weights(c, group, net.state_dict()):
            print(note, file=sys.stderr)
        net.load_state_dict(c.group(group))
        den = Denoiser(net, schedule, meta.get("prediction", "x0"))
    except (KeyError, TypeError, RuntimeError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"the checkpoint {c.path} does not describe a model vdm can build ({msg}).") from None
    return den.to(device).eval(), meta
