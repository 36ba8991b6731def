"""Headless Chromium through its DevTools protocol (aiohttp's websocket client, no playwright): open a page,
wait until a script says it is ready, and take a screenshot. Used by the `vdm tui --serve` test and by hand:

    python tests/tui/browser.py URL OUT.png [WIDTH HEIGHT]

``chromium --headless --screenshot`` alone cannot do it: it shoots when the page has loaded, before
textual-serve has started the app and sent its first frame over the websocket.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

# textual-serve's page adds -first-byte to <body> once the app's first output arrived
FIRST_BYTE = "document.body.classList.contains('-first-byte')"


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _shoot(url: str, out: str, width: int, height: int, ready: str, settle_s: float, timeout_s: float) -> dict:
    import aiohttp

    port = free_port()
    profile = tempfile.mkdtemp(prefix="vdm-chromium-")
    proc = subprocess.Popen([chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                             f"--remote-debugging-port={port}", f"--user-data-dir={profile}",
                             f"--window-size={width},{height}", "about:blank"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + timeout_s
            pages = None
            while pages is None:
                try:
                    async with http.get(f"http://127.0.0.1:{port}/json/list") as r:
                        pages = [p for p in await r.json() if p.get("type") == "page"]
                except aiohttp.ClientError:
                    if time.monotonic() > deadline:
                        raise TimeoutError("chromium's DevTools port did not open")
                    await asyncio.sleep(0.2)
            async with http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                ids = iter(range(1, 1 << 30))

                async def call(method: str, **params):
                    i = next(ids)
                    await ws.send_str(json.dumps({"id": i, "method": method, "params": params}))
                    while True:
                        msg = json.loads((await ws.receive()).data)
                        if msg.get("id") == i:
                            if "error" in msg:
                                raise RuntimeError(f"{method}: {msg['error']}")
                            return msg.get("result", {})

                async def evaluate(expr: str):
                    return (await call("Runtime.evaluate", expression=expr, returnByValue=True))["result"].get("value")

                # the page's own size, exactly (--window-size is the window's, toolbars and all)
                await call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                           mobile=False)
                await call("Page.navigate", url=url)
                t0 = time.monotonic()
                while not await evaluate(ready):
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"the page did not get ready ({ready}) in {timeout_s:.0f} s")
                    await asyncio.sleep(0.25)
                ready_s = time.monotonic() - t0
                await asyncio.sleep(settle_s)  # the first frames after the first byte: let the screen fill
                shot = await call("Page.captureScreenshot", format="png")
                with open(out, "wb") as f:
                    f.write(base64.b64decode(shot["data"]))
                return {"ready_s": ready_s}
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(url: str, out: str | os.PathLike, width: int = 1280, height: int = 800, ready: str = FIRST_BYTE,
               settle_s: float = 3.0, timeout_s: float = 60.0) -> dict:
    """Open ``url`` in headless Chromium with a page of width x height CSS pixels, wait until the script
    ``ready`` is true, ``settle_s`` more seconds, and write a PNG of the page to ``out``. Returns {"ready_s": seconds until ready}."""
    return asyncio.run(_shoot(url, str(out), width, height, ready, settle_s, timeout_s))


if __name__ == "__main__":
    a = sys.argv[1:]
    if len(a) not in (2, 4):
        sys.exit("usage: python tests/tui/browser.py URL OUT.png [WIDTH HEIGHT]")
    size = (int(a[2]), int(a[3])) if len(a) == 4 else (1280, 800)
    print(screenshot(a[0], a[1], *size, settle_s=float(os.environ.get("SETTLE", "4"))))
