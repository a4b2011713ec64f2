"""Property-based fuzzing of everything that reads untrusted input: the event and label decoders,
the file replay reader, and the learner behind them. Whatever comes in, nothing raises but the
documented error, every refusal has a reason from the bounded set, and the model stays finite."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from streamssl.config import EventsConfig, LabelsConfig
from streamssl.errors import InputError
from streamssl.learner import StreamLearner
from streamssl.learner.pseudo import PseudoLabelPolicy
from streamssl.sources.decode import REASONS, DecodeError, EventDecoder, LabelDecoder
from streamssl.sources.file import FileSource

FEATURES = ["a", "b", "c"]
OBJECT = EventDecoder(EventsConfig(features=FEATURES, max_message_bytes=4096))
ARRAY = EventDecoder(EventsConfig(layout="array", n_features=3, features_field="x", extra_features="ignore",
                                  key_field="k", max_message_bytes=4096))
LABELS = LabelDecoder(LabelsConfig(), max_bytes=4096)
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Any character, lone surrogates included (JSON's "\ud800" escapes decode to them, and no UTF-8
# encoder takes them back: such an id crash-looped the daemon).
CHARS = st.characters() | st.characters(categories=["Cs"])


def text(**kw) -> st.SearchStrategy[str]:
    return st.text(alphabet=CHARS, **kw)


numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(min_value=-(10**400), max_value=10**400),
                    st.floats(min_value=-1e6, max_value=1e6))
scalars = st.one_of(st.none(), st.booleans(), numbers, text(max_size=20))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text(max_size=8), inner,
                                                                                                max_size=4), max_leaves=20)
feature_values = st.one_of(numbers, scalars, json_values)


@st.composite
def event_like(draw) -> dict:
    """Objects close to a real event: the right fields with wrong types, values or extras, missing
    ones, reordered keys."""
    names = draw(st.lists(st.sampled_from(FEATURES + ["d", "ä", ""]), unique=True, max_size=5))
    features = {n: draw(feature_values) for n in names}
    obj = {}
    if draw(st.booleans()):
        obj["id"] = draw(st.one_of(text(max_size=300), st.integers(), json_values))
    if draw(st.booleans()):
        obj["features"] = features if draw(st.booleans()) else draw(json_values)
    if draw(st.booleans()):
        obj["timestamp"] = draw(st.one_of(numbers, scalars))
    if draw(st.booleans()):
        obj["label"] = draw(st.one_of(scalars, json_values))
    for key in draw(st.lists(text(max_size=6), max_size=3)):
        obj[key] = draw(scalars)
    items = list(obj.items())
    return dict(draw(st.permutations(items))) if items else obj


def to_bytes(obj) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


messages = st.one_of(
    st.binary(max_size=600),
    st.builds(to_bytes, json_values),
    st.builds(to_bytes, event_like()),
    st.builds(lambda b, n: to_bytes(b)[:n], event_like(), st.integers(0, 200)),  # truncated
    st.builds(lambda d: (b"[" * d + b"]" * d), st.integers(1, 100_000)),  # deeply nested
    st.builds(lambda n: b'{"id": "x", "features": {"a": 1, "b": 2, "c": 3}, "pad": "' + b"x" * n + b'"}',
              st.integers(4000, 6000)),  # oversized
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.just(b""), st.none(),
)


def check_event(decoder: EventDecoder, value: bytes | None) -> None:
    try:
        event = decoder.decode(value, fallback_id="", fallback_ts=None)
    except DecodeError as exc:
        assert exc.reason in REASONS and exc.detail
        assert len(exc.detail) < 1000  # bounded, even for a 100k-level nesting or a huge message
        return
    assert isinstance(event.id, str) and 0 < len(event.id) <= 256
    assert event.x.dtype == np.float32 and event.x.shape == (3,) and np.isfinite(event.x).all()
    assert event.timestamp is None or (math.isfinite(event.timestamp) and event.timestamp >= 0)
    assert event.label is None or isinstance(event.label, (str, int, bool))
    for text_ in (event.id, event.key, event.label):
        if isinstance(text_, str):
            text_.encode("utf-8")  # what the sinks, logs and metrics re-encode


@FUZZ
@given(messages)
@example(b'{"id": 0, "timestamp": ' + b"3" * 400 + b"}")  # found by this test: an int beyond float range
@example(b'{"id": 1, "features": {"a": 1, "b": 2, "c": 3}, "label": ' + b"7" * 300 + b"}")
def test_the_event_decoder_returns_a_finite_event_or_a_reason(value):
    check_event(OBJECT, value)
    check_event(ARRAY, value)


@FUZZ
@given(st.builds(to_bytes, st.fixed_dictionaries(
    {"id": st.one_of(text(min_size=1, max_size=10), st.integers()), "features": st.fixed_dictionaries(
        {n: st.floats(-1e6, 1e6) for n in FEATURES})},
    optional={"label": st.one_of(text(max_size=10), st.integers(), st.booleans())})))
@example(b'{"id": "sur\\ud800", "features": {"a": 1, "b": 2, "c": 3}}')
def test_strings_of_well_formed_events_can_be_encoded_again(value):
    check_event(OBJECT, value)


@FUZZ
@given(st.builds(to_bytes, st.fixed_dictionaries({"id": text(min_size=1, max_size=10)},
                                                 optional={"x": st.lists(feature_values, max_size=5),
                                                           "k": st.one_of(text(max_size=300), st.integers(),
                                                                          json_values)})))
def test_array_layout_and_entity_keys(value):
    check_event(ARRAY, value)


@FUZZ
@given(st.one_of(messages, st.builds(to_bytes, st.fixed_dictionaries(
    {}, optional={"id": st.one_of(text(max_size=300), st.integers(), json_values),
                  "label": st.one_of(scalars, json_values)}))))
def test_the_label_decoder_returns_an_id_and_a_label_or_a_reason(value):
    try:
        event_id, label = LABELS.decode(value)
    except DecodeError as exc:
        assert exc.reason in REASONS and exc.detail
        return
    assert isinstance(event_id, str) and event_id
    assert isinstance(label, (str, int, bool))
    event_id.encode("utf-8"), label.encode("utf-8") if isinstance(label, str) else None


lines = st.one_of(
    st.text(max_size=60).filter(lambda t: "\n" not in t and "\r" not in t),
    st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str),
                       st.text(max_size=5).filter(lambda t: "," not in t and "\n" not in t and "\r" not in t)),
             min_size=0, max_size=5).map(",".join),
)


@FUZZ
@given(st.lists(lines, max_size=30), st.sampled_from(["csv", "jsonl"]))
def test_the_file_reader_reports_every_bad_row_and_yields_only_finite_rows(tmp_path_factory, rows, fmt):
    path = tmp_path_factory.mktemp("fuzz") / f"s.{fmt}"
    header = "a,b,label" if fmt == "csv" else None
    body = [r if fmt == "csv" else json.dumps({"a": r, "label": r}) if r.startswith("x") else r for r in rows]
    path.write_text("\n".join(([header] if header else []) + body) + "\n", encoding="utf-8")
    bad = []
    try:
        source = FileSource(path, batch_size=4, on_bad=bad.append)
        batches = list(source)
    except InputError as exc:  # a problem with the file as a whole (e.g. no data), said clearly
        assert str(exc)
        return
    good = sum(len(b.y) for b in batches)
    for b in batches:
        assert np.isfinite(b.X).all() and b.X.shape[0] == len(b.y) > 0
    assert source.rows_read == good and source.bad_records == len(bad)
    assert all(r.reason and r.line >= 1 for r in bad)
    data_lines = [r for r in body if r.strip()]
    assert good + len(bad) <= len(data_lines) + 1  # every non-blank line is a row, good or bad (a header at most aside)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=3, max_size=3),
                          st.one_of(st.none(), st.integers(0, 50), st.text(max_size=3))),
                min_size=1, max_size=200),
       st.integers(1, 64))
def test_the_learner_stays_finite_on_any_finite_events_and_any_labels(rows, batch):
    model = StreamLearner(encoder=True, pseudo_labels=PseudoLabelPolicy(warmup=5), seed=0)
    X = np.array([r[0] for r in rows], dtype=np.float64)
    y = [r[1] for r in rows]
    for i in range(0, len(rows), batch):
        model.learn_many(X[i:i + batch], y[i:i + batch])
        model.learn_late_labels(X[i:i + 1], ["late-unseen-class"])
        proba = model.predict_proba_many(X[i:i + batch])
        assert np.isfinite(proba).all()
    for head in (model.head, model.heads["raw"].mlp, model.challenger):
        if head is not None:
            for name, tensor in head.net.state_dict().items():
                assert torch.isfinite(tensor).all(), name
    if model.ssl is not None:
        for name, tensor in model.ssl.objective.state_dict().items():
            assert torch.isfinite(tensor.float()).all(), name


def test_non_finite_events_are_refused_by_the_learner_not_learned():
    model = StreamLearner(seed=0)
    with pytest.raises(ValueError, match="NaN or infinite"):
        model.learn_many(np.array([[1.0, np.nan, 0.0]]), [1])
