"""Calibration of the served answer (temperature refit online) and its measure (ECE)."""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

from streamssl.learner import StreamLearner
from streamssl.learner.pseudo import PseudoLabelPolicy
from streamssl.learner.calibration import Reliability, TemperatureCalibrator


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_with_a_trend_the_temperature_of_now_is_found_where_one_for_the_window_lags(seed):
    """A learner improving across the window: labels drawn from softmax(z / T) with log T
    falling from log 3 (the oldest label) to 0 (the newest). One temperature for the window
    finds about its middle's; with the trend, the newest end's."""
    rng = np.random.default_rng(seed)
    n = 2000
    z = rng.normal(scale=3.0, size=(n, 4))
    temperature = np.exp(np.linspace(np.log(3.0), 0.0, n))
    y = np.array([rng.choice(4, p=p) for p in _softmax(z / temperature[:, None])])
    trend, constant = (TemperatureCalibrator(window=n, min_labels=1, trend=t) for t in (8.0, None))
    for cal in (trend, constant):
        cal.observe(_softmax(z), y)
    assert constant.temperature == pytest.approx(np.sqrt(3.0), rel=0.15)
    assert trend.temperature == pytest.approx(1.0, rel=0.2)


@pytest.mark.parametrize("floor", [None, 0.02])
@pytest.mark.parametrize("start", [0.05, 1.0, 20.0])  # the last fit's temperature: far off, or near
def test_the_fit_reaches_the_minimum_a_simplex_search_finds(start, floor):
    """The window's penalised log-loss minimised by Newton's method (the fit) and by scipy's
    Nelder-Mead on a loss written here in numpy: the same temperature (and uniform share), from
    a start on the loss's flat far side included (answers so soft at T = 20 that the loss barely
    moves)."""
    from scipy.optimize import minimize

    rng = np.random.default_rng(1)
    n = 128
    z = rng.normal(scale=3.0, size=(n, 3))
    temperature = np.exp(np.linspace(np.log(4.0), np.log(2.0), n))
    y = np.array([rng.choice(3, p=p) for p in _softmax(z / temperature[:, None])])
    cal = TemperatureCalibrator(window=n, min_labels=n + 1, floor=floor)
    cal.observe(_softmax(z), y)
    cal.temperature = start
    L, labels = cal._window()
    at = np.linspace(-1.0, 0.0, n)
    center = 0.0 if floor is None else np.log(floor / (1 - floor))

    def loss(p):
        share = 0.0 if floor is None else 1 / (1 + np.exp(-p[2]))
        served = (1 - share) * _softmax(L / np.exp(p[0] + p[1] * at)[:, None]) + share / 3
        prior = 8.0 * p[1] ** 2 / 2 + (0.0 if floor is None else (p[2] - center) ** 2 / 2)
        return (-np.log(served[np.arange(n), labels]).sum() + prior) / n

    x0 = np.zeros(2) if floor is None else np.array([0.0, 0.0, center])
    best = minimize(loss, x0=x0, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-12, "maxiter": 4000})
    fitted, share = cal._fit()
    assert np.log(fitted) == pytest.approx(best.x[0], abs=1e-3)
    assert share == (0.0 if floor is None else pytest.approx(1 / (1 + np.exp(-best.x[2])), abs=1e-4))
    assert 1.3 < fitted < 3.0  # the newest end's temperature, 2, within the noise of 128 labels


def test_the_floor_finds_answers_wrong_whatever_their_confidence():
    """Labels drawn from the answer itself, then a fifth of them replaced by a uniform draw
    (label noise): the answers right at 0.99 are right about 0.9 of the time. One temperature
    cannot serve both the confident answers (too sure) and the unsure ones; the floor's share
    finds about 0.2 and the served answer's ECE falls."""
    rng = np.random.default_rng(3)
    n = 4000
    proba = _softmax(rng.normal(scale=4.0, size=(n, 2)))
    y = np.array([rng.choice(2, p=p) for p in proba])
    y = np.where(rng.random(n) < 0.2, rng.integers(0, 2, n), y)
    floor, plain = (TemperatureCalibrator(window=n, min_labels=1, trend=None, floor=f) for f in (0.02, None))
    ece = {}
    for cal in (floor, plain):
        cal.observe(proba, y)
        served, rel = cal.apply(proba), Reliability()
        rel.add(served.max(1), served.argmax(1) == y)
        ece[cal.floor] = rel.calibration_error
        assert (served.argmax(1) == proba.argmax(1)).all()  # the answer's class never moves
    assert floor.uniform == pytest.approx(0.2, abs=0.04)
    assert ece[0.02] < 0.02 < ece[None]


@pytest.mark.parametrize("true_temperature", [0.5, 2.0])
def test_the_temperature_that_made_the_labels_is_found(true_temperature):
    """Labels drawn from softmax(z / T): the answer softmax(z) is over- (T > 1) or
    under-confident (T < 1), and the fitted temperature is T."""
    rng = np.random.default_rng(0)
    z = rng.normal(scale=3.0, size=(4000, 4))
    truth = _softmax(z / true_temperature)
    y = np.array([rng.choice(4, p=p) for p in truth])
    cal = TemperatureCalibrator(window=4000, min_labels=1, trend=None)
    cal.observe(_softmax(z), y)
    assert cal.temperature == pytest.approx(true_temperature, rel=0.1)
    before, after = Reliability(), Reliability()
    served = cal.apply(_softmax(z))
    before.add(_softmax(z).max(1), _softmax(z).argmax(1) == y)
    after.add(served.max(1), served.argmax(1) == y)
    assert after.calibration_error < 0.03 < before.calibration_error
    assert (served.argmax(1) == _softmax(z).argmax(1)).all()  # the answer's class never moves


@pytest.mark.parametrize("seed", [140, 220, 244])
def test_a_window_of_right_answers_sharpens_to_the_bound_without_numpy_warnings(seed):
    # Every answer right: the log-loss falls as T does, so Newton's trials go far out, where
    # 1 / T overflows; such a trial is refused quietly (it warned "overflow in exp" before).
    rng = np.random.default_rng(seed)
    k, n = int(rng.integers(2, 6)), int(rng.integers(5, 128))
    proba = rng.dirichlet(np.ones(k) * rng.choice([0.05, 0.3, 1, 5]), n)
    cal = TemperatureCalibrator(min_labels=1, refit=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cal.observe(proba, proba.argmax(axis=1))
    assert cal.temperature < 1.0


# A window a learner gave (every answer right, its class's probability below), recorded when
# the fit hung: from T = 1/20 one Newton step went to log T = -430, where (1/T)^2 overflows and
# the Hessian is NaN; no damping makes a NaN positive definite, and the damping loop never ended.
_ALL_RIGHT = [
    0.92531, 0.92524, 0.982, 0.92157, 0.81082, 0.90662, 0.67297, 0.93933, 0.89974, 0.95664, 0.89412,
    0.9006, 0.92911, 0.89888, 0.96049, 0.7868, 0.93084, 0.86893, 0.89807, 0.71939, 0.86751, 0.91164,
    0.81733, 0.96769, 0.91204, 0.93334, 0.62214, 0.89698, 0.91575, 0.91295, 0.84819, 0.91989,
    0.93213, 0.85382, 0.86248, 0.92533, 0.96599, 0.94467, 0.78505, 0.90758, 0.74214, 0.94072,
    0.89926, 0.94592, 0.94284, 0.94332, 0.89453, 0.93614, 0.51592, 0.81482, 0.94606, 0.94913,
    0.87434, 0.92912, 0.86219, 0.95426, 0.80163, 0.87281, 0.89413, 0.93127, 0.9524, 0.96369,
    0.93999, 0.85292, 0.92111, 0.87694, 0.94688, 0.90431, 0.91394, 0.96073, 0.87977, 0.92252,
    0.96653, 0.95799, 0.90659, 0.90556, 0.90726, 0.76491, 0.93636, 0.95052, 0.93947, 0.97122,
    0.91792, 0.97074, 0.89025, 0.87564, 0.95067, 0.87785, 0.94064, 0.88679, 0.96759, 0.87741,
    0.92344, 0.8497, 0.786, 0.95951, 0.93706, 0.93054, 0.92981, 0.93472, 0.79197, 0.68489, 0.96679,
    0.95614, 0.8666, 0.93923, 0.95529, 0.9018, 0.92832, 0.94034, 0.93919, 0.91774, 0.94611, 0.86486,
    0.89061, 0.9459, 0.92893, 0.943, 0.9397, 0.8252, 0.94006, 0.76305, 0.9218, 0.82816, 0.71416,
    0.81869, 0.85352, 0.95485
]


def test_a_hessian_that_overflows_ends_the_fit_at_the_bound():
    top = np.array(_ALL_RIGHT)
    cal = TemperatureCalibrator(min_labels=1, refit=1)
    cal.temperature, cal.uniform = 0.05, 0.048  # where the learner's last fit had left it
    fit = threading.Thread(target=cal.observe, args=(np.column_stack([top, 1 - top]), np.zeros(len(top), dtype=int)),
                           daemon=True)
    fit.start()
    fit.join(timeout=120)  # it takes milliseconds; the compiled loop releases the GIL
    assert not fit.is_alive(), "the fit did not end"
    assert cal.temperature == pytest.approx(1 / 20) and 0 < cal.uniform < 0.02


def test_it_waits_for_min_labels_and_refits_only_every_refit_labels():
    cal = TemperatureCalibrator(window=64, min_labels=20, refit=10)
    wrong = np.tile([0.99, 0.01], (5, 1))
    y = np.ones(5, dtype=int)  # all confident and wrong
    for _ in range(3):
        cal.observe(wrong, y)
    assert cal.temperature == 1.0 and cal.fitted_at == 0  # 15 labels < min_labels
    cal.observe(wrong, y)
    assert cal.temperature > 1.0 and cal.fitted_at == 20
    t = cal.temperature
    cal.observe(np.tile([0.6, 0.4], (5, 1)), np.zeros(5, dtype=int))
    assert cal.temperature == t  # 25 labels: the next fit is at 30
    cal.observe(np.tile([0.6, 0.4], (5, 1)), np.zeros(5, dtype=int))
    assert cal.fitted_at == 30


def test_the_window_follows_a_change_of_confidence():
    cal = TemperatureCalibrator(window=100, min_labels=1, refit=1)
    rng = np.random.default_rng(1)
    answer = np.tile([0.9, 0.1], (100, 1))
    cal.observe(answer, (rng.random(100) > 0.9).astype(int))  # right 90 %: calibrated already
    assert cal.apply(answer[:1])[0, 0] == pytest.approx(0.9, abs=0.05)
    cal.observe(answer, (rng.random(100) > 0.6).astype(int))  # now right 60 %
    assert cal.apply(answer[:1])[0, 0] == pytest.approx(0.6, abs=0.06)


def test_a_class_met_after_some_rows_counts_as_improbable_in_those_rows():
    cal = TemperatureCalibrator(window=50, min_labels=1)
    cal.observe(np.tile([0.7, 0.3], (10, 1)), np.zeros(10, dtype=int))
    cal.observe(np.tile([0.6, 0.3, 0.1], (10, 1)), np.zeros(10, dtype=int))
    assert np.isfinite(cal.temperature)
    assert cal.apply(np.array([[0.6, 0.3, 0.1]])).sum() == pytest.approx(1.0)


def test_state_round_trip_keeps_the_window_and_the_schedule():
    rng = np.random.default_rng(2)
    cal = TemperatureCalibrator(window=30, min_labels=5, refit=7)
    cal.observe(_softmax(rng.normal(size=(12, 3))), rng.integers(0, 3, 12))
    twin = TemperatureCalibrator(window=30, min_labels=5, refit=7)
    twin.load_state_dict(cal.state_dict())
    more, y = _softmax(rng.normal(size=(9, 3))), rng.integers(0, 3, 9)
    cal.observe(more, y)
    twin.observe(more, y)
    assert (twin.temperature, twin.fitted_at, twin.seen) == (cal.temperature, cal.fitted_at, cal.seen)


def test_reliability_bins_and_expected_calibration_error_by_hand():
    rel = Reliability(bins=10)
    # Bin (0.9, 1.0]: 1.0 and 0.95, one right; bin (0.5, 0.6]: 0.6, right; 0.0 goes to the first bin.
    rel.add([1.0, 0.95, 0.6, 0.0], [True, False, True, False])
    assert rel.n == 4
    diagram = {round(b["high"], 1): b for b in rel.diagram()}
    assert sorted(diagram) == [0.1, 0.6, 1.0]
    assert diagram[1.0]["events"] == 2 and diagram[1.0]["confidence"] == pytest.approx(0.975)
    # |1.95 - 1| + |0.6 - 1| + |0 - 0|, over 4 events
    assert rel.calibration_error == pytest.approx((0.95 + 0.4) / 4)
    assert rel.mean_confidence == pytest.approx(2.55 / 4)
    assert Reliability().calibration_error is None and Reliability().mean_confidence is None


def _noisy_stream(n: int = 4000, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    truth = (X[:, 0] + 0.8 * rng.normal(size=n) > 0).astype(int)  # a quarter of the labels flip
    y = [int(t) if i % 4 == 0 else None for i, t in enumerate(truth)]
    return X, truth, y


def test_the_learner_serves_calibrated_answers_with_the_same_classes():
    X, truth, y = _noisy_stream()
    models = {on: StreamLearner(seed=0, calibrate=on, trees=False) for on in (True, False)}
    rel = {on: Reliability() for on in models}
    for i in range(0, len(X), 100):
        answers = {on: m.predict_proba_many(X[i:i + 100]) for on, m in models.items()}
        if i:
            np.testing.assert_array_equal(answers[True].argmax(1), answers[False].argmax(1))
            for on, p in answers.items():
                rel[on].add(p.max(1), np.array(models[on].classes_)[p.argmax(1)] == truth[i:i + 100])
        for m in models.values():
            m.learn_many(X[i:i + 100], y[i:i + 100])
    assert models[True].calibrator.temperature != 1.0 and models[False].calibrator is None
    assert rel[True].calibration_error < 0.03
    assert rel[True].calibration_error < rel[False].calibration_error
    assert abs(rel[True].mean_confidence - rel[True].correct.sum() / rel[True].n) < 0.03


def test_checkpoints_from_before_calibration_serve_as_they_did():
    X, _, y = _noisy_stream(600, seed=3)
    model = StreamLearner(seed=0, calibrate=False)
    model.learn_many(X[:500], y[:500])
    state = model.state_dict()
    del state["params"]["calibrate"], state["calibrator"]  # as saved before calibration
    restored = StreamLearner.from_state_dict(state)
    assert restored.calibrator is None
    np.testing.assert_array_equal(restored.predict_proba_many(X[500:]), model.predict_proba_many(X[500:]))


def test_pseudo_labels_taken_at_a_confidence_are_right_at_least_that_often():
    """The policy's threshold applies to the served, calibrated answer: pseudo-labels accepted at
    0.97 are right at least 97 % of the time on a stream whose certainty varies (labels noisy
    near the boundary, certain far from it), pooled over seven draws of it (about 1,600
    accepted in all since the audit must prove the threshold with probability 0.99; before,
    400–1,400 per draw, whose own rate moved by about a point from draw to draw). Chosen by
    the main MLP's own probabilities, as before, they were right 96.8 % of the time on one draw."""
    accepted = right = 0
    for seed in range(1, 8):
        rng = np.random.default_rng(seed)
        n = 8000
        X = rng.normal(size=(n, 3))
        truth = (X[:, 0] + 0.5 * rng.normal(size=n) > 0).astype(int)
        y = [int(t) if i % 10 == 0 else None for i, t in enumerate(truth)]
        model = StreamLearner(seed=0, pseudo_labels=PseudoLabelPolicy(threshold=0.97, warmup=50), trees=False)
        for i in range(0, n, 100):
            model.learn_many(X[i:i + 100], y[i:i + 100])
            rows, labels = model.last_pseudo_labels
            accepted += len(rows)
            right += sum(int(truth[i + r] == label) for r, label in zip(rows, labels))
    assert accepted > 1000
    assert right / accepted >= 0.97
    # The policy audits the served answers of the labelled events that reached its threshold.
    audited = list(model.policy._audited)
    assert len(audited) > 50 and min(c for c, _ in audited) >= 0.97


def test_the_compiled_tempered_answer_is_the_softmax_of_the_scaled_logs():
    """apply (one compiled loop) against softmax(log(p floored) / T) in numpy: the same, to
    rounding, for one row, a micro-batch, many classes and probabilities of exactly 0."""
    from streamssl.learner.calibration import _log, _softmax

    rng = np.random.default_rng(4)
    cal = TemperatureCalibrator()
    for temperature in (0.4, 1.7, 20.0):
        cal.temperature = temperature
        for n, k in ((1, 2), (64, 5), (3, 40)):
            p = rng.dirichlet(np.full(k, 0.3), size=n)
            p[0, 0] = 0.0
            np.testing.assert_allclose(cal.apply(p), _softmax(_log(p) / temperature), rtol=1e-13, atol=1e-300)
    cal.temperature = 1.0
    assert cal.apply(p) is p
