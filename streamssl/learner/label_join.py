"""Joining labels that arrive late to the events they belong to, in bounded memory."""

from __future__ import annotations

from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Hashable

import numpy as np


@dataclass
class Joined:
    """A label matched to its event: the event's features and what was predicted for it."""

    id: str
    x: np.ndarray
    label: Hashable
    predicted: Hashable | None


class LabelJoin:
    """Events waiting for their label, and labels waiting for their event.

    Events are kept for ``ttl_s`` seconds, at most ``max_events`` of them (the oldest go
    first); a label for one of them is a *hit*. A label whose event is not here is held for
    ``pending_ttl_s`` (at most ``max_pending``) in case the event comes after it, which happens
    when a restart replays the two topics at different paces; if its event never comes, it is
    a *miss*. Misses say why: ``unknown`` (never seen), ``expired`` (evicted by age or size),
    ``duplicate`` (the event already had its label). All times are Unix seconds passed in by
    the caller, so the state survives a restart.

    Examples
    --------
    >>> join = LabelJoin(ttl_s=60, max_events=2)
    >>> join.add_events(["a", "b", "c"], np.eye(3, dtype=np.float32), [0, 1, 1], now=0.0)
    []
    >>> [j.id for j in join.add_labels([("b", 1), ("a", 0), ("b", 1)], now=1.0)]
    ['b']
    >>> dict(join.misses), dict(join.evictions)
    ({'expired': 1, 'duplicate': 1}, {'capacity': 1})
    """

    def __init__(self, ttl_s: float = 3600.0, max_events: int = 200_000,
                 pending_ttl_s: float = 60.0, max_pending: int = 50_000) -> None:
        self.ttl_s = ttl_s
        self.max_events = max_events
        self.pending_ttl_s = pending_ttl_s
        self.max_pending = max_pending
        self._reset()

    def _reset(self) -> None:
        self.events: OrderedDict[str, tuple[float, np.ndarray, Hashable | None]] = OrderedDict()
        self.pending: OrderedDict[str, tuple[float, Hashable]] = OrderedDict()
        # Ids that left the buffer, and why: bounded like the buffer itself.
        self.gone: OrderedDict[str, str] = OrderedDict()
        self.hits = 0
        self.redelivered = 0
        self.misses: Counter[str] = Counter()
        self.evictions: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.events)

    def _forget(self, event_id: str, why: str) -> None:
        self.gone[event_id] = why
        self.gone.move_to_end(event_id)
        while len(self.gone) > self.max_events:
            self.gone.popitem(last=False)

    def expire(self, now: float) -> None:
        """Drop events older than ``ttl_s`` and pending labels older than ``pending_ttl_s``."""
        while self.events:
            event_id, (t, _, _) = next(iter(self.events.items()))
            if now - t <= self.ttl_s:
                break
            self.events.popitem(last=False)
            self.evictions["ttl"] += 1
            self._forget(event_id, "expired")
        while self.pending:
            event_id, (t, _) = next(iter(self.pending.items()))
            if now - t <= self.pending_ttl_s:
                break
            self.pending.popitem(last=False)
            self.misses[self.gone.get(event_id, "unknown")] += 1

    def add_events(self, ids: list[str], X: np.ndarray, predicted: list[Hashable | None], now: float) -> list[Joined]:
        """Keep these events for their labels; returns those whose label was already waiting."""
        joined = []
        for i, event_id in enumerate(ids):
            early = self.pending.pop(event_id, None)
            if early is not None:
                self.hits += 1
                joined.append(Joined(event_id, X[i], early[1], predicted[i]))
                self._forget(event_id, "duplicate")
                continue
            if event_id in self.events:  # a redelivered event: the latest copy waits
                del self.events[event_id]
                self.redelivered += 1
            self.gone.pop(event_id, None)
            self.events[event_id] = (now, X[i].copy(), predicted[i])
        while len(self.events) > self.max_events:
            event_id, _ = self.events.popitem(last=False)
            self.evictions["capacity"] += 1
            self._forget(event_id, "expired")
        self.expire(now)
        return joined

    def add_labels(self, labels: list[tuple[str, Hashable]], now: float) -> list[Joined]:
        """Match labels to waiting events; unmatched ones wait for their event (or are misses)."""
        self.expire(now)
        joined = []
        for event_id, label in labels:
            entry = self.events.pop(event_id, None)
            if entry is not None:
                self.hits += 1
                joined.append(Joined(event_id, entry[1], label, entry[2]))
                self._forget(event_id, "duplicate")
            elif event_id in self.gone or self.max_pending == 0:
                self.misses[self.gone.get(event_id, "unknown")] += 1
            else:
                self.pending[event_id] = (now, label)
                self.pending.move_to_end(event_id)
                while len(self.pending) > self.max_pending:
                    lost, _ = self.pending.popitem(last=False)
                    self.misses[self.gone.get(lost, "unknown")] += 1
        return joined

    def state_dict(self) -> dict:
        """Plain data: ids, times and labels as lists, the waiting feature rows as one array."""
        rows = [x for _, x, _ in self.events.values()]
        return {
            "ids": list(self.events), "times": [t for t, _, _ in self.events.values()],
            "X": np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32),
            "predicted": [p for _, _, p in self.events.values()],
            "pending": [[k, t, y] for k, (t, y) in self.pending.items()],
            "gone": list(self.gone.items()),
            "hits": self.hits, "redelivered": self.redelivered,
            "misses": dict(self.misses), "evictions": dict(self.evictions),
        }

    def load_state_dict(self, state: dict) -> None:
        self._reset()
        X = np.asarray(state["X"], dtype=np.float32)
        self.events.update((k, (t, X[i], p)) for i, (k, t, p) in
                           enumerate(zip(state["ids"], state["times"], state["predicted"])))
        self.pending.update((k, (t, y)) for k, t, y in state["pending"])
        self.gone.update((k, v) for k, v in state["gone"])
        self.hits = state["hits"]
        self.redelivered = state["redelivered"]
        self.misses.update(state["misses"])
        self.evictions.update(state["evictions"])
