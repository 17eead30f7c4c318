"""The ledger's write side: the small typed API the learner (the only writer) calls.

    ledger = Ledger.open(cfg)                       # upgrades an older schema, creates a new one
    run_id = ledger.register_run("demo", config=cfg.model_dump(mode="json"))
    ids = ledger.import_samples(records).ids        # see store.datasets for files
    ledger.add_to_run(run_id, ids)                  # every sample starts `active`
    ledger.write(run_id, groups=[...], steps=[...], evals=[...])   # one transaction

`write` is the hot path. Each call is one transaction: the groups (inserted once per attempt id;
a re-delivered attempt is skipped, rollouts and state included), their rollouts, the sample
states those groups produced, then train steps (which mark the groups they used, with the LP
weight applied to each) and eval results (both upserts, so a retried batch is harmless). A
batch of 64 groups x 8 rollouts is a handful of statements: multi-row inserts through
SQLAlchemy Core on SQLite; on PostgreSQL, COPY for rollouts and `INSERT ... SELECT FROM
unnest(arrays)` for groups and states.
`store.writer.LedgerWriter` calls it from a background thread with batching and retries.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from store.db import LedgerError, ensure_schema, resolve_url, writer_engine
from store.models import EvalResult, Rollout, RolloutGroup, Run, Sample, SampleState, TrainStep
from store.records import (
    EvalRecord,
    GroupRecord,
    SampleRecord,
    SampleStateRecord,
    StepRecord,
    problem_hash,
)

if TYPE_CHECKING:
    from lppo.core.config.schema import Config

IN_CHUNK = 500  # values per IN (...) list: far below every backend's parameter limit

STATE_FIELDS = tuple(SampleStateRecord.__dataclass_fields__)
ROLLOUT_COLUMNS = ("group_id", "idx", "text", "length", "reward", "verdict", "finish_reason",
                   "with_prefix", "overlong_penalty", "loss_masked")
STEP_FIELDS = tuple(f for f in StepRecord.__dataclass_fields__ if not f.startswith("used_"))


@dataclass
class DatasetImport:
    """What an import did to one data set."""

    rows: int = 0
    inserted: int = 0
    existing: int = 0
    """Rows already in the ledger (same data set, key and text): re-importing is a no-op."""
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    """(source key, source key of the earlier row with the same problem text), skipped."""
    overlaps: dict[str, int] = field(default_factory=dict)
    """Other data sets in the ledger holding some of the same problems: dataset -> count."""


@dataclass
class ImportResult:
    """What `import_samples` did. `ids[i]` is the ledger id of the i-th record given."""

    ids: list[int] = field(default_factory=list)
    datasets: dict[str, DatasetImport] = field(default_factory=dict)


class Written(NamedTuple):
    """Newly recorded by one `Ledger.write`."""

    groups: int
    rollouts: int


class Ledger:
    """Write access to one ledger database. Create it in the process that uses it."""

    def __init__(self, url: str, *, busy_timeout_ms: int = 10_000, store_texts: bool = True):
        self.url = resolve_url(url)
        self.store_texts = store_texts
        self.engine: Engine = writer_engine(self.url, busy_timeout_ms)
        try:
            ensure_schema(self.engine, writable=True)
        except BaseException:
            self.engine.dispose()
            raise
        self._pg = self.engine.dialect.name == "postgresql"
        self._insert = postgresql.insert if self._pg else sqlite.insert

    @classmethod
    def open(cls, config: Config) -> Ledger:
        """The run's ledger as configured (`store.url`, or `<run_dir>/ledger.db`)."""
        return cls(config.ledger_url, busy_timeout_ms=config.store.busy_timeout_ms,
                   store_texts=config.store.store_texts)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- runs --------------------------------------------------------------------------------

    def register_run(
        self,
        name: str,
        config: Mapping[str, Any] | None = None,
        code_version: str | None = None,
        *,
        resume: bool = True,
    ) -> int:
        """The id of run `name`, created if new; an existing run is marked running again
        (`resume=False` makes an existing name an error instead)."""
        now = time.time()
        with self.engine.begin() as conn:
            found = conn.scalar(sa.select(Run.id).where(Run.name == name))
            if found is not None:
                if not resume:
                    raise LedgerError(f"run {name!r} already exists in the ledger at "
                                      f"{self.engine.url.render_as_string(hide_password=True)}")
                values: dict[str, Any] = {"status": "running", "ended_at": None, "updated_at": now}
                if config is not None:
                    values["config"] = dict(config)
                if code_version is not None:
                    values["code_version"] = code_version
                conn.execute(sa.update(Run).where(Run.id == found).values(**values))
                return found
            return conn.scalar(
                sa.insert(Run).returning(Run.id),
                {"name": name, "config": dict(config or {}), "code_version": code_version,
                 "status": "running", "started_at": now, "updated_at": now},
            )

    def results_run(self, name: str, config: dict[str, Any]) -> int:
        """The id of run `name`, to record results under (`lppo eval`): an existing run, or a
        new one registered and closed `finished` at once (it trains nothing)."""
        with self.engine.connect() as conn:
            run_id = conn.scalar(sa.select(Run.id).where(Run.name == name))
        if run_id is None:
            run_id = self.register_run(name, config=config, resume=False)
            self.end_run(run_id, "finished")
        return run_id

    def end_run(self, run_id: int, status: str = "finished", reason: str | None = None) -> None:
        """Close the run with `status` and, for a failure, a one-line `reason`."""
        now = time.time()
        with self.engine.begin() as conn:
            conn.execute(
                sa.update(Run).where(Run.id == run_id)
                .values(status=status, ended_at=now, updated_at=now,
                        reason=None if reason is None else reason[:500])
            )

    # -- samples -----------------------------------------------------------------------------

    def import_samples(self, records: Sequence[SampleRecord]) -> ImportResult:
        """Insert samples of any data sets in one transaction: all of them, or none.

        The same (dataset, key) with the same text is already there (a no-op); with another
        text it is an error. A row whose problem text repeats an earlier row of the same data
        set is skipped and listed in `duplicates`; problems shared with other data sets are
        counted in `overlaps` (train/eval contamination shows up there).
        """
        hashes = [problem_hash(r.problem) for r in records]
        result = ImportResult(datasets={r.dataset: DatasetImport() for r in records})
        keys: list[tuple[str, str]] = []  # the (dataset, key) whose id each record gets
        with self.engine.begin() as conn:
            known = self._known_samples(conn, set(result.datasets))
            first_of = {(ds, h): key for (ds, key), (_, h) in known.items()}
            new_rows: list[dict[str, Any]] = []
            for rec, h in zip(records, hashes, strict=True):
                stats = result.datasets[rec.dataset]
                stats.rows += 1
                key = (rec.dataset, rec.source_key)
                if key in known:
                    if known[key][1] != h:
                        raise LedgerError(
                            f"data set {rec.dataset!r}, {rec.source_key}: the ledger already "
                            "holds a different problem under this key; import the changed file "
                            "under a new data set name"
                        )
                    stats.existing += 1
                elif (rec.dataset, h) in first_of:
                    first = first_of[(rec.dataset, h)]
                    stats.duplicates.append((rec.source_key, first))
                    key = (rec.dataset, first)
                else:
                    first_of[(rec.dataset, h)] = rec.source_key
                    new_rows.append(_sample_row(rec, h))
                    stats.inserted += 1
                keys.append(key)
            if new_rows:
                conn.execute(sa.insert(Sample), new_rows)
            ids = {k: v[0] for k, v in self._known_samples(conn, set(result.datasets)).items()}
            result.ids = [ids[k] for k in keys]
            self._overlaps(conn, result, records, hashes)
        return result

    def _known_samples(self, conn: sa.Connection, datasets: set[str]) -> dict:
        """(dataset, source_key) -> (id, problem_hash) for every sample of `datasets`."""
        if not datasets:
            return {}
        rows = conn.execute(
            sa.select(Sample.dataset, Sample.source_key, Sample.id, Sample.problem_hash)
            .where(Sample.dataset.in_(sorted(datasets)))
        )
        return {(r.dataset, r.source_key): (r.id, r.problem_hash) for r in rows}

    def _overlaps(self, conn: sa.Connection, result: ImportResult,
                  records: Sequence[SampleRecord], hashes: list[str]) -> None:
        """Fill `overlaps`: per imported data set, other data sets sharing problem texts."""
        holders: dict[str, set[str]] = {}  # problem hash -> data sets holding it
        unique = sorted(set(hashes))
        for start in range(0, len(unique), IN_CHUNK):
            rows = conn.execute(
                sa.select(Sample.problem_hash, Sample.dataset).distinct()
                .where(Sample.problem_hash.in_(unique[start:start + IN_CHUNK]))
            )
            for r in rows:
                holders.setdefault(r.problem_hash, set()).add(r.dataset)
        seen: dict[str, dict[str, set[str]]] = {}
        for rec, h in zip(records, hashes, strict=True):
            for other in holders.get(h, ()):
                if other != rec.dataset:
                    seen.setdefault(rec.dataset, {}).setdefault(other, set()).add(h)
        for ds, others in seen.items():
            result.datasets[ds].overlaps = {o: len(hs) for o, hs in sorted(others.items())}

    def add_to_run(self, run_id: int, sample_ids: Iterable[int], step: int = 0) -> int:
        """Give samples a fresh `active` state in the run (ones already there are kept);
        returns how many were added."""
        rows = [{**_state_defaults(), "run_id": run_id, "sample_id": sid,
                 "status_since_step": step} for sid in dict.fromkeys(sample_ids)]
        if not rows:
            return 0
        stmt = self._insert(SampleState).on_conflict_do_nothing(
            index_elements=["run_id", "sample_id"]
        )
        in_run = sa.select(sa.func.count()).where(SampleState.run_id == run_id)
        with self.engine.begin() as conn:
            before = conn.scalar(in_run)
            conn.execute(stmt, rows)
            return conn.scalar(in_run) - before

    def set_solution_tokens(self, lengths: Mapping[int, int]) -> None:
        """Record expert-solution lengths in the policy's tokens (sample id -> tokens)."""
        if not lengths:
            return
        stmt = sa.update(Sample).where(Sample.id == sa.bindparam("b_id"))
        with self.engine.begin() as conn:
            conn.execute(stmt, [{"b_id": k, "solution_tokens": v} for k, v in lengths.items()])

    # -- the hot path ------------------------------------------------------------------------

    def record_groups(self, run_id: int, groups: Sequence[GroupRecord]) -> int:
        """Record groups (idempotent per attempt id); returns how many were new."""
        return self.write(run_id, groups=groups).groups

    def record_steps(self, run_id: int, steps: Sequence[StepRecord]) -> None:
        self.write(run_id, steps=steps)

    def record_evals(self, run_id: int, evals: Sequence[EvalRecord]) -> None:
        self.write(run_id, evals=evals)

    def write(
        self,
        run_id: int,
        groups: Sequence[GroupRecord] = (),
        steps: Sequence[StepRecord] = (),
        evals: Sequence[EvalRecord] = (),
    ) -> Written:
        """Groups, rollouts, sample states, steps and evals in one transaction; returns what
        was newly recorded (groups of re-delivered attempt ids are skipped)."""
        with self.engine.begin() as conn:
            new = self._write_groups(conn, run_id, groups) if groups else Written(0, 0)
            if steps:
                self._write_steps(conn, run_id, steps)
            if evals:
                self._write_evals(conn, run_id, evals)
            conn.execute(sa.update(Run).where(Run.id == run_id).values(updated_at=time.time()))
        return new

    def _write_groups(
        self, conn: sa.Connection, run_id: int, groups: Sequence[GroupRecord]
    ) -> Written:
        unique = list({g.attempt_id: g for g in reversed(groups)}.values())[::-1]  # first wins
        rows = [_group_row(run_id, g) for g in unique]
        if self._pg:
            sql, params = _pg_unnest(RolloutGroup.__table__, rows)
            result = conn.execute(sa.text(
                f"{sql} ON CONFLICT (run_id, attempt_id) DO NOTHING RETURNING id, attempt_id"
            ), params)
        else:
            result = conn.execute(
                self._insert(RolloutGroup)
                .on_conflict_do_nothing(index_elements=["run_id", "attempt_id"])
                .returning(RolloutGroup.id, RolloutGroup.attempt_id),
                rows,
            )
        inserted = {row.attempt_id: row.id for row in result}
        if not inserted:
            return Written(0, 0)
        fresh = [g for g in unique if g.attempt_id in inserted]
        self._insert_rollouts(conn, [
            (inserted[g.attempt_id], i, r.text if self.store_texts else None, r.length,
             r.reward, r.verdict, r.finish_reason, r.with_prefix, r.overlong_penalty,
             r.loss_masked)
            for g in fresh for i, r in enumerate(g.rollouts)
        ])
        states = {g.sample_id: g.state for g in fresh if g.state is not None}  # last one wins
        if states:
            self.upsert_states(conn, run_id, states)
        return Written(len(fresh), sum(g.n for g in fresh))

    def upsert_states(self, conn: sa.Connection, run_id: int,
                      states: Mapping[int, SampleStateRecord]) -> None:
        """Write sample states (sample id -> state) of a run inside the caller's transaction."""
        rows = [{"run_id": run_id, "sample_id": sid, **asdict(st)} for sid, st in states.items()]
        if not rows:
            return
        if self._pg:
            sql, params = _pg_unnest(SampleState.__table__, rows)
            updates = ", ".join(f"{f} = excluded.{f}" for f in STATE_FIELDS)
            conn.execute(sa.text(f"{sql} ON CONFLICT (run_id, sample_id) DO UPDATE SET {updates}"),
                         params)
            return
        stmt = self._insert(SampleState)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "sample_id"],
            set_={f: stmt.excluded[f] for f in STATE_FIELDS},
        )
        conn.execute(stmt, rows)

    def _insert_rollouts(self, conn: sa.Connection, rows: list[tuple]) -> None:
        """Bulk insert in `ROLLOUT_COLUMNS` order: COPY on PostgreSQL (several times faster
        than multi-row INSERTs there), executemany on SQLite (already fast in process). No rows
        (a batch of invalid groups only): nothing to run."""
        if not rows:
            return
        if self._pg:
            with conn.connection.dbapi_connection.cursor() as cur, cur.copy(
                f"COPY rollouts ({', '.join(ROLLOUT_COLUMNS)}) FROM STDIN"
            ) as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            conn.execute(sa.insert(Rollout), [dict(zip(ROLLOUT_COLUMNS, r, strict=True))
                                              for r in rows])

    def _write_steps(self, conn: sa.Connection, run_id: int, steps: Sequence[StepRecord]) -> None:
        rows = [{"run_id": run_id, **{f: _finite(getattr(s, f)) for f in STEP_FIELDS}}
                for s in steps]
        stmt = self._insert(TrainStep)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "step"],
            set_={f: stmt.excluded[f] for f in STEP_FIELDS if f != "step"},
        )
        conn.execute(stmt, rows)
        mark = (sa.update(RolloutGroup).where(RolloutGroup.run_id == run_id)
                .where(RolloutGroup.attempt_id == sa.bindparam("b_attempt")))
        # one executemany per set of columns (a step gives all of its lists or none of each)
        batches: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for s in steps:
            for i, attempt in enumerate(s.used_attempt_ids):
                row = {"b_attempt": attempt, "used_in_step": s.step}
                if s.used_lp_weights:
                    row["lp_weight"] = float(s.used_lp_weights[i])
                if s.used_prefix_terms:
                    row["prefix_term"] = s.used_prefix_terms[i]
                if s.used_prefix_advantages:
                    row["prefix_advantage"] = s.used_prefix_advantages[i]
                batches.setdefault(tuple(row), []).append(row)
        for params in batches.values():
            conn.execute(mark, params)

    def _write_evals(self, conn: sa.Connection, run_id: int, evals: Sequence[EvalRecord]) -> None:
        stmt = self._insert(EvalResult)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_id", "step", "benchmark", "metric"],
            set_={"value": stmt.excluded.value, "n": stmt.excluded.n,
                  "created_at": stmt.excluded.created_at},
        )
        conn.execute(stmt, [{"run_id": run_id, **asdict(e)} for e in evals])


def _finite(value: Any) -> Any:
    """`value` with every non-finite float (in a mapping too) replaced by None: a step's
    numbers stay valid JSON and SQL whatever training produced."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _state_defaults() -> dict[str, Any]:
    return asdict(SampleStateRecord())


def _pg_unnest(table: sa.Table, rows: list[dict[str, Any]]) -> tuple[str, dict[str, list]]:
    """`INSERT INTO t (cols) SELECT * FROM unnest(:a::type[], ...)`: one array per column, so
    the statement text is the same for any number of rows and PostgreSQL plans it once, where a
    multi-row VALUES list is a new statement for every batch size."""
    cols = list(rows[0])
    casts = ", ".join(f"CAST(:{c} AS {_pg_type(table.c[c].type)}[])" for c in cols)
    sql = f"INSERT INTO {table.name} ({', '.join(cols)}) SELECT * FROM unnest({casts})"
    return sql, {c: [row[c] for row in rows] for c in cols}


def _pg_type(column_type: sa.types.TypeEngine) -> str:
    if isinstance(column_type, sa.Integer):
        return "integer"
    if isinstance(column_type, sa.Float):
        return "double precision"
    if isinstance(column_type, sa.String):  # Text is a String
        return "text"
    raise TypeError(f"no array type for {column_type!r}")


def _sample_row(rec: SampleRecord, digest: str) -> dict[str, Any]:
    return {
        "dataset": rec.dataset, "source_key": rec.source_key, "problem": rec.problem,
        "problem_hash": digest, "answer": rec.answer, "solution": rec.solution,
        "solution_tokens": rec.solution_tokens, "meta": dict(rec.meta), "created_at": time.time(),
    }


def _group_row(run_id: int, g: GroupRecord) -> dict[str, Any]:
    st = g.state
    return {
        "run_id": run_id, "sample_id": g.sample_id, "attempt_id": g.attempt_id,
        "actor_id": g.actor_id, "step_seen": g.step_seen, "policy_version": g.policy_version,
        "n": g.n, "n_correct": g.n_correct, "pass_rate": g.pass_rate,
        "mean_reward": g.mean_reward, "tokens": g.tokens, "prefix_ratio": g.prefix_ratio,
        "prefix_len": g.prefix_len, "lp_weight": g.lp_weight, "used_in_step": g.used_in_step,
        "dropped_reason": g.dropped_reason, "guided_n": g.guided_n,
        "unguided_correct": g.unguided_correct,
        "selection": g.selection, "selection_score": g.selection_score,
        "ema": st.ema if st else None, "progress": st.progress if st else None,
        "status": st.status if st else None,
        "gen_s": g.gen_s, "verify_s": g.verify_s, "received_at": g.received_at,
    }
