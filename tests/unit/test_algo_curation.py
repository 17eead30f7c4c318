"""Online curation (learner.algo.curation): drop reasons, status transitions, recheck share."""

from __future__ import annotations

import pytest

from learner.algo.curation import (
    drop_reason,
    is_dispatchable,
    next_status,
    recheck_count,
)
from learner.algo.progress import SampleStats, update
from lppo.core.config.schema import CurationConfig, LPPOConfig
from lppo.core.vocab import StatusChange

RETIRED, PARKED = StatusChange.RETIRED, StatusChange.PARKED
RECHECK_FAILED, RECHECK_SOLVED = StatusChange.RECHECK_FAILED, StatusChange.RECHECK_SOLVED

CUR = CurationConfig()
CFG = LPPOConfig()


# ---- drop reasons --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rewards", "flags", "reason"),
    [
        ([1.0, 1.0, 1.0], [True, True, True], "all_correct"),
        ([0.0, 0.0], [False, False], "all_wrong"),
        ([1.0, 0.0, 0.0], [True, False, False], None),
        ([1.1, 0.9], [True, True], "all_correct"),      # unequal rewards, equal verdicts
        ([0.0, -0.5], [False, False], "all_wrong"),
        ([1.0], [True], "all_correct"),                 # a group of one
        ([], [], "invalid"),
    ],
)
def test_drop_reason(rewards, flags, reason):
    assert drop_reason(rewards, flags, CUR) == reason


def test_drop_reason_switches():
    assert drop_reason([1.0, 1.0], [True, True], CurationConfig(drop_all_correct=False)) is None
    assert drop_reason([0.0, 0.0], [False, False], CurationConfig(drop_all_wrong=False)) is None
    off = CurationConfig(enabled=False)
    assert drop_reason([1.0, 1.0], [True, True], off) is None
    assert drop_reason([0.0, 0.0], [False, False], off) is None
    assert drop_reason([], [], off) == "invalid"    # nothing to train on, whatever the config
    with pytest.raises(ValueError):
        drop_reason([1.0, 0.0], [True], CUR)


# ---- status ---------------------------------------------------------------------------------


def _feed(groups, status="active", cur=CUR):
    """Feed (pass_rate, ratio) groups; return the (status, reason) after each."""
    s, out = SampleStats(), []
    for p, r in groups:
        s = update(s, p, r > 0, CFG, ratio=r)
        status, reason = next_status(status, s, cur)
        out.append((status, reason))
    return out


def test_retire_after_k_consecutive_all_correct_unguided_groups():
    out = _feed([(1.0, 0.0)] * 3)
    assert out == [("active", None), ("active", None), ("solved", RETIRED)]


def test_streak_is_broken_by_a_failure_and_ignores_guided_successes():
    out = _feed([(1.0, 0.0), (1.0, 0.0), (0.875, 0.0), (1.0, 0.0), (1.0, 0.5), (1.0, 0.0)])
    assert [s for s, _ in out] == ["active"] * 6
    out = _feed([(1.0, 0.0)] * 2 + [(1.0, 0.5)] + [(1.0, 0.0)])
    assert out[-1] == ("solved", RETIRED)


def test_park_after_k_all_wrong_groups_at_the_largest_prefix():
    groups = [(0.0, 0.0), (0.0, 0.5), (0.0, 0.6), (0.0, 0.7), (0.0, 0.8), (0.0, 0.9),
              (0.0, 0.9), (0.0, 0.9)]
    out = _feed(groups)
    assert out[:-1] == [("active", None)] * 7
    assert out[-1] == ("parked", PARKED)


def test_a_success_at_max_resets_the_park_count():
    out = _feed([(0.0, 0.9), (0.0, 0.9), (0.125, 0.9), (0.0, 0.9), (0.0, 0.9)])
    assert [s for s, _ in out] == ["active"] * 5


def test_rechecks():
    solved = update(SampleStats(), 1.0, False, CFG)
    assert next_status("solved", solved, CUR) == ("solved", None)
    assert next_status("solved", update(solved, 0.875, False, CFG), CUR) == (
        "active", RECHECK_FAILED)
    parked = update(SampleStats(), 0.0, True, CFG, ratio=0.9)
    assert next_status("parked", parked, CUR) == ("parked", None)
    assert next_status("parked", update(parked, 0.125, True, CFG, ratio=0.9), CUR) == (
        "active", RECHECK_SOLVED)


def test_recheck_failed_sample_must_earn_retirement_again():
    out = _feed([(1.0, 0.0)] * 3 + [(0.5, 0.0), (1.0, 0.0), (1.0, 0.0), (1.0, 0.0)])
    assert [s for s, _ in out] == ["active", "active", "solved", "active", "active", "active",
                                   "solved"]


def test_status_with_curation_off_or_nothing_seen():
    off = CurationConfig(enabled=False)
    assert [s for s, _ in _feed([(1.0, 0.0)] * 5, cur=off)] == ["active"] * 5
    assert next_status("solved", update(SampleStats(), 1.0, False, CFG), off) == (
        "active", "curation_off")
    assert next_status("parked", SampleStats(), CUR) == ("parked", None)
    with pytest.raises(ValueError):
        next_status("retired", SampleStats(), CUR)


def test_retire_after_one():
    assert _feed([(1.0, 0.0)], cur=CurationConfig(retire_after=1)) == [("solved", RETIRED)]


def test_is_dispatchable():
    assert is_dispatchable("active")
    assert not is_dispatchable("solved") and not is_dispatchable("parked")


# ---- recheck share --------------------------------------------------------------------------


def test_recheck_count_by_hand():
    # fraction 0.05, work in lots of 10: floor(0.5) = 0, floor(1.0) - 0 = 1, floor(1.5) - 1 = 0
    assert recheck_count(10, 0, 0, 0.05) == 0
    assert recheck_count(10, 10, 0, 0.05) == 1
    assert recheck_count(10, 20, 1, 0.05) == 0
    assert recheck_count(10, 30, 1, 0.05) == 1


def test_recheck_count_keeps_the_share_over_a_run():
    dispatched = rechecked = 0
    for n in [3, 7, 1, 12, 5] * 40:
        k = recheck_count(n, dispatched, rechecked, 0.05)
        assert 0 <= k <= n
        dispatched += n
        rechecked += k
    assert rechecked == int(0.05 * dispatched)


def test_recheck_count_edges():
    assert recheck_count(4, 100, 0, 0.0) == 0
    assert recheck_count(4, 100, 100, 1.0) == 4
    assert recheck_count(2, 100, 0, 0.05) == 2       # behind (empty pool earlier): clamped to n
    assert recheck_count(0, 100, 0, 0.05) == 0
    assert recheck_count(5, 10, 9, 0.05) == 0        # ahead: never negative
    with pytest.raises(ValueError):
        recheck_count(-1, 0, 0, 0.05)
    with pytest.raises(ValueError):
        recheck_count(1, 0, 0, 1.5)


def test_an_all_correct_guided_group_that_teaches_its_prefix_is_kept():
    cfg = CurationConfig()
    assert drop_reason([1.0] * 4, [True] * 4, cfg, teaches_prefix=True) is None
    assert drop_reason([0.0] * 4, [False] * 4, cfg, teaches_prefix=True) == "all_wrong"
    assert drop_reason([1.0] * 4, [True] * 4, cfg) == "all_correct"
