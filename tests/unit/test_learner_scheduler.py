"""The scheduler: admission-paced dispatch, prefixes, rechecks, arrival decisions, state."""

from __future__ import annotations

import json

import msgspec
import pytest

from learner.algo.prefix import SolutionCuts
from learner.scheduler import SampleEntry, Scheduler
from lppo.core.config import Config
from lppo.core.wire import Array, Completion, RolloutGroup

# An expert solution as tokens: "a\n", "b\n", "c\n", "The answer is 7."
TEXTS = ["a", "\n", "b", "\n", "c", "\n", "The answer is ", "7", "."]
CUTS = SolutionCuts.from_token_texts(list(range(100, 109)), TEXTS, "line", answer="7")


def _cfg(**learner) -> Config:
    return Config.model_validate({
        "learner": {"batch_groups": 2, "group_size": 4, "max_staleness": 0, **learner},
        "lppo": {"curation": {"overdispatch": 1.0, "recheck_fraction": 0.0}},
    })


def _samples(k: int, cuts=CUTS) -> list[SampleEntry]:
    return [SampleEntry(sample_id=i, problem=f"p{i}", answer="7", cuts=cuts) for i in range(k)]


def _group(item, correct: int, version: int = 0, n: int = 4, actor="a0", error="",
           unguided: int = 0) -> RolloutGroup:
    """`n` completions, the first `correct` correct; the last `unguided` without the prefix."""
    comps = [Completion(token_ids=Array.of([1, 2], "int32"), logprobs=Array.of([-1, -1], "float32"),
                        text="x", finish_reason="stop", reward=float(i < correct),
                        verdict="correct" if i < correct else "wrong",
                        unguided=i >= n - unguided) for i in range(n)]
    prefix = item.prefix_ids.tolist() if item.prefix_ids is not None else []
    return RolloutGroup(
        attempt_id=item.attempt_id, sample_id=item.sample_id, actor_id=actor,
        policy_version=version, prompt_ids=Array.of([1], "int32"),
        prefix_ids=Array.of(prefix, "int32"), prefix_ratio=item.prefix_ratio,
        prefix_len=len(prefix), completions=[] if error else comps, gen_seconds=0.1, error=error,
    )


def test_dispatch_is_paced_by_admission_and_one_group_per_sample():
    s = Scheduler(_cfg(), _samples(5))
    items = s.next_items("a0", slots=10)
    assert len(items) == 2  # synchronous: (0 + 0 + 1) * batch_groups
    assert len({i.sample_id for i in items}) == 2 and all(i.n == 4 for i in items)
    assert s.next_items("a0", slots=10) == []
    for it in items:
        assert s.on_group(_group(it, correct=2)).accepted
    assert s.next_items("a0", 10) == []  # buffer full until the version moves
    s.set_version(1, step=1)
    nxt = s.next_items("a0", 10)
    assert len(nxt) == 2 and {i.sample_id for i in nxt}.isdisjoint({i.sample_id for i in items})


def test_failed_sample_is_guided_with_a_prefix_cut_at_a_line_boundary():
    s = Scheduler(_cfg(max_staleness=4), _samples(1))
    (item,) = s.next_items("a0", 1)
    assert item.prefix_ids is None and item.prefix_ratio == 0.0
    d = s.on_group(_group(item, correct=0))
    assert d.reason == "all_wrong"  # dropped from the batch, but the sample's stats moved
    assert d.observation.next_ratio == 0.5 and s.samples[0].stats.last_pass_rate == 0.0
    (guided,) = s.next_items("a0", 1)
    assert guided.prefix_ratio == 0.5
    prefix = guided.prefix_ids.tolist()
    assert prefix == [100, 101, 102, 103]  # "a\nb\n": 4.5 tokens cut back to a line end
    assert 107 not in prefix  # never the answer


def test_all_wrong_and_all_correct_groups_are_dropped_with_their_reason():
    cfg = Config.model_validate({
        "learner": {"batch_groups": 4, "max_staleness": 2, "group_size": 4},
        "lppo": {"curation": {"drop_all_wrong": True}}})
    s = Scheduler(cfg, _samples(4))
    a, b, c, *_ = s.next_items("a0", 3)
    assert s.on_group(_group(a, correct=0)).reason == "all_wrong"
    assert s.on_group(_group(b, correct=4)).reason == "all_correct"
    assert s.on_group(_group(c, correct=1)).accepted
    assert s.staleness.drops == {"all_wrong": 1, "all_correct": 1}


def test_stale_invalid_and_duplicate_groups():
    s = Scheduler(_cfg(max_staleness=0), _samples(3))
    a, b = s.next_items("a0", 2)
    s.set_version(1, step=1)
    stale = s.on_group(_group(a, correct=2, version=0))
    assert stale.reason == "stale" and stale.observation is None
    assert s.samples[a.sample_id].stats.attempts == 0  # stale groups do not move the EMA
    bad = s.on_group(_group(b, correct=2, error="prompt too long"))
    assert bad.reason == "invalid"
    again = s.on_group(_group(b, correct=2))
    assert again.duplicate and not again.accepted


def test_lost_actor_releases_its_work():
    s = Scheduler(_cfg(max_staleness=0), _samples(4))
    s.next_items("a0", 1)
    s.next_items("a1", 1)
    assert s.staleness.in_flight == 2
    assert s.on_actor_lost("a0") == 1
    assert s.staleness.in_flight == 1 and len(s.next_items("a2", 5)) == 1


def test_retired_sample_is_rechecked_at_the_configured_share():
    cfg = Config.model_validate({
        "learner": {"batch_groups": 8, "max_staleness": 8, "group_size": 4},
        "lppo": {"curation": {"retire_after": 1, "recheck_fraction": 0.5, "overdispatch": 1.0}},
    })
    s = Scheduler(cfg, _samples(3))
    (first,) = s.next_items("a0", 1)
    s.on_group(_group(first, correct=4))
    assert s.samples[first.sample_id].status == "solved"
    items = s.next_items("a0", 4)
    assert [i.sample_id for i in items].count(first.sample_id) == 1  # 50% share, one solved


def test_state_round_trips_through_json():
    s = Scheduler(_cfg(max_staleness=2), _samples(3))
    for it in s.next_items("a0", 2):
        s.on_group(_group(it, correct=0))
    s.next_items("a0", 1)  # one left in flight at the "checkpoint"
    state = json.loads(json.dumps(s.state_dict()))
    t = Scheduler(_cfg(max_staleness=2), _samples(3))
    t.load_state_dict(state)
    assert {k: (e.stats, e.status, e.ratio) for k, e in t.samples.items()} == \
        {k: (e.stats, e.status, e.ratio) for k, e in s.samples.items()}
    assert t.step_attempts == s.step_attempts
    assert t.staleness.in_flight == 0 and t.staleness.lost == 1  # in flight at save: released
    assert t.next_items("a0", 1)


def test_a_restore_gives_back_the_slots_of_accepted_groups_no_step_trained():
    """What a stop loses: groups in the buffer and in a batch being collected. Counting only
    the buffer's size at the checkpoint left admission short for good (a resumed run that never
    got work again)."""
    cfg = _cfg(max_staleness=1)
    s = Scheduler(cfg, _samples(8))
    items = s.next_items("a0", 8)
    assert len(items) == 4  # (1 + 0 + 1) * 2
    for it in items:
        assert s.on_group(_group(it, correct=2)).accepted
    s.on_trained(2)  # one batch trained; the other two groups wait
    s.set_version(1, step=1)
    assert len(s.next_items("a0", 8)) == 2  # (1 + 1 + 1) * 2 - 4 accepted
    t = _round_trip(s, cfg, 8)  # the two waiting and the two in flight are gone
    assert t.staleness.accepted == 2 and len(t.next_items("a0", 8)) == 4
    old = json.loads(json.dumps(s.state_dict()))
    del old["staleness"]["trained"]  # written before trained groups were counted
    legacy = Scheduler(cfg, _samples(8))
    legacy.load_state_dict(old, buffered=2)  # it kept the buffer's size instead
    assert legacy.staleness.accepted == 2


def _round_trip(s: Scheduler, cfg: Config, samples: int) -> Scheduler:
    t = Scheduler(cfg, _samples(samples))
    t.load_state_dict(json.loads(json.dumps(s.state_dict())))
    return t


def test_redelivered_attempt_is_ignored_also_after_a_checkpoint_round_trip():
    cfg = _cfg(max_staleness=1)
    s = Scheduler(cfg, _samples(4))
    first, held = s.next_items("a0", 2)
    assert s.on_group(_group(first, correct=2)).accepted
    before = (s.samples[first.sample_id].stats, s.staleness.to_dict())
    assert s.on_group(_group(first, correct=3)).duplicate  # the outbox resends until acked
    for step in range(1, 40):  # long after its step: the arrival record has moved on
        s.set_version(step, step=step)
        assert s.on_group(_group(first, correct=3)).duplicate
    assert s.samples[first.sample_id].stats == before[0]
    assert first.attempt_id not in s.step_attempts
    t = _round_trip(s, cfg, 4)
    counters = t.staleness.to_dict()
    for attempt in (first, held):  # trained before the checkpoint / in flight at it
        d = t.on_group(_group(attempt, correct=1, version=39))
        assert d.duplicate and not d.accepted
    assert t.samples[first.sample_id].stats == before[0]
    assert t.staleness.to_dict() == counters
    (fresh,) = t.next_items("a0", 1)
    assert fresh.attempt_id.split("-")[0] != first.attempt_id.split("-")[0]
    assert t.on_group(_group(fresh, correct=2, version=39)).accepted


def test_checkpointed_arrivals_stay_bounded_over_a_long_run():
    cfg = _cfg(max_staleness=1)
    s = Scheduler(cfg, _samples(4))
    sizes = {}
    for step in range(1, 501):
        for item in s.next_items("a0", 8):
            assert s.on_group(_group(item, correct=2, version=step - 1)).accepted
        if step in (10, 500):
            sizes[step] = len(json.dumps(s.state_dict()))
        s.set_version(step, step=step)
    assert s.dispatched_total > 1000
    assert sizes[500] < sizes[10] * 1.05  # 50 times the steps, the same checkpoint size
    for item in s.next_items("a0", 8):
        s.on_group(_group(item, correct=2, version=500))
    assert 0 < len(s.step_attempts) <= 4  # one step's arrivals (one admission window)
    assert _round_trip(s, cfg, 4).step_attempts == s.step_attempts


def test_checkpoint_with_every_seen_attempt_still_loads():
    cfg = _cfg(max_staleness=1)
    s = Scheduler(cfg, _samples(3))
    for it in s.next_items("a0", 2):
        s.on_group(_group(it, correct=2))
    state = json.loads(json.dumps(s.state_dict()))
    state["seen_attempts"] = state.pop("step_attempts") + ["old-0000001"]  # before the change
    t = Scheduler(cfg, _samples(3))
    t.load_state_dict(state)
    assert t.step_attempts == s.step_attempts | {"old-0000001"}
    t.set_version(1, step=1)
    assert t.step_attempts == set()


def test_no_group_is_guided_by_an_empty_prefix():
    # "The answer is 7": no boundary before the answer, so no ratio gives a prefix.
    unguidable = SolutionCuts.from_token_texts([1, 2], ["The answer is ", "7"], "line",
                                               answer="7")
    s = Scheduler(_cfg(max_staleness=8), _samples(1, cuts=unguidable))
    for _ in range(3):
        (item,) = s.next_items("a0", 1)
        assert item.prefix_ids is None and item.prefix_ratio == 0.0 and item.guided is None
        s.on_group(_group(item, correct=0))
        assert s.inflight == {}
    assert s.samples[0].stats.last_ratio == 0.0  # observed as unguided, every time


def test_a_ratio_below_the_first_boundary_rises_to_it_within_the_cap():
    # "aaaaaaaa\n" is 9 of 12 tokens: ratio 0.5 cuts nothing, 0.75 cuts the first line.
    texts = ["a"] * 8 + ["\n", "The answer is ", "7", "."]
    cuts = SolutionCuts.from_token_texts(list(range(12)), texts, "line", answer="7")
    assert cuts.prefix(0.5) == []
    assert cuts.guided(0.5, top=0.9) == (0.75, list(range(9)))
    assert cuts.guided(0.5, top=0.7) == (0.0, [])    # the first cut is past the cap
    assert cuts.guided(0.0, top=0.9) == (0.0, [])
    s = Scheduler(_cfg_with(), _samples(1, cuts=cuts))
    item = _guided(s)
    assert item.prefix_ratio == 0.75 and item.prefix_ids.tolist() == list(range(9))


def test_no_samples_is_an_error():
    with pytest.raises(ValueError):
        Scheduler(_cfg(), [])


def _first_epoch(cfg: Config, k: int) -> list[int]:
    s = Scheduler(cfg, _samples(k))
    order: list[int] = []
    for version in range(1, k // 2 + 1):
        for it in s.next_items("a0", slots=10):
            order.append(it.sample_id)
            s.on_group(_group(it, correct=2, version=version - 1))
        s.set_version(version, step=version)
    return order


def test_first_epoch_is_a_seeded_shuffle_or_file_order_and_visits_every_sample_once():
    shuffled = _first_epoch(_cfg(), 20)
    assert sorted(shuffled) == list(range(20))  # every sample once before any repeats
    assert shuffled != list(range(20))  # not file order (a level-sorted file stays mixed)
    assert _first_epoch(_cfg(), 20) == shuffled  # same run.seed, same order
    reseeded = _cfg()
    reseeded.run.seed = 1
    assert _first_epoch(reseeded, 20) != shuffled
    in_order = _cfg()
    in_order.data.shuffle = False
    assert _first_epoch(in_order, 20) == list(range(20))


def _cfg_with(**lppo) -> Config:
    return Config.model_validate({
        "learner": {"batch_groups": 2, "group_size": 4, "max_staleness": 8, "max_steps": 10},
        "lppo": {"curation": {"overdispatch": 1.0, "recheck_fraction": 0.0}, **lppo},
    })


def _guided(s: Scheduler):
    """Fail the first sample unguided, then return its guided item."""
    (item,) = s.next_items("a0", 1)
    s.on_group(_group(item, correct=0))
    (guided,) = s.next_items("a0", 1)
    assert guided.prefix_ratio > 0
    return guided


def test_mixed_group_asks_for_some_guided_completions_and_reads_both_parts():
    s = Scheduler(_cfg_with(pg={"guided_share": 0.5}), _samples(1))
    item = _guided(s)
    assert (item.n, item.guided) == (4, 2)
    # guided part 2/2 correct, unguided part 1/2: the EMA moves, the ratio goes down
    d = s.on_group(_group(item, correct=3, unguided=2))
    st = s.samples[0].stats
    assert d.accepted and st.last_pass_rate == 0.5 and st.last_guided_pass_rate == 1.0
    assert s.samples[0].ratio == 0.4
    # a group whose split does not match what was asked is invalid
    item = s.next_items("a0", 1)[0]
    assert s.on_group(_group(item, correct=1, unguided=1)).reason == "invalid"


def test_all_correct_guided_group_is_kept_when_its_prefix_is_taught():
    taught = Scheduler(_cfg_with(pg={"off_policy_loss": True}), _samples(1))
    assert taught.on_group(_group(_guided(taught), correct=4)).accepted
    masked = Scheduler(_cfg_with(), _samples(1))
    assert masked.on_group(_group(_guided(masked), correct=4)).reason == "all_correct"


def test_annealed_largest_ratio_caps_the_prefix():
    s = Scheduler(_cfg_with(pg={"anneal": "linear", "final_max_ratio": 0.0}), _samples(1))
    s.set_version(5, step=5)                        # half way: the cap is 0.45
    item = _guided(s)
    assert item.prefix_ratio == 0.45


def test_failed_and_guided_samples_come_back_when_due():
    cfg = _cfg_with(curation={"overdispatch": 1.0, "recheck_fraction": 0.0, "revisit_steps": 2})
    s = Scheduler(cfg, _samples(6))
    first = s.next_items("a0", 2)
    s.on_group(_group(first[0], correct=0))          # failed: due at step 2
    s.on_group(_group(first[1], correct=2))          # passed: no revisit
    s.set_version(1, step=1)
    later = s.next_items("a0", 2)
    assert first[0].sample_id not in {i.sample_id for i in later}   # not due yet
    for it in later:
        s.on_group(_group(it, correct=2))
    s.set_version(2, step=2)
    due = s.next_items("a0", 2)
    assert due[0].sample_id == first[0].sample_id and due[0].prefix_ratio == 0.5
    state = json.loads(json.dumps(s.state_dict()))
    assert state["samples"][str(first[0].sample_id)]["revisit_at"] is None  # dispatched again


def test_an_invalid_group_is_emptied_counted_and_frees_its_slot():
    s = Scheduler(_cfg(max_staleness=0), _samples(2), vocab_size=50)
    a, b = s.next_items("a0", 2)
    assert s.next_items("a0", 1) == []                      # capacity used up
    forged = msgspec.structs.replace(_group(a, correct=2), sample_id=9999)
    d = s.on_group(forged)
    assert d.reason == "invalid" and d.observation is None and not d.accepted
    assert d.group.sample_id == a.sample_id and d.group.completions == []
    assert "does not match its dispatch" in d.group.error
    assert s.staleness.in_flight == 1 and s.staleness.drops == {"invalid": 1}
    assert len(s.next_items("a0", 1)) == 1                  # the slot came back
    bad_token = _group(b, correct=2)
    bad_token.completions[0].token_ids = Array.of([1, 50], "int32")   # vocabulary is 50
    assert "outside [0, 50)" in s.on_group(bad_token).group.error
    assert len({i.attempt_id for i in s.next_items("a0", 4)} | {a.attempt_id}) >= 2
    assert all(len(i.attempt_id) == 32 for i in (a, b))     # 128 random bits each


def test_one_actor_holds_at_most_its_slots_and_stale_work_expires():
    cfg = Config.model_validate({
        "learner": {"batch_groups": 64, "group_size": 4, "max_staleness": 2},
        "actor": {"slots": 3},
        "lppo": {"curation": {"overdispatch": 1.0, "recheck_fraction": 0.0}},
    })
    s = Scheduler(cfg, _samples(20))
    greedy = s.next_items("greedy", 10**9)
    assert len(greedy) == 3 and s.next_items("greedy", 5) == []   # its share, no more
    assert len(s.next_items("fair", 5)) == 3                        # the others still get work
    assert s.expire(600.0) == 0
    assert s.expire(600.0, now=10.0**9) == 6                        # handed out long ago
    assert s.staleness.in_flight == 0 and len(s.next_items("greedy", 5)) == 3
    late = s.on_group(_group(greedy[0], correct=2))
    assert late.duplicate                                           # released: not trained


def test_every_event_is_atomic_under_the_schedulers_own_lock():
    """Two threads as in the learner: the I/O thread dispatches and returns groups, the main
    thread takes accepted ones (evicting the stale), bumps versions, counts and checkpoints.
    Unguarded, the checkpoint's walk over the in-flight table races the I/O thread's changes
    to it, and admission's counters go wrong."""
    import queue
    import sys
    import threading

    s = Scheduler(_cfg(batch_groups=8, max_staleness=1), _samples(64))
    accepted: queue.Queue = queue.Queue()
    errors: list[BaseException] = []
    done = threading.Event()

    def io_thread():
        try:
            for _ in range(300):
                items = s.next_items("a0", 8)  # only this thread changes the in-flight table:
                dispatched = [s.inflight[it.attempt_id].version for it in items]  # read here
                decisions, _ = s.on_groups([_group(it, correct=2, version=v)
                                            for it, v in zip(items, dispatched, strict=True)])
                for d in decisions:
                    if d.accepted:
                        accepted.put(d)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            done.set()

    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the two threads as finely as the GIL allows
    version, t = 0, threading.Thread(target=io_thread)
    t.start()
    try:
        while not done.is_set() or not accepted.empty():
            batch = []
            while len(batch) < 8 and not (done.is_set() and accepted.empty()):
                try:
                    d = accepted.get(timeout=0.01)
                except queue.Empty:
                    continue
                if not s.evict_if_stale(d.group.policy_version):
                    batch.append(d)
            version += 1
            s.set_version(version, step=version)
            json.dumps(s.state_dict())
            assert sum(s.status_counts().values()) == 64
    finally:
        t.join()
        sys.setswitchinterval(switch)
    assert errors == []
    state = s.state_dict()
    assert sum(e.inflight for e in s.samples.values()) == len(state["inflight"])


def test_no_learner_module_reaches_into_the_scheduler():
    """Only `learner/scheduler.py` touches the scheduler's samples, staleness manager,
    in-flight table and step: everyone else goes through its methods."""
    import re

    from tests.conftest import ROOT

    inner = re.compile(r"scheduler\.(samples|staleness|inflight|step_attempts|step|_\w+)\b")
    found = [f"{p.relative_to(ROOT)}: {m.group()}"
             for p in sorted((ROOT / "learner").rglob("*.py")) if p.name != "scheduler.py"
             for m in inner.finditer(p.read_text())
             if not (p.name == "trainer.py" and m.group() == "scheduler.step")]
    assert found == []
