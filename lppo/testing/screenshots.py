"""Screenshots of every dashboard page over a run's ledger, as a user sees them.

    .venv/bin/python -m lppo.testing.screenshots runs/demo docs/screenshots   # after `make demo`

Serves the run with `lppo dashboard` on a free loopback port, opens each page in headless
Debian Chromium (`lppo.testing.browser`), waits until it has rendered, and saves one PNG per
page into the output folder. The trajectory page shows the run's showcase sample: the rescued
sample with the most groups (`store.queries.RESCUED_SQL`), else the most visited one. The
README's screenshots are made with the command above from a real `lppo demo` run; the tests
call `capture` on a simulated ledger and write into a temporary folder.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lppo.testing.browser import Browser, find_chromium
from lppo.testing.postgres import free_ports
from store.queries import LedgerReader

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_MISSING = ("Debian chromium not found at /usr/bin/chromium or on PATH: "
                    "`make test` installs it with scripts/system-deps.sh where apt is available")


def showcase_sample(ledger_url: str) -> tuple[str, int]:
    """(run name, sample id): the latest run's rescued sample with the most groups, else its
    most visited sample."""
    with LedgerReader(ledger_url) as reader:
        run = reader.runs()[0]
        rescued = reader.rescued(run["id"])
        counts = dict(reader.sql(
            f"SELECT sample_id, count(*) FROM rollout_groups WHERE run_id = {int(run['id'])} "
            "GROUP BY sample_id").rows)
    if not counts:
        raise ValueError(f"run {run['name']!r} has no groups to show")
    pool = [r["sample_id"] for r in rescued] or list(counts)
    return run["name"], max(pool, key=lambda sid: (counts.get(sid, 0), -sid))


def pages(server: str, run_name: str, sample_id: int) -> list[tuple[str, str, str, int]]:
    """(file, URL or sidebar page, text that shows the page has its content, height)."""
    return [
        ("overview.png", server + "/", f"Curation: {run_name}", 1900),
        ("samples.png", "samples", "samples match", 1000),
        ("progress_map.png", "progress_map", "Rescued by prefixes", 1900),
        ("actors.png", "actors", "Weight version used", 1100),
        ("sql.png", "sql", "Download CSV", 1000),
        ("trajectory.png", f"{server}/trajectory?sample={sample_id}", "Rollouts per step", 2200),
    ]


@contextmanager
def serve(run_dir: Path, log: Path, timeout: float = 60.0) -> Iterator[str]:
    """`lppo dashboard RUN_DIR` on a free loopback port; yields its base URL."""
    (port,) = free_ports(1)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lppo.cli", "dashboard", str(run_dir), "--host",
             "127.0.0.1", "--port", str(port), "--no-browser", "--refresh", "60"],
            stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc, log, timeout)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Until Streamlit's health endpoint answers `ok`; raises with the log if it never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"lppo dashboard exited ({proc.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().strip() == b"ok":
                    return
        except OSError:
            pass  # not listening yet: poll again
        time.sleep(0.25)
    raise RuntimeError(f"no healthy dashboard at {url} after {timeout} s:\n{log.read_text()}")


def shoot(server: str, shots: list[tuple[str, str, str, int]], out_dir: Path,
          binary: str) -> list[Path]:
    """Every page of `shots` into `out_dir` (one Chromium for all)."""

    async def shoot_all() -> None:
        async with Browser(binary) as browser:
            for name, where, expected, height in shots:
                await browser.shoot(where, expected, out_dir / name, height=height)

    asyncio.run(shoot_all())
    return [out_dir / name for name, *_ in shots]


def capture(run_dir: Path, out_dir: Path, binary: str | None = None) -> list[Path]:
    """Serve `run_dir`, screenshot every page into `out_dir`; returns the PNG paths."""
    binary = binary or find_chromium()
    if binary is None:
        raise RuntimeError(CHROMIUM_MISSING)
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    run_name, sample_id = showcase_sample(f"sqlite:///{(run_dir / 'ledger.db').resolve()}")
    out_dir.mkdir(parents=True, exist_ok=True)
    with serve(run_dir, out_dir / ".dashboard.log") as url:
        paths = shoot(url, pages(url, run_name, sample_id), out_dir, binary)
    (out_dir / ".dashboard.log").unlink(missing_ok=True)
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lppo.testing.screenshots",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a run folder with ledger.db (runs/demo)")
    parser.add_argument("out_dir", type=Path, help="where the PNGs go (docs/screenshots)")
    args = parser.parse_args(argv)
    if not (args.run_dir / "ledger.db").is_file():
        print(f"no ledger at {args.run_dir / 'ledger.db'}: run `make demo` first",
              file=sys.stderr)
        return 2
    for path in capture(args.run_dir, args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
