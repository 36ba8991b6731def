"""benchmarks/gpu_check.sh --dry-run: every step of the GPU check runs on the CPU at tiny sizes, so that the
command is known to work before a GPU is lent.

The dry run is one subprocess (with $OUT set, as on the GPU machine); its table and gpu_check.json must
name every step, each "ok", except the panel, which needs NVML and nvidia-smi and is "skipped: needs CUDA"
after comparing a fake of both; torchrun runs for real on gloo. The driver's own rules (a failing
step is recorded and the next runs, a hung one is stopped at its limit, the budget skips steps) are
checked on cheap children.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import gpu_check  # noqa: E402

STEPS = [s.name for s in gpu_check.STEPS]
# only what cannot exist on a CPU may be skipped there: NVML and nvidia-smi
MAY_SKIP = {"panel": gpu_check.NEEDS_CUDA}
# a guard against a hang, not a speed goal (how long the dry run takes depends on what else the machine runs;
# the device check's own time goals live in benchmarks/gpu_check.py)
HANG_S = 900


def _env(out: Path) -> dict:
    env = dict(os.environ, OUT=str(out), PYTHON=sys.executable)
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "CUDA_VISIBLE_DEVICES"):
        env.pop(k, None)
    return env


def _table_rows(stdout: str) -> dict:
    """step name -> (status, goal, met, result) from the table at the end of the output."""
    lines = stdout.splitlines()
    head = max(i for i, ln in enumerate(lines) if ln.startswith("step ") and "status" in ln and "goal" in ln and "met" in ln)
    rows = {}
    for ln in lines[head + 2:]:
        name = ln.split(" ", 1)[0]
        if name not in STEPS:
            break
        cols = [c for c in ln.split("  ") if c.strip()]
        rows[name] = [c.strip() for c in cols]
    return rows


@pytest.mark.slow
def test_the_dry_run_runs_every_step_on_the_cpu(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run"], cwd=tmp_path, env=_env(out),
                       capture_output=True, text=True, timeout=HANG_S)
    assert p.returncode == 0, p.stdout[-6000:] + p.stderr[-3000:]

    # the table: every step in order, each ok (the panel: skipped, as documented), the goal columns
    rows = _table_rows(p.stdout)
    assert list(rows) == STEPS, p.stdout[-4000:]
    for name, cols in rows.items():
        assert cols[1] == MAY_SKIP.get(name, "ok"), (name, cols)
    assert "DRY RUN" in p.stdout and "goals not judged" in p.stdout
    for name in ("train-200", "reference", "sample", "panel"):
        assert rows[name][3] == gpu_check.BY_NAME[name].goal, rows[name]

    # the log and the JSON under $OUT, the same steps and statuses
    log = (out / "gpu_check.log").read_text()
    assert "gpu_check.sh: setup ok" in log and rows["torchrun"][-1] in log
    doc = json.loads((out / "gpu_check.json").read_text())
    assert doc["dry_run"] is True and doc["setup"]["status"] == "ok"
    steps = {r["name"]: r for r in doc["steps"]}
    assert list(steps) == STEPS
    assert {n: r["status"] for n, r in steps.items()} == {n: MAY_SKIP.get(n, "ok") for n in STEPS}
    assert (out / "profile.txt").read_text().strip()

    # each step measured something, through the benchmark functions it reuses
    for name in ("train-default", "train-compile", "train-graphs"):
        assert steps[name]["number"] > 0 and steps[name]["unit"] == "img/s", steps[name]
    assert steps["train-compile"]["detail"]["flags"] == {"compile": True}
    fastest = max(("train-default", "train-compile", "train-graphs"), key=lambda n: steps[n]["number"])
    t200 = steps["train-200"]["detail"]
    assert t200["chosen"] == fastest and t200["reason"] == "done" and t200["epochs"] == t200["epochs_asked"]
    assert steps["reference"]["detail"]["ratio"] == pytest.approx(steps[fastest]["number"] / steps["reference"]["detail"]["reference_images_per_s"])
    assert steps["profile"]["detail"]["flops"] > 0 and steps["profile"]["detail"]["kernels"]
    assert steps["sample"]["number"] > 0 and "overhead" in steps["sample"]["detail"]
    assert steps["sample-compile"]["number"] > 0
    # the panel compared readings (of a fake NVML, with a fake nvidia-smi) while a run trained
    panel = steps["panel"]
    assert panel["detail"]["fake"] is True and panel["detail"]["reads"] and panel["detail"]["differences"] == []
    assert "compared: equal" in panel["reason"]
    # torchrun: a run, its resume, and the backend's smoke step (gloo here)
    tr = steps["torchrun"]["detail"]
    assert tr["last_checkpoint"] == 2 * tr["first_checkpoint"] > 0 and tr["smoke"]["backend"] == "gloo"
    # the goals are recorded but not judged on a CPU
    assert all(r["goal"] == gpu_check.BY_NAME[n].goal for n, r in steps.items())
    assert "(yes)" in rows["sample"][4] or "(no)" in rows["sample"][4]


def test_a_failing_or_hung_step_is_recorded_and_the_budget_skips(tmp_path, capsys, monkeypatch):
    work, out = tmp_path / "work", tmp_path / "out"
    work.mkdir()
    out.mkdir()
    ctx = out / "gpu_check.json"
    ctx.write_text(json.dumps({"steps": []}))
    args = type("A", (), {"dry_run": True})()
    # a child that exits with an error: failed, with its last error line as the reason
    bad = gpu_check.Step("no-such-step", "a step the child does not know", 30, 30)
    r = gpu_check.run_step(bad, args, work, out, ctx, 30)
    assert r["status"] == "failed" and "invalid choice" in r["reason"], r
    # a step past its time limit: stopped by it (the reason says so; how soon depends on the machine's load)
    r = gpu_check.run_step(gpu_check.BY_NAME["torchrun"], args, work, out, ctx, 1.0)
    assert r["status"] == "failed" and r["reason"].startswith("time limit"), r
    # no budget left: every step is skipped as such, none runs, and the table still comes
    monkeypatch.setattr(gpu_check, "run_step", lambda *a: pytest.fail("a step ran past the budget"))
    assert gpu_check.main(["--dry-run", "--budget-s", "0", "--out", str(out)]) == 0
    doc = json.loads(ctx.read_text())
    assert [r["status"] for r in doc["steps"]] == [gpu_check.BUDGET] * len(STEPS)
    assert all(row[1] == gpu_check.BUDGET for row in _table_rows(capsys.readouterr().out).values())


def test_the_panel_comparison_finds_a_difference():
    reading = dict(index=0, name="NVIDIA H200", util=50.0, mem_used=1000.0, mem_total=143771.0, temp=40.0, power=300.0)
    assert gpu_check.compare(reading, dict(reading), dict(reading, util=55.0)) == []
    # NVML's memory without the reserved part against nvidia-smi's: a difference, named
    off = gpu_check.compare(reading, dict(reading, mem_used=1500.0), reading)
    assert off == ["mem_used 1500.0 vs 1000.0..1000.0"]
    assert gpu_check.parse_smi("0, NVIDIA H200, 97, 5120, 143771, 45, [N/A]\n")[0]["power"] is None
