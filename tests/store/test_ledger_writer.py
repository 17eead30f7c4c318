"""Writer API on SQLite and PostgreSQL: runs, samples, groups (idempotent), states, steps."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from store.db import LedgerError
from store.ledger import Ledger
from store.records import EvalRecord, GroupRecord, SampleRecord, SampleStateRecord, StepRecord
from tests.store.helpers import count, group, samples, setup_run


@pytest.fixture
def ledger(ledger_url):
    with Ledger(ledger_url) as led:
        yield led


def test_register_run_resumes_by_name(ledger):
    first = ledger.register_run("a", config={"lr": 1e-6}, code_version="abc")
    assert ledger.register_run("a") == first
    assert ledger.register_run("b") != first
    with pytest.raises(LedgerError, match="already exists"):
        ledger.register_run("a", resume=False)
    ledger.end_run(first, "failed")
    with ledger.engine.connect() as conn:
        row = conn.exec_driver_sql(f"SELECT status, ended_at FROM runs WHERE id = {first}").one()
    assert row.status == "failed" and row.ended_at is not None


def test_results_run_is_the_named_run_or_a_finished_new_one(ledger):
    training = ledger.register_run("trained", config={})
    assert ledger.results_run("trained", {}) == training  # results join the run, status kept
    evals = ledger.results_run("eval-only", {"k": 4})
    assert ledger.results_run("eval-only", {}) == evals
    with ledger.engine.connect() as conn:
        rows = dict(conn.exec_driver_sql("SELECT id, status FROM runs").all())
    assert rows == {training: "running", evals: "finished"}


def test_redelivered_attempts_are_recorded_once(ledger):
    run, ids = setup_run(ledger)
    st = SampleStateRecord(attempts=1, ema=0.5, pass_rate=0.5)
    batch = [group(f"a{i}", ids[i % 5], state=st) for i in range(10)]
    assert ledger.record_groups(run, batch) == 10
    later = SampleStateRecord(attempts=99, ema=0.9)
    again = [group(f"a{i}", ids[i % 5], state=later) for i in range(10)]
    assert ledger.record_groups(run, again) == 0  # resent: nothing counted twice
    assert ledger.record_groups(run, [batch[0], batch[0], group("new", ids[0])]) == 1
    assert count(ledger.engine, "SELECT count(*) FROM rollout_groups") == 11
    assert count(ledger.engine, "SELECT count(*) FROM rollouts") == 44
    # the state of a skipped (re-delivered) group is not applied
    assert count(ledger.engine, "SELECT max(attempts) FROM sample_state") == 1


def test_same_attempt_id_in_another_run_is_a_new_group(ledger):
    run, ids = setup_run(ledger)
    other = ledger.register_run("other")
    ledger.add_to_run(other, ids)
    assert ledger.record_groups(run, [group("a", ids[0])]) == 1
    assert ledger.record_groups(other, [group("a", ids[0])]) == 1


def test_state_and_snapshot_follow_the_group(ledger):
    run, ids = setup_run(ledger)
    s1 = SampleStateRecord(attempts=1, pass_rate=0.0, ema=0.0, prefix_ratio=0.5, prefix_len=30)
    s2 = SampleStateRecord(attempts=1, guided_attempts=1, guided_pass_rate=0.5, ema=0.0,
                           prefix_ratio=0.4, prefix_len=24, status="active", last_seen_step=2)
    ledger.record_groups(run, [group("g1", ids[0], step=1, correct=0, state=s1)])
    ledger.record_groups(run, [group("g2", ids[0], step=2, state=s2, prefix_ratio=0.5,
                                     prefix_len=30, lp_weight=1.1)])
    with ledger.engine.connect() as conn:
        st = conn.exec_driver_sql(
            f"SELECT * FROM sample_state WHERE run_id = {run} AND sample_id = {ids[0]}"
        ).mappings().one()
        rows = conn.exec_driver_sql(
            "SELECT attempt_id, pass_rate, prefix_len, lp_weight, ema, status FROM rollout_groups "
            "ORDER BY step_seen"
        ).all()
    assert (st["guided_attempts"], st["prefix_len"], st["guided_pass_rate"]) == (1, 24, 0.5)
    assert rows == [("g1", 0.0, 0, None, 0.0, "active"), ("g2", 0.5, 30, 1.1, 0.0, "active")]


def test_a_failing_batch_leaves_nothing(ledger):
    run, ids = setup_run(ledger)
    bad = [group("ok1", ids[0], state=SampleStateRecord(attempts=7)), group("bad", 999_999)]
    with pytest.raises(sa.exc.IntegrityError):
        ledger.record_groups(run, bad)  # unknown sample id: foreign key violation
    assert count(ledger.engine, "SELECT count(*) FROM rollout_groups") == 0
    assert count(ledger.engine, "SELECT count(*) FROM rollouts") == 0
    assert count(ledger.engine, "SELECT max(attempts) FROM sample_state") == 0


def test_steps_mark_used_groups_and_upsert(ledger):
    run, ids = setup_run(ledger)
    ledger.record_groups(run, [group(f"a{i}", ids[i]) for i in range(4)])
    ledger.record_steps(run, [StepRecord(step=1, policy_version=1, loss=0.5,
                                         used_attempt_ids=["a0", "a2"], metrics={"t": 1})])
    ledger.record_steps(run, [StepRecord(step=1, policy_version=1, loss=0.25,
                                         used_attempt_ids=["a0", "a2"], metrics={"t": 2})])
    with ledger.engine.connect() as conn:
        used = conn.exec_driver_sql(
            "SELECT attempt_id FROM rollout_groups WHERE used_in_step = 1 ORDER BY attempt_id"
        ).scalars().all()
        step = conn.exec_driver_sql("SELECT loss, metrics FROM train_steps").one()
    assert used == ["a0", "a2"]
    metrics = step.metrics if isinstance(step.metrics, dict) else json.loads(step.metrics)
    assert step.loss == 0.25 and metrics == {"t": 2}


def test_steps_write_the_lp_weight_they_applied(ledger):
    run, ids = setup_run(ledger)
    ledger.record_groups(run, [group(f"a{i}", ids[i]) for i in range(4)])
    ledger.record_steps(run, [StepRecord(step=1, policy_version=1, used_attempt_ids=["a0", "a2"],
                                         used_lp_weights=[0.8, 1.2])])
    ledger.record_steps(run, [StepRecord(step=2, policy_version=2, used_attempt_ids=["a1"])])
    with ledger.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT attempt_id, used_in_step, lp_weight FROM rollout_groups ORDER BY attempt_id"
        ).all()
    assert rows == [("a0", 1, 0.8), ("a1", 2, None), ("a2", 1, 1.2), ("a3", None, None)]
    with pytest.raises(ValueError, match="2 used_lp_weights for 1 used attempts"):
        StepRecord(step=3, policy_version=3, used_attempt_ids=["a3"], used_lp_weights=[1, 1])


def test_non_finite_step_numbers_are_stored_as_null_and_valid_json(ledger):
    run, _ = setup_run(ledger)
    ledger.record_steps(run, [StepRecord(step=1, policy_version=1, loss=float("nan"),
                                         grad_norm=float("inf"),
                                         metrics={"a": float("nan"), "b": 2.0})])
    with ledger.engine.connect() as conn:
        loss, grad, metrics = conn.exec_driver_sql(
            "SELECT loss, grad_norm, metrics FROM train_steps").one()
    metrics = metrics if isinstance(metrics, dict) else json.loads(metrics)  # strict JSON
    assert (loss, grad, metrics) == (None, None, {"a": None, "b": 2.0})


def test_steps_write_the_prefix_terms_they_applied(ledger):
    run, ids = setup_run(ledger)
    ledger.record_groups(run, [group(f"a{i}", ids[i]) for i in range(3)])
    ledger.record_steps(run, [StepRecord(
        step=1, policy_version=1, used_attempt_ids=["a0", "a1"], used_lp_weights=[1.0, 1.0],
        used_prefix_terms=["off_policy+sft", None], used_prefix_advantages=[0.9, None])])
    with ledger.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT attempt_id, prefix_term, prefix_advantage FROM rollout_groups "
            "ORDER BY attempt_id").all()
    assert rows == [("a0", "off_policy+sft", 0.9), ("a1", None, None), ("a2", None, None)]
    with pytest.raises(ValueError, match="1 used_prefix_terms for 2 used attempts"):
        StepRecord(step=2, policy_version=2, used_attempt_ids=["a0", "a1"],
                   used_prefix_terms=["masked"])


def test_evals_upsert(ledger):
    run, _ = setup_run(ledger)
    ledger.record_evals(run, [EvalRecord(10, "math500", "pass@1", 0.3, 500)])
    ledger.record_evals(run, [EvalRecord(10, "math500", "pass@1", 0.4, 500),
                              EvalRecord(10, "aime24", "pass@1", 0.1, 30)])
    with ledger.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT benchmark, value FROM eval_results ORDER BY benchmark").all()
    assert rows == [("aime24", 0.1), ("math500", 0.4)]


def test_texts_can_be_left_out(ledger_url):
    with Ledger(ledger_url, store_texts=False) as led:
        run, ids = setup_run(led)
        led.record_groups(run, [group("a", ids[0])])
        assert count(led.engine, "SELECT count(*) FROM rollouts WHERE text IS NOT NULL") == 0
        assert count(led.engine, "SELECT sum(length) FROM rollouts") == 10 + 11 + 12 + 13


def test_import_is_idempotent_and_finds_duplicates(ledger):
    first = ledger.import_samples(samples(4))
    assert first.datasets["toy"].inserted == 4
    again = ledger.import_samples(samples(4))
    assert again.ids == first.ids and again.datasets["toy"].existing == 4
    dup = SampleRecord("toy", "k-dup", "What  is 2 +\n2?", "4")  # same text up to whitespace
    other = SampleRecord("eval", "e1", "What is 3 + 3?", "6")
    res = ledger.import_samples([dup, other])
    assert res.datasets["toy"].duplicates == [("k-dup", "k2")]
    assert res.ids[0] == first.ids[2]
    assert res.datasets["eval"].overlaps == {"toy": 1}
    with pytest.raises(LedgerError, match="different problem under this key"):
        ledger.import_samples([SampleRecord("toy", "k0", "Something else", "1")])


def test_add_to_run_keeps_existing_state(ledger):
    run, ids = setup_run(ledger)
    ledger.record_groups(run, [group("a", ids[0], state=SampleStateRecord(attempts=3))])
    assert ledger.add_to_run(run, ids) == 0
    assert count(ledger.engine, "SELECT max(attempts) FROM sample_state") == 3
    assert count(ledger.engine, "SELECT count(*) FROM sample_state WHERE status = 'active'") == 5


def test_wire_groups_convert_and_record(ledger):
    from lppo.core import wire
    from store.records import group_from_wire

    run, ids = setup_run(ledger)
    completions = [
        wire.Completion(token_ids=wire.Array.of([1, 2, 3][: k + 1], "int32"),
                        logprobs=wire.Array.of([-0.1, -0.2, -0.3][: k + 1], "float32"),
                        text=f"answer {k}", finish_reason="stop", reward=float(k == 2),
                        verdict="correct" if k == 2 else "wrong")
        for k in range(3)
    ]
    msg = wire.RolloutGroup(
        attempt_id="w-1", sample_id=ids[1], actor_id="actor-3", policy_version=4,
        prompt_ids=wire.Array.of([5, 6], "int32"), prefix_ids=wire.Array.of([7], "int32"),
        prefix_ratio=0.5, prefix_len=1, completions=completions, gen_seconds=1.5,
    )
    msg = wire.decode(wire.encode(msg))
    rec = group_from_wire(msg, step_seen=5, lp_weight=1.2,
                          state=SampleStateRecord(guided_attempts=1, guided_pass_rate=1 / 3),
                          overlong_penalties=[0.0, -0.25, -0.5], loss_masked=[False, False, True])
    assert (rec.n, rec.n_correct, rec.tokens, rec.prefix_len) == (3, 1, 6, 1)
    failed = wire.RolloutGroup(
        attempt_id="w-2", sample_id=ids[2], actor_id="actor-3", policy_version=4,
        prompt_ids=wire.Array.of([5], "int32"), prefix_ids=wire.Array.of([], "int32"),
        prefix_ratio=0.0, prefix_len=0, completions=[], gen_seconds=0.0, error="too long",
    )
    bad = group_from_wire(failed, step_seen=5)
    assert bad.dropped_reason == "invalid" and bad.pass_rate == 0.0
    assert ledger.record_groups(run, [rec, bad]) == 2
    with ledger.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT attempt_id, n, n_correct, tokens, actor_id, lp_weight, dropped_reason "
            "FROM rollout_groups ORDER BY attempt_id").all()
    assert rows == [("w-1", 3, 1, 6, "actor-3", 1.2, None), ("w-2", 0, 0, 0, "actor-3", None,
                                                              "invalid")]
    with ledger.engine.connect() as conn:  # the learner's shaping of each completion
        shaped = conn.exec_driver_sql(
            "SELECT idx, reward, overlong_penalty, loss_masked FROM rollouts ORDER BY idx").all()
    assert [(i, r, p, bool(m)) for i, r, p, m in shaped] == [
        (0, 0.0, 0.0, False), (1, 0.0, -0.25, False), (2, 1.0, -0.5, True)]


def test_a_batch_of_invalid_groups_only_is_written(ledger):
    """Groups with nothing sampled (a prompt too long, a forged group emptied by the learner):
    no rollouts to insert, and that must not fail the batch (it killed the learner once)."""
    run, ids = setup_run(ledger)
    empty = [GroupRecord(attempt_id=f"x{i}", sample_id=ids[i], actor_id="a", step_seen=1,
                         policy_version=0, rollouts=[], dropped_reason="invalid")
             for i in range(3)]
    assert ledger.record_groups(run, empty) == 3
    with ledger.engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT n, dropped_reason FROM rollout_groups").all()
    assert rows == [(0, "invalid")] * 3
