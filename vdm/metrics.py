"""metrics.jsonl: the append-only log a run writes and the terminal UI reads.

One JSON object per line, flushed per record. Every record has ``v`` (schema
version), ``kind`` and ``time`` (Unix seconds). Kinds and their fields are
documented in README.md ("The run directory").
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

SCHEMA_VERSION = 1


class MetricsWriter:
    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A line cut short by a kill is left as it is (readers skip it); start on a fresh line.
        needs_newline = self.path.exists() and self.path.stat().st_size > 0 and not _ends_with_newline(self.path)
        self._f = open(self.path, "a", encoding="utf-8")
        if needs_newline:
            self._f.write("\n")

    def write(self, kind: str, **fields) -> dict:
        rec = {"v": SCHEMA_VERSION, "kind": kind, "time": round(time.time(), 3), **fields}
        self._f.write(json.dumps(rec, allow_nan=False, default=_jsonable) + "\n")
        self._f.flush()
        return rec

    def close(self) -> None:
        if not self._f.closed:
            self._f.close()


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
    if not isinstance(rec, dict) or not isinstance(rec.get("kind"), str) or not isinstance(rec.get("v"), int):
        return None
    return rec


def read_all(path: str | os.PathLike) -> tuple[list[dict], int]:
    """Every good record of a metrics file and the number of lines skipped."""
    good, bad = [], 0
    with open(path, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            rec = parse_line(line)
            if rec is None:
                bad += 1
            else:
                good.append(rec)
    return good, bad


try:  # a C parser, about five times faster on a long log; the standard library otherwise
    from orjson import loads as _fast_loads
except ImportError:  # pragma: no cover - depends on the environment
    _fast_loads = None


class MetricsTailer:
    """Read a growing metrics.jsonl incrementally, like ``tail -f``.

    Keeps a byte offset and reads only what was appended since the last poll. A
    last line without its newline yet is held back until the newline arrives (the
    writer flushes whole records, but a reader may catch one half written). The
    file may not exist yet. When it shrinks or is replaced (another inode), reading
    starts over at byte 0: ``restarted`` is set for that poll and ``restarts``
    counts up, so a reader drops what it had. Lines that do not parse are skipped
    and counted in ``bad``; blank lines are ignored.
    """

    def __init__(self, path: str | os.PathLike, chunk_bytes: int = 1 << 22):
        self.path = Path(path)
        self.chunk_bytes = chunk_bytes
        self.offset = 0  # bytes consumed, including the held-back partial line
        self.size = 0  # size of the file at the last poll
        self.good = 0
        self.bad = 0
        self.restarts = 0
        self.restarted = False
        self.exists = False
        self._partial = b""
        self._ino = None

    @property
    def behind(self) -> int:
        """Bytes known to be in the file but not read yet."""
        return max(self.size - self.offset, 0)

    def _restart(self) -> None:
        self.offset = 0
        self.good = self.bad = 0
        self._partial = b""
        self.restarts += 1
        self.restarted = True

    def poll(self, max_bytes: int | None = None) -> list[dict]:
        """The good records appended since the last poll (at most ``max_bytes`` read)."""
        self.restarted = False
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            if self.exists:  # the file went away: what we had no longer describes it
                self._restart()
                self._ino = None
            self.exists = False
            self.size = 0
            return []
        with f:
            st = os.fstat(f.fileno())
            if self._ino is not None and (st.st_ino != self._ino or st.st_size < self.offset):
                self._restart()
            self._ino = st.st_ino
            self.exists = True
            self.size = st.st_size
            if st.st_size <= self.offset:
                return []
            f.seek(self.offset)
            data = f.read(min(st.st_size - self.offset, max_bytes or self.chunk_bytes))
        self.offset += len(data)
        data = self._partial + data
        cut = data.rfind(b"\n") + 1
        self._partial = data[cut:]
        return self._parse(data[:cut])

    def _parse(self, block: bytes) -> list[dict]:
        out, bad = parse_block(block)
        self.bad += bad
        self.good += len(out)
        return out


def parse_block(block: bytes) -> tuple[list[dict], int]:
    """The good records of a block of whole lines, and how many lines were garbage (blank lines aside)."""
    loads = _fast_loads or json.loads
    lines = block.split(b"\n")
    try:  # the usual case, every line good: one tight loop, no per-line try
        recs = [loads(line) for line in lines if line]
    except ValueError:  # orjson's and json's decode errors both derive from ValueError
        recs = []
        for line in lines:
            if not line or line.isspace():
                continue
            try:
                recs.append(loads(line))
            except ValueError:
                recs.append(parse_line(line))  # json also reads what orjson refuses (NaN); else None
    out = [r for r in recs if isinstance(r, dict) and isinstance(r.get("kind"), str) and isinstance(r.get("v"), int)]
    return out, len(recs) - len(out)

