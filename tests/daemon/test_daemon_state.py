"""The daemon's checkpoints, without a broker: what is written, what is refused, what is recovered."""

import logging

import numpy as np
import pytest
from kafka import TopicPartition

from streamssl.config import load_config_text
from streamssl.daemon.service import Daemon
from streamssl.state.checkpoint import CheckpointError

CONFIG = """
kafka: {{events_topic: ev, labels_topic: lb, predictions_topic: pr, dead_letter_topic: dl}}
events: {{features: [a, b, c]}}
checkpoint: {{path: {path}}}
"""


def daemon(tmp_path, extra: str = "", environ=None) -> Daemon:
    cfg = load_config_text(CONFIG.format(path=tmp_path / "d.ckpt") + extra, environ=environ or {})
    return Daemon(cfg, log=logging.getLogger("test-daemon"))


def trained(tmp_path, **kw) -> Daemon:
    d = daemon(tmp_path, **kw)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3)).astype(np.float32)
    d.learner.learn_many(X, (X[:, 0] > 0).astype(int).tolist())
    d.join.add_events(["e1"], X[:1], [1], now=0.0)
    d.positions = {TopicPartition("ev", 0): 200, TopicPartition("lb", 1): 7}
    d.model_version = 3
    return d


def test_a_checkpoint_restores_learner_join_offsets_and_counters(tmp_path):
    d = trained(tmp_path)
    d.checkpoint(wait=True)
    r = daemon(tmp_path)
    assert r.restore() is True
    X = np.random.default_rng(1).normal(size=(5, 3))
    assert np.array_equal(r.learner.predict_proba_many(X), d.learner.predict_proba_many(X))
    assert r.positions == d.positions and r.model_version == 3 and list(r.join.events) == ["e1"]
    assert daemon(tmp_path.joinpath("elsewhere")).restore() is False  # nothing to restore: a fresh start


def test_a_checkpoint_keeps_the_imputation_statistics(tmp_path):
    d = trained(tmp_path)
    for i, a in enumerate((1.0, 3.0, 5.0)):
        d.decoder.decode(f'{{"id": "x{i}", "features": {{"a": {a}, "b": 1, "c": 2}}}}'.encode())
    d.checkpoint(wait=True)
    r = daemon(tmp_path)
    assert r.restore() is True
    missing = b'{"id": "y", "features": {"b": 1, "c": null}}'
    assert r.decoder.decode(missing).x.tolist() == d.decoder.decode(missing).x.tolist() == [3.0, 1.0, 2.0]


def test_a_corrupted_checkpoint_falls_back_to_the_previous_one(tmp_path):
    d = trained(tmp_path)
    d.checkpoint(wait=True)
    d.model_version = 4
    d.checkpoint(wait=True)  # the first one is now d.ckpt.prev
    path = tmp_path / "d.ckpt"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    r = daemon(tmp_path)
    assert r.restore() and r.model_version == 3
    (tmp_path / "d.ckpt.prev").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="no usable checkpoint.*checksum mismatch.*not a streamssl checkpoint"):
        daemon(tmp_path).restore()


def test_a_second_fault_after_a_fallback_still_finds_the_last_good_checkpoint(tmp_path):
    d = trained(tmp_path)
    d.checkpoint(wait=True)  # version 3: the good one
    d.model_version = 4
    d.checkpoint(wait=True)
    path = tmp_path / "d.ckpt"
    path.write_bytes(path.read_bytes()[:-100])  # the newest is damaged
    r = daemon(tmp_path)
    assert r.restore() and r.model_version == 3  # from .prev
    r.model_version = 5
    r.checkpoint(wait=True)  # must not rotate the damaged file into .prev
    assert (tmp_path / "d.ckpt.damaged").exists()
    path.write_bytes(b"damaged again")
    again = daemon(tmp_path)
    assert again.restore() and again.model_version == 3


def test_signed_checkpoints_refuse_unsigned_or_foreign_ones(tmp_path):
    trained(tmp_path, environ={"STREAMSSL_CHECKPOINT_HMAC_KEY": "k1"}).checkpoint(wait=True)
    assert daemon(tmp_path, environ={"STREAMSSL_CHECKPOINT_HMAC_KEY": "k1"}).restore()
    with pytest.raises(CheckpointError, match="signature mismatch"):
        daemon(tmp_path, environ={"STREAMSSL_CHECKPOINT_HMAC_KEY": "k2"}).restore()


def test_a_checkpoint_for_other_features_is_refused(tmp_path):
    trained(tmp_path).checkpoint(wait=True)
    other = load_config_text(CONFIG.format(path=tmp_path / "d.ckpt").replace("[a, b, c]", "[a, b]"), environ={})
    with pytest.raises(CheckpointError, match="written for 3 features, the config has 2"):
        Daemon(other, log=logging.getLogger("test-daemon")).restore()


def test_a_background_write_saves_the_state_of_its_snapshot_not_what_came_after(tmp_path):
    d = trained(tmp_path)
    X = np.random.default_rng(2).normal(size=(64, 3)).astype(np.float32)
    before = d.learner.predict_proba_many(X)
    d.checkpoint()  # written by the writer thread...
    d.learner.learn_many(X, [1] * 64)  # ...while the learner goes on
    d.join.add_events(["e2"], X[:1], [0], now=1.0)
    d._finish_checkpoint()
    r = daemon(tmp_path)
    r.restore()
    assert np.array_equal(r.learner.predict_proba_many(X), before) and list(r.join.events) == ["e1"]


def test_the_ready_metric_is_what_readyz_answers(tmp_path):
    d = daemon(tmp_path)
    value = lambda: d.metrics.registry.get_sample_value("streamssl_ready")  # noqa: E731
    assert d.readiness()[0] is False and value() == 0  # starting
    d._ready = (True, {"partitions": 2})
    assert d.readiness()[0] is True and value() == 1
    d._loop_at -= 10 * d.config.http.stall_timeout_s  # the loop stalls: /readyz says so, and so does the metric
    assert d.readiness()[0] is False and value() == 0
