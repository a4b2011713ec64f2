"""The checkpoint steps without a daemon or a broker: their order, when one is due, reading back."""

import pytest

from streamssl.config import CheckpointConfig
from streamssl.daemon.checkpointer import Checkpointer
from streamssl.state.checkpoint import CheckpointError


def checkpointer(tmp_path, **settings) -> Checkpointer:
    return Checkpointer(CheckpointConfig(path=tmp_path / "d.ckpt", **settings), kind="test", version=2)


def test_the_outputs_are_flushed_before_the_snapshot_and_handed_over_and_committed_after_the_file(tmp_path):
    ckpts, steps = checkpointer(tmp_path), []

    def snapshot():
        steps.append("snapshot")
        return {"n": 1}

    def hand_over():
        steps.append(("hand_over", (tmp_path / "d.ckpt").exists()))

    def commit(offsets):
        steps.append(("commit", dict(offsets), (tmp_path / "d.ckpt").exists()))

    ckpts.start(snapshot, {"ev:0": 10}, flush=lambda: steps.append("flush"), hand_over=hand_over)
    assert ckpts.pending
    ckpts.finish(commit)
    assert steps == ["flush", "snapshot", ("hand_over", True), ("commit", {"ev:0": 10}, True)]
    assert not ckpts.pending and ckpts.read() == {"kind": "test", "version": 2, "n": 1}
    ckpts.close()


def test_a_failed_write_commits_nothing(tmp_path):
    def unwritable(snapshot):
        raise ValueError("cannot serialise")

    config, commits = CheckpointConfig(path=tmp_path / "d.ckpt"), []
    ckpts = Checkpointer(config, kind="test", version=2, build=unwritable)
    ckpts.start(lambda: {"n": 1}, {"ev:0": 10}, flush=lambda: None)
    with pytest.raises(ValueError, match="cannot serialise"):
        ckpts.finish(commits.append)
    assert commits == [] and not ckpts.pending
    ckpts.close()


def test_a_failed_hand_over_commits_nothing_and_the_file_stands(tmp_path):
    def unreachable():
        raise ConnectionError("handover topic unreachable")

    ckpts, commits = checkpointer(tmp_path), []
    ckpts.start(lambda: {"n": 1}, {"ev:0": 10}, flush=lambda: None, hand_over=unreachable)
    with pytest.raises(ConnectionError):
        ckpts.finish(commits.append)
    assert commits == [] and not ckpts.pending and ckpts.read()["n"] == 1
    ckpts.close()


def test_one_write_at_a_time(tmp_path):
    ckpts = checkpointer(tmp_path)
    ckpts.start(lambda: {}, {}, flush=lambda: None)
    with pytest.raises(RuntimeError, match="already being written"):
        ckpts.start(lambda: {}, {}, flush=lambda: None)
    ckpts.finish(lambda offsets: None)
    ckpts.close()


def test_a_checkpoint_is_due_after_enough_records_or_enough_time_and_never_without_records(tmp_path):
    ckpts = checkpointer(tmp_path, every_events=100, every_s=60)
    assert not ckpts.due()
    ckpts.seen(99)
    assert not ckpts.due()
    ckpts.seen(1)
    assert ckpts.due()
    ckpts.start(lambda: {}, {}, flush=lambda: None)
    ckpts.seen(500)
    assert not ckpts.due()  # a write is in flight
    ckpts.finish(lambda offsets: None)
    assert ckpts.due()  # the 500 records that came meanwhile
    ckpts.start(lambda: {}, {}, flush=lambda: None)
    ckpts.finish(lambda offsets: None)
    ckpts.seen(1)
    assert not ckpts.due()
    ckpts._last -= 61  # a minute on
    assert ckpts.due()
    ckpts.close()


def test_reading_falls_back_to_the_previous_file_and_says_why(tmp_path):
    ckpts = checkpointer(tmp_path)
    assert ckpts.read() is None  # a fresh start
    for n in (1, 2):
        ckpts.start(lambda: {"n": n}, {}, flush=lambda: None)
        ckpts.finish(lambda offsets: None)
    (tmp_path / "d.ckpt").write_bytes(b"damaged")
    assert ckpts.read()["n"] == 1 and ckpts.source.endswith(".prev")
    assert [path for path, _ in ckpts.unusable] == [str(tmp_path / "d.ckpt")]

    def refuse_one(state, source):
        if state["n"] == 1:
            raise CheckpointError(f"{source}: refused")

    with pytest.raises(CheckpointError, match="no usable checkpoint.*refused"):
        ckpts.read(refuse_one)
    other = Checkpointer(CheckpointConfig(path=tmp_path / "d.ckpt"), kind="test", version=3)
    with pytest.raises(CheckpointError, match="state version 2, this version reads 3"):
        other.read()
    ckpts.close()
    other.close()
