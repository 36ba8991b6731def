"""`vdm tui RUN --serve` (textual-serve) in headless Chromium: the page starts the app, whose screen fills it.
Skipped where Chromium or textual-serve is absent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

import browser
from tui_fixtures import write_run

pytestmark = pytest.mark.skipif(browser.chromium() is None, reason="no chromium on this machine")
pytest.importorskip("textual_serve")
pytest.importorskip("aiohttp")

INTRO_BG = np.array([12, 24, 31])  # textual-serve's page behind its "vdm" intro box (#0c181f)


def _wait_http(url: str, proc, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None:
            raise AssertionError(f"vdm tui --serve exited with {proc.returncode}: {proc.stdout.read()}")
        if time.monotonic() > end:
            raise AssertionError("vdm tui --serve did not answer")
        time.sleep(0.3)


def test_serve_shows_the_monitor_filling_the_page(tmp_path):
    from PIL import Image

    run = write_run(tmp_path / "demo")
    port = browser.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vdm_cli", "tui", str(run), "--serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        url = f"http://localhost:{port}/"
        _wait_http(url, proc)
        shot = tmp_path / "serve.png"
        w, h = 1024, 640
        got = browser.screenshot(url, shot, w, h, settle_s=4.0, timeout_s=90.0)
        assert got["ready_s"] < 60  # the app's first frame reached the page
        a = np.asarray(Image.open(shot).convert("RGB")).astype(int)
        assert a.shape == (h, w, 3)
        # the intro is gone: almost none of the page is its background any more
        assert (np.abs(a - INTRO_BG).sum(-1) < 12).mean() < 0.05
        bright = a.max(-1) > 170  # text and curves
        row_h = h // 40  # at least 40 rows of 16 px text fit: a band of rows at the top and the bottom
        # the status line at the top, the footer's keys on the page's last rows: the screen fills the page
        assert bright[:row_h * 2].mean() > 0.01 and bright[-row_h * 2:].mean() > 0.01
        # the samples panel: the run's sample grid in colour somewhere on the right half
        right = a[:, w // 2:]
        assert ((right.max(-1) - right.min(-1)) > 80).mean() > 0.01
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
