"""The ELBO report of a trained model: `vdm elbo`'s numbers (:func:`elbo_report`) and its text (:func:`format_report`).

Both forms (exercises 2 and 3) on held-out data, every term, each decoder, the estimator's Monte Carlo error,
and the references to read the bound against: for images the uniform model's 8 bits/dim and published
CIFAR-10 bounds; for a Gaussian-mixture data set the exact ones (vdm.gmm): the Bayes-optimal denoiser's
-ELBO on the same noise and the true -log p(x_0), with the gaps between them named.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vdm import data as datasets
from vdm import elbo as E
from vdm import gmm

TERMS = ("reconstruction", "prior", "matching", "total")


def error_decimals(se: float, most: int = 6) -> int:
    """Decimals that end a number at its error's second significant digit (0.043 -> 3, 3.2 -> 1, 12 -> 0):
    the digits after that are noise. ``se`` > 0 and finite."""
    return min(max(1 - math.floor(math.log10(se)), 0), most)


def share_error(p, n):
    """The standard error of a share p of n independent trials (binomial): sqrt(p (1 - p) / n)."""
    return (p * (1 - p) / n) ** 0.5


def percent_with_error(p: float, n: int) -> str:
    """A share as "95.95 ± 0.44 %" (mean to its error's second significant digit, as every estimate shown), or
    "100 %" / "0 %" when every trial or none succeeded (no spread to show)."""
    se = share_error(p, n)
    if se == 0:
        return f"{100 * p:.0f} %"
    d = error_decimals(100 * se)
    return f"{100 * p:.{d}f} ± {100 * se:.{d}f} %"


@dataclass(frozen=True)
class ElboOptions:
    """How `vdm elbo` estimates: the estimator, p(t) of the importance one, draws per item, which decoders, the
    items held back for calibration (the last ``calibration_n`` of the test split), batch size and seed."""

    estimator: str = "full"
    proposal: str = "pilot"
    draws: int = 2
    decoder: str = "both"
    calibration_n: int = 256
    batch_size: int = 64
    seed: int = 0


def elbo_report(den, meta: dict, data: str, test: torch.Tensor, n: int, opts: ElboOptions, device="cpu") -> dict:
    """The report's numbers as one JSON-ready dict (what ``vdm elbo --json`` prints; the text is made from it).

    The first ``n`` items of ``test`` are evaluated; the last ``opts.calibration_n`` calibrate the decoder and
    the pilot proposal. bits/dim per form and decoder: every term, the total, the estimator's Monte Carlo
    standard error (:func:`vdm.elbo.mc_standard_error`, items fixed) and the spread across items / sqrt(n);
    nats for every form. A Gaussian-mixture data set adds "exact" (:func:`exact_references`).
    """
    if n + opts.calibration_n > len(test):  # n as asked, not as many as there are (test[:n] would clip it)
        raise ValueError(f"the {len(test)} held-out items cannot hold --n {n} evaluated and --calibration-n "
                         f"{opts.calibration_n} calibration items apart; ask for fewer.")
    x = test[:n]
    x_cal = test[len(test) - opts.calibration_n:]
    s = den.schedule
    g = torch.Generator(device=device).manual_seed(opts.seed)
    with torch.no_grad():
        decoders = _decoders(den, s, x_cal, opts.decoder, g, device)
        proposals = {f: _proposal(den, s, x_cal, f, opts, g, device) for f in E.FORMS}
        draws = {f: _draws(den, s, x, f, opts, decoders, proposals[f], g, device) for f in E.FORMS}
    out = _summary(opts, meta, data, s, x, len(test), decoders, draws)
    if gmm.is_mixture(data):
        out["exact"] = exact_references(den, gmm.layout(data), s, x, opts, device)
    return out


def exact_references(den, mixture: gmm.GMM, s, x: torch.Tensor, opts: ElboOptions, device="cpu") -> dict:
    """The model's -ELBO beside the Bayes-optimal denoiser's and the true -log p(x_0), per dimension, each with its error.

    Denoising form, fixed (density) decoder, ``opts.estimator`` (importance: the SNR proposal); draw k of both
    denoisers from the same seed, so they meet the same x_t and their difference is paired. ``*_se``: the
    Monte Carlo standard error (points fixed); -log p(x_0) is exact for each point, so its only error is
    the spread of the held-out points, std / sqrt(n) (``nll_spread``). The gaps:
    model - optimal is the model's distance from the best possible denoiser; optimal - nll is what no x̂_0
    model removes at this schedule and T: E KL(q(x_{1:T}|x_0) || p(x_{1:T}|x_0)) plus KL(q(x_0) || p(x_0)).
    """
    x0 = datasets.to_float(x.to(device))
    dims = x0[0].numel()
    optimal = gmm.OptimalDenoiser(mixture, s)
    proposal = E.snr_proposal(s) if opts.estimator == "importance" and s.T >= 2 else None
    totals = {"model": [], "optimal": []}
    with torch.no_grad():
        for k in range(opts.draws):
            for name, d in (("model", den), ("optimal", optimal)):
                g = torch.Generator(device=device).manual_seed(opts.seed * 1_000_003 + k)
                e = E.elbo(d, s, x0, "denoising", opts.estimator, generator=g, proposal=proposal)
                totals[name].append(e.total.double().cpu() / dims)
    model, opt = torch.stack(totals["model"]), torch.stack(totals["optimal"])  # [draws, n] nats/dim
    nll = -mixture.log_prob(x0.cpu()) / dims
    n = len(nll)
    row = lambda v, se: {"nats": float(v), "bits": float(E.nats_to_bpd(v, 1)), "se_nats": se}  # noqa: E731
    return {
        "form": "denoising", "decoder": E.fixed_decoder(s, True).describe(), "estimator": opts.estimator,
        "draws": opts.draws, "points": n, "unit": "nats per dimension",
        "model": row(model.mean(), E.mc_standard_error(model)),
        "optimal": row(opt.mean(), E.mc_standard_error(opt)),
        "nll": row(nll.mean(), 0.0) | {"spread_nats": float(nll.std() / math.sqrt(n)) if n > 1 else float("nan")},
        "model_minus_optimal": row((model - opt).mean(), E.mc_standard_error(model - opt)),
        "optimal_minus_nll": row(opt.mean() - nll.mean(), E.mc_standard_error(opt)),
    }


def _decoders(den, s, x_cal, which, g, device) -> list:
    """The decoders asked for: fixed (DDPM's), calibrated on x_cal, or both (densities for points)."""
    continuous = E.is_continuous(datasets.to_float(x_cal[:1]))
    out = [E.fixed_decoder(s, continuous)] if which in ("fixed", "both") else []
    if which in ("calibrated", "both"):
        out.append(E.calibrate_decoder(den, s, datasets.to_float(x_cal.to(device)), generator=g))
    return out


def _proposal(den, s, x_cal, form, opts, g, device):
    """p(t) of the importance estimator: a pilot pass on 16 calibration items, or the SNR proposal."""
    if opts.estimator != "importance" or s.T < 2:
        return None
    if opts.proposal == "snr":
        return E.snr_proposal(s, form)
    return E.pilot_proposal(den, s, datasets.to_float(x_cal[:16].to(device)), form, generator=g)


PILOT_ITEMS, PILOT_KNOTS = 8, 16  # the trainer's proposal: 128 network calls (on the main job's model the
# per-draw error fell from 0.142 to 0.081 bits/dim, the full pilot's 0.081; benchmarks/RESULTS.md)


def heldout_draws(den, s, x: torch.Tensor, opts: ElboOptions, device="cpu") -> dict:
    """The trainer's held-out -ELBO: {term: [draws, n] nats} of the denoising form, fixed decoder, on items ``x``.

    The same estimator as `vdm elbo` (:func:`_draws`, ``opts.estimator``; ``importance`` with
    :func:`vdm.elbo.knot_proposal` from PILOT_ITEMS of the items at PILOT_KNOTS t, as good as `vdm elbo`'s full
    pilot pass for a tenth of an evaluation's time), drawn ``opts.draws`` times from a generator seeded
    with ``opts.seed``: on fixed items and a fixed seed two models meet the same t and noise (a paired
    comparison), and :func:`estimate_row` gives the mean with its Monte Carlo error.
    """
    g = torch.Generator(device=device).manual_seed(opts.seed)
    decoder = E.fixed_decoder(s, E.is_continuous(datasets.to_float(x[:1])))
    proposal = None
    if opts.estimator == "importance" and s.T >= 2:
        pilot_g = torch.Generator(device=device).manual_seed(opts.seed + 1)  # apart from the draws' own noise
        with torch.no_grad():
            proposal = E.knot_proposal(den, s, datasets.to_float(x[:PILOT_ITEMS].to(device)), PILOT_KNOTS, pilot_g)
    with torch.no_grad():
        return _draws(den, s, x, "denoising", opts, [decoder], proposal, g, device, progress=False)[decoder.name]


def estimate_row(draws: dict, dims: int) -> dict:
    """bits/dim of every term (mean over draws and items), ``mc_standard_error`` (the estimator's own noise, the
    items fixed: :func:`vdm.elbo.mc_standard_error`) and ``spread_over_sqrt_n`` (std of the items' estimates / sqrt(n),
    which also holds how much the items differ) of the total, from {term: [draws, n] nats}."""
    bpd = lambda v: float(E.nats_to_bpd(v, dims))  # noqa: E731
    tot = draws["total"]
    n = tot.shape[1]
    row = {k: bpd(draws[k].mean()) for k in TERMS}
    row["mc_standard_error"] = bpd(E.mc_standard_error(tot))
    row["spread_over_sqrt_n"] = bpd(tot.mean(0).std() / math.sqrt(n)) if n > 1 else float("nan")
    return row


def _draws(den, s, x, form, opts, decoders, proposal, g, device, progress: bool = True) -> dict:
    """{decoder name: {term: [draws, n] nats}}: every item's estimate, drawn opts.draws times (a progress bar on
    stderr with ``progress``)."""
    import sys

    from tqdm import tqdm

    rows = {d.name: {k: [] for k in TERMS} for d in decoders}
    for _ in tqdm(range(opts.draws), desc=form, file=sys.stderr, dynamic_ncols=True, disable=not progress):
        parts = {d.name: [] for d in decoders}
        for i in range(0, len(x), opts.batch_size):
            x0 = datasets.to_float(x[i: i + opts.batch_size].to(device))
            e = E.elbo(den, s, x0, form, opts.estimator, generator=g, decoder=decoders[0], proposal=proposal)
            parts[decoders[0].name].append(e)
            for d in decoders[1:]:  # the same prior and matching draws; the reconstruction at its own x_1
                parts[d.name].append(e.with_decoder(E.reconstruction_nats(den, s, x0, g, d), d))
        for dname, es in parts.items():
            for k in rows[dname]:
                rows[dname][k].append(torch.cat([p.terms()[k] for p in es]).double().cpu())
    return {d: {k: torch.stack(v) for k, v in terms.items()} for d, terms in rows.items()}


def _summary(opts, meta, name, s, x, n_test, decoders, draws) -> dict:
    dims, n = x[0].numel(), len(x)
    density = E.is_continuous(datasets.to_float(x[:1]))
    how = {"full": "the full sum over t", "uniform": "one uniform t per item, weight T - 1",
           "importance": "one t per item from p(t), weight 1/p(t); p(t) from "
                         + ("a pilot pass on 16 calibration items" if opts.proposal == "pilot" else "the SNR alone")}
    forms = {}
    for f in E.FORMS:
        forms[f] = {}
        for d in decoders:
            row = estimate_row(draws[f][d.name], dims)
            row["nats"] = {k: float(draws[f][d.name][k].mean()) for k in TERMS}
            forms[f][d.name] = row
    decs = []
    for d in decoders:
        where = ("DDPM's sqrt(1 - alpha_1)" if d.name == "fixed" else
                 f"max. likelihood on held-out items {n_test - opts.calibration_n}..{n_test - 1}, not the evaluated ones")
        decs.append({"name": d.name, "std": [float(v) for v in d.std.flatten()],
                     "std_grey_levels": None if density else [float(v) * 127.5 for v in d.std.flatten()],
                     "describe": d.describe(), "how": where})
    return {
        "bound": "-ELBO, an upper bound on -log p(x_0)", "unit": "bits/dim", "dims": dims, "density": density,
        "model": meta.get("model"), "prediction": meta.get("prediction", "x0"), "step": meta.get("step"),
        "data": name, "images": n, "test_split": [0, n - 1], "schedule": s.describe(), "T": s.T,
        "estimator": {"name": opts.estimator, "describe": how[opts.estimator], "draws": opts.draws,
                      "proposal": opts.proposal if opts.estimator == "importance" else None},
        "decoders": decs, "forms": forms,
        "references": {"uniform_bpd": None if density else E.UNIFORM_BPD, "cifar10_bpd": dict(E.CIFAR10_BPD),
                       "same_data_set": name == "cifar10"},
    }


def nan_to_null(v):
    """A NaN (a standard error of one draw, a spread of one item) as JSON's null: NaN is not JSON."""
    if isinstance(v, dict):
        return {k: nan_to_null(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [nan_to_null(x) for x in v]
    return None if isinstance(v, float) and not math.isfinite(v) else v


def format_report(summary: dict) -> str:
    """`vdm elbo`'s text report, from :func:`elbo_report`'s numbers."""
    sm, n, name = summary, summary["images"], summary["data"]
    density = sm.get("density", False)
    what = "held-out points" if density else "held-out images"
    lines = [f"-ELBO of {sm['model']} ({sm['prediction']} prediction) at step {sm['step']} on {n} {name} {what} "
             f"(test split 0..{n - 1}); {sm['schedule']}"]
    if density:
        lines.append(f"-ELBO is an upper bound on -log p(x_0), here of a density ({sm['dims']} dimensions a point): "
                     "bits/dim of a density can be negative; nats per dimension beside them.")
    else:
        lines.append(f"-ELBO is an upper bound on -log p(x_0), here in bits per dimension ({sm['dims']:,} dimensions an image).")
    est = sm["estimator"]
    lines.append(f"estimator: {est['name']}, {est['describe']}; {est['draws']} independent draw(s) per item, averaged")
    for d in sm["decoders"]:
        lines.append(f"decoder p(x_0|x_1): {d['describe']} ({d['how']})")
    lines.append("")
    unit = "nats/dim" if density else "nats"
    lines.append(f"{'term':<44} {'consistency bpd':>16} {'denoising bpd':>14} {unit + ' (denoising)':>17}")
    names = [d["name"] for d in sm["decoders"]]
    rows = [(f"reconstruction, {d} decoder", d, "reconstruction") for d in names]
    rows += [("prior matching", names[0], "prior"), ("consistency / denoising matching", names[0], "matching")]
    rows += [(f"total (-ELBO), {d} decoder", d, "total") for d in names]
    c_, d_ = sm["forms"]["consistency"], sm["forms"]["denoising"]
    per = sm["dims"] if density else 1
    for label, dname, k in rows:
        lines.append(f"{label:<44} {c_[dname][k]:>16.4f} {d_[dname][k]:>14.4f} {d_[dname]['nats'][k] / per:>17.4f}")
    for d in names:
        lines.append(f"{'MC standard error, ' + d:<44} {c_[d]['mc_standard_error']:>16.4f} {d_[d]['mc_standard_error']:>14.4f}")
        lines.append(f"{'spread across items / sqrt(n), ' + d:<44} {c_[d]['spread_over_sqrt_n']:>16.4f} "
                     f"{d_[d]['spread_over_sqrt_n']:>14.4f}")
    lines.append("MC standard error: the estimator's own noise (t, x_t, x_1 redrawn) with these items fixed; the spread "
                 "across items also holds how much the items differ.")
    if "exact" in sm:
        lines += [""] + _exact_lines(sm["exact"])
    elif density:
        lines.append(f"references: {name} has no exact density; gmm and gmm-grid do (vdm train --data gmm).")
    else:
        cifar = ", ".join(f"{k} {v:.2f}" for k, v in E.CIFAR10_BPD)
        data_note = ("the same data set" if sm["references"]["same_data_set"] else
                     f"another data set than these {name} images, so not comparable image for image")
        lines.append(f"references (-log p or -ELBO, bits/dim): a model uniform over the 256 levels scores {E.UNIFORM_BPD:g} "
                     f"bits/dim; published CIFAR-10 test bounds ({data_note}): {cifar}.")
    return "\n".join(lines)


def _exact_lines(ex: dict) -> list[str]:
    """The exact references of a Gaussian-mixture data set, side by side, and the two gaps named."""
    def num(r, err):
        e = r.get(err)
        pm = "" if e is None or not math.isfinite(e) else f" ± {e:.4f}"
        return f"{r['nats']:>9.4f}{pm:<10} (= {r['bits']:.4f} bits/dim)"

    return [
        f"exact references ({ex['points']} points, denoising form, {ex['decoder']}, {ex['estimator']} estimator, "
        f"{ex['draws']} draws; the model and the optimal denoiser on the same x_t), in nats per dimension:",
        f"  {'model -ELBO':<34} {num(ex['model'], 'se_nats')}",
        f"  {'optimal denoiser -ELBO':<34} {num(ex['optimal'], 'se_nats')}   x̂_0 = E[x_0 | x_t], the best any x̂_0 model can do",
        f"  {'true -log p(x_0)':<34} {num(ex['nll'], 'spread_nats')}   exact for each point; ± is the spread of the points / sqrt(n)",
        f"  {'gap: model - optimal':<34} {num(ex['model_minus_optimal'], 'se_nats')}   how far training is from the best possible",
        f"  {'gap: optimal - true':<34} {num(ex['optimal_minus_nll'], 'se_nats')}   the bound's own gap at this T: "
        "E KL(q(x_1:T|x_0) || p(x_1:T|x_0)) + KL(q(x_0) || p(x_0)), no x̂_0 model removes it",
        "  ± is the Monte Carlo standard error with the points fixed (the model - optimal difference is paired).",
        "  The trainer's closing numbers and the monitor's come from their own draws of the noise on all held-out",
        "  points, so they differ from these by about their errors; both estimate the same bounds.",
    ]


def train_summary_line(ev: dict, n: int, run_dir) -> str:
    """The trainer's last -ELBO (an eval record ``ev``), named, with its standard error over the items and the
    scale a learner needs to read it: the uniform model and published bounds for images, the exact references
    of a Gaussian mixture for points."""
    bpd, se, mc = ev["bpd"], ev.get("bpd_se"), ev.get("bpd_mc_se")
    pm = "" if se is None else f" ± {se:.3f} (standard error over the items and their t"
    if pm:  # the estimator's own error on these items: what the monitor shows and `vdm elbo` agrees within
        pm += f"; the estimator's own, these items fixed: ± {mc:.3f})" if mc is not None else ")"
    if ev.get("density"):
        head = (f"held-out -ELBO (denoising form, an upper bound on -log p(x_0) of a density) in bits/dim, on {n} test "
                f"points with every t and the {ev.get('decoder', 'fixed')} Gaussian decoder: reconstruction "
                f"{bpd['reconstruction']:.3f} + prior {bpd['prior']:.4f} + denoising matching {bpd['matching']:.3f} "
                f"= {bpd['total']:.3f}{pm}")
        ref = ev.get("reference")
        if not ref:
            return head + f"\n  exact numbers and both ELBO forms: vdm elbo {run_dir}"
        return (head + f"\n  exact references on the same points: the optimal denoiser E[x_0|x_t] scores "
                f"{ref['optimal']:.3f} ± {ref['optimal_se']:.3f}, the true -log p(x_0) {ref['nll']:.3f}; "
                f"the full report: vdm elbo {run_dir}")
    cifar = ", ".join(f"{k.split(' (')[0]} {v:.2f}" for k, v in E.CIFAR10_BPD)
    est = ev.get("estimator") if isinstance(ev.get("estimator"), dict) else {}
    how = (f"{est.get('draws')} draws of t from the importance proposal each" if est.get("name") == "importance"
           else "one uniform t each")
    return ("held-out -ELBO (denoising form, an upper bound on -log p(x_0)) in bits/dim, on {n} test images with "
            "{how} and the {decoder} decoder: reconstruction {reconstruction:.3f} + prior {prior:.4f} "
            "+ denoising matching {matching:.3f} = {total:.3f}{pm}\n"
            "  for scale: a model uniform over the 256 levels scores {uniform:g}; published CIFAR-10 bounds (another "
            "data set): {cifar}; more draws and a calibrated decoder: vdm elbo {run} --estimator importance"
            ).format(n=n, how=how, decoder=ev.get("decoder", "fixed"), uniform=E.UNIFORM_BPD, cifar=cifar, run=run_dir,
                     pm=pm.replace("items", "images"), **bpd)
