"""The daemon's checkpoints: when one is due, the order of its steps, and reading the last good one back.

A checkpoint follows the order that makes the daemon lose nothing:

1. flush the sinks: every prediction and dead letter sent so far is acknowledged by Kafka;
2. write the snapshot (learner, label buffer, counters and the offsets after the last processed
   record) to the checkpoint file atomically, the previous file kept as ``.prev``;
3. hand over: publish what a partition's next owner needs to go on from those offsets (the
   daemon's handover windows, :mod:`streamssl.sources.handover`), acknowledged by Kafka;
4. commit those offsets to Kafka.

Step 2 runs beside the loop, so that serialising the learner and a large label buffer does not
hold up the events behind it; steps 3 and 4 run on the caller's thread once the file is down
(:meth:`Checkpointer.finish`). At most one write is in flight. The writer is a forked child
process by default (``writer="process"``, on Linux): the fork is the snapshot (the child sees
the state as it was, copy-on-write, and the caller goes on at once) and the child serialises
without sharing the caller's interpreter lock. With ``writer="thread"`` (elsewhere, and for a
learner on a GPU, which a forked child must not touch) the caller's snapshot is copied or
frozen and a thread of the caller's process writes it. A crash between any two steps replays records from the last checkpoint's offsets:
events may be predicted twice (at-least-once), none is skipped, and no label is lost. A crash
between steps 2 and 3 can have a label joined twice, once in the file of the daemon that
crashed and again by the next owner of its partition; a crash between 3 and 4 cannot, because
the handover is only ever published for a file that is down.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from streamssl.config import CheckpointConfig
>>> steps = []
>>> config = CheckpointConfig(path=Path(tempfile.mkdtemp()) / "d.ckpt", every_events=100)
>>> ckpts = Checkpointer(config, kind="demo", version=1)
>>> ckpts.seen(150); ckpts.due()
True
>>> ckpts.start(lambda: {"answer": 42}, {"events:0": 150}, flush=lambda: steps.append("flush"))
>>> seconds = ckpts.finish(commit=lambda offsets: steps.append(("commit", offsets)))
>>> steps, ckpts.read()["answer"], ckpts.due()
(['flush', ('commit', {'events:0': 150})], 42, False)
>>> ckpts.close()
"""

from __future__ import annotations

import functools
import gc
import os
import signal
import sys
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Literal, Mapping

import torch

from ..config import CheckpointConfig
from ..state import checkpoint as ckpt


def can_fork() -> bool:
    """Whether checkpoints may be written by a forked child here (Linux)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


_PR_SET_PDEATHSIG = 1

#: A forked writer's niceness: it is background work, and on a small machine the loop, the
#: broker and the producers beside it come first (it gets the cores when they are idle, or when
#: the loop waits for it at the next checkpoint). Where it can be lifted again (:func:`can_idle`),
#: it also runs under ``SCHED_IDLE``, so that any of them waking takes its core at once (at
#: niceness 19 alone a task waking waits out the writer's slice); a caller that must wait for
#: it (the next checkpoint, a rebalance, the way out) lifts that.
CHILD_NICENESS = 19


@functools.cache
def can_idle() -> bool:
    """Whether a writer may run under ``SCHED_IDLE``: Linux lets a process move another out of
    it only as root or within ``RLIMIT_NICE`` of the writer's niceness (elsewhere a writer
    left idle could be starved while its caller waits on a busy machine)."""
    if not (hasattr(os, "SCHED_IDLE") and hasattr(os, "geteuid")):
        return False
    import resource

    limit = resource.getrlimit(resource.RLIMIT_NICE)[0]
    return os.geteuid() == 0 or limit == resource.RLIM_INFINITY or limit >= 20 - CHILD_NICENESS


def _set_idle(pid: int, idle: bool) -> None:
    """Put process ``pid`` under ``SCHED_IDLE`` (or back under ``SCHED_OTHER``) where
    :func:`can_idle`; its niceness is kept."""
    if can_idle():
        try:
            os.sched_setscheduler(pid, os.SCHED_IDLE if idle else os.SCHED_OTHER, os.sched_param(0))
        except OSError:  # refused (a sandbox, a seccomp policy), or the writer is gone
            pass


@functools.cache
def _prctl() -> Callable[..., int]:
    """Linux's ``prctl``, looked up in the parent (a child must not take the loader's locks)."""
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl


def _die_with(parent: int) -> None:
    """In a forked child: be killed when ``parent`` dies (as a writer thread would be), so that a
    write cut short by a crash never lands after a restarted daemon has written its own."""
    _prctl()(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the line above
        os._exit(1)


class ChildWrite:
    """A write in a forked child process, awaited like a :class:`~concurrent.futures.Future`.

    The child runs ``write`` on the parent's memory as it was at the fork, reports a failure
    through a pipe, and leaves with ``os._exit`` (none of the parent's exit handlers, buffers
    or sockets touched). It dies with the parent (``PR_SET_PDEATHSIG``), as a thread would.
    """

    def __init__(self, write: Callable[[], None]) -> None:
        read_end, write_end = os.pipe()
        parent = os.getpid()
        _prctl()  # looked up before the fork
        can_idle()  # answered (and cached) before the fork too
        with warnings.catch_warnings():
            # Python 3.12 warns of fork() in a process with threads (Kafka's, the HTTP server's):
            # the child only serialises plain data and writes a file; it takes none of their
            # locks, imports nothing and logs nothing.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                gc.disable()  # a collection here would touch, and so copy, every page of the parent's heap
                _die_with(parent)
                os.close(read_end)
                os.nice(CHILD_NICENESS)
                torch.set_num_threads(1)  # no thread pool of the parent's is usable here
                write()
                code = 0
            except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
                try:
                    os.write(write_end, f"{type(exc).__name__}: {exc}".encode()[:4096])
                except OSError:
                    pass
            finally:
                os._exit(code)
        os.close(write_end)
        _set_idle(pid, True)  # here, not in the child: :meth:`result` may lift it at once
        self.pid, self._pipe, self._status = pid, read_end, None

    def done(self) -> bool:
        if self._status is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self._status = status
        return self._status is not None

    def result(self) -> None:
        """Wait for the child; raise :class:`~streamssl.state.checkpoint.CheckpointError` if it failed."""
        if self._status is None and not self.done():
            _set_idle(self.pid, False)  # the caller waits for it now: no longer only the idle time
            _, self._status = os.waitpid(self.pid, 0)
        with os.fdopen(self._pipe, "rb") as pipe:
            message = pipe.read().decode(errors="replace")
        code = os.waitstatus_to_exitcode(self._status)
        if code != 0:
            raise ckpt.CheckpointError(f"the checkpoint writer process failed (exit status {code})"
                                       + (f": {message}" if message else ""))


class Checkpointer:
    """Checkpoints of one daemon at ``config.path``, of state ``kind`` and ``version``.

    The caller owns what a checkpoint holds (a plain-data snapshot, built by ``build`` in the
    writer) and how offsets are committed; this class owns when a checkpoint is due (every
    ``config.every_events`` records or ``config.every_s`` seconds, whichever first), the order
    of the steps, the writer (``writer``: a forked child process, or a thread where forking is
    not possible, :func:`can_fork`) and reading back (:meth:`read`, falling back to ``.prev``).
    """

    def __init__(self, config: CheckpointConfig, kind: str, version: int,
                 build: Callable[[dict], Any] = lambda snapshot: snapshot,
                 writer: Literal["process", "thread"] = "process") -> None:
        self.config, self.kind, self.version, self.build = config, kind, version, build
        self.path = config.path
        #: Whether the writer is a forked child: then the snapshot need not be copied.
        self.forks = writer == "process" and can_fork()
        self._writer = None if self.forks else ThreadPoolExecutor(max_workers=1,
                                                                  thread_name_prefix="streamssl-checkpoint")
        self._writing: tuple[Future | ChildWrite, Mapping, Callable[[], None], float] | None = None
        self.since = 0  # records processed since the last checkpoint started
        self._last = time.monotonic()
        self.unusable: list[tuple[str, str]] = []  # (path, why) of the files the last read skipped
        self.source: str | None = None  # the file the last read returned
        # True while the file at ``path`` is known whole (this one wrote it, or read it back):
        # the next write then keeps it as ``.prev`` without reading it again.
        self._whole: bool | None = None

    # -------------------------------------------------------------- writing
    def seen(self, records: int) -> None:
        """Count records processed (a checkpoint is due after ``every_events`` of them)."""
        self.since += records

    def due(self) -> bool:
        """Whether a checkpoint should start now: records since the last one, enough of them or
        enough time, and no write in flight."""
        return self._writing is None and self.since > 0 and (
            self.since >= self.config.every_events or time.monotonic() - self._last >= self.config.every_s)

    @property
    def pending(self) -> bool:
        """Whether a checkpoint has been started and not yet finished (committed)."""
        return self._writing is not None

    @property
    def written(self) -> bool:
        """Whether the write in flight is down (or failed): :meth:`finish` will not wait."""
        return self._writing is not None and self._writing[0].done()

    def start(self, snapshot: Callable[[], dict], offsets: Mapping, flush: Callable[[], None],
              hand_over: Callable[[], None] = lambda: None) -> None:
        """Steps 1 and 2: ``flush`` the outputs, take the ``snapshot`` on the caller's thread and
        write it in the writer (with a thread writer, the snapshot must be copied or frozen so
        the caller can go on; with :attr:`forks`, the child's memory is the copy). Once the file
        is down, :meth:`finish` calls ``hand_over`` (step 3: it publishes what goes with this
        snapshot and returns once that is acknowledged, or raises) and commits ``offsets``."""
        if self._writing is not None:
            raise RuntimeError("a checkpoint is already being written: finish it first")
        t0 = time.perf_counter()
        flush()
        snapshot = snapshot()
        self.since, self._last = 0, time.monotonic()
        path, key, whole = self.path, self.config.key(), self._whole
        def write() -> None:
            ckpt.write_atomic(path, ckpt.encode_parts(self.state(snapshot), key), intact_before=whole)

        future = ChildWrite(write) if self.forks else self._writer.submit(write)
        self._writing = (future, offsets, hand_over, t0)

    def state(self, snapshot: dict) -> dict:
        """What the file holds: the plain-data state built from ``snapshot``, stamped with the
        kind and version that :meth:`read` checks."""
        return {"kind": self.kind, "version": self.version, **self.build(snapshot)}

    def finish(self, commit: Callable[[Mapping], None]) -> float:
        """Steps 3 and 4: wait for the file (re-raising a failed write), hand over, then
        ``commit`` the file's offsets; nothing is committed if a step before fails.
        Returns the checkpoint's seconds from its start."""
        future, offsets, hand_over, t0 = self._writing
        self._writing, self._whole = None, None
        future.result()
        self._whole = True
        hand_over()
        commit(offsets)
        return time.perf_counter() - t0

    def close(self) -> None:
        """Stop the writer (after the write in flight, if any; its failure is not raised here)."""
        if self._writer is not None:
            self._writer.shutdown()
        elif self._writing is not None and isinstance(self._writing[0], ChildWrite):
            try:
                self._writing[0].result()
            except ckpt.CheckpointError:
                pass

    # -------------------------------------------------------------- reading
    def read(self, check: Callable[[dict, str], None] = lambda state, source: None) -> dict | None:
        """The last good checkpoint's state: the file, else ``.prev``; ``None`` if neither
        exists. A file that cannot be used (damaged, another kind or version, or refused by
        ``check``, which raises :class:`~streamssl.state.checkpoint.CheckpointError`) is
        skipped and reported through :attr:`unusable`; if every file is unusable this raises."""
        self.unusable, self.source = [], None
        for p in (self.path, self.path.with_name(self.path.name + ".prev")):
            if not p.exists():
                continue
            try:
                state = ckpt.decode(p.read_bytes(), self.config.key(), None, source=str(p))
                if not isinstance(state, dict) or state.get("kind") != self.kind:
                    raise ckpt.CheckpointError(f"{p}: not a {self.kind} checkpoint")
                if state.get("version") != self.version:
                    raise ckpt.CheckpointError(f"{p}: state version {state.get('version')!r}, "
                                               f"this version reads {self.version}")
                check(state, str(p))
            except ckpt.CheckpointError as exc:
                self.unusable.append((str(p), str(exc)))
                continue
            self.source = str(p)
            self._whole = True if p == self.path else None
            return state
        if self.unusable:
            raise ckpt.CheckpointError("no usable checkpoint: " + "; ".join(e for _, e in self.unusable))
        return None
