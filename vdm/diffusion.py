"""The forward chain, its closed form and the posterior, for any schedule.

    q(x_t | x_{t-1})      = N(sqrt(alpha_t) x_{t-1}, (1 - alpha_t) I)
    q(x_t | x_0)          = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)
    q(x_{t-1} | x_t, x_0) = N(mu_q(x_t, x_0), sigma_q^2(t) I)

    mu_q = [sqrt(alpha_t)(1 - alpha_bar_{t-1}) x_t + sqrt(alpha_bar_{t-1})(1 - alpha_t) x_0] / (1 - alpha_bar_t)
    sigma_q^2(t) = (1 - alpha_t)(1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)

For the constant schedule alpha_bar_t = alpha^t and these are the assignment's
formulas. ``t`` is an int or a LongTensor of shape [B] (one t per image).

Between non-adjacent steps s < t the same closed form gives (alpha_bar_{t|s} = alpha_bar_t / alpha_bar_s)

    q(x_s | x_t, x_0) = N(sqrt(alpha_bar_s)(1 - alpha_bar_{t|s})/(1 - alpha_bar_t) x_0
                          + sqrt(alpha_bar_{t|s})(1 - alpha_bar_s)/(1 - alpha_bar_t) x_t,
                          (1 - alpha_bar_{t|s})(1 - alpha_bar_s)/(1 - alpha_bar_t) I),

which samplers on a subsequence t_K > ... > t_1 > 0 of the steps use (:func:`reverse_table`),
beside DDIM's deterministic update (:func:`ddim_coefs`). One step of any of them is :func:`reverse_step`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from vdm.schedule import Schedule


def _at(values: torch.Tensor, t, like: torch.Tensor) -> torch.Tensor:
    """values[t] shaped to broadcast against a batch ``like`` of shape [B, ...]."""
    if not torch.is_tensor(like) or not like.is_floating_point():
        raise ValueError(f"expected a float tensor, got {type(like).__name__} {getattr(like, 'dtype', '')}.")
    if isinstance(t, bool) or (torch.is_tensor(t) and (t.dtype == torch.bool or t.is_floating_point())):
        raise ValueError("t must be an integer step or a LongTensor of steps, not a bool or float.")
    if isinstance(t, int):
        if not 0 <= t < values.numel():
            raise ValueError(f"t must lie in 0..{values.numel() - 1}, got {t}.")
        return values[t].to(like.dtype).to(like.device)
    t = torch.as_tensor(t, device=values.device)
    if t.ndim > 1 or (t.ndim == 1 and t.numel() not in (1, like.shape[0] if like.ndim else 1)):
        raise ValueError(f"t must hold one step per image: shape [{like.shape[0] if like.ndim else 1}], "
                         f"got {list(t.shape)} for a batch of shape {list(like.shape)}.")
    v = values[t].to(like.device, like.dtype)
    return v.reshape(v.shape + (1,) * (like.ndim - v.ndim))


def _check_t(schedule: Schedule, t, lo: int) -> None:
    try:
        tt = torch.as_tensor(t)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"t must be an integer step or a LongTensor of steps, got {type(t).__name__}.") from None
    if tt.dtype.is_floating_point or tt.dtype.is_complex or tt.dtype == torch.bool:
        raise ValueError(f"t must be an integer step, got a {tt.dtype} value.")
    if tt.numel() and (int(tt.min()) < lo or int(tt.max()) > schedule.T):
        raise ValueError(f"t must lie in {lo}..{schedule.T}, got {tt.min().item()}..{tt.max().item()}.")


def forward_step(schedule: Schedule, x_prev: torch.Tensor, t, noise: torch.Tensor | None = None) -> torch.Tensor:
    """One step of the chain: x_t = sqrt(alpha_t) x_{t-1} + sqrt(1 - alpha_t) eps."""
    _check_t(schedule, t, 1)
    _float_tensor(x_prev, "x_{t-1}")
    if noise is None:
        noise = torch.randn_like(x_prev)
    _same_shape(x_prev, noise, "x_{t-1}", "the noise")
    return _at(schedule.alpha.sqrt(), t, x_prev) * x_prev + _at(schedule.beta.sqrt(), t, x_prev) * noise


def forward_chain(schedule: Schedule, x0: torch.Tensor, generator: torch.Generator | None = None,
                  t_max: int | None = None) -> torch.Tensor:
    """x_0, x_1, ..., x_{t_max} simulated step by step: a tensor [t_max+1, *x0.shape]."""
    t_max = schedule.T if t_max is None else t_max
    _check_t(schedule, t_max, 0)
    out = torch.empty((t_max + 1,) + tuple(x0.shape), dtype=x0.dtype, device=x0.device)
    out[0] = x0
    for t in range(1, t_max + 1):
        eps = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
        out[t] = forward_step(schedule, out[t - 1], t, eps)
    return out


def q_mean_var(schedule: Schedule, x0: torch.Tensor, t):
    """Mean and variance of the closed form q(x_t | x_0): sqrt(alpha_bar_t) x_0 and 1 - alpha_bar_t."""
    _check_t(schedule, t, 0)
    ab = _at(schedule.alpha_bar, t, x0)
    return ab.sqrt() * x0, 1.0 - ab


def q_sample(schedule: Schedule, x0: torch.Tensor, t, noise: torch.Tensor | None = None) -> torch.Tensor:
    """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps: the reparameterisation of q(x_t | x_0)."""
    _float_tensor(x0, "x_0")
    if noise is None:
        noise = torch.randn_like(x0)
    _same_shape(x0, noise, "x_0", "the noise")
    _check_t(schedule, t, 0)
    return reparameterise(_at(schedule.alpha_bar, t, x0), x0, noise)


def reparameterise(alpha_bar_t: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, with alpha_bar_t already shaped to broadcast.

    Unchecked, for hot loops that look alpha_bar_t up in a device table themselves (no host sync).
    """
    return alpha_bar_t.sqrt() * x0 + (1.0 - alpha_bar_t).sqrt() * eps


def step_sequence(T: int, K: int | None = None) -> tuple[int, ...]:
    """The steps a K-step sampler visits, t_1 < ... < t_K: evenly spaced from t_1 = 1 to t_K = T.

        t_i = 1 + round((i - 1)(T - 1) / (K - 1)),   i = 1..K   (numpy's linspace(1, T, K), rounded)

    Both ends are kept: x_T ~ N(0, I) is the prior the model was trained to start from, and
    the last prediction is x̂_0(x_1, 1), the decoder's mean, as in the T-step sampler (DDIM's
    "trailing" spacing would end on x̂_0 at t = T/K, "leading" would start below T). K = T
    (or None) is every step 1..T; K = 1 is the one jump from T to 0.
    """
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a whole number of at least 1, got {T!r}.")
    K = T if K is None else K
    if isinstance(K, bool) or not isinstance(K, int) or not 1 <= K <= T:
        raise ValueError(f"the number of sampling steps must be a whole number in 1..{T}, got {K!r}.")
    if K == 1:
        return (T,)
    # integer arithmetic (round half up), so that the sequence never depends on float rounding
    return tuple(1 + (2 * (i - 1) * (T - 1) + (K - 1)) // (2 * (K - 1)) for i in range(1, K + 1))


def _steps(schedule: Schedule, steps) -> torch.Tensor:
    """t_0 = 0, t_1, ..., t_K as a LongTensor, from an increasing sequence of steps in 1..T (None: 1..T)."""
    if steps is None:
        return torch.arange(schedule.T + 1)
    ts = list(steps)
    if not ts or any(isinstance(v, bool) or not isinstance(v, int) for v in ts):
        raise ValueError(f"steps must be a non-empty sequence of whole numbers, got {steps!r}.")
    if ts[0] < 1 or ts[-1] > schedule.T or any(b <= a for a, b in zip(ts, ts[1:])):
        raise ValueError(f"steps must increase strictly inside 1..{schedule.T}, got {ts[:3]}..{ts[-3:]}.")
    return torch.tensor([0] + ts)


def _between(schedule: Schedule, s: torch.Tensor, t: torch.Tensor):
    """float64 (c_x0, c_xt, var) of q(x_s | x_t, x_0) = N(c_x0 x_0 + c_xt x_t, var), 0 <= s < t, elementwise:

        alpha_bar_{t|s} = alpha_bar_t / alpha_bar_s   (the forward chain from s to t in one jump)
        c_x0 = sqrt(alpha_bar_s) (1 - alpha_bar_{t|s}) / (1 - alpha_bar_t)
        c_xt = sqrt(alpha_bar_{t|s}) (1 - alpha_bar_s) / (1 - alpha_bar_t)
        var  = (1 - alpha_bar_{t|s}) (1 - alpha_bar_s) / (1 - alpha_bar_t)
    """
    ab = schedule.alpha_bar
    ab_t, ab_s = ab[t], ab[s]
    # for adjacent steps alpha_bar_{t|t-1} is alpha_t itself (the ratio is the same number up to
    # rounding): the T-step table stays bit for bit the one the sampler always used
    ab_ts = torch.where(t - s == 1, schedule.alpha[t], ab_t / ab_s)
    denom = 1.0 - ab_t
    c_x0 = ab_s.sqrt() * (1.0 - ab_ts) / denom
    c_xt = ab_ts.sqrt() * (1.0 - ab_s) / denom
    var = (1.0 - ab_ts) * (1.0 - ab_s) / denom
    return c_x0, c_xt, var


def _with_row0(c_x0, c_xt, var):
    """Prepend the unused row 0 as (1, 0, 0): x_0 has no step after it, keep the row finite."""
    one, zero = torch.ones(1, dtype=c_x0.dtype), torch.zeros(1, dtype=c_x0.dtype)
    return torch.cat([one, c_x0]), torch.cat([zero, c_xt]), torch.cat([zero, var])


def posterior_coefs(schedule: Schedule, steps=None):
    """float64 (c_x0, c_xt, var) per step i = 1..K of q(x_{t_{i-1}} | x_{t_i}, x_0), t_0 = 0; row 0 unused.

    ``steps`` is the increasing t_1 < ... < t_K (see :func:`step_sequence`); None is every step,
    so that i = t and the rows are q(x_{t-1} | x_t, x_0) (Luo eq. 84):

        c_x0(t) = sqrt(alpha_bar_{t-1}) (1 - alpha_t) / (1 - alpha_bar_t)
        c_xt(t) = sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)
        var(t)  = (1 - alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)

    For non-adjacent s = t_{i-1} < t = t_i, alpha_t becomes alpha_bar_{t|s} (:func:`_between`).
    """
    ts = _steps(schedule, steps)
    return _with_row0(*_between(schedule, ts[:-1], ts[1:]))


def ddim_coefs(schedule: Schedule, steps=None, eta: float = 0.0):
    """float64 (c_x0, c_xt, var) per step i = 1..K of DDIM's update (Song et al. 2021, eq. 12), row 0 unused:

        x_s = sqrt(alpha_bar_s) x̂_0 + sqrt(1 - alpha_bar_s - sigma^2) eps_hat + sigma z,   s = t_{i-1}, t = t_i
        eps_hat = (x_t - sqrt(alpha_bar_t) x̂_0) / sqrt(1 - alpha_bar_t)
        sigma^2 = eta^2 var_q(s, t)   (var_q: the variance of q(x_s | x_t, x_0))

    so c_xt = sqrt(1 - alpha_bar_s - sigma^2) / sqrt(1 - alpha_bar_t) and c_x0 = sqrt(alpha_bar_s) - c_xt sqrt(alpha_bar_t).
    eta = 0 is deterministic; eta = 1 is the posterior's own mean and variance (ancestral sampling).
    """
    if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must be a number in [0, 1] (0: DDIM, 1: ancestral), got {eta!r}.")
    ts = _steps(schedule, steps)
    s, t = ts[:-1], ts[1:]
    ab_s, ab_t = schedule.alpha_bar[s], schedule.alpha_bar[t]
    var = eta ** 2 * _between(schedule, s, t)[2]
    c_xt = (1.0 - ab_s - var).clamp(min=0.0).sqrt() / (1.0 - ab_t).sqrt()  # clamp: rounding at s = 0
    c_x0 = ab_s.sqrt() - c_xt * ab_t.sqrt()
    return _with_row0(c_x0, c_xt, var)


def posterior(schedule: Schedule, x_t: torch.Tensor, x0: torch.Tensor, t, s=None):
    """Mean and variance of q(x_s | x_t, x_0), 0 <= s < t; s = t - 1 by default (the variance is 0 at s = 0)."""
    _check_t(schedule, t, 1)
    _same_shape(x_t, x0, "x_t", "x_0")
    # not on a hot path (the sampler uses reverse_table), so it can afford a device read-back
    for name, v in (("x_t", x_t), ("x_0", x0)):
        if not bool(torch.isfinite(v).all()):
            raise ValueError(f"the posterior was given a {name} that contains NaN or infinite values.")
    if s is None:
        c_x0, c_xt, var = posterior_coefs(schedule)
        return _at(c_x0, t, x0) * x0 + _at(c_xt, t, x_t) * x_t, _at(var, t, x0)
    _check_t(schedule, s, 0)
    tt, ss = torch.as_tensor(t).cpu(), torch.as_tensor(s).cpu()  # the schedule's tables live on the host
    if bool((ss >= tt).any()):
        raise ValueError(f"s must come before t (s < t), got s = {ss.tolist()} and t = {tt.tolist()}.")
    tt, ss = torch.broadcast_tensors(tt, ss)
    c = _between(schedule, ss, tt)
    # shaped as _at shapes them: a number for one t, [B, 1, ...] for one t per image
    c_x0, c_xt, var = ((v.reshape(v.shape + (1,) * (x0.ndim - v.ndim)) if v.ndim else v).to(x0.device, x0.dtype) for v in c)
    return c_x0 * x0 + c_xt * x_t, var


class ReverseTable(NamedTuple):
    """A sampler's coefficients on the device, for loops that must not read back (:func:`reverse_table`).

    steps: (t_0 = 0, t_1, ..., t_K); step i goes from x_{t_i} to x_{t_{i-1}}. c_x0, c_xt, std:
    [K+1] tensors. noisy[i]: whether step i adds noise (std > 0), known on the host.
    """

    steps: tuple
    c_x0: torch.Tensor
    c_xt: torch.Tensor
    std: torch.Tensor
    noisy: tuple

    @property
    def K(self) -> int:
        return len(self.steps) - 1


def reverse_coefs(schedule: Schedule, steps=None, eta: float | None = None):
    """float64 (c_x0, c_xt, var) of a sampler: ancestral (eta None, :func:`posterior_coefs`) or DDIM (:func:`ddim_coefs`)."""
    return posterior_coefs(schedule, steps) if eta is None else ddim_coefs(schedule, steps, eta)


def reverse_table(schedule: Schedule, device="cpu", dtype=torch.float32, steps=None, eta: float | None = None):
    """:class:`ReverseTable` of :func:`reverse_coefs` (std = sqrt(var)) on ``device`` in ``dtype``.

    ``steps`` None and ``eta`` None: every step, ancestral (row i = t, the bonus exercise's sampler).
    """
    c_x0, c_xt, var = reverse_coefs(schedule, steps, eta)
    # tolist(): the host copies in one read, not one device read-back per step
    ts = tuple(_steps(schedule, steps).tolist())
    noisy = tuple(i > 1 and v > 0 for i, v in enumerate(var.tolist()))
    return ReverseTable(ts, *(c.to(device, dtype) for c in (c_x0, c_xt, var.sqrt())), noisy)


def reverse_step(table: ReverseTable, x_t: torch.Tensor, x0_hat: torch.Tensor, i: int, noise: torch.Tensor | None):
    """Step i of the sampler, x_{t_i} -> x_{t_{i-1}}, returned as (x_{t_{i-1}}, mean):

        mean            = c_x0[i] x̂_0 + c_xt[i] x_t     (ancestral: the posterior mean mu_q(x_t, x̂_0))
        x_{t_{i-1}}     = mean + std[i] noise,  noise ~ N(0, I)

    p(x_s | x_t) = q(x_s | x_t, x_0 = x̂_0(x_t, t)) for the ancestral table, DDIM's update for
    its table. For the table of every step, i = t: x_{t-1} from x_t. At i = 1 (the last step,
    to x_0) std is 0 and x_0 is the mean (DDPM's decoder mean), whatever ``noise`` is; with
    ``noise`` None the step is the mean (DDIM with eta = 0).
    """
    mean = table.c_x0[i] * x0_hat + table.c_xt[i] * x_t
    if i <= 1 or noise is None:
        return mean, mean
    return mean + table.std[i] * noise, mean


def _float_tensor(v, name: str) -> None:
    if not torch.is_tensor(v) or not v.is_floating_point():
        raise ValueError(f"{name} must be a float tensor, got {type(v).__name__} {getattr(v, 'dtype', '')}.")


def _same_shape(a, b, name_a: str, name_b: str) -> None:
    """Both float tensors of one shape (broadcasting would silently mix images)."""
    for name, v in ((name_a, a), (name_b, b)):
        _float_tensor(v, name)
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}.")


def x0_from_eps(schedule: Schedule, x_t: torch.Tensor, t, eps: torch.Tensor) -> torch.Tensor:
    """Invert the reparameterisation: x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
    ab = _at(schedule.alpha_bar, t, x_t)
    return (x_t - (1.0 - ab).sqrt() * eps) / ab.sqrt()


def eps_from_x0(schedule: Schedule, x_t: torch.Tensor, t, x0: torch.Tensor) -> torch.Tensor:
    """eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t)."""
    ab = _at(schedule.alpha_bar, t, x_t)
    return (x_t - ab.sqrt() * x0) / (1.0 - ab).sqrt()
