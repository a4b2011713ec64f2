"""Online feature standardisation from running statistics."""

from __future__ import annotations

import numpy as np

from .compiled import compiled


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
        """The columns' standard deviations (1 where constant), computed once per state: every
        update replaces ``_m2`` with a new array, so the one it was computed from says whether
        it still holds (an event answered and then learned reads it once, not twice)."""
        if self.mean is None:
            raise RuntimeError("no data seen yet")
        m2, n, std = getattr(self, "_std_of", (None, None, None))
        if m2 is not self._m2 or n != self.n:
            var = np.maximum(self._m2 / max(self.n, 1), 0.0)
            std = np.where(var > self.eps, np.sqrt(var), 1.0)
            self._std_of = (self._m2, self.n, std)
        return std

    def update(self, X: np.ndarray) -> None:
        """Merge the statistics of the rows of ``X`` into the running ones."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            return
        if X.shape[0] == 1 and self.mean is not None and X.shape[1] == self.mean.shape[0]:
            # One event: merge's formulas with m = 1, in one compiled loop (to the bit).
            self.mean, self._m2 = _merge_row(X[0], self.n, self.mean, self._m2)
            self.n += 1
            return
        batch_mean = X.mean(axis=0)
        self.merge(X.shape[0], batch_mean, ((X - batch_mean) ** 2).sum(axis=0))

    def merge(self, m: float, mean: np.ndarray, m2: np.ndarray) -> None:
        """Merge the statistics of ``m`` rows seen elsewhere (their ``mean`` and sum of squared
        deviations ``m2``): the result is that of one pass over all the rows.

        >>> a, b = OnlineStandardizer(), OnlineStandardizer()
        >>> a.update(np.array([[1.0], [2.0]])); b.update(np.array([[3.0], [6.0]]))
        >>> a.merge(*b.moments()); a.n, a.mean.tolist()
        (4, [3.0])
        """
        if m <= 0:
            return
        mean, m2 = np.asarray(mean, dtype=np.float64), np.asarray(m2, dtype=np.float64)
        if self.mean is None:
            self.n, self.mean, self._m2 = int(m), mean.copy(), m2.copy()
            return
        if mean.shape != self.mean.shape:
            raise ValueError(f"expected {self.mean.shape[0]} features, got {mean.shape[0]}")
        n = self.n + m
        delta = mean - self.mean
        self.mean = self.mean + delta * (m / n)
        self._m2 = self._m2 + m2 + delta**2 * (self.n * m / n)
        self.n = int(n)

    def moments(self) -> tuple[int, np.ndarray, np.ndarray]:
        """Count, mean and sum of squared deviations of the rows seen (for :meth:`merge`)."""
        if self.mean is None:
            raise RuntimeError("no data seen yet")
        return self.n, self.mean.copy(), self._m2.copy()

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Z-scores of ``X`` under the current statistics (zeros before any update)."""
        X = np.asarray(X, dtype=np.float64)
        if self.mean is None:
            return np.zeros_like(X)
        if X.ndim == 2 and X.shape[0] == 1 and X.shape[1] == self.mean.shape[0]:
            return _scaled_row(X, self.mean, self.std, self.clip)
        z = (X - self.mean) / self.std
        return z.clip(-self.clip, self.clip)  # the method: a third of np.clip's cost on a row

    def state_dict(self) -> dict:
        return {"n": self.n, "mean": self.mean, "m2": self._m2}

    def load_state_dict(self, state: dict) -> None:
        self.n, self.mean, self._m2 = state["n"], state["mean"], state["m2"]


@compiled
def _merge_row(x: np.ndarray, n: int, mean: np.ndarray, m2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """New mean and squared deviations of ``n`` rows (``mean``, ``m2``) and row ``x``: the
    operations of :meth:`OnlineStandardizer.merge` for one row, in its order."""
    a, b = 1.0 / (n + 1), n / (n + 1)
    new_mean, new_m2 = np.empty_like(mean), np.empty_like(m2)
    for j in range(x.shape[0]):
        delta = x[j] - mean[j]
        new_mean[j] = mean[j] + delta * a
        new_m2[j] = (m2[j] + 0.0) + delta ** 2 * b
    return new_mean, new_m2


@compiled
def _scaled_row(X: np.ndarray, mean: np.ndarray, std: np.ndarray, clip: float) -> np.ndarray:
    """:meth:`OnlineStandardizer.transform` of one row ``X`` (shape ``(1, features)``)."""
    out = np.empty_like(X)
    for j in range(X.shape[1]):
        out[0, j] = min(max((X[0, j] - mean[j]) / std[j], -clip), clip)
    return out
