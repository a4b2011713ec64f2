"""The daemon's part in the sync rounds among replicas: every replica learns every label.

Labels are scarce, so replicas of one group that split the partitions share them: each round
(:mod:`streamssl.distributed.rounds`) a replica offers the labelled events its learner learned
since the last round it offered in (rows as its heads saw them, temporal context included, so
per-entity state stays with the replica that owns the entity), and learns those of the other
members. Rounds run on a thread of their own; the loop hands the payload over and learns what
came back between batches (:meth:`LabelSharing.tick`), so a slow or failed round never holds
up predictions.

What is exactly identical across replicas after a round: the set of labelled events each has
learned from, up to that round. What is not: the order they were learned in, each replica's
standardisation statistics and temporal context (from its own events), so neither the
weights nor the predictions of two replicas are equal.

A round that does not go through (failed, timeout, late, unreachable) keeps its rows, offered
again in the next one (at most :attr:`LabelSharing.MAX_ROWS`; beyond, the oldest are dropped
and counted). The rows not yet through a round are in each checkpoint, and a restarted replica
offers them again: a label learned just before a crash reaches the others all the same (twice,
where its round went through after the checkpoint). Rows offered in a round where this replica
was alone went to nobody and are not kept: a replica that joins later has not learned them.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from typing import Any

import numpy as np

from ..config import DistributedConfig
from ..distributed.rounds import Round, SyncGroup


class LabelSharing:
    """Offers the learner's labelled events to the other replicas and learns theirs."""

    MAX_ROWS = 200_000

    def __init__(self, config: DistributedConfig, metrics, log: logging.Logger, group: SyncGroup | None = None,
                 offered: list[tuple[np.ndarray, list]] | None = None) -> None:
        self.group = group or SyncGroup(config)
        self.metrics, self.log = metrics, log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._result: Round | None = None
        self._bytes = self._sent = self._sent_parts = 0
        self._offered: list[tuple[np.ndarray, list]] = list(offered or [])  # offered, not yet through a round
        self._inbox: list[tuple[np.ndarray, list]] = []  # received before the learner could learn them

    def tick(self, learner) -> int:
        """Between batches: learn what a finished round brought, and start the next one with the
        labelled events learned since. Returns the rows learned from other replicas."""
        if self._thread is not None and self._thread.is_alive():
            return 0
        learned = 0
        if self._thread is not None:
            self._thread = None
            if self._result is not None:
                self._finished(self._result)
        learned += self._learn(learner)
        rows, labels = learner.take_labelled()
        if len(labels):
            self._offered.append((rows, labels))
            self._cap()
        payload = {"member": self.group.member, "offered": list(self._offered)}
        self._result = None
        self._thread = threading.Thread(target=self._run, args=(payload,), name="streamssl-sync", daemon=True)
        self._thread.start()
        return learned

    def _run(self, payload: dict) -> None:
        r = self.group.wait_for_next(self._stop.wait)
        if r is None:
            return
        self._bytes = len(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
        self._result = self.group.round(payload, r)
        self._result.payloads = [p for p in self._result.payloads if p.get("member") != self.group.member]
        self._sent = sum(len(ls) for _, ls in payload["offered"])
        self._sent_parts = len(payload["offered"])

    def _finished(self, result: Round) -> None:
        self.metrics.sync_rounds.labels(outcome=result.outcome).inc()
        self.metrics.sync_seconds.observe(result.seconds)
        if result.outcome in ("ok", "alone"):
            # What this round carried is through (or went to nobody): later parts stay offered.
            del self._offered[: self._sent_parts]
            if result.outcome == "ok":
                self.metrics.sync_rows.labels(direction="sent").inc(self._sent)
                self.metrics.sync_bytes.inc(self._bytes)
                self.metrics.sync_members.set(len(result.members))
                self.metrics.sync_last.set(time.time())
                for payload in result.payloads:
                    self._inbox.extend(payload.get("offered", []))
        else:
            self.log.warning("sync_round_skipped", extra={"fields": {
                "round": result.id, "outcome": result.outcome, "members": result.members, "error": result.error}})

    def _learn(self, learner) -> int:
        """Learn the rows received, once the learner has seen events of its own (it needs their
        statistics); rows it cannot take are dropped, counted and logged."""
        if not self._inbox or learner.n_features_ is None:
            return 0
        inbox, self._inbox = self._inbox, []
        learned = 0
        for rows, labels in inbox:
            try:
                learner.learn_shared(rows, labels)
                learned += len(labels)
            except ValueError as exc:
                self.metrics.sync_rows.labels(direction="dropped").inc(len(labels))
                self.log.error("sync_rows_dropped", extra={"fields": {"rows": len(labels), "error": str(exc)}})
        self.metrics.sync_rows.labels(direction="received").inc(learned)
        return learned

    def _cap(self) -> None:
        total = sum(len(ls) for _, ls in self._offered)
        while total > self.MAX_ROWS and len(self._offered) > 1:
            _, labels = self._offered.pop(0)
            total -= len(labels)
            self.metrics.sync_rows.labels(direction="dropped").inc(len(labels))
            self.log.warning("sync_rows_dropped", extra={"fields": {"rows": len(labels),
                                                                    "error": "too many rows waiting for a round"}})

    def unshared(self, learner) -> list[tuple[np.ndarray, list]]:
        """For a checkpoint (plain data): the labelled rows not yet through a round, those the
        learner learned since the last one included. A restart offers them again, so a label
        learned just before a crash still reaches the others (perhaps twice)."""
        return [(rows, list(labels)) for rows, labels in [*self._offered, *learner.kept_labelled()]]

    def close(self, timeout_s: float | None = None) -> None:
        """Stop after the round in flight (waiting at most ``timeout_s`` for it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self.group.close()

    def state(self) -> dict[str, Any]:
        """For logs: rows waiting to be offered and received waiting to be learned."""
        return {"offered": sum(len(ls) for _, ls in self._offered), "inbox": sum(len(ls) for _, ls in self._inbox)}
