"""Verdicts, the reward table (`reward_for`) and `RewardConfig` validation."""

from __future__ import annotations

import typing

import pytest
from pydantic import ValidationError

from actor.reward.verdict import Verdict, reward_for
from actor.reward.verify import DeadlineExceeded, soft_deadline
from lppo.core import vocab
from lppo.core.config.schema import RewardConfig
from lppo.core.wire import Completion


def test_one_vocabulary_for_the_wire_and_the_reward_table():
    assert typing.get_type_hints(Completion)["verdict"] is Verdict
    assert Verdict is vocab.Verdict
    cfg = RewardConfig()
    assert all(cfg.value_of(v) == getattr(cfg, v.value) for v in Verdict)


def test_unfinished_is_not_a_truncated_override():
    with pytest.raises(ValidationError, match="actor.reward.unfinished"):
        RewardConfig(judge_unfinished=True, truncated_overrides={"unfinished": 1.0})


def test_reward_table_plain():
    cfg = RewardConfig(correct=1.0, wrong=-0.5, no_answer=-1.0, timeout=0.1, error=0.2,
                       unparsable_gold=0.3, unfinished=-0.7)
    expected = {"correct": 1.0, "wrong": -0.5, "no_answer": -1.0, "timeout": 0.1, "error": 0.2,
                "unparsable_gold": 0.3, "unfinished": -0.7}
    for verdict in Verdict:
        assert reward_for(cfg, verdict, "stop", False) == expected[verdict.value]


@pytest.mark.parametrize("reason", ["length", "abort"])
def test_unfinished_completions(reason):
    cfg = RewardConfig(judge_unfinished=True, truncated=-1.0,
                       truncated_overrides={"correct": 0.5})
    assert reward_for(cfg, Verdict.CORRECT, reason, False) == 0.5
    assert reward_for(cfg, Verdict.WRONG, reason, False) == -1.0
    assert reward_for(cfg, Verdict.CORRECT, "stop", False) == 1.0


def test_judged_unfinished_without_overrides_uses_the_table():
    cfg = RewardConfig(judge_unfinished=True)
    assert reward_for(cfg, Verdict.CORRECT, "length", False) == 1.0


def test_an_unjudged_unfinished_completion_takes_its_own_reward():
    assert reward_for(RewardConfig(), Verdict.UNFINISHED, "length", False) == 0.0
    assert reward_for(RewardConfig(unfinished=-0.5), Verdict.UNFINISHED, "abort", False) == -0.5


@pytest.mark.parametrize("bad", [{"truncated": -1.0}, {"truncated_overrides": {"wrong": -1.0}}])
def test_truncation_rewards_need_judged_unfinished_completions(bad):
    with pytest.raises(ValidationError, match="judge_unfinished = true"):
        RewardConfig(**bad)


def test_format_reward_is_off_by_default_and_additive():
    assert reward_for(RewardConfig(), Verdict.WRONG, "stop", True) == 0.0
    cfg = RewardConfig(format_weight=0.1)
    assert reward_for(cfg, Verdict.WRONG, "stop", True) == pytest.approx(0.1)
    assert reward_for(cfg, Verdict.CORRECT, "stop", True) == pytest.approx(1.1)
    assert reward_for(cfg, Verdict.CORRECT, "stop", False) == 1.0


@pytest.mark.parametrize(
    "bad",
    [
        {"truncated_overrides": {"right": 1.0}},
        {"start_method": "fork"},
        {"workers": 0},
        {"timeout_s": 0},
        {"format_weight": -1},
        {"max_output_chars": 10},
    ],
)
def test_reward_config_rejects(bad):
    with pytest.raises(ValidationError):
        RewardConfig(**bad)


def test_soft_deadline_interrupts_python_loops():
    with pytest.raises(DeadlineExceeded), soft_deadline(0.05):
        while True:
            pass
    with soft_deadline(1.0):
        total = sum(range(1000))
    assert total == 499500
