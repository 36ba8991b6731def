"""What the monitor knows about a run: metrics records folded into compact columns.

A million-line log must fit in memory, so train and eval records arrive as
float64 rows (vdm.tailer.Batch) and are kept as columns (``array('d')``, 8 bytes a
value) instead of a million dicts; only the newest record of each kind is kept whole.
"""

from __future__ import annotations

import math
import os
from array import array
from pathlib import Path

import numpy as np

from vdm.metrics import number, valid
from vdm.tailer import EVAL_COLUMNS, TRAIN_COLUMNS, Batch


num = number  # a finite JSON number as a float, else None (vdm.metrics.number)
_valid = valid  # a record's fields of the types every reader uses (vdm.metrics.valid: one rule for every face)


def own_objective(config: dict) -> str | None:
    """What the run's train loss is when it is not the held-out loss's quantity (the x_0 or eps MSE), or None.

    A learned schedule trains on the continuous-time -ELBO (bits/dim) and ``--weighting edm`` on EDM's
    1/c_out^2-weighted error, while eval_loss stays the plain MSE: one axis would show two quantities as one.
    """
    if not isinstance(config, dict):
        return None
    if config.get("schedule") == "learned":
        return "learned γ: -ELBO"
    if config.get("weighting") == "edm":
        return "EDM-weighted"
    return None


def pid_alive(pid: int) -> bool | None:
    """Whether a process with this pid exists here (None: cannot tell)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError, ValueError):
        return None
    return True


class RunState:
    def __init__(self, run_dir: str | Path | None = None):
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.clear()

    def clear(self) -> None:
        # each column once, and each row's `time` (Unix seconds: the x axis by wall time)
        self.train = {k: array("d") for k in (*TRAIN_COLUMNS, "time")}
        self.eval = {k: array("d") for k in (*EVAL_COLUMNS, "time")}
        self.first_time: float | None = None  # the earliest record's `time`: wall time 0
        self.start: dict | None = None
        self.last_train: dict | None = None
        self.last_eval: dict | None = None
        self.last_sample: dict | None = None
        self.end: dict | None = None
        self.stopping: dict | None = None  # the trainer's "stopping" record: it saves, evaluates and samples, then ends
        self.stop_asked = False  # this monitor sent the stop (the trainer may be inside a step or an evaluation)
        self.full_sample_s: float | None = None  # seconds of the newest grid of the run's full n_samples
        self.sample_s = 0.0  # seconds all sample grids took
        self.binds: bool | None = None  # the progress basis while the run went on (time limit or steps), kept at its end
        self.records = 0
        self.bad = 0
        self.last_time: float | None = None  # the newest record's `time`
        self.intervals: list[float] = []  # seconds between the newest records (how often the trainer writes)
        # bumped on every change, clearing too (never back to a number already drawn)
        self.version = getattr(self, "version", -1) + 1

    # -- folding ----------------------------------------------------------------
    def add(self, batch: Batch) -> None:
        """Fold a Batch from vdm.tailer (the tailer's poll) into the columns."""
        for group, rows, times in ((self.train, batch.train, batch.train_time), (self.eval, batch.eval, batch.eval_time)):
            for j, name in enumerate(list(group)[:-1]):
                group[name].frombytes(np.ascontiguousarray(rows[:, j]).tobytes())
            group["time"].frombytes(np.ascontiguousarray(times, dtype=np.float64).tobytes())
            if len(times) and np.isfinite(times).any():
                t0 = float(np.nanmin(times))
                self.first_time = t0 if self.first_time is None else min(self.first_time, t0)
        odd = 0
        for r in batch.records:
            kind = r.get("kind")
            if kind in ("start", "sample", "end", "train", "eval") and not _valid(r):
                odd += 1  # kept out: a field the screen reads has the wrong type
                continue
            t = num(r.get("time"))
            if t is not None and (self.last_time is None or t > self.last_time):
                self.last_time = t
            if t is not None and (self.first_time is None or t < self.first_time):
                self.first_time = t
            if kind == "train":
                self.last_train = r
            elif kind == "eval":
                self.last_eval = r
            elif kind == "start":
                self.start = r
                self.end = self.stopping = None  # a resumed run starts again
                self.stop_asked = False
            elif kind == "sample":
                self.last_sample = r
                self._note_sample(r)
            elif kind == "end":
                self.binds = self._time_binds_live()
                self.end = r
            elif kind == "stopping":
                self.stopping = r
        self.records += batch.good - odd
        self.bad += batch.bad + odd
        if batch.good or batch.bad:
            self.version += 1

    def _note_sample(self, r: dict) -> None:
        """The cost of a full grid: a grid of n samples takes n / n_samples of it (each sample is T network calls)."""
        s, n, full = num(r.get("seconds")), num(r.get("n")), num(self.config.get("n_samples"))
        if s is None:
            return
        self.sample_s += s
        if n and full and n != full:
            if self.full_sample_s is None:  # only a small grid so far: scaled up
                self.full_sample_s = s * full / n
        else:
            self.full_sample_s = s

    def column(self, group: str, name: str) -> np.ndarray:
        """A numpy copy of one column ('train' or 'eval').

        A copy, not a view: an array.array with a live view cannot grow, and the
        tail worker appends while the screen draws.
        """
        a = (self.train if group == "train" else self.eval)[name]
        return np.frombuffer(a, dtype=np.float64).copy() if len(a) else np.zeros(0)

    # -- derived numbers for the status line (every field read through num(): a record may hold anything) --
    @property
    def step(self) -> int:
        for r in (self.end, self.last_train, self.start):
            if r is not None and num(r.get("step")) is not None:
                return int(num(r["step"]))
        return 0

    @property
    def total_steps(self) -> int | None:
        t = num((self.start or {}).get("total_steps"))
        return int(t) if t and t > 0 else None

    @property
    def config(self) -> dict:
        c = (self.start or {}).get("config")
        return c if isinstance(c, dict) else {}

    @property
    def epoch(self) -> float:
        for r in (self.last_train, self.end, self.start):
            if r is not None and num(r.get("epoch")) is not None:
                return num(r["epoch"])
        return 0.0

    @property
    def epochs(self) -> int | None:
        e = num(self.config.get("epochs"))
        return int(e) if e and e > 0 else None

    @property
    def minutes(self) -> float:
        """The run's time limit in minutes (0: none)."""
        m = num(self.config.get("minutes"))
        return m if m and m > 0 else 0.0

    @property
    def pid(self) -> int | None:
        p = num((self.start or {}).get("pid"))
        return int(p) if p and p > 0 and p == int(p) else None

    @property
    def device(self) -> str:
        return str((self.start or {}).get("device", "?"))

    @property
    def running(self) -> bool:
        """The log says the run goes on (a start and no end since); see alive() for whether it really does."""
        return self.start is not None and self.end is None

    @property
    def is_stopping(self) -> bool:
        """A stop was asked (by this monitor, or the trainer says so) and the run has not ended yet."""
        return self.running and (self.stop_asked or self.stopping is not None)

    def report_s(self) -> float:
        """Seconds the run spent evaluating and sampling (training time lost), from the records' ``seconds``."""
        ev = np.frombuffer(self.eval["seconds"], dtype=np.float64) if len(self.eval["seconds"]) else np.zeros(0)
        return float(np.nansum(ev)) + self.sample_s

    def finishing_s(self) -> float:
        """Seconds the run's end will take after its last step: the final evaluation and full sample grid, each as
        long as the newest one took (0 for what has not been timed yet)."""
        ev = num((self.last_eval or {}).get("seconds")) or 0.0
        return ev + (self.full_sample_s or 0.0)

    def usual_interval(self) -> float:
        """Seconds between train records lately (the median of the last 20 gaps of training time), or 10 s."""
        el = self.train["elapsed"][-21:]
        gaps = [b - a for a, b in zip(el[:-1], el[1:]) if b > a]
        return float(np.median(gaps)) if gaps else 10.0

    def record_age(self, now: float) -> float | None:
        return max(now - self.last_time, 0.0) if self.last_time is not None else None

    def alive(self, now: float, pid_check=pid_alive) -> tuple[bool, str]:
        """(True, "") while the trainer seems to go on, else (False, why): its pid is gone, or it went quiet.

        Quiet is more than ten times its usual interval between records and at least two minutes
        (an evaluation or a sample grid may take a while).
        """
        if not self.running:
            return True, ""
        pid = self.pid
        if pid is not None and pid_check(pid) is False:
            return False, f"trainer pid {pid} is gone"
        age, usual = self.record_age(now), self.usual_interval()
        if age is not None and age > max(10 * usual, 120.0):
            return False, f"no record for {ago(age)}, usually one every {ago(usual)}"
        return True, ""

    def elapsed(self, now: float, alive: bool = True) -> float:
        """Training seconds: the last record's count, plus the time since it while the run goes on."""
        r = self.end or self.last_train
        if r is None:
            return 0.0
        e = num(r.get("elapsed")) or 0.0
        t = num(r.get("time"))
        if self.running and alive and t is not None:
            e += max(now - t, 0.0)
        return e

    def _rate(self) -> float | None:
        """Steps per training second over the last ten train records."""
        steps, el = self.train["step"][-10:], self.train["elapsed"][-10:]
        if len(steps) >= 2:
            dt, ds = el[-1] - el[0], steps[-1] - steps[0]
            if dt > 0 and ds > 0:
                return ds / dt
        return None

    def time_binds(self) -> bool:
        """Whether --minutes ends the run before its epochs do (by the recent rate; or the end record says so).

        A run stopped early (SIGINT) keeps the basis it had while it went on: its bar does not jump from the time
        it had done to the steps it had done."""
        if self.end is not None:
            return self.end.get("reason") == "time limit" or (self.end.get("reason") != "done" and bool(self.binds))
        return self._time_binds_live()

    def _time_binds_live(self) -> bool:
        if not self.minutes:
            return False
        total, rate = self.total_steps, self._rate()
        if total is None or rate is None:
            return True
        el = num((self.last_train or {}).get("elapsed")) or 0.0
        return self.step + rate * max(self.minutes * 60 - el, 0.0) < total

    def progress(self, now: float, alive: bool = True) -> float | None:
        """The fraction done of the limit that binds (1 once the run has ended by it)."""
        if self.end is not None and self.end.get("reason") in ("done", "time limit"):
            return 1.0
        if self.time_binds():
            return min(self.elapsed(now, alive) / (self.minutes * 60), 1.0)
        total = self.total_steps
        return min(self.step / total, 1.0) if total else None

    def eta(self, now: float) -> float | None:
        """Seconds left: steps to go at the recent rate, or the time limit if that comes first, and then the final
        evaluation and sample grid (:meth:`finishing_s`); once stopping, that end alone, counted from the stop."""
        if not self.running or self.last_train is None:
            return None
        if self.is_stopping:
            t = num((self.stopping or {}).get("time")) or num(self.last_train.get("time"))
            return max(self.finishing_s() - max(now - t, 0.0), 0.0) if t is not None else None
        total, rate = self.total_steps, self._rate()
        left = []
        if total and rate:
            left.append((total - self.train["step"][-1]) / rate)
        if self.minutes:
            left.append(self.minutes * 60 - (num(self.last_train.get("elapsed")) or 0.0))
        t = num(self.last_train.get("time"))
        if not left or t is None:
            return None
        return max(min(left) - max(now - t, 0.0), 0.0) + self.finishing_s()


def hms(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "--:--:--"
    s = int(round(max(seconds, 0)))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def ago(seconds: float | None) -> str:
    """A record's age in words: 4 s, 3 min, 2 h 5 min, 3 days (from 48 h: the minutes mean nothing then)."""
    if seconds is None:
        return "-"
    s = int(max(seconds, 0))
    if s < 90:
        return f"{s} s"
    if s < 5400:
        return f"{s // 60} min"
    if s < 48 * 3600:
        return f"{s // 3600} h {s // 60 % 60} min"
    return f"{s // 86400:,} days"
