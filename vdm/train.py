"""Training (exercise 5): x̂_0 regression on x_t drawn from the closed form q(x_t | x_0).

Per image: t ~ U{1..T}, eps ~ N(0, I), x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,
loss = ||x̂_0(x_t, t) - x_0||^2 (or ||ε̂ - ε||^2 with --prediction eps), Adam.

The data set lives on the device as uint8 and becomes [-1, 1] inside the step.
Everything random (data order, t, eps) comes from generators whose state is in
the checkpoint, so a resumed run continues exactly where the killed one was.

The run directory ``runs/<name>/`` is the contract with the terminal UI
(README.md, "The run directory").
"""

from __future__ import annotations

import copy
import math
import os
import platform
import resource
import signal
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F

from vdm import checkpoint as ckpt
from vdm import continuous
from vdm import data as datasets
from vdm import distributed
from vdm.config import CLOCK_FIRST_S, CLOCK_SAMPLES, CLOCK_SHARE, TrainConfig  # noqa: F401 (read as vdm.train.X)
from vdm.denoiser import Denoiser, precond_coefs
from vdm.diffusion import q_sample, reparameterise
from vdm.elbo import nats_to_bpd
from vdm import gmm
from vdm.images import grid, save_npy, save_png, scatter
from vdm.metrics import MetricsWriter
from vdm.report import ElboOptions, estimate_row, heldout_draws
from vdm.score import cheap_score
from vdm.nets import build_net, count_parameters
from vdm.sample import sample
from vdm.atomic import remove_stale_temps
from vdm.run import Run, checkpoints_dir, identity_of, is_run, new_run, sample_path, schedule_of
from vdm.schedule import Schedule

EVAL_SEED = 12345  # the held-out evaluation's noise, the same at every evaluation of every run
CONTINUOUS_EVAL_SEED = 54321  # the continuous-time evaluation's (a learned run)
EVAL_DRAWS = 2  # independent draws of every held-out item's -ELBO: two give the estimator's own error


class TrainingStopped(Exception):
    """Training ended early for a reason the user must read (a non-finite loss)."""


def pick_device(name: str) -> torch.device:
    """auto, cpu, cuda or cuda:N; anything else (meta, mps, xla...) is one sentence, not a traceback later."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {str(name)[:40]!r}; use auto, cpu or cuda.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but no CUDA GPU is available.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"--device {name} was asked for, but this machine has {torch.cuda.device_count()} CUDA GPU(s).")
    return dev


def memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 1024 if platform.system() != "Darwin" else rss / 2**20


class Trainer:
    """Owns the model, optimizer, EMA, generators and the run directory."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, resume: bool = False, echo=print):
        cfg.validate()
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.echo = echo
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        elif cfg.points:  # a small MLP on 256 points: one thread beats two (115 vs 59 steps/s measured, 2 cores)
            torch.set_num_threads(1)
        # under torchrun: this rank's place and device (cuda:LOCAL_RANK); rank 0 of 1 otherwise
        self.dist, self.device = distributed.setup(pick_device(cfg.device))
        self.schedule = schedule_of(cfg)
        torch.manual_seed(cfg.seed)
        net = build_net(cfg.model, cfg.T, cfg.prediction).to(self.device)
        if self.dist.enabled:
            distributed.sync_batchnorm(net, self.device)  # global-batch BN statistics, as one process has
        cuda = self.device.type == "cuda"
        # a memory format of 4-D images: points [B, 2] have none
        self.channels_last = not cfg.points and (cfg.channels_last == "on" or (cfg.channels_last == "auto" and cuda))
        if self.channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.model = Denoiser(net, self.schedule, cfg.prediction)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False) if cfg.ema > 0 else None
        # --schedule learned: gamma(t) = -log SNR(t) is trained with the network (vdm.continuous), in an
        # optimizer group of its own; its weights travel in each sidecar's schedule config. The EMA
        # averages the network only: every checkpoint pairs it with the live gamma.
        self.learned = cfg.schedule == "learned"
        self.gamma = continuous.GammaNet().to(self.device) if self.learned else None
        groups = [{"params": list(self.model.parameters())}]
        if self.learned:
            groups.append({"params": list(self.gamma.parameters()), "lr": cfg.lr * continuous.GAMMA_LR_SCALE})
        self.params = [p for g in groups for p in g["params"]]
        # fused: one kernel (CUDA) or one pass (CPU) for the whole update instead of several per tensor
        self.opt = torch.optim.Adam(groups, lr=cfg.lr, fused=self.device.type in ("cuda", "cpu"))
        self.autocast = cfg.precision == "bf16" or (cfg.precision == "auto" and cuda)
        # the network the step runs through: DDP around it under torchrun, compiled on request; it
        # shares its parameters with self.model.net, which checkpoints, EMA and sampling use
        self.train_net = distributed.wrap(net, self.dist, self.device)
        if cfg.compile:
            self.train_net = torch.compile(self.train_net, mode="reduce-overhead" if cfg.cuda_graphs and cuda else None)
        # alpha_bar_t as a device table: drawing x_t needs no host round trip (q_sample checks t on the host)
        self._alpha_bar = self.schedule.alpha_bar.to(self.device, torch.float32)
        # --weighting edm on a fixed schedule: EDM's 1/c_out(t)^2 per step, a device table (float64 -> float32)
        self._edm_w = None
        if cfg.weighting == "edm" and not self.learned:
            w = torch.zeros(self.schedule.T + 1, dtype=torch.float64)  # t = 0 is never drawn (c_out(0) = 0)
            w[1:] = precond_coefs(self.schedule)[1][1:].pow(-2)
            self._edm_w = w.to(self.device, torch.float32)
        self._net_loss = None  # learned + edm: the network's loss of the last loss_on (its gradient; vdm.continuous)
        self.train_data = datasets.load(cfg.data, "train", cfg.data_dir, cfg.limit or None, cfg.data_n, cfg.seed).to(self.device)
        test = datasets.load(cfg.data, "test", cfg.data_dir, n=cfg.data_n, seed=cfg.seed)
        self.eval_data = test[: cfg.eval_size].to(self.device) if cfg.eval_size else None
        self.gen = torch.Generator(device=self.device)
        self.gen.manual_seed(cfg.seed + 1)
        self.step = 0
        self.epoch = 0
        self.batch_in_epoch = 0
        self.elapsed = 0.0  # training wall time over all sessions of this run
        self.stop_reason: str | None = None
        self.report_s = 0.0  # wall seconds this session spent evaluating and sampling (training time lost)
        self.eval_s = 0.0  # of which evaluating
        self._next_mark = CLOCK_FIRST_S  # training seconds of the next evaluation by the clock (a time-limited run)
        self.owed: list[str] = []  # what the resumed checkpoint's session still owed (eval, sample, end)
        self.notices: list[str] = []
        if resume:
            self._resumed = True
            self._resume()

    # -- identity of the model, checked on resume and when sampling -----------
    def identity(self) -> dict:
        self.sync_schedule()
        return identity_of(self.cfg, self.schedule)

    def sync_schedule(self) -> None:
        """A learned run: the discrete Schedule (and the models' copy of it) made from the gamma of now."""
        if self.learned:
            self.schedule = continuous.learned_schedule(self.gamma, self.cfg.T)
            for m in (self.model, self.ema):
                if m is not None:
                    m.schedule = self.schedule

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.train_data) / self.cfg.batch_size)

    # -- state ------------------------------------------------------------------
    def state_tensors(self) -> tuple[dict, dict]:
        tensors = {f"model/{k}": v for k, v in self.model.net.state_dict().items()}
        if self.ema is not None:
            tensors.update({f"ema/{k}": v for k, v in self.ema.net.state_dict().items()})
        opt_t, opt_info = ckpt.optimizer_to_tensors(self.opt)
        tensors.update(opt_t)
        tensors["rng/gen"] = self.gen.get_state()
        tensors["rng/torch_cpu"] = torch.get_rng_state()
        meta = dict(self.identity(), epoch=self.epoch, batch_in_epoch=self.batch_in_epoch,
                    elapsed=self.elapsed, optim=opt_info, parameters=count_parameters(self.model.net),
                    config=asdict(self.cfg), torch=torch.__version__)
        return tensors, meta

    def save_checkpoint(self, owed: tuple[str, ...] = ()) -> Path | None:
        """The checkpoint of this step; ``owed`` names what is due after it (eval, sample, end), which a
        resume after a kill still does (the sidecar is rewritten as each is paid, see _pay)."""
        if not self.dist.main:
            return None  # rank 0 writes the run directory
        # Never let non-finite weights replace a good checkpoint (devices that check the loss lazily
        # may have stepped on a NaN since the last read-back); one read-back per checkpoint.
        if not bool(torch.stack([p.detach().float().isfinite().all() for p in self.params]).all()):
            raise TrainingStopped(f"training stopped: the weights became non-finite by step {self.step}{self._kept()}.")
        tensors, meta = self.state_tensors()
        meta["owed"] = list(owed)
        path = ckpt.save(checkpoints_dir(self.run_dir), self.step, tensors, meta, keep=self.cfg.keep)
        self._owed_sidecar = path
        return path

    _owed_sidecar: Path | None = None

    def _pay(self, what: str) -> None:
        """Strike ``what`` off the newest checkpoint's debts (its sidecar rewritten atomically)."""
        if what in self.owed:
            self.owed.remove(what)
        if self._owed_sidecar is not None and self.dist.main:
            try:
                meta = ckpt.read_meta(self._owed_sidecar)
            except ValueError:
                return  # pruned or replaced: nothing left to strike
            if what in ckpt.owed_of(meta):
                ckpt.set_owed(self._owed_sidecar, [o for o in ckpt.owed_of(meta) if o != what])

    def _resume(self) -> None:
        if not ckpt.list_checkpoints(checkpoints_dir(self.run_dir)):
            # killed before its first checkpoint: nothing to continue, so start the run over
            self.echo(f"{self.run_dir} has no checkpoint yet; starting it from step 0.")
            return
        c = ckpt.load(checkpoints_dir(self.run_dir), device="cpu")
        ckpt.check_compatible(c.meta, self.identity())
        # every tensor checked by name, shape and dtype before any is loaded: fused Adam trusts them
        notes = ckpt.check_weights(c, "model", self.model.net.state_dict())
        if self.ema is not None:
            notes += ckpt.check_weights(c, "ema" if c.group("ema") else "model", self.ema.net.state_dict())
        ckpt.check_optimizer(c, self.opt)
        ckpt.check_rng(c, {"gen": self.gen.get_state(), "torch_cpu": torch.get_rng_state()})
        epoch, batch_in_epoch, elapsed = ckpt.check_progress(c)
        try:
            self.model.net.load_state_dict(c.group("model"))
            if self.learned:  # the sidecar's schedule is the gamma network's weights (vdm.continuous)
                self.gamma.load_state_dict(continuous.gamma_of(Schedule.from_config(c.meta["schedule"])).state_dict())
                self.sync_schedule()
            if self.ema is not None:
                self.ema.net.load_state_dict(c.group("ema") or c.group("model"))
            ckpt.optimizer_from_tensors(self.opt, c.group("optim"), c.meta["optim"])
            self.gen.set_state(c.tensors["rng/gen"])
            torch.set_rng_state(c.tensors["rng/torch_cpu"])
        except (RuntimeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"the checkpoint {c.path} does not fit this model ({str(e).splitlines()[0][:160]}).") from None
        for n in notes:
            self.echo(n)
        self.step, self.epoch, self.batch_in_epoch, self.elapsed = c.step, epoch, batch_in_epoch, elapsed
        self.owed = ckpt.owed_of(c.meta)
        self._owed_sidecar = c.path

    # -- one optimisation step ------------------------------------------------------
    def loss_on(self, x_uint8: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        """The training loss on a uint8 batch: t ~ U{1..T}, x_t from the closed form, MSE to the target.

        ``x_uint8`` is the global batch. Every rank draws the t and eps of the whole batch (so the
        generators agree on all ranks and a checkpoint resumes under any world size) and keeps its
        rows (vdm.distributed.shard); the loss is scaled so that DDP's average is the global mean.
        """
        gen = gen or self.gen
        if self.learned:
            return self._continuous_loss(x_uint8, gen)
        n = x_uint8.shape[0]
        t = torch.randint(1, self.cfg.T + 1, (n,), generator=gen, device=self.device)
        eps = torch.randn(x_uint8.shape, generator=gen, device=self.device)
        if self.dist.enabled:
            rows = distributed.shard(n, self.dist)
            x_uint8, t, eps = x_uint8[rows], t[rows], eps[rows]
        x0 = datasets.to_float(x_uint8)
        # alpha_bar_t from the device table: q_sample checks t on the host, a sync per step on GPUs
        x_t = reparameterise(_per_item(self._alpha_bar[t], x0), x0, eps)
        if self.channels_last:
            x_t = x_t.contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
            # x0-precond: pred is x̂_0 = c_skip x_t + c_out F, so the loss stays the assignment's MSE on
            # x_0, unweighted. It weights F's error by c_out(t)^2 (1e-4 at small t), EDM's 1/c_out^2
            # would not: measured, the small-t ELBO terms pay for it (README, "Preconditioned x̂_0")
            pred = self.model.raw(x_t, t, net=self.train_net)
        if self._edm_w is None:
            loss = F.mse_loss(pred.float(), self.model.target(x0, x_t, t, eps))
        else:  # EDM: ||x_0 - x̂_0||^2 / c_out(t)^2, for x0-precond the unweighted MSE on F (the error c_out divides)
            loss = ((pred.float() - x0).pow(2) * _per_item(self._edm_w[t], x0)).mean()
        if self.dist.enabled:
            loss = loss * distributed.loss_scale(n, self.dist)
        return loss

    def _continuous_loss(self, x_uint8: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """--schedule learned: the continuous-time -ELBO in bits/dim (vdm.continuous.training_nats),
        t antithetic over the global batch, the reconstruction term on every RECON_EVERY-th image."""
        n = x_uint8.shape[0]
        t = continuous.antithetic_times(n, gen, self.device)
        eps = torch.randn(x_uint8.shape, generator=gen, device=self.device)
        eps0 = torch.randn(x_uint8.shape, generator=gen, device=self.device)
        rows = continuous.recon_rows_of(n)  # on the host: which rows are known without a device read
        scale = n / len(rows)
        if self.dist.enabled:
            s = distributed.shard(n, self.dist)
            x_uint8, t, eps, eps0 = x_uint8[s], t[s], eps[s], eps0[s]
            rows = rows[(rows >= s.start) & (rows < s.stop)] - s.start
        x0 = datasets.to_float(x_uint8)

        def net(z, steps):
            if self.channels_last:
                z = z.contiguous(memory_format=torch.channels_last)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
                return self.train_net(z, steps)

        out = continuous.training_nats(net, self.gamma, x0, t, eps, eps0, rows.to(self.device), scale,
                                       self.cfg.T, self.cfg.prediction, self.cfg.weighting)
        nats, net_nats = out if self.cfg.weighting == "edm" else (out, None)
        dist = distributed.loss_scale(n, self.dist) if self.dist.enabled else 1.0
        loss = nats_to_bpd(nats, x0[0].numel()).mean() * dist
        self._net_loss = None if net_nats is None else nats_to_bpd(net_nats, x0[0].numel()).mean() * dist
        return loss

    def backward(self, loss: torch.Tensor) -> None:
        """Gradients of a step: loss.backward(), except a learned run with --weighting edm, whose network
        takes the gradient of the weighted loss and gamma that of the ELBO (``loss``), from the one
        forward pass: two backward passes, each into its own parameters only (inputs=), so neither
        leaks into the other's (the weighted loss would pull gamma_max down: 1/sigma_d^2 at low SNR)."""
        if self._net_loss is None:
            loss.backward()
            return
        net_loss, self._net_loss = self._net_loss, None
        net_loss.backward(inputs=list(self.model.net.parameters()), retain_graph=True)
        loss.backward(inputs=list(self.gamma.parameters()))

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The data order of an epoch: a function of (seed, epoch) only, so a resume needs no saved order."""
        g = torch.Generator(device="cpu")
        g.manual_seed(self.cfg.seed * 1_000_003 + epoch)
        return torch.randperm(len(self.train_data), generator=g).to(self.device)

    def _ema_update(self) -> None:
        d = self.cfg.ema
        with torch.no_grad():
            # one foreach kernel per step rather than one per tensor (the same lerp, element by element)
            torch._foreach_lerp_(list(self.ema.net.parameters()), list(self.model.net.parameters()), 1 - d)
            # BatchNorm's running statistics are averaged like the weights: statistics copied from
            # the live model do not describe the averaged weights' activations, and sampling with
            # them drifts to saturated colours.
            for be, bm in zip(self.ema.net.buffers(), self.model.net.buffers()):
                if be.dtype.is_floating_point:
                    be.lerp_(bm, 1 - d)
                else:
                    be.copy_(bm)

    # -- evaluation and samples -------------------------------------------------
    @property
    def eval_model(self) -> Denoiser:
        return self.ema if self.ema is not None else self.model

    @torch.no_grad()
    def evaluate(self) -> dict:
        """Held-out loss and the ELBO (denoising form) in bits/dim on the fixed held-out items, with its error.

        The -ELBO is `vdm elbo`'s estimator (vdm.report.heldout_draws): for images one t per image from the
        importance proposal p(t) (vdm.elbo.knot_proposal, weight 1/p(t)), for points every t, EVAL_DRAWS
        independent draws each from EVAL_SEED. ``bpd_mc_se`` is its Monte Carlo standard error with the items
        fixed (what `vdm elbo --estimator importance` on the same items and checkpoint agrees with), ``bpd_se``
        the spread of the items' estimates / sqrt(n). A learned run adds the continuous-time -ELBO
        ("continuous") and gamma's endpoints; a Gaussian-mixture run the exact references ("reference",
        :meth:`references`), and a points run says its bits are of a density ("density")."""
        self.sync_schedule()
        m = self.eval_model
        was_training = m.training
        m.eval()
        losses = self._heldout_loss(m)
        draws = self._elbo_draws(m)
        m.train(was_training)
        n = len(self.eval_data)
        dims = self.eval_data[0].numel()
        row = estimate_row(draws, dims)
        bpd = {k: row[k] for k in ("reconstruction", "prior", "matching", "total")}
        out = {"eval_loss": float(sum(losses) / n), "bpd": bpd, "decoder": "fixed",  # which p(x_0|x_1)
               "estimator": {"name": self._eval_opts().estimator, "draws": EVAL_DRAWS, "items": n}}
        if math.isfinite(row["mc_standard_error"]):
            out["bpd_mc_se"] = row["mc_standard_error"]
        if n > 1:
            out["bpd_se"] = row["spread_over_sqrt_n"]
        if self.learned:
            out.update(self._continuous_eval(m), **self.gamma_endpoints())
        if self.cfg.points:
            out["density"] = True
        if gmm.is_mixture(self.cfg.data):
            out["reference"] = self.references()
            # the model minus the optimal denoiser, point by point on the same t and x_t: its error is the paired
            # one, far below either -ELBO's spread over the points (which the two share)
            diff = nats_to_bpd((draws["total"] - self.optimal_nats()).mean(0), dims)
            out["gap_to_optimal"] = {"mean": float(diff.mean()),
                                     "se": float(diff.std() / math.sqrt(n)) if n > 1 else 0.0}
        return out

    def _eval_opts(self) -> ElboOptions:
        """How the held-out -ELBO is estimated: importance-sampled t for images, every t for points (cheap there)."""
        points = self.cfg.points
        return ElboOptions(estimator="full" if points else "importance", draws=EVAL_DRAWS, decoder="fixed",
                           batch_size=len(self.eval_data) if points else self.cfg.batch_size, seed=EVAL_SEED)

    def _elbo_draws(self, m) -> dict:
        """{term: [EVAL_DRAWS, n] nats} of denoiser ``m`` on the held-out items (vdm.report.heldout_draws): the
        same t and noise for every denoiser, so two of them are compared pairwise."""
        return heldout_draws(m, self.schedule, self.eval_data, self._eval_opts(), self.device)

    def _heldout_loss(self, m: Denoiser) -> list:
        """The summed held-out training losses per batch, at one uniform t and noise per item drawn from EVAL_SEED."""
        g = torch.Generator(device=self.device)
        g.manual_seed(EVAL_SEED)
        losses = []
        bs = len(self.eval_data) if self.cfg.points else self.cfg.batch_size
        for i in range(0, len(self.eval_data), bs):
            x0 = datasets.to_float(self.eval_data[i: i + bs])
            t = torch.randint(1, self.cfg.T + 1, (x0.shape[0],), generator=g, device=self.device)
            eps = torch.randn(x0.shape, generator=g, device=self.device)
            x_t = q_sample(self.schedule, x0, t, eps)
            losses.append(F.mse_loss(m.raw(x_t, t), m.target(x0, x_t, t, eps), reduction="sum") / x0[0].numel())
        return losses

    _optimal_nats: torch.Tensor | None = None  # the optimal denoiser's -ELBO draws [EVAL_DRAWS, n] (nats), once

    def optimal_nats(self) -> torch.Tensor:
        """The Bayes-optimal denoiser's -ELBO draws on the held-out points, [EVAL_DRAWS, n] nats: computed once,
        as they depend on the points and the fixed schedule alone."""
        if self._optimal_nats is None:
            optimal = gmm.OptimalDenoiser(gmm.layout(self.cfg.data), self.schedule)
            self._optimal_nats = self._elbo_draws(optimal)["total"]
        return self._optimal_nats

    def references(self) -> dict:
        """A Gaussian-mixture run's exact references on the held-out points, in bits/dim (of a density), each with
        its standard error over the points: ``optimal``, the -ELBO of the Bayes-optimal denoiser
        E[x_0 | x_t] (vdm.gmm.OptimalDenoiser) on the same t and x_t as the model's, and ``nll``, the true
        -log q(x_0)."""
        dims = self.eval_data[0].numel()
        opt = nats_to_bpd(self.optimal_nats().mean(0), dims)
        nll = nats_to_bpd(-gmm.layout(self.cfg.data).log_prob(datasets.to_float(self.eval_data)).double().cpu(), dims)
        n = len(opt)
        return {"optimal": float(opt.mean()), "optimal_se": float(opt.std() / math.sqrt(n)) if n > 1 else 0.0,
                "nll": float(nll.mean()), "nll_se": float(nll.std() / math.sqrt(n)) if n > 1 else 0.0}

    def gamma_endpoints(self) -> dict:
        """gamma(0), gamma(1) = -log SNR at t = 0 and 1 (a learned run; a read-back from the device)."""
        g0, g1 = self.gamma.endpoints()
        return {"gamma_min": g0, "gamma_max": g1}

    @torch.no_grad()
    def _continuous_eval(self, m: Denoiser) -> dict:
        """The continuous-time -ELBO of the held-out images in bits/dim, every term (antithetic t, fixed noise)."""
        was_training = m.training
        m.eval()
        g = torch.Generator(device=self.device)
        g.manual_seed(CONTINUOUS_EVAL_SEED)
        parts = [continuous.continuous_elbo(m, self.gamma, datasets.to_float(self.eval_data[i: i + self.cfg.batch_size]),
                                            generator=g)
                 for i in range(0, len(self.eval_data), self.cfg.batch_size)]
        m.train(was_training)
        dims = self.eval_data[0].numel()
        return {"continuous": {k: float(nats_to_bpd(torch.cat([p.terms()[k] for p in parts]).double().mean(), dims))
                               for k in ("reconstruction", "prior", "diffusion", "total")}}

    def draw_samples(self, n: int | None = None) -> torch.Tensor:
        """``n`` (default n_samples) ancestral samples of the evaluation model, seeded by the run's seed, in
        ``sample_steps`` evenly spaced steps (0: all T)."""
        self.sync_schedule()
        m = self.eval_model
        was_training = m.training
        m.eval()
        cfg = self.cfg
        x = sample(m, self.schedule, n or cfg.n_samples, datasets.shape_of(cfg.data), seed=cfg.seed, device=self.device,
                   clip=not cfg.points, steps=cfg.sample_steps or None)  # x̂_0 of points is not bounded to [-1, 1]
        m.train(was_training)
        return x

    def write_samples(self, x: torch.Tensor) -> Path:
        """samples/step-<step>.png and latest.png: a grid of the samples ``x``, or for points a scatter over
        the held-out data, with the points themselves in step-<step>.npy and latest.npy."""
        if self.cfg.points:
            pts = x.float().cpu().numpy()
            img = scatter(pts, None if self.eval_data is None else self.eval_data.cpu())
            for step in (self.step, None):
                save_npy(pts, sample_path(self.run_dir, step, ".npy"))
        else:
            img = grid(x, scale=2)
        path = save_png(img, sample_path(self.run_dir, self.step))
        save_png(img, sample_path(self.run_dir))
        return path

    # -- the loop ------------------------------------------------------------------
    def run(self, progress=None) -> dict:
        cfg = self.cfg
        lock = None
        if self.dist.main:  # rank 0 writes the run directory; the other ranks write nothing
            run = Run(self.run_dir, cfg, count_parameters(self.model.net))
            lock = run.lock(fresh=not self._resumed)  # one writer per run, until this process ends
            try:
                run.write_config()
                log = MetricsWriter(run.metrics_path)
            except BaseException:
                lock.release()
                raise
            remove_stale_temps(run.samples_dir)
        else:
            log = _NoLog()
        try:
            return self._run(log, progress)
        finally:
            log.close()
            if lock is not None:
                lock.release()

    _resumed = False

    def _run(self, log, progress) -> dict:
        cfg = self.cfg
        self._pay_owed(log)
        stop = {"signal": None}

        def on_signal(signum, frame):
            stop["signal"] = signal.Signals(signum).name

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if _main_thread() else {}
        log.write("start", step=self.step, epoch=self.epoch, device=str(self.device), config=asdict(cfg),
                  parameters=count_parameters(self.model.net), steps_per_epoch=self.steps_per_epoch,
                  total_steps=self.steps_per_epoch * cfg.epochs, pid=os.getpid())
        spe = self.steps_per_epoch
        ckpt_every = cfg.ckpt_every or spe
        session_start = time.time()
        elapsed0 = self.elapsed
        window_loss = torch.zeros((), device=self.device)
        window_n = 0
        window_t = time.time()
        bad_step = torch.full((), -1, dtype=torch.long, device=self.device)
        self.model.train()
        last_eval: dict | None = None
        try:
            while self.epoch < cfg.epochs:
                order = self.epoch_order(self.epoch)
                while self.batch_in_epoch < spe:
                    i = self.batch_in_epoch
                    idx = order[i * cfg.batch_size: (i + 1) * cfg.batch_size]
                    loss = self.loss_on(self.train_data[idx])
                    self.opt.zero_grad(set_to_none=True)
                    self.backward(loss)
                    if self.learned and self.dist.enabled:
                        _average_grads(self.gamma.parameters(), self.dist.world)  # DDP wraps the network only
                    gnorm = torch.nn.utils.clip_grad_norm_(self.params, float("inf"))
                    finite = torch.isfinite(loss) & torch.isfinite(gnorm)
                    bad_step = torch.where(~finite & (bad_step < 0), torch.full_like(bad_step, self.step + 1), bad_step)
                    if self.device.type == "cpu" and not bool(finite):
                        raise TrainingStopped(self._nonfinite_message(self.step + 1, loss, gnorm))
                    self.opt.step()
                    if self.ema is not None:
                        self._ema_update()
                    self.step += 1
                    self.batch_in_epoch += 1
                    window_loss += loss.detach()
                    window_n += 1
                    self.elapsed = elapsed0 + time.time() - session_start
                    if self.step % cfg.log_every == 0 or self.batch_in_epoch == spe:
                        if int(bad_step) >= 0:  # only reached on devices that skip the per-step check
                            raise TrainingStopped(self._nonfinite_message(int(bad_step), loss, gnorm))
                        now = time.time()
                        log.write("train", step=self.step, epoch=self.epoch + self.batch_in_epoch / spe,
                                  loss=float(distributed.all_mean(window_loss, self.dist)) / window_n, lr=self.opt.param_groups[0]["lr"],
                                  grad_norm=float(gnorm), images_per_s=window_n * cfg.batch_size / max(now - window_t, 1e-9),
                                  elapsed=self.elapsed, device=str(self.device), memory_mb=round(memory_mb(self.device), 1),
                                  **(self.gamma_endpoints() if self.learned else {}))
                        window_loss.zero_()
                        window_n, window_t = 0, now
                        if progress:
                            progress(self)
                    out_of_time = cfg.minutes and self.elapsed >= cfg.minutes * 60
                    if self.dist.enabled:  # ranks stop together, agreed at the read-backs, or the others hang
                        at_log = self.step % cfg.log_every == 0 or self.batch_in_epoch == spe
                        local = stop["signal"] or ("time limit" if out_of_time else None)
                        reason = distributed.agree_stop(local, self.dist, self.device) if at_log else None
                    else:
                        reason = stop["signal"] or ("time limit" if out_of_time else None)
                    if reason:
                        self.stop_reason = reason
                        break
                    if self.step % ckpt_every == 0 and self.batch_in_epoch < spe:
                        self.save_checkpoint()
                    if cfg.minutes and self.elapsed >= self._next_mark and self.batch_in_epoch < spe:
                        self._on_the_clock(log)
                if self.stop_reason:
                    break
                # end of an epoch
                self.epoch += 1
                self.batch_in_epoch = 0
                self._epoch_end(log, last=self.epoch == cfg.epochs)
        finally:
            for s, h in old.items():
                signal.signal(s, h)
        if self.stop_reason:
            # said at once: the checkpoint, evaluation and grid below take a while, and a monitor shows "stopping"
            log.write("stopping", step=self.step, reason=self.stop_reason, elapsed=self.elapsed)
            self.save_checkpoint(owed=("eval", "sample"))
            last_eval = self._evaluate_and_log(log)
            self._sample_and_log(log)
        log.write("end", step=self.step, epoch=self.epoch, reason=self.stop_reason or "done", elapsed=self.elapsed)
        self._pay("end")
        return {"step": self.step, "epoch": self.epoch, "reason": self.stop_reason or "done",
                "eval": last_eval or self.last_eval, "score": self.last_score}

    def release(self) -> None:
        """Drop the DDP wrapper (and any compiled one): training is over, and its reducer holds the process group,
        which vdm.distributed.cleanup should tear down while Python still runs."""
        self.train_net = self.model.net

    last_eval: dict | None = None
    last_score: dict | None = None  # the newest grid's vdm.score.cheap_score fields

    def _epoch_end(self, log: MetricsWriter, last: bool) -> None:
        """Checkpoint, then what the epoch owes; the checkpoint records those debts first, so that a
        kill before they are done leaves them to the resume (the end of a run survives a kill)."""
        cfg = self.cfg
        owed = []
        if self.eval_data is not None and (last or (cfg.eval_every and self.epoch % cfg.eval_every == 0)):
            owed.append("eval")
        if last or (cfg.sample_every and self.epoch % cfg.sample_every == 0):
            owed.append("sample")
        self.save_checkpoint(owed=tuple(owed) + (("end",) if last else ()))
        if "eval" in owed:
            self._evaluate_and_log(log)
        if "sample" in owed:
            self._sample_and_log(log)

    def _pay_owed(self, log: MetricsWriter) -> None:
        """Do what the resumed checkpoint's session was killed before doing (eval, sample grid)."""
        if "eval" in self.owed:
            self._evaluate_and_log(log)
        if "sample" in self.owed:
            self._sample_and_log(log)

    def _on_the_clock(self, log: MetricsWriter) -> None:
        """An evaluation and a small sample grid at a mark of the clock (CLOCK_FIRST_S, doubling), each unless it has
        already taken more than CLOCK_SHARE of the training time (a grid costs T network calls a sample, several
        evaluations: the curve goes on while the grids wait)."""
        while self._next_mark <= self.elapsed:
            self._next_mark *= 2
        if self.eval_s <= CLOCK_SHARE * self.elapsed:
            self._evaluate_and_log(log)
        if self.report_s - self.eval_s <= CLOCK_SHARE * self.elapsed:
            self._sample_and_log(log, n=None if self.cfg.points else min(self.cfg.n_samples, CLOCK_SAMPLES))

    def _evaluate_and_log(self, log: MetricsWriter) -> dict | None:
        """An eval record, with ``seconds``: how long the evaluation took (wall time lost to training)."""
        if self.eval_data is None or not self.dist.main:
            self._pay("eval")
            return None
        t0 = time.time()
        ev = self.evaluate()
        self.last_eval = ev
        took = time.time() - t0
        self.report_s += took
        self.eval_s += took
        log.write("eval", step=self.step, epoch=self.epoch, **ev, seconds=round(took, 3))
        self._pay("eval")
        return ev

    def _sample_and_log(self, log: MetricsWriter, n: int | None = None) -> None:
        """A sample record, with ``seconds`` (the grid's wall time) and ``n`` (how many samples it holds)."""
        if not self.dist.main:
            return
        t0 = time.time()
        x = self.draw_samples(n)
        path = self.write_samples(x)
        # the grid's quality in a classifier's features (shapes data only; a few dozen samples, so "cheap")
        score = cheap_score(x, self.cfg.data)
        took = time.time() - t0
        self.report_s += took
        self.last_score = score or self.last_score
        log.write("sample", step=self.step, epoch=self.epoch, path=str(path.relative_to(self.run_dir)),
                  seconds=round(took, 3), n=n or self.cfg.n_samples, **score)
        self._pay("sample")

    def _nonfinite_message(self, step: int, loss, gnorm) -> str:
        what = "loss" if not torch.isfinite(loss) else "gradient"
        return f"training stopped: the {what} became non-finite at step {step}{self._kept()}."

    def _kept(self) -> str:
        """The clause naming the checkpoint a stop leaves in place, if there is one."""
        try:  # complete and verified, not merely the newest sidecar present
            return f"; the last good checkpoint {ckpt.resolve(checkpoints_dir(self.run_dir)).name} is kept"
        except ValueError:
            return ""


def _per_item(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A [B] tensor shaped [B, 1, ...] to broadcast over each item of ``like`` (an image or a point)."""
    return v.view((-1,) + (1,) * (like.ndim - 1))


class _NoLog:
    """The metrics writer of ranks other than 0, which write nothing."""

    def write(self, kind, **fields):
        pass

    def close(self):
        pass


def _average_grads(params, world: int) -> None:
    """Each gradient averaged over the ranks, as DDP does for the parameters it wraps."""
    import torch.distributed as tdist

    for p in params:
        if p.grad is not None:
            tdist.all_reduce(p.grad)
            p.grad /= world


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def new_run_dir(cfg: TrainConfig) -> Path:
    """runs_dir/name of a fresh run, refused when that run exists already."""
    run_dir = new_run(cfg).path
    # under torchrun only rank 0 asks: the others may start after it has written config.json
    if distributed.from_env().main and is_run(run_dir):
        raise ValueError(f"run {run_dir} already exists; pass --resume {run_dir} to continue it or choose another --name.")
    return run_dir
