"""BatchForest: river's adaptive random forest held as arrays, learned a chunk of rows at a time."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import river.forest.adaptive_random_forest as river_arf
from river import forest

from streamssl.learner.forest import BatchForest
from streamssl.state import serialize


def _stream(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three classes by thresholds on two of four features."""
    X = np.random.default_rng(seed).uniform(0, 1, size=(n, 4))
    return X, (X[:, 0] > 0.3).astype(int) + (X[:, 1] > 0.5).astype(int)


class _SameDraws:
    """The forest's generator, but its Poisson weights taken from ``draws`` in river's order
    (row by row, tree by tree)."""

    def __init__(self, rng: np.random.Generator, draws: np.ndarray) -> None:
        self.rng, self.draws, self.at = rng, draws, 0

    def poisson(self, lam: float, shape: tuple[int, int]) -> np.ndarray:
        trees, rows = shape
        out = self.draws[self.at:self.at + trees * rows].reshape(rows, trees).T
        self.at += trees * rows
        return out.astype(float)

    def __getattr__(self, name: str):
        return getattr(self.rng, name)


def test_row_by_row_with_rivers_bagging_weights_it_answers_as_rivers_forest(monkeypatch):
    """With every feature open to every leaf (no random subsets) and river's forest given the
    same bagging weights, learning one row at a time gives river's answers: the same trees.
    (Poisson draws, nudged off the integers so that no two class weights tie: river breaks a tie
    by the order in which a leaf met the classes, this forest by the class index.)"""
    rng = np.random.default_rng(1)
    draws = rng.poisson(6, 100_000)
    draws = np.where(draws > 0, draws + rng.uniform(0, 0.1, len(draws)), 0.0)
    at = iter(draws.tolist())
    monkeypatch.setattr(river_arf, "poisson", lambda rate, rng: next(at))
    X, y = _stream(1500)
    theirs = forest.ARFClassifier(n_models=3, max_features=None, seed=0)
    ours = BatchForest(n_models=3, max_features=None, grace_period=theirs.grace_period, seed=0)
    ours._rng = _SameDraws(ours._rng, draws)
    for i in range(len(X)):
        if i > 0:
            expected = theirs.predict_proba_one(dict(enumerate(X[i])))
            got = ours.proba_batch(X[i:i + 1], 3)[0]
            np.testing.assert_allclose(got, [expected.get(c, 0.0) for c in range(3)], atol=1e-6)
        theirs.learn_one(dict(enumerate(X[i])), int(y[i]))
        ours.learn_batch(X[i:i + 1], y[i:i + 1])
    assert ours.size > 3  # the trees did split
    assert ours.n_drifts.tolist() == [theirs.n_drifts_detected(i) for i in range(3)]
    assert ours.n_warnings.tolist() == [theirs.n_warnings_detected(i) for i in range(3)]


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")  # river's, in numpy floats
def test_a_density_too_narrow_to_hold_is_left_out_as_river_leaves_it_out():
    """A class whose values barely differ has a variance so small that another value's log
    density overflows to -inf: river then counts no density for that feature (the class keeps
    its prior and the other features), rather than ruling the class out."""
    theirs, ours = forest.ARFClassifier(n_models=1, max_features=None, seed=0), BatchForest(
        n_models=1, max_features=None, seed=0, lambda_value=1e-9)
    river_arf_poisson = river_arf.poisson
    try:
        river_arf.poisson = lambda rate, rng: 1
        ours._rng = _SameDraws(ours._rng, np.ones(100, dtype=int))
        X = np.array([[0.0, 0.0], [1e-160, 1.0], [5.0, 0.2], [6.0, 0.9]])
        y = np.array([0, 0, 1, 1])
        for row, label in zip(X, y):
            theirs.learn_one(dict(enumerate(row)), int(label))
            ours.learn_batch(row[None], label[None])
    finally:
        river_arf.poisson = river_arf_poisson
    probe = np.array([[3.0, 0.5]])
    expected = theirs.predict_proba_one(dict(enumerate(probe[0])))
    got = ours.proba_batch(probe, 2)[0]
    np.testing.assert_allclose(got, [expected[0], expected[1]], atol=1e-9)
    assert got[0] > 0.0  # not ruled out


def test_it_learns_in_batches_and_relearns_a_flipped_concept():
    X, y = _stream(6000, seed=2)
    y = np.where(np.arange(6000) < 3000, y, 2 - y)  # the concept turns over half-way
    model = BatchForest(seed=0)
    right = []
    for start in range(0, 6000, 64):
        rows, labels = X[start:start + 64], y[start:start + 64]
        right += (model.proba_batch(rows, 3).argmax(1) == labels).tolist()
        model.learn_batch(rows, labels)
    assert np.mean(right[2000:3000]) > 0.9
    assert model.n_drifts.sum() >= model.n_models // 2  # the trees saw their error jump
    assert np.mean(right[5000:]) > 0.9


def test_classes_may_appear_at_any_time():
    X, y = _stream(900)
    model = BatchForest(seed=0)
    seen = y < 2
    model.learn_batch(X[:300][seen[:300]], y[:300][seen[:300]])
    assert model.proba_batch(X[:5], 3)[:, 2].max() == 0.0  # no weight for a class never learned
    for start in range(300, 900, 50):
        model.learn_batch(X[start:start + 50], y[start:start + 50])
    proba = model.proba_batch(X[:200], 3)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    assert (proba.argmax(1) == y[:200]).mean() > 0.8


def test_state_round_trips_through_the_restricted_loader_and_learns_on_alike():
    X, y = _stream(3000)
    model = BatchForest(seed=0)
    for start in range(0, 2000, 64):
        model.learn_batch(X[start:start + 64], y[start:start + 64])
    restored = serialize.loads(serialize.dumps(model))
    np.testing.assert_array_equal(restored.proba_batch(X[2000:], 3), model.proba_batch(X[2000:], 3))
    for start in range(2000, 3000, 64):
        for m in (model, restored):
            m.learn_batch(X[start:start + 64], y[start:start + 64])
    np.testing.assert_array_equal(restored.proba_batch(X[:500], 3), model.proba_batch(X[:500], 3))


def test_a_forest_pickled_before_its_leaves_pointed_to_themselves_answers_and_learns_alike():
    """Forests of before 2026-12-06 held 0 as a leaf's children (the walk now steps from a leaf
    to itself) and their estimators' Gaussians were not kept apart: both are rebuilt on load."""
    X, y = _stream(3000, seed=4)
    model = BatchForest(seed=0)
    for start in range(0, 2000, 64):
        model.learn_batch(X[start:start + 64], y[start:start + 64])
    state = model.__getstate__()
    assert not any(name in state for name in BatchForest._GAUSS)  # kept from n and m2, not pickled
    old = {**state, "children": np.where(state["feature"][:, None] >= 0, state["children"], 0)}
    restored = BatchForest.__new__(BatchForest)
    restored.__setstate__(copy.deepcopy(old))
    np.testing.assert_array_equal(restored.proba_batch(X[2000:], 3), model.proba_batch(X[2000:], 3))
    for start in range(2000, 3000, 64):
        for m in (model, restored):
            m.learn_batch(X[start:start + 64], y[start:start + 64])
    np.testing.assert_array_equal(restored.proba_batch(X[:500], 3), model.proba_batch(X[:500], 3))


def test_rows_given_one_by_one_to_wait_are_learned_in_the_chunks_of_one_batch():
    X, y = _stream(1000, seed=2)
    at_once, one_by_one = BatchForest(seed=0), BatchForest(seed=0)
    at_once.learn_batch(X, y)
    for i in range(len(X)):
        one_by_one.learn_batch(X[i:i + 1], y[i:i + 1], wait=True)
        assert one_by_one.waiting == (i + 1) % one_by_one.chunk
    restored = serialize.loads(serialize.dumps(one_by_one))  # the rows that wait are state too
    for m in (one_by_one, restored):
        m.flush()
        assert m.waiting == 0
        np.testing.assert_array_equal(m.proba_batch(X[:300], 3), at_once.proba_batch(X[:300], 3))
    waiting = BatchForest()
    waiting.learn_batch(np.zeros((1, 4)), np.array([0]), wait=True)
    with pytest.raises(ValueError, match="rows of 4 features expected"):
        waiting.learn_batch(np.zeros((1, 3)), np.array([0]), wait=True)


@pytest.mark.parametrize("settings,width,per_leaf", [
    ({}, 20, 12), ({}, 1024, 32),  # 60 % of them, at most 32
    ({"max_features": "sqrt", "feature_cap": None}, 1024, 32), ({"max_features": None, "feature_cap": None}, 50, 50),
    ({"max_features": 5}, 20, 5), ({"max_features": 0.5, "feature_cap": 4}, 20, 4),
])
def test_each_leaf_draws_its_share_of_the_features_up_to_the_cap(settings, width, per_leaf):
    model = BatchForest(seed=0, **settings)
    model.learn_batch(np.zeros((2, width)), np.array([0, 1]))
    assert model.n_leaf_features == per_leaf and model.leaf_features.shape[1] == per_leaf
    with pytest.raises(ValueError, match="feature_cap"):
        BatchForest(feature_cap=0)


def test_compaction_keeps_the_trees_in_use_and_their_answers():
    X, y = _stream(4000, seed=3)
    model = BatchForest(seed=0, grace_period=10)
    for start in range(0, 4000, 64):
        labels = y[start:start + 64] if (start // 1000) % 2 == 0 else 2 - y[start:start + 64]
        model.learn_batch(X[start:start + 64], labels)
    live = sum(len(model._subtree(r)) for r in model._roots.tolist() if r >= 0)
    before = model.proba_batch(X[:300], 3)
    model._compact()
    assert model.size == live
    np.testing.assert_array_equal(model.proba_batch(X[:300], 3), before)


@pytest.mark.parametrize("rows", [np.zeros((3, 5)), np.zeros(4)])
def test_rows_of_another_width_are_refused(rows):
    model = BatchForest(seed=0)
    model.learn_batch(np.zeros((2, 4)), np.array([0, 1]))
    with pytest.raises(ValueError, match="4 features"):
        model.proba_batch(rows, 2)


def test_past_its_size_the_forest_splits_no_more_and_goes_on_learning():
    X, y = _stream(2000)
    capped, free = BatchForest(seed=0, max_size=0.0), BatchForest(seed=0)
    for start in range(0, 2000, 64):
        for model in (capped, free):
            model.learn_batch(X[start:start + 64], y[start:start + 64])
    assert (free.feature[: free.size] >= 0).any()
    assert (capped.feature[: capped.size] < 0).all()  # leaves only: no split
    assert capped.nbytes > 0 and (capped.proba_batch(X[:500], 3).argmax(1) == y[:500]).mean() > 0.6


def test_densities_whose_product_underflows_answer_without_a_warning():
    """kdd's byte counts put a row so far from a leaf's narrow Gaussians that the sum of their
    log densities, each finite, overflows: that class's vote is -inf (river's float sum gives the
    same), quietly, not a RuntimeWarning per batch."""
    rng = np.random.default_rng(0)
    X = rng.normal(scale=1e-3, size=(200, 30))
    model = BatchForest(n_models=2, max_features=None, seed=0)
    model.learn_batch(X, (X[:, 0] > 0).astype(int))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proba = model.proba_batch(np.full((1, 30), 5e150), 2)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(1), 1.0)


def _answers_as_arrays(model, leaf, X, rows):
    """A leaf's answers as the whole-array formulas give them (the forest's before its loops
    were compiled): the reference of the compiled kernel."""
    counts = model.counts[leaf]
    total = counts.sum(axis=1, keepdims=True)
    seen = counts > 0
    mc = counts / np.where(total > 0, total, 1.0)
    x = X[rows[:, None], model.leaf_features[leaf]]
    with np.errstate(over="ignore"):
        log_pdf = (x[:, None, :] - model.mean[leaf]) ** 2 / model.neg2var[leaf] - model.halflog[leaf]
    valid = model.gaussian[leaf] & np.isfinite(log_pdf)
    with np.errstate(over="ignore"):
        votes = np.log(np.where(seen, mc, 1.0)) + np.where(valid, log_pdf - 0.5 * np.log(2 * np.pi), 0.0).sum(axis=2)
    votes = np.where(seen, votes, -np.inf)
    top = votes.max(axis=1, keepdims=True)
    nb = np.exp(votes - np.where(np.isfinite(top), top, 0.0))
    nb_total = nb.sum(axis=1, keepdims=True)
    return mc, nb / np.where(nb_total > 0, nb_total, 1.0)


def test_the_compiled_answers_are_the_whole_array_formulas():
    X, y = _stream(3000)
    model = BatchForest(seed=0)
    for start in range(0, 3000, 64):
        model.learn_batch(X[start:start + 64], y[start:start + 64])
    queries = np.vstack([X[:300], np.full((1, X.shape[1]), 1e200), np.zeros((1, X.shape[1]))])
    T = model.n_models
    leaf = model._route(model._roots[:T], queries)
    # Every node of the arrays too: inner nodes hold weight, some classes unseen, a new leaf none.
    model._new_leaves(1)
    nodes = np.arange(model.size)
    for where, rows in ((leaf.ravel(), np.tile(np.arange(len(queries)), T)), (nodes, nodes % len(queries))):
        mc, nb = model._answers(where, queries, rows)
        ref_mc, ref_nb = _answers_as_arrays(model, where, queries, rows)
        np.testing.assert_allclose(mc, ref_mc, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(nb, ref_nb, rtol=1e-9, atol=1e-12)
    assert model.counts[model.size - 1].sum() == 0 and (model.counts[: model.size] == 0).any()


def test_routing_follows_each_split_to_a_leaf():
    X, y = _stream(2000)
    model = BatchForest(seed=0)
    for start in range(0, 2000, 64):
        model.learn_batch(X[start:start + 64], y[start:start + 64])
    T = model.n_models
    leaf = model._route(model._roots[:T], X[:50])
    for t in range(T):
        for r in range(50):
            node = model._roots[t]
            while model.feature[node] >= 0:
                node = model.children[node, int(X[r, model.feature[node]] > model.threshold[node])]
            assert leaf[t, r] == node and model.feature[node] < 0
    model.children[model._roots[0]] = model._roots[0]  # a split whose children are itself: a cycle
    model.feature[model._roots[0]] = max(model.feature[model._roots[0]], 0)
    with pytest.raises(RuntimeError, match="cycle"):
        model._route(model._roots[:1], X[:1])
    with pytest.raises(RuntimeError, match="cycle"):
        model.learn_batch(X[:5], y[:5])


def _split_scores_as_arrays(model, leaves):
    """The split candidates' scores as the whole-array formulas give them (the forest's before
    its loops were compiled): each leaf's best and second merit, the best's feature position and
    threshold, and the class weights either side."""
    from scipy.special import ndtr

    def bits(counts, axis):
        total = counts.sum(axis=axis, keepdims=True)
        p = counts / np.where(total > 0, total, 1.0)
        return -(p * np.log2(np.where(p > 0, p, 1.0))).sum(axis=axis)

    counts = model.counts[leaves]
    n, mean, lo, hi = model.n[leaves], model.mean[leaves], model.lo[leaves], model.hi[leaves]
    seen = n > 0
    f_lo, f_hi = np.where(seen, lo, np.inf).min(axis=1), np.where(seen, hi, -np.inf).max(axis=1)
    steps = np.arange(1, model.n_splits + 1) / (model.n_splits + 1.0)
    with np.errstate(invalid="ignore"):
        cand = f_lo[..., None] + (f_hi - f_lo)[..., None] * steps
        usable = (cand > f_lo[..., None]) & (cand < f_hi[..., None])
    cand = np.where(usable, cand, 0.0)
    sigma = np.sqrt(model.m2[leaves] / np.where(n > 1.0, n - 1.0, np.inf))[..., None]
    s = cand[:, None]
    with np.errstate(over="ignore"):
        z = (s - mean[..., None]) / np.where(sigma > 0, sigma, 1.0)
    inside = np.where(sigma > 0, ndtr(z), 0.0) * n[..., None]
    left = np.where(s < lo[..., None], 0.0, np.where(s >= hi[..., None], n[..., None], inside))
    left = np.where(seen[..., None], left, 0.0)
    right = np.where(seen[..., None], n[..., None], 0.0) - left
    wl, wr = left.sum(axis=1), right.sum(axis=1)
    share = np.where(wl + wr > 0, wl + wr, 1.0)
    ok = usable & (wl / share > model.min_branch_fraction) & (wr / share > model.min_branch_fraction)
    post = (wl * bits(left, 1) + wr * bits(right, 1)) / share
    merit = np.where(ok, bits(counts, 1)[:, None, None] - post, -np.inf)
    best_s = merit.argmax(axis=2)
    best = np.take_along_axis(merit, best_s[..., None], axis=2)[..., 0]
    order = np.argsort(best, axis=1, kind="stable")
    rows = np.arange(len(leaves))
    fi, si = order[:, -1], best_s[rows, order[:, -1]]
    second = best[rows, order[:, -2]] if best.shape[1] > 1 else np.full(len(leaves), -np.inf)
    return best[rows, fi], second, fi, cand[rows, fi, si], left[rows, :, fi, si], right[rows, :, fi, si]


@pytest.mark.parametrize("max_features", [0.6, 1])
def test_the_compiled_split_scores_are_the_whole_array_formulas(max_features):
    from streamssl.learner import forest_kernels

    X, y = _stream(3000)
    X[:, 3] = np.round(X[:, 3] * 3)  # a feature of few values: classes without spread in a leaf
    model = BatchForest(seed=0, max_features=max_features, grace_period=10_000)  # no split: every leaf full
    for start in range(0, 1500, 64):
        model.learn_batch(X[start:start + 64], y[start:start + 64])
    model._new_leaves(1)  # and one with no estimators
    leaves = np.arange(model.size)
    got = forest_kernels.split_scores(leaves, model.counts, model.n, model.mean, model.m2, model.lo, model.hi,
                                      model.n_splits, model.min_branch_fraction)
    want = _split_scores_as_arrays(model, leaves)
    finite = np.isfinite(want[0])
    assert finite.sum() >= model.n_models and not finite.all()
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


def _learn_as_arrays(model, X, y, leaf, rows, w, mc, nb):
    """A chunk's (leaf, row) pairs learned as the whole-array formulas did (the forest's before
    its learning was compiled): the reference of the compiled kernel. Returns the leaves due."""
    yy = y[rows]
    mc_ok = (model.counts[leaf].sum(axis=1) == 0) | (mc.argmax(axis=1) == yy)
    nb_ok = (nb.sum(axis=1) > 0) & (nb.argmax(axis=1) == yy)
    np.add.at(model.mc_right, leaf, np.where(mc_ok, w, 0.0))
    np.add.at(model.nb_right, leaf, np.where(nb_ok, w, 0.0))
    np.add.at(model.counts, (leaf, yy), w)
    x = X[rows[:, None], model.leaf_features[leaf]]
    key = leaf * model.n_classes + yy
    groups, first, g = np.unique(key, return_index=True, return_inverse=True)
    gl, gc = groups // model.n_classes, groups % model.n_classes
    W = np.bincount(g, weights=w)[:, None]
    ref = x[first]
    S = np.zeros((len(groups), model.n_leaf_features))
    np.add.at(S, g, w[:, None] * (x - ref[g]))
    gmean = ref + S / W
    dev = x - gmean[g]
    gm2 = np.zeros_like(S)
    np.add.at(gm2, g, w[:, None] * dev * dev)
    n0, mean0 = model.n[gl, gc], model.mean[gl, gc]
    n1 = n0 + W
    delta = gmean - mean0
    model.mean[gl, gc] = mean0 + delta * (W / n1)
    model.m2[gl, gc] += gm2 + delta * delta * (n0 * W / n1)
    model.n[gl, gc] = n1
    var = model.m2[gl, gc] / np.where(n1 > 1.0, n1 - 1.0, np.inf)
    safe = np.where(var > 0.0, var, 1.0)
    model.gaussian[gl, gc], model.neg2var[gl, gc], model.halflog[gl, gc] = var > 0.0, -2.0 * safe, 0.5 * np.log(safe)
    np.minimum.at(model.lo, (leaf, yy), x)
    np.maximum.at(model.hi, (leaf, yy), x)
    touched = np.unique(leaf)
    total = model.counts[touched].sum(axis=1)
    due = total - model.attempted[touched] >= model.grace_period
    model.attempted[touched[due]] = total[due]
    return touched[due]


@pytest.mark.parametrize("max_features", [0.6, 1])
def test_the_compiled_learning_is_the_whole_array_formulas(max_features):
    """Pairs of one leaf and class (groups), equal values (a deviation of exactly 0), weights
    of 0 skipped by the caller: every node array as the reference leaves it (the log to the
    last bits: libm's against numpy's)."""
    from streamssl.learner import forest_kernels

    X, y = _stream(3000)
    X[:, 0] = np.round(X[:, 0])
    model = BatchForest(seed=0, max_features=max_features)
    for start in range(0, 2000, 64):
        model.learn_batch(X[start:start + 64], y[start:start + 64])
    chunk, labels = X[2000:2040], y[2000:2040]
    T = model.n_models
    leaf = model._route(model._roots[:T], chunk).ravel()
    rows = np.tile(np.arange(len(chunk)), T)
    _, mc, nb = model._tree_proba(leaf, chunk, rows)
    w = np.random.default_rng(0).poisson(6.0, len(leaf)).astype(np.float64)
    take = w > 0
    args = (leaf[take], rows[take], w[take], mc[take], nb[take])
    ref = copy.deepcopy(model)
    due_ref = _learn_as_arrays(ref, chunk, labels, *args)
    due = forest_kernels.learn(*args, labels, chunk, model.leaf_features, model.counts, model.mc_right,
                               model.nb_right, model.n, model.mean, model.m2, model.lo, model.hi, model.gaussian,
                               model.neg2var, model.halflog, model.attempted, float(model.grace_period))
    assert len(np.unique(args[0] * 10 + labels[args[1]])) < len(args[0])  # some groups of several rows
    np.testing.assert_array_equal(due, due_ref)
    assert len(due) > 0
    size = model.size  # the copy's arrays are cut to the nodes in use
    for name in BatchForest._NODE + BatchForest._GAUSS:
        got, want = getattr(model, name)[:size], getattr(ref, name)[:size]
        if name == "halflog":
            np.testing.assert_allclose(got, want, rtol=1e-15, atol=1e-300)
        else:
            np.testing.assert_array_equal(got, want, err_msg=name)


def test_the_compiled_forest_answer_is_the_whole_array_formula():
    """proba_batch against the trees' answers weighted and normalised by numpy (the forest's
    before its answer was one compiled loop), on a forest with more classes than asked for and
    fewer (a class not met yet answers 0)."""
    X, y = _stream(3000)
    model = BatchForest(seed=0)
    for start in range(0, 2500, 64):
        model.learn_batch(X[start:start + 64], y[start:start + 64])
    T, rows = model.n_models, X[2500:2800]
    leaf = model._route(model._roots[:T], rows).ravel()
    proba = model._tree_proba(leaf, rows, np.tile(np.arange(len(rows)), T))[0].reshape(T, len(rows), -1)
    accuracy = model._right / np.where(model._seen > 0, model._seen, 1.0)
    weight = np.where(accuracy > 0, accuracy, 1.0)
    for n_classes in (2, 3, 5):
        want = np.zeros((len(rows), n_classes))
        width = min(n_classes, proba.shape[2])
        want[:, :width] = np.einsum("t,tnc->nc", weight, proba[:, :, :width])
        total = want.sum(axis=1, keepdims=True)
        want = np.where(total > 0, want / np.where(total > 0, total, 1.0), 1.0 / n_classes)
        np.testing.assert_allclose(model.proba_batch(rows, n_classes), want, rtol=1e-12, atol=1e-15)
    assert BatchForest(seed=0).proba_batch(rows[:2], 4).tolist() == [[0.25] * 4] * 2
    assert model.proba_batch(rows[:0], 3).shape == (0, 3)


@pytest.mark.parametrize("labels", [np.array([0, -1]), np.array([0, 1, 1]), np.array([[0], [1]])])
def test_class_indices_that_are_not_one_per_row_from_0_are_refused(labels):
    """The compiled loops index the class weights without a bounds check: a negative class, or
    classes not one per row, are refused before they reach them."""
    model = BatchForest(seed=0)
    with pytest.raises(ValueError, match="one class index"):
        model.learn_batch(np.zeros((2, 3)), labels)


def test_a_chunk_learned_in_one_loop_is_its_steps_one_by_one():
    """forest_kernels.learn_chunk against its steps as whole-array calls (the forest's before
    they were one loop): each tree routes the chunk, answers it, and learns the rows drawn
    (``k`` > 0) with its background tree, from the answers before; the same outcomes, leaves
    due and node arrays, to the bit, with background trees growing."""
    from streamssl.learner import forest_kernels

    X, y = _stream(4000)
    y[2000:] = 2 - y[2000:]  # the concept flips: the trees' warnings start background trees
    model = BatchForest(seed=0)
    for start in range(0, 2600, 64):
        model.learn_batch(X[start:start + 64], y[start:start + 64])
    T = model.n_models
    assert (model._roots[T:] >= 0).any() and (model._roots[T:] < 0).any()
    chunk, labels = X[2600:2640], y[2600:2640]
    k = np.random.default_rng(1).poisson(6.0, (T, len(chunk))).astype(np.float64)
    ref = copy.deepcopy(model)
    rows = np.tile(np.arange(len(chunk)), T)
    leaf = ref._route(ref._roots[:T], chunk).ravel()
    proba, mc, nb = ref._tree_proba(leaf, chunk, rows)
    wrong_ref = (proba.argmax(axis=1) != np.tile(labels, T)).reshape(T, -1)
    take = (k > 0).ravel()
    parts = [(leaf[take], rows[take], k.ravel()[take], mc[take], nb[take])]
    for g in np.flatnonzero(ref._roots[T:] >= 0):
        bleaf, btake = ref._route(ref._roots[T + g: T + g + 1], chunk).ravel(), k[g] > 0
        _, bmc, bnb = ref._tree_proba(bleaf[btake], chunk, np.arange(len(chunk))[btake])
        parts.append((bleaf[btake], np.arange(len(chunk))[btake], k[g][btake], bmc, bnb))
    due_ref = forest_kernels.learn(*(np.concatenate(a) for a in zip(*parts)), labels, chunk, ref.leaf_features,
                                   ref.counts, ref.mc_right, ref.nb_right, ref.n, ref.mean, ref.m2, ref.lo, ref.hi,
                                   ref.gaussian, ref.neg2var, ref.halflog, ref.attempted, float(ref.grace_period))
    wrong, due, ok = forest_kernels.learn_chunk(
        model._roots, T, chunk, labels, k, model.feature, model.threshold, model.children, model.leaf_features,
        model.counts, model.mc_right, model.nb_right, model.n, model.mean, model.m2, model.lo, model.hi,
        model.gaussian, model.neg2var, model.halflog, model.attempted, float(model.grace_period))
    assert ok and wrong_ref.any() and len(due_ref) > 0
    np.testing.assert_array_equal(wrong, wrong_ref)
    np.testing.assert_array_equal(due, due_ref)
    for name in BatchForest._NODE + BatchForest._GAUSS:
        np.testing.assert_array_equal(getattr(model, name)[: model.size], getattr(ref, name)[: model.size], name)


def _attempt_as_arrays(model, leaves):
    """A split attempt's decisions as whole-array calls (the forest's before they were one
    compiled loop): pure leaves and leaves whose candidates are all invalid start afresh; the
    leaves that split, with their best's feature position, threshold and children's weights."""
    import math

    from streamssl.learner import forest_kernels

    counts = model.counts[leaves]
    classes, total = (counts > 0).sum(axis=1), counts.sum(axis=1)
    keep = classes >= 2
    leaves, counts, classes, total = leaves[keep], counts[keep], classes[keep], total[keep]
    pure = counts.max(axis=1) / total > model.max_share_to_split
    model._restart(leaves[pure])
    leaves, classes, total = leaves[~pure], classes[~pure], total[~pure]
    first, second, best, threshold, left, right = forest_kernels.split_scores(
        leaves, model.counts, model.n, model.mean, model.m2, model.lo, model.hi, model.n_splits,
        model.min_branch_fraction)
    bound = np.sqrt(np.log2(np.maximum(classes, 2)) ** 2 * math.log(1.0 / model.delta) / (2.0 * total))
    with np.errstate(invalid="ignore"):
        gap = np.where(np.isfinite(first), np.where(np.isfinite(second), first - second, np.inf), -np.inf)
    due = (gap > bound) | (bound < model.tau)
    model._restart(leaves[due & ~np.isfinite(first)])
    split = due & np.isfinite(first)
    return leaves[split], best[split], threshold[split], left[split], right[split]


def test_a_split_attempt_decided_in_one_loop_is_the_array_decisions():
    """forest_kernels.attempt_splits against the whole-array decisions, on every leaf of a
    forest that never tried a split (full leaves: some pure, some of one feature value, some
    due): the same leaves split the same way, and the same estimators start afresh."""
    from streamssl.learner import forest_kernels

    X, y = _stream(3000)
    X[:, 3] = np.round(X[:, 3] * 3)
    y[::5] = 0  # a class in most leaves
    model = BatchForest(seed=0, grace_period=10_000)
    for start in range(0, 1200, 64):
        model.learn_batch(X[start:start + 64], y[start:start + 64])
    pure = model._roots[0]  # a leaf of one class now (but a trace), its estimators full: to start afresh
    model.counts[pure, 1:] = 0.0
    model.counts[pure, 1] = model.counts[pure, 0] * 1e-3
    assert model.n[pure].sum() > 0
    leaves = np.arange(model.size)
    ref = copy.deepcopy(model)
    want = _attempt_as_arrays(ref, leaves)
    got = forest_kernels.attempt_splits(leaves, model.counts, model.n, model.mean, model.m2, model.lo, model.hi,
                                        model.gaussian, model.neg2var, model.halflog, model.n_splits,
                                        model.min_branch_fraction, model.max_share_to_split,
                                        np.log(1.0 / model.delta), model.tau)
    assert 0 < len(want[0]) < len(leaves) and model.n[pure].sum() == 0
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    for name in BatchForest._NODE + BatchForest._GAUSS:
        np.testing.assert_array_equal(getattr(model, name)[: model.size], getattr(ref, name)[: model.size], name)
