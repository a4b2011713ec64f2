"""Prequential (test-then-train) evaluation over micro-batches, with a label budget and delay.

Every event of a micro-batch is predicted before anything of that batch is learned. The
label of a seeded random fraction ``label_rate`` of events is revealed ``label_delay``
events later (0: right after its own batch was predicted); the other events are learned
unlabelled. The mask is ``numpy.random.default_rng(seed).random(n) < label_rate``, drawn
in stream order, so it is the same whatever the batch size and for every model.
Unrevealed true labels are used only for scoring and for the precision of pseudo-labels.

Throughput (``events_per_second``) is steady-state: it is timed from the second micro-batch
on, for every model alike, because the first one pays one-off start-up costs (building the
model, torch's first kernels; an SSL encoder's first optimiser step imports ``torch._dynamo``,
a second or more here) that say nothing about a long-running stream. A stream of one batch is timed whole.

Beside the accuracy, a summary gives what it should be read against: the majority-class rate
and the no-change accuracy (each label predicted as the previous one) of the same scored
events, and the accuracy without the first micro-batch (predicted before any label exists).
It also says how honest the served confidence was: the expected calibration error over every
scored event (15 equal-width bins of the top probability) and the mean served confidence, the
accuracy a user would estimate without any label.
Batches with ``keys`` give a model that takes them each event's entity.

Delayed labels go through the daemon's :class:`~streamssl.label_join.LabelJoin`: a revealed
event waits there by its position in the stream, and its label is published ``label_delay``
events later and joined to it by that id, as a label from Kafka is joined to its event.
"""

from __future__ import annotations

import inspect
import math
import resource
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Iterable, Iterator, Protocol

import numpy as np

from ..label_join import LabelJoin
from ..learner.calibration import Reliability
from ..sources.file import Batch


class BatchModel(Protocol):
    """What the evaluation needs of a model (``StreamLearner`` and ``RiverBatchAdapter`` have it)."""

    classes_: list

    def predict_proba_many(self, X: np.ndarray) -> np.ndarray: ...
    def learn_many(self, X: np.ndarray, y: list | None = None) -> None: ...
    def learn_late_labels(self, X: np.ndarray, y: list) -> None: ...


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def cohen_kappa(confusion: Counter) -> float:
    """Cohen's kappa from a ``{(true, predicted): count}`` tally.

    >>> round(cohen_kappa(Counter({(0, 0): 40, (1, 1): 40, (0, 1): 10, (1, 0): 10})), 6)
    0.6
    """
    n = sum(confusion.values())
    if n == 0:
        return 0.0
    observed = sum(c for (t, p), c in confusion.items() if t == p) / n
    true_tot, pred_tot = Counter(), Counter()
    for (t, p), c in confusion.items():
        true_tot[t] += c
        pred_tot[p] += c
    expected = sum(true_tot[k] * pred_tot[k] for k in true_tot) / n**2
    return 0.0 if expected == 1.0 else (observed - expected) / (1.0 - expected)


@dataclass
class ReplaySummary:
    """Running totals of a prequential run; :meth:`to_json` gives the replay JSON."""

    events: int = 0
    scored: int = 0
    correct: int = 0
    labels_used: int = 0
    pseudo_labels_accepted: int = 0
    pseudo_labels_scored: int = 0  # accepted pseudo-labels whose event has a true label
    pseudo_labels_correct: int = 0
    seconds: float = 0.0  # time spent on timed batches (all but the first)
    timed_events: int = 0
    first_batch_seconds: float = 0.0
    confusion: Counter = field(default_factory=Counter)
    drifts: list[int] = field(default_factory=list)  # positions of drift-level detections
    drift_events: list[dict] = field(default_factory=list)  # every detection, warnings too
    ssl_stats: Callable[[], dict | None] | None = None  # read when the summary is written
    experts: Callable[[], dict | None] | None = None  # the model's members (StreamLearner.experts), likewise
    first_batch_scored: int = 0  # scored events of the first micro-batch, predicted before any label
    first_batch_correct: int = 0
    truths: Counter = field(default_factory=Counter)  # scored events by true label
    no_change_correct: int = 0  # scored events whose label is the previous scored event's
    previous_truth: Any = None
    reliability: Reliability = field(default_factory=Reliability)  # served confidence against correctness
    rows_rejected: dict[str, int] = field(default_factory=dict)  # filled in by the caller
    label_column: str | None = None  # likewise

    @property
    def accuracy(self) -> float:
        return self.correct / self.scored if self.scored else 0.0

    @property
    def kappa(self) -> float:
        return cohen_kappa(self.confusion)

    @property
    def events_per_second(self) -> float:
        if self.timed_events and self.seconds > 0:
            return self.timed_events / self.seconds
        total = self.seconds + self.first_batch_seconds
        return self.events / total if total > 0 else 0.0

    @property
    def pseudo_label_precision(self) -> float | None:
        if not self.pseudo_labels_scored:
            return None
        return self.pseudo_labels_correct / self.pseudo_labels_scored

    @property
    def majority_rate(self) -> float:
        """The share of the most frequent label among the scored events (in hindsight)."""
        return max(self.truths.values()) / self.scored if self.scored else 0.0

    @property
    def no_change_accuracy(self) -> float:
        """The accuracy of predicting each event's label as the previous event's (every label known)."""
        return self.no_change_correct / self.scored if self.scored else 0.0

    @property
    def calibration_error(self) -> float | None:
        """Expected calibration error of the served confidence over every scored event."""
        return self.reliability.calibration_error

    @property
    def estimated_accuracy(self) -> float | None:
        """The mean served confidence over every scored event: the accuracy estimated without labels."""
        return self.reliability.mean_confidence

    @property
    def accuracy_after_first_batch(self) -> float:
        """Accuracy without the first micro-batch, where no label has been seen yet."""
        scored = self.scored - self.first_batch_scored
        return (self.correct - self.first_batch_correct) / scored if scored else 0.0

    def to_json(self) -> dict:
        """The replay result with exactly the keys other tools read."""
        return {
            "events": self.events,
            "accuracy": self.accuracy,
            "kappa": self.kappa,
            "events_per_second": self.events_per_second,
            "peak_rss_mb": peak_rss_mb(),
            "labels_used": self.labels_used,
            "pseudo_labels_accepted": self.pseudo_labels_accepted,
            "pseudo_label_precision": self.pseudo_label_precision,
            "drifts": list(self.drifts),
            "drift_events": [dict(e) for e in self.drift_events],
            "ssl": self.ssl_stats() if self.ssl_stats is not None else None,
            "experts": self.experts() if self.experts is not None else None,
            "accuracy_after_first_batch": self.accuracy_after_first_batch,
            "majority_rate": self.majority_rate,
            "no_change_accuracy": self.no_change_accuracy,
            "calibration_error": self.calibration_error,
            "estimated_accuracy": self.estimated_accuracy,
            "reliability": self.reliability.diagram(),
            "rows_rejected": dict(self.rows_rejected),
            "label_column": self.label_column,
        }


@dataclass(frozen=True)
class BatchResult:
    """What happened in one micro-batch (for progress bars and metrics)."""

    size: int
    labelled: int
    confidence: np.ndarray
    seconds: float
    summary: ReplaySummary


def prequential(
    batches: Iterable[Batch],
    model: BatchModel,
    label_rate: float = 1.0,
    label_delay: int = 0,
    seed: int = 0,
) -> Iterator[BatchResult]:
    """Run test-then-train over ``batches``, yielding after each one; the last
    :class:`BatchResult`'s ``summary`` is the final result.

    Examples
    --------
    >>> from streamssl.learner import StreamLearner
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 3)); y = (X[:, 0] > 0).astype(int).tolist()
    >>> batches = [Batch(X[i:i + 100], y[i:i + 100], np.arange(i, i + 100)) for i in range(0, 2000, 100)]
    >>> *_, last = prequential(batches, StreamLearner(encoder=False, seed=0), label_rate=0.1, seed=0)
    >>> s = last.summary
    >>> s.events, s.labels_used, s.accuracy > 0.8
    (2000, 210, True)
    """
    if not 0.0 <= label_rate <= 1.0:
        raise ValueError("label_rate must be in [0, 1]")
    if label_delay < 0:
        raise ValueError("label_delay must be >= 0")
    rng = np.random.default_rng(seed)
    # Labels come only after their events, and none is given up: nothing expires, nothing waits.
    # At most label_delay revealed events wait between batches, plus the batch in hand: sized so
    # (per batch) the join never evicts one and remembers no more ids than that.
    join = LabelJoin(ttl_s=math.inf, max_events=label_delay, pending_ttl_s=math.inf, max_pending=0)
    published: deque[tuple[int, str, Hashable]] = deque()  # the label stream: (published after event, id, label)
    summary = ReplaySummary(ssl_stats=getattr(model, "ssl_stats", None),
                            experts=(lambda: model.experts) if hasattr(model, "experts") else None)
    last_event = None  # the newest drift event already reported
    keyed = None  # whether the model is given each event's entity (batches with keys, a model that takes them)
    for batch in batches:
        n = len(batch.y)
        if n == 0:
            continue
        if keyed is None:
            keyed = getattr(batch, "keys", None) is not None and "keys" in inspect.signature(
                model.predict_proba_many).parameters
        start = time.perf_counter()
        first = summary.events
        keys = {"keys": batch.keys} if keyed else {}
        proba = model.predict_proba_many(batch.X, **keys)
        predicted = _labels(proba, model.classes_)
        confidence = proba.max(axis=1) if proba.shape[1] else np.zeros(n)
        _score(summary, batch.y, predicted, confidence)
        revealed = (rng.random(n) < label_rate) & np.array([t is not None for t in batch.y])
        if label_delay == 0:
            model.learn_many(batch.X, [t if r else None for t, r in zip(batch.y, revealed)], **keys)
            summary.labels_used += int(revealed.sum())
        else:
            model.learn_many(batch.X, None, **keys)
            shown = np.flatnonzero(revealed)
            join.max_events = max(join.max_events, label_delay + n)
            ids = [str(first + int(i)) for i in shown]
            join.add_events(ids, batch.X[shown], [predicted[i] for i in shown], now=float(first),
                            keys=[batch.keys[i] for i in shown] if keyed else None)
            published.extend((first + int(i) + label_delay, event_id, batch.y[i]) for i, event_id in zip(shown, ids))
        _score_pseudo_labels(model, batch.y, summary)
        last = first + n - 1
        due = []
        while published and published[0][0] <= last:
            due.append(published.popleft()[1:])
        joined = join.add_labels(due, now=float(last)) if due else []
        if joined:
            late = {"keys": [j.key for j in joined]} if keyed else {}
            model.learn_late_labels(np.stack([j.x for j in joined]), [j.label for j in joined], **late)
            summary.labels_used += len(joined)
        elapsed = time.perf_counter() - start
        if summary.events == 0:
            summary.first_batch_seconds = elapsed
            summary.first_batch_scored, summary.first_batch_correct = summary.scored, summary.correct
        else:
            summary.seconds += elapsed
            summary.timed_events += n
        summary.events += n
        fresh = _new_events(getattr(model, "drift_events", ()), last_event)
        if fresh:
            summary.drifts.extend(e.position for e in fresh if e.level == "drift")
            summary.drift_events.extend(
                {"position": e.position, "signal": e.signal, "detector": e.detector, "level": e.level,
                 "statistic": e.statistic} for e in fresh)
            last_event = fresh[-1]
        yield BatchResult(n, int(revealed.sum()), confidence, time.perf_counter() - start, summary)


def _new_events(events, last_seen) -> list:
    """Events after ``last_seen`` (by identity), oldest first; works on a bounded history."""
    fresh = []
    for event in reversed(events):
        if event is last_seen:
            break
        fresh.append(event)
    return fresh[::-1]


def _labels(proba: np.ndarray, classes: list) -> list:
    """The predicted class of each row; ``None`` (no answer, scored wrong) for a row without
    probability mass, so that no model is credited with whichever class its columns list first.

    >>> _labels(np.array([[0.2, 0.8], [0.0, 0.0]]), ["a", "b"])
    ['b', None]
    """
    if proba.shape[1] == 0:
        return [None] * len(proba)
    answered = proba.sum(axis=1) > 0
    return [classes[i] if ok else None for i, ok in zip(proba.argmax(axis=1), answered)]


def _score(summary: ReplaySummary, truths: list, predicted: list, confidence: np.ndarray) -> None:
    scored = [i for i, truth in enumerate(truths) if truth is not None]
    summary.reliability.add(confidence[scored], [predicted[i] == truths[i] for i in scored])
    for truth, guess in zip(truths, predicted):
        if truth is None:
            continue
        summary.scored += 1
        summary.correct += guess == truth
        summary.confusion[(truth, guess)] += 1
        summary.truths[truth] += 1
        summary.no_change_correct += truth == summary.previous_truth
        summary.previous_truth = truth


def _score_pseudo_labels(model: BatchModel, truth: list, summary: ReplaySummary) -> None:
    rows, labels = getattr(model, "last_pseudo_labels", ((), ()))
    for row, label in zip(rows, labels):
        summary.pseudo_labels_accepted += 1
        if truth[row] is not None:
            summary.pseudo_labels_scored += 1
            summary.pseudo_labels_correct += truth[row] == label
