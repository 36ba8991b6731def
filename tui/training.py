"""`vdm train --tui`: the training runs in a child process, the monitor in this one.

The parent writes the run's config.json; the child is
`python -m vdm_cli train --resume RUN --no-tui --quiet`, in its own session
(so a Ctrl+C or a closed terminal does not reach it) with its output in
``<run>/train.log``. Quitting the monitor either stops it with SIGINT (the trainer
then saves a checkpoint, evaluates and writes samples) or detaches from it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from vdm.run import open_train_log, train_log_path


class TrainingProcess:
    def __init__(self, argv: list[str], run_dir: str | os.PathLike):
        self.argv = list(argv)
        self.run_dir = Path(run_dir)
        self.log_path = train_log_path(self.run_dir)
        self.proc: subprocess.Popen | None = None

    def start(self) -> "TrainingProcess":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with os.fdopen(open_train_log(self.run_dir), "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "vdm_cli", "train", *self.argv],
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def poll(self) -> int | None:
        """None while it runs, else its exit status."""
        return self.proc.poll() if self.proc else 0

    @property
    def running(self) -> bool:
        return self.poll() is None

    def stop(self, timeout: float = 600.0) -> int | None:
        """SIGINT, then wait for the trainer to save and exit (SIGTERM, SIGKILL if it hangs)."""
        if not self.running:
            return self.poll()
        for sig, wait in ((signal.SIGINT, timeout), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                break
            try:
                return self.proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        return self.poll()

    def last_line(self) -> str:
        """The last non-empty line of the log: the one-sentence error of a failed start."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(f.seek(0, 2) - 4096, 0))
                lines = [l for l in f.read().decode("utf-8", "replace").splitlines() if l.strip()]
        except OSError:
            return ""
        return lines[-1].strip() if lines else ""


    def summary(self) -> list[str]:
        """The trainer's closing report in the log: from its last "stopped (" line to the end (the held-out -ELBO
        with its scale or exact references, where the samples are), [] when it never got there."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(f.seek(0, 2) - 16384, 0))
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            return []
        starts = [i for i, line in enumerate(lines) if line.startswith("stopped (")]
        return [line for line in lines[starts[-1]:] if line.strip()] if starts else []


def closing_lines(run_dir, end: dict | None, ev: dict | None, eval_size: int | None = None) -> list[str]:
    """What `vdm train --no-tui` prints as it ends, from a finished run's records: why and where it stopped, its
    last held-out -ELBO with its error (vdm.report.train_summary_line) and its newest sample grid
    (vdm.run.sample_path); [] before the end record (a live run, or one that died without one)."""
    from vdm.run import sample_path

    if end is None:
        return []
    lines = [f"stopped ({end.get('reason')}) at step {end.get('step')}, epoch {end.get('epoch')}."]
    bpd = (ev or {}).get("bpd")
    if isinstance(bpd, dict) and all(isinstance(bpd.get(k), (int, float)) for k in
                                     ("reconstruction", "prior", "matching", "total")):
        from vdm.report import train_summary_line  # torch: only once there is an -ELBO to report

        est = ev.get("estimator")
        n = est.get("items") if isinstance(est, dict) and isinstance(est.get("items"), int) else eval_size
        lines += train_summary_line(ev, n if n is not None else "the", run_dir).splitlines()
    grid = sample_path(run_dir)
    lines.append(f"samples: {grid}" if grid.exists() else "samples: none written")
    return lines


def child_argv(run_dir: Path) -> list[str]:
    """`vdm train` arguments for the child: train the run directory the parent wrote, no TUI, no progress bar.

    The configuration travels in config.json, never as flags: turning parsed values back into
    strings is a round trip argparse does not survive (a BooleanOptionalAction takes no value).
    """
    return ["--resume", str(run_dir), "--no-tui", "--quiet"]


def train_with_tui(run, fresh: bool = True) -> int:
    """Write the run's configuration, start the training child on it, show the monitor, say what became of it.

    ``fresh``: a new run, which must not exist yet. config.json is written under the run's writer
    lock (vdm.run.Run.lock), so two `vdm train --name X` started at once cannot both write it: the
    second is refused naming the first. The child takes the lock itself to train.
    """
    from tui.app import run_app

    run.config.validate()  # a bad flag is one sentence here, not a child that dies behind the UI
    run.schedule  # so is a schedule that cannot be made (--alpha with the cosine schedule)
    held = run.lock(fresh=fresh)
    try:
        run.write_config()  # the child reads it back: `vdm train --resume RUN` starts a run without a checkpoint at step 0
    finally:
        held.release()
    run_dir = run.path
    proc = TrainingProcess(child_argv(run_dir), run_dir).start()
    try:
        outcome = run_app(run_dir, process=proc)
    except BaseException:
        proc.stop(timeout=30)  # the UI crashed: do not leave an orphan behind
        raise
    code = proc.poll()
    if outcome == "detached" and code is None:
        print(f"training goes on in the background (pid {proc.pid}); its output is in {proc.log_path}.")
        print(f"watch it again with: vdm tui {run_dir}")
        return 0
    if code is None:  # quit while finished? wait briefly for the exit status
        code = proc.stop(timeout=600)
    print(f"training {'stopped' if outcome == 'stopped' else 'ended'} (status {code}); run: {run_dir}; log: {proc.log_path}")
    for line in proc.summary():  # what the monitor showed is gone with it: the numbers stay in the terminal
        print(line)
    if code in (0, None):
        print(f"watch it again, and step through its chains (key 2): vdm tui {run_dir}")
    return 0 if code in (0, None) else 1
