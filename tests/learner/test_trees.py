"""The batched forest prediction gives river's own numbers, for every leaf kind and many classes."""

import numpy as np
import pytest
from river import forest
from river.tree.nodes.branch import NumericBinaryBranch

from streamssl.learner import trees
from streamssl.learner.trees import forest_proba


def river_proba(arf, X, n_classes):
    out = np.zeros((len(X), n_classes))
    for r, row in enumerate(X.tolist()):
        for c, p in arf.predict_proba_one(dict(enumerate(row))).items():
            out[r, c] = p
    total = out.sum(axis=1, keepdims=True)
    return np.where(total > 0, out / np.where(total > 0, total, 1), 1 / n_classes)


def learned_forest(leaf_prediction, n_classes, n=1500, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    y = (np.digitize(X[:, 0] + 0.5 * X[:, 1], np.linspace(-1.5, 1.5, n_classes - 1))).astype(int)
    arf = forest.ARFClassifier(seed=seed, leaf_prediction=leaf_prediction, grace_period=30)
    for row, label in zip(X.tolist(), y.tolist()):
        arf.learn_one(dict(enumerate(row)), label)
    return arf, rng.normal(size=(400, 5)) * 1.5


@pytest.mark.parametrize("leaf_prediction", ["mc", "nb", "nba"])
@pytest.mark.parametrize("n_classes", [2, 5])
def test_the_batched_forest_matches_river_row_by_row(leaf_prediction, n_classes, monkeypatch):
    arf, probe = learned_forest(leaf_prediction, n_classes)
    assert any(tree._root is not None and tree._root.n_leaves > 1 for tree in arf)  # trees that split
    with monkeypatch.context() as m:
        m.setattr(trees, "_forest_proba_per_row", lambda *a: pytest.fail("fell back to river row by row"))
        np.testing.assert_allclose(forest_proba(arf, probe, n_classes), river_proba(arf, probe, n_classes),
                                   atol=1e-9)
    few = probe[:3]  # below FEW_ROWS: river's own walk, normalised the same way
    np.testing.assert_allclose(forest_proba(arf, few, n_classes), river_proba(arf, few, n_classes), atol=1e-12)


def test_a_forest_that_knows_nothing_is_uniform_and_an_unknown_part_falls_back_to_river(monkeypatch):
    arf = forest.ARFClassifier(seed=0)
    np.testing.assert_allclose(forest_proba(arf, np.zeros((3, 2)), 4), 0.25)
    arf, probe = learned_forest("nba", 3)

    def unsupported(*args):
        raise trees.Unsupported("a branch kind this module does not know")

    monkeypatch.setattr(trees, "tree_proba", unsupported)
    np.testing.assert_allclose(forest_proba(arf, probe, 3), river_proba(arf, probe, 3), atol=1e-12)


def test_a_log_density_that_underflows_is_left_out_as_river_does():
    # A feature almost constant within the classes (variance ~1e-300) and a probe far from it:
    # its log-density is -inf, which river skips rather than letting it decide the vote.
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1500, 3))
    X[:, 2] = rng.normal(size=1500) * 1e-150
    y = (X[:, 0] > 0).astype(int)
    arf = forest.ARFClassifier(seed=1, leaf_prediction="nb", grace_period=30)
    for row, label in zip(X.tolist(), y.tolist()):
        arf.learn_one(dict(enumerate(row)), label)
    probe = rng.normal(size=(200, 3))
    probe[::2, 2] = 1e5
    fast = forest_proba(arf, probe, 2)
    assert np.isfinite(fast).all()
    np.testing.assert_allclose(fast, river_proba(arf, probe, 2), atol=1e-9)


@pytest.mark.parametrize("leaf_prediction", ["mc", "nba"])
def test_the_batched_forest_follows_river_as_it_learns_splits_and_drifts(leaf_prediction, monkeypatch):
    """Predicted a batch at a time while it learns, through splits, leaves that stop growing and
    trees that drift detectors replace (the concept flips half-way), it answers as river does
    after every batch: nothing cached outlives a change of the tree."""
    monkeypatch.setattr(trees, "_forest_proba_per_row", lambda *a: pytest.fail("fell back to river row by row"))
    rng = np.random.default_rng(3)
    arf = forest.ARFClassifier(seed=3, leaf_prediction=leaf_prediction, grace_period=20, max_depth=4)
    resets = 0
    for step in range(60):
        X = rng.normal(size=(40, 4))
        y = ((X[:, 0] > 0) ^ (step >= 30)).astype(int) + (X[:, 1] > 1).astype(int)
        np.testing.assert_allclose(forest_proba(arf, X, 3), river_proba(arf, X, 3), atol=1e-9)
        grown = [tree._root for tree in arf]
        for row, label in zip(X.tolist(), y.tolist()):
            arf.learn_one(dict(enumerate(row)), label)
        resets += sum(tree._root is not root for tree, root in zip(arf, grown) if isinstance(root, NumericBinaryBranch))
    assert resets > 0  # some grown tree was replaced on the way (a drift)
