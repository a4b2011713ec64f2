"""One micro-batch through Daemon.process, without a broker: records in, predictions and dead
letters out, labels joined and learned, positions advanced."""

import json
import logging
from collections import namedtuple

from kafka import TopicPartition

from streamssl.config import load_config_text
from streamssl.daemon.service import Daemon
from streamssl.sinks.kafka import DeadLetterSink, PredictionSink
from streamssl.sources.kafka import Batch

CONFIG = """
kafka: {{events_topic: ev, labels_topic: lb, predictions_topic: pr, dead_letter_topic: dl}}
events: {{features: [a, b]}}
checkpoint: {{path: {path}}}
"""

Record = namedtuple("Record", "topic partition offset timestamp key value")


class Sent:
    def add_errback(self, fn):
        return self


class Producer:
    """Keeps what it is given, by topic; every send succeeds."""

    def __init__(self):
        self.sent: dict[str, list] = {}

    def send(self, topic, value=None, key=None, headers=None):
        self.sent.setdefault(topic, []).append((key, value, dict(headers or [])))
        return Sent()

    def flush(self, timeout=None):
        pass


def daemon(tmp_path):
    d = Daemon(load_config_text(CONFIG.format(path=tmp_path / "d.ckpt"), environ={}), log=logging.getLogger("t"))
    producer = Producer()
    d.predictions, d.dead = PredictionSink(producer, "pr"), DeadLetterSink(producer, "dl", 1 << 16)
    return d, producer


def process(d, records):
    """``records`` as the source gives them: routed by the daemon's partitions."""
    d.process(Batch.of(records, d.partitions))


def event(offset, a, label=None, partition=0):
    body = {"id": f"e{offset}", "features": {"a": a, "b": 1.0}}
    if label is not None:
        body["label"] = label
    return Record("ev", partition, offset, 1_700_000_000_000 + offset, None, json.dumps(body).encode())


def label(offset, event_id, value):
    return Record("lb", 0, offset, 1_700_000_000_000 + offset, None,
                  json.dumps({"id": event_id, "label": value}).encode())


def predictions(producer):
    return [json.loads(value) for _, value, _ in producer.sent.get("pr", [])]


def test_every_good_event_is_predicted_once_and_a_bad_one_is_dead_lettered_with_its_reason(tmp_path):
    d, producer = daemon(tmp_path)
    records = [event(i, float(i % 2), label=i % 2) for i in range(10)]
    records.insert(4, Record("ev", 0, 100, 0, None, b"{not json"))
    process(d, records)
    assert sorted(p["id"] for p in predictions(producer)) == sorted(f"e{i}" for i in range(10))
    (_, raw, headers), = producer.sent["dl"]
    assert raw == b"{not json" and headers["streamssl-reason"] == b"undecodable"
    assert d.positions == {TopicPartition("ev", 0): 101}  # past the last record read, the bad one included
    assert d.labels_scored == 10 and d.model_version == 1  # the inline labels, learned in one update
    assert d.checkpoints.since == 11
    assert d.progress.read() == d.positions  # on disk before the predictions went out


def test_late_and_early_labels_are_joined_to_their_events_and_learned(tmp_path):
    d, producer = daemon(tmp_path)
    process(d, [event(i, float(i % 2)) for i in range(6)])  # no labels yet: the events wait in the join
    assert len(d.join) == 6 and d.labels_scored == 0
    process(d, [label(0, "e1", 1), label(1, "e2", 0), label(2, "e9", 1)])  # e9 has not come yet
    assert d.labels_scored == 2 and d.join.hits == 2 and len(d.join.pending) == 1
    version = d.model_version
    process(d, [event(9, 1.0)])  # its label was waiting: learned with it
    assert d.labels_scored == 3 and d.join.hits == 3 and d.model_version == version + 1
    assert len(predictions(producer)) == 7
    assert d.positions == {TopicPartition("ev", 0): 10, TopicPartition("lb", 0): 3}
    metric = d.metrics.registry.get_sample_value
    assert metric("streamssl_events_processed_total", {"kind": "late_labelled"}) == 2
    assert metric("streamssl_events_processed_total", {"kind": "labelled"}) == 1
    assert metric("streamssl_events_processed_total", {"kind": "unlabelled"}) == 6


def test_a_batch_ending_a_handover_window_gives_up_no_label_whose_event_comes_after_it(tmp_path):
    """A batch that reads the end of a partition's handover window and then new events: the
    handed-over entries are rebuilt first, and no label waiting for one of the new events is
    given up before they are in (the batch reaching the partition's end moves the event clock)."""
    from streamssl.sources.handover import Window

    d, _ = daemon(tmp_path)
    d.partitions.read_window(TopicPartition("ev", 0), Window(start=5, end=10, only=(5,)))
    process(d, [label(0, "e12", 1)])  # read ahead of its event
    assert len(d.join.pending) == 1
    process(d, [event(5, 0.0), event(12, 1.0)])  # e5 handed over (waiting at the previous owner), e12 new
    assert d.join.hits == 1 and not d.join.misses and d.labels_scored == 1
    assert "e5" in d.join.events  # handed over: waits here for its label
