"""Where a partition ends, as the broker says, through a real Kafka-protocol broker: the daemon's
event clock trusts a partition read to its end only as of the broker's word, never a fetch's
high watermark, which goes stale while the partition is not fetched."""

from __future__ import annotations

import time

import pytest
from kafka import KafkaProducer, TopicPartition

from streamssl.config import KafkaConfig
from streamssl.sources.kafka import KafkaSource
from streamssl.testing.broker import Topics

pytestmark = pytest.mark.kafka


def test_the_broker_says_which_partitions_are_read_to_their_end_and_since_when(kafka_broker):
    topic = Topics.unique("ends").create(kafka_broker.bootstrap, partitions=1).events
    tp = TopicPartition(topic, 0)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    for i in range(10):
        producer.send(topic, f"e{i}".encode(), partition=0)
    producer.flush(30)
    config = KafkaConfig(bootstrap_servers=kafka_broker.bootstrap, group_id="g-ends", events_topic=topic,
                         predictions_topic=f"{topic}-p", dead_letter_topic=f"{topic}-d",
                         session_timeout_ms=6000, heartbeat_interval_ms=1000)
    source = KafkaSource(config, [topic])
    try:
        read: list = []
        deadline = time.monotonic() + 60
        while len(read) < 4 and time.monotonic() < deadline:
            read.extend(source.poll(4 - len(read), 200))
        assert len(read) == 4
        assert source.confirm_ends({tp: 4}) == {}  # six records to go
        assert source.lag({tp: 4}) == {tp: 6}
        while len(read) < 10 and time.monotonic() < deadline:
            read.extend(source.poll(10 - len(read), 200))
        before = time.time()
        confirmed = source.confirm_ends({tp: 10})
        assert set(confirmed) == {tp} and before <= confirmed[tp] <= time.time()
        # Records written after the broker's word make the partition lag again; the next word says so.
        for i in range(10, 13):  # one batch each (Tansu answers a batch's first offset + 1)
            producer.send(topic, f"e{i}".encode(), partition=0)
            producer.flush(30)
        assert source.confirm_ends({tp: 10}) == {} and source.lag({tp: 10}) == {tp: 3}
    finally:
        source.close()
        producer.close()
