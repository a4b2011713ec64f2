"""Micro-batches of records from Kafka topics, through a kafka-python consumer group."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.record import MemoryRecords

from ..config import KafkaConfig
from .handover import HandoverLog, taking_over
from .partitions import Partitions, Routed

Offsets = dict[TopicPartition, int]


@dataclass(frozen=True)
class Unreadable:
    """A record batch of ``tp`` that could not be read (a codec not installed, a corrupt frame,
    a failed checksum): offsets ``start`` to ``end - 1`` are skipped, and ``raw`` holds the
    batch's bytes as fetched (empty where they could not be delimited)."""

    tp: TopicPartition
    start: int
    end: int
    raw: bytes
    error: str


@dataclass
class Batch:
    """What one :meth:`KafkaSource.read` brings: every record read (in arrival order), the
    same records ``routed`` by the consumer's partitions (new, handed over, skipped), the record
    batches skipped as unreadable, the partitions taken over meanwhile (for the log), and the
    ``lag`` of each partition held once the batch is read (``None`` where no source tells it).

    Examples
    --------
    >>> from collections import namedtuple
    >>> Rec = namedtuple("Rec", "topic partition offset")
    >>> parts = Partitions()
    >>> batch = Batch.of([Rec("ev", 0, 3), Rec("ev", 0, 4)], parts)
    >>> len(batch.routed.new), parts.positions
    (2, {TopicPartition(topic='ev', partition=0): 5})
    """

    records: list
    routed: Routed
    unreadable: list[Unreadable] = field(default_factory=list)
    taken_over: list[dict] = field(default_factory=list)
    lag: dict[TopicPartition, int | None] | None = None

    @classmethod
    def of(cls, records: list, partitions: Partitions, **rest) -> "Batch":
        """``records`` routed by ``partitions`` (their positions move past them)."""
        return cls(records, partitions.route(records), **rest)


class _UnreadableBatch(Exception):
    """Raised out of kafka-python's ``poll`` in place of the error that reading a batch raised."""

    def __init__(self, tp: TopicPartition, offset: int, raw: bytes, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.tp, self.offset, self.raw = tp, offset, raw


class _Listener(ConsumerRebalanceListener):
    def __init__(self, source: "KafkaSource") -> None:
        self.source = source

    def on_partitions_revoked(self, revoked) -> None:
        self.source._revoked(set(revoked))

    def on_partitions_assigned(self, assigned) -> None:
        self.source._assigned(set(assigned))


class KafkaSource:
    """A consumer in a group, reading ``topics`` in micro-batches, committing only when told.

    Auto-commit is off: the daemon commits offsets after the state they correspond to is on
    disk. ``start_offsets`` (from a checkpoint) win over the group's committed offsets when a
    partition is assigned, because they match the restored state. ``on_revoke`` runs when
    partitions are taken away (rebalance or shutdown), before anyone else may read them; it
    runs on kafka-python's IO thread while :meth:`poll` waits, so it may not call blocking
    consumer methods (``commit(blocking=False)`` is fine). Records of revoked partitions that
    :meth:`poll` had gathered are dropped and the partition is rewound to the first of them:
    their next owner reads them, and that may be this consumer again (kafka-python keeps the
    fetch position of a partition assigned again in the same rebalance).

    With a ``handover`` log, a partition new to this consumer (not restored from a checkpoint)
    starts where its previous owner's handover window starts, and its records before the
    window's end are handed over or skipped (:meth:`Partitions.route <streamssl.sources.partitions.Partitions.route>`):
    see :mod:`streamssl.sources.handover`.
    ``on_lost`` is told of the partitions whose state here no longer holds: taken away for good
    by a rebalance (revoked and not assigned back), or restored from the checkpoint but moved on
    by another owner since (then taken over like new ones). ``partitions``: the caller's
    positions and handover windows being read (restored from a checkpoint); this source
    starts and stops the windows.
    """

    def __init__(self, config: KafkaConfig, topics: list[str], start_offsets: Offsets | None = None,
                 on_revoke: Callable[[set[TopicPartition]], None] | None = None,
                 handover: HandoverLog | None = None, partitions: Partitions | None = None,
                 on_lost: Callable[[set[TopicPartition]], None] | None = None) -> None:
        self.config = config
        self.topics = topics
        self.start_offsets = dict(start_offsets or {})
        self.on_revoke = on_revoke
        self.on_lost = on_lost
        self.handover = handover
        self.partitions = partitions if partitions is not None else Partitions()
        self._owned: set[TopicPartition] = set()
        self._fresh: set[TopicPartition] = set()
        self._restored: Offsets = {}  # partitions just started from the checkpoint's offsets
        self.taken_over: list[dict] = []  # what each partition new to this consumer was handed (for the log)
        self.unreadable: list[Unreadable] = []  # batches skipped since the caller last took them
        self._ends: Offsets = {}  # each partition's end, as the broker last said (confirm_ends)
        self.consumer = KafkaConsumer(
            group_id=config.group_id, enable_auto_commit=False, auto_offset_reset=config.auto_offset_reset,
            session_timeout_ms=config.session_timeout_ms, heartbeat_interval_ms=config.heartbeat_interval_ms,
            max_poll_interval_ms=config.max_poll_interval_ms, fetch_max_wait_ms=config.fetch_max_wait_ms,
            **config.client_options(),
        )
        _floor_fetch_wait(self.consumer, config.heartbeat_interval_ms / 10_000)
        _tell_unreadable(self.consumer)
        self.consumer.subscribe(topics, listener=_Listener(self))
        self._just_revoked: set[TopicPartition] = set()

    # -- rebalance callbacks (called from inside poll)
    def _assigned(self, assigned: set[TopicPartition]) -> None:
        for tp in assigned:
            offset = self.start_offsets.pop(tp, None)  # only on the first assignment after a restore
            if offset is not None:
                self.consumer.seek(tp, offset)
                self._restored[tp] = offset
            elif tp not in self._owned:
                self._fresh.add(tp)
                self.partitions.drop_window(tp)
        lost, self._owned = self._owned - assigned, set(assigned)
        if self.handover is not None and self.start_offsets:
            # Restored partitions another consumer holds now: their state here is stale (the
            # handover brings it back up to date should they come back).
            lost |= set(self.start_offsets)
            self.start_offsets.clear()
        self._fresh &= assigned
        if lost:
            self._lose(lost)

    def _lose(self, tps: set[TopicPartition]) -> None:
        """This consumer's state for ``tps`` no longer holds (see ``on_lost``)."""
        for tp in tps:
            self.partitions.drop_window(tp)
        if self.on_lost is not None:
            self.on_lost(tps)

    def _revoked(self, revoked: set[TopicPartition]) -> None:
        self._just_revoked |= revoked
        if self.on_revoke is not None and revoked:
            self.on_revoke(revoked)

    # -- reading
    def read(self, max_records: int, max_wait_ms: int) -> Batch:
        """One micro-batch (see :meth:`poll`), routed by this consumer's partitions, with the
        batches skipped and the partitions taken over since the last read, and the lag after it."""
        records = self.poll(max_records, max_wait_ms)
        unreadable, self.unreadable = self.unreadable, []
        taken_over, self.taken_over = self.taken_over, []
        for skipped in unreadable:
            self.partitions.passed(skipped.tp, skipped.end)
        batch = Batch.of(records, self.partitions, unreadable=unreadable, taken_over=taken_over)
        batch.lag = self.lag(self.partitions.positions)
        return batch

    def poll(self, max_records: int, max_wait_ms: int) -> list:
        """Records in arrival order: up to ``max_records``, waiting at most ``max_wait_ms``.

        A batch that cannot be read is skipped and added to :attr:`unreadable`."""
        deadline = time.monotonic() + max_wait_ms / 1000
        out: list = []
        while len(out) < max_records:
            left = deadline - time.monotonic()
            if left <= 0 and out:
                break
            _release_parked(self.consumer)
            try:
                batch = self.consumer.poll(timeout_ms=max(0, int(left * 1000)), max_records=max_records - len(out))
            except _UnreadableBatch as exc:
                self._skip(exc)
                continue
            for records in batch.values():
                out.extend(records)
            if self._just_revoked:
                gone, self._just_revoked = self._just_revoked, set()
                self._rewind([r for r in out if TopicPartition(r.topic, r.partition) in gone])
                out = [r for r in out if TopicPartition(r.topic, r.partition) not in gone]
            if self._fresh or self._restored:
                moved = self._take_over()
                out = [r for r in out if TopicPartition(r.topic, r.partition) not in moved]
            if left <= 0:
                break
        return out

    def _skip(self, exc: _UnreadableBatch) -> None:
        """Move past the batch that holds ``exc.offset``, delimited by its header (read without
        decompressing it); one offset at a time where even the header is unreadable."""
        end, raw = exc.offset + 1, b""
        try:
            records = MemoryRecords(exc.raw)
            while (batch := records.next_batch()) is not None:
                following = getattr(batch, "next_offset", batch.base_offset + 1)
                if following > exc.offset:
                    end, raw = following, bytes(getattr(batch, "_buffer", b""))
                    break
        except Exception:  # noqa: BLE001 -- a header too damaged to delimit the batch
            pass
        try:
            self.consumer.seek(exc.tp, end)
        except (ValueError, KeyError, AssertionError):  # no longer assigned: its next owner meets it
            return
        self.unreadable.append(Unreadable(exc.tp, exc.offset, end, raw, str(exc)))

    def _take_over(self) -> set[TopicPartition]:
        """Start each partition new to this consumer at its handover window (if its previous
        owner wrote one that is not stale); returns those moved back."""
        fresh, self._fresh = self._fresh, set()
        restored, self._restored = self._restored, {}
        if self.handover is None:
            return set()
        committed = {tp: self.consumer.committed(tp) for tp in fresh | set(restored) if tp in self._owned}
        # A partition restored from this consumer's checkpoint that another owner has moved on
        # since (its commit is past the checkpoint's offset) is taken over like a new one.
        stale = {tp for tp, offset in restored.items() if (committed.get(tp) or 0) > offset}
        if stale:
            self._lose(stale)
            fresh |= stale
        if not fresh:
            return set()
        windows = self.handover.read(fresh)
        moved = set()
        for tp in sorted(fresh):
            window = windows.get(tp)
            at = committed.get(tp)  # the group's committed offset
            outcome, start = taking_over(window, at)
            if start is None and tp in stale and at is not None:
                start = at  # not from this consumer's outdated checkpoint
            if start is not None:
                try:
                    self.consumer.seek(tp, start)
                    moved.add(tp)
                    if outcome == "replay":
                        self.partitions.read_window(tp, window)
                except (ValueError, KeyError, AssertionError):  # revoked meanwhile
                    outcome = "revoked"
            self.taken_over.append({"partition": f"{tp.topic}:{tp.partition}", "committed": at,
                                    "window": None if window is None else [window.start, window.end],
                                    "listed": None if window is None or window.only is None else len(window.only),
                                    "outcome": outcome})
        return moved

    def _rewind(self, dropped: list) -> None:
        """Seek each partition of the ``dropped`` records back to the first of them, where it is
        still assigned: a partition kept through the rebalance resumes at its first record not
        processed (one that moved on is read by its next owner from the committed offset)."""
        first: Offsets = {}
        for r in dropped:
            tp = TopicPartition(r.topic, r.partition)
            first[tp] = min(first.get(tp, r.offset), r.offset)
        for tp, offset in first.items():
            try:
                self.consumer.seek(tp, offset)
            except (ValueError, KeyError):  # no longer assigned
                pass

    def assignment(self) -> set[TopicPartition]:
        return set(self.consumer.assignment())

    def pace(self, hold: set[TopicPartition]) -> None:
        """Stop fetching the partitions in ``hold`` (those held) and fetch all others.

        A held partition keeps its position and its place in the group; records already
        fetched for it are fetched again once it is let go."""
        held = set(self.consumer.paused())
        assigned = self.assignment()
        if hold & assigned - held:
            self.consumer.pause(*(hold & assigned - held))
        if held - hold:
            self.consumer.resume(*(held - hold))

    def held(self) -> set[TopicPartition]:
        """Partitions whose fetching :meth:`pace` has stopped."""
        return set(self.consumer.paused())

    def lag(self, positions: Offsets) -> dict[TopicPartition, int | None]:
        """Messages between ``positions`` (next to read) and each assigned partition's end: the
        later of its last fetch's high watermark and the end :meth:`confirm_ends` was told
        (``None`` until either is known)."""
        out: dict[TopicPartition, int | None] = {}
        for tp in self.assignment():
            high = max((h for h in (self.consumer.highwater(tp), self._ends.get(tp)) if h is not None), default=None)
            at = self._position(tp, positions)
            out[tp] = None if high is None or at is None else max(0, high - at)
        return out

    def confirm_ends(self, positions: Offsets, timeout_ms: int = 1000) -> dict[TopicPartition, float]:
        """Ask the broker where each assigned partition ends; returns those read to their end
        (``positions``, else the consumer's), each with the time it was asked: everything
        written to it before then has been read. A fetch's high watermark cannot say as much:
        a partition not fetched for a while (a rebalance, a starved machine) keeps an old one
        and looks read to its end while records wait. Empty where the broker does not answer."""
        assigned = sorted(self.assignment())
        if not assigned:
            return {}
        asked = time.time()
        try:
            ends = self.consumer.end_offsets(assigned, timeout_ms=timeout_ms)
        except KafkaError:
            return {}
        # Some Kafka-protocol brokers (Tansu) answer short of the end, at the last record
        # batch's first offset + 1: the later of that and the last fetch's high watermark.
        self._ends = {tp: max(end, self.consumer.highwater(tp) or 0) for tp, end in ends.items()}
        out = {}
        for tp, end in self._ends.items():
            at = self._position(tp, positions)
            if at is not None and at >= end:
                out[tp] = asked
        return out

    def _position(self, tp: TopicPartition, positions: Offsets) -> int | None:
        """The next offset to process in ``tp``: the caller's position, else the consumer's."""
        at = positions.get(tp)
        return self._fetch_position(tp) if at is None else at

    def _fetch_position(self, tp: TopicPartition) -> int | None:
        """The consumer's position in ``tp`` (the next offset poll would return), read
        without a network round trip; ``None`` where not known yet. Used for partitions none
        of whose records have been processed since they were assigned."""
        try:  # kafka-python has no non-blocking public accessor for this
            position = self.consumer._subscription.assignment[tp].position
        except (AttributeError, KeyError):
            return None
        return getattr(position, "offset", None)

    def heartbeat_age(self) -> float:
        """Seconds since the group coordinator last answered a heartbeat (inf before the first)."""
        try:
            value = self.consumer.metrics()["consumer-coordinator-metrics"]["last-heartbeat-seconds-ago"]
        except (KeyError, TypeError):
            return math.inf
        return float(value)

    def commit(self, offsets: Offsets, blocking: bool = True,
               on_error: Callable[[Exception], None] | None = None) -> None:
        """Commit ``offsets`` (next offset to read) for the partitions this consumer holds;
        ``blocking=False`` sends the commit and returns (errors go to ``on_error``)."""
        held = self.assignment()
        mine = {tp: OffsetAndMetadata(off, "", -1) for tp, off in offsets.items() if tp in held}
        if not mine:
            return
        if blocking:
            self.consumer.commit(mine)
            return

        def done(_offsets, response) -> None:
            if isinstance(response, Exception) and on_error is not None:
                on_error(response)

        self.consumer.commit_async(mine, callback=done)

    def close(self) -> None:
        self.consumer.close(autocommit=False)


def _release_parked(consumer: KafkaConsumer) -> None:
    """Work around kafka-python 3.0.12, whose fetcher parks the records it holds for a partition
    that gets paused, and puts them back after ``resume`` only while its in-line slot is
    ``None``; but it leaves a drained batch in that slot (empty, not ``None``), and a parked
    partition is never fetched again: the partition stalls for good after a pacing hold.
    An empty slot is what the fetcher treats as free everywhere else, so it is freed here."""
    fetcher = getattr(consumer, "_fetcher", None)
    current = getattr(fetcher, "_next_partition_records", None)
    if current is not None and not current and getattr(fetcher, "_paused_partition_records", None):
        fetcher._next_partition_records = None


def _floor_fetch_wait(consumer: KafkaConsumer, floor_s: float) -> None:
    """Work around kafka-python 3.0.12, whose ``poll`` caps each wait for fetched records by
    the time to the coordinator's next heartbeat: while a heartbeat goes unanswered (the
    broker stalls) that time is 0, and ``poll`` spins for its whole timeout, adding a
    callback to the stalled fetch on every turn. It used most of a core and grew RSS by
    350 MB in 30 s (benchmarks/stall.py). Heartbeats are sent by kafka-python's own IO
    thread, not by ``poll``, so waiting at least ``floor_s`` per turn delays none."""
    coordinator = getattr(consumer, "_coordinator", None)
    due = getattr(coordinator, "time_to_next_poll", None)
    if due is not None:
        coordinator.time_to_next_poll = lambda: max(due(), floor_s)


def _tell_unreadable(consumer: KafkaConsumer) -> None:
    """Make an error reading a fetched batch (:class:`kafka.errors.UnsupportedCodecError`, a
    failed checksum, a decompressor's own error) come out of ``poll`` as
    :class:`_UnreadableBatch`, with the partition, the offset it stopped at and the fetched
    bytes. kafka-python raises the bare error, which says neither, and raises it again on every
    ``poll``: the partition (and a daemon that lets it out) is stuck. Records before the batch
    are returned first, as kafka-python does."""
    fetcher = getattr(consumer, "_fetcher", None)
    parse = getattr(fetcher, "_parse_fetched_data", None)
    if parse is None:
        return

    def parse_and_guard(completed_fetch):
        part = parse(completed_fetch)
        if part is None:
            return part
        take = part.take

        def guarded_take(n=None):
            try:
                return take(n)
            except _UnreadableBatch:
                raise
            except Exception as exc:  # noqa: BLE001 -- whatever the codec or the check raised
                raise _UnreadableBatch(part.topic_partition, part.next_fetch_offset,
                                       bytes(completed_fetch.partition_data.records or b""), exc) from exc

        part.take = guarded_take
        return part

    fetcher._parse_fetched_data = parse_and_guard
