"""`produce` of a stream of entities through a real Kafka-protocol broker: each event carries its
entity, and an entity's events and labels are keyed by it, so they share one partition."""

import json

import pytest
from kafka import KafkaProducer

from streamssl.replay.produce import produce
from streamssl.sources.file import FileOptions
from streamssl.testing.broker import Topics, read_topic

pytestmark = pytest.mark.kafka


def test_an_entitys_events_and_labels_share_its_key_and_partition(kafka_broker, tmp_path):
    path = tmp_path / "meters.csv"
    rows = [f"{i * 0.1},m{i % 3},{i % 2}" for i in range(30)]
    path.write_text("load,meter,label\n" + "\n".join(rows) + "\n")
    topics = Topics.unique("keyed").create(kafka_broker.bootstrap, partitions=2)
    producer = KafkaProducer(bootstrap_servers=kafka_broker.bootstrap)
    summary = produce(path, producer, topics.events, topics.labels, label_rate=1.0,
                      options=FileOptions(key_column="meter"))
    producer.close()
    assert (summary.events, summary.labels) == (30, 30)
    events = read_topic(kafka_broker.bootstrap, topics.events, expect=30)
    labels = read_topic(kafka_broker.bootstrap, topics.labels, expect=30)
    where = {}
    for r in events:
        body = json.loads(r.value)
        assert r.key.decode() == body["meter"] == f"m{int(body['id']) % 3}"
        assert set(body["features"]) == {"load"}  # the entity is not a feature
        where[body["id"]] = r.partition
    for r in labels:
        body = json.loads(r.value)
        assert r.key.decode() == f"m{int(body['id']) % 3}" and r.partition == where[body["id"]]
