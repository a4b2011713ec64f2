"""The few-label drift detector: a risk-adjusted Bernoulli CUSUM on the calibrated residual."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamssl.drift.cusum import CUSUM
from streamssl.drift.detectors import ChannelSpec
from streamssl.drift.monitor import DriftMonitor
from streamssl.learner import StreamLearner
from streamssl.state import checkpoint


def test_each_label_adds_its_log_likelihood_ratio_kept_above_zero():
    detector = CUSUM(odds=2.0, threshold=100.0)
    detector.update(-0.8)  # wrong at 0.8: P(wrong) 0.2 under calibration, 0.4 / 1.2 under the alternative
    assert detector.statistic == pytest.approx(math.log((0.4 / 1.2) / 0.2))
    detector.update(1.0 - 0.8)  # right at 0.8
    assert detector.statistic == pytest.approx(math.log((0.4 / 1.2) / 0.2) + math.log((0.8 / 1.2) / 0.8))
    for _ in range(50):
        detector.update(0.1)  # right at 0.9, again and again: never below 0
    assert detector.statistic == 0.0
    detector.update(0.0)  # right at 1.0: the residual 0 is a right answer
    assert detector.statistic == 0.0 and detector.n == 53


def test_false_alarms_are_rarer_than_walds_bound_while_calibration_holds():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.5, 1.0, 50_000)
    right = rng.random(50_000) < p
    detector, alarms = CUSUM(), 0
    for r in right - p:
        detector.update(r)
        alarms += detector.drift_detected
    assert alarms <= 50_000 / math.exp(detector.threshold)  # at most one per e^7 = 1,097 labels on average
    assert abs(detector.estimation) < 0.05  # the mean residual is about 0


def test_a_change_of_concept_is_caught_within_a_few_dozen_labels():
    rng = np.random.default_rng(1)
    detector = CUSUM()
    for _ in range(300):
        p = rng.uniform(0.7, 1.0)
        detector.update(float(rng.random() < p) - p)
        assert not detector.drift_detected
    for i in range(1, 100):  # same confidence, now right only half of the time
        p = rng.uniform(0.7, 1.0)
        detector.update(float(rng.random() < 0.5) - p)
        if detector.drift_detected:
            break
    assert detector.drift_detected and i <= 30 and detector.estimation < 0


def test_it_listens_to_the_residual_only():
    assert ChannelSpec.parse("residual:CUSUM:threshold=5").build().threshold == 5
    assert ChannelSpec.parse("residual:CUSUM").direction == "down"
    with pytest.raises(ValueError, match="only the residual"):
        ChannelSpec.parse("error:CUSUM")
    with pytest.raises(ValueError, match="odds > 1"):
        CUSUM(odds=1.0)


def test_the_learner_feeds_it_and_sees_a_concept_flip_from_its_labels(tmp_path):
    """Inputs do not change, only the concept (the label of x0 > 0 flips at event 4,000); 5 % of
    the labels are known."""
    rng = np.random.default_rng(2)
    n, flip = 8000, 4000
    X = rng.normal(size=(n, 3))
    truth = (X[:, 0] > 0).astype(int)
    truth[flip:] = 1 - truth[flip:]
    known = rng.random(n) < 0.05
    model = StreamLearner(seed=0, drift=DriftMonitor(("residual:CUSUM",), respond=False), trees=False)
    for i in range(0, flip, 50):
        model.learn_many(X[i:i + 50], [int(t) if k else None for t, k in zip(truth[i:i + 50], known[i:i + 50])])
    assert not model.drift_events  # no false alarm before the flip
    path = tmp_path / "learner.ckpt"
    checkpoint.save_learner(model, path)  # the detector goes through the restricted loader
    model = checkpoint.load_learner(path, device="cpu")
    for i in range(flip, n, 50):
        model.learn_many(X[i:i + 50], [int(t) if k else None for t, k in zip(truth[i:i + 50], known[i:i + 50])])
    drifts = [e.position for e in model.drift_events if e.signal == "residual" and e.level == "drift"]
    assert drifts and flip < drifts[0] <= flip + 500


def _labels_until_detected(detector: CUSUM, rng: np.random.Generator, right_rate: float | None) -> int:
    """Labels at confidence 0.95 to 1.0 until ``detector`` fires (right at that confidence, or
    at ``right_rate`` after a change of concept); 10,000 if it never does."""
    for i in range(1, 10_001):
        p = rng.uniform(0.95, 1.0)
        detector.update(float(rng.random() < (p if right_rate is None else right_rate)) - p)
        if detector.drift_detected:
            return i
    return 10_000


def test_large_multipliers_see_a_large_change_sooner_and_false_alarms_stay_as_rare():
    # A new concept that gets half of the confident answers wrong: the sum at odds 30 gains
    # about three times as much per label as the one at odds 3.
    alone = [_labels_until_detected(CUSUM(odds=3.0), np.random.default_rng(s), 0.5) for s in range(20)]
    several = [_labels_until_detected(CUSUM(), np.random.default_rng(s), 0.5) for s in range(20)]
    assert np.mean(several) < 0.6 * np.mean(alone), (several, alone)
    # While calibration holds: no more alarms than Wald's bound for one multiplier.
    rng, detector, alarms = np.random.default_rng(3), CUSUM(), 0
    for _ in range(50_000):
        p = rng.uniform(0.5, 1.0)
        detector.update(float(rng.random() < p) - p)
        alarms += detector.drift_detected
    assert alarms <= 50_000 / math.exp(detector.threshold)


def test_a_detector_checkpointed_with_one_multiplier_loads_and_goes_on():
    old = CUSUM.__new__(CUSUM)
    old.__setstate__({"odds": 3.0, "threshold": 7.0, "statistic": 2.5, "n": 10, "estimation": -0.01,
                      "drift_detected": False})  # what a checkpoint before 2026-12-04 holds
    assert old.odds == (3.0,) and old.statistic == 2.5
    old.update(-0.99)  # a confident error adds about log 3
    assert old.statistic == pytest.approx(2.5 + math.log(3 / (0.99 + 3 * 0.01)))
