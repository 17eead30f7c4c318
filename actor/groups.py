"""A work item's engine requests, and the rollout group made of their results.

    requests = engine_requests(item, prompt_ids, prefix_ids)   1 request, or 2 for a mixed group
    group = rollout_group(item, ...)                            the wire group, once verified

A work item asks for `n` completions of prompt + prefix. A mixed group (`WorkItem.guided` < n,
`lppo.pg.guided_share`) is two engine requests: `guided` completions of prompt + prefix under
the item's attempt id, the rest of the prompt alone under `attempt id + UNGUIDED_SUFFIX`. The
group lists the completions in that order, each marked `unguided` or not. The actor loop
(`actor/loop.py`) and the in-process ablation bench (`bench/ablation.py`) both use these, so
both sample and package groups the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from actor.engine import GenRequest, GenResult, GenSample
from lppo.core.wire import Array, Completion, RolloutGroup, WorkItem

UNGUIDED_SUFFIX = "/unguided"
"""Engine request id suffix of a mixed group's completions sampled without the prefix."""


def engine_requests(item: WorkItem, prompt_ids: list[int],
                    prefix_ids: list[int]) -> list[GenRequest]:
    """The engine requests of one work item, the one with the prefix first."""
    guided = item.n if item.guided is None or not prefix_ids else min(item.guided, item.n)
    requests = [GenRequest(item.attempt_id, prompt_ids + prefix_ids, guided)]
    if guided < item.n:
        requests.append(GenRequest(item.attempt_id + UNGUIDED_SUFFIX, prompt_ids,
                                   item.n - guided))
    return requests


def samples_of(parts: Mapping[str, GenResult]) -> list[tuple[GenSample, bool]]:
    """(completion, sampled without the prefix) for every completion of a work item's
    finished requests, in request order."""
    return [(x, rid.endswith(UNGUIDED_SUFFIX)) for rid, result in parts.items()
            for x in result.samples]


def rollout_group(item: WorkItem, actor_id: str, version: int, prompt_ids: list[int],
                  prefix_ids: list[int], parts: Mapping[str, GenResult], scored: Sequence,
                  gen_seconds: float, verify_seconds: float) -> RolloutGroup:
    """The wire group of a work item: its completions with their verdicts (`scored`, one per
    completion of `samples_of(parts)`)."""
    completions = [
        Completion(
            token_ids=Array.of(np.asarray(sample.token_ids), "int32"),
            logprobs=Array.of(np.asarray(sample.logprobs), "float32"),
            text=sample.text, finish_reason=sample.finish_reason,
            reward=float(score.reward), verdict=str(score.verdict), unguided=unguided,
        )
        for (sample, unguided), score in zip(samples_of(parts), scored, strict=True)
    ]
    return RolloutGroup(
        attempt_id=item.attempt_id, sample_id=item.sample_id, actor_id=actor_id,
        policy_version=version, prompt_ids=Array.of(prompt_ids, "int32"),
        prefix_ids=Array.of(prefix_ids, "int32"), prefix_ratio=item.prefix_ratio,
        prefix_len=len(prefix_ids), completions=completions, gen_seconds=gen_seconds,
        verify_seconds=verify_seconds,
    )
