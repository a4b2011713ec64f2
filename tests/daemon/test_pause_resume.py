"""Pausing and resuming a partition against a real Kafka-protocol broker: kafka-python 3.0.12's
stall, and the workaround ``streamssl.sources.kafka._release_parked`` that ``KafkaSource.poll``
applies before every poll.

The bug: the fetcher keeps the batch it is reading in an in-line slot
(``_fetcher._next_partition_records``). When that batch's partition gets paused, the next poll
parks the batch in ``_paused_partition_records`` and empties the slot; the next batch parsed (of
another partition) takes the slot and stays there once read to its end: a drained batch, empty
but not ``None``. After ``resume`` the parked batch is put back only while the slot is ``None``,
so it never is; and a partition with a parked batch is never fetched again. The resumed
partition stalls for good, although the broker has its records. The daemon's pacing holds
(pause/resume of the labels topic) hit this, which is why the workaround exists and why this
test pins down both the stall (with a plain consumer) and the workaround (every record read).
"""

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streamssl.sources.kafka import _release_parked
from streamssl.testing.broker import Topics

PER_PARTITION = 50


def _topic_with_records(bootstrap: str) -> tuple[TopicPartition, TopicPartition]:
    """A fresh two-partition topic with PER_PARTITION small records in each partition."""
    topic = Topics.unique("pause").create(bootstrap, partitions=2).events
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=20)
    try:
        for p in range(2):
            for i in range(PER_PARTITION):
                producer.send(topic, value=f"{p}-{i}".encode(), partition=p)
        producer.flush(10)
    finally:
        producer.close()
    return TopicPartition(topic, 0), TopicPartition(topic, 1)


def _offsets_on_the_broker(bootstrap: str, tp: TopicPartition) -> list[int]:
    """The offsets a fresh consumer reads from ``tp`` (Tansu's ListOffsets undercounts
    multi-record batches, so the records are read rather than end offsets asked for)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        out: list[int] = []
        deadline = time.monotonic() + 10
        while len(out) < PER_PARTITION and time.monotonic() < deadline:
            out.extend(r.offset for records in consumer.poll(200).values() for r in records)
        return out
    finally:
        consumer.close()


def _scenario(bootstrap: str, release: bool, after_resume_s: float) -> tuple[dict, TopicPartition, dict]:
    """Read one record, pause its partition while its batch is half read, read the other
    partition to its end (the pacing hold), resume, then poll for ``after_resume_s`` seconds.

    With ``release``, ``_release_parked`` is called before every poll, as ``KafkaSource`` does.
    Returns the offsets read per partition, the partition that was paused, and the fetcher's
    state at the end of the hold (for messages).
    """
    parts = _topic_with_records(bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest")
    read: dict[TopicPartition, list[int]] = {tp: [] for tp in parts}

    def poll(timeout_ms: int, max_records: int) -> int:
        if release:
            _release_parked(consumer)
        got = consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        for tp, records in got.items():
            read[tp].extend(r.offset for r in records)
        return sum(len(r) for r in got.values())

    try:
        consumer.assign(list(parts))
        consumer.seek_to_beginning(*parts)

        # One record: its batch is now half read in the fetcher's in-line slot.
        deadline = time.monotonic() + 10
        while not poll(200, 1):
            assert time.monotonic() < deadline, "no record arrived"
        (paused,) = [tp for tp in parts if read[tp]]
        other = parts[1 - parts.index(paused)]

        # The hold: the half-read batch is parked, the other partition is read to its end
        # (its last batch, drained, stays in the slot), and a little longer (empty fetches).
        consumer.pause(paused)
        deadline = time.monotonic() + 10
        while len(read[other]) < PER_PARTITION:
            poll(200, 500)
            assert time.monotonic() < deadline, f"the other partition was not read: {len(read[other])}"
        for _ in range(3):
            poll(200, 500)
        fetcher = consumer._fetcher
        slot = fetcher._next_partition_records
        held = {"parked": sorted(tp.partition for tp in fetcher._paused_partition_records),
                "slot": "None" if slot is None else ("drained batch" if not slot else "batch being read")}
        assert len(read[paused]) == 1, "a paused partition returned records"

        consumer.resume(paused)
        deadline = time.monotonic() + after_resume_s
        while time.monotonic() < deadline and len(read[paused]) < PER_PARTITION:
            poll(200, 500)
        if len(read[paused]) == PER_PARTITION:
            for _ in range(3):  # nothing more (no duplicates) arrives
                poll(100, 500)
        return read, paused, held
    finally:
        consumer.close()


def test_a_plain_consumer_stalls_on_a_partition_paused_while_its_batch_is_half_read(kafka_broker):
    read, paused, held = _scenario(kafka_broker.bootstrap, release=False, after_resume_s=3.0)
    other = next(tp for tp in read if tp != paused)
    assert read[other] == list(range(PER_PARTITION))
    if read[paused] == list(range(PER_PARTITION)):
        pytest.skip("the kafka-python pause/resume stall did not reproduce with the installed version "
                    f"(fetcher at the end of the hold: {held}); _release_parked may be unneeded with it")
    # Stalled: after 3 s of polling nothing more came from the resumed partition...
    assert read[paused] == [0], f"partial progress after resume: {read[paused]} (fetcher: {held})"
    # ...although the broker has every record of it.
    assert _offsets_on_the_broker(kafka_broker.bootstrap, paused) == list(range(PER_PARTITION))


def test_releasing_the_parked_batch_before_each_poll_reads_every_record(kafka_broker):
    read, paused, held = _scenario(kafka_broker.bootstrap, release=True, after_resume_s=10.0)
    assert read == {tp: list(range(PER_PARTITION)) for tp in read}, f"fetcher at the end of the hold: {held}"
