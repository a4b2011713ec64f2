"""An online linear classifier: multinomial logistic regression learned by plain SGD, one label at a time."""

from __future__ import annotations

import numpy as np


class OnlineLinear:
    """Softmax regression on standardised features, one SGD step per labelled event, in order.

    The learner's linear member: what river's ``LogisticRegression`` behind a ``StandardScaler``
    does (one step of rate ``lr`` per label, no replay, no regularisation), multinomial rather
    than one-vs-rest, with the features standardised by the learner's own online standardiser
    (fitted on every event, labelled or not) and a micro-batch predicted in one matrix product.
    A few labels move it little, so it is a steady answer where the MLPs overfit their replay
    (spam, kdd at 1 % labels in benchmarks/RESULTS.md). Classes may appear at any time: their
    weights start at zero.

    Examples
    --------
    >>> model = OnlineLinear(n_inputs=2)
    >>> model.add_classes(2)
    >>> X = np.array([[1.0, 0.0], [-1.0, 0.0]] * 20)
    >>> model.learn(X, np.array([1, 0] * 20))
    >>> model.predict_proba(np.array([[2.0, 0.0]])).argmax(1).tolist()
    [1]
    """

    def __init__(self, n_inputs: int, lr: float = 0.01) -> None:
        self.n_inputs, self.lr = n_inputs, lr
        self.W = np.zeros((n_inputs, 0))
        self.b = np.zeros(0)

    @property
    def n_classes(self) -> int:
        return len(self.b)

    def add_classes(self, n_classes: int) -> None:
        """Make room for classes ``0..n_classes-1`` (new classes start at zero weight)."""
        if n_classes > self.n_classes:
            extra = n_classes - self.n_classes
            self.W = np.hstack([self.W, np.zeros((self.n_inputs, extra))])
            self.b = np.concatenate([self.b, np.zeros(extra)])

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, shape ``(n, n_classes)``."""
        logits = X @ self.W + self.b
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def learn(self, X: np.ndarray, y: np.ndarray) -> None:
        """One SGD step on the log-loss per row of ``X`` (class indices ``y``), in order."""
        for x, label in zip(np.asarray(X, dtype=np.float64), np.asarray(y)):
            logits = x @ self.W + self.b
            p = np.exp(logits - logits.max())
            p /= p.sum()
            p[label] -= 1.0  # the gradient of the log-loss on the logits
            self.W -= self.lr * np.outer(x, p)
            self.b -= self.lr * p

    def state_dict(self) -> dict:
        return {"W": self.W.copy(), "b": self.b.copy()}

    def load_state_dict(self, state: dict) -> None:
        self.W, self.b = np.array(state["W"], dtype=np.float64), np.array(state["b"], dtype=np.float64)
