"""The optional CapyMOA peers (``pip install -e '.[capymoa]'``, Java 11+)."""

import shutil

import numpy as np
import pytest

from streamssl.replay.peers import capymoa_available

pytestmark = pytest.mark.skipif(not (capymoa_available() and shutil.which("java")),
                                reason="the capymoa extra (and Java) is not installed")


def stream(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, np.where(X[:, 0] + X[:, 1] > 0, "up", "down").tolist()


@pytest.mark.parametrize("name", ["capymoa-arf", "capymoa-sleade"])
def test_capymoa_peer_learns_through_the_prequential_loop(name):
    from streamssl.replay.bench import available_models, build_model
    from streamssl.replay.prequential import prequential
    from streamssl.sources.file import Batch

    assert name in available_models()
    X, y = stream()
    model = build_model(name, 0, ["a", "b", "c"], lambda: ["down", "up"])
    batches = [Batch(X[i:i + 64], y[i:i + 64], np.arange(i, i + 64)) for i in range(0, len(y), 64)]
    *_, last = prequential(batches, model, label_rate=0.2, seed=0)
    assert last.summary.events == 3000 and last.summary.labels_used == model.labels_used
    assert last.summary.accuracy > 0.8
    assert model.predict_proba_many(X[:5]).shape == (5, 2)


def test_semi_supervised_peer_gets_the_unlabelled_events():
    from streamssl.replay.bench import build_model

    model = build_model("capymoa-sleade", 0, ["a", "b", "c"], lambda: ["down", "up"])
    seen = []
    model.model.train_on_unlabeled = seen.append
    X, y = stream(100)
    model.learn_many(X, [label if i % 2 else None for i, label in enumerate(y)])
    assert len(seen) == 50 and model.labels_used == 50


def test_where_moa_gives_no_votes_the_adapter_answers_the_class_prior():
    from streamssl.replay.peers import CapyMOABatchAdapter

    class Silent:  # an MOA learner that never votes
        def __init__(self):
            self.trained = 0

        def predict_proba(self, instance):
            return np.zeros(2)

        def train(self, instance):
            self.trained += 1

    model = CapyMOABatchAdapter(lambda schema, seed: Silent(), ["a", "b", "c"], ["up", "down"], 0)
    X = np.zeros((4, 3))
    assert model.predict_proba_many(X[:1]).tolist() == [[0.0, 0.0]]  # nothing learned: no answer
    model.learn_many(X, ["down", "down", "up", None])
    assert model.model.trained == 3
    assert model.predict_proba_many(X[:2]).tolist() == [[1 / 3, 2 / 3]] * 2
    assert model.abstained == 2
