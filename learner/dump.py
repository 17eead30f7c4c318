"""Rollout dumps: what one learner step trained on, to re-run the step later (`lppo replay`).

With `learner.dump_rollouts`, rank 0 writes `<run_dir>/rollouts/step_<n>.safetensors` before
step n trains: every trained completion's token ids (prompt, prefix, completion), behaviour
log-probs, advantage, prefix terms and loss flag, as the four tensors of
`learner.distributed.encode_sequences` (the same encoding the learner's ranks receive the
batch in), with the step, the trainer's LR position and the policy version as metadata. No
pickle: safetensors holds tensors and string metadata only. A resumed run overwrites the
dumps of the steps it trains again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from learner.batch import TrainSequence
from learner.distributed import decode_sequences, encode_sequences
from lppo.core.errors import UserError

FORMAT = "lppo-rollouts/1"
TENSORS = ("header", "scalars", "token_ids", "logprobs")


@dataclass(frozen=True)
class Dump:
    step: int
    steps_done: int
    """The trainer's optimizer-step count before the step: its learning-rate position."""
    policy_version: int
    sequences: list[TrainSequence]


def dump_path(run_dir: Path, step: int) -> Path:
    return run_dir / "rollouts" / f"step_{step}.safetensors"


def write_dump(run_dir: Path, step: int, steps_done: int, policy_version: int,
               seqs: Sequence[TrainSequence]) -> Path:
    """Write step `step`'s batch atomically; returns the file."""
    from safetensors.torch import save_file

    path = dump_path(run_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tensors = dict(zip(TENSORS, (t.contiguous() for t in encode_sequences(seqs)), strict=True))
    save_file(tensors, str(tmp), metadata={
        "format": FORMAT, "step": str(step), "steps_done": str(steps_done),
        "policy_version": str(policy_version)})
    tmp.replace(path)
    return path


def read_dump(path: Path) -> Dump:
    """A dump written by `write_dump`; a missing, foreign or damaged file is a `UserError`."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise UserError(f"{path}: no rollout dump (the run needs learner.dump_rollouts = true)")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT:
                raise UserError(f"{path}: not an lppo rollout dump (format "
                                f"{meta.get('format')!r}, expected {FORMAT!r})")
            tensors = [f.get_tensor(name) for name in TENSORS]
        sequences = decode_sequences(*tensors)
        return Dump(step=int(meta["step"]), steps_done=int(meta["steps_done"]),
                    policy_version=int(meta["policy_version"]), sequences=sequences)
    except (SafetensorError, KeyError, ValueError, RuntimeError) as exc:
        raise UserError(f"{path}: unreadable rollout dump: {exc}") from None
