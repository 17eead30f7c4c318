"""Whether an arrived group is what was dispatched: the checks before anything trusts it.

A rollout group comes from a peer that registered on the learner's socket; the wire layer
(`lppo.core.wire`) has already checked that it is well formed (types, array shapes, finite
rewards). This unit checks it against what the learner handed out and what the model can
take, so that one bad group, buggy or hostile, is a counted `invalid` drop and never a crash
or a poisoned step:

    no completions, or an actor-side error            -> "no completions: <error>"
    other sample, other actor, other prefix            -> "does not match its dispatch"
    not `n` completions; mixed split not as asked      -> "<k> completions, <n> asked" ...
    a completion longer than `max_tokens`              -> "completion of <k> tokens ..."
    token ids outside [0, vocab_size)                  -> "token id <t> outside ..."
    log-probs not finite or above 0                    -> "log-probs ..."
    prompt longer than `max_prompt_tokens`             -> "prompt of <k> tokens ..."
    policy version newer than the learner's            -> "policy version <v> is newer ..."

`reject_reason` returns the first problem found (a message naming it) or None. Pure: numpy
on the group's arrays, the dispatch record's fields and the limits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lppo.core.wire import RolloutGroup


@dataclass(frozen=True)
class Limits:
    """What a group may hold (from the config and the model)."""

    group_size: int
    """Completions per group (`learner.group_size`)."""
    max_tokens: int
    """Longest completion (`actor.sampling.max_tokens`)."""
    max_prompt_tokens: int
    """Longest prompt (`data.max_prompt_tokens`)."""
    vocab_size: int | None
    """Token ids must be below this (the model's embedding rows); None: not checked."""


def _ids_problem(ids: np.ndarray, vocab: int | None, what: str) -> str | None:
    if ids.size and (ids.min() < 0 or (vocab is not None and ids.max() >= vocab)):
        bad = int(ids.min()) if ids.min() < 0 else int(ids.max())
        return f"{what}: token id {bad} outside [0, {vocab})"
    return None


def reject_reason(group: RolloutGroup, *, sample_id: int, actor_id: str, prefix: list[int],
                  guided_n: int, version: int, limits: Limits) -> str | None:
    """The first reason `group` cannot be trained on, or None (see the module docstring).

    `sample_id`, `actor_id`, `prefix` (token ids), `guided_n` (completions asked to see the
    prefix; 0 for an unguided group) are the dispatch's; `version` the learner's now.
    """
    if group.error or not group.completions:
        return f"no completions: {group.error or 'empty group'}"
    if group.sample_id != sample_id or group.actor_id != actor_id:
        return f"does not match its dispatch (sample {group.sample_id} from {group.actor_id!r})"
    if group.prefix_ids.numpy().tolist() != prefix or group.prefix_len != len(prefix):
        return "prefix does not match its dispatch"
    n = len(group.completions)
    if n != limits.group_size:
        return f"{n} completions, {limits.group_size} asked"
    unguided = sum(c.unguided for c in group.completions)
    expected = n - guided_n if prefix and guided_n else 0
    if unguided != expected:
        return f"{unguided} completions without the prefix, {expected} asked"
    if group.policy_version > version:
        return f"policy version {group.policy_version} is newer than the learner's {version}"
    prompt = group.prompt_ids.numpy()
    if prompt.size == 0 or prompt.size > limits.max_prompt_tokens:
        return f"prompt of {prompt.size} tokens (1-{limits.max_prompt_tokens} allowed)"
    found = (_ids_problem(prompt, limits.vocab_size, "prompt")
             or _ids_problem(np.asarray(prefix, dtype=np.int64), limits.vocab_size, "prefix"))
    if found:
        return found
    for i, c in enumerate(group.completions):
        if (problem := _completion_problem(c, limits)) is not None:
            return f"completion {i}: {problem}"
    return None


def _completion_problem(c, limits: Limits) -> str | None:
    ids, logp = c.token_ids.numpy(), c.logprobs.numpy()
    if ids.size > limits.max_tokens:
        return f"{ids.size} tokens, more than max_tokens={limits.max_tokens}"
    if ids.size != logp.size:
        return f"{ids.size} tokens but {logp.size} log-probs"
    if not np.all(np.isfinite(logp)) or np.any(logp > 1e-4):
        return "log-probs must be finite and <= 0"
    return _ids_problem(ids, limits.vocab_size, "completion")
