"""Fuzzing the daemon's whole path for one micro-batch: decode, predict, learn, and every sink
through a real producer to a real broker. Whatever the messages, ``process`` raises nothing,
every event message is either predicted or dead-lettered, every label message is either
joined/waiting or dead-lettered, and the broker acknowledges everything that was sent."""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from kafka.consumer.fetcher import ConsumerRecord

from streamssl.config import load_config_text
from streamssl.daemon.service import Daemon
from streamssl.sources.decode import DecodeError
from streamssl.sources.kafka import Batch
from streamssl.testing.broker import Topics

pytestmark = pytest.mark.kafka

FEATURES = ["a", "b", "c"]
CHARS = st.characters() | st.characters(categories=["Cs"])  # lone surrogates included
texts = st.text(alphabet=CHARS, max_size=12)
numbers = st.one_of(st.floats(-1e6, 1e6), st.integers(-100, 100), st.floats(allow_nan=True, allow_infinity=True))
ids = st.one_of(texts, st.integers(), st.none(), st.booleans())


def event(draw) -> bytes:
    obj = {"id": draw(ids), "k": draw(st.one_of(texts, st.integers(), st.none())),
           "features": {n: draw(numbers) for n in draw(st.lists(st.sampled_from(FEATURES + ["d"]), unique=True,
                                                                 min_size=2, max_size=4))}}
    if draw(st.booleans()):
        obj["label"] = draw(st.one_of(texts, st.integers(0, 3), st.booleans(), st.floats()))
    if draw(st.booleans()):
        obj["timestamp"] = draw(st.one_of(st.floats(0, 2e9), st.integers(), texts))
    return json.dumps(obj, allow_nan=True).encode()


@st.composite
def batches(draw) -> list[tuple[str, bytes | None, bytes | None]]:
    """(``events`` or ``labels``, value, key) messages, mostly well formed, any string anywhere."""
    out = []
    for _ in range(draw(st.integers(1, 8))):
        kind = draw(st.sampled_from(["events", "events", "labels", "raw"]))
        key = draw(st.one_of(st.none(), st.binary(max_size=8)))
        if kind == "events":
            out.append(("events", event(draw), key))
        elif kind == "labels":
            label = {"id": draw(ids), "label": draw(st.one_of(texts, st.integers(0, 3), st.booleans()))}
            out.append(("labels", json.dumps(label).encode(), key))
        else:
            out.append((draw(st.sampled_from(["events", "labels"])), draw(st.one_of(st.none(), st.binary(max_size=40))),
                        key))
    return out


@pytest.fixture(scope="module")
def daemon(kafka_broker, tmp_path_factory):
    topics = Topics.unique("fuzz").create(kafka_broker.bootstrap, partitions=1)
    cfg = load_config_text(f"""
kafka: {{bootstrap_servers: "{kafka_broker.bootstrap}", events_topic: {topics.events}, labels_topic: {topics.labels},
        predictions_topic: {topics.predictions}, dead_letter_topic: {topics.dead_letters}}}
events: {{features: [a, b, c], key_field: k, max_message_bytes: 4096}}
checkpoint: {{path: {tmp_path_factory.mktemp("fuzz") / "d.ckpt"}}}
""", environ={})
    d = Daemon(cfg, log=logging.getLogger("test-fuzz"))
    producer = d.open_sinks()
    d.offsets = {"events": 0, "labels": 0}
    yield d, topics
    producer.close()


def dead_letters(d: Daemon) -> float:
    return sum(s.value for m in d.metrics.registry.collect() if m.name == "streamssl_dead_letters"
               for s in m.samples if s.name.endswith("_total"))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches())
@example([("events", b'{"id": "sur\\ud800", "k": 1, "features": {"a": 1, "b": 2, "c": 3}}', None),
          ("events", b'{"id": "e", "k": "\\udfff", "features": {"a": 1, "b": 2, "c": 3}}', b"\xff"),
          ("events", b'{"id": "f", "k": 1, "label": "\\ud800", "features": {"a": 1, "b": 2, "c": 3}}', None),
          ("labels", b'{"id": "\\ud800", "label": 1}', None), ("labels", b'{"id": "g", "label": "\\udbff"}', None)])
def test_every_message_is_predicted_or_dead_lettered_and_every_sink_delivers(daemon, batch):
    d, topics = daemon
    records = []
    for kind, value, key in batch:
        topic = topics.events if kind == "events" else topics.labels
        records.append(ConsumerRecord(topic, 0, -1, d.offsets[kind], -1, 0, key, value, [], None, -1, -1, -1))
        d.offsets[kind] += 1
    n_events = sum(kind == "events" for kind, _, _ in batch)
    n_bad_labels = sum(kind == "labels" and not _decodes(d, value) for kind, value, _ in batch)
    predicted, dead = d.predictions.sent, d.dead.sent
    d.process(Batch.of(records, d.partitions))
    assert d.predictions.sent - predicted <= n_events
    assert (d.predictions.sent - predicted) + (d.dead.sent - dead) == n_events + n_bad_labels
    assert dead_letters(d) == d.dead.sent  # every dead letter is counted by reason
    d.predictions.flush(30)  # the broker acknowledged every prediction and dead letter
    d.dead.flush(30)


def _decodes(d: Daemon, value: bytes | None) -> bool:
    try:
        d.label_decoder.decode(value)
    except DecodeError:
        return False
    return True
