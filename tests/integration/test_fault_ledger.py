"""Fault injection on the ledger during a real run: the SQLite database is locked by another
process for longer than the busy timeout. Writes retry with backoff, nothing is lost, the run
finishes and the ledger is consistent. (PostgreSQL server restarts are covered at the writer
level in tests/store/.)"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time

from store.check import check_run
from store.queries import LedgerReader
from tests.conftest import ROOT
from tests.integration.run_files import small_run_config, write_task

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
LOCK_S = 6.0


def _steps(db) -> int:
    if not db.exists():
        return 0
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("SELECT COUNT(*) FROM train_steps").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        con.close()


def test_locked_ledger_is_retried_and_nothing_is_lost(tiny_model, tmp_path):
    paths = write_task(tmp_path, train={1: 16, 2: 8}, held_out={1: 4})
    cfg = small_run_config(tmp_path, tiny_model, paths["train"],
                           store={"busy_timeout_ms": 1000, "write_retry_s": 120})
    db = tmp_path / "runs" / "it" / "ledger.db"
    log = open(tmp_path / "learner.log", "w")  # noqa: SIM115 - the child writes to it; closed at the end
    learner = subprocess.Popen([sys.executable, "-m", "lppo.cli", "learner", str(cfg)],
                               cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT)
    actor = subprocess.Popen([sys.executable, "-m", "lppo.cli", "actor", str(cfg),
                              "--actor-id", "a0"], cwd=ROOT, env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while _steps(db) < 1:
            assert time.monotonic() < deadline and learner.poll() is None
            time.sleep(0.2)
        con = sqlite3.connect(db, timeout=30, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")  # every writer now gets "database is locked"
        time.sleep(LOCK_S)
        con.execute("COMMIT")
        con.close()
        assert learner.wait(timeout=300) == 0, (tmp_path / "learner.log").read_text()[-3000:]
        actor.wait(timeout=60)
    finally:
        for p in (learner, actor):
            if p.poll() is None:
                p.kill()
    text = (tmp_path / "learner.log").read_text()
    assert "retrying" in text  # the writer hit the lock and backed off
    with LedgerReader(str(db.parent)) as reader:
        rows = reader.sql("SELECT step, groups_used FROM train_steps ORDER BY step").rows
        assert [r[0] for r in rows] == [1, 2, 3, 4]
        used = dict(reader.sql("SELECT used_in_step, COUNT(*) FROM rollout_groups WHERE "
                               "used_in_step IS NOT NULL GROUP BY used_in_step").rows)
        assert used == {r[0]: r[1] for r in rows}
        assert reader.sql("SELECT status FROM runs").rows[0][0] == "finished"
        assert check_run(reader) == []
