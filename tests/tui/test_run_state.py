"""RunState: a Batch of metrics records folded into columns and the newest whole records."""

import json

import numpy as np

from tui.run_state import RunState
from vdm.tailer import parse_batch


def _train(i, **over):
    r = {"v": 1, "kind": "train", "time": 100.0 + i, "step": 10 * i, "loss": 1.0 / i, "lr": 1e-3,
         "images_per_s": 50.0, "elapsed": float(i)}
    r.update(over)
    return r


def batch(recs):
    return parse_batch(b"".join(json.dumps(r).encode() + b"\n" for r in recs))


def test_columns_hold_every_record_and_the_newest_is_kept_whole():
    recs = [_train(i) for i in range(1, 201)]
    st = RunState()
    st.add(batch(recs[:120]))
    st.add(batch(recs[120:]))
    for k in ("step", "loss", "lr", "images_per_s", "elapsed"):
        assert st.column("train", k).tolist() == [float(r[k]) for r in recs]
    assert st.records == 200 and st.last_train == recs[-1] and st.bad == 0


def test_a_bad_field_is_counted_and_a_missing_optional_one_is_nan():
    recs = [_train(i) for i in range(1, 101)]
    recs[50]["loss"] = "oops"
    recs[60].pop("lr")
    st = RunState()
    st.add(batch(recs + [{"v": 1, "kind": "eval", "time": 1.0, "step": 5, "eval_loss": 0.5,
                          "bpd": {"total": 3.0, "reconstruction": 2.0, "prior": 0.0, "matching": 1.0}}]))
    assert len(st.train["step"]) == 99 and st.bad == 1 and st.records == 100
    assert np.isnan(st.column("train", "lr")).sum() == 1
    assert st.column("eval", "matching").tolist() == [1.0] and st.last_eval["bpd"]["total"] == 3.0


def test_elapsed_and_eta_follow_the_clock_while_running():
    st = RunState()
    st.add(batch([{"v": 1, "kind": "start", "time": 100.0, "step": 0, "total_steps": 100, "config": {"minutes": 0}}]))
    st.add(batch([_train(i) for i in range(1, 6)]))  # 10 steps per training second, step 50 at elapsed 5
    assert st.running and st.elapsed(now=107.0) == 7.0
    assert st.eta(now=105.0) == 5.0 and st.eta(now=107.0) == 3.0
    st.add(batch([{"v": 1, "kind": "end", "time": 106.0, "step": 50, "reason": "SIGINT", "elapsed": 6.0}]))
    assert not st.running and st.elapsed(now=500.0) == 6.0 and st.eta(now=500.0) is None
    st.add(batch([{"v": 1, "kind": "start", "time": 200.0, "step": 50, "total_steps": 100}]))  # resumed
    assert st.running and st.end is None


def test_the_version_never_comes_back_after_a_clear():
    st = RunState()
    st.add(batch([_train(1)]))
    seen = st.version
    st.clear()
    st.add(batch([_train(1)]))
    assert st.version > seen  # a screen that drew `seen` must draw again
