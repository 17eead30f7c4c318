"""The ledger's tables (docs/queries.md describes them), as SQLAlchemy 2.0 declarative models.

These classes are the schema's single description in code; the Alembic revisions under
`store/migrations/versions/` create exactly this schema (a test compares them). Change a model
only together with a new revision.

Conventions that make the ledger easy to query from any SQL client (`lppo sql`, psql, the
sqlite3 shell) and identical on SQLite and PostgreSQL:

- Times are unix seconds (REAL) in columns named `*_at`; durations are seconds in `*_s`.
- Statuses and drop reasons are short strings guarded by CHECK constraints.
- `rollout_groups` carries, besides what the actor measured, the sample's state right after
  the group (`ema`, `progress`, `status`, ...): one indexed query on
  `(run_id, sample_id, step_seen)` gives a sample's exact trajectory, step by step.
- `sample_state` holds the latest state per (run, sample) for "samples by status/progress".
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lppo.core.vocab import DropReason, SampleStatus

SCHEMA_REVISION = "0005"
"""The Alembic revision these models describe (the head of store/migrations/versions); bump it
with every new revision. Readers compare it without loading Alembic; a test checks it."""

STATUSES = tuple(s.value for s in SampleStatus)
"""Curation status of a sample in a run (`lppo/core/vocab.py`)."""
DROP_REASONS = tuple(r.value for r in DropReason)
"""Why a rollout group was left out of the batch (`lppo/core/vocab.py`)."""
RUN_STATUSES = ("running", "finished", "failed", "stopped")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dict[str, Any]: JSON}


class Run(Base):
    """One training run; `name` is the run directory's name."""

    __tablename__ = "runs"
    __table_args__ = (CheckConstraint(_in("status", RUN_STATUSES), name="status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    code_version: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    """Time of the run's last ledger write: a `running` run not updated for long is dead."""
    ended_at: Mapped[float | None] = mapped_column(Float)
    reason: Mapped[str | None] = mapped_column(String(500))
    """Why a `failed` run failed, in one line (None otherwise)."""


class Sample(Base):
    """One problem with its expert solution and final answer; shared by every run."""

    __tablename__ = "samples"
    __table_args__ = (UniqueConstraint("dataset", "source_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(100))
    source_key: Mapped[str] = mapped_column(String(300))
    """Where the row came from: an id field, a file path, or `file:line`."""
    problem: Mapped[str] = mapped_column(Text)
    problem_hash: Mapped[str] = mapped_column(String(64), index=True)
    """sha256 of the whitespace-normalised problem text: duplicate detection."""
    answer: Mapped[str] = mapped_column(Text)
    solution: Mapped[str | None] = mapped_column(Text)
    solution_tokens: Mapped[int | None] = mapped_column(Integer)
    """Length of the expert solution in the policy's tokens (set by the learner)."""
    meta: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[float] = mapped_column(Float)


class SampleState(Base):
    """Latest LPPO state of a sample in a run."""

    __tablename__ = "sample_state"
    __table_args__ = (
        CheckConstraint(_in("status", STATUSES), name="status"),
        Index(None, "run_id", "status", "progress"),
        Index(None, "run_id", "ema"),
    )

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    sample_id: Mapped[int] = mapped_column(
        ForeignKey("samples.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Unguided groups seen."""
    guided_attempts: Mapped[int] = mapped_column(Integer, default=0)
    """Groups seen with an expert prefix."""
    pass_rate: Mapped[float | None] = mapped_column(Float)
    """Pass rate of the last unguided group."""
    guided_pass_rate: Mapped[float | None] = mapped_column(Float)
    """Pass rate of the last guided group."""
    ema: Mapped[float | None] = mapped_column(Float)
    ema_prev: Mapped[float | None] = mapped_column(Float)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    """LP weight of the sample's last group before batch renormalisation (the weight applied
    to a trained group is `rollout_groups.lp_weight`)."""
    prefix_ratio: Mapped[float] = mapped_column(Float, default=0.0)
    prefix_len: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default="active")
    status_since_step: Mapped[int] = mapped_column(Integer, default=0)
    last_seen_step: Mapped[int | None] = mapped_column(Integer)
    solved_streak: Mapped[int] = mapped_column(Integer, default=0)
    failed_streak: Mapped[int] = mapped_column(Integer, default=0)


class RolloutGroup(Base):
    """One attempt: n completions of one sample, and the sample's state right after it."""

    __tablename__ = "rollout_groups"
    __table_args__ = (
        UniqueConstraint("run_id", "attempt_id"),
        CheckConstraint(_in("status", STATUSES), name="status"),
        CheckConstraint(
            f"dropped_reason IS NULL OR {_in('dropped_reason', DROP_REASONS)}", name="dropped"
        ),
        Index(None, "run_id", "sample_id", "step_seen"),
        Index(None, "run_id", "step_seen"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    sample_id: Mapped[int] = mapped_column(ForeignKey("samples.id", ondelete="CASCADE"))
    attempt_id: Mapped[str] = mapped_column(String(256))
    actor_id: Mapped[str] = mapped_column(String(256))
    step_seen: Mapped[int] = mapped_column(Integer)
    """Learner step at which the group arrived."""
    policy_version: Mapped[int] = mapped_column(Integer)
    """Policy version that generated it; `step_seen - policy_version` is its staleness."""
    n: Mapped[int] = mapped_column(Integer)
    n_correct: Mapped[int] = mapped_column(Integer)
    pass_rate: Mapped[float] = mapped_column(Float)
    mean_reward: Mapped[float] = mapped_column(Float)
    tokens: Mapped[int] = mapped_column(Integer)
    """Completion tokens of the group (prefix not counted)."""
    prefix_ratio: Mapped[float] = mapped_column(Float, default=0.0)
    prefix_len: Mapped[int] = mapped_column(Integer, default=0)
    lp_weight: Mapped[float | None] = mapped_column(Float)
    """LP weight applied to the group's advantages: after the batch renormalisation to mean 1
    (`lppo.lp.renormalize`), written by the train step that used the group (None: not trained
    on). `sample_state.weight` holds the weight before renormalisation of a sample's latest
    group."""
    used_in_step: Mapped[int | None] = mapped_column(Integer)
    guided_n: Mapped[int] = mapped_column(Integer, default=0)
    """Completions sampled with the prefix (fewer than `n` in a mixed group); 0: unguided."""
    unguided_correct: Mapped[int] = mapped_column(Integer, default=0)
    """Correct completions among those sampled without a prefix (`n_correct` of an unguided
    group; a mixed group's unguided part)."""
    prefix_term: Mapped[str | None] = mapped_column(String(32))
    """What the train step that used this guided group put on its prefix tokens: `masked`,
    `off_policy`, `sft` or `off_policy+sft` (None: unguided, or not trained on)."""
    prefix_advantage: Mapped[float | None] = mapped_column(Float)
    """The off-policy term's advantage on the prefix, LP weight applied (None: no such term)."""
    selection: Mapped[str | None] = mapped_column(String(32))
    """Why the sample was dispatched: the selection policy's name (`learner.selection`), or
    `revisit` / `recheck` (curation's); None: recorded before this column existed."""
    selection_score: Mapped[float | None] = mapped_column(Float)
    """The value the policy ranked it by (learner/algo/select.py lists each policy's)."""
    dropped_reason: Mapped[str | None] = mapped_column(String(16))
    ema: Mapped[float | None] = mapped_column(Float)
    """The sample's unguided EMA after this group."""
    progress: Mapped[float | None] = mapped_column(Float)
    """The sample's learning progress after this group."""
    status: Mapped[str | None] = mapped_column(String(16))
    """The sample's curation status after this group (None: the group changed no state)."""
    gen_s: Mapped[float] = mapped_column(Float, default=0.0)
    verify_s: Mapped[float] = mapped_column(Float, default=0.0)
    received_at: Mapped[float] = mapped_column(Float)


class Rollout(Base):
    """One completion of a group: the policy's tokens only, never the prefix."""

    __tablename__ = "rollouts"

    group_id: Mapped[int] = mapped_column(
        ForeignKey("rollout_groups.id", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str | None] = mapped_column(Text)
    """Completion text (None when `store.store_texts` is off)."""
    length: Mapped[int] = mapped_column(Integer)
    """Completion length in tokens."""
    reward: Mapped[float] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(32))
    finish_reason: Mapped[str] = mapped_column(String(16))
    with_prefix: Mapped[bool] = mapped_column(Boolean, default=False)
    """Sampled with its group's prefix (False for unguided groups and for the unguided part
    of a mixed group)."""
    overlong_penalty: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    """DAPO's soft overlong penalty added to `reward` before advantages (0: none)."""
    loss_masked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """The completion carried no policy loss (truncated, under `learner.mask_truncated`)."""


class TrainStep(Base):
    """One optimizer step of a run."""

    __tablename__ = "train_steps"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    step: Mapped[int] = mapped_column(Integer, primary_key=True)
    policy_version: Mapped[int] = mapped_column(Integer)
    loss: Mapped[float | None] = mapped_column(Float)
    kl: Mapped[float | None] = mapped_column(Float)
    entropy: Mapped[float | None] = mapped_column(Float)
    grad_norm: Mapped[float | None] = mapped_column(Float)
    lr: Mapped[float | None] = mapped_column(Float)
    tokens: Mapped[int] = mapped_column(Integer, default=0)
    mean_staleness: Mapped[float | None] = mapped_column(Float)
    groups_used: Mapped[int] = mapped_column(Integer, default=0)
    groups_dropped: Mapped[int] = mapped_column(Integer, default=0)
    samples_active: Mapped[int | None] = mapped_column(Integer)
    samples_solved: Mapped[int | None] = mapped_column(Integer)
    samples_parked: Mapped[int | None] = mapped_column(Integer)
    gen_wait_s: Mapped[float] = mapped_column(Float, default=0.0)
    train_s: Mapped[float] = mapped_column(Float, default=0.0)
    sync_s: Mapped[float] = mapped_column(Float, default=0.0)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Anything else per step (verifier counters, clip fractions, ...)."""
    created_at: Mapped[float] = mapped_column(Float)


class EvalResult(Base):
    """One metric of one benchmark at one step (pass@1 averaged over k samples, ...)."""

    __tablename__ = "eval_results"
    __table_args__ = (UniqueConstraint("run_id", "step", "benchmark", "metric"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    step: Mapped[int] = mapped_column(Integer)
    benchmark: Mapped[str] = mapped_column(String(100))
    metric: Mapped[str] = mapped_column(String(100))
    value: Mapped[float] = mapped_column(Float)
    n: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[float] = mapped_column(Float)
