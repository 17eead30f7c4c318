"""`store.rollback`: a resumed learner puts the ledger back to its checkpoint, on both backends."""

from __future__ import annotations

from store.ledger import Ledger
from store.records import EvalRecord, SampleStateRecord, StepRecord
from store.rollback import rollback_to_checkpoint
from tests.store.helpers import count, group, partial_groups, setup_run


def test_rollback_to_checkpoint(ledger_url):
    with Ledger(ledger_url) as ledger:
        run, ids = setup_run(ledger, 4)
        for step in range(1, 6):
            ledger.write(run, groups=[group(f"s{step}-{i}", ids[i], step=step,
                                            state=SampleStateRecord(attempts=step))
                                      for i in range(4)],
                         steps=[StepRecord(step=step, policy_version=step,
                                           used_attempt_ids=[f"s{step}-0"])],
                         evals=[EvalRecord(step, "toy", "pass@1", step / 10, 4)])
        seen = {f"s{s}-{i}" for s in range(1, 4) for i in range(4)} | {"s4-0"}
        states = {ids[0]: SampleStateRecord(attempts=3, ema=0.3, status="solved")}
        removed = rollback_to_checkpoint(ledger, run, 3, seen, states)
        assert removed == {"groups_removed": 7, "groups_unused": 1, "steps_removed": 2,
                           "evals_removed": 2, "states_restored": 1}
        # resent after the resume: the kept one is a duplicate, the removed one is new again
        assert ledger.record_groups(run, [group("s4-0", ids[0]), group("s4-1", ids[1])]) == 1
    assert count(ledger_url, "SELECT count(*) FROM rollout_groups") == 14
    assert count(ledger_url, "SELECT count(*) FROM rollouts") == 14 * 4
    assert count(ledger_url, "SELECT count(used_in_step) FROM rollout_groups") == 3
    assert count(ledger_url, "SELECT max(step) FROM train_steps") == 3
    assert count(ledger_url, "SELECT max(step) FROM eval_results") == 3
    assert count(ledger_url, f"SELECT attempts FROM sample_state WHERE sample_id = {ids[0]}") == 3
    assert count(ledger_url, "SELECT count(*) FROM sample_state WHERE status = 'solved'") == 1
    assert partial_groups(ledger_url) == []
