"""The learner's first feature stage: an event wider than ``max_inputs`` folded by a fixed hash.

Every part of a :class:`~streamssl.learner.StreamLearner` grows with the event's width: the
temporal context makes four columns of each, the networks' first layers, the memory's distances
and the linear head take them all. An event of word-presence columns over a 40,000-word
vocabulary (``../shared/data/spam_corpus``) ran at about 50 events/s. Above ``max_inputs``
columns the event is folded into ``max_inputs`` by the hashing trick (Weinberger et al., 2009):
column ``j`` is added into bucket ``h(j) mod max_inputs``, with the fixed hash of
:func:`streamssl.sources.hashing.bucket_of`, so the folding is the same on every machine,
restart and replica, uses no label, and is what ``benchmarks/suite.py`` does to spam_corpus
once on disk (the same sums, to the bit). An event no wider is left as it is.

Every part reads the folded event but the linear head, which reads it whole (a product per
column, cheap at any width; :class:`~streamssl.learner.members.Batch`'s ``wide``): word presence
is the classic case of a linear model on every column. On the raw spam_corpus at 5 % labels the
head folded was right on 0.859 of the labelled events, unfolded on 0.923 (README, "Wide events").
"""

from __future__ import annotations

import numpy as np
from river import base

from ..sources.hashing import bucket_of, fold


class FeatureFold(base.Base):
    """Events wider than ``max_inputs`` columns folded into ``max_inputs`` by a fixed feature hash
    (``None``: never folded).

    >>> fold = FeatureFold(max_inputs=4)
    >>> X = np.array([[1.0, 0.0, 0.0, 0.0, 1.0, 2.0], [0.0, 1.0, 1.0, 0.0, 0.0, 0.0]])
    >>> fold.n_outputs(6), fold.n_outputs(3)
    (4, 3)
    >>> fold.transform(X).tolist()  # columns 4 and 5 go to buckets 0 and 1
    [[2.0, 2.0, 0.0, 0.0], [0.0, 1.0, 1.0, 0.0]]
    >>> fold.transform(X[:, :3]).shape  # narrow enough: unchanged
    (2, 3)
    """

    def __init__(self, max_inputs: int | None = 1024) -> None:
        if max_inputs is not None and max_inputs < 1:
            raise ValueError(f"max_inputs must be None or >= 1, got {max_inputs}")
        self.max_inputs = max_inputs
        self._buckets: np.ndarray | None = None  # of the width met (computed, not state)

    def n_outputs(self, n_inputs: int) -> int:
        """Columns of the folded events of ``n_inputs`` columns."""
        return n_inputs if self.max_inputs is None or n_inputs <= self.max_inputs else self.max_inputs

    def transform(self, X: np.ndarray) -> np.ndarray:
        """``X`` (rows of events) folded, or ``X`` itself where it is narrow enough."""
        width = X.shape[1]
        dims = self.n_outputs(width)
        if dims == width:
            return X
        if self._buckets is None or len(self._buckets) != width:
            self._buckets = bucket_of(width, dims)
        return fold(X, self._buckets, dims)  # as hash_csv folds each row
