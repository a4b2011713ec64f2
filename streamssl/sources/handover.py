"""Handing a partition's label-join state over to its next owner, through Kafka itself.

A daemon keeps the events it read until their labels come, and the labels that came before
their events (:class:`~streamssl.label_join.LabelJoin`). When a partition moves to
another daemon of the group (a rebalance, a crash), that state must move with it, or every
label still to come for an event the old owner read is lost. The state is not copied: the
records it came from are still in Kafka. At each checkpoint, once its file is down and before
committing, a daemon writes one small record per partition it holds to the *handover topic*
(so no window is ever ahead of the last file written): the window ``[start, end)``
where ``end`` is the offset it commits (everything before was processed, its predictions
sent) and ``start`` the offset of the oldest entry of that partition still waiting, with the
offsets of all those waiting (unless there are too many to list). The next owner of the
partition reads the latest such record, starts reading the partition at ``start``, and treats
the listed records before ``end`` as *handed over*: they only rebuild the waiting state (no
prediction, no learning but from the labels that then join); the others are skipped. The record is
used unless ``end`` is below the group's committed offset (a record older than the commit is
stale); where the group has no commit, or one behind ``end`` (the owner's commit failed), the
window is what was processed (:func:`taking_over`).

A window decides which records the next owner predicts, so only the daemons may write the
topic (Kafka ACLs); with ``checkpoint.hmac_key`` set, each record also carries an HMAC-SHA256
of its key and value in the ``streamssl-hmac`` header, and records without a valid one are
ignored.

Records are keyed ``group/topic:partition`` and go to partition ``partition % n`` of the
handover topic, so the latest one for a key is near the end of one partition: the reader
reads backwards from the end in chunks until it has found every key it wants.

Examples
--------
>>> from kafka import TopicPartition
>>> Window.decode(Window(5, 9, (5, 7)).encode())
Window(start=5, end=9, only=(5, 7))
>>> Window.of(waiting=[7, 5], position=9)
Window(start=5, end=9, only=(5, 7))
>>> [o for o in range(4, 10) if Window(5, 9, (5, 7)).holds(o)]
[5, 7]
>>> handover_key("g", TopicPartition("events", 3))
'g/events:3'
"""

from __future__ import annotations

import bisect
import hashlib
import hmac
import json
import time
from dataclasses import dataclass

from kafka import KafkaConsumer, TopicPartition

from ..config import KafkaConfig


@dataclass(frozen=True)
class Window:
    """Offsets ``[start, end)`` of one partition, processed by its previous owner, and which of
    them it still had waiting in its label join: ``only`` (sorted), or all of them when ``None``
    (too many to list, more than :attr:`MAX_LISTED`)."""

    start: int
    end: int
    only: tuple[int, ...] | None = None

    MAX_LISTED = 20_000

    @classmethod
    def of(cls, waiting: list[int], position: int, end: int | None = None, pending: "Window | None" = None) -> "Window":
        """The window for the entries ``waiting`` (their offsets) read up to ``position``, plus,
        from ``pending`` (a window still being read), its part from ``position`` on."""
        end = position if end is None else end
        listed: list[int] | None = list(waiting)
        if pending is not None and pending.end > position:
            end = max(end, pending.end)
            listed = None if pending.only is None else listed + [o for o in pending.only if o >= position]
        if listed is not None and len(listed) > cls.MAX_LISTED:
            listed = None
        # Waiting offsets were read, so lie below ``position``; what is left of ``pending`` does not.
        return cls(min([*waiting, position]), end, None if listed is None else tuple(sorted(set(listed))))

    def holds(self, offset: int) -> bool:
        """Whether the record at ``offset`` is one to hand over."""
        if not self.start <= offset < self.end:
            return False
        if self.only is None:
            return True
        i = bisect.bisect_left(self.only, offset)
        return i < len(self.only) and self.only[i] == offset

    def encode(self) -> bytes:
        return json.dumps({"start": self.start, "end": self.end, "only": self.only,
                           "written_at": round(time.time(), 3)}).encode()

    @classmethod
    def decode(cls, value: bytes) -> "Window | None":
        try:
            d = json.loads(value)
            start, end = int(d["start"]), int(d["end"])
            only = d.get("only")
            only = None if only is None else tuple(sorted(int(o) for o in only))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        return cls(start, end, only) if 0 <= start <= end else None


def taking_over(window: Window | None, committed: int | None) -> tuple[str, int | None]:
    """How a partition's next owner starts it, given its previous owner's latest ``window`` and
    the group's ``committed`` offset: the outcome (``none``: no window, ``stale``: a window older
    than the commit, ``empty``: nothing left waiting, ``replay``) and the offset to start at
    (``None``: from the committed offset, as a fresh consumer would).

    A window is written before its owner commits, so a commit that failed (a session expired
    on a busy machine) leaves the window ahead of the commit, or the only trace of the owner:
    the window, not the commit, says what was processed.

    >>> taking_over(None, 12), taking_over(Window(5, 9, (5,)), 12)
    (('none', None), ('stale', None))
    >>> taking_over(Window(5, 9, (5,)), 9), taking_over(Window(9, 9, ()), 9)
    (('replay', 5), ('empty', 9))
    >>> taking_over(Window(5, 9, (5,)), None), taking_over(Window(9, 9, ()), 4)  # commits that failed
    (('replay', 5), ('empty', 9))
    """
    if window is None:
        return "none", None
    if committed is not None and window.end < committed:
        return "stale", None
    if window.start >= window.end:
        return "empty", window.end
    return "replay", window.start


def handover_key(group_id: str, tp: TopicPartition) -> str:
    return f"{group_id}/{tp.topic}:{tp.partition}"


class HandoverLog:
    """Writes and reads the handover records of one consumer group (see the module docstring).

    ``producer`` is the daemon's own; ``key``: HMAC key signing and checking the records."""

    CHUNK = 256
    HEADER = "streamssl-hmac"

    def __init__(self, config: KafkaConfig, producer, key: bytes | None = None) -> None:
        assert config.handover_topic is not None
        self.config = config
        self.key = key
        self.topic: str = config.handover_topic
        self.producer = producer
        self._partitions: list[int] | None = None
        self._sent: list = []

    def _partition(self, tp: TopicPartition) -> int:
        if self._partitions is None:
            found = self.producer.partitions_for(self.topic)  # blocks for metadata once
            self._partitions = sorted(found) if found else [0]
        return self._partitions[tp.partition % len(self._partitions)]

    def write(self, windows: dict[TopicPartition, Window]) -> None:
        """Send one record per partition; the caller flushes the producer before committing."""
        for tp, window in sorted(windows.items()):
            key, value = handover_key(self.config.group_id, tp).encode(), window.encode()
            headers = [(self.HEADER, self._mac(key, value).encode())] if self.key is not None else None
            self._sent.append(self.producer.send(self.topic, key=key, value=value, partition=self._partition(tp),
                                                 headers=headers))

    def _mac(self, key: bytes, value: bytes) -> str:
        return hmac.new(self.key, len(key).to_bytes(4, "big") + key + value, hashlib.sha256).hexdigest()

    def _authentic(self, rec) -> bool:
        if self.key is None:
            return True
        given = dict(rec.headers or []).get(self.HEADER, b"")
        return hmac.compare_digest(self._mac(rec.key or b"", rec.value or b"").encode(), bytes(given))

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait for the records written; raises the first failure (the commit must not follow)."""
        self.producer.flush(timeout=timeout_s)
        sent, self._sent = self._sent, []
        for future in sent:
            if future.failed():
                raise future.exception

    def read(self, tps: set[TopicPartition], max_records: int = 100_000) -> dict[TopicPartition, Window]:
        """The latest window written for each of ``tps`` (those never written are absent),
        looking at most ``max_records`` back per handover partition."""
        wanted = {handover_key(self.config.group_id, tp): tp for tp in tps}
        by_partition: dict[int, set[str]] = {}
        for key, tp in wanted.items():
            by_partition.setdefault(self._partition(tp), set()).add(key)
        found: dict[TopicPartition, Window] = {}
        consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **self.config.client_options())
        try:
            for partition, keys in by_partition.items():
                hp = TopicPartition(self.topic, partition)
                consumer.assign([hp])
                first = consumer.beginning_offsets([hp])[hp]
                # Only a guess: some brokers (Tansu) answer the last offset rather than the next.
                start = max(first, consumer.end_offsets([hp])[hp] - self.CHUNK)
                stop = None  # the first chunk is read to the partition's end, as fetches report it
                while keys and max_records > 0:
                    latest = {}
                    for rec in _read_range(consumer, hp, start, stop):
                        key = rec.key.decode(errors="replace") if rec.key else ""
                        if key in keys and self._authentic(rec):
                            latest[key] = rec.value
                    for key, value in latest.items():
                        window = Window.decode(value)
                        if window is not None:
                            found[wanted[key]] = window
                        keys.discard(key)
                    if start <= first:
                        break
                    max_records -= self.CHUNK
                    stop, start = start, max(first, start - self.CHUNK)
        finally:
            consumer.close()
        return found


def _read_range(consumer: KafkaConsumer, tp: TopicPartition, start: int, end: int | None,
                timeout_s: float = 30.0) -> list:
    """The records of ``tp`` at offsets ``[start, end)``, or from ``start`` to the high watermark
    the fetches report when ``end`` is ``None`` (fewer if the broker does not give them within
    ``timeout_s``)."""
    consumer.seek(tp, start)
    out: list = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stop = consumer.highwater(tp) if end is None else end
        if stop is not None and consumer.position(tp) >= stop:
            break
        for records in consumer.poll(timeout_ms=200).values():
            out.extend(r for r in records if end is None or r.offset < end)
    return out
