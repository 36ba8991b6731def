"""The forward chain, its closed form and the posterior, for any schedule.

    q(x_t | x_{t-1})      = N(sqrt(alpha_t) x_{t-1}, (1 - alpha_t) I)
    q(x_t | x_0)          = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I)
    q(x_{t-1} | x_t, x_0) = N(mu_q(x_t, x_0), sigma_q^2(t) I)

    mu_q = [sqrt(alpha_t)(1 - alpha_bar_{t-1}) x_t + sqrt(alpha_bar_{t-1})(1 - alpha_t) x_0] / (1 - alpha_bar_t)
    sigma_q^2(t) = (1 - alpha_t)(1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)

For the constant schedule alpha_bar_t = alpha^t and these are the assignment's
formulas. ``t`` is an int or a LongTensor of shape [B] (one t per image).
"""

from __future__ import annotations

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


def posterior_coefs(schedule: Schedule):
    """Per-t tensors (c_x0, c_xt, var) with mu_q = c_x0 x_0 + c_xt x_t, for t = 1..T (index 0 unused).

        c_x0(t) = sqrt(alpha_bar_{t-1}) (1 - alpha_t) / (1 - alpha_bar_t)
        c_xt(t) = sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)
        var(t)  = (1 - alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t)
    """
    a = schedule.alpha
    ab = schedule.alpha_bar
    ab_prev = torch.cat([torch.ones(1, dtype=ab.dtype), ab[:-1]])
    denom = 1.0 - ab
    denom[0] = 1.0  # t = 0 has no posterior; keep the row finite
    c_x0 = ab_prev.sqrt() * (1.0 - a) / denom
    c_xt = a.sqrt() * (1.0 - ab_prev) / denom
    var = (1.0 - a) * (1.0 - ab_prev) / denom
    c_x0[0], c_xt[0], var[0] = 1.0, 0.0, 0.0
    return c_x0, c_xt, var


def posterior(schedule: Schedule, x_t: torch.Tensor, x0: torch.Tensor, t):
    """Mean and variance of q(x_{t-1} | x_t, x_0) for t >= 1 (the variance is 0 at t = 1)."""
    _check_t(schedule, t, 1)
    _same_shape(x_t, x0, "x_t", "x_0")
    # not on a hot path (the sampler uses posterior_coefs), so it can afford a device read-back
    for name, v in (("x_t", x_t), ("x_0", x0)):
        if not bool(torch.isfinite(v).all()):
            raise ValueError(f"the posterior was given a {name} that contains NaN or infinite values.")
    c_x0, c_xt, var = posterior_coefs(schedule)
    mean = _at(c_x0, t, x0) * x0 + _at(c_xt, t, x_t) * x_t
    return mean, _at(var, t, x0)


def posterior_table(schedule: Schedule, device="cpu", dtype=torch.float32):
    """(c_x0, c_xt, sigma_q) of :func:`posterior_coefs` as device tensors, for loops that must not read back."""
    c_x0, c_xt, var = posterior_coefs(schedule)
    return tuple(c.to(device, dtype) for c in (c_x0, c_xt, var.sqrt()))


def reverse_step(table, x_t: torch.Tensor, x0_hat: torch.Tensor, t: int, noise: torch.Tensor | None):
    """One step of the model p(x_{t-1} | x_t) = q(x_{t-1} | x_t, x_0 = x̂_0(x_t, t)), returned as (x_{t-1}, mean):

        mean    = c_x0(t) x̂_0 + c_xt(t) x_t          (the posterior mean mu_q(x_t, x̂_0))
        x_{t-1} = mean + sigma_q(t) noise,  noise ~ N(0, I)

    At t = 1 sigma_q(1) = 0 and x_0 is the mean (DDPM's decoder mean), whatever ``noise`` is.
    ``table`` is :func:`posterior_table` of the schedule; ``t`` an integer step.
    """
    c_x0, c_xt, std = table
    mean = c_x0[t] * x0_hat + c_xt[t] * x_t
    if t <= 1 or noise is None:
        return mean, mean
    return mean + std[t] * noise, mean


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
