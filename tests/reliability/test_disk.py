"""A full disk or a read-only run directory gives a clear error; checkpoints stay intact.

The tests run as root, where chmod stops nothing, so the faults are injected where the
operating system would report them: a write that fails half-way with ENOSPC, and every
open for writing inside the run directory failing with EROFS. Where the machine allows
mounting, the same two faults are also produced for real on a small tmpfs.
"""

from __future__ import annotations

import builtins
import errno
import os
import subprocess
from pathlib import Path

import pytest

import vdm.atomic
from reliability_helpers import newest, tiny_cfg, train_argv
from vdm import checkpoint as ckpt
from vdm_cli.main import main

SETUP = dict(batch_size=64, epochs=2, ckpt_every=2, eval_size=0)


def _snapshot(run: Path) -> dict:
    return {p.name: p.read_bytes() for p in (run / "checkpoints").iterdir()}


def _one_sentence(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


class _HalfWriter:
    """A file whose write stops half-way with ENOSPC, as on a disk that fills up."""

    def __init__(self, f):
        self.f = f

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def test_disk_full_while_checkpointing(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    cfg = tiny_cfg(tmp_path, "run", **SETUP)

    def full_open(path, mode="r", *a, **kw):
        f = builtins.open(path, mode, *a, **kw)
        return _HalfWriter(f) if "ckpt-00000004" in str(path) and "w" in mode else f

    monkeypatch.setattr(vdm.atomic, "open", full_open, raising=False)
    rc = main(train_argv(cfg))
    err = _one_sentence(capsys.readouterr().err)
    assert rc == 1
    assert err == (f"vdm train: the disk is full at {run / 'checkpoints' / 'ckpt-00000004.safetensors'}; "
                   "nothing already saved was changed.")
    # the checkpoint before is whole, nothing half-written was left to fill the disk further
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["ckpt-00000002.json", "ckpt-00000002.safetensors"]
    assert newest(run).step == 2
    # space again: the run resumes from there and finishes
    monkeypatch.undo()
    assert main(train_argv(cfg, resume=True)) == 0
    assert newest(run).step == 8


def test_read_only_run_directory(tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    cfg = tiny_cfg(tmp_path, "run", **dict(SETUP, epochs=1))
    assert main(train_argv(cfg)) == 0
    before = _snapshot(run)
    capsys.readouterr()
    inside = str(run.resolve())
    real_open, real_os_open = builtins.open, os.open

    def ro(path):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    def ro_open(path, mode="r", *a, **kw):
        if isinstance(path, (str, os.PathLike)) and str(Path(path).resolve()).startswith(inside) and set(mode) & set("wax+"):
            ro(path)
        return real_open(path, mode, *a, **kw)

    def ro_os_open(path, flags, *a, **kw):
        if str(Path(path).resolve()).startswith(inside) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            ro(path)
        return real_os_open(path, flags, *a, **kw)

    monkeypatch.setattr(builtins, "open", ro_open)
    monkeypatch.setattr(os, "open", ro_os_open)
    rc = main(train_argv(cfg, resume=True) + ["--epochs", "2"])
    err = _one_sentence(capsys.readouterr().err)
    assert rc == 1
    assert err == f"vdm train: the file system is read-only at {run / 'config.json'}; nothing already saved was changed."
    # reading a read-only run still works: sampling writes elsewhere
    out = tmp_path / "s.png"
    assert main(["sample", str(run), "--n", "2", "--out", str(out), "--device", "cpu"]) == 0 and out.is_file()
    monkeypatch.undo()
    assert _snapshot(run) == before
    assert ckpt.load(run).step == 4


@pytest.fixture
def tiny_fs(tmp_path):
    """A 24 MB tmpfs: room for one checkpoint of the assignment's network (18.6 MB), not two."""
    mnt = tmp_path / "fs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_real_full_and_read_only_tmpfs(tiny_fs, capsys):
    run = tiny_fs / "run"
    cfg = tiny_cfg(tiny_fs, "run", **SETUP)
    rc = main(train_argv(cfg))
    err = _one_sentence(capsys.readouterr().err)
    assert rc == 1 and err.startswith("vdm train: the disk is full at ") and "ckpt-00000004" in err
    assert newest(run).step == 2
    assert not list(run.rglob(".*.tmp*")), "a temporary file was left on the full disk"
    before = _snapshot(run)
    assert subprocess.run(["mount", "-o", "remount,ro", str(tiny_fs)]).returncode == 0
    rc = main(train_argv(cfg, resume=True))
    err = _one_sentence(capsys.readouterr().err)
    assert rc == 1 and err.startswith("vdm train: the file system is read-only at ")
    assert _snapshot(run) == before and newest(run).step == 2
