"""DAPO's soft overlong punishment and the truncation mask (learner/algo/overlong.py)."""

from __future__ import annotations

import pytest

from learner.algo.overlong import loss_masked, overlong_penalty, penalties
from lppo.core.config.actor import RewardConfig


@pytest.mark.parametrize(("length", "expected"), [
    (0, 0.0), (96, 0.0),          # up to L_max - L_cache: no penalty
    (97, -1 / 32 * 0.5), (112, -0.25), (128, -0.5),  # linear in the buffer, P at L_max
    (129, -0.5), (1000, -0.5),    # beyond L_max (cannot happen from vLLM): the full penalty
])
def test_the_penalty_grows_linearly_through_the_buffer(length, expected):
    assert overlong_penalty(length, max_tokens=128, buffer=32, penalty=0.5) == pytest.approx(expected)


def test_off_when_no_buffer_or_no_penalty():
    assert overlong_penalty(128, 128, 0, 1.0) == 0.0
    assert overlong_penalty(128, 128, 32, 0.0) == 0.0
    assert penalties([10, 128], 128, RewardConfig()) == [0.0, 0.0]  # the default: off
    assert penalties([10, 128], 128, RewardConfig(overlong_buffer=64)) == [0.0, -1.0]


def test_only_truncated_completions_are_masked_and_only_when_asked():
    reasons = ["stop", "length", "abort", "length"]
    assert loss_masked(reasons, True) == [False, True, False, True]
    assert loss_masked(reasons, False) == [False] * 4
