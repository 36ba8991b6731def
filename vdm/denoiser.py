"""x̂_0(x_t, t): what every ELBO term, the sampler and the trainer ask of a model.

A network predicts x_0 (the assignment's choice, ``x0``), the noise ε (``eps``:
x̂_0 = (x_t - sqrt(1 - alpha_bar_t) ε̂) / sqrt(alpha_bar_t)), or a preconditioned
correction F (``x0-precond``: x̂_0 = c_skip(t) x_t + c_out(t) F(c_in(t) x_t, t),
Karras et al. 2022, see :func:`precond_coefs`). The :class:`Denoiser` turns any
of them into x̂_0, so the posterior, the ELBO and the sampler never ask which.
:class:`Oracle` returns the true x_0, for which the posterior is exact.
"""

from __future__ import annotations

import sys

import torch
from torch import nn

from vdm import checkpoint as ckpt
from vdm.config import PREDICTIONS
from vdm.diffusion import eps_from_x0, x0_from_eps
from vdm.nets import build_net
from vdm.schedule import Schedule

# sigma_data of x0-precond: the root mean square of x_0 (see precond_coefs). EDM's value for images
# in [-1, 1]; fixed for every data set, because a checkpoint does not record it (the shapes set's
# RMS is 0.60, CIFAR-10's about 0.5), and only the SNR = 1/sigma_data^2 where c_skip hands over
# to c_out depends on it: at small t, c_skip -> 1/sqrt(alpha_bar_t) whatever it is.
SIGMA_DATA = 0.5


def precond_coefs(schedule: Schedule, sigma_data: float = SIGMA_DATA):
    """(c_skip, c_out, c_in) for t = 0..T in float64, the variance-preserving form of EDM's preconditioning.

    With x_t = s x_0 + n ε, s = sqrt(alpha_bar_t), n = sqrt(1 - alpha_bar_t), E[x_0^2] = sigma_d^2
    (per pixel, sigma_d = ``sigma_data``) and x̂_0 = c_skip x_t + c_out F, the network is trained
    towards F* = (x_0 - c_skip x_t) / c_out. EDM picks c_skip to minimise the variance of what
    the network must output, E[(x_0 - c x_t)^2] = (1 - c s)^2 sigma_d^2 + c^2 n^2:

        d/dc = 0  =>  c_skip = s sigma_d^2 / (s^2 sigma_d^2 + n^2)

    (the least-squares, Wiener, estimate of x_0 from x_t), and c_out so that F* has unit variance,
    c_out^2 = min_c E[(x_0 - c x_t)^2] = n^2 sigma_d^2 / (s^2 sigma_d^2 + n^2). c_in makes the
    network's input unit-variance, c_in = 1 / sqrt(s^2 sigma_d^2 + n^2) (the std of x_t).
    In EDM's variance-exploding variable y = x_t / s, sigma^2 = n^2 / s^2 = 1/SNR(t), these are
    EDM's sigma_d^2/(sigma^2 + sigma_d^2) / s, sigma sigma_d / sqrt(sigma^2 + sigma_d^2) and
    1 / (s sqrt(sigma^2 + sigma_d^2)).

    In terms of the SNR alone: c_skip s = SNR sigma_d^2 / (1 + SNR sigma_d^2) and
    c_out = sigma_d / sqrt(alpha_bar_t (1 + SNR sigma_d^2)). At small t (SNR >> 1/sigma_d^2)
    c_skip s = 1 - 1/(SNR sigma_d^2) + ... and c_out ~ n / s: with F = 0, x̂_0 = x_t / s up to
    O(1/SNR), the identity on the signal, so copying x_t costs the network nothing and its output
    only corrects a residual of size c_out (at t = 1 of the cosine schedule, about a grey level).
    At large t c_skip -> 0 and c_out -> sigma_d: x̂_0 = sigma_d F, the assignment's x̂_0 model.
    At t = 0 (no noise) c_skip = 1, c_out = 0.
    """
    return precond_from_alpha_bar(schedule.alpha_bar, sigma_data)


def precond_from_alpha_bar(alpha_bar: torch.Tensor, sigma_data: float = SIGMA_DATA):
    """(c_skip, c_out, c_in) of :func:`precond_coefs` at any alpha_bar (a discrete schedule's, or sigmoid(-gamma)), float64."""
    ab = alpha_bar.double()
    s, n2 = ab.sqrt(), 1.0 - ab
    d = float(sigma_data) ** 2
    var_xt = ab * d + n2  # E[x_t^2]
    return s * d / var_xt, (n2 * d / var_xt).sqrt(), var_xt.rsqrt()


class Denoiser(nn.Module):
    def __init__(self, net: nn.Module, schedule: Schedule, prediction: str = "x0"):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {', '.join(PREDICTIONS)}, got {prediction!r}.")
        self.net = net
        self.schedule = schedule
        self.prediction = prediction
        self._tables: dict = {}  # (device, dtype) -> (schedule, (c_skip, c_out, c_in)): not weights, not in state_dict

    def raw(self, x_t: torch.Tensor, t: torch.Tensor, net: nn.Module | None = None) -> torch.Tensor:
        """What the loss compares with :meth:`target`: x̂_0 (``x0``, ``x0-precond``) or ε̂ (``eps``).

        For ``x0-precond`` that is c_skip x_t + c_out F(c_in x_t, t), so the trainer's loss is the
        assignment's MSE on x_0 in value: c_out(t)^2 ||F - F*||^2, not EDM's loss ||F - F*||^2
        (weight 1/c_out^2), which the denoising-matching terms at small t would favour (README).
        ``net`` is the module to run (the trainer's DDP or compiled wrapper of ``self.net``).
        """
        net = self.net if net is None else net
        if self.prediction != "x0-precond":
            return net(x_t, t)
        c_skip, c_out, c_in = self._coefs(x_t, t)
        return c_skip * x_t + c_out * net(c_in * x_t, t).to(x_t.dtype)

    def target(self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """What :meth:`raw` is trained towards: x_0, or the ε that made x_t."""
        return eps if self.prediction == "eps" else x0

    def _coefs(self, x_t: torch.Tensor, t: torch.Tensor):
        """c_skip(t), c_out(t), c_in(t) shaped [B, 1, 1, 1], from a table on x_t's device (no host sync)."""
        key = (x_t.device, x_t.dtype)
        sched, table = self._tables.get(key, (None, None))
        if sched is not self.schedule:  # built again when the schedule is replaced
            table = tuple(c.to(x_t.device, x_t.dtype) for c in precond_coefs(self.schedule))
            self._tables[key] = (self.schedule, table)
        shape = (-1,) + (1,) * (x_t.ndim - 1)
        return tuple(c[t].view(shape) for c in table)

    def forward(self, x_t: torch.Tensor, t) -> torch.Tensor:
        t = _as_batch_t(t, x_t, self.schedule.T)
        try:
            out = self.raw(x_t, t)
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as e:
            # the network's own complaint (channels, sizes, dtypes), as one sentence
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"the network cannot take x_t of shape {tuple(x_t.shape)} and dtype {x_t.dtype} "
                             f"({msg[:200]}).") from None
        if self.prediction != "eps":
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


__all__ = ["Denoiser", "Oracle", "PREDICTIONS", "SIGMA_DATA", "eps_from_x0", "precond_coefs"]


def load_denoiser(path, device="cpu", use_ema: bool = True, expected: dict | None = None):
    """The model of a checkpoint (a run directory or a checkpoint file), in eval mode, and its sidecar.

    ``use_ema`` takes the EMA weights when the checkpoint has them. ``expected``
    (model / prediction / schedule) refuses a checkpoint of another model.
    """
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
