"""What a console query may do on a SQLite connection: reads and an allow-list of functions.

The console (`lppo sql`, the dashboard's SQL page) runs a user's statement on a read-only
connection, which stops writes. It does not stop a SELECT from calling a function that harms
the process serving it: `fts3_tokenizer` reads and overwrites a function pointer in memory,
`load_extension` loads code, `randomblob(300000000)` allocates gigabytes. So for the duration
of one console statement, `guarded(conn)` installs on the raw `sqlite3` connection:

- an authorizer (`sqlite3.Connection.set_authorizer`, checked when the statement is prepared)
  that allows reading tables, recursive CTEs, the connection's own BEGIN (the console refuses
  any statement but a read before it gets here) and the SQL functions in `FUNCTIONS` (core
  scalar, aggregate, window, date/time, math and JSON functions), and denies everything else,
  remembering what it denied so the refusal can name it;
- limits (`setlimit`): no string or blob over `MAX_VALUE_BYTES`, no statement text over
  `MAX_SQL_BYTES`, no attached databases;

and restores the connection's own settings afterwards (the same pooled connection serves the
dashboard's own queries). PostgreSQL has no per-statement authorizer: there the console runs in
read-only transactions with a statement timeout, and the README shows a SELECT-only role.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

MAX_VALUE_BYTES = 8 << 20
"""Largest string or blob a console statement may build (a completion text is ~100 kB)."""
MAX_SQL_BYTES = 1 << 20
"""Longest console statement."""

_NAMES = """
abs changes char coalesce concat concat_ws format glob hex ifnull iif instr last_insert_rowid
length like likelihood likely lower ltrim max min nullif octet_length printf quote random
randomblob replace round rtrim sign soundex substr substring trim typeof unhex unicode
unlikely upper zeroblob
avg count group_concat string_agg sum total
row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value
nth_value
date time datetime julianday unixepoch strftime timediff
acos acosh asin asinh atan atan2 atanh ceil ceiling cos cosh degrees exp floor ln log log10
log2 mod pi pow power radians sin sinh sqrt tan tanh trunc
json json_array json_array_length json_error_position json_extract json_insert json_object
json_patch json_quote json_remove json_replace json_set json_type json_valid json_group_array
json_group_object -> ->>
"""
FUNCTIONS = frozenset(_NAMES.split())
"""SQL functions a console statement may call. Left out on purpose, among others:
`fts3_tokenizer` (reads and writes process memory), `load_extension`, `readfile`/`writefile`
and `edit` (the file system, in the sqlite3 shell's builds), `sqlite_*` internals."""

_READS = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE,
          sqlite3.SQLITE_TRANSACTION}  # the reader's own BEGIN; users cannot send one
_LIMITS = {sqlite3.SQLITE_LIMIT_LENGTH: MAX_VALUE_BYTES, sqlite3.SQLITE_LIMIT_SQL_LENGTH:
           MAX_SQL_BYTES, sqlite3.SQLITE_LIMIT_ATTACHED: 0}
_ACTIONS = {getattr(sqlite3, n): n.removeprefix("SQLITE_") for n in dir(sqlite3)
            if n.startswith("SQLITE_") and not n.startswith(("SQLITE_LIMIT", "SQLITE_DENY",
                                                             "SQLITE_OK", "SQLITE_IGNORE"))
            and isinstance(getattr(sqlite3, n), int)}


class Guard:
    """The authorizer of one statement; `denied` says what it refused."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    @property
    def denied(self) -> str | None:
        """The first function or pragma refused, else the first action (None: nothing)."""
        named = [r for r in self.refused if r.startswith(("the function", "PRAGMA"))]
        return (named or self.refused or [None])[0]

    def __call__(self, action: int, arg1: str | None, arg2: str | None, db: str | None,
                 trigger: str | None) -> int:
        if action in _READS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in FUNCTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION:
            what = f"the function {arg2}()"
        elif action == sqlite3.SQLITE_UPDATE and arg1 == "sqlite_master":
            what = "PRAGMA table functions (pragma_...)"  # they ask this first; read sqlite_schema
        else:
            what = " ".join(x for x in (_ACTIONS.get(action, str(action)), arg1) if x)
        self.refused.append(what)
        return sqlite3.SQLITE_DENY


@contextmanager
def guarded(conn: sqlite3.Connection) -> Iterator[Guard]:
    """`conn` with the console's authorizer and limits for the duration of the block."""
    guard = Guard()
    before = {limit: conn.setlimit(limit, value) for limit, value in _LIMITS.items()}
    conn.set_authorizer(guard)
    try:
        yield guard
    finally:
        conn.set_authorizer(None)
        for limit, value in before.items():
            conn.setlimit(limit, value)
