"""Compressed record batches, as other producers send them, through a real broker: each codec
is read out of the box, and a batch that cannot be read (a codec not installed, a corrupt
frame) is skipped with its offsets and bytes handed to the daemon, never raised out of poll."""

from __future__ import annotations

import json
import signal
import time

import kafka.codec
import kafka.record.default_records
import pytest
from kafka import KafkaProducer

from streamssl.config import KafkaConfig
from streamssl.replay.produce import event_message
from streamssl.replay.run import bundled_sample
from streamssl.sources.file import FileSource
from streamssl.sources.kafka import KafkaSource
from streamssl.testing.broker import Topics, committed, read_topic
from streamssl.testing.daemon import ELEC2_FEATURES, DaemonProcess, wait_for, write_config

pytestmark = pytest.mark.kafka

PER_BATCH = 40


def send_batch(bootstrap: str, topic: str, codec: str | None, first: int, n: int = PER_BATCH) -> None:
    """``n`` events ``e{first}``.. in one batch compressed with ``codec``."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec, linger_ms=1000,
                             batch_size=1 << 20)
    try:
        for x, i in zip(next(iter(FileSource(bundled_sample(), batch_size=n, limit=n))).X, range(first, first + n)):
            producer.send(topic, event_message(f"e{i}", x, ELEC2_FEATURES, "object", time.time()), partition=0)
        producer.flush(30)
    finally:
        producer.close()


def read_all(bootstrap: str, topic: str, expect: int, group: str) -> tuple[list, list]:
    """Every record a KafkaSource reads from ``topic`` and the batches it skipped."""
    config = KafkaConfig(bootstrap_servers=bootstrap, group_id=group, events_topic=topic, predictions_topic=f"{topic}-p",
                         dead_letter_topic=f"{topic}-d", session_timeout_ms=6000, heartbeat_interval_ms=1000)
    source = KafkaSource(config, [topic])
    records, skipped = [], []
    try:
        deadline = time.monotonic() + 60
        while len(records) + sum(u.end - u.start for u in skipped) < expect and time.monotonic() < deadline:
            records.extend(source.poll(500, 200))
            skipped.extend(source.unreadable)
            source.unreadable.clear()
    finally:
        source.close()
    return records, skipped


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
def test_each_codec_is_read_out_of_the_box(kafka_broker, codec):
    topic = Topics.unique(f"codec-{codec}").create(kafka_broker.bootstrap, partitions=1).events
    send_batch(kafka_broker.bootstrap, topic, codec, 0)
    records, skipped = read_all(kafka_broker.bootstrap, topic, PER_BATCH, f"g-{codec}")
    assert skipped == []
    assert [json.loads(r.value)["id"] for r in records] == [f"e{i}" for i in range(PER_BATCH)]


def test_a_batch_of_a_codec_not_installed_is_skipped_with_its_offsets(kafka_broker, monkeypatch):
    topic = Topics.unique("nocodec").create(kafka_broker.bootstrap, partitions=1).events
    send_batch(kafka_broker.bootstrap, topic, "lz4", 0)
    send_batch(kafka_broker.bootstrap, topic, "zstd", PER_BATCH)
    send_batch(kafka_broker.bootstrap, topic, "gzip", 2 * PER_BATCH)
    monkeypatch.setattr(kafka.codec, "has_zstd", lambda: False)  # as where zstandard is not installed
    records, skipped = read_all(kafka_broker.bootstrap, topic, 3 * PER_BATCH, "g-nocodec")
    ids = [json.loads(r.value)["id"] for r in records]
    assert ids == [f"e{i}" for i in range(PER_BATCH)] + [f"e{i}" for i in range(2 * PER_BATCH, 3 * PER_BATCH)]
    [batch] = skipped
    assert (batch.start, batch.end) == (PER_BATCH, 2 * PER_BATCH)
    assert "zstd" in batch.error and batch.raw  # the batch's own bytes, for the dead letter


def test_the_daemon_dead_letters_a_corrupt_batch_and_goes_on(kafka_broker, tmp_path, monkeypatch):
    bootstrap = kafka_broker.bootstrap
    topics = Topics.unique("corrupt").create(bootstrap, partitions=1)
    send_batch(bootstrap, topics.events, "lz4", 0)
    with monkeypatch.context() as m:  # a producer whose gzip frames are garbage (valid checksum)
        m.setattr(kafka.record.default_records, "gzip_encode", lambda data, *a, **kw: b"\x1f\x8bnot gzip" + data[:50])
        send_batch(bootstrap, topics.events, "gzip", PER_BATCH)
    send_batch(bootstrap, topics.events, "zstd", 2 * PER_BATCH)
    config, port = write_config(tmp_path, bootstrap, topics, "corrupt")
    daemon = DaemonProcess(config, port, tmp_path / "daemon.log")
    try:
        wait_for(lambda: daemon.metric("streamssl_predictions_produced_total") >= 2 * PER_BATCH
                 and daemon.metric("streamssl_dead_letters_total", {"reason": "unreadable_batch"}) >= 1,
                 120, "the good batches predicted and the corrupt one dead-lettered", daemon)
        assert daemon.get("/healthz")[0] == 200
        assert daemon.stop(signal.SIGTERM) == 0
    finally:
        daemon.kill()
    ids = {json.loads(r.value)["id"] for r in read_topic(bootstrap, topics.predictions, expect=2 * PER_BATCH)}
    assert ids == {f"e{i}" for i in list(range(PER_BATCH)) + list(range(2 * PER_BATCH, 3 * PER_BATCH))}
    [dead] = read_topic(bootstrap, topics.dead_letters, expect=1)
    headers = {k: v.decode() for k, v in dead.headers}
    assert headers["streamssl-reason"] == "unreadable_batch"
    assert (int(headers["streamssl-offset"]), int(headers["streamssl-last-offset"])) == (PER_BATCH, 2 * PER_BATCH - 1)
    assert dead.value  # the batch as fetched
    [logged] = daemon.log_events("unreadable_batch")
    assert logged["records"] == PER_BATCH and logged["first_offset"] == PER_BATCH
    assert sum(committed(bootstrap, "corrupt", topics.events).values()) == 3 * PER_BATCH  # past it, for good
