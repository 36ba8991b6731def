"""Render time of each lecture scene: `vdm render <scene> --quality low` (goal: under 30 s each).

    python3 benchmarks/bench_render.py                  # every scene at -ql, cold and warm TeX cache
    python3 benchmarks/bench_render.py --scenes posterior backward
    python3 benchmarks/bench_render.py --high           # also the whole lecture at 1080p60 (goal: < 10 min)

Each render is its own `python3 -m vdm_cli render` process, as a user runs it: the
time includes importing torch and manim. "cold" starts from an empty output folder
(every formula goes through LaTeX), "warm" renders again into it (TeX cached).
Wall time depends on what else runs on the machine, so the table also shows the
CPU seconds of the render process and the load average at the start.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_render(scene: str, quality: str, out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one `vdm render` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "vdm_cli", "render", scene, "--quality", quality, "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"vdm render {scene} failed:\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def video_seconds(path: Path) -> float:
    import imageio_ffmpeg

    frames, secs = imageio_ffmpeg.count_frames_and_secs(str(path))
    return secs


def main() -> int:
    from animations.render import SCENES

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", nargs="*", default=list(SCENES), choices=list(SCENES))
    ap.add_argument("--high", action="store_true", help="also render the whole lecture at 1080p60")
    ap.add_argument("--goal", type=float, default=30.0, help="seconds per scene at -ql")
    args = ap.parse_args()

    print(f"load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'scene':18} {'video s':>8} {'cold wall':>10} {'cold cpu':>9} {'warm wall':>10} {'warm cpu':>9}  goal")
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for scene in args.scenes:
            out = Path(tmp) / scene
            cold = run_render(scene, "low", out)
            warm = run_render(scene, "low", out)
            secs = video_seconds(out / f"{SCENES[scene][1]}.mp4")
            ok = "ok" if min(cold[0], warm[0]) < args.goal else "SLOW"
            worst = max(worst, warm[0])
            print(f"{scene:18} {secs:8.1f} {cold[0]:10.1f} {cold[1]:9.1f} {warm[0]:10.1f} {warm[1]:9.1f}  {ok}",
                  flush=True)
        if args.high:
            wall, cpu = run_render("all", "high", Path(tmp) / "high")
            ok = "ok" if wall < 600 else "SLOW"
            print(f"{'all at 1080p60':18} {'':8} {wall:10.1f} {cpu:9.1f} {'':10} {'':9}  {ok} (goal 600 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
