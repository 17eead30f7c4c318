"""The dashboard as users get it: `lppo dashboard` serving on 127.0.0.1, pages in Chromium.

`lppo dashboard LEDGER --no-browser` starts `streamlit run dashboard/app.py` on a free
loopback port over a simulated ledger written by the store's writer API (two runs over 400
samples; the newer one still `running`). One test checks the server answers; the other opens
every page in headless Debian Chromium (`scripts/system-deps.sh` installs it where apt is
available; the test skips, saying so, where it is absent), waits until each page has
rendered its content, and saves the screenshots into a temporary folder
(`lppo.testing.screenshots.capture`, the code that makes the README's screenshots from a real
demo run).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from lppo.testing.browser import find_chromium
from lppo.testing.postgres import free_ports
from lppo.testing.screenshots import CHROMIUM_MISSING, capture, serve, showcase_sample, wait_healthy
from lppo.testing.simulate import simulated_run
from store.ledger import Ledger
from store.queries import LedgerReader


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
    with serve(ledger, tmp_path_factory.mktemp("server") / "streamlit.log") as url:
        yield url


def test_lppo_dashboard_serves_on_loopback(server):
    with urllib.request.urlopen(f"{server}/_stcore/health", timeout=5) as r:
        assert r.read().strip() == b"ok"
    with urllib.request.urlopen(server, timeout=5) as r:
        assert r.status == 200 and b'id="root"' in r.read()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_to_lppo_dashboard_stops_the_server(ledger, tmp_path, signum):
    """The signal goes to the `lppo dashboard` process alone (not its group, as a supervisor
    or `kill PID` sends it): nothing may keep serving the port afterwards."""
    (port,) = free_ports(1)
    log = tmp_path / "dashboard.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lppo.cli", "dashboard", str(ledger), "--port", str(port),
             "--no-browser"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log, timeout=60)
        proc.send_signal(signum)
        assert proc.wait(timeout=30) in (0, -signum), log.read_text()
        with pytest.raises(OSError):
            urllib.request.urlopen(f"{url}/_stcore/health", timeout=2)
        stray = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True)
        assert stray.stdout.strip() == "", f"left behind: {stray.stdout}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def test_lppo_dashboard_refuses_a_missing_ledger(tmp_path):
    from tests.conftest import run_cli

    out = run_cli("dashboard", str(tmp_path / "nowhere"), "--no-browser", timeout=60)
    assert out.returncode == 2
    assert "no ledger at" in out.stderr and "Traceback" not in out.stderr


def test_screenshots_of_every_page(ledger, tmp_path):
    if find_chromium() is None:
        pytest.skip(CHROMIUM_MISSING)
    run, sid = showcase_sample(f"sqlite:///{ledger / 'ledger.db'}")
    with LedgerReader(str(ledger)) as reader:
        rescued = {r["sample_id"] for r in reader.rescued(run)}
    assert run == "sim-lppo-b" and sid in rescued  # the showcase is a rescue
    paths = capture(ledger, tmp_path / "shots")
    assert [p.name for p in paths] == ["overview.png", "samples.png", "progress_map.png",
                                       "actors.png", "sql.png", "trajectory.png"]
    for path in paths:
        png = path.read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000, path.name
    assert sorted(p.name for p in (tmp_path / "shots").iterdir()) == sorted(p.name for p in paths)
