"""Where a consumer stands in each partition it reads, and what each record of a batch is to it.

A consumer's position in a partition is the offset after the last record it processed: what its
checkpoint holds and what it commits. A partition taken over from another consumer of the group
may start with a *handover window* (:mod:`streamssl.sources.handover`): records its previous
owner processed, read again only so that those still waiting for their labels are waiting
here too. :meth:`Partitions.route` splits a batch by that: records new to the group, records
handed over, and records of a window its previous owner had settled (skipped).

Examples
--------
>>> from collections import namedtuple
>>> from kafka import TopicPartition
>>> from streamssl.sources.handover import Window
>>> Rec = namedtuple("Rec", "topic partition offset")
>>> tp = TopicPartition("ev", 0)
>>> parts = Partitions()
>>> parts.read_window(tp, Window(start=5, end=8, only=(6,)))
>>> routed = parts.route([Rec("ev", 0, o) for o in range(5, 10)])
>>> [r.offset for r in routed.new], [r.offset for r in routed.handed], routed.skipped
([8, 9], [6], 2)
>>> parts.positions, parts.windows  # the window is read through: forgotten
({TopicPartition(topic='ev', partition=0): 10}, {})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

from kafka import TopicPartition

from .handover import Window

Offsets = dict[TopicPartition, int]


@dataclass
class Routed:
    """One batch of records, split by :meth:`Partitions.route` (each list in arrival order)."""

    new: list = field(default_factory=list)  # to process: events to predict, labels to join
    handed: list = field(default_factory=list)  # to rebuild the previous owner's waiting entries from
    listed: list = field(default_factory=list)  # per handed record: its window listed it (it was waiting)
    skipped: int = 0  # processed and settled by the previous owner


class Partitions:
    """The positions (offset after the last record processed) and the handover windows being
    read, by partition, of one consumer; both are restored from its checkpoint."""

    def __init__(self, positions: Offsets | None = None, windows: dict[TopicPartition, Window] | None = None) -> None:
        self.positions: Offsets = dict(positions or {})
        self.windows: dict[TopicPartition, Window] = dict(windows or {})

    def route(self, records: Iterable) -> Routed:
        """Advance the positions past ``records`` and split them (see the module docstring);
        windows read through are forgotten."""
        out = Routed()
        for rec in records:
            tp = TopicPartition(rec.topic, rec.partition)
            self.passed(tp, rec.offset + 1)
            window = self.windows.get(tp)
            if window is None or rec.offset >= window.end:
                out.new.append(rec)
            elif window.holds(rec.offset):
                out.handed.append(rec)
                out.listed.append(window.only is not None)
            else:
                out.skipped += 1
        for tp in [tp for tp, w in self.windows.items() if self.positions.get(tp, -1) >= w.end]:
            del self.windows[tp]
        return out

    def passed(self, tp: TopicPartition, offset: int) -> None:
        """Everything in ``tp`` before ``offset`` is processed (or skipped as unreadable)."""
        self.positions[tp] = max(self.positions.get(tp, 0), offset)

    def read_window(self, tp: TopicPartition, window: Window) -> None:
        """Read ``tp`` through ``window`` (its previous owner's), from ``window.start``."""
        self.windows[tp] = window

    def drop_window(self, tp: TopicPartition) -> None:
        """Stop reading ``tp`` through a window (the partition is new, or gone)."""
        self.windows.pop(tp, None)

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """Forget the positions of ``tps`` (gone to another consumer: it starts from the commit)."""
        for tp in tps:
            self.positions.pop(tp, None)

    def commit_offsets(self) -> Offsets:
        """The offsets to commit: the positions, or the end of a window still being read (its
        records were processed by the previous owner)."""
        return {tp: max(off, self.windows[tp].end) if tp in self.windows else off
                for tp, off in self.positions.items()}

    def handover_windows(self, waiting: Mapping[TopicPartition, list[int]], offsets: Offsets,
                         held: set[TopicPartition]) -> dict[TopicPartition, Window]:
        """Per partition ``held``, the window for whoever reads it next: the offsets of its
        records still ``waiting`` for labels, up to ``offsets`` (those committed), and what is
        left of a window being read."""
        return {tp: Window.of(waiting.get(tp, []), self.positions[tp], end, self.windows.get(tp))
                for tp, end in offsets.items() if tp in held}

    def state_dict(self) -> dict:
        """Plain data for a checkpoint: ``offsets`` and ``replay`` (the windows being read)."""
        return {
            "offsets": [[tp.topic, tp.partition, off] for tp, off in sorted(self.positions.items())],
            "replay": [[tp.topic, tp.partition, w.start, w.end, None if w.only is None else list(w.only)]
                       for tp, w in sorted(self.windows.items())],
        }

    @classmethod
    def from_state_dict(cls, state: Mapping) -> "Partitions":
        """The partitions of a checkpoint (one written before windows existed has none)."""
        return cls({TopicPartition(t, p): o for t, p, o in state["offsets"]},
                   {TopicPartition(t, p): Window(start, end, None if only is None else tuple(only))
                    for t, p, start, end, only in state.get("replay", [])})
