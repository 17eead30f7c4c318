"""Headless Debian Chromium, driven over the DevTools protocol, for dashboard screenshots and
timings (`tests/dashboard/test_browser.py`, `bench/dashboard.py --browser`).

Streamlit draws its pages in the browser after the script runs (websocket deltas, then Vega
and the data grid render into canvases), so a plain `chromium --screenshot` can capture a
blank or half-drawn page. `Browser` starts `/usr/bin/chromium --headless` with a remote
debugging port and a fresh profile, and `shoot()` opens a URL, polls the page until it has
rendered (`RENDERED_JS`: the expected text is there, the app is not running, no element is
stale or a skeleton, every chart and table has drawn its canvas, and all of that twice in a
row), then saves a PNG. Pages are reached by URL or, like a user does, by clicking their
sidebar link (no reload of the app's JavaScript). The websocket client is the `websockets`
package, which Streamlit already depends on: no extra package.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

from websockets.asyncio.client import connect

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--mute-audio", "--remote-debugging-port=0")

RENDERED_JS = """
(expected) => {
  const main = document.querySelector('[data-testid="stMain"]');
  if (!main || !main.innerText.includes(expected)) return 'text';
  if (document.querySelector('[data-testid="stStatusWidgetRunningIcon"]')) return 'running';
  if (document.querySelector('[data-stale="true"]')) return 'stale';
  if (document.querySelector('[data-testid="stSkeleton"], [data-testid="stAppSkeleton"]'))
    return 'skeleton';
  for (const el of document.querySelectorAll(
      '[data-testid="stVegaLiteChart"], [data-testid="stDataFrame"]'))
    if (!el.querySelector('canvas, svg')) return 'drawing';
  return 'ok';
}
"""


def find_chromium() -> str | None:
    """Debian's chromium (`/usr/bin/chromium`, or `chromium` on PATH)."""
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    return shutil.which("chromium")


class Browser:
    """One headless Chromium with one tab; use as `async with Browser(...) as b`."""

    def __init__(self, binary: str, width: int = 1400, height: int = 1000):
        self.binary, self.width, self.height = binary, width, height
        self._profile = Path(tempfile.mkdtemp(prefix="lppo-chromium-"))
        self._proc: subprocess.Popen | None = None
        self._ws = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Browser:
        self._proc = subprocess.Popen(
            [self.binary, *FLAGS, f"--user-data-dir={self._profile}",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = await self._devtools_port()
        tabs = []
        for _ in range(50):  # the first tab can appear just after the port
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                tabs = [t for t in json.load(r) if t["type"] == "page"]
            if tabs:
                break
            await asyncio.sleep(0.1)
        self._ws = await connect(tabs[0]["webSocketDebuggerUrl"], max_size=256 * 2**20)
        await self.send("Page.enable")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        shutil.rmtree(self._profile, ignore_errors=True)

    async def _devtools_port(self, timeout: float = 30.0) -> int:
        """The port Chromium chose, from DevToolsActivePort in its profile."""
        marker = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker.is_file() and marker.read_text().strip():
                return int(marker.read_text().split()[0])
            if self._proc is not None and self._proc.poll() is not None:
                raise RuntimeError(f"chromium exited with status {self._proc.returncode}")
            await asyncio.sleep(0.1)
        raise TimeoutError(f"chromium did not open its debugging port in {timeout:g} s")

    async def send(self, method: str, **params) -> dict:
        """One DevTools command; its result (events in between are skipped)."""
        msg_id = next(self._ids)
        await self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(await self._ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    async def evaluate(self, expression: str):
        res = await self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                              awaitPromise=True)
        if "exceptionDetails" in res:
            raise RuntimeError(f"page script failed: {res['exceptionDetails']}")
        return res["result"].get("value")

    async def wait_rendered(self, expected: str, timeout: float) -> None:
        """Poll until `RENDERED_JS` says ok twice in a row, 0.25 s apart."""
        deadline = time.monotonic() + timeout
        check = f"({RENDERED_JS})({json.dumps(expected)})"
        state, streak = "", 0
        while time.monotonic() < deadline:
            state = await self.evaluate(check)
            streak = streak + 1 if state == "ok" else 0
            if streak >= 2:
                return
            await asyncio.sleep(0.25)
        raise TimeoutError(f"page not rendered after {timeout:g} s (last check: {state}; "
                           f"waiting for text {expected!r})")

    async def open(self, url: str, expected: str, timeout: float = 60.0) -> None:
        """Load `url` (a full page load) and wait until it has rendered `expected`."""
        await self.send("Page.navigate", url=url)
        await self.wait_rendered(expected, timeout)

    async def goto(self, where: str) -> None:
        """A URL: load it; a page's URL path ("samples"; "" for the default page): click its
        sidebar link, as a user switches pages within a session (no page reload)."""
        if "://" in where:
            await self.send("Page.navigate", url=where)
            return
        click = f"""(() => {{
          const links = [...document.querySelectorAll('a[data-testid="stSidebarNavLink"]')];
          const want = {json.dumps(where)};
          const link = links.find(a => new URL(a.href).pathname.replace(/^\\//, '') === want);
          if (!link) return false;
          link.click();
          return true;
        }})()"""
        if not await self.evaluate(click):
            raise RuntimeError(f"no sidebar link to {where!r}")

    async def time_nav(self, page: str, expected: str, timeout: float = 60.0) -> float:
        """Seconds from clicking the sidebar link to `page` until the page has rendered
        `expected` (`RENDERED_JS` polled every 50 ms)."""
        check = f"({RENDERED_JS})({json.dumps(expected)})"
        start = time.perf_counter()
        await self.goto(page)
        await asyncio.sleep(0.05)  # let the click start the rerun
        state = ""
        while time.perf_counter() - start < timeout:
            state = await self.evaluate(check)
            if state == "ok":
                return time.perf_counter() - start
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{page}: not rendered after {timeout:g} s (last check: {state})")

    async def shoot(self, where: str, expected: str, path: Path, *, height: int | None = None,
                    timeout: float = 60.0) -> None:
        """Go to `where` (see `goto`), wait until it has rendered `expected`, save a PNG."""
        await self.send("Emulation.setDeviceMetricsOverride", width=self.width,
                        height=height or self.height, deviceScaleFactor=1, mobile=False)
        await self.goto(where)
        await self.wait_rendered(expected, timeout)
        await asyncio.sleep(0.3)  # chart transitions
        shot = await self.send("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
