"""Peer learners from river, run through the same micro-batch protocol as streamssl."""

from __future__ import annotations

import importlib.util
from typing import Callable, Hashable, Sequence

import numpy as np
from river import base, compose, dummy, forest, linear_model, multiclass, naive_bayes, preprocessing, tree


class RiverBatchAdapter:
    """Wraps a river classifier in the micro-batch interface of the prequential loop.

    Predictions are made event by event with ``predict_proba_one``; only labelled events
    are learned (``learn_one``), since river's classifiers are supervised.

    Examples
    --------
    >>> from river import naive_bayes
    >>> peer = RiverBatchAdapter(naive_bayes.GaussianNB(), ["a", "b"])
    >>> peer.learn_many(np.array([[0.0, 1.0], [1.0, 0.0]]), [0, None])
    >>> peer.classes_, peer.predict_proba_many(np.array([[0.0, 1.0]])).shape
    ([0], (1, 1))
    """

    def __init__(self, model: base.Classifier, feature_names: list[str]) -> None:
        self.model = model
        self.feature_names = list(feature_names)
        self.classes_: list[Hashable] = []
        self.labels_used = 0

    def _dict(self, row: np.ndarray) -> dict:
        return dict(zip(self.feature_names, row.tolist()))

    def predict_proba_many(self, X: np.ndarray) -> np.ndarray:
        out = np.zeros((len(X), len(self.classes_)))
        index = {c: i for i, c in enumerate(self.classes_)}
        for r, row in enumerate(X):
            for c, p in self.model.predict_proba_one(self._dict(row)).items():
                if c in index:
                    out[r, index[c]] = p
        return out

    def learn_many(self, X: np.ndarray, y: list | None = None) -> None:
        if y is None:
            return
        self.learn_late_labels(X, y)

    def learn_late_labels(self, X: np.ndarray, y: list) -> None:
        for row, label in zip(X, y):
            if label is None:
                continue
            if label not in self.classes_:
                self.classes_.append(label)
            self.model.learn_one(self._dict(row), label)
            self.labels_used += 1


PEERS: dict[str, Callable[[int], base.Classifier]] = {
    "river-arf": lambda seed: forest.ARFClassifier(seed=seed),
    "river-hat": lambda seed: tree.HoeffdingAdaptiveTreeClassifier(seed=seed),
    # river's LogisticRegression is binary: one-vs-rest makes it a peer on multi-class streams too.
    "river-lr": lambda seed: compose.Pipeline(
        preprocessing.StandardScaler(), multiclass.OneVsRestClassifier(linear_model.LogisticRegression())),
    "river-nb": lambda seed: naive_bayes.GaussianNB(),
    "no-change": lambda seed: dummy.NoChangeClassifier(),  # the last revealed label
}
"""River peers by their benchmark names; each factory takes the seed."""


class CapyMOABatchAdapter:
    """Wraps a CapyMOA learner (MOA, through Java) in the micro-batch interface.

    MOA needs the class set up front, so ``classes`` lists every label of the stream (a scan
    of the file), in the order they first appear. Labelled events are learned with
    ``train``; unlabelled ones with ``train_on_unlabeled`` when the learner is semi-supervised.

    Where MOA gives no votes (its naive Bayes leaves zero every class whose estimators exclude
    the event: MOA's ARF, 3-53 % of the usenets' events at 1-5 % labels), the adapter answers
    the share of each class among the labels learned so far, as river's leaves and streamssl
    fall back to the class prior, and counts the event in ``abstained``; MOA's own evaluation
    would count it as its first class.
    """

    def __init__(self, factory: Callable, feature_names: list[str], classes: Sequence[Hashable], seed: int) -> None:
        from capymoa.core import Instance, LabeledInstance
        from capymoa.stream import Schema

        target = "label" if "label" not in feature_names else "__label__"
        self._instance, self._labeled = Instance.from_array, LabeledInstance.from_array
        self.classes_ = list(classes)
        self._index = {c: i for i, c in enumerate(self.classes_)}
        self.schema = Schema.from_custom(features=[*feature_names, target], target=target,
                                         categories={target: [str(c) for c in self.classes_]})
        self.model = factory(self.schema, seed)
        self.semi_supervised = hasattr(self.model, "train_on_unlabeled")
        self.labels_used = 0
        self.counts = np.zeros(len(self.classes_))  # the labels learned, per class
        self.abstained = 0  # events MOA gave no votes for, answered with the class prior

    def predict_proba_many(self, X: np.ndarray) -> np.ndarray:
        out = np.zeros((len(X), len(self.classes_)))
        for r, row in enumerate(X):
            proba = self.model.predict_proba(self._instance(self.schema, row))
            if proba is not None and len(proba) == len(self.classes_) and np.sum(proba) > 0:
                out[r] = proba
            elif self.counts.any():
                out[r] = self.counts / self.counts.sum()
                self.abstained += 1
        return out

    def learn_many(self, X: np.ndarray, y: list | None = None) -> None:
        y = [None] * len(X) if y is None else y
        for row, label in zip(X, y):
            if label is not None:
                self._learn(row, label)
            elif self.semi_supervised:
                self.model.train_on_unlabeled(self._instance(self.schema, row))

    def learn_late_labels(self, X: np.ndarray, y: list) -> None:
        for row, label in zip(X, y):
            if label is not None:
                self._learn(row, label)

    def _learn(self, row: np.ndarray, label: Hashable) -> None:
        self.model.train(self._labeled(self.schema, row, self._index[label]))
        self.counts[self._index[label]] += 1
        self.labels_used += 1


def _capymoa_arf(schema, seed: int):
    from capymoa.classifier import AdaptiveRandomForestClassifier

    return AdaptiveRandomForestClassifier(schema=schema, ensemble_size=10, random_seed=seed)


def _capymoa_sleade(schema, seed: int):
    from capymoa.ssl import SLEADE

    return SLEADE(schema=schema, random_seed=seed)


CAPYMOA_PEERS: dict[str, Callable] = {"capymoa-arf": _capymoa_arf, "capymoa-sleade": _capymoa_sleade}
"""CapyMOA peers (the ``capymoa`` extra, with Java): ARF with 10 members, and SLEADE, a
semi-supervised ensemble that also learns from unlabelled events."""


CONTEXT_SUFFIX = "+context"


class WithTemporalContext:
    """A peer given streamssl's temporal context stage: it sees ``[x, x − EMA_s(x)]`` as
    streamssl does (every event moves the averages, labelled or not), so that a comparison is
    one of learning, not of features.

    >>> from river import naive_bayes
    >>> peer = WithTemporalContext(lambda names: RiverBatchAdapter(naive_bayes.GaussianNB(), names), ["a"])
    >>> peer.learn_many(np.array([[1.0], [2.0]]), [0, 1])
    >>> peer.model.feature_names
    ['a', 'a-ema4', 'a-ema16', 'a-ema64']
    """

    def __init__(self, make: Callable[[list[str]], object], feature_names: list[str],
                 spans: Sequence[float] = (4, 16, 64)) -> None:
        from ..learner.temporal import TemporalContext

        self.context = TemporalContext(spans)
        names = list(feature_names) + [f"{n}-ema{s:g}" for s in spans for n in feature_names]
        self.model = make(names)

    @property
    def classes_(self) -> list:
        return self.model.classes_

    @property
    def labels_used(self) -> int:
        return self.model.labels_used

    def predict_proba_many(self, X: np.ndarray, keys: Sequence[Hashable] | None = None) -> np.ndarray:
        return self.model.predict_proba_many(self.context.transform(X, keys))

    def learn_many(self, X: np.ndarray, y: list | None = None, keys: Sequence[Hashable] | None = None) -> None:
        self.model.learn_many(self.context.update(X, keys), y)

    def learn_late_labels(self, X: np.ndarray, y: list, keys: Sequence[Hashable] | None = None) -> None:
        self.model.learn_late_labels(self.context.recall(X, keys), y)


def capymoa_available() -> bool:
    """Whether the optional CapyMOA peers can run here (the package is installed)."""
    return importlib.util.find_spec("capymoa") is not None
