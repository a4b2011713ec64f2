"""The online linear member: softmax regression, one SGD step per label."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from streamssl.learner.linear import OnlineLinear


def test_each_label_is_one_sgd_step_on_the_log_loss_as_autograd_computes_it():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(30, 4)), rng.integers(0, 3, size=30)
    model = OnlineLinear(4, lr=0.05)
    model.add_classes(3)
    W = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    for x, label in zip(X, y):  # the reference: autograd, one row at a time
        loss = F.cross_entropy((torch.as_tensor(x)[None] @ W + b), torch.tensor([int(label)]))
        gW, gb = torch.autograd.grad(loss, (W, b))
        with torch.no_grad():
            W -= 0.05 * gW
            b -= 0.05 * gb
    model.learn(X, y)
    np.testing.assert_allclose(model.W, W.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(model.b, b.detach().numpy(), atol=1e-12)
    expected = torch.softmax(torch.as_tensor(X) @ W + b, dim=1).detach().numpy()
    np.testing.assert_allclose(model.predict_proba(X), expected, atol=1e-12)


def test_a_class_met_late_starts_at_zero_and_the_others_keep_their_weights():
    model = OnlineLinear(2)
    model.add_classes(2)
    model.learn(np.array([[1.0, 0.0], [-1.0, 0.0]] * 10), np.array([1, 0] * 10))
    before = model.W.copy()
    model.add_classes(3)
    assert model.W.shape == (2, 3)
    np.testing.assert_array_equal(model.W[:, :2], before)
    assert not model.W[:, 2].any() and model.b[2] == 0


def test_state_round_trip_gives_the_same_answers_and_learning():
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, size=40)
    model = OnlineLinear(3)
    model.add_classes(2)
    model.learn(X[:20], y[:20])
    twin = OnlineLinear(3)
    twin.load_state_dict(model.state_dict())
    model.learn(X[20:], y[20:])
    twin.learn(X[20:], y[20:])
    np.testing.assert_array_equal(twin.predict_proba(X), model.predict_proba(X))


def test_probabilities_stay_finite_for_large_inputs():
    model = OnlineLinear(1, lr=1.0)
    model.add_classes(2)
    model.learn(np.array([[1e3], [-1e3]] * 5), np.array([1, 0] * 5))
    proba = model.predict_proba(np.array([[1e6], [-1e6]]))
    assert np.isfinite(proba).all()
    assert proba.argmax(1).tolist() == [1, 0]
    assert proba.sum(1) == pytest.approx([1.0, 1.0])
