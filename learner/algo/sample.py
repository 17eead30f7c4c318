"""One call per arrived group: the sample's new statistics, status, weight and next prefix.

Rule: the composition, in this order, of
    progress.update          (EMA / progress of unguided groups, guided history, counters)
    curation.next_status     (retire, park, recheck outcomes; reads the updated counters)
    progress.group_progress  (the progress that weights this group; 0 for guided groups)
    prefix.choose_ratio      (the prefix ratio of the sample's next group)

Why a separate unit: the order matters (status and next ratio read the statistics *after*
the group) and the scheduler, the ledger writer and the tests should all see the same
sequence. Pure: nothing here touches the scheduler's queues or the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from learner.algo import curation, prefix, progress
from learner.algo.curation import Status
from learner.algo.progress import SampleStats
from lppo.config.schema import LPPOConfig


@dataclass(frozen=True)
class Observation:
    """Everything a group changes about its sample."""

    stats: SampleStats
    """The statistics after the group."""
    status: Status
    """The status after the group."""
    transition: str | None
    """Why the status changed (`curation.RETIRED`, ...), None if it did not."""
    progress: float
    """Progress that weights this group (feed `progress.batch_weights`)."""
    weight: float
    """This group's LP weight before batch renormalisation (1 when LP is off)."""
    next_ratio: float
    """Prefix ratio for the sample's next group (0: unguided)."""


def observe(stats: SampleStats, status: Status, pass_rate: float, guided: bool,
            cfg: LPPOConfig, ratio: float = 0.0) -> Observation:
    """The sample after one group with `pass_rate`; `guided`/`ratio` as in `progress.update`."""
    new = progress.update(stats, pass_rate, guided, cfg, ratio=ratio)
    new_status, reason = curation.next_status(status, new, cfg.curation)
    d = progress.group_progress(new, guided)
    return Observation(
        stats=new,
        status=new_status,
        transition=reason,
        progress=d,
        weight=progress.lp_weight(d, cfg.lp),
        next_ratio=prefix.choose_ratio(new, cfg.pg),
    )
