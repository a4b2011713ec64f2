"""One rule for labels (streamssl.schema.label_value): a file replayed and the same records sent
through Kafka have the same classes, and refuse the same labels for the same reason."""

import json
import math

import pytest

from streamssl.config import EventsConfig, LabelsConfig
from streamssl.sources.decode import DecodeError, EventDecoder, LabelDecoder
from streamssl.sources.file import BadRecord, FileSource

VALUES = [3, -1.0, 2.0, " 4 ", "7.0", "+5", "spam", " up ", True, False, "", " NA ", None, math.nan,
          0.5, math.inf, [1], {"x": 1}, "x" * 300, 10 ** 300]


def from_file(tmp_path, value):
    """The label FileSource reads for ``value`` in a JSON line, or the kind of the bad record."""
    path = tmp_path / "one.jsonl"
    records = [{"id": "a", "f": 1.0, "label": 0}, {"id": "b", "f": 2.0, "label": value}]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    bad: list[BadRecord] = []
    labels = [y for batch in FileSource(path, on_bad=bad.append, infer_rows=1) for y in batch.y]
    return ("refused", bad[0].kind) if bad else labels[1]


def from_kafka(value):
    """The label the daemon's decoder reads for ``value`` in an event message, or the reason."""
    message = json.dumps({"id": "b", "features": {"f": 2.0}, "label": value}).encode()
    try:
        return EventDecoder(EventsConfig(features=["f"])).decode(message).label
    except DecodeError as exc:
        return ("refused", exc.reason)


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_a_file_and_kafka_read_the_same_label(tmp_path, value):
    got = from_file(tmp_path, value)
    assert got == from_kafka(value) and type(got) is type(from_kafka(value))


def test_what_the_rule_makes_of_each_value(tmp_path):
    assert [from_kafka(v) for v in VALUES] == [
        3, -1, 2, 4, 7, 5, "spam", "up", True, False, None, None, None, None,
        *[("refused", "bad_label")] * 6]


def test_a_labels_topic_message_follows_the_same_rule_and_needs_a_label():
    d = LabelDecoder(LabelsConfig())
    assert [d.decode(json.dumps({"id": "b", "label": v}).encode())[1] for v in (2.0, " 4 ", " up ", True)] == \
        [2, 4, "up", True]
    for missing in ("", " NA ", None):
        with pytest.raises(DecodeError, match="bad_label"):
            d.decode(json.dumps({"id": "b", "label": missing}).encode())
