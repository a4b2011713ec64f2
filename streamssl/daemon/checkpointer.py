"""The daemon's checkpoints: when one is due, the order of its steps, and reading the last good one back.

A checkpoint follows the order that makes the daemon lose nothing:

1. flush the sinks: every prediction and dead letter sent so far is acknowledged by Kafka;
2. write the snapshot (learner, label buffer, counters and the offsets after the last processed
   record) to the checkpoint file atomically, the previous file kept as ``.prev``;
3. hand over: publish what a partition's next owner needs to go on from those offsets (the
   daemon's handover windows, :mod:`streamssl.sources.handover`), acknowledged by Kafka;
4. commit those offsets to Kafka.

Step 2 works on a snapshot taken between batches and runs on a writer thread, so that
serialising a large label buffer does not hold up the events behind it; steps 3 and 4 run on
the caller's thread once the file is down (:meth:`Checkpointer.finish`). At most one write is
in flight. A crash between any two steps replays records from the last checkpoint's offsets:
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

import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Mapping

from ..config import CheckpointConfig
from ..state import checkpoint as ckpt


class Checkpointer:
    """Checkpoints of one daemon at ``config.path``, of state ``kind`` and ``version``.

    The caller owns what a checkpoint holds (a plain-data snapshot, built by ``build`` on the
    writer thread) and how offsets are committed; this class owns when a checkpoint is due
    (every ``config.every_events`` records or ``config.every_s`` seconds, whichever first), the
    order of the steps, the writer thread and reading back (:meth:`read`, falling back to ``.prev``).
    """

    def __init__(self, config: CheckpointConfig, kind: str, version: int,
                 build: Callable[[dict], Any] = lambda snapshot: snapshot) -> None:
        self.config, self.kind, self.version, self.build = config, kind, version, build
        self.path = config.path
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="streamssl-checkpoint")
        self._writing: tuple[Future, Mapping, Callable[[], None], float] | None = None
        self.since = 0  # records processed since the last checkpoint started
        self._last = time.monotonic()
        self.unusable: list[tuple[str, str]] = []  # (path, why) of the files the last read skipped
        self.source: str | None = None  # the file the last read returned

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
        """Steps 1 and 2: ``flush`` the outputs, take the ``snapshot`` (on the caller's thread,
        copied or frozen so the caller can go on) and write it on the writer thread. Once the
        file is down, :meth:`finish` calls ``hand_over`` (step 3: it publishes what goes with
        this snapshot and returns once that is acknowledged, or raises) and commits ``offsets``."""
        if self._writing is not None:
            raise RuntimeError("a checkpoint is already being written: finish it first")
        t0 = time.perf_counter()
        flush()
        snapshot = snapshot()
        self.since, self._last = 0, time.monotonic()
        path, key = self.path, self.config.key()
        future = self._writer.submit(lambda: ckpt.write_atomic(path, ckpt.encode_parts(self.state(snapshot), key)))
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
        self._writing = None
        future.result()
        hand_over()
        commit(offsets)
        return time.perf_counter() - t0

    def close(self) -> None:
        """Stop the writer thread (after the write in flight, if any)."""
        self._writer.shutdown()

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
            return state
        if self.unusable:
            raise ckpt.CheckpointError("no usable checkpoint: " + "; ".join(e for _, e in self.unusable))
        return None
