"""Read queries the dashboard needs beyond `store.queries.LedgerReader`.

Each function takes an open `LedgerReader` and a resolved run id, runs one short read-only
transaction on the reader's engine (SQLite `mode=ro`, PostgreSQL read-only sessions: nothing
here can write) and returns plain rows (`list[dict]`). They are aggregates sized for charts:
one row per step (per-step curves), per step and actor, per step and pass rate, or per sample
for the sample-level views, so a page over a 1,000,000-rollout ledger moves a few thousand
rows, not the rollouts. SQL is SQLAlchemy Core, portable between SQLite and PostgreSQL (no
FILTER clauses, no backend-only functions); the hot ones read through the
`(run_id, step_seen)` and `(run_id, sample_id, step_seen)` indexes of `rollout_groups`.

They live here rather than in `store/queries.py` because only the dashboard's charts need
them in this shape.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from store.models import DROP_REASONS, RolloutGroup, Sample, SampleState
from store.queries import LedgerReader, sample_filter

Rows = list[dict[str, Any]]
G = RolloutGroup.__table__.c
S = SampleState.__table__.c


def _count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    """COUNT of rows where `condition` holds (portable: no FILTER clause)."""
    return sa.func.count(sa.case((condition, 1)))


def _rows(reader: LedgerReader, stmt: sa.Executable) -> Rows:
    """Rows as dicts; PostgreSQL's NUMERIC averages (Decimal) become floats, as on SQLite,
    so frames and charts see numbers of one type on both backends."""
    with reader.engine.connect() as conn:
        return [{k: float(v) if isinstance(v, Decimal) else v for k, v in row._mapping.items()}
                for row in conn.execute(stmt)]


def step_curves(reader: LedgerReader, run_id: int) -> Rows:
    """Per step: groups, rollouts, tokens, used and dropped by reason, guided groups, mean
    reward, unguided and guided pass rate, staleness, and when its groups arrived."""
    guided = G.prefix_len > 0
    stmt = (
        sa.select(
            G.step_seen.label("step"),
            sa.func.count().label("groups"),
            sa.func.sum(G.n).label("rollouts"),
            sa.func.sum(G.tokens).label("gen_tokens"),
            sa.func.count(G.used_in_step).label("used"),
            *(_count(G.dropped_reason == r).label(f"dropped_{r}") for r in DROP_REASONS),
            _count(guided).label("guided"),
            sa.func.avg(G.mean_reward).label("mean_reward"),
            sa.func.avg(sa.case((~guided, G.pass_rate))).label("unguided_pass_rate"),
            sa.func.avg(sa.case((guided, G.pass_rate))).label("guided_pass_rate"),
            sa.func.avg(G.step_seen - G.policy_version).label("group_staleness"),
            sa.func.min(G.received_at).label("first_at"),
            sa.func.max(G.received_at).label("last_at"),
        )
        .where(G.run_id == run_id)
        .group_by(G.step_seen)
        .order_by(G.step_seen)
    )
    return _rows(reader, stmt)


def actor_steps(reader: LedgerReader, run_id: int) -> Rows:
    """Per step and actor: groups, rollouts, tokens, generation seconds, staleness, the
    newest weight version it generated with, and when its groups arrived."""
    staleness = G.step_seen - G.policy_version
    stmt = (
        sa.select(
            G.step_seen.label("step"), G.actor_id,
            sa.func.count().label("groups"),
            sa.func.sum(G.n).label("rollouts"),
            sa.func.sum(G.tokens).label("tokens"),
            sa.func.sum(G.gen_s).label("gen_s"),
            sa.func.avg(staleness).label("mean_staleness"),
            sa.func.max(staleness).label("max_staleness"),
            sa.func.max(G.policy_version).label("weight_version"),
            sa.func.min(G.received_at).label("first_at"),
            sa.func.max(G.received_at).label("last_at"),
        )
        .where(G.run_id == run_id)
        .group_by(G.step_seen, G.actor_id)
        .order_by(G.step_seen, G.actor_id)
    )
    return _rows(reader, stmt)


def pass_rate_counts(reader: LedgerReader, run_id: int) -> Rows:
    """Unguided groups per (step, pass rate): the pass-rate distribution over steps."""
    stmt = (
        sa.select(G.step_seen.label("step"), G.pass_rate, sa.func.count().label("groups"))
        .where(G.run_id == run_id, G.prefix_len == 0)
        .group_by(G.step_seen, G.pass_rate)
        .order_by(G.step_seen, G.pass_rate)
    )
    return _rows(reader, stmt)


def rescued(reader: LedgerReader, run_id: int) -> Rows:
    """Samples rescued by prefixes: the ledger's one definition (`store.queries.RESCUED_SQL`,
    docs/queries.md 1)."""
    return reader.rescued(run_id)


def sample_points(reader: LedgerReader, run_id: int) -> Rows:
    """Every sample of the run with its EMA, progress, weight, prefix and status (no texts)."""
    stmt = (
        sa.select(S.sample_id, S.status, S.ema, S.progress, S.weight, S.prefix_ratio,
                  S.attempts, S.guided_attempts, S.last_seen_step)
        .where(S.run_id == run_id)
        .order_by(S.sample_id)
    )
    return _rows(reader, stmt)


def count_samples(reader: LedgerReader, run_id: int, **filters: Any) -> int:
    """How many samples of the run match the sample-table filters (see `sample_filter`)."""
    stmt = sample_filter(
        sa.select(sa.func.count()).select_from(SampleState)
        .join(Sample, Sample.id == S.sample_id).where(S.run_id == run_id),
        **filters,
    )
    with reader.engine.connect() as conn:
        return int(conn.scalar(stmt) or 0)


def datasets(reader: LedgerReader, run_id: int) -> list[str]:
    """The data sets the run's samples come from."""
    stmt = (
        sa.select(Sample.dataset).distinct()
        .join(SampleState, SampleState.sample_id == Sample.id)
        .where(S.run_id == run_id).order_by(Sample.dataset)
    )
    with reader.engine.connect() as conn:
        return list(conn.scalars(stmt))


def sample_state(reader: LedgerReader, run_id: int, sample_id: int) -> dict[str, Any] | None:
    """The latest state of one sample in the run (None if the run does not hold it)."""
    stmt = sa.select(SampleState).where(S.run_id == run_id, S.sample_id == sample_id)
    with reader.engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    return dict(row) if row is not None else None


def default_sample(reader: LedgerReader, run_id: int) -> int | None:
    """A sample worth opening first: the most recently seen, largest progress; else any."""
    stmt = (
        sa.select(S.sample_id).where(S.run_id == run_id)
        .order_by(S.last_seen_step.is_(None), S.last_seen_step.desc(), S.progress.desc(),
                  S.sample_id)
        .limit(1)
    )
    with reader.engine.connect() as conn:
        return conn.scalar(stmt)
