"""Tests for streamssl.state: checkpoint files of a StreamLearner (round trip, continuation,
atomic replacement, corruption, signatures) and the restricted unpickler."""

from __future__ import annotations

import hashlib
import json
import pickle
import struct

import numpy as np
import pytest
import torch

from streamssl.errors import StreamSSLError
from streamssl.learner import StreamLearner
from streamssl.learner.duel import Duel
from streamssl.learner.pseudo import PseudoLabelPolicy
from streamssl.state import checkpoint, serialize
from streamssl.state.checkpoint import CheckpointError, decode, encode, intact, load_learner, save_learner, write_atomic
from streamssl.state.serialize import UnsafeStateError

KEY = b"a secret key for the checkpoints"


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The networks are tiny: more threads only spin against other processes on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def data(n: int, seed: int, n_classes: int = 2) -> tuple[np.ndarray, list[int]]:
    """A seeded stream of 4 features whose class is a band of the first feature."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = np.digitize(X[:, 0] + 0.3 * X[:, 1], np.linspace(-1.0, 1.0, n_classes - 1)) if n_classes > 2 else (
        X[:, 0] + 0.3 * X[:, 1] > 0).astype(int)
    return X, y.tolist()


def feed(models, X, y, batch_size: int = 50, every: int = 3) -> None:
    """Give the same micro-batches to every model: a third of the labels at once, a few
    more as late labels."""
    for i in range(0, len(X), batch_size):
        xb, yb = X[i:i + batch_size], y[i:i + batch_size]
        partial = [v if j % every == 0 else None for j, v in enumerate(yb)]
        for model in models:
            model.learn_many(xb, partial)
            model.learn_late_labels(xb[1:4], yb[1:4])


def trained(encoder: bool, n: int = 600, n_classes: int = 2) -> StreamLearner:
    model = StreamLearner(encoder=encoder, pseudo_labels=PseudoLabelPolicy(threshold=0.9, warmup=20), seed=0, device="cpu")
    feed([model], *data(n, seed=0, n_classes=n_classes))
    return model


def restore(model: StreamLearner, path, **kwargs) -> StreamLearner:
    save_learner(model, path, **kwargs.pop("save_key", {}))
    return load_learner(path, device="cpu", **kwargs)


# -- round trip and continuation ---------------------------------------------------------


@pytest.mark.parametrize("encoder", [True, False], ids=["encoder", "no-encoder"])
def test_round_trip_predicts_identically(tmp_path, encoder):
    model = trained(encoder)
    assert model.policy.accepted > 0, "the fixture should exercise pseudo-labels"
    restored = restore(model, tmp_path / "model.ckpt")
    X, _ = data(300, seed=1)
    np.testing.assert_array_equal(restored.predict_proba_many(X), model.predict_proba_many(X))
    assert restored.classes_ == model.classes_
    assert (restored.ssl is None) == (not encoder)
    assert (restored.n_seen, restored.labels_used, restored.pseudo_labels_accepted) == (
        model.n_seen, model.labels_used, model.pseudo_labels_accepted)


@pytest.mark.parametrize("encoder", [True, False], ids=["encoder", "no-encoder"])
def test_restored_learner_keeps_learning_exactly_like_the_original(tmp_path, encoder):
    model = trained(encoder)
    restored = restore(model, tmp_path / "model.ckpt")
    X, y = data(500, seed=2)
    probe, _ = data(100, seed=3)
    for i in range(0, len(X), 100):
        feed([model, restored], X[i:i + 100], y[i:i + 100])
        np.testing.assert_array_equal(restored.predict_proba_many(probe), model.predict_proba_many(probe),
                                      err_msg=f"after {i + 100} more events")
    assert restored.policy.accepted == model.policy.accepted > 0
    assert restored.policy.rejected == model.policy.rejected
    assert restored.labels_used == model.labels_used
    if encoder:
        assert restored.ssl.steps == model.ssl.steps and restored.ssl_loss == model.ssl_loss


def test_learner_that_has_not_learned_yet_round_trips(tmp_path):
    model = StreamLearner(encoder=False, seed=3, device="cpu")
    restored = restore(model, tmp_path / "fresh.ckpt")
    assert restored.head is None and restored.classes_ == [] and restored.seed == 3
    assert restored.predict_proba_many(np.zeros((2, 4))).shape == (2, 0)


def test_learner_with_drift_events_and_a_challenger_round_trips(tmp_path):
    # A concept that flips halfway triggers the error detectors and a background head;
    # the checkpoint is taken in the middle of the duel.
    model = StreamLearner(encoder=False, seed=0, device="cpu", duel=Duel(min_labels=200))
    X, y = data(1600, seed=4)
    y = y[:800] + [1 - v for v in y[800:]]
    for i in range(0, len(X), 50):
        model.learn_many(X[i:i + 50], y[i:i + 50])
        if model.challenger is not None:
            break
    assert model.drift_events and model.challenger is not None
    restored = restore(model, tmp_path / "drift.ckpt")
    assert restored.challenger is not None
    assert restored.drift_events == model.drift_events
    assert restored.monitor.counts == model.monitor.counts
    assert restored.policy.paused_until == model.policy.paused_until
    X2, y2 = X[i + 50:], y[i + 50:]
    for j in range(0, len(X2), 50):
        for m in (model, restored):
            m.learn_many(X2[j:j + 50], y2[j:j + 50])
        np.testing.assert_array_equal(restored.predict_proba_many(X2), model.predict_proba_many(X2))
    assert model.swaps > 0, "the stream should make the challenger win"
    assert restored.swaps == model.swaps
    # The same detections after the restore too (each stamped with its own wall-clock time).
    same = lambda events: [(e.position, e.signal, e.detector, e.level, e.statistic) for e in events]  # noqa: E731
    assert same(restored.drift_events) == same(model.drift_events)


def test_class_that_appeared_mid_stream_survives_the_round_trip(tmp_path):
    model = StreamLearner(encoder=True, seed=0, device="cpu")
    feed([model], *data(300, seed=0, n_classes=2))
    feed([model], *data(300, seed=1, n_classes=3))
    assert sorted(model.classes_) == [0, 1, 2]
    restored = restore(model, tmp_path / "three.ckpt")
    assert restored.classes_ == model.classes_  # same order: columns of predict_proba_many
    X, y = data(300, seed=2, n_classes=3)
    np.testing.assert_array_equal(restored.predict_proba_many(X), model.predict_proba_many(X))
    assert restored.predict_proba_many(X).shape == (300, 3)
    # Learning goes on identically, whatever torch's global RNG does in between.
    torch.manual_seed(12345)
    feed([model, restored], X, y)
    np.testing.assert_array_equal(restored.predict_proba_many(X), model.predict_proba_many(X))


def test_restored_learner_learns_a_new_class_exactly_like_the_original(tmp_path):
    model = trained(encoder=False, n=300, n_classes=3)  # capacity 4
    restored = restore(model, tmp_path / "grow.ckpt")
    X, y = data(300, seed=6, n_classes=6)  # classes 3, 4, 5: the output layer grows to 8
    feed([model, restored], X, y)
    assert model.head._capacity == restored.head._capacity == 8
    assert restored.classes_ == model.classes_
    np.testing.assert_array_equal(restored.predict_proba_many(X), model.predict_proba_many(X))


# -- files -------------------------------------------------------------------------------


def test_second_save_keeps_the_previous_checkpoint_as_prev(tmp_path):
    path = tmp_path / "sub" / "model.ckpt"
    X, _ = data(200, seed=7)
    model = trained(encoder=False, n=200)
    save_learner(model, path)
    first = model.predict_proba_many(X)
    feed([model], *data(300, seed=8))
    save_learner(model, path)
    prev = path.with_name("model.ckpt.prev")
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.ckpt", "model.ckpt.prev"]
    np.testing.assert_array_equal(load_learner(prev, device="cpu").predict_proba_many(X), first)
    np.testing.assert_array_equal(load_learner(path, device="cpu").predict_proba_many(X),
                                  model.predict_proba_many(X))
    assert not np.array_equal(first, model.predict_proba_many(X))


def test_write_atomic_replaces_whole_files(tmp_path):
    path = tmp_path / "f.bin"
    one, two, three = (encode({"n": n}) for n in (1, 2, 3))
    write_atomic(path, one)
    assert not path.with_name("f.bin.prev").exists()
    write_atomic(path, two)
    write_atomic(path, three)
    assert path.read_bytes() == three
    assert path.with_name("f.bin.prev").read_bytes() == two
    assert not path.with_name("f.bin.tmp").exists()


def test_a_damaged_file_is_moved_aside_and_never_replaces_the_good_backup(tmp_path):
    path, prev, damaged = tmp_path / "f.bin", tmp_path / "f.bin.prev", tmp_path / "f.bin.damaged"
    write_atomic(path, encode({"n": 1}))
    write_atomic(path, encode({"n": 2}))
    path.write_bytes(path.read_bytes()[:-3])  # the newest is damaged (a restore falls back to .prev)
    assert not intact(path) and intact(prev)
    write_atomic(path, encode({"n": 3}))
    assert decode(prev.read_bytes()) == {"n": 1}  # the good backup stays the backup
    assert decode(path.read_bytes()) == {"n": 3} and not intact(damaged)
    write_atomic(path, encode({"n": 4}))  # a whole file rotates as before
    assert decode(prev.read_bytes()) == {"n": 3}


# -- damaged files -----------------------------------------------------------------------


def _framed(header: object, payload: bytes) -> bytes:
    head = json.dumps(header).encode()
    return checkpoint.MAGIC + struct.pack(">I", len(head)) + head + payload


def _future(good: bytes, monkeypatch) -> bytes:
    monkeypatch.setattr(checkpoint, "FORMAT_VERSION", checkpoint.FORMAT_VERSION + 1)
    data = encode({"kind": "StreamLearner", "state": {}})
    monkeypatch.undo()
    return data


def _flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at:][1:]


HEADER_END = len(checkpoint.MAGIC) + 4


@pytest.mark.parametrize("damage,message", [
    (lambda d, mp: d[: len(d) // 2], "checksum mismatch"),
    (lambda d, mp: d[: HEADER_END + 10], "unreadable header"),
    (lambda d, mp: d[: len(checkpoint.MAGIC) + 2], "not a streamssl checkpoint"),
    (lambda d, mp: _flip(d, len(d) - 100), "checksum mismatch"),
    (lambda d, mp: _flip(d, 0), "not a streamssl checkpoint"),
    (lambda d, mp: b"PK\x03\x04" + d[4:], "not a streamssl checkpoint"),
    (lambda d, mp: b"", "not a streamssl checkpoint"),
    (_future, f"format {checkpoint.FORMAT_VERSION + 1}, this version reads {checkpoint.FORMAT_VERSION}"),
], ids=["truncated", "truncated-header", "truncated-length", "flipped-payload-byte", "flipped-magic",
        "wrong-magic", "empty", "future-version"])
def test_damaged_checkpoint_is_refused_naming_the_file(tmp_path, monkeypatch, damage, message):
    good = tmp_path / "good.ckpt"
    save_learner(trained(encoder=False, n=100), good)
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(damage(good.read_bytes(), monkeypatch))
    with pytest.raises(CheckpointError) as info:
        load_learner(bad, device="cpu")
    assert str(info.value).startswith(f"{bad}: ")
    assert message in str(info.value)
    assert isinstance(info.value, StreamSSLError)


def test_missing_checkpoint_is_refused_naming_the_file(tmp_path):
    with pytest.raises(CheckpointError, match="nope.ckpt: No such file"):
        load_learner(tmp_path / "nope.ckpt")


def test_checkpoint_of_something_else_is_refused(tmp_path):
    path = tmp_path / "other.ckpt"
    write_atomic(path, encode({"kind": "Pipeline", "state": {}}))
    with pytest.raises(CheckpointError, match="other.ckpt: not a StreamLearner checkpoint"):
        load_learner(path)


def test_header_that_is_not_a_json_object_is_refused():
    with pytest.raises(CheckpointError, match="x.ckpt"):
        decode(_framed([1, 2], b""), source="x.ckpt")


def test_payload_that_is_not_a_pickle_is_refused():
    payload = serialize.dumps({"a": 1})[:-3]
    data = _framed({"format": checkpoint.FORMAT_VERSION, "sha256": hashlib.sha256(payload).hexdigest()}, payload)
    with pytest.raises(CheckpointError, match="x.ckpt"):
        decode(data, source="x.ckpt")


# -- signatures --------------------------------------------------------------------------


def test_signed_checkpoint_loads_with_its_key(tmp_path):
    model = trained(encoder=False, n=100)
    restored = restore(model, tmp_path / "signed.ckpt", save_key={"key": KEY}, key=KEY)
    X, _ = data(50, seed=9)
    np.testing.assert_array_equal(restored.predict_proba_many(X), model.predict_proba_many(X))
    header = json.loads((tmp_path / "signed.ckpt").read_bytes()[HEADER_END:].split(b"}", 1)[0] + b"}")
    assert set(header) == {"format", "sha256", "hmac_sha256"}


def test_signed_checkpoint_is_refused_with_the_wrong_key(tmp_path):
    path = tmp_path / "signed.ckpt"
    save_learner(trained(encoder=False, n=100), path, key=KEY)
    with pytest.raises(CheckpointError, match=f"{path}: signature mismatch"):
        load_learner(path, key=b"another key")


def test_unsigned_checkpoint_is_refused_when_a_key_is_required(tmp_path):
    path = tmp_path / "unsigned.ckpt"
    save_learner(trained(encoder=False, n=100), path)
    with pytest.raises(CheckpointError, match=f"{path}: signature mismatch"):
        load_learner(path, key=KEY)


def test_re_checksummed_tampered_payload_is_refused_by_the_signature():
    data = encode({"kind": "StreamLearner", "n": 1}, key=KEY)
    (n,) = struct.unpack(">I", data[len(checkpoint.MAGIC):HEADER_END])
    header = json.loads(data[HEADER_END:HEADER_END + n])
    payload = serialize.dumps({"kind": "StreamLearner", "n": 2})
    header["sha256"] = hashlib.sha256(payload).hexdigest()  # the attacker fixes the checksum
    with pytest.raises(CheckpointError, match="signature mismatch"):
        decode(_framed(header, payload), key=KEY)
    assert decode(data, key=KEY) == {"kind": "StreamLearner", "n": 1}


# -- hostile payloads --------------------------------------------------------------------


class _RunsACommand:
    def __init__(self, command: str) -> None:
        self.command = command

    def __reduce__(self):
        import os

        return os.system, (self.command,)


def _global_call(module: str, name: str, arg: str) -> bytes:
    """A protocol-4 pickle that calls ``module.name(arg)`` (``name`` may be dotted)."""
    def text(s: str) -> bytes:
        b = s.encode()
        return pickle.SHORT_BINUNICODE + bytes([len(b)]) + b

    return (pickle.PROTO + b"\x04" + text(module) + text(name) + pickle.STACK_GLOBAL
            + text(arg) + pickle.TUPLE1 + pickle.REDUCE + pickle.STOP)


def _checkpoint_with_payload(payload: bytes, monkeypatch, key: bytes | None = None) -> bytes:
    """The payload framed by the module itself: valid magic, header, checksum (and signature)."""
    monkeypatch.setattr(serialize, "dumps", lambda state: payload)
    data = encode({}, key)
    monkeypatch.undo()
    return data


@pytest.mark.parametrize("key", [None, KEY], ids=["unsigned", "signed"])
def test_pickle_that_runs_a_command_is_refused_and_never_runs(tmp_path, monkeypatch, key):
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"kind": "StreamLearner", "state": _RunsACommand(f"touch {marker}")})
    path = tmp_path / "evil.ckpt"
    path.write_bytes(_checkpoint_with_payload(payload, monkeypatch, key))
    with pytest.raises(CheckpointError, match=f"{path}: refusing to load posix.system"):
        load_learner(path, key=key)
    assert not marker.exists()
    with pytest.raises(UnsafeStateError):
        serialize.loads(payload)
    assert not marker.exists()


@pytest.mark.parametrize("module,name", [("builtins", "eval"), ("subprocess", "getoutput"), ("numpy", "load"),
                                         ("collections", "namedtuple")])
def test_globals_off_the_allow_list_are_refused(tmp_path, module, name):
    marker = tmp_path / "pwned"
    with pytest.raises(UnsafeStateError, match=f"refusing to load {module}.{name}"):
        serialize.loads(_global_call(module, name, f"touch {marker}"))
    assert not marker.exists()


def test_allowed_module_prefix_does_not_open_a_path_to_os_system(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    payload = _global_call("river.drift.datasets.base", "pathlib.os.system", f"touch {marker}")
    path = tmp_path / "evil.ckpt"
    path.write_bytes(_checkpoint_with_payload(payload, monkeypatch))
    try:
        with pytest.raises(CheckpointError, match="refusing to load"):
            load_learner(path)
    finally:
        assert not marker.exists(), "the checkpoint ran a shell command"


def test_state_tree_round_trips_through_serialize():
    state = {"w": torch.arange(3.0), "a": np.arange(4), "t": (1, "x"), "l": [None, 2.5]}
    back = serialize.loads(serialize.dumps(state))
    assert isinstance(back["w"], torch.Tensor) and back["w"].tolist() == [0.0, 1.0, 2.0]
    np.testing.assert_array_equal(back["a"], np.arange(4))
    assert back["t"] == (1, "x") and back["l"] == [None, 2.5]


def test_a_partial_over_a_refused_callable_is_refused(tmp_path):
    """``functools.partial`` is allowed (river's trees keep ``partial(defaultdict, float)``),
    but the callable inside it is resolved like any other global."""
    import functools
    import os

    marker = tmp_path / "pwned"
    with pytest.raises(UnsafeStateError, match="refusing to load posix.system"):
        serialize.loads(pickle.dumps(functools.partial(os.system, f"touch {marker}")))
    assert not marker.exists()
    with pytest.raises(UnsafeStateError, match="refusing to load river.datasets"):
        serialize.loads(pickle.dumps(__import__("river").datasets.Phishing()))  # river, but not a state type


def test_a_river_forest_round_trips_through_the_restricted_loader():
    from river import datasets, forest

    model = forest.ARFClassifier(n_models=3, seed=0)
    data = list(datasets.Phishing())[:300]
    for x, y in data[:200]:
        model.learn_one(x, y)
    back = serialize.loads(serialize.dumps({"forest": model}))["forest"]
    assert [back.predict_proba_one(x) for x, _ in data[200:]] == [model.predict_proba_one(x) for x, _ in data[200:]]
