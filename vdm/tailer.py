"""Reading metrics.jsonl fast and as it grows: float64 columns, ``tail -f``, and a long
backlog on other processes.

A reader of a long log wants a few numbers of every train and eval record, not a
million dicts. msgspec decodes a whole block of lines at once into small typed
records that keep only those fields (the rest are skipped unparsed), about four
times faster than building dicts; they are then turned into float64 columns
(``Batch``). ``MetricsTailer`` reads only what was appended since it last looked;
``MetricsTailer.catch_up`` hands a long backlog to child processes
(``python -m vdm.tailer``), since parsing holds the GIL and a screen waits.

Why the core owns it, though only the terminal UI reads logs this way: it is the fast
reader of the core's own format (vdm.metrics writes and defines it; the two must agree
on which lines are bad), the reliability tests hold it to vdm.metrics' rules
(tests/reliability/test_bad_input.py), and it imports neither tui nor torch, so a
schema change lands in one package with its reader.
"""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from vdm.metrics import _open_regular, parse_line, valid

TRAIN_COLUMNS = ("step", "loss", "lr", "images_per_s", "elapsed")
# total_se: the error the eval record states for its total (bpd_mc_se, the Monte Carlo error with the items fixed;
# bpd_se in logs written before it); NaN where it states none. seconds: what the evaluation took.
EVAL_COLUMNS = ("step", "eval_loss", "total", "reconstruction", "prior", "matching", "total_se", "seconds")
_NAN = float("nan")


class _Train(msgspec.Struct, tag_field="kind", tag="train", gc=False):
    v: int
    step: float
    loss: float
    lr: float = _NAN
    images_per_s: float = _NAN
    elapsed: float = _NAN
    time: float = _NAN


class _Bpd(msgspec.Struct, gc=False):
    total: float = _NAN
    reconstruction: float = _NAN
    prior: float = _NAN
    matching: float = _NAN


class _Eval(msgspec.Struct, tag_field="kind", tag="eval", gc=False):
    v: int
    step: float
    eval_loss: float = _NAN
    bpd: _Bpd | None = None
    bpd_mc_se: Any = None  # read leniently: an odd value here leaves the record's other numbers readable
    bpd_se: Any = None
    seconds: Any = None
    time: float = _NAN


# The other kinds are read whole (they are few); their typed form checks the fields vdm.metrics.valid checks,
# so that the fast path skips what read_all skips (tests/reliability/test_bad_input.py holds the two together).
class _Start(msgspec.Struct, tag_field="kind", tag="start", gc=False):
    v: int
    step: float = _NAN
    total_steps: float = _NAN
    steps_per_epoch: float = _NAN
    epoch: float = _NAN
    pid: float = _NAN
    config: dict = {}
    time: float = _NAN


class _Sample(msgspec.Struct, tag_field="kind", tag="sample", gc=False):
    v: int
    step: float = _NAN
    path: str = ""
    time: float = _NAN


class _End(msgspec.Struct, tag_field="kind", tag="end", gc=False):
    v: int
    step: float = _NAN
    elapsed: float = _NAN
    epoch: float = _NAN
    reason: str = ""
    time: float = _NAN


class _Stopping(msgspec.Struct, tag_field="kind", tag="stopping", gc=False):
    v: int
    time: float = _NAN


_Record = _Train | _Eval | _Start | _Sample | _End | _Stopping
_decoder = msgspec.json.Decoder(_Record)


@dataclass
class Batch:
    """The records of a block of whole lines, columnar.

    ``train`` and ``eval`` hold one row per train / eval record (TRAIN_COLUMNS,
    EVAL_COLUMNS; a missing optional field is NaN). ``records`` holds whole records
    in file order: every record of another kind, plus the block's last train and
    last eval record (for the fields a status line shows). ``good`` counts the
    records, ``bad`` the lines skipped: not JSON, not a record (an object with a
    string ``kind`` and an integer ``v``), or a train / eval record whose numbers
    cannot be read (``step`` and ``loss`` are required in train records, ``step``
    in eval records; ``time``, where present, is a number). ``train_time`` and
    ``eval_time`` hold each row's ``time`` (Unix seconds, NaN where missing): the
    x axis of a plot by wall time.
    """

    train: np.ndarray = field(default_factory=lambda: np.zeros((0, len(TRAIN_COLUMNS))))
    eval: np.ndarray = field(default_factory=lambda: np.zeros((0, len(EVAL_COLUMNS))))
    train_time: np.ndarray = field(default_factory=lambda: np.zeros(0))
    eval_time: np.ndarray = field(default_factory=lambda: np.zeros(0))
    records: list[dict] = field(default_factory=list)
    good: int = 0
    bad: int = 0


def merge(batches: list[Batch]) -> Batch:
    """Batches of consecutive blocks -> one Batch, in order."""
    if len(batches) == 1:
        return batches[0]
    out = Batch(good=sum(b.good for b in batches), bad=sum(b.bad for b in batches))
    out.train = np.concatenate([out.train] + [b.train for b in batches])
    out.eval = np.concatenate([out.eval] + [b.eval for b in batches])
    out.train_time = np.concatenate([out.train_time] + [b.train_time for b in batches])
    out.eval_time = np.concatenate([out.eval_time] + [b.eval_time for b in batches])
    out.records = [r for b in batches for r in b.records]
    return out


def parse_batch(block: bytes | memoryview) -> Batch:
    """A block of whole lines (it ends with a newline) -> its Batch.

    Fast path: every line decodes (the usual case). A block with a line that does
    not is read again line by line, through parse_line, so that one garbage line
    costs only its own block the fast path.
    """
    try:
        typed = _decoder.decode_lines(block)
    except msgspec.DecodeError:
        return _parse_slowly(_nonblank(bytes(block)))
    ends = np.flatnonzero(np.frombuffer(block, np.uint8) == 10)
    if len(ends) == len(typed):  # no blank lines: line i is block[ends[i-1] + 1 : ends[i]]
        starts = np.concatenate(([0], ends[:-1] + 1))
        line = lambda i: block[starts[i]:ends[i]]
    else:
        lines = _nonblank(bytes(block))
        line = lines.__getitem__
    return _fold(typed, line, None, bad=0)


def _nonblank(block: bytes) -> list[bytes]:
    return [line for line in block.split(b"\n") if line.strip()]


def _parse_slowly(lines: list[bytes]) -> Batch:
    typed, whole, bad = [], [], 0
    for line in lines:
        rec = parse_line(line)
        if rec is None or not valid(rec):  # the rules of every reader (read_all's too)
            bad += 1
            continue
        try:  # v is an integer (parse_line saw to it), of any size: only the numbers are checked here
            typed.append(msgspec.convert({**rec, "v": 1}, _Record))
        except msgspec.ValidationError:
            if rec["kind"] in ("train", "eval"):
                bad += 1  # a record of the right kind with a number we cannot read
                continue
            typed.append(None)  # a kind this reader does not know: kept whole, nothing to fold
        whole.append(rec)
    return _fold(typed, None, whole, bad)


def _fold(typed: list, line, whole: list[dict] | None, bad: int) -> Batch:
    """Columns of the typed records; whole records from ``whole`` or, by index, from ``line(i)``."""
    out = Batch(good=len(typed), bad=bad)
    # train records are nearly all of a log: find the few others, and delete them from a copy
    others = [i for i, r in enumerate(typed) if r.__class__ is not _Train]
    train = typed.copy()
    for i in reversed(others):
        del train[i]
    if train:
        out.train = np.empty((len(train), len(TRAIN_COLUMNS)))
        for j, name in enumerate(TRAIN_COLUMNS):
            out.train[:, j] = np.fromiter(map(attrgetter(name), train), np.float64, len(train))
        out.train_time = np.fromiter(map(attrgetter("time"), train), np.float64, len(train))
    evals = [typed[i] for i in others if typed[i].__class__ is _Eval]
    if evals:
        out.eval = np.array([(r.step, r.eval_loss, *_bpd_row(r.bpd), _stated_error(r), _number(r.seconds))
                             for r in evals], dtype=np.float64)
        out.eval_time = np.array([r.time for r in evals], dtype=np.float64)
    # whole records: every other kind, and the last train and eval record
    keep = [i for i in others if typed[i].__class__ is not _Eval]
    last_train = next((i for i in range(len(typed) - 1, -1, -1) if typed[i].__class__ is _Train), None)
    last_eval = next((i for i in reversed(others) if typed[i].__class__ is _Eval), None)
    keep += [i for i in (last_train, last_eval) if i is not None]
    for i in sorted(keep):
        # the fast path's own parser, so a line it read is read again
        out.records.append(whole[i] if whole is not None else msgspec.json.decode(line(i)))
    return out


def _stated_error(r: _Eval) -> float:
    """The eval record's error of its total: bpd_mc_se, or in older logs bpd_se (NaN when neither)."""
    v = _number(r.bpd_mc_se)
    return v if v == v else _number(r.bpd_se)


def _number(v) -> float:
    """A JSON number as a float, anything else (a string, a bool, null) NaN."""
    return float(v) if type(v) in (int, float) else _NAN


def _bpd_row(b: _Bpd | None) -> tuple[float, float, float, float]:
    return (b.total, b.reconstruction, b.prior, b.matching) if b is not None else (_NAN,) * 4


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

    _parse = staticmethod(parse_batch)  # a block of whole lines -> its Batch

    def __init__(self, path: str | os.PathLike, chunk_bytes: int = 1 << 22, catch_up_bytes: int = 64 << 20):
        self.path = Path(path)
        self.chunk_bytes = chunk_bytes
        self.catch_up_bytes = catch_up_bytes  # the shortest backlog worth child processes (about 0.3 s to parse)
        self.offset = 0  # bytes consumed, including the held-back partial line
        self.size = 0  # size of the file at the last poll
        self.good = 0
        self.bad = 0
        self.restarts = 0
        self.restarted = False
        self.exists = False
        self.problem: str | None = None  # why the log cannot be read (a FIFO or a directory in its place)
        self._partial = b""
        self._ino = None
        self.reading_ahead: tuple[int, int] | None = None  # (bytes, processes) while catching up
        self.caught_up_bytes = 0  # read by child processes, all told
        self._readers: _RangeReaders | None = None
        self._buf: bytearray | None = None

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

    def poll(self, max_bytes: int | None = None) -> Batch:
        """The records appended since the last poll, as a Batch (at most ``max_bytes`` read)."""
        self.restarted = False
        try:
            f = _open_log(self.path)
        except (FileNotFoundError, ValueError) as e:
            if self.exists:  # the file went away: what we had no longer describes it
                self._restart()
                self._ino = None
            self.exists = False
            self.size = 0
            # a FIFO or a directory where the log belongs: said on the status line, never blocked on
            self.problem = str(e) if isinstance(e, ValueError) else None
            return Batch()
        self.problem = None
        with f:
            st = os.fstat(f.fileno())
            if self._ino is not None and (st.st_ino != self._ino or st.st_size < self.offset):
                self._restart()
            self._ino = st.st_ino
            self.exists = True
            self.size = st.st_size
            if st.st_size <= self.offset:
                return Batch()
            f.seek(self.offset)
            want = min(st.st_size - self.offset, max_bytes or self.chunk_bytes)
            # one buffer, reused while catching up: a fresh 4 MiB per read costs page faults
            # (a third of the time of reading a long log), and the partial line is copied once
            held = len(self._partial)
            if self._buf is None or len(self._buf) < held + want:
                self._buf = bytearray(held + want)
            with memoryview(self._buf) as mv:
                mv[:held] = self._partial
                end = held + f.readinto(mv[held:held + want])
                cut = self._buf.rfind(b"\n", 0, end) + 1
                self._partial = bytes(mv[cut:end])
                with mv[:cut] as block:
                    batch = self._parse(block)
        self.offset += end - held
        if self.offset >= self.size:
            self._buf = None  # caught up: polls are small from here on
        self.good += batch.good
        self.bad += batch.bad
        return batch

    def start_catch_up(self, processes: int | None = None, min_bytes: int | None = None) -> bool:
        """Start reading a long backlog on other processes; ``catch_up`` collects it.

        Parsing holds the GIL, so in a thread it takes turns with the screen. A
        backlog of at least ``min_bytes`` (default: ``catch_up_bytes``) is cut at
        line boundaries into one range per process (up to four, at most the CPU
        count), each parsed by a fresh interpreter. Started early (before the UI's
        own imports) it overlaps them.
        False when there is nothing worth it: a short backlog, a half-read line, a
        file that is not the one being read.
        """
        if self._readers is not None or self._partial:
            return self._readers is not None
        try:
            with _open_log(self.path) as f:
                st = os.fstat(f.fileno())
                short = self.catch_up_bytes if min_bytes is None else min_bytes
                if st.st_size - self.offset < short or (self._ino is not None and st.st_ino != self._ino):
                    return False
                n = processes or max(1, min(4, os.cpu_count() or 1))
                end = _last_line_end(f, st.st_size)
                cuts = [self.offset, end] + [_next_line(f, self.offset + (end - self.offset) * k // n) for k in range(1, n)]
        except (OSError, ValueError):
            return False
        cuts = sorted({min(c, end) for c in cuts})
        ranges = [(a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
        if not ranges:
            return False
        self._readers = _RangeReaders(str(self.path), st.st_ino, st.st_size, ranges, self.chunk_bytes)
        self.reading_ahead = ranges[-1][1] - self.offset, len(ranges)
        return True

    def catch_up(self, processes: int | None = None, min_bytes: int | None = None,
                 cancelled: Callable[[], bool] = lambda: False) -> Batch | None:
        """The Batch of a long backlog read on other processes (started now unless already
        started), reading then going on from its last whole line; None, and nothing
        changed, when it was not worth it, the file changed under the readers, a reader
        failed, or ``cancelled()`` turned true while waiting: the caller then just polls.
        """
        if not self.start_catch_up(processes, min_bytes):
            return None
        readers, self._readers = self._readers, None
        try:
            batches = readers.collect(cancelled)
        finally:
            self.reading_ahead = None
        if batches is None:
            return None
        batch = merge(batches)
        self._ino = readers.ino
        self.exists = True
        self.restarted = False
        self.size = readers.size
        self.caught_up_bytes += readers.ranges[-1][1] - self.offset
        self.offset = readers.ranges[-1][1]
        self.good += batch.good
        self.bad += batch.bad
        return batch


# a record of the few kinds, found without parsing the line: `"kind": "eval"` with any spacing
_FEW_KINDS = re.compile(rb'"kind"\s*:\s*"(?:start|eval|sample|end|stopping)"')


def summary_batch(block: bytes | memoryview, keep: int = 32) -> Batch:
    """What a list of runs needs of a block of whole lines: every start, eval, sample and end record
    (found by a byte search for their kind, so the train lines in between are never parsed), and
    the block's last ``keep`` lines whatever their kind (the newest train records: step, rate).

    Train rows are only those last lines', and ``good`` and ``bad`` count only the lines parsed.
    """
    data = bytes(block)
    tail = len(data)
    for _ in range(keep):  # the start of the last `keep` lines (the block ends with a newline)
        if tail <= 0:
            break
        tail = data.rfind(b"\n", 0, tail - 1) + 1 if tail > 1 else 0
    lines = []
    for m in _FEW_KINDS.finditer(data, 0, tail):
        a = data.rfind(b"\n", 0, m.start()) + 1
        if lines and lines[-1][0] == a:
            continue  # the same line matched twice
        line = data[a:data.find(b"\n", m.end())]
        rec = parse_line(line)
        if rec is not None and rec["kind"] != "train":  # a nested "kind" inside a train record is not one
            lines.append((a, line))
    lines = [line for _, line in lines] + _nonblank(data[tail:])
    return _parse_slowly(lines)


class SummaryTailer(MetricsTailer):
    """A MetricsTailer for the list of runs: each poll folds only ``summary_batch`` of the bytes appended
    (every record but the train records, and the newest train records), read in large chunks.

    A log of 100,000 lines is searched in about 30 ms instead of parsed in 200 ms or more.
    """

    def __init__(self, path: str | os.PathLike, keep: int = 32, chunk_bytes: int = 64 << 20):
        super().__init__(path, chunk_bytes=chunk_bytes)
        self._parse = lambda block: summary_batch(block, keep)


def _next_line(f, pos: int) -> int:
    """The offset just after the first newline at or after ``pos`` (the file's size if none)."""
    f.seek(pos)
    while chunk := f.read(1 << 16):
        i = chunk.find(b"\n")
        if i >= 0:
            return f.tell() - len(chunk) + i + 1
    return f.tell()


def _last_line_end(f, size: int) -> int:
    """The offset just after the last newline before ``size`` (0 if none)."""
    pos = size
    while pos > 0:
        start = max(pos - (1 << 16), 0)
        f.seek(start)
        i = f.read(pos - start).rfind(b"\n")
        if i >= 0:
            return start + i + 1
        pos = start
    return 0


class _RangeReaders:
    """Child processes each reading one byte range of a metrics file into a Batch.

    A fresh interpreter per range, not multiprocessing: its spawn re-runs the
    caller's main script, and a fork would copy the locks of the UI's threads.
    stderr goes nowhere, as nothing may reach the terminal the UI draws on.
    """

    def __init__(self, path: str, ino: int, size: int, ranges: list[tuple[int, int]], chunk: int):
        self.ino, self.size, self.ranges = ino, size, ranges
        self.procs: list[subprocess.Popen] = []
        # the same vdm as this process's, installed or not
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        try:
            for a, b in ranges:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-m", "vdm.tailer", path, str(ino), str(a), str(b), str(chunk)],
                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env))
        except OSError:  # no process to be had: collect() says None and the caller reads in its thread
            self.kill()

    def collect(self, cancelled: Callable[[], bool]) -> list[Batch] | None:
        try:
            if len(self.procs) != len(self.ranges):
                return None
            out = []
            for p in self.procs:
                # the header comes when the reader has parsed its range: wait for it, checking for a cancel
                # before each wait (a reader done before the first look must not skip the check)
                while True:
                    if cancelled():
                        return None
                    if select.select([p.stdout], [], [], 0.1)[0]:
                        break
                batch = _receive(p.stdout)
                if batch is None or p.wait() != 0:
                    return None
                out.append(batch)
            return out
        except OSError:  # a pipe that cannot be waited on or read: the caller reads in its thread
            return None
        finally:
            self.kill()

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            if p.stdout:
                p.stdout.close()


# A Batch between processes: a JSON header line, then the float64 rows of each kind (not
# pickle: whoever reads them never runs code from the bytes it reads).
def _send(batches: list[Batch], out) -> None:
    head = {"good": sum(b.good for b in batches), "bad": sum(b.bad for b in batches),
            "train": sum(len(b.train) for b in batches), "eval": sum(len(b.eval) for b in batches),
            "records": [r for b in batches for r in b.records]}
    out.write(msgspec.json.encode(head) + b"\n")
    for kind in ("train", "eval", "train_time", "eval_time"):
        for b in batches:
            out.write(np.ascontiguousarray(getattr(b, kind), dtype="<f8").tobytes())  # a block's rows: small
    out.flush()


def _receive(stream) -> Batch | None:
    try:
        head = msgspec.json.decode(stream.readline())
        out = Batch(records=head["records"], good=head["good"], bad=head["bad"])
        out.train = np.empty((head["train"], len(TRAIN_COLUMNS)), dtype="<f8")
        out.eval = np.empty((head["eval"], len(EVAL_COLUMNS)), dtype="<f8")
        out.train_time = np.empty(head["train"], dtype="<f8")
        out.eval_time = np.empty(head["eval"], dtype="<f8")
        for rows in (out.train, out.eval, out.train_time, out.eval_time):  # straight into the arrays: no copies
            if not rows.size:
                continue
            with memoryview(rows).cast("B") as mv:
                got = 0
                while got < len(mv):
                    n = stream.readinto(mv[got:])
                    if not n:
                        return None
                    got += n
        return out
    except (ValueError, KeyError, TypeError):
        return None


def _read_range(path: str, ino: int, start: int, end: int, chunk: int) -> list[Batch] | None:
    """The Batches of bytes [start, end) of a file (whole lines), or None if it is not that file any more."""
    t = MetricsTailer(path, chunk_bytes=chunk)
    t.offset, t._ino = start, ino
    batches = []
    while t.offset < end:
        before = t.offset
        batches.append(t.poll(max_bytes=min(chunk, end - t.offset)))
        if t.restarted or not t.exists or t.offset == before:  # replaced, truncated or gone
            return None
    return batches if not t._partial else None


def _open_log(path):
    """metrics.jsonl opened for reading without blocking: a FIFO or a directory there is a ValueError."""

    return open(_open_regular(Path(path), os.O_RDONLY), "rb")


if __name__ == "__main__":  # a range reader of MetricsTailer.catch_up: PATH INODE START END CHUNK
    os.nice(10)  # the screen that waits for it comes first: its start-up must not queue behind the readers
    _path, *_nums = sys.argv[1:]
    _batches = _read_range(_path, *map(int, _nums))
    if _batches is None:
        sys.exit(1)
    _send(_batches, sys.stdout.buffer)
