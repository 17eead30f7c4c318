"""What each guided group taught about its prefix; which completions saw it.

- `rollout_groups.guided_n`: completions sampled with the prefix (the rest of a mixed group
  were sampled without it); 0 for an unguided group. Old rows: every completion of a group
  with a prefix saw it, so the backfill is `n` where `prefix_ratio > 0`.
- `rollout_groups.unguided_correct`: correct completions among those sampled without a
  prefix (an unguided group's `n_correct`; a mixed group's unguided part), what a rescue
  reads. Backfilled: `n_correct` where `prefix_ratio = 0`, else 0.
- `rollout_groups.prefix_term`, `.prefix_advantage`: the terms the train step that used a
  guided group put on its prefix tokens (`masked`, `off_policy`, `sft`, `off_policy+sft`) and
  the off-policy advantage (LP weight applied); NULL where no step used the group. Old rows
  stay NULL: those runs predate the record.
- `rollouts.with_prefix`: the completion was sampled with its group's prefix. Backfilled from
  the group (`prefix_len > 0`).
- `runs.reason`: why a failed run failed, in one line. NULL for older runs.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NOT NULL with a server default: SQLite can add such a column without rebuilding the table.
    op.add_column("rollout_groups",
                  sa.Column("guided_n", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("rollout_groups",
                  sa.Column("unguided_correct", sa.Integer(), nullable=False, server_default="0"))
    op.add_column("rollout_groups", sa.Column("prefix_term", sa.String(32), nullable=True))
    op.add_column("rollout_groups", sa.Column("prefix_advantage", sa.Float(), nullable=True))
    op.add_column("runs", sa.Column("reason", sa.String(500), nullable=True))
    op.add_column("rollouts", sa.Column("with_prefix", sa.Boolean(), nullable=False,
                                        server_default=sa.false()))
    op.execute("UPDATE rollout_groups SET guided_n = n WHERE prefix_ratio > 0")
    op.execute("UPDATE rollout_groups SET unguided_correct = n_correct WHERE prefix_ratio = 0")
    op.execute("UPDATE rollouts SET with_prefix = TRUE WHERE group_id IN "
               "(SELECT id FROM rollout_groups WHERE prefix_len > 0)")
    if op.get_bind().dialect.name != "sqlite":  # SQLite cannot drop a default without a rebuild
        op.alter_column("rollout_groups", "guided_n", server_default=None)
        op.alter_column("rollout_groups", "unguided_correct", server_default=None)
        op.alter_column("rollouts", "with_prefix", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:
        batch.drop_column("with_prefix")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("reason")
    with op.batch_alter_table("rollout_groups") as batch:
        batch.drop_column("prefix_advantage")
        batch.drop_column("prefix_term")
        batch.drop_column("unguided_correct")
        batch.drop_column("guided_n")
