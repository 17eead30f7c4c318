"""Alembic migrations of the ledger schema; run through `store.db.upgrade`, not the alembic CLI."""
