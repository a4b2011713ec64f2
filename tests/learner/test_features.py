"""Tests for streamssl.learner.features: the feature stages in order."""

from __future__ import annotations

import numpy as np
import torch

from streamssl.learner.features import Features
from streamssl.learner.temporal import TemporalContext


def batch(n: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, 3))


def test_peek_changes_nothing_and_learn_moves_the_context_and_the_statistics():
    f = Features(TemporalContext((4, 16)))
    f.learn(batch(seed=0))
    X = batch(seed=1)
    rows, Z = f.peek(X)
    again, _ = f.peek(X)
    np.testing.assert_array_equal(rows, again)
    assert f.standardizer.n == 32
    learned, Z_learned = f.learn(X)
    np.testing.assert_array_equal(learned, rows)  # learned as it was answered
    assert f.standardizer.n == 64
    assert not np.array_equal(f.peek(X)[0], rows)  # the averages have moved past it
    np.testing.assert_allclose(Z_learned, f.standardizer.transform(rows))


def test_recall_gives_the_rows_the_events_had_when_learned():
    f = Features(TemporalContext((4,)))
    X = batch(seed=2)
    rows, _ = f.learn(X)
    f.learn(batch(seed=3))
    recalled, Z = f.recall(X[5:9])
    np.testing.assert_allclose(recalled, rows[5:9])
    np.testing.assert_allclose(Z, f.standardizer.transform(rows[5:9]))


def test_without_a_context_the_rows_are_the_events():
    f = Features()
    X = batch()
    rows, Z = f.learn(X)
    assert f.n_outputs(3) == 3 and rows is X
    assert torch.equal(f.featurize(torch.ones(2, 3)), torch.ones(2, 3))  # no encoder: Z itself


def test_moments_gathered_apart_only_while_sharing():
    f = Features()
    f.learn(batch(seed=4))
    assert f.take_moments() is None  # not sharing
    f.share()
    f.learn(batch(8, seed=5))
    n, mean, _ = f.take_moments()
    assert n == 8 and f.take_moments() is None  # taken: gathering starts afresh
    other = Features()
    other.merge_moments(n, mean, np.ones(3))
    assert other.standardizer.n == 8
