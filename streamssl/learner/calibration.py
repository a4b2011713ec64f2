"""Calibration: served probabilities made to mean what they say, and the measure of how well they do.

:class:`TemperatureCalibrator` rescales the learner's answer with one temperature, and mixes in a
share of the uniform answer (a floor), both fitted on the recent labelled events, each scored
before it was learned, so a label recalibrates only later answers. Neither moves an answer's
most probable class, so accuracy does not move.
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


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


def _widened(L: np.ndarray, width: int) -> np.ndarray:
    """Rows of log-probabilities ``L`` with columns up to ``width``: classes met later, 0 back then."""
    out = np.full((len(L), width), math.log(_FLOOR))
    out[:, : L.shape[1]] = L
    return out


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


@compiled
def _tempered(proba: np.ndarray, temperature: float, uniform: float) -> np.ndarray:
    """The softmax of ``proba``'s logarithms (floored at ``_FLOOR``) over ``temperature``, a
    share ``uniform`` of the uniform answer mixed in, row by row: one compiled loop, where eight
    numpy calls cost 12 µs a row."""
    out = np.empty_like(proba)
    k = proba.shape[1]
    for r in range(proba.shape[0]):
        for c in range(k):
            out[r, c] = math.log(min(max(proba[r, c], _FLOOR), 1.0)) / temperature
        softmax_(out[r])
        for c in range(k):
            out[r, c] = (1.0 - uniform) * out[r, c] + uniform / k
    return out


@compiled
def _fit_terms(L: np.ndarray, picked: np.ndarray, at: np.ndarray, a: float, b: float, e: float, trend: float,
               floor: bool, center: float, derivatives: bool) -> tuple:
    """The window's penalised log-loss at log T = a + b * at and, with ``floor``, a share
    ``eps = 1 / (1 + exp(-e))`` of uniform answers mixed in; with ``derivatives`` also its
    gradient (ga, gb, ge) and Hessian (aa, ab, ae, bb, be, ee) in (a, b, e). The priors: on
    ``b``, mean 0 worth ``trend`` labels; on ``e``, mean ``center`` with weight 1. A loss that is
    not finite is inf.

    Each row's served probability of its labelled class is p = (1 - eps) r + eps / K (r: the
    tempered softmax's, at 1 / T = ``beta``). Against ``beta`` its loss has slope -rho d and curvature
    rho v - rho (1 - rho) d^2, where d is the row's log-probability of its class less their
    mean under the softmax, v their spread there and rho = (1 - eps) r / p (1 without a floor:
    the plain softmax's mean - picked and spread); against eps, slope -s with s = (1 / K - r) / p
    and curvature s^2. The chain rule through beta = exp(-(a + b at)) and eps(e) gives the rest."""
    k = L.shape[1]
    eps = 1.0 / (1.0 + math.exp(-e)) if floor else 0.0
    w = eps * (1.0 - eps)
    loss = trend * b * b / 2.0 + ((e - center) ** 2 / 2.0 if floor else 0.0)
    ga, gb, ge = 0.0, trend * b, (e - center if floor else 0.0)
    haa = hab = hae = hbe = 0.0
    hbb, hee = trend, (1.0 if floor else 0.0)
    for i in range(L.shape[0]):
        beta = math.exp(-(a + b * at[i]))
        top = -math.inf
        for c in range(k):
            top = max(top, L[i, c] * beta)
        mass = mean = spread = 0.0
        for c in range(k):
            q = math.exp(L[i, c] * beta - top)
            mass += q
            mean += q * L[i, c]
            spread += q * L[i, c] * L[i, c]
        mean /= mass
        spread = spread / mass - mean * mean
        d = picked[i] - mean
        if floor:
            r = math.exp(picked[i] * beta - top) / mass
            p = (1.0 - eps) * r + eps / k
            loss -= math.log(p)
            rho = (1.0 - eps) * r / p
        else:
            loss += top + math.log(mass) - picked[i] * beta
            rho = 1.0
        if not derivatives:
            continue
        g_beta = -rho * d
        h_beta = rho * spread - rho * (1.0 - rho) * d * d
        base = beta * beta * h_beta + beta * g_beta
        ga -= beta * g_beta
        gb -= beta * at[i] * g_beta
        haa += base
        hab += base * at[i]
        hbb += base * at[i] * at[i]
        if floor:
            s = (1.0 / k - r) / p
            h_cross = rho * d * (1.0 + (1.0 - eps) * s) / (1.0 - eps)  # d(g_beta)/d(eps)
            ge -= w * s
            hee += w * w * s * s - s * w * (1.0 - 2.0 * eps)
            hae -= beta * w * h_cross
            hbe -= beta * at[i] * w * h_cross
    if not math.isfinite(loss):
        loss = math.inf
    return loss, ga, gb, ge, haa, hab, hae, hbb, hbe, hee


@compiled
def _newton_fit(L: np.ndarray, picked: np.ndarray, log_t: float, e: float, trend: float, slope: bool,
                floor: bool, center: float) -> tuple[float, float]:
    """(log T at the window's newest end, e) as :meth:`TemperatureCalibrator._fit` says: rows
    ``L`` of log-probabilities (oldest first), ``picked`` each row's at its class, starting from
    ``log_t`` and ``e`` with no slope. ``slope``: log T moves across the window (its prior
    worth ``trend`` labels); ``floor``: the uniform share is fitted too (its logit's prior at
    ``center``). Newton's method on the free ones of (a, b, e) with the exact gradient and
    Hessian, damped (Levenberg-Marquardt) where the Hessian is not positive definite or a step
    does not lower the loss; the system is solved by Cholesky's factors."""
    n = L.shape[0]
    at = np.linspace(-1.0, 0.0, n) if n > 1 else np.zeros(1)
    free = np.array([1.0, 1.0 if slope else 0.0, 1.0 if floor else 0.0])
    x = np.array([log_t, 0.0, e])
    g, H, D = np.zeros(3), np.zeros((3, 3)), np.zeros((3, 3))
    t = _fit_terms(L, picked, at, x[0], x[1], x[2], trend, floor, center, True)
    value, damping = t[0], 0.0
    for _ in range(100):
        g[0], g[1], g[2] = t[1] * free[0], t[2] * free[1], t[3] * free[2]
        H[0, 0], H[0, 1], H[0, 2], H[1, 1], H[1, 2], H[2, 2] = t[4], t[5], t[6], t[7], t[8], t[9]
        if max(abs(g[0]), abs(g[1]), abs(g[2])) < 1e-9 * n:
            break
        scale = 0.0
        for i in range(3):
            for j in range(i, 3):
                H[j, i] = H[i, j] = H[i, j] * free[i] * free[j]
                scale = max(scale, abs(H[i, j]))
        if not math.isfinite(scale):
            break  # 1 / T so large that its square overflows: as far as the fit can go
        ok = False
        while not ok and damping <= 1e12:  # the damped system's Cholesky factor, the damping raised until there is one
            for i in range(3):
                for j in range(3):
                    D[i, j] = H[i, j] + (damping if i == j else 0.0) * free[i]
                if free[i] == 0.0:
                    D[i, i] = 1.0
            ok = True
            for j in range(3):
                s = D[j, j]
                for m in range(j):
                    s -= D[j, m] * D[j, m]
                if not s > 0.0:
                    ok = False
                    break
                D[j, j] = math.sqrt(s)
                for i in range(j + 1, 3):
                    s = D[i, j]
                    for m in range(j):
                        s -= D[i, m] * D[j, m]
                    D[i, j] = s / D[j, j]
            if not ok:
                damping = max(2 * damping, 1e-3 * (1.0 + scale))
        if not ok:
            break
        step = -g.copy()  # solve D D^T step = -g
        for i in range(3):
            for m in range(i):
                step[i] -= D[i, m] * step[m]
            step[i] /= D[i, i]
        for i in range(2, -1, -1):
            for m in range(i + 1, 3):
                step[i] -= D[m, i] * step[m]
            step[i] /= D[i, i]
        trial = _fit_terms(L, picked, at, x[0] + step[0], x[1] + step[1], x[2] + step[2], trend, floor, center, False)
        if trial[0] < value:
            x += step
            value, damping = trial[0], damping / 4
            if max(abs(step[0]), abs(step[1]), abs(step[2])) < 1e-8:
                break
            t = _fit_terms(L, picked, at, x[0], x[1], x[2], trend, floor, center, True)
        elif damping > 1e12:
            break  # no step lowers the loss: a minimum to numerical precision
        else:
            damping = max(4 * damping, 1e-3 * (1.0 + scale))
    return x[0], x[2]


class TemperatureCalibrator(base.Base):
    """Temperature scaling refit online on the last ``window`` labelled events, with a floor.

    The window is short so that the temperature follows the learner as it learns and the
    stream as it drifts (spam at 5 % labels, seed 0: ECE 0.041 with 512 events, 0.022 with 128;
    elec2 and usenet1 the same with either).

    The learner gives it each labelled event's probabilities as it served them before learning
    the label (:meth:`observe`); the temperature minimises their log-loss (Newton's method on its
    logarithm, served between ``1/bounds`` and ``bounds``), refit once ``refit`` more labels have
    come. It applies once ``min_labels`` events have been seen (1 before); the window lets it
    follow a drift. ``T > 1`` softens an overconfident answer, ``T < 1`` sharpens an
    underconfident one.

    ``trend``: a learner still improving answered the window's older labels worse, at the same
    confidence, than it answers now, so one temperature for the whole window leaves its answers
    now underconfident. With ``trend`` set, log T moves linearly across the window, from its
    oldest label to its newest, both fitted together, and the temperature served is the newest
    end's; the slope has a Gaussian prior (mean 0: no trend) worth ``trend`` labels, so a few
    labels do not extrapolate far. ``None``: one temperature for the window. Over the suite's 42
    cells (``benchmarks/calibration_replay.py``), a prior of 8 labels lowers the mean ECE at 5 %
    labels from 0.049 to 0.048 and |estimated - realised accuracy| from 0.028 to 0.023 (1 %:
    0.090 to 0.087, 0.068 to 0.067); without the prior, 0.064 and 0.030.

    ``floor``: where a share of the labels is wrong whatever the answer's confidence (label
    noise, or what no feature explains), accuracy levels off below 1 while the answers' own
    confidence does not, and one temperature either leaves the unsure answers underconfident or
    the sure ones overconfident. With ``floor`` set, the answer served is ``(1 - u)`` times the
    tempered one plus ``u`` times the uniform answer, ``u`` (:attr:`uniform`) fitted with the
    temperature; a Gaussian prior on its logit, centred at ``floor`` with weight 1 (about one
    label's worth), keeps it there on a window that says little. A row's order of classes never
    moves. ``None``: the temperature alone. Replayed on the recorded answers of the suite's 42
    cells and of 66 cells of the held-out and river streams (2026-12-07, ``benchmarks/results/
    calibration/floor-2026-12-07.md``), ``floor=0.02`` lowers the mean ECE at 5 % labels from
    0.0443 to 0.0437 (suite) and from 0.0389 to 0.0344 (the others; SEA 0.063 to 0.048,
    hyperplane 0.034 to 0.019, their labels noisy by construction); at 1 % 0.0825 to 0.0813 and
    0.0825 to 0.0814.

    Examples
    --------
    >>> cal = TemperatureCalibrator(window=400, min_labels=10)
    >>> rng = np.random.default_rng(0)
    >>> right = rng.random(400) < 0.65  # the answer says 0.95 but is right 60 % of the time
    >>> cal.observe(np.tile([0.95, 0.05], (400, 1)), np.where(right, 0, 1))
    >>> float(right.mean()), cal.apply(np.array([[0.95, 0.05]])).round(3).tolist()
    (0.6, [[0.601, 0.399]])
    >>> round(cal.temperature, 2), round(cal.uniform, 3)  # one answer: the floor's prior decides the share
    (7.06, 0.02)
    """

    def __init__(self, window: int = 128, min_labels: int = 30, refit: int = 16, bounds: float = 20.0,
                 trend: float | None = 8.0, floor: float | None = 0.02) -> None:
        if window < 1 or min_labels < 0 or refit < 1 or bounds <= 1 or (trend is not None and trend < 0) \
                or (floor is not None and not 0 < floor < 1):
            raise ValueError("TemperatureCalibrator needs window >= 1, min_labels >= 0, refit >= 1, bounds > 1, "
                             "trend None or >= 0 and floor None or in (0, 1)")
        self.window, self.min_labels, self.refit, self.bounds = window, min_labels, refit, bounds
        self.trend, self.floor = trend, floor
        # The last ``window`` labelled events, a ring: log-probabilities (a class met later: 0
        # back then) and class; rows held, and where the next goes.
        self._L, self._y = np.zeros((window, 0)), np.zeros(window, dtype=np.int64)
        self._held = self._next = 0
        self.temperature = 1.0
        self.uniform = 0.0  # the share of the uniform answer mixed in (with ``floor``)
        self.seen = 0
        self.fitted_at = 0  # labels seen at the last fit

    def observe(self, proba: np.ndarray, y: np.ndarray) -> None:
        """Learn from labelled events: ``proba`` as served (before the labels were learned),
        ``y`` their class indices; refits the temperature."""
        y = np.asarray(y, dtype=np.int64)
        self._keep(_log(np.asarray(proba, dtype=np.float64)), y)
        self.seen += len(y)
        if self.seen >= max(self.min_labels, self.fitted_at + self.refit) and self._held:
            (self.temperature, self.uniform), self.fitted_at = self._fit(), self.seen

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

    def _fit(self) -> tuple[float, float]:
        """(temperature, uniform share) minimising the window's log-loss plus the priors: log T =
        a + b * s over the window (s from -1, its oldest label, to 0, its newest; b = 0 without
        ``trend``), the temperature served the one at s = 0.

        Newton's method with the exact gradient and Hessian, damped (Levenberg-Marquardt) where
        the curvature is not positive or a step does not lower the loss (:func:`_newton_fit`): a
        few iterations where a simplex search took about a hundred evaluations of the loss."""
        L, y = self._window()
        picked = L[np.arange(len(y)), y]
        floor = self.floor is not None and L.shape[1] > 1
        center = e = 0.0  # the logits of the floor's prior and of the start (unused without it)
        if floor:
            start = min(max(self.uniform or self.floor, 1e-12), 1 - 1e-12)  # the last fit's share
            center, e = _logit(self.floor), _logit(start)
        log_t, e = _newton_fit(L, picked, math.log(self.temperature), e, float(self.trend or 0.0),
                               self.trend is not None, floor, center)
        bound = math.log(self.bounds)
        return math.exp(min(bound, max(-bound, log_t))), 1.0 / (1.0 + math.exp(-e)) if floor else 0.0

    def apply(self, proba: np.ndarray) -> np.ndarray:
        """``proba`` at the current temperature, the uniform share mixed in (rows renormalised;
        the argmax is kept)."""
        if (self.temperature == 1.0 and self.uniform == 0.0) or proba.shape[1] == 0:
            return proba
        return _tempered(np.ascontiguousarray(proba, dtype=np.float64), self.temperature, self.uniform)

    def state_dict(self) -> dict:
        L, y = self._window()
        return {"rows": list(zip(L.tolist(), y.tolist())), "temperature": self.temperature, "uniform": self.uniform,
                "seen": self.seen, "fitted_at": self.fitted_at}

    def load_state_dict(self, state: dict) -> None:
        self._L, self._y = np.zeros((self.window, 0)), np.zeros(self.window, dtype=np.int64)
        self._held = self._next = 0
        for r, c in state["rows"]:  # rows saved before a class was met are narrower
            self._keep(np.array([r], dtype=np.float64).reshape(1, -1), np.array([c], dtype=np.int64))
        self.temperature, self.seen = float(state["temperature"]), int(state["seen"])
        self.uniform = float(state.get("uniform", 0.0))  # saved before the floor: none
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
