"""One call per arrived group: the sample's new statistics, status, weight and next prefix.

Rule: the composition, in this order, of
    progress.update              (a mixed group's unguided part, then the group: EMA /
                                  progress of unguided groups, guided history, counters)
    curation.next_status         (retire, park, recheck outcomes; reads the updated counters)
    progress.weighting_progress  (the progress that weights this group, `lp.signal`)
    prefix.choose_ratio          (the prefix ratio of the sample's next group, capped by the
                                  annealed largest ratio)
    guidance.unguided_baseline   (what a prefix term measures the prefix against)

Why a separate unit: the order matters (status and next ratio read the statistics *after*
the group) and the scheduler, the ledger writer and the tests should all see the same
sequence. Pure: nothing here touches the scheduler's queues or the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from learner.algo import curation, guidance, prefix, progress
from learner.algo.progress import SampleStats
from lppo.core.config.schema import LPPOConfig
from lppo.core.vocab import SampleStatus, StatusChange


@dataclass(frozen=True)
class Observation:
    """Everything a group changes about its sample."""

    stats: SampleStats
    """The statistics after the group."""
    status: SampleStatus
    """The status after the group."""
    transition: StatusChange | None
    """Why the status changed (`StatusChange.RETIRED`, ...), None if it did not."""
    progress: float
    """Progress that weights this group (feed `progress.batch_weights`)."""
    weight: float
    """This group's LP weight before batch renormalisation (1 when LP is off)."""
    next_ratio: float
    """Prefix ratio for the sample's next group (0: unguided)."""
    baseline: float = 0.0
    """The sample's unguided pass rate before the group (`guidance.unguided_baseline`): what
    a prefix term measures the prefix against."""


def observe(stats: SampleStats, status: SampleStatus, pass_rate: float, guided: bool,
            cfg: LPPOConfig, ratio: float = 0.0, *, unguided_rate: float | None = None,
            max_ratio: float | None = None) -> Observation:
    """The sample after one group; `guided`/`ratio` as in `progress.update`.

    `pass_rate`: of the completions that saw the prefix (all of them when unguided).
    `unguided_rate`: of a mixed group's completions sampled without the prefix; they move the
    unguided statistics first. `max_ratio`: the largest prefix ratio now (`pg.anneal`), which
    caps the next ratio; parking still needs failures at `pg.max_ratio`.
    """
    new = stats
    if unguided_rate is not None:
        if not guided:
            raise ValueError("unguided_rate: only a guided (mixed) group has an unguided part")
        new = progress.update(new, unguided_rate, False, cfg)
    # Parking reads the configured largest ratio, not the annealed one: failing with the small
    # hint an anneal leaves late in training is no sign that a sample is hopeless.
    new = progress.update(new, pass_rate, guided, cfg, ratio=ratio)
    new_status, reason = curation.next_status(status, new, cfg.curation)
    d = progress.weighting_progress(stats, new, guided, cfg.lp)
    return Observation(
        stats=new,
        status=new_status,
        transition=reason,
        progress=d,
        weight=progress.lp_weight(d, cfg.lp),
        next_ratio=prefix.choose_ratio(new, cfg.pg, max_ratio),
        baseline=guidance.unguided_baseline(stats, cfg.pg),
    )
