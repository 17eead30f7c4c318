"""The learner's end of a run (learner/loop.py): a non-finite batch is skipped or fails the
run, and a run that dies is closed `failed` with a one-line reason even when closing fails."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from learner.loop import Learner, NonFiniteError
from lppo.core.config import Config
from lppo.core.errors import one_line


def _learner(**learner) -> Learner:
    return Learner(Config.model_validate({"learner": learner}))


def _setup(evicted: list[int]):
    return SimpleNamespace(step=4, scheduler=SimpleNamespace(release_buffered=evicted.append))


def test_non_finite_batches_are_skipped_then_fail():
    lrn, evicted = _learner(max_nonfinite_skips=2), []
    inputs = SimpleNamespace(decisions=[object()] * 8)
    stats = SimpleNamespace(loss=float("nan"), grad_norm=float("inf"))
    lrn._skip_nonfinite(_setup(evicted), inputs, stats)
    assert evicted == [8] and lrn.nonfinite_skipped == 1   # the batch's slots come back
    with pytest.raises(NonFiniteError, match="step 5: non-finite loss .* 2 in a row"):
        lrn._skip_nonfinite(_setup(evicted), inputs, stats)
    strict = _learner(on_nonfinite="fail")
    with pytest.raises(NonFiniteError, match="'fail', 1 in a row"):
        strict._skip_nonfinite(_setup([]), inputs, stats)


class _Ledger:
    def __init__(self):
        self.ended = None

    def end_run(self, run_id, status, reason):
        self.ended = (status, reason)

    def close(self):
        pass


def test_a_run_whose_writer_fails_at_the_end_is_marked_failed():
    lrn = _learner()
    lrn.evals = SimpleNamespace(close=lambda: None, finish=lambda: [])
    closed = []
    lrn.trackers = SimpleNamespace(close=closed.append, log_evals=lambda records: None)
    ledger = _Ledger()

    def full_disk():
        raise OSError(28, "No space left on device")

    setup = SimpleNamespace(step=3, version=3, run_id=1, ledger=ledger,
                            leader=SimpleNamespace(stop=lambda: None),
                            writer=SimpleNamespace(close=full_disk, put_eval=lambda r: None))
    io = SimpleNamespace(stop=lambda reason: None)
    with pytest.raises(OSError):
        lrn._close(setup, io, "finished", None)
    assert ledger.ended == ("failed", "OSError: [Errno 28] No space left on device")
    assert closed == ["finished"]  # the trackers closed before the writer failed


def test_one_line():
    assert one_line(RuntimeError("first\nsecond")) == "RuntimeError: first"
    assert one_line(KeyboardInterrupt()) == "KeyboardInterrupt"
