"""Both ELBOs of Luo's discrete-time VDM, term by term, in nats per image.

Every term is a loss (a positive number of nats); their sum is -ELBO >= -log p(x_0).

Exercise 2, the consistency form (Luo eq. 45)::

    -ELBO = -E_{q(x_1|x_0)} log p(x_0|x_1)                               reconstruction
            + E_{q(x_{T-1}|x_0)} KL(q(x_T|x_{T-1}) || N(0, I))           prior matching
            + sum_{t=1}^{T-1} E_q [log q(x_t|x_{t-1}) - log p(x_t|x_{t+1})]   consistency

Exercise 3, the denoising-matching form (Luo eq. 58)::

    -ELBO = -E_{q(x_1|x_0)} log p(x_0|x_1)                               reconstruction
            + KL(q(x_T|x_0) || N(0, I))                                  prior matching
            + sum_{t=2}^{T} E_{q(x_t|x_0)} KL(q(x_{t-1}|x_t,x_0) || p(x_{t-1}|x_t))   denoising matching

with the model p(x_{t-1}|x_t) = q(x_{t-1} | x_t, x_0 = x̂_0(x_t, t)) and the
decoder p(x_0|x_1) a Gaussian of mean x̂_0(x_1, 1) and variance 1 - alpha_1,
discretized over the 256 pixel bins (as in DDPM).

A note on the consistency term: Luo writes it as
E_{q(x_{t-1},x_{t+1}|x_0)} KL(q(x_t|x_{t-1}) || p(x_t|x_{t+1})), which draws x_t
independently of x_{t+1}. Under q they are not independent, and that
expression is not the ELBO. Here x_{t-1}, x_t, x_{t+1} are drawn jointly from
the chain and the log-ratio is evaluated at that x_t: an unbiased estimate, so
both forms agree in expectation (tests/core/test_core_elbo.py checks it).

Estimators: ``full`` sums all T-1 matching terms (T-1 network calls);
``uniform`` draws one t per image and multiplies by T-1 (one network call).
Bits per dimension live apart, in :func:`nats_to_bpd` and :meth:`ELBO.bpd`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from vdm.diffusion import forward_step, posterior, q_mean_var, q_sample, _check_t
from vdm.schedule import Schedule

FORMS = ("consistency", "denoising")
ESTIMATORS = ("full", "uniform")
TERM_NAMES = ("reconstruction", "prior", "matching")


def nats_to_bpd(nats, dims: int):
    """nats per image -> bits per dimension: nats / (D ln 2)."""
    return nats / (dims * math.log(2.0))


def gaussian_kl(m1, v1, m2, v2):
    """KL(N(m1, v1) || N(m2, v2)) per element: 1/2 [log(v2/v1) + (v1 + (m1 - m2)^2)/v2 - 1]."""
    return 0.5 * (torch.log(v2 / v1) + (v1 + (m1 - m2) ** 2) / v2 - 1.0)


def gaussian_log_prob(x, m, v):
    """log N(x; m, v) per element: -1/2 [log(2 pi v) + (x - m)^2 / v]."""
    return -0.5 * (torch.log(2 * math.pi * v) + (x - m) ** 2 / v)


def discretized_gaussian_log_likelihood(x0: torch.Tensor, mean: torch.Tensor, std) -> torch.Tensor:
    """log P(x_0) per element under N(mean, std^2) integrated over x_0's pixel bin.

    x_0 in [-1, 1] on the 256 levels k/127.5 - 1. A bin is x_0 +- 1/255, except the
    edge bins, which extend to -inf and +inf so that the 256 probabilities sum to 1.
    Computed in float64 with log_ndtr for the tails.
    """
    x = x0.double()
    m = mean.double()
    s = torch.as_tensor(std, dtype=torch.float64, device=x.device)
    upper = (x - m + 1.0 / 255) / s
    lower = (x - m - 1.0 / 255) / s
    log_cdf_upper = torch.special.log_ndtr(upper)
    log_sf_lower = torch.special.log_ndtr(-lower)
    # P(lower < z < upper) in log space: log(Phi(u) - Phi(l)), stable on both tails.
    mid = torch.where(
        lower > 0,
        log_sf_lower + torch.log1p(-torch.exp(torch.special.log_ndtr(-upper) - log_sf_lower).clamp(max=1 - 1e-15)),
        log_cdf_upper + torch.log1p(-torch.exp(torch.special.log_ndtr(lower) - log_cdf_upper).clamp(max=1 - 1e-15)),
    )
    out = torch.where(x < -0.999, log_cdf_upper, torch.where(x > 0.999, log_sf_lower, mid))
    return out.to(x0.dtype if x0.dtype.is_floating_point else torch.float32)


def _sum_dims(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).sum(1)


@dataclass
class ELBO:
    """The terms of -ELBO for a batch, each in nats per image ([B] tensors).

    ``per_t[:, t]`` holds matching term t for the full estimator (index 0 and,
    for the denoising form, index 1 are zero) and is None for ``uniform``.
    """

    form: str
    estimator: str
    reconstruction: torch.Tensor
    prior: torch.Tensor
    matching: torch.Tensor
    dims: int
    per_t: torch.Tensor | None = field(default=None, repr=False)

    @property
    def total(self) -> torch.Tensor:
        """-ELBO in nats per image: an upper bound on -log p(x_0)."""
        return self.reconstruction + self.prior + self.matching

    def terms(self) -> dict:
        return {"reconstruction": self.reconstruction, "prior": self.prior,
                "matching": self.matching, "total": self.total}

    def bpd(self) -> dict:
        """Batch means of every term in bits per dimension."""
        return {k: float(nats_to_bpd(v.double().mean(), self.dims)) for k, v in self.terms().items()}

    def nats(self) -> dict:
        return {k: float(v.double().mean()) for k, v in self.terms().items()}


def decoder_std(schedule: Schedule) -> float:
    """The decoder's standard deviation sqrt(1 - alpha_1): the noise x_1 carries (DDPM's sigma_1)."""
    return float(schedule.beta[1].sqrt())


def reconstruction_nats(denoiser, schedule: Schedule, x0: torch.Tensor, generator=None) -> torch.Tensor:
    """-log p(x_0 | x_1) at one x_1 ~ q(x_1 | x_0), per image."""
    x1 = q_sample(schedule, x0, 1, _randn(x0, generator))
    x0_hat = denoiser(x1, _full_t(x0, 1))
    return -_sum_dims(discretized_gaussian_log_likelihood(x0, x0_hat, decoder_std(schedule)))


def prior_nats(schedule: Schedule, x0: torch.Tensor) -> torch.Tensor:
    """KL(q(x_T | x_0) || N(0, I)) per image, analytic."""
    m, v = q_mean_var(schedule, x0, schedule.T)
    return _sum_dims(gaussian_kl(m, v.expand_as(m), torch.zeros_like(m), torch.ones_like(m)))


def matching_kl(schedule: Schedule, x_t: torch.Tensor, x0: torch.Tensor, x0_hat: torch.Tensor, t) -> torch.Tensor:
    """KL(q(x_{t-1}|x_t, x_0) || p(x_{t-1}|x_t)) per image (nats), with p = q(x_{t-1}|x_t, x̂_0), t >= 2.

    Both Gaussians share the variance sigma_q^2(t), so the KL is
    ||mu_q(x_t, x_0) - mu_q(x_t, x̂_0)||^2 / (2 sigma_q^2(t)), which equals
    1/2 (SNR(t-1) - SNR(t)) ||x_0 - x̂_0||^2.
    """
    _check_t(schedule, t, 2)
    mu_q, var = posterior(schedule, x_t, x0, t)
    mu_p, _ = posterior(schedule, x_t, x0_hat, t)
    return _sum_dims(gaussian_kl(mu_q, var.expand_as(mu_q), mu_p, var.expand_as(mu_p)))


def denoising_term(denoiser, schedule: Schedule, x0: torch.Tensor, t: torch.Tensor, generator=None) -> torch.Tensor:
    """The denoising-matching term :func:`matching_kl` at one x_t ~ q(x_t|x_0), per image, for t in 2..T."""
    _check_t(schedule, t, 2)
    x_t = q_sample(schedule, x0, t, _randn(x0, generator))
    return matching_kl(schedule, x_t, x0, denoiser(x_t, t), t)


def consistency_term(denoiser, schedule: Schedule, x_prev: torch.Tensor, x_t: torch.Tensor,
                     x_next: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """log q(x_t|x_{t-1}) - log p(x_t|x_{t+1}) per image, for t in 1..T-1, at a joint draw of the chain.

    p(x_t|x_{t+1}) = N(mu_q(x_{t+1}, x̂_0(x_{t+1}, t+1)), sigma_q^2(t+1)).
    """
    _check_t(schedule, t, 1)
    a = schedule.alpha.to(x_t.device, x_t.dtype)[t].view(-1, *([1] * (x_t.ndim - 1)))
    log_q = gaussian_log_prob(x_t, a.sqrt() * x_prev, (1 - a).expand_as(x_t))
    x0_hat = denoiser(x_next, t + 1)
    mu_p, var_p = posterior(schedule, x_next, x0_hat, t + 1)
    log_p = gaussian_log_prob(x_t, mu_p, var_p.expand_as(x_t))
    return _sum_dims(log_q - log_p)


def elbo(denoiser, schedule: Schedule, x0: torch.Tensor, form: str = "denoising",
         estimator: str = "uniform", generator: torch.Generator | None = None) -> ELBO:
    """-ELBO of x_0 (shape [B, C, H, W], values on the 256 levels of [-1, 1]) as an :class:`ELBO`."""
    if form not in FORMS:
        raise ValueError(f"form must be one of {', '.join(FORMS)}, got {form!r}.")
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {', '.join(ESTIMATORS)}, got {estimator!r}.")
    if not torch.is_tensor(x0) or x0.ndim < 2 or not x0.dtype.is_floating_point or x0.numel() == 0:
        raise ValueError(f"x_0 must be a non-empty float tensor [B, ...], got {type(x0).__name__} "
                         f"{getattr(x0, 'dtype', '')} of shape {tuple(getattr(x0, 'shape', ()))}.")
    if not torch.isfinite(x0).all():
        raise ValueError("x_0 contains NaN or infinite values.")
    B, T = x0.shape[0], schedule.T
    dims = x0[0].numel()
    recon = reconstruction_nats(denoiser, schedule, x0, generator)
    per_t = None
    if form == "denoising":
        prior = prior_nats(schedule, x0)
        if T < 2:
            matching = torch.zeros(B, dtype=x0.dtype, device=x0.device)
        elif estimator == "full":
            per_t = torch.zeros(B, T + 1, dtype=x0.dtype, device=x0.device)
            for t in range(2, T + 1):
                per_t[:, t] = denoising_term(denoiser, schedule, x0, _full_t(x0, t), generator)
            matching = per_t.sum(1)
        else:
            t = torch.randint(2, T + 1, (B,), generator=generator, device=_gen_device(generator)).to(x0.device)
            matching = (T - 1) * denoising_term(denoiser, schedule, x0, t, generator)
    else:
        prior, matching, per_t = _consistency(denoiser, schedule, x0, estimator, generator)
    return ELBO(form, estimator, recon, prior, matching, dims, per_t)


def _consistency(denoiser, schedule, x0, estimator, generator):
    B, T = x0.shape[0], schedule.T
    zero = torch.zeros(B, dtype=x0.dtype, device=x0.device)

    def prior_given(x_before_last):
        # KL(q(x_T | x_{T-1}) || N(0, I)), analytic given x_{T-1}
        a = float(schedule.alpha[T])
        m = math.sqrt(a) * x_before_last
        return _sum_dims(gaussian_kl(m, torch.full_like(m, 1 - a), torch.zeros_like(m), torch.ones_like(m)))

    if estimator == "full":
        per_t = torch.zeros(B, T + 1, dtype=x0.dtype, device=x0.device)
        x_prev = x0
        x_t = forward_step(schedule, x_prev, 1, _randn(x0, generator))
        for t in range(1, T):
            x_next = forward_step(schedule, x_t, t + 1, _randn(x0, generator))
            per_t[:, t] = consistency_term(denoiser, schedule, x_prev, x_t, x_next, _full_t(x0, t))
            x_prev, x_t = x_t, x_next
        # x_prev is now x_{T-1} of the same chain
        return prior_given(x_prev), per_t.sum(1), per_t
    # one chain draw of x_{T-1} for the prior, one t in 1..T-1 for the consistency sum
    prior = prior_given(q_sample(schedule, x0, T - 1, _randn(x0, generator)))
    if T < 2:
        return prior, zero, None
    t = torch.randint(1, T, (B,), generator=generator, device=_gen_device(generator)).to(x0.device)
    x_prev = q_sample(schedule, x0, t - 1, _randn(x0, generator))
    x_t = forward_step(schedule, x_prev, t, _randn(x0, generator))
    x_next = forward_step(schedule, x_t, t + 1, _randn(x0, generator))
    return prior, (T - 1) * consistency_term(denoiser, schedule, x_prev, x_t, x_next, t), None


def _full_t(x: torch.Tensor, t: int) -> torch.Tensor:
    return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)


def _gen_device(generator):
    return generator.device if generator is not None else "cpu"


def _randn(like: torch.Tensor, generator) -> torch.Tensor:
    if generator is None:
        return torch.randn_like(like)
    return torch.randn(like.shape, generator=generator, device=generator.device, dtype=like.dtype).to(like.device)
