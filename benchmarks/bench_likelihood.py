"""Held-out -ELBO after equal CPU budgets, for four configurations.

    python3 benchmarks/bench_likelihood.py train --budgets 3 10 --out /tmp/lik   # the runs
    python3 benchmarks/bench_likelihood.py table --out /tmp/lik                  # evaluate, one table

The budget is CPU time, not wall time: each trainer runs with one thread (--threads 1) and is
stopped with SIGTERM (a clean stop: checkpoint, samples, end record) once its own CPU time
(utime + stime from /proc/PID/stat) reaches the budget. So two trainers may share two cores, and
a busy machine slows the benchmark without changing what each configuration was given. The
budget includes torch's import, the per-epoch held-out evaluation and the final sample grid.

Every run has the same seed (0) and data (the embedded shapes). The table's -ELBO is `vdm elbo`'s
(held-out images, importance-sampled t, several draws per image: the Monte Carlo standard error
is the estimator's own), each term apart, with both decoders (DDPM's fixed std and the std
calibrated on other held-out images).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vdm.run import metrics_path, sample_path  # noqa: E402 (after the path: run from a checkout)


HERE = Path(__file__).resolve().parent
VDM = str(Path(sys.executable).with_name("vdm"))
CLOCK = os.sysconf("SC_CLK_TCK")
# the README main job's flags (cosine, batch 32, EMA) are the base of the three non-assignment rows
DEMO = ["--schedule", "cosine", "--batch-size", "32", "--ema", "0.995", "--n-samples", "36"]
CONFIGS = {
    "assignment": ["--n-samples", "36"],  # constant alpha, x0 prediction, batch 128, no EMA
    "cosine": DEMO,
    "preconditioned": DEMO + ["--prediction", "x0-precond"],
    # the assignment's constant schedule with the demo's batch and EMA, without and with preconditioning
    "constant-demo": ["--batch-size", "32", "--ema", "0.995", "--n-samples", "36"],
    "constant-precond": ["--batch-size", "32", "--ema", "0.995", "--n-samples", "36", "--prediction", "x0-precond"],
    # x0-precond: with the plain x0 network, a learned schedule's ELBO loss weights the error at
    # t near 0 by -SNR'(0) ~ 1e7 and training fails (8,461 bits/dim after 3 CPU minutes, white samples)
    "learned": ["--schedule", "learned", "--prediction", "x0-precond", "--batch-size", "32", "--ema", "0.995",
                "--n-samples", "36"],
    # EDM's weighting (--weighting edm): the learned run's network on the ELBO integrand times 1 + 1/(SNR sigma_d^2)
    # (gamma still on the ELBO), and cosine x0-precond on ||x_0 - x̂_0||^2 / c_out^2
    "learned-edm": ["--schedule", "learned", "--prediction", "x0-precond", "--weighting", "edm", "--batch-size", "32",
                    "--ema", "0.995", "--n-samples", "36"],
    "preconditioned-edm": DEMO + ["--prediction", "x0-precond", "--weighting", "edm"],
}


def cpu_seconds(pid: int) -> float:
    """utime + stime of a live process, in seconds (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK


def train(name: str, flags: list[str], budget_min: float, out: Path) -> dict:
    """One trainer, stopped by SIGTERM at `budget_min` CPU minutes; its run directory and figures."""
    argv = [VDM, "train", "--no-tui", "--quiet", "--threads", "1", "--seed", "0", "--epochs", "100000",
            "--runs-dir", str(out), "--name", name, *flags]
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    used = 0.0
    while p.poll() is None:
        try:
            used = cpu_seconds(p.pid)
        except (OSError, IndexError, ValueError):
            break
        if used >= 60 * budget_min:
            p.send_signal(signal.SIGTERM)
            break
        time.sleep(0.5)
    _, err = p.communicate()
    return {"name": name, "flags": flags, "commit": _commit(), "budget_cpu_min": budget_min, "cpu_s_at_stop": round(used, 1),
            "wall_s": round(time.monotonic() - t0, 1), "status": p.returncode, "stderr": err.decode()[-400:]}


def _commit() -> str:
    """The commit the trainer ran, and whether the tree had changes."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "vdm"], cwd=HERE.parent, capture_output=True, text=True)
    return head + (" (vdm/ with uncommitted changes)" if dirty.stdout.strip() else "")


def cmd_train(args) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for budget in args.budgets:
        for cfg in args.configs:
            name = f"{cfg}-{budget:g}min"
            if (out / name).exists():
                print(f"{name}: already there, skipped", flush=True)
                continue
            row = train(name, CONFIGS[cfg], budget, out)
            (out / f"{name}.train.json").write_text(json.dumps(row, indent=1))
            print(json.dumps({k: row[k] for k in ("name", "cpu_s_at_stop", "wall_s", "status")}), flush=True)


def evaluate(run: Path, n: int, draws: int) -> dict:
    """`vdm elbo --json` of a run (importance-sampled t, both decoders), kept in <run>/elbo.json.

    Returns {decoder: {term: bits/dim, "se": MC standard error}, "shared": {prior, matching},
    "describe": {decoder: its description}} for the denoising form, and "continuous" (bits/dim
    total) for a learned run.
    """
    out = subprocess.run([VDM, "elbo", str(run), "--n", str(n), "--draws", str(draws), "--estimator", "importance",
                          "--decoder", "both", "--json"], check=True, capture_output=True, text=True).stdout
    (run / "elbo.json").write_text(out)
    rep = json.loads(out)
    den = rep["forms"]["denoising"]
    rows = {d: {"reconstruction": r["reconstruction"], "total": r["total"], "se": r["mc_standard_error"]}
            for d, r in den.items()}
    first = rep["decoders"][0]["name"]
    rows["shared"] = {"prior": den[first]["prior"], "matching": den[first]["matching"]}
    rows["describe"] = {d["name"]: d["describe"] for d in rep["decoders"]}
    if "continuous" in rep:
        rows["continuous"] = rep["continuous"]["bpd"]["total"]
    return rows


def steps_of(run: Path) -> int:
    last = 0
    for line in metrics_path(run).read_text().splitlines():
        try:
            last = max(last, int(json.loads(line).get("step", 0)))
        except (ValueError, AttributeError, TypeError):
            pass
    return last


def cmd_table(args) -> None:
    out = Path(args.out)
    rows = []
    for tj in sorted(out.glob("*.train.json")):
        t = json.loads(tj.read_text())
        run = out / t["name"]
        e = evaluate(run, args.n, args.draws)
        rows.append((t, steps_of(run), e))
    print("| run | CPU min | updates | decoder | -ELBO bits/dim (± MC s.e.) | reconstruction | prior | matching | continuous |")
    print("|---|---|---|---|---|---|---|---|---|")
    for t, steps, e in rows:
        for dec in ("fixed", "calibrated"):
            d, sh = e[dec], e["shared"]
            cont = f"{e['continuous']:.2f}" if "continuous" in e else "-"
            print(f"| {t['name']} | {t['cpu_s_at_stop'] / 60:.1f} | {steps} | {e['describe'][dec]} | "
                  f"{d['total']:.2f} ± {d['se']:.2f} | {d['reconstruction']:.2f} | {sh['prior']:.3f} | {sh['matching']:.2f} | "
                  f"{cont} |")
    print(f"\nsample grids: {sample_path(Path(out) / '<run>')}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    tr = sub.add_parser("train")
    tr.add_argument("--budgets", type=float, nargs="+", default=[3, 10], help="CPU minutes per run")
    tr.add_argument("--configs", nargs="+", default=["assignment", "cosine", "preconditioned", "learned"], choices=list(CONFIGS))
    tr.add_argument("--out", required=True)
    tb = sub.add_parser("table")
    tb.add_argument("--out", required=True)
    tb.add_argument("--n", type=int, default=512)
    tb.add_argument("--draws", type=int, default=8)
    args = ap.parse_args()
    {"train": cmd_train, "table": cmd_table}[args.cmd](args)


if __name__ == "__main__":
    main()
