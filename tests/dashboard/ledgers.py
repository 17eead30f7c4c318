"""Ledgers for the dashboard's tests, screenshots and benchmark, written by the real writer.

`simulated_run` writes one run of `store.simulate` (a toy policy with LPPO's bookkeeping)
through `store.ledger.Ledger`, the learner's own writer API, on a simulated clock: step
`k` ends `k * step_s` seconds after the start and each group arrives inside its step's
window from one of several actors of different speeds, so throughput and staleness curves
look like a real run's instead of a burst of writes. Nothing is mocked: the dashboard reads
what the writer wrote.
"""

from __future__ import annotations

import random
import time
from dataclasses import replace

from store.ledger import Ledger
from store.records import EvalRecord
from store.simulate import simulate_steps, synthetic_samples

ACTOR_SPEEDS = (1.0, 0.8, 0.55, 0.9)
"""Relative speed of actor-0, actor-1, ...: its share of groups and its generation time."""
WRITE_CHUNK = 2048


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
    ids = ledger.import_samples(records).ids
    run_id = ledger.register_run(name, config={"simulated": True, "seed": seed,
                                               "samples": samples})
    ledger.add_to_run(run_id, ids)
    pairs = [(sid, rec.meta["difficulty"]) for sid, rec in zip(ids, records, strict=True)]
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
        evals = []
        if step.step % 10 == 0:
            value = min(1.0, 0.2 + 0.6 * step.step / steps)
            evals = [EvalRecord(step.step, "synthetic_eval", "pass@1", value, 100,
                                created_at=end)]
        for i in range(0, len(timed), WRITE_CHUNK):
            ledger.write(run_id, groups=timed[i:i + WRITE_CHUNK])
        ledger.write(run_id, steps=[replace(step, created_at=end)], evals=evals)
        written += sum(g.n for g in timed)
        if max_rollouts is not None and written >= max_rollouts:
            break
    if finished:
        ledger.end_run(run_id)
    return run_id, ids
