"""Which sample an actor samples next, with which prefix; what an arrived group means.

    items = scheduler.next_items(actor_id, slots)    # Work for an actor (admission-paced)
    decisions, step = scheduler.on_groups(groups)    # stale / invalid / dropped / accepted,
                                                     # and each sample's new state

Threads. The learner's I/O thread dispatches work and interprets arrivals; its main thread
bumps the version, evicts stale buffered groups and takes checkpoints. The scheduler owns the
lock that orders them: every public method is one atomic event under it, and nothing outside
reads its samples or its staleness manager (a `Decision` carries copies: the observation, a
frozen value, and the sample's state as the ledger stores it).

Selection. Work is paced by `StalenessManager.capacity()` (AReaL admission with curation's
over-dispatch). Of k items, `recheck_count` are drawn from solved/parked samples (rechecks,
least recently dispatched first), the rest from active samples; a sample has at most one
group in flight, so its statistics update in order. With `curation.revisit_steps`, a sample
whose last group failed unguided or was guided is due again that many steps after the group
arrived and goes before every other (oldest due first): hard samples come back within a
bounded number of steps however large the set. The remaining slots are the selection
policy's choice (`learner.selection`, learner/algo/select.py: by default least recently
dispatched first, never-dispatched ones in a random order seeded by `run.seed`, or file order
without `data.shuffle`); every observed group is fed back to it. Each dispatch records why it
was chosen (`recheck`, `revisit` or the policy's name) and the score it was ranked by.

Prefix. Each item carries the sample's current prefix (`learner.algo.prefix`: PG-sampling's
ratio, capped by the annealed largest ratio, cut at a line/sentence boundary of the expert
solution, never stating the final answer) and, for a mixed group (`pg.guided_share` < 1), how
many completions see it; samples without a solution are never guided, and no group is guided
by an empty prefix (a ratio below the solution's first boundary rises to it if the annealed
cap allows, else the group goes unguided).

Arrival. A group is matched to its dispatch record, which is removed on the spot: the
in-flight table is the only authority on which attempts may still be trained, so a
re-delivered group (an actor's outbox resends until acked) finds no record and is ignored as
a duplicate, as is any attempt the table never held. Attempt ids are 128 random bits per
item, so no peer can guess another's. Invalid groups (`learner.algo.admit`: nothing sampled,
or not what was dispatched: sample, actor, prefix, n, lengths, token ids within the
vocabulary, a version from the future) and stale ones (older than `max_staleness` versions)
are dropped without touching the sample's statistics, and free their slot; an invalid group
reaches the ledger emptied, under the dispatched sample, and its problem is logged.
Otherwise `learner.algo.sample.observe` updates EMA/progress/status/next ratio, and curation
decides whether the group enters the batch (`all_correct` / `all_wrong` drops).

Resume. All state is plain data, saved in checkpoints (`state_dict` / `load_state_dict`). A
loaded scheduler starts with an empty in-flight table (work in flight at the checkpoint is
released, as for a dead actor), releases the accepted groups no step trained (they were in
memory), and dispatches under fresh random ids, so no attempt of the previous process is
accepted again; the ledger's unique (run, attempt id) is the last
backstop. What the checkpoint keeps of arrivals is bounded: only `step_attempts`, the ids that
arrived while the current step was running (cleared each time the step moves). With `step` it
tells `store.rollback` which ledger rows the checkpoint has seen: every group recorded at an
earlier step, and those of this step that are listed.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
import numpy as np

from learner.algo import admit, curation, guidance, prefix
from learner.algo.advantages import compute_advantages
from learner.algo.category_bandit import CategoryBandit
from learner.algo.pass_target import TargetPassRate
from learner.algo.prefix import SolutionCuts
from learner.algo.progress import SampleStats
from learner.algo.sample import Observation, observe
from learner.algo.select import Candidate, Feedback, LeastRecent, Policy, Uniform
from learner.algo.staleness import StalenessManager
from learner.algo.thompson import Thompson
from lppo.core.config import Config
from lppo.core.config.schema import LearnerConfig
from lppo.core.vocab import DropReason, SampleStatus, Verdict
from lppo.core.wire import Array, RolloutGroup, WorkItem
from store.records import SampleStateRecord

log = logging.getLogger(__name__)


@dataclass
class SampleEntry:
    """A sample of the run and the learner's view of it."""

    sample_id: int
    problem: str
    answer: str
    cuts: SolutionCuts | None = None
    stats: SampleStats = field(default_factory=SampleStats)
    status: SampleStatus = SampleStatus.ACTIVE
    status_since: int = 0
    ratio: float = 0.0
    """Prefix ratio of the sample's next group."""
    last_dispatch: float = -1.0
    inflight: int = 0
    revisit_at: int | None = None
    """Learner step from which the sample is dispatched before others (`revisit_steps`)."""
    category: str | None = None
    """Its value of `learner.category_bandit.field` (only read by that policy)."""


@dataclass
class Dispatch:
    """A work item handed out and not yet returned."""

    attempt_id: str
    sample_id: int
    actor_id: str
    ratio: float
    prefix_len: int
    version: int
    recheck: bool
    guided_n: int = 0
    """Completions asked to see the prefix (the rest of a mixed group do not); 0: unguided."""
    dispatched_at: float = 0.0
    """`time.monotonic()` when it was handed out (`expire`)."""
    selection: str | None = None
    """Why it was chosen: the policy's name, or `revisit` / `recheck` (curation's)."""
    score: float | None = None
    """The value it was ranked by (learner/algo/select.py lists each policy's)."""


@dataclass
class Decision:
    """What the learner concluded about an arrived group."""

    group: RolloutGroup
    dispatch: Dispatch | None
    reason: str | None
    """None: accepted into the batch; else `stale`, `invalid`, `all_correct`, `all_wrong`."""
    observation: Observation | None = None
    state: SampleStateRecord | None = None
    """The sample's state after an observed group, as the ledger stores it (a copy)."""
    duplicate: bool = False

    @property
    def accepted(self) -> bool:
        return self.reason is None and not self.duplicate


class Scheduler:
    """Serves work and interprets groups; see the module docstring."""

    def __init__(self, cfg: Config, samples: list[SampleEntry], vocab_size: int | None = None):
        if not samples:
            raise ValueError("the scheduler needs at least one sample")
        self._lock = threading.Lock()
        self.cfg = cfg
        self.limits = admit.Limits(
            group_size=cfg.learner.group_size, max_tokens=cfg.actor.sampling.max_tokens,
            max_prompt_tokens=cfg.data.max_prompt_tokens, vocab_size=vocab_size)
        self.samples = {s.sample_id: s for s in samples}
        self.staleness = StalenessManager.from_config(cfg.learner, cfg.lppo.curation)
        self.inflight: dict[str, Dispatch] = {}
        self.step_attempts: set[str] = set()
        """Attempt ids that arrived while `step` was current (see Resume in the module doc)."""
        self.step = 0
        self.dispatched_total = 0
        self.rechecked_total = 0
        self._clock = 0
        """Dispatches so far: the next one's place in the dispatch order (unlike time,
        deterministic)."""
        order = sorted(self.samples)
        if cfg.data.shuffle:
            random.Random(cfg.run.seed).shuffle(order)
        self._rank = {sid: i for i, sid in enumerate(order)}
        """Tie-break among samples dispatched equally long ago: the first epoch's order."""
        self.policy = make_policy(cfg.learner, cfg.run.seed)
        """Chooses among dispatchable samples (learner/algo/select.py)."""

    # -- dispatch ----------------------------------------------------------------------------

    def next_items(self, actor_id: str, slots: int) -> list[WorkItem]:
        """Up to `slots` work items for `actor_id`, within admission capacity and within the
        `actor.slots` one actor may hold."""
        with self._lock:
            return self._next_items(actor_id, slots)

    def _next_items(self, actor_id: str, slots: int) -> list[WorkItem]:
        held = sum(1 for d in self.inflight.values() if d.actor_id == actor_id)
        k = min(slots, self.staleness.capacity(), self.cfg.actor.slots - held)
        if k <= 0:
            return []
        cur = self.cfg.lppo.curation
        rechecks = 0
        if cur.enabled and cur.recheck_fraction > 0:
            rechecks = curation.recheck_count(k, self.dispatched_total, self.rechecked_total,
                                              cur.recheck_fraction)
        chosen = self._pick_rechecks(rechecks)
        chosen += self._pick(k - len(chosen))
        items = [self._dispatch(entry, actor_id, why) for entry, why in chosen]
        self.staleness.on_dispatch(len(items))
        self.dispatched_total += len(items)
        self.rechecked_total += sum(1 for _, why in chosen if why.selection == "recheck")
        return items

    def _pick_rechecks(self, k: int) -> list[tuple[SampleEntry, _Why]]:
        """Retired and parked samples, least recently dispatched first."""
        if k <= 0:
            return []
        pool = [s for s in self.samples.values()
                if s.status != SampleStatus.ACTIVE and not s.inflight]
        pool.sort(key=self._recency)
        return [(s, _Why("recheck", _score(self._age(s)))) for s in pool[:k]]

    def _pick(self, k: int) -> list[tuple[SampleEntry, _Why]]:
        """Due revisits first (oldest due first), then the selection policy's choice."""
        if k <= 0:
            return []
        pool = [s for s in self.samples.values()
                if (curation.is_dispatchable(s.status) or not self.cfg.lppo.curation.enabled)
                and not s.inflight]
        due = sorted((s for s in pool if s.revisit_at is not None and s.revisit_at <= self.step),
                     key=lambda s: (s.revisit_at, s.last_dispatch))[:k]
        chosen = [(s, _Why("revisit", float(self.step - s.revisit_at))) for s in due]
        taken = {s.sample_id for s in due}
        rest = [self._candidate(s) for s in pool if s.sample_id not in taken]
        for pick in self.policy.choose(rest, k - len(chosen)):
            chosen.append((self.samples[pick.sample_id], _Why(self.policy.name, pick.score)))
        return chosen

    def _recency(self, s: SampleEntry) -> tuple:
        """Least recently dispatched first; never-dispatched ones in the first epoch's order."""
        return (s.last_dispatch, self._rank[s.sample_id])

    def _age(self, s: SampleEntry) -> int | None:
        """Dispatches since the sample's last one (None: never dispatched)."""
        return None if s.last_dispatch < 0 else int(self._clock - 1 - s.last_dispatch)

    def _candidate(self, s: SampleEntry) -> Candidate:
        return Candidate(sample_id=s.sample_id, recency=self._recency(s), age=self._age(s),
                         ema=s.stats.ema, category=s.category)

    def max_ratio(self) -> float:
        """The largest prefix ratio at the current step (`pg.anneal`)."""
        return prefix.max_ratio_at(self.step, self.cfg.learner.max_steps, self.cfg.lppo.pg)

    def _dispatch(self, entry: SampleEntry, actor_id: str, why: _Why) -> WorkItem:
        pg, n = self.cfg.lppo.pg, self.cfg.learner.group_size
        ratio, cut = 0.0, []
        if pg.enabled and entry.cuts:  # an empty cut is no guidance: ratio 0 then
            top = self.max_ratio()
            ratio, cut = entry.cuts.guided(min(entry.ratio, top), top)
        guided_n = guidance.guided_count(n, pg) if cut else 0
        # 128 random bits per item: no peer can guess another's attempt ids, and a restarted
        # learner never reuses one (the ledger would skip its group as a duplicate).
        attempt_id = uuid.uuid4().hex
        entry.inflight += 1
        entry.last_dispatch = self._clock
        self._clock += 1
        entry.revisit_at = None
        self.inflight[attempt_id] = Dispatch(
            attempt_id=attempt_id, sample_id=entry.sample_id, actor_id=actor_id, ratio=ratio,
            prefix_len=len(cut), version=self.staleness.version,
            recheck=why.selection == "recheck", guided_n=guided_n,
            dispatched_at=time.monotonic(), selection=why.selection, score=why.score,
        )
        return WorkItem(
            attempt_id=attempt_id, sample_id=entry.sample_id, prompt=entry.problem,
            prefix_ids=Array.of(cut, "int32") if cut else None, prefix_ratio=ratio,
            n=n, guided=guided_n if 0 < guided_n < n else None, answer=entry.answer,
        )

    # -- arrival -----------------------------------------------------------------------------

    def on_groups(self, groups: list[RolloutGroup]) -> tuple[list[Decision], int]:
        """Interpret arrived groups in order (see the module docstring), with the step they
        were seen at."""
        with self._lock:
            return [self._on_group(g) for g in groups], self.step

    def on_group(self, group: RolloutGroup) -> Decision:
        """Interpret one arrived group."""
        return self.on_groups([group])[0][0]

    def _on_group(self, group: RolloutGroup) -> Decision:
        dispatch = self.inflight.pop(group.attempt_id, None)
        if dispatch is None:  # re-delivered, or dispatched before a restart: never twice
            return Decision(group, None, reason=None, duplicate=True)
        self.step_attempts.add(group.attempt_id)
        entry = self.samples[dispatch.sample_id]
        entry.inflight = max(0, entry.inflight - 1)
        problem = self._reject_reason(group, dispatch, entry)
        reason = DropReason.INVALID if problem else None
        if problem:
            log.warning("attempt %s from %s invalid: %s", group.attempt_id, dispatch.actor_id,
                        problem)
            group = _emptied(group, dispatch, problem)
        elif self.staleness.is_stale(group.policy_version):
            reason = DropReason.STALE
        if reason is not None:
            self.staleness.on_return(False, reason)
            return Decision(group, dispatch, reason)
        obs = self._observe(entry, group, dispatch)
        if obs.status != entry.status:
            log.info("sample %d: %s -> %s (%s)", entry.sample_id, entry.status, obs.status,
                     obs.transition)
            entry.status_since = self.step
        entry.stats, entry.status, entry.ratio = obs.stats, obs.status, obs.next_ratio
        entry.revisit_at = self._revisit_at(dispatch, obs)
        if self.policy.learns:  # advantages per arrival only where they are read
            self.policy.observe(self._feedback(entry, group, dispatch))
        reason = None
        if self.cfg.lppo.curation.enabled:
            correct = [c.verdict == Verdict.CORRECT for c in group.completions]
            teaches = dispatch.prefix_len > 0 and self.cfg.lppo.pg.prefix_terms
            reason = curation.drop_reason([c.reward for c in group.completions], correct,
                                          self.cfg.lppo.curation, teaches_prefix=teaches)
        self.staleness.on_return(reason is None, reason)
        return Decision(group, dispatch, reason, observation=obs,
                        state=state_record(entry, obs.weight, self.step))

    def _observe(self, entry: SampleEntry, group: RolloutGroup, dispatch: Dispatch):
        """`observe` with the group's guided and unguided parts' pass rates."""
        guided = dispatch.ratio > 0
        parts = {False: [], True: []}
        for c in group.completions:
            parts[guided and not c.unguided].append(c.verdict == Verdict.CORRECT)
        rate = float(np.mean(parts[guided]))
        unguided = float(np.mean(parts[False])) if guided and parts[False] else None
        return observe(entry.stats, entry.status, rate, guided, self.cfg.lppo,
                       ratio=dispatch.ratio, unguided_rate=unguided, max_ratio=self.max_ratio())

    def _feedback(self, entry: SampleEntry, group: RolloutGroup, dispatch: Dispatch) -> Feedback:
        """What the selection policy learns from an observed group."""
        guided = dispatch.ratio > 0
        unguided = [c.verdict == Verdict.CORRECT for c in group.completions
                    if not guided or c.unguided]
        rewards = [c.reward for c in group.completions]
        adv = compute_advantages([rewards], self.cfg.learner.advantage,
                                 self.cfg.learner.std_normalize,
                                 lengths=[[c.token_ids.shape[0] for c in group.completions]])
        return Feedback(sample_id=entry.sample_id, category=entry.category,
                        unguided_correct=sum(unguided), unguided_total=len(unguided),
                        abs_advantage=float(np.mean(np.abs(adv.values[0]))))

    def _revisit_at(self, dispatch: Dispatch, obs: Observation) -> int | None:
        """When a failed or guided sample is due again (`curation.revisit_steps`)."""
        steps = self.cfg.lppo.curation.revisit_steps
        failed = obs.stats.last_group_pass_rate == 0.0
        if steps and obs.status == SampleStatus.ACTIVE and (dispatch.ratio > 0 or failed):
            return self.step + steps
        return None

    def _reject_reason(self, group: RolloutGroup, dispatch: Dispatch,
                       entry: SampleEntry) -> str | None:
        cut = entry.cuts.prefix(dispatch.ratio) if entry.cuts and dispatch.ratio > 0 else []
        return admit.reject_reason(
            group, sample_id=dispatch.sample_id, actor_id=dispatch.actor_id, prefix=cut,
            guided_n=dispatch.guided_n, version=self.staleness.version, limits=self.limits)

    def expire(self, timeout_s: float, now: float | None = None) -> int:
        """Release work handed out more than `timeout_s` ago (`transport.work_timeout_s`): a
        peer that never returns an item, or only returns what is rejected before it reaches
        the scheduler, does not keep its slot. Returns how many."""
        cutoff = (time.monotonic() if now is None else now) - timeout_s
        with self._lock:
            return self._release([a for a, d in self.inflight.items() if d.dispatched_at < cutoff],
                                 "not returned within transport.work_timeout_s")

    def on_actor_lost(self, actor_id: str) -> int:
        """Release the work an actor held (it died or restarted); returns how many."""
        with self._lock:
            return self._release([a for a, d in self.inflight.items()
                                  if d.actor_id == actor_id], f"held by {actor_id}, which is gone")

    def _release(self, lost: list[str], why: str) -> int:
        for attempt_id in lost:
            d = self.inflight.pop(attempt_id)
            self.samples[d.sample_id].inflight = max(0, self.samples[d.sample_id].inflight - 1)
        if lost:
            self.staleness.on_lost(len(lost))
            log.info("released %d work items: %s", len(lost), why)
        return len(lost)

    def set_version(self, version: int, step: int) -> None:
        """A new policy version, published after `step` (work handed out from now says it)."""
        with self._lock:
            self.staleness.set_version(version)
            if step != self.step:
                self.step_attempts = set()
            self.step = step

    def evict_if_stale(self, policy_version: int) -> bool:
        """A buffered, accepted group about to be trained: True (and its admission slot freed)
        if it has become too stale to train on since it arrived."""
        with self._lock:
            stale = self.staleness.is_stale(policy_version)
            if stale:
                self.staleness.on_evicted(1)
            return stale

    def on_trained(self, n: int) -> None:
        """`n` accepted groups were trained on (see `StalenessManager.forget_untrained`)."""
        with self._lock:
            self.staleness.on_trained(n)

    def release_buffered(self, n: int) -> None:
        """`n` accepted groups left the buffer untrained (a skipped batch): their admission
        slots come back."""
        with self._lock:
            self.staleness.on_evicted(n)

    def status_counts(self) -> dict[str, int]:
        with self._lock:
            counts = {s.value: 0 for s in SampleStatus}
            for entry in self.samples.values():
                counts[entry.status] += 1
            return counts

    def ledger_states(self) -> dict[int, SampleStateRecord]:
        """Every sample's state as the ledger stores it (resume and rollback)."""
        with self._lock:
            return {sid: state_record(e, 1.0, self.step) for sid, e in self.samples.items()}

    def arrived_this_step(self) -> set[str]:
        """The attempt ids that arrived while the current step was running (a copy)."""
        with self._lock:
            return set(self.step_attempts)

    # -- checkpoints -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Everything but the immutable sample texts and cuts (rebuilt from the ledger)."""
        with self._lock:
            return self._state_dict()

    def _state_dict(self) -> dict[str, Any]:
        return {
            "samples": {sid: {"stats": e.stats.to_dict(), "status": e.status,
                              "status_since": e.status_since, "ratio": e.ratio,
                              "last_dispatch": e.last_dispatch, "revisit_at": e.revisit_at}
                        for sid, e in self.samples.items()},
            "staleness": self.staleness.to_dict(),
            "inflight": [asdict(d) for d in self.inflight.values()],
            "step_attempts": sorted(self.step_attempts),
            "step": self.step, "dispatched_total": self.dispatched_total,
            "rechecked_total": self.rechecked_total, "saved_at": time.time(),
            "selection": {"policy": self.policy.name, "state": self.policy.state_dict()},
        }

    def load_state_dict(self, state: dict[str, Any], buffered: int = 0) -> None:
        """`buffered`: a checkpoint written before trained groups were counted kept the size
        of the learner's buffer instead; those groups are released."""
        with self._lock:
            self._load_state_dict(state, buffered)

    def _load_state_dict(self, state: dict[str, Any], buffered: int = 0) -> None:
        for sid, s in state["samples"].items():
            entry = self.samples.get(int(sid))
            if entry is None:
                raise ValueError(f"checkpoint has sample {sid}, which this run does not")
            entry.stats = SampleStats.from_dict(s["stats"])
            entry.status, entry.status_since = SampleStatus(s["status"]), s["status_since"]
            entry.ratio, entry.last_dispatch = s["ratio"], s["last_dispatch"]
            entry.revisit_at = s.get("revisit_at")
            entry.inflight = 0
        self.staleness = StalenessManager.from_dict(state["staleness"])
        if "trained" in state["staleness"]:
            untrained = self.staleness.forget_untrained()
        else:  # a checkpoint from before `trained`: what its buffer held
            untrained = buffered
            self.staleness.on_evicted(buffered)
        if untrained:
            log.info("released %d accepted groups the checkpoint did not keep", untrained)
        # Work in flight at the checkpoint will come back to a new epoch, if at all, under ids
        # this process never dispatched: release it, as for a dead actor.
        if state["inflight"]:
            self.staleness.on_lost(len(state["inflight"]))
        self.inflight = {}
        # Checkpoints before `step_attempts` kept every id of the run (`seen_attempts`): a
        # superset, equally right for the rollback, and gone at the next step.
        self.step_attempts = set(state.get("step_attempts", state.get("seen_attempts", ())))
        self.step = state["step"]
        self.dispatched_total = state["dispatched_total"]
        self.rechecked_total = state["rechecked_total"]
        self._clock = int(max((e.last_dispatch for e in self.samples.values()), default=0)) + 1
        self._load_policy(state.get("selection"))

    def _load_policy(self, saved: dict[str, Any] | None) -> None:
        """The policy's state, when the checkpoint's policy is this run's (a run resumed with
        another `learner.selection` starts that policy afresh)."""
        if saved and saved.get("policy") == self.policy.name:
            self.policy.load_state_dict(saved["state"])
        elif saved:
            log.info("checkpoint selected with %r, this run with %r: the policy starts afresh",
                     saved.get("policy"), self.policy.name)


@dataclass(frozen=True)
class _Why:
    selection: str
    score: float | None


def _score(value: int | None) -> float | None:
    return None if value is None else float(value)


def make_policy(cfg: LearnerConfig, seed: int) -> Policy:
    """The policy `learner.selection` names, with its parameters."""
    if cfg.selection == "uniform":
        return Uniform(seed)
    if cfg.selection == "thompson":
        return Thompson(cfg.thompson, seed)
    if cfg.selection == "target_pass_rate":
        return TargetPassRate(cfg.target_pass_rate)
    if cfg.selection == "category_bandit":
        return CategoryBandit(cfg.category_bandit, seed)
    return LeastRecent()


def state_record(entry: SampleEntry, weight: float, step: int) -> SampleStateRecord:
    """A sample's state as the ledger stores it (`weight`: LP weight of its last group)."""
    st = entry.stats
    return SampleStateRecord(
        attempts=st.attempts, guided_attempts=st.guided_attempts, pass_rate=st.last_pass_rate,
        guided_pass_rate=st.last_guided_pass_rate, ema=st.ema, ema_prev=st.prev_ema,
        progress=st.progress, weight=weight, prefix_ratio=entry.ratio,
        prefix_len=len(entry.cuts.prefix(entry.ratio)) if entry.cuts and entry.ratio > 0 else 0,
        status=entry.status, status_since_step=entry.status_since, last_seen_step=step,
        solved_streak=st.consecutive_solved, failed_streak=st.consecutive_failed_at_max,
    )


def _emptied(group: RolloutGroup, dispatch: Dispatch, problem: str) -> RolloutGroup:
    """What the ledger keeps of an invalid group: the dispatch's sample, actor and version, no
    completions (nothing a peer sent is trusted), and the problem as its error."""
    empty = Array.of([], "int32")
    return msgspec.structs.replace(
        group, sample_id=dispatch.sample_id, actor_id=dispatch.actor_id,
        policy_version=dispatch.version, prompt_ids=empty, prefix_ids=empty, prefix_len=0,
        prefix_ratio=dispatch.ratio, completions=[], error=problem[:500])
