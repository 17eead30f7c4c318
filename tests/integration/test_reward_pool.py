"""`RewardPool` with real worker processes: results, rewards, threads, metrics, lifecycle."""

from __future__ import annotations

import os
import threading
import time

import pytest

from actor.reward import RewardPool, RewardPoolError, Verdict
from lppo.core.config.schema import RewardConfig


@pytest.fixture(scope="module")
def pool():
    with RewardPool(RewardConfig(workers=2, timeout_s=5.0, max_output_chars=2_000,
                                 judge_unfinished=True, truncated=-0.5,
                                 format_weight=0.1)) as p:
        yield p


def pid_alive(pid: int) -> bool:
    """The process exists (not yet reaped); shared with the adversarial tests."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_group_verdicts_and_rewards_in_order(pool):
    outputs = ["so \\boxed{0.5}", "\\boxed{1/3}", "no idea", "the answer is 1/2",
               "\\boxed{\\frac{1}{2}}"]
    reasons = ["stop", "stop", "stop", "stop", "length"]
    scored = pool.verify_group("\\frac{1}{2}", outputs, reasons)
    assert [s.verdict for s in scored] == [
        Verdict.CORRECT, Verdict.WRONG, Verdict.NO_ANSWER, Verdict.CORRECT, Verdict.CORRECT
    ]
    assert [s.reward for s in scored] == pytest.approx([1.1, 0.1, 0.0, 1.0, -0.4])
    assert [s.format_ok for s in scored] == [True, True, False, False, True]
    assert [s.finish_reason for s in scored] == reasons
    assert all(s.seconds > 0 and s.detail == "" for s in scored)


def test_by_default_only_marked_answers_of_finished_completions_are_judged():
    outputs = ["we get 1/2", "so the answer is 1/2", "\\boxed{1/2}", "the answer is 1/2",
               "the answer is 1/3"]
    reasons = ["stop", "stop", "stop", "length", "abort"]
    with RewardPool(RewardConfig(workers=1, unfinished=-0.25)) as default:
        scored = default.verify_group("\\frac{1}{2}", outputs, reasons)
        metrics = default.metrics()
    assert [s.verdict for s in scored] == [Verdict.NO_ANSWER, Verdict.CORRECT, Verdict.CORRECT,
                                           Verdict.UNFINISHED, Verdict.UNFINISHED]
    assert [s.reward for s in scored] == [0.0, 1.0, 1.0, -0.25, -0.25]
    assert [s.seconds > 0 for s in scored] == [True, True, True, False, False]  # not verified
    assert metrics["reward/verdict_unfinished"] == 2 and metrics["reward/unfinished"] == 2


def test_empty_group_and_mismatched_lengths(pool):
    assert pool.verify_group("5", [], []) == []
    with pytest.raises(ValueError, match="2 outputs but 1 finish reasons"):
        pool.verify_group("5", ["a", "b"], ["stop"])


def test_long_output_is_cut_and_recorded(pool):
    scored = pool.verify_group("5", ["x = 3. " * 2_000 + "\\boxed{5}", "\\boxed{5}"], ["stop"] * 2)
    assert [s.verdict for s in scored] == [Verdict.CORRECT, Verdict.CORRECT]
    assert [s.truncated_input for s in scored] == [True, False]


def test_unparsable_gold_is_reported_and_remembered(pool):
    before = pool.metrics()
    for _ in range(2):
        scored = pool.verify_group("", ["\\boxed{5}", "\\boxed{6}"], ["stop"] * 2)
        assert {s.verdict for s in scored} == {Verdict.UNPARSABLE_GOLD}
        assert scored[0].detail
    after = pool.metrics()
    assert after["reward/verdict_unparsable_gold"] - before["reward/verdict_unparsable_gold"] == 4
    too_long = pool.verify_group("1" * 3_000, ["\\boxed{1}"], ["stop"])[0]
    assert too_long.verdict == Verdict.UNPARSABLE_GOLD and "max_output_chars" in too_long.detail


def test_gold_with_nul_and_lone_surrogate_is_handled(pool):
    scored = pool.verify_group("5\x00\ud800", ["\\boxed{5}"], ["stop"])[0]
    assert isinstance(scored.verdict, Verdict)


def test_metrics_count_verdicts_and_inputs(pool):
    before = pool.metrics()
    pool.verify_group("7", ["\\boxed{7}", "\\boxed{8}", "y" * 3_000], ["stop", "length", "stop"])
    after = pool.metrics()
    delta = {k: after[k] - before[k] for k in after}
    assert delta["reward/groups"] == 1 and delta["reward/items"] == 3
    assert delta["reward/verdict_correct"] == 1 and delta["reward/verdict_wrong"] == 1
    assert delta["reward/verdict_no_answer"] == 1
    assert delta["reward/truncated_inputs"] == 1 and delta["reward/unfinished"] == 1
    assert delta["reward/format_ok"] == 2 and delta["reward/verify_seconds"] > 0
    assert after["reward/workers_alive"] == 2
    for key in ("reward/worker_kills", "reward/worker_restarts", "reward/verdict_timeout"):
        assert key in after


def test_many_threads_share_the_pool(pool):
    results: dict[int, list] = {}

    def run(k: int) -> None:
        results[k] = pool.verify_group(str(k), [f"\\boxed{{{k}}}", f"\\boxed{{{k + 1}}}"] * 4,
                                       ["stop"] * 8)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == list(range(12))
    for scored in results.values():
        assert [s.verdict for s in scored] == [Verdict.CORRECT, Verdict.WRONG] * 4


def test_submit_returns_futures(pool):
    futures = [pool.submit(str(k), [f"\\boxed{{{k}}}"], ["stop"]) for k in range(6)]
    assert all(f.result(timeout=30)[0].verdict == Verdict.CORRECT for f in futures)


def test_close_stops_workers_and_refuses_work():
    p = RewardPool(RewardConfig(workers=1))
    pids = p.worker_pids()
    assert len(pids) == 1 and pid_alive(pids[0])
    p.close()
    p.close()  # idempotent
    deadline = time.monotonic() + 5
    while pid_alive(pids[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not pid_alive(pids[0])
    with pytest.raises(RewardPoolError, match="closed"):
        p.verify_group("1", ["\\boxed{1}"], ["stop"])
    with pytest.raises(RewardPoolError, match="closed"):
        p.submit("1", ["\\boxed{1}"], ["stop"])


def test_spawn_start_method_works():
    with RewardPool(RewardConfig(workers=1, start_method="spawn")) as p:
        assert p.verify_group("2", ["\\boxed{2}"], ["stop"])[0].verdict == Verdict.CORRECT


def test_workers_that_never_get_ready_fail_the_pool_clearly():
    with pytest.raises(RewardPoolError, match="did not start within"):
        RewardPool(RewardConfig(workers=2, start_timeout_s=0.001))
