"""Initial ledger schema: the first version of the tables in store/models.py.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

STATUS_CHECK = "status IN ('active', 'solved', 'parked')"


def _fk(column: str, table: str, source: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{table}.id"], name=f"fk_{source}_{column}_{table}", ondelete="CASCADE"
    )


def upgrade() -> None:
    _runs()
    _samples()
    _eval_results()
    _rollout_groups()
    _sample_state()
    _train_steps()
    _rollouts()


def _runs() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("config", sa.JSON(), nullable=False),
        sa.Column("code_version", sa.String(100), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'finished', 'failed', 'stopped')", name="ck_runs_status"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.UniqueConstraint("name", name="uq_runs_name"),
    )


def _samples() -> None:
    op.create_table(
        "samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset", sa.String(100), nullable=False),
        sa.Column("source_key", sa.String(300), nullable=False),
        sa.Column("problem", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("solution", sa.Text(), nullable=True),
        sa.Column("solution_tokens", sa.Integer(), nullable=True),
        sa.Column("meta", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_samples"),
        sa.UniqueConstraint("dataset", "source_key", name="uq_samples_dataset_source_key"),
    )


def _eval_results() -> None:
    op.create_table(
        "eval_results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("benchmark", sa.String(100), nullable=False),
        sa.Column("metric", sa.String(100), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        _fk("run_id", "runs", "eval_results"),
        sa.PrimaryKeyConstraint("id", name="pk_eval_results"),
        sa.UniqueConstraint(
            "run_id", "step", "benchmark", "metric",
            name="uq_eval_results_run_id_step_benchmark_metric",
        ),
    )


def _rollout_groups() -> None:
    op.create_table(
        "rollout_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sa.String(256), nullable=False),
        sa.Column("actor_id", sa.String(256), nullable=False),
        sa.Column("step_seen", sa.Integer(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("n_correct", sa.Integer(), nullable=False),
        sa.Column("pass_rate", sa.Float(), nullable=False),
        sa.Column("mean_reward", sa.Float(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("prefix_ratio", sa.Float(), nullable=False),
        sa.Column("prefix_len", sa.Integer(), nullable=False),
        sa.Column("lp_weight", sa.Float(), nullable=True),
        sa.Column("used_in_step", sa.Integer(), nullable=True),
        sa.Column("dropped_reason", sa.String(16), nullable=True),
        sa.Column("ema", sa.Float(), nullable=True),
        sa.Column("progress", sa.Float(), nullable=True),
        sa.Column("status", sa.String(16), nullable=True),
        sa.Column("gen_s", sa.Float(), nullable=False),
        sa.Column("verify_s", sa.Float(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.CheckConstraint(
            "dropped_reason IS NULL OR dropped_reason IN "
            "('all_correct', 'all_wrong', 'stale', 'invalid')",
            name="ck_rollout_groups_dropped",
        ),
        sa.CheckConstraint(STATUS_CHECK, name="ck_rollout_groups_status"),
        _fk("run_id", "runs", "rollout_groups"),
        _fk("sample_id", "samples", "rollout_groups"),
        sa.PrimaryKeyConstraint("id", name="pk_rollout_groups"),
        sa.UniqueConstraint("run_id", "attempt_id", name="uq_rollout_groups_run_id_attempt_id"),
    )
    op.create_index(
        "ix_rollout_groups_run_id_sample_id_step_seen", "rollout_groups",
        ["run_id", "sample_id", "step_seen"],
    )
    op.create_index("ix_rollout_groups_run_id_step_seen", "rollout_groups", ["run_id", "step_seen"])


def _sample_state() -> None:
    op.create_table(
        "sample_state",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("sample_id", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("guided_attempts", sa.Integer(), nullable=False),
        sa.Column("pass_rate", sa.Float(), nullable=True),
        sa.Column("guided_pass_rate", sa.Float(), nullable=True),
        sa.Column("ema", sa.Float(), nullable=True),
        sa.Column("ema_prev", sa.Float(), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("prefix_ratio", sa.Float(), nullable=False),
        sa.Column("prefix_len", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_since_step", sa.Integer(), nullable=False),
        sa.Column("last_seen_step", sa.Integer(), nullable=True),
        sa.Column("solved_streak", sa.Integer(), nullable=False),
        sa.Column("failed_streak", sa.Integer(), nullable=False),
        sa.CheckConstraint(STATUS_CHECK, name="ck_sample_state_status"),
        _fk("run_id", "runs", "sample_state"),
        _fk("sample_id", "samples", "sample_state"),
        sa.PrimaryKeyConstraint("run_id", "sample_id", name="pk_sample_state"),
    )
    op.create_index("ix_sample_state_run_id_ema", "sample_state", ["run_id", "ema"])
    op.create_index(
        "ix_sample_state_run_id_status_progress", "sample_state", ["run_id", "status", "progress"]
    )
    op.create_index("ix_sample_state_sample_id", "sample_state", ["sample_id"])


def _train_steps() -> None:
    op.create_table(
        "train_steps",
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("policy_version", sa.Integer(), nullable=False),
        sa.Column("loss", sa.Float(), nullable=True),
        sa.Column("kl", sa.Float(), nullable=True),
        sa.Column("entropy", sa.Float(), nullable=True),
        sa.Column("grad_norm", sa.Float(), nullable=True),
        sa.Column("lr", sa.Float(), nullable=True),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("mean_staleness", sa.Float(), nullable=True),
        sa.Column("groups_used", sa.Integer(), nullable=False),
        sa.Column("groups_dropped", sa.Integer(), nullable=False),
        sa.Column("samples_active", sa.Integer(), nullable=True),
        sa.Column("samples_solved", sa.Integer(), nullable=True),
        sa.Column("samples_parked", sa.Integer(), nullable=True),
        sa.Column("gen_wait_s", sa.Float(), nullable=False),
        sa.Column("train_s", sa.Float(), nullable=False),
        sa.Column("sync_s", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        _fk("run_id", "runs", "train_steps"),
        sa.PrimaryKeyConstraint("run_id", "step", name="pk_train_steps"),
    )


def _rollouts() -> None:
    op.create_table(
        "rollouts",
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("reward", sa.Float(), nullable=False),
        sa.Column("verdict", sa.String(32), nullable=False),
        sa.Column("finish_reason", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"], ["rollout_groups.id"], name="fk_rollouts_group_id_rollout_groups",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("group_id", "idx", name="pk_rollouts"),
    )


def downgrade() -> None:
    for table in ("rollouts", "train_steps", "sample_state", "rollout_groups", "eval_results",
                  "samples", "runs"):
        op.drop_table(table)
