"""Child process for the crash tests: writes batches of groups until it is killed.

    python -m tests.store.crash_writer URL pause|loop

Prints `COMMITTED <batch>` after each commit. With `pause`, it stops inside the transaction of
batch 3, after every row of that batch (groups, rollouts, states) is written and just before
COMMIT is sent, prints `MID-WRITE` and sleeps: the parent kills it there. With `loop`, it
writes without pausing and is killed at a random moment.
"""

from __future__ import annotations

import sys
import time

from sqlalchemy import event

from store.ledger import Ledger
from store.records import SampleStateRecord
from tests.store.helpers import group, samples

BATCHES, PER_BATCH, PAUSE_AT = 200, 16, 3


def batch(b: int, ids: list[int]) -> list:
    return [group(f"b{b}-{i}", ids[i % len(ids)], step=b, n=8, correct=i % 9,
                  state=SampleStateRecord(attempts=b + 1, last_seen_step=b))
            for i in range(PER_BATCH)]


def main(url: str, mode: str) -> None:
    ledger = Ledger(url)
    run = ledger.register_run("crash")
    ids = sorted(ledger.import_samples(samples(8)).ids)
    ledger.add_to_run(run, ids)
    current = {"batch": -1}

    @event.listens_for(ledger.engine, "commit")  # fires before COMMIT is sent
    def _pause(conn) -> None:
        if mode == "pause" and current["batch"] == PAUSE_AT:
            print("MID-WRITE", flush=True)
            time.sleep(600)

    for b in range(BATCHES):
        current["batch"] = b
        ledger.write(run, groups=batch(b, ids))
        print(f"COMMITTED {b}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
