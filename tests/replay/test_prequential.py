"""Tests for streamssl.replay.prequential: the test-then-train protocol, the label budget and
delay, and the figures of the replay summary."""

from __future__ import annotations

import json
from collections import Counter, deque

import numpy as np
import pytest

from streamssl.drift.monitor import DriftEvent
from streamssl.replay.peers import RiverBatchAdapter
from streamssl.replay.prequential import ReplaySummary, cohen_kappa, prequential
from streamssl.sources.file import Batch

JSON_KEYS = {
    "events", "accuracy", "kappa", "events_per_second", "peak_rss_mb", "labels_used",
    "pseudo_labels_accepted", "pseudo_label_precision", "drifts", "drift_events", "ssl", "experts",
    "accuracy_after_first_batch", "majority_rate", "no_change_accuracy", "rows_rejected", "label_column",
    "calibration_error", "estimated_accuracy", "reliability",
}


class RecordingModel:
    """A fake model that records every call, in order.

    Column 0 of an event holds its position in the stream, column 1 the index (in
    ``classes_``) of the class it will be predicted as, so the log names events by position
    and predictions are scripted by the test.
    """

    def __init__(self, classes=(0, 1)) -> None:
        self.classes_ = list(classes)
        self.log: list[tuple[str, list[int], list | None]] = []

    def predict_proba_many(self, X: np.ndarray) -> np.ndarray:
        self.log.append(("predict", _ids(X), None))
        proba = np.zeros((len(X), len(self.classes_)))
        proba[np.arange(len(X)), X[:, 1].astype(int)] = 1.0
        return proba

    def learn_many(self, X: np.ndarray, y: list | None = None) -> None:
        self.log.append(("learn", _ids(X), None if y is None else list(y)))

    def learn_late_labels(self, X: np.ndarray, y: list) -> None:
        self.log.append(("late", _ids(X), list(y)))

    def calls(self, kind: str) -> list[tuple[list[int], list | None]]:
        return [(ids, y) for k, ids, y in self.log if k == kind]


def _ids(X: np.ndarray) -> list[int]:
    return X[:, 0].astype(int).tolist()


def stream(y: list, batch_size: int, predicted: list[int] | None = None) -> list[Batch]:
    """Batches of events 0..n-1 with true labels ``y`` and scripted predictions."""
    n = len(y)
    predicted = [0] * n if predicted is None else predicted
    X = np.column_stack([np.arange(n), predicted]).astype(np.float64)
    return [
        Batch(X[i:i + batch_size], list(y[i:i + batch_size]), np.arange(i, min(i + batch_size, n)) + 2)
        for i in range(0, n, batch_size)
    ]


def run(batches, model, **kwargs) -> ReplaySummary:
    results = list(prequential(batches, model, **kwargs))
    return results[-1].summary if results else ReplaySummary()


def labels(n: int, seed: int = 1) -> list[int]:
    return np.random.default_rng(seed).integers(0, 2, n).tolist()


# -- test then train ---------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 7, 64])
@pytest.mark.parametrize("label_delay", [0, 5])
def test_every_batch_is_predicted_before_any_of_it_is_learned(batch_size, label_delay):
    model = RecordingModel()
    run(stream(labels(200), batch_size), model, label_rate=0.5, label_delay=label_delay, seed=0)

    predicted: set[int] = set()
    for kind, ids, _ in model.log:
        if kind == "predict":
            assert not predicted & set(ids), "an event was predicted twice"
            predicted |= set(ids)
        else:
            assert set(ids) <= predicted, f"{kind} saw events {sorted(set(ids) - predicted)} before predicting them"
    # learn_many gets exactly the batch that was just predicted.
    kinds = [k for k, _, _ in model.log if k != "late"]
    assert kinds == ["predict", "learn"] * len(kinds[::2])
    assert [ids for ids, _ in model.calls("predict")] == [ids for ids, _ in model.calls("learn")]
    assert predicted == set(range(200))


def test_the_loop_is_lazy_one_batch_per_result():
    model = RecordingModel()
    results = prequential(stream(labels(30), 10), model, label_rate=1.0)
    assert model.log == []
    first = next(results)
    assert (first.size, first.summary.events) == (10, 10)
    assert len(model.calls("predict")) == 1
    assert [r.summary.events for r in results] == [20, 30]


def test_empty_batches_are_skipped_without_touching_the_model():
    model = RecordingModel()
    empty = Batch(np.zeros((0, 2)), [], np.zeros(0, dtype=np.int64))
    batches = stream(labels(10), 5)
    results = list(prequential([empty, batches[0], empty, batches[1]], model, label_rate=1.0))
    assert [r.size for r in results] == [5, 5]
    assert [ids for ids, _ in model.calls("predict")] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


# -- the label mask ----------------------------------------------------------------------


def revealed_mask(model: RecordingModel, n: int) -> np.ndarray:
    """Which events reached the model with their label (learn_many or late)."""
    mask = np.zeros(n, dtype=bool)
    for ids, y in model.calls("learn") + model.calls("late"):
        if y is not None:
            for i, label in zip(ids, y):
                if label is not None:
                    assert not mask[i], f"label of event {i} given twice"
                    mask[i] = True
    return mask


@pytest.mark.parametrize("seed,rate", [(0, 0.3), (7, 0.05), (123, 0.9)])
def test_label_mask_is_the_seeded_draw_whatever_the_batch_size(seed, rate):
    n = 500
    y = labels(n)
    expected = np.random.default_rng(seed).random(n) < rate
    for batch_size in (1, 7, 64):
        model = RecordingModel()
        summary = run(stream(y, batch_size), model, label_rate=rate, seed=seed)
        np.testing.assert_array_equal(revealed_mask(model, n), expected, err_msg=f"batch size {batch_size}")
        assert summary.labels_used == expected.sum()
        # The labels given are the true ones.
        given = {i: v for ids, lab in model.calls("learn") for i, v in zip(ids, lab) if v is not None}
        assert given == {i: y[i] for i in np.flatnonzero(expected)}


def test_batch_result_counts_the_labels_revealed_in_its_batch():
    n, seed, rate = 100, 3, 0.4
    expected = np.random.default_rng(seed).random(n) < rate
    results = list(prequential(stream(labels(n), 16), RecordingModel(), label_rate=rate, seed=seed))
    assert [r.labelled for r in results] == [int(expected[i:i + 16].sum()) for i in range(0, n, 16)]
    assert [r.size for r in results] == [16] * 6 + [4]
    assert all(r.confidence.shape == (r.size,) for r in results)


def test_label_rate_zero_reveals_nothing():
    model = RecordingModel()
    summary = run(stream(labels(300), 32), model, label_rate=0.0, seed=0)
    assert summary.labels_used == 0
    assert model.calls("learn") and all(y is None or set(y) == {None} for _, y in model.calls("learn"))
    assert model.calls("late") == []
    assert summary.scored == 300  # labels are still used for scoring


def test_label_rate_one_with_delay_zero_learns_every_label_with_its_batch():
    y = labels(50)
    model = RecordingModel()
    summary = run(stream(y, 8), model, label_rate=1.0)
    assert [v for _, lab in model.calls("learn") for v in lab] == y
    assert summary.labels_used == 50 and model.calls("late") == []


# -- delayed labels ----------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 7, 64])
@pytest.mark.parametrize("delay", [1, 5, 64, 150])
def test_delayed_label_arrives_right_after_event_i_plus_delay_is_predicted(batch_size, delay):
    n, seed, rate = 200, 4, 0.5
    y = labels(n)
    mask = np.random.default_rng(seed).random(n) < rate
    model = RecordingModel()
    summary = run(stream(y, batch_size), model, label_rate=rate, label_delay=delay, seed=seed)

    # learn_many never carries a label when labels are delayed.
    assert all(lab is None or set(lab) == {None} for _, lab in model.calls("learn"))
    last_predicted = -1
    arrived: dict[int, object] = {}
    for kind, ids, lab in model.log:
        if kind == "predict":
            last_predicted = max(ids)
        elif kind == "late":
            for i, v in zip(ids, lab):
                assert i + delay <= last_predicted, f"label of {i} arrived before event {i + delay} was predicted"
                # ...and no later than the batch that holds event i + delay.
                assert i + delay > last_predicted - batch_size, f"label of {i} held back too long"
                assert i not in arrived
                arrived[i] = v
    due = [i for i in np.flatnonzero(mask) if i + delay < n]
    assert sorted(arrived) == due
    assert arrived == {i: y[i] for i in due}
    assert summary.labels_used == len(due)


def test_labels_due_after_the_end_of_the_stream_are_never_learned():
    n, delay = 40, 15
    model = RecordingModel()
    summary = run(stream(labels(n), 10), model, label_rate=1.0, label_delay=delay)
    learned = {i for ids, _ in model.calls("late") for i in ids}
    assert learned == set(range(n - delay))
    assert summary.labels_used == n - delay
    # The last call of the run is the last batch's late labels: nothing is flushed at the end.
    assert model.log[-1] == ("late", list(range(15, 25)), labels(n)[15:25])


def test_delay_longer_than_the_stream_learns_no_label():
    model = RecordingModel()
    summary = run(stream(labels(30), 10), model, label_rate=1.0, label_delay=30)
    assert summary.labels_used == 0 and model.calls("late") == []


# -- events without a true label ---------------------------------------------------------


@pytest.mark.parametrize("delay", [0, 3])
def test_event_without_true_label_is_neither_scored_nor_revealed(delay):
    y = [1, None, 0, None, None, 1, 0, 1, None, 0] * 5
    predicted = [1, 0, 1, 1, 0, 1, 0, 0, 1, 0] * 5
    model = RecordingModel()
    summary = run(stream(y, 4, predicted), model, label_rate=1.0, label_delay=delay, seed=0)
    known = [i for i, v in enumerate(y) if v is not None]
    assert summary.scored == len(known) == 30
    assert summary.correct == sum(predicted[i] == y[i] for i in known) == 20
    assert summary.accuracy == pytest.approx(20 / 30)
    assert all(t is not None for t, _ in summary.confusion)
    mask = revealed_mask(model, len(y))
    assert not mask[[i for i, v in enumerate(y) if v is None]].any()
    due = [i for i in known if i + delay < len(y)]
    assert np.flatnonzero(mask).tolist() == due
    assert summary.labels_used == len(due)


# -- accuracy and kappa ------------------------------------------------------------------


def test_accuracy_and_kappa_match_a_hand_computed_confusion():
    # true/predicted: (up, up) x4, (up, down) x1, (down, up) x2, (down, down) x3
    truth = ["up"] * 5 + ["down"] * 5
    guess = ["up"] * 4 + ["down"] + ["up"] * 2 + ["down"] * 3
    classes = ["up", "down"]
    model = RecordingModel(classes)
    summary = run(stream(truth, 3, [classes.index(g) for g in guess]), model, label_rate=0.0)
    assert summary.confusion == Counter({("up", "up"): 4, ("up", "down"): 1, ("down", "up"): 2, ("down", "down"): 3})
    assert summary.accuracy == pytest.approx(0.7)
    # p_o = 0.7; p_e = (5 * 6 + 5 * 4) / 100 = 0.5; kappa = 0.2 / 0.5
    assert summary.kappa == pytest.approx(0.4)
    assert summary.to_json()["kappa"] == pytest.approx(0.4)


def test_kappa_edge_cases():
    assert cohen_kappa(Counter()) == 0.0
    assert cohen_kappa(Counter({(0, 0): 5, (1, 1): 5})) == pytest.approx(1.0)
    assert cohen_kappa(Counter({(0, 1): 5, (1, 0): 5})) == pytest.approx(-1.0)
    # One class everywhere: chance agreement is 1, kappa is defined as 0.
    assert cohen_kappa(Counter({(0, 0): 10})) == 0.0
    # Always predicting the majority class is no better than chance.
    assert cohen_kappa(Counter({(0, 0): 8, (1, 0): 2})) == pytest.approx(0.0)


def test_predictions_before_any_class_is_known_count_as_wrong():
    class Blank(RecordingModel):
        def predict_proba_many(self, X):
            self.log.append(("predict", _ids(X), None))
            return np.zeros((len(X), 0))

    results = list(prequential(stream([0, 1, 1], 3), Blank(classes=()), label_rate=1.0))
    summary = results[-1].summary
    assert (summary.scored, summary.correct, summary.accuracy) == (3, 0, 0.0)
    np.testing.assert_array_equal(results[-1].confidence, np.zeros(3))


# -- pseudo-labels -----------------------------------------------------------------------


class PseudoLabelling(RecordingModel):
    """Accepts the scripted ``(rows, labels)`` of each learn_many call, in turn."""

    def __init__(self, script) -> None:
        super().__init__()
        self.script = list(script)
        self.last_pseudo_labels = (np.zeros(0, dtype=np.int64), [])

    def learn_many(self, X, y=None):
        super().learn_many(X, y)
        rows, labels_ = self.script.pop(0)
        self.last_pseudo_labels = (np.array(rows, dtype=np.int64), list(labels_))


def test_pseudo_label_precision_counts_only_accepted_rows_with_a_true_label():
    y = [1, None, 0, 1, None, 0,  # batch 0
         0, 0, None, 1, 1, 1]     # batch 1
    model = PseudoLabelling([
        ([0, 1, 2, 3], [1, 0, 1, 1]),  # scored: rows 0 (right), 2 (wrong), 3 (right); row 1 has no truth
        ([2, 5, 0], [0, 1, 1]),        # scored: rows 5 (right), 0 (wrong); row 2 has no truth
    ])
    summary = run(stream(y, 6), model, label_rate=0.0)
    assert summary.pseudo_labels_accepted == 7
    assert summary.pseudo_labels_scored == 5
    assert summary.pseudo_labels_correct == 3
    assert summary.pseudo_label_precision == pytest.approx(3 / 5)
    assert summary.to_json()["pseudo_label_precision"] == pytest.approx(0.6)


def test_pseudo_label_precision_is_none_when_no_accepted_row_has_a_true_label():
    model = PseudoLabelling([([1, 4], [0, 0])])
    summary = run(stream([1, None, 0, 1, None], 5), model, label_rate=0.0)
    assert summary.pseudo_labels_accepted == 2
    assert summary.pseudo_label_precision is None
    assert summary.to_json()["pseudo_label_precision"] is None


def test_model_without_pseudo_labels_reports_none():
    summary = run(stream(labels(20), 5), RecordingModel(), label_rate=0.5)
    assert summary.pseudo_labels_accepted == 0
    assert summary.pseudo_label_precision is None


# -- drifts ------------------------------------------------------------------------------


def event(position: int, level: str) -> DriftEvent:
    return DriftEvent(position, "error", "ADWIN", level, 0.0)


class Drifting(RecordingModel):
    """Adds the scripted drift events after each learn_many call; ``history`` bounds the list
    of drift events it keeps, as StreamLearner's monitor does."""

    def __init__(self, script, history: int | None = None) -> None:
        super().__init__()
        self.script = list(script)
        self._events: deque[DriftEvent] = deque(maxlen=history)

    def learn_many(self, X, y=None):
        super().learn_many(X, y)
        self._events.extend(self.script.pop(0) if self.script else [])

    @property
    def drift_events(self) -> list[DriftEvent]:
        return list(self._events)


def test_drifts_are_the_positions_of_drift_level_events_each_once():
    model = Drifting([
        [event(3, "warning")],
        [],
        [event(14, "drift"), event(15, "warning")],
        [event(19, "drift")],
        [event(22, "warning"), event(23, "drift")],
    ])
    summary = run(stream(labels(25), 5), model, label_rate=1.0)
    assert summary.drifts == [14, 19, 23]
    assert summary.to_json()["drifts"] == [14, 19, 23]
    # Every detection, warnings too, with where it came from, in drift_events.
    listed = summary.to_json()["drift_events"]
    assert [(e["position"], e["level"]) for e in listed] == [
        (3, "warning"), (14, "drift"), (15, "warning"), (19, "drift"), (22, "warning"), (23, "drift")]
    assert set(listed[0]) == {"position", "signal", "detector", "level", "statistic"}


def test_drifts_after_the_learners_drift_history_is_full_are_still_reported():
    model = Drifting([[event(i * 10 + 5, "drift")] for i in range(6)], history=3)
    summary = run(stream(labels(60), 10), model, label_rate=1.0)
    assert summary.drifts == [5, 15, 25, 35, 45, 55]


# -- settings and the JSON -------------------------------------------------------------


@pytest.mark.parametrize("kwargs,what", [
    ({"label_rate": -0.1}, "label_rate"), ({"label_rate": 1.5}, "label_rate"),
    ({"label_rate": float("nan")}, "label_rate"), ({"label_delay": -1}, "label_delay"),
])
def test_invalid_settings_raise_value_error(kwargs, what):
    with pytest.raises(ValueError, match=what):
        list(prequential(stream(labels(5), 5), RecordingModel(), **kwargs))


def test_summary_json_has_exactly_the_documented_keys():
    model = Drifting([[event(4, "drift")]])
    summary = run(stream(labels(40), 8), model, label_rate=0.5, seed=0)
    result = summary.to_json()
    assert set(result) == JSON_KEYS
    assert json.loads(json.dumps(result)) == result
    assert result["events"] == 40
    assert 0.0 <= result["accuracy"] <= 1.0
    assert result["events_per_second"] > 0 and result["peak_rss_mb"] > 0
    assert result["labels_used"] == int((np.random.default_rng(0).random(40) < 0.5).sum())
    assert result["drifts"] == [4]
    assert set(ReplaySummary().to_json()) == JSON_KEYS
    assert ReplaySummary().to_json()["accuracy"] == 0.0


# -- a river peer through the same protocol ----------------------------------------------


def blobs(n: int, seed: int) -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, 3)) + 2.5 * y[:, None]
    return X, y.tolist()


@pytest.mark.parametrize("delay", [0, 25])
def test_river_gaussian_nb_learns_only_the_revealed_labels(delay):
    from river import naive_bayes

    n, rate, seed = 400, 0.2, 5
    X, y = blobs(n, seed=11)
    batches = [Batch(X[i:i + 16], y[i:i + 16], np.arange(i, min(i + 16, n))) for i in range(0, n, 16)]
    peer = RiverBatchAdapter(naive_bayes.GaussianNB(), ["f0", "f1", "f2"])
    learned: list[tuple[dict, int]] = []
    learn_one = peer.model.learn_one
    peer.model.learn_one = lambda x, label: (learned.append((x, label)), learn_one(x, label))[1]

    summary = run(batches, peer, label_rate=rate, label_delay=delay, seed=seed)

    mask = np.random.default_rng(seed).random(n) < rate
    due = [i for i in np.flatnonzero(mask) if i + delay < n]
    assert summary.labels_used == peer.labels_used == len(learned) == len(due)
    assert [label for _, label in learned] == [y[i] for i in due]
    assert [list(x.values()) for x, _ in learned] == [X[i].tolist() for i in due]
    assert sum(peer.model.class_counts.values()) == len(due)
    assert summary.scored == n and summary.accuracy > 0.85


def test_river_lr_peer_handles_more_than_two_classes():
    from streamssl.replay.peers import PEERS, RiverBatchAdapter

    rng = np.random.default_rng(0)
    centres = np.eye(4, 3) * 4
    y = rng.integers(0, 4, 2000)
    X = centres[y] + rng.normal(size=(2000, 3))
    peer = RiverBatchAdapter(PEERS["river-lr"](0), ["a", "b", "c"])
    batches = [Batch(X[i:i + 50], y[i:i + 50].tolist(), np.arange(i, i + 50)) for i in range(0, 2000, 50)]
    *_, last = prequential(batches, peer, label_rate=1.0, seed=0)
    assert last.summary.accuracy > 0.8


# -- the learner's members ----------------------------------------------------------------


def test_experts_report_each_heads_prequential_accuracy_and_weight():
    from streamssl.learner import StreamLearner

    X, y = blobs(1200, seed=3)
    batches = [Batch(X[i:i + 50], y[i:i + 50], np.arange(i, i + 50)) for i in range(0, 1200, 50)]
    # One head alone answers every event, scored before it learns its labels: with every label
    # revealed at once, its accuracy on labelled events is the replay's own (two warm-up events
    # first, so that no event of the replay is predicted before a class is known), but for the
    # standardiser, which has taken in the batch when the head is scored (no label involved).
    model = StreamLearner(temporal=False, memory=False, raw_head=False, trees=False, linear=False, seed=0)
    model.learn_many(X[:2] + 10, [0, 1])
    n0, c0 = model.head_tally["mlp"]
    alone = run(batches, model, label_rate=1.0).to_json()
    assert set(alone["experts"]) == {"mlp"} and alone["experts"]["mlp"]["weight"] == 1.0
    n, c = model.head_tally["mlp"]
    assert n - n0 == 1200 and abs((c - c0) / 1200 - alone["accuracy"]) < 0.01
    assert alone["experts"]["mlp"]["accuracy"] == c / n
    experts = run(batches, StreamLearner(seed=0), label_rate=0.2, seed=1).to_json()["experts"]
    assert set(experts) == {"mlp", "raw", "memory", "tree", "raw-tree", "linear"}
    assert sum(e["weight"] for e in experts.values()) == pytest.approx(1.0)
    assert all(0.7 < e["accuracy"] <= 1.0 for e in experts.values())
    assert run(batches, RiverBatchAdapter(__import__("river").naive_bayes.GaussianNB(), ["a", "b", "c"]),
               label_rate=0.2).to_json()["experts"] is None  # a peer has no members to report


class KeyedModel(RecordingModel):
    """Takes each event's entity, as StreamLearner does."""

    def predict_proba_many(self, X: np.ndarray, keys=None) -> np.ndarray:
        self.log.append(("predict-keys", list(keys), None))
        return super().predict_proba_many(X)

    def learn_many(self, X: np.ndarray, y: list | None = None, keys=None) -> None:
        self.log.append(("learn-keys", list(keys), None))
        super().learn_many(X, y)

    def learn_late_labels(self, X: np.ndarray, y: list, keys=None) -> None:
        self.log.append(("late-keys", list(keys), None))
        super().learn_late_labels(X, y)


def test_keys_reach_a_model_that_takes_them_late_labels_included():
    batches = [Batch(b.X, b.y, b.lines, [f"k{int(i) % 3}" for i in b.X[:, 0]]) for b in stream(labels(40), 8)]
    model = KeyedModel()
    run(batches, model, label_rate=1.0, label_delay=5)
    assert [ids for ids, _ in model.calls("predict-keys")][0] == ["k0", "k1", "k2", "k0", "k1", "k2", "k0", "k1"]
    late = [(ids, keys) for (ids, _), (keys, _) in zip(model.calls("late"), model.calls("late-keys"))]
    assert late and all(keys == [f"k{i % 3}" for i in ids] for ids, keys in late)
    plain = RecordingModel()  # a model without keys (a river peer) is given none
    run(batches, plain, label_rate=1.0)
    assert plain.calls("predict")


def test_the_summary_reads_accuracy_against_its_baselines():
    y = [0, 0, 1, 1, 1, 1, 0, 1]
    summary = run(stream(y, 4, predicted=[1] * 8), RecordingModel(), label_rate=1.0)
    assert summary.majority_rate == 5 / 8 and summary.accuracy == 5 / 8
    assert summary.no_change_accuracy == 4 / 8  # 0→0, 1→1, 1→1, 1→1 (the first event has none before it)
    assert summary.accuracy_after_first_batch == 3 / 4


class AbstainingModel(RecordingModel):
    """Gives no probability mass to the events whose column 1 is -1."""

    def predict_proba_many(self, X: np.ndarray) -> np.ndarray:
        proba = np.zeros((len(X), len(self.classes_)))
        answered = X[:, 1] >= 0
        proba[np.flatnonzero(answered), X[answered, 1].astype(int)] = 1.0
        return proba


@pytest.mark.parametrize("classes", [(0, 1), (1, 0)])
def test_an_event_without_probability_mass_is_scored_wrong_whatever_the_column_order(classes):
    # Events 0-3 answered right, events 4-7 given no votes at all; their labels are each
    # column's class in turn, so crediting the first column would score some of them right.
    y = [0, 1, 0, 1, 0, 1, 0, 1]
    scripted = [classes.index(label) for label in y[:4]] + [-1] * 4
    *_, last = prequential(stream(y, 4, scripted), AbstainingModel(classes))
    assert last.summary.scored == 8 and last.summary.correct == 4
