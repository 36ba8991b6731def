"""The learned noise schedule (vdm.continuous, `vdm train --schedule learned`).

Independent routes: gamma's derivative against autograd and central differences; the discrete
schedule against sigmoid(-gamma(t/T)) computed here; the continuous-time loss against the
discrete-time denoising-matching sum of vdm.elbo as T grows, with the 1/T rate derived below;
antithetic against iid time sampling over repeated draws; a resumed run against one that was
never stopped.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
import torch.nn.functional as F
from torch import nn

from vdm import continuous
from vdm.checkpoint import check_compatible
from vdm.denoiser import Denoiser
from vdm.elbo import elbo
from vdm.metrics import read_all
from vdm.run import open_model, open_run
from vdm.schedule import Schedule, make_schedule
from vdm.train import TrainConfig, Trainer

DENSE = torch.linspace(0.0, 1.0, 20001, dtype=torch.float64)


def _wiggly(seed: int) -> continuous.GammaNet:
    """A random gamma far from linear: the nonlinear part as large as VDM's own initialisation."""
    net = continuous.GammaNet(seed=seed, nonlinear_init=1.0, n_features=64)
    with torch.no_grad():
        net.b2.normal_(0.0, 2.0, generator=torch.Generator().manual_seed(seed + 100))
        net.w2.mul_(4.0)
    return net


# -- the gamma network ---------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_gamma_is_monotone_with_its_endpoints_at_random_init(seed):
    g = _wiggly(seed)
    vals = g(DENSE).detach()
    assert bool((vals.diff() > 0).all())
    lo, hi = g.endpoints()
    vals = vals.detach()
    assert float(vals[0]) == pytest.approx(lo, abs=1e-9)
    assert float(vals[-1]) == pytest.approx(hi, abs=1e-9)
    # far from a straight line: the monotonicity is not that of the linear part
    line = lo + (hi - lo) * DENSE
    assert float((vals - line).abs().max()) > 0.2


def test_gamma_stays_monotone_after_steps_that_push_it_to_bend():
    """Adam steps with a large learning rate towards a target that decreases in the middle: gamma
    cannot follow it there (its weights are made positive) and stays increasing."""
    g = _wiggly(5)
    opt = torch.optim.Adam(g.parameters(), lr=0.05)
    t = torch.rand(256, generator=torch.Generator().manual_seed(0))
    target = -13 + 18 * t + 6 * torch.sin(6 * math.pi * t)  # decreasing in places
    before = g.to_params()
    for _ in range(200):
        opt.zero_grad()
        F.mse_loss(g(t), target).backward()
        opt.step()
    assert g.to_params() != before
    assert bool((g(DENSE).diff() > 0).all())


def test_gamma_derivative_is_autograd_and_central_differences():
    g = _wiggly(7)
    t = torch.linspace(0.01, 0.99, 37, dtype=torch.float64, requires_grad=True)
    val, d = g.with_derivative(t)
    (auto,) = torch.autograd.grad(val.sum(), t)
    assert torch.allclose(d, auto, rtol=1e-10, atol=0)
    h = 1e-5
    with torch.no_grad():
        fd = (g(t + h) - g(t - h)) / (2 * h)
    assert torch.allclose(d.detach(), fd, rtol=1e-7, atol=0)


def test_params_round_trip_exactly_and_bad_params_are_one_sentence():
    g = _wiggly(8)
    back = continuous.GammaNet.from_params(g.to_params())
    assert back.to_params() == g.to_params()
    assert torch.equal(back(DENSE), g(DENSE))
    for bad in ([1.0, 2.0], [0.0] * 7, [float("nan")] * 6, [True] * 6):
        with pytest.raises(ValueError):
            continuous.GammaNet.from_params(bad)


# -- the discrete view ---------------------------------------------------------------------------
@pytest.mark.parametrize("T", [1, 2, 50, 10000])
def test_the_discrete_schedule_is_sigmoid_of_minus_gamma(T):
    g = _wiggly(9)
    s = continuous.learned_schedule(g, T)
    t = torch.arange(1, T + 1, dtype=torch.float64) / T
    with torch.no_grad():
        want = 1.0 / (1.0 + torch.exp(g(t)))  # sigmoid(-gamma), written out
    assert s.kind == "learned" and s.T == T and float(s.alpha_bar[0]) == 1.0
    assert torch.allclose(s.alpha_bar[1:], want, rtol=1e-12, atol=0)
    # the schedule rebuilds from its config alone, as a checkpoint's sidecar stores it
    assert Schedule.from_config(s.config()) == s
    assert torch.equal(Schedule.from_config(s.config()).alpha, s.alpha)


def test_the_initial_learned_schedule_is_vdm_linear_gamma_within_a_few_percent():
    s = make_schedule("learned", 500)
    t = torch.arange(1, 501, dtype=torch.float64) / 500
    linear = continuous.GAMMA_MIN + (continuous.GAMMA_MAX - continuous.GAMMA_MIN) * t
    assert float((-s.log_snr[1:] - linear).abs().max()) < 0.05 * (continuous.GAMMA_MAX - continuous.GAMMA_MIN)
    assert make_schedule("learned", 500) == s  # a function of T alone


def test_snr_curve_is_minus_gamma_for_learned_and_the_discrete_log_snr_otherwise():
    s = continuous.learned_schedule(_wiggly(10), 40)
    t, ls = continuous.snr_curve(s, points=11)
    assert torch.equal(t, torch.linspace(0, 1, 11, dtype=torch.float64))
    with torch.no_grad():
        assert torch.allclose(ls, -continuous.gamma_of(s)(t), rtol=0, atol=0)
    assert float(ls[0]) == pytest.approx(-continuous.gamma_of(s).endpoints()[0])
    c = Schedule.cosine(30)
    t, ls = continuous.snr_curve(c)
    assert torch.equal(t, torch.arange(1, 31, dtype=torch.float64) / 30)
    assert torch.allclose(ls, torch.log(c.alpha_bar[1:] / (1 - c.alpha_bar[1:])), rtol=1e-12)
    with pytest.raises(ValueError):
        continuous.gamma_of(c)


# -- the continuous-time loss as the limit of the discrete one ------------------------------------
DELTA_SHAPE = (2, 3, 4, 4)


class PerturbedOracle(nn.Module):
    """x̂_0(z, step) = x_0 + delta f(step / T), f(s) = 1 + s: the true x_0 off by a fixed, t-dependent amount."""

    def __init__(self, x0: torch.Tensor, delta: torch.Tensor, T: int):
        super().__init__()
        self.x0, self.delta, self.T = x0, delta, T

    def forward(self, z, steps):
        # the continuous-time -ELBO stacks z_0 of the same images under z_t: one x_0 per row
        k = z.shape[0] // self.x0.shape[0]
        s = (steps.to(torch.float64) / self.T).view(-1, 1, 1, 1)
        return (self.x0.repeat(k, 1, 1, 1) + self.delta.repeat(k, 1, 1, 1) * (1 + s)).to(z.dtype)


def _data():
    g = torch.Generator().manual_seed(0)
    x0 = (torch.randint(0, 256, DELTA_SHAPE, generator=g).double() / 127.5 - 1.0)
    delta = 0.01 * torch.randn(DELTA_SHAPE, generator=g, dtype=torch.float64)
    return x0, delta


def _gauss_legendre(f, pieces: int = 200, nodes: int = 20) -> float:
    """int_0^1 f(t) dt, composite Gauss-Legendre in float64 (f smooth: exact to rounding here)."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    a = np.arange(pieces) / pieces
    t = (a[:, None] + (x[None] + 1) / (2 * pieces)).ravel()
    ww = np.tile(w / (2 * pieces), pieces)
    return float((torch.as_tensor(ww) * f(torch.as_tensor(t))).sum())


@pytest.mark.slow  # vdm.elbo's full sum at T = 10,000 (its posterior tables are rebuilt per t): about a minute
def test_the_continuous_loss_is_the_limit_of_the_discrete_one_at_rate_one_over_T():
    """Discrete: D_T = sum_{t=2}^T 1/2 (SNR((t-1)/T) - SNR(t/T)) ||x_0 - x̂_0(t)||^2 (vdm.elbo's denoising
    matching, full sum). Continuous: L = int_0^1 1/2 gamma' e^-gamma ||x_0 - x̂_0||^2 dt (vdm.continuous).

    With S = -SNR and g(s) = 1/2 ||x_0 - x̂_0(s)||^2, D_T is the right-endpoint Riemann-Stieltjes
    sum of int_{1/T}^1 g dS, so D_T - L = (1/(2T)) int_0^1 g' S' ds - g(0) S'(0)/T + O(1/T^2): the
    error times T tends to C = 1/2 int g' S' - g(0) S'(0). The O(1/T^2) remainder is C times about
    gamma'/T (S'' / S' = -gamma' + gamma''/gamma', gamma' ~ 18 here): the tolerance at T is 40/T of C.
    """
    x0, delta = _data()
    gamma = _wiggly(11).double()
    gamma_f = _wiggly(11)  # the same weights, float32 parameters, for the discrete schedules

    B = x0.shape[0]

    def integrand(t, b):  # 1/2 gamma' e^-gamma ||x_0 - x̂_0(t)||^2 of image b at N times t, through vdm.continuous
        with torch.no_grad():
            g, dg = gamma.with_derivative(t)
        xb = x0[b:b + 1].expand(len(t), *x0.shape[1:])
        x_hat = xb + delta[b:b + 1] * (1 + t.view(-1, 1, 1, 1))
        return continuous.diffusion_nats(g, dg, xb, None, x_hat, "x0")

    L = torch.tensor([_gauss_legendre(lambda t, b=b: integrand(t, b)) for b in range(B)], dtype=torch.float64)

    # C by the same quadrature: g(s) = 1/2 ||delta||^2 (1+s)^2, g' = ||delta||^2 (1+s), S' = gamma' e^-gamma
    d2 = delta.pow(2).flatten(1).sum(1)
    with torch.no_grad():
        def s_prime(t):
            g, dg = gamma.with_derivative(t)
            return dg * torch.exp(-g)
        half_int = 0.5 * _gauss_legendre(lambda t: (1 + t) * s_prime(t))
        C = d2 * half_int - 0.5 * d2 * float(s_prime(torch.zeros(1, dtype=torch.float64)))

    errs = {}
    for T in (100, 1000, 10000):
        s = continuous.learned_schedule(gamma_f, T)
        assert torch.allclose(continuous.gamma_of(s).double()(torch.tensor([0.5], dtype=torch.float64)),
                              gamma(torch.tensor([0.5], dtype=torch.float64)))
        den = Denoiser(PerturbedOracle(x0, delta, T), s, "x0")
        D = elbo(den, s, x0, "denoising", "full", generator=torch.Generator().manual_seed(1)).matching
        errs[T] = D - L
        assert torch.allclose(T * errs[T], C, rtol=40 / T, atol=0), (T, T * errs[T], C)
    # and so the discrete sum converges to the continuous loss: 1/T, tenfold per decade
    rel = {T: float((errs[T].abs() / L).max()) for T in errs}
    assert rel[10000] < rel[1000] / 8 < rel[100] / 64
    assert rel[10000] < 2e-3


def test_antithetic_times_have_lower_variance_than_iid_and_the_same_mean():
    x0, delta = _data()
    x0 = x0.float().repeat(8, 1, 1, 1)  # 16 images: one batch, one t each
    delta = delta.float().repeat(8, 1, 1, 1)
    gamma = _wiggly(12)
    T = 1000
    den = Denoiser(PerturbedOracle(x0, delta, T), continuous.learned_schedule(gamma, T), "x0")
    est = {}
    for anti in (True, False):
        g = torch.Generator().manual_seed(3)
        est[anti] = torch.stack([continuous.continuous_elbo(den, gamma, x0, generator=g, antithetic=anti).diffusion.double().mean()
                                 for _ in range(300)])
    var_a, var_i = float(est[True].var()), float(est[False].var())
    # e^-gamma spans e^18 over [0, 1], so 16 strata gain about sevenfold (measured 6.8), not the 1/B^2 of a flat integrand
    assert var_a < var_i / 4, (var_a, var_i)
    # both unbiased for the same integral: their means agree within the iid estimate's error
    se = math.sqrt(var_i / 300)
    assert abs(float(est[True].mean() - est[False].mean())) < 4 * se
    u = continuous.antithetic_times(16, torch.Generator().manual_seed(0))
    assert torch.allclose(torch.sort(u).values.diff(), torch.full((15,), 1 / 16), atol=1e-6)


def test_the_continuous_elbo_of_an_eps_model_is_the_x0_models():
    """eps = (z - alpha x̂_0)/sigma turns an x0 model into an eps model with the same -ELBO, term by term."""
    x0, delta = _data()
    x0, delta = x0.float(), delta.float()
    gamma = _wiggly(13)
    T = 100
    s = continuous.learned_schedule(gamma, T)
    oracle = PerturbedOracle(x0, delta, T)

    class EpsOf(nn.Module):
        def forward(self, z, steps):
            with torch.no_grad():
                g = gamma((steps.float() / T)).view(-1, 1, 1, 1)
            return (z - torch.sigmoid(-g).sqrt() * oracle(z, steps)) / torch.sigmoid(g).sqrt()

    a = continuous.continuous_elbo(Denoiser(oracle, s, "x0"), gamma, x0, generator=torch.Generator().manual_seed(4))
    b = continuous.continuous_elbo(Denoiser(EpsOf(), s, "eps"), gamma, x0, generator=torch.Generator().manual_seed(4))
    for k in ("reconstruction", "prior", "diffusion"):
        assert torch.allclose(a.terms()[k], b.terms()[k], rtol=2e-3, atol=1e-3), k


# -- training, checkpoints, resume ----------------------------------------------------------------
def _cfg(tmp_path: Path, **kw) -> TrainConfig:
    base = dict(runs_dir=str(tmp_path), name="l", schedule="learned", T=20, epochs=1, limit=16, batch_size=8,
                eval_size=8, n_samples=1, log_every=1, sample_every=0)
    base.update(kw)
    return TrainConfig(**base)


def test_the_endpoints_move_in_training(tmp_path):
    tr = Trainer(_cfg(tmp_path), tmp_path / "l", echo=lambda *a: None)
    assert tr.schedule == make_schedule("learned", 20)
    start = tr.gamma.endpoints()
    x = tr.train_data[:8]
    for _ in range(3):
        loss = tr.loss_on(x)
        tr.opt.zero_grad()
        loss.backward()
        assert all(p.grad is not None and bool(p.grad.isfinite().all()) for p in tr.gamma.parameters())
        tr.opt.step()
    end = tr.gamma.endpoints()
    assert abs(end[0] - start[0]) > 1e-3 and abs(end[1] - start[1]) > 1e-3
    assert bool((tr.gamma(DENSE.float()).diff() > 0).all())


def test_a_learned_run_saves_opens_and_resumes_with_its_gamma(tmp_path, capsys):
    one = Trainer(_cfg(tmp_path, epochs=1), tmp_path / "l", echo=lambda *a: None)
    one.run()
    saved = one.gamma.to_params()
    run = open_run(tmp_path / "l")
    assert run.schedule.kind == "learned" and run.schedule.params == saved
    assert run.schedule == continuous.learned_schedule(one.gamma, 20)
    den, meta, _ = open_model(tmp_path / "l")
    assert den.schedule == run.schedule and meta["schedule"]["params"] == list(saved)
    assert saved != make_schedule("learned", 20).params  # it moved, and the run reports the moved one

    # `vdm elbo`'s continuous-time lines: the three terms add up to the printed total
    numbers = continuous.report_numbers(den, run.test_images()[:6], batch_size=4, draws=2)
    b = numbers["bpd"]
    assert b["reconstruction"] + b["prior"] + b["diffusion"] == pytest.approx(b["total"], abs=1e-9)
    text = continuous.report(numbers)
    vals = {ln[:40].strip(): float(ln[40:57]) for ln in text.splitlines() if ln[:1].isalpha() and ln[40:57].strip()
            and not ln.startswith(("term", "continuous"))}
    parts = [v for k, v in vals.items() if k.startswith(("reconstruction", "prior", "diffusion"))]
    assert len(parts) == 3 and sum(parts) == pytest.approx(vals["total (-ELBO), continuous time"], abs=2e-4)
    assert vals["MC standard error"] > 0

    # `vdm elbo --json`: the continuous-time block beside the discrete one, the same numbers as report_numbers'
    import json

    from vdm_cli.main import main

    capsys.readouterr()
    assert main(["elbo", str(tmp_path / "l"), "--n", "6", "--calibration-n", "16", "--estimator", "uniform",
                 "--batch-size", "4", "--device", "cpu", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["continuous"]["bpd"] == pytest.approx(numbers["bpd"], rel=1e-9)  # seed 0, batch 4, 2 draws: same draws
    assert rep["continuous"]["gamma_0"] == pytest.approx(one.gamma.endpoints()[0])
    assert set(rep["forms"]) == {"consistency", "denoising"}

    # the monitor's numbers: gamma's endpoints in every train and eval record, moving
    recs, bad = read_all(run.metrics_path)
    train = [r for r in recs if r["kind"] == "train"]
    assert not bad and len(train) == 2 and all("gamma_min" in r and "gamma_max" in r for r in train)
    assert train[0]["gamma_min"] != train[1]["gamma_min"]
    ev = [r for r in recs if r["kind"] == "eval"][-1]
    assert set(ev["continuous"]) == {"reconstruction", "prior", "diffusion", "total"}
    assert ev["gamma_min"] == pytest.approx(one.gamma.endpoints()[0])

    # resume for a second epoch == two epochs without a stop, gamma bit for bit
    more = Trainer(_cfg(tmp_path, epochs=2), tmp_path / "l", resume=True, echo=lambda *a: None)
    assert more.gamma.to_params() == saved
    more.run()
    straight = Trainer(_cfg(tmp_path, name="s", epochs=2), tmp_path / "s", echo=lambda *a: None)
    straight.run()
    assert more.gamma.to_params() == straight.gamma.to_params() != saved
    assert open_run(tmp_path / "l").schedule == open_run(tmp_path / "s").schedule


def test_the_identity_of_a_learned_schedule_is_its_kind_and_T():
    a = make_schedule("learned", 20).config()
    b = continuous.learned_schedule(_wiggly(14), 20).config()
    check_compatible({"model": "assignment", "schedule": a}, {"model": "assignment", "schedule": b})
    with pytest.raises(ValueError, match=r"T 20 vs 30") as e:
        check_compatible({"schedule": a}, {"schedule": make_schedule("learned", 30).config()})
    with pytest.raises(ValueError, match="kind 'learned' vs 'cosine'") as e:
        check_compatible({"schedule": a}, {"schedule": Schedule.cosine(20).config()})
    assert len(str(e.value)) < 300  # the 3,000 weights are counted, not printed


@pytest.mark.parametrize("prediction", ["x0", "eps", "x0-precond"])
def test_the_continuous_model_at_s_over_T_is_the_discrete_denoiser_at_step_s(prediction):
    """One model, two views: x̂_0 of vdm.continuous at t = s/T (noise gamma(s/T)) equals the Denoiser's at step s
    on the learned schedule, for every parameterisation (the network's weights random, its output linear)."""
    from vdm.nets import build_net

    torch.manual_seed(0)
    T = 50
    gamma = _wiggly(15)
    s = continuous.learned_schedule(gamma, T)
    net = build_net("assignment", T, "eps").eval()  # linear output, whatever it stands for
    den = Denoiser(net, s, prediction)
    z = torch.randn(4, 3, 32, 32)
    steps = torch.tensor([1, 7, 30, 50])
    with torch.no_grad():
        g = gamma(steps.double() / T).float()
        _, x_cont = continuous.model_output(net, z, steps.float(), g, prediction)
        x_disc = den(z, steps)
    assert torch.allclose(x_cont, x_disc, rtol=1e-4, atol=1e-4 * float(x_disc.abs().max()))


@settings(max_examples=150, deadline=None)
@given(params=st.lists(st.one_of(st.floats(), st.integers(-10**6, 10**6), st.booleans(), st.none(), st.text(max_size=2)),
                       max_size=12),
       T=st.one_of(st.integers(-2, 60), st.none(), st.floats()))
def test_a_crafted_learned_schedule_config_is_a_schedule_or_one_valueerror(params, T):
    """A sidecar's learned schedule is read from a file: anything it holds gives a valid Schedule or a ValueError."""
    try:
        s = Schedule.from_config({"kind": "learned", "T": T, "params": params})
    except ValueError:
        return
    a = s.alpha[1:]
    assert s.kind == "learned" and bool(((a > 0) & (a < 1)).all()) and bool((s.alpha_bar[1:].diff() < 0).all())


def test_every_discrete_time_function_takes_the_learned_schedule():
    """Both ELBO forms and the sampler on a learned schedule whose first steps, 1 - alpha_t ~ 1e-8, are
    below float32's resolution of 1 (the consistency form was NaN there until beta came from float64)."""
    from vdm.sample import sample

    g = continuous.GammaNet(gamma_min=-14.5)
    s = continuous.learned_schedule(g, 500)
    assert float(s.beta[2]) < 6e-8 and float(s.alpha[2].float()) == 1.0
    x0, delta = _data()
    x0 = x0.float()
    den = Denoiser(PerturbedOracle(x0, 0 * delta.float(), 500), s, "x0")
    for form in ("consistency", "denoising"):
        e = elbo(den, s, x0, form, "full", generator=torch.Generator().manual_seed(2))
        assert bool(torch.isfinite(e.total).all()), form
    exact = elbo(den, s, x0, "denoising", "full", generator=torch.Generator().manual_seed(2))
    assert float(exact.matching.abs().max()) == 0.0  # the oracle's matching terms vanish
    x = sample(den, s, 2, shape=tuple(x0.shape[1:]), seed=0)
    assert torch.allclose(x, x0, atol=1e-5)  # and the sampler returns x_0


@pytest.mark.slow  # two gloo ranks under torchrun (a subprocess): about half a minute
def test_two_ranks_train_the_same_gamma_as_one_process(tmp_path):
    """DDP wraps the network only: gamma's gradients are averaged over the ranks by the trainer itself."""
    import json
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    args = ["train", "--runs-dir", str(tmp_path), "--limit", "45", "--batch-size", "15", "--T", "20", "--eval-size", "0",
            "--n-samples", "1", "--sample-every", "0", "--log-every", "1", "--threads", "1", "--quiet", "--no-tui",
            "--seed", "5", "--schedule", "learned", "--prediction", "eps", "--epochs", "1"]
    for cmd in ([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", str(port),
                 "-m", "vdm_cli"] + args + ["--name", "ddp"], [sys.executable, "-m", "vdm_cli"] + args + ["--name", "one"]):
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert p.returncode == 0, p.stderr[-2000:]
    recs = {n: [json.loads(x) for x in (tmp_path / n / "metrics.jsonl").read_text().splitlines()] for n in ("ddp", "one")}
    steps = {n: [r for r in rs if r["kind"] == "train"] for n, rs in recs.items()}
    assert [r["step"] for r in steps["ddp"]] == [r["step"] for r in steps["one"]] == [1, 2, 3]
    for a, b in zip(steps["ddp"], steps["one"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5)
        # rank-local gamma gradients would differ by O(lr) a step; round-off moves them by ~1e-7
        assert a["gamma_min"] == pytest.approx(b["gamma_min"], abs=1e-5)
        assert a["gamma_max"] == pytest.approx(b["gamma_max"], abs=1e-5)
    assert steps["one"][-1]["gamma_min"] != steps["one"][0]["gamma_min"]


# -- --weighting edm (the learned run's samples) ----------------------------------------
def test_edm_weight_gives_f_the_weight_half_gamma_prime_at_every_noise_level():
    """x0-precond: the ELBO integrand times edm_weight is 1/2 gamma' ||F* - F||^2, F* = (x_0 - c_skip z) / c_out
    (the coefficients formed here from alpha^2 = sigmoid(-gamma), sigma_d = 0.5), from log SNR -12 to 12."""
    gen = torch.Generator().manual_seed(3)
    g = torch.linspace(-12.0, 12.0, 9, dtype=torch.float64)
    dg = torch.rand(9, generator=gen, dtype=torch.float64) * 20 + 1
    x0 = torch.rand(9, 3, 4, 4, generator=gen, dtype=torch.float64) * 2 - 1
    eps = torch.randn(9, 3, 4, 4, generator=gen, dtype=torch.float64)
    Fo = torch.randn(9, 3, 4, 4, generator=gen, dtype=torch.float64)
    a2, s2, d2 = torch.sigmoid(-g), torch.sigmoid(g), 0.25
    c_skip = a2.sqrt() * d2 / (a2 * d2 + s2)
    c_out = (s2 * d2 / (a2 * d2 + s2)).sqrt()
    v = lambda c: c.view(-1, 1, 1, 1)  # noqa: E731
    z = v(a2.sqrt()) * x0 + v(s2.sqrt()) * eps
    x0_hat = v(c_skip) * z + v(c_out) * Fo
    f_star = (x0 - v(c_skip) * z) / v(c_out)
    want = 0.5 * dg * (f_star - Fo).pow(2).flatten(1).sum(1)
    got = continuous.diffusion_nats(g, dg, x0, eps, x0_hat, "x0-precond") * continuous.edm_weight(g)
    torch.testing.assert_close(got, want, rtol=1e-9, atol=0)
    # the ELBO's own weight on F vanishes at low SNR (what left the learned run's samples noise)
    elbo_on_f = continuous.diffusion_nats(g, dg, x0, eps, x0_hat, "x0-precond") / want
    assert float(elbo_on_f[-1]) < 1e-5 and float(elbo_on_f[0]) == pytest.approx(1.0, abs=1e-4)  # gamma 12: log SNR -12


def test_weighting_edm_trains_the_network_on_the_weighted_loss_and_gamma_on_the_elbo(tmp_path):
    """From one forward pass: the network's gradient is that of the weighted loss alone, gamma's that of
    the ELBO alone (each checked against torch.autograd.grad of that loss by itself)."""
    tr = Trainer(_cfg(tmp_path, prediction="x0-precond", weighting="edm"), tmp_path / "l", echo=lambda *a: None)
    x = tr.train_data[:8]
    loss = tr.loss_on(x)
    net_loss = tr._net_loss
    assert net_loss is not None and float(net_loss) > float(loss)  # w >= 1 on every term
    net_p, gam_p = list(tr.model.net.parameters()), list(tr.gamma.parameters())
    want_net = torch.autograd.grad(net_loss, net_p, retain_graph=True)
    want_gam = torch.autograd.grad(loss, gam_p, retain_graph=True)
    leak = torch.autograd.grad(net_loss, gam_p, retain_graph=True)  # what a plain backward of net_loss would give gamma
    tr.opt.zero_grad(set_to_none=True)
    tr.backward(loss)
    for p, w in zip(net_p, want_net):
        torch.testing.assert_close(p.grad, w)
    for p, w, bad in zip(gam_p, want_gam, leak):
        torch.testing.assert_close(p.grad, w)
    assert float((tr.gamma.rho.grad - leak[1]).abs()) > 1e-3 * float(leak[1].abs())  # the two differ: the split matters
    # "default" is the ELBO for both, one backward
    tr2 = Trainer(_cfg(tmp_path, name="d", prediction="x0-precond"), tmp_path / "d", echo=lambda *a: None)
    tr2.loss_on(x)
    assert tr2._net_loss is None


@pytest.mark.parametrize("kw, words", [(dict(weighting="edm", prediction="eps"), "not an eps model"),
                                       (dict(weighting="snr"), "unknown weighting")])
def test_weighting_refuses_what_it_cannot_weight(tmp_path, kw, words):
    with pytest.raises(ValueError, match=words):
        _cfg(tmp_path, **kw).validate()
