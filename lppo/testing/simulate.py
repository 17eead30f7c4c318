"""A synthetic LPPO run written through the real writer API: ledgers for tests, benchmarks and
dashboard development, without a model.

`simulate_steps` plays a toy policy whose skill grows each step against samples of graded
difficulty, and applies the method's bookkeeping the way docs/design.md ("The method")
describes it (EMA of the
unguided pass rate, progress, LP weight, prefix ratio up/down, curation of all-correct and
all-wrong groups, retiring and parking). It yields, per step, the `GroupRecord`s and the
`StepRecord` a learner would hand to the ledger. `populate` writes a whole run.

`simulated_run` writes one through `store.ledger.Ledger`, the learner's own writer API, on a
simulated clock (the dashboard's tests, screenshots and benchmark): step `k` ends `k * step_s`
seconds after the start and each group arrives inside its step's window from one of several
actors of different speeds, so throughput and staleness curves look like a real run's instead
of a burst of writes.

This is not the learner's implementation (that lives in learner/); it only has to produce
ledgers whose numbers behave like a real run's, so every query has something to show.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from store.records import (
    EvalRecord,
    GroupRecord,
    RolloutRecord,
    SampleRecord,
    SampleStateRecord,
    StepRecord,
)

if TYPE_CHECKING:
    from store.ledger import Ledger

BETA, KAPPA, BIAS = 0.8, 8.0, 0.5
R0, R_STEP, R_MAX = 0.5, 0.1, 0.9
RETIRE_AFTER, PARK_AFTER = 3, 3
ACTOR_SPEEDS = (1.0, 0.8, 0.55, 0.9)
"""Relative speed of actor-0, actor-1, ...: its share of groups and its generation time."""
WRITE_CHUNK = 2048


@dataclass
class _Sample:
    id: int
    difficulty: float
    state: SampleStateRecord


def synthetic_samples(n: int, dataset: str = "synthetic", seed: int = 0) -> list[SampleRecord]:
    """`n` arithmetic problems with step-by-step solutions and graded difficulty in `meta`."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        a, b, c = rng.randint(2, 99), rng.randint(2, 99), rng.randint(2, 9)
        answer = (a + b) * c
        out.append(SampleRecord(
            dataset=dataset, source_key=f"p{i}",
            problem=f"Problem {i}: compute ({a} + {b}) * {c}.",
            answer=str(answer),
            solution=f"First, {a} + {b} = {a + b}.\nThen, {a + b} * {c} = {answer}.\n"
                     f"The answer is \\boxed{{{answer}}}.",
            meta={"difficulty": round(rng.uniform(-3.0, 3.0), 3)},
        ))
    return out


def simulate_steps(
    samples: Sequence[tuple[int, float]],
    steps: int,
    *,
    batch_groups: int = 16,
    group_size: int = 8,
    actors: int = 2,
    text_chars: int = 200,
    seed: int = 0,
    run_tag: str = "sim",
) -> Iterator[tuple[list[GroupRecord], StepRecord]]:
    """Per step, the groups (about 1.5x `batch_groups`, some dropped) and the step record.

    `samples` are (ledger sample id, difficulty) pairs.
    """
    rng = random.Random(seed)
    pool = [_Sample(sid, diff, SampleStateRecord()) for sid, diff in samples]
    filler = "Let me work through this carefully, one step at a time. " * (text_chars // 50 + 1)
    attempt = 0
    for step in range(1, steps + 1):
        skill = -1.0 + 4.0 * step / steps
        active = [s for s in pool if s.state.status == "active"]
        others = [s for s in pool if s.state.status != "active"]
        picks = rng.sample(active, min(len(active), batch_groups * 3 // 2))
        rechecked = rng.sample(others, min(len(others), max(1, batch_groups // 10)))
        picks += rechecked
        rechecks = {id(s) for s in rechecked}
        groups = []
        for s in picks:
            attempt += 1
            staleness = rng.choice((0, 0, 1))
            ratio = s.state.prefix_ratio
            p = 1 / (1 + math.exp(-(skill - s.difficulty + 4.0 * ratio)))
            rollouts = []
            for _ in range(group_size):
                ok = rng.random() < p
                length = rng.randint(40, 400)
                rollouts.append(RolloutRecord(
                    text=f"{filler[:text_chars]} The answer is \\boxed{{{1 if ok else 0}}}.",
                    length=length, reward=1.0 if ok else 0.0,
                    verdict="correct" if ok else rng.choice(("wrong", "wrong", "no_answer")),
                    finish_reason="stop" if length < 400 else "length", with_prefix=ratio > 0,
                ))
            n_ok = sum(r.correct for r in rollouts)
            s.state = _next_state(s.state, n_ok / group_size, step)
            dropped = ("all_correct" if n_ok == group_size else "all_wrong" if n_ok == 0
                       else "stale" if rng.random() < 0.02 else None)
            groups.append(GroupRecord(
                attempt_id=f"{run_tag}-{attempt}", sample_id=s.id,
                actor_id=f"actor-{attempt % actors}", step_seen=step,
                policy_version=max(0, step - staleness), rollouts=rollouts,
                prefix_ratio=ratio, prefix_len=int(ratio * 120),
                lp_weight=s.state.weight if dropped is None else None,
                dropped_reason=dropped, state=s.state, guided_n=group_size if ratio > 0 else 0,
                gen_s=rng.uniform(0.5, 3.0), verify_s=rng.uniform(0.01, 0.1),
                selection="recheck" if id(s) in rechecks else "uniform",
                selection_score=None if id(s) in rechecks else random.Random(attempt).random(),
            ))
        used = [g for g in groups if g.dropped_reason is None][:batch_groups]
        counts = {k: sum(s.state.status == k for s in pool) for k in ("active", "solved", "parked")}
        step_rec = StepRecord(
            step=step, policy_version=step, loss=rng.gauss(0.0, 0.05), kl=abs(rng.gauss(0, 1e-3)),
            entropy=0.8 - 0.3 * step / steps, grad_norm=abs(rng.gauss(0.5, 0.1)), lr=1e-6,
            tokens=sum(g.tokens for g in used), mean_staleness=_mean_staleness(used, step),
            groups_used=len(used), groups_dropped=len(groups) - len(used),
            samples_active=counts["active"], samples_solved=counts["solved"],
            samples_parked=counts["parked"], gen_wait_s=rng.uniform(0, 2),
            train_s=rng.uniform(5, 10), sync_s=rng.uniform(0.1, 1),
            metrics={"verifier_timeouts": rng.randint(0, 2), **_weight_metrics(used)},
            used_attempt_ids=[g.attempt_id for g in used],
            # a toy prefix term: off-policy against the sample's unguided EMA
            used_prefix_terms=["off_policy" if g.prefix_len else None for g in used],
            used_prefix_advantages=[round(1.0 - (g.state.ema or 0.0), 3) if g.prefix_len
                                    else None for g in used],
        )
        yield groups, step_rec


def _weight_metrics(used: list[GroupRecord]) -> dict[str, float]:
    """The LP-weight metrics a learner step records (`learner.assemble`), of the toy weights."""
    w = [g.lp_weight for g in used if g.lp_weight is not None]
    if not w:
        return {}
    mean = sum(w) / len(w)
    return {"batch/lp_weight_std": math.sqrt(sum((x - mean) ** 2 for x in w) / len(w)),
            "batch/lp_weight_not_one": sum(abs(x - 1.0) > 0.01 for x in w) / len(w),
            "batch/prefix_taught": float(sum(g.prefix_len > 0 for g in used))}


def _mean_staleness(groups: list[GroupRecord], step: int) -> float | None:
    if not groups:
        return None
    return sum(step - g.policy_version for g in groups) / len(groups)


def _next_state(st: SampleStateRecord, rate: float, step: int) -> SampleStateRecord:
    """The method's bookkeeping (docs/design.md) after one group with pass rate `rate`."""
    if st.prefix_ratio > 0:  # guided: guided statistics and the prefix ratio only
        ratio = st.prefix_ratio
        if rate == 0:
            ratio = min(R_MAX, ratio + R_STEP)
        elif rate >= 0.5:
            ratio = max(0.0, round(ratio - R_STEP, 6))
        failed = st.failed_streak + 1 if rate == 0 and ratio >= R_MAX else 0
        status = "parked" if failed >= PARK_AFTER else "active"
        return replace(st, guided_attempts=st.guided_attempts + 1, guided_pass_rate=rate,
                       prefix_ratio=ratio, prefix_len=int(ratio * 120), failed_streak=failed,
                       status=status, last_seen_step=step,
                       status_since_step=step if status != st.status else st.status_since_step)
    ema = rate if st.ema is None else BETA * st.ema + (1 - BETA) * rate
    progress = 0.0 if st.ema is None else ema - st.ema
    solved = st.solved_streak + 1 if rate == 1.0 else 0
    status = "solved" if solved >= RETIRE_AFTER else "active"
    return replace(
        st, attempts=st.attempts + 1, pass_rate=rate, ema=ema, ema_prev=st.ema,
        progress=progress, weight=BIAS + 1 / (1 + math.exp(-KAPPA * progress)),
        prefix_ratio=R0 if rate == 0 else 0.0, prefix_len=int(R0 * 120) if rate == 0 else 0,
        solved_streak=solved, status=status, last_seen_step=step,
        status_since_step=step if status != st.status else st.status_since_step,
    )


def _start_run(ledger: Ledger, name: str, records: list[SampleRecord],
               config: dict) -> tuple[int, list[int], list[tuple[int, float]]]:
    """Import `records`, register run `name` on them: (run id, sample ids, (id, difficulty))."""
    ids = ledger.import_samples(records).ids
    run_id = ledger.register_run(name, config=config)
    ledger.add_to_run(run_id, ids)
    return run_id, ids, [(sid, r.meta["difficulty"]) for sid, r in zip(ids, records, strict=True)]


def _evals(step: int, steps: int, **stamp: float) -> list[EvalRecord]:
    """Every 10th step, an eval point on a curve that rises with the policy's skill
    (`stamp`: `created_at=` for a back-dated run; default now)."""
    if step % 10:
        return []
    return [EvalRecord(step, "synthetic_eval", "pass@1", min(1.0, 0.2 + 0.6 * step / steps),
                       100, **stamp)]


def populate(ledger: Ledger, name: str = "sim", *, samples: int = 200, steps: int = 30,
             seed: int = 0, **kwargs) -> int:
    """Register run `name`, import synthetic samples, write a simulated run; return its id."""
    records = synthetic_samples(samples, dataset=f"synthetic-{seed}", seed=seed)
    run_id, _, pairs = _start_run(ledger, name, records, {"simulated": True, "seed": seed})
    for groups, step in simulate_steps(pairs, steps, seed=seed, run_tag=name, **kwargs):
        ledger.write(run_id, groups=groups, steps=[step], evals=_evals(step.step, steps))
    ledger.end_run(run_id)
    return run_id


def simulated_run(
    ledger: Ledger,
    name: str,
    *,
    samples: int = 200,
    steps: int = 30,
    batch_groups: int = 16,
    actors: int = 3,
    seed: int = 0,
    dataset: str = "synthetic",
    step_s: float = 20.0,
    start_at: float | None = None,
    text_chars: int = 200,
    finished: bool = True,
    max_rollouts: int | None = None,
) -> tuple[int, list[int]]:
    """Write run `name` (samples of `dataset`, `steps` steps or until `max_rollouts`);
    return its id and its sample ids. `finished=False` leaves the run `running`."""
    records = synthetic_samples(samples, dataset=dataset, seed=0)
    run_id, ids, pairs = _start_run(ledger, name, records,
                                    {"simulated": True, "seed": seed, "samples": samples})
    rng = random.Random(seed)
    start = time.time() - steps * step_s if start_at is None else start_at
    speeds = ACTOR_SPEEDS[:actors] if actors <= len(ACTOR_SPEEDS) else [1.0] * actors
    names = [f"actor-{i}" for i in range(len(speeds))]
    written = 0
    for groups, step in simulate_steps(pairs, steps, batch_groups=batch_groups,
                                       actors=actors, text_chars=text_chars, seed=seed,
                                       run_tag=name):
        begin = start + (step.step - 1) * step_s
        end = begin + step_s * rng.uniform(0.85, 1.15)
        timed = []
        for g in groups:
            k = rng.choices(range(len(speeds)), weights=speeds)[0]
            timed.append(replace(g, actor_id=names[k], received_at=rng.uniform(begin, end),
                                 gen_s=g.gen_s / speeds[k]))
        timed.sort(key=lambda g: g.received_at)
        for i in range(0, len(timed), WRITE_CHUNK):
            ledger.write(run_id, groups=timed[i:i + WRITE_CHUNK])
        ledger.write(run_id, steps=[replace(step, created_at=end)],
                     evals=_evals(step.step, steps, created_at=end))
        written += sum(g.n for g in timed)
        if max_rollouts is not None and written >= max_rollouts:
            break
    if finished:
        ledger.end_run(run_id)
    return run_id, ids
