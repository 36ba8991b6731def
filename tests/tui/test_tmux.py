"""The real app in a real terminal (tmux), attached to a run that a real `vdm train` is writing."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)")


def _tmux(sock, *args):
    return subprocess.run(["tmux", "-L", sock, *args], capture_output=True, text=True, timeout=20)


def _last_train(metrics: Path):
    recs = [json.loads(l) for l in metrics.read_text().splitlines() if l.strip()]
    return [r for r in recs if r["kind"] == "train"][-1], recs


@pytest.mark.timeout(150)
def test_tui_in_tmux_follows_a_live_training_run(tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    train = subprocess.Popen(
        [sys.executable, "-m", "vdm_cli", "train", "--runs-dir", str(tmp_path), "--name", "live", "--T", "20",
         "--limit", "512", "--epochs", "2", "--batch-size", "64", "--eval-size", "32", "--n-samples", "4",
         "--log-every", "2", "--threads", "1", "--no-tui"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    run = tmp_path / "live"
    sock = f"vdmtest{os.getpid()}"
    # the UI starts as soon as the run's folder exists, before its first record: a run being started is
    # waited for (a folder that does not exist at all is a mistake, said at once)
    deadline = time.monotonic() + 60
    while not run.is_dir() and train.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert run.is_dir(), train.stderr.read().decode()[-500:] if train.poll() is not None else "no run folder"
    cmd = f"{sys.executable} -m vdm_cli tui {run}"
    _tmux(sock, "new-session", "-d", "-s", "t", "-x", "80", "-y", "24", f"{cmd}; sleep 60")
    try:
        screen = ""
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            time.sleep(1.0)
            screen = _tmux(sock, "capture-pane", "-p", "-t", "t").stdout
            gpu_panel = "CPU only" in screen or "util" in screen  # filled by a worker, maybe last
            if train.poll() is not None and "finished (done)" in screen and "samples (" in screen and gpu_panel:
                break
        assert train.wait(30) == 0, train.stderr.read().decode()[-500:]
        last, recs = _last_train(run / "metrics.jsonl")
        total = [r for r in recs if r["kind"] == "start"][0]["total_steps"]
        assert f"step {last['step']}/{total}" in screen, screen
        assert f"loss {last['loss']:.4f}" in screen, screen
        assert "finished (done)" in screen
        assert "CPU only" in screen or "util" in screen  # the GPU panel, whichever the machine has
        assert "samples (" in screen  # the sample grid was loaded and drawn
        # keys reach the app: the chain screen opens and steps
        _tmux(sock, "send-keys", "-t", "t", "2")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "alpha_bar_t" not in screen:
            time.sleep(0.5)
            screen = _tmux(sock, "capture-pane", "-p", "-t", "t").stdout
        _tmux(sock, "send-keys", "-t", "t", "Right", "Right", "Right")
        time.sleep(1.5)
        screen = _tmux(sock, "capture-pane", "-p", "-t", "t").stdout
        assert "t = 3 / 20" in screen, screen
        _tmux(sock, "send-keys", "-t", "t", "q")
        time.sleep(1.0)
    finally:
        if train.poll() is None:
            train.kill()
        _tmux(sock, "kill-server")
