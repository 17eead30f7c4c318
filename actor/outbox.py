"""The actor's outbox: finished groups kept until the learner acknowledges them.

A group is sent as soon as it is verified and stays here until an `Ack` names its attempt id.
It is sent again when it has waited `resend_after` seconds without an ack (the learner was
down, or the frame died with a broken connection), and all at once when the learner announces
a new epoch (it restarted). The learner records each attempt id once, so a resend never counts
twice. The outbox is bounded: past `capacity` the oldest group is dropped and counted, so an
actor cut off from its learner for a long time does not grow without limit.

Pure bookkeeping (no sockets, no clock of its own): the loop passes `now` in, tests drive it.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    item: T
    sent_at: float | None = None
    sends: int = 0


class Outbox(Generic[T]):
    """Unacknowledged items by attempt id, oldest first."""

    def __init__(self, capacity: int, resend_after: float):
        if capacity < 1:
            raise ValueError("Outbox capacity must be >= 1")
        self.capacity = capacity
        self.resend_after = resend_after
        self._entries: OrderedDict[str, _Entry[T]] = OrderedDict()
        self.dropped = 0
        self.acked = 0
        self.sent = 0
        self.resent = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def add(self, key: str, item: T) -> list[str]:
        """Keep `item` until acked; returns the keys dropped to stay within capacity."""
        self._entries[key] = _Entry(item)
        self._entries.move_to_end(key)
        dropped = []
        while len(self._entries) > self.capacity:
            old, _ = self._entries.popitem(last=False)
            dropped.append(old)
        self.dropped += len(dropped)
        return dropped

    def ack(self, keys: list[str]) -> int:
        """Forget acknowledged items; returns how many were known."""
        known = 0
        for key in keys:
            if self._entries.pop(key, None) is not None:
                known += 1
        self.acked += known
        return known

    def due(self, now: float) -> list[tuple[str, T]]:
        """Items never sent, or sent more than `resend_after` seconds ago without an ack."""
        out = []
        for key, entry in self._entries.items():
            if entry.sent_at is None or now - entry.sent_at >= self.resend_after:
                out.append((key, entry.item))
        return out

    def mark_sent(self, key: str, now: float) -> None:
        entry = self._entries.get(key)
        if entry is None:
            return
        if entry.sends:
            self.resent += 1
        else:
            self.sent += 1
        entry.sends += 1
        entry.sent_at = now

    def mark_all_unsent(self) -> None:
        """The learner restarted: everything not acked goes out again at once."""
        for entry in self._entries.values():
            entry.sent_at = None


def backoff_delay(attempt: int, base: float = 0.5, cap: float = 10.0) -> float:
    """Seconds to wait before reconnect attempt `attempt` (0-based): doubling, capped."""
    return min(cap, base * (2 ** max(0, attempt)))
