"""learner/collective.py: a pull whose actor never joins falls back to a file for that version,
once; a failed load reported by an actor does the same; pulls before any offer are ignored; a
restarted actor does not wait for its predecessor's pull; `close` waits for pulls in flight."""

from __future__ import annotations

import threading
import time

import torch

from learner.collective import CollectiveWeights
from lppo.core import weightsync
from lppo.core.config import Config
from lppo.core.weightfiles import load_state, verified_path
from lppo.testing.postgres import free_ports


def _sync(tmp_path) -> CollectiveWeights:
    cfg = Config.model_validate({
        "run": {"name": "c", "output_dir": str(tmp_path)},
        "learner": {"weights_backend": "collective", "weights_sync_timeout_s": 1.0},
        "transport": {"sync_port": free_ports(1)[0]},
    })
    return CollectiveWeights(cfg)


def _state() -> dict[str, torch.Tensor]:
    return {"model.embed_tokens.weight": torch.arange(12.0).view(3, 4), "b": torch.ones(2)}


def _fallbacks(sync: CollectiveWeights, timeout: float = 20.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = sync.take_fallbacks()
        if got:
            return got
        time.sleep(0.05)
    return []


def test_a_pull_nobody_joins_falls_back_to_a_file_once(tmp_path):
    sync = _sync(tmp_path)
    sync.pull("a", "a/s/1", 2)  # nothing offered yet: ignored
    notice = sync.offer(4, _state())
    assert notice.uri.startswith("collective://127.0.0.1:") and notice.version == 4
    sync.pull("a", "a/s/1", 2)  # no actor joins: the group times out after 1 s
    (fallback,) = _fallbacks(sync)
    assert fallback.version == 4 and fallback.uri.startswith("file://")
    state = load_state(verified_path(fallback))
    assert torch.equal(state["lm_head.weight"], _state()["model.embed_tokens.weight"])
    sync.failed("a", 4, "again")  # the same version never falls back twice
    assert _fallbacks(sync, timeout=0.5) == []
    assert sync.metrics() == {"weights/collective_loads": 0, "weights/fallbacks": 1}
    sync.close()


def test_a_failed_load_of_the_newest_version_falls_back_an_older_one_does_not(tmp_path):
    sync = _sync(tmp_path)
    sync.offer(5, _state())
    sync.failed("a", 4, "digest mismatch")  # not the version held: nothing to write
    assert sync.take_fallbacks() == []
    sync.failed("a", 5, "digest mismatch")
    (fallback,) = sync.take_fallbacks()
    assert fallback.version == 5 and (tmp_path / "c" / "weights" / "v5").is_dir()
    sync.close()


def test_a_restarted_actor_is_served_while_its_dead_predecessors_pull_still_waits(tmp_path):
    """With one lock per actor, the new session's pull would queue behind the old one until
    that one timed out, and its own rendezvous would time out meanwhile."""
    cfg = Config.model_validate({
        "run": {"name": "c", "output_dir": str(tmp_path)},
        "learner": {"weights_backend": "collective", "weights_sync_timeout_s": 4.0},
        "transport": {"sync_port": free_ports(1)[0]},
    })
    sync = CollectiveWeights(cfg)
    sync.offer(7, _state())
    sync.pull("a", "a/old/1", 2)  # the actor died: nobody joins this group
    sync.pull("a", "a/new/1", 2)
    got: dict = {}
    start = time.monotonic()
    version, _, count = weightsync.receive(
        "127.0.0.1", cfg.transport.sync_port, "a/new/1", 1, 2, 4.0, "gloo", "cpu",
        lambda items: got.update({n: t.clone() for n, t in items}))
    assert time.monotonic() - start < 3.0
    assert version == 7 and count == 3 and torch.equal(got["b"], torch.ones(2))
    sync.close()  # waits for the old pull to time out and fall back
    assert not [t for t in threading.enumerate() if t.name.startswith("weights-")]
    assert sync.metrics() == {"weights/collective_loads": 1, "weights/fallbacks": 1}
