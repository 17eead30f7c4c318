"""Schema revisions: the models match the migrations, and a ledger written with the first
schema (0001) opens, upgraded, with its data intact; readers explain instead of failing."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from store.db import LedgerError, current_revision, head_revision, upgrade, writer_engine
from store.ledger import Ledger
from store.models import SCHEMA_REVISION, Base
from store.queries import LedgerReader
from store.records import SampleRecord, problem_hash
from tests.conftest import run_cli
from tests.store.helpers import count, group

FIRST = "0001"
# Ids come from the sequences (1, 2, ... in a fresh database), as in a real old ledger.
ROWS_0001 = [
    "INSERT INTO runs (name, config, code_version, status, started_at, updated_at) "
    "VALUES ('old', '{}', 'v0', 'finished', 1.0, 2.0)",
    "INSERT INTO samples (dataset, source_key, problem, answer, solution, meta, created_at) "
    "VALUES ('toy', 'k1', 'What is  1 + 1?', '2', '1 + 1 = 2', '{}', 1.0)",
    "INSERT INTO samples (dataset, source_key, problem, answer, meta, created_at) "
    "VALUES ('toy', 'k2', 'What is 2 + 2?', '4', '{}', 1.0)",
    "INSERT INTO sample_state (run_id, sample_id, attempts, guided_attempts, progress, weight, "
    "prefix_ratio, prefix_len, status, status_since_step, solved_streak, failed_streak, ema) "
    "VALUES (1, 1, 3, 0, 0.1, 1.2, 0.0, 0, 'solved', 7, 3, 0, 0.9)",
    "INSERT INTO rollout_groups (run_id, sample_id, attempt_id, actor_id, step_seen, "
    "policy_version, n, n_correct, pass_rate, mean_reward, tokens, prefix_ratio, prefix_len, "
    "status, gen_s, verify_s, received_at) VALUES "
    "(1, 1, 'att-1', 'actor-0', 7, 6, 2, 2, 1.0, 1.0, 20, 0.0, 0, 'solved', 1.0, 0.1, 3.0)",
    "INSERT INTO rollouts (group_id, idx, text, length, reward, verdict, finish_reason) VALUES "
    "(1, 0, 'two', 10, 1.0, 'correct', 'stop'), (1, 1, 'also two', 10, 1.0, 'correct', 'stop')",
    "INSERT INTO train_steps (run_id, step, policy_version, tokens, groups_used, groups_dropped, "
    "gen_wait_s, train_s, sync_s, created_at) VALUES (1, 7, 7, 20, 1, 0, 0.0, 1.0, 0.1, 3.0)",
]


def _first_schema_ledger(url: str) -> None:
    engine = writer_engine(url)
    try:
        upgrade(engine, FIRST)
        with engine.begin() as conn:
            for stmt in ROWS_0001:
                conn.exec_driver_sql(stmt)
        assert current_revision(engine) == FIRST
    finally:
        engine.dispose()


def test_schema_revision_is_the_migrations_head():
    assert head_revision() == SCHEMA_REVISION


def test_models_match_migrations(ledger_url):
    with Ledger(ledger_url) as ledger, ledger.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_first_schema_ledger_is_upgraded_on_open(ledger_url):
    _first_schema_ledger(ledger_url)
    with Ledger(ledger_url) as ledger:
        assert current_revision(ledger.engine) == head_revision() != FIRST
        with ledger.engine.connect() as conn:
            hashes = dict(conn.exec_driver_sql("SELECT id, problem_hash FROM samples").all())
            metrics = conn.exec_driver_sql("SELECT metrics FROM train_steps").scalar_one()
        assert hashes == {1: problem_hash("What is  1 + 1?"), 2: problem_hash("What is 2 + 2?")}
        assert metrics in ({}, "{}")
        # the backfilled hash finds an old problem again, and the run goes on
        res = ledger.import_samples([SampleRecord("toy", "k9", "What is 1 + 1?", "2")])
        assert res.datasets["toy"].duplicates == [("k9", "k1")]
        run = ledger.register_run("old")
        assert run == 1
        assert ledger.record_groups(run, [group("att-1", 1), group("att-2", 2)]) == 1
    assert count(ledger_url, "SELECT count(*) FROM rollouts") == 2 + 4
    assert count(ledger_url, "SELECT attempts FROM sample_state WHERE sample_id = 1") == 3


GUIDED_0002 = [
    "INSERT INTO rollout_groups (run_id, sample_id, attempt_id, actor_id, step_seen, "
    "policy_version, n, n_correct, pass_rate, mean_reward, tokens, prefix_ratio, prefix_len, "
    "status, gen_s, verify_s, received_at) VALUES "
    "(1, 2, 'att-2', 'actor-0', 8, 7, 2, 1, 0.5, 0.5, 20, 0.5, 3, 'active', 1.0, 0.1, 4.0)",
    "INSERT INTO rollouts (group_id, idx, text, length, reward, verdict, finish_reason) VALUES "
    "(2, 0, 'four', 10, 1.0, 'correct', 'stop'), (2, 1, 'five', 10, 0.0, 'wrong', 'stop')",
]


def test_guided_groups_of_an_old_ledger_are_backfilled(ledger_url):
    _first_schema_ledger(ledger_url)
    engine = writer_engine(ledger_url)
    try:
        upgrade(engine, "0002")
        with engine.begin() as conn:
            for stmt in GUIDED_0002:
                conn.exec_driver_sql(stmt)
        upgrade(engine)
        with engine.connect() as conn:
            groups = conn.exec_driver_sql("SELECT attempt_id, guided_n, prefix_term FROM "
                                          "rollout_groups ORDER BY id").all()
            flags = conn.exec_driver_sql("SELECT group_id, with_prefix FROM rollouts "
                                         "ORDER BY group_id, idx").all()
    finally:
        engine.dispose()
    assert groups == [("att-1", 0, None), ("att-2", 2, None)]
    assert [(g, bool(w)) for g, w in flags] == [(1, False), (1, False), (2, True), (2, True)]


def test_readers_do_not_upgrade_but_say_how(ledger_url, tmp_path):
    _first_schema_ledger(ledger_url)
    with pytest.raises(LedgerError, match=f"revision {FIRST}.*lppo ledger upgrade"):
        LedgerReader(ledger_url)
    target = str(tmp_path) if ledger_url.startswith("sqlite") else ledger_url
    proc = run_cli("ledger", "upgrade", target)
    assert proc.returncode == 0, proc.stderr
    assert f"schema {FIRST} -> {head_revision()}" in proc.stdout
    with LedgerReader(ledger_url) as reader:
        assert reader.runs()[0]["name"] == "old"


def test_newer_or_foreign_databases_are_refused(ledger_url):
    engine = writer_engine(ledger_url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
        with pytest.raises(LedgerError, match="newer than this lppo"):
            Ledger(ledger_url)
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP TABLE alembic_version")
        with pytest.raises(LedgerError, match="not an lppo ledger"):
            Ledger(ledger_url)
    finally:
        engine.dispose()


def test_unreachable_postgres_is_one_clear_error():
    url = "postgresql+psycopg://nobody:secret@127.0.0.1:1/none"
    with pytest.raises(LedgerError, match="cannot open the ledger") as info:
        Ledger(url)
    assert "secret" not in str(info.value)
