"""The shared contract: river's own estimator checks (``river.checks``) on ``StreamLearner`` as a
river user builds it, with the parts that change its behaviour switched on in turn, and every
stateful configuration round-tripped through ``state_dict`` and the restricted checkpoint
loader. Two of river's checks once failed for real: probabilities (float32) that did not sum
to 1 within its tolerance, and results that depended on the order of a dict's keys."""

from __future__ import annotations

import numpy as np
import pytest
from river import checks

from streamssl.learner import StreamLearner
from streamssl.state.checkpoint import decode, encode

CONFIGS = {  # the default, then each other part switched in turn (without the tree head, whose cost is river's)
    "default": {},
    "no trees": {"trees": False},
    "encoder+pseudo-labels": {"encoder": True, "pseudo_labels": True, "trees": False},
    "no temporal, no memory": {"temporal": False, "memory": False, "trees": False},
    "select combiner": {"combiner": "select", "trees": False},  # the default is ewa
}


#: The configurations whose every part is also in the default or the encoder configuration skip
#: river's memory-growth check (three long learn_one runs each, a minute in all): the default and
#: the encoder configuration hold every bounded buffer there is.
GROWTH_COVERED = {"no trees", "no temporal, no memory", "select combiner"}


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
