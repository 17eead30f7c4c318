"""The actor loop in-process with the transformers engine (no vLLM), and the learner's
gateway protocol, on real sockets."""

from __future__ import annotations

import threading
import time

import pytest
import torch
import zmq

from actor.hf_engine import HFEngine
from actor.loop import Actor
from actor.reward import RewardPool
from lppo.core.transport import ActorSockets, Channel
from lppo.core.wire import Ack, Heartbeat, Register, Shutdown, WeightsLoaded, WeightsReady, Welcome
from tests.integration.learner_stub import (
    ScriptedLearner,
    actor_test_config,
    item,
    zmq_context,
)


@pytest.fixture()
def hf_actor(tiny_model, tmp_path):
    cfg = actor_test_config(tiny_model, tmp_path, actor={"engine": "transformers", "slots": 4})
    with ScriptedLearner(cfg) as learner, zmq_context() as ctx:
        socks = ActorSockets.connect(ctx, learner.ends, cfg.transport, "actor-h")
        pool = RewardPool(cfg.actor.reward)
        engine = HFEngine(cfg)
        actor = Actor(cfg, "actor-h", engine, pool, socks)
        thread = threading.Thread(target=actor.run, daemon=True)
        thread.start()
        try:
            yield learner, actor, engine
        finally:
            actor.stop.set()
            thread.join(timeout=20)
            pool.close()
            socks.close()
    assert not thread.is_alive()


def test_hf_engine_actor_produces_verified_groups_with_exact_logprobs(hf_actor):
    learner, actor, engine = hf_actor
    learner.add(*(item(f"h-{i}", f"What is {i} + 1?", str(i + 1), n=3, sample_id=i)
                  for i in range(3)))
    groups = learner.collect(3, timeout=120)
    assert sorted(g.attempt_id for g in groups) == ["h-0", "h-1", "h-2"]
    g = groups[0]
    context = g.prompt_ids.tolist()
    for comp in g.completions:
        tokens = comp.token_ids.tolist()
        with torch.no_grad():
            logits = engine.model(torch.tensor([context + tokens])).logits[0]
        ref = logits.log_softmax(-1)[len(context) - 1:-1].gather(-1, torch.tensor(tokens)[:, None])
        assert torch.allclose(ref.squeeze(-1), torch.tensor(comp.logprobs.tolist()), atol=1e-4)
    assert actor.stats.groups_sent == 3
    learner.wait_for(lambda: len(actor.outbox) == 0, timeout=30)  # acked, forgotten
    # Heartbeats carry cumulative counters, the reward pool's included.
    learner.wait_for(
        lambda: learner.gateway.actors["actor-h"].metrics.get("actor/completions") == 9, timeout=30)
    metrics = learner.gateway.actors["actor-h"].metrics
    assert sum(v for k, v in metrics.items() if k.startswith("reward/verdict_")) == 9
    assert metrics["reward/items"] == 9 and metrics["actor/groups_sent"] == 3


def test_mixed_group_samples_some_completions_without_the_prefix(hf_actor):
    learner, _, engine = hf_actor
    prefix = engine.tokenizer().encode("2 + 1 =", add_special_tokens=False)
    learner.add(item("m-0", "What is 2 + 1?", "3", n=4, prefix_ids=prefix, guided=1))
    (g,) = learner.collect(1, timeout=120)
    assert [c.unguided for c in g.completions] == [False, True, True, True]
    assert g.prefix_ids.tolist() == prefix and g.prefix_len == len(prefix)
    prompt = g.prompt_ids.tolist()
    for comp in g.completions:  # each log-prob under its own context: with or without prefix
        context = prompt + ([] if comp.unguided else prefix)
        tokens = comp.token_ids.tolist()
        with torch.no_grad():
            logits = engine.model(torch.tensor([context + tokens])).logits[0]
        ref = logits.log_softmax(-1)[len(context) - 1:-1].gather(-1, torch.tensor(tokens)[:, None])
        assert torch.allclose(ref.squeeze(-1), torch.tensor(comp.logprobs.tolist()), atol=1e-4)


def test_shutdown_message_stops_the_loop(hf_actor):
    learner, actor, _ = hf_actor
    learner.wait_for(lambda: "actor-h" in learner.gateway.actors, timeout=30)
    learner.gateway.shutdown("test")
    assert actor.stop.wait(timeout=10)


def _dealer(ctx, learner, actor_id: str) -> Channel:
    return Channel(ctx, zmq.DEALER, connect=learner.ends.work, identity=actor_id.encode(),
                   name=actor_id)


def _reply(learner, dealer: Channel, timeout: float = 10):
    """The gateway's next answer to `dealer`, polling the gateway until it comes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        learner.gateway.poll(timeout_ms=20)
        got = dealer.recv(timeout_ms=20)
        if got is not None:
            return got.msg
    raise TimeoutError(f"no answer to {dealer} within {timeout} s")


def test_gateway_welcomes_unknown_actors_and_answers_heartbeats(tiny_model, tmp_path):
    with ScriptedLearner(actor_test_config(tiny_model, tmp_path)) as learner, \
            zmq_context() as ctx, _dealer(ctx, learner, "ghost") as dealer:
        dealer.send(Heartbeat(actor_id="ghost", policy_version=0))
        learner.wait_for(lambda: "ghost" in learner.gateway.actors, timeout=10)
        welcome = dealer.recv(timeout_ms=5000).msg
        assert isinstance(welcome, Welcome) and welcome.epoch == learner.gateway.epoch
        dealer.send(Heartbeat(actor_id="ghost", policy_version=0))
        assert isinstance(_reply(learner, dealer), Ack)
        # An actor claiming another identity is ignored. The heartbeat after it is answered
        # only once the gateway has handled both (one socket, in order).
        dealer.send(Register(actor_id="someone-else", engine="x", capacity=1))
        dealer.send(Heartbeat(actor_id="ghost", policy_version=0))
        assert isinstance(_reply(learner, dealer), Ack)
        assert "someone-else" not in learner.gateway.actors
        # An actor reports its own metrics only: not the learner's names, nothing non-finite.
        dealer.send(Heartbeat(actor_id="ghost", policy_version=0, metrics={
            "train/loss": 0.0, "batch/pass_rate": 1.0, "actor/tokens": 5.0,
            "reward/items": float("nan")}))
        assert isinstance(_reply(learner, dealer), Ack)
        assert learner.gateway.actors["ghost"].metrics == {"actor/tokens": 5.0}
        # A peer cannot register for more work than an actor may hold (`actor.slots`).
        dealer.send(Register(actor_id="ghost", engine="x", capacity=10**9))
        while not isinstance(_reply(learner, dealer), Welcome):
            pass  # an Ack still on its way
        assert learner.gateway.actors["ghost"].capacity == learner.cfg.actor.slots


def test_gateway_republishes_weights_until_loaded_and_expires_silent_actors(tiny_model, tmp_path):
    cfg = actor_test_config(tiny_model, tmp_path, transport={"heartbeat_s": 0.2,
                                                             "peer_timeout_s": 1.0})
    with ScriptedLearner(cfg) as learner, zmq_context() as ctx, \
            Channel(ctx, zmq.SUB, connect=learner.ends.weights, name="sub") as sub, \
            _dealer(ctx, learner, "a1") as dealer:
        dealer.send(Register(actor_id="a1", engine="x", capacity=1))
        learner.wait_for(lambda: "a1" in learner.gateway.actors, timeout=10)
        notice = WeightsReady(version=5, uri="file:///x", sha256="0" * 64)
        learner.gateway.publish(notice)  # probably lost: the SUB may not have joined yet
        seen = []
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            learner.gateway.poll(timeout_ms=100)
            dealer.send(Heartbeat(actor_id="a1", policy_version=0))
            got = sub.recv(timeout_ms=100)
            if got is not None:
                seen.append(got.msg)
        assert seen and all(m == notice for m in seen)
        dealer.send(WeightsLoaded(actor_id="a1", version=5, ok=True))
        # Polled until it lands: one poll may drain the heartbeats queued before it and
        # return before it arrives (failed once in a clean-clone run).
        learner.wait_for(lambda: learner.gateway.versions() == {"a1": 5}, timeout=10)
        time.sleep(1.3)  # silent past peer_timeout_s
        learner.gateway.poll(timeout_ms=10)
        assert "a1" not in learner.gateway.actors and learner.gateway.take_lost() == ["a1"]
        learner.gateway.shutdown("bye")
        last = sub.recv(timeout_ms=2000)
        while last is not None and last.msg == notice:  # republished before "loaded" landed
            last = sub.recv(timeout_ms=2000)
        assert last is not None and isinstance(last.msg, Shutdown)


def test_work_for_newer_weights_waits_until_they_are_loaded(hf_actor, tmp_path):
    """The learner admits work for v1 right after announcing v1, but the notice travels on
    another socket: work saying v1 must not be sampled with v0 (it would only be dropped as
    stale). It waits in the queue and is sampled, tagged v1, once v1 is loaded."""
    from lppo.core.weightfiles import write_weights

    learner, actor, engine = hf_actor
    learner.wait_for(lambda: "actor-h" in learner.gateway.actors, timeout=30)
    learner.gateway.policy_version = 1  # as after gateway.publish(v1) ... whose notice is late
    learner.add(item("late-0", "What is 2 + 2?", "4", n=2, sample_id=0))
    learner.wait_for(lambda: len(actor.queue) == 1, timeout=30)
    with pytest.raises(TimeoutError):
        learner.collect(1, timeout=2)
    assert actor.weights_behind() and actor.version == 0 and not actor.inflight
    state = {k: v.detach().clone() for k, v in engine.model.state_dict().items()}
    learner.gateway.publish(write_weights(state, tmp_path, 1))
    (group,) = learner.collect(1, timeout=120)
    assert group.attempt_id == "late-0" and group.policy_version == 1 and actor.version == 1


def test_after_a_learner_restart_the_actor_loads_its_weights_whatever_the_version(hf_actor,
                                                                                  tmp_path):
    """An actor that outlives a learner keeps running; the new learner (from an older
    checkpoint, or from scratch) announces v0 or v2 while the actor runs v3 of the dead one.
    The actor must load the new learner's weights, not keep its own newer-numbered ones, and
    drop work queued for the dead learner."""
    from lppo.core.weightfiles import write_weights

    learner, actor, engine = hf_actor
    learner.wait_for(lambda: "actor-h" in learner.gateway.actors, timeout=30)
    base = {k: v.detach().clone() for k, v in engine.model.state_dict().items()}
    newer = {k: v + 0.01 for k, v in base.items()}
    learner.gateway.publish(write_weights(newer, tmp_path / "old", 3))
    learner.wait_for(lambda: actor.version == 3, timeout=60)
    learner.restart(down_s=0.5)  # a fresh learner: its Welcome announces its v0
    learner.wait_for(lambda: actor.epoch == learner.gateway.epoch and actor.version == 0
                     and not actor.foreign_weights, timeout=60)
    assert all(torch.equal(engine.model.state_dict()[k], base[k]) for k in base)
    learner.add(item("after-0", "What is 2 + 2?", "4", n=2, sample_id=0))
    (group,) = learner.collect(1, timeout=120)
    assert group.attempt_id == "after-0" and group.policy_version == 0
