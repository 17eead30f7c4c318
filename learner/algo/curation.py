"""Online curation: which groups enter a batch, and each sample's status (docs/design.md).

Rules.
1. Drop. A group whose completions are all correct (`all_correct`) or all wrong
   (`all_wrong`) is left out of the batch, except an all-correct guided group whose prefix is
   taught (`pg.off_policy_loss`, `pg.sft_coef`); each side can be switched off
   (`curation.drop_all_correct`, `curation.drop_all_wrong`), and `curation.enabled = false`
   keeps every group. A group with no completions is `invalid` whatever the config.
2. Status. A sample is `active`, `solved` (retired) or `parked`:

       active -> solved   after `retire_after` consecutive all-correct *unguided* groups
       active -> parked   after `park_after` consecutive all-wrong groups at the largest
                          prefix ratio (`pg.max_ratio`)
       solved -> active   when a recheck group is not all correct      (`recheck_failed`)
       parked -> active   when a recheck group has a correct completion (`recheck_solved`)

   With curation off, every sample stays active.
3. Recheck. A share `recheck_fraction` of dispatched work goes to solved/parked samples;
   `recheck_count` turns that share into a count per dispatch, deterministically (error
   diffusion over the run's totals, so checkpointed counters resume the same sequence).

Why. All-correct and all-wrong groups have zero group-relative advantage: they cost a
forward/backward and add nothing but noise to the token mean. Retiring samples the policy
reliably solves and parking those it cannot solve even with most of the expert solution shown
moves generation to samples at the edge of its ability. Rechecks catch forgetting (a solved
sample fails again) and late breakthroughs (a parked one becomes solvable).

A group's correctness comes from its completions' verdicts (`correct_flags`), not from reward
values: rewards may carry format bonuses or truncation penalties that make equal verdicts
unequal in reward. Status reads the counters of `progress.SampleStats` after `update`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from learner.algo.progress import SampleStats
from lppo.core.config.schema import CurationConfig
from lppo.core.vocab import DropReason, SampleStatus, StatusChange

ACTIVE, SOLVED, PARKED = SampleStatus.ACTIVE, SampleStatus.SOLVED, SampleStatus.PARKED


def drop_reason(rewards: Sequence[float], correct_flags: Sequence[bool],
                cfg: CurationConfig, teaches_prefix: bool = False) -> DropReason | None:
    """Why a group is left out of the batch, or None to train on it (rule 1).

    `teaches_prefix`: a guided group whose prefix tokens get a term (`learner.algo.guidance`);
    such a group is kept when all correct: its completions carry no signal, its prefix does.
    """
    if len(rewards) != len(correct_flags):
        raise ValueError(
            f"correct_flags: expected one per reward ({len(rewards)}), got {len(correct_flags)}"
        )
    if not rewards:
        return DropReason.INVALID
    if not cfg.enabled:
        return None
    if cfg.drop_all_correct and all(correct_flags) and not teaches_prefix:
        return DropReason.ALL_CORRECT
    if cfg.drop_all_wrong and not any(correct_flags):
        return DropReason.ALL_WRONG
    return None


def next_status(status: SampleStatus, stats: SampleStats,
                cfg: CurationConfig) -> tuple[SampleStatus, StatusChange | None]:
    """(new status, why it changed or None) after the group that produced `stats`.

    `stats` is the sample's statistics *after* `progress.update` with that group; its last
    group (guided or not, `stats.last_ratio`) is the one judged.
    """
    if status not in tuple(SampleStatus):
        raise ValueError(f"status: expected one of {[s.value for s in SampleStatus]}, "
                         f"got {status!r}")
    status = SampleStatus(status)
    if not cfg.enabled:
        return ACTIVE, None if status == ACTIVE else StatusChange.CURATION_OFF
    p = stats.last_group_pass_rate
    if p is None:
        return status, None
    if status == ACTIVE:
        if stats.consecutive_solved >= cfg.retire_after:
            return SOLVED, StatusChange.RETIRED
        if stats.consecutive_failed_at_max >= cfg.park_after:
            return PARKED, StatusChange.PARKED
        return ACTIVE, None
    if status == SOLVED:
        return (ACTIVE, StatusChange.RECHECK_FAILED) if p < 1.0 else (SOLVED, None)
    return (ACTIVE, StatusChange.RECHECK_SOLVED) if p > 0.0 else (PARKED, None)


def recheck_count(n: int, dispatched_total: int, rechecked_total: int, fraction: float) -> int:
    """How many of the next `n` work items to draw from solved/parked samples.

    Keeps `rechecked_total` at `floor(fraction * dispatched_total)` over the run: returns
    `floor(fraction * (dispatched_total + n)) - rechecked_total`, clamped to [0, n]. The
    caller takes fewer when the solved/parked pool is smaller, and adds what it dispatched to
    both totals.
    """
    if n < 0 or dispatched_total < 0 or rechecked_total < 0:
        raise ValueError(f"recheck_count: counts must be >= 0, got {n}, {dispatched_total}, "
                         f"{rechecked_total}")
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction: expected 0 <= fraction <= 1, got {fraction}")
    due = math.floor(fraction * (dispatched_total + n) + 1e-9) - rechecked_total
    return min(max(due, 0), n)


def is_dispatchable(status: SampleStatus) -> bool:
    """Whether a sample is drawn in the ordinary (non-recheck) share of work."""
    return status == ACTIVE
