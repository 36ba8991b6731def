"""MetricsTailer: incremental reading of a growing metrics.jsonl."""

import os

from vdm.metrics import MetricsTailer, MetricsWriter


def test_missing_file_then_appearing(tmp_path):
    p = tmp_path / "metrics.jsonl"
    t = MetricsTailer(p)
    assert t.poll() == [] and not t.exists
    w = MetricsWriter(p)
    w.write("start", step=0)
    recs = t.poll()
    assert [r["kind"] for r in recs] == ["start"] and t.exists
    w.write("train", step=1, loss=0.5)
    w.write("train", step=2, loss=0.4)
    assert [r["step"] for r in t.poll()] == [1, 2]
    assert t.poll() == []  # nothing new, nothing re-read
    assert t.offset == p.stat().st_size


def test_partial_line_is_held_until_its_newline(tmp_path):
    p = tmp_path / "metrics.jsonl"
    line = b'{"v": 1, "kind": "train", "time": 1.0, "step": 7, "loss": 0.25}'
    p.write_bytes(line[:20])
    t = MetricsTailer(p)
    assert t.poll() == [] and t.bad == 0  # half a record is neither a record nor garbage yet
    with open(p, "ab") as f:
        f.write(line[20:])
    assert t.poll() == [] and t.bad == 0
    with open(p, "ab") as f:
        f.write(b"\n")
    recs = t.poll()
    assert len(recs) == 1 and recs[0]["step"] == 7 and t.bad == 0


def test_garbage_lines_are_skipped_and_counted(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_bytes(b'{"v": 1, "kind": "start", "time": 1}\n'
                  b"not json at all\n"
                  b"\n"
                  b'{"v": 1, "kind": "train", "time": 2, "step": 1, "loss": 0.3}\n'
                  b'[1, 2, 3]\n'
                  b'{"kind": "train"}\n'  # no schema version
                  b'\xff\xfe\n'
                  b'{"v": 1, "kind": "train", "time": 3, "step": 2, "loss": NaN}\n')  # json reads NaN, as parse_line does
    t = MetricsTailer(p)
    recs = t.poll()
    assert [r["kind"] for r in recs] == ["start", "train", "train"]
    assert t.bad == 4 and t.good == 3


def test_truncation_and_replacement_restart_from_zero(tmp_path):
    p = tmp_path / "metrics.jsonl"
    w = MetricsWriter(p)
    for i in range(5):
        w.write("train", step=i, loss=1.0)
    w.close()
    t = MetricsTailer(p)
    assert len(t.poll()) == 5 and not t.restarted
    # truncated (a new run in the same place): shorter than what was read
    p.write_text('{"v": 1, "kind": "start", "time": 1, "step": 0}\n')
    recs = t.poll()
    assert t.restarted and t.restarts == 1 and [r["kind"] for r in recs] == ["start"]
    # replaced by another file (another inode) that happens to be longer
    q = tmp_path / "new.jsonl"
    q.write_text("".join(f'{{"v": 1, "kind": "train", "time": 1, "step": {i}, "loss": 0.1}}\n' for i in range(9)))
    os.replace(q, p)
    recs = t.poll()
    assert t.restarted and t.restarts == 2 and [r["step"] for r in recs] == list(range(9))
    # deleted: the reader forgets, and starts over when it comes back
    p.unlink()
    assert t.poll() == [] and not t.exists


def test_reads_in_bounded_chunks(tmp_path):
    p = tmp_path / "metrics.jsonl"
    w = MetricsWriter(p)
    for i in range(1000):
        w.write("train", step=i, loss=0.1)
    w.close()
    t = MetricsTailer(p, chunk_bytes=4096)
    got = []
    polls = 0
    while True:
        recs = t.poll()
        polls += 1
        if not recs and t.behind == 0:
            break
        got += [r["step"] for r in recs]
    assert got == list(range(1000)) and polls > 10 and t.bad == 0
