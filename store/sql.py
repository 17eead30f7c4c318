"""Ad-hoc read-only SQL over the ledger (`lppo sql`, the dashboard's SQL page).

Two independent guards keep a query from writing:

1. `check_read_only` accepts exactly one statement starting with SELECT, WITH, EXPLAIN or
   VALUES (comments and string literals are skipped when looking), and refuses anything else
   with a message that says what is allowed.
2. The statement runs on a reader engine (`store.db.reader_engine`): a SQLite file opened with
   `mode=ro`, a PostgreSQL session in read-only transactions. A write that slips past the
   first guard (a data-modifying CTE, `EXPLAIN ANALYZE DELETE ...`) still fails.

`run_sql` also applies the row limit (rows beyond it are not fetched) and turns a statement
cancelled by the timeout into a `QueryError` that names the limit.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lppo.errors import UserError
from store.db import is_timeout, short_error

ALLOWED = ("SELECT", "WITH", "EXPLAIN", "VALUES")


class QueryError(UserError):
    """A query was refused, failed, or ran past its time limit."""


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    """True when the query had more rows than the limit."""


def check_read_only(statement: str) -> str:
    """The statement without a trailing `;`; raises `QueryError` unless it is one read."""
    code, last = _code_only(statement)
    parts = [p for p in code.split(";") if p.strip()]
    if not parts:
        raise QueryError("empty query")
    if len(parts) > 1:
        raise QueryError("one statement at a time, please (found more than one `;`-separated)")
    match = re.match(r"[\s(]*([A-Za-z]*)", parts[0])
    first = match.group(1).upper() if match else ""
    if first not in ALLOWED:
        raise QueryError(
            f"refused: {first or 'this'} statement is not allowed; the ledger is read-only here, "
            f"only {', '.join(ALLOWED)} queries run"
        )
    return statement[:last].rstrip().rstrip(";").rstrip()


def _code_only(statement: str) -> tuple[str, int]:
    """The statement with comments and quoted text blanked, and where its code ends."""
    out = []
    i, n, last = 0, len(statement), 0
    while i < n:
        ch = statement[i]
        two = statement[i:i + 2]
        if two == "--":
            end = statement.find("\n", i)
            i = n if end < 0 else end
            continue
        if two == "/*":
            end = statement.find("*/", i + 2)
            i = n if end < 0 else end + 2
            out.append(" ")
            continue
        if ch in "'\"":
            end = i + 1
            while end < n:
                if statement[end] == ch:
                    if statement[end + 1:end + 2] == ch:  # doubled quote: escaped
                        end += 2
                        continue
                    break
                end += 1
            out.append(" x ")
            i = end + 1
            last = i
            continue
        if ch == "$":
            tag_end = statement.find("$", i + 1)
            tag = statement[i:tag_end + 1] if tag_end > 0 else ""
            if tag and (tag == "$$" or tag[1:-1].isidentifier()):
                close = statement.find(tag, tag_end + 1)
                i = n if close < 0 else close + len(tag)
                out.append(" x ")
                last = i
                continue
        out.append(ch)
        if not ch.isspace():
            last = i + 1
        i += 1
    return "".join(out), last


def run_sql(engine: Engine, statement: str, row_limit: int, timeout_s: float) -> QueryResult:
    """Run one read-only statement on a reader engine; at most `row_limit` rows come back."""
    sql = check_read_only(statement)
    if engine.dialect.name == "postgresql":
        sql = sql.replace("%", "%%")  # psycopg reads % as a placeholder even without params
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).exec_driver_sql(sql)
            if not result.returns_rows:
                return QueryResult([], [], False)
            columns = list(result.keys())
            rows = [tuple(r) for r in result.fetchmany(row_limit + 1)]
            result.close()
    except sa.exc.DBAPIError as exc:
        if is_timeout(exc):
            raise QueryError(f"query cancelled after the statement timeout of {timeout_s:g} s "
                             "(store.statement_timeout_s, --timeout)") from None
        raise QueryError(f"query failed: {short_error(exc).partition(': ')[2]}") from None
    return QueryResult(columns, rows[:row_limit], len(rows) > row_limit)

