"""Bad input everywhere gets a clear error, never a traceback, a hang or lost data.

Property-based (hypothesis, derandomized so CI sees the same examples every time): command
line values and paths, schedules, tensors of the wrong shape, dtype or with NaN at the
public API, and truncated or garbage metrics lines at both readers. Every case must end in
a ValueError (API) or exit status 2 with one line on stderr (CLI), or succeed with a
result that makes sense; any other exception fails the test. The counts of inputs tried
are printed at the end (pytest -s).
"""

from __future__ import annotations

import json
import math
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import assume, given
from hypothesis import strategies as st

import vdm.data
from testkit import fast
from vdm import checkpoint as ckpt
from vdm.config import MAX_T
from vdm_cli.main import main
from vdm.denoiser import Denoiser, load_denoiser
from vdm.diffusion import forward_step, posterior, q_sample
from vdm.elbo import elbo
from vdm.metrics import MetricsWriter, parse_line, read_all
from vdm.nets import build_net
from vdm.sample import sample
from vdm.schedule import Schedule, make_schedule
from vdm.config import ALPHA_MARGIN, MAX_BATCH
from vdm.train import Trainer
from vdm.checkpoint import MAX_STEP

TRIED = Counter()


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print("\nbad inputs tried: " + ", ".join(f"{k} {v}" for k, v in sorted(TRIED.items()))
          + f"; total {sum(TRIED.values())}")


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def _cli(argv, capsys):
    try:
        rc = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's own exits (usage errors)
        rc = e.code
    out, err = capsys.readouterr()
    return rc, out, err


# -- command line values ---------------------------------------------------------------------

VALUES = st.one_of(
    st.text(max_size=12),
    st.integers(-10**30, 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "nan", "NaN", "inf", "-inf", "1e400", "-0", "0", "1", "0x10", "1_000", " 7 ",
                     "\u0663", "--", "-", "1e-320", "0.99999999999999999", "10001", "10000", "5e-324", "0.5",
                     "4294967296", "\x00", "1" * 5000]),
)


def _int(s):
    try:
        return int(s)
    except ValueError:
        return None


def _float(s):
    try:
        return float(s)
    except ValueError:
        return None


def _finite(s):
    f = _float(s)
    return f if f is not None and math.isfinite(f) else None


ORACLES = {  # flag -> is the value acceptable?
    "T": lambda s: _int(s) is not None and 1 <= _int(s) <= MAX_T,
    "alpha": lambda s: _finite(s) is not None and ALPHA_MARGIN <= _finite(s) <= 1 - ALPHA_MARGIN,
    "epochs": lambda s: _int(s) is not None and 1 <= _int(s) <= MAX_STEP,
    "batch-size": lambda s: _int(s) is not None and 1 <= _int(s) <= MAX_BATCH,
    "lr": lambda s: _finite(s) is not None and _finite(s) > 0,
    "ema": lambda s: _finite(s) is not None and 0 <= _finite(s) < 1,
    "minutes": lambda s: _finite(s) is not None and 0 <= _finite(s) < 1e9,
    "limit": lambda s: _int(s) is not None and 0 <= _int(s) <= MAX_STEP,
    "seed": lambda s: _int(s) is not None and 0 <= _int(s) < 2**32,
}


@pytest.fixture
def no_training(monkeypatch):
    """vdm train up to a built Trainer, without the data set or the loop."""
    monkeypatch.setattr(vdm.data, "load", lambda *a, **k: torch.zeros(8, 3, 32, 32, dtype=torch.uint8))
    built = []

    def run(self, progress=None):
        built.append(self.cfg)
        return {"step": 0, "epoch": 0, "reason": "done", "eval": None}

    monkeypatch.setattr(Trainer, "run", run)
    return built


@pytest.mark.parametrize("flag", list(ORACLES))
def test_train_flag_values(flag, no_training, tmp_path, capsys):
    @fast(15)
    @given(value=VALUES)
    def check(value):
        TRIED["CLI values"] += 1
        no_training.clear()
        rc, _, err = _cli(["train", "--runs-dir", tmp_path, "--name", "x", "--quiet", "--threads", "1",
                           "--eval-size", "0", f"--{flag}={value}"], capsys)
        if ORACLES[flag](value):
            assert rc == 0, (value, err)
            assert len(no_training) == 1
        else:
            assert rc == 2, (value, rc, err)
            assert _one_line(err).startswith("vdm train: "), err
            assert not no_training
    check()


COMMANDS = [
    ["tune-alpha", "--T"], ["tune-alpha", "--final-signal"], ["tune-alpha", "--rows"], ["model", "--T"],
    ["forward", "--steps"], ["forward", "--alpha"], ["sample", "x", "--n"], ["sample", "x", "--frames"],
    ["elbo", "x", "--n"], ["elbo", "x", "--estimator"], ["sample", "x", "--seed"],
]


@fast(60)
@given(cmd=st.sampled_from(COMMANDS), value=VALUES)
def test_other_commands_refuse_bad_values(cmd, value, capsys, tmp_path_factory):
    """Values the parsers must refuse: never an exit other than 0 or 2, never more than one line."""
    TRIED["CLI values"] += 1
    if cmd[-1] in ("--rows", "--steps", "--n", "--frames", "--T") and ORACLES["T"](value):
        value = str(-abs(_int(value)))  # a valid count would do real work: make it a bad one
    if cmd[-1] in ("--final-signal", "--alpha") and _finite(value) is not None and 0 < _finite(value) < 1:
        value = "1.5"
    if cmd[-1] == "--seed" and ORACLES["seed"](value):
        value = "-1"
    if cmd[-1] == "--estimator" and value in ("full", "uniform"):
        value = "half"
    rc, _, err = _cli(cmd[:-1] + [f"{cmd[-1]}={value}"], capsys)
    assert rc == 2, (cmd, value, rc, err)
    assert _one_line(err).startswith("vdm "), err


PATHS = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="./-_~ax\x00", max_size=20),
    st.sampled_from(["/", "/dev/null", "/dev/zero", "/proc/self/mem", "/etc/passwd", "~", "-", ".", "..", "",
                     "a" * 5000, "/" * 300, "x\x00y", "runs/../../../../etc", "/proc/self/fd/0"]),
)


@fast(40)
@given(path=PATHS, cmd=st.sampled_from([["sample"], ["elbo"], ["train", "--quiet", "--resume"]]))
def test_paths_that_are_no_checkpoint(path, cmd, capsys, tmp_path_factory, monkeypatch):
    TRIED["CLI paths"] += 1
    monkeypatch.chdir(tmp_path_factory.getbasetemp())  # relative paths land in an empty place
    assume(not path.startswith("-") or path == "-")
    if cmd[0] == "train":
        argv = cmd[:-1] + [f"--resume={path}"]
    else:
        argv = cmd + ["--", path] if path.startswith("-") else cmd + [path]
    rc, _, err = _cli(argv, capsys)
    assert rc == 2, (argv, rc, err)
    assert _one_line(err).startswith("vdm "), err


# -- schedules ---------------------------------------------------------------------------------

ALPHAS = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True), st.integers(-3, 3),
                   st.sampled_from([0.0, 1.0, -0.5, 1 - 1e-17, 5e-324, 1e-300, float("nan"), "0.5", [0.5]]))
TS = st.one_of(st.integers(-3, 300), st.booleans(), st.floats(allow_nan=True), st.sampled_from(["20", None, 2.0]))


def _valid_schedule(s: Schedule) -> None:
    ab = s.alpha_bar
    assert s.T >= 1 and ab[0] == 1 and bool(torch.isfinite(ab).all())
    assert bool((ab[1:] < 1).all()) and bool((ab >= 0).all()) and bool((ab[1:] <= ab[:-1]).all())
    assert Schedule.from_config(json.loads(json.dumps(s.config()))) == s
    assert isinstance(s.describe(), str)


@fast(150)
@given(alpha=ALPHAS, T=TS, kind=st.sampled_from(["constant", "linear", "cosine", "exotic", "", None]))
def test_schedules_from_any_numbers(alpha, T, kind):
    TRIED["schedules"] += 1
    for build in (lambda: Schedule.constant(alpha, T), lambda: make_schedule(kind, T, alpha),
                  lambda: Schedule.linear(T, alpha, 0.02), lambda: Schedule.cosine(T, alpha)):
        try:
            s = build()
        except ValueError:
            continue
        _valid_schedule(s)


@fast(100)
@given(ab=st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=30))
def test_schedules_from_any_alpha_bar(ab):
    TRIED["schedules"] += 1
    try:
        s = Schedule.from_alpha_bar(ab)
    except ValueError:
        return
    _valid_schedule(s)
    assert torch.allclose(s.alpha_bar[1:], torch.tensor(ab, dtype=torch.float64), rtol=1e-12, atol=0)


JSONISH = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-10, 10**6), st.floats(), st.text(max_size=6)),
                       lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
                       max_leaves=10)


@fast(100)
@given(cfg=st.one_of(JSONISH, st.fixed_dictionaries({"kind": st.sampled_from(["constant", "linear", "cosine", "custom"])},
                                                      optional={"T": JSONISH | st.integers(-2, 50), "params": JSONISH})))
def test_schedule_configs_from_a_file(cfg):
    TRIED["schedules"] += 1
    try:
        s = Schedule.from_config(cfg)
    except ValueError:
        return
    _valid_schedule(s)


# -- tensors at the public API ---------------------------------------------------------------

S = Schedule.constant(None, 20)
torch.manual_seed(0)
DEN = Denoiser(build_net("assignment", 20), S).eval()
DTYPES = [torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int64, torch.uint8, torch.bool]


@st.composite
def tensors(draw, like_image=False):
    if like_image and draw(st.booleans()):
        shape = [draw(st.integers(0, 3)), 3, 32, 32]
    else:
        shape = draw(st.lists(st.integers(0, 5), max_size=5))
    dtype = draw(st.sampled_from(DTYPES))
    x = torch.rand(shape).mul(2).sub(1).to(dtype)
    if x.is_floating_point() and x.numel() and draw(st.integers(0, 3)) == 0:
        x.view(-1)[draw(st.integers(0, x.numel() - 1))] = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
    return x


STEPS = st.one_of(st.integers(-3, 25), st.booleans(), st.floats(allow_nan=True), st.none(),
                  st.lists(st.integers(-2, 22), max_size=4).map(torch.tensor),
                  st.lists(st.floats(0, 20), min_size=1, max_size=3).map(torch.tensor),
                  st.integers(0, 20).map(lambda t: torch.tensor([[t]])))


def _ok_or_value_error(fn, check=None):
    try:
        out = fn()
    except ValueError:
        return "refused"
    if check:
        check(out)
    return "done"


def _nan(*xs) -> bool:
    return any(torch.is_tensor(x) and x.is_floating_point() and not bool(torch.isfinite(x).all()) for x in xs)


@fast(120)
@given(x0=tensors(like_image=True), t=STEPS, noise=st.one_of(st.none(), tensors(like_image=True)))
def test_diffusion_functions(x0, t, noise):
    TRIED["tensors"] += 1
    for fn, shape_of in ((lambda: q_sample(S, x0, t, noise), x0), (lambda: forward_step(S, x0, t, noise), x0)):
        _ok_or_value_error(fn, lambda out: out.shape == shape_of.shape or pytest.fail("wrong shape"))
    other = noise if noise is not None else x0

    def check(out):
        assert not _nan(x0, other), "posterior accepted NaN"
        assert out[0].shape == x0.shape

    _ok_or_value_error(lambda: posterior(S, x0, other, t), check)


@fast(40)
@given(x=tensors(like_image=True), t=STEPS, form=st.sampled_from(["denoising", "consistency", "neither"]))
def test_denoiser_and_elbo(x, t, form):
    TRIED["tensors"] += 1
    with torch.no_grad():
        _ok_or_value_error(lambda: DEN(x, t), lambda out: out.shape == x.shape or pytest.fail("wrong shape"))

        def check(e):
            assert not _nan(x), "elbo accepted NaN"
            assert e.total.shape == (x.shape[0],)

        _ok_or_value_error(lambda: elbo(DEN, S, x, form, "uniform", generator=torch.Generator().manual_seed(0)), check)


@fast(30)
@given(n=st.one_of(st.integers(-2, 3), st.floats(allow_nan=True), st.booleans(), st.just("2")),
       shape=st.one_of(st.just((3, 32, 32)), st.lists(st.integers(-1, 33), max_size=4).map(tuple), st.just("3x32")),
       x_T=st.one_of(st.none(), tensors(like_image=True)))
def test_sample(n, shape, x_T):
    TRIED["tensors"] += 1

    def check(x):
        assert not _nan(x_T), "sample accepted a NaN x_T"
        assert bool(torch.isfinite(x).all())

    with torch.no_grad():
        _ok_or_value_error(lambda: sample(DEN, S, n, shape, x_T=x_T), check)


# -- metrics.jsonl at both readers -------------------------------------------------------------

GOOD = st.builds(lambda k, s, loss: {"v": 1, "kind": k, "time": 1.0, "step": s, "loss": loss},
                 st.sampled_from(["train", "eval", "start", "end"]), st.integers(0, 10**6),
                 st.floats(allow_nan=False, allow_infinity=False))
# records of the right shape with odd values: the columnar reader's fast path must agree with parse_line and valid
ODD = st.fixed_dictionaries(
    {"v": st.one_of(st.just(1), st.integers(-2**70, 2**70), st.booleans(), st.floats()),
     "kind": st.sampled_from(["train", "eval", "sample", "start", "end", "stopping", "xyz"])},
    optional={k: JSONISH for k in ("step", "loss", "lr", "elapsed", "eval_loss", "time", "total_steps", "path",
                                   "reason", "config", "bpd_mc_se", "bpd_se", "seconds")}
    | {"bpd": JSONISH | st.fixed_dictionaries({}, optional={"total": JSONISH, "prior": JSONISH})})
LINES = st.one_of(
    GOOD.map(lambda r: json.dumps(r).encode()),
    ODD.map(lambda r: json.dumps(r).encode()),
    GOOD.map(lambda r: json.dumps(r).encode()).flatmap(lambda b: st.integers(0, len(b) - 1).map(lambda i: b[:i])),
    st.binary(max_size=60).filter(lambda b: b"\n" not in b),
    st.sampled_from([b"[" * 100_000, b"{" * 50_000, b"NaN", b"null", b'{"v": 1}', b'{"kind": "train"}',
                     b'{"v": "1", "kind": "train"}', b"\xff\xfe", b"\x00" * 30, b" " * 10, b'{"v": 1, "kind": 7}',
                     b'{"v": 1, "kind": "train", "step": 1e999}', b"1" * 5000]),
)


@fast(200)
@given(line=LINES)
def test_parse_line_never_raises(line):
    TRIED["metrics lines"] += 1
    rec = parse_line(line)
    assert rec is None or (isinstance(rec, dict) and isinstance(rec["kind"], str) and isinstance(rec["v"], int))
    rec2 = parse_line(line.decode("utf-8", "replace"))  # the text form too
    assert rec2 is None or (isinstance(rec2, dict) and isinstance(rec2["kind"], str))


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _columns_by_hand(records):
    """What the columnar reader must make of parse_line's records, by plain dict access."""
    from vdm.tailer import TRAIN_COLUMNS

    nan = float("nan")
    train, evals, others, bad = [], [], [], 0
    for r in records:
        if r["kind"] == "train":
            if _num(r.get("step")) and _num(r.get("loss")) and all(_num(r[k]) for k in TRAIN_COLUMNS[2:] if k in r):
                train.append([float(r.get(k, nan)) for k in TRAIN_COLUMNS])
            else:
                bad += 1
        elif r["kind"] == "eval":
            b = r.get("bpd")
            terms = ("total", "reconstruction", "prior", "matching")
            if (_num(r.get("step")) and ("eval_loss" not in r or _num(r["eval_loss"]))
                    and (b is None or isinstance(b, dict) and all(_num(b[k]) for k in terms if k in b))):
                stated = [float(r[k]) if type(r.get(k)) in (int, float) else nan for k in ("bpd_mc_se", "bpd_se", "seconds")]
                se = stated[0] if stated[0] == stated[0] else stated[1]  # the newer error, else the older one
                evals.append([float(r["step"]), float(r.get("eval_loss", nan))] + [float((b or {}).get(k, nan)) for k in terms]
                             + [se, stated[2]])
            else:
                bad += 1
        else:
            others.append(r)
    return train, evals, others, bad


@fast(40)
@given(lines=st.lists(LINES, max_size=12), cuts=st.lists(st.integers(1, 400), max_size=8))
def test_readers_lose_no_good_record(lines, cuts, tmp_path_factory):
    """read_all and the tailer (fed in arbitrary chunks) find exactly the records that parse and are valid
    (vdm.metrics.valid: the rules every face reads by)."""
    from vdm.metrics import valid
    from vdm.tailer import MetricsTailer, merge

    TRIED["metrics lines"] += len(lines)
    path = tmp_path_factory.mktemp("m") / "metrics.jsonl"
    blob = b"".join(l + b"\n" for l in lines)
    expected = [r for r in (parse_line(l) for l in lines) if r is not None and valid(r)]
    unparsed = sum(1 for l in lines if l.strip()) - len(expected)
    tail = MetricsTailer(path)
    got, pos = [], 0
    with open(path, "wb") as f:
        for c in cuts + [len(blob)]:
            f.write(blob[pos: pos + c])
            f.flush()
            pos += c
            got.append(tail.poll())
    good, bad = read_all(path)
    assert good == expected and bad == unparsed
    got.append(tail.poll())
    b = merge(got)
    train, evals, others, unreadable = _columns_by_hand(expected)
    assert np.array_equal(b.train, np.array(train).reshape(-1, 5), equal_nan=True)
    assert np.array_equal(b.eval, np.array(evals).reshape(-1, 8), equal_nan=True)
    assert json.dumps([r for r in b.records if r["kind"] not in ("train", "eval")]) == json.dumps(others)  # NaN == NaN
    assert (tail.good, tail.bad) == (len(expected) - unreadable, unparsed + unreadable)


def test_writer_after_a_cut_line_loses_nothing(tmp_path):
    """A kill cut the last line short: the next writer starts a fresh line, the cut line stays skipped."""
    path = tmp_path / "metrics.jsonl"
    w = MetricsWriter(path)
    w.write("train", step=1, loss=0.5)
    w.close()
    with open(path, "ab") as f:
        f.write(b'{"v": 1, "kind": "train", "st')
    w = MetricsWriter(path)
    w.write("train", step=2, loss=0.4)
    w.close()
    good, bad = read_all(path)
    assert [r["step"] for r in good] == [1, 2] and bad == 1


# -- checkpoints at the reader and the public API ---------------------------------------------

@pytest.fixture(scope="module")
def small_ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck")
    sd = {f"model/{k}": v for k, v in DEN.net.state_dict().items()}
    side = ckpt.save(d, 3, sd, {"model": "assignment", "prediction": "x0", "schedule": S.config()})
    return side, json.loads(side.read_text()), side.with_suffix(".safetensors").read_bytes()


KEYS = ["model", "prediction", "schedule", "step", "format", "version", "tensors_file", "sha256", "epoch"]


@fast(40)
@given(edits=st.dictionaries(st.sampled_from(KEYS), JSONISH, max_size=3),
       flips=st.lists(st.tuples(st.integers(0, 3000), st.integers(0, 255)), max_size=4))
def test_mangled_checkpoints(small_ckpt, edits, flips, tmp_path_factory):
    """Random sidecar values and random bytes in the safetensors header (with its SHA-256 made to match)."""
    TRIED["checkpoints"] += 1
    side, meta, data = small_ckpt
    d = tmp_path_factory.mktemp("m")
    data = bytearray(data)
    for i, b in flips:
        data[i % len(data)] = b
    (d / "ckpt-00000003.safetensors").write_bytes(bytes(data))
    import hashlib

    meta = dict(meta, sha256=hashlib.sha256(bytes(data)).hexdigest())
    meta.update(edits)
    (d / "ckpt-00000003.json").write_text(json.dumps(meta))
    for target in (d, d / "ckpt-00000003.json"):
        try:
            den, _ = load_denoiser(target, expected={"model": "assignment"})
        except ValueError:
            continue
        assert isinstance(den, Denoiser)
