"""The ledger's read side, for the dashboard and the CLI: runs, samples, trajectories, curves.

`LedgerReader` opens the database read-only (`store.db.reader_engine`) and never upgrades it;
an older schema is reported with the command that upgrades it. Every method is one short
transaction and returns plain rows (`list[dict]`, ready for `pandas.DataFrame(rows)`); `run`
arguments take a run id, a run name, or None for the latest run.

The hot queries are indexed: a sample's trajectory reads `rollout_groups` through
`(run_id, sample_id, step_seen)`; the sample table reads `sample_state` through
`(run_id, status, progress)`; per-step curves read `(run_id, step_seen)`.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lppo.core.errors import UserError
from store.db import ensure_schema, reader_engine, resolve_url
from store.models import (
    DROP_REASONS,
    STATUSES,
    EvalResult,
    Rollout,
    RolloutGroup,
    Run,
    Sample,
    SampleState,
    TrainStep,
)
from store.sql import QueryResult, run_sql

Rows = list[dict[str, Any]]
G = RolloutGroup.__table__.c
S = SampleState.__table__.c
LATEST = RolloutGroup.__table__.alias("latest")
"""A sample's most recent group (the sample table's "last chosen by")."""

RESCUED_SQL = """\
WITH g AS (
  SELECT id, sample_id, step_seen, prefix_ratio, prefix_len, n, guided_n, unguided_correct
  FROM rollout_groups WHERE run_id = {run}
), failed AS (        -- each sample's first group whose completions without a prefix all failed
  SELECT sample_id, min(id) AS failed_id FROM g
  WHERE n > guided_n AND unguided_correct = 0 GROUP BY sample_id
), guided AS (        -- its first group with a prefix after that
  SELECT g.sample_id, min(g.id) AS guided_id FROM g JOIN failed f ON f.sample_id = g.sample_id
  WHERE g.prefix_len > 0 AND g.id > f.failed_id GROUP BY g.sample_id
), passed AS (        -- its first correct completion without a prefix after that
  SELECT g.sample_id, min(g.id) AS passed_id FROM g JOIN guided h ON h.sample_id = g.sample_id
  WHERE g.unguided_correct > 0 AND g.id > h.guided_id GROUP BY g.sample_id
)
SELECT s.id AS sample_id, s.dataset, s.source_key,
       fg.step_seen AS failed_step, hg.step_seen AS guided_step, pg.step_seen AS rescued_step,
       (SELECT count(*) FROM g WHERE g.sample_id = s.id AND g.prefix_len > 0
          AND g.id > f.failed_id AND g.id < p.passed_id) AS guided_groups,
       (SELECT avg(g.prefix_ratio) FROM g WHERE g.sample_id = s.id AND g.prefix_len > 0
          AND g.id > f.failed_id AND g.id < p.passed_id) AS mean_prefix_ratio,
       (SELECT max(g.prefix_ratio) FROM g WHERE g.sample_id = s.id AND g.prefix_len > 0
          AND g.id > f.failed_id AND g.id < p.passed_id) AS max_prefix_ratio,
       (SELECT avg(CAST(g.prefix_len AS DOUBLE PRECISION)) FROM g WHERE g.sample_id = s.id
          AND g.prefix_len > 0 AND g.id > f.failed_id AND g.id < p.passed_id)
          AS mean_prefix_tokens
FROM passed p
JOIN guided h ON h.sample_id = p.sample_id
JOIN failed f ON f.sample_id = p.sample_id
JOIN samples s ON s.id = p.sample_id
JOIN g fg ON fg.id = f.failed_id
JOIN g hg ON hg.id = h.guided_id
JOIN g pg ON pg.id = p.passed_id
ORDER BY rescued_step, sample_id"""
"""The one definition of a sample *rescued* by prefixes, used by `LedgerReader.rescued`, the
run summary, the dashboard, the demo's report and docs/queries.md: every completion it got
without a prefix failed (an unguided group, or a mixed group's unguided part), it was then
guided (a group with a non-empty prefix), and later a completion without a prefix passed
(`rollout_groups.unguided_correct`). "Then" and "later" follow arrival order
(`rollout_groups.id`), which is finer than the step. Also: the steps of the three events, and
the guided groups between the failure and the rescue. `{run}` is the run id (a number, or a
subquery such as `(SELECT max(id) FROM runs)`)."""

SAMPLE_SORT_KEYS = ("progress", "ema", "pass_rate", "guided_pass_rate", "attempts",
                    "guided_attempts", "weight", "prefix_ratio", "last_seen_step",
                    "status_since_step", "sample_id")


class LedgerReader:
    """Read-only access to a ledger (a run directory, a SQLite file, or a URL)."""

    def __init__(
        self,
        target: str,
        *,
        statement_timeout_s: float = 30.0,
        row_limit: int = 10_000,
        busy_timeout_ms: int = 10_000,
    ):
        self.url = resolve_url(target)
        self.statement_timeout_s = statement_timeout_s
        self.row_limit = row_limit
        self.engine: Engine = reader_engine(self.url, busy_timeout_ms, statement_timeout_s)
        try:
            ensure_schema(self.engine, writable=False)
        except BaseException:
            self.engine.dispose()
            raise

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> LedgerReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def sql(self, statement: str, row_limit: int | None = None) -> QueryResult:
        """One read-only statement (SELECT/WITH/EXPLAIN/VALUES) with the row limit applied."""
        return run_sql(self.engine, statement, row_limit or self.row_limit,
                       self.statement_timeout_s)

    # -- runs --------------------------------------------------------------------------------

    def runs(self) -> Rows:
        """Every run, newest first, with its last step and sample count."""
        last_step = (sa.select(sa.func.max(TrainStep.step))
                     .where(TrainStep.run_id == Run.id).scalar_subquery())
        n_samples = (sa.select(sa.func.count()).select_from(SampleState)
                     .where(SampleState.run_id == Run.id).scalar_subquery())
        stmt = sa.select(
            Run.id, Run.name, Run.status, Run.code_version, Run.started_at, Run.updated_at,
            Run.ended_at, last_step.label("last_step"), n_samples.label("samples"),
        ).order_by(Run.id.desc())
        return self._rows(stmt)

    def run_id(self, run: int | str | None = None) -> int:
        with self.engine.connect() as conn:
            return self._resolve(conn, run)

    def summary(self, run: int | str | None = None) -> dict[str, Any]:
        """Where a run stands: samples by status, groups, curation, steps, latest evals."""
        with self.engine.connect() as conn:
            run_id = self._resolve(conn, run)
            info = conn.execute(sa.select(Run).where(Run.id == run_id)).mappings().one()
            out: dict[str, Any] = {k: info[k] for k in
                                   ("id", "name", "status", "code_version", "started_at",
                                    "updated_at", "ended_at", "reason")}
            counts = {status: n for status, n in conn.execute(
                sa.select(S.status, sa.func.count()).where(S.run_id == run_id).group_by(S.status)
            )}
            out["samples"] = {s: counts.get(s, 0) for s in STATUSES}
            out["samples"]["total"] = sum(counts.values())
            out["rescued_by_prefix"] = conn.exec_driver_sql(
                f"SELECT count(*) FROM ({RESCUED_SQL.format(run=int(run_id))}) AS rescued"
            ).scalar_one()
            out["groups"] = self._group_totals(conn, run_id)
            out["steps"] = self._step_totals(conn, run_id)
            out["evals"] = _dicts(conn.execute(
                sa.select(EvalResult.step, EvalResult.benchmark, EvalResult.metric,
                          EvalResult.value, EvalResult.n)
                .where(EvalResult.run_id == run_id)
                .where(EvalResult.step == sa.select(sa.func.max(EvalResult.step))
                       .where(EvalResult.run_id == run_id).scalar_subquery())
                .order_by(EvalResult.benchmark, EvalResult.metric)
            ))
        return out

    def _group_totals(self, conn: sa.Connection, run_id: int) -> dict[str, Any]:
        unguided = G.prefix_len == 0
        cols = [
            sa.func.count().label("groups"),
            sa.func.coalesce(sa.func.sum(G.n), 0).label("rollouts"),
            sa.func.coalesce(sa.func.sum(G.tokens), 0).label("tokens"),
            sa.func.count(G.used_in_step).label("used"),
            _count(G.prefix_len > 0).label("guided"),
            sa.func.avg(sa.case((unguided, G.pass_rate))).label("unguided_pass_rate"),
            sa.func.avg(sa.case((~unguided, G.pass_rate))).label("guided_pass_rate"),
            sa.func.avg(G.step_seen - G.policy_version).label("mean_staleness"),
            sa.func.count(sa.distinct(G.actor_id)).label("actors"),
            *(_count(G.dropped_reason == r).label(r) for r in DROP_REASONS),
        ]
        row = dict(conn.execute(sa.select(*cols).where(G.run_id == run_id)).mappings().one())
        row["dropped"] = {r: row.pop(r) for r in DROP_REASONS}
        return row

    def _step_totals(self, conn: sa.Connection, run_id: int) -> dict[str, Any]:
        last = conn.execute(
            sa.select(TrainStep).where(TrainStep.run_id == run_id)
            .order_by(TrainStep.step.desc()).limit(1)
        ).mappings().first()
        count = conn.scalar(sa.select(sa.func.count()).where(TrainStep.run_id == run_id))
        keys = ("step", "policy_version", "loss", "kl", "entropy", "grad_norm", "lr",
                "mean_staleness", "samples_active", "samples_solved", "samples_parked")
        return {"count": count, "last": {k: last[k] for k in keys} if last else None}

    # -- samples -----------------------------------------------------------------------------

    def samples(
        self,
        run: int | str | None = None,
        *,
        status: str | None = None,
        dataset: str | None = None,
        guided: bool | None = None,
        search: str | None = None,
        order_by: str = "progress",
        descending: bool = True,
        limit: int = 100,
        offset: int = 0,
    ) -> Rows:
        """The sample table of a run, filtered and sorted (`order_by` in SAMPLE_SORT_KEYS)."""
        if order_by not in SAMPLE_SORT_KEYS:
            raise UserError(f"cannot sort samples by {order_by!r}; choose from "
                            f"{', '.join(SAMPLE_SORT_KEYS)}")
        if status is not None and status not in STATUSES:
            raise UserError(f"unknown status {status!r}; choose from {', '.join(STATUSES)}")
        key = S[order_by]
        with self.engine.connect() as conn:
            stmt = (
                sa.select(S.sample_id, Sample.dataset, Sample.source_key, Sample.problem,
                          Sample.answer, *(S[c] for c in SAMPLE_SORT_KEYS if c != "sample_id"),
                          S.prefix_len, S.status, S.ema_prev, LATEST.c.selection,
                          LATEST.c.selection_score)
                .join(Sample, Sample.id == S.sample_id)
                .outerjoin(LATEST, LATEST.c.id == _latest_group_id())
                .where(S.run_id == self._resolve(conn, run))
                .order_by(key.desc() if descending else key.asc(), S.sample_id)
                .limit(min(limit, self.row_limit)).offset(offset)
            )
            stmt = sample_filter(stmt, status=status, dataset=dataset, guided=guided,
                                 search=search)
            return _dicts(conn.execute(stmt))

    def sample(self, sample_id: int) -> dict[str, Any]:
        """One sample's problem, answer, solution and metadata."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(Sample).where(Sample.id == sample_id)).mappings().first()
        if row is None:
            raise UserError(f"no sample with id {sample_id}")
        return dict(row)

    def trajectory(self, sample_id: int, run: int | str | None = None, *,
                   texts: bool = False) -> Rows:
        """One row per group of the sample, in order: pass rate, EMA, progress, LP weight,
        prefix (ratio, tokens, completions that saw it, the term its tokens got), status,
        curation; with `texts`, each row's `rollouts` list as well."""
        cols = [G.id.label("group_id"), G.attempt_id, G.step_seen, G.policy_version,
                G.actor_id, G.n, G.n_correct, G.pass_rate, G.mean_reward, G.tokens,
                G.prefix_ratio, G.prefix_len, G.guided_n, G.prefix_term, G.prefix_advantage,
                G.lp_weight, G.ema, G.progress, G.status, G.used_in_step, G.dropped_reason,
                G.selection, G.selection_score, G.received_at]
        with self.engine.connect() as conn:
            run_id = self._resolve(conn, run)
            rows = _dicts(conn.execute(
                sa.select(*cols).where(G.run_id == run_id, G.sample_id == sample_id)
                .order_by(G.step_seen, G.id)
            ))
            if texts and rows:
                by_group = self._rollouts(conn, [r["group_id"] for r in rows])
                for row in rows:
                    row["rollouts"] = by_group.get(row["group_id"], [])
        return rows

    def rescued(self, run: int | str | None = None) -> Rows:
        """Samples rescued by prefixes (`RESCUED_SQL`), first rescued first."""
        with self.engine.connect() as conn:
            run_id = self._resolve(conn, run)
            return _dicts(conn.exec_driver_sql(RESCUED_SQL.format(run=int(run_id))))

    def rollouts(self, group_id: int) -> Rows:
        """The completions of one group (texts included), in order."""
        with self.engine.connect() as conn:
            return self._rollouts(conn, [group_id]).get(group_id, [])

    def _rollouts(self, conn: sa.Connection, group_ids: list[int]) -> dict[int, Rows]:
        out: dict[int, Rows] = {}
        rows = conn.execute(
            sa.select(Rollout).where(Rollout.group_id.in_(group_ids))
            .order_by(Rollout.group_id, Rollout.idx)
        ).mappings()
        for row in rows:
            out.setdefault(row["group_id"], []).append(dict(row))
        return out

    # -- curves ------------------------------------------------------------------------------

    def curation(self, run: int | str | None = None) -> Rows:
        """Per step: groups seen, used, dropped by reason, guided; samples by status."""
        cols = [
            G.step_seen.label("step"),
            sa.func.count().label("groups"),
            sa.func.count(G.used_in_step).label("used"),
            *(_count(G.dropped_reason == r).label(f"dropped_{r}") for r in DROP_REASONS),
            _count(G.prefix_len > 0).label("guided"),
            sa.func.avg(G.pass_rate).label("mean_pass_rate"),
        ]
        with self.engine.connect() as conn:
            run_id = self._resolve(conn, run)
            rows = _dicts(conn.execute(
                sa.select(*cols).where(G.run_id == run_id)
                .group_by(G.step_seen).order_by(G.step_seen)
            ))
            status = {r.step: r for r in conn.execute(
                sa.select(TrainStep.step, TrainStep.samples_active, TrainStep.samples_solved,
                          TrainStep.samples_parked).where(TrainStep.run_id == run_id)
            )}
        for row in rows:
            st = status.get(row["step"])
            for name in STATUSES:
                row[f"samples_{name}"] = getattr(st, f"samples_{name}") if st else None
        return rows

    def actors(self, run: int | str | None = None) -> Rows:
        """Per step and actor: groups, rollouts, tokens, generation seconds, staleness."""
        staleness = G.step_seen - G.policy_version
        gen_s = sa.func.sum(G.gen_s)
        stmt = (
            sa.select(
                G.step_seen.label("step"), G.actor_id, sa.func.count().label("groups"),
                sa.func.sum(G.n).label("rollouts"), sa.func.sum(G.tokens).label("tokens"),
                gen_s.label("gen_s"),
                (sa.func.sum(G.tokens) / sa.func.nullif(gen_s, 0)).label("tokens_per_gen_s"),
                sa.func.avg(staleness).label("mean_staleness"),
                sa.func.max(staleness).label("max_staleness"),
                sa.func.min(G.received_at).label("first_at"),
                sa.func.max(G.received_at).label("last_at"),
            )
            .group_by(G.step_seen, G.actor_id).order_by(G.step_seen, G.actor_id)
        )
        with self.engine.connect() as conn:
            return _dicts(conn.execute(stmt.where(G.run_id == self._resolve(conn, run))))

    def steps(self, run: int | str | None = None) -> Rows:
        """Every train step of the run, in order."""
        with self.engine.connect() as conn:
            stmt = sa.select(TrainStep).where(TrainStep.run_id == self._resolve(conn, run))
            return _dicts(conn.execute(stmt.order_by(TrainStep.step)).mappings())

    def evals(self, run: int | str | None = None) -> Rows:
        """Every eval result of the run, by step, benchmark and metric."""
        with self.engine.connect() as conn:
            stmt = sa.select(EvalResult).where(EvalResult.run_id == self._resolve(conn, run))
            return _dicts(conn.execute(
                stmt.order_by(EvalResult.step, EvalResult.benchmark, EvalResult.metric)
            ).mappings())

    # -- helpers -----------------------------------------------------------------------------

    def _rows(self, stmt: sa.Select) -> Rows:
        with self.engine.connect() as conn:
            return _dicts(conn.execute(stmt))

    def _resolve(self, conn: sa.Connection, run: int | str | None) -> int:
        if run is None:
            found = conn.scalar(sa.select(sa.func.max(Run.id)))
        elif isinstance(run, int):
            found = conn.scalar(sa.select(Run.id).where(Run.id == run))
        else:
            found = conn.scalar(sa.select(Run.id).where(Run.name == run))
        if found is None:
            names = conn.scalars(sa.select(Run.name).order_by(Run.id)).all()
            known = ", ".join(names) if names else "none yet"
            raise UserError(f"no run {run!r} in the ledger (runs: {known})" if run is not None
                            else "the ledger has no runs yet")
        return found


def sample_filter(stmt: sa.Select, *, status: str | None = None, dataset: str | None = None,
                  guided: bool | None = None, search: str | None = None) -> sa.Select:
    """`stmt` (over sample_state joined to samples) narrowed by the sample-table filters."""
    if status is not None:
        stmt = stmt.where(S.status == status)
    if dataset is not None:
        stmt = stmt.where(Sample.dataset == dataset)
    if guided is not None:
        stmt = stmt.where(S.guided_attempts > 0 if guided else S.guided_attempts == 0)
    if search:
        stmt = stmt.where(Sample.problem.contains(search, autoescape=True))
    return stmt


def _count(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    """COUNT of rows where `condition` holds (portable: no FILTER clause needed)."""
    return sa.func.count(sa.case((condition, 1)))


def _latest_group_id():
    """The id of the sample's most recent group in the run, for a row of `sample_state` (one
    indexed lookup per row: `(run_id, sample_id, step_seen)`); `LATEST` is joined on it."""
    return (sa.select(G.id)
            .where(G.run_id == S.run_id, G.sample_id == S.sample_id)
            .order_by(G.step_seen.desc(), G.id.desc()).limit(1).scalar_subquery())


def _dicts(result: Any) -> Rows:
    return [dict(row._mapping) if hasattr(row, "_mapping") else dict(row) for row in result]
