"""Readers cannot write: statements are screened, and the connection itself is read-only.
Plus the statement timeout, the row limit, and the `lppo sql` command end to end."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from lppo.cli import main
from store.ledger import Ledger
from store.queries import LedgerReader
from store.sql import QueryError, check_read_only
from tests.conftest import run_cli
from tests.store.helpers import count, group, setup_run

LOOP = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"


@pytest.mark.parametrize("statement", [
    "SELECT 1", "select 1;", "  -- comment\nSELECT 1 -- trailing", "/* c */ WITH a AS "
    "(SELECT 1) SELECT * FROM a", "EXPLAIN SELECT 1", "(SELECT 1)", "SELECT ';DELETE' AS s",
    "SELECT \"weird;name\" FROM t", "SELECT $$;$$", "VALUES (1)",
])
def test_reads_pass_the_screen(statement):
    assert check_read_only(statement).strip().endswith(("1", "a", "s", "t", "$$", ")"))


@pytest.mark.parametrize("statement", [
    "DELETE FROM runs", "update runs set name = 'x'", "INSERT INTO runs VALUES (1)",
    "DROP TABLE runs", "CREATE TABLE x (a int)", "PRAGMA journal_mode = delete",
    "ATTACH 'x.db' AS x", "SELECT 1; DELETE FROM runs", "/* SELECT */ DELETE FROM runs",
    "-- SELECT\nVACUUM", "SET default_transaction_read_only = off", "", "  ;  ",
    "BEGIN", "COPY runs TO '/tmp/x'",
])
def test_writes_are_refused_with_a_clear_message(statement):
    with pytest.raises(QueryError, match="refused|one statement|empty"):
        check_read_only(statement)


@pytest.fixture
def filled(ledger_url):
    with Ledger(ledger_url) as ledger:
        run, ids = setup_run(ledger)
        ledger.record_groups(run, [group(f"a{i}", ids[i % 5]) for i in range(30)])
    return ledger_url


def test_reader_connection_cannot_write_even_past_the_screen(filled):
    with LedgerReader(filled) as reader:
        with pytest.raises(QueryError, match="refused"):
            reader.sql("DELETE FROM rollouts")
        writes = ["DELETE FROM rollouts", "UPDATE runs SET name = 'x'",
                  "CREATE TABLE evil (a INTEGER)"]
        if reader.engine.dialect.name == "postgresql":
            writes.append("WITH d AS (DELETE FROM rollouts RETURNING 1) SELECT count(*) FROM d")
        for stmt in writes:
            with (pytest.raises(sa.exc.DBAPIError, match="(?i)read.?only"),
                  reader.engine.begin() as conn):
                conn.exec_driver_sql(stmt)
        if reader.engine.dialect.name == "postgresql":  # a writing CTE passes the screen
            with pytest.raises(QueryError, match="read-only|data-modifying"):
                reader.sql("WITH d AS (DELETE FROM rollouts RETURNING 1) SELECT count(*) FROM d")
    assert count(filled, "SELECT count(*) FROM rollouts") == 120
    assert count(filled, "SELECT count(*) FROM runs WHERE name = 'run'") == 1


def test_row_limit_and_timeout(filled):
    with LedgerReader(filled, row_limit=7, statement_timeout_s=0.3) as reader:
        result = reader.sql("SELECT * FROM rollouts")
        assert len(result.rows) == 7 and result.truncated
        assert not reader.sql("SELECT * FROM runs").truncated
        with pytest.raises(QueryError, match="statement timeout of 0.3 s"):
            reader.sql(LOOP)
        assert reader.sql("SELECT 5 % 2 AS m, 'a%b' AS p").rows == [(1, "a%b")]


def test_reader_polls_while_the_writer_writes(filled):
    with Ledger(filled) as ledger, LedgerReader(filled) as reader:
        run = ledger.register_run("run")
        ids = [r["sample_id"] for r in reader.samples(run, limit=5)]
        for i in range(10):
            ledger.record_groups(run, [group(f"w{i}", ids[0])])
            assert reader.summary(run)["groups"]["groups"] == 31 + i


def test_lppo_sql_command(filled, tmp_path, capsys):
    target = str(tmp_path) if filled.startswith("sqlite") else filled

    def sql(*args: str) -> tuple[int, str, str]:
        code = main(["sql", target, *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = sql("SELECT attempt_id, n, pass_rate FROM rollout_groups ORDER BY id LIMIT 2")
    lines = out.splitlines()
    assert code == 0 and lines[0].split(" | ") == ["attempt_id", "n", "pass_rate"]
    assert lines[2].split() == ["a0", "|", "4", "|", "0.5"] and lines[-1] == "(2 rows)"
    _, out, _ = sql("SELECT count(*) AS n FROM rollouts", "--json")
    assert json.loads(out) == [{"n": 120}]
    _, out, err = sql("SELECT idx FROM rollouts ORDER BY group_id, idx", "--csv", "--limit", "3")
    assert out.splitlines() == ["idx", "0", "1", "2"] and "row limit of 3" in err
    code, _, err = sql(LOOP, "--timeout", "0.5")
    assert code == 2 and "statement timeout" in err
    refused = run_cli("sql", target, "DROP TABLE rollouts")  # the installed command, end to end
    assert refused.returncode == 2
    assert refused.stderr.startswith("lppo sql: error: refused: DROP")
    assert count(filled, "SELECT count(*) FROM rollouts") == 120


def test_lppo_sql_without_a_ledger(tmp_path, capsys):
    assert main(["sql", str(tmp_path), "SELECT 1"]) == 2
    err = capsys.readouterr().err
    assert "no ledger at" in err and "Traceback" not in err
