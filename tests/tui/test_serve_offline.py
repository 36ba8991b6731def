"""`vdm tui RUN --serve`: the served page asks for nothing beyond the server (it works offline).

textual-serve's own page links Google Fonts for its font; ours declares the font the package ships. The page
is fetched from a real `vdm tui --serve` on a free port, and every URL it references is checked: none on
another host, and each of the server's own assets it names is there (HTTP 200). No browser needed.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from tui_fixtures import write_run

pytest.importorskip("textual_serve")
pytest.importorskip("aiohttp")

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
CSS_URL = re.compile(r"url\(\s*['\"]?([^'\")]+)['\"]?\s*\)|@import\s+['\"]([^'\"]+)['\"]")


class _Refs(HTMLParser):
    """The URLs a page makes its browser fetch: src/href of elements, url() and @import in <style> and style=."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if name in ("src", "href", "data-session-websocket-url", "data-pingurl") and value:
                self.urls.append(value)
            elif name == "style":
                self._css(value)
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        self._in_style = False

    def handle_data(self, data):
        if self._in_style:
            self._css(data)

    def _css(self, text):
        self.urls += [a or b for a, b in CSS_URL.findall(text)]


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.read()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def served(tmp_path):
    run = write_run(tmp_path / "demo")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "vdm_cli", "tui", str(run), "--serve", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    url = f"http://localhost:{port}/"
    try:
        end = time.monotonic() + 60
        while True:
            try:
                status, body = _get(url)
                if status == 200:
                    break
            except OSError:
                pass
            assert proc.poll() is None, f"vdm tui --serve exited with {proc.returncode}: {proc.stdout.read()}"
            assert time.monotonic() < end, "vdm tui --serve did not answer"
            time.sleep(0.3)
        yield url, body.decode()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_the_served_page_asks_for_nothing_beyond_the_server_and_every_asset_it_names_is_served(served):
    url, page = served
    refs = _Refs()
    refs.feed(page)
    assert refs.urls, page
    # any absolute URL anywhere in the page (scripts too) is on this machine; an SVG's xmlns is a name, not a fetch
    anywhere = re.findall(r"\b(?:https?|wss?):(//[^\s\"'<>)]+)", re.sub(r"\bxmlns(:\w+)?=\"[^\"]*\"", "", page))
    beyond = sorted({u for u in anywhere if urlsplit(u).hostname not in LOCAL_HOSTS})
    assert not beyond, f"the page asks other hosts for {beyond}"
    assert not [u for u in refs.urls if u.startswith("//")], refs.urls  # protocol-relative: another host
    # the font the terminal asks for comes from the server's own static files
    assert "fonts.googleapis" not in page and "RobotoMono-VariableFont_wght.ttf" in page
    fetched = 0
    for ref in refs.urls:
        full = urljoin(url, ref)
        parts = urlsplit(full)
        assert parts.hostname in LOCAL_HOSTS, full
        if parts.scheme in ("ws", "wss") or not parts.path.startswith("/static/"):
            continue  # the app's websocket and the page's own links are not static assets
        status, body = _get(full)
        assert status == 200 and body, full
        fetched += 1
    assert fetched >= 4, refs.urls  # xterm.css, textual.js, the background image, the fonts


def test_the_page_template_without_a_network_keeps_upstreams_page_otherwise():
    """The rewrite touches only the remote stylesheet link: the rest of textual-serve's template is kept."""
    from pathlib import Path

    import textual_serve

    from tui.serve import LOCAL_FONTS, localise

    source = (Path(textual_serve.__file__).parent / "templates" / "app_index.html").read_text()
    assert "fonts.googleapis.com" in source  # upstream's page asks Google (else this module has nothing to do)
    local = localise(source)
    assert "fonts.googleapis.com" not in local and local.count(LOCAL_FONTS) == 1
    before, after = local.split(LOCAL_FONTS)
    assert source.startswith(before) and source.endswith(after)
