"""Put a run's ledger back to a learner checkpoint, so `--resume` leaves ledger and checkpoint
consistent.

A learner that dies after checkpoint S has usually recorded more: groups that arrived after
the checkpoint's snapshot, train steps S+1.., and the sample states those groups produced.
The resumed learner starts again from S, so in one transaction:

- groups the checkpoint's scheduler had not seen are deleted with their rollouts: those
  recorded at a later step than S, and those recorded at step S whose attempt id is not among
  the checkpoint's `step_attempts` (the ids that arrived while step S was current; every group
  of an earlier step was seen). An actor resending one is answered as a duplicate of nothing
  and the group is simply lost, as work in flight at a crash is;
- `used_in_step` and the applied `lp_weight` and prefix terms are cleared where the group was
  used after S
  (those groups were waiting in the trainer's buffer, which a checkpoint does not keep);
- train steps and eval results after S are deleted;
- every sample's `sample_state` row is rewritten from the checkpoint's scheduler state.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

import sqlalchemy as sa

from store.ledger import IN_CHUNK, Ledger
from store.models import EvalResult, Rollout, RolloutGroup, TrainStep
from store.records import SampleStateRecord


def rollback_to_checkpoint(
    ledger: Ledger,
    run_id: int,
    step: int,
    step_attempts: Collection[str],
    states: Mapping[int, SampleStateRecord],
) -> dict[str, int]:
    """Apply the rules of the module docstring; returns counts of what changed.

    `step_attempts`: attempt ids seen at step `step` (a superset, such as every id of the run
    from an older checkpoint, gives the same result)."""
    seen = set(step_attempts)
    G = RolloutGroup
    with ledger.engine.begin() as conn:
        rows = conn.execute(sa.select(G.id, G.attempt_id, G.step_seen)
                            .where(G.run_id == run_id, G.step_seen >= step)).all()
        doomed = [r.id for r in rows if r.step_seen > step or r.attempt_id not in seen]
        for start in range(0, len(doomed), IN_CHUNK):
            chunk = doomed[start:start + IN_CHUNK]
            conn.execute(sa.delete(Rollout).where(Rollout.group_id.in_(chunk)))
            conn.execute(sa.delete(G).where(G.id.in_(chunk)))
        unused = conn.execute(
            sa.update(G).where(G.run_id == run_id, G.used_in_step > step)
            .values(used_in_step=None, lp_weight=None, prefix_term=None,
                    prefix_advantage=None)
        ).rowcount
        steps = conn.execute(
            sa.delete(TrainStep).where(TrainStep.run_id == run_id, TrainStep.step > step)
        ).rowcount
        evals = conn.execute(
            sa.delete(EvalResult).where(EvalResult.run_id == run_id, EvalResult.step > step)
        ).rowcount
        ledger.upsert_states(conn, run_id, states)
    return {"groups_removed": len(doomed), "groups_unused": unused, "steps_removed": steps,
            "evals_removed": evals, "states_restored": len(states)}
