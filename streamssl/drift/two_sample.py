"""A streaming two-sample test: has the distribution of recent vectors left the reference's?

Kernel MMD between a reference window and the most recent window, in linear time through
random Fourier features of a Gaussian kernel: the squared distance between the two windows'
mean feature maps. The threshold is calibrated on the reference itself, so that it respects
the stream's own autocorrelation: every contiguous window inside the reference period is
tested against the rest of it, and the threshold is ``margin`` times the largest of those
statistics. A drift needs ``patience`` consecutive tests over the threshold.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np


class MMDTest:
    """Kernel two-sample drift test on a stream of vectors, with a calibrated threshold.

    The first ``reference`` rows (after a start or a drift) become the reference: they are
    standardised with their own mean and spread, the kernel bandwidth is their median
    pairwise distance, and the threshold is calibrated on them (see the module docstring).
    Then, every ``every`` rows, the last ``window`` rows are compared with the reference.

    Parameters
    ----------
    reference
        Rows in the reference period.
    window
        Rows in the recent window.
    every
        Rows between two tests.
    margin
        The threshold over the largest in-reference statistic.
    patience
        Consecutive tests over the threshold that make a drift.
    features
        Random Fourier features of the kernel.
    seed
        Seeds the random features.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> test = MMDTest(reference=600, window=150, every=25, seed=0)
    >>> test.update_many(rng.normal(size=(3000, 4)))  # stationary
    False
    >>> shifted = rng.normal(size=(400, 4)) + [1.0, 0, 0, 0]
    >>> [test.update_many(shifted[i:i + 25]) for i in range(0, 400, 25)].index(True) * 25 + 25  # rows to detect
    100
    """

    def __init__(self, reference: int = 1000, window: int = 200, every: int = 25, margin: float = 2.0,
                 patience: int = 2, features: int = 128, seed: int = 0) -> None:
        if not 0 < window < reference:
            raise ValueError(f"window ({window}) must be positive and smaller than reference ({reference})")
        if every < 1 or patience < 1 or features < 1 or margin <= 0:
            raise ValueError("every, patience and features must be at least 1, margin positive")
        self.reference = reference
        self.window = window
        self.every = every
        self.margin = margin
        self.patience = patience
        self.features = features
        self.seed = seed
        self._reset()

    def _reset(self) -> None:
        self._collecting: list[np.ndarray] = []
        self._n_collected = 0
        self._recent: deque[np.ndarray] = deque()  # feature maps of the recent rows
        self._recent_sum: np.ndarray | None = None
        self._mean = self._scale = self._omega = self._phase = self._ref_map = None
        self.threshold: float | None = None
        self.statistic: float | None = None
        self._since_test = 0
        self._over = 0
        self._drift_detected = False
        self._rng = np.random.default_rng(self.seed)

    @property
    def drift_detected(self) -> bool:
        """The last update ended in a drift (the reference is then collected afresh)."""
        return self._drift_detected

    @property
    def ready(self) -> bool:
        """The reference is in place and tests run."""
        return self.threshold is not None

    def refresh(self) -> None:
        """Drop the reference and collect a new one from the next rows."""
        seed = self._rng.integers(2**31)
        self._reset()
        self._rng = np.random.default_rng(seed)

    def _map(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self._mean) / self._scale
        return math.sqrt(2.0 / self.features) * np.cos(Z @ self._omega + self._phase)

    def _calibrate(self, R: np.ndarray) -> None:
        self._mean = R.mean(axis=0)
        self._scale = R.std(axis=0) + 1e-9
        Z = (R - self._mean) / self._scale
        sample = Z[self._rng.choice(len(Z), size=min(len(Z), 256), replace=False)]
        d2 = ((sample[:, None, :] - sample[None, :, :]) ** 2).sum(-1)
        bandwidth = math.sqrt(float(np.median(d2[np.triu_indices(len(sample), 1)])) or 1.0)
        self._omega = self._rng.normal(scale=1.0 / bandwidth, size=(R.shape[1], self.features))
        self._phase = self._rng.uniform(0, 2 * math.pi, size=self.features)
        maps = self._map(R)
        self._ref_map = maps.mean(axis=0)
        # The null: every contiguous window of the reference period against the rest of it.
        total, n, w = maps.sum(axis=0), len(maps), self.window
        csum = np.vstack([np.zeros(self.features), np.cumsum(maps, axis=0)])
        stride = max(1, w // 8)
        starts = np.arange(0, n - w + 1, stride)
        block = (csum[starts + w] - csum[starts]) / w
        rest = (total - block * w) / (n - w)
        null = ((block - rest) ** 2).sum(axis=1)
        self.threshold = self.margin * float(null.max())

    def update_many(self, X: np.ndarray) -> bool:
        """Add rows (oldest first); ``True`` if this batch ended in a drift."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ValueError(f"expected a 2-d array of rows, got shape {X.shape}")
        detected, statistic = False, None
        i = 0
        while i < len(X):
            if self.threshold is None:
                take = min(len(X) - i, self.reference - self._n_collected)
                self._collecting.append(X[i:i + take])
                self._n_collected += take
                i += take
                if self._n_collected == self.reference:
                    self._calibrate(np.concatenate(self._collecting))
                    self._collecting = []
                continue
            take = min(len(X) - i, self.every - self._since_test)
            maps = self._map(X[i:i + take])
            i += take
            for row in maps:
                self._recent.append(row)
            self._recent_sum = maps.sum(axis=0) + (0 if self._recent_sum is None else self._recent_sum)
            while len(self._recent) > self.window:
                self._recent_sum -= self._recent.popleft()
            self._since_test += take
            if self._since_test < self.every:
                continue
            self._since_test = 0
            if len(self._recent) < self.window:
                continue
            self.statistic = float(((self._recent_sum / self.window - self._ref_map) ** 2).sum())
            self._over = self._over + 1 if self.statistic > self.threshold else 0
            if self._over >= self.patience:
                detected, statistic = True, self.statistic
                self.refresh()  # the rows after the drift start the next reference
        if detected:
            self.statistic = statistic
        self._drift_detected = detected
        return detected

    # Plain-data state, for checkpoints.
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_recent"] = np.array(self._recent) if self._recent else None
        state["_rng"] = self._rng.bit_generator.state
        return state

    def __setstate__(self, state: dict) -> None:
        recent, rng = state.pop("_recent"), state.pop("_rng")
        self.__dict__.update(state)
        self._recent = deque(list(recent) if recent is not None else [])
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = rng
