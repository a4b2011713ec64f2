"""The long-running daemon: Kafka in, predictions out, delayed labels joined, state checkpointed.

The run loop reads a micro-batch from the source, processes it and ticks:

- read (:meth:`KafkaSource.read <streamssl.sources.kafka.KafkaSource.read>`): the source routes
  the records through the consumer's partitions (positions advanced; records of a partition
  taken over handed over or skipped as its previous owner's window says, see
  :class:`~streamssl.sources.partitions.Partitions`), and brings the record batches it had to
  skip, the partitions it took over, and the lag;
- process (:meth:`Daemon.process`), in stages:

  1. take in: take-overs logged, skipped batches dead-lettered, the pacer told when each
     record was written;
  2. decode each event and label message; one that cannot be decoded goes to the dead-letter
     topic with its reason;
  3. mark how far the batch goes (on disk before any prediction of it is sent);
  4. rebuild the label-join entries handed over by a partition's previous owner;
  5. predict and send one prediction per event;
  6. join and learn: events with an inline label (or whose label came before them) with
     ``learn_many``, labels that arrived for earlier events with ``learn_late_labels``; other
     events wait in the :class:`~streamssl.label_join.LabelJoin`;
  7. count;
- tick (:meth:`Daemon._tick`): ask the broker where the partitions end (once a second while
  labels wait for their events), expire waiting entries, readiness, lag, pacing, and a checkpoint when one is due.

A checkpoint (:meth:`Daemon.checkpoint`) takes the steps of
:class:`~streamssl.daemon.checkpointer.Checkpointer`: flush the sinks, write a snapshot taken
between batches (a copy of the learner's state and a frozen view of the label buffer) on a
writer thread, then, once the file is down, publish the handover windows and commit the offsets
it holds. Periodic checkpoints are written this way; the final one, and the one before
partitions are revoked, wait for the file. A crash between any two steps replays records from
the last checkpoint's offsets: events may be predicted twice (at-least-once), none is skipped,
and no label is lost.
"""

from __future__ import annotations

import gc
import logging
import math
import signal
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Hashable

import numpy as np
from kafka import TopicPartition
from kafka.errors import CommitFailedError, KafkaError

from .checkpointer import Checkpointer
from ..label_join import Joined, LabelJoin
from .pacing import Pacer
from .sharing import LabelSharing
from ..metrics.daemon import DaemonMetrics
from ..sinks.kafka import DeadLetterSink, PredictionSink, SinkError, make_producer
from ..sources.decode import DecodeError, EventDecoder, LabelDecoder
from ..sources.handover import HandoverLog
from ..sources.kafka import Batch, KafkaSource
from ..sources.partitions import Partitions
from ..state import checkpoint as ckpt
from ..state.progress import ProgressMark
from ..state.snapshot import Snapshots
from . import logs
from ..config import DaemonConfig
from ..device import resolve_device
from ..stopping import StopFlag
from .http import HealthServer

STATE_KIND = "streamssl-daemon"
STATE_VERSION = 1


class Daemon:
    """``streamssl run``: see the module docstring for what one batch and one checkpoint do.

    ``run(max_events=, timeout_s=)`` bounds a run (for tests and benchmarks); otherwise it runs
    until :meth:`request_stop` (SIGTERM/SIGINT call it), then finishes the batch in hand,
    writes a final checkpoint, commits and returns 0.
    """

    #: Seconds between asking the broker where the assigned partitions end, while labels wait
    #: for their events: they expire against the event clock, which trusts a partition read to
    #: its end only as of then.
    ENDS_EVERY_S = 1.0

    def __init__(self, config: DaemonConfig, registry=None, log: logging.Logger | None = None) -> None:
        self.config = config
        self.metrics = DaemonMetrics(registry)
        self.log = log or logs.setup()
        self._dead_log = logs.RateLimited(self.log)
        self.decoder = EventDecoder(config.events)
        self.label_decoder = LabelDecoder(config.labels)
        lc = config.labels
        self.join = LabelJoin(lc.ttl_s, lc.max_events, lc.pending_ttl_s, lc.max_pending)
        self.pacer = Pacer(config.kafka.events_topic, config.kafka.labels_topic, lc.max_pending, lc.max_lead_s)
        self.learner = self._new_learner()
        self.model_version = 0
        self.partitions = Partitions()  # positions and handover windows being read (shared with the source)
        path = config.checkpoint.path
        self.progress = ProgressMark(path.with_name(path.name + ".progress"))
        self._ahead: dict[TopicPartition, int] = {}  # offsets reached before a restart, past the checkpoint
        self.handover = None
        self._lag_shown: set[TopicPartition] = set()  # partitions with a consumer_lag sample
        self._ends_asked = -math.inf  # when the broker was last asked where the partitions end
        self.events_seen = 0  # event messages consumed, including dead-lettered ones
        self.labels_scored = 0
        self.labels_correct = 0
        self._drifts_logged = 0
        # A forked writer must not touch a GPU: a learner there is written by a thread.
        writer = config.checkpoint.writer if resolve_device(config.learner.device).type == "cpu" else "thread"
        self.checkpoints = Checkpointer(config.checkpoint, STATE_KIND, STATE_VERSION, build=_build_state,
                                        writer=writer)
        self._snapshots = Snapshots()  # the learner's copies for periodic checkpoints
        self.sharing: LabelSharing | None = None  # with replicas (distributed.world_size > 1), from run()
        self._sharing_state: dict = {}  # LabelSharing's part of the checkpoint restored (offers, learned_round)
        self._failed = False
        self._stop = StopFlag()  # (set by signal handlers: a threading.Event there can deadlock)
        self.stop_reason: str | None = None
        self.source = None
        self.predictions: PredictionSink | None = None
        self.dead: DeadLetterSink | None = None
        self.http: HealthServer | None = None
        self._loop_at = time.monotonic()
        self._ready: tuple[bool, dict] = (False, {"reason": "starting"})
        self.metrics.ready.set_function(lambda: 1.0 if self.readiness()[0] else 0.0)  # what /readyz says

    @property
    def positions(self) -> dict[TopicPartition, int]:
        """The offset after the last record processed, by partition."""
        return self.partitions.positions

    @positions.setter
    def positions(self, value: dict[TopicPartition, int]) -> None:
        self.partitions.positions = dict(value)

    # ------------------------------------------------------------------ setup
    def _new_learner(self):
        from ..learner import build_learner
        from ..learner.switches import switch_settings

        lc = self.config.learner
        return build_learner(lc.threshold, lc.device, lc.seed, lc.threads, lc.objective,
                             objective_params=dict(lc.objective_params) or None, parts=dict(lc.parts) or None,
                             **switch_settings(dict(lc), "key"))

    def _warm_up(self) -> None:
        """One learning step on a scratch learner, so that torch's first kernels and lazy imports
        (a second or more for an SSL encoder's first optimiser) are paid before consuming, not by
        the first events."""
        scratch = self._new_learner()
        n = self.decoder.n_features
        scratch.learn_many(np.zeros((2, n), dtype=np.float32), [0, 1])
        scratch.predict_proba_many(np.zeros((1, n), dtype=np.float32))

    def restore(self) -> bool:
        """Load the last good checkpoint if there is one (falling back to ``.prev``), and note
        how far the previous run got past it (records read again up to there are replays)."""
        restored = self._restore()
        self._ahead = {tp: off for tp, off in self.progress.read().items() if off > self.positions.get(tp, 0)}
        if self._ahead:
            self.log.info("replaying", extra={"fields": {"partitions": {
                _name(tp): [self.positions.get(tp), off] for tp, off in sorted(self._ahead.items())}}})
        return restored

    def _restore(self) -> bool:
        try:
            state = self.checkpoints.read(self._check)
        finally:
            for path, error in self.checkpoints.unusable:
                self.log.error("checkpoint_unusable", extra={"fields": {"path": path, "error": error}})
        if state is None:
            return False
        self._load(state)
        self.log.info("restored", extra={"fields": {
            "path": self.checkpoints.source, "model_version": self.model_version, "events_seen": self.events_seen,
            "offsets": {f"{tp.topic}:{tp.partition}": off for tp, off in self.positions.items()},
            "label_join": {"waiting_events": len(self.join), "waiting_labels": len(self.join.pending),
                           "hits": self.join.hits, "misses": dict(self.join.misses)}}})
        return True

    def _check(self, state: dict, source: str) -> None:
        """Refuse a checkpoint written for other features; its learner goes to this config's device."""
        from ..device import resolve_device

        if state.get("n_features") != self.decoder.n_features:
            raise ckpt.CheckpointError(f"{source}: written for {state.get('n_features')} features, "
                                       f"the config has {self.decoder.n_features}")
        learner = state["learner"]
        learner["params"] = {**learner["params"], "device": str(resolve_device(self.config.learner.device))}

    def _load(self, state: dict) -> None:
        from ..learner import StreamLearner

        self.learner = StreamLearner.from_state_dict(state["learner"])
        self.join.load_state_dict(state["join"])
        if "encoder" in state:  # the imputation statistics (absent from older checkpoints)
            try:
                self.decoder.encoder.load_state_dict(state["encoder"])
            except ValueError as exc:
                self.log.warning("imputation_reset", extra={"fields": {"error": str(exc)}})
        self.partitions = Partitions.from_state_dict(state)
        # LabelSharing.checkpoint; before it, "unshared" held the offers alone (absent before sync rounds)
        self._sharing_state = state.get("sharing") or {"offers": state.get("unshared", [])}
        c = state["counters"]
        self.model_version, self.events_seen = c["model_version"], c["events_seen"]
        self.labels_scored, self.labels_correct = c["labels_scored"], c["labels_correct"]
        self._drifts_logged = sum(self.learner.monitor.counts.values())
        self.metrics.sync_join(self.join)

    def state_dict(self) -> dict:
        return self.checkpoints.state(self._snapshot(Snapshots()))

    def _snapshot(self, snapshots: Snapshots | None) -> dict:
        """Everything a checkpoint holds, for :func:`_build_state` in the writer. With
        ``snapshots``, copied or frozen so that a thread can write it while the loop goes on (the
        learner's state copied into its last copy's buffers, the label join frozen); with
        ``None``, for a forked writer, whose memory is the copy: the learner's and the join's
        state are left for the writer to build."""
        learner = self.learner.state_dict if snapshots is None else snapshots.copy(self.learner.state_dict())
        join = self.join.state_dict if snapshots is None else self.join.snapshot().state_dict
        return {
            "n_features": self.decoder.n_features, "learner": learner, "join": join,
            "encoder": self.decoder.encoder.state_dict(),
            **self.partitions.state_dict(),
            "sharing": {} if self.sharing is None else self.sharing.checkpoint(self.learner),
            "counters": {"model_version": self.model_version, "events_seen": self.events_seen,
                         "labels_scored": self.labels_scored, "labels_correct": self.labels_correct},
            "written_at": time.time(),
        }

    def open_sinks(self):
        """The producer, and the prediction and dead-letter sinks on it (returns the producer)."""
        k, max_bytes = self.config.kafka, self.config.events.max_message_bytes
        producer = make_producer(k, max_request_size=max(1 << 20, max_bytes + (64 << 10)))
        self.predictions = PredictionSink(producer, k.predictions_topic)
        self.dead = DeadLetterSink(producer, k.dead_letter_topic, max_bytes)
        return producer

    # -------------------------------------------------------------- lifecycle
    def request_stop(self, reason: str = "requested") -> None:
        """Ask the loop to stop after the batch in hand (safe from signal handlers and threads)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        self._stop.set()

    def run(self, max_events: int | None = None, timeout_s: float | None = None) -> int:
        """Consume until stopped; returns the exit status (0 after a clean stop).

        A stop (signal, ``timeout_s``) is honoured at every moment, while restoring or waiting
        for the broker included."""
        with ExitStack() as stack:
            stack.enter_context(_stop_on_signals(self))
            if timeout_s is not None:
                timer = threading.Timer(timeout_s, self.request_stop, ("timeout",))
                timer.daemon = True
                timer.start()
                stack.callback(timer.cancel)
            self.restore()
            self._warm_up()
            # Start-up objects (torch, river, the restored state) never die: keep them out of
            # the collector's full passes, which otherwise stall the loop for a quarter second.
            gc.collect()
            gc.freeze()
            stack.callback(self.checkpoints.close)
            if self.config.distributed.world_size > 1:
                self.sharing = LabelSharing(self.config.distributed, self.metrics, self.log, restored=self._sharing_state)
                self.learner.share_labelled()
                stack.callback(self.sharing.close, self.config.distributed.timeout_s)
            if self.config.http.enabled:
                h = self.config.http
                self.http = HealthServer(self.metrics.registry, self._alive, self.readiness, h.host, h.port,
                                         h.timeout_s, h.max_connections, self.log).start()
                stack.callback(self.http.stop)
            connected = self._connect()
            if connected is None:
                self.log.info("stopped", extra={"fields": {"reason": self.stop_reason, "connected": False}})
                return 0
            producer, self.source = connected
            stack.callback(producer.close)
            stack.callback(self.source.close)
            k = self.config.kafka
            self.log.info("started", extra={"fields": {
                "topics": self.source.topics, "group_id": k.group_id, "bootstrap_servers": k.bootstrap_servers,
                "http_port": self.http.port if self.http else None, "checkpoint": str(self.config.checkpoint.path)}})
            b = self.config.batch
            cap = b.max_events
            try:
                while not self._stop.is_set():
                    batch = self.source.read(cap, b.max_wait_ms)
                    self.process(batch)
                    self._tick(batch.lag)
                    if b.largest > b.max_events:  # catching up is on (batch.catch_up_events)
                        held = self.source.held()
                        waiting = sum(n for tp, n in (batch.lag or {}).items() if n and tp not in held)
                        cap = next_batch_cap(cap, waiting, b.max_events, b.largest)
                    if max_events is not None and self.events_seen >= max_events:
                        self.request_stop("max_events")
                self.log.info("stopping", extra={"fields": {"reason": self.stop_reason}})
                self.checkpoint(wait=True)
            except BaseException:
                self._failed = True  # no checkpoint on the way out: the last good one stands
                raise
        self.log.info("stopped", extra={"fields": {
            "reason": self.stop_reason, "events_seen": self.events_seen, "model_version": self.model_version,
            "predictions": self.predictions.sent, "dead_letters": self.dead.sent}})
        return 0

    def _connect(self) -> tuple[Any, Any] | None:
        """The producer (the sinks on it) and the source, once the broker answers. A failed
        attempt is logged, says why on ``/readyz`` and is retried after a backoff (1 s,
        doubling to 30 s); ``None`` when a stop comes first, at any moment of it."""
        delay = 1.0
        self._ready = (False, {"reason": "connecting to the broker"})
        attempt = 0
        while True:
            attempt += 1
            done = self._off_loop(self._open_kafka)
            if done is None:
                return None
            ok, value = done
            if ok:
                return value
            if not isinstance(value, KafkaError):
                raise value
            error = str(value) if str(value).startswith(type(value).__name__) else f"{type(value).__name__}: {value}"
            self._ready = (False, {"reason": f"broker unavailable (attempt {attempt}): {error}"[:300]})
            self.log.warning("broker_unavailable", extra={"fields": {
                "attempt": attempt, "bootstrap_servers": self.config.kafka.bootstrap_servers, "error": error,
                "retry_in_s": delay}})
            retry_at = time.monotonic() + delay
            while time.monotonic() < retry_at:
                if self._idle(min(0.2, retry_at - time.monotonic())):
                    return None
            delay = min(30.0, 2 * delay)

    def _open_kafka(self) -> tuple[Any, Any]:
        """One attempt at the producer, the sinks, the handover log and the source."""
        k = self.config.kafka
        producer = self.open_sinks()
        try:
            self.handover = HandoverLog(k, producer, self.config.checkpoint.key()) if k.handover_topic else None
            topics = [k.events_topic] + ([k.labels_topic] if k.labels_topic else [])
            source = KafkaSource(k, topics, self.positions, on_revoke=self._on_revoke, handover=self.handover,
                                 partitions=self.partitions, on_lost=self._on_lost)
        except BaseException:
            producer.close(timeout=1)
            raise
        return producer, source

    def _off_loop(self, fn) -> tuple[bool, Any] | None:
        """``fn()`` on a thread of its own, as ``(True, result)`` or ``(False, exception)``;
        ``None`` as soon as a stop is requested (the thread is left to finish, or not, alone).
        Meanwhile the loop counts as alive: it is waiting, not stuck."""
        out: list = []

        def call() -> None:
            try:
                out.append((True, fn()))
            except BaseException as exc:  # noqa: BLE001 -- handed to the caller
                out.append((False, exc))

        thread = threading.Thread(target=call, name="streamssl-connect", daemon=True)
        thread.start()
        while thread.is_alive():
            if self._idle(0.2):
                return None
        return out[0]

    def _idle(self, seconds: float) -> bool:
        """Wait up to ``seconds`` for a stop (True if one came); the loop counts as alive."""
        self._loop_at = time.monotonic()
        return self._stop.wait(max(0.0, seconds))

    def _tick(self, lag: dict[TopicPartition, int | None]) -> None:
        """Per loop iteration, given the lag after the batch read: readiness, lag, and a
        checkpoint when one is due."""
        self._loop_at = time.monotonic()
        now = time.time()
        if lag and self.join.pending and now - self._ends_asked >= self.ENDS_EVERY_S:  # what the event clock may trust
            self._ends_asked = now
            for tp, asked in self.source.confirm_ends(self.partitions.positions).items():
                self.pacer.caught_up(tp, asked)
        if lag:  # with nothing assigned (between rebalances, before the first) the events read reach nowhere yet
            self.join.expire(now, self.pacer.event_clock(lag, now))
        self.metrics.sync_join(self.join)
        if self.sharing is not None and self.sharing.tick(self.learner):
            self.model_version += 1
        if self.checkpoints.written:
            self._finish_checkpoint()
        if self.checkpoints.due():
            self.checkpoint()
        assigned = self.source.assignment()
        for tp, n in lag.items():
            if n is not None:
                self.metrics.consumer_lag.labels(topic=tp.topic, partition=str(tp.partition)).set(n)
        for tp in self._lag_shown - set(lag):  # gone to another consumer: no stale lag left behind
            self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))
        self._lag_shown = {tp for tp, n in lag.items() if n is not None} | (self._lag_shown & set(lag))
        hold = self.pacer.decide(lag, len(self.join.pending), now)
        for tp in hold - self.source.held():
            self.metrics.partition_holds.labels(topic=tp.topic).inc()
        self.source.pace(hold)
        for topic in filter(None, (self.config.kafka.events_topic, self.config.kafka.labels_topic)):
            self.metrics.partitions_held.labels(topic=topic).set(sum(tp.topic == topic for tp in hold))
        heartbeat = self.source.heartbeat_age()
        session_s = self.config.kafka.session_timeout_ms / 1000
        if not assigned:
            self._ready = (False, {"reason": "no partitions assigned"})
        elif math.isfinite(heartbeat) and heartbeat > session_s:
            self._ready = (False, {"reason": f"no heartbeat from the group coordinator for {heartbeat:.0f} s"})
        else:
            self._ready = (True, {"partitions": len(assigned)})

    def _alive(self) -> tuple[bool, dict]:
        idle = time.monotonic() - self._loop_at
        return idle < 10 * self.config.http.stall_timeout_s, {"loop_idle_s": round(idle, 3)}

    def readiness(self) -> tuple[bool, dict]:
        """What ``/readyz`` answers: consuming (partitions assigned, coordinator answering) and
        the loop not stalled for ``http.stall_timeout_s``."""
        idle = time.monotonic() - self._loop_at
        if idle > self.config.http.stall_timeout_s:
            return False, {"reason": f"loop stalled for {idle:.0f} s"}
        return self._ready

    # ------------------------------------------------------------ one batch
    def process(self, batch: Batch) -> None:
        """One micro-batch from the source, in the stages of the module docstring."""
        t0, now = time.perf_counter(), time.time()
        clock = self._take_in(batch, now)
        if not batch.records:
            if batch.unreadable:
                self.progress.write(self.positions)
            return
        new = self._decode(batch.routed.new, now)
        # How far this batch goes, on disk before any of its predictions is sent: a restart after
        # a crash counts what it predicts again below it (never less than was sent).
        self.progress.write(self.positions)
        if batch.routed.handed:
            self._handed_over(batch.routed.handed, batch.routed.listed, now, clock)
        self._count_replayed(new.records)
        n_labels = 0
        if new.events:
            X, keys, predicted = self._serve(new.events)
            n_labels = self._join_and_learn(new.events, new.records, X, keys, predicted, now, clock)
        if new.labels:
            self._learn_late(self.join.add_labels(new.labels, now, new.label_times, clock, new.label_origins))
        self._count(batch, new, n_labels, time.perf_counter() - t0)

    def _take_in(self, batch: Batch, now: float) -> float:
        """What the source says besides the records: the partitions it took over, the record
        batches it skipped (dead-lettered here); and when each record was written, for pacing
        and for the event clock, which this returns (how far the events read reach)."""
        if batch.taken_over:
            self.log.info("taken_over", extra={"fields": {"partitions": batch.taken_over}})
        for skipped in batch.unreadable:
            self._unreadable(skipped)
        for rec in batch.records:
            self.pacer.saw(TopicPartition(rec.topic, rec.partition), _written(rec, now))
        return now if batch.lag is None else self.pacer.event_clock(batch.lag, now)

    def _count_replayed(self, event_recs: list) -> None:
        """Events read again after a restart, below where the previous run had got to."""
        if self._ahead:
            replayed = sum(r.offset < self._ahead.get(TopicPartition(r.topic, r.partition), -1) for r in event_recs)
            self.metrics.duplicates.labels(cause="replayed").inc(replayed)
            self._ahead = {tp: off for tp, off in self._ahead.items() if self.positions.get(tp, 0) < off}

    def _decode(self, records: list, now: float) -> "_Decoded":
        """The events (with their records) and the labels (with the times they were written
        and where they come from) of ``records``; what does not decode is dead-lettered.

        Kafka orders records within a partition only; the temporal context wants event time,
        so the events of a batch gathered from several partitions are put back in that order."""
        out = _Decoded()
        for rec in records:
            try:
                if rec.topic == self.config.kafka.events_topic:
                    self.events_seen += 1
                    ts = rec.timestamp / 1000 if rec.timestamp and rec.timestamp > 0 else None
                    out.events.append(self.decoder.decode(rec.value, f"{rec.topic}:{rec.partition}:{rec.offset}", ts))
                    out.records.append(rec)
                else:
                    out.labels.append(self.label_decoder.decode(rec.value))
                    out.label_times.append(_written(rec, now))
                    out.label_origins.append((f"{rec.topic}:{rec.partition}", rec.offset, False))
            except DecodeError as exc:
                self._dead_letter(rec, exc)
        events = out.events
        if len(events) > 1 and all(e.timestamp is not None for e in events):
            order = sorted(range(len(events)), key=lambda i: events[i].timestamp)
            out.events, out.records = [events[i] for i in order], [out.records[i] for i in order]
        return out

    def _handed_over(self, handed: list, listed: list, now: float, clock: float) -> None:
        """Records a partition's previous owner processed, read again to rebuild the waiting
        label-join entries it had (see :mod:`streamssl.sources.handover`): events without an
        inline label wait for their labels (no prediction is sent, nothing is learned), labels
        wait for events the previous owner never read. Records that do not decode were
        dead-lettered by the previous owner."""
        k = self.config.kafka
        ids, rows, keys, labels, times, event_origins, label_origins = [], [], [], [], [], [], []
        for rec, was_listed in zip(handed, listed):
            written = _written(rec, now)
            self.metrics.handover_records.labels(topic=rec.topic).inc()
            # Listed: it was waiting at the previous owner; else its window listed nothing (too long).
            origin = (_name(TopicPartition(rec.topic, rec.partition)), rec.offset, True if was_listed else "all")
            try:
                if rec.topic == k.events_topic:
                    e = self.decoder.decode(rec.value, f"{rec.topic}:{rec.partition}:{rec.offset}", None)
                    if e.label is None:
                        ids.append(e.id)
                        rows.append(e.x)
                        keys.append(e.key)
                        event_origins.append(origin)
                else:
                    labels.append(self.label_decoder.decode(rec.value))
                    times.append(written)
                    label_origins.append(origin)
            except DecodeError:
                continue
        # No waiting label is given up here: ``clock`` is where the whole batch takes the events,
        # and its new events, one of which a waiting label may belong to, come next.
        if ids:
            self._learn_late(self.join.add_events(ids, np.stack(rows), [None] * len(ids), now, clock, event_origins,
                                                  expire=False, keys=keys))
        if labels:
            self._learn_late(self.join.add_labels(labels, now, times, clock, label_origins, expire=False))

    def _serve(self, events: list) -> tuple[np.ndarray, list | None, list[Hashable | None]]:
        """Predict ``events`` and send one prediction each; returns their rows, keys and the
        class predicted for each (``None`` before the first label)."""
        X = np.stack([e.x for e in events])
        keys = [e.key for e in events] if self.config.events.key_field else None
        proba = self.learner.predict_proba_many(X, keys)
        classes = self.learner.classes_
        if proba.shape[1]:
            top = proba.argmax(axis=1)
            predicted: list[Hashable | None] = [classes[i] for i in top]
            confidence = proba[np.arange(len(top)), top]
        else:
            predicted, confidence = [None] * len(events), np.zeros(len(events))
        drift = self.learner.drift_in_progress
        sent_at = time.time()
        for e, p, c in zip(events, predicted, confidence.tolist()):
            self.predictions.add(e.id, _jsonable(p), c, drift, self.model_version, e.timestamp)
        self.metrics.predictions.inc(len(events))
        self.metrics.latency.observe_many([max(0.0, sent_at - e.timestamp) for e in events
                                           if e.timestamp is not None])
        self.metrics.served(confidence)
        return X, keys, predicted

    def _join_and_learn(self, events: list, records: list, X: np.ndarray, keys: list | None,
                        predicted: list[Hashable | None], now: float, clock: float) -> int:
        """Learn the events served with the labels they have (inline, or waiting for them in
        the join); the others wait for theirs. Returns how many were learned with a label."""
        y: list[Hashable | None] = [e.label for e in events]
        waiting = [i for i, v in enumerate(y) if v is None]
        origins = [(_name(TopicPartition(records[i].topic, records[i].partition)), records[i].offset, False)
                   for i in waiting]
        early = self.join.add_events([events[i].id for i in waiting], X[waiting],
                                     [predicted[i] for i in waiting], now, clock, origins,
                                     keys=None if keys is None else [keys[i] for i in waiting])
        if early:
            found = {j.id: j.label for j in early}
            for i in waiting:
                if events[i].id in found:
                    y[i] = found[events[i].id]
        n_labels = 0
        for p, v in zip(predicted, y):
            if v is not None:
                self._score(p, v)
                n_labels += 1
        self.learner.learn_many(X, y, keys)
        rows, taken = self.learner.last_pseudo_labels
        if len(rows):
            self.join.mark_pseudo([events[i].id for i in rows], taken)
        if n_labels:
            self.model_version += 1
        return n_labels

    def _learn_late(self, joined: list[Joined]) -> None:
        if not joined:
            return
        for j in joined:
            if not j.handed:  # a handed-over event's prediction was sent by its previous owner
                self._score(j.predicted, j.label)
            if j.pseudo is not None:
                self.metrics.pseudo_scored.labels(outcome="correct" if j.pseudo == j.label else "wrong").inc()
        keys = [j.key for j in joined] if self.config.events.key_field else None
        self.learner.learn_late_labels(np.stack([j.x for j in joined]), [j.label for j in joined], keys)
        self.metrics.events.labels(kind="late_labelled").inc(len(joined))
        self.model_version += 1

    def _count(self, batch: Batch, new: "_Decoded", n_labels: int, seconds: float) -> None:
        """The batch's metrics, and the drifts it signalled logged."""
        self.checkpoints.seen(len(batch.records))
        self.metrics.events.labels(kind="consumed").inc(len(new.records))
        self.metrics.batch_size.observe(len(new.events))
        self.metrics.model_version.set(self.model_version)
        self.metrics.learned(self.learner, n_labels, len(new.events) - n_labels, seconds,
                             self.labels_correct / self.labels_scored if self.labels_scored else None)
        self._log_drifts()

    def _score(self, predicted: Hashable | None, label: Hashable) -> None:
        self.labels_scored += 1
        self.labels_correct += int(predicted is not None and predicted == label)

    def _dead_letter(self, rec: Any, exc: DecodeError) -> None:
        self.metrics.dead_letters.labels(reason=exc.reason).inc()
        self.dead.add(rec.value, rec.key, exc.reason, exc.detail, rec.topic, rec.partition, rec.offset)
        self._dead_log.warning("dead_letter", reason=exc.reason, detail=exc.detail, topic=rec.topic,
                               partition=rec.partition, offset=rec.offset)

    def _unreadable(self, batch) -> None:
        """A record batch the source skipped (see :class:`~streamssl.sources.kafka.Unreadable`):
        its bytes go to the dead-letter topic, and the checkpoint commits past it."""
        tp = batch.tp
        self.checkpoints.seen(batch.end - batch.start)
        self.metrics.dead_letters.labels(reason="unreadable_batch").inc()
        self.dead.add(batch.raw, None, "unreadable_batch", batch.error, tp.topic, tp.partition, batch.start,
                      last_offset=batch.end - 1)
        self.log.error("unreadable_batch", extra={"fields": {
            "partition": _name(tp), "first_offset": batch.start, "last_offset": batch.end - 1,
            "records": batch.end - batch.start, "bytes": len(batch.raw), "error": batch.error}})

    def _log_drifts(self) -> None:
        total = sum(self.learner.monitor.counts.values())
        if total > self._drifts_logged:
            history = list(self.learner.drift_events)
            for event in history[len(history) - min(total - self._drifts_logged, len(history)):]:
                self.log.info("drift", extra={"fields": event.to_dict()})
            self._drifts_logged = total

    # ------------------------------------------------------------ checkpoints
    def checkpoint(self, wait: bool = False, blocking_commit: bool = True) -> None:
        """Flush outputs, write the state atomically, then commit offsets (see module docstring).

        The write runs on the writer thread; with ``wait`` this returns after the commit,
        otherwise the loop commits once the file is down (at most one write at a time)."""
        if self.checkpoints.pending:
            self._finish_checkpoint(blocking_commit)
        positions = self._commit_offsets()
        windows = self._handover_windows(positions) if self.handover is not None else {}
        # The write before is down (finished above), so its copy's buffers may be taken over.
        snapshots = None if self.checkpoints.forks else self._snapshots
        self.checkpoints.start(lambda: self._snapshot(snapshots), positions, self._flush,
                               lambda: self._hand_over(windows))
        if wait:
            self._finish_checkpoint(blocking_commit)

    def _flush(self) -> None:
        """Step 1 of a checkpoint: every record sent so far acknowledged by Kafka."""
        for sink in (self.predictions, self.dead):
            if sink is not None:
                self._flush_sink(sink)

    def _hand_over(self, windows: dict) -> None:
        """Step 3 of a checkpoint, once its file is down: the handover windows taken with its
        snapshot, acknowledged by Kafka before its offsets are committed. A window is never
        ahead of the last file down, so the next owner of a partition never skips records
        whose labels only a file that was never written had joined. Partitions no longer held
        are left out, as the commit leaves them out."""
        held = self.source.assignment() if self.source is not None else set()
        windows = {tp: window for tp, window in windows.items() if tp in held}  # as the commit does
        if self.handover is not None and windows:
            self.handover.write(windows)
            self._flush_sink(self.handover)

    def _flush_sink(self, sink) -> None:
        try:
            sink.flush(self.config.kafka.request_timeout_ms / 1000 * 4)
        except KafkaError as exc:
            raise SinkError(f"{sink.topic}: {exc}") from None

    def _finish_checkpoint(self, blocking_commit: bool = True) -> None:
        """Wait for the file (re-raising a failed write), then commit the offsets it holds."""

        def commit(positions: dict[TopicPartition, int]) -> None:
            if self.source is not None:
                try:
                    self.source.commit(positions, blocking_commit, self._commit_failed)
                except (CommitFailedError, KafkaError) as exc:
                    self._commit_failed(exc)

        seconds = self.checkpoints.finish(commit)
        if self.sharing is not None:
            self.sharing.written()
        self.metrics.checkpoint_written(seconds)
        self.log.debug("checkpoint", extra={"fields": {"seconds": round(seconds, 4), "model_version": self.model_version}})

    def _commit_offsets(self) -> dict[TopicPartition, int]:
        """The offsets to commit: the positions, or the end of a handover window still being
        read (its records were processed by the previous owner)."""
        return self.partitions.commit_offsets()

    def _handover_windows(self, offsets: dict[TopicPartition, int]) -> dict:
        """Per partition held, the handover window for whoever reads it next: the entries of it
        still waiting in the label join, and what is left of a window being read."""
        waiting = self.join.waiting()
        held = self.source.assignment() if self.source is not None else set()
        return self.partitions.handover_windows({tp: waiting.get(_name(tp), []) for tp in offsets}, offsets, held)

    def _on_lost(self, lost: set[TopicPartition]) -> None:
        """Partitions gone to other daemons, or whose checkpointed state another has moved on
        from: with a handover topic, their owner rebuilds their waiting label-join entries from
        the handover, so this one forgets them (else they wait here, most never to be joined)."""
        if self.handover is not None:
            self.partitions.forget(lost)
            for tp in lost:
                self._ahead.pop(tp, None)
            self.pacer.forget(lost)
            dropped = self.join.drop_sources({_name(tp) for tp in lost})
            self.log.info("handed_over", extra={"fields": {"partitions": sorted(map(_name, lost)), "entries": dropped}})

    def _commit_failed(self, exc: Exception) -> None:
        # The checkpoint holds the offsets: a restart resumes from there; the next commit catches up.
        self.log.warning("commit_failed", extra={"fields": {"error": f"{type(exc).__name__}: {exc}"}})

    def _on_revoke(self, revoked: set[TopicPartition]) -> None:
        """Partitions are leaving: checkpoint what was processed from them and commit it, then
        forget their positions (whoever reads them next starts from the commit). Runs on the
        consumer's IO thread while the loop waits in ``poll``, hence the non-blocking commit."""
        if self._failed:
            return
        if self.predictions is not None and (self.checkpoints.since or self.checkpoints.pending):
            self.checkpoint(wait=True, blocking_commit=False)
        self.partitions.forget(revoked)
        for tp in revoked:
            self._ahead.pop(tp, None)
        self.pacer.forget(revoked)
        self.log.info("partitions_revoked", extra={"fields": {"partitions": sorted(f"{t.topic}:{t.partition}"
                                                                                   for t in revoked)}})


@dataclass
class _Decoded:
    """The new records of a batch, decoded: events (with their records) and labels (with when
    they were written and where they come from)."""

    events: list = field(default_factory=list)
    records: list = field(default_factory=list)
    labels: list = field(default_factory=list)
    label_times: list = field(default_factory=list)
    label_origins: list = field(default_factory=list)


def next_batch_cap(cap: int, waiting: int, smallest: int, largest: int) -> int:
    """The most events the next batch takes, after a batch read with at most ``cap``:
    twice as many (at most ``largest``) while a whole batch more waits (``waiting``: records
    past the positions read in the partitions not held), half as many (at least ``smallest``)
    once less waits.

    >>> [next_batch_cap(c, w, 256, 1024) for c, w in ((256, 300), (512, 600), (1024, 5000), (1024, 100), (256, 0))]
    [512, 1024, 1024, 512, 256]
    """
    return min(2 * cap, largest) if waiting >= cap else max(cap // 2, smallest)


def _build_state(snapshot: dict) -> dict:
    """The checkpoint's plain-data tree from :meth:`Daemon._snapshot`: the parts it left to
    build (callables) are built here, in the writer (the heavy part)."""
    return {k: v() if callable(v) else v for k, v in snapshot.items()}


def _written(rec: Any, now: float) -> float:
    """When a record was written to Kafka (its timestamp), or ``now`` where it has none."""
    return rec.timestamp / 1000 if rec.timestamp and rec.timestamp > 0 else now


def _name(tp: TopicPartition) -> str:
    """How a partition is named in logs and as a label-join source: ``topic:partition``."""
    return f"{tp.topic}:{tp.partition}"


def _jsonable(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


class _stop_on_signals:
    """SIGTERM and SIGINT ask the daemon to stop (main thread only); previous handlers come back after."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.previous: dict[int, Any] = {}

    def __enter__(self) -> "_stop_on_signals":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        self.daemon.request_stop(signal.Signals(signum).name)

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

