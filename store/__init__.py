"""The sample ledger: every sample's history in SQL (SQLite by default, PostgreSQL by URL).

- `store.models`: the tables (docs/queries.md lists them); `store/migrations`: their Alembic revisions.
- `store.db`: URLs, writer/reader engines (read-only for readers), schema checks and upgrades.
- `store.records`: the plain records the learner hands over (`GroupRecord`, `StepRecord`, ...).
- `store.ledger.Ledger`: the write API; `store.writer.LedgerWriter`: its batching thread.
- `store.queries.LedgerReader`: the read API (dashboard, CLI); `store.sql`: ad-hoc read-only SQL.
- `store.datasets`: data set files -> samples, with errors that name file and line.

Importing `store` loads nothing; import the submodule you need.
"""
