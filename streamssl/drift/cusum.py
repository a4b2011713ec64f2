"""A drift detector for few labels: a risk-adjusted Bernoulli CUSUM on the calibrated residual."""

from __future__ import annotations

import math
from typing import Sequence

_EDGE = 1e-6  # confidences are kept inside (0, 1) so that the log-likelihood ratio stays finite


class CUSUM:
    """Detects that the learner is wrong more often than its (calibrated) confidence says.

    It reads the *residual* of each labelled event, ``correct - confidence`` (``confidence``:
    the served top-class probability; the residual is ``>= 0`` exactly when the answer was
    right, so both are recovered from it). Under calibration an answer of confidence ``p`` is
    right with probability ``p``; the alternative is a change of concept that multiplies the
    odds of an error by ``odds``. Each event adds its log-likelihood ratio of the two,
    ``log(odds / (p + odds (1 - p)))`` when wrong and ``-log(p + odds (1 - p))`` when right,
    to a sum kept above 0. Every event weighs what it tells: an error at 0.99 adds almost
    ``log(odds)``, an error at 0.6 little, so a few confident errors are enough and an abrupt
    change of concept is seen within a few dozen labels (the risk-adjusted CUSUM of Steiner et
    al., 2000).

    Several ``odds`` run side by side, one sum each: a small multiplier sees a small change
    soonest, a large one a large change (a new concept that gets half of the confident
    answers wrong). :attr:`statistic` is the largest sum less ``log(len(odds))``, and a drift
    is signalled when it passes ``threshold`` (then all start again). The sums drift down
    while calibration holds; by Wald's bound each one passes ``threshold + log(len(odds))``
    at most once per ``exp(threshold) * len(odds)`` labels on average, so a false alarm takes
    at least about ``exp(threshold)`` labels whatever the number of multipliers.

    ``estimation`` is the mean residual since the last drift (about 0 while calibration holds).

    Examples
    --------
    >>> detector = CUSUM(odds=3.0, threshold=4.0)
    >>> detected = []
    >>> for i in range(60):  # answers at 0.9 that are right 90 % of the time, then never
    ...     right = i % 10 != 0 if i < 40 else False
    ...     detector.update((1.0 if right else 0.0) - 0.9)
    ...     detected += [i] if detector.drift_detected else []
    >>> detected  # five errors at 0.9 each add log(3 / 1.2) = 0.92
    [44, 49, 54, 59]
    >>> both, detected = CUSUM(odds=(3.0, 30.0), threshold=4.0), []
    >>> for i in range(60):  # the same answers: each error adds log(30 / 3.9) = 2.04 at odds 30
    ...     right = i % 10 != 0 if i < 40 else False
    ...     both.update((1.0 if right else 0.0) - 0.9)
    ...     detected += [i] if both.drift_detected else []
    >>> detected  # three errors in a row now suffice, where odds 3 alone needs six (threshold 4 + log 2)
    [42, 45, 48, 51, 54, 57]
    """

    def __init__(self, odds: float | Sequence[float] = (3.0, 10.0, 30.0), threshold: float = 7.0) -> None:
        odds = (float(odds),) if isinstance(odds, (int, float)) else tuple(float(o) for o in odds)
        if not odds or min(odds) <= 1 or threshold <= 0:
            raise ValueError(f"CUSUM needs odds > 1 and threshold > 0, got odds={odds}, threshold={threshold}")
        self.odds, self.threshold = odds, threshold
        self._reset()

    def _reset(self) -> None:
        self.sums = [0.0] * len(self.odds)
        self.n = 0
        self.estimation = 0.0
        self.drift_detected = False

    @property
    def statistic(self) -> float:
        """The largest sum, less ``log(len(odds))``: compared with ``threshold``."""
        return max(self.sums) - math.log(len(self.odds))

    def update(self, residual: float) -> None:
        """One labelled event's ``correct - confidence``."""
        if self.drift_detected:
            self._reset()
        residual = float(residual)
        correct = residual >= 0.0
        p = min(max(1.0 - residual if correct else -residual, _EDGE), 1.0 - _EDGE)
        for k, odds in enumerate(self.odds):
            spread = p + odds * (1.0 - p)  # P(right) under the alternative is p / spread
            step = -math.log(spread) if correct else math.log(odds / spread)
            self.sums[k] = max(0.0, self.sums[k] + step)
        self.n += 1
        self.estimation += (residual - self.estimation) / self.n
        self.drift_detected = self.statistic > self.threshold

    def __setstate__(self, state: dict) -> None:
        """Detectors checkpointed with one multiplier (``odds`` a number, one ``statistic``)."""
        if not isinstance(state.get("odds"), tuple):
            state["odds"] = (float(state["odds"]),)
            state["sums"] = [float(state.pop("statistic", 0.0))]
        self.__dict__.update(state)
