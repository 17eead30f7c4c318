"""Ad-hoc read-only SQL over the ledger (`lppo sql`, the dashboard's SQL page).

Two independent guards keep a query from writing:

1. `check_read_only` accepts exactly one statement starting with SELECT, WITH, EXPLAIN or
   VALUES (comments and string literals are skipped when looking), and refuses anything else
   with a message that says what is allowed.
2. The statement runs on a reader engine (`store.db.reader_engine`): a SQLite file opened with
   `mode=ro`, a PostgreSQL session in read-only transactions. A write that slips past the
   first guard (a data-modifying CTE, `EXPLAIN ANALYZE DELETE ...`) still fails.

On SQLite the statement also runs under `store.sqlguard`: an authorizer that allows reads and
an allow-list of SQL functions (no `fts3_tokenizer`, `load_extension`, ...) and a limit on the
size of any value it builds. `run_sql` applies the row limit and a byte limit on what comes back
(rows beyond either are not fetched), and turns a refusal, an oversized value, bad text and a
statement cancelled by the timeout into a one-line `QueryError` that names the limit.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lppo.core.errors import UserError
from store.db import is_timeout, short_error
from store.sqlguard import MAX_VALUE_BYTES, Guard, guarded

ALLOWED = ("SELECT", "WITH", "EXPLAIN", "VALUES")
MAX_RESULT_BYTES = 16 << 20
"""Most bytes of values a console query returns (strings and blobs by length, others 8)."""
_FETCH = 4
"""Rows fetched at a time (and the driver's buffer): few, as one row may hold megabytes."""


class QueryError(UserError):
    """A query was refused, failed, or ran past its time limit."""


@dataclass
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    """True when the query had more rows than came back."""
    stopped_by: Literal["rows", "bytes"] | None = None
    """Which limit stopped it: the row limit, or `MAX_RESULT_BYTES`."""


def check_read_only(statement: str) -> str:
    """The statement without a trailing `;`; raises `QueryError` unless it is one read."""
    _check_text(statement)
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


def _check_text(statement: str) -> None:
    """Text a database driver can take: no NUL character, no lone surrogate."""
    if "\x00" in statement:
        raise QueryError(f"the query holds a NUL character (at character {statement.index(chr(0))})")
    try:
        statement.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise QueryError(f"the query holds a character that is not valid text (at character "
                         f"{exc.start}: {statement[exc.start]!a})") from None


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


def run_sql(engine: Engine, statement: str, row_limit: int, timeout_s: float,
            max_bytes: int = MAX_RESULT_BYTES) -> QueryResult:
    """Run one read-only statement on a reader engine; at most `row_limit` rows and about
    `max_bytes` of values come back."""
    sql = check_read_only(statement)
    if engine.dialect.name == "postgresql":
        sql = sql.replace("%", "%%")  # psycopg reads % as a placeholder even without params
    guard = Guard()
    try:
        with engine.connect() as conn, _console(conn) as guard:
            result = conn.execution_options(stream_results=True,
                                            max_row_buffer=_FETCH).exec_driver_sql(sql)
            if not result.returns_rows:
                return QueryResult([], [], False)
            columns = list(result.keys())
            rows, stopped = _fetch(result, row_limit, max_bytes)
            result.close()
    except sa.exc.DBAPIError as exc:
        raise _query_error(exc, guard, timeout_s) from None
    return QueryResult(columns, rows, stopped is not None, stopped)


@contextmanager
def _console(conn: Connection) -> Iterator[Guard]:
    """The SQLite guard on `conn`'s driver connection (a no-op guard on PostgreSQL)."""
    raw = conn.connection.driver_connection
    with guarded(raw) if conn.dialect.name == "sqlite" else nullcontext(Guard()) as guard:
        yield guard


def _fetch(result, row_limit: int, max_bytes: int) -> tuple[list[tuple], str | None]:
    """Rows in chunks until the result ends or a limit is passed; which limit, if one."""
    rows: list[tuple] = []
    size = 0
    while chunk := result.fetchmany(_FETCH):
        for row in chunk:
            if len(rows) == row_limit:
                return rows, "rows"
            size += sum(len(v) if isinstance(v, str | bytes) else 8 for v in row)
            if size > max_bytes:
                return rows, "bytes"
            rows.append(tuple(row))
    return rows, None


def _query_error(exc: sa.exc.DBAPIError, guard: Guard, timeout_s: float) -> QueryError:
    name = getattr(exc.orig, "sqlite_errorname", "")
    if guard.denied:  # the authorizer refused part of it: that is why it failed
        return QueryError(f"refused: {guard.denied} is not allowed in the read-only console "
                          "(reads and common SQL functions only)")
    if name == "SQLITE_TOOBIG":
        return QueryError(f"query stopped: a value would exceed {MAX_VALUE_BYTES:,} bytes "
                          "(the console's limit on one string or blob)")
    if is_timeout(exc):
        return QueryError(f"query cancelled after the statement timeout of {timeout_s:g} s "
                          "(store.statement_timeout_s, --timeout)")
    return QueryError(f"query failed: {short_error(exc).partition(': ')[2]}")
