"""The inner loops of :class:`~streamssl.learner.forest.BatchForest`, compiled with numba.

Routing a row down a tree, a leaf's answer, learning a row at a leaf and a leaf's split
candidates are a few arithmetic operations per node, per (class, feature) and per (feature,
threshold, class). As whole-array numpy operations they cost a call per tree level and per step
of the formula whatever the batch, which was most of a forest's time on micro-batches and all
of it on one event; compiled, they are loops (one event, ten trees: 7 µs instead of 140). The
results are the numpy formulas' (sums in another order, libm's erf and log for scipy's and
numpy's: within a few units in the last place). Compiled once per machine and cached
(:func:`~streamssl.learner.compiled.compiled`).
"""

from __future__ import annotations

import math

import numpy as np

from .compiled import compiled as _compiled

_HALF_LOG_TAU = 0.5 * math.log(2 * math.pi)


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
    out = np.empty((roots.shape[0], X.shape[0]), dtype=np.int64)
    for t in range(roots.shape[0]):
        for r in range(X.shape[0]):
            out[t, r] = _walk(roots[t], X, r, feature, threshold, children)
    return out


@_compiled(inline=True)
def _walk(node: int, X: np.ndarray, r: int, feature: np.ndarray, threshold: np.ndarray, children: np.ndarray) -> int:
    """The leaf that row ``X[r]`` reaches from ``node`` (-1 past as many steps as nodes: a cycle)."""
    n_nodes, steps = feature.shape[0], 0
    while feature[node] >= 0 and steps <= n_nodes:
        node = children[node, 1] if X[r, feature[node]] > threshold[node] else children[node, 0]
        steps += 1
    return node if steps <= n_nodes else -1


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
    n_classes = counts.shape[1]
    mc = np.zeros((leaf.shape[0], n_classes))
    nb = np.zeros((leaf.shape[0], n_classes))
    votes = np.empty(n_classes)
    for i in range(leaf.shape[0]):
        _answer(leaf[i], X, rows[i], counts, leaf_features, mean, neg2var, halflog, gaussian, mc[i], nb[i], votes)
    return mc, nb


@_compiled(inline=True)
def _answer(node: int, X: np.ndarray, r: int, counts: np.ndarray, leaf_features: np.ndarray, mean: np.ndarray,
            neg2var: np.ndarray, halflog: np.ndarray, gaussian: np.ndarray, mc: np.ndarray, nb: np.ndarray,
            votes: np.ndarray) -> None:
    """:func:`answers` for one leaf and row, into ``mc`` and ``nb`` (zeros on entry; ``votes``: room)."""
    n_classes, m = counts.shape[1], leaf_features.shape[1]
    total = 0.0
    for c in range(n_classes):
        total += counts[node, c]
    if total <= 0.0:
        return
    top = -np.inf
    for c in range(n_classes):
        share = counts[node, c] / total
        mc[c] = share
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
            nb[c] = votes[c] / s


@_compiled
def proba(roots: np.ndarray, feature: np.ndarray, threshold: np.ndarray, children: np.ndarray, X: np.ndarray,
          counts: np.ndarray, leaf_features: np.ndarray, mean: np.ndarray, neg2var: np.ndarray, halflog: np.ndarray,
          gaussian: np.ndarray, mc_right: np.ndarray, nb_right: np.ndarray, right: np.ndarray, seen: np.ndarray,
          n_classes: int) -> tuple[np.ndarray, bool]:
    """The forest's class probabilities for the rows of ``X``, shape ``(len(X), n_classes)``:
    each tree (given by its root) routes the row to a leaf (:func:`route`), whose answer is its
    naive Bayes where that has been right at least as often as its majority class
    (:func:`answers`); the trees' answers weighted by their accuracy (``right`` of ``seen``;
    1 where none is known or it is 0) and normalised, uniform where they hold nothing. Also
    whether every path ended (``False``: the nodes hold a cycle).

    >>> feature, threshold = np.array([0, -1, -1]), np.array([0.5, 0.0, 0.0])
    >>> children, counts = np.array([[1, 2], [1, 1], [2, 2]]), np.array([[0.0, 0.0], [3.0, 1.0], [0.0, 2.0]])
    >>> gauss = np.zeros((3, 2, 1), dtype=np.bool_)
    >>> out, ok = proba(np.array([0]), feature, threshold, children, np.array([[0.2], [0.9]]), counts,
    ...                 np.zeros((3, 1), dtype=np.int64), np.zeros((3, 2, 1)), np.full((3, 2, 1), -2.0),
    ...                 np.zeros((3, 2, 1)), gauss, np.ones(3), np.zeros(3), np.ones(1), np.ones(1), 2)
    >>> out.tolist(), ok
    ([[0.75, 0.25], [0.0, 1.0]], True)
    """
    n_rows, held = X.shape[0], counts.shape[1]
    width = min(n_classes, held)
    out = np.zeros((n_rows, n_classes))
    leaf = route(roots, feature, threshold, children, X)
    weight = np.empty(roots.shape[0])
    for t in range(roots.shape[0]):
        accuracy = right[t] / (seen[t] if seen[t] > 0 else 1.0)
        weight[t] = accuracy if accuracy > 0 else 1.0
    mc, nb, votes = np.zeros(held), np.zeros(held), np.empty(held)
    for t in range(roots.shape[0]):
        for r in range(n_rows):
            node = leaf[t, r]
            if node < 0:
                return out, False
            for c in range(held):
                mc[c] = nb[c] = 0.0
            _answer(node, X, r, counts, leaf_features, mean, neg2var, halflog, gaussian, mc, nb, votes)
            by_nb = nb_right[node] >= mc_right[node]
            for c in range(width):
                out[r, c] += weight[t] * (nb[c] if by_nb else mc[c])
    for r in range(n_rows):
        total = 0.0
        for c in range(n_classes):
            total += out[r, c]
        for c in range(n_classes):
            out[r, c] = out[r, c] / total if total > 0.0 else 1.0 / max(1, n_classes)
    return out, True


@_compiled
def _normal_cdf(z: float) -> float:
    """The standard normal CDF, as scipy's ``ndtr`` (Cephes) computes it."""
    x = z * 0.7071067811865476
    if abs(x) < 0.7071067811865476:
        return 0.5 + 0.5 * math.erf(x)
    y = 0.5 * math.erfc(abs(x))
    return 1.0 - y if x > 0 else y


@_compiled
def _bits(weights: np.ndarray) -> float:
    """Entropy in bits of class weights (0 without weight)."""
    total = 0.0
    for w in weights:
        total += w
    if total <= 0.0:
        return 0.0
    h = 0.0
    for w in weights:
        if w > 0.0:
            p = w / total
            h -= p * math.log2(p)
    return h


@_compiled
def split_scores(leaves: np.ndarray, counts: np.ndarray, n: np.ndarray, mean: np.ndarray, m2: np.ndarray,
                 lo: np.ndarray, hi: np.ndarray, n_splits: int, min_branch_fraction: float):
    """Each leaf's best split: ``n_splits`` thresholds evenly inside each of its features'
    observed range, each class's weight either side from its Gaussian (all of it past its
    range, none without spread), scored by information gain where each side holds more than
    ``min_branch_fraction`` of the weight. Returns per leaf the best merit, the best merit of
    another feature (``-inf`` with one feature), the best's feature (its position among the
    leaf's) and threshold, and the class weights either side of it.

    >>> counts = np.array([[5.0, 5.0]]); n = np.array([[[5.0], [5.0]]]); m2 = np.full((1, 2, 1), 2.0)
    >>> mean = np.array([[[0.0], [4.0]]]); lo = np.array([[[-1.0], [3.0]]]); hi = np.array([[[1.0], [5.0]]])
    >>> first, second, feature, threshold, left, right = split_scores(
    ...     np.array([0]), counts, n, mean, m2, lo, hi, 10, 0.01)
    >>> float(first[0]), float(second[0]), int(feature[0]), round(float(threshold[0]), 3), left.tolist()
    (1.0, -inf, 0, 1.182, [[5.0, 0.0]])
    """
    n_leaves, n_classes, m = leaves.shape[0], counts.shape[1], n.shape[2]
    first, second = np.full(n_leaves, -np.inf), np.full(n_leaves, -np.inf)
    feature, threshold = np.zeros(n_leaves, dtype=np.int64), np.zeros(n_leaves)
    left_best, right_best = np.zeros((n_leaves, n_classes)), np.zeros((n_leaves, n_classes))
    left, right, sigma = np.empty(n_classes), np.empty(n_classes), np.empty(n_classes)
    best_left, best_right = np.empty((m, n_classes)), np.empty((m, n_classes))
    best, best_at = np.empty(m), np.empty(m)
    for i in range(n_leaves):
        leaf = leaves[i]
        prior = _bits(counts[leaf])
        for j in range(m):
            f_lo, f_hi = np.inf, -np.inf
            for c in range(n_classes):
                sigma[c] = math.sqrt(m2[leaf, c, j] / (n[leaf, c, j] - 1.0)) if n[leaf, c, j] > 1.0 else 0.0
                if n[leaf, c, j] > 0.0:
                    f_lo, f_hi = min(f_lo, lo[leaf, c, j]), max(f_hi, hi[leaf, c, j])
            best[j], best_at[j] = -np.inf, 0.0
            best_left[j, :], best_right[j, :] = 0.0, 0.0
            for k in range(1, n_splits + 1):
                s = f_lo + (f_hi - f_lo) * (k / (n_splits + 1.0))
                if not (s > f_lo and s < f_hi):
                    continue
                wl = wr = 0.0
                for c in range(n_classes):
                    w = n[leaf, c, j]
                    if w > 0.0:
                        if s < lo[leaf, c, j]:
                            left[c] = 0.0
                        elif s >= hi[leaf, c, j]:
                            left[c] = w
                        elif sigma[c] > 0.0:
                            left[c] = _normal_cdf((s - mean[leaf, c, j]) / sigma[c]) * w
                        else:
                            left[c] = 0.0
                        right[c] = w - left[c]
                    else:
                        left[c] = right[c] = 0.0
                    wl += left[c]
                    wr += right[c]
                share = wl + wr if wl + wr > 0.0 else 1.0
                if not (wl / share > min_branch_fraction and wr / share > min_branch_fraction):
                    continue
                merit = prior - (wl * _bits(left) + wr * _bits(right)) / share
                if merit > best[j]:
                    best[j], best_at[j] = merit, s
                    best_left[j, :], best_right[j, :] = left, right
        top = 0
        for j in range(m):  # the last of equal bests, as a stable sort's last
            if best[j] >= best[top]:
                top = j
        first[i], feature[i], threshold[i] = best[top], top, best_at[top]
        left_best[i, :], right_best[i, :] = best_left[top], best_right[top]
        for j in range(m):
            if j != top and best[j] > second[i]:
                second[i] = best[j]
    return first, second, feature, threshold, left_best, right_best


@_compiled
def _gaussian(n: float, m2: float) -> tuple[bool, float, float]:
    """The Gaussian of an estimator of weight ``n`` and squared deviations ``m2`` as the answers
    use it: whether it is one (river's has a variance from its second weight on, and is none
    without spread), -2 variance and half the log of the variance (1 where it is none)."""
    var = m2 / (n - 1.0) if n > 1.0 else 0.0
    safe = var if var > 0.0 else 1.0
    return var > 0.0, -2.0 * safe, 0.5 * math.log(safe)


@_compiled
def gaussians(n: np.ndarray, m2: np.ndarray, gaussian: np.ndarray, neg2var: np.ndarray, halflog: np.ndarray) -> None:
    """:func:`_gaussian` of every estimator of ``n`` and ``m2`` (shape ``(nodes, classes,
    features)``), into ``gaussian``, ``neg2var`` and ``halflog``."""
    for a in range(n.shape[0]):
        for c in range(n.shape[1]):
            for j in range(n.shape[2]):
                gaussian[a, c, j], neg2var[a, c, j], halflog[a, c, j] = _gaussian(n[a, c, j], m2[a, c, j])


@_compiled
def learn(leaf: np.ndarray, rows: np.ndarray, w: np.ndarray, mc: np.ndarray, nb: np.ndarray, y: np.ndarray,
          X: np.ndarray, leaf_features: np.ndarray, counts: np.ndarray, mc_right: np.ndarray, nb_right: np.ndarray,
          n: np.ndarray, mean: np.ndarray, m2: np.ndarray, lo: np.ndarray, hi: np.ndarray, gaussian: np.ndarray,
          neg2var: np.ndarray, halflog: np.ndarray, attempted: np.ndarray, grace_period: float) -> np.ndarray:
    """Learn row ``X[rows[i]]``, of class ``y[rows[i]]``, at ``leaf[i]`` with weight ``w[i]``,
    for every ``i``, in place; returns the leaves due a split attempt (ascending).

    Per leaf: the weight on which its majority class (``mc[i]``, its answer before) and its
    naive Bayes (``nb[i]``) were right, and its class weights. Per (leaf, class, leaf feature) a
    Gaussian estimator: the rows of each (leaf, class) summed into a weighted mean and squared
    deviations (as offsets from the group's first row, so that equal values leave a deviation
    of exactly 0), merged in by Chan et al.'s formula, its range, and the Gaussian the answers
    use (a variance above 0; -2 variance, half its log). A leaf is due when it gathered
    ``grace_period`` weight since its last attempt (``attempted``, moved to its weight now).

    >>> counts, right, attempted = np.zeros((1, 2)), np.zeros(1), np.zeros(1)
    >>> n, mean, m2 = np.zeros((1, 2, 1)), np.zeros((1, 2, 1)), np.zeros((1, 2, 1))
    >>> lo, hi = np.full((1, 2, 1), np.inf), np.full((1, 2, 1), -np.inf)
    >>> gauss, neg2var, halflog = np.zeros((1, 2, 1), dtype=np.bool_), np.full((1, 2, 1), -2.0), np.zeros((1, 2, 1))
    >>> due = learn(np.zeros(3, dtype=np.int64), np.arange(3), np.ones(3), np.zeros((3, 2)), np.zeros((3, 2)),
    ...             np.array([0, 0, 1]), np.array([[1.0], [3.0], [5.0]]), np.zeros((1, 1), dtype=np.int64),
    ...             counts, right, right.copy(), n, mean, m2, lo, hi, gauss, neg2var, halflog, attempted, 3.0)
    >>> due.tolist(), counts.tolist(), mean[0, :, 0].tolist(), m2[0, :, 0].tolist(), gauss[0, :, 0].tolist()
    ([0], [[2.0, 1.0]], [2.0, 5.0], [2.0, 0.0], [True, False])
    """
    n_pairs, n_classes, m = leaf.shape[0], counts.shape[1], leaf_features.shape[1]
    # The answers' outcomes, from the class weights as they were before any of these rows.
    mc_ok, nb_ok = np.empty(n_pairs, dtype=np.bool_), np.empty(n_pairs, dtype=np.bool_)
    for i in range(n_pairs):
        node, c = leaf[i], y[rows[i]]
        total, nb_total, top_mc, top_nb = 0.0, 0.0, 0, 0
        for k in range(n_classes):
            total += counts[node, k]
            nb_total += nb[i, k]
            if mc[i, k] > mc[i, top_mc]:
                top_mc = k
            if nb[i, k] > nb[i, top_nb]:
                top_nb = k
        mc_ok[i] = total == 0.0 or top_mc == c
        nb_ok[i] = nb_total > 0.0 and top_nb == c
    for i in range(n_pairs):
        node = leaf[i]
        mc_right[node] += w[i] if mc_ok[i] else 0.0
        nb_right[node] += w[i] if nb_ok[i] else 0.0
        counts[node, y[rows[i]]] += w[i]
    # The estimators, a (leaf, class) group at a time; a group's rows in their order.
    key = np.empty(n_pairs, dtype=np.int64)
    for i in range(n_pairs):
        key[i] = leaf[i] * n_classes + y[rows[i]]
    order = np.argsort(key, kind="mergesort")
    S, gm2 = np.empty(m), np.empty(m)
    start = 0
    while start < n_pairs:
        end = start
        while end < n_pairs and key[order[end]] == key[order[start]]:
            end += 1
        first = order[start]
        node, c, r0 = leaf[first], y[rows[first]], rows[first]
        W = 0.0
        for p in range(start, end):
            W += w[order[p]]
        for j in range(m):
            f = leaf_features[node, j]
            ref = X[r0, f]
            s = 0.0
            for p in range(start, end):
                i = order[p]
                s += w[i] * (X[rows[i], f] - ref)
            S[j] = ref + s / W  # the group's mean
            d2 = 0.0
            for p in range(start, end):
                i = order[p]
                dev = X[rows[i], f] - S[j]
                d2 += w[i] * dev * dev
                v = X[rows[i], f]
                if v < lo[node, c, j]:
                    lo[node, c, j] = v
                if v > hi[node, c, j]:
                    hi[node, c, j] = v
            gm2[j] = d2
        for j in range(m):
            n0, mean0 = n[node, c, j], mean[node, c, j]
            n1 = n0 + W
            delta = S[j] - mean0
            mean[node, c, j] = mean0 + delta * (W / n1)
            m2[node, c, j] += gm2[j] + delta * delta * (n0 * W / n1)
            n[node, c, j] = n1
            gaussian[node, c, j], neg2var[node, c, j], halflog[node, c, j] = _gaussian(n1, m2[node, c, j])
        start = end
    # The leaves due a split attempt, ascending.
    touched = np.unique(leaf)
    due = np.zeros(touched.shape[0], dtype=np.bool_)
    for t in range(touched.shape[0]):
        node = touched[t]
        total = 0.0
        for k in range(n_classes):
            total += counts[node, k]
        if total - attempted[node] >= grace_period:
            attempted[node] = total
            due[t] = True
    return touched[due]


@_compiled
def learn_chunk(roots: np.ndarray, n_models: int, X: np.ndarray, y: np.ndarray, k: np.ndarray,
                feature: np.ndarray, threshold: np.ndarray, children: np.ndarray, leaf_features: np.ndarray,
                counts: np.ndarray, mc_right: np.ndarray, nb_right: np.ndarray, n: np.ndarray, mean: np.ndarray,
                m2: np.ndarray, lo: np.ndarray, hi: np.ndarray, gaussian: np.ndarray, neg2var: np.ndarray,
                halflog: np.ndarray, attempted: np.ndarray,
                grace_period: float) -> tuple[np.ndarray, np.ndarray, bool]:
    """One chunk of rows ``X`` (classes ``y``) learned by a forest, in place: each tree (the
    first ``n_models`` of ``roots``) answers every row at its leaf (:func:`route`; the naive
    Bayes where that has been right at least as often as the majority class), then learns it
    with weight ``k[tree, row]`` where that is above 0, as its background tree does (the
    tree's ``n_models``-th root on, where one grows), all from the answers before
    (:func:`learn`). Returns whether each tree's answer was wrong (shape ``k.shape``), the
    leaves due a split attempt, and whether every path ended (``False``: a cycle, nothing
    learned)."""
    n_rows, n_classes = X.shape[0], counts.shape[1]
    leaf = np.full((roots.shape[0], n_rows), -1, dtype=np.int64)  # background trees' too, where they grow
    wrong = np.zeros((n_models, n_rows), dtype=np.bool_)
    pairs = 0
    for t in range(roots.shape[0]):
        if roots[t] < 0:
            continue
        for r in range(n_rows):
            leaf[t, r] = _walk(roots[t], X, r, feature, threshold, children)
            if leaf[t, r] < 0:
                return wrong, np.empty(0, dtype=np.int64), False
            if k[t % n_models, r] > 0.0:
                pairs += 1
    at, rows, w = np.empty(pairs, dtype=np.int64), np.empty(pairs, dtype=np.int64), np.empty(pairs)
    mc, nb = np.zeros((pairs, n_classes)), np.zeros((pairs, n_classes))
    one_mc, one_nb, votes = np.zeros(n_classes), np.zeros(n_classes), np.empty(n_classes)
    i = 0
    for t in range(roots.shape[0]):  # the trees, then the background trees, each row in order
        if roots[t] < 0:
            continue
        for r in range(n_rows):
            node, weight = leaf[t, r], k[t % n_models, r]
            if t >= n_models and weight <= 0.0:
                continue  # a background tree's answers are needed only where it learns
            for c in range(n_classes):
                one_mc[c] = one_nb[c] = 0.0
            _answer(node, X, r, counts, leaf_features, mean, neg2var, halflog, gaussian, one_mc, one_nb, votes)
            if t < n_models:
                chosen = one_nb if nb_right[node] >= mc_right[node] else one_mc
                top = 0
                for c in range(n_classes):
                    if chosen[c] > chosen[top]:
                        top = c
                wrong[t, r] = top != y[r]
            if weight > 0.0:
                at[i], rows[i], w[i] = node, r, weight
                mc[i, :], nb[i, :] = one_mc, one_nb
                i += 1
    due = learn(at, rows, w, mc, nb, y, X, leaf_features, counts, mc_right, nb_right, n, mean, m2, lo, hi,
                gaussian, neg2var, halflog, attempted, grace_period)
    return wrong, due, True


@_compiled
def attempt_splits(leaves: np.ndarray, counts: np.ndarray, n: np.ndarray, mean: np.ndarray, m2: np.ndarray,
                   lo: np.ndarray, hi: np.ndarray, gaussian: np.ndarray, neg2var: np.ndarray, halflog: np.ndarray,
                   n_splits: int, min_branch_fraction: float, max_share_to_split: float, log_inv_delta: float,
                   tau: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:meth:`~streamssl.learner.forest.BatchForest._attempt_splits`' decisions for ``leaves``
    (ascending): each leaf of at least two classes either starts its estimators afresh (one class
    holds more than ``max_share_to_split`` of its weight, or the Hoeffding bound calls for a split
    and every candidate is invalid), or is scored (:func:`split_scores`) and splits where its best
    merit beats its second by the bound (from ``log_inv_delta``, log 1/delta), or the bound is
    under ``tau``. Returns the leaves that split, their best's feature position and threshold,
    and the class weights either side (the children's)."""
    n_leaves, n_classes = leaves.shape[0], counts.shape[1]
    scored, classes, total = np.empty(n_leaves, dtype=np.int64), np.empty(n_leaves), np.empty(n_leaves)
    m = 0
    for i in range(n_leaves):
        leaf, seen, weight, top = leaves[i], 0, 0.0, 0.0
        for c in range(n_classes):
            w = counts[leaf, c]
            weight += w
            seen += w > 0.0
            top = max(top, w)
        if seen < 2:
            continue
        if top / weight > max_share_to_split:
            _restart(leaf, n, mean, m2, lo, hi, gaussian, neg2var, halflog)
            continue
        scored[m], classes[m], total[m] = leaf, seen, weight
        m += 1
    scored = scored[:m]
    first, second, feature, threshold, left, right = split_scores(scored, counts, n, mean, m2, lo, hi, n_splits,
                                                                  min_branch_fraction)
    split = np.zeros(m, dtype=np.bool_)
    for i in range(m):
        bound = math.sqrt(math.log2(max(classes[i], 2.0)) ** 2 * log_inv_delta / (2.0 * total[i]))
        if math.isfinite(first[i]):
            gap = first[i] - second[i] if math.isfinite(second[i]) else np.inf
        else:
            gap = -np.inf
        if not (gap > bound or bound < tau):
            continue
        if math.isfinite(first[i]):
            split[i] = True
        else:
            _restart(scored[i], n, mean, m2, lo, hi, gaussian, neg2var, halflog)
    return scored[split], feature[split], threshold[split], left[split], right[split]


@_compiled(inline=True)
def _restart(leaf: int, n: np.ndarray, mean: np.ndarray, m2: np.ndarray, lo: np.ndarray, hi: np.ndarray,
             gaussian: np.ndarray, neg2var: np.ndarray, halflog: np.ndarray) -> None:
    """Leaf ``leaf``'s Gaussian estimators, empty."""
    for c in range(n.shape[1]):
        for j in range(n.shape[2]):
            n[leaf, c, j] = mean[leaf, c, j] = m2[leaf, c, j] = 0.0
            lo[leaf, c, j], hi[leaf, c, j] = np.inf, -np.inf
            gaussian[leaf, c, j], neg2var[leaf, c, j], halflog[leaf, c, j] = _gaussian(0.0, 0.0)
