"""`vdm train --tui`: the training runs in a child process, the monitor in this one.

The child is `python -m vdm.cli train ... --no-tui --quiet`, in its own session
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


class TrainingProcess:
    def __init__(self, argv: list[str], run_dir: str | os.PathLike):
        self.argv = list(argv)
        self.run_dir = Path(run_dir)
        self.log_path = self.run_dir / "train.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "TrainingProcess":
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "vdm.cli", "train", *self.argv],
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


def child_argv(argv: list[str], name: str | None) -> list[str]:
    """The parent's `vdm train` arguments for the child: no TUI, no progress bar, a fixed run name."""
    out = [a for a in argv if a not in ("train", "--tui", "--no-tui")]
    out += ["--no-tui", "--quiet"]
    if name is not None:
        out += ["--name", name]
    return out
