"""vdm.tailer: parse_batch and MetricsTailer, incremental reading of a growing metrics.jsonl, and catching up on other processes."""

import json
import os
import sys

import numpy as np
import pytest

from vdm import tailer
from vdm.metrics import MetricsWriter
from vdm.tailer import MetricsTailer, merge


def kinds(batch):
    return [r["kind"] for r in batch.records]


def steps(batch):
    return batch.train[:, 0].tolist()


def test_missing_file_then_appearing(tmp_path):
    p = tmp_path / "metrics.jsonl"
    t = MetricsTailer(p)
    b = t.poll()
    assert b.good == 0 and not t.exists
    w = MetricsWriter(p)
    w.write("start", step=0)
    assert kinds(t.poll()) == ["start"] and t.exists
    w.write("train", step=1, loss=0.5)
    w.write("train", step=2, loss=0.4)
    b = t.poll()
    assert steps(b) == [1, 2] and b.train[:, 1].tolist() == [0.5, 0.4] and b.records[-1]["step"] == 2
    assert t.poll().good == 0  # nothing new, nothing re-read
    assert t.offset == p.stat().st_size


def test_partial_line_is_held_until_its_newline(tmp_path):
    p = tmp_path / "metrics.jsonl"
    line = b'{"v": 1, "kind": "train", "time": 1.0, "step": 7, "loss": 0.25}'
    p.write_bytes(line[:20])
    t = MetricsTailer(p)
    assert t.poll().good == 0 and t.bad == 0  # half a record is neither a record nor garbage yet
    with open(p, "ab") as f:
        f.write(line[20:])
    assert t.poll().good == 0 and t.bad == 0
    with open(p, "ab") as f:
        f.write(b"\n")
    b = t.poll()
    assert steps(b) == [7] and t.bad == 0 and t.good == 1


def test_garbage_lines_are_skipped_and_counted(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_bytes(b'{"v": 1, "kind": "start", "time": 1}\n'
                  b"not json at all\n"
                  b"\n"
                  b'{"v": 1, "kind": "train", "time": 2, "step": 1, "loss": 0.3}\n'
                  b'[1, 2, 3]\n'
                  b'{"kind": "train"}\n'  # no schema version
                  b'\xff\xfe\n'
                  b'{"v": 1, "kind": "train", "time": 3, "step": 2, "loss": "x"}\n'  # a number that is not
                  b'{"v": 1, "kind": "checkpoint", "time": 3, "step": 2}\n'  # a kind this reader does not know
                  b'{"v": 1, "kind": "train", "time": 3, "step": 3, "loss": NaN}\n')  # json reads NaN; no trainer writes it
    t = MetricsTailer(p)
    b = t.poll()
    assert kinds(b) == ["start", "train", "checkpoint"] and steps(b) == [1]
    assert t.bad == 6 and t.good == 3


def test_truncation_and_replacement_restart_from_zero(tmp_path):
    p = tmp_path / "metrics.jsonl"
    w = MetricsWriter(p)
    for i in range(5):
        w.write("train", step=i, loss=1.0)
    w.close()
    t = MetricsTailer(p)
    assert t.poll().good == 5 and not t.restarted
    # truncated (a new run in the same place): shorter than what was read
    p.write_text('{"v": 1, "kind": "start", "time": 1, "step": 0}\n')
    b = t.poll()
    assert t.restarted and t.restarts == 1 and kinds(b) == ["start"]
    # replaced by another file (another inode) that happens to be longer
    q = tmp_path / "new.jsonl"
    q.write_text("".join(f'{{"v": 1, "kind": "train", "time": 1, "step": {i}, "loss": 0.1}}\n' for i in range(9)))
    os.replace(q, p)
    b = t.poll()
    assert t.restarted and t.restarts == 2 and steps(b) == list(range(9))
    # deleted: the reader forgets, and starts over when it comes back
    p.unlink()
    assert t.poll().good == 0 and not t.exists


def test_reads_in_bounded_chunks(tmp_path):
    p = tmp_path / "metrics.jsonl"
    w = MetricsWriter(p)
    for i in range(1000):
        w.write("train", step=i, loss=0.1)
    w.close()
    t = MetricsTailer(p, chunk_bytes=4096)
    got, polls = [], 0
    while True:
        b = t.poll()
        polls += 1
        if not b.good and t.behind == 0:
            break
        got += steps(b)
    assert got == list(range(1000)) and polls > 10 and t.bad == 0


# -- the fast (whole block) and slow (line by line) paths of parse_batch -----------------------

def _log(n, every_eval=50):
    lines = [json.dumps({"v": 1, "kind": "start", "time": 0, "step": 0, "config": {"epochs": 3}})]
    for i in range(1, n):
        if i % every_eval == 0:
            lines.append(json.dumps({"v": 1, "kind": "eval", "time": i, "step": i, "eval_loss": 1 / i,
                                     "bpd": {"total": 3.0 + 1 / i, "reconstruction": 2.0, "prior": 1e-5, "matching": 1 / i},
                                     # the stated error: the Monte Carlo one, or in older logs only bpd_se
                                     **({"bpd_mc_se": 0.01 * i} if i % 100 else {}), "bpd_se": 0.5, "seconds": i / 7}))
        else:
            lines.append(json.dumps({"v": 1, "kind": "train", "time": i, "step": i, "epoch": i / 100,
                                     "loss": 1 / i, "lr": 1e-3, "images_per_s": 100.0 + i, "elapsed": i * 0.1,
                                     "device": "cpu", "memory_mb": 1.0}))
    lines.append(json.dumps({"v": 1, "kind": "end", "time": n, "step": n, "reason": "done", "elapsed": 9.0}))
    return [l.encode() for l in lines]


def _expected(lines):
    """Columns by plain dict access on json.loads: the independent route."""
    recs = [json.loads(l) for l in lines if l.strip()]
    nan = float("nan")
    train = [[float(r.get(k, nan)) for k in tailer.TRAIN_COLUMNS] for r in recs if r["kind"] == "train"]
    ev = [[float(r["step"]), float(r.get("eval_loss", nan))] + [float(r.get("bpd", {}).get(k, nan))
                                                                 for k in tailer.EVAL_COLUMNS[2:-2]]
          + [float(r.get("bpd_mc_se", r.get("bpd_se", nan))), float(r.get("seconds", nan))]
          for r in recs if r["kind"] == "eval"]
    return np.array(train), np.array(ev), recs


def test_fast_and_slow_paths_agree_with_plain_json():
    lines = _log(400)
    train, ev, recs = _expected(lines)
    block = b"\n".join(lines) + b"\n"
    fast = tailer.parse_batch(block)
    slow = tailer.parse_batch(block + b"}garbage{\n")  # one bad line: the whole block goes line by line
    blank = tailer.parse_batch(block.replace(b"\n", b"\n  \n", 7))  # blank lines: whole records found by another route
    for b in (fast, slow, blank):
        assert np.array_equal(b.train, train) and np.array_equal(b.eval, ev)
        assert kinds(b) == ["start", "eval", "train", "end"]  # other kinds, then the last eval, train, in file order
        assert b.records[0] == recs[0] and b.records[-1] == recs[-1] and b.records[2] == recs[-2]
        assert b.good == len(recs)
    assert fast.bad == blank.bad == 0 and slow.bad == 1
    mv = tailer.parse_batch(memoryview(bytearray(block)))  # what the tailer hands it
    assert np.array_equal(mv.train, train) and mv.records == fast.records


# -- catching up on other processes -------------------------------------------------------------

def _write(p, lines):
    p.write_bytes(b"".join(l + b"\n" for l in lines))


def _poll_all(p):
    t = MetricsTailer(p, chunk_bytes=8192)
    out = []
    while True:
        out.append(t.poll())
        if t.behind == 0:
            return merge(out), t


@pytest.mark.parametrize("processes", [1, 3])
def test_catch_up_equals_polling(tmp_path, processes):
    p = tmp_path / "metrics.jsonl"
    lines = _log(3000)
    lines[700:700] = [b"not json", b'{"v": 1, "kind": "train", "step": "x", "loss": 1}', b"   "]
    _write(p, lines)
    ref, ref_t = _poll_all(p)
    t = MetricsTailer(p, chunk_bytes=8192)
    b = t.catch_up(processes=processes, min_bytes=0)
    assert b is not None and t.offset == p.stat().st_size and t.behind == 0
    assert np.array_equal(b.train, ref.train) and np.array_equal(b.eval, ref.eval)
    assert (b.good, b.bad) == (ref.good, ref.bad) == (t.good, t.bad) == (ref_t.good, 2)
    assert [r for r in b.records if r["kind"] not in ("train", "eval")] == \
           [r for r in ref.records if r["kind"] not in ("train", "eval")]
    assert b.records[-1]["kind"] == "end"
    with open(p, "ab") as f:  # and it goes on tailing from there
        f.write(b'{"v": 1, "kind": "train", "time": 1, "step": 5000, "loss": 0.5}\n')
    assert steps(t.poll()) == [5000]


def test_catch_up_leaves_a_half_written_line_to_poll(tmp_path):
    p = tmp_path / "metrics.jsonl"
    lines = _log(500)
    _write(p, lines)
    with open(p, "ab") as f:
        f.write(b'{"v": 1, "kind": "train", "time": 1, "st')
    t = MetricsTailer(p)
    b = t.catch_up(processes=2, min_bytes=0)
    assert b.good == len(lines) and t.behind == len(b'{"v": 1, "kind": "train", "time": 1, "st')
    with open(p, "ab") as f:
        f.write(b'ep": 9999, "loss": 0.5}\n')
    assert steps(t.poll()) == [9999] and t.bad == 0


def test_catch_up_is_skipped_for_a_short_log_and_falls_back_when_no_process_starts(tmp_path, monkeypatch):
    p = tmp_path / "metrics.jsonl"
    _write(p, _log(300))
    t = MetricsTailer(p)
    assert t.catch_up() is None and t.offset == 0  # 64 MiB by default: polling is quicker for 30 kB
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python-here"))
    assert t.catch_up(min_bytes=0) is None and t.offset == 0 and t.reading_ahead is None
    assert t.poll().good == 301  # and the caller just polls (start, 299 records, end)


@pytest.mark.parametrize("reader", ["exit 1", "echo '{\"good\": 1}'; exit 0", "head -c 100 /dev/zero; exit 0"])
def test_a_reader_that_fails_or_talks_nonsense_changes_nothing(tmp_path, monkeypatch, reader):
    p = tmp_path / "metrics.jsonl"
    _write(p, _log(500))
    fake = tmp_path / "fake-python"
    fake.write_text("#!/bin/sh\n" + reader + "\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    t = MetricsTailer(p)
    assert t.catch_up(processes=2, min_bytes=0) is None and t.offset == 0 and t.good == 0
    assert t.poll().good == 501


def test_a_cancelled_catch_up_changes_nothing_and_leaves_no_process(tmp_path):
    p = tmp_path / "metrics.jsonl"
    _write(p, _log(3000))
    t = MetricsTailer(p)
    assert t.start_catch_up(processes=2, min_bytes=0) and t.reading_ahead[1] == 2
    procs = list(t._readers.procs)
    assert t.catch_up(cancelled=lambda: True) is None
    assert all(pr.poll() is not None for pr in procs) and t.offset == 0 and t.good == 0
    assert t.poll().good > 0


def test_a_range_reader_refuses_another_file_and_a_short_stream(tmp_path):
    p = tmp_path / "metrics.jsonl"
    _write(p, _log(100))
    ino, size = p.stat().st_ino, p.stat().st_size
    assert tailer._read_range(str(p), ino + 1, 0, size, 4096) is None  # replaced since the parent looked
    assert tailer._read_range(str(p), ino, 0, size + 100, 4096) is None  # truncated since
    batches = tailer._read_range(str(p), ino, 0, size, 4096)
    import io

    buf = io.BytesIO()
    tailer._send(batches, buf)
    whole = buf.getvalue()
    back = tailer._receive(io.BytesIO(whole))
    assert np.array_equal(back.train, merge(batches).train) and back.records == merge(batches).records
    assert tailer._receive(io.BytesIO(whole[:-8])) is None  # a reader that died mid-stream
    assert tailer._receive(io.BytesIO(b"garbage\n")) is None


def test_a_fifo_or_directory_in_place_of_the_log_is_said_not_blocked_on(tmp_path):
    """A FIFO at metrics.jsonl would block open() forever (the monitor then ignored q): refused at once."""
    import os
    import threading

    from vdm.tailer import MetricsTailer

    fifo = tmp_path / "metrics.jsonl"
    os.mkfifo(fifo)
    tailer = MetricsTailer(fifo)
    done = threading.Event()
    result = {}

    def read():
        result["started"] = tailer.start_catch_up(min_bytes=0)
        result["batch"] = tailer.poll()
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(10), "the tailer blocked on a FIFO"
    assert result["started"] is False and not result["batch"].good and not tailer.exists
    assert tailer.problem == f"{fifo} is a FIFO, not a metrics log."
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "metrics.jsonl").mkdir()
    t2 = MetricsTailer(tmp_path / "d" / "metrics.jsonl")
    t2.poll()
    assert "is a directory" in t2.problem
