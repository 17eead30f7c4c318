"""Small builders shared by the ledger tests."""

from __future__ import annotations

import sqlalchemy as sa

from store.ledger import Ledger
from store.records import GroupRecord, RolloutRecord, SampleRecord, SampleStateRecord


def samples(n: int, dataset: str = "toy") -> list[SampleRecord]:
    return [SampleRecord(dataset=dataset, source_key=f"k{i}", problem=f"What is {i} + {i}?",
                         answer=str(2 * i), solution=f"{i} + {i} = {2 * i}.")
            for i in range(n)]


def group(attempt: str, sample_id: int, step: int = 1, n: int = 4, correct: int = 2,
          state: SampleStateRecord | None = None, unguided: int = 0, **kw) -> GroupRecord:
    """`n` completions, the first `correct` correct. With a prefix (`prefix_len` > 0) the
    last `unguided` were sampled without it (a mixed group), the others with it."""
    guided = n - unguided if kw.get("prefix_len", 0) > 0 else 0
    rollouts = [RolloutRecord(text=f"{attempt} completion {i}", length=10 + i,
                              reward=1.0 if i < correct else 0.0,
                              verdict="correct" if i < correct else "wrong",
                              finish_reason="stop", with_prefix=i < guided) for i in range(n)]
    if kw.get("prefix_ratio", 0.0) > 0:
        kw.setdefault("guided_n", guided if kw.get("prefix_len", 0) > 0 else n)
    return GroupRecord(attempt_id=attempt, sample_id=sample_id, actor_id="actor-0",
                       step_seen=step, policy_version=max(0, step - 1), rollouts=rollouts,
                       state=state, **kw)


def setup_run(ledger: Ledger, n_samples: int = 5, name: str = "run") -> tuple[int, list[int]]:
    ids = ledger.import_samples(samples(n_samples)).ids
    run_id = ledger.register_run(name, config={"x": 1})
    ledger.add_to_run(run_id, ids)
    return run_id, ids


def count(target: str | sa.Engine, sql: str) -> int:
    """One number from `sql`, on an engine or a URL."""
    engine = target if isinstance(target, sa.Engine) else sa.create_engine(target)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(sql).scalar_one()
    finally:
        if engine is not target:
            engine.dispose()


def partial_groups(url: str) -> list[tuple]:
    """Groups whose rollouts are not exactly n (must always be empty)."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql(
                "SELECT g.id, g.n, count(r.idx) FROM rollout_groups g "
                "LEFT JOIN rollouts r ON r.group_id = g.id GROUP BY g.id, g.n "
                "HAVING count(r.idx) <> g.n"
            ).all()
    finally:
        engine.dispose()
