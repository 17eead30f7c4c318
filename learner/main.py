"""Entry point of the learner process: config first, then torch and the model.

    lppo learner CONFIG [--resume] [--set ...]
"""

from __future__ import annotations

import logging
import os
import sys
from typing import NoReturn

from lppo.core.config import Config

log = logging.getLogger(__name__)


def run_learner(cfg: Config, resume: bool = False) -> int:
    """Train until `learner.max_steps` or a signal; returns the process exit status.

    Under torchrun (or `lppo run` with `learner.nproc` > 1) rank 0 is the learner and every
    other rank follows it (learner/ranks.py)."""
    from transformers.utils import logging as hf_logging

    from learner.distributed import DistContext
    from learner.loop import Learner
    from learner.ranks import follow
    from lppo.core.cpus import pin_from_env
    from lppo.core.signals import stop_on_signals

    if (cores := pin_from_env()) is not None:
        log.info("learner pinned to cores %s", cores)
    hf_logging.disable_progress_bar()
    dist = DistContext.from_env()
    if cfg.learner.nproc != dist.world_size and dist.rank == 0:
        log.warning("learner.nproc = %d is the rank count `lppo run` starts; this learner has "
                    "%d rank(s) (torchrun's WORLD_SIZE, 1 without torchrun)",
                    cfg.learner.nproc, dist.world_size)
    if dist.rank != 0:
        code = follow(cfg, dist)
    else:
        cfg.run.run_dir.mkdir(parents=True, exist_ok=True)
        learner = Learner(cfg, resume=resume, dist=dist)
        stop_on_signals(learner.stop, "checkpointing and stopping")
        code = learner.run()
    if dist.enabled:
        leave(code)
    return code


def leave(code: int) -> NoReturn:
    """End a learner rank whose work is done: flush, then `os._exit`.

    A process that ran FSDP2 over gloo aborts at interpreter exit about half the time
    ("terminate called without an active exception", in C++ teardown after Python is done;
    reproduced with FSDP2 and gloo alone, torch 2.13 CPU), which would turn a finished run into
    a failed one. Everything the rank owns is closed by then (ledger, files, process group)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
