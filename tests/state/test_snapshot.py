"""Snapshots: deep copies into the buffers of the copy before, never sharing memory with the state."""

from collections import OrderedDict

import numpy as np
import torch

from streamssl.learner import StreamLearner
from streamssl.state.snapshot import Snapshots


def test_a_copy_reuses_the_last_copys_buffers_and_never_the_states_own():
    snapshots = Snapshots()
    state = {"a": np.arange(4.0), "t": torch.ones(3), "nested": [np.zeros(2), {"n": 1}], "s": "x"}
    first = snapshots.copy(state)
    assert not np.shares_memory(first["a"], state["a"]) and first["t"].data_ptr() != state["t"].data_ptr()
    state["a"][0], state["t"][0], state["nested"][1]["n"] = 9.0, 5.0, 2
    second = snapshots.copy(state)
    assert second["a"] is first["a"] and second["t"] is first["t"] and second["nested"][0] is first["nested"][0]
    assert second["a"][0] == 9.0 and second["t"][0] == 5.0 and second["nested"][1]["n"] == 2
    state["a"] = np.arange(6.0)  # another shape: a fresh copy
    assert snapshots.copy(state)["a"].tolist() == list(range(6))


def test_a_torch_state_dict_keeps_its_type_and_module_versions():
    net = torch.nn.Linear(2, 2)
    state = net.state_dict()
    copied = Snapshots().copy(state)
    assert type(copied) is OrderedDict and copied._metadata == state._metadata
    torch.nn.Linear(2, 2).load_state_dict(copied)


def test_a_learner_restored_from_a_copy_answers_as_the_learner_did_when_it_was_taken():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int).tolist()
    learner, snapshots = StreamLearner(seed=0), Snapshots()
    for lo in range(0, 300, 50):
        learner.learn_many(X[lo:lo + 50], y[lo:lo + 50])
    snapshots.copy(learner.state_dict())  # a first copy, whose buffers the second reuses
    for lo in range(300, 400, 50):
        learner.learn_many(X[lo:lo + 50], y[lo:lo + 50])
    copied = snapshots.copy(learner.state_dict())
    expected = learner.predict_proba_many(X[500:])
    for lo in range(400, 600, 50):  # the learner moves on: the copy must not
        learner.learn_many(X[lo:lo + 50], y[lo:lo + 50])
    assert np.allclose(StreamLearner.from_state_dict(copied).predict_proba_many(X[500:]), expected)
