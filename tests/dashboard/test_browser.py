"""The dashboard as users get it: `lppo dashboard` serving on 127.0.0.1, pages in Chromium.

`lppo dashboard LEDGER --no-browser` starts `streamlit run dashboard/app.py` on a free
loopback port over a simulated ledger written by the store's writer API (two runs over 400
samples; the newer one still `running`). One test checks the server answers; the other opens
every page in headless Debian Chromium (`scripts/system-deps.sh` installs it where apt is
available; the test skips, saying so, where it is absent), waits until each page has
rendered its content, and saves the screenshots in docs/screenshots/ (committed, shown in
the README).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.browser import Browser, find_chromium
from store.ledger import Ledger
from store.queries import LedgerReader
from store.simulate import simulated_run
from store.testing import free_ports
from tests.conftest import ROOT

SHOTS = ROOT / "docs" / "screenshots"
CHROMIUM_MISSING = ("Debian chromium not found at /usr/bin/chromium or on PATH: "
                    "`make test` installs it with scripts/system-deps.sh where apt is available")


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory (`lppo dashboard` is given the folder, as users give runs/NAME)."""
    path = tmp_path_factory.mktemp("shots") / "runs" / "sim"
    path.mkdir(parents=True)
    with Ledger(str(path / "ledger.db")) as writer:
        simulated_run(writer, "sim-lppo-a", samples=400, steps=40, batch_groups=32, seed=4,
                      actors=3, text_chars=300)
        simulated_run(writer, "sim-lppo-b", samples=400, steps=60, batch_groups=32, seed=5,
                      actors=4, text_chars=300, finished=False)
    return path


@pytest.fixture(scope="module")
def server(ledger: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`lppo dashboard` on a free port; yields its base URL, stops it afterwards."""
    (port,) = free_ports(1)
    log = tmp_path_factory.mktemp("server") / "streamlit.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lppo.cli", "dashboard", str(ledger), "--host",
             "127.0.0.1", "--port", str(port), "--no-browser", "--refresh", "60"],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, proc, log)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"lppo dashboard exited ({proc.returncode}):\n"
                                 f"{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass  # not listening yet: poll again
        time.sleep(0.25)
    raise AssertionError(f"no healthy dashboard at {url} after {timeout} s:\n{log.read_text()}")


def test_lppo_dashboard_serves_on_loopback(server):
    with urllib.request.urlopen(f"{server}/_stcore/health", timeout=5) as r:
        assert r.read().strip() == b"ok"
    with urllib.request.urlopen(server, timeout=5) as r:
        assert r.status == 200 and b'id="root"' in r.read()


def test_lppo_dashboard_refuses_a_missing_ledger(tmp_path):
    from tests.conftest import run_cli

    out = run_cli("dashboard", str(tmp_path / "nowhere"), "--no-browser", timeout=60)
    assert out.returncode == 2
    assert "no ledger at" in out.stderr and "Traceback" not in out.stderr


def _showcase_sample(ledger: Path) -> int:
    """A sample of the live run that was guided and then passed unguided (a rescue), one
    that was retired as solved if there is one (its status change is ruled on the chart)."""
    with LedgerReader(str(ledger)) as reader:
        res = reader.sql(
            "SELECT sample_id FROM rollout_groups WHERE run_id = (SELECT max(id) FROM runs) "
            "GROUP BY sample_id HAVING max(prefix_len) > 0 AND "
            "max(CASE WHEN prefix_len = 0 AND n_correct > 0 THEN step_seen END) > "
            "min(CASE WHEN prefix_len > 0 AND n_correct > 0 THEN step_seen END) "
            "ORDER BY max(CASE WHEN status = 'solved' THEN 1 ELSE 0 END) DESC, "
            "count(*) DESC, sample_id LIMIT 1")
    return int(res.rows[0][0])


def test_screenshots_of_every_page(server, ledger):
    binary = find_chromium()
    if binary is None:
        pytest.skip(CHROMIUM_MISSING)
    sid = _showcase_sample(ledger)
    pages = [  # (file, URL or sidebar page, text that shows it has its content, height)
        ("overview.png", server + "/", "Curation: sim-lppo-b", 1900),
        ("samples.png", "samples", "samples match", 1000),
        ("progress_map.png", "progress_map", "Rescued by prefixes", 1900),
        ("actors.png", "actors", "Weight version used", 1100),
        ("sql.png", "sql", "Download CSV", 1000),
        ("trajectory.png", f"{server}/trajectory?sample={sid}", "Rollouts per step", 2200),
    ]

    async def shoot_all() -> None:
        async with Browser(binary) as browser:
            for name, where, expected, height in pages:
                await browser.shoot(where, expected, SHOTS / name, height=height)

    asyncio.run(shoot_all())
    for name, *_ in pages:
        png = (SHOTS / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000, name
