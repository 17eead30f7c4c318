"""Ledger write throughput under a polling reader, and query latency on a big ledger.

    .venv/bin/python bench/ledger.py                 # SQLite and PostgreSQL, full sizes
    .venv/bin/python bench/ledger.py --quick         # small sizes, a smoke run
    .venv/bin/python bench/ledger.py --backends sqlite --pg-url postgresql+psycopg://...

Two measurements per backend, side by side in one run:

1. **Writes while a reader polls.** The learner's path: `LedgerWriter.put_group` from the
   main thread, the writer thread committing batches of up to 64 groups (8 rollouts each,
   with completion texts) and their sample states. Meanwhile another *process* polls like the
   dashboard: run summary, top of the sample table, one sample's trajectory, every 0.25 s.
   Printed: rollouts committed per second (from the first put to the end of `flush`), the
   learner's cost per `put_group` call (the whole run is queued at once, faster than any
   learner produces it, so some puts wait for room in the bounded queue: that share is
   printed too), and the reader's poll latency.
2. **Query latency on a big ledger** (default 10,000 samples, 1,000,000 rollouts), built with
   the same writer API in large batches: one sample's trajectory (random samples), the sample
   table (top 100 by progress), the run summary, and the per-step curves.

PostgreSQL runs on a private cluster started here (`lppo.testing.postgres.PgCluster`, durable
settings: fsync and synchronous_commit on) unless `--pg-url` names a server.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from lppo.testing.simulate import simulate_steps, synthetic_samples  # noqa: E402
from store.ledger import Ledger  # noqa: E402
from store.queries import LedgerReader  # noqa: E402
from store.writer import LedgerWriter  # noqa: E402


def _ms(seconds: list[float]) -> str:
    """median / p95 in milliseconds."""
    if not seconds:
        return "n/a"
    ordered = sorted(seconds)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"{statistics.median(ordered) * 1e3:.1f} / {p95 * 1e3:.1f} ms"


def _setup(url: str, run: str, samples: int, seed: int) -> tuple[int, list[tuple[int, float]]]:
    records = synthetic_samples(samples, dataset=f"bench-{run}", seed=seed)
    with Ledger(url) as ledger:
        ids = ledger.import_samples(records).ids
        run_id = ledger.register_run(run)
        ledger.add_to_run(run_id, ids)
    return run_id, [(i, r.meta["difficulty"]) for i, r in zip(ids, records, strict=True)]


def _groups(pairs, rollouts: int, text_chars: int, run: str, batch_groups: int):
    """Pre-built (groups, step) pairs holding about `rollouts` rollouts in all."""
    steps, total = [], 0
    for groups, step in simulate_steps(pairs, 10**9, batch_groups=batch_groups,
                                       text_chars=text_chars, run_tag=run):
        steps.append((groups, step))
        total += sum(g.n for g in groups)
        if total >= rollouts:
            return steps
    return steps


# --------------------------------------------------------------------------------------------
# 1. writes while a reader polls
# --------------------------------------------------------------------------------------------


def _poll(url: str, run_id: int, sample_ids: list[int], stop, out, interval: float) -> None:
    """Reader process: poll like the dashboard until `stop` is set; send latencies back."""
    rng = random.Random(1)
    lat: list[float] = []
    with LedgerReader(url) as reader:
        while not stop.is_set():
            start = time.perf_counter()
            reader.summary(run_id)
            reader.samples(run_id, limit=50)
            reader.trajectory(rng.choice(sample_ids), run_id)
            lat.append(time.perf_counter() - start)
            stop.wait(interval)
    out.put(lat)


def bench_writes(url: str, args) -> dict:
    run_id, pairs = _setup(url, "writes", args.write_samples, seed=1)
    steps = _groups(pairs, args.write_rollouts, args.text_chars, "writes", 64)
    ctx = mp.get_context("spawn")
    stop, out = ctx.Event(), ctx.Queue()
    poller = ctx.Process(target=_poll, args=(url, run_id, [p[0] for p in pairs], stop, out,
                                             args.poll_interval))
    poller.start()
    time.sleep(2.0)  # let the reader start polling first
    with Ledger(url, store_texts=True) as ledger:
        writer = LedgerWriter(ledger, run_id, batch_groups=64)
        puts: list[float] = []
        start = time.perf_counter()
        for groups, step in steps:
            for g in groups:
                t0 = time.perf_counter()
                writer.put_group(g)
                puts.append(time.perf_counter() - t0)
            writer.put_step(step)
        writer.flush()
        elapsed = time.perf_counter() - start
        writer.close()
        stats = writer.stats
    stop.set()
    polls = out.get(timeout=60)
    poller.join(timeout=60)
    return {
        "rollouts": stats.rollouts, "seconds": elapsed,
        "rollouts_per_s": stats.rollouts / elapsed,
        "put_us": statistics.median(puts) * 1e6, "commits": stats.commits,
        "put_waited": sum(p > 0.001 for p in puts) / len(puts),
        "mean_batch": stats.groups / max(1, stats.commits), "polls": len(polls),
        "poll": _ms(polls),
    }


# --------------------------------------------------------------------------------------------
# 2. query latency on a big ledger
# --------------------------------------------------------------------------------------------


def build_big(url: str, args) -> tuple[int, list[int], float]:
    run_id, pairs = _setup(url, "big", args.samples, seed=2)
    start = time.perf_counter()
    written = 0
    with Ledger(url, store_texts=True) as ledger:
        for groups, step in simulate_steps(pairs, 10**9, batch_groups=args.samples // 20,
                                           text_chars=args.big_text_chars, run_tag="big"):
            for i in range(0, len(groups), 2048):
                ledger.write(run_id, groups=groups[i:i + 2048])
            ledger.write(run_id, steps=[step])
            written += sum(g.n for g in groups)
            if written >= args.rollouts:
                break
    return run_id, [p[0] for p in pairs], written / (time.perf_counter() - start)


def _time(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def bench_queries(url: str, args) -> dict:
    run_id, sample_ids, build_rate = build_big(url, args)
    rng = random.Random(3)
    with LedgerReader(url) as reader:
        rollouts = reader.summary(run_id)["groups"]["rollouts"]
        reader.trajectory(sample_ids[0], run_id)  # warm the connection pool
        picks = [rng.choice(sample_ids) for _ in range(args.trajectories)]
        traj = []
        for sid in picks:
            start = time.perf_counter()
            reader.trajectory(sid, run_id)
            traj.append(time.perf_counter() - start)
        texts = _time(lambda: reader.trajectory(rng.choice(sample_ids), run_id, texts=True), 20)
        table = _time(lambda: reader.samples(run_id, order_by="progress", limit=100), 10)
        summary = _time(lambda: reader.summary(run_id), 5)
        curves = _time(lambda: (reader.curation(run_id), reader.actors(run_id)), 3)
    return {"rollouts": rollouts, "build_rollouts_per_s": build_rate, "trajectory": _ms(traj),
            "trajectory_texts": _ms(texts), "sample_table": _ms(table),
            "summary": _ms(summary), "curves": _ms(curves),
            "trajectory_p95_s": sorted(traj)[int(0.95 * len(traj))],
            "summary_median_s": statistics.median(summary)}


# --------------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------------


def _urls(args, tmp: Path, cluster_box: list) -> dict[str, tuple[str, str]]:
    """backend -> (URL for the write bench, URL for the query bench)."""
    urls = {}
    if "sqlite" in args.backends:
        urls["sqlite"] = (f"sqlite:///{tmp / 'writes.db'}", f"sqlite:///{tmp / 'big.db'}")
    if "postgresql" in args.backends:
        if args.pg_url:
            urls["postgresql"] = (args.pg_url, args.pg_url)
        else:
            from lppo.testing.postgres import PG_MISSING, PgCluster, find_pg_bin

            bin_dir = find_pg_bin()
            if bin_dir is None:
                print(f"skipping PostgreSQL: {PG_MISSING}", file=sys.stderr)
            else:
                cluster = PgCluster(bin_dir, fast=False).start()
                cluster_box.append(cluster)
                urls["postgresql"] = (cluster.create_database("writes"),
                                      cluster.create_database("big"))
    return urls


def _report(results: dict, args) -> None:
    print(f"\n## Writes while a reader polls ({args.write_rollouts:,} rollouts, "
          f"{args.text_chars}-char texts, batches of 64 groups x 8)\n")
    print("| backend | rollouts/s | put_group median (share > 1 ms: queue full) "
          "| commits (mean groups) | reader poll median / p95 |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        w = r["writes"]
        print(f"| {name} | {w['rollouts_per_s']:,.0f} | {w['put_us']:.1f} us "
              f"({w['put_waited']:.0%}) | {w['commits']} ({w['mean_batch']:.1f}) | "
              f"{w['poll']} ({w['polls']} polls) |")
    print(f"\n## Query latency ({args.samples:,} samples, ~{args.rollouts:,} rollouts, "
          f"{args.big_text_chars}-char texts; median / p95)\n")
    print("| backend | rollouts | built at | trajectory | trajectory + texts | sample table "
          "| run summary | curation + actors |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        q = r["queries"]
        print(f"| {name} | {q['rollouts']:,} | {q['build_rollouts_per_s']:,.0f}/s | "
              f"{q['trajectory']} | {q['trajectory_texts']} | {q['sample_table']} | "
              f"{q['summary']} | {q['curves']} |")
    print("\ntargets: >= 5,000 rollouts/s on SQLite; trajectory < 50 ms; run summary < 1 s")
    for name, r in results.items():
        q = r["queries"]
        checks = [("writes", r["writes"]["rollouts_per_s"] >= 5000 or name != "sqlite"),
                  ("trajectory", q["trajectory_p95_s"] < 0.05),
                  ("summary", q["summary_median_s"] < 1.0)]
        print(f"  {name}: " + ", ".join(f"{k} {'ok' if ok else 'MISSED'}" for k, ok in checks))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=None, help="use this PostgreSQL database")
    parser.add_argument("--write-rollouts", type=int, default=200_000)
    parser.add_argument("--write-samples", type=int, default=2_000)
    parser.add_argument("--text-chars", type=int, default=1_000)
    parser.add_argument("--poll-interval", type=float, default=0.25)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--rollouts", type=int, default=1_000_000)
    parser.add_argument("--big-text-chars", type=int, default=200)
    parser.add_argument("--trajectories", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",")]
    if args.quick:
        args.write_rollouts, args.samples, args.rollouts = 20_000, 1_000, 50_000
    results: dict = {}
    clusters: list = []
    with tempfile.TemporaryDirectory(prefix="lppo-bench-") as tmp:
        try:
            for name, (write_url, big_url) in _urls(args, Path(tmp), clusters).items():
                print(f"{name}: writes ...", file=sys.stderr, flush=True)
                results[name] = {"writes": bench_writes(write_url, args)}
                print(f"{name}: building the big ledger and timing queries ...",
                      file=sys.stderr, flush=True)
                results[name]["queries"] = bench_queries(big_url, args)
        finally:
            for cluster in clusters:
                cluster.stop()
    _report(results, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
