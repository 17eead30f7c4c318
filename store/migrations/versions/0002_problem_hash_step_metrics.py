"""Duplicate detection by problem hash; free-form per-step metrics.

- `samples.problem_hash`: sha256 of the whitespace-normalised problem text, indexed, so the
  importer finds duplicates (within and across data sets) without comparing long texts. Rows
  of older ledgers are backfilled here.
- `train_steps.metrics`: a JSON object for per-step numbers without a column of their own
  (verifier counters, clip fractions, ...).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import hashlib

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BATCH = 5_000


def _problem_hash(text: str) -> str:
    # Frozen copy of store.records.problem_hash as of this revision: a migration must keep
    # doing what it did when it was written.
    return hashlib.sha256(" ".join(text.split()).encode("utf-8")).hexdigest()


def upgrade() -> None:
    # NOT NULL with a server default: SQLite can add such a column without rebuilding the table.
    op.add_column(
        "samples",
        sa.Column("problem_hash", sa.String(64), nullable=False, server_default=""),
    )
    op.add_column(
        "train_steps", sa.Column("metrics", sa.JSON(), nullable=False, server_default="{}")
    )
    conn = op.get_bind()
    samples = sa.table("samples", sa.column("id", sa.Integer), sa.column("problem", sa.Text),
                       sa.column("problem_hash", sa.String))
    last = 0
    while True:
        rows = conn.execute(
            sa.select(samples.c.id, samples.c.problem)
            .where(samples.c.id > last).order_by(samples.c.id).limit(BATCH)
        ).all()
        if not rows:
            break
        conn.execute(
            samples.update().where(samples.c.id == sa.bindparam("b_id")),
            [{"b_id": r.id, "problem_hash": _problem_hash(r.problem)} for r in rows],
        )
        last = rows[-1].id
    op.create_index("ix_samples_problem_hash", "samples", ["problem_hash"])
    if conn.dialect.name != "sqlite":  # SQLite cannot drop a default without a table rebuild
        op.alter_column("samples", "problem_hash", server_default=None)
        op.alter_column("train_steps", "metrics", server_default=None)


def downgrade() -> None:
    op.drop_index("ix_samples_problem_hash", table_name="samples")
    with op.batch_alter_table("train_steps") as batch:
        batch.drop_column("metrics")
    with op.batch_alter_table("samples") as batch:
        batch.drop_column("problem_hash")
