import json
import math

import numpy as np
import pytest

from streamssl.config import EventsConfig, LabelsConfig
from streamssl.sources.decode import REASONS, DecodeError, EventDecoder, LabelDecoder

OBJ = EventsConfig(features=["a", "b"], max_message_bytes=1000)
ARR = EventsConfig(layout="array", n_features=2, max_message_bytes=200)


def ok(d: EventDecoder, payload) -> object:
    return d.decode(json.dumps(payload).encode() if not isinstance(payload, bytes) else payload)


def reason(d, payload) -> str:
    with pytest.raises(DecodeError) as err:
        ok(d, payload)
    assert err.value.reason in REASONS
    return err.value.reason


def test_object_layout_reorders_by_configured_names_and_reads_id_time_label():
    e = ok(EventDecoder(OBJ), {"id": 7, "features": {"b": 2, "a": -1.25}, "timestamp": 1_700_000_000_500,
                               "label": 3.0})
    assert e.id == "7" and e.x.dtype == np.float32 and e.x.tolist() == [-1.25, 2.0]
    assert e.timestamp == pytest.approx(1_700_000_000.5)  # milliseconds recognised
    assert e.label == 3 and isinstance(e.label, int)


def test_array_layout_and_fallbacks_for_absent_id_and_timestamp():
    e = EventDecoder(ARR).decode(b'{"features": [1, 2]}', fallback_id="topic:0:5", fallback_ts=12.0)
    assert (e.id, e.x.tolist(), e.timestamp, e.label) == ("topic:0:5", [1.0, 2.0], 12.0, None)


def test_top_level_features_when_features_field_is_null():
    d = EventDecoder(EventsConfig(features=["a", "b"], features_field=None))
    assert ok(d, {"id": "x", "a": 1, "b": 2, "timestamp": 5, "label": "up"}).x.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("payload, expected", [
    (b"", "empty"),
    (b"x" * 1001, "oversized"),
    (b"\xff\xfe\x00garbage", "undecodable"),
    (b'{"id": 1, "features": {"a": 1, "b": 2}', "undecodable"),  # truncated
    (b"[" * 150 + b"]" * 150, "not_object"),
    (b'"just a string"', "not_object"),
    ({"features": {"a": 1, "b": 2}}, "bad_id"),
    ({"id": None, "features": {"a": 1, "b": 2}}, "bad_id"),
    ({"id": True, "features": {"a": 1, "b": 2}}, "bad_id"),
    ({"id": "", "features": {"a": 1, "b": 2}}, "bad_id"),
    ({"id": 1}, "missing_features"),
    ({"id": 1, "features": {"a": 1, "b": 2, "c": 3}}, "extra_features"),
    ({"id": 1, "features": [1, 2]}, "wrong_type"),
    ({"id": 1, "features": {"a": "1", "b": 2}}, "wrong_type"),
    ({"id": 1, "features": {"a": True, "b": 2}}, "wrong_type"),
    ({"id": 1, "features": {"a": [1], "b": 2}}, "wrong_type"),
    (b'{"id": 1, "features": {"a": Infinity, "b": 2}}', "non_finite"),
    ({"id": 1, "features": {"a": 1e300, "b": 2}}, "non_finite"),  # beyond float32
    ({"id": 1, "features": {"a": 10 ** 400, "b": 2}}, "non_finite"),
    ({"id": 1, "features": {"a": 1, "b": 2}, "timestamp": "yesterday"}, "bad_timestamp"),
    ({"id": 1, "features": {"a": 1, "b": 2}, "timestamp": -1}, "bad_timestamp"),
    ({"id": 1, "features": {"a": 1, "b": 2}, "label": 0.5}, "bad_label"),
    ({"id": 1, "features": {"a": 1, "b": 2}, "label": {"x": 1}}, "bad_label"),
])
def test_every_bad_object_message_has_its_reason(payload, expected):
    assert reason(EventDecoder(OBJ), payload) == expected


@pytest.mark.parametrize("payload, expected", [
    ({"id": 1, "features": [1]}, "missing_features"),
    ({"id": 1, "features": [1, 2, 3]}, "extra_features"),
    ({"id": 1, "features": {"a": 1}}, "wrong_type"),
    ({"id": 1, "features": [1, "2"]}, "wrong_type"),
])
def test_every_bad_array_message_has_its_reason(payload, expected):
    assert reason(EventDecoder(ARR), payload) == expected


def test_missing_values_are_imputed_not_refused():
    d = EventDecoder(OBJ)
    assert ok(d, {"id": 1, "features": {"a": 2, "b": 4}}).x.tolist() == [2.0, 4.0]
    assert ok(d, {"id": 2, "features": {"a": 4, "b": None}}).x.tolist() == [4.0, 4.0]  # b: its mean
    assert ok(d, b'{"id": 3, "features": {"a": NaN}}').x.tolist() == [3.0, 4.0]  # NaN and an absent key
    nullable = EventDecoder(EventsConfig(features=[{"name": "a", "nullable": True}, "b"]))
    assert nullable.n_features == 3
    assert ok(nullable, {"id": 1, "features": {"b": 1}}).x.tolist() == [0.0, 1.0, 1.0]


def test_categorical_and_boolean_features():
    d = EventDecoder(EventsConfig(features=[{"name": "os", "type": "categorical", "buckets": 8},
                                            {"name": "vip", "type": "boolean"}, "n"]))
    assert d.n_features == 10
    linux = ok(d, {"id": 1, "features": {"os": "linux", "vip": True, "n": 3}}).x
    assert linux[:8].sum() == 1 and linux[8:].tolist() == [1.0, 3.0]
    unseen = ok(d, {"id": 2, "features": {"os": "plan9", "vip": False, "n": 1}}).x
    assert unseen[:8].sum() == 1 and unseen[8:].tolist() == [0.0, 1.0]
    assert ok(d, {"id": 3, "features": {"os": 7, "n": 1}}).x[:8].sum() == 1  # a number is a category too
    assert ok(d, {"id": 4, "features": {"os": None, "vip": None, "n": 1}}).x[:9].tolist() == [0.0] * 8 + [0.5]
    assert reason(d, {"id": 5, "features": {"os": "x", "vip": "maybe", "n": 1}}) == "wrong_type"
    assert reason(d, {"id": 6, "features": {"os": ["x"], "vip": True, "n": 1}}) == "wrong_type"
    assert reason(d, {"id": 7, "features": {"os": "x", "vip": True, "n": "1"}}) == "wrong_type"


def test_deeply_nested_json_is_refused_not_raised():
    d = EventDecoder(EventsConfig(features=["a"]))
    assert reason(d, b"[" * 200_000 + b"]" * 200_000) == "undecodable"
    assert reason(d, b'{"id": 1, "features": ' + b"{" * 100_000) == "undecodable"


def test_extra_features_can_be_ignored():
    d = EventDecoder(EventsConfig(features=["a"], extra_features="ignore"))
    assert ok(d, {"id": 1, "features": {"a": 1, "zzz": "anything"}}).x.tolist() == [1.0]
    d = EventDecoder(EventsConfig(layout="array", n_features=1, extra_features="ignore"))
    assert ok(d, {"id": 1, "features": [4, 5, 6]}).x.tolist() == [4.0]


def test_labels():
    d = LabelDecoder(LabelsConfig())
    assert d.decode(b'{"id": "e1", "label": 1}') == ("e1", 1)
    assert d.decode(b'{"id": 5, "label": "UP"}') == ("5", "UP")
    for bad, why in [(b'{"label": 1}', "bad_id"), (b'{"id": 1}', "bad_label"), (b'{"id": 1, "label": NaN}', "bad_label"),
                     (b"nope", "undecodable"), (b"", "empty"), (b"x" * 70000, "oversized")]:
        with pytest.raises(DecodeError) as err:
            d.decode(bad)
        assert err.value.reason == why, bad[:30]


def test_decoded_features_are_always_finite_float32():
    d = EventDecoder(OBJ)
    for a in [0, -0.0, 3.4e38, -3.4e38, 1e-45, 2 ** 53 + 1]:
        x = ok(d, {"id": 1, "features": {"a": a, "b": 0}}).x
        assert x.dtype == np.float32 and all(math.isfinite(v) for v in x.tolist())


def test_the_key_names_the_entity_and_a_bad_one_is_refused():
    d = EventDecoder(EventsConfig(features=["a"], key_field="sensor", features_field=None))
    e = ok(d, {"id": 1, "sensor": 17, "a": 2.5})
    assert e.key == "17" and e.x.tolist() == [2.5]  # the key is not a feature
    for bad in ({"id": 1, "a": 2.5}, {"id": 1, "sensor": [1], "a": 2.5}, {"id": 1, "sensor": True, "a": 2.5}):
        assert reason(d, bad) == "bad_key"
    assert ok(EventDecoder(OBJ), {"id": 1, "features": {"a": 1, "b": 2}}).key is None
