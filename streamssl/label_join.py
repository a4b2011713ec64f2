"""Joining labels that arrive late to the events they belong to, in bounded memory."""

from __future__ import annotations

import json
from collections import Counter, OrderedDict
from dataclasses import dataclass
from operator import itemgetter
from typing import Collection, Hashable

import numpy as np


@dataclass
class Joined:
    """A label matched to its event: the event's features, what was predicted for it, and the
    pseudo-label the learner took for it meanwhile (``None`` if none)."""

    id: str
    x: np.ndarray
    label: Hashable
    predicted: Hashable | None
    pseudo: Hashable | None = None
    handed: bool = False  # the event was handed over by a partition's previous owner: its prediction is not ours
    key: Hashable | None = None  # the event's entity, where events are keyed


class LabelJoin:
    """Events waiting for their label, and labels waiting for their event.

    Events are kept for ``ttl_s`` seconds, at most ``max_events`` of them (the oldest go
    first); a label for one of them is a *hit*. A label whose event is not here waits (at most
    ``max_pending`` of them) in case the event comes after it, which happens whenever the two
    topics are read at different paces (a restart, a catch-up); if its event never comes, it
    is a *miss*. A waiting label is given up once the *event clock* (how far the events read
    so far reach, passed in by the caller; the wall clock when none is given) is
    ``pending_ttl_s`` past the label's own time: its event, older than the label, should
    have been read by then. Reading the events of a backlog therefore never expires labels
    that ran ahead of them, however long the catch-up takes. Misses say why: ``unknown`` (never seen), ``expired`` (evicted by age or size),
    ``duplicate`` (the event already had its label). All times are Unix seconds passed in by
    the caller, so the state survives a restart. A waiting event that the learner used as a
    pseudo-label is marked (:meth:`mark_pseudo`), so that its true label, when it comes, scores
    the pseudo-label.

    Entries may carry an *origin*, ``(source, offset, handed)``: the partition and offset they
    were read from, and whether they were *handed over* (read again by a partition's new owner
    from where its previous owner's waiting entries began, see :mod:`streamssl.sources.handover`).
    :meth:`waiting` gives, per source, the offsets of the entries still waiting. ``handed`` is
    True where the previous owner's window listed the entry (it was waiting there) and ``"all"``
    where the window listed nothing (too long: every record in it handed over, waiting or not).
    Two listed entries join (each was waiting, so they never met: e.g. a label waiting at an
    owner that died before re-reading the event from its own predecessor's window); a pair of
    which one came from an unlisted window may have been joined by the previous owner, so it is
    settled there (``handover["settled"]``);
    a handed-over label left without its event is ``handover["unmatched"]``, not a miss (the
    previous owner counted it, or its event was older than the window handed over).

    Examples
    --------
    >>> join = LabelJoin(ttl_s=60, max_events=2)
    >>> join.add_events(["a", "b", "c"], np.eye(3, dtype=np.float32), [0, 1, 1], now=0.0)
    []
    >>> [j.id for j in join.add_labels([("b", 1), ("a", 0), ("b", 1)], now=1.0)]
    ['b']
    >>> dict(join.misses), dict(join.evictions)
    ({'expired': 1, 'duplicate': 1}, {'capacity': 1})
    >>> join.add_events(["d"], np.eye(3, dtype=np.float32)[:1], [0], now=2.0)
    []
    >>> join.mark_pseudo(["d"], [0])
    >>> [(j.id, j.label, j.pseudo) for j in join.add_labels([("d", 1)], now=3.0)]
    [('d', 1, 0)]
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
        self.pseudo: dict[str, Hashable] = {}  # waiting events taken as pseudo-labels, and the label taken
        # Per source, the offset of each entry waiting from it (events and labels alike, by id):
        # kept as entries come and go, so that :meth:`waiting` costs no walk over the buffer.
        self._offsets: dict[str, dict[str, int]] = {}
        self.hits = 0
        self.redelivered = 0
        self.misses: Counter[str] = Counter()
        self.evictions: Counter[str] = Counter()
        self.handover: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.events)

    def _index(self, entry_id: str, origin: tuple | None) -> None:
        if origin is not None:
            self._offsets.setdefault(origin[0], {})[entry_id] = origin[1]

    def _unindex(self, entry_id: str, origin: tuple | None) -> None:
        if origin is not None:
            self._offsets[origin[0]].pop(entry_id, None)

    def _forget(self, event_id: str, why: str) -> None:
        self.pseudo.pop(event_id, None)
        self.gone[event_id] = why
        self.gone.move_to_end(event_id)
        while len(self.gone) > self.max_events:
            self.gone.popitem(last=False)

    def expire(self, now: float, clock: float | None = None) -> None:
        """Drop events older than ``ttl_s`` and waiting labels that the event ``clock``
        (``now`` if ``None``) has passed by more than ``pending_ttl_s``."""
        clock = now if clock is None else clock
        while self.events:
            event_id, (t, *_) = next(iter(self.events.items()))
            if now - t <= self.ttl_s:
                break
            self._unindex(event_id, self.events.pop(event_id)[3])
            self.evictions["ttl"] += 1
            self._forget(event_id, "expired")
        while self.pending:
            event_id, (t, *_) = next(iter(self.pending.items()))
            if clock - t <= self.pending_ttl_s:
                break
            self._lose(*self.pending.popitem(last=False))

    def _lose(self, event_id: str, entry: tuple) -> None:
        """A waiting label given up: a miss, or an unmatched handed-over label."""
        self._unindex(event_id, entry[2])
        if _handed(entry[2]):
            self.handover["unmatched"] += 1
        else:
            self.misses[self.gone.get(event_id, "unknown")] += 1

    def add_events(self, ids: list[str], X: np.ndarray, predicted: list[Hashable | None], now: float,
                   clock: float | None = None, origins: list[tuple[str, int, bool]] | None = None,
                   expire: bool = True, keys: list[Hashable] | None = None) -> list[Joined]:
        """Keep these events for their labels; returns those whose label was already waiting
        (``clock``: the event clock; ``origins``: where each came from; see the class docstring;
        ``keys``: each event's entity, given back with its label).
        ``expire=False`` while more events read before ``clock`` are still to be added (a
        waiting label may belong to one of them)."""
        joined = []
        for i, event_id in enumerate(ids):
            origin = None if origins is None else tuple(origins[i])
            key = None if keys is None else keys[i]
            early = self.pending.pop(event_id, None)
            if early is not None:
                self._unindex(event_id, early[2])
                self._forget(event_id, "duplicate")
                if _settled(origin, early[2]):
                    self.handover["settled"] += 1
                    continue
                self.hits += 1
                joined.append(Joined(event_id, X[i], early[1], predicted[i], handed=_handed(origin), key=key))
                continue
            if event_id in self.events:  # a redelivered event: the latest copy waits
                self._unindex(event_id, self.events.pop(event_id)[3])
                self.pseudo.pop(event_id, None)
                self.redelivered += 1
            self.gone.pop(event_id, None)
            self.events[event_id] = (now, X[i].copy(), predicted[i], origin, key)
            self._index(event_id, origin)
        while len(self.events) > self.max_events:
            event_id, entry = self.events.popitem(last=False)
            self._unindex(event_id, entry[3])
            self.evictions["capacity"] += 1
            self._forget(event_id, "expired")
        if expire:
            self.expire(now, clock)
        return joined

    def add_labels(self, labels: list[tuple[str, Hashable]], now: float, times: list[float] | None = None,
                   clock: float | None = None, origins: list[tuple[str, int, bool]] | None = None,
                   expire: bool = True) -> list[Joined]:
        """Match labels to waiting events; unmatched ones wait for their event (or are misses).

        ``times`` are the labels' own times (when they were written; ``now`` if ``None``),
        against which the event ``clock`` expires them; ``origins``: where each came from
        (see the class docstring); ``expire``: as for :meth:`add_events`."""
        if expire:
            self.expire(now, clock)
        joined = []
        for i, (event_id, label) in enumerate(labels):
            origin = None if origins is None else tuple(origins[i])
            entry = self.events.pop(event_id, None)
            if entry is not None:
                self._unindex(event_id, entry[3])
                pseudo = self.pseudo.get(event_id)
                self._forget(event_id, "duplicate")
                if _settled(origin, entry[3]):
                    self.handover["settled"] += 1
                    continue
                self.hits += 1
                joined.append(Joined(event_id, entry[1], label, entry[2], pseudo, handed=_handed(entry[3]),
                                     key=entry[4]))
            elif event_id in self.gone or self.max_pending == 0:
                if _handed(origin):
                    self.handover["settled" if event_id in self.gone else "unmatched"] += 1
                else:
                    self.misses[self.gone.get(event_id, "unknown")] += 1
            else:
                if event_id in self.pending:  # a label redelivered while it waits: the latest copy waits
                    self._unindex(event_id, self.pending.pop(event_id)[2])
                self.pending[event_id] = (now if times is None else times[i], label, origin)
                self._index(event_id, origin)
                while len(self.pending) > self.max_pending:
                    self._lose(*self.pending.popitem(last=False))
        return joined

    def waiting(self) -> dict[str, list[int]]:
        """Per source, the offsets of the entries still waiting (events and labels alike).

        >>> join = LabelJoin()
        >>> _ = join.add_events(["a", "b"], np.eye(2, dtype=np.float32), [0, 1], now=0.0,
        ...                     origins=[("events:0", 7, False), ("events:0", 8, False)])
        >>> _ = join.add_labels([("a", 0), ("z", 1)], now=1.0, origins=[("labels:0", 3, False), ("labels:0", 4, False)])
        >>> join.waiting()
        {'events:0': [8], 'labels:0': [4]}
        """
        return {source: list(offsets.values()) for source, offsets in self._offsets.items() if offsets}

    def drop_sources(self, sources: set[str]) -> int:
        """Forget, without counting them as misses, the entries read from ``sources``
        (partitions now owned by another reader, which is handed them over); returns how many."""
        dropped = 0
        for source in sources:
            for k in self._offsets.pop(source, {}):
                if self.events.pop(k, None) is None:
                    del self.pending[k]
                self.pseudo.pop(k, None)
                dropped += 1
        return dropped

    def mark_pseudo(self, ids: list[str], labels: list[Hashable]) -> None:
        """Remember that these waiting events were learned with these pseudo-labels."""
        for event_id, label in zip(ids, labels):
            if event_id in self.events:
                self.pseudo[event_id] = label

    def state_dict(self) -> dict:
        """Plain data: the waiting feature rows, times and origins as arrays; ids, labels and the
        other bookkeeping as JSON text (one string each is far quicker to save than long lists)."""
        return self.snapshot(frozen=False).state_dict()

    def snapshot(self, frozen: bool = True) -> "JoinSnapshot":
        """A frozen view taken in O(n) reference copies; its :meth:`JoinSnapshot.state_dict`
        does the heavy work and may run in another thread while this join goes on.
        ``frozen=False``: live views of the tables instead, for a caller that changes nothing
        meanwhile (a forked writer, whose memory is the copy)."""
        take = list if frozen else (lambda items: items)
        return JoinSnapshot(take(self.events.items()), take(self.pending.items()), take(self.gone.items()),
                            self.hits, self.redelivered, dict(self.misses), dict(self.evictions),
                            take(self.pseudo.items()), dict(self.handover))

    def load_state_dict(self, state: dict) -> None:
        self._reset()
        X = np.asarray(state["X"], dtype=np.float32)
        ids, times, predicted, *rest = json.loads(state["events"])
        if times is None:  # the times as an array (JSON before)
            times = np.asarray(state["event_times"], dtype=np.float64).tolist()
        if "event_origins" in state:
            origins = _origins_of(state["event_sources"], np.asarray(state["event_origins"]))
        else:  # JSON before, absent before 0.3
            origins = [_origin(o) for o in rest[0]] if rest else [None] * len(ids)
        keys = rest[1] if len(rest) > 1 else [None] * len(ids)  # absent before events had keys here
        self.events.update((k, (t, X[i], p, o, key))
                           for i, (k, t, p, o, key) in enumerate(zip(ids, times, predicted, origins, keys)))
        self.pending.update((k, (t, y, _origin(o[0]) if o else None)) for k, t, y, *o in json.loads(state["pending"]))
        for entries, at in ((self.events, 3), (self.pending, 2)):
            for k, entry in entries.items():
                self._index(k, entry[at])
        self.gone.update(zip(*json.loads(state["gone"])))
        self.hits = state["hits"]
        self.redelivered = state["redelivered"]
        self.misses.update(state["misses"])
        self.evictions.update(state["evictions"])
        self.pseudo.update((k, y) for k, y in json.loads(state.get("pseudo", "[]")))  # absent before 0.2
        self.handover.update(state.get("handover", {}))


@dataclass(frozen=True)
class JoinSnapshot:
    """What :meth:`LabelJoin.snapshot` captured (feature rows are never modified in place): the
    ``(key, entry)`` pairs of each table, as lists, or as live views where nothing changes the
    join meanwhile (:meth:`LabelJoin.state_dict`)."""

    events: Collection
    pending: Collection
    gone: Collection
    hits: int
    redelivered: int
    misses: dict
    evictions: dict
    pseudo: Collection
    handover: dict

    def state_dict(self) -> dict:
        # The waiting events column by column (:func:`_columns`); the times, rows and origins as
        # arrays, the rest as JSON text built in chunks, so that a writer thread lets go of the
        # GIL between them and the thread serving events is never held up for long. (This runs
        # in the forked writer, where its cost grows with the buffer: 45,000 waiting events,
        # 105 ms with a list comprehension per field and origins in JSON, 56 ms so.)
        ids, entries = _columns(self.events, 2)
        times, rows, predicted, origins, keys = _columns(entries, 5)
        X = (np.concatenate([np.array(rows[i:i + _CHUNK]) for i in range(0, len(rows), _CHUNK)])
             if rows else np.zeros((0, 0), dtype=np.float32))
        sources, at = _origin_columns(origins)
        events = "[" + ",".join([_json_list(ids), "null", _json_list(predicted), "null", _json_list(keys)]) + "]"
        gone_ids, why = _columns(self.gone, 2)
        gone = "[" + _json_list(gone_ids) + "," + _json_list(why) + "]"
        return {
            "events": events, "X": X, "event_times": np.array(times, dtype=np.float64),
            "event_sources": sources, "event_origins": at,
            "pending": _json_list([[k, t, y, o] for k, (t, y, o) in self.pending]),
            "gone": gone,
            "hits": self.hits, "redelivered": self.redelivered,
            "misses": self.misses, "evictions": self.evictions,
            "pseudo": _json_list([[k, y] for k, y in self.pseudo]),
            "handover": self.handover,
        }


_CHUNK = 8192

#: How an origin's ``handed`` is stored in :func:`_origin_columns`' array, and back.
_HANDED = {False: 0, True: 1, "all": 2}
_HANDED_BACK = (False, True, "all")
_NO_ORIGIN = (None, -1, False)


def _columns(items: Collection, width: int) -> list[list]:
    """The columns of ``items`` (tuples of ``width``), each a list; built in C, allocating
    nothing per item (``zip(*items)`` would allocate an iterator per item, and the collections
    that triggers walk the whole heap).

    >>> _columns([("a", 1), ("b", 2)], 2), _columns([], 2)
    ([['a', 'b'], [1, 2]], [[], []])
    """
    return [list(map(itemgetter(i), items)) for i in range(width)]


def _origin_columns(origins: tuple) -> tuple[list, np.ndarray]:
    """Origins as the sources' names and one ``int64`` row per origin: (source's index in the
    names, offset, handed as 0/1/2); a missing origin has a source named ``None``.

    >>> _origin_columns((("ev:0", 7, False), None, ("ev:1", 3, "all")))
    (['ev:0', None, 'ev:1'], array([[ 0,  7,  0],
           [ 1, -1,  0],
           [ 2,  3,  2]]))
    """
    if not origins:
        return [], np.zeros((0, 3), dtype=np.int64)
    sources, offsets, handed = _columns(origins if None not in origins else [o or _NO_ORIGIN for o in origins], 3)
    names = list(dict.fromkeys(sources))
    index = {name: i for i, name in enumerate(names)}
    at = np.empty((len(origins), 3), dtype=np.int64)
    at[:, 0] = np.fromiter(map(index.__getitem__, sources), dtype=np.int64, count=len(origins))
    at[:, 1] = offsets
    at[:, 2] = np.fromiter(map(_HANDED.__getitem__, handed), dtype=np.int64, count=len(origins))
    return names, at


def _origins_of(names: list, at: np.ndarray) -> list[tuple | None]:
    """:func:`_origin_columns` undone.

    >>> _origins_of(*_origin_columns((("ev:0", 7, True), None)))
    [('ev:0', 7, True), None]
    """
    return [None if names[s] is None else (names[s], o, _HANDED_BACK[h]) for s, o, h in at.tolist()]


def _handed(origin: tuple | None) -> bool:
    return origin is not None and bool(origin[2])


def _settled(a: tuple | None, b: tuple | None) -> bool:
    """Whether a pair both handed over may have been joined by the previous owner already: not
    when both windows listed them (each was waiting there, so they never met), only when one
    came from a window that listed nothing (``"all"``: every record of it handed over)."""
    return _handed(a) and _handed(b) and "all" in (a[2], b[2])


def _origin(value: list | None) -> tuple[str, int, bool | str] | None:
    return None if value is None else (str(value[0]), int(value[1]), value[2] if value[2] == "all" else bool(value[2]))


def _json_list(items: list) -> str:
    """``json.dumps(items)``, encoded a chunk at a time.

    >>> _json_list(list(range(3))) == json.dumps(list(range(3)))
    True
    """
    parts = [json.dumps(items[i:i + _CHUNK])[1:-1] for i in range(0, len(items), _CHUNK)]
    return "[" + ",".join(parts) + "]"
