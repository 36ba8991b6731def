"""Speed of the terminal UI: keypress latency, attaching to a huge log, idle CPU.

    python benchmarks/bench_tui.py            # all three, prints a table
    python benchmarks/bench_tui.py --lines 200000 --idle 5

1. chain screen: median time from a key press (Right) to the frame update the
   compositor produces for it (headless Textual; App._display is timed), T = 500.
2. monitor: a fresh process attaches to a metrics.jsonl of N lines (realistic
   train records, an eval every 1000) the way `vdm tui RUN` does (range readers
   started before the UI's imports) and draws the whole loss curve: wall time from
   launching the process (median of --repeat), and the peak RSS of the process and
   of a range reader.
3. monitor idle: a real `vdm tui RUN` in tmux on a finished run, CPU time over
   ~10 s of doing nothing, as a share of one core.
4. run list (`--parts runs`): a fresh process opens `vdm tui runs/` on five runs of
   --run-lines lines each (100,000 by default): wall time from launch to the filled
   table (the list reads a summary of each log: vdm.tailer.SummaryTailer), and to a
   five-run overlay with every run read to its end and drawn (goal: under 2 s); and,
   in this process, reading one log: parsed whole (the overlay) and its summary (the list).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from vdm.run import metrics_path  # noqa: E402 (after the path: run from a checkout)


# -- 1. keypress latency --------------------------------------------------------------
async def _latency(n: int, T: int) -> tuple[list[float], list[float]]:
    from textual import events

    from tui.app import ChainSource, VdmApp
    from tui.gpu import GpuReader

    app = VdmApp(None, source=ChainSource(T=T), start="chain", gpu_factory=lambda: GpuReader(nvml=object()))
    shown: list[float] = []
    real_display = app._display

    def timed_display(screen, renderable):
        if renderable is not None:
            shown.append((time.perf_counter(), time.process_time()))
        return real_display(screen, renderable)

    app._display = timed_display
    out, cpu = [], []
    async with app.run_test(size=(80, 24)) as pilot:
        while app.screen.chains["forward"] is None or not app.screen.prerendered:
            await pilot.pause(0.05)
        await pilot.pause(0.2)
        for i in range(n):
            key = "right" if (i // 50) % 2 == 0 else "left"  # stay inside 0..T
            t_before = app.screen.t()
            shown.clear()
            t0, c0 = time.perf_counter(), time.process_time()
            app.post_message(events.Key(key, None))  # what the terminal driver does for a key
            while not shown:
                await asyncio.sleep(0.0005)
            assert app.screen.t() != t_before
            out.append(shown[0][0] - t0)
            cpu.append(shown[0][1] - c0)
    return out, cpu


# -- 2. attaching to a huge log -------------------------------------------------------
def make_log(path: Path, lines: int) -> None:
    t0 = 1.7e9
    with open(path, "w") as f:
        f.write(json.dumps({"v": 1, "kind": "start", "time": t0, "step": 0, "epoch": 0, "device": "cuda",
                            "config": {"epochs": 1000, "T": 500}, "parameters": 1547337,
                            "steps_per_epoch": 20000, "total_steps": 20_000_000, "pid": 1}) + "\n")
        buf = []
        for i in range(1, lines):
            step = i * 20
            if i % 1000 == 0:
                buf.append(json.dumps({"v": 1, "kind": "eval", "time": t0 + i, "step": step, "epoch": step / 20000,
                                       "eval_loss": 0.1 + 1 / (1 + i / 1e4),
                                       "bpd": {"reconstruction": 5.4, "prior": 2.7e-5, "matching": 1 + 1 / (1 + i / 1e4),
                                               "total": 6.4 + 1 / (1 + i / 1e4)}}))
            else:
                buf.append(json.dumps({"v": 1, "kind": "train", "time": t0 + i, "step": step, "epoch": step / 20000,
                                       "loss": 0.1 + 1 / (1 + i / 1e4) + (i % 7) * 1e-3, "lr": 1e-3,
                                       "grad_norm": 0.2, "images_per_s": 12000.0 + i % 100,
                                       "elapsed": i * 0.2, "device": "cuda", "memory_mb": 2048.0}))
            if len(buf) >= 50000:
                f.write("\n".join(buf) + "\n")
                buf = []
        if buf:
            f.write("\n".join(buf) + "\n")


async def _attach(run: str, want: int, launched: float) -> dict:
    # what `vdm tui RUN` does (vdm_cli.faces.cmd_tui): start reading the log on other processes, then import the UI
    from vdm.tailer import MetricsTailer

    tailer = MetricsTailer(metrics_path(run))
    tailer.start_catch_up()
    from tui.app import VdmApp
    from tui.gpu import GpuReader

    t0 = time.perf_counter()
    app = VdmApp(run, poll_interval=0.5, gpu_factory=lambda: GpuReader(nvml=object()), tailer=tailer)
    async with app.run_test(size=(200, 50)) as pilot:
        while True:
            s = app.screen
            plot = s.query_one("#loss-plot")
            n = len(plot.series[0].x) + len(plot.series[1].x) if plot.series else 0
            if n >= want and plot._key is not None and plot._key[0] == plot._version:
                break
            await pilot.pause(0.02)
        took = time.perf_counter() - t0
        done = time.time()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the (large) parent
    hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)  # the range readers, all exited by now
    return {"seconds": done - launched, "app_seconds": took, "cpu_seconds": time.process_time(), "points": n,
            "peak_mb": int(hwm) / 1024, "readers_cpu": kids.ru_utime + kids.ru_stime, "readers_peak_mb": kids.ru_maxrss / 1024}


async def _runs(root: str, launched: float) -> dict:
    from tui.app import VdmApp
    from tui.gpu import GpuReader

    app = VdmApp(None, runs_root=root, gpu_factory=lambda: GpuReader(nvml=object()))
    async with app.run_test(size=(200, 50)) as pilot:
        while not getattr(app.screen, "ready", False):
            await pilot.pause(0.02)
        listed, cpu_listed = time.time(), time.process_time()
        await pilot.press("o")
        while True:  # every run read to its end and the plot drawn from them
            plot = app.screen.query_one("#overlay-loss") if app.screen.query("#overlay-loss") else None
            if (plot is not None and app.screen.pending == 0 and len(plot.series) == 5 and plot._key is not None
                    and plot._key[0] == plot._version):
                break
            await pilot.pause(0.02)
        overlaid, cpu_overlaid = time.time(), time.process_time()
        n = sum(len(x.x) for x in plot.series)
    # CPU time of this process (all its threads, imports included): what a loaded machine does not inflate
    return {"list_seconds": listed - launched, "overlay_seconds": overlaid - launched, "points": n,
            "list_cpu": cpu_listed, "overlay_cpu": cpu_overlaid}


def summary_rows(res: list[dict], spec) -> list[tuple[str, str, str, str]]:
    """Table rows of repeated measurements: each (label, result, note, goal) of ``spec`` with its
    ``{key}`` fields filled by the median of that key over ``res``, ``{max_key}`` by its maximum."""
    m = {k: statistics.median(r[k] for r in res) for k in res[0]}
    m.update({f"max_{k}": max(r[k] for r in res) for k in res[0]})
    return [(label, result.format(**m), note.format(**m), goal) for label, result, note, goal in spec]


def _attach_once(run: Path, want: int) -> dict:
    launched = time.time()
    out = subprocess.run([sys.executable, __file__, "--attach-child", f"{run},{want},{launched}"],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- 3. idle CPU ------------------------------------------------------------------------
def idle_cpu(run: Path, seconds: float) -> float | None:
    if shutil.which("tmux") is None:
        return None
    sock = f"vdmbench{os.getpid()}"
    tm = lambda *a: subprocess.run(["tmux", "-L", sock, *a], capture_output=True, text=True)
    tm("new-session", "-d", "-s", "b", "-x", "120", "-y", "40", f"exec {sys.executable} -m vdm_cli tui {run}")
    try:
        pid = int(tm("display", "-p", "-t", "b", "#{pane_pid}").stdout.strip())
        tick = os.sysconf("SC_CLK_TCK")

        def cpu():
            f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            return (int(f[11]) + int(f[12])) / tick

        # wait until start-up and the first read are over: the screen shows the run, the CPU settles
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            screen = tm("capture-pane", "-p", "-t", "b").stdout
            if ("training" in screen or "finished" in screen) and "reading" not in screen:
                break
            time.sleep(0.5)
        prev = cpu()
        while time.monotonic() < deadline:
            time.sleep(2.0)
            now = cpu()
            if now - prev < 0.1:
                break
            prev = now

        c0, w0 = cpu(), time.monotonic()
        time.sleep(seconds)
        c1, w1 = cpu(), time.monotonic()
        return (c1 - c0) / (w1 - w0) * 100
    finally:
        tm("kill-server")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presses", type=int, default=200)
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--idle", type=float, default=10.0)
    ap.add_argument("--repeat", type=int, default=3, help="attach measurements (the median is shown)")
    ap.add_argument("--parts", default="latency,attach,idle", help="which measurements (comma-separated)")
    ap.add_argument("--run-lines", type=int, default=100_000, help="lines of each of the five runs of --parts runs")
    ap.add_argument("--attach-child", help=argparse.SUPPRESS)
    ap.add_argument("--runs-child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.runs_child:  # the fresh process of measurement 4: ROOT LAUNCHED
        root, launched = args.runs_child.split(",")
        print(json.dumps(asyncio.run(_runs(root, float(launched)))))
        return
    if args.attach_child:  # the fresh process of measurement 2: RUN WANT LAUNCHED
        run, want, launched = args.attach_child.split(",")
        print(json.dumps(asyncio.run(_attach(run, int(want), float(launched)))))
        return
    rows = []
    parts = set(args.parts.split(","))
    known = {"latency", "attach", "idle", "runs"}
    if not parts <= known:
        ap.error(f"--parts takes latency, attach, idle and runs, not {', '.join(sorted(parts - known))}")
    if "latency" in parts:
        lat, cpu = asyncio.run(_latency(args.presses, 500))
        rows.append(("chain screen: key press -> frame, median wall", f"{statistics.median(lat) * 1e3:.1f} ms",
                     f"p90 {sorted(lat)[int(len(lat) * 0.9)] * 1e3:.1f} ms", "< 20 ms"))
        rows.append(("chain screen: CPU time per key press, median", f"{statistics.median(cpu) * 1e3:.1f} ms", "", ""))
    if "runs" in parts:
        with tempfile.TemporaryDirectory() as d:
            for i in range(5):
                (Path(d) / f"run{i}").mkdir()
                make_log(metrics_path(Path(d) / f"run{i}"), args.run_lines)
            res = []
            for _ in range(args.repeat):
                launched = time.time()
                out = subprocess.run([sys.executable, __file__, "--runs-child", f"{d},{launched}"],
                                     capture_output=True, text=True, check=True)
                res.append(json.loads(out.stdout.strip().splitlines()[-1]))
            rows += summary_rows(res, [
                (f"run list: 5 runs of {args.run_lines:,} lines, launch -> table", "{list_seconds:.2f} s",
                 f"median of {len(res)}", "< 2 s"),
                ("  launch -> five-run overlay drawn", "{overlay_seconds:.2f} s", "{points:,.0f} points", "< 2 s"),
                ("  CPU time of the process: to the table / to the overlay", "{list_cpu:.2f} s", "/ {overlay_cpu:.2f} s", "")])
            from vdm.tailer import parse_batch, summary_batch

            blob = metrics_path(Path(d) / "run0").read_bytes()
            for label, f in (("  one log parsed whole (the overlay's read)", parse_batch),
                             ("  one log's summary (the list's read)", summary_batch)):
                times = []
                for _ in range(5):
                    t = time.perf_counter()
                    f(blob)
                    times.append(time.perf_counter() - t)
                rows.append((label, f"{statistics.median(times) * 1e3:.0f} ms", f"{len(blob) / 2**20:.0f} MiB", ""))
    if parts & {"attach", "idle"}:  # the long log of measurements 2 and 3
        with tempfile.TemporaryDirectory() as d:
            run = Path(d) / "big"
            run.mkdir()
            t = time.perf_counter()
            make_log(metrics_path(run), args.lines)
            size = metrics_path(run).stat().st_size
            print(f"(wrote {args.lines:,} lines, {size / 2**20:.0f} MiB, in {time.perf_counter() - t:.0f} s)", file=sys.stderr)
            if "attach" in parts:
                res = [_attach_once(run, args.lines - 1) for _ in range(args.repeat)]
                rows += summary_rows(res, [
                    (f"monitor: attach to {args.lines:,} lines, launch -> whole curve", "{seconds:.2f} s",
                     f"median of {len(res)}", "< 3 s"),
                    ("  of which from the app's start", "{app_seconds:.2f} s", "{points:,.0f} points", ""),
                    ("  CPU time: the app's process / the range readers", "{cpu_seconds:.2f} s", "/ {readers_cpu:.2f} s", ""),
                    ("  peak memory: the app's process / one range reader", "{max_peak_mb:.0f} MB",
                     "/ {max_readers_peak_mb:.0f} MB", "< 300 MB")])
            if "idle" in parts:
                cpu = idle_cpu(run, args.idle)
                rows.append((f"monitor: idle CPU over {args.idle:.0f} s (tmux, {args.lines:,}-line run)",
                             "skipped (no tmux)" if cpu is None else f"{cpu:.2f} %", "of one core", "< 3 %"))
    w = max(len(r[0]) for r in rows)
    load = os.getloadavg()[0]
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True).stdout.strip()
    print(f"(commit {commit or '?'}; load average {load:.1f} on {os.cpu_count()} CPUs while measuring)")
    print(f"{'measurement':<{w}}  {'result':>12}  {'':<16}  goal")
    for r in rows:
        print(f"{r[0]:<{w}}  {r[1]:>12}  {r[2]:<16}  {r[3]}")


if __name__ == "__main__":
    main()
