"""The vdm command line: help, the tuned alpha, the parameter count, bad input, and a tiny run end to end."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from testkit import installed_vdm, run_main
from vdm_cli.args import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"
COMMANDS = {"train", "sample", "forward", "tune-alpha", "elbo", "model"}


run = run_main


def _subcommands():
    import argparse

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(action.choices)


def test_every_subcommand_has_help(capsys):
    names = _subcommands()
    assert COMMANDS <= set(names)
    rc, out, _ = run(["--help"], capsys)
    assert rc == 0 and all(n in out for n in COMMANDS)
    for name in names:
        rc, out, err = run([name, "--help"], capsys)
        assert rc == 0, name
        assert out.startswith("usage: vdm " + name), name


def test_tune_alpha(capsys):
    rc, out, _ = run(["tune-alpha", "--T", "500"], capsys)
    assert rc == 0
    want = 0.01 ** (2 / 500)
    m = re.search(r"alpha = ([0-9.]+)", out)
    assert m and m.group(1) == f"{want:.6f}"
    # the SNR table: t = 500 keeps sqrt(alpha_bar) = 0.01
    last = [ln.split() for ln in out.splitlines() if ln.split() and ln.split()[0] == "500"]
    assert last and float(last[0][2]) == pytest.approx(0.01, abs=1e-5)


def test_tune_alpha_other_T(capsys):
    rc, out, _ = run(["tune-alpha", "--T", "37", "--final-signal", "0.05"], capsys)
    assert rc == 0 and f"alpha = {0.05 ** (2 / 37):.6f}" in out


def test_model_prints_the_parameter_count(capsys):
    rc, out, _ = run(["model"], capsys)
    assert rc == 0
    assert out.strip().splitlines()[-1].endswith("1,547,337")
    rc, out, _ = run(["model", "--model", "unet"], capsys)
    assert rc == 0 and "Total params" in out


def _one_line_error(rc, err):
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc != 0
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "photo.png"
    p.write_text("this is not an image")
    return p


def test_bad_input_is_one_line(tmp_path, text_file, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = [
        (["forward", "--alpha", "1.5", "--T", "20"], "1.5"),
        (["train", "--alpha", "1.5", "--T", "20", "--runs-dir", tmp_path / "runs"], "1.5"),
        (["tune-alpha", "--T", "0"], "0"),
        (["forward", "--T", "0"], "0"),
        (["sample", tmp_path / "no-such-run"], "no-such-run"),
        (["elbo", tmp_path / "no-such-run", "--n", "8"], "no-such-run"),
        (["forward", "--image", text_file, "--T", "20"], "photo.png"),
        (["forward", "--image", tmp_path / "missing.png", "--T", "20"], "missing.png"),
        (["forward", "--T", "20", "--out", "strip.jpg"], "strip.jpg"),
    ]
    for argv, named in cases:
        rc, _, err = run(argv, capsys)
        line = _one_line_error(rc, err)
        assert named in line, (argv, line)


def test_help_and_the_terminal_ui_start_without_torch():
    """torch takes seconds to import: `vdm --help` and `vdm tui` must not wait for it."""
    code = ("import sys\nfrom vdm_cli.main import main\n"
            "for argv in (['--help'], ['tui', '--help'], ['tune-alpha', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
            "print('torch' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip().splitlines()[-1] == "False", p.stderr


def test_the_program_leaves_at_once_after_the_terminal_ui(tmp_path):
    """After `q`, the `vdm` program skips Python's teardown (seconds once torch is loaded);
    a caller of main() in the same process gets the status back instead."""
    code = ("import atexit, sys, types\nfrom vdm_cli.faces import after_ui\n"
            f"atexit.register(lambda: open({str(tmp_path / 'torn-down')!r}, 'w').close())\n"
            "assert after_ui(types.SimpleNamespace(), 5) == 5\n"
            "print('flushed', end='')\n"
            "after_ui(types.SimpleNamespace(leave_at_once=True), 3)\n"
            "sys.exit(9)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 3 and p.stdout == "flushed" and not (tmp_path / "torn-down").exists(), p.stderr


def test_output_into_a_closed_pipe_is_quiet(tmp_path):
    """`vdm tune-alpha | head -1`: exit 0, no "Broken pipe" message."""
    exe = installed_vdm()
    cmd = " ".join([exe] if exe else [sys.executable, "-m", "vdm_cli"])
    p = subprocess.run(f"{cmd} tune-alpha --T 100 --rows 5000 | head -1; exit ${{PIPESTATUS[0]}}", shell=True,
                       executable="/bin/bash", capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.startswith("alpha = ") and p.stderr == ""


def test_bad_input_in_a_fresh_process(tmp_path):
    """The installed `vdm` script: nothing else (a warning at import, a traceback) reaches stderr."""
    exe = installed_vdm()
    cmd = [exe] if exe else [sys.executable, "-m", "vdm_cli"]
    p = subprocess.run(cmd + ["forward", "--alpha", "1.5", "--T", "20"], capture_output=True, text=True,
                       timeout=120, cwd=tmp_path)
    assert "1.5" in _one_line_error(p.returncode, p.stderr)
    assert not (tmp_path / "forward.png").exists()


def test_checkpoint_of_another_model_is_refused(tiny_run, tmp_path, capsys):
    _, run_dir, _ = tiny_run
    ck = tmp_path / "other"
    shutil.copytree(run_dir / "checkpoints", ck)
    sidecar = sorted(ck.glob("ckpt-*.json"))[-1]
    meta = json.loads(sidecar.read_text())
    meta["model"] = "unet"  # the tensors are still the assignment network's
    sidecar.write_text(json.dumps(meta))
    rc, _, err = run(["sample", sidecar, "--n", "2", "--out", tmp_path / "s.png"], capsys)
    _one_line_error(rc, err)
    assert not (tmp_path / "s.png").exists()


# -- a tiny run, end to end ---------------------------------------------------------------------------

def _grid_size(n, h=32, pad=1, scale=1, ncol=None):
    ncol = ncol or math.ceil(math.sqrt(n))
    nrow = math.ceil(n / ncol)
    return (ncol * (h + pad) + pad) * scale, (nrow * (h + pad) + pad) * scale  # (width, height)


def _readme_schema() -> dict:
    """kind -> required fields, read from README.md's metrics.jsonl table."""
    text = README.read_text()
    section = text[text.index("### metrics.jsonl"):]
    schema = {}
    for line in section.splitlines()[1:]:
        if line.startswith("#"):
            break
        m = re.match(r"\|\s*`(\w+)`\s*\|(.*)\|\s*$", line)
        if not m:
            continue
        cols = re.sub(r"\([^)]*\)", "", m.group(2))  # drop value lists such as (`done`, ...)
        fields, nested = [], {}
        for tok in re.findall(r"`([^`]+)`", cols):
            if tok.startswith("{"):
                nested[fields[-1]] = [k.strip() for k in tok.strip("{}").split(",")]
            else:
                fields.append(tok)
        schema[m.group(1)] = (fields, nested)
    common = re.search(r"Every record has (.*?)\.\s", section).group(1)
    schema["*"] = (re.findall(r"`(\w+)`", common), {})
    return schema


def test_tiny_run_writes_the_run_directory(tiny_run):
    work, run_dir, stdout = tiny_run
    assert "Total params: 1,547,337" in stdout
    assert (run_dir / "config.json").is_file()
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg  # parses
    sidecars = sorted((run_dir / "checkpoints").glob("ckpt-*.json"))
    assert sidecars and sidecars[-1].with_suffix(".safetensors").is_file()
    latest = run_dir / "samples" / "latest.png"
    with Image.open(latest) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        assert im.size == _grid_size(4, scale=2)


def test_tiny_run_metrics_follow_the_readme_schema(tiny_run):
    from vdm.metrics import SCHEMA_VERSION, parse_line

    _, run_dir, _ = tiny_run
    schema = _readme_schema()
    assert {"start", "train", "eval", "sample", "end"} <= set(schema)
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    recs = [parse_line(ln) for ln in lines]
    assert all(r is not None for r in recs)
    assert [json.loads(ln) for ln in lines] == recs
    kinds = [r["kind"] for r in recs]
    assert kinds[0] == "start" and kinds[-1] == "end"
    assert {"train", "eval", "sample"} <= set(kinds)
    for r in recs:
        for f in schema["*"][0]:
            assert f in r, (r["kind"], f)
        assert r["v"] == SCHEMA_VERSION
        fields, nested = schema[r["kind"]]
        for f in fields:
            assert f in r, (r["kind"], f)
        for f, keys in nested.items():
            assert set(keys) <= set(r[f]), (r["kind"], f)
    ev = next(r for r in recs if r["kind"] == "eval")
    b = ev["bpd"]
    assert all(math.isfinite(b[k]) for k in b)
    assert b["total"] == pytest.approx(b["reconstruction"] + b["prior"] + b["matching"], rel=1e-6)  # float32 terms
    end = recs[-1]
    assert end["reason"] == "done" and end["step"] == 4  # 256 images / 64 per batch, one epoch
    assert (run_dir / next(r for r in recs if r["kind"] == "sample")["path"]).is_file()


def test_tiny_run_sample_elbo_forward(tiny_run, capsys, monkeypatch, tmp_path):
    from vdm.denoiser import load_denoiser
    from vdm.images import grid
    from vdm.sample import sample

    _, run_dir, _ = tiny_run
    monkeypatch.chdir(tmp_path)
    rc, out, err = run(["sample", run_dir, "--n", "4", "--seed", "3", "--out", "s.png", "--animation", "s.gif",
                        "--frames", "5", "--device", "cpu"], capsys)
    assert rc == 0, err
    with Image.open("s.png") as im:
        assert im.size == _grid_size(4, scale=2)
        png = np.asarray(im.convert("RGB"))
    # the PNG is the API's samples for that seed
    den, _ = load_denoiser(run_dir)
    want = grid(sample(den, den.schedule, 4, seed=3), scale=2)
    assert np.array_equal(png, want)
    with Image.open("s.gif") as im:
        assert im.n_frames >= 5

    rc, out, err = run(["elbo", run_dir, "--n", "8", "--device", "cpu"], capsys)
    assert rc == 0, err
    rows = {}
    for ln in out.splitlines():
        m = re.match(r"(\S.*?)\s{2,}(-?[0-9.]+)\s+(-?[0-9.]+)", ln)
        if m:
            rows[m.group(1).strip()] = (float(m.group(2)), float(m.group(3)))
    for dec in ("fixed", "calibrated"):  # --decoder both, the default
        total = rows[f"total (-ELBO), {dec} decoder"]
        parts = [rows[f"reconstruction, {dec} decoder"], rows["prior matching"], rows["consistency / denoising matching"]]
        for form in (0, 1):
            assert sum(p[form] for p in parts) == pytest.approx(total[form], abs=3e-4)
            assert 0 < total[form] < 20  # bits per dimension of 8-bit images, from an undertrained network
        assert rows[f"MC standard error, {dec}"][1] > 0
    for words in ("upper bound on -log p(x_0)", "estimator: full", "decoder p(x_0|x_1): fixed",
                  "decoder p(x_0|x_1): calibrated", "8 bits/dim", "CIFAR-10", "DDPM (Ho et al. 2020) 3.70",
                  "VDM (Kingma et al. 2021) 2.64", "not comparable"):
        assert words in out, words

    # --json: the same numbers as one object (the same seed draws the same t, x_t and x_1)
    rc, js, err = run(["elbo", run_dir, "--n", "8", "--device", "cpu", "--json"], capsys)
    assert rc == 0, err
    rep = json.loads(js)  # stdout is the object and nothing else
    assert rep["unit"] == "bits/dim" and rep["images"] == 8 and rep["dims"] == 3 * 32 * 32
    assert rep["estimator"]["name"] == "full" and rep["estimator"]["draws"] == 2
    assert [d["name"] for d in rep["decoders"]] == ["fixed", "calibrated"]
    assert rep["references"]["uniform_bpd"] == 8 and rep["references"]["cifar10_bpd"]["DDPM (Ho et al. 2020)"] == 3.70
    assert rep["references"]["same_data_set"] is False
    for form, col in (("consistency", 0), ("denoising", 1)):
        for dec in ("fixed", "calibrated"):
            r = rep["forms"][form][dec]
            assert r["reconstruction"] + r["prior"] + r["matching"] == pytest.approx(r["total"], rel=1e-6)  # float32 terms
            # bits/dim = nats / (D ln 2), from the nats it also reports
            assert r["total"] == pytest.approx(r["nats"]["total"] / (rep["dims"] * math.log(2)), rel=1e-12)
            assert r["total"] == pytest.approx(rows[f"total (-ELBO), {dec} decoder"][col], abs=1e-4)  # the table's
            assert r["mc_standard_error"] > 0 and r["spread_over_sqrt_n"] > 0
    assert "continuous" not in rep  # a discrete schedule has no continuous-time block
    # benchmarks/bench_likelihood.py reads this object (not the table's text): its row is the object's numbers
    import importlib.util
    import types

    spec = importlib.util.spec_from_file_location("bench_likelihood", Path(__file__).parents[2] / "benchmarks" / "bench_likelihood.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    seen = {}

    def fake_run(argv, **kw):
        seen["argv"] = argv
        return types.SimpleNamespace(stdout=js)

    monkeypatch.setattr(bench.subprocess, "run", fake_run)
    row = bench.evaluate(tmp_path, 8, 2)
    assert "--json" in seen["argv"] and json.loads((tmp_path / "elbo.json").read_text()) == rep
    for dec in ("fixed", "calibrated"):
        r = rep["forms"]["denoising"][dec]
        assert row[dec] == {"reconstruction": r["reconstruction"], "total": r["total"], "se": r["mc_standard_error"]}
    assert row["shared"] == {"prior": rep["forms"]["denoising"]["fixed"]["prior"],
                             "matching": rep["forms"]["denoising"]["fixed"]["matching"]}
    assert row["describe"]["fixed"].startswith("fixed, std")
    rc, js, err = run(["elbo", run_dir, "--n", "1", "--draws", "1", "--estimator", "uniform", "--decoder", "fixed",
                       "--device", "cpu", "--json"], capsys)
    assert rc == 0, err
    one = json.loads(js)["forms"]["denoising"]["fixed"]  # one draw of one image: no error bar, null rather than NaN
    assert one["mc_standard_error"] is None and one["spread_over_sqrt_n"] is None and math.isfinite(one["total"])

    rc, out, err = run(["forward", "--T", "20"], capsys)
    assert rc == 0, err
    with Image.open("forward.png") as im:
        n_frames = len(np.unique(np.linspace(0, 20, 10).round().astype(int)))
        assert im.size == _grid_size(n_frames, scale=3, ncol=n_frames)
    with Image.open("forward.gif") as im:
        assert im.n_frames >= 21


def test_elbo_asking_for_more_items_than_there_are_says_what_was_asked(tiny_run, capsys):
    """--n beyond the test split is refused naming the number typed, not the number the split could give."""
    _, run_dir, _ = tiny_run
    code, _, err = run(["elbo", str(run_dir), "--n", "10001"], capsys)
    assert code == 2 and "--n 10001" in err and "--n 2000" not in err, err
