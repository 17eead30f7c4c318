"""Hostile outputs and broken workers: every item gets a verdict within deadline + 1 s, and the
pool keeps answering afterwards (killed or dead workers are replaced)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from actor.reward import RewardPool, RewardPoolError, Verdict
from lppo.core.config.schema import RewardConfig
from tests.integration.test_reward_pool import pid_alive

DEADLINE_S = 1.5
SYMPY_LOOP = "\\boxed{\\sin(10^{100}\\pi x)^{1000} + \\cos(x)^{2000}}"

ADVERSARIAL = {
    "power-tower": "The answer is \\boxed{9^{9^{9^{9}}}}",
    "huge-factorial": "\\boxed{(10^{10})!}",
    "one-megabyte": "Let me check again. " * 52_429 + "\\boxed{5}",
    "nested-braces": "\\boxed{" + "{" * 5_000 + "1" + "}" * 5_000 + "}",
    "unbalanced-latex": "\\boxed{\\frac{1}{2" + "\\left(" * 200 + "$$ \\begin{pmatrix} 1 &",
    "nul-bytes": "The answer is \\boxed{5}" + "\x00" * 10_000,
    "sympy-loop": SYMPY_LOOP,
    "nested-powers": "\\boxed{2^{2^{2^{2^{2^{2}}}}}}",
    "many-boxes": "$\\boxed{" * 3_000,
}


@pytest.fixture
def pool():
    """A fresh pool per test: its worker is started and ready, so a timed item never waits
    for a replacement another test's kill left starting (that wait is not the item's: on a
    loaded 2-core machine it pushed one item to 2.99 s against the 2.5 s bound)."""
    with RewardPool(RewardConfig(workers=1, timeout_s=DEADLINE_S)) as p:
        yield p


def _still_serves(p: RewardPool) -> None:
    scored = p.verify_group("5", ["\\boxed{5}", "\\boxed{6}"], ["stop", "stop"])
    assert [s.verdict for s in scored] == [Verdict.CORRECT, Verdict.WRONG]


@pytest.mark.parametrize("output", list(ADVERSARIAL.values()), ids=list(ADVERSARIAL))
def test_adversarial_output_gets_a_verdict_in_time(pool, output):
    start = time.monotonic()
    scored = pool.verify_group("5", [output], ["stop"])[0]
    elapsed = time.monotonic() - start
    assert elapsed < DEADLINE_S + 1.0
    assert isinstance(scored.verdict, Verdict)
    _still_serves(pool)


def test_nul_bytes_and_megabyte_outputs_are_still_judged(pool):
    scored = pool.verify_group(
        "5", [ADVERSARIAL["nul-bytes"], ADVERSARIAL["one-megabyte"]], ["stop", "stop"]
    )
    assert [s.verdict for s in scored] == [Verdict.CORRECT, Verdict.CORRECT]
    assert [s.truncated_input for s in scored] == [False, True]


def test_slow_item_times_out_without_losing_the_rest_of_its_group():
    """The worker's own soft deadline stops the item (no kill, no restart). The soft deadline
    is `SOFT_FRACTION` of the hard one, so the worker has the rest to answer: 0.3 s at the
    1.5 s deadline was once too little on a loaded machine (killed instead), hence 3 s here
    (0.6 s to answer)."""
    with RewardPool(RewardConfig(workers=1, timeout_s=3.0)) as p:
        scored = p.verify_group("5", ["\\boxed{5}", SYMPY_LOOP, "\\boxed{5}"], ["stop"] * 3)
        assert [s.verdict for s in scored] == [Verdict.CORRECT, Verdict.TIMEOUT, Verdict.CORRECT]
        assert "stopped by the worker" in scored[1].detail
        assert p.metrics()["reward/worker_kills"] == 0


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_hung_worker_is_killed_and_replaced():
    """A worker stuck where no signal reaches it (simulated with SIGSTOP) is killed by the
    parent at the deadline; the item is `timeout`, the rest of the group goes on elsewhere."""
    with RewardPool(RewardConfig(workers=1, timeout_s=DEADLINE_S)) as p:
        (pid,) = p.worker_pids()
        result: list = []
        runner = threading.Thread(target=lambda: result.extend(p.verify_group(
            "5", ["\\boxed{5}", SYMPY_LOOP, "\\boxed{5}"], ["stop"] * 3)))
        start = time.monotonic()
        runner.start()
        time.sleep(0.3)  # the worker is inside the slow item now
        os.kill(pid, signal.SIGSTOP)
        runner.join(timeout=30)
        assert [s.verdict for s in result] == [Verdict.CORRECT, Verdict.TIMEOUT, Verdict.CORRECT]
        assert "worker killed" in result[1].detail
        # Killed at its deadline, not left hanging until the 30 s join: the bound holds the
        # deadline, the hung item's own wait, and the third item verified on a replacement
        # worker forked after the kill (up to ~1.2 s to start on a loaded 2-core machine; a
        # 1 s margin failed once at 4.03 s).
        assert time.monotonic() - start < 2 * DEADLINE_S + 4.0
        metrics = p.metrics()
        assert metrics["reward/worker_kills"] == 1 and metrics["reward/worker_restarts"] == 1
        assert p.worker_pids() != [pid]
        _still_serves(p)


def test_hung_worker_on_a_single_item_answers_within_deadline():
    with RewardPool(RewardConfig(workers=1, timeout_s=DEADLINE_S)) as p:
        os.kill(p.worker_pids()[0], signal.SIGSTOP)
        start = time.monotonic()
        scored = p.verify_group("5", ["\\boxed{5}"], ["stop"])[0]
        assert time.monotonic() - start < DEADLINE_S + 1.0
        assert scored.verdict == Verdict.TIMEOUT
        _still_serves(p)


def test_dead_worker_gives_error_and_is_replaced():
    with RewardPool(RewardConfig(workers=1, timeout_s=5.0)) as p:
        (pid,) = p.worker_pids()
        killer = threading.Timer(0.3, os.kill, (pid, signal.SIGKILL))
        killer.start()
        start = time.monotonic()
        scored = p.verify_group("5", [SYMPY_LOOP], ["stop"])[0]
        assert time.monotonic() - start < 2.0
        assert scored.verdict == Verdict.ERROR and "died" in scored.detail
        _still_serves(p)
        metrics = p.metrics()
        assert metrics["reward/worker_deaths"] == 1 and metrics["reward/verdict_error"] == 1
        _wait_for(lambda: p.metrics()["reward/worker_restarts"] == 1)


def test_worker_that_died_idle_costs_no_verdict():
    with RewardPool(RewardConfig(workers=1, timeout_s=DEADLINE_S)) as p:
        (pid,) = p.worker_pids()
        os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: not pid_alive(pid))
        _still_serves(p)  # the group goes to the replacement, no `error` verdicts
        metrics = p.metrics()
        assert metrics["reward/worker_deaths"] == 1 and metrics["reward/verdict_error"] == 0
        assert metrics["reward/worker_restarts"] == 1


def test_pool_that_cannot_restart_workers_raises_instead_of_blocking(monkeypatch):
    with RewardPool(RewardConfig(workers=1, timeout_s=DEADLINE_S)) as p:
        def no_more_processes():
            raise OSError("cannot fork")

        monkeypatch.setattr(p, "_launch", no_more_processes)
        (pid,) = p.worker_pids()
        os.kill(pid, signal.SIGKILL)
        _wait_for(lambda: not pid_alive(pid))
        with pytest.raises(RewardPoolError, match="no verifier worker could be started"):
            p.verify_group("5", ["\\boxed{5}"], ["stop"])
        assert p.metrics()["reward/workers_alive"] == 0
