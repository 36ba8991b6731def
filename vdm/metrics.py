"""metrics.jsonl: the append-only log a run writes and the terminal UI reads.

One JSON object per line, flushed per record. Every record has ``v`` (schema
version), ``kind`` and ``time`` (Unix seconds). Kinds and their fields are
documented in README.md ("The run directory"). Reading a long or growing log
fast, into columns, is vdm.tailer's.
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
    # type(), not isinstance: true is not a schema version
    if not isinstance(rec, dict) or not isinstance(rec.get("kind"), str) or type(rec.get("v")) is not int:
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
