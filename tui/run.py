"""What the monitor knows about a run: metrics records folded into compact columns.

A million-line log must fit in memory, so train records become five float64
columns (``array('d')``, 8 bytes a value) instead of a million dicts; only the
newest record of each kind is kept whole.
"""

from __future__ import annotations

import json
from array import array
from operator import itemgetter
from pathlib import Path

import numpy as np

BPD_TERMS = ("total", "reconstruction", "prior", "matching")


class RunState:
    def __init__(self, run_dir: str | Path | None = None):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.clear()

    def clear(self) -> None:
        self.train = {k: array("d") for k in ("step", "loss", "lr", "images_per_s", "elapsed")}
        self.eval = {k: array("d") for k in ("step", "eval_loss", *BPD_TERMS)}
        self.start: dict | None = None
        self.last_train: dict | None = None
        self.last_eval: dict | None = None
        self.last_sample: dict | None = None
        self.end: dict | None = None
        self.records = 0
        self.bad = 0
        self.version = 0  # bumped on every change, so widgets redraw only when needed

    # -- folding ----------------------------------------------------------------
    def add(self, records: list[dict]) -> None:
        if not records:
            return
        train = [r for r in records if r.get("kind") == "train"]
        rest = records if len(train) < 64 else [r for r in records if r.get("kind") != "train"]
        if len(train) >= 64 and self._add_train_columns(train):
            self.records += len(train)
            self.last_train = train[-1]
            records = rest
        self._add_each(records)
        self.version += 1

    _TRAIN = ("step", "loss", "lr", "images_per_s", "elapsed")
    _get_train = staticmethod(itemgetter(*_TRAIN))

    def _add_train_columns(self, train: list[dict]) -> bool:
        """Many train records at once through numpy; False when one lacks a field or holds a non-number."""
        try:
            block = np.array(list(map(self._get_train, train)), dtype=np.float64)
        except (KeyError, TypeError, ValueError):
            return False
        if block.shape != (len(train), len(self._TRAIN)):
            return False
        for k, col in zip(self._TRAIN, block.T):
            self.train[k].frombytes(np.ascontiguousarray(col).tobytes())
        return True

    def _add_each(self, records: list[dict]) -> None:
        tr, ev = self.train, self.eval
        appends = [tr[k].append for k in self._TRAIN]
        nan = float("nan")
        for r in records:
            kind = r.get("kind")
            try:
                if kind == "train":
                    row = (float(r["step"]), float(r["loss"]), float(r.get("lr", nan)),
                           float(r.get("images_per_s", nan)), float(r.get("elapsed", nan)))
                    for a, v in zip(appends, row):
                        a(v)
                    self.last_train = r
                elif kind == "eval":
                    bpd = r.get("bpd") or {}
                    row = [float(r["step"]), float(r.get("eval_loss", np.nan))]
                    row += [float(bpd.get(k, np.nan)) for k in BPD_TERMS]
                    for k, v in zip(ev, row):
                        ev[k].append(v)
                    self.last_eval = r
                elif kind == "start":
                    self.start = r
                    self.end = None  # a resumed run starts again
                elif kind == "sample":
                    self.last_sample = r
                elif kind == "end":
                    self.end = r
            except (KeyError, TypeError, ValueError):
                self.bad += 1  # a record of the right shape with a field we cannot read
                continue
            self.records += 1

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


def read_config(run_dir: Path) -> dict | None:
    """config.json of a run, or None when it is missing or unreadable."""
    try:
        return json.loads((Path(run_dir) / "config.json").read_text())
    except (OSError, ValueError):
        return None

