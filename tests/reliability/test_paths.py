"""Writes stay inside the run directory; MP4 and GIF both work."""

from __future__ import annotations

import os
import shutil

import pytest

from reliability_helpers import trained_run, tiny_cfg, train_argv
from testkit import one_sentence
from vdm import checkpoint as ckpt
from vdm.atomic import write_json
from vdm_cli.main import main




def _sentence(capsys) -> str:
    return one_sentence(capsys.readouterr().err)


def _tree(d):
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("entry", ["samples", "checkpoints", "metrics.jsonl"])
def test_a_link_leading_out_of_the_run_is_refused(run, tmp_path, capsys, entry):
    outside = tmp_path / "outside"
    shutil.move(str(run / entry), str(outside))
    os.symlink(outside, run / entry)
    before = _tree(outside) if outside.is_dir() else outside.read_bytes()
    rc = main(["train", "--resume", str(run), "--quiet", "--threads", "1", "--epochs", "3"])
    assert rc == 2 and "outside the run" in _sentence(capsys)
    assert (_tree(outside) if outside.is_dir() else outside.read_bytes()) == before, "written through the link"


def test_a_link_planted_at_a_temporary_name_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    for name in (f".config.json.tmp{os.getpid()}", f".config.tmp{os.getpid()}.json"):  # every predictable name
        os.symlink(victim, run / name)
    write_json(run / "config.json", {"a": 1})
    assert victim.read_text() == "precious"
    assert not (run / "config.json").is_symlink() and (run / "config.json").read_text().strip().startswith("{")


def test_a_tensors_file_that_is_a_link_is_refused(run, tmp_path):
    side = ckpt.resolve(run)
    tf = side.with_suffix(".safetensors")
    elsewhere = tmp_path / "elsewhere.safetensors"
    shutil.move(str(tf), str(elsewhere))
    os.symlink(elsewhere, tf)
    with pytest.raises(ValueError, match="symbolic link"):
        ckpt.load(side)


@pytest.mark.parametrize("name", ["..", "../../x", "ABSOLUTE", ".", "a/b"])
def test_names_that_leave_runs_dir_are_refused(tmp_path, capsys, name):
    name = str(tmp_path / "absolute-run") if name == "ABSOLUTE" else name
    runs = tmp_path / "deep" / "runs"
    runs.mkdir(parents=True)
    cfg = tiny_cfg(runs, "placeholder")
    argv = train_argv(cfg)
    argv[argv.index("--name") + 1] = name
    assert main(argv) == 2
    assert "--name must be one folder name" in _sentence(capsys)
    assert not (tmp_path / "x").exists() and not (tmp_path / "deep" / "config.json").exists()
    assert not (tmp_path / "absolute-run").exists()


def test_resume_of_an_empty_path_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trained_run(tmp_path, ".")  # the current directory is itself a run: '' must still not mean it
    before = _tree(tmp_path)
    assert main(["train", "--resume", "", "--quiet", "--epochs", "2"]) == 2
    assert "empty path" in _sentence(capsys)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("cmd", ["sample", "elbo"])
def test_an_empty_checkpoint_path_is_refused_inside_checkpoints(run, tmp_path, capsys, monkeypatch, cmd):
    # the old code read '' as the current directory: inside runs/<name>/checkpoints/ it sampled from it
    monkeypatch.chdir(run / "checkpoints")
    out = tmp_path / "s.png"
    extra = ["--out", str(out), "--n", "1"] if cmd == "sample" else ["--n", "2", "--estimator", "uniform"]
    assert main([cmd, "", "--device", "cpu", *extra]) == 2
    assert "empty path" in _sentence(capsys)
    assert not out.exists()


@pytest.mark.parametrize("ext", [".gif", ".mp4"])
def test_forward_animation(tmp_path, capsys, ext):
    out = tmp_path / f"o{ext}"
    assert main(["forward", "--T", "20", "--out", str(tmp_path / "f.png"), "--animation", str(out)]) == 0, capsys.readouterr().err
    data = out.read_bytes()
    assert data[:3] == b"GIF" if ext == ".gif" else data[4:8] == b"ftyp"
    assert [p.name for p in tmp_path.iterdir() if ".tmp" in p.name] == []


@pytest.mark.parametrize("ext", [".gif", ".mp4"])
def test_sample_animation(run, tmp_path, capsys, ext):
    out = tmp_path / f"o{ext}"
    rc = main(["sample", str(run), "--n", "4", "--frames", "5", "--device", "cpu", "--out", str(tmp_path / "s.png"),
               "--animation", str(out)])
    assert rc == 0, capsys.readouterr().err
    data = out.read_bytes()
    assert data[:3] == b"GIF" if ext == ".gif" else data[4:8] == b"ftyp"
