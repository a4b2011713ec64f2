"""Metrics of the daemon, added to a learner's on the same registry."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .histogram import BatchHistogram
from .registry import LearnerMetrics

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 4, 16, 64, 128, 256, 512, 1024, 4096, 16384)


class DaemonMetrics(LearnerMetrics):
    """The learner's metrics plus those of consuming, producing, joining and checkpointing.

    Examples
    --------
    >>> registry = CollectorRegistry()
    >>> m = DaemonMetrics(registry)
    >>> m.dead_letters.labels(reason="undecodable").inc()
    >>> registry.get_sample_value("streamssl_dead_letters_total", {"reason": "undecodable"})
    1.0
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(registry)
        r = self.registry
        self.consumer_lag = Gauge("streamssl_consumer_lag", "Messages behind the end of each assigned partition.",
                                  ["topic", "partition"], registry=r)
        self.partitions_held = Gauge("streamssl_partitions_held",
                                     "Assigned partitions not fetched for now, to keep labels and events in step.",
                                     ["topic"], registry=r)
        self.partition_holds = Counter("streamssl_partition_holds", "Times a partition was held back (see pacing).",
                                       ["topic"], registry=r)
        self.batch_size = Histogram("streamssl_batch_size_events", "Events per micro-batch.",
                                    buckets=BATCH_BUCKETS, registry=r)
        self.latency = BatchHistogram("streamssl_end_to_end_latency_seconds",
                                      "From an event's timestamp to its prediction being produced.",
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.predictions = Counter("streamssl_predictions_produced", "Predictions sent to the output topic.",
                                   registry=r)
        self.duplicates = Counter("streamssl_duplicate_events",
                                  "Events predicted again: redelivered (the id was already waiting for a label) "
                                  "or replayed (read again after a restart, past the last checkpoint).", ["cause"],
                                  registry=r)
        self.dead_letters = Counter("streamssl_dead_letters", "Messages sent to the dead-letter topic, by reason.",
                                    ["reason"], registry=r)
        self.label_hits = Counter("streamssl_label_join_hits", "Labels joined to the event they belong to.",
                                  registry=r)
        self.label_misses = Counter("streamssl_label_join_misses",
                                    "Labels that found no event: unknown, expired or duplicate.", ["reason"],
                                    registry=r)
        self.label_evictions = Counter("streamssl_label_buffer_evictions",
                                       "Events dropped from the label-join buffer unlabelled, by cause.",
                                       ["cause"], registry=r)
        self.handover_records = Counter("streamssl_handover_records",
                                        "Records read again from a partition's handover window (its previous "
                                        "owner's), to rebuild the label-join state.", ["topic"], registry=r)
        self.label_handover = Counter("streamssl_label_join_handover",
                                      "Handed-over labels: settled (joined or missed by the previous owner) or "
                                      "unmatched (no event in the window handed over).", ["outcome"], registry=r)
        self.label_buffer = Gauge("streamssl_label_buffer_events", "Events waiting for their label.", registry=r)
        self.label_waiting = Gauge("streamssl_label_buffer_labels",
                                   "Labels waiting for their event (read ahead of it).", registry=r)
        self.checkpoint_seconds = Histogram("streamssl_checkpoint_duration_seconds",
                                            "Time to flush outputs and write a checkpoint.", registry=r)
        self.last_checkpoint = Gauge("streamssl_last_checkpoint_timestamp_seconds",
                                     "Unix time of the last checkpoint written.", registry=r)
        self.checkpoint_age = Gauge("streamssl_checkpoint_age_seconds",
                                    "Seconds since the last checkpoint (since start when none yet).", registry=r)
        self.ready = Gauge("streamssl_ready", "1 while consuming and not stalled, else 0.", registry=r)
        self.model_version = Gauge("streamssl_model_version", "Learning updates applied to the model.", registry=r)
        # Sync rounds among replicas (streamssl.distributed; only with distributed.world_size > 1).
        self.sync_rounds = Counter("streamssl_sync_rounds", "Sync rounds among replicas, by outcome: ok, alone, "
                                   "late, failed, timeout, unreachable.", ["outcome"], registry=r)
        self.sync_seconds = Histogram("streamssl_sync_duration_seconds", "From joining a sync round to its end.",
                                      buckets=LATENCY_BUCKETS, registry=r)
        self.sync_bytes = Counter("streamssl_sync_sent_bytes", "Bytes of this replica's payloads in sync rounds "
                                  "that went through (pickled).", registry=r)
        self.sync_rows = Counter("streamssl_sync_rows", "Labelled rows shared through sync rounds: sent to the "
                                 "other replicas, received and learned, dropped (with the reason), or expired (offered "
                                 "for distributed.offer_for_s without reaching every replica).",
                                 ["direction"], registry=r)
        self.sync_members = Gauge("streamssl_sync_members", "Replicas in the last sync round that went through.",
                                  registry=r)
        self.sync_last = Gauge("streamssl_sync_last_success_timestamp_seconds",
                               "When the last sync round went through.", registry=r)
        self._checkpointed_at = time.time()  # start time until the first checkpoint
        self.checkpoint_age.set_function(lambda: time.time() - self._checkpointed_at)
        self._join_seen: dict[str, float] = {}

    def checkpoint_written(self, seconds: float) -> None:
        """Record a checkpoint that took ``seconds``, written now."""
        self._checkpointed_at = time.time()
        self.checkpoint_seconds.observe(seconds)
        self.last_checkpoint.set(self._checkpointed_at)

    def sync_join(self, join) -> None:
        """Bring label-join counters up to date with a :class:`~streamssl.label_join.LabelJoin`."""
        self._advance(self.label_hits, "hits", join.hits)
        self._advance(self.duplicates.labels(cause="redelivered"), "redelivered", join.redelivered)
        for reason, n in join.misses.items():
            self._advance(self.label_misses.labels(reason=reason), f"miss:{reason}", n)
        for cause, n in join.evictions.items():
            self._advance(self.label_evictions.labels(cause=cause), f"evict:{cause}", n)
        for outcome, n in join.handover.items():
            self._advance(self.label_handover.labels(outcome=outcome), f"handover:{outcome}", n)
        self.label_buffer.set(len(join))
        self.label_waiting.set(len(join.pending))

    def _advance(self, counter, key: str, total: float) -> None:
        # Counters carry the join's cumulative tallies (a restored daemon starts from them).
        seen = self._join_seen.get(key, 0.0)
        if total > seen:
            counter.inc(total - seen)
            self._join_seen[key] = total
