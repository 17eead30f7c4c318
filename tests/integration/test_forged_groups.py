"""Wire-valid but wrong rollout groups from a registered peer, during a real training run
(learner process + vLLM actor): each is an `invalid` drop that frees its slot, recorded under
the sample it was dispatched for, its problem logged; the learner trains on, and the ledger
holds nothing the peer made up (these used to crash the learner)."""

from __future__ import annotations

import subprocess
import sys
import time

import zmq

from lppo.core.config import load_config
from lppo.core.transport import Endpoints
from lppo.core.wire import (
    Array,
    Completion,
    Register,
    RolloutGroup,
    Welcome,
    Work,
    WorkRequest,
    decode,
    encode,
)
from store.check import check_run
from store.queries import LedgerReader
from tests.conftest import ROOT
from tests.integration.run_files import small_run_config, write_task
from tests.integration.test_fault_frames import ENV

FORGERIES = {  # what the peer changes in a group for each work item it got, and the error
    "unknown sample": ({"sample_id": 999_999}, "does not match its dispatch"),
    "token beyond the vocabulary": ({"token": 10**6}, "outside [0,"),
    "negative token": ({"token": -5}, "outside [0,"),
    "version from the future": ({"policy_version": 2**63 - 1}, "newer than the learner's"),
    "64 completions": ({"n": 64}, "64 completions, 4 asked"),
    "4,000-token completion": ({"length": 4000}, "more than max_tokens=32"),
}


def _group(item, actor_id: str, sample_id=None, token=7, policy_version=0, n=4, length=3):
    comps = [Completion(token_ids=Array.of([token] * length, "int32"),
                        logprobs=Array.of([-0.1] * length, "float32"), text="1",
                        finish_reason="stop", reward=1.0, verdict="correct") for _ in range(n)]
    return RolloutGroup(
        attempt_id=item.attempt_id, actor_id=actor_id, policy_version=policy_version,
        sample_id=item.sample_id if sample_id is None else sample_id,
        prompt_ids=Array.of([1, 2, 3], "int32"),
        prefix_ids=item.prefix_ids or Array.of([], "int32"), prefix_ratio=item.prefix_ratio,
        prefix_len=0 if item.prefix_ids is None else item.prefix_ids.shape[0],
        completions=comps, gen_seconds=0.1)


def forge(ends: Endpoints) -> dict[str, str]:
    """Register as `forger`, take one work item per forgery, send the forged groups back;
    returns {attempt id: forgery name}."""
    ctx = zmq.Context()
    dealer, push = ctx.socket(zmq.DEALER), ctx.socket(zmq.PUSH)
    dealer.setsockopt(zmq.IDENTITY, b"forger")
    dealer.connect(ends.work)
    push.connect(ends.rollouts)
    dealer.send(encode(Register(actor_id="forger", engine="forged", capacity=8)))
    items, deadline = [], time.monotonic() + 60
    asked = 0.0
    while len(items) < len(FORGERIES):
        assert time.monotonic() < deadline, "the learner handed out no work"
        if time.monotonic() - asked > 1.0:
            dealer.send(encode(WorkRequest(actor_id="forger", slots=len(FORGERIES))))
            asked = time.monotonic()
        if dealer.poll(200):
            msg = decode(dealer.recv())
            if isinstance(msg, Work):
                items.extend(msg.items)
            assert not isinstance(msg, Welcome) or msg.policy_version == 0
    sent = {}
    for item, (name, (change, _)) in zip(items, FORGERIES.items(), strict=False):
        push.send(encode(_group(item, "forger", **change)))
        sent[item.attempt_id] = name
    time.sleep(1.0)
    dealer.close(linger=1000)
    push.close(linger=1000)
    ctx.term()
    return sent


def test_forged_groups_are_invalid_drops_and_training_goes_on(tiny_model, tmp_path):
    paths = write_task(tmp_path, train={1: 16, 2: 8}, held_out={1: 4})
    cfg_path = small_run_config(tmp_path, tiny_model, paths["train"], learner={
        "max_steps": 3, "batch_groups": 4, "group_size": 4, "max_staleness": 1,
        "checkpoint_every": 3, "device": "cpu"})
    cfg = load_config(cfg_path)
    log = open(tmp_path / "learner.log", "w")  # noqa: SIM115 - the child writes to it
    learner = subprocess.Popen([sys.executable, "-m", "lppo.cli", "learner", str(cfg_path)],
                               cwd=ROOT, env=ENV, stdout=log, stderr=subprocess.STDOUT)
    actor = None
    try:
        deadline = time.monotonic() + 120
        while "learner listening" not in (tmp_path / "learner.log").read_text():
            assert time.monotonic() < deadline and learner.poll() is None, \
                (tmp_path / "learner.log").read_text()[-3000:]
            time.sleep(0.2)
        sent = forge(Endpoints.from_config(cfg.transport, cfg.run.run_dir))
        assert len(sent) == len(FORGERIES)
        actor = subprocess.Popen([sys.executable, "-m", "lppo.cli", "actor", str(cfg_path),
                                  "--actor-id", "a0"], cwd=ROOT, env=ENV,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        assert learner.wait(timeout=420) == 0, (tmp_path / "learner.log").read_text()[-3000:]
        actor.wait(timeout=60)
    finally:
        for p in (learner, actor):
            if p is not None and p.poll() is None:
                p.kill()
        log.close()
    with LedgerReader(str(cfg.run.run_dir)) as reader:
        assert [s["step"] for s in reader.steps("it")] == [1, 2, 3]
        assert reader.summary("it")["status"] == "finished"
        rows = {a: (d, n, sid) for a, d, n, sid in reader.sql(
            "SELECT attempt_id, dropped_reason, n, sample_id FROM rollout_groups "
            "WHERE actor_id = 'forger'").rows}
        samples = {sid for (sid,) in reader.sql("SELECT sample_id FROM sample_state").rows}
        assert check_run(reader, "it") == []
        stored = reader.sql("SELECT COUNT(*) FROM rollouts r JOIN rollout_groups g ON "
                            "g.id = r.group_id WHERE g.actor_id = 'forger'").rows[0][0]
    assert set(rows) == set(sent)
    assert all(d == "invalid" and n == 0 and sid in samples for d, n, sid in rows.values())
    assert stored == 0  # nothing the peer sent is stored
    text = (tmp_path / "learner.log").read_text()
    for name, (_, words) in FORGERIES.items():
        assert words in text, name
