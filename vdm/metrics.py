"""metrics.jsonl: the append-only log a run writes and the terminal UI reads.

One JSON object per line, flushed per record. Every record has ``v`` (schema
version), ``kind`` and ``time`` (Unix seconds). Kinds and their fields are
documented in README.md ("The run directory"). Reading a long or growing log
fast, into columns, is vdm.tailer's.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import time
from pathlib import Path

from vdm.atomic import refuse_hard_link

SCHEMA_VERSION = 1


class MetricsWriter:
    def __init__(self, path: str | os.PathLike):
        """Open ``path`` for appending: a regular file of one name, never a FIFO, device, directory or hard link
        (ValueError)."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = _open_regular(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            refuse_hard_link(fd, self.path)  # appending would write through every other name
        except ValueError:
            os.close(fd)
            raise
        self._f = open(fd, "a", encoding="utf-8")
        # A line cut short by a kill is left as it is (readers skip it); start on a fresh line.
        if os.fstat(fd).st_size > 0 and not _ends_with_newline(self.path):
            self.write_raw("\n")

    def write(self, kind: str, **fields) -> dict:
        rec = {"v": SCHEMA_VERSION, "kind": kind, "time": round(time.time(), 3), **fields}
        self.write_raw(json.dumps(rec, allow_nan=False, default=_jsonable) + "\n")
        return rec

    def write_raw(self, text: str) -> None:
        try:
            self._f.write(text)
            self._f.flush()
        except OSError as e:  # a full disk: name the log, which the error itself does not
            e.filename = str(self.path)
            self._failed = True
            raise

    _failed = False  # a write failed and said so

    def close(self) -> None:
        """Close the log; a flush that fails here names the file too. After a write that failed (and said so,
        naming the file), the text it left in the buffer is dropped without a second error: the error raised
        from a ``finally`` would replace the first one."""
        if self._f.closed:
            return
        try:
            self._f.close()
        except OSError as e:
            if self._failed:
                return
            e.filename = str(self.path)
            raise


def _open_regular(path: Path, flags: int) -> int:
    """os.open that refuses (ValueError) anything but a regular file, without blocking on a FIFO."""
    try:
        fd = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, not a metrics log.") from None
    except OSError as e:
        if e.errno == errno.ENXIO:  # a FIFO opened for writing with no reader
            raise ValueError(f"{path} is a FIFO, not a metrics log.") from None
        raise
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = "a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise ValueError(f"{path} is {what}, not a metrics log.")
    os.set_blocking(fd, True)
    return fd


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def _jsonable(v):
    if hasattr(v, "item"):
        return v.item()
    raise TypeError(f"{type(v).__name__} is not JSON serialisable")


def parse_line(line: str | bytes) -> dict | None:
    """One metrics line -> its record, or None for a blank, truncated or garbage line."""
    try:
        rec = json.loads(line)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: a line of 10^5 "["
        return None
    # type(), not isinstance: true is not a schema version
    if not isinstance(rec, dict) or not isinstance(rec.get("kind"), str) or type(rec.get("v")) is not int:
        return None
    return rec


def number(v) -> float | None:
    """A finite JSON number as a float, else None (a string, a bool, null, NaN, a list ...)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


# The fields every reader of a kind uses, each a finite number where present (required: must be present).
# vdm.tailer's typed records hold train and eval records to the same (its fast path decodes them typed).
_NUMBERS = {
    "train": (("step", "loss"), ("lr", "images_per_s", "elapsed")),
    "eval": (("step",), ("eval_loss",)),
    "start": ((), ("step", "total_steps", "steps_per_epoch", "epoch", "pid")),
    "sample": ((), ("step",)),
    "end": ((), ("step", "elapsed", "epoch")),
}
BPD_TERMS = ("total", "reconstruction", "prior", "matching")  # an eval record's bpd: bits/dim of each term


def valid(rec: dict) -> bool:
    """Whether a record (from :func:`parse_line`) has the types its readers use: the rules of every face.

    ``time`` is a finite number where present, as are the numbers of its kind (_NUMBERS; train needs
    ``step`` and ``loss``, eval ``step``); an eval's ``bpd`` is null or an object whose terms are numbers;
    a start's ``config`` is an object, a sample's ``path`` and an end's ``reason`` strings. A record that
    breaks one is skipped and counted, like a line that does not parse. Other fields are read leniently
    by whoever uses them (:func:`number`).
    """
    need, may = _NUMBERS.get(rec.get("kind"), ((), ()))
    if any(number(rec.get(k)) is None for k in need):
        return False
    if any(k in rec and number(rec[k]) is None for k in (*may, "time")):
        return False
    kind = rec.get("kind")
    if kind == "eval":
        b = rec.get("bpd")
        return b is None or isinstance(b, dict) and all(number(b[k]) is not None for k in BPD_TERMS if k in b)
    if kind == "start":
        return isinstance(rec.get("config", {}), dict)
    if kind == "sample":
        return isinstance(rec.get("path", ""), str)
    if kind == "end":
        return isinstance(rec.get("reason", ""), str)
    return True


def read_all(path: str | os.PathLike) -> tuple[list[dict], int]:
    """Every good record of a metrics file (it parses and is :func:`valid`) and the number of lines skipped.

    A FIFO, device or directory at ``path`` is a ValueError (it would block or fail mid-read).
    """
    good, bad = [], 0
    fd = _open_regular(Path(path), os.O_RDONLY)
    with open(fd, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            rec = parse_line(line)
            if rec is None or not valid(rec):
                bad += 1
            else:
                good.append(rec)
    return good, bad
