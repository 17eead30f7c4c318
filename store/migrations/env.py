"""Alembic environment: migrate the connection handed over by `store.db.upgrade`.

There is no alembic.ini: `store.db.alembic_config(connection)` builds the config and passes the
open connection in `config.attributes["connection"]`, so migrations run on exactly the engine
(pragmas, credentials) the ledger uses. SQLite uses batch mode for ALTERs it cannot do in place,
with foreign keys off meanwhile; they are checked before the migration commits.
"""

from alembic import context

from store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run ledger migrations through store.db.upgrade (no alembic.ini here)")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
    if connection.dialect.name == "sqlite":  # keys were off for table rebuilds (store.db.upgrade)
        problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise RuntimeError(f"migration would leave foreign key violations: {problems[:5]}")
