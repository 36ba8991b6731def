"""The run API on bad run directories, hypothesis over config and sidecar
fields, and the command line's one sentence (devices, decompression bombs, Ctrl-C, a full disk)."""

from __future__ import annotations

import errno
import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import vdm.metrics
from reliability_helpers import read_json, rewrite_checkpoint, tiny_cfg, train_argv
from testkit import fast, one_sentence
from vdm_cli.main import main
from vdm.run import open_run
from vdm.train import TrainConfig, Trainer

VDM = str(Path(sys.executable).with_name("vdm"))


# -- item 9, the run API's side ----------------------------------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "directory"])
def test_metrics_that_is_not_a_file_is_refused_at_once(run, kind):
    (run / "metrics.jsonl").unlink()
    os.mkfifo(run / "metrics.jsonl") if kind == "fifo" else (run / "metrics.jsonl").mkdir()
    t = time.monotonic()
    with pytest.raises(ValueError, match=f"is a {'FIFO' if kind == 'fifo' else 'directory'}, not a metrics log"):
        open_run(run).metrics()
    assert time.monotonic() - t < 30, "blocked on the FIFO"  # a blocked open never returns: any bound tells


@pytest.mark.parametrize("text", ["[1, 2]", "[" * 1000 + "]" * 1000, '{"T": ' + "[" * 100000 + "]" * 100000 + "}",
                                  "null", '"a string"', "\x00\xff"])
def test_config_that_is_not_an_object_is_refused(run, text):
    (run / "config.json").write_text(text, errors="surrogateescape")
    with pytest.raises(ValueError, match="not a valid run config"):
        open_run(run)


@pytest.mark.parametrize("key, value, named", [("weighting", "banana", "unknown weighting 'banana'"),
                                             ("schedule", "banana", "unknown schedule 'banana'"),
                                             ("weighting", 3, "weighting has the value '3' of the wrong type")])
def test_nonsense_config_values_are_oneone_sentence(run, capsys, key, value, named):
    """A config.json edited by hand to a weighting or schedule that does not exist: `vdm elbo --json`
    says so in one sentence ending in one full stop (the old one ended '...learned.).'), prints no JSON."""
    conf = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps(dict(conf, **{key: value})))
    capsys.readouterr()
    assert main(["elbo", str(run), "--json", "--n", "2", "--estimator", "uniform"]) == 2
    out, err = capsys.readouterr()
    line = err.strip()
    assert out == "" and len(line.splitlines()) == 1 and "Traceback" not in err, err
    assert named in line and line.endswith(").") and ".)" not in line, line


def test_run_path_that_is_a_file_or_empty(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        open_run(f)
    with pytest.raises(ValueError, match="empty path"):
        open_run("")


# -- hypothesis over every config field and every sidecar field --------------------------------

ODD = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=30), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
CONFIG_FIELDS = [f for f in TrainConfig.__dataclass_fields__]


def test_hypothesis_config_fields(run):
    good = read_json(run / "config.json")

    @fast(150)
    @given(field=st.sampled_from(CONFIG_FIELDS), value=ODD)
    def check(field, value):
        try:
            text = json.dumps(dict(good, **{field: value}))
        except ValueError:
            return
        (run / "config.json").write_text(text)
        try:
            r = open_run(run)
        except ValueError:
            return
        r.config.validate()  # accepted means within every bound
        assert r.schedule.T <= 10_000 and r.config.threads <= 256 and r.config.n_samples <= 10_000
    check()


SIDECAR_FIELDS = ["step", "epoch", "batch_in_epoch", "elapsed", "optim", "schedule", "model", "prediction",
                  "parameters", "config", "owed", "format", "version", "tensors_file", "sha256"]


def test_hypothesis_sidecar_fields_at_resume_and_sample(run, capsys):
    sidecar = rewrite_checkpoint(run)
    good = read_json(sidecar)
    trainer = Trainer(tiny_cfg(run.parent, "run", epochs=1), run, echo=lambda *a: None)
    from vdm.run import open_model

    @fast(120)
    @given(field=st.sampled_from(SIDECAR_FIELDS), value=ODD)
    def check(field, value):
        try:
            sidecar.write_text(json.dumps(dict(good, **{field: value})))
        except ValueError:
            return
        for attempt in (trainer._resume, lambda: open_model(run)):
            try:
                attempt()
            except ValueError as e:
                assert str(e) and "\n" not in str(e)
    check()


# -- item 6: one sentence ----------------------------------------------------------------------

@pytest.mark.parametrize("device", ["meta", "mps", "xla", "cuda:99", "nonsense"])
@pytest.mark.parametrize("command", ["train", "sample", "elbo"])
def test_devices_oneone_sentence(run, tmp_path, capsys, device, command):
    if device.startswith("cuda") and __import__("torch").cuda.device_count() >= 99:
        pytest.skip("a machine with 99 GPUs")
    argv = {"train": ["train", "--resume", str(run), "--quiet", "--epochs", "2"],
            "sample": ["sample", str(run), "--n", "2", "--out", str(tmp_path / "s.png")],
            "elbo": ["elbo", str(run), "--n", "2"]}[command]
    assert main(argv + ["--device", device]) == 2
    assert "device" in one_sentence(capsys.readouterr().err)


def _bomb_png(path: Path, w=20_000, h=20_000) -> None:
    """A PNG whose header claims w x h pixels (PIL refuses past 2 x MAX_IMAGE_PIXELS before decoding)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_decompression_bomb_forward_and_folder(tmp_path, capsys):
    bomb = tmp_path / "imgs" / "bomb.png"
    bomb.parent.mkdir()
    _bomb_png(bomb)
    assert main(["forward", "--image", str(bomb), "--out", str(tmp_path / "f.png"), "--animation", ""]) == 2
    assert "too large an image" in one_sentence(capsys.readouterr().err)
    cfg = tiny_cfg(tmp_path, "r", data="folder", data_dir=str(bomb.parent))
    assert main(train_argv(cfg) + ["--data", "folder", "--data-dir", str(bomb.parent)]) == 2
    assert "too large an image" in one_sentence(capsys.readouterr().err)


def test_full_disk_on_metrics_names_the_file(run, capsys, monkeypatch):
    import builtins

    class Full:
        """The log's file object, on a disk that fills after three writes."""

        def __init__(self, f):
            self.f, self.n = f, 0

        def write(self, text):
            self.n += 1
            if self.n > 3:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.f.write(text)

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def __iter__(self):
            return iter(self.f)

    monkeypatch.setattr(vdm.metrics, "open", lambda *a, **k: Full(builtins.open(*a, **k)), raising=False)
    rc = main(["train", "--resume", str(run), "--quiet", "--threads", "1", "--epochs", "2"])
    assert rc == 1
    assert one_sentence(capsys.readouterr().err) == \
        f"vdm train: the disk is full at {run / 'metrics.jsonl'}; nothing already saved was changed."


def _interrupt(argv, cwd, delay):
    """A real `vdm` process given SIGINT `delay` seconds after torch began to load: (status, stderr).

    Counted from libtorch's appearance in the process's memory map, not from the start: the
    interpreter's own start-up (site and .pth files, before any vdm code runs) is CPython's to
    handle, and it lasted 0.4 s on a loaded machine. From libtorch on, the moment is vdm's.
    """
    p = subprocess.Popen([VDM, *argv], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    maps, deadline = Path(f"/proc/{p.pid}/maps"), time.monotonic() + 60
    while p.poll() is None and time.monotonic() < deadline:
        try:
            if "libtorch" in maps.read_text():
                break
        except OSError:
            pass
        time.sleep(0.002)
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    return p.returncode, err.decode()


@pytest.mark.parametrize("argv", [["train", "--quiet", "--epochs", "1", "--T", "20", "--limit", "64"],
                                  ["forward", "--T", "20"], ["elbo", "RUN"]])
def test_ctrl_c_while_torch_loads_is_130(run, tmp_path, argv):
    """A real `vdm` process (torch's import takes seconds) gets SIGINT as torch begins to load and 1.2 s later."""
    argv = [str(run) if a == "RUN" else a for a in argv]
    if argv[0] == "train":
        argv += ["--runs-dir", str(tmp_path), "--name", "c"]
    for delay in (0.0, 1.2):
        rc, err = _interrupt(argv, tmp_path, delay)
        if rc == 0:
            continue  # finished before the signal (a fast machine): nothing to check
        assert rc == 130, (delay, rc, err[-800:])
        assert "Traceback" not in err, err[-800:]


def test_ctrl_c_at_any_moment_of_a_short_command_is_130_or_done(tmp_path):
    """SIGINT every 0.25 s of `vdm forward`'s life, from torch's first moment to the interpreter's exit.

    Two failures this sweep found: a KeyboardInterrupt raised inside torch's C++ start-up (pybind11
    aborts: status -6), and one during the interpreter's shutdown (killed by the signal: -2).
    """
    statuses = []
    for k in range(40):
        rc, err = _interrupt(["forward", "--T", "20"], tmp_path, 0.25 * k)
        statuses.append(rc)
        assert rc in (0, 130), (0.25 * k, rc, err[-800:])
        assert "Traceback" not in err and "terminate called" not in err, err[-800:]
        if rc == 0:
            break  # it finished before the signal: every later moment is the same
    assert 130 in statuses and statuses[-1] == 0, statuses


def test_tensors_without_their_sidecar_say_so(run, capsys):
    """A .safetensors whose sidecar is missing (a save cut short) is named as that, not as missing."""
    tensors = sorted((run / "checkpoints").glob("*.safetensors"))[-1]
    tensors.with_suffix(".json").unlink()
    assert main(["sample", str(tensors), "--n", "1", "--out", str(run / "s.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"vdm sample: checkpoint {tensors} has no sidecar {tensors.with_suffix('.json').name} beside it "
                   "(a save that did not finish); use the run directory, which picks the newest complete one."), err
    assert main(["sample", str(run), "--n", "1", "--out", str(run / "s.png")]) == 0 or \
        "no complete checkpoint" in capsys.readouterr().err


def test_the_trainers_last_elbo_is_named_and_scaled(tmp_path, capsys):
    """The closing -ELBO line is the last eval record's, says what bound it is, and gives the scale."""
    cfg = tiny_cfg(tmp_path, "named")
    assert main(train_argv(cfg) + ["--no-tui"]) == 0
    out = capsys.readouterr().out
    records = [json.loads(line) for line in (tmp_path / "named" / "metrics.jsonl").read_text().splitlines()]
    ev = [r for r in records if r.get("kind") == "eval"][-1]
    line = next(l for l in out.splitlines() if l.startswith("held-out -ELBO"))
    assert f"= {ev['bpd']['total']:.3f} ± {ev['bpd_se']:.3f} (standard error" in line, (line, ev)
    assert 0 < ev["bpd_se"] < ev["bpd"]["total"]
    assert f"on {cfg.eval_size} test images" in line and f"the {ev['decoder']} decoder" in line
    assert "a model uniform over the 256 levels scores 8;" in out and "DDPM 3.70" in out
