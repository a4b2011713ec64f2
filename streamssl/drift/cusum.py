"""A drift detector for few labels: a risk-adjusted Bernoulli CUSUM on the calibrated residual."""

from __future__ import annotations

import math

_EDGE = 1e-6  # confidences are kept inside (0, 1) so that the log-likelihood ratio stays finite


class CUSUM:
    """Detects that the learner is wrong more often than its (calibrated) confidence says.

    It reads the *residual* of each labelled event, ``correct - confidence`` (``confidence``:
    the served top-class probability; the residual is ``>= 0`` exactly when the answer was
    right, so both are recovered from it). Under calibration an answer of confidence ``p`` is
    right with probability ``p``; the alternative is a change of concept that multiplies the
    odds of an error by ``odds``. Each event adds its log-likelihood ratio of the two,
    ``log(odds / (p + odds (1 - p)))`` when wrong and ``-log(p + odds (1 - p))`` when right,
    to a sum kept above 0; a drift is signalled when it passes ``threshold`` (then it starts
    again). Every event weighs what it tells: an error at 0.99 adds almost ``log(odds)``, an
    error at 0.6 little, so a few confident errors are enough and an abrupt change of concept
    is seen within a few dozen labels. The sum drifts down while calibration holds; by Wald's
    bound a false alarm takes at least ``exp(threshold)`` labels on average (the risk-adjusted
    CUSUM of Steiner et al., 2000).

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
    """

    def __init__(self, odds: float = 3.0, threshold: float = 7.0) -> None:
        if odds <= 1 or threshold <= 0:
            raise ValueError(f"CUSUM needs odds > 1 and threshold > 0, got odds={odds}, threshold={threshold}")
        self.odds, self.threshold = odds, threshold
        self._reset()

    def _reset(self) -> None:
        self.statistic = 0.0
        self.n = 0
        self.estimation = 0.0
        self.drift_detected = False

    def update(self, residual: float) -> None:
        """One labelled event's ``correct - confidence``."""
        if self.drift_detected:
            self._reset()
        residual = float(residual)
        correct = residual >= 0.0
        p = min(max(1.0 - residual if correct else -residual, _EDGE), 1.0 - _EDGE)
        spread = p + self.odds * (1.0 - p)  # P(right) under the alternative is p / spread
        step = -math.log(spread) if correct else math.log(self.odds / spread)
        self.statistic = max(0.0, self.statistic + step)
        self.n += 1
        self.estimation += (residual - self.estimation) / self.n
        self.drift_detected = self.statistic > self.threshold
