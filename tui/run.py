"""What the monitor knows about a run: metrics records folded into compact columns.

A million-line log must fit in memory, so train and eval records arrive as
float64 rows (vdm.tailer.Batch) and are kept as columns (``array('d')``, 8 bytes a
value) instead of a million dicts; only the newest record of each kind is kept whole.
"""

from __future__ import annotations

from array import array
from pathlib import Path

import numpy as np

from vdm.tailer import EVAL_COLUMNS, TRAIN_COLUMNS, Batch


class RunState:
    def __init__(self, run_dir: str | Path | None = None):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.clear()

    def clear(self) -> None:
        self.train = {k: array("d") for k in TRAIN_COLUMNS}
        self.eval = {k: array("d") for k in EVAL_COLUMNS}
        self.start: dict | None = None
        self.last_train: dict | None = None
        self.last_eval: dict | None = None
        self.last_sample: dict | None = None
        self.end: dict | None = None
        self.records = 0
        self.bad = 0
        # bumped on every change, clearing too (never back to a number already drawn)
        self.version = getattr(self, "version", -1) + 1

    # -- folding ----------------------------------------------------------------
    def add(self, batch: Batch) -> None:
        """Fold a Batch from vdm.tailer (the tailer's poll) into the columns."""
        for group, rows in ((self.train, batch.train), (self.eval, batch.eval)):
            for j, col in enumerate(group.values()):
                col.frombytes(np.ascontiguousarray(rows[:, j]).tobytes())
        for r in batch.records:
            kind = r.get("kind")
            if kind == "train":
                self.last_train = r
            elif kind == "eval":
                self.last_eval = r
            elif kind == "start":
                self.start = r
                self.end = None  # a resumed run starts again
            elif kind == "sample":
                self.last_sample = r
            elif kind == "end":
                self.end = r
        self.records += batch.good
        self.bad += batch.bad
        if batch.good or batch.bad:
            self.version += 1

    def column(self, group: str, name: str) -> np.ndarray:
        """A numpy copy of one column ('train' or 'eval').

        A copy, not a view: an array.array with a live view cannot grow, and the
        tail worker appends while the screen draws.
        """
        a = (self.train if group == "train" else self.eval)[name]
        return np.frombuffer(a, dtype=np.float64).copy() if len(a) else np.zeros(0)

    # -- derived numbers for the status line ------------------------------------
    @property
    def step(self) -> int:
        for r in (self.end, self.last_train, self.start):
            if r is not None and "step" in r:
                return int(r["step"])
        return 0

    @property
    def total_steps(self) -> int | None:
        return int(self.start["total_steps"]) if self.start and "total_steps" in self.start else None

    @property
    def config(self) -> dict:
        return (self.start or {}).get("config") or {}

    @property
    def epoch(self) -> float:
        r = self.last_train or self.end or self.start
        return float(r.get("epoch", 0.0)) if r else 0.0

    @property
    def epochs(self) -> int | None:
        e = self.config.get("epochs")
        return int(e) if e else None

    @property
    def device(self) -> str:
        return str((self.start or {}).get("device", "?"))

    @property
    def running(self) -> bool:
        return self.start is not None and self.end is None

    def elapsed(self, now: float) -> float:
        """Training seconds: the last record's count, plus the time since it while the run goes on."""
        r = self.end or self.last_train
        if r is None:
            return 0.0
        e = float(r.get("elapsed", 0.0))
        if self.running and "time" in r:
            e += max(now - float(r["time"]), 0.0)
        return e

    def eta(self, now: float) -> float | None:
        """Seconds left: steps to go at the recent rate, or the time limit if that comes first."""
        if not self.running or self.last_train is None:
            return None
        steps = self.train["step"][-10:]  # the recent rate, over the last ten records (a small copy)
        total = self.total_steps
        left = []
        if total and len(steps) >= 2:
            el = self.train["elapsed"][-10:]
            dt, ds = el[-1] - el[0], steps[-1] - steps[0]
            if dt > 0 and ds > 0:
                left.append((total - steps[-1]) * dt / ds)
        minutes = self.config.get("minutes") or 0
        if minutes:
            left.append(minutes * 60 - float(self.last_train.get("elapsed", 0.0)))
        if not left:
            return None
        return max(min(left) - max(now - float(self.last_train["time"]), 0.0), 0.0)

    @property
    def sample_path(self) -> Path | None:
        if self.run_dir is None:
            return None
        return self.run_dir / "samples" / "latest.png"
