"""An online linear classifier: logistic regression learned by plain SGD, one label at a time."""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from river import base

from .compiled import COMPILED_VALUES, compiled, softmax_
from .standardize import OnlineStandardizer


class OnlineLinear(base.Base):
    """Logistic regression by one SGD step of rate ``lr`` per labelled event, in order.

    The learner's linear member, and by default river's recipe for one
    (``StandardScaler() | OneVsRestClassifier(LogisticRegression())``, no replay, no
    regularisation), with a micro-batch predicted in one matrix product:

    - ``link="ovr"``: one binary logistic regression per class, each class's probability its
      own sigmoid over their sum. ``"softmax"``: multinomial regression (the member before
      2026-12-05), whose two-class steps move the logit twice as far.
    - ``scale=True``: the features are standardised by the model's own running statistics of
      the *labelled* events, each updated before its step. ``False``: the rows come standardised
      (the learner's statistics of every event).

    On spam (1,024 hashed word columns) the softmax on the learner's standardisation was 1.5
    points below river's recipe alone; as the learner's member, river's recipe gained spam
    +0.38 / +0.67 points at 1 % / 5 % labels (every seed up) and the suite's mean +0.04 / +0.09
    (``benchmarks/results/linear-recipe``). Each half helps alone; which property of spam's
    columns it answers is not pinned down. Classes may appear at any time: their weights start
    at zero; the width of the rows is taken from the first rows seen.

    Examples
    --------
    >>> model = OnlineLinear()
    >>> model.add_classes(2)
    >>> X = np.array([[1.0, 0.0], [-1.0, 0.0]] * 20)
    >>> model.learn(X, np.array([1, 0] * 20))
    >>> model.predict_proba(np.array([[2.0, 0.0]])).argmax(1).tolist()
    [1]
    """

    def __init__(self, lr: float = 0.01, link: Literal["ovr", "softmax"] = "ovr", scale: bool = True) -> None:
        if link not in ("ovr", "softmax"):
            raise ValueError(f"link must be 'ovr' or 'softmax', got {link!r}")
        self.lr, self.link, self.scale = lr, link, scale
        self._reset()

    def _reset(self) -> None:
        self.scaler = OnlineStandardizer() if self.scale else None
        self.W: np.ndarray | None = None  # (features, classes), made at the first rows
        self.b = np.zeros(0)

    @property
    def n_classes(self) -> int:
        return len(self.b)

    def add_classes(self, n_classes: int) -> None:
        """Make room for classes ``0..n_classes-1`` (new classes start at zero weight)."""
        if n_classes > self.n_classes:
            extra = n_classes - self.n_classes
            if self.W is not None:
                self.W = np.hstack([self.W, np.zeros((self.W.shape[0], extra))])
            self.b = np.concatenate([self.b, np.zeros(extra)])

    def _inputs(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if self.W is None:
            self.W = np.zeros((X.shape[1], self.n_classes))
        elif X.shape[1] != self.W.shape[0]:
            raise ValueError(f"expected rows of {self.W.shape[0]} features, got {X.shape[1]}")
        return self.scaler.transform(X) if self.scaler is not None else X

    def _proba(self, logits: np.ndarray) -> np.ndarray:
        if self.link == "ovr":  # log of each class's sigmoid, then normalised: sigmoid_k / sum
            logits = -np.logaddexp(0.0, -logits)
        logits = logits - logits.max(axis=-1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=-1, keepdims=True)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, shape ``(n, n_classes)``: for rows of at most
        :data:`~streamssl.learner.compiled.COMPILED_VALUES` values in all, one compiled loop
        (:func:`_predict`: 2 against 15 µs for an event of 9 features), else numpy's product."""
        X = np.asarray(X, dtype=np.float64)
        if X.size > COMPILED_VALUES:
            return self._proba(self._inputs(X) @ self.W + self.b)
        self._inputs(X[:0])  # sized by the rows, and their width checked
        scaler = self.scaler
        scale = scaler is not None and scaler.mean is not None
        if scaler is not None and not scale:
            X = np.zeros_like(X)  # no statistics yet: the standardiser's zeros
        mean, std = (scaler.mean, scaler.std) if scale else (np.empty(0), np.empty(0))
        return _predict(np.ascontiguousarray(X), self.W, self.b, self.link == "ovr", scale, mean, std,
                        scaler.clip if scale else 0.0)

    def learn(self, X: np.ndarray, y: np.ndarray) -> None:
        """One SGD step on the log-loss per row of ``X`` (class indices ``y``), in order; with
        ``scale``, each row joins the statistics before its step (:func:`_sgd`, compiled)."""
        X, y = np.ascontiguousarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64)
        self._inputs(X[:0])  # sized by the rows
        if y.shape != (len(X),) or (len(y) and not 0 <= y.min() <= y.max() < self.n_classes):
            raise ValueError(f"one class index in 0..{self.n_classes - 1} per row expected (add_classes first), "
                             f"got {y.tolist() if y.size <= 8 else y.shape} for {len(X)} rows")
        if not len(X):
            return
        scaler = self.scaler
        if scaler is None:
            _sgd(X, y, self.W, self.b, self.lr, self.link == "ovr", False, 0,
                 np.empty(0), np.empty(0), 0.0, 0.0)
            return
        # New arrays, as the standardiser's own updates make (a state handed out keeps its values);
        # with no row yet, the first one's update makes it the mean.
        fresh = scaler.mean is None
        mean = np.zeros(X.shape[1]) if fresh else scaler.mean.copy()
        m2 = np.zeros(X.shape[1]) if fresh else scaler._m2.copy()
        n = _sgd(X, y, self.W, self.b, self.lr, self.link == "ovr", True,
                 0 if fresh else scaler.n, mean, m2, scaler.clip, scaler.eps)
        scaler.n, scaler.mean, scaler._m2 = n, mean, m2

    def state_dict(self) -> dict:
        return {"W": None if self.W is None else self.W.copy(), "b": self.b.copy(), "link": self.link,
                "scaler": None if self.scaler is None else self.scaler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Load a state; one from before ``link`` and ``scale`` (weights alone) was learned as
        softmax regression on rows the learner standardised, and goes on as one."""
        self.W = None if state["W"] is None else np.array(state["W"], dtype=np.float64)
        self.b = np.array(state["b"], dtype=np.float64)
        self.link = state.get("link", "softmax")
        scaler = state.get("scaler")
        self.scale = scaler is not None
        self.scaler = None
        if scaler is not None:
            self.scaler = OnlineStandardizer()
            self.scaler.load_state_dict(scaler)


@compiled
def _sgd(X: np.ndarray, y: np.ndarray, W: np.ndarray, b: np.ndarray, lr: float, ovr: bool, scale: bool, n: int,
         mean: np.ndarray, m2: np.ndarray, clip: float, eps: float) -> int:
    """:meth:`OnlineLinear.learn`'s loop, in place on ``W`` and ``b``: per row of ``X``, with
    ``scale``, the row merged into the statistics ``n``, ``mean``, ``m2`` and standardised by
    them (:class:`~streamssl.learner.standardize.OnlineStandardizer`'s formulas for one row),
    then one step of rate ``lr`` on its log-loss (``ovr``: one sigmoid per class; else softmax).
    Returns the rows counted. As numpy calls the loop cost about 40 µs a row; the results are
    theirs to the last bits (products summed in another order; libm's exp and log1p).

    >>> W, b = np.zeros((1, 2)), np.zeros(2)
    >>> _sgd(np.array([[1.0], [-1.0]]), np.array([1, 0]), W, b, 0.5, True, False, 0, np.empty(0), np.empty(0), 0.0, 0.0)
    0
    >>> W.tolist(), b.tolist()
    ([[-0.5, 0.5]], [0.0, 0.0])
    """
    d, k = W.shape
    x, g = np.empty(d), np.empty(k)
    for r in range(X.shape[0]):
        if scale:
            n1 = n + 1
            for j in range(d):
                delta = X[r, j] - mean[j]
                mean[j] = mean[j] + delta * (1.0 / n1)
                m2[j] = m2[j] + 0.0 + delta * delta * (n * 1.0 / n1)
            n = n1
            for j in range(d):
                var = max(m2[j] / max(n, 1), 0.0)
                z = (X[r, j] - mean[j]) / (math.sqrt(var) if var > eps else 1.0)
                x[j] = min(max(z, -clip), clip)
        else:
            x[:] = X[r]
        for c in range(k):
            logit = _logit(x, W, b, c)
            g[c] = math.exp(_log_sigmoid(logit)) if ovr else logit
        if not ovr:
            softmax_(g)
        g[y[r]] -= 1.0
        for j in range(d):
            for c in range(k):
                W[j, c] -= lr * (x[j] * g[c])
        for c in range(k):
            b[c] -= lr * g[c]
    return n


@compiled(inline=True)
def _logit(x: np.ndarray, W: np.ndarray, b: np.ndarray, c: int) -> float:
    """Class ``c``'s logit of the standardised row ``x``: its products summed in order, then the bias."""
    logit = 0.0
    for j in range(x.shape[0]):
        logit += x[j] * W[j, c]
    return logit + b[c]


@compiled(inline=True)
def _log_sigmoid(logit: float) -> float:
    """log sigmoid(logit): -logaddexp(0, -logit), as numpy computes logaddexp."""
    if logit == 0.0:
        return -math.log(2.0)
    if logit > 0.0:
        return -math.log1p(math.exp(-logit))
    return -(-logit + math.log1p(math.exp(logit)))


@compiled
def _predict(X: np.ndarray, W: np.ndarray, b: np.ndarray, ovr: bool, scale: bool, mean: np.ndarray,
             std: np.ndarray, clip: float) -> np.ndarray:
    """:meth:`OnlineLinear.predict_proba` of rows ``X``: with ``scale``, each standardised by
    ``mean`` and ``std`` and clipped to ``±clip``; its logits, with ``ovr`` each class's log
    sigmoid; their softmax (with ``ovr``: each sigmoid over their sum).

    >>> _predict(np.array([[1.0]]), np.array([[0.0, 2.0]]), np.zeros(2), True, False, np.empty(0),
    ...          np.empty(0), 0.0).round(4).tolist()
    [[0.3621, 0.6379]]
    """
    d, k = W.shape
    out = np.empty((X.shape[0], k))
    x = np.empty(d)
    for r in range(X.shape[0]):
        for j in range(d):
            x[j] = min(max((X[r, j] - mean[j]) / std[j], -clip), clip) if scale else X[r, j]
        for c in range(k):
            logit = _logit(x, W, b, c)
            out[r, c] = _log_sigmoid(logit) if ovr else logit
        softmax_(out[r])
    return out
