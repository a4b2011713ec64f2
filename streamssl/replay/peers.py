"""Peer learners from river, run through the same micro-batch protocol as streamssl."""

from __future__ import annotations

from typing import Callable, Hashable

import numpy as np
from river import base, compose, dummy, forest, linear_model, naive_bayes, preprocessing, tree


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
    "river-lr": lambda seed: compose.Pipeline(preprocessing.StandardScaler(), linear_model.LogisticRegression()),
    "river-nb": lambda seed: naive_bayes.GaussianNB(),
    "no-change": lambda seed: dummy.NoChangeClassifier(),  # the last revealed label
}
"""River peers by their benchmark names; each factory takes the seed."""
