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
decoder p(x_0|x_1) a Gaussian of mean x̂_0(x_1, 1): for images discretized over the 256 pixel
bins (as in DDPM), a probability; for continuous data (2-D points, x_0 of shape [B, D]) its
density, so -ELBO bounds -log of a density and can be negative. Its standard deviation is a :class:`Decoder`: ``fixed``,
DDPM's sqrt(1 - alpha_1) (the assignment's, the default), or ``calibrated``, the
per-channel std that maximises the discretized likelihood of held-out images
other than the evaluated ones (:func:`calibrate_decoder`). Any std chosen without
looking at the evaluated images keeps -ELBO an upper bound on their -log p(x_0).

A note on the consistency term: Luo writes it as
E_{q(x_{t-1},x_{t+1}|x_0)} KL(q(x_t|x_{t-1}) || p(x_t|x_{t+1})), which draws x_t
independently of x_{t+1}. Under q they are not independent, and that
expression is not the ELBO. Here x_{t-1}, x_t, x_{t+1} are drawn jointly from
the chain and the log-ratio is evaluated at that x_t: an unbiased estimate, so
both forms agree in expectation (tests/core/test_core_elbo.py checks it).

Estimators of the sum over t: ``full`` sums all T-1 matching terms (T-1 network
calls); ``uniform`` draws one t per image and multiplies by T-1 (one network
call); ``importance`` draws one t per image from a proposal p(t) and weights the
term by 1/p(t) (unbiased for any p > 0; lower variance when p(t) follows the
terms' size, see :func:`pilot_proposal`). Bits per dimension live apart, in
:func:`nats_to_bpd` and :meth:`ELBO.bpd`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch

from vdm.denoiser import precond_coefs
from vdm.diffusion import _check_t, forward_step, posterior, q_sample
from vdm.gaussian import (discretized_gaussian_log_likelihood, gaussian_kl, gaussian_log_prob,  # noqa: F401
                          mc_standard_error, nats_to_bpd, prior_kl_nats)  # (re-exported: every ELBO reader's names)
from vdm.schedule import Schedule

FORMS = ("consistency", "denoising")
ESTIMATORS = ("full", "uniform", "importance")
# Negative log-likelihoods in bits/dim to put an ELBO next to: a model uniform over the 256 levels,
# and the published CIFAR-10 test-set bounds (other data than the embedded shapes).
from vdm.config import UNIFORM_BPD  # noqa: E402,F401 (re-exported: vdm.elbo.UNIFORM_BPD)
CIFAR10_BPD = (("DDPM (Ho et al. 2020)", 3.70), ("improved DDPM (Nichol & Dhariwal 2021)", 2.94),
               ("VDM (Kingma et al. 2021)", 2.64))


def _sum_dims(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).sum(1)


@dataclass
class ELBO:
    """The terms of -ELBO for a batch, each in nats per image ([B] tensors).

    ``per_t[:, t]`` holds matching term t for the full estimator (index 0 and,
    for the denoising form, index 1 are zero) and is None for the one-t estimators.
    ``decoder`` names the decoder of the reconstruction term (``fixed`` or ``calibrated``)
    and ``decoder_std`` is its standard deviation (one per channel, or one number).
    """

    form: str
    estimator: str
    reconstruction: torch.Tensor
    prior: torch.Tensor
    matching: torch.Tensor
    dims: int
    per_t: torch.Tensor | None = field(default=None, repr=False)
    decoder: str = "fixed"
    decoder_std: torch.Tensor | None = field(default=None, repr=False)
    continuous: bool = False  # the decoder is a density (points): the terms are nats of a density

    def nats_per_dim(self) -> dict:
        """Batch means of every term in nats per dimension."""
        return {k: float(v.double().mean()) / self.dims for k, v in self.terms().items()}

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

    def with_decoder(self, reconstruction: torch.Tensor, decoder: "Decoder") -> "ELBO":
        """The same prior and matching terms with another decoder's reconstruction term."""
        return replace(self, reconstruction=reconstruction, decoder=decoder.name, decoder_std=decoder.std,
                       continuous=decoder.continuous)


@dataclass(frozen=True)
class Decoder:
    """The decoder p(x_0|x_1) = N(x̂_0(x_1, 1), std^2): its name, std ([C] or a 0-d tensor) and whether it is a
    density (``continuous``, for points) or discretized over the 256 pixel levels (images)."""

    name: str
    std: torch.Tensor
    continuous: bool = False

    def describe(self, scale: float = 127.5) -> str:
        """'fixed, std 1.19 grey levels' (std x 127.5: one grey level is 2/255 of [-1, 1]), or for a
        density 'fixed Gaussian density, std 0.0126'."""
        if self.continuous:
            return f"{self.name} Gaussian density, std " + ", ".join(f"{float(v):.3g}" for v in self.std.flatten())
        levels = ", ".join(f"{float(v) * scale:.3g}" for v in self.std.flatten())
        return f"{self.name}, std {levels} grey levels"

    def log_likelihood(self, x0: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """log p(x_0 | x_1) per element, float64: log N(x_0; mean, std^2) (a density), or its integral over
        x_0's pixel bin (:func:`discretized_gaussian_log_likelihood`)."""
        std = self.shaped(x0)
        if self.continuous:
            return gaussian_log_prob(x0.double(), mean.double(), std.pow(2))
        return discretized_gaussian_log_likelihood(x0.double(), mean.double(), std)

    def shaped(self, x: torch.Tensor) -> torch.Tensor:
        """std broadcast against a batch [B, C, ...]: one value per channel (dim 1), or one for all."""
        std = self.std.to(x.device, torch.float64)
        return std.view((1, -1) + (1,) * (x.ndim - 2)) if std.ndim else std


def decoder_std(schedule: Schedule) -> float:
    """The decoder's standard deviation sqrt(1 - alpha_1): the noise x_1 carries (DDPM's sigma_1)."""
    return float(schedule.beta[1].sqrt())


def fixed_decoder(schedule: Schedule, continuous: bool = False) -> Decoder:
    """DDPM's decoder, std sqrt(1 - alpha_1) (the assignment's); ``continuous``: a density, for points."""
    return Decoder("fixed", torch.tensor(decoder_std(schedule), dtype=torch.float64), continuous)


def is_continuous(x0: torch.Tensor) -> bool:
    """Whether x_0 is continuous data (points [B, D]) rather than images on the 256 levels ([B, C, H, W])."""
    return x0.ndim == 2


def decoder_log_likelihood(x0: torch.Tensor, x0_hat: torch.Tensor, std: torch.Tensor,
                           continuous: bool = False) -> torch.Tensor:
    """sum over items and pixels of log p(x_0), per channel ([C] nats), under N(x̂_0, std_c^2), discretized or a density.

    ``std`` holds one value per channel, [C] (a coordinate of a point is a channel).
    """
    ll = Decoder("", torch.as_tensor(std, dtype=torch.float64), continuous).log_likelihood(x0, x0_hat)
    return ll.transpose(0, 1).flatten(1).sum(1)


def calibrate_decoder(denoiser, schedule: Schedule, x_cal: torch.Tensor, generator=None,
                      per_channel: bool = True, lo: float = 1e-4, hi: float = 2.0, iters: int = 60) -> Decoder:
    """The ``calibrated`` decoder: the std that maximises sum log P(x_cal | x̂_0(x_1, 1), std) on images ``x_cal``.

    x_cal must not be the images the ELBO is then evaluated on (held out from them: ``vdm elbo``
    takes the last images of the test split). One x_1 ~ q(x_1|x_cal) each; the likelihood then
    separates over channels, and each channel's std (or one for all, ``per_channel=False``) is
    found by a 1-D search over log std in [lo, hi]: a grid of 41 points, then golden-section
    search between the best point's neighbours.
    """
    with torch.no_grad():
        x1 = q_sample(schedule, x_cal, 1, _randn(x_cal, generator))
        x_hat = denoiser(x1, _full_t(x_cal, 1))
    C, continuous = x_cal.shape[1], is_continuous(x_cal)
    if not per_channel:  # one std for all channels: the channels as one
        x_cal, x_hat, C = x_cal.reshape(-1, 1, *x_cal.shape[2:]), x_hat.reshape(-1, 1, *x_hat.shape[2:]), 1

    def f(log_std: torch.Tensor) -> torch.Tensor:  # [K, C] log stds -> [K, C] log-likelihoods
        # one candidate at a time: K copies of the calibration batch in float64 would be gigabytes
        return torch.stack([decoder_log_likelihood(x_cal, x_hat, v.exp(), continuous) for v in log_std])

    grid = torch.linspace(math.log(lo), math.log(hi), 41, dtype=torch.float64)
    vals = f(grid[:, None].expand(-1, C).contiguous())
    best = vals.argmax(0)
    a = grid[(best - 1).clamp(min=0)]
    b = grid[(best + 1).clamp(max=len(grid) - 1)]
    r = (math.sqrt(5) - 1) / 2
    for _ in range(iters):  # golden section on each channel's bracket [a, b] at once
        c, d = b - r * (b - a), a + r * (b - a)
        fc, fd = f(torch.stack([c, d]))
        left = fc >= fd
        b, a = torch.where(left, d, b), torch.where(left, a, c)
    std = ((a + b) / 2).exp()
    return Decoder("calibrated", std if per_channel else std[0], continuous)


def reconstruction_nats(denoiser, schedule: Schedule, x0: torch.Tensor, generator=None,
                        decoder: Decoder | None = None) -> torch.Tensor:
    """-log p(x_0 | x_1) at one x_1 ~ q(x_1 | x_0), per item, under ``decoder`` (default: the fixed one, a
    density for points)."""
    decoder = decoder or fixed_decoder(schedule, is_continuous(x0))
    x1 = q_sample(schedule, x0, 1, _randn(x0, generator))
    x0_hat = denoiser(x1, _full_t(x0, 1))
    return -_sum_dims(decoder.log_likelihood(x0, x0_hat).to(x0.dtype))


def prior_nats(schedule: Schedule, x0: torch.Tensor) -> torch.Tensor:
    """KL(q(x_T | x_0) || N(0, I)) per image, analytic."""
    return prior_kl_nats(float(schedule.alpha_bar[schedule.T]), x0)


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
    # 1 - alpha_t from float64: a learned schedule's first steps (1 - alpha_t ~ 1e-8) round to alpha_t = 1 in float32
    b = schedule.beta.to(x_t.device, x_t.dtype)[t].view(-1, *([1] * (x_t.ndim - 1)))
    log_q = gaussian_log_prob(x_t, a.sqrt() * x_prev, b.expand_as(x_t))
    x0_hat = denoiser(x_next, t + 1)
    mu_p, var_p = posterior(schedule, x_next, x0_hat, t + 1)
    log_p = gaussian_log_prob(x_t, mu_p, var_p.expand_as(x_t))
    return _sum_dims(log_q - log_p)


def elbo(denoiser, schedule: Schedule, x0: torch.Tensor, form: str = "denoising",
         estimator: str = "uniform", generator: torch.Generator | None = None,
         decoder: Decoder | None = None, proposal: torch.Tensor | None = None) -> ELBO:
    """-ELBO of x_0 (images [B, C, H, W] on the 256 levels of [-1, 1], or points [B, D]) as an :class:`ELBO`.

    ``decoder``: the reconstruction term's (default :func:`fixed_decoder`: discretized for images, a
    density for points). ``proposal``: p(t) for
    ``importance``, a [T+1] tensor over the form's range of t (default :func:`snr_proposal`).
    """
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
    decoder = decoder or fixed_decoder(schedule, is_continuous(x0))
    if estimator == "importance" and T >= 2:
        proposal = _check_proposal(schedule, form, snr_proposal(schedule, form) if proposal is None else proposal)
    recon = reconstruction_nats(denoiser, schedule, x0, generator, decoder)
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
            t, w = _draw_t(x0, 2, T, proposal if estimator == "importance" else None, generator)
            matching = w * denoising_term(denoiser, schedule, x0, t, generator)
    else:
        prior, matching, per_t = _consistency(denoiser, schedule, x0, estimator, generator, proposal)
    return ELBO(form, estimator, recon, prior, matching, dims, per_t, decoder.name, decoder.std, decoder.continuous)


def t_range(schedule: Schedule, form: str) -> tuple[int, int]:
    """The t of the form's sum: 2..T (denoising matching), 1..T-1 (consistency)."""
    return (2, schedule.T) if form == "denoising" else (1, schedule.T - 1)


def proposal_from_sizes(size: torch.Tensor, lo: int, hi: int, mix: float = 0.1) -> torch.Tensor:
    """p(t) = (1 - mix) size_t / sum size + mix / (hi - lo + 1) on lo..hi, 0 elsewhere ([T+1], float64).

    The uniform share ``mix`` bounds every weight 1/p(t) by (hi - lo + 1) / mix, so a term the
    sizes underrate cannot blow the variance up.
    """
    size = size.double().cpu().clone()
    if not 0 < mix <= 1:
        raise ValueError(f"mix must lie in (0, 1], got {mix}.")
    size[:lo], size[hi + 1:] = 0.0, 0.0
    size = size.clamp(min=0).nan_to_num(0.0)
    p = torch.zeros_like(size)
    p[lo:hi + 1] = mix / (hi - lo + 1)
    if float(size.sum()) > 0:
        p += (1 - mix) * size / size.sum()
    return p


def snr_proposal(schedule: Schedule, form: str = "denoising", mix: float = 0.1) -> torch.Tensor:
    """A proposal that needs no model: each term's size for x̂_0 = c_skip(t) x_t (the Wiener filter, F = 0 in x0-precond).

    Its matching term is 1/2 (SNR(t-1) - SNR(t)) c_out(t)^2 per pixel (c_out^2 is that filter's
    mean squared error, :func:`vdm.denoiser.precond_coefs`); the consistency term t is given the
    size of matching term t + 1, whose x̂_0 it evaluates.
    """
    lo, hi = t_range(schedule, form)
    return proposal_from_sizes(_wiener_sizes(schedule, form), lo, hi, mix)


def _wiener_sizes(schedule: Schedule, form: str = "denoising") -> torch.Tensor:
    """[T+1] float64: each term's size for x̂_0 = c_skip(t) x_t (see :func:`snr_proposal`)."""
    snr = schedule.snr.double()
    size = torch.zeros(schedule.T + 1, dtype=torch.float64)
    _, c_out, _ = precond_coefs(schedule)
    size[2:] = 0.5 * (snr[1:-1] - snr[2:]) * c_out[2:] ** 2
    if form == "consistency":
        size = torch.cat([size[1:], size.new_zeros(1)])
    return size


def knot_proposal(denoiser, schedule: Schedule, x_pilot: torch.Tensor, knots: int = 32, generator=None,
                  mix: float = 0.1) -> torch.Tensor:
    """A pilot proposal for the denoising form at a fraction of :func:`pilot_proposal`'s cost: the pilot's
    sqrt(mean term_t^2) at ``knots`` evenly spaced t only, in between the Wiener-filter sizes of
    :func:`snr_proposal` scaled by the ratio model / Wiener, interpolated linearly in log between knots.

    The terms themselves change by orders of magnitude from t to t (through SNR(t-1) - SNR(t)); their
    ratio to the Wiener filter's, how much better than x̂_0 = c_skip x_t the model is, changes slowly.
    """
    lo, hi = t_range(schedule, "denoising")
    ts = torch.linspace(lo, hi, min(knots, hi - lo + 1)).round().long().unique()
    wiener = _wiener_sizes(schedule)
    with torch.no_grad():
        size = torch.stack([denoising_term(denoiser, schedule, x_pilot, _full_t(x_pilot, int(t)), generator)
                            .double().pow(2).mean().sqrt().cpu() for t in ts])
    log_ratio = (size.clamp(min=1e-300) / wiener[ts].clamp(min=1e-300)).log()
    every = torch.arange(lo, hi + 1, dtype=torch.float64)
    i = torch.searchsorted(ts.double(), every).clamp(1, len(ts) - 1) if len(ts) > 1 else None
    if i is None:
        ratio = log_ratio.exp().expand(len(every))
    else:
        t0, t1 = ts[i - 1].double(), ts[i].double()
        f = ((every - t0) / (t1 - t0)).clamp(0, 1)
        ratio = (log_ratio[i - 1] * (1 - f) + log_ratio[i] * f).exp()
    full = torch.zeros(schedule.T + 1, dtype=torch.float64)
    full[lo:hi + 1] = wiener[lo:hi + 1] * ratio
    return proposal_from_sizes(full, lo, hi, mix)


def pilot_proposal(denoiser, schedule: Schedule, x_pilot: torch.Tensor, form: str = "denoising",
                   generator=None, mix: float = 0.1) -> torch.Tensor:
    """A proposal from a pilot pass: the full estimator on images ``x_pilot``, p(t) ∝ sqrt(mean term_t^2).

    sqrt(E[term_t^2]) is the proposal that minimises the variance of a one-t estimate
    (for a term of one sign it is close to |E term_t|); mixed with uniform as in :func:`proposal_from_sizes`.
    """
    with torch.no_grad():
        per_t = elbo(denoiser, schedule, x_pilot, form, "full", generator).per_t
    lo, hi = t_range(schedule, form)
    if per_t is None:
        return proposal_from_sizes(torch.ones(schedule.T + 1), lo, hi, 1.0)
    return proposal_from_sizes(per_t.double().pow(2).mean(0).sqrt().cpu(), lo, hi, mix)


def _check_proposal(schedule: Schedule, form: str, p) -> torch.Tensor:
    lo, hi = t_range(schedule, form)
    p = torch.as_tensor(p, dtype=torch.float64).cpu()
    if p.shape != (schedule.T + 1,) or not bool(torch.isfinite(p).all()):
        raise ValueError(f"a proposal is a finite tensor of T + 1 = {schedule.T + 1} probabilities, got shape {list(p.shape)}.")
    if bool((p[lo:hi + 1] <= 0).any()) or abs(float(p[lo:hi + 1].sum()) - 1) > 1e-6:
        raise ValueError(f"a proposal must be positive on t = {lo}..{hi} and sum to 1 there.")
    return p


def _draw_t(x0: torch.Tensor, lo: int, hi: int, proposal: torch.Tensor | None, generator):
    """One t per image in lo..hi and its weight 1/p(t): uniform (weight hi - lo + 1) or from ``proposal``."""
    B = x0.shape[0]
    if proposal is None:
        t = torch.randint(lo, hi + 1, (B,), generator=generator, device=_gen_device(generator)).to(x0.device)
        return t, hi - lo + 1
    p = proposal[lo:hi + 1].to(_gen_device(generator))
    t = torch.multinomial(p, B, replacement=True, generator=generator) + lo
    w = 1.0 / proposal.to(x0.device, x0.dtype)[t.to(x0.device)]
    return t.to(x0.device), w


def _consistency(denoiser, schedule, x0, estimator, generator, proposal=None):
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
    t, w = _draw_t(x0, 1, T - 1, proposal if estimator == "importance" else None, generator)
    x_prev = q_sample(schedule, x0, t - 1, _randn(x0, generator))
    x_t = forward_step(schedule, x_prev, t, _randn(x0, generator))
    x_next = forward_step(schedule, x_t, t + 1, _randn(x0, generator))
    return prior, w * consistency_term(denoiser, schedule, x_prev, x_t, x_next, t), None


def _full_t(x: torch.Tensor, t: int) -> torch.Tensor:
    return torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)


def _gen_device(generator):
    return generator.device if generator is not None else "cpu"


def _randn(like: torch.Tensor, generator) -> torch.Tensor:
    if generator is None:
        return torch.randn_like(like)
    return torch.randn(like.shape, generator=generator, device=generator.device, dtype=like.dtype).to(like.device)
