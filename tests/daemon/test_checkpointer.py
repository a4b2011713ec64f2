"""The checkpoint steps without a daemon or a broker: their order, when one is due, reading back."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from streamssl.config import CheckpointConfig
from streamssl.daemon.checkpointer import Checkpointer, ChildWrite, can_fork, can_idle
from streamssl.state.checkpoint import CheckpointError

WRITERS = ["process", "thread"] if can_fork() else ["thread"]


@pytest.fixture(params=WRITERS)
def writer(request):
    return request.param


def checkpointer(tmp_path, writer="process", **settings) -> Checkpointer:
    return Checkpointer(CheckpointConfig(path=tmp_path / "d.ckpt", **settings), kind="test", version=2, writer=writer)


def test_the_outputs_are_flushed_before_the_snapshot_and_handed_over_and_committed_after_the_file(tmp_path, writer):
    ckpts, steps = checkpointer(tmp_path, writer), []

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


def test_a_failed_write_commits_nothing(tmp_path, writer):
    def unwritable(snapshot):
        raise ValueError("cannot serialise")

    config, commits = CheckpointConfig(path=tmp_path / "d.ckpt"), []
    ckpts = Checkpointer(config, kind="test", version=2, build=unwritable, writer=writer)
    ckpts.start(lambda: {"n": 1}, {"ev:0": 10}, flush=lambda: None)
    # The thread re-raises the error itself; the child process reports it, with its type.
    with pytest.raises(ValueError if writer == "thread" else CheckpointError, match="ValueError: cannot serialise"
                       if writer == "process" else "cannot serialise"):
        ckpts.finish(commits.append)
    assert commits == [] and not ckpts.pending and not (tmp_path / "d.ckpt").exists()
    ckpts.close()


@pytest.mark.skipif(not can_fork(), reason="forked writers need Linux")
def test_the_forked_writer_writes_the_state_as_it_was_while_the_caller_goes_on(tmp_path):
    ckpts = checkpointer(tmp_path, "process")
    state = {"w": np.arange(1_000_000, dtype=np.float64), "seen": [1, 2]}
    ckpts.start(lambda: state, {}, flush=lambda: None)  # no copy taken
    state["w"][:] = -1.0  # the caller goes on at once and changes everything
    state["seen"].append(3)
    ckpts.finish(lambda offsets: None)
    written = ckpts.read()
    assert written["seen"] == [1, 2] and written["w"][0] == 0.0 and written["w"][-1] == 999_999.0
    ckpts.close()


@pytest.mark.skipif(not can_fork(), reason="forked writers need Linux")
def test_a_forked_writer_dies_with_its_daemon(tmp_path):
    """A daemon killed mid-write takes its writer with it: no late file lands after a restart."""
    script = f"""
import time
from streamssl.config import CheckpointConfig
from streamssl.daemon.checkpointer import Checkpointer

def slow(snapshot):
    time.sleep(120)
    return snapshot

ckpts = Checkpointer(CheckpointConfig(path={str(tmp_path / "d.ckpt")!r}), "test", 2, build=slow, writer="process")
ckpts.start(lambda: {{"n": 1}}, {{}}, flush=lambda: None)
print(ckpts._writing[0].pid, flush=True)
time.sleep(120)
"""
    daemon = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(daemon.stdout.readline())
        assert _alive(child)
        daemon.kill()
        daemon.wait(60)
        deadline = time.monotonic() + 60
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child) and not (tmp_path / "d.ckpt").exists()
    finally:
        daemon.kill()


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"  # a zombie is dead
    except FileNotFoundError:
        return False


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


def test_a_file_this_checkpointer_wrote_or_read_back_is_kept_without_reading_it_again(tmp_path, monkeypatch):
    from streamssl.state import checkpoint as ckpt

    checked = []
    real = ckpt.intact
    monkeypatch.setattr(ckpt, "intact", lambda path: checked.append(path) or real(path))
    ckpts = checkpointer(tmp_path, "thread")
    for n in (1, 2, 3):
        ckpts.start(lambda: {"n": n}, {}, flush=lambda: None)
        ckpts.finish(lambda offsets: None)
    assert checked == [] and ckpts.read()["n"] == 3 and ckpts.unusable == []
    ckpts.start(lambda: {"n": 4}, {}, flush=lambda: None)  # after reading the file back: still known whole
    ckpts.finish(lambda offsets: None)
    assert checked == []
    (tmp_path / "d.ckpt").write_bytes(b"damaged")
    assert ckpts.read()["n"] == 3  # from .prev: the file is not known whole, so the next write checks it
    ckpts.start(lambda: {"n": 5}, {}, flush=lambda: None)
    ckpts.finish(lambda offsets: None)
    assert checked == [tmp_path / "d.ckpt"] and (tmp_path / "d.ckpt.damaged").read_bytes() == b"damaged"
    assert Checkpointer(CheckpointConfig(path=tmp_path / "d.ckpt.prev"), kind="test", version=2).read()["n"] == 3
    ckpts.close()


@pytest.mark.skipif(not (can_fork() and can_idle()), reason="a writer is put under SCHED_IDLE only where it may be lifted")
def test_a_forked_writer_runs_in_idle_time_until_its_caller_waits_for_it(tmp_path):
    go, seen = tmp_path / "go", tmp_path / "policy"

    def write():
        while not go.exists():
            time.sleep(0.01)
        seen.write_text(str(os.sched_getscheduler(0)))

    child = ChildWrite(write)
    assert os.sched_getscheduler(child.pid) == os.SCHED_IDLE and not child.done()

    def release():  # once the caller waits (its wait lifts the idle policy), let the child go on
        deadline = time.monotonic() + 60
        while os.sched_getscheduler(child.pid) == os.SCHED_IDLE and time.monotonic() < deadline:
            time.sleep(0.01)
        go.touch()

    releaser = threading.Thread(target=release)
    releaser.start()
    child.result()
    releaser.join()
    assert int(seen.read_text()) == os.SCHED_OTHER
