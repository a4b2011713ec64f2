"""Replaying a recorded stream into Kafka: events now, a share of their labels later."""

from __future__ import annotations

import heapq
import json
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..sources.file import BadRecord, FileOptions
from ..stopping import StopFlag


@dataclass
class ProduceSummary:
    """What :func:`produce` sent."""

    events: int = 0
    labels: int = 0
    bad_records: int = 0
    seconds: float = 0.0
    feature_names: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        return {"events": self.events, "labels": self.labels, "bad_records": self.bad_records,
                "seconds": round(self.seconds, 3),
                "events_per_second": round(self.events / self.seconds, 1) if self.seconds else None}


def event_message(event_id: str, x: np.ndarray, names: list[str], layout: str, timestamp: float,
                  entity: tuple[str, str] | None = None) -> bytes:
    """The JSON an event is sent as: ``{"id", "features", "timestamp"}``, and its entity
    ``(field, key)`` where the stream has one.

    >>> event_message("e1", np.array([1.0, 0.5]), ["a", "b"], "object", 1700000000.0)
    b'{"id":"e1","features":{"a":1.0,"b":0.5},"timestamp":1700000000.0}'
    >>> event_message("e1", np.array([1.0]), ["a"], "object", 1.0, ("meter", "m7"))
    b'{"id":"e1","features":{"a":1.0},"timestamp":1.0,"meter":"m7"}'
    """
    values = x.tolist()
    features = dict(zip(names, values)) if layout == "object" else values
    body = {"id": event_id, "features": features, "timestamp": timestamp}
    if entity is not None:
        body[entity[0]] = entity[1]
    return json.dumps(body, separators=(",", ":")).encode()


def produce(path: str | os.PathLike, producer, topic: str, labels_topic: str | None = None, label_rate: float = 0.0,
            label_delay_s: float = 0.0, rate: float | None = None, seed: int = 0, limit: int | None = None,
            layout: str = "object", id_prefix: str = "", repeat: int = 1, on_bad: Callable[[BadRecord], None] | None = None,
            on_progress: Callable[[int], None] | None = None, options: FileOptions = FileOptions(),
            stop: StopFlag | threading.Event | None = None) -> ProduceSummary:
    """Send every good record of ``path`` to ``topic`` as an event (ids ``{id_prefix}{row}``, row
    counted from 0 over good records) and, for a seeded ``label_rate`` share of them, its label
    as ``{"id", "label"}`` to ``labels_topic`` ``label_delay_s`` seconds later. ``rate`` caps
    events per second. The label mask is the one ``streamssl replay`` draws for the same seed.
    ``repeat`` sends the stream that many times over (ids keep counting, so they stay unique;
    ``limit`` caps the total). With ``options.key_column`` each event carries its entity under
    that name, and the event and its label are keyed by the entity in Kafka, so an entity's
    events and labels share one partition and reach one daemon. ``options`` says how the
    file's columns are read; the features are
    sent encoded (:mod:`streamssl.schema`) under the encoded names. Once ``stop`` is set no
    further event is sent; the labels of those sent still go out, each at its delay. Returns
    once every label is sent and the producer is flushed.
    """
    summary = ProduceSummary()
    stop = stop if stop is not None else StopFlag()
    rng = np.random.default_rng(seed)
    due: list[tuple[float, int, str, object]] = []
    start = time.monotonic()

    def send_due(now: float) -> None:
        while due and due[0][0] <= now:
            _, _, event_id, label, key = heapq.heappop(due)
            producer.send(labels_topic, json.dumps({"id": event_id, "label": label}, separators=(",", ":")).encode(),
                          key=key)
            summary.labels += 1

    for batch in _batches(path, repeat, limit, on_bad, summary, options):
        names = summary.feature_names
        reveal = rng.random(len(batch.y)) < label_rate
        entities = batch.keys if batch.keys is not None else [None] * len(batch.y)
        for x, y, show, entity in zip(batch.X, batch.y, reveal, entities):
            if rate:
                ahead = start + summary.events / rate - time.monotonic()
                if ahead > 0:
                    stop.wait(ahead)
            if stop.is_set():
                break
            event_id = f"{id_prefix}{summary.events}"
            key = (event_id if entity is None else str(entity)).encode()
            named = None if entity is None else (options.key_column, str(entity))
            producer.send(topic, event_message(event_id, x, names, layout, time.time(), named), key=key)
            if labels_topic and show and y is not None:
                heapq.heappush(due, (time.monotonic() + label_delay_s, summary.events, event_id, y, key))
            summary.events += 1
            send_due(time.monotonic())
        if on_progress is not None:
            on_progress(summary.events)
        if stop.is_set():
            break
    while due:
        time.sleep(max(0.0, min(0.1, due[0][0] - time.monotonic())))
        send_due(time.monotonic())
    producer.flush()
    summary.seconds = time.monotonic() - start
    return summary


def _batches(path, repeat: int, limit: int | None, on_bad, summary: ProduceSummary, options: FileOptions):
    sent = 0
    for _ in range(repeat):
        source = options.source(path, batch_size=256, limit=None if limit is None else limit - sent, on_bad=on_bad)
        for batch in source:
            summary.feature_names = source.feature_names
            sent += len(batch.y)
            yield batch
        summary.bad_records += source.bad_records
        if source.rows_read == 0 or (limit is not None and sent >= limit):
            return
