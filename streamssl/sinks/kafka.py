"""Sinks that write to Kafka: predictions, and rejected messages with their reason."""

from __future__ import annotations

import json
from typing import Any

from kafka import KafkaProducer

from ..config import KafkaConfig
from ..errors import StreamSSLError


class SinkError(StreamSSLError):
    """Records could not be delivered to Kafka."""


def utf8(text: str) -> bytes:
    """``text`` as UTF-8; what UTF-8 cannot hold (a lone surrogate) is written as its
    ``\\uXXXX`` escape. The decoders refuse such ids and labels; this keeps a sink from ever
    raising on one that got through.

    >>> utf8("id-" + chr(0xD800))
    b'id-\\\\ud800'
    """
    return text.encode("utf-8", "backslashreplace")


def make_producer(config: KafkaConfig, **extra: Any) -> KafkaProducer:
    """A producer that waits for all in-sync replicas and retries, with the config's security."""
    producer = KafkaProducer(acks="all", linger_ms=5, batch_size=256 << 10, retries=10, **config.client_options(),
                             **extra)
    _no_busy_send(producer)
    return producer


def _no_busy_send(producer: KafkaProducer, floor_ms: float = 50.0) -> None:
    """Work around kafka-python 3.0.12's sender thread, which waits for a broker that is not
    ready to take a batch as long as ``connection_delay`` says: seconds, read as milliseconds,
    and 0 while a connection is being set up. With batches waiting and the broker stalled past
    its request timeout (reconnecting to a process that accepts but never answers), it spun a
    full core (benchmarks/stall.py --backlog). Here the delay is given in the milliseconds the
    sender reads, and at least ``floor_ms``: a connection that becomes ready wakes it anyway."""
    client = getattr(getattr(producer, "_sender", None), "_client", None)
    delay = getattr(client, "connection_delay", None)
    if delay is not None:
        client.connection_delay = lambda node_id: max(1000.0 * delay(node_id), floor_ms)


class KafkaSink:
    """``add`` sends asynchronously; ``flush`` returns once everything added is acknowledged,
    and raises :class:`SinkError` if anything failed, so that offsets are never committed past
    an output that was lost."""

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic
        self._failed: list[BaseException] = []
        self.sent = 0

    def _send(self, value: bytes, key: bytes | None = None, headers: list[tuple[str, bytes]] | None = None) -> None:
        future = self.producer.send(self.topic, value=value, key=key, headers=headers)
        future.add_errback(self._failed.append)
        self.sent += 1

    def flush(self, timeout_s: float | None = None) -> None:
        self.producer.flush(timeout=timeout_s)
        if self._failed:
            first, n = self._failed[0], len(self._failed)
            self._failed.clear()
            raise SinkError(f"{n} record(s) to {self.topic} were not delivered: {first}")


class PredictionSink(KafkaSink):
    """One JSON record per event, keyed by the event id.

    Fields: ``id``, ``prediction``, ``confidence``, ``drift`` (a drift is in progress),
    ``model_version`` (learning updates applied before this prediction), ``timestamp`` (the
    event's, Unix seconds, or null).
    """

    def add(self, event_id: str, prediction: Any, confidence: float, drift: bool, model_version: int,
            timestamp: float | None) -> None:
        record = {"id": event_id, "prediction": prediction, "confidence": round(float(confidence), 6),
                  "drift": bool(drift), "model_version": int(model_version), "timestamp": timestamp}
        self._send(json.dumps(record, separators=(",", ":")).encode(), key=utf8(event_id))


class DeadLetterSink(KafkaSink):
    """The original bytes of a rejected message, with why and where from in its headers:
    ``streamssl-reason``, ``streamssl-detail``, ``streamssl-topic``, ``streamssl-partition``,
    ``streamssl-offset``; for a record batch that could not be read, its bytes as fetched, and
    ``streamssl-last-offset``. A message over ``max_bytes`` is cut to that size and says so in
    ``streamssl-truncated`` (its original size)."""

    def __init__(self, producer: KafkaProducer, topic: str, max_bytes: int) -> None:
        super().__init__(producer, topic)
        self.max_bytes = max_bytes

    def add(self, value: bytes | None, key: bytes | None, reason: str, detail: str, topic: str, partition: int,
            offset: int, last_offset: int | None = None) -> None:
        value = value or b""
        headers = [("streamssl-reason", utf8(reason)), ("streamssl-detail", utf8(detail)[:1000]),
                   ("streamssl-topic", utf8(topic)), ("streamssl-partition", str(partition).encode()),
                   ("streamssl-offset", str(offset).encode())]
        if last_offset is not None:
            headers.append(("streamssl-last-offset", str(last_offset).encode()))
        if len(value) > self.max_bytes:
            headers.append(("streamssl-truncated", str(len(value)).encode()))
            value = value[: self.max_bytes]
        self._send(value, key=key, headers=headers)
