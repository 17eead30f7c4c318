"""Per-completion reward shaping and loss masking (`actor.reward.overlong_*`,
`learner.mask_truncated`).

- `rollouts.overlong_penalty`: DAPO's soft overlong penalty added to the completion's reward
  before advantages (0 when off, and for old rows).
- `rollouts.loss_masked`: the completion carried no policy loss (a truncated one under
  `learner.mask_truncated`); false for old rows.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("rollouts", sa.Column("overlong_penalty", sa.Float(), nullable=False,
                                        server_default="0"))
    op.add_column("rollouts", sa.Column("loss_masked", sa.Boolean(), nullable=False,
                                        server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("rollouts") as batch:
        batch.drop_column("loss_masked")
        batch.drop_column("overlong_penalty")
