"""The shared contract: river's own estimator checks (``river.checks``) on ``StreamLearner`` as a
river user builds it, with the parts that change its behaviour switched on in turn, and every
stateful configuration round-tripped through ``state_dict`` and the restricted checkpoint
loader. Two of river's checks once failed for real: probabilities (float32) that did not sum
to 1 within its tolerance, and results that depended on the order of a dict's keys."""

from __future__ import annotations

import numpy as np
import pytest
from river import checks

from streamssl.drift.monitor import DriftMonitor
from streamssl.learner import StreamLearner
from streamssl.learner.calibration import TemperatureCalibrator
from streamssl.learner.classifier import MLPHead
from streamssl.learner.combine import EWA, Select
from streamssl.learner.duel import Duel
from streamssl.learner.fold import FeatureFold
from streamssl.learner.linear import OnlineLinear
from streamssl.learner.memory import NearestNeighbourMemory
from streamssl.learner.pseudo import PseudoLabelPolicy
from streamssl.learner.temporal import TemporalContext
from streamssl.ssl.continual import Encoder
from streamssl.state.checkpoint import decode, encode

CONFIGS = {  # the default, then each other part switched in turn (without the tree head, whose cost is river's)
    "default": {},
    "no trees": {"trees": False},
    "encoder+pseudo-labels": {"encoder": True, "pseudo_labels": True, "trees": False},
    "no temporal, no memory": {"temporal": False, "memory": False, "trees": False},
    "select combiner": {"combiner": "select", "trees": False},  # the default is ewa
    # Every part given with settings of its own (river's checks clone it; the state names its classes).
    "parts with settings": {
        "temporal": TemporalContext(spans=(4, 16)), "encoder": Encoder("vicreg", embedding_dim=4, hidden=16),
        "mlp": MLPHead(hidden=16, replay=64), "memory": NearestNeighbourMemory(capacity=64, k=3),
        "combiner": EWA(rate=1.0, share=0.05), "calibrate": TemperatureCalibrator(window=64),
        "pseudo_labels": PseudoLabelPolicy(threshold=0.9, warmup=10), "duel": Duel(min_labels=10), "trees": False,
        "drift": DriftMonitor(("error:DDM", "residual:CUSUM"), respond=False),
        "linear": OnlineLinear(lr=0.02, link="softmax"),
        "fold": FeatureFold(max_inputs=3),  # events of 4 features (river's checks': more) folded into 3
    },
}


#: The configurations whose every part is also in the default or the encoder configuration skip
#: river's memory-growth check (three long learn_one runs each, a minute in all): the default and
#: the encoder configuration hold every bounded buffer there is.
GROWTH_COVERED = {"no trees", "no temporal, no memory", "select combiner", "parts with settings"}


def _checks():
    for name, params in CONFIGS.items():
        model = StreamLearner(seed=0, **params)
        for check in checks.yield_checks(model):
            if name in GROWTH_COVERED and check.__name__ == "check_bounded_memory_growth":
                continue
            yield pytest.param(model, check, id=f"{name}-{check.__name__}")


@pytest.mark.parametrize("model,check", list(_checks()))
def test_river_checks(model, check):
    if check.__name__ in model._unit_test_skips():
        pytest.skip("skipped by the estimator")
    check(model.clone())


@pytest.mark.parametrize("params", CONFIGS.values(), ids=CONFIGS.keys())
def test_state_round_trips_through_the_restricted_loader(params):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 4)).astype(np.float32)
    y = [int(a + b > 0) if i % 5 == 0 else None for i, (a, b, *_) in enumerate(X)]
    model = StreamLearner(seed=0, **params)
    for i in range(0, 600, 64):
        model.learn_many(X[i:i + 64], y[i:i + 64])
    restored = StreamLearner.from_state_dict(decode(encode(model.state_dict())))
    probe = rng.normal(size=(50, 4)).astype(np.float32)
    np.testing.assert_array_equal(restored.predict_proba_many(probe), model.predict_proba_many(probe))
    more, labels = rng.normal(size=(64, 4)).astype(np.float32), [1, 0] * 32
    model.learn_many(more, labels)
    restored.learn_many(more, labels)  # and goes on learning exactly alike
    np.testing.assert_array_equal(restored.predict_proba_many(probe), model.predict_proba_many(probe))


def test_a_learner_works_with_clones_of_its_parts_and_keeps_their_settings():
    policy, combiner = PseudoLabelPolicy(threshold=0.9, warmup=0), Select(window=7)
    a, b = StreamLearner(pseudo_labels=policy, combiner=combiner, trees=False, seed=0), StreamLearner(
        pseudo_labels=policy, combiner=combiner, trees=False, seed=0)
    assert a.policy is not policy and a.policy is not b.policy and a.policy.threshold == 0.9
    assert a.mix.window == 7 and a.mix.members == ["mlp", "raw", "memory", "linear"] and combiner.members == []
    a.learn_many(np.eye(4), [0, 1, 0, 1])
    assert policy.true_labels == 0 and a.policy.true_labels == 4  # the given part never learns
    clone = a.clone()
    assert clone.pseudo_labels.threshold == 0.9 and clone.combiner.window == 7 and clone.classes_ == []


def test_checkpoints_written_before_the_parts_load_onto_them():
    """Learners before the parts kept their settings flat: ``params`` as such a learner wrote
    them (``_get_params`` of release 2026-12-04) map onto the same parts."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(900, 3))
    y = [int(a > 0) if i % 4 == 0 else None for i, (a, *_) in enumerate(X)]
    model = StreamLearner(
        encoder=Encoder("byol", embedding_dim=8, every=32), pseudo_labels=PseudoLabelPolicy(threshold=0.95, warmup=20),
        temporal=TemporalContext(spans=(4, 16)), mlp=MLPHead(hidden=32, balanced_replay=False, label_smoothing=0.0),
        memory=NearestNeighbourMemory(k=3), combiner=Select(window=30), duel=Duel(min_labels=40), seed=3,
        fold=False)  # (no fold stage then: restored, such a learner goes on without one)
    for i in range(0, 900, 64):
        model.learn_many(X[i:i + 64], y[i:i + 64])
    state = model.state_dict()
    state["params"] = {
        "encoder": True, "objective": "byol", "objective_params": None, "embedding_dim": 8, "encoder_hidden": 64,
        "encoder_lr": 0.001, "corruption": 0.3, "ssl_every": 32, "ssl_batch": 128, "head_hidden": 32,
        "head_lr": 0.003, "head_replay": 256, "head_steps": 1, "head_steps_per_label": 2.0,  # no balanced_replay
        "head_max_steps": 16, "pseudo_labels": True, "threshold": 0.95, "warmup_labels": 20, "pseudo_weight": 0.3,
        "class_slack": 1.5, "drift_cooldown": 500, "challenger_min_labels": 40, "challenger_patience": 500,
        "challenger_margin": 0.05, "drift_channels": None, "drift_response": True, "drift_lr_boost": 3.0,
        "temporal": True, "temporal_spans": (4, 16), "temporal_ssl": False, "memory": True, "raw_head": True,
        "trees": True, "raw_tree": True, "linear": True, "members": None, "pseudo_source": "self",
        "memory_size": 256, "memory_k": 3, "selection_window": 30, "combiner": "select", "calibrate": True,
        "device": "cpu", "threads": 1, "one_batch": 64, "seed": 3}
    restored = StreamLearner.from_state_dict(decode(encode(state)))
    assert repr(restored) == repr(model)  # the same parts with the same settings
    probe = rng.normal(size=(40, 3))
    np.testing.assert_array_equal(restored.predict_proba_many(probe), model.predict_proba_many(probe))


def test_checkpoints_from_before_smoothed_targets_keep_one_hot_targets():
    """MLP settings written without ``label_smoothing`` learned one-hot targets and go on so, and
    those without ``smoothing_halved_at`` their constant smoothing (a learner left at the default
    part, ``mlp=None``, takes today's default, as every part does)."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(300, 3))
    model = StreamLearner(mlp=MLPHead(hidden=32), trees=False, seed=0)
    model.learn_many(X, [int(a > 0) if i % 3 == 0 else None for i, (a, *_) in enumerate(X)])
    state = model.state_dict()
    restored = StreamLearner.from_state_dict(decode(encode(state)))
    assert (restored.mlp.label_smoothing, restored.mlp.smoothing_halved_at) == (0.1, 256)
    kind, settings = state["params"]["mlp"]
    # Written before the smoothing faded: it stays constant.
    state["params"]["mlp"] = (kind, {k: v for k, v in settings.items() if k != "smoothing_halved_at"})
    restored = StreamLearner.from_state_dict(decode(encode(state)))
    assert (restored.mlp.label_smoothing, restored.mlp.smoothing_halved_at) == (0.1, None)
    assert restored._mlps()[0][0].smoothing == 0.1
    state["params"]["mlp"] = (kind, {k: v for k, v in settings.items() if k != "label_smoothing"})
    assert StreamLearner.from_state_dict(decode(encode(state))).mlp.label_smoothing == 0.0


def test_the_drift_stage_is_a_part_and_its_flat_settings_of_before_load_onto_it():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(1200, 3))
    y = [int((a > 0) == (i < 600)) if i % 2 == 0 else None for i, (a, *_) in enumerate(X)]  # flips at 600
    model = StreamLearner(drift=DriftMonitor(("error:DDM",), respond=False), trees=False, seed=0)
    for i in range(0, 1200, 50):
        model.learn_many(X[i:i + 50], y[i:i + 50])
    assert model.drift_events and not model.drift_in_progress  # DDM saw the flip; no response
    # Checkpoints before the drift stage was a part kept its two settings flat, beside the parts.
    state = model.state_dict()
    state["params"] = {k: v for k, v in state["params"].items() if k != "drift"}
    state["params"].update(drift_channels=("error:DDM",), drift_response=False)
    restored = StreamLearner.from_state_dict(decode(encode(state)))
    assert repr(restored) == repr(model) and list(restored.drift_events) == list(model.drift_events)
    off = StreamLearner(drift=False, trees=False, seed=0)
    off.learn_many(X, [int(a > 0) if i % 2 else int(a < 0) for i, (a, *_) in enumerate(X)])
    assert off.monitor.signals == set() and not off.drift_events and off.drift is False


def test_the_forests_are_parts_too():
    from river import forest, tree

    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 3))
    y = [int(a > 0) if i % 3 == 0 else None for i, (a, *_) in enumerate(X)]
    given = forest.ARFClassifier(n_models=3, seed=5)
    model = StreamLearner(trees=given, raw_tree=tree.HoeffdingTreeClassifier(grace_period=20), seed=0)
    for i in range(0, 400, 64):
        model.learn_many(X[i:i + 64], y[i:i + 64])
    assert len(model.heads["tree"].model) == 3 and len(given) == 0  # a clone learned, not the part given
    assert isinstance(model.heads["raw-tree"].model, tree.HoeffdingTreeClassifier)
    assert StreamLearner(trees=given, raw_tree=False).mix.members == ["mlp", "raw", "memory", "tree", "linear"]
    restored = StreamLearner.from_state_dict(decode(encode(model.state_dict())))
    probe = rng.normal(size=(30, 3))
    np.testing.assert_array_equal(restored.predict_proba_many(probe), model.predict_proba_many(probe))


def test_the_restricted_loader_builds_every_part():
    """A learner's params name its parts' classes (``StreamLearner(fold=FeatureFold(...))``):
    each class of ``PARTS`` must be one the checkpoint loader allows."""
    from streamssl.learner.stream_learner import PARTS
    from streamssl.state.serialize import _ALLOWED_GLOBALS

    assert {(cls.__module__, cls.__name__) for cls in PARTS.values()} <= _ALLOWED_GLOBALS
