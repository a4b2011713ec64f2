"""Keeping the labels topic and the events topic in step, so that a catch-up loses no label.

The daemon reads two topics at whatever pace the broker hands them over. When both are live,
labels come after their events and the label join does the rest. In a catch-up (a restart
after downtime, a new consumer group, a daemon slower than its producers) one topic can run
far ahead of the other:

- labels ahead of their events wait in the join's pending buffer; they must neither expire
  (their events are coming) nor overflow it;
- events ahead of their labels wait in the join's event buffer, which is bounded too.

:class:`Pacer` tracks how far each partition has been read, in record time, and decides which
partitions to hold (stop fetching) for now:

- the *event clock* is the time up to which the events are read: the earliest, over the
  event partitions, of how far each is known to be read, which is the later of the last
  record read from it (its record time) and the last time the broker said it ends where it is
  read to (:meth:`Pacer.caught_up`). Waiting labels expire against it
  (:class:`~streamssl.label_join.LabelJoin`), not against the wall clock, so a label that ran
  ahead of a backlog waits for it however long it takes. A fetch's high watermark does not
  move the clock: a partition not fetched for a while (a rebalance, a starved machine) keeps an
  old one and looks read to its end while its records, and the events of waiting labels, wait;
- the labels partitions are held while the pending buffer is over half full, and let go once
  it has drained to a quarter;
- the events partitions are held while the labels have a backlog and the events are read more
  than ``max_lead_s`` of record time beyond them, and let go at half that lead. Never both:
  holding labels wins, and events always move then, which is what drains the pending buffer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from kafka import TopicPartition


@dataclass
class Pacer:
    """Decides which partitions to hold; see the module docstring.

    Examples
    --------
    >>> ev, lb = TopicPartition("events", 0), TopicPartition("labels", 0)
    >>> pacer = Pacer("events", "labels", max_pending=100, max_lead_s=30)
    >>> pacer.saw(ev, 1_000.0); pacer.saw(lb, 1_100.0)
    >>> pacer.event_clock({ev: 5_000, lb: 0}, now=2_000.0)  # read up to the record of 1000
    1000.0
    >>> pacer.caught_up(ev, 1_990.0); pacer.event_clock({ev: 0, lb: 0}, now=2_000.0)  # the broker said: read to its end
    1990.0
    >>> pacer.forget({ev}); pacer.saw(ev, 1_000.0)
    >>> pacer.decide({ev: 5_000, lb: 0}, pending=80, now=2_000.0) == {lb}  # pending over half full
    True
    >>> pacer.decide({ev: 5_000, lb: 0}, pending=10, now=2_000.0)  # drained
    set()
    >>> pacer.saw(ev, 1_200.0)
    >>> pacer.decide({ev: 5_000, lb: 900}, pending=0, now=2_000.0) == {ev}  # 100 s ahead of labels
    True
    """

    events_topic: str
    labels_topic: str | None
    max_pending: int
    max_lead_s: float | None = None
    times: dict[TopicPartition, float] = field(default_factory=dict)
    confirmed: dict[TopicPartition, float] = field(default_factory=dict)
    hold_labels: bool = False
    hold_events: bool = False

    def saw(self, tp: TopicPartition, t: float) -> None:
        """A record of ``tp`` written at ``t`` (Unix seconds) was read."""
        if t > self.times.get(tp, -math.inf):
            self.times[tp] = t

    def caught_up(self, tp: TopicPartition, t: float) -> None:
        """``tp`` was read to its end as the broker said at ``t`` (Unix seconds): everything
        written to it before ``t`` is read."""
        if t > self.confirmed.get(tp, -math.inf):
            self.confirmed[tp] = t

    def forget(self, tps: set[TopicPartition]) -> None:
        """These partitions left this consumer."""
        for tp in tps:
            self.times.pop(tp, None)
            self.confirmed.pop(tp, None)

    def _clock(self, topic: str, lag: dict[TopicPartition, int | None]) -> float | None:
        """Record time read up to on ``topic``'s partitions that have a backlog, or whose
        backlog is not known yet (``None``: none has). A partition with a backlog and nothing
        read yet holds it at ``-inf``."""
        behind = [self.times.get(tp, -math.inf) for tp, n in lag.items() if tp.topic == topic and (n is None or n > 0)]
        return min(behind) if behind else None

    def event_clock(self, lag: dict[TopicPartition, int | None], now: float) -> float:
        """How far the events are read (see the module docstring), at most ``now``; ``now``
        without an events partition. ``lag``: the assigned partitions (their backlogs)."""
        reached = [max(self.times.get(tp, -math.inf), self.confirmed.get(tp, -math.inf))
                   for tp in lag if tp.topic == self.events_topic]
        return min([*reached, now])

    def decide(self, lag: dict[TopicPartition, int | None], pending: int, now: float) -> set[TopicPartition]:
        """The partitions (of those in ``lag``) to hold, given the labels waiting for events."""
        if self.labels_topic is None:
            return set()
        if self.max_pending > 0:
            if pending >= self.max_pending / 2:
                self.hold_labels = True
            elif pending <= self.max_pending / 4:
                self.hold_labels = False
        label_clock = self._clock(self.labels_topic, lag)
        if self.hold_labels or self.max_lead_s is None or label_clock is None:
            self.hold_events = False
        else:
            lead = self.event_clock(lag, now) - label_clock
            if lead > self.max_lead_s:
                self.hold_events = True
            elif lead <= self.max_lead_s / 2:
                self.hold_events = False
        held = self.labels_topic if self.hold_labels else self.events_topic if self.hold_events else None
        return {tp for tp in lag if tp.topic == held}
