"""What the console's guard costs: docs/queries.md's queries, guarded and not, side by side.

    .venv/bin/python bench/sql_console.py [--samples 2000] [--steps 200] [--repeats 5]

Builds a simulated SQLite ledger (`lppo.testing.simulate.simulated_run`: samples, steps of 32 groups
x 8 rollouts with texts), then runs every query of docs/queries.md through the console
(`store.sql.run_sql`: authorizer, value limits, byte-capped fetch) and through the same reader
engine without any of it (one `exec_driver_sql` + `fetchall`), alternating, `--repeats` times
each. Prints per query the median time of both, their ratio and the time the console adds,
and the median ratio over all.
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lppo.testing.simulate import simulated_run  # noqa: E402
from store.ledger import Ledger  # noqa: E402
from store.queries import LedgerReader  # noqa: E402
from store.sql import run_sql  # noqa: E402


def _queries() -> list[str]:
    text = (ROOT / "docs" / "queries.md").read_text()
    return [q.strip() for q in re.findall(r"```sql\n(.*?)```", text, re.S)]


def _plain(reader: LedgerReader, sql: str) -> int:
    with reader.engine.connect() as conn:
        return len(conn.exec_driver_sql(sql).fetchall())


def _guarded(reader: LedgerReader, sql: str) -> int:
    return len(run_sql(reader.engine, sql, 10**7, reader.statement_timeout_s).rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        with Ledger(str(path)) as ledger:
            simulated_run(ledger, "bench", samples=args.samples, steps=args.steps,
                          batch_groups=32, seed=0)
        ratios, added = [], []
        with LedgerReader(str(path)) as reader:
            (rollouts,) = reader.sql("SELECT count(*) FROM rollouts").rows[0]
            print(f"simulated ledger: {rollouts:,} rollouts; {args.repeats} repeats per query")
            print(f"{'query':>5} {'rows':>7} {'plain ms':>9} {'console ms':>11} {'ratio':>6} "
                  f"{'added ms':>9}")
            for i, raw in enumerate(_queries(), 1):
                sql = raw.replace("{run}", "1").rstrip().rstrip(";")
                plain, guarded, rows = [], [], 0
                for _ in range(args.repeats):
                    for fn, out in ((_plain, plain), (_guarded, guarded)):
                        start = time.perf_counter()
                        rows = fn(reader, sql)
                        out.append(time.perf_counter() - start)
                p, g = statistics.median(plain), statistics.median(guarded)
                ratios.append(g / p)
                added.append(g - p)
                print(f"{i:>5} {rows:>7} {p * 1e3:>9.1f} {g * 1e3:>11.1f} {g / p:>6.2f} "
                      f"{(g - p) * 1e3:>9.2f}")
        print(f"median console / plain over {len(ratios)} queries: "
              f"{statistics.median(ratios):.2f}; added time at most {max(added) * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
