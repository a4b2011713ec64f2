"""The inner loops of :class:`~streamssl.learner.forest.BatchForest`, compiled with numba.

Routing a row down a tree and a leaf's answer are a few arithmetic operations per node and per
(class, feature). As whole-array numpy operations they cost a call per tree level and per step
of the answer whatever the batch, which is most of a forest's time on micro-batches and all of
it on one event; compiled, they are loops (one event, ten trees: 7 µs instead of 140). The
results are the numpy formulas' (sums in another order: within a few units in the last place).
Compiled once per machine and cached (:func:`_compiled`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_HALF_LOG_TAU = 0.5 * math.log(2 * math.pi)


def _compiled(fn):
    """``fn`` compiled, cached where numba finds a writable place (beside this module, else the
    user's cache directory, or ``NUMBA_CACHE_DIR``); without one, compiled in each process."""
    try:
        return njit(cache=True, nogil=True)(fn)
    except RuntimeError:  # numba's "cannot cache function ...: no locator available"
        return njit(nogil=True)(fn)


@_compiled
def route(roots: np.ndarray, feature: np.ndarray, threshold: np.ndarray, children: np.ndarray,
          X: np.ndarray) -> np.ndarray:
    """The leaf of every row of ``X`` in every tree given by its root, shape ``(len(roots),
    len(X))``; a row goes left when its feature is at or under the threshold. -1 where a path
    is longer than the nodes (a cycle).

    >>> feature, threshold = np.array([0, -1, -1]), np.array([0.5, 0.0, 0.0])
    >>> children = np.array([[1, 2], [1, 1], [2, 2]])
    >>> route(np.array([0, 1]), feature, threshold, children, np.array([[0.2], [0.9]])).tolist()
    [[1, 2], [1, 1]]
    """
    n_nodes = feature.shape[0]
    out = np.empty((roots.shape[0], X.shape[0]), dtype=np.int64)
    for t in range(roots.shape[0]):
        for r in range(X.shape[0]):
            node, steps = roots[t], 0
            while feature[node] >= 0 and steps <= n_nodes:
                node = children[node, 1] if X[r, feature[node]] > threshold[node] else children[node, 0]
                steps += 1
            out[t, r] = node if steps <= n_nodes else -1
    return out


@_compiled
def answers(leaf: np.ndarray, rows: np.ndarray, X: np.ndarray, counts: np.ndarray, leaf_features: np.ndarray,
            mean: np.ndarray, neg2var: np.ndarray, halflog: np.ndarray,
            gaussian: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The majority-class and the naive-Bayes class probabilities at ``leaf[i]`` of row
    ``X[rows[i]]``, each shape ``(len(leaf), classes)``; rows of zeros where the leaf has no
    weight. Naive Bayes: each class seen, its share of the weight times the Gaussian densities
    of the leaf's features, leaving out a density that is none or underflows to 0 (as river).

    >>> counts = np.array([[3.0, 1.0]])
    >>> mean = np.array([[[0.0], [2.0]]]); neg2var = np.full((1, 2, 1), -2.0); halflog = np.zeros((1, 2, 1))
    >>> mc, nb = answers(np.array([0]), np.array([0]), np.array([[2.0]]), counts, np.array([[0]]),
    ...                  mean, neg2var, halflog, np.ones((1, 2, 1), dtype=np.bool_))
    >>> mc.tolist(), nb.round(3).tolist()
    ([[0.75, 0.25]], [[0.289, 0.711]])
    """
    n_classes, m = counts.shape[1], leaf_features.shape[1]
    mc = np.zeros((leaf.shape[0], n_classes))
    nb = np.zeros((leaf.shape[0], n_classes))
    votes = np.empty(n_classes)
    for i in range(leaf.shape[0]):
        node, r = leaf[i], rows[i]
        total = 0.0
        for c in range(n_classes):
            total += counts[node, c]
        if total <= 0.0:
            continue
        top = -np.inf
        for c in range(n_classes):
            share = counts[node, c] / total
            mc[i, c] = share
            if counts[node, c] > 0.0:
                v = math.log(share)
                for j in range(m):
                    if gaussian[node, c, j]:
                        d = X[r, leaf_features[node, j]] - mean[node, c, j]
                        log_pdf = d * d / neg2var[node, c, j] - halflog[node, c, j]
                        if math.isfinite(log_pdf):
                            v += log_pdf - _HALF_LOG_TAU
            else:
                v = -np.inf
            votes[c] = v
            if v > top:
                top = v
        shift = top if math.isfinite(top) else 0.0
        s = 0.0
        for c in range(n_classes):
            votes[c] = math.exp(votes[c] - shift)
            s += votes[c]
        if s > 0.0:
            for c in range(n_classes):
                nb[i, c] = votes[c] / s
    return mc, nb
