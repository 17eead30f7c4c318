"""Entry point of the learner process: config first, then torch and the model.

    lppo learner CONFIG [--resume] [--set ...]
"""

from __future__ import annotations

import logging

from lppo.core.config import Config

log = logging.getLogger(__name__)


def run_learner(cfg: Config, resume: bool = False) -> int:
    """Train until `learner.max_steps` or a signal; returns the process exit status."""
    from transformers.utils import logging as hf_logging

    from learner.loop import Learner
    from lppo.core.signals import stop_on_signals

    hf_logging.disable_progress_bar()
    cfg.run.run_dir.mkdir(parents=True, exist_ok=True)
    learner = Learner(cfg, resume=resume)
    stop_on_signals(learner.stop, "checkpointing and stopping")
    return learner.run()
