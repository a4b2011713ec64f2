"""River's adaptive random forest predicted a micro-batch at a time.

``ARFClassifier.predict_proba_one`` walks every tree for one event and, at the leaf, computes a
naive-Bayes vote feature by feature in Python: about 0.5 ms per event with ten trees, which was
most of the time of a learner that asks its tree member about every event. :func:`forest_proba`
gives the same numbers for a whole batch: each tree is held as arrays (branches, and its
leaves' votes stacked from their own statistics, river's Gaussian estimators), rebuilt where the
tree changed, so the rows are routed down it and answered by array operations, with no Python
step per row or per leaf.

It reads river's tree structure (numeric binary branches, the three classifier leaf kinds,
Gaussian splitters). Anything else — a nominal or multiway branch, another splitter, a river
whose internals moved — is answered by river's own ``predict_proba_one``, row by row, so the
result never depends on this shortcut being available; ``tests/learner/test_trees.py`` checks
both paths against each other, as the forest learns, splits and replaces trees.
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
    if tree._root is None:
        return np.zeros((len(A), n_classes))
    compiled = _COMPILED.get(tree)
    # River adds a leaf to this count with every split (a leaf deactivated or activated stays
    # in place, and its vote is re-read by refresh); a tree reset has a new root.
    shape = (id(tree._root), tree._n_active_leaves + tree._n_inactive_leaves, n_classes, A.shape[1])
    if compiled is None or compiled.shape != shape:
        compiled = _COMPILED[tree] = _Compiled(_walk(tree._root), shape, n_classes, A.shape[1])
    compiled.refresh(tree)
    return compiled.answer(A, compiled.route(A))


def _walk(root) -> list:
    """The tree's nodes, depth first (a branch before its children, left before right)."""
    nodes, stack = [], [root]
    while stack:
        node = stack.pop()
        nodes.append(node)
        if isinstance(node, NumericBinaryBranch):
            stack.append(node.children[1])
            stack.append(node.children[0])
        elif not isinstance(node, HTLeaf):
            raise Unsupported(type(node).__name__)
    return nodes


class _Compiled:
    """One tree as arrays, so that a batch is routed and answered without a Python step per row
    or per leaf: its branches (feature, threshold, children), and its leaves' votes stacked,
    padded to every class and feature (a class a leaf has not seen gets no vote, a feature it
    does not observe none either). Built when the tree's nodes change (a split, a leaf
    deactivated, a tree replaced); a leaf's vote is re-read when the leaf has learned."""

    def __init__(self, nodes: list, shape: tuple, n_classes: int, n_features: int) -> None:
        self.nodes = nodes  # held, so that no new node (a new root) can take one of their ids
        self.shape = shape  # what it was built for (see tree_proba)
        self.n_classes, self.n_features = n_classes, n_features
        index = {id(n): i for i, n in enumerate(nodes)}
        size = len(nodes)
        self.feature = np.full(size, -1, dtype=np.int64)  # -1: a leaf
        self.threshold = np.zeros(size)
        self.children = np.tile(np.arange(size)[:, None], (1, 2))
        self.slot = np.full(size, -1, dtype=np.int64)  # a leaf's row in the stacked votes
        self.leaves: list = []
        depth = {0: 0}
        for i, node in enumerate(nodes):
            if isinstance(node, NumericBinaryBranch):
                if not isinstance(node.feature, (int, np.integer)) or not 0 <= node.feature < n_features:
                    raise Unsupported(f"branch on feature {node.feature!r}")
                self.feature[i], self.threshold[i] = node.feature, node.threshold
                for side in (0, 1):
                    child = index[id(node.children[side])]
                    self.children[i, side] = child
                    depth[child] = depth[i] + 1
            else:
                self.slot[i] = len(self.leaves)
                self.leaves.append(node)
        self.depth = max(depth.values())
        shape = (len(self.leaves), n_classes)
        self.versions: list = [None] * len(self.leaves)
        self.kind = np.zeros(len(self.leaves), dtype=np.int8)  # 0 no vote, 1 fixed, 2 naive Bayes
        self.fixed = np.zeros(shape)
        self.prior = np.full(shape, -np.inf)  # -inf: a class the leaf has not seen
        self.mean = np.zeros((*shape, n_features))
        self.neg2var = np.ones((*shape, n_features))
        self.lognorm = np.zeros((*shape, n_features))
        self.valid = np.zeros((*shape, n_features), dtype=bool)
        self.learned = None  # the tree's weight seen when the votes were last read

    def refresh(self, tree) -> None:
        """Re-read the votes of the leaves that learned since (only a learning tree changes them)."""
        learned = getattr(tree, "_train_weight_seen_by_model", None)
        if learned is not None and learned == self.learned:
            return
        for j, leaf in enumerate(self.leaves):
            naive_bayes = _naive_bayes(leaf, tree)
            stats = leaf.stats
            total = sum(stats.values()) if stats else 0.0
            version = (naive_bayes, total, len(stats), len(leaf.splitters or ()))
            if version != self.versions[j]:
                self._read(j, leaf, naive_bayes, total)
                self.versions[j] = version
        self.learned = learned

    def _read(self, j: int, leaf, naive_bayes: bool, total: float) -> None:
        """Leaf ``j``'s vote from its statistics (river's Gaussian estimators), into row ``j``."""
        stats = leaf.stats
        self.kind[j] = 0 if not stats or total == 0 else 2 if naive_bayes else 1
        self.fixed[j], self.prior[j] = 0.0, -np.inf
        self.valid[j] = False
        if self.kind[j] == 0:
            return
        for c, w in stats.items():
            if not isinstance(c, (int, np.integer)) or not 0 <= c < self.n_classes:
                raise Unsupported(f"class {c!r}")
            self.fixed[j, c] = w / total
            self.prior[j, c] = math.log(w / total) if w > 0 else 0.0  # river gives weight 0 a log-vote of 0
        if self.kind[j] == 1:
            return
        for f, splitter in leaf.splitters.items():
            if not isinstance(splitter, GaussianSplitter):
                raise Unsupported(type(splitter).__name__)
            if not isinstance(f, (int, np.integer)) or not 0 <= f < self.n_features:
                raise Unsupported(f"feature {f!r}")
            for c, w in stats.items():
                estimator = splitter._att_dist_per_class.get(c)
                if w <= 0 or estimator is None:
                    continue
                var = estimator._var
                n = var.mean.n
                variance = var._S / (n - var.ddof) if n > var.ddof else 0.0
                if variance <= 0.0:
                    continue
                self.valid[j, c, f] = True
                self.mean[j, c, f] = var.mean._mean
                self.neg2var[j, c, f] = -2.0 * variance
                self.lognorm[j, c, f] = -_HALF_LOG_TAU - 0.5 * math.log(variance)

    def route(self, A: np.ndarray) -> np.ndarray:
        """The leaf (its row in the stacked votes) each row of ``A`` reaches."""
        node = np.zeros(len(A), dtype=np.int64)
        rows = np.arange(len(A))
        for _ in range(self.depth):
            feature = self.feature[node]
            inner = feature >= 0
            if not inner.any():
                break
            # As river: a row goes left when its value is at most the threshold (NaN: right).
            right = ~(A[rows, np.maximum(feature, 0)] <= self.threshold[node])
            node = np.where(inner, self.children[node, right.astype(np.int64)], node)
        return self.slot[node]

    def answer(self, A: np.ndarray, leaf: np.ndarray) -> np.ndarray:
        out = np.zeros((len(A), self.n_classes))
        kind = self.kind[leaf]
        fixed = kind == 1
        out[fixed] = self.fixed[leaf[fixed]]
        nb = np.flatnonzero(kind == 2)
        if len(nb):
            at = leaf[nb]
            d = A[nb][:, None, :] - self.mean[at]
            with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
                terms = d * d / self.neg2var[at] + self.lognorm[at]
            # As river: a log-density of -inf (a tiny variance far from the mean) is left out.
            votes = self.prior[at] + np.where(self.valid[at] & (terms > -np.inf), terms, 0.0).sum(axis=2)
            proba = np.exp(votes - votes.max(axis=1, keepdims=True))
            out[nb] = proba / proba.sum(axis=1, keepdims=True)
        return out


def _naive_bayes(leaf, tree) -> bool:
    """Whether ``leaf`` answers by naive Bayes now (else by its class counts), as river decides."""
    if isinstance(leaf, LeafNaiveBayesAdaptive):
        return leaf.is_active() and leaf._nb_correct_weight >= leaf._mc_correct_weight
    if isinstance(leaf, LeafNaiveBayes):
        return leaf.is_active() and leaf.total_weight >= tree.nb_threshold
    if isinstance(leaf, LeafMajorityClass):
        return False
    raise Unsupported(type(leaf).__name__)


#: Each tree's arrays (:class:`_Compiled`), kept while the tree lives.
_COMPILED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
