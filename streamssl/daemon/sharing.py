"""The daemon's part in the sync rounds among replicas: every replica learns every label.

Labels are scarce, so replicas of one group that split the partitions share them: each round
(:mod:`streamssl.distributed.rounds`) a replica offers the labelled events its learner learned
that not every other replica has yet (rows as its heads saw them, temporal context included, so
per-entity state stays with the replica that owns the entity), and learns those of the other
members. Rounds run on a thread of their own; the loop hands the payload over and learns what
came back between batches (:meth:`LabelSharing.tick`), so a slow or failed round never holds
up predictions.

Each round also carries the statistics (count, mean, squared deviations) of the events the
replica has seen since its last round through, and each merges the others' into its
standardisation (Chan's merge), so all standardise as if each had seen every event. With the
self-supervised encoder on, each takes the members' encoder weights averaged, weighted by
the events each saw since the last round (its optimiser's state stays its own).

What is exactly identical across replicas after a round that all of them took part in: the set
of labelled events each has learned from, up to that round, and, among replicas that took part in every round since they
started, the standardisation statistics (up to rounding); the encoder's weights, right after
the round. What is not: the order the labels were learned in, the temporal context (per
entity, with the replica that owns it), the heads' weights, hence the predictions.

Rows are offered in every round until every rank has taken them: each offer carries the ranks
that have it, a receiver learns only what it does not have yet, and a round that goes through
records, per rank, the round it took them in. So a replica that sat rounds out (busy replaying a
partition it took over, its sync thread late, down and restarted) still learns what the others
offered meanwhile, once. A round that does not go through (alone, failed, timeout, late,
unreachable) keeps the rows for the next. Rows still missing a rank ``offer_for_s`` after they
were first offered are given up for it (counted as ``expired``: a replica that stays down does
not make every round carry all labels since). Beyond :attr:`LabelSharing.MAX_BYTES` of rows
kept, the oldest are forgotten (those some rank lacks counted as dropped).

Restarts. A checkpoint holds this replica's offers (with who took them when) and the last round
whose received rows its learner had learned. Restarted from it, the replica offers its own rows
again to the ranks that had not taken them (a label learned just before a crash reaches the
others all the same, perhaps twice), and says in every payload which round it resumed from and
which was its first round back: the others then offer it again, once, what it took in between
(learned after its checkpoint, lost in the crash). For that, each keeps its offers after every
rank took them, until every rank says (``durable``) it has written a checkpoint holding them, or
``offer_for_s``.
"""

from __future__ import annotations

import logging
import math
import pickle
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..config import DistributedConfig
from ..distributed.merge import Moments, average_states, merge_moments
from ..distributed.rounds import Round, SyncGroup


@dataclass
class Offer:
    """Labelled rows this replica offers, and when each rank took them: ``taken`` maps a rank to
    the round it took them in (this replica's own: -1).

    A checkpoint holds it as plain data (:meth:`plain`); :meth:`from_plain` also reads the
    ``(rows, labels)`` pairs of checkpoints from before offers knew their ranks.

    >>> old = Offer.from_plain(([[0.0, 1.0]], ["x"]), rank=1, now=5.0)  # an older checkpoint's
    >>> old.taken, old.since, Offer.from_plain(old.plain(), rank=1, now=9.0).since
    ({1: -1}, 5.0, 5.0)
    """

    rows: np.ndarray
    labels: list
    taken: dict[int, int]
    since: float  # wall clock, when first offered

    def lacking(self, ranks: set[int]) -> set[int]:
        """The ``ranks`` that have not taken these rows."""
        return ranks - self.taken.keys()

    def plain(self) -> tuple:
        return self.rows, list(self.labels), sorted(self.taken.items()), self.since

    @classmethod
    def from_plain(cls, entry: Sequence, rank: int, now: float) -> "Offer":
        rows, labels, *rest = entry
        # (rank, round) pairs; bare ranks in checkpoints of the week offers knew only who had them
        taken = {int(k): int(r) for k, r in (e if isinstance(e, (list, tuple)) else (e, -1) for e in rest[0])} \
            if rest else {}
        return cls(np.asarray(rows, dtype=np.float32), list(labels), {**taken, rank: -1},
                   float(rest[1]) if rest else now)


class LabelSharing:
    """Offers the learner's labelled events to the other replicas and learns theirs."""

    MAX_BYTES = 256 << 20  # of rows kept (offer_for_s of labels on a wide stream could be gigabytes)

    def __init__(self, config: DistributedConfig, metrics, log: logging.Logger, group: SyncGroup | None = None,
                 restored: Mapping[str, Any] | None = None, clock: Callable[[], float] = time.time) -> None:
        self.group = group or SyncGroup(config)
        self.rank, self.ranks = self.group.rank, set(range(config.world_size))
        self.offer_for_s, self.clock = config.offer_for_s, clock
        self.metrics, self.log = metrics, log
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._result: Round | None = None
        self._bytes = 0  # of the payload of the round in flight, pickled (on the round's thread)
        restored = restored or {}
        # Ours: offered while some rank lacks them, kept until every rank has them on disk
        # (to offer again to a rank that lost them in a crash), at most offer_for_s.
        self._offers = [Offer.from_plain(o, self.rank, clock()) for o in restored.get("offers", ())]
        self._carried: list[Offer] = []  # those in the round in flight
        self._inbox: list[tuple[np.ndarray, list]] = []  # received before the learner could learn them
        # The last round whose rows the learner has (in a checkpoint: what a restart resumes
        # from), and this process's first round through: the others offer again what this rank
        # took between the two (learned after the checkpoint, lost in the crash).
        self.learned_round = int(restored.get("learned_round", -1))
        self._resumed, self._first = self.learned_round, None
        self._received = self.learned_round  # the last round through
        # The learned round of the last checkpoint on disk (ours, and each other rank's as its
        # last payload said): an offer every rank has on disk is forgotten.
        self.durable_round, self._snapshotted = self.learned_round, None
        self._durable: dict[int, int] = {}
        self._moments: Moments | None = None  # the statistics of our events since the last round through
        self._inbox_moments: list[Moments] = []
        self._own: dict = {}  # the payload of the round in flight
        self._encoders: list[tuple[dict, float]] = []  # (weights, events) of the last round through

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
            self._offers.append(Offer(rows, list(labels), {self.rank: -1}, self.clock()))
        self._expire()
        self._forget_durable()
        self._cap()
        seen = learner.take_moments()
        if seen is not None:
            self._moments = seen if self._moments is None else merge_moments([self._moments, seen])
        self._carried = [o for o in self._offers if o.lacking(self.ranks)]
        payload = {"member": self.group.member, "rank": self.rank, "resumed": [self._resumed, self._first],
                   "durable": self.durable_round,
                   "offered": [(o.rows, o.labels, sorted(o.taken)) for o in self._carried], "moments": self._moments,
                   "encoder": learner.encoder_state(), "events": 0 if self._moments is None else self._moments[0]}
        self._own = payload
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

    def _finished(self, result: Round) -> None:
        self.metrics.sync_rounds.labels(outcome=result.outcome).inc()
        self.metrics.sync_seconds.observe(result.seconds)
        if result.outcome == "ok":
            # The members now have what this round carried: counted as sent the first time it
            # reaches another rank, offered no more once every rank has it.
            members = {p["rank"] for p in [self._own, *result.payloads] if "rank" in p}
            for offer in self._carried:
                new = offer.lacking(members)
                if len(offer.taken) == 1 and new:
                    self.metrics.sync_rows.labels(direction="sent").inc(len(offer.labels))
                for rank in new:
                    offer.taken[rank] = result.id
            for payload in result.payloads:
                self._offer_again(payload)
                if "durable" in payload:
                    self._durable[payload["rank"]] = payload["durable"]
            self._first = result.id if self._first is None else self._first
            self._received = result.id
            self._moments = None
            self.metrics.sync_bytes.inc(self._bytes)
            self.metrics.sync_members.set(len(result.members))
            self.metrics.sync_last.set(time.time())
            for payload in result.payloads:  # what we do not have yet (older replicas send no ranks)
                self._inbox.extend((entry[0], entry[1]) for entry in payload.get("offered", [])
                                   if len(entry) < 3 or self.rank not in entry[2])
                if payload.get("moments") is not None:
                    self._inbox_moments.append(payload["moments"])
            self._encoders = [(p["encoder"], float(p.get("events") or 0)) for p in [self._own, *result.payloads]
                              if p.get("encoder") is not None]
        elif result.outcome == "alone":  # kept for whoever comes (a replica just late, or back)
            self.metrics.sync_members.set(1)
        else:
            self.log.warning("sync_round_skipped", extra={"fields": {
                "round": result.id, "outcome": result.outcome, "members": result.members, "error": result.error}})

    def _offer_again(self, payload: dict) -> None:
        """A member that resumed from a checkpoint lost what it took after it: offer that again.

        It says so in every payload (``resumed``: the last round its checkpoint had learned,
        and its own first round through), so this holds however many rounds we sat out, and
        repeats harmlessly: what it takes again is taken in a round after its first."""
        rank, (resumed, first) = payload.get("rank"), payload.get("resumed") or (None, None)
        if rank is None or first is None:
            return
        for offer in self._offers:
            if resumed < offer.taken.get(rank, -1) < first:
                del offer.taken[rank]

    def _learn(self, learner) -> int:
        """Learn the rows received, once the learner has seen events of its own (it needs their
        statistics); rows it cannot take are dropped, counted and logged."""
        if self._encoders:
            self._average_encoders(learner)
        if not self._inbox:
            self.learned_round = self._received
        if not (self._inbox or self._inbox_moments) or learner.n_features_ is None:
            return 0
        moments, self._inbox_moments = self._inbox_moments, []
        for n, mean, m2 in moments:
            try:
                learner.merge_moments(n, mean, m2)
            except ValueError as exc:
                self.log.error("sync_statistics_dropped", extra={"fields": {"events": n, "error": str(exc)}})
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
        self.learned_round = self._received
        return learned

    def _average_encoders(self, learner) -> None:
        """Take the members' encoder weights averaged, each weighted by the events it saw since
        the last round through (equally where none did)."""
        encoders, self._encoders = self._encoders, []
        if len(encoders) < 2 or learner.encoder_state() is None:
            return
        weights = [w for _, w in encoders]
        try:
            learner.load_encoder_state(average_states([e for e, _ in encoders],
                                                      weights if sum(weights) > 0 else [1.0] * len(weights)))
        except (KeyError, RuntimeError, ValueError) as exc:  # another architecture: not averaged
            self.log.error("sync_encoder_not_averaged", extra={"fields": {"error": str(exc)[:300]}})

    def _expire(self) -> None:
        """Forget offers older than ``offer_for_s``; those some rank never took are counted as
        expired (given up for it: down that long)."""
        now = self.clock()
        old = [o for o in self._offers if now - o.since > self.offer_for_s]
        if not old:
            return
        self._offers = [o for o in self._offers if now - o.since <= self.offer_for_s]
        missed = [o for o in old if o.lacking(self.ranks)]
        if missed:
            rows = sum(len(o.labels) for o in missed)
            self.metrics.sync_rows.labels(direction="expired").inc(rows)
            self.log.warning("sync_rows_expired", extra={"fields": {
                "rows": rows, "offered_for_s": self.offer_for_s,
                "ranks_missing": sorted(set().union(*(o.lacking(self.ranks) for o in missed)))}})

    def _forget_durable(self) -> None:
        """Forget the offers every other rank has in a checkpoint on disk: no crash can lose them."""
        others = self.ranks - {self.rank}
        self._offers = [o for o in self._offers
                        if not all(o.taken.get(r, math.inf) <= self._durable.get(r, -math.inf) for r in others)]

    def _cap(self) -> None:
        """Keep at most :attr:`MAX_BYTES` of rows: forget the oldest offers beyond (those every
        rank has quietly, they were kept only against a crash; the others dropped and counted)."""
        total = sum(o.rows.nbytes for o in self._offers)
        while total > self.MAX_BYTES and len(self._offers) > 1:
            offer = self._offers.pop(0)
            labels = offer.labels
            total -= offer.rows.nbytes
            if not offer.lacking(self.ranks):
                continue
            self.metrics.sync_rows.labels(direction="dropped").inc(len(labels))
            self.log.warning("sync_rows_dropped", extra={"fields": {"rows": len(labels),
                                                                    "error": "too many rows waiting for a round"}})

    def checkpoint(self, learner) -> dict[str, Any]:
        """For a checkpoint (plain data): our offers (:meth:`Offer.plain`), those the learner
        learned since the last round included, and the last round whose rows the learner has.
        A restart offers ours again to the ranks that had not taken them (a label learned just
        before a crash still reaches the others, perhaps twice), and the others offer again what
        this rank took after ``learned_round``."""
        offers = [o.plain() for o in self._offers] + [Offer(rows, list(labels), {self.rank: -1}, self.clock()).plain()
                                                       for rows, labels in learner.kept_labelled()]
        self._snapshotted = self.learned_round
        return {"offers": offers, "learned_round": self.learned_round}

    def written(self) -> None:
        """The checkpoint last taken (:meth:`checkpoint`) is on disk: the others are told, and
        forget what this rank has durably."""
        if self._snapshotted is not None:
            self.durable_round, self._snapshotted = self._snapshotted, None

    def close(self, timeout_s: float | None = None) -> None:
        """Stop after the round in flight: every step of a round is bounded by the round's
        timeout, so waiting ``timeout_s`` a few times over lets it end (a thread left inside
        torch.distributed when the process exits can abort it)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(None if timeout_s is None else 4 * timeout_s)
            if self._thread.is_alive():
                self.log.warning("sync_round_still_running", extra={"fields": {"waited_s": 4 * timeout_s}})
        self.group.close()

    def state(self) -> dict[str, Any]:
        """For logs: rows waiting to be offered and received waiting to be learned."""
        waiting = [o for o in self._offers if o.lacking(self.ranks)]
        return {"offered": sum(len(o.labels) for o in waiting), "inbox": sum(len(ls) for _, ls in self._inbox)}
