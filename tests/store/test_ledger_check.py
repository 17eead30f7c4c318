"""The ledger consistency checker (store/check.py, `lppo ledger check`): a consistent run has
no violation; each rule finds the rows that break it, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from store.check import check_run
from store.ledger import Ledger
from store.queries import LedgerReader
from store.records import StepRecord
from tests.conftest import run_cli
from tests.store.helpers import group, setup_run


@pytest.fixture()
def ledger(ledger_url):
    with Ledger(ledger_url) as led:
        yield led


def _consistent(ledger) -> int:
    run, ids = setup_run(ledger)
    ledger.record_groups(run, [group("a0", ids[0], step=0), group("a1", ids[1], step=0),
                               group("a2", ids[2], step=1, dropped_reason="all_wrong")])
    ledger.record_steps(run, [StepRecord(step=1, policy_version=1, groups_used=2,
                                         used_attempt_ids=["a0", "a1"])])
    return run


def _rules(url: str) -> set[str]:
    with LedgerReader(url) as reader:
        return {v.rule for v in check_run(reader)}


def test_a_consistent_run_has_no_violation(ledger, ledger_url):
    _consistent(ledger)
    assert _rules(ledger_url) == set()


def test_each_rule_finds_what_breaks_it(ledger, ledger_url):
    run = _consistent(ledger)
    with ledger.engine.begin() as conn:
        conn.execute(sa.text("UPDATE rollout_groups SET n_correct = 3 WHERE attempt_id = 'a1'"))
        conn.execute(sa.text("UPDATE rollout_groups SET used_in_step = 1, dropped_reason = "
                             "'all_wrong' WHERE attempt_id = 'a2'"))
        conn.execute(sa.text("UPDATE rollout_groups SET policy_version = 7 WHERE attempt_id "
                             "= 'a0'"))
        if ledger.engine.dialect.name == "sqlite":  # PostgreSQL's JSON cannot hold NaN
            conn.execute(sa.text("""UPDATE train_steps SET metrics = '{"x": NaN}'"""))
        conn.execute(sa.text(f"UPDATE runs SET status = 'failed', ended_at = 1 WHERE id = {run}"))
        conn.execute(sa.text("UPDATE rollout_groups SET prefix_ratio = 0.5, prefix_len = 0 "
                             "WHERE attempt_id = 'a0'"))
    found = _rules(ledger_url)
    expected = {"rollouts_match_group", "used_not_dropped", "used_match_steps",
                "staleness_bound", "run_status", "guided_has_prefix"}
    if ledger.engine.dialect.name == "sqlite":
        expected.add("finite_json")
    assert expected <= found, found


def test_lppo_ledger_check_exit_status(tmp_path):
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        _consistent(ledger)
    ok = run_cli("ledger", "check", str(tmp_path))
    assert ok.returncode == 0 and "0 violations" in ok.stdout, ok.stderr
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger, ledger.engine.begin() as conn:
        conn.execute(sa.text("UPDATE train_steps SET groups_used = 5"))
    bad = run_cli("ledger", "check", str(tmp_path))
    assert bad.returncode == 1 and "used_match_steps: 1, 5, 2" in bad.stdout
