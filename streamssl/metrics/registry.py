"""Prometheus metrics of a learner, on an injectable registry."""

from __future__ import annotations

import math
from collections import Counter as TallyCounter, deque
from typing import Callable, Iterable, Iterator

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily

from .histogram import BatchHistogram

CONFIDENCE_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0)


class LearnerMetrics:
    """The learner's metrics, all prefixed ``streamssl_``.

    Tests pass a fresh ``CollectorRegistry()`` and read values with ``get_sample_value``.

    Examples
    --------
    >>> registry = CollectorRegistry()
    >>> m = LearnerMetrics(registry)
    >>> m.events.labels(kind="labelled").inc(3)
    >>> registry.get_sample_value("streamssl_events_processed_total", {"kind": "labelled"})
    3.0
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.events = Counter("streamssl_events_processed", "Events processed, by whether their label was known.",
                              ["kind"], registry=r)
        self.confidence = BatchHistogram("streamssl_prediction_confidence", "Top class probability of each prediction.",
                                         buckets=CONFIDENCE_BUCKETS, registry=r)
        self.pseudo_accepted = Counter("streamssl_pseudo_labels_accepted", "Predictions accepted as pseudo-labels.",
                                       registry=r)
        self.pseudo_rejected = Counter("streamssl_pseudo_labels_rejected",
                                       "Unlabelled events not used as pseudo-labels, by the guard that refused them.",
                                       ["reason"], registry=r)
        self.pseudo_cut = Gauge(
            "streamssl_pseudo_label_cut", "The lowest served confidence taken as a pseudo-label now: the lowest at "
            "which the labels' audit proves answers right at least the threshold's share of the time (above 1: none "
            "taken, as until the labels prove it). Labelled with the threshold; only while pseudo-labels are on.", ["threshold"], registry=r)
        self.pseudo_scored = Counter(
            "streamssl_pseudo_labels_scored", "Accepted pseudo-labels whose true label became known, by outcome "
            "(correct or wrong): their precision where it is known.", ["outcome"], registry=r)
        self.drifts = Counter("streamssl_drift_detections", "Drift detections, by signal, detector and level.",
                              ["signal", "detector", "level"], registry=r)
        self.last_drift = Gauge("streamssl_last_drift_timestamp_seconds", "Unix time of the last drift detection.",
                                registry=r)
        self.ssl_loss = Gauge("streamssl_ssl_loss", "Latest loss of the self-supervised objective.", registry=r)
        self._collapse = _CollapseCollector()
        r.register(self._collapse)
        self.accuracy = Gauge("streamssl_prequential_accuracy_ratio",
                              "Accuracy of predictions made before learning, over scored events.", registry=r)
        self.estimated_accuracy = Gauge(
            "streamssl_estimated_accuracy_ratio", "Mean served confidence over the last 1,000 predictions: the "
            "accuracy to expect, estimated without labels (the served answers are calibrated).", registry=r)
        self.calibration_error = Gauge(
            "streamssl_calibration_error", "Expected calibration error (15 confidence bins) of the served answers "
            "over the last 1,000 labelled events, each answered before its label was learned.", registry=r)
        # Read from the learner when scraped, not binned again after every micro-batch (3 % of a
        # replay's time on elec2); NaN before the first labelled event.
        self._learner = None
        self.calibration_error.set_function(self._calibration_error)
        self._recent_confidence: deque[float] = deque(maxlen=1000)
        self.batch_seconds = Histogram("streamssl_batch_processing_seconds",
                                       "Wall time to predict and learn one micro-batch.", registry=r)
        self._seen_rejections: TallyCounter[str] = TallyCounter()
        self._seen_drifts: TallyCounter[tuple[str, str, str]] = TallyCounter()
        self._seen_accepted = 0

    def served(self, confidence: Iterable[float]) -> None:
        """Predictions were served with these top-class probabilities: the confidence histogram
        and the estimated accuracy (their recent mean) follow."""
        values = np.asarray(confidence, dtype=np.float64).ravel()
        self.confidence.observe_many(values)
        self._recent_confidence.extend(values.tolist())
        if self._recent_confidence:
            self.estimated_accuracy.set(sum(self._recent_confidence) / len(self._recent_confidence))

    def learned(self, learner, labelled: int, unlabelled: int, seconds: float, accuracy: float | None) -> None:
        """A micro-batch was predicted and learned: the event counts, its processing time, the
        prequential accuracy so far (``None``: nothing scored yet) and the learner's own tallies
        (:meth:`sync_learner`). The one place where replay and daemon report a learned batch."""
        self.events.labels(kind="labelled").inc(labelled)
        self.events.labels(kind="unlabelled").inc(unlabelled)
        self.batch_seconds.observe(seconds)
        if accuracy is not None:
            self.accuracy.set(accuracy)
        self.sync_learner(learner)

    def sync_learner(self, learner) -> None:
        """Bring counters up to date with a learner's own cumulative tallies."""
        policy = getattr(learner, "policy", None)
        if policy is not None:
            self.pseudo_accepted.inc(policy.accepted - self._seen_accepted)
            self._seen_accepted = policy.accepted
            for reason, n in policy.rejected.items():
                self.pseudo_rejected.labels(reason=reason).inc(n - self._seen_rejections[reason])
                self._seen_rejections[reason] = n
            if getattr(learner, "pseudo_labels", False) is not False:
                self.pseudo_cut.labels(threshold=f"{policy.threshold:g}").set(policy.cut)
        monitor = getattr(learner, "monitor", None)
        if monitor is not None:
            for key, n in monitor.counts.items():
                if n > self._seen_drifts[key]:
                    signal, detector, level = key
                    self.drifts.labels(signal=signal, detector=detector, level=level).inc(n - self._seen_drifts[key])
                    self._seen_drifts[key] = n
            if monitor.events:
                self.last_drift.set(monitor.events[-1].time)
        self._learner = learner
        loss = getattr(learner, "ssl_loss", None)
        if loss is not None:
            self.ssl_loss.set(loss)
        self._collapse.stats = getattr(learner, "ssl_stats", None)

    def _calibration_error(self) -> float:
        ece = getattr(self._learner, "calibration_error", None)
        return math.nan if ece is None else float(ece)


class _CollapseCollector:
    """The encoder's collapse measures (:meth:`StreamLearner.ssl_stats`), computed when scraped:
    an SVD over the recent window is not worth redoing on every micro-batch. Before the
    encoder's first step the families are there without samples."""

    def __init__(self) -> None:
        self.stats: Callable[[], dict | None] | None = None

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return self._families({})

    def collect(self) -> Iterator[GaugeMetricFamily]:
        return self._families((self.stats() if self.stats is not None else None) or {})

    @staticmethod
    def _families(stats: dict) -> Iterator[GaugeMetricFamily]:
        rank = GaugeMetricFamily(
            "streamssl_ssl_effective_rank",
            "Effective rank of recent online embeddings (space=encoder: what the heads see; space=projection: "
            "the loss's space). Near 1 means collapse.", labels=["space"])
        for space, key in (("encoder", "effective_rank"), ("projection", "projection_effective_rank")):
            if key in stats:
                rank.add_metric([space], stats[key])
        spread = GaugeMetricFamily(
            "streamssl_ssl_embedding_std",
            "Std over recent events of each dimension of the L2-normalised embedding, mean or min over dimensions. "
            "Near 0 means collapse.", labels=["stat"])
        for stat in ("mean", "min"):
            if f"embedding_std_{stat}" in stats:
                spread.add_metric([stat], stats[f"embedding_std_{stat}"])
        yield rank
        yield spread
