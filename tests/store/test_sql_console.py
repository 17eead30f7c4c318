"""The read-only console against a hostile user: functions that reach process memory or
allocate without bound, oversized results, bad text. Through `store.sql.run_sql` (what both
`lppo sql` and the dashboard's SQL page call), the installed `lppo sql`, on SQLite and, where
the attack applies, PostgreSQL. Each is refused or stopped within its limit with one clear
line; the process stays alive and small; the ledger's bytes do not change. The SQL page's
side is in tests/dashboard/test_pages.py."""

from __future__ import annotations

import hashlib
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from store.ledger import Ledger
from store.queries import LedgerReader
from store.sql import MAX_RESULT_BYTES, QueryError
from store.sqlguard import MAX_VALUE_BYTES
from tests.conftest import ROOT, run_cli
from tests.store.helpers import group, setup_run

HUGE = "SELECT randomblob(300000000) AS x FROM (VALUES (1), (2))"
MANY = ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 200) "
        "SELECT n, randomblob(4000000) AS b FROM r")


@pytest.fixture
def sqlite_run(tmp_path) -> Path:
    with Ledger(str(tmp_path / "ledger.db")) as ledger:
        run, ids = setup_run(ledger)
        ledger.record_groups(run, [group(f"a{i}", ids[i % 5]) for i in range(10)])
    return tmp_path


def _digest(folder: Path) -> str:
    return hashlib.sha256((folder / "ledger.db").read_bytes()).hexdigest()


@pytest.mark.parametrize("query", ["SELECT hex(fts3_tokenizer('simple'))",
                                   "SELECT fts3_tokenizer('simple', x'4141414141414141')",
                                   "SELECT load_extension('/tmp/evil')",
                                   "SELECT * FROM pragma_table_info('runs')"])
def test_functions_that_reach_the_process_are_refused_by_name(sqlite_run, query):
    before = _digest(sqlite_run)
    with LedgerReader(str(sqlite_run)) as reader:
        with pytest.raises(QueryError, match=r"refused: (the function \w+\(\)|PRAGMA .*) is "
                                             "not allowed"):
            reader.sql(query)
        # the guard is gone afterwards: the dashboard's own reads on the same pool still work
        assert reader.sql("SELECT count(*) FROM rollout_groups").rows == [(10,)]
        assert reader.summary(reader.run_id(None))["groups"]["groups"] == 10
    assert _digest(sqlite_run) == before
    # the pointer was never written: a fresh reader still refuses, nothing reads AAAA back


def test_a_huge_value_stops_at_once_and_the_process_stays_small(sqlite_run):
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB, peak so far
    with LedgerReader(str(sqlite_run)) as reader:
        start = time.monotonic()
        with pytest.raises(QueryError, match=f"exceed {MAX_VALUE_BYTES:,} bytes"):
            reader.sql(HUGE)
        assert time.monotonic() - start < 2.0
        result = reader.sql(MANY)  # 200 values of 4 MB: the byte limit stops it
        assert result.stopped_by == "bytes" and result.truncated
        assert sum(len(b) for _, b in result.rows) <= MAX_RESULT_BYTES
        assert 0 < len(result.rows) < 200
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss
    assert grown < 200 * 1024, f"peak memory grew by {grown / 1024:.0f} MiB"


def test_allowed_functions_still_run(sqlite_run):
    with LedgerReader(str(sqlite_run)) as reader:
        rows = reader.sql("SELECT abs(-2), upper('a'), round(avg(n), 1), json_extract('{\"a\": 3}',"
                          " '$.a'), length(randomblob(1000)), strftime('%Y', 'now') > '2000' "
                          "FROM rollout_groups").rows
    assert rows[0][:5] == (2, "A", 4.0, 3, 1000) and rows[0][5] == 1


@pytest.mark.parametrize(("query", "message"), [
    ("SELECT 'a\ud800b'", r"not valid text \(at character 9: '\\ud800'\)"),
    ("SELECT 'a\x00b'", r"NUL character \(at character 9\)"),
])
def test_bad_text_is_one_clear_line(ledger_url, query, message):
    with Ledger(ledger_url) as ledger:
        setup_run(ledger)
    with LedgerReader(ledger_url) as reader, pytest.raises(QueryError, match=message):
        reader.sql(query)


def test_lppo_sql_says_each_in_one_line(sqlite_run):
    for query, words in [("SELECT hex(fts3_tokenizer('simple'))", "fts3_tokenizer() is not "
                          "allowed"), (HUGE, "exceed")]:
        out = run_cli("sql", str(sqlite_run), query, timeout=60)
        assert out.returncode == 2 and words in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    # bytes that are not UTF-8 on the command line (a NUL cannot be in argv at all)
    out = subprocess.run([sys.executable, "-m", "lppo.cli", "sql", str(sqlite_run),
                          b"SELECT '\xff'"], capture_output=True, timeout=60, cwd=ROOT)
    err = out.stderr.decode()
    assert out.returncode == 2 and "not valid text" in err and "Traceback" not in err, err
    out = run_cli("sql", str(sqlite_run), MANY, "--csv", timeout=60)
    assert out.returncode == 0 and "bytes of values" in out.stderr
    assert len(out.stdout) < 3 * MAX_RESULT_BYTES


def test_postgresql_runs_console_queries_read_only_with_a_timeout(ledger_url):
    if not ledger_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    with Ledger(ledger_url) as ledger:
        setup_run(ledger)
    with LedgerReader(ledger_url, statement_timeout_s=0.5) as reader:
        with pytest.raises(QueryError, match="read-only"):
            reader.sql("SELECT nextval(pg_get_serial_sequence('runs', 'id'))")
        with pytest.raises(QueryError, match="statement timeout of 0.5 s"):
            reader.sql("SELECT pg_sleep(5)")
        result = reader.sql("SELECT repeat('x', 4000000) FROM generate_series(1, 20)")
        assert result.stopped_by == "bytes" and len(result.rows) == MAX_RESULT_BYTES // 4000000


def test_the_readme_select_only_role_reads_and_cannot_write(ledger_url):
    """The README's role, created as written (placeholders filled), on the private cluster."""
    if not ledger_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only")
    import psycopg
    import sqlalchemy as sa

    with Ledger(ledger_url) as ledger:
        setup_run(ledger)
    readme = (ROOT / "README.md").read_text()
    (block,) = [b for b in re.findall(r"```sql\n(.*?)```", readme, re.S) if "lppo_reader" in b]
    url = sa.make_url(ledger_url)
    role = f"lppo_reader_{url.database}"
    sql = (block.replace("lppo_reader", role).replace("'...'", "'pw'")
           .replace("DATABASE ledger", f'DATABASE "{url.database}"')
           .replace("FOR ROLE lppo ", "FOR ROLE postgres "))
    dsn = f"host={url.host} port={url.port} user=postgres dbname={url.database}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        for statement in filter(str.strip, sql.split(";")):
            conn.execute(statement)
    reader_url = url.set(username=role, password="pw").render_as_string(hide_password=False)
    with LedgerReader(reader_url) as reader:
        assert reader.sql("SELECT count(*) FROM runs").rows == [(1,)]
    engine = sa.create_engine(reader_url)
    try:
        with pytest.raises(sa.exc.DBAPIError, match="permission denied|read-only"), \
                engine.begin() as conn:
            conn.exec_driver_sql("SET default_transaction_read_only = off")
            conn.exec_driver_sql("DELETE FROM runs")
    finally:
        engine.dispose()
