"""River's adaptive random forest predicted a micro-batch at a time.

``ARFClassifier.predict_proba_one`` walks every tree for one event and, at the leaf, computes a
naive-Bayes vote feature by feature in Python: about 0.5 ms per event with ten trees, which was
most of the time of a learner that asks its tree member about every event. :func:`forest_proba`
gives the same numbers for a whole batch: the rows are routed down each tree with one comparison
per branch and batch, and each leaf's majority-class or naive-Bayes vote is computed for all the
rows that reach it at once, from the leaf's own statistics (river's Gaussian estimators).

It reads river's tree structure (numeric binary branches, the three classifier leaf kinds,
Gaussian splitters). Anything else — a nominal or multiway branch, another splitter, a river
whose internals moved — is answered by river's own ``predict_proba_one``, row by row, so the
result never depends on this shortcut being available; ``tests/learner/test_trees.py`` checks
both paths against each other.
"""

from __future__ import annotations

import math
import weakref

import numpy as np
from river.tree.nodes.branch import NumericBinaryBranch
from river.tree.nodes.htc_nodes import LeafMajorityClass, LeafNaiveBayes, LeafNaiveBayesAdaptive
from river.tree.nodes.leaf import HTLeaf
from river.tree.splitter import GaussianSplitter

_HALF_LOG_TAU = 0.5 * math.log(2 * math.pi)


class Unsupported(Exception):
    """A tree part the batched path does not know; the caller falls back to river per row."""


#: Below this many rows river's own walk is faster (one row: 157 us against 611 us batched,
#: four: 580 against 1,433, for a forest of 2,000 labels on 8 features): the per-event path.
FEW_ROWS = 8


def forest_proba(forest, A: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities of river ``forest`` (an ``ARFClassifier`` learned on rows
    ``dict(enumerate(row))`` with labels ``0..n_classes-1``) for every row of ``A``, shape
    ``(len(A), n_classes)``; rows are normalised, uniform where the forest knows nothing.

    >>> from river import forest as river_forest
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(600, 3)); y = (X[:, 0] > 0.3).astype(int)
    >>> arf = river_forest.ARFClassifier(seed=0)
    >>> for row, label in zip(X.tolist(), y.tolist()):
    ...     arf.learn_one(dict(enumerate(row)), label)
    >>> fast = forest_proba(arf, X[:50], 2)
    >>> slow = np.array([[arf.predict_proba_one(dict(enumerate(r))).get(c, 0.0) for c in (0, 1)] for r in X[:50].tolist()])
    >>> bool(np.allclose(fast, slow / slow.sum(1, keepdims=True)))
    True
    """
    A = np.asarray(A, dtype=np.float64)
    out = np.zeros((len(A), n_classes))
    try:
        if len(A) < FEW_ROWS:
            raise Unsupported("few rows")
        for i, tree in enumerate(forest):
            proba = tree_proba(tree, A, n_classes)
            weight = forest._metrics[i].get()
            out += proba * weight if not forest.disable_weighted_vote and weight > 0.0 else proba
    except (Unsupported, AttributeError, TypeError):
        out = _forest_proba_per_row(forest, A, n_classes)
    total = out.sum(axis=1, keepdims=True)
    return np.where(total > 0, out / np.where(total > 0, total, 1.0), 1.0 / max(1, n_classes))


def _forest_proba_per_row(forest, A: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((len(A), n_classes))
    for r, row in enumerate(A.tolist()):
        for c, p in forest.predict_proba_one(dict(enumerate(row))).items():
            out[r, c] = p
    return out


def tree_proba(tree, A: np.ndarray, n_classes: int) -> np.ndarray:
    """One Hoeffding tree's ``predict_proba_one`` for every row of ``A`` (not normalised, as river)."""
    out = np.zeros((len(A), n_classes))
    if tree._root is None:
        return out
    stack = [(tree._root, np.arange(len(A)))]
    while stack:
        node, rows = stack.pop()
        if len(rows) == 0:
            continue
        if isinstance(node, NumericBinaryBranch):
            left = A[rows, node.feature] <= node.threshold
            stack.append((node.children[0], rows[left]))
            stack.append((node.children[1], rows[~left]))
        elif isinstance(node, HTLeaf):
            _leaf_proba(node, tree, A[rows], out, rows)
        else:
            raise Unsupported(type(node).__name__)
    return out


class _LeafVote:
    """A leaf's prediction as arrays: class columns, and either fixed probabilities (majority
    class) or the naive-Bayes terms (log prior; per class and feature a Gaussian's mean,
    -2 variance and log-density constant), so that every row reaching the leaf is answered at once."""

    __slots__ = ("version", "classes", "fixed", "features", "prior", "mean", "neg2var", "lognorm", "valid")

    def __init__(self, leaf, naive_bayes: bool, version: tuple) -> None:
        self.version = version
        stats = leaf.stats
        total = sum(stats.values())
        self.classes = np.fromiter(stats, dtype=np.int64, count=len(stats))
        self.fixed = None if naive_bayes else np.array([w / total for w in stats.values()])
        if not naive_bayes:
            return
        features = list(leaf.splitters)
        shape = (len(stats), len(features))
        self.features = np.array(features, dtype=np.int64)
        self.prior = np.zeros(len(stats))  # river gives a class of weight 0 a log-vote of 0
        self.mean, self.neg2var, self.lognorm = np.zeros(shape), np.ones(shape), np.zeros(shape)
        self.valid = np.zeros(shape, dtype=bool)  # the feature votes for the class
        for j, (c, w) in enumerate(stats.items()):
            if w <= 0:
                continue
            self.prior[j] = math.log(w / total)
            for f, splitter in enumerate(leaf.splitters.values()):
                if not isinstance(splitter, GaussianSplitter):
                    raise Unsupported(type(splitter).__name__)
                estimator = splitter._att_dist_per_class.get(c)
                if estimator is None:
                    continue
                var = estimator._var
                n = var.mean.n
                variance = var._S / (n - var.ddof) if n > var.ddof else 0.0
                if variance <= 0.0:
                    continue
                self.valid[j, f] = True
                self.mean[j, f] = var.mean._mean
                self.neg2var[j, f] = -2.0 * variance
                self.lognorm[j, f] = -_HALF_LOG_TAU - 0.5 * math.log(variance)

    def proba(self, A: np.ndarray) -> np.ndarray:
        if self.fixed is not None:
            return np.broadcast_to(self.fixed, (len(A), len(self.fixed)))
        d = A[:, self.features][:, None, :] - self.mean[None]
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            terms = d * d / self.neg2var + self.lognorm
        # As river: a log-density of -inf (a tiny variance far from the mean) is left out.
        votes = self.prior + np.where(self.valid & (terms > -np.inf), terms, 0.0).sum(axis=2)
        proba = np.exp(votes - votes.max(axis=1, keepdims=True))
        return proba / proba.sum(axis=1, keepdims=True)


#: Each leaf's arrays, rebuilt when the leaf has learned (its total weight moved).
_VOTES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def _leaf_proba(leaf, tree, A: np.ndarray, out: np.ndarray, rows: np.ndarray) -> None:
    """Write ``leaf.prediction`` for rows ``A`` into ``out[rows]``, as river's leaf kinds decide."""
    if isinstance(leaf, LeafNaiveBayesAdaptive):
        naive_bayes = leaf.is_active() and leaf._nb_correct_weight >= leaf._mc_correct_weight
    elif isinstance(leaf, LeafNaiveBayes):
        naive_bayes = leaf.is_active() and leaf.total_weight >= tree.nb_threshold
    elif isinstance(leaf, LeafMajorityClass):
        naive_bayes = False
    else:
        raise Unsupported(type(leaf).__name__)
    stats = leaf.stats
    total = sum(stats.values()) if stats else 0.0
    if not stats or total == 0:
        return  # river: no vote, the tree's zeros stand
    version = (naive_bayes, total, len(stats), len(leaf.splitters or ()))
    vote = _VOTES.get(leaf)
    if vote is None or vote.version != version:
        vote = _VOTES[leaf] = _LeafVote(leaf, naive_bayes, version)
    out[rows[:, None], vote.classes[None, :]] = vote.proba(A)
