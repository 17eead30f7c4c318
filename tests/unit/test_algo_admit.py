"""Checks of an arrived group against its dispatch (learner.algo.admit), one per problem."""

from __future__ import annotations

import msgspec
import pytest

from learner.algo.admit import Limits, reject_reason
from lppo.core.wire import Array, Completion, RolloutGroup

LIMITS = Limits(group_size=4, max_tokens=8, max_prompt_tokens=16, vocab_size=100)
PREFIX = [5, 6, 7]


def _comp(tokens=(1, 2, 3), logprobs=None, unguided=False) -> Completion:
    logprobs = [-0.5] * len(tokens) if logprobs is None else logprobs
    return Completion(token_ids=Array.of(list(tokens), "int32"),
                      logprobs=Array.of(logprobs, "float32"), text="x", finish_reason="stop",
                      reward=0.0, verdict="wrong", unguided=unguided)


def _group(**kw) -> RolloutGroup:
    base = dict(attempt_id="a", sample_id=3, actor_id="actor-1", policy_version=2,
                prompt_ids=Array.of([1, 2], "int32"), prefix_ids=Array.of(PREFIX, "int32"),
                prefix_ratio=0.5, prefix_len=3, completions=[_comp() for _ in range(4)],
                gen_seconds=0.1)
    base.update(kw)
    return RolloutGroup(**base)


def _check(group, guided_n=4, version=2, limits=LIMITS):
    return reject_reason(group, sample_id=3, actor_id="actor-1", prefix=PREFIX,
                         guided_n=guided_n, version=version, limits=limits)


def test_a_group_as_dispatched_passes():
    assert _check(_group()) is None
    mixed = _group(completions=[_comp(), _comp(), _comp(unguided=True), _comp(unguided=True)])
    assert _check(mixed, guided_n=2) is None


@pytest.mark.parametrize(("change", "words"), [
    ({"completions": []}, "no completions"),
    ({"error": "prompt too long", "completions": []}, "prompt too long"),
    ({"sample_id": 4}, "does not match its dispatch"),
    ({"actor_id": "actor-2"}, "does not match its dispatch"),
    ({"prefix_ids": Array.of([5, 6, 8], "int32")}, "prefix does not match"),
    ({"prefix_len": 2}, "prefix does not match"),
    ({"completions": [_comp() for _ in range(64)]}, "64 completions, 4 asked"),
    ({"completions": [_comp(), _comp(), _comp(), _comp(unguided=True)]}, "without the prefix"),
    ({"policy_version": 2**63 - 1}, "newer than the learner's 2"),
    ({"prompt_ids": Array.of(list(range(17)), "int32")}, "prompt of 17 tokens"),
    ({"prompt_ids": Array.of([], "int32")}, "prompt of 0 tokens"),
    ({"prompt_ids": Array.of([1, 100], "int32")}, "prompt: token id 100 outside"),
    ({"completions": [_comp(range(4000))] + [_comp()] * 3}, "4000 tokens"),
    ({"completions": [_comp((1, -3))] + [_comp()] * 3}, "token id -3 outside"),
    ({"completions": [_comp((1, 10**6))] + [_comp()] * 3}, "token id 1000000 outside"),
    ({"completions": [_comp((1, 2), [0.0, float("nan")])] + [_comp()] * 3}, "log-probs"),
    ({"completions": [_comp((1, 2), [0.0, 3.0])] + [_comp()] * 3}, "log-probs"),
])
def test_each_problem_is_named(change, words):
    reason = _check(msgspec.structs.replace(_group(), **change))
    assert reason is not None and words in reason


def test_unknown_vocabulary_is_not_checked():
    limits = Limits(group_size=4, max_tokens=8, max_prompt_tokens=16, vocab_size=None)
    big = msgspec.structs.replace(_group(), completions=[_comp((1, 10**6))] + [_comp()] * 3)
    assert _check(big, limits=limits) is None
