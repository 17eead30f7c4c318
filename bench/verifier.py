"""Verifier throughput and group latency on model-style outputs (MATH-500 expert solutions).

    .venv/bin/python bench/verifier.py [--workers N] [--groups G] [--group-size 8]

Predictions are MATH-500's worked solutions (a few hundred to a few thousand characters ending
in `\\boxed{}`), the length and shape of real completions. Group g holds the solutions of
problems 8g .. 8g+7 (for `--group-size 8`), verified against problem 8g's stored answer: one
correct output and seven wrong ones (another problem's answer, often of another type, the
expensive case for sympy). Each solution is used once per mode (62 groups from MATH-500), so
no mode gains from caches. Three measurements, side by side in one run:

1. in-process: `verify.judge_text` in this process, no pool (the ceiling for one core);
2. pool, 1 worker: `RewardPool.verify_group` called in a loop (per-worker throughput with the
   pipe round trip, and the latency of one group when a worker is free);
3. pool, N workers: N client threads taking groups from one queue, each calling
   `verify_group` (what an actor verifying N groups at once sees).

Printed: verifications per second (total and per worker), group latency p50/p99/max, the
pool-over-in-process ratio, and the verdict mix (a sanity check: one correct per group).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MATH500 = ROOT / "data" / "math500" / "test.jsonl"
WARM_UP = ("\\frac{1}{2}", "so \\boxed{0.5}")


def load_groups(path: Path, groups: int | None, size: int) -> list[tuple[str, list[str]]]:
    """Group g: (stored answer of problem g*size, solutions of problems g*size .. +size-1).

    Every solution is used once, so no mode gains from math-verify's or sympy's caches seeing
    the same text twice (real completions are all different).
    """
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    count = len(rows) // size if groups is None else min(groups, len(rows) // size)
    return [
        (rows[g * size]["answer"], [rows[g * size + k]["solution"] for k in range(size)])
        for g in range(count)
    ]


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0..100) by nearest rank."""
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def bench_in_process(groups: list[tuple[str, list[str]]]) -> dict:
    from actor.reward.verify import judge_text

    verdicts: Counter[str] = Counter()
    latencies = []
    judge_text(*WARM_UP)  # as each pool worker does before serving
    start = time.perf_counter()
    for gold, outputs in groups:
        t0 = time.perf_counter()
        verdicts.update(judge_text(gold, out).value for out in outputs)
        latencies.append(time.perf_counter() - t0)
    return _summary("in-process", 1, groups, time.perf_counter() - start, latencies, verdicts)


def bench_pool(groups: list[tuple[str, list[str]]], workers: int, start_method: str) -> dict:
    from actor.reward import RewardPool
    from lppo.core.config.schema import RewardConfig

    cfg = RewardConfig(workers=workers, timeout_s=10.0, start_method=start_method)
    t_start = time.perf_counter()
    with RewardPool(cfg) as pool:
        startup = time.perf_counter() - t_start
        pool.verify_group(WARM_UP[0], [WARM_UP[1]], ["stop"])  # the pipes and threads
        latencies: list[float] = []
        verdicts: Counter[str] = Counter()
        lock = threading.Lock()
        todo = iter(groups)

        def client() -> None:
            while True:
                with lock:
                    job = next(todo, None)
                if job is None:
                    return
                gold, outputs = job
                t0 = time.perf_counter()
                scored = pool.verify_group(gold, outputs, ["stop"] * len(outputs))
                elapsed = time.perf_counter() - t0
                with lock:
                    latencies.append(elapsed)
                    verdicts.update(s.verdict.value for s in scored)

        threads = [threading.Thread(target=client) for _ in range(workers)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        restarts = pool.metrics()["reward/worker_restarts"]
    out = _summary(f"pool, {workers} worker(s)", workers, groups, wall, latencies, verdicts)
    out.update(startup_s=startup, restarts=restarts)
    return out


def _summary(name: str, workers: int, groups: list, wall: float, latencies: list[float],
             verdicts: Counter[str]) -> dict:
    items = sum(len(outputs) for _, outputs in groups)
    return {
        "name": name, "workers": workers, "items": items, "wall_s": wall,
        "per_s": items / wall, "per_s_per_worker": items / wall / workers,
        "p50_ms": 1000 * percentile(latencies, 50), "p99_ms": 1000 * percentile(latencies, 99),
        "max_ms": 1000 * max(latencies), "verdicts": dict(verdicts),
    }


def report(results: list[dict], group_size: int) -> None:
    print(f"{'mode':<22} {'items':>6} {'verif/s':>8} {'per worker':>10} "
          f"{'group of ' + str(group_size) + ' p50':>15} {'p99':>8} {'max':>8}")
    for r in results:
        print(f"{r['name']:<22} {r['items']:>6} {r['per_s']:>8.0f} {r['per_s_per_worker']:>10.0f} "
              f"{r['p50_ms']:>12.1f} ms {r['p99_ms']:>5.1f} ms {r['max_ms']:>5.0f} ms")
    base = results[0]["per_s"]
    for r in results[1:]:
        print(f"{r['name']}: {r['per_s_per_worker'] / base:.2f}x in-process per worker, "
              f"started in {r['startup_s']:.2f} s, {r['restarts']} restarts")
    print("verdicts:", ", ".join(f"{r['name']}: {r['verdicts']}" for r in results))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--groups", type=int, default=None,
                        help="groups per mode (default: all, each solution used once)")
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--data", type=Path, default=MATH500)
    parser.add_argument("--start-method", choices=["forkserver", "spawn"], default="forkserver")
    args = parser.parse_args()
    groups = load_groups(args.data, args.groups, args.group_size)
    print(f"{len(groups)} groups of {args.group_size} MATH-500 solutions "
          f"(mean {sum(len(o) for _, g in groups for o in g) / (len(groups) * args.group_size):.0f}"
          f" chars), {os.cpu_count()} CPUs")
    results = [bench_in_process(groups), bench_pool(groups, 1, args.start_method)]
    if args.workers > 1:
        results.append(bench_pool(groups, args.workers, args.start_method))
    report(results, args.group_size)


if __name__ == "__main__":
    # `python bench/verifier.py` puts bench/ first on sys.path, where bench/actor.py would
    # shadow the `actor` package: look in the repository root first.
    sys.path.insert(0, str(ROOT))
    main()
