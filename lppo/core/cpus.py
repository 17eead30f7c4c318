"""A process's share of the CPU cores, handed down by `lppo run` (lppo/launcher.py).

    LPPO_CPU_CORES=2,3     the cores this process (and its children) may run on

`pin_from_env()`, called first thing in the learner and actor processes, pins the process to
them (`os.sched_setaffinity`); the launcher also sets OMP_NUM_THREADS (torch's threads) and, for
actors, VLLM_CPU_OMP_THREADS_BIND (vLLM-CPU's OpenMP binding) to the same cores. Unset: nothing
changes.
"""

from __future__ import annotations

import os

ENV = "LPPO_CPU_CORES"


def format_cores(cores: list[int]) -> str:
    return ",".join(str(c) for c in cores)


def parse_cores(text: str) -> list[int]:
    """`2,3` -> [2, 3]; anything else is a ValueError naming the variable."""
    try:
        cores = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"{ENV}={text!r}: expected core ids separated by commas") from None
    if not cores or min(cores) < 0:
        raise ValueError(f"{ENV}={text!r}: expected core ids separated by commas")
    return cores


def pin_from_env() -> list[int] | None:
    """Pin this process to `LPPO_CPU_CORES` when set; returns the cores (None: unset)."""
    text = os.environ.get(ENV)
    if not text:
        return None
    cores = parse_cores(text)
    os.sched_setaffinity(0, cores)
    return cores
