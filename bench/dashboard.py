"""Dashboard page render times on a big ledger (10,000 samples, 1,000,000 rollouts).

    .venv/bin/python bench/dashboard.py                      # build a ledger in a temp dir
    .venv/bin/python bench/dashboard.py --ledger /tmp/big.db # build once there, reuse after
    .venv/bin/python bench/dashboard.py --quick              # 1,000 samples, 50,000 rollouts

The ledger is written through the store's writer API by `lppo.testing.simulate.simulated_run` (a
simulated clock: 3 actors, 200-character completion texts). Each page of `dashboard/app.py`
is then rendered with Streamlit's `AppTest` (the script runs in this process exactly as it
does for a browser session, minus the websocket) and timed:

- **cold**: the data cache emptied first (`st.cache_data.clear()`), so every ledger query
  of the page runs: what a user waits for on first open and after each live refresh;
- **warm**: the same page again with its queries cached (a widget change, a re-visit).

The reader (engine and connection pool) is created once, as in a server process. Target:
each page under 2 s cold. Median and max over `--repeat` renders.

With `--browser` (needs Debian chromium), the same pages are also timed as a user sees them:
`lppo dashboard` serves the ledger on 127.0.0.1, headless Chromium opens the SQL page, then
switches pages with the sidebar links, timing each from the click until the page has
rendered (its last section's text is there, the script is done, every chart and table has
drawn: `lppo/testing/browser.py`). First visits find nothing cached; revisits come back
from the SQL page, with cached queries.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

APP = ROOT / "dashboard" / "app.py"
LAST_TEXT = {  # page -> text of its last section: it is there once the page has rendered
    "overview": "Curation: ", "samples": "samples match", "trajectory": "Rollouts per step",
    "progress_map": "Rescued by prefixes", "actors": "Weight version used",
    "sql": "Download CSV",
}
TARGET_S = 2.0


def pages() -> dict[str, str]:
    """Row label -> page (a key of `dashboard.context.VIEWS`)."""
    from dashboard.context import VIEWS

    return {title + (" (first example query)" if name == "sql" else ""): name
            for name, (title, _) in VIEWS.items()}


def build(path: Path, samples: int, rollouts: int) -> float:
    """Write the big ledger at `path`; return the rollouts written per second."""
    from lppo.testing.simulate import simulated_run
    from store.ledger import Ledger

    batch = max(16, samples // 20)
    steps = max(10, rollouts // (batch * 3 // 2 * 8) + 1)
    start = time.perf_counter()
    with Ledger(str(path)) as ledger:
        simulated_run(ledger, "big", samples=samples, steps=steps, batch_groups=batch,
                      actors=3, seed=2, dataset="bench", max_rollouts=rollouts)
    with ledger_reader(path) as reader:
        n = reader.summary()["groups"]["rollouts"]
    return n / (time.perf_counter() - start)


def ledger_reader(path: Path):
    from store.queries import LedgerReader

    return LedgerReader(str(path))


def render_times(path: Path, repeat: int) -> dict[str, tuple[list[float], list[float]]]:
    """page -> (cold seconds, warm seconds) over `repeat` renders each."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    os.environ["LPPO_DASHBOARD_TARGET"] = str(path)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()  # imports, the reader, the run list: once per server process
    _check(at, "first run")
    from dashboard.context import view_file

    out: dict[str, tuple[list[float], list[float]]] = {}
    for name, page in pages().items():
        cold, warm = [], []
        for _ in range(repeat):
            st.cache_data.clear()
            if "sql_result" in at.session_state:  # the SQL page runs its query again
                del at.session_state["sql_result"]
            at.switch_page(view_file(page))
            start = time.perf_counter()
            at.run()
            cold.append(time.perf_counter() - start)
            _check(at, name)
            start = time.perf_counter()
            at.run()
            warm.append(time.perf_counter() - start)
        out[name] = (cold, warm)
        print(f"  {name}: cold {statistics.median(cold):.2f} s, "
              f"warm {statistics.median(warm):.2f} s", file=sys.stderr, flush=True)
    return out


def browser_times(path: Path, repeat: int) -> dict[str, tuple[list[float], list[float]]]:
    """page -> (first-visit seconds, revisit seconds) in headless Chromium, switching pages
    with the sidebar links in one session as a user does. First visits run in a fresh
    server (nothing cached yet); each revisit comes back from the SQL page."""
    from lppo.testing.browser import Browser, find_chromium

    binary = find_chromium()
    if binary is None:
        raise SystemExit("--browser needs Debian chromium (/usr/bin/chromium)")
    urls = {name: ("" if page == "overview" else page, LAST_TEXT[page])
            for name, page in pages().items()}
    sql_path, sql_text = "sql", LAST_TEXT["sql"]

    async def visits(base: str) -> dict:
        out = {name: ([], []) for name in urls}
        async with Browser(binary) as browser:
            await browser.send("Emulation.setDeviceMetricsOverride", width=browser.width,
                               height=browser.height, deviceScaleFactor=1, mobile=False)
            await browser.open(f"{base}/{sql_path}", sql_text)
            for name, (page, text) in urls.items():
                out[name][0].append(await browser.time_nav(page, text))
            for _ in range(repeat):
                for name, (page, text) in urls.items():
                    if page != sql_path:
                        await browser.time_nav(sql_path, sql_text)
                    out[name][1].append(await browser.time_nav(page, text))
        return out

    with _server(path) as base:
        out = asyncio.run(visits(base))
    for name, (first, again) in out.items():
        print(f"  {name} (browser): first {first[0]:.2f} s, "
              f"again {statistics.median(again):.2f} s", file=sys.stderr, flush=True)
    return out


class _server:
    """`lppo dashboard PATH --no-browser` on a free loopback port, as a context manager."""

    def __init__(self, path: Path):
        from lppo.testing.postgres import free_port

        self.path, self.port = path, free_port()

    def __enter__(self) -> str:
        import urllib.request

        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lppo.cli", "dashboard", str(self.path), "--no-browser",
             "--port", str(self.port)], cwd=ROOT, start_new_session=True,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{base}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        return base
            except OSError:
                time.sleep(0.2)  # not up yet
        self.__exit__()
        raise RuntimeError(f"lppo dashboard did not come up on {base}")

    def __exit__(self, *exc: object) -> None:
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(timeout=30)


def _check(at, where: str) -> None:
    problems = [e.value for e in at.exception] + [e.value for e in at.error]
    if problems:
        raise RuntimeError(f"{where}: the page failed: {problems[0]}")


def report(times: dict, path: Path, build_rate: float | None, browser: dict | None) -> int:
    with ledger_reader(path) as reader:
        s = reader.summary()
    print(f"\nLedger: {s['samples']['total']:,} samples, {s['groups']['rollouts']:,} rollouts "
          f"in {s['groups']['groups']:,} groups, {s['steps']['count']} steps, "
          f"{s['groups']['actors']} actors"
          + (f" (built at {build_rate:,.0f} rollouts/s)" if build_rate else ""))
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"Load average at the end (1 / 5 / 15 min): {load} on {os.cpu_count()} CPUs")
    print(f"\n| page | cold: median / max | warm: median / max | under {TARGET_S:g} s cold |")
    print("|---|---|---|---|")
    missed = 0
    for name, (cold, warm) in times.items():
        ok = max(cold) < TARGET_S
        missed += not ok
        print(f"| {name} | {statistics.median(cold):.2f} / {max(cold):.2f} s | "
              f"{statistics.median(warm):.2f} / {max(warm):.2f} s | {'yes' if ok else 'NO'} |")
    if browser:
        print("\nIn headless Chromium (sidebar click to drawn page):\n")
        print("| page | first visit | revisits: median / max |")
        print("|---|---|---|")
        for name, (first, again) in browser.items():
            print(f"| {name} | {first[0]:.2f} s | {statistics.median(again):.2f} / "
                  f"{max(again):.2f} s |")
    return 1 if missed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ledger", type=Path, default=None,
                        help="ledger file to build (if absent) and reuse")
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--rollouts", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a small ledger (smoke run)")
    parser.add_argument("--browser", action="store_true",
                        help="also time each page in headless Chromium (Debian chromium)")
    args = parser.parse_args(argv)
    if args.quick:
        args.samples, args.rollouts, args.repeat = 1_000, 50_000, 1
    with tempfile.TemporaryDirectory(prefix="lppo-dash-bench-") as tmp:
        path = args.ledger or Path(tmp) / "ledger.db"
        rate = None
        if not path.exists():
            print(f"building {path} ({args.samples:,} samples, {args.rollouts:,} rollouts) ...",
                  file=sys.stderr, flush=True)
            rate = build(path, args.samples, args.rollouts)
        print("rendering pages ...", file=sys.stderr, flush=True)
        times = render_times(path, args.repeat)
        browser = browser_times(path, args.repeat) if args.browser else None
        return report(times, path, rate, browser)


if __name__ == "__main__":
    sys.exit(main())
