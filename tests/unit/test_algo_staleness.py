"""Admission under a staleness bound (learner.algo.staleness): the formula by hand, then a
simulated asynchronous schedule (actors with random latency, curation drops, a trainer) in
which the bound holds, the synchronous baseline is synchronous and nothing deadlocks."""

from __future__ import annotations

import heapq
import json
import random
from dataclasses import dataclass, field

import pytest

from learner.algo.staleness import StalenessManager
from lppo.core.config.schema import CurationConfig, LearnerConfig


def test_capacity_by_hand():
    m = StalenessManager(max_staleness=1, batch_groups=4)
    assert m.bound == 8 and m.capacity() == 8          # (1 + 0 + 1) * 4 - 0
    m.on_dispatch(5)
    assert m.capacity() == 3
    m.on_return(accepted=True)
    m.on_return(accepted=True)
    assert (m.accepted, m.in_flight, m.capacity()) == (2, 3, 3)
    m.on_return(accepted=False, reason="all_wrong")    # a drop frees its slot
    assert (m.in_flight, m.capacity(), m.drops) == (2, 4, {"all_wrong": 1})
    m.set_version(1)
    assert m.capacity() == 12 - 4                      # (1 + 1 + 1) * 4 - (2 + 2)


def test_capacity_with_overdispatch_by_hand():
    m = StalenessManager(max_staleness=0, batch_groups=4, overdispatch=1.5)
    assert m.capacity() == 6                           # floor(1.5 * 4) - 0
    m.on_dispatch(6)
    assert m.capacity() == 0
    m.on_return(accepted=True)                         # floor(1.5 * 3) - 5 < 0
    assert m.capacity() == 0
    for _ in range(3):
        m.on_return(accepted=False, reason="all_correct")
    assert (m.in_flight, m.capacity()) == (2, 2)       # floor(4.5) - 2
    m.on_dispatch(2)
    for _ in range(3):
        m.on_return(accepted=True)
    assert (m.accepted, m.in_flight, m.capacity()) == (4, 1, 0)  # batch 0 complete: no more
    m.set_version(1)
    assert m.capacity() == 5                           # floor(1.5 * (8 - 4)) - 1


def test_is_stale():
    m = StalenessManager(max_staleness=1, batch_groups=2, version=3)
    assert m.is_stale(1) and not m.is_stale(2) and not m.is_stale(3)
    assert StalenessManager(max_staleness=0, batch_groups=2, version=3).is_stale(2)


def test_lost_and_evicted_groups_free_capacity():
    m = StalenessManager(max_staleness=0, batch_groups=2)
    m.on_dispatch(2)
    assert m.capacity() == 0
    m.on_lost(2)
    assert (m.capacity(), m.lost) == (2, 2)
    m.on_dispatch(2)
    m.on_return(True)
    m.on_return(True)
    m.on_evicted(1)
    assert (m.accepted, m.capacity(), m.evicted) == (1, 1, 1)


def test_a_restore_forgets_every_accepted_group_no_step_trained():
    m = StalenessManager(max_staleness=1, batch_groups=2)
    m.on_dispatch(4)
    for _ in range(4):
        m.on_return(True)
    m.on_trained(2)
    m.set_version(1)
    assert m.capacity() == 2  # (1 + 1 + 1) * 2 - 4 accepted - 0 in flight
    back = StalenessManager.from_dict(json.loads(json.dumps(m.to_dict())))
    assert back.forget_untrained() == 2  # the buffer, a half-collected batch: not in the state
    assert (back.accepted, back.trained, back.evicted, back.capacity()) == (2, 2, 2, 4)
    with pytest.raises(ValueError, match="only 0 accepted groups wait"):
        back.on_trained(1)


def test_misuse_raises():
    m = StalenessManager(max_staleness=1, batch_groups=2, version=2)
    with pytest.raises(ValueError, match="in flight"):
        m.on_return(True)
    with pytest.raises(ValueError):
        m.on_lost(1)
    with pytest.raises(ValueError):
        m.on_evicted(1)
    with pytest.raises(ValueError):
        m.on_dispatch(-1)
    with pytest.raises(ValueError):
        m.set_version(1)
    with pytest.raises(ValueError):
        StalenessManager(max_staleness=1, batch_groups=2, overdispatch=0.5)
    with pytest.raises(ValueError):
        StalenessManager(max_staleness=-1, batch_groups=2)
    with pytest.raises(ValueError):
        StalenessManager(max_staleness=0, batch_groups=0)


def test_state_round_trips_through_json():
    m = StalenessManager(max_staleness=2, batch_groups=3, overdispatch=1.25)
    m.on_dispatch(5)
    m.on_return(False, "stale")
    m.on_return(True)
    m.set_version(4)
    back = StalenessManager.from_dict(json.loads(json.dumps(m.to_dict())))
    assert back == m and back.capacity() == m.capacity()


def test_from_config():
    learner = LearnerConfig(max_staleness=2, batch_groups=8)
    m = StalenessManager.from_config(learner, CurationConfig(overdispatch=2.0))
    assert (m.max_staleness, m.batch_groups, m.overdispatch) == (2, 8, 2.0)
    assert StalenessManager.from_config(learner, CurationConfig(enabled=False)).overdispatch == 1


# ---- a simulated schedule ------------------------------------------------------------------


@dataclass
class Sim:
    """Actors with `slots` free work slots each, random generation latency, curation that
    drops a share of groups, a trainer that takes `train_time` per step."""

    max_staleness: int
    overdispatch: float = 1.0
    batch: int = 4
    actors: int = 3
    slots: int = 4
    drop_p: float = 0.3
    train_time: int = 3
    seed: int = 0
    steps: int = 12
    trained: list[tuple[int, list[int]]] = field(default_factory=list)
    dispatch_log: list[tuple[int, int]] = field(default_factory=list)
    finished_at: int = -1

    def run(self, max_ticks: int = 5000) -> StalenessManager:
        rng = random.Random(self.seed)
        m = StalenessManager(self.max_staleness, self.batch, self.overdispatch)
        pending: list[tuple[int, int, int]] = []           # (arrival tick, seq, version)
        buffer: list[int] = []                             # policy versions of accepted groups
        free = self.actors * self.slots
        train_until, seq = None, 0
        for tick in range(max_ticks):
            while pending and pending[0][0] <= tick:       # arrivals
                _, _, version = heapq.heappop(pending)
                free += 1
                if m.is_stale(version):
                    m.on_return(False, "stale")
                elif rng.random() < self.drop_p:
                    m.on_return(False, "all_correct")
                else:
                    m.on_return(True)
                    buffer.append(version)
            if train_until is not None and tick >= train_until:   # step done: new version
                m.set_version(m.version + 1)
                train_until = None
            if train_until is None and len(self.trained) < self.steps:
                train_until = self._maybe_train(m, buffer, tick)
            k = min(free, m.capacity())                    # dispatch
            if k:
                m.on_dispatch(k)
                free -= k
                self.dispatch_log.append((m.version, len(self.trained)))
                for _ in range(k):
                    seq += 1
                    heapq.heappush(pending, (tick + rng.randint(1, 8), seq, m.version))
            if len(self.trained) == self.steps and train_until is None:
                self.finished_at = tick
                return m
        raise AssertionError(f"deadlock: {len(self.trained)} of {self.steps} steps trained")

    def _maybe_train(self, m: StalenessManager, buffer: list[int], tick: int) -> int | None:
        stale = [v for v in buffer if m.is_stale(v)]       # re-checked at batch time
        if stale:
            buffer[:] = [v for v in buffer if not m.is_stale(v)]
            m.on_evicted(len(stale))
        if len(buffer) < self.batch:
            return None
        buffer.sort()                                      # oldest policy first
        batch, buffer[:] = buffer[:self.batch], buffer[self.batch:]
        self.trained.append((m.version, batch))
        return tick + self.train_time


@pytest.mark.parametrize("overdispatch", [1.0, 1.5])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_synchronous_baseline(seed, overdispatch):
    sim = Sim(max_staleness=0, overdispatch=overdispatch, seed=seed)
    m = sim.run()
    # every trained group was generated by the very policy that trains on it
    for version, batch in sim.trained:
        assert batch == [version] * sim.batch
    # work is handed out at version v only while batch v is still being collected
    for version, steps_started in sim.dispatch_log:
        assert steps_started == version
    assert m.version == sim.steps


@pytest.mark.parametrize("max_staleness", [1, 2, 4])
@pytest.mark.parametrize("overdispatch", [1.0, 1.5])
def test_async_schedule_respects_the_bound_and_keeps_going(max_staleness, overdispatch):
    sim = Sim(max_staleness=max_staleness, overdispatch=overdispatch, seed=max_staleness)
    m = sim.run()
    ages = [version - v for version, batch in sim.trained for v in batch]
    assert max(ages) <= max_staleness
    assert any(a > 0 for a in ages)                    # it really ran ahead
    assert m.accepted >= sim.steps * sim.batch
    # pacing, not waste: stragglers that age past the bound are rare
    wasted = m.drops.get("stale", 0) + m.evicted
    assert wasted <= 0.1 * m.dispatched


def test_async_finishes_sooner_than_sync():
    sync, async_ = (Sim(max_staleness=s, seed=7, train_time=6) for s in (0, 2))
    sync.run()
    async_.run()
    assert async_.finished_at < sync.finished_at
