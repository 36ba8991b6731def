"""RunState: records folded into columns, the same by the fast (columnar) and the per-record path."""

import numpy as np

from tui.run import RunState


def _train(i, **over):
    r = {"v": 1, "kind": "train", "time": 100.0 + i, "step": 10 * i, "loss": 1.0 / i, "lr": 1e-3,
         "images_per_s": 50.0, "elapsed": float(i)}
    r.update(over)
    return r


def test_columnar_and_per_record_folds_agree():
    recs = [_train(i) for i in range(1, 201)]
    a, b = RunState(), RunState()
    a.add(recs)  # one batch: the columnar path
    for r in recs:
        b.add([r])  # one at a time: the per-record path
    for k in a.train:
        assert np.array_equal(a.column("train", k), b.column("train", k))
    assert a.records == b.records == 200 and a.last_train == recs[-1] == b.last_train


def test_a_bad_field_falls_back_and_is_counted():
    recs = [_train(i) for i in range(1, 101)]
    recs[50]["loss"] = "oops"
    recs[60].pop("lr")  # an optional field: NaN, not an error
    st = RunState()
    st.add(recs + [{"v": 1, "kind": "eval", "time": 1.0, "step": 5, "eval_loss": 0.5,
                    "bpd": {"total": 3.0, "reconstruction": 2.0, "prior": 0.0, "matching": 1.0}}])
    assert len(st.train["step"]) == 99 and st.bad == 1
    assert np.isnan(st.column("train", "lr")).sum() == 1
    assert st.column("eval", "matching").tolist() == [1.0]


def test_elapsed_and_eta_follow_the_clock_while_running():
    st = RunState()
    st.add([{"v": 1, "kind": "start", "time": 100.0, "step": 0, "total_steps": 100, "config": {"minutes": 0}}])
    st.add([_train(i) for i in range(1, 6)])  # 10 steps per training second, step 50 at elapsed 5
    assert st.running and st.elapsed(now=107.0) == 7.0
    assert st.eta(now=105.0) == 5.0 and st.eta(now=107.0) == 3.0
    st.add([{"v": 1, "kind": "end", "time": 106.0, "step": 50, "reason": "SIGINT", "elapsed": 6.0}])
    assert not st.running and st.elapsed(now=500.0) == 6.0 and st.eta(now=500.0) is None
