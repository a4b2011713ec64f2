"""The online linear member: logistic regression, one SGD step per label."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from river import compose, linear_model, multiclass, preprocessing

from streamssl.learner.linear import OnlineLinear


def test_the_default_is_rivers_scaled_one_vs_rest_logistic_regression():
    """Standardised by the labelled events, one binary regression per class: the same answers as
    river's pipeline, learned label by label, with classes met along the way. (The one difference:
    our z-scores are clipped to 8, so that one extreme value cannot swing the logits; river's are
    not, and after a few labels an event can stand 12 deviations out. Unclipped here.)"""
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 5)) * [1.0, 10.0, 0.1, 3.0, 1.0] + [0.0, 50.0, 0.0, -2.0, 1.0]
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 55).astype(int) * (np.arange(300) > 100)  # class 2 comes late
    river_model = compose.Pipeline(preprocessing.StandardScaler(),
                                   multiclass.OneVsRestClassifier(linear_model.LogisticRegression()))
    model, seen = OnlineLinear(), []  # classes in the order met: the learner's class indices
    model.scaler.clip = np.inf
    for x, label in zip(X, y.tolist()):
        if seen:
            theirs = river_model.predict_proba_one(dict(enumerate(x)))
            np.testing.assert_allclose(model.predict_proba(x[None])[0], [theirs[c] for c in seen], atol=1e-9)
        river_model.learn_one(dict(enumerate(x)), label)
        if label not in seen:
            seen.append(label)
            model.add_classes(len(seen))
        model.learn(x[None], np.array([seen.index(label)]))
    assert model.n_classes == 3


def _autograd_sgd(X: np.ndarray, y: np.ndarray, loss_of, lr: float = 0.05) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference: weights and biases after one autograd SGD step of ``loss_of(logits, label)``
    per row, in order, from zero."""
    W = torch.zeros(X.shape[1], 3, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    for x, label in zip(X, y):
        gW, gb = torch.autograd.grad(loss_of(torch.as_tensor(x) @ W + b, int(label)), (W, b))
        with torch.no_grad():
            W -= lr * gW
            b -= lr * gb
    return W.detach(), b.detach()


def test_softmax_on_given_rows_is_one_sgd_step_on_the_log_loss_as_autograd_computes_it():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, size=30)
    model = OnlineLinear(lr=0.05, link="softmax", scale=False)
    model.add_classes(3)
    W, b = _autograd_sgd(X, y, lambda logits, label: F.cross_entropy(logits[None], torch.tensor([label])))
    model.learn(X, y)
    np.testing.assert_allclose(model.W, W.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(model.b, b.detach().numpy(), atol=1e-12)
    expected = torch.softmax(torch.as_tensor(X) @ W + b, dim=1).detach().numpy()
    np.testing.assert_allclose(model.predict_proba(X), expected, atol=1e-12)


def test_a_class_met_late_starts_at_zero_and_the_others_keep_their_weights():
    model = OnlineLinear()
    model.add_classes(2)
    model.learn(np.array([[1.0, 0.0], [-1.0, 0.0]] * 10), np.array([1, 0] * 10))
    before = model.W.copy()
    model.add_classes(3)
    assert model.W.shape == (2, 3)
    np.testing.assert_array_equal(model.W[:, :2], before)
    assert not model.W[:, 2].any() and model.b[2] == 0


def test_one_vs_rest_steps_each_class_by_its_own_binary_log_loss():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, size=30)
    model = OnlineLinear(lr=0.05, scale=False)
    model.add_classes(3)
    W, b = _autograd_sgd(X, y, lambda logits, label: F.binary_cross_entropy_with_logits(
        logits, F.one_hot(torch.tensor(label), 3).double(), reduction="sum"))
    model.learn(X, y)
    np.testing.assert_allclose(model.W, W.detach().numpy(), atol=1e-12)
    sig = torch.sigmoid(torch.as_tensor(X) @ W + b).detach().numpy()
    np.testing.assert_allclose(model.predict_proba(X), sig / sig.sum(1, keepdims=True), atol=1e-12)


@pytest.mark.parametrize("settings", [{}, {"link": "softmax", "scale": False}])
def test_state_round_trip_gives_the_same_answers_and_learning(settings):
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(40, 3)) * 5 + 2, rng.integers(0, 2, size=40)
    model = OnlineLinear(**settings)
    model.add_classes(2)
    model.learn(X[:20], y[:20])
    twin = OnlineLinear()
    twin.load_state_dict(model.state_dict())
    model.learn(X[20:], y[20:])
    twin.learn(X[20:], y[20:])
    np.testing.assert_array_equal(twin.predict_proba(X), model.predict_proba(X))


def test_probabilities_stay_finite_for_large_inputs():
    model = OnlineLinear(lr=1.0, scale=False)
    model.add_classes(2)
    model.learn(np.array([[1e3], [-1e3]] * 5), np.array([1, 0] * 5))
    proba = model.predict_proba(np.array([[1e6], [-1e6]]))
    assert np.isfinite(proba).all()
    assert proba.argmax(1).tolist() == [1, 0]
    assert proba.sum(1) == pytest.approx([1.0, 1.0])


def test_a_state_from_before_the_settings_goes_on_as_softmax_on_the_rows_given():
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 3, size=40)
    before = OnlineLinear(link="softmax", scale=False)
    before.add_classes(3)
    before.learn(X[:20], y[:20])
    state = before.state_dict()
    old = {"W": state["W"], "b": state["b"]}  # all a state held then
    model = OnlineLinear()
    model.load_state_dict(old)
    assert (model.link, model.scale, model.scaler) == ("softmax", False, None)
    before.learn(X[20:], y[20:])
    model.learn(X[20:], y[20:])
    np.testing.assert_array_equal(model.predict_proba(X), before.predict_proba(X))


def test_an_unknown_link_and_rows_of_another_width_are_refused():
    with pytest.raises(ValueError, match="link"):
        OnlineLinear(link="probit")
    model = OnlineLinear()
    model.add_classes(2)
    model.learn(np.ones((2, 3)), np.array([0, 1]))
    with pytest.raises(ValueError, match="3 features"):
        model.predict_proba(np.ones((1, 4)))


def _learn_as_numpy(model: OnlineLinear, X: np.ndarray, y: np.ndarray) -> None:
    """The learning loop as numpy calls (before it was compiled): the reference of ``_sgd``."""
    for x, label in zip(X, y):
        if model.scaler is not None:
            model.scaler.update(x[None])
            x = model.scaler.transform(x[None])[0]
        logits = x @ model.W + model.b
        g = np.exp(-np.logaddexp(0.0, -logits)) if model.link == "ovr" else model._proba(logits)
        g[label] -= 1.0
        model.W -= model.lr * np.outer(x, g)
        model.b -= model.lr * g


@pytest.mark.parametrize("settings", [{}, {"link": "softmax"}, {"scale": False}, {"link": "softmax", "scale": False}])
def test_the_compiled_learning_is_the_numpy_loop(settings):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 6)) * [1.0, 30.0, 0.01, 1.0, 1.0, 0.0] + [0.0, 100.0, 0.0, 0.0, 5.0, 2.0]
    X[::7, 3] = 40.0  # z-scores past the clip
    y = (X[:, 0] > 0).astype(int) + 2 * (np.arange(400) > 150) * (X[:, 4] > 5)
    if settings.get("scale") is False:  # such a model is given standardised rows
        X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1.0)
    model, ref = OnlineLinear(**settings), OnlineLinear(**settings)
    for start in range(0, 400, 50):
        for m in (model, ref):
            m.add_classes(int(y[: start + 50].max()) + 1)  # a class met late
        model.learn(X[start:start + 50], y[start:start + 50])
        ref._inputs(X[:0])
        _learn_as_numpy(ref, X[start:start + 50], y[start:start + 50])
    np.testing.assert_allclose(model.W, ref.W, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.b, ref.b, rtol=1e-10, atol=1e-12)
    if ref.scaler is not None:
        assert model.scaler.n == ref.scaler.n == 400
        np.testing.assert_allclose(model.scaler.mean, ref.scaler.mean, rtol=1e-14)
        np.testing.assert_allclose(model.scaler.std, ref.scaler.std, rtol=1e-14)
    np.testing.assert_allclose(model.predict_proba(X), ref.predict_proba(X), rtol=1e-10)


@pytest.mark.parametrize("labels", [np.array([0, 2]), np.array([-1, 0]), np.array([0])])
def test_class_indices_outside_the_classes_made_are_refused(labels):
    """The compiled loop indexes the weights without a bounds check: a class not made by
    add_classes, a negative one, or classes not one per row, are refused before it."""
    model = OnlineLinear()
    model.add_classes(2)
    with pytest.raises(ValueError, match="one class index in 0..1"):
        model.learn(np.zeros((2, 3)), labels)
    assert OnlineLinear().learn(np.zeros((0, 3)), np.zeros(0)) is None  # nothing to learn: no classes needed


@pytest.mark.parametrize("settings", [{}, {"link": "softmax"}, {"scale": False}])
def test_the_compiled_answer_is_the_numpy_formula(settings):
    """predict_proba of a few rows (one compiled loop) against standardise, product and link as
    numpy calls (the answer of many rows), before any label (the standardiser's zeros) and
    after, with z-scores past the clip."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 5)) * [1.0, 30.0, 0.01, 1.0, 0.0] + [0.0, 100.0, 0.0, 0.0, 2.0]
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 100)
    model = OnlineLinear(**settings)
    model.add_classes(3)
    queries = np.vstack([X[:20], np.full((1, 5), 1e3)])

    def numpy_answer(rows):
        return model._proba(model._inputs(rows) @ model.W + model.b)

    for learned in (0, 300):
        model.learn(X[:learned], y[:learned])
        got = model.predict_proba(queries)
        np.testing.assert_allclose(got, numpy_answer(queries), rtol=1e-12, atol=1e-15)
        assert got.shape == (21, 3) and model.predict_proba(queries[:0]).shape == (0, 3)
    many = np.repeat(queries, 1000, axis=0)  # past COMPILED_VALUES: numpy's product itself
    np.testing.assert_allclose(model.predict_proba(many)[::1000], model.predict_proba(queries), rtol=1e-12)
