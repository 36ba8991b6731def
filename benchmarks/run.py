"""Every benchmark in benchmarks/, one after the other (never two at once: they would time each other).

    python3 benchmarks/run.py               # all of them, then one table
    python3 benchmarks/run.py --quick       # fewer rounds
    python3 benchmarks/run.py --only train sample
    python3 benchmarks/run.py --gpu         # training: the 200-epoch GPU run instead of the CPU rounds

bench_train.py and bench_sample.py write their rows as JSON and end up in the one table; the
other bench_*.py (the terminal UI's, the renders') print their own tables, shown as they are.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=HERE.parent, capture_output=True, text=True)
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds and steps")
    ap.add_argument("--only", nargs="*", help="names like train, sample, tui, render")
    ap.add_argument("--gpu", action="store_true", help="the GPU measurement of bench_train.py")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile (minutes on a CPU)")
    args = ap.parse_args()
    quick = ["--rounds", "2"] if args.quick else []
    own = {
        "train": (["--gpu"] if args.gpu else quick + (["--steps", "4"] if args.quick else []) + (["--compile"] if args.compile else [])),
        "sample": quick + (["--device", "cuda", "--T", "500", "--n", "256"] + (["--compile"] if args.compile else []) if args.gpu else []),
    }
    scripts = sorted(HERE.glob("bench_*.py"))
    names = [p.stem[len("bench_"):] for p in scripts]
    if args.only:
        unknown = [n for n in args.only if n not in names]
        if unknown:
            print(f"run.py: no benchmark named {', '.join(unknown)}; there are {', '.join(names)}.", file=sys.stderr)
            return 2
    rows, failed = [], []
    tmp = Path(tempfile.mkdtemp(prefix="vdm-bench-"))
    for script, name in zip(scripts, names):
        if args.only and name not in args.only:
            continue
        cmd = [sys.executable, str(script)]
        if name in own:
            cmd += own[name] + ["--json", str(tmp / f"{name}.json")]
        print(f"== {script.name} ==", flush=True)
        p = subprocess.run(cmd, cwd=HERE.parent)
        if p.returncode != 0:
            failed.append(script.name)
            continue
        if name in own and (tmp / f"{name}.json").exists():
            rows += json.loads((tmp / f"{name}.json").read_text())
    print()
    print(f"date {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit()}, "
          f"{platform.node()} ({platform.machine()}, Python {platform.python_version()})")
    if rows:
        w = max(len(r["name"]) for r in rows)
        print(f"{'measurement':<{w}}  {'median':>10}  {'unit':<8}  {'ratio':>8}")
        for r in rows:
            ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x"
            print(f"{r['name']:<{w}}  {r['value']:>10.2f}  {r['unit']:<8}  {ratio:>8}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
