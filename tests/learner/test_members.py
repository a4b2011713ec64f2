"""Members behind one interface, and river classifiers plugged into the learner as members."""

from __future__ import annotations

import numpy as np
import pytest
from river import linear_model, multiclass

from streamssl.learner import StreamLearner
from streamssl.learner.forest import BatchForest
from streamssl.learner.linear import OnlineLinear
from streamssl.state import checkpoint


def _stream(n: int = 600, seed: int = 0) -> tuple[np.ndarray, list]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    y = [int(a + 0.5 * b > 0) if i % 5 == 0 else None for i, (a, b, _) in enumerate(X)]
    return X, y


def test_a_plugged_river_classifier_is_scored_before_it_learns_like_the_same_model_alone():
    """Its prequential accuracy in ``experts`` is that of a twin learning the same labels alone,
    each micro-batch predicted before it is learned; the prototype passed in stays unlearned."""
    X, y = _stream()
    prototype = linear_model.LogisticRegression()
    model = StreamLearner(temporal=False, trees=False, linear=False, members={"lr": prototype}, seed=0)
    twin, scored, correct = linear_model.LogisticRegression(), 0, 0
    for i in range(0, len(X), 50):
        rows, labels = X[i:i + 50], y[i:i + 50]
        model.learn_many(rows, labels)
        labelled = [(r, v) for r, v in zip(rows, labels) if v is not None]
        for r, v in labelled:
            proba = twin.predict_proba_one(dict(enumerate(r.tolist())))
            guess = max(proba, key=proba.get) if proba else None
            scored, correct = scored + 1, correct + (guess is not None and int(guess) == v)
        for r, v in labelled:
            twin.learn_one(dict(enumerate(r.tolist())), v)
    experts = model.experts
    assert set(experts) == {"mlp", "memory", "lr"}
    assert experts["lr"]["accuracy"] == pytest.approx(correct / scored)
    assert experts["lr"]["accuracy"] > 0.8  # it did learn the linear concept
    assert sum(e["weight"] for e in experts.values()) == pytest.approx(1.0)
    assert dict(prototype.weights) == {}


def test_plugged_members_go_through_the_restricted_checkpoint_loader(tmp_path):
    X, y = _stream(400, seed=1)
    model = StreamLearner(members={"lr": multiclass.OneVsRestClassifier(linear_model.LogisticRegression())}, seed=0)
    model.learn_many(X[:300], y[:300])
    path = tmp_path / "learner.ckpt"
    checkpoint.save_learner(model, path)
    restored = checkpoint.load_learner(path, device="cpu")
    np.testing.assert_array_equal(restored.predict_proba_many(X[300:]), model.predict_proba_many(X[300:]))
    model.learn_many(X[300:], y[300:])
    restored.learn_many(X[300:], y[300:])
    assert restored.experts == model.experts


def test_a_member_may_not_take_a_built_in_heads_name():
    with pytest.raises(ValueError, match="tree"):
        StreamLearner(members={"tree": linear_model.LogisticRegression()})


def test_checkpoints_from_before_members_load_their_heads():
    """Before streamssl.learner.members the heads' states had keys of their own."""
    X, y = _stream(300, seed=2)
    model = StreamLearner(seed=0, linear=False, raw_tree=False)  # as they were then
    model.learn_many(X[:200], y[:200])
    state = model.state_dict()
    members = state.pop("members")
    state.update(memory=members["memory"], raw_head=members["raw"], forest=members["tree"])
    restored = StreamLearner.from_state_dict(state)
    np.testing.assert_array_equal(restored.predict_proba_many(X[200:]), model.predict_proba_many(X[200:]))


def test_the_linear_head_is_a_member_scored_and_checkpointed_like_the_others(tmp_path):
    X, y = _stream(700, seed=3)
    model = StreamLearner(seed=0)
    for i in range(0, 600, 50):
        model.learn_many(X[i:i + 50], y[i:i + 50])
    assert model.experts["linear"]["accuracy"] > 0.8  # the concept is linear
    path = tmp_path / "learner.ckpt"
    checkpoint.save_learner(model, path)
    restored = checkpoint.load_learner(path, device="cpu")
    np.testing.assert_array_equal(restored.heads["linear"].model.W, model.heads["linear"].model.W)
    model.learn_many(X[600:], y[600:])
    restored.learn_many(X[600:], y[600:])
    assert restored.experts == model.experts
    assert "linear" not in StreamLearner(linear=False, seed=0).mix.members


def test_checkpoints_from_before_the_linear_recipe_go_on_with_the_softmax_they_learned():
    """Before 2026-12-05 the linear head was softmax regression on the learner's standardisation,
    its state the weights alone, its setting ``linear=True``."""
    X, y = _stream(300, seed=6)
    model = StreamLearner(seed=0, linear=OnlineLinear(link="softmax", scale=False))
    model.learn_many(X[:200], y[:200])
    state = model.state_dict()
    state["params"]["linear"] = True
    state["members"]["linear"] = {k: state["members"]["linear"][k] for k in ("W", "b")}
    restored = StreamLearner.from_state_dict(state)
    assert (restored.heads["linear"].model.link, restored.heads["linear"].model.scale) == ("softmax", False)
    np.testing.assert_array_equal(restored.predict_proba_many(X[200:]), model.predict_proba_many(X[200:]))


@pytest.mark.parametrize("switch, head, seed", [("linear", "linear", 4), ("raw_tree", "raw-tree", 5)])
def test_checkpoints_from_before_a_head_go_on_without_it(switch, head, seed):
    X, y = _stream(300, seed=seed)
    model = StreamLearner(seed=0, **{switch: False})
    model.learn_many(X[:200], y[:200])
    state = model.state_dict()
    del state["params"][switch]  # as saved before the switch existed
    restored = StreamLearner.from_state_dict(state)
    assert head not in restored.heads
    np.testing.assert_array_equal(restored.predict_proba_many(X[200:]), model.predict_proba_many(X[200:]))


def test_the_raw_feature_forest_sees_the_events_own_features_alone():
    """A threshold on one of an event's own features among ten that are noise: the forest on the
    own features finds it from fewer labels than the forest among the context's four times as
    many columns, where each leaf's draw of 60 % of them holds 30 columns of the context."""
    margins = []
    for seed in range(5):
        rng = np.random.default_rng(seed)
        X = rng.uniform(0, 1, size=(3000, 10))
        y = [int(x[0] > 0.5) if i % 10 == 0 else None for i, x in enumerate(X)]
        model = StreamLearner(seed=seed)
        for i in range(0, len(X), 64):
            model.learn_many(X[i:i + 64], y[i:i + 64])
        raw, context = model.heads["raw-tree"].model, model.heads["tree"].model
        assert (raw.n_leaf_features, context.n_leaf_features) == (6, 24)  # 60 % of 10 own columns; of 40 with the context
        assert _split_features(raw) and _split_features(raw) <= set(range(10))  # the own columns only
        experts = model.experts
        margins.append(experts["raw-tree"]["accuracy"] - experts["tree"]["accuracy"])
    assert np.mean(margins) > 0.01, margins  # seeds 0-4: +2.6, +3.0, +2.3, +0.7, -0.3 points
    wide = StreamLearner(seed=0)
    wide.learn_many(rng.uniform(0, 1, size=(64, 100)), [0, 1] * 32)
    assert wide.heads["raw-tree"].model.n_leaf_features == 32  # 60 % of 100, capped: a leaf's work per label
    # Only with the temporal context and the trees: otherwise the forest already sees the own features.
    assert "raw-tree" not in StreamLearner(temporal=False, seed=0).mix.members
    assert "raw-tree" not in StreamLearner(trees=False, seed=0).mix.members
    assert "raw-tree" not in StreamLearner(raw_tree=False, seed=0).mix.members


def _split_features(forest) -> set[int]:
    if isinstance(forest, BatchForest):
        used = forest.feature[: forest.size]
        return set(used[used >= 0].tolist())
    out, stack = set(), [tree._root for tree in forest]
    while stack:
        node = stack.pop()
        if hasattr(node, "feature"):
            out.add(node.feature)
        stack += list(getattr(node, "children", None) or [])
    return out
