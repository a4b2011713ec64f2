"""Online feature standardisation from running statistics."""

from __future__ import annotations

import numpy as np


class OnlineStandardizer:
    """Standardise features with running means and variances (Chan's parallel merge).

    Constant (or not yet varying) columns get a unit scale, and z-scores are clipped to
    ``±clip`` so that one extreme value cannot blow up the models downstream.

    Parameters
    ----------
    clip
        Largest absolute z-score returned.
    eps
        Variances below ``eps`` count as zero (the column is treated as constant).

    Examples
    --------
    >>> import numpy as np
    >>> s = OnlineStandardizer()
    >>> s.update(np.array([[1.0, 5.0], [3.0, 5.0]]))
    >>> s.mean.tolist(), s.std.tolist()
    ([2.0, 5.0], [1.0, 1.0])
    >>> s.transform(np.array([[4.0, 6.0]])).tolist()
    [[2.0, 1.0]]
    """

    def __init__(self, clip: float = 8.0, eps: float = 1e-12) -> None:
        self.clip = clip
        self.eps = eps
        self._reset()

    def _reset(self) -> None:
        self.n = 0
        self.mean: np.ndarray | None = None
        self._m2: np.ndarray | None = None

    @property
    def n_features(self) -> int | None:
        return None if self.mean is None else self.mean.shape[0]

    @property
    def std(self) -> np.ndarray:
        if self.mean is None:
            raise RuntimeError("no data seen yet")
        var = np.maximum(self._m2 / max(self.n, 1), 0.0)
        return np.where(var > self.eps, np.sqrt(var), 1.0)

    def update(self, X: np.ndarray) -> None:
        """Merge the statistics of the rows of ``X`` into the running ones."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            return
        m = X.shape[0]
        batch_mean = X.mean(axis=0)
        batch_m2 = ((X - batch_mean) ** 2).sum(axis=0)
        if self.mean is None:
            self.n, self.mean, self._m2 = m, batch_mean, batch_m2
            return
        if X.shape[1] != self.mean.shape[0]:
            raise ValueError(f"expected {self.mean.shape[0]} features, got {X.shape[1]}")
        n = self.n + m
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (m / n)
        self._m2 = self._m2 + batch_m2 + delta**2 * (self.n * m / n)
        self.n = n

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Z-scores of ``X`` under the current statistics (zeros before any update)."""
        X = np.asarray(X, dtype=np.float64)
        if self.mean is None:
            return np.zeros_like(X)
        z = (X - self.mean) / self.std
        return np.clip(z, -self.clip, self.clip)

    def state_dict(self) -> dict:
        return {"n": self.n, "mean": self.mean, "m2": self._m2}

    def load_state_dict(self, state: dict) -> None:
        self.n, self.mean, self._m2 = state["n"], state["mean"], state["m2"]
