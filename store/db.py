"""Where the ledger lives and how to connect to it: URLs, engines, schema revisions.

- `resolve_url` turns what a user types (a run directory, a `.db` file, a SQLAlchemy URL) into
  a URL; a run directory means `<run_dir>/ledger.db`.
- `writer_engine` is for the learner, the only writer. SQLite: WAL journal (readers never block
  the writer), `synchronous=NORMAL` (a killed process loses nothing committed), a busy timeout,
  foreign keys on, and `BEGIN IMMEDIATE` so a write transaction takes the lock up front instead
  of failing half-way. PostgreSQL: a dropped connection fails its transaction and is replaced
  (the writer thread retries the transaction).
- `reader_engine` is for everything else and cannot write: SQLite opens the file with
  `mode=ro` (plus `query_only`); PostgreSQL sessions start with
  `default_transaction_read_only=on`. Both cancel a statement after `statement_timeout_s`
  (SQLite through a progress handler, PostgreSQL through `statement_timeout`).
- `ensure_schema` compares the database's Alembic revision with this code's head: the writer
  upgrades an older ledger in place, a reader says which command does it.

Engines are created by the process that uses them (never at import, never inherited across a
fork); dispose them when done.
"""

from __future__ import annotations

import logging
import math
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.pool import QueuePool

from lppo.core.errors import UserError
from store.models import SCHEMA_REVISION

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
LEDGER_FILE = "ledger.db"


class LedgerError(UserError):
    """The ledger cannot be opened as asked; the message says where and what to do."""


# --------------------------------------------------------------------------------------------
# URLs
# --------------------------------------------------------------------------------------------


def resolve_url(target: str | Path) -> str:
    """A SQLAlchemy URL from a URL, a run directory (its `ledger.db`) or a SQLite file path."""
    text = str(target)
    if "://" in text:
        if not text.startswith(("sqlite", "postgresql")):
            raise LedgerError(
                f"unsupported ledger URL {_mask(text)!r}: expected sqlite:///PATH or "
                "postgresql+psycopg://USER@HOST:PORT/DB"
            )
        if text.startswith("postgresql://"):  # plain postgresql:// would pick psycopg2
            text = "postgresql+psycopg://" + text.removeprefix("postgresql://")
        return text
    path = Path(text).expanduser()
    if path.is_dir():
        path = path / LEDGER_FILE
    return f"sqlite:///{path.resolve()}"


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL (None for other backends and in-memory SQLite)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def _mask(url: str) -> str:
    """The URL with any password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return url


# --------------------------------------------------------------------------------------------
# engines
# --------------------------------------------------------------------------------------------


def writer_engine(url: str, busy_timeout_ms: int = 10_000) -> Engine:
    """An engine that writes: SQLite in WAL mode with BEGIN IMMEDIATE, or PostgreSQL."""
    path = sqlite_path(url)
    if make_url(url).get_backend_name() == "sqlite":
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"check_same_thread": False})
        _sqlite_events(engine, busy_timeout_ms, begin="BEGIN IMMEDIATE", wal=path is not None)
        return engine
    # No pool_pre_ping: a dead connection fails the transaction, which `LedgerWriter` retries on
    # a fresh one (SQLAlchemy drops the whole pool on a disconnect). The psycopg pre-ping can
    # itself fail with a non-disconnect error on a connection killed mid-ping.
    return sa.create_engine(url)


def reader_engine(
    url: str, busy_timeout_ms: int = 10_000, statement_timeout_s: float = 30.0
) -> Engine:
    """An engine that cannot write, with a per-statement timeout."""
    if make_url(url).get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is None:
            raise LedgerError("a read-only ledger needs a SQLite file, not an in-memory database")
        if not path.is_file():
            raise LedgerError(f"no ledger at {path} (expected RUN_DIR/{LEDGER_FILE} or a URL)")
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"

        def connect() -> sqlite3.Connection:
            return sqlite3.connect(uri, uri=True, check_same_thread=False)

        # The URL names the file (for messages); the creator opens it read-only.
        engine = sa.create_engine(f"sqlite:///{path}", creator=connect, poolclass=QueuePool)
        _sqlite_events(engine, busy_timeout_ms, begin="BEGIN", wal=False, read_only=True,
                       statement_timeout_s=statement_timeout_s)
        return engine
    options = (
        "-c default_transaction_read_only=on "
        f"-c statement_timeout={max(1, int(statement_timeout_s * 1000))}"
    )
    return sa.create_engine(url, connect_args={"options": options})


def _sqlite_events(
    engine: Engine,
    busy_timeout_ms: int,
    *,
    begin: str,
    wal: bool,
    read_only: bool = False,
    statement_timeout_s: float | None = None,
) -> None:
    """Pragmas on every new connection; our own BEGIN (the sqlite3 module's is off)."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, record) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (below)
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys = ON")
        if wal:
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
        if read_only:
            cur.execute("PRAGMA query_only = ON")
        cur.close()
        if statement_timeout_s is not None:
            info = record.info
            info["deadline"] = math.inf
            dbapi_conn.set_progress_handler(
                lambda: int(time.monotonic() > info["deadline"]), 10_000
            )

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.exec_driver_sql(begin)

    if statement_timeout_s is not None:

        @event.listens_for(engine, "before_cursor_execute")
        def _deadline(conn, cursor, statement, parameters, context, executemany) -> None:
            conn.info["deadline"] = time.monotonic() + statement_timeout_s


def is_timeout(exc: BaseException) -> bool:
    """Whether a DB error is a statement cancelled by our timeout (either backend)."""
    orig = getattr(exc, "orig", exc)
    if isinstance(orig, sqlite3.OperationalError):
        return "interrupted" in str(orig)
    return type(orig).__name__ == "QueryCanceled"


def is_transient(exc: BaseException) -> bool:
    """Whether a write failed for a reason a retry can fix: a lock, a lost connection."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
        return True
    orig = getattr(exc, "orig", None)
    if isinstance(orig, sqlite3.OperationalError):
        text = str(orig)
        return "locked" in text or "busy" in text
    name = type(orig).__name__
    return name in {"OperationalError", "SerializationFailure", "DeadlockDetected",
                    "AdminShutdown", "ConnectionFailure"} and not is_timeout(exc)


def short_error(exc: BaseException) -> str:
    """The first line of the driver's message, without SQLAlchemy's SQL and parameters dump."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip()
    return f"{type(orig).__name__}: {text.splitlines()[0] if text else ''}"


# --------------------------------------------------------------------------------------------
# schema revisions (Alembic)
# --------------------------------------------------------------------------------------------


def alembic_config(connection: sa.Connection | None = None):
    """Alembic config pointing at store/migrations, bound to `connection` if given."""
    from alembic.config import Config as AlembicConfig  # Alembic loads only when migrating

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The head revision of store/migrations (equal to `SCHEMA_REVISION`)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    from alembic.script import ScriptDirectory

    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def current_revision(engine: Engine) -> str | None:
    """The database's revision; None for an empty database. Raises `LedgerError` otherwise."""
    with _connect(engine) as conn:
        tables = set(sa.inspect(conn).get_table_names())
        if "alembic_version" in tables:
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    if tables:
        raise LedgerError(
            f"{_where(engine)} holds tables ({', '.join(sorted(tables)[:5])}) but is not an lppo "
            "ledger (no alembic_version table); point store.url at an empty database"
        )
    return None


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database to `revision` (creating the schema in an empty database)."""
    from alembic import command

    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        # SQLite: a table rebuild (batch migration) drops the old table, which with foreign
        # keys on would cascade-delete every row that references it. The pragma only works
        # outside a transaction, so it goes to the driver connection before SQLAlchemy begins.
        raw = conn.connection.driver_connection if sqlite else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys = OFF")
        try:  # store/migrations/env.py checks the foreign keys before it commits
            command.upgrade(alembic_config(conn), revision)
            if conn.in_transaction():
                conn.commit()
        finally:
            if raw is not None:
                if conn.in_transaction():
                    conn.rollback()
                raw.execute("PRAGMA foreign_keys = ON")


def ensure_schema(engine: Engine, *, writable: bool) -> None:
    """Check the revision; upgrade an older or empty ledger if `writable`, else explain how."""
    head = SCHEMA_REVISION
    current = current_revision(engine)
    if current == head:
        return
    if current is not None and current not in known_revisions():
        raise LedgerError(
            f"{_where(engine)} has schema revision {current}, newer than this lppo "
            f"(head {head}); upgrade lppo to read it"
        )
    if not writable:
        if current is None:
            raise LedgerError(f"{_where(engine)} is empty: no run has written a ledger there yet")
        raise LedgerError(
            f"{_where(engine)} has schema revision {current}, this lppo needs {head}: run "
            f"`lppo ledger upgrade {_target(engine)}` (the learner also upgrades on start)"
        )
    log.info("ledger %s: schema %s -> %s", _where(engine), current or "(empty)", head)
    upgrade(engine, "head")


def _connect(engine: Engine) -> sa.Connection:
    """engine.connect(), with a refused connection turned into one clear `LedgerError`."""
    try:
        return engine.connect()
    except sa.exc.OperationalError as exc:
        raise LedgerError(f"cannot open the ledger at {_where(engine)}: {exc.orig}") from None


def _where(engine: Engine) -> str:
    if engine.dialect.name == "sqlite":
        return engine.url.database or "the in-memory ledger"
    return engine.url.render_as_string(hide_password=True)


def _target(engine: Engine) -> str:
    """What to pass to `lppo ledger upgrade`: the run directory, the file, or the URL."""
    if engine.dialect.name != "sqlite":
        return _where(engine)
    path = Path(_where(engine))
    return str(path.parent if path.name == LEDGER_FILE else path)
