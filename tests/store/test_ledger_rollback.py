"""`store.rollback`: a resumed learner puts the ledger back to its checkpoint, on both backends."""

from __future__ import annotations

import pytest

from store.ledger import Ledger
from store.records import EvalRecord, SampleStateRecord, StepRecord
from store.rollback import rollback_to_checkpoint
from tests.store.helpers import count, group, partial_groups, setup_run

# The checkpoint at step 3 was taken after s3-0 and s3-1 arrived; s3-2, s3-3 came later.
AT_STEP_3 = {"s3-0", "s3-1"}
# Checkpoints written before `Scheduler.step_attempts` listed every attempt id of the run.
EVERY_SEEN = AT_STEP_3 | {f"s{s}-{i}" for s in (1, 2) for i in range(4)}


@pytest.mark.parametrize("seen", [AT_STEP_3, EVERY_SEEN], ids=["step_attempts", "old_format"])
def test_rollback_to_checkpoint(ledger_url, seen):
    with Ledger(ledger_url) as ledger:
        run, ids = setup_run(ledger, 4)
        for step in range(1, 6):
            # groups arrive at a step (step_seen) and are trained on in the next one
            ledger.write(run, groups=[group(f"s{step}-{i}", ids[i], step=step,
                                            state=SampleStateRecord(attempts=step))
                                      for i in range(4)],
                         steps=[StepRecord(step=step, policy_version=step,
                                           used_attempt_ids=[f"s{step - 1}-0"] if step > 1
                                           else [], used_lp_weights=[1.25] if step > 1 else [])],
                         evals=[EvalRecord(step, "toy", "pass@1", step / 10, 4)])
        states = {ids[0]: SampleStateRecord(attempts=3, ema=0.3, status="solved")}
        removed = rollback_to_checkpoint(ledger, run, 3, seen, states)
        assert removed == {"groups_removed": 10, "groups_unused": 1, "steps_removed": 2,
                           "evals_removed": 2, "states_restored": 1}
        # resent after the resume: the kept one is a duplicate, the removed one is new again
        assert ledger.record_groups(run, [group("s3-0", ids[0], step=3),
                                         group("s3-2", ids[2], step=3)]) == 1
    assert count(ledger_url, "SELECT count(*) FROM rollout_groups") == 11
    assert count(ledger_url, "SELECT count(*) FROM rollouts") == 11 * 4
    assert count(ledger_url, "SELECT count(*) FROM rollout_groups WHERE step_seen = 3") == 3
    assert count(ledger_url, "SELECT count(used_in_step) FROM rollout_groups") == 2
    assert count(ledger_url, "SELECT count(lp_weight) FROM rollout_groups") == 2  # s3-0's: cleared
    assert count(ledger_url, "SELECT max(step) FROM train_steps") == 3
    assert count(ledger_url, "SELECT max(step) FROM eval_results") == 3
    assert count(ledger_url, f"SELECT attempts FROM sample_state WHERE sample_id = {ids[0]}") == 3
    assert count(ledger_url, "SELECT count(*) FROM sample_state WHERE status = 'solved'") == 1
    assert partial_groups(ledger_url) == []
