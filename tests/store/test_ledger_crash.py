"""A writer killed with SIGKILL in the middle of a transaction leaves no partial group, and
re-delivering everything afterwards records each attempt exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from store.ledger import Ledger
from tests.conftest import ROOT
from tests.store.crash_writer import BATCHES, PAUSE_AT, PER_BATCH, batch
from tests.store.helpers import count, partial_groups, samples


def _spawn(url: str, mode: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.store.crash_writer", url, mode],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _wait_for(proc: subprocess.Popen, marker: str, timeout: float = 60) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise AssertionError(f"writer exited early: {proc.stderr.read()[-2000:]}")
        lines.append(line.strip())
        if line.startswith(marker):
            return lines
    raise AssertionError(f"no {marker!r} within {timeout} s")


def _kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()


def _check_consistent(url: str) -> int:
    """No partial group, and every state matches the last committed batch; returns groups."""
    assert partial_groups(url) == []
    groups = count(url, "SELECT count(*) FROM rollout_groups")
    assert groups % PER_BATCH == 0  # whole batches only
    # batch b sets attempts = b + 1: the states are those of the last committed batch
    assert count(url, "SELECT max(attempts) FROM sample_state") == groups // PER_BATCH
    return groups


def _redeliver_all(url: str, upto: int) -> None:
    with Ledger(url) as ledger:
        run = ledger.register_run("crash")
        ids = sorted(ledger.import_samples(samples(8)).ids)
        for b in range(upto):
            ledger.write(run, groups=batch(b, ids))
    assert count(url, "SELECT count(*) FROM rollout_groups") == upto * PER_BATCH
    assert count(url, "SELECT count(*) FROM rollouts") == upto * PER_BATCH * 8
    assert partial_groups(url) == []


def test_kill_inside_the_transaction(ledger_url):
    proc = _spawn(ledger_url, "pause")
    try:
        lines = _wait_for(proc, "MID-WRITE")
    finally:
        _kill(proc)
    assert lines[-2] == f"COMMITTED {PAUSE_AT - 1}"
    assert _check_consistent(ledger_url) == PAUSE_AT * PER_BATCH
    _redeliver_all(ledger_url, PAUSE_AT + 2)


@pytest.mark.parametrize("seed", [1])
def test_kill_at_a_random_moment(ledger_url, seed):
    proc = _spawn(ledger_url, "loop")
    try:
        _wait_for(proc, "COMMITTED 0")
        time.sleep(random.Random(seed).uniform(0.0, 0.3))
    finally:
        _kill(proc)
    groups = _check_consistent(ledger_url)
    assert groups < BATCHES * PER_BATCH
    _redeliver_all(ledger_url, groups // PER_BATCH + 1)
