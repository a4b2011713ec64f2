"""An adaptive random forest held as arrays: learned and asked a micro-batch at a time.

River's ``ARFClassifier`` learns label by label in Python: for every label each of its trees
predicts the event (to feed its drift detectors), walks to a leaf, updates a Gaussian estimator
per class and feature, and every ``grace_period`` of weight scores its candidate splits. With two
forests as members that was about 70 % of a :class:`~streamssl.learner.StreamLearner`'s time.
:class:`BatchForest` is the same algorithm (Oza's online bagging with Poisson(6) weights, a
random subset of features per leaf, Gaussian split candidates scored by information gain under a
Hoeffding bound, naive-Bayes-adaptive leaves, an ADWIN warning and drift detector per tree with a
background tree, trees weighted by their accuracy), with the nodes of all its trees in one set of
numpy arrays: a micro-batch is routed down every tree at once and answered in compiled loops
(:mod:`~streamssl.learner.forest_kernels`), its leaves' statistics learned and its split
candidates scored in compiled loops, with a Python step only per split and per drift-detector
update.

How rows are ordered (where it differs from river's label by label): rows are learned in chunks
of ``ceil(grace_period / lambda_value)`` (5 with the defaults, 9 with river's grace period of
50: about one grace period of weight for a leaf); every tree predicts all of a chunk's rows
before it learns any of them, and a leaf that gathered ``grace_period`` weight tries its split
once the chunk is in. Within a chunk rows do not see each other's effect; across chunks the
order is kept. (With whole micro-batches of 64
as the chunk, a tree grew so much later that on Luxembourg with every label known the forest
was right 92.5 % of the time against river's 98.0 %; in chunks of 9, 97.7 %.)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from river import base, drift

from . import forest_kernels


class BatchForest(base.Classifier):
    """An adaptive random forest (Gomes et al., 2017) learned and asked a micro-batch at a time.

    River's ``forest.ARFClassifier`` with its defaults but the features a leaf may split on (60
    % of them, at most 32; river's: the square root) and the grace period (25; river's: 50),
    the module's docstring says how a batch is ordered, on rows of numbers: :meth:`learn_batch`
    and :meth:`proba_batch` take arrays, classes as ``0..n_classes-1``; ``learn_one`` and
    ``predict_proba_one`` take river's dicts of the same features, keys in a fixed order.

    Parameters
    ----------
    n_models
        Trees in the forest.
    max_features
        Features a leaf may split on, drawn at random per leaf: ``"sqrt"`` of the number of
        features (river's default), an ``int``, a ``float`` share of them (MOA's default, 0.6,
        ours), or ``None`` for all.
    feature_cap
        At most this many features per leaf (``None``: no cap): a leaf's work per label grows
        with them (a 1,024-column stream: 32 instead of 614). With few labels a tree makes few
        splits, and the more features each leaf may choose among, the sooner the one a concept
        turns on is found: 60 % capped at 32 against river's square root, over the suite at 1
        % / 5 % labels, +0.19 / +0.17 points of mean accuracy, Elec2 +1.3 / +1.1 (every seed),
        at 0.62-1.11 times the learner's events/s (``benchmarks/results/forest-features``).
    lambda_value
        Mean of the Poisson weight with which each tree learns each row (online bagging).
    grace_period
        Weight a leaf gathers between split attempts. With Poisson(6) weights, river's 50 is
        about 8 labels per attempt; with labels scarce a leaf that waits for them splits late,
        and an attempt costs little next to the labels it waits for. 25 (about 4 labels)
        against 50, over the suite at 1 % / 5 % labels: +0.35 / +0.17 points of mean accuracy
        (luxembourg +1.6 / +0.7, elec2 1 % +0.8; no stream below -0.2), river's nine streams
        +0.05 / +0.05, the held-out two -0.06 / +0.02; 10 went too far at 5 % (-0.16: the
        usenets -1.4 / -1.0) (``benchmarks/results/forest-grace``). The Hoeffding bound
        (``delta``) still decides each split: a looser one (0.1) gained on the suite but lost on
        river's streams (agrawal 1 % -0.6, led 5 % -0.8).
    delta, tau
        The Hoeffding bound's confidence and tie threshold.
    n_splits
        Candidate thresholds per feature.
    min_branch_fraction
        Share of the weight each side of a split must hold.
    max_share_to_split
        A leaf whose majority class holds more of its weight than this does not try to split.
    warning_delta, drift_delta
        Confidence of each tree's ADWIN on its 0/1 error: at a warning a background tree starts
        learning, at a drift it replaces the tree (a new tree does if there is none).
    max_size
        MiB the forest's arrays may take: past it no leaf splits (the leaves go on learning).
        River caps each tree at 100 MB by deactivating its least promising leaves.
    seed
        Seed of the bagging weights and of the features drawn.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 3)); y = (X[:, 0] > 0.3).astype(int)
    >>> model = BatchForest(seed=0)
    >>> for start in range(0, 1500, 50):
    ...     model.learn_batch(X[start:start + 50], y[start:start + 50])
    >>> proba = model.proba_batch(X[1500:], 2)
    >>> float((proba.argmax(1) == y[1500:]).mean()) > 0.95
    True
    >>> model.learn_one({"a": 1.0, "b": 0.0, "c": 0.0}, "yes")  # river's interface: its own classes
    >>> model.predict_one({"a": 2.0, "b": 0.0, "c": 0.0})
    'yes'
    """

    _NODE = ("feature", "threshold", "children", "leaf_features", "counts",
             "n", "mean", "m2", "lo", "hi", "mc_right", "nb_right", "attempted")
    # Each estimator's Gaussian as the answers use it, kept from n and m2 (not pickled): whether
    # it is one (a variance above 0), -2 variance, and half the log of the variance.
    _GAUSS = ("gaussian", "neg2var", "halflog")
    _FILL = {"feature": -1, "lo": np.inf, "hi": -np.inf, "neg2var": -2.0}

    def __init__(
        self,
        n_models: int = 10,
        max_features: str | int | float | None = 0.6,
        feature_cap: int | None = 32,
        lambda_value: float = 6.0,
        grace_period: int = 25,
        delta: float = 0.01,
        tau: float = 0.05,
        n_splits: int = 10,
        min_branch_fraction: float = 0.01,
        max_share_to_split: float = 0.99,
        warning_delta: float = 0.01,
        drift_delta: float = 0.001,
        max_size: float = 256.0,
        seed: int | None = None,
    ) -> None:
        self.n_models, self.max_features, self.lambda_value = n_models, max_features, lambda_value
        self.feature_cap = feature_cap
        if feature_cap is not None and feature_cap < 1:
            raise ValueError(f"feature_cap must be None or >= 1, got {feature_cap}")
        self.grace_period, self.delta, self.tau = grace_period, delta, tau
        self.n_splits, self.min_branch_fraction = n_splits, min_branch_fraction
        self.max_share_to_split = max_share_to_split
        self.warning_delta, self.drift_delta, self.seed = warning_delta, drift_delta, seed
        self.max_size = max_size
        self._reset()

    def _reset(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self.n_features: int | None = None
        self.n_classes = 0
        self.size = 0  # nodes in use, the dropped trees' included until a compaction
        self._dropped = 0  # nodes of dropped trees
        # Each tree's root: the trees that answer, then their background trees (-1: none).
        self._roots = np.full(2 * self.n_models, -1, dtype=np.int64)
        self._right = np.zeros(self.n_models)  # each tree's rows answered right and seen since it started
        self._seen = np.zeros(self.n_models)
        self._warning: list = []
        self._drift: list = []
        self.n_warnings = np.zeros(self.n_models, dtype=np.int64)
        self.n_drifts = np.zeros(self.n_models, dtype=np.int64)
        self._classes: dict[Any, int] = {}  # river's labels as class indices (learn_one's path)
        self._waiting: tuple = ()  # (rows, classes) given with wait, short of a whole chunk

    @property
    def _multiclass(self) -> bool:
        return True

    @property
    def nbytes(self) -> int:
        """Bytes the forest's node arrays take (their capacity, dropped trees' nodes included)."""
        return sum(getattr(self, name).nbytes for name in self._NODE + self._GAUSS) if self.n_features is not None else 0

    # -- storage -------------------------------------------------------------------------------
    def _start(self, n_features: int) -> None:
        self.n_features = n_features
        m = self.max_features
        k = (n_features if m is None else round(math.sqrt(n_features)) if m == "sqrt"
             else m if isinstance(m, int) else int(m * n_features))
        if self.feature_cap is not None:
            k = min(k, self.feature_cap)
        self.n_leaf_features = int(min(max(k, 1), n_features))  # features per leaf
        cap, stats = 16, (16, self.n_classes, self.n_leaf_features)
        self.feature = np.full(cap, -1, dtype=np.int64)  # a branch's feature; -1 in a leaf
        self.threshold = np.zeros(cap)
        self.children = np.zeros((cap, 2), dtype=np.int64)  # a leaf's are itself
        self.leaf_features = np.zeros((cap, self.n_leaf_features), dtype=np.int64)
        self.counts = np.zeros((cap, self.n_classes))  # class weights
        # Gaussian estimators per (leaf, class, leaf feature): weight, mean, squared deviations, range.
        self.n, self.mean, self.m2 = np.zeros(stats), np.zeros(stats), np.zeros(stats)
        self.lo, self.hi = np.full(stats, np.inf), np.full(stats, -np.inf)
        self._empty_gaussians(stats)
        # Weights on which the leaf's majority class and its naive Bayes were right; weight at the last split attempt.
        self.mc_right, self.nb_right, self.attempted = np.zeros(cap), np.zeros(cap), np.zeros(cap)
        self._roots[: self.n_models] = self._new_leaves(self.n_models)
        self._warning = [drift.ADWIN(delta=self.warning_delta) for _ in range(self.n_models)]
        self._drift = [drift.ADWIN(delta=self.drift_delta) for _ in range(self.n_models)]

    def _resize(self, n_nodes: int | None = None, n_classes: int | None = None) -> None:
        for name in self._NODE + self._GAUSS:
            old = getattr(self, name)
            shape = list(old.shape)
            shape[0] = n_nodes or shape[0]
            if n_classes is not None and old.ndim >= 2 and name not in ("children", "leaf_features"):
                shape[1] = n_classes
            new = np.full(shape, self._FILL.get(name, 0), dtype=old.dtype)
            new[tuple(slice(0, min(a, b)) for a, b in zip(old.shape, shape))] = old[
                tuple(slice(0, min(a, b)) for a, b in zip(old.shape, shape))]
            setattr(self, name, new)

    def _new_leaves(self, n: int, counts: np.ndarray | None = None) -> np.ndarray:
        """``n`` new leaves, their indices: trees' roots, or children holding the class weights
        ``counts`` (one row each). Each draws its features at once: the first of a random
        order of all (one draw for all the leaves, where a draw per leaf cost 20 µs)."""
        while self.size + n > len(self.feature):
            self._resize(n_nodes=2 * len(self.feature))
        i = np.arange(self.size, self.size + n)
        self.size += n
        self.feature[i], self.children[i] = -1, i[:, None]
        self.counts[i] = 0.0 if counts is None else counts
        order = np.argsort(self._rng.random((n, self.n_features)), axis=1)
        self.leaf_features[i] = order[:, : self.n_leaf_features]
        self._restart(i)
        self.mc_right[i] = self.nb_right[i] = 0.0
        self.attempted[i] = self.counts[i].sum(axis=1)
        return i

    def _subtree(self, root: int) -> np.ndarray:
        nodes, level = [], np.array([root])
        while len(level):
            nodes.append(level)
            level = self.children[level[self.feature[level] >= 0]].ravel()
        return np.concatenate(nodes)

    def _drop(self, root: int) -> None:
        """Forget the tree at ``root``; its nodes are reclaimed once they are half the arrays."""
        self._dropped += len(self._subtree(root))
        if self._dropped > max(256, self.size // 2):
            self._compact()

    def _compact(self) -> None:
        """Keep only the nodes of the trees in use (in the order of their roots)."""
        live = np.concatenate([self._subtree(r) for r in self._roots.tolist() if r >= 0])
        where = np.full(self.size, -1, dtype=np.int64)
        where[live] = np.arange(len(live))
        for name in self._NODE + self._GAUSS:
            setattr(self, name, getattr(self, name)[live])
        self.children = np.where(self.feature[:, None] >= 0, where[self.children], np.arange(len(live))[:, None])
        self._roots = np.where(self._roots >= 0, where[self._roots], -1)
        self.size, self._dropped = len(live), 0
        self._resize(n_nodes=max(16, 2 * self.size))

    # -- answering -----------------------------------------------------------------------------
    def _route(self, roots: np.ndarray, X: np.ndarray) -> np.ndarray:
        """The leaf of every row in every tree given by its root, shape ``(len(roots), len(X))``;
        a row goes left when its feature is at or under the threshold."""
        leaf = forest_kernels.route(np.ascontiguousarray(roots), self.feature, self.threshold, self.children, X)
        if len(leaf) and leaf.min() < 0:
            raise RuntimeError("the forest's nodes hold a cycle")
        return leaf

    def _answers(self, leaf: np.ndarray, X: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The majority-class and naive-Bayes class probabilities at ``leaf`` (one per row) of
        rows ``X[rows]``; rows of zeros where the leaf has no weight."""
        return forest_kernels.answers(leaf, rows, X, self.counts, self.leaf_features, self.mean, self.neg2var,
                                      self.halflog, self.gaussian)

    def _tree_proba(self, leaf: np.ndarray, X: np.ndarray, rows: np.ndarray) -> tuple:
        """Each tree's answer at ``leaf`` (its naive Bayes where that has been right at least as
        often as its majority class, in a leaf still learning), with both answers."""
        mc, nb = self._answers(leaf, X, rows)
        use_nb = self.nb_right[leaf] >= self.mc_right[leaf]
        return np.where(use_nb[:, None], nb, mc), mc, nb

    def proba_batch(self, X: np.ndarray, n_classes: int) -> np.ndarray:
        """Class probabilities, shape ``(len(X), n_classes)``: the trees' answers weighted by
        their accuracy since they started, normalised; uniform where the forest knows nothing
        (:func:`~streamssl.learner.forest_kernels.proba`)."""
        X = self._check(X)
        if self.n_features is None or not len(X):
            return np.full((len(X), n_classes), 1.0 / max(1, n_classes))
        out, ok = forest_kernels.proba(self._roots[: self.n_models], self.feature, self.threshold, self.children, X,
                                       self.counts, self.leaf_features, self.mean, self.neg2var, self.halflog,
                                       self.gaussian, self.mc_right, self.nb_right, self._right, self._seen, n_classes)
        if not ok:
            raise RuntimeError("the forest's nodes hold a cycle")
        return out

    # -- learning ------------------------------------------------------------------------------
    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or (self.n_features is not None and X.shape[1] != self.n_features):
            raise ValueError(f"rows of {self.n_features} features expected, got shape {X.shape}")
        return X

    def learn_batch(self, X: np.ndarray, y: np.ndarray, wait: bool = False) -> None:
        """Learn rows ``X`` (shape ``(n, n_features)``) with class indices ``y``, in order, a
        chunk of :attr:`chunk` rows at a time. With ``wait``, rows short of a whole chunk wait
        for the next call (or :meth:`flush`): a caller that gives rows one by one pays for a
        chunk per :attr:`chunk` rows, and a row is learned at most ``chunk - 1`` rows late.

        >>> model = BatchForest(seed=0)
        >>> model.learn_batch(np.zeros((2, 3)), np.array([0, 1]), wait=True)
        >>> model.waiting, model.n_features
        (2, None)
        >>> model.flush()
        >>> model.waiting, model.n_features
        (0, 3)
        """
        X, y = self._check(X), np.asarray(y, dtype=np.int64)
        if y.shape != (len(X),) or (len(y) and y.min() < 0):
            raise ValueError(f"one class index (0, 1, ...) per row expected: {len(X)} rows, classes of shape "
                             f"{y.shape}, the least {y.min() if y.size else None}")
        if self._waiting and X.shape[1] != self._waiting[0].shape[1]:
            raise ValueError(f"rows of {self._waiting[0].shape[1]} features expected, got shape {X.shape}")
        if self._waiting:
            X, y = np.concatenate([self._waiting[0], X]), np.concatenate([self._waiting[1], y])
            self._waiting = ()
        if wait and len(X) % self.chunk:
            cut = len(X) - len(X) % self.chunk
            self._waiting = (X[cut:], y[cut:])
            X, y = X[:cut], y[:cut]
        if not len(X):
            return
        if self.n_features is None:
            self._start(X.shape[1])
        if int(y.max()) + 1 > self.n_classes:
            self.n_classes = int(y.max()) + 1
            self._resize(n_classes=self.n_classes)
        for start in range(0, len(X), self.chunk):
            self._learn_chunk(X[start:start + self.chunk], y[start:start + self.chunk])

    @property
    def waiting(self) -> int:
        """Rows given with ``wait`` and not learned yet."""
        return len(self._waiting[0]) if self._waiting else 0

    def flush(self) -> None:
        """Learn the rows that wait."""
        if self._waiting:
            self.learn_batch(np.empty((0, self._waiting[0].shape[1])), np.empty(0, dtype=np.int64))

    @property
    def chunk(self) -> int:
        """Rows learned together: as many as bring a leaf about one grace period of weight (5
        with the defaults), so that a leaf still tries its split about as often as label by label."""
        return max(1, math.ceil(self.grace_period / max(self.lambda_value, 1.0)))

    def _learn_chunk(self, X: np.ndarray, y: np.ndarray) -> None:
        """Each tree, and its background tree where one grows, learns the rows with a weight
        drawn from Poisson(``lambda_value``), from its answers before
        (:func:`~streamssl.learner.forest_kernels.learn_chunk`); then the leaves due try their
        split and the trees' detectors see their errors."""
        T, n = self.n_models, len(X)
        k = self._rng.poisson(self.lambda_value, (T, n)).astype(np.float64)
        wrong, due, ok = forest_kernels.learn_chunk(
            self._roots, T, X, y, k, self.feature, self.threshold, self.children, self.leaf_features, self.counts,
            self.mc_right, self.nb_right, self.n, self.mean, self.m2, self.lo, self.hi, self.gaussian, self.neg2var,
            self.halflog, self.attempted, float(self.grace_period))
        if not ok:
            raise RuntimeError("the forest's nodes hold a cycle")
        self._right += n - wrong.sum(axis=1)
        self._seen += n
        self._attempt_splits(due)
        self._detect(wrong, k > 0)

    def _attempt_splits(self, leaves: np.ndarray) -> None:
        """Score the candidates of each of ``leaves`` (``n_splits`` evenly spaced thresholds
        inside each feature's observed range; each class's weight on either side from its
        Gaussian) by information gain (:func:`~streamssl.learner.forest_kernels.split_scores`),
        and split a leaf on its best when that beats its second best by the Hoeffding bound, or
        the bound is under ``tau`` (the decisions one compiled loop:
        :func:`~streamssl.learner.forest_kernels.attempt_splits`). The children of all the
        leaves that split are made together (:meth:`_new_leaves`), unless the forest's arrays
        are at ``max_size`` already.

        A leaf that holds one class (more than ``max_share_to_split`` of its weight), or whose
        candidates are all invalid when the bound calls for a split, starts its estimators afresh:
        river stops such a leaf and its memory management wakes it again at once, with new
        estimators (far under the size limit it always does)."""
        split, best, threshold, left, right = forest_kernels.attempt_splits(
            leaves, self.counts, self.n, self.mean, self.m2, self.lo, self.hi, self.gaussian, self.neg2var,
            self.halflog, self.n_splits, self.min_branch_fraction, self.max_share_to_split, math.log(1.0 / self.delta),
            self.tau)
        if not len(split) or self.nbytes > self.max_size * 2**20:
            return  # the forest is at its size: its leaves go on learning, none splits
        kids = self._new_leaves(2 * len(split), np.concatenate([left, right]))
        self.feature[split], self.threshold[split] = self.leaf_features[split, best], threshold
        self.children[split] = kids.reshape(2, -1).T

    def _restart(self, j: int | np.ndarray) -> None:
        """Leaf ``j``'s (or leaves') Gaussian estimators, empty."""
        self.n[j] = self.mean[j] = self.m2[j] = 0.0
        self.lo[j], self.hi[j] = np.inf, -np.inf
        self.gaussian[j], self.neg2var[j], self.halflog[j] = False, self._FILL["neg2var"], 0.0

    def _empty_gaussians(self, shape: tuple[int, ...]) -> None:
        """The kept Gaussian terms (:attr:`_GAUSS`) of estimators that have none, shape ``shape``."""
        self.gaussian = np.zeros(shape, dtype=bool)
        self.neg2var = np.full(shape, self._FILL["neg2var"])
        self.halflog = np.zeros(shape)

    def _detect(self, wrong: np.ndarray, learned: np.ndarray) -> None:
        """Each tree's warning and drift detectors, on its errors of the rows it learned."""
        T = self.n_models
        errors = np.where(learned, wrong, -1).tolist()  # each tree's row: 1 wrong, 0 right, -1 not learned
        for i in range(T):
            warning, drifting = self._warning[i], self._drift[i]
            for error in [float(e) for e in errors[i] if e >= 0]:
                warning.update(error)
                if warning.drift_detected:
                    old = int(self._roots[T + i])
                    self._roots[T + i] = -1
                    if old >= 0:
                        self._drop(old)
                    self._roots[T + i] = self._new_leaves(1)[0]
                    warning = self._warning[i] = drift.ADWIN(delta=self.warning_delta)
                    self.n_warnings[i] += 1
                drifting.update(error)
                if drifting.drift_detected:
                    old, background = int(self._roots[i]), int(self._roots[T + i])
                    self._roots[i] = background if background >= 0 else self._new_leaves(1)[0]
                    self._roots[T + i] = -1
                    self._drop(old)
                    warning = self._warning[i] = drift.ADWIN(delta=self.warning_delta)
                    drifting = self._drift[i] = drift.ADWIN(delta=self.drift_delta)
                    self._right[i] = self._seen[i] = 0.0
                    self.n_drifts[i] += 1

    # -- river's per-event interface ------------------------------------------------------------
    def _row(self, x: dict) -> np.ndarray:
        """The event as a row, its features in the order of the first event's sorted keys (a
        feature it lacks is 0)."""
        if not hasattr(self, "_keys"):
            try:
                self._keys = sorted(x)
            except TypeError:  # keys of mixed types
                self._keys = sorted(x, key=repr)
        return np.array([[float(x.get(k, 0.0)) for k in self._keys]])

    def learn_one(self, x: dict, y: Any, **kwargs: Any) -> None:
        index = self._classes.setdefault(y, len(self._classes))
        self.learn_batch(self._row(x), np.array([index]))

    def predict_proba_one(self, x: dict, **kwargs: Any) -> dict:
        if not self._classes:
            return {}
        proba = self.proba_batch(self._row(x), len(self._classes))[0]
        return {c: float(proba[i]) for c, i in self._classes.items()}

    # -- state ---------------------------------------------------------------------------------
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_rng"] = self._rng.bit_generator.state
        for name in self._GAUSS:
            state.pop(name, None)
        if self.n_features is not None:
            for name in self._NODE:  # the nodes in use only
                state[name] = state[name][: self.size]
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        rng = np.random.default_rng()
        rng.bit_generator.state = state.pop("_rng")
        state.setdefault("_waiting", ())  # forests pickled before rows could wait
        state.setdefault("feature_cap", None)  # ... and before the cap (their width is fixed by then)
        self.__dict__.update(state)
        self._rng = rng
        if self.n_features is not None:
            stats = (self.size, *self.n.shape[1:])
            self._empty_gaussians(stats)
            forest_kernels.gaussians(self.n, self.m2, self.gaussian, self.neg2var, self.halflog)
            self._resize(n_nodes=max(16, 2 * self.size))
            leaf = np.flatnonzero(self.feature[: self.size] < 0)
            self.children[leaf] = leaf[:, None]  # forests pickled when a leaf's children were 0
