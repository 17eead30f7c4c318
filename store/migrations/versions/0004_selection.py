"""Why each sample was dispatched (`learner.selection`).

- `rollout_groups.selection`: the selection policy that chose the group's sample (`lppo`,
  `uniform`, `thompson`, `target_pass_rate`, `category_bandit`) or curation's `revisit` /
  `recheck`. Old rows stay NULL: those runs predate the record.
- `rollout_groups.selection_score`: the value the policy ranked the sample by. NULL for old
  rows, and where the policy has none (a sample never dispatched before, under `lppo`).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rollout_groups", sa.Column("selection", sa.String(32), nullable=True))
    op.add_column("rollout_groups", sa.Column("selection_score", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rollout_groups") as batch:
        batch.drop_column("selection_score")
        batch.drop_column("selection")
