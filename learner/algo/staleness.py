"""Admission control under a staleness bound (AReaL's `StalenessManager`), with over-dispatch.

Rule. With `s = max_staleness`, `B = batch_groups` (groups one optimizer step trains on),
`v` the current policy version (optimizer steps done), `accepted` the groups admitted to the
training buffer so far (cumulative over the run, trained or waiting) and `in_flight` the
groups dispatched to actors and not yet returned, AReaL hands out at most

    capacity = (s + v + 1) * B - (accepted + in_flight)

more groups. Generation is paced so that a group is expected to be trained at most s versions
after the policy that generated it, and little generation is wasted on groups that would be
too old. Pacing is not a proof: a straggler (a slow actor, a slot refilled after a drop at the
same version, out-of-order arrivals) can still come back late. So the bound is enforced twice:
on arrival a group whose `policy_version < v - s` is stale (dropped; the caller records the
reason `stale`), and when the trainer assembles a batch it re-checks `is_stale` (groups are
taken in arrival order) and calls `on_evicted` for what it throws away.

Over-dispatch lives here. Curation drops all-correct / all-wrong groups on arrival, so a
dispatched group yields only ~1/f accepted ones (`f = curation.overdispatch`). We count an
in-flight group as 1/f of an expected accepted group:

    capacity = floor(f * ((s + v + 1) * B - accepted)) - in_flight

With f = 1 this is exactly AReaL's formula. The bound is still stated in *accepted* groups,
so over-dispatch never lets more fresh data pile up than the trainer can use; it only keeps
enough requests in flight that a batch fills despite the drops. A dropped group frees its
slot (`on_return(accepted=False)`), so AReaL's pacing refills it either way; f only hides the
round trip. If more groups than expected pass curation, the surplus waits in the buffer and
may age past `s` (the batch-time check evicts it; `on_evicted` is required, or capacity would
shrink for good). In one seeded run of the unit test's simulation, s = 0 with f = 1.5 finished in
two thirds of the time of f = 1 and threw away ~15% of its dispatches as stale.

`max_staleness = 0` is the synchronous baseline: at version v the bound is `(v + 1) * B`
accepted groups, so nothing is handed out for version v + 1 until batch v is complete (the
version only moves when a step is trained), and every group trained at step v was generated
by policy v (leftovers from v arrive stale and are dropped).

State is plain integers (`to_dict` / `from_dict` for checkpoints). After a restart, groups that
were in flight and will not come back must be released with `on_lost`, and accepted groups
that were never trained with `forget_untrained` (it needs `on_trained` calls for every batch:
counting the buffer instead misses a batch half collected, and any group between the
scheduler's decision and the buffer, and admission then stays short for the rest of the run).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from lppo.core.config.schema import CurationConfig, LearnerConfig


@dataclass
class StalenessManager:
    """Counts dispatched, returned and admitted groups; says how many more may be handed out."""

    max_staleness: int
    """Most policy versions between generation and training (`learner.max_staleness`)."""
    batch_groups: int
    """Accepted groups one optimizer step trains on (`learner.batch_groups`)."""
    overdispatch: float = 1.0
    """Dispatched groups per expected accepted one (>= 1; `curation.overdispatch`)."""
    version: int = 0
    """Current policy version (optimizer steps done)."""
    accepted: int = 0
    """Groups admitted to the training buffer so far, minus evicted ones."""
    in_flight: int = 0
    """Groups dispatched and not yet returned or lost."""
    dispatched: int = 0
    """Groups handed out so far (a metric)."""
    rejected: int = 0
    """Groups that came back and were not admitted (stale, curated, invalid)."""
    lost: int = 0
    """Groups released without a return (actor died, restart)."""
    evicted: int = 0
    """Accepted groups removed from the buffer without training."""
    trained: int = 0
    """Accepted groups an optimizer step has taken (`accepted - trained` wait somewhere)."""
    drops: dict[str, int] = field(default_factory=dict)
    """Rejections by reason (as passed to `on_return`)."""

    def __post_init__(self) -> None:
        if self.max_staleness < 0:
            raise ValueError(f"max_staleness: expected >= 0, got {self.max_staleness}")
        if self.batch_groups < 1:
            raise ValueError(f"batch_groups: expected >= 1, got {self.batch_groups}")
        if not self.overdispatch >= 1.0:
            raise ValueError(f"overdispatch: expected >= 1, got {self.overdispatch}")

    @classmethod
    def from_config(cls, learner: LearnerConfig, curation: CurationConfig) -> StalenessManager:
        """A fresh manager; over-dispatch applies only when curation (which drops) is on."""
        return cls(
            max_staleness=learner.max_staleness,
            batch_groups=learner.batch_groups,
            overdispatch=curation.overdispatch if curation.enabled else 1.0,
        )

    # ---- the rule ---------------------------------------------------------------------------

    @property
    def bound(self) -> int:
        """Most accepted groups allowed at this version: `(s + v + 1) * B`."""
        return (self.max_staleness + self.version + 1) * self.batch_groups

    def capacity(self) -> int:
        """Groups that may be dispatched now (>= 0)."""
        room = self.bound - self.accepted
        return max(0, math.floor(self.overdispatch * room + 1e-9) - self.in_flight)

    def is_stale(self, group_version: int) -> bool:
        """Whether a group generated by `group_version` is too old to train on now."""
        return group_version < self.version - self.max_staleness

    # ---- events -----------------------------------------------------------------------------

    def on_dispatch(self, k: int = 1) -> None:
        """`k` groups were handed out to actors."""
        self._check_count("k", k)
        self.in_flight += k
        self.dispatched += k

    def on_return(self, accepted: bool, reason: str | None = None) -> None:
        """A dispatched group came back: admitted to the buffer, or rejected for `reason`."""
        if self.in_flight <= 0:
            raise ValueError("on_return: no group is in flight (a duplicate or unknown group?)")
        self.in_flight -= 1
        if accepted:
            self.accepted += 1
            return
        self.rejected += 1
        if reason:
            self.drops[reason] = self.drops.get(reason, 0) + 1

    def on_lost(self, k: int = 1) -> None:
        """`k` dispatched groups will never come back (their actor died)."""
        self._check_count("k", k)
        if k > self.in_flight:
            raise ValueError(f"on_lost: {k} lost but only {self.in_flight} in flight")
        self.in_flight -= k
        self.lost += k

    def on_evicted(self, k: int = 1) -> None:
        """`k` accepted groups left the buffer untrained (stale at batch time, lost buffer)."""
        self._check_count("k", k)
        if k > self.accepted:
            raise ValueError(f"on_evicted: {k} evicted but only {self.accepted} accepted")
        self.accepted -= k
        self.evicted += k

    def on_trained(self, k: int) -> None:
        """`k` accepted groups were trained on."""
        self._check_count("k", k)
        if k > self.accepted - self.trained:
            raise ValueError(f"on_trained: {k} trained but only {self.accepted - self.trained} "
                             "accepted groups wait")
        self.trained += k

    def forget_untrained(self) -> int:
        """After a restore: every accepted group not yet trained was in memory the checkpoint
        did not keep (the buffer, a batch being collected, a decision on its way to the
        buffer); they count as evicted, so their admission slots come back. Returns how many."""
        k = self.accepted - self.trained
        self.on_evicted(k)
        return k

    def set_version(self, v: int) -> None:
        """The policy version moved to `v` (after an optimizer step); never backwards."""
        if v < self.version:
            raise ValueError(f"set_version: version {v} is older than {self.version}")
        self.version = v

    @staticmethod
    def _check_count(name: str, k: int) -> None:
        if k < 0:
            raise ValueError(f"{name}: expected >= 0, got {k}")

    # ---- checkpoints ------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able state."""
        out = asdict(self)
        out["drops"] = dict(self.drops)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StalenessManager:
        """Inverse of `to_dict`; unknown keys are errors."""
        return cls(**{**data, "drops": dict(data.get("drops", {}))})
