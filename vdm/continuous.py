"""Continuous-time VDM (Kingma et al. 2021) with a learned noise schedule.

The schedule is gamma(t) = -log SNR(t) for t in [0, 1], a monotone network (:class:`GammaNet`).
The forward process follows from it::

    alpha_t^2 = sigmoid(-gamma(t)),  sigma_t^2 = sigmoid(gamma(t)),  z_t = alpha_t x + sigma_t eps

-ELBO in nats per image, three terms (Kingma et al. eqs. 11 and 17)::

    prior           KL(q(z_1 | x) || N(0, I))
    reconstruction  -log p(x | z_0): the project's decoder (vdm.elbo), mean x̂_0(z_0, 0), std sigma_0
    diffusion       L_inf = -1/2 E_{t~U(0,1)} SNR'(t) ||x - x̂_0(z_t, t)||^2
                          =  1/2 E_t gamma'(t) exp(-gamma(t)) ||x - x̂_0(z_t, t)||^2
                          (=  1/2 E_t gamma'(t) ||eps - eps_hat||^2 for an eps model)

t is drawn antithetically (VDM's low-discrepancy sampler): one u ~ U(0, 1) per batch and
t_i = (u + i/B) mod 1, each t_i uniform, together a stratified grid.

The discrete view of the same model (:func:`learned_schedule`): T steps with
alpha_bar_t = sigmoid(-gamma(t/T)), a vdm.schedule.Schedule of kind "learned" whose params
are the gamma network's weights (so a checkpoint's sidecar rebuilds it). Every discrete-time
function (vdm.elbo, the posterior, the sampler) then applies unchanged. Its denoising-matching
sum 1/2 sum_t (SNR((t-1)/T) - SNR(t/T)) ||x_0 - x̂_0||^2 is a Riemann-Stieltjes sum of L_inf's
integral and tends to it at the rate 1/T (tests/core/test_core_learned_schedule.py).

The network sees time as a step, net(z, T t): at t = s/T that is the discrete view's step s.

Training (``vdm train --schedule learned``) minimises the whole -ELBO in bits per dimension with
respect to the network and the schedule together, as VDM's released code does
(experiment_vdm.py: the gradient of bpd with respect to all parameters); the paper's separate
variance-minimising update of the schedule's interior is not used. The endpoints gamma(0),
gamma(1) move through the reconstruction and prior terms, the interior through the estimate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vdm import data as datasets
from vdm.config import PREDICTIONS, WEIGHTINGS
from vdm.denoiser import SIGMA_DATA, precond_from_alpha_bar
from vdm.gamma import GAMMA_MAX, GAMMA_MIN, N_FEATURES, NONLINEAR_INIT, GammaNet  # noqa: F401 (re-exported)
from vdm.gaussian import discretized_gaussian_log_likelihood, mc_standard_error, nats_to_bpd, prior_kl_nats
from vdm.schedule import learned_schedule  # noqa: F401 (re-exported: the discrete view of a GammaNet)

# the schedule's optimizer group steps this many times --lr: Adam moves a parameter by about lr a step,
# and gamma's endpoints (in nats of log SNR, 18 apart) would otherwise take thousands of CPU steps to move
GAMMA_LR_SCALE = 10.0
RECON_EVERY = 8  # training: the reconstruction term on every 8th image of a batch (one more row per 8)


# -- the discrete view ----------------------------------------------------------------------
def gamma_of(schedule) -> GammaNet:
    """The gamma network of a learned Schedule (its params), a ValueError for any other kind."""
    if getattr(schedule, "kind", None) != "learned":
        raise ValueError(f"only a learned schedule has a gamma network, not the {getattr(schedule, 'kind', '?')} one.")
    return GammaNet.from_params(schedule.params)


def snr_curve(schedule, points: int = 201):
    """(t in [0, 1], log SNR(t)) as float64 tensors: the curve a face draws for a run's schedule.

    Learned: log SNR = -gamma(t) on ``points`` evenly spaced t in [0, 1], both ends included
    (at t = 0 it is finite: gamma(0) is a learned endpoint). Any other kind: the discrete values
    log SNR(s) at t = s/T, s = 1..T (t = 0 is x_0 itself, SNR infinite).
    """
    if schedule.kind == "learned":
        if isinstance(points, bool) or not isinstance(points, int) or points < 2:
            raise ValueError(f"points must be a whole number of at least 2, got {points!r}.")
        t = torch.linspace(0.0, 1.0, points, dtype=torch.float64)
        with torch.no_grad():
            return t, -gamma_of(schedule)(t)
    T = schedule.T
    return torch.arange(1, T + 1, dtype=torch.float64) / T, schedule.log_snr[1:].double()


# -- the continuous-time -ELBO ----------------------------------------------------------------
def antithetic_times(n: int, generator=None, device="cpu") -> torch.Tensor:
    """t_i = (u + i/n) mod 1, i = 0..n-1, one u ~ U(0, 1): each t_i ~ U(0, 1), the n of them stratified."""
    u = torch.rand((), generator=generator, device=device)
    return torch.remainder(u + torch.arange(n, device=device, dtype=torch.float32) / n, 1.0)


def iid_times(n: int, generator=None, device="cpu") -> torch.Tensor:
    """t_i ~ U(0, 1) independently (the sampler antithetic_times improves on)."""
    return torch.rand(n, generator=generator, device=device)


def _view(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape + (1,) * (like.ndim - v.ndim))


def diffuse(x0: torch.Tensor, g: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = sqrt(sigmoid(-gamma)) x + sqrt(sigmoid(gamma)) eps, with gamma per image ([B])."""
    g = _view(g.to(x0.dtype), x0)
    return torch.sigmoid(-g).sqrt() * x0 + torch.sigmoid(g).sqrt() * eps




def _check_prediction(prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise ValueError(f"the continuous-time loss takes prediction {', '.join(PREDICTIONS)}, not {prediction!r}.")


def precond_at(g: torch.Tensor):
    """(c_skip, c_out, c_in) per image at noise gamma = g: vdm.denoiser.precond_coefs's formula, handed the one
    thing it reads of a schedule, alpha_bar = sigmoid(-gamma) (in float64: near t = 0 it is within 1e-6 of 1)."""
    return precond_from_alpha_bar(torch.sigmoid(-g.double()))


def model_output(net, z: torch.Tensor, steps: torch.Tensor, g: torch.Tensor, prediction: str):
    """(raw, x̂_0) of the network at z with noise gamma = g ([B]) and time input ``steps`` (T t).

    raw is what L_inf compares: eps_hat for eps, x̂_0 otherwise. x̂_0: the output itself (x0);
    (z - sigma eps_hat) / alpha (eps); c_skip z + c_out F(c_in z) (x0-precond), as vdm.denoiser's
    Denoiser forms it at a discrete step.
    """
    _check_prediction(prediction)
    if prediction == "x0-precond":
        c_skip, c_out, c_in = (_view(c.to(z.dtype), z) for c in precond_at(g))
        x0_hat = c_skip * z + c_out * net(c_in * z, steps).float()
        return x0_hat, x0_hat
    out = net(z, steps).float()
    if prediction == "x0":
        return out, out
    gv = _view(g.to(z.dtype), z)
    return out, (z - torch.sigmoid(gv).sqrt() * out) / torch.sigmoid(-gv).sqrt()


def diffusion_nats(g: torch.Tensor, dg: torch.Tensor, x0: torch.Tensor, eps: torch.Tensor,
                   out: torch.Tensor, prediction: str) -> torch.Tensor:
    """The integrand of L_inf per image, at the t that gave gamma = g and gamma' = dg (``out``: model_output's raw):

        x0, x0-precond:  1/2 gamma'(t) exp(-gamma(t)) ||x_0 - x̂_0||^2   (= -1/2 SNR'(t) ||x_0 - x̂_0||^2)
        eps: 1/2 gamma'(t) ||eps - eps_hat||^2             (the same number: x_0 - x̂_0 = eps_hat - eps over sqrt(SNR))
    """
    _check_prediction(prediction)
    if prediction == "eps":
        return 0.5 * dg * (eps - out).pow(2).flatten(1).sum(1)
    return 0.5 * dg * torch.exp(-g) * (x0 - out).pow(2).flatten(1).sum(1)




def edm_weight(g: torch.Tensor) -> torch.Tensor:
    """w(gamma) = 1 + e^gamma / sigma_d^2 = 1 + 1 / (SNR sigma_d^2): the factor that turns the ELBO's integrand into EDM's loss.

    The ELBO weights ||x_0 - x̂_0||^2 by 1/2 gamma' SNR. For x0-precond, x_0 - x̂_0 = c_out (F* - F) and
    SNR c_out^2 = SNR sigma_d^2 / (1 + SNR sigma_d^2) (vdm.denoiser.precond_coefs), so the network's own
    output F is weighted by 1/2 gamma' SNR sigma_d^2 / (1 + SNR sigma_d^2): gamma' at high SNR but
    SNR sigma_d^2 gamma' at low SNR (3e-5 gamma' at log SNR -9), where a sample's shapes are decided.
    Times w, the weight of ||F* - F||^2 is 1/2 gamma'(t) exactly, i.e. 1/2 d(log SNR) : every noise
    level counts alike, whatever the schedule (EDM's lambda = 1/c_out^2 in x_0). w -> 1 at high SNR,
    so the small-t terms, which hold the bound, keep the ELBO's weight.
    """
    return 1.0 + torch.exp(g) / SIGMA_DATA ** 2


def _prior_nats(g1: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
    """KL(N(alpha_1 x, sigma_1^2) || N(0, I)) per image, alpha_1^2 = sigmoid(-gamma(1)), analytic."""
    return prior_kl_nats(_view(torch.sigmoid(-g1).to(x0.dtype), x0), x0)


def _reconstruction_nats(x0: torch.Tensor, x0_hat: torch.Tensor, g0: torch.Tensor) -> torch.Tensor:
    """-log p(x_0 | z_0) per image: the discretized Gaussian of vdm.elbo, mean x̂_0(z_0, 0), std sqrt(sigmoid(gamma(0)))."""
    std = torch.sigmoid(g0).sqrt()
    return -discretized_gaussian_log_likelihood(x0, x0_hat, std).flatten(1).sum(1).to(x0.dtype)


def vlb_terms(net, gamma: GammaNet, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, eps0: torch.Tensor,
              recon_rows: torch.Tensor, T: int, prediction: str):
    """(diffusion [B], prior [B], reconstruction [len(recon_rows)]) in nats, with one network call.

    ``net(z, steps)`` is the raw network, called once on z_t (at steps T t) and, stacked under it,
    z_0 of the images ``recon_rows`` (at step 0). ``eps``, ``eps0``: the noise of z_t and z_0.
    """
    g_t, dg_t = gamma.with_derivative(t.float())
    z_t = diffuse(x0, g_t, eps)
    ends = gamma(torch.tensor([0.0, 1.0], device=x0.device))
    g0, g1 = ends[0], ends[1]
    x_r = x0[recon_rows]
    z_0 = diffuse(x_r, g0.expand(len(recon_rows)), eps0[recon_rows])
    steps = torch.cat([t.float() * T, torch.zeros(len(recon_rows), device=x0.device)])
    raw, x0_hat = model_output(net, torch.cat([z_t, z_0]), steps, torch.cat([g_t, g0.expand(len(recon_rows))]), prediction)
    B = x0.shape[0]
    diff = diffusion_nats(g_t, dg_t, x0, eps, raw[:B], prediction)
    recon = _reconstruction_nats(x_r, x0_hat[B:], g0)
    return diff, _prior_nats(g1, x0), recon


def recon_rows_of(n: int) -> torch.Tensor:
    """The rows of a global batch of n whose reconstruction term training estimates: every RECON_EVERY-th."""
    return torch.arange(0, n, RECON_EVERY)


def training_nats(net, gamma: GammaNet, x0, t, eps, eps0, rows: torch.Tensor, recon_scale: float,
                  T: int, prediction: str, weighting: str = "default"):
    """Per image, an unbiased estimate of -ELBO in nats: diffusion + prior, plus recon_scale * reconstruction
    on the images ``rows`` (recon_scale = global batch / rows kept in it, so the batch mean is unbiased).

    ``weighting`` "edm": (elbo, net_loss), both per image from the one network call; net_loss has the
    diffusion integrand times :func:`edm_weight` (a constant: the weight is not trained), the same
    prior and reconstruction. The trainer takes the network's gradient from net_loss and gamma's from
    the ELBO (vdm.train). "default": the ELBO alone.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {weighting!r}.")
    diff, prior, recon = vlb_terms(net, gamma, x0, t, eps, eps0, rows, T, prediction)
    elbo = (diff + prior).index_add(0, rows, recon * recon_scale)
    if weighting == "default":
        return elbo
    w = edm_weight(gamma(t.float()).detach())
    return elbo, (diff * w + prior).index_add(0, rows, recon * recon_scale)


@dataclass
class ContinuousELBO:
    """The continuous-time -ELBO's terms for a batch, nats per image ([B] tensors)."""

    reconstruction: torch.Tensor
    prior: torch.Tensor
    diffusion: torch.Tensor
    dims: int

    @property
    def total(self) -> torch.Tensor:
        """The sum in float64: at thousands of bits/dim a float32 sum rounds by whole nats."""
        return self.reconstruction.double() + self.prior.double() + self.diffusion.double()

    def terms(self) -> dict:
        return {"reconstruction": self.reconstruction, "prior": self.prior,
                "diffusion": self.diffusion, "total": self.total}


@torch.no_grad()
def continuous_elbo(denoiser, gamma: GammaNet, x0: torch.Tensor, generator=None, antithetic: bool = True,
                    t: torch.Tensor | None = None) -> ContinuousELBO:
    """-ELBO of x_0 in continuous time for a Denoiser of a learned run, every term on every image.

    t: antithetic draws (the default), iid ones, or the given [B] times. The network is called
    at steps T t with T = the denoiser's schedule's T, as in training.
    """
    if not torch.is_tensor(x0) or x0.ndim < 2 or not x0.is_floating_point() or x0.numel() == 0:
        raise ValueError(f"x_0 must be a non-empty float tensor [B, ...], got {type(x0).__name__} "
                         f"of shape {tuple(getattr(x0, 'shape', ()))}.")
    B = x0.shape[0]
    dev = generator.device if generator is not None else x0.device
    if t is None:
        t = (antithetic_times if antithetic else iid_times)(B, generator, dev)
    eps = torch.randn(x0.shape, generator=generator, device=dev, dtype=x0.dtype).to(x0.device)
    eps0 = torch.randn(x0.shape, generator=generator, device=dev, dtype=x0.dtype).to(x0.device)
    diff, prior, recon = vlb_terms(denoiser.net, gamma.to(x0.device), x0, t.to(x0.device), eps, eps0,
                                   torch.arange(B, device=x0.device), denoiser.schedule.T, denoiser.prediction)
    return ContinuousELBO(recon, prior, diff, x0[0].numel())


CONTINUOUS_TERMS = {"reconstruction": "reconstruction -log p(x0|z0)", "prior": "prior matching",
                    "diffusion": "diffusion loss L_inf (T -> infinity)", "total": "total (-ELBO), continuous time"}


def report_numbers(denoiser, images_uint8: torch.Tensor, batch_size: int = 128, seed: int = 0, device="cpu",
                   draws: int = 2) -> dict:
    """A learned run's continuous-time -ELBO of the images, term by term (bits/dim and nats), as a dict.

    ``draws`` independent estimates per image (t, z_t, z_0 redrawn), averaged; with two or more the
    Monte Carlo standard error is vdm.elbo.mc_standard_error's, the images held fixed (None with one).
    """
    gamma = gamma_of(denoiser.schedule)
    g = torch.Generator(device=device).manual_seed(seed)
    rows = {k: [] for k in CONTINUOUS_TERMS}
    for _ in range(max(1, draws)):
        parts = [continuous_elbo(denoiser, gamma, datasets.to_float(images_uint8[i: i + batch_size].to(device)), generator=g)
                 for i in range(0, len(images_uint8), batch_size)]
        for k in CONTINUOUS_TERMS:
            rows[k].append(torch.cat([p.terms()[k] for p in parts]).double().cpu())
    est = {k: torch.stack(v) for k, v in rows.items()}  # [draws, n]
    dims, n = images_uint8[0].numel(), len(images_uint8)
    bpd = lambda v: float(nats_to_bpd(v, dims))  # noqa: E731
    g0, g1 = gamma.endpoints()
    mc = bpd(mc_standard_error(est["total"]))
    spread = bpd(est["total"].mean(0).std() / math.sqrt(n)) if n > 1 else float("nan")
    return {"gamma_0": g0, "gamma_1": g1, "times": "antithetic", "draws": max(1, draws),
            "bpd": {k: bpd(est[k].mean()) for k in CONTINUOUS_TERMS},
            "nats": {k: float(est[k].mean()) for k in CONTINUOUS_TERMS},
            "mc_standard_error": None if math.isnan(mc) else mc, "spread_over_sqrt_n": None if math.isnan(spread) else spread}


def report(numbers: dict) -> str:
    """The lines `vdm elbo` prints for a learned run, from :func:`report_numbers`'s dict."""
    g0, g1 = numbers["gamma_0"], numbers["gamma_1"]
    lines = ["", f"continuous time, the same model (vdm.continuous): gamma(0) = {g0:.3f}, gamma(1) = {g1:.3f}, i.e. "
             f"log SNR {-g0:.2f} at t = 0 to {-g1:.2f} at t = 1; antithetic t, {numbers['draws']} draw(s) per image",
             f"{'term':<40} {'bpd':>16} {'nats':>14}"]
    for k, label in CONTINUOUS_TERMS.items():
        lines.append(f"{label:<40} {numbers['bpd'][k]:>16.4f} {numbers['nats'][k]:>14.2f}")
    fmt = lambda v: f"{float('nan') if v is None else v:>16.4f}"  # noqa: E731
    lines.append(f"{'MC standard error':<40} {fmt(numbers['mc_standard_error'])}")
    lines.append(f"{'spread across images / sqrt(n)':<40} {fmt(numbers['spread_over_sqrt_n'])}")
    return "\n".join(lines)
