import copy

import numpy as np
import pytest
from river import datasets, evaluate, metrics
import torch

from streamssl.learner import StreamLearner
from streamssl.learner.stream_learner import GATHER
from streamssl.learner.pseudo import PseudoLabelPolicy
from streamssl.state import serialize


def two_concepts(n=6000, d=6, flip_at=3000, seed=0):
    """A seeded stream whose label rule flips at ``flip_at``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    y[flip_at:] = 1 - y[flip_at:]
    return X, y


def test_river_progressive_val_score_runs_and_learns():
    model = StreamLearner(seed=0)
    score = evaluate.progressive_val_score(datasets.Phishing(), model, metrics.Accuracy())
    assert score.get() > 0.8
    assert model.predict_one({"empty_server_form_handler": 0.0}) in (True, False)


def test_learn_one_predict_one_before_and_after_labels():
    model = StreamLearner(encoder=False, seed=0)
    assert model.predict_one({"a": 1.0}) is None
    assert model.predict_proba_one({"a": 1.0}) == {}
    for i in range(200):
        model.learn_one({"a": float(i % 2), "b": 1.0}, "odd" if i % 2 else "even")
    assert model.predict_one({"a": 1.0, "b": 1.0}) == "odd"
    # A missing feature takes its running mean; an unlabelled learn_one is fine.
    model.learn_one({"a": 0.0})
    assert set(model.predict_proba_one({"b": 1.0})) == {"even", "odd"}


def test_an_event_answered_then_learned_is_encoded_once():
    """river's test-then-train: learn_one reuses the row predict_proba_one read for an equal
    event, so its values update the imputation means once; a changed event is read again."""
    model = StreamLearner(seed=0, trees=False)
    for i in range(40):
        x = {"a": float(i), "b": 1.0}
        model.predict_proba_one(x)
        model.learn_one(x, i % 2)
    encoder = model._rows.encoder
    assert encoder.state_dict()["count"] == [40, 40]
    model.predict_proba_one({"a": 5.0, "b": 1.0})
    model.predict_proba_one({"a": 5.0, "b": 1.0})  # asked twice, learned once: read once
    model.learn_one({"a": 5.0, "b": 1.0}, 1)
    assert encoder.state_dict()["count"] == [41, 41]
    x = {"a": 1.0, "b": 1.0}
    model.predict_proba_one(x)
    x["a"] = None  # changed between the answer and the label: imputed with a's mean, not 1.0
    model.learn_one(x, 0)
    assert encoder.state_dict()["count"] == [42, 43]
    np.testing.assert_allclose(model._gathered[-1][2][0, 0], encoder.state_dict()["mean"][0])
    assert model._gathered[-1][2][0, 0] > 10.0


def test_river_events_with_text_booleans_and_missing_values_learn_as_a_replayed_stream():
    from streamssl.schema import EncodeError

    model = StreamLearner(seed=0)
    rng = np.random.default_rng(0)
    for i in range(300):
        colour = ["red", "green", "blue"][i % 3]
        x = {"size": float(rng.normal()), "colour": colour, "sale": bool(i % 2), "id": np.int64(i)}
        if i % 7 == 0:
            x["size"] = None  # missing: imputed
        if i % 11 == 5:
            del x["sale"]  # absent: imputed
        model.learn_one(x, colour == "red")  # the label follows the text feature alone
    assert model.feature_names_ == ["colour", "id", "sale", "size"]
    assert model.n_inputs_ == 32 + 3  # the text as 32 hashed slots, then three numbers
    assert model.predict_one({"size": float("nan"), "colour": "red", "sale": True, "id": 5}) is True
    assert model.predict_one({"colour": "blue"}) is False
    with pytest.raises(EncodeError, match="column 'size' is numeric, got 'big'"):
        model.predict_proba_one({"size": "big", "colour": "red", "sale": True, "id": 1})
    with pytest.warns(UserWarning, match="feature 'weight' was not in the first event"):
        model.learn_one({"size": 0.0, "colour": "red", "sale": True, "id": 1, "weight": 3.0}, True)
    assert model._rows.unused == {"weight"}
    restored = StreamLearner.from_state_dict(serialize.loads(serialize.dumps(model.state_dict())))
    x = {"size": None, "colour": "green", "sale": False, "id": 7}
    assert restored.predict_proba_one(x) == model.predict_proba_one(x)


def test_classes_first_seen_mid_stream():
    rng = np.random.default_rng(0)
    model = StreamLearner(seed=0)
    X = rng.normal(size=(3000, 3))
    y = np.where(X[:, 0] > 0, "a", "b").astype(object)
    model.learn_many(X[:1500], list(y[:1500]))
    y[1500:][X[1500:, 1] > 1] = "c"
    for i in range(1500, 3000, 100):
        model.learn_many(X[i:i + 100], list(y[i:i + 100]))
    assert model.classes_ == ["a", "b", "c"] or set(model.classes_) == {"a", "b", "c"}
    pred = np.array(model.predict_many(X[1500:]), dtype=object)
    is_c = y[1500:] == "c"
    assert (pred[is_c] == "c").mean() > 0.5


def test_unlabelled_stream_and_missing_labels_as_nan():
    model = StreamLearner(seed=0)
    X = np.random.default_rng(0).normal(size=(500, 4))
    model.learn_many(X)  # no labels at all
    assert model.classes_ == [] and model.predict_proba_many(X[:2]).shape == (2, 0)
    assert model.predict_many(X[:2]) == [None, None]
    model.learn_many(X, [float("nan")] * 499 + [1])
    assert model.classes_ == [1] and model.labels_used == 1


def test_bad_arrays_are_refused_and_inputs_not_mutated():
    model = StreamLearner(seed=0)
    X = np.random.default_rng(0).normal(size=(64, 3))
    keep = X.copy()
    model.learn_many(X, [0, 1] * 32)
    np.testing.assert_array_equal(X, keep)
    with pytest.raises(ValueError, match="NaN"):
        model.learn_many(np.array([[np.nan, 0.0, 0.0]]))
    with pytest.raises(ValueError, match="expected 3 features"):
        model.predict_proba_many(np.zeros((1, 4)))
    with pytest.raises(ValueError, match="labels"):
        model.learn_many(X, [0])


def test_seeded_runs_repeat_and_clone_starts_fresh():
    X, y = two_concepts(2000)
    preds = []
    for _ in range(2):
        # On the CPU: CUDA's atomic adds (the memory's votes) repeat only to rounding (1e-16).
        model = StreamLearner(encoder=True, pseudo_labels=True, seed=3, device="cpu")
        for i in range(0, 2000, 64):
            model.learn_many(X[i:i + 64], [v if i % 3 == 0 else None for v in y[i:i + 64]])
        preds.append(model.predict_proba_many(X[:50]))
    np.testing.assert_array_equal(preds[0], preds[1])
    fresh = model.clone()
    assert fresh.n_seen == 0 and fresh.seed == 3 and fresh.classes_ == []


def test_late_labels_do_not_count_events_twice():
    model = StreamLearner(seed=0)
    X, y = two_concepts(640)
    model.learn_many(X)
    n_std, n_seen = model.standardizer.n, model.n_seen
    model.learn_late_labels(X[:100], list(y[:100]))
    assert model.standardizer.n == n_std and model.n_seen == n_seen
    assert model.labels_used == 100 and model.classes_


def test_pseudo_labels_in_the_learner_pass_the_threshold():
    X, y = two_concepts(6000, flip_at=10**9)
    # The threshold alone (the audit would need more labels than 600 to prove 0.99).
    model = StreamLearner(pseudo_labels=PseudoLabelPolicy(threshold=0.99, warmup=50, audit=None), seed=0)
    seen = []
    real_select = model.policy.select

    def spy(proba, position, familiar=None):
        rows, labels = real_select(proba, position, familiar)
        seen.append(proba[rows].max(1) if len(rows) else np.zeros(0))
        return rows, labels

    model.policy.select = spy
    for i in range(0, 6000, 64):
        model.learn_many(X[i:i + 64], [v if j % 10 == 0 else None for j, v in enumerate(y[i:i + 64])])
    confidences = np.concatenate(seen)
    assert len(confidences) > 100
    assert (confidences >= 0.99).all()
    assert model.pseudo_labels_accepted == len(confidences)


def test_without_pseudo_labels_none_are_accepted():
    X, y = two_concepts(3000, flip_at=10**9)
    model = StreamLearner(pseudo_labels=False, seed=0)
    for i in range(0, 3000, 64):
        model.learn_many(X[i:i + 64], [v if j % 10 == 0 else None for j, v in enumerate(y[i:i + 64])])
    assert model.pseudo_labels_accepted == 0 and len(model.last_pseudo_labels[0]) == 0


def test_abrupt_concept_flip_is_detected_and_the_challenger_takes_over():
    X, y = two_concepts(8000, flip_at=4000)
    model = StreamLearner(pseudo_labels=True, seed=0)
    correct_after = []
    for i in range(0, 8000, 64):
        pred = np.array(model.predict_many(X[i:i + 64]))
        if i >= 6000:
            correct_after.append((pred == y[i:i + 64]).mean())
        model.learn_many(X[i:i + 64], [v if j % 4 == 0 else None for j, v in enumerate(y[i:i + 64])])
    drifts = [e for e in model.drift_events if e.signal == "error" and e.level == "drift"]
    assert drifts and 4000 <= drifts[0].position <= 5000
    assert model.swaps >= 1
    assert np.mean(correct_after) > 0.9
    # Pseudo-labelling was paused after the drift.
    assert model.policy.rejected["cooldown"] > 0


def test_state_dict_round_trip_gives_identical_predictions():
    X, y = two_concepts(3000)
    model = StreamLearner(encoder=True, pseudo_labels=True, seed=0, device="cpu")  # exact: see above
    for i in range(0, 3000, 64):
        model.learn_many(X[i:i + 64], [v if j % 5 == 0 else None for j, v in enumerate(y[i:i + 64])])
    restored = StreamLearner.from_state_dict(copy.deepcopy(model.state_dict()))
    np.testing.assert_array_equal(model.predict_proba_many(X[:200]), restored.predict_proba_many(X[:200]))
    for m in (model, restored):
        m.learn_many(X[:64], list(y[:64]))
    np.testing.assert_array_equal(model.predict_proba_many(X[:200]), restored.predict_proba_many(X[:200]))


def test_the_tree_head_answers_where_splits_predict_better():
    """A concept of thresholds on one feature (six alternating bands), 20 % labels: the forest
    finds the bands, the MLP and the memory do not; the tree head carries most of the weight."""
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, size=(4000, 3))
    bands = (np.floor(X[:, 0] * 6) % 2).astype(int)
    y = [int(v) if i % 5 == 0 else None for i, v in enumerate(bands)]
    probe = rng.uniform(0, 1, size=(500, 3))
    truth = (np.floor(probe[:, 0] * 6) % 2).astype(int)
    accuracy = {}
    for trees in (False, True):
        model = StreamLearner(seed=0, trees=trees, temporal=False)
        for i in range(0, 4000, 64):
            model.learn_many(X[i:i + 64], y[i:i + 64])
        accuracy[trees] = float((np.array(model.predict_many(probe)) == truth).mean())
    assert "tree" not in StreamLearner(seed=0, trees=False).experts
    weights = model.head_weights
    assert max(weights, key=weights.get) == "tree" and model.experts["tree"]["weight"] == weights["tree"] > 0.5
    assert accuracy[True] > 0.85 and accuracy[True] > accuracy[False] + 0.1, accuracy


def test_the_ewa_combiner_weighs_heads_by_their_errors():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1200, 3))
    y = (X[:, 0] > 0).astype(int).tolist()
    model = StreamLearner(seed=0, combiner="ewa")
    for i in range(0, 1200, 60):
        model.learn_many(X[i:i + 60], y[i:i + 60])
    weights = model.head_weights
    assert abs(sum(weights.values()) - 1) < 1e-9 and min(weights.values()) >= model.mix.share / len(weights) / 2
    experts = model.experts
    # Weights follow the recent errors, accuracy counts every label: the clearly worst head
    # weighs least, and the head weighing most is about as accurate as the best.
    accuracy = {h: e["accuracy"] for h, e in experts.items()}
    assert min(weights, key=weights.get) == min(accuracy, key=accuracy.get)
    assert accuracy[max(weights, key=weights.get)] > max(accuracy.values()) - 0.03, (weights, accuracy)
    assert {h: e["weight"] for h, e in experts.items()} == weights
    proba = model.predict_proba_many(X[:50])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert (np.array(model.classes_)[proba.argmax(axis=1)] == np.array(y[:50])).mean() > 0.9
    with pytest.raises(ValueError, match="combiner"):
        StreamLearner(combiner="vote")


def _params(head):
    return [p.detach().clone() for p in head.net.parameters()]


def test_learn_one_gives_the_mlp_heads_their_labels_once_every_one_batch_events():
    """Every part learns labels given one at a time together, GATHER at a time (one_batch if
    fewer, a new class at once); the MLPs take their steps once the group of events is full."""
    rng = np.random.default_rng(0)
    model = StreamLearner(seed=0, one_batch=4, trees=False)
    changed, memory_sizes, learned = [], [], []
    for i in range(12):
        x = dict(enumerate(rng.normal(size=3).tolist()))
        before = _params(model.head) if model.head is not None else None
        model.learn_one(x, int(x[0] > 0))
        if before is not None:
            changed.append(any(not torch.equal(a, b) for a, b in zip(before, _params(model.head))))
        memory_sizes.append(len(model.heads["memory"].memory))
        learned.append(model.labels_used)
    assert changed == [i % 4 == 3 for i in range(1, 12)]  # events 4, 8 and 12 (index 3, 7, 11)
    assert memory_sizes == learned and memory_sizes[3::4] == [4, 8, 12]
    assert all(i + 1 - 3 <= n <= i + 1 for i, n in enumerate(learned)) and learned != list(range(1, 13))

    model = StreamLearner(seed=0, trees=False)  # one_batch 64: GATHER labels at a time
    for i in range(2 + GATHER):
        model.learn_one({0: float(i % 2)}, i % 2)
        assert model.labels_used == (i + 1 if i < 2 else 2 if i < 1 + GATHER else 2 + GATHER)  # a new class at once


def test_labels_waiting_in_a_group_survive_a_checkpoint_and_learn_many_learns_them(tmp_path):
    rng = np.random.default_rng(1)
    rows = [dict(enumerate(rng.normal(size=3).tolist())) for _ in range(40)]
    model = StreamLearner(seed=0, one_batch=16)
    for x in rows[:21]:  # five labels gathered after the first group of 16
        model.learn_one(x, int(x[0] > 0))
    assert model.labels_used == 16 and model.head._pending is None
    restored = StreamLearner.from_state_dict(serialize.loads(serialize.dumps(model.state_dict())))
    for m in (model, restored):
        for x in rows[21:30]:  # nine gathered at the 25th are learned; the MLPs' steps wait
            m.learn_one(x, int(x[0] > 0))
    X = np.array([[x[k] for k in range(3)] for x in rows[30:]])
    np.testing.assert_array_equal(restored.predict_proba_many(X), model.predict_proba_many(X))
    assert model.labels_used == restored.labels_used == 25 and len(model.head._pending[1]) == 9
    forests = [model.heads[name].model for name in ("tree", "raw-tree")]
    assert [f.waiting for f in forests] == [9 % f.chunk for f in forests] == [4, 4]  # one chunk of 5 learned
    model.learn_many(X[:2], [None, None])  # a micro-batch learns what waits first, labelled or not
    assert model.head._pending is None and model.heads["raw"].mlp._pending is None
    assert [f.waiting for f in forests] == [0, 0]
    assert model.labels_used == 30


def test_labels_are_scored_on_the_answers_served_for_them_without_asking_the_heads_again(monkeypatch):
    X, y = two_concepts(n=400)
    model = StreamLearner(seed=0)
    model.learn_many(X[:64], y[:64])
    name = next(n for n in model.mix.asked() if n in model.heads)
    member, calls = model.heads[name], []
    answer = member.proba
    monkeypatch.setattr(member, "proba", lambda batch, n: calls.append(len(batch.rows)) or answer(batch, n))
    labels = [v if i % 8 == 0 else None for i, v in enumerate(y[:64].tolist())]

    model.predict_proba_many(X[64:128])
    model.learn_many(X[64:128], labels)
    assert calls == [64]  # served, and the 8 labels scored on those answers
    calls.clear()
    model.predict_proba_many(X[128:192])
    model.learn_late_labels(X[:2], y[:2].tolist())  # the heads learned since they answered
    model.learn_many(X[128:192], labels)
    assert calls == [64, 2, 8]
    calls.clear()
    model.predict_proba_many(X[192:256])
    model.learn_many(X[256:320], labels)  # not the events served
    assert calls == [64, 8]


def test_a_memory_restored_on_another_device_answers_there():
    """A checkpoint's memory comes back on the CPU; queried on another device (a GPU, or here
    the meta device standing in for one), it moves to the queries rather than failing."""
    from streamssl.learner.memory import NearestNeighbourMemory

    memory = NearestNeighbourMemory(capacity=4, k=1)
    memory.add(torch.tensor([[0.0], [5.0]]), torch.tensor([0, 1]))
    restored = NearestNeighbourMemory(capacity=4, k=1)
    restored.load_state_dict(memory.state_dict())
    target = torch.device("cuda") if torch.cuda.is_available() else torch.device("meta")
    out = restored.predict_proba(torch.tensor([[0.4], [5.5]], device=target), n_classes=2)
    assert out.device.type == target.type and restored.Z.device.type == target.type


def _wide_stream(tmp_path):
    """300 events of word presence over 700 "words", and the same folded into 64 columns by
    ``hash_csv`` (what ``benchmarks/suite.py`` does to spam_corpus on disk)."""
    import gzip

    from streamssl.sources.hashing import hash_csv

    rng = np.random.default_rng(0)
    X = (rng.random((300, 700)) < 0.05).astype(np.float64)
    y = (X[:, :50].sum(axis=1) > X[:, 50:100].sum(axis=1)).astype(int)
    src = tmp_path / "wide.csv"
    src.write_text("\n".join([",".join([*(f"w{j}" for j in range(700)), "label"])]
                             + [",".join([*(f"{v:g}" for v in row), str(label)]) for row, label in zip(X, y)]) + "\n")
    lines = gzip.open(hash_csv(src, tmp_path / "h.csv.gz", dims=64), "rt").read().splitlines()[1:]
    H = np.array([[float(v) for v in line.split(",")[:-1]] for line in lines])
    return X, H, [int(v) if i % 4 == 0 else None for i, v in enumerate(y)]


def test_wide_events_are_folded_as_the_suite_folds_them_on_disk(tmp_path):
    """An event wider than ``fold.max_inputs`` is folded by the fixed feature hash before every
    part but the linear head: without it, a learner given the wide rows answers, to the bit, as
    one given the rows ``streamssl.sources.hashing.hash_csv`` writes."""
    from streamssl.learner.fold import FeatureFold

    X, H, labels = _wide_stream(tmp_path)
    wide = StreamLearner(seed=0, fold=FeatureFold(max_inputs=64), linear=False)
    hashed = StreamLearner(seed=0, fold=FeatureFold(max_inputs=64), linear=False)
    for start in range(0, 300, 50):
        rows = slice(start, start + 50)
        np.testing.assert_array_equal(wide.predict_proba_many(X[rows]), hashed.predict_proba_many(H[rows]))
        wide.learn_many(X[rows], labels[rows])
        hashed.learn_many(H[rows], labels[rows])
    assert (wide.n_inputs_, wide.n_own_, hashed.n_inputs_, hashed.n_own_) == (700, 64, 64, 64)
    assert wide.labels_used == hashed.labels_used == 75
    with pytest.raises(ValueError, match="expected 700 features"):
        wide.predict_proba_many(H[:1])  # the event's width is still checked


def test_the_linear_head_reads_wide_events_unfolded_on_every_path(tmp_path):
    """The linear head (a product per column, cheap at any width) reads the unfolded event: in
    micro-batches, one event at a time with its gathered labels across a checkpoint, late
    labels, and rows shared with a replica (which carry the unfolded event after the heads' rows)."""
    from streamssl.learner.fold import FeatureFold

    X, _, labels = _wide_stream(tmp_path)
    model = StreamLearner(seed=0, fold=FeatureFold(max_inputs=64))
    model.share_labelled()
    model.learn_many(X[:200], labels[:200])
    assert model.heads["linear"].model.W.shape[0] == 700
    for i in range(200, 206):  # one at a time: the labels gather, and a checkpoint holds them
        model.predict_proba_one(dict(enumerate(X[i])))
        model.learn_one(dict(enumerate(X[i])), i % 2)
    restored = StreamLearner.from_state_dict(serialize.loads(serialize.dumps(model.state_dict())))
    assert restored._gathered_state()["wide"].shape == (6, 700)
    restored.learn_late_labels(X[210:220], [0, 1] * 5)
    assert restored.labels_used == model.labels_used + 16
    rows, shared = model.take_labelled()
    assert rows.shape == (len(shared), model.n_features_ + 700)
    replica = StreamLearner(seed=1, fold=FeatureFold(max_inputs=64))
    replica.learn_many(X[250:260], [None] * 10)
    replica.learn_shared(rows, shared)
    assert replica.labels_used == len(shared) and replica.heads["linear"].model.W.shape[0] == 700
    with pytest.raises(ValueError, match="columns"):
        replica.learn_shared(rows[:, :-1], shared)
    np.testing.assert_allclose(restored.predict_proba_many(X[280:]).sum(axis=1), 1.0)


def test_a_checkpoint_from_before_the_fold_keeps_its_width():
    """Learners saved before the fold stage learned wide events unfolded; restored, they go on so."""
    from streamssl.learner.stream_learner import _arguments

    assert _arguments({"mlp": None})["fold"] is False
    assert StreamLearner(seed=0).fold is True
