"""Calibration: served probabilities made to mean what they say, and the measure of how well they do.

:class:`TemperatureCalibrator` rescales the learner's answer with one temperature fitted on the
recent labelled events, each scored before it was learned, so a label recalibrates only later
answers. Temperature keeps every answer's most probable class, so accuracy does not move.
:class:`Reliability` tallies served confidence against correctness in equal-width bins: its
expected calibration error (ECE) and its mean confidence, the accuracy estimated without labels.
"""

from __future__ import annotations

import math

import numpy as np
from river import base

from .compiled import compiled, softmax_

_FLOOR = 1e-6  # probabilities are floored here before their log: a member may say exactly 0


def _log(proba: np.ndarray) -> np.ndarray:
    return np.log(proba.clip(_FLOOR, 1.0))  # the method: a third of np.clip's cost on a row


def _row_loss(L: np.ndarray, picked: np.ndarray, t) -> np.ndarray:
    """Each row's log-loss of log-probabilities ``L`` at temperature ``t`` (one, or a column of
    one per row); ``picked``: each row's log-probability of its class."""
    S = L / t
    top = S.max(axis=1)
    return top + np.log(np.exp(S - top[:, None]).sum(axis=1)) - picked / np.ravel(t)


def _widened(L: np.ndarray, width: int) -> np.ndarray:
    """Rows of log-probabilities ``L`` with columns up to ``width``: classes met later, 0 back then."""
    out = np.full((len(L), width), math.log(_FLOOR))
    out[:, : L.shape[1]] = L
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


@compiled
def _tempered(proba: np.ndarray, temperature: float) -> np.ndarray:
    """The softmax of ``proba``'s logarithms (floored at ``_FLOOR``) over ``temperature``, row by
    row: one compiled loop, where eight numpy calls cost 12 µs a row."""
    out = np.empty_like(proba)
    for r in range(proba.shape[0]):
        for c in range(proba.shape[1]):
            out[r, c] = math.log(min(max(proba[r, c], _FLOOR), 1.0)) / temperature
        softmax_(out[r])
    return out


@compiled
def _trend_loss(L: np.ndarray, picked: np.ndarray, at: np.ndarray, a: float, b: float, trend: float) -> float:
    """The window's log-loss at log T = a + b * at, plus the prior on ``b``; inf where not finite."""
    total = trend * b * b / 2.0
    for i in range(L.shape[0]):
        beta = math.exp(-(a + b * at[i]))  # 1 / T of the row
        top = -math.inf
        for c in range(L.shape[1]):
            top = max(top, L[i, c] * beta)
        mass = 0.0
        for c in range(L.shape[1]):
            mass += math.exp(L[i, c] * beta - top)
        total += top + math.log(mass) - picked[i] * beta
    return total if math.isfinite(total) else math.inf


@compiled
def _trend_slopes(L: np.ndarray, picked: np.ndarray, at: np.ndarray, a: float, b: float,
                  trend: float) -> tuple[float, float, float, float, float]:
    """The gradient (g0, g1) and Hessian (h00, h01, h11) of :func:`_trend_loss` in (a, b). Each
    row's loss against its 1 / T (``beta``) has slope mean - picked (the mean of ``L`` under the
    row's softmax at ``beta``) and curvature the spread of ``L`` there; against log T these give
    the gradient and Hessian in (a, b) by the chain rule."""
    k = L.shape[1]
    q = np.empty(k)
    g0, g1, h00, h01, h11 = 0.0, trend * b, 0.0, 0.0, trend
    for i in range(L.shape[0]):
        beta = math.exp(-(a + b * at[i]))
        top = -math.inf
        for c in range(k):
            top = max(top, L[i, c] * beta)
        mass = 0.0
        for c in range(k):
            q[c] = math.exp(L[i, c] * beta - top)
            mass += q[c]
        mean = spread = 0.0
        for c in range(k):
            mean += q[c] / mass * L[i, c]
            spread += q[c] / mass * L[i, c] * L[i, c]
        spread -= mean * mean
        d_beta = mean - picked[i]
        h = beta * beta * spread + beta * d_beta
        g0 -= beta * d_beta
        g1 -= beta * d_beta * at[i]
        h00 += h
        h01 += h * at[i]
        h11 += h * at[i] * at[i]
    return g0, g1, h00, h01, h11


@compiled
def _newton_trend(L: np.ndarray, picked: np.ndarray, log_t: float, trend: float) -> float:
    """log T at the window's newest end, fitted as :meth:`TemperatureCalibrator._fit_trend`
    says: rows ``L`` of log-probabilities (oldest first), ``picked`` each row's at its class,
    starting from ``log_t`` with no slope; ``trend`` the prior's weight on the slope. The 2x2
    system is solved directly (positive definite where its pivot and determinant are)."""
    n = L.shape[0]
    at = np.linspace(-1.0, 0.0, n) if n > 1 else np.zeros(1)
    a, b = log_t, 0.0
    value, damping = _trend_loss(L, picked, at, a, b, trend), 0.0
    g0, g1, h00, h01, h11 = _trend_slopes(L, picked, at, a, b, trend)
    for _ in range(100):
        if max(abs(g0), abs(g1)) < 1e-9 * n:
            break
        d00, d11 = h00 + damping, h11 + damping
        det = d00 * d11 - h01 * h01
        if not (d00 > 0.0 and det > 0.0):  # not positive definite: damped towards the gradient's step
            damping = max(2 * damping, 1e-3 * (1.0 + max(abs(h00), abs(h01), abs(h11))))
            continue
        step_a, step_b = -(d11 * g0 - h01 * g1) / det, -(d00 * g1 - h01 * g0) / det
        trial = _trend_loss(L, picked, at, a + step_a, b + step_b, trend)
        if trial < value:
            a, b, value, damping = a + step_a, b + step_b, trial, damping / 4
            if max(abs(step_a), abs(step_b)) < 1e-8:
                break
            g0, g1, h00, h01, h11 = _trend_slopes(L, picked, at, a, b, trend)
        elif damping > 1e12:
            break  # no step lowers the loss: a minimum to numerical precision
        else:
            damping = max(4 * damping, 1e-3 * (1.0 + max(abs(h00), abs(h01), abs(h11))))
    return a


class TemperatureCalibrator(base.Base):
    """Temperature scaling refit online on the last ``window`` labelled events.

    The window is short so that the temperature follows the learner as it learns and the
    stream as it drifts (spam at 5 % labels, seed 0: ECE 0.041 with 512 events, 0.022 with 128;
    elec2 and usenet1 the same with either).

    The learner gives it each labelled event's probabilities as it served them before learning
    the label (:meth:`observe`); the temperature minimises their log-loss (a golden-section
    search on its logarithm, between ``1/bounds`` and ``bounds``), refit once ``refit`` more
    labels have come. It applies once ``min_labels`` events have been seen (1 before); the
    window lets it follow a drift. ``T > 1`` softens an overconfident answer, ``T < 1`` sharpens an underconfident one.

    ``trend``: a learner still improving answered the window's older labels worse, at the same
    confidence, than it answers now, so one temperature for the whole window leaves its answers
    now underconfident. With ``trend`` set, log T moves linearly across the window, from its
    oldest label to its newest, both fitted together, and the temperature served is the newest
    end's; the slope has a Gaussian prior (mean 0: no trend) worth ``trend`` labels, so a few
    labels do not extrapolate far. ``None``: one temperature for the window. Over the suite's 42
    cells (``benchmarks/calibration_replay.py``), a prior of 8 labels lowers the mean ECE at 5 %
    labels from 0.049 to 0.048 and |estimated - realised accuracy| from 0.028 to 0.023 (1 %:
    0.090 to 0.087, 0.068 to 0.067); without the prior, 0.064 and 0.030.

    Examples
    --------
    >>> cal = TemperatureCalibrator(window=400, min_labels=10)
    >>> rng = np.random.default_rng(0)
    >>> right = rng.random(400) < 0.65  # the answer says 0.95 but is right 60 % of the time
    >>> cal.observe(np.tile([0.95, 0.05], (400, 1)), np.where(right, 0, 1))
    >>> float(right.mean()), round(cal.temperature, 2), cal.apply(np.array([[0.95, 0.05]])).round(3).tolist()
    (0.6, 7.2, [[0.601, 0.399]])
    """

    def __init__(self, window: int = 128, min_labels: int = 30, refit: int = 16, bounds: float = 20.0,
                 trend: float | None = 8.0) -> None:
        if window < 1 or min_labels < 0 or refit < 1 or bounds <= 1 or (trend is not None and trend < 0):
            raise ValueError("TemperatureCalibrator needs window >= 1, min_labels >= 0, refit >= 1, bounds > 1 "
                             "and trend None or >= 0")
        self.window, self.min_labels, self.refit, self.bounds = window, min_labels, refit, bounds
        self.trend = trend
        # The last ``window`` labelled events, a ring: log-probabilities (a class met later: 0
        # back then) and class; rows held, and where the next goes.
        self._L, self._y = np.zeros((window, 0)), np.zeros(window, dtype=np.int64)
        self._held = self._next = 0
        self.temperature = 1.0
        self.seen = 0
        self.fitted_at = 0  # labels seen at the last fit

    def observe(self, proba: np.ndarray, y: np.ndarray) -> None:
        """Learn from labelled events: ``proba`` as served (before the labels were learned),
        ``y`` their class indices; refits the temperature."""
        y = np.asarray(y, dtype=np.int64)
        self._keep(_log(np.asarray(proba, dtype=np.float64)), y)
        self.seen += len(y)
        if self.seen >= max(self.min_labels, self.fitted_at + self.refit) and self._held:
            self.temperature, self.fitted_at = self._fit(), self.seen

    def _keep(self, L: np.ndarray, y: np.ndarray) -> None:
        """Rows of log-probabilities ``L`` and their classes ``y`` into the window."""
        L, y = L[-self.window:], y[-self.window:]
        if L.shape[1] > self._L.shape[1]:
            self._L = _widened(self._L, L.shape[1])
        at = (self._next + np.arange(len(y))) % self.window
        self._L[at] = L if L.shape[1] == self._L.shape[1] else _widened(L, self._L.shape[1])
        self._y[at] = y
        self._next = (self._next + len(y)) % self.window
        self._held = min(self.window, self._held + len(y))

    def _window(self) -> tuple[np.ndarray, np.ndarray]:
        """The window's log-probabilities, one row per labelled event (the oldest first), and their classes."""
        if self._held < self.window:
            return self._L[: self._held], self._y[: self._held]
        i = self._next
        return np.concatenate([self._L[i:], self._L[:i]]), np.concatenate([self._y[i:], self._y[:i]])

    def _fit(self) -> float:
        return self._fit_constant() if self.trend is None else self._fit_trend()

    def _fit_trend(self) -> float:
        """log T = a + b * s over the window (s from -1, its oldest label, to 0, its newest),
        minimising the log-loss plus the prior on ``b``; returns the temperature at s = 0.

        Newton's method on (a, b) with the exact gradient and Hessian, damped (Levenberg-Marquardt)
        where the curvature is not positive or a step does not lower the loss
        (:func:`_newton_trend`): a few iterations where a simplex search took about a hundred
        evaluations of the loss."""
        L, y = self._window()
        picked = L[np.arange(len(y)), y]
        log_t = _newton_trend(L, picked, math.log(self.temperature), float(self.trend))
        bound = math.log(self.bounds)
        return math.exp(min(bound, max(-bound, log_t)))

    def _fit_constant(self) -> float:
        L, y = self._window()
        picked = L[np.arange(len(y)), y]

        def loss(log_t: float) -> float:
            return float(np.mean(_row_loss(L, picked, math.exp(log_t))))

        lo, hi = -math.log(self.bounds), math.log(self.bounds)
        golden = (math.sqrt(5) - 1) / 2
        a, b = hi - golden * (hi - lo), lo + golden * (hi - lo)
        fa, fb = loss(a), loss(b)
        for _ in range(30):  # the bracket shrinks to 1e-6 of its width
            if fa < fb:
                hi, b, fb = b, a, fa
                a = hi - golden * (hi - lo)
                fa = loss(a)
            else:
                lo, a, fa = a, b, fb
                b = lo + golden * (hi - lo)
                fb = loss(b)
        return math.exp((lo + hi) / 2)

    def apply(self, proba: np.ndarray) -> np.ndarray:
        """``proba`` at the current temperature (rows renormalised; the argmax is kept)."""
        if self.temperature == 1.0 or proba.shape[1] == 0:
            return proba
        return _tempered(np.ascontiguousarray(proba, dtype=np.float64), self.temperature)

    def state_dict(self) -> dict:
        L, y = self._window()
        return {"rows": list(zip(L.tolist(), y.tolist())), "temperature": self.temperature, "seen": self.seen,
                "fitted_at": self.fitted_at}

    def load_state_dict(self, state: dict) -> None:
        self._L, self._y = np.zeros((self.window, 0)), np.zeros(self.window, dtype=np.int64)
        self._held = self._next = 0
        for r, c in state["rows"]:  # rows saved before a class was met are narrower
            self._keep(np.array([r], dtype=np.float64).reshape(1, -1), np.array([c], dtype=np.int64))
        self.temperature, self.seen = float(state["temperature"]), int(state["seen"])
        self.fitted_at = int(state["fitted_at"])


class Reliability:
    """Served confidence against correctness in ``bins`` equal-width bins of confidence.

    ``calibration_error`` is the expected calibration error: the gap between mean confidence and
    accuracy in each bin, weighted by the bin's share of the events. ``mean_confidence`` over
    every event is the accuracy estimated without labels.

    >>> rel = Reliability()
    >>> rel.add([0.9, 0.9, 0.6, 0.6], [True, False, True, True])
    >>> rel.calibration_error, rel.mean_confidence
    (0.4, 0.75)
    """

    def __init__(self, bins: int = 15) -> None:
        self.bins = bins
        self.count = np.zeros(bins, dtype=np.int64)
        self.confidence = np.zeros(bins)  # sum of confidence per bin
        self.correct = np.zeros(bins)  # right answers per bin

    def add(self, confidence, correct) -> None:
        confidence = np.asarray(confidence, dtype=np.float64)
        # Bins (k/bins, (k+1)/bins]; a confidence of 0 goes to the first.
        index = np.clip(np.ceil(confidence * self.bins).astype(np.int64) - 1, 0, self.bins - 1)
        np.add.at(self.count, index, 1)
        np.add.at(self.confidence, index, confidence)
        np.add.at(self.correct, index, np.asarray(correct, dtype=np.float64))

    @property
    def n(self) -> int:
        return int(self.count.sum())

    @property
    def calibration_error(self) -> float | None:
        if not self.n:
            return None
        return float(np.abs(self.confidence - self.correct).sum() / self.n)

    @property
    def mean_confidence(self) -> float | None:
        return float(self.confidence.sum() / self.n) if self.n else None

    def diagram(self) -> list[dict]:
        """The reliability diagram: per non-empty bin, its bounds, events, mean confidence and accuracy."""
        return [{"low": k / self.bins, "high": (k + 1) / self.bins, "events": int(self.count[k]),
                 "confidence": float(self.confidence[k] / self.count[k]), "accuracy": float(self.correct[k] / self.count[k])}
                for k in range(self.bins) if self.count[k]]
