"""The background writer: batching, flush/close, retries on transient errors, errors raised."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from store.ledger import Ledger
from store.records import EvalRecord, SampleStateRecord, StepRecord
from store.writer import LedgerWriteError, LedgerWriter
from tests.store.helpers import count, group, partial_groups, setup_run


def test_writer_commits_everything_in_batches(ledger_url):
    with Ledger(ledger_url) as ledger:
        run, ids = setup_run(ledger, 20)
        writer = LedgerWriter(ledger, run, batch_groups=32)
        for i in range(500):
            writer.put_group(group(f"a{i}", ids[i % 20], step=i // 50,
                                   state=SampleStateRecord(attempts=i)))
            if i % 50 == 49:
                writer.put_step(StepRecord(step=i // 50, policy_version=i // 50,
                                           used_attempt_ids=[f"a{i}"]))
        writer.put_eval(EvalRecord(9, "toy", "pass@1", 0.5, 10))
        writer.flush()
        assert count(ledger.engine, "SELECT count(*) FROM rollout_groups") == 500
        assert count(ledger.engine, "SELECT count(*) FROM train_steps") == 10
        assert count(ledger.engine, "SELECT count(*) FROM rollout_groups "
                                    "WHERE used_in_step IS NOT NULL") == 10
        assert count(ledger.engine, "SELECT max(attempts) FROM sample_state") == 499
        writer.put_group(group("a0", ids[0]))  # re-delivered after the flush
        writer.close()
        writer.close()  # closing twice is harmless
        assert writer.stats.groups == 500 and writer.stats.rollouts == 2000
        assert writer.stats.largest_batch <= 32 and writer.stats.commits < 500
        with pytest.raises(LedgerWriteError, match="closed"):
            writer.put_group(group("late", ids[0]))
    assert partial_groups(ledger_url) == []


def test_writer_errors_reach_the_learner(ledger_url):
    with Ledger(ledger_url) as ledger:
        run, ids = setup_run(ledger)
        writer = LedgerWriter(ledger, run, retry_s=1.0)
        writer.put_group(group("bad", 123_456))  # no such sample: a bug, not retried
        with pytest.raises(LedgerWriteError) as info:
            writer.flush(timeout=30)
        assert isinstance(info.value.__cause__, sa.exc.IntegrityError)
        with pytest.raises(LedgerWriteError):
            writer.put_group(group("next", ids[0]))
        with pytest.raises(LedgerWriteError):
            writer.close()


def test_writer_retries_while_sqlite_is_locked(tmp_path):
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with Ledger(url, busy_timeout_ms=50) as ledger:
        run, ids = setup_run(ledger)
        other = sa.create_engine(url)
        conn = other.connect()
        conn.exec_driver_sql("BEGIN IMMEDIATE")  # another process holds the write lock
        writer = LedgerWriter(ledger, run)
        writer.put_group(group("a", ids[0]))
        threading.Timer(0.6, conn.rollback).start()
        start = time.monotonic()
        writer.flush(timeout=30)
        assert time.monotonic() - start >= 0.5
        assert writer.stats.retries >= 1
        writer.close()
        conn.close()
        other.dispose()
        assert count(ledger.engine, "SELECT count(*) FROM rollout_groups") == 1


def test_writer_survives_a_dropped_postgres_connection(pg_cluster):
    url = pg_cluster.create_database("ledger_dropped")
    admin = sa.create_engine(pg_cluster.url(), isolation_level="AUTOCOMMIT")
    with Ledger(url) as ledger:
        run, ids = setup_run(ledger)
        writer = LedgerWriter(ledger, run)
        writer.put_group(group("before", ids[0]))
        writer.flush()
        with admin.connect() as conn:  # e.g. a server restart or a network blip
            killed = conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = 'ledger_dropped' AND pid <> pg_backend_pid()"
            ).scalar_one()
        assert killed >= 1
        writer.put_group(group("after", ids[1]))
        writer.close()
        assert count(ledger.engine, "SELECT count(*) FROM rollout_groups") == 2
    admin.dispose()


def test_writer_from_config(tmp_path):
    from lppo.core.config.schema import StoreConfig

    with Ledger(f"sqlite:///{tmp_path / 'l.db'}") as ledger:
        run, _ = setup_run(ledger)
        store = StoreConfig(write_batch_groups=3, write_queue=10, write_retry_s=0.5)
        writer = LedgerWriter.for_config(ledger, run, store)
        assert (writer.batch_groups, writer._queue.maxsize, writer.retry_s) == (3, 10, 0.5)
        writer.close()
