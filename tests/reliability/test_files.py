"""No code runs from a file; pickles and crafted checkpoints are refused with a sentence.

The pickles carry a payload that, if ever unpickled, creates a marker file: every test
asserts the marker never appears. Crafted safetensors files get a sidecar with their true
SHA-256, so they pass the hash check and reach the parser itself.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import re
import shutil
import struct
from pathlib import Path

import pytest
import torch

from vdm import checkpoint as ckpt
from vdm_cli.main import main
from vdm.denoiser import load_denoiser
from vdm.nets import build_net
from vdm.schedule import Schedule

ROOT = Path(__file__).resolve().parents[2]
IDENTITY = {"model": "assignment", "prediction": "x0", "schedule": Schedule.constant(None, 20).config()}


class Payload:
    """Unpickling this creates ``path``: the stand-in for running an attacker's code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    """A real checkpoint (assignment network, T 20): its directory."""
    d = tmp_path_factory.mktemp("good")
    torch.manual_seed(0)
    sd = {f"model/{k}": v for k, v in build_net("assignment", 20).state_dict().items()}
    ckpt.save(d, 7, sd, dict(IDENTITY, epoch=0, batch_in_epoch=0))
    return d


def _plant(d: Path, data: bytes, step: int = 1, **meta) -> Path:
    """``data`` as a checkpoint's tensors file, with a sidecar whose SHA-256 matches it."""
    d.mkdir(parents=True, exist_ok=True)
    (d / f"ckpt-{step:08d}.safetensors").write_bytes(data)
    side = dict(IDENTITY, format=ckpt.FORMAT, version=ckpt.VERSION, step=step, epoch=0, batch_in_epoch=0,
                tensors_file=f"ckpt-{step:08d}.safetensors", sha256=hashlib.sha256(data).hexdigest())
    side.update(meta)
    (d / f"ckpt-{step:08d}.json").write_text(json.dumps(side))
    return d / f"ckpt-{step:08d}.json"


def _refused_everywhere(path: Path, marker: Path, capsys, pattern: str) -> None:
    """The API, `vdm sample`, `vdm elbo` and `vdm train --resume` all refuse ``path`` with one sentence."""
    with pytest.raises(ValueError, match=pattern):
        load_denoiser(path)
    for argv in (["sample", path, "--n", "1", "--out", str(marker.parent / "x.png")],
                 ["elbo", path, "--n", "2", "--device", "cpu"]):
        rc = main([str(a) for a in argv])
        err = capsys.readouterr().err.strip()
        assert rc == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert re.search(pattern, err), err
    assert not marker.exists(), "code ran from a file"


def _pickles(tmp_path: Path, marker: Path) -> dict:
    evil = {"model/w": Payload(marker)}
    return {
        "pickle protocol 2": pickle.dumps(evil, protocol=2),
        "pickle protocol 5": pickle.dumps(evil, protocol=5),
        "torch.save": _torch_save(evil, tmp_path / "evil.pt"),
    }


def _torch_save(obj, path: Path) -> bytes:
    torch.save(obj, path)
    return path.read_bytes()


def test_pickles_are_never_unpickled(tmp_path, capsys):
    marker = tmp_path / "PWNED"
    for name, data in _pickles(tmp_path, marker).items():
        assert not marker.exists()
        d = tmp_path / name.replace(" ", "_")
        side = _plant(d / "checkpoints", data)
        _refused_everywhere(side, marker, capsys, "is a pickle or zip archive")
        # as a run directory to resume: refused before anything is trained
        (d / "config.json").write_text(json.dumps({"T": 20, "limit": 64, "eval_size": 0, "threads": 1}))
        rc = main(["train", "--resume", str(d), "--quiet"])
        assert rc == 2 and "pickle" in capsys.readouterr().err
        # and the raw file handed over by name, as someone would a .pt or .pkl
        raw = tmp_path / f"{d.name}.pkl"
        raw.write_bytes(data)
        _refused_everywhere(raw, marker, capsys, "is not a vdm checkpoint sidecar")
    assert not marker.exists()


def _safetensors(header: dict | bytes, body: bytes = b"", length: int | None = None) -> bytes:
    h = header if isinstance(header, bytes) else json.dumps(header).encode()
    return struct.pack("<Q", len(h) if length is None else length) + h + body


CRAFTED = {
    "header length beyond the file": _safetensors({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}},
                                                  b"\0" * 8, length=1 << 40),
    "header length zero": _safetensors(b"", length=0),
    "header pointing outside the file": _safetensors({"w": {"dtype": "F32", "shape": [1 << 20],
                                                            "data_offsets": [0, 4 << 20]}}, b"\0" * 16),
    "offsets that disagree with the shape": _safetensors({"w": {"dtype": "F32", "shape": [4],
                                                                "data_offsets": [0, 8]}}, b"\0" * 8),
    "header that is not JSON": _safetensors(b"{not json at all", b"\0" * 8),
    "unknown dtype": _safetensors({"w": {"dtype": "X99", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 8),
    "eight bytes": b"\xff" * 8,
    "empty": b"",
}


@pytest.mark.parametrize("what", list(CRAFTED))
def test_crafted_safetensors_are_refused(tmp_path, capsys, what):
    side = _plant(tmp_path / "c", CRAFTED[what])
    _refused_everywhere(side, tmp_path / "PWNED", capsys, "not a valid safetensors file|does not describe a model|does not fit this model")


SIDECARS = {
    "a wrong SHA-256": ({"sha256": "0" * 64}, "does not match the SHA-256"),
    "a SHA-256 that is not hex": ({"sha256": "x"}, "no valid SHA-256"),
    "another format": ({"format": "pytorch-lightning"}, "not a vdm checkpoint sidecar"),
    "no format": ({"format": None}, "not a vdm checkpoint sidecar"),
    "a future version": ({"version": 99}, "checkpoint version 99"),
    "a path out of the directory": ({"tensors_file": "../../../etc/passwd"}, "names no tensors file"),
    "an absolute path": ({"tensors_file": "/etc/passwd"}, "names no tensors file"),
    "a negative step": ({"step": -3}, "no valid step"),
    "an unknown model": ({"model": "resnet"}, "unknown model 'resnet'"),
    "another model": ({"model": "unet"}, "does not describe a model|does not fit this model"),
    "a schedule of no kind": ({"schedule": {"kind": "exotic", "T": 20}}, "does not describe a model|unknown schedule"),
    "a schedule of T 0": ({"schedule": {"kind": "constant", "T": 0, "params": [0.5]}}, "schedule T of 0; vdm allows 1..10,000"),
    "a schedule that is a string": ({"schedule": "constant"}, "does not name its model and schedule"),
    "no model": ({"model": None}, "does not name its model and schedule"),
    "an unknown prediction": ({"prediction": "v"}, "prediction must be one of"),
}


@pytest.mark.parametrize("what", list(SIDECARS))
def test_crafted_sidecars_are_refused(good, tmp_path, capsys, what):
    change, pattern = SIDECARS[what]
    d = tmp_path / "c"
    shutil.copytree(good, d)
    side = d / "ckpt-00000007.json"
    meta = json.loads(side.read_text())
    meta.update(change)
    side.write_text(json.dumps(meta))
    _refused_everywhere(side, tmp_path / "PWNED", capsys, pattern)


def test_a_sidecar_that_is_not_json_or_is_huge(tmp_path, capsys):
    d = tmp_path / "c"
    d.mkdir()
    (d / "ckpt-00000001.json").write_bytes(b"\x80\x04\x95garbage\xff")
    _refused_everywhere(d / "ckpt-00000001.json", tmp_path / "PWNED", capsys, "not a vdm checkpoint sidecar")
    (d / "ckpt-00000002.json").write_bytes(b"[" * 200_000)  # deeper than any JSON parser recurses
    _refused_everywhere(d / "ckpt-00000002.json", tmp_path / "PWNED", capsys, "not a vdm checkpoint sidecar")
    (d / "ckpt-00000003.json").write_bytes(b" " * (ckpt.MAX_SIDECAR_BYTES + 1))
    _refused_everywhere(d / "ckpt-00000003.json", tmp_path / "PWNED", capsys, "larger than")
    with pytest.raises(ValueError, match="holds no complete checkpoint"):
        ckpt.load(d)


def test_the_good_checkpoint_loads(good):
    """The control: the fixture the crafted files are made from is accepted."""
    den, meta = load_denoiser(good)
    assert meta["step"] == 7 and den.schedule.T == 20


# -- no unpickling anywhere in the code ------------------------------------------------------

LOADERS = re.compile(r"(?<![\w.])torch\.load\(|pickle\.loads?\(|cPickle|dill\.loads?\(|joblib\.load\(|marshal\.loads?\("
                     r"|allow_pickle\s*=\s*True|yaml\.load\(|shelve\.open\(")


def _sources():
    for p in sorted(ROOT.rglob("*.py")):
        rel = p.relative_to(ROOT)
        if rel.parts[0] in ("tests", ".git", "build", "dist") or any(part.startswith(".") for part in rel.parts):
            continue
        yield rel, p.read_text(errors="replace")


def test_no_unpickling_in_the_code():
    found = []
    files = 0
    for rel, text in _sources():
        files += 1
        for m in LOADERS.finditer(text):
            call = text[m.start(): m.start() + 300]
            if m.group().startswith("torch.load(") and "weights_only=True" in call.split(")\n")[0]:
                continue  # tolerated by the issue: torch's restricted unpickler
            line = text.count("\n", 0, m.start()) + 1
            found.append(f"{rel}:{line}: {text.splitlines()[line - 1].strip()}")
    assert files > 10, "the scan found no sources"
    assert not found, "unpickling outside the tests:\n" + "\n".join(found)


def test_the_scan_would_see_one(tmp_path):
    """The control of the scan above: its pattern matches the calls it is meant to forbid."""
    for src in ("torch.load(f)", "pickle.load(f)", "pickle.loads(b)", "np.load(f, allow_pickle=True)"):
        assert LOADERS.search(src), src
    assert not LOADERS.search("safetensors.torch.load(data)")
