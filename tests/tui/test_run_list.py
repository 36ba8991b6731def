"""The run list reads a summary of each log (vdm.tailer.SummaryTailer): what it shows must be what
a full read of the same log shows, for logs of every shape (resumed, ended, cut short, growing)."""

import random

import pytest

from tui.run_list import RunEntry
from tui_fixtures import record


def _log(rng: random.Random) -> list[str]:
    """A random but plausible log: starts (resumes), train records, evaluations, samples, maybe an end,
    maybe junk and a half-written last line."""
    lines, t, step = [], 1000.0, 0
    for seg in range(rng.randint(1, 3)):  # a resumed run starts again
        lines.append(record("start", t, step=step, epoch=step / 50, total_steps=rng.choice([400, 4000]), pid=1,
                            config={"epochs": 8, "minutes": rng.choice([0, 0.5])}))
        for _ in range(rng.randint(0, 300)):
            step += 2
            t += rng.uniform(0.1, 2.0)
            lines.append(record("train", t, step=step, epoch=step / 50, loss=rng.uniform(0.1, 1), elapsed=t - 1000.0))
            if rng.random() < 0.03:
                lines.append(record("eval", t, step=step, eval_loss=rng.uniform(0.1, 1),
                                    bpd={"total": rng.uniform(3, 9), "reconstruction": 1.0, "prior": 0.1, "matching": 1.0}))
            if rng.random() < 0.01:
                lines.append(record("sample", t, step=step, path="samples/latest.png"))
            if rng.random() < 0.005:
                lines.append("not json at all\n")
    if rng.random() < 0.5:
        lines.append(record("end", t + 1, step=step, epoch=step / 50, reason=rng.choice(["done", "time limit"]),
                            elapsed=t - 999.0))
    if rng.random() < 0.3:
        lines.append(record("train", t + 2, step=step + 2, loss=0.5)[:25])  # half written
    return lines


@pytest.mark.parametrize("seed", range(25))
def test_the_list_shows_from_its_summary_what_a_full_read_shows(tmp_path, seed):
    import threading

    rng = random.Random(seed)
    run = tmp_path / "run"
    run.mkdir()
    lines = _log(rng)
    cut = rng.randint(0, len(lines))  # read once part-way (a growing log), then the rest
    (run / "metrics.jsonl").write_text("".join(lines[:cut]))
    summary, full, lock = RunEntry(run, summary=True), RunEntry(run), threading.Lock()
    for part in (lines[cut:], []):
        for e in (summary, full):
            e.update(lock)
        now = 1000.0 + rng.uniform(0, 2000)
        a, b = summary.state, full.state
        assert summary.status(now, lambda pid: True) == full.status(now, lambda pid: True)
        assert summary.last_bpd() == full.last_bpd()
        assert (a.step, a.total_steps, a.epoch, a.last_time, a.running) == (b.step, b.total_steps, b.epoch, b.last_time,
                                                                             b.running)
        assert a.time_binds() == b.time_binds() and a.progress(now) == b.progress(now) and a.eta(now) == b.eta(now)
        assert a.alive(now, lambda pid: True) == b.alive(now, lambda pid: True)
        with open(run / "metrics.jsonl", "a") as f:
            f.write("".join(part))
