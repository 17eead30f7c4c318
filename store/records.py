"""Plain records the learner hands to the ledger writer, and the one wire converter.

The writer API takes these frozen dataclasses, not wire structs, so `store/` does not depend on
the message format and the learner can build records from whatever it holds. Derived numbers
(n, n_correct, pass rate, tokens) are properties computed from the rollouts, so a record can
never disagree with itself. `group_from_wire` turns an `lppo.core.wire.RolloutGroup` plus the
learner's decisions (step, drop reason, LP weight, new sample state) into a `GroupRecord`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lppo.core.vocab import DropReason, SampleStatus, Verdict
from store.models import DROP_REASONS, STATUSES

if TYPE_CHECKING:
    from lppo.core.wire import RolloutGroup as WireGroup


def problem_hash(text: str) -> str:
    """sha256 of the whitespace-normalised problem text: equal problems, equal hashes."""
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class SampleRecord:
    """One problem to import: what a dataset row becomes."""

    dataset: str
    source_key: str
    problem: str
    answer: str
    solution: str | None = None
    solution_tokens: int | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RolloutRecord:
    """One completion of a group."""

    text: str | None
    length: int
    """Completion tokens (the prefix is not part of a completion)."""
    reward: float
    verdict: str
    finish_reason: str
    with_prefix: bool = False
    """Sampled with the group's prefix (not for unguided groups, nor a mixed group's rest)."""
    overlong_penalty: float = 0.0
    """DAPO's soft overlong penalty the learner adds to `reward` (learner/algo/overlong.py)."""
    loss_masked: bool = False
    """Carries no policy loss (a truncated completion under `learner.mask_truncated`)."""

    @property
    def correct(self) -> bool:
        return self.verdict == Verdict.CORRECT


@dataclass(frozen=True, slots=True)
class SampleStateRecord:
    """A sample's LPPO state after a group; stored in `sample_state` and on the group row."""

    attempts: int = 0
    guided_attempts: int = 0
    pass_rate: float | None = None
    guided_pass_rate: float | None = None
    ema: float | None = None
    ema_prev: float | None = None
    progress: float = 0.0
    weight: float = 1.0
    prefix_ratio: float = 0.0
    prefix_len: int = 0
    status: str = SampleStatus.ACTIVE
    status_since_step: int = 0
    last_seen_step: int | None = None
    solved_streak: int = 0
    failed_streak: int = 0

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"sample status must be one of {STATUSES}, got {self.status!r}")


@dataclass(frozen=True, slots=True)
class GroupRecord:
    """One attempt (n completions of one sample), with what the learner decided about it.

    An attempt the actor could not sample (wire `error`) has no rollouts and must be dropped
    as `invalid`; its pass rate reads 0.

    `state` is the sample's state right after this group; the writer stores it in the same
    transaction as the group, or not at all when the attempt id was already recorded.
    """

    attempt_id: str
    sample_id: int
    actor_id: str
    step_seen: int
    policy_version: int
    rollouts: Sequence[RolloutRecord]
    prefix_ratio: float = 0.0
    prefix_len: int = 0
    lp_weight: float | None = None
    used_in_step: int | None = None
    dropped_reason: str | None = None
    state: SampleStateRecord | None = None
    guided_n: int = 0
    """Completions sampled with the prefix (`rollout_groups.guided_n`)."""
    selection: str | None = None
    """Why its sample was dispatched (`rollout_groups.selection`)."""
    selection_score: float | None = None
    gen_s: float = 0.0
    verify_s: float = 0.0
    received_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        if not self.rollouts and self.dropped_reason != DropReason.INVALID:
            raise ValueError(f"group {self.attempt_id!r} has no rollouts and is not 'invalid'")
        if self.dropped_reason is not None and self.dropped_reason not in DROP_REASONS:
            raise ValueError(
                f"dropped_reason must be one of {DROP_REASONS}, got {self.dropped_reason!r}"
            )

    @property
    def n(self) -> int:
        return len(self.rollouts)

    @property
    def n_correct(self) -> int:
        return sum(r.correct for r in self.rollouts)

    @property
    def unguided_correct(self) -> int:
        """Correct completions sampled without a prefix: all of an unguided group's, a mixed
        group's unguided part (`rollout_groups.unguided_correct`)."""
        if self.prefix_ratio == 0.0:
            return self.n_correct
        return sum(r.correct for r in self.rollouts if not r.with_prefix) if self.prefix_len else 0

    @property
    def pass_rate(self) -> float:
        return self.n_correct / self.n if self.n else 0.0

    @property
    def mean_reward(self) -> float:
        return sum(r.reward for r in self.rollouts) / self.n if self.n else 0.0

    @property
    def tokens(self) -> int:
        return sum(r.length for r in self.rollouts)


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One optimizer step. `used_attempt_ids` get `used_in_step = step` in the same commit,
    and `lp_weight = used_lp_weights[i]` when those are given: the LP weight applied to each
    group's advantages, after the batch renormalisation."""

    step: int
    policy_version: int
    loss: float | None = None
    kl: float | None = None
    entropy: float | None = None
    grad_norm: float | None = None
    lr: float | None = None
    tokens: int = 0
    mean_staleness: float | None = None
    groups_used: int = 0
    groups_dropped: int = 0
    samples_active: int | None = None
    samples_solved: int | None = None
    samples_parked: int | None = None
    gen_wait_s: float = 0.0
    train_s: float = 0.0
    sync_s: float = 0.0
    metrics: Mapping[str, Any] = field(default_factory=dict)
    used_attempt_ids: Sequence[str] = ()
    used_lp_weights: Sequence[float] = ()
    """Empty, or one per `used_attempt_ids` (empty leaves their `lp_weight` as written)."""
    used_prefix_terms: Sequence[str | None] = ()
    """Empty, or one per `used_attempt_ids`: the prefix term applied (None: unguided)."""
    used_prefix_advantages: Sequence[float | None] = ()
    """Empty, or one per `used_attempt_ids`: the off-policy prefix advantage (None: none)."""
    created_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        for name in ("used_lp_weights", "used_prefix_terms", "used_prefix_advantages"):
            values = getattr(self, name)
            if values and len(values) != len(self.used_attempt_ids):
                raise ValueError(f"step {self.step}: {len(values)} {name} for "
                                 f"{len(self.used_attempt_ids)} used attempts")


@dataclass(frozen=True, slots=True)
class EvalRecord:
    """One metric of one benchmark at one step."""

    step: int
    benchmark: str
    metric: str
    value: float
    n: int
    created_at: float = field(default_factory=time.time)


def group_from_wire(
    msg: WireGroup,
    *,
    step_seen: int,
    lp_weight: float | None = None,
    used_in_step: int | None = None,
    dropped_reason: str | None = None,
    state: SampleStateRecord | None = None,
    received_at: float | None = None,
    selection: str | None = None,
    selection_score: float | None = None,
    overlong_penalties: Sequence[float] | None = None,
    loss_masked: Sequence[bool] | None = None,
) -> GroupRecord:
    """A `GroupRecord` from a received `lppo.core.wire.RolloutGroup` and the learner's decisions.

    A group with an `error` (nothing sampled) is dropped as `invalid` whatever was asked.
    `overlong_penalties` and `loss_masked`: per completion, the learner's shaping of it."""
    n = len(msg.completions)
    penalties = list(overlong_penalties) if overlong_penalties is not None else [0.0] * n
    masked = list(loss_masked) if loss_masked is not None else [False] * n
    rollouts = [
        RolloutRecord(
            text=c.text,
            length=int(c.token_ids.shape[0]) if c.token_ids.shape else 0,
            reward=float(c.reward),
            verdict=c.verdict,
            finish_reason=c.finish_reason,
            with_prefix=msg.prefix_len > 0 and not c.unguided,
            overlong_penalty=float(p),
            loss_masked=bool(m),
        )
        for c, p, m in zip(msg.completions, penalties, masked, strict=True)
    ]
    guided_n = sum(not c.unguided for c in msg.completions) if msg.prefix_ratio > 0 else 0
    return GroupRecord(
        attempt_id=msg.attempt_id,
        sample_id=msg.sample_id,
        actor_id=msg.actor_id,
        step_seen=step_seen,
        policy_version=msg.policy_version,
        rollouts=rollouts,
        prefix_ratio=msg.prefix_ratio,
        prefix_len=msg.prefix_len,
        lp_weight=lp_weight,
        used_in_step=used_in_step,
        dropped_reason=DropReason.INVALID if msg.error else dropped_reason,
        state=state,
        guided_n=guided_n,
        selection=selection,
        selection_score=selection_score,
        gen_s=msg.gen_seconds,
        verify_s=msg.verify_seconds,
        received_at=time.time() if received_at is None else received_at,
    )
