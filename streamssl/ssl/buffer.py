"""Bounded replay memory that mixes recent events with a uniform sample of older ones."""

from __future__ import annotations

import numpy as np


class ReplayBuffer:
    """A ring buffer of the newest rows plus a reservoir sample of the whole stream.

    ``sample(k)`` draws about half of its rows from each part, so a learner trained on
    the samples follows the current concept without forgetting older ones. Memory is
    bounded by ``recent + reservoir`` rows.

    Parameters
    ----------
    n_features
        Width of a row.
    recent
        Capacity of the ring of newest rows.
    reservoir
        Capacity of the reservoir (uniform over everything ever added). 0 disables it.
    seed
        Seed of the sampling generator.

    Examples
    --------
    >>> import numpy as np
    >>> buf = ReplayBuffer(n_features=2, recent=4, reservoir=4, seed=0)
    >>> buf.add(np.arange(20, dtype=float).reshape(10, 2))
    >>> len(buf), buf.sample(6).shape
    (8, (6, 2))
    """

    def __init__(self, n_features: int, recent: int = 512, reservoir: int = 512, seed: int = 0) -> None:
        self.n_features = n_features
        self.recent = recent
        self.reservoir = reservoir
        self.seed = seed
        self._reset()

    def _reset(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._ring = np.zeros((self.recent, self.n_features))
        self._ring_n = 0  # rows ever written to the ring
        self._res = np.zeros((self.reservoir, self.n_features))
        self._seen = 0  # rows ever offered to the reservoir

    def __len__(self) -> int:
        return min(self._ring_n, self.recent) + min(self._seen, self.reservoir)

    def add(self, X: np.ndarray) -> None:
        """Append rows (the oldest recent rows are overwritten; the reservoir samples)."""
        X = np.asarray(X, dtype=np.float64)
        m = X.shape[0]
        if m == 0:
            return
        idx = (self._ring_n + np.arange(m)) % self.recent
        self._ring[idx[-self.recent:]] = X[-self.recent:]
        self._ring_n += m
        if self.reservoir == 0:
            return
        # Algorithm R, vectorised: row i of the stream replaces a random slot with
        # probability reservoir / (i + 1).
        pos = self._seen + np.arange(m)
        fill = pos < self.reservoir
        self._res[pos[fill]] = X[fill]
        rest = ~fill
        if rest.any():
            slots = (self._rng.random(int(rest.sum())) * (pos[rest] + 1)).astype(np.int64)
            keep = slots < self.reservoir
            self._res[slots[keep]] = X[rest][keep]
        self._seen += m

    def sample(self, k: int) -> np.ndarray:
        """``k`` rows drawn with replacement, half from the recent ring and half from the reservoir."""
        n_ring = min(self._ring_n, self.recent)
        n_res = min(self._seen, self.reservoir)
        if n_ring + n_res == 0:
            return np.zeros((0, self.n_features))
        k_res = k // 2 if n_res else 0
        k_ring = k - k_res
        parts = [self._ring[self._rng.integers(0, n_ring, k_ring)]]
        if k_res:
            parts.append(self._res[self._rng.integers(0, n_res, k_res)])
        return np.concatenate(parts)

    def state_dict(self) -> dict:
        return {
            "ring": self._ring.copy(), "ring_n": self._ring_n, "res": self._res.copy(),
            "seen": self._seen, "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        self._ring, self._ring_n = state["ring"].copy(), state["ring_n"]
        self._res, self._seen = state["res"].copy(), state["seen"]
        self._rng.bit_generator.state = state["rng"]
