"""Decoding event and label messages (JSON bytes) into numbers, with a reason for every refusal.

Nothing here raises anything but :class:`DecodeError`, whatever the bytes: the daemon sends
the message to its dead-letter topic with ``reason`` (a short, bounded label for metrics) and
``detail`` (for a person).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Hashable

import numpy as np

from ..config import EventsConfig, LabelsConfig
from ..errors import StreamSSLError
from ..schema import EncodeError, FeatureEncoder, label_value

#: Every reason a message can be refused for; the metric label set stays bounded. The daemon
#: adds one of its own: ``unreadable_batch``, a record batch Kafka's client could not read.
REASONS = ("oversized", "empty", "undecodable", "not_object", "bad_id", "bad_key", "missing_features",
           "extra_features", "wrong_type", "non_finite", "bad_timestamp", "bad_label")

_MAX_ID_CHARS = 256


class DecodeError(StreamSSLError):
    """A message that cannot become an event or a label."""

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Event:
    """One decoded event: its id, its features, its timestamp (Unix seconds), inline label,
    and the entity it belongs to (``key``, when the config names a key field)."""

    id: str
    x: np.ndarray
    timestamp: float | None
    label: Hashable | None
    key: str | None = None


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _loads(value: bytes | None, max_bytes: int) -> dict:
    if value is None or len(value) == 0:
        raise DecodeError("empty", "empty message")
    if len(value) > max_bytes:
        raise DecodeError("oversized", f"{len(value)} bytes, the limit is {max_bytes}")
    try:
        obj = json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise DecodeError("undecodable", f"not UTF-8 JSON ({type(exc).__name__}: {str(exc)[:80]})") from None
    except RecursionError:
        raise DecodeError("undecodable", "JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise DecodeError("not_object", f"a JSON {type(obj).__name__}, not an object")
    return obj


def _text(value: str, reason: str, what: str) -> str:
    """``value`` if it has 1 to ``_MAX_ID_CHARS`` characters and is valid Unicode. JSON's
    ``\\ud800`` escapes decode to lone surrogates, which no UTF-8 encoder (a Kafka key, a header,
    a metric label) accepts: such a string is refused here, not by the sink that re-encodes it.

    >>> _text("sur" + chr(0xD800), "bad_id", "id")
    Traceback (most recent call last):
    ...
    streamssl.sources.decode.DecodeError: bad_id: id is not valid Unicode (a lone surrogate): 'sur\\ud800'
    """
    if not 0 < len(value) <= _MAX_ID_CHARS:
        raise DecodeError(reason, f"{what} must have 1 to {_MAX_ID_CHARS} characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise DecodeError(reason, f"{what} is not valid Unicode (a lone surrogate): {_short(value)}") from None
    return value


def _event_id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DecodeError("bad_id", f"id must be a string or an integer, got {_short(value)}")
    return _text(value if isinstance(value, str) else str(value), "bad_id", "id")


def _label(value: Any) -> Hashable | None:
    """A class label, by the rule every source reads labels with (:func:`~streamssl.schema.label_value`)."""
    try:
        return label_value(value)
    except EncodeError as exc:
        raise DecodeError(exc.reason, exc.detail) from None


class EventDecoder:
    """Turns event messages into :class:`Event` s as the config describes; the features are
    encoded by the config's schema (:mod:`streamssl.schema`), missing values imputed.

    Examples
    --------
    >>> d = EventDecoder(EventsConfig(features=["a", "b", {"name": "os", "type": "categorical", "buckets": 2}]))
    >>> e = d.decode(b'{"id": "e1", "features": {"b": 2, "a": 1.5, "os": "linux"}, "timestamp": 1700000000}')
    >>> e.id, e.x.tolist(), e.timestamp, e.label
    ('e1', [1.5, 2.0, 0.0, 1.0], 1700000000.0, None)
    >>> d.decode(b'{"id": "e2", "features": {"a": 3, "b": NaN}}').x.tolist()  # b and os missing
    [3.0, 2.0, 0.0, 0.0]
    >>> d.decode(b'{"id": "e3", "features": {"a": 1, "b": Infinity}}')
    Traceback (most recent call last):
    ...
    streamssl.sources.decode.DecodeError: non_finite: column 'b': inf is not a finite float32
    """

    def __init__(self, config: EventsConfig) -> None:
        self.config = config
        self.encoder = FeatureEncoder(config.columns())
        self._names = [c.name for c in self.encoder.columns]
        self._known = set(self._names)
        self._reserved = {f for f in (config.id_field, config.key_field, config.timestamp_field, config.label_field)
                          if f}

    @property
    def n_features(self) -> int:
        """The width of an encoded event (what the learner sees)."""
        return self.encoder.width

    def decode(self, value: bytes | None, fallback_id: str = "", fallback_ts: float | None = None) -> Event:
        """The event in ``value``; ``fallback_id``/``fallback_ts`` stand in for absent fields."""
        c = self.config
        obj = _loads(value, c.max_message_bytes)
        event_id = fallback_id
        if c.id_field and c.id_field in obj:
            event_id = _event_id(obj[c.id_field])
        elif not event_id:
            raise DecodeError("bad_id", f"no {c.id_field!r} field")
        ts = fallback_ts
        if c.timestamp_field and obj.get(c.timestamp_field) is not None:
            ts = _timestamp(obj[c.timestamp_field])
        label = _label(obj.get(c.label_field)) if c.label_field else None
        key = None
        if c.key_field:
            value = obj.get(c.key_field)
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise DecodeError("bad_key", f"{c.key_field}: expected a string or an integer, got {_short(value)}")
            key = _text(str(value), "bad_key", c.key_field)
        return Event(event_id, self._features(obj), ts, label, key)

    def _features(self, obj: dict) -> np.ndarray:
        c = self.config
        if c.features_field is None:
            raw: Any = {k: v for k, v in obj.items() if k not in self._reserved}
        elif c.features_field not in obj:
            raise DecodeError("missing_features", f"no {c.features_field!r} field")
        else:
            raw = obj[c.features_field]
        if c.layout == "array":
            if not isinstance(raw, list):
                raise DecodeError("wrong_type", f"{c.features_field}: expected an array, got {type(raw).__name__}")
            if len(raw) < len(self._names):
                raise DecodeError("missing_features", f"{len(raw)} features, expected {len(self._names)}")
            if len(raw) > len(self._names) and c.extra_features == "reject":
                raise DecodeError("extra_features", f"{len(raw)} features, expected {len(self._names)}")
            values = raw[: len(self._names)]
        else:
            if not isinstance(raw, dict):
                raise DecodeError("wrong_type", f"{c.features_field}: expected an object, got {type(raw).__name__}")
            if c.extra_features == "reject" and not self._known.issuperset(raw):  # (a scan in C)
                extra = [k for k in raw if k not in self._known]
                raise DecodeError("extra_features", f"unexpected {', '.join(_short(n, 30) for n in extra[:5])}")
            values = list(map(raw.get, self._names))  # an absent key is a missing value
        try:
            return self.encoder.encode(values).astype(np.float32)
        except EncodeError as exc:
            raise DecodeError(exc.reason, exc.detail) from None


def _timestamp(value: Any) -> float:
    """Unix seconds; numbers above 1e11 are taken as milliseconds.

    >>> _timestamp(10 ** 400)
    Traceback (most recent call last):
    ...
    streamssl.sources.decode.DecodeError: bad_timestamp: expected Unix seconds or milliseconds, got 1000...
    """
    try:
        seconds = float(value) if not isinstance(value, bool) and isinstance(value, (int, float)) else math.nan
    except OverflowError:  # an integer beyond float range (found by the fuzz tests)
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0:
        raise DecodeError("bad_timestamp", f"expected Unix seconds or milliseconds, got {_short(value)}")
    return seconds / 1000.0 if seconds > 1e11 else seconds


class LabelDecoder:
    """Turns ``{id, label}`` messages into ``(id, label)`` pairs.

    >>> LabelDecoder(LabelsConfig()).decode(b'{"id": 7, "label": "up"}')
    ('7', 'up')
    """

    def __init__(self, config: LabelsConfig, max_bytes: int = 1 << 16) -> None:
        self.config = config
        self.max_bytes = max_bytes

    def decode(self, value: bytes | None) -> tuple[str, Hashable]:
        obj = _loads(value, self.max_bytes)
        if self.config.id_field not in obj:
            raise DecodeError("bad_id", f"no {self.config.id_field!r} field")
        event_id = _event_id(obj[self.config.id_field])
        label = _label(obj.get(self.config.label_field))
        if label is None:
            raise DecodeError("bad_label", f"no {self.config.label_field!r} value")
        return event_id, label
