"""Measures of representation collapse over a window of recent embeddings."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def effective_rank(z: torch.Tensor) -> float:
    """``exp`` of the entropy of the normalised singular values of ``z`` (Roy & Vetterli, 2007;
    RankMe): from 1 (every row the same direction) up to ``min(n, d)`` (all directions used
    equally). Rows are not centred, so embeddings that collapse onto one point score 1.

    >>> round(effective_rank(torch.eye(4)), 3)
    4.0
    >>> round(effective_rank(torch.ones(8, 4)), 3)
    1.0
    """
    s = torch.linalg.svdvals(z.double())
    total = s.sum()
    if total <= 0:
        return 1.0
    p = s / total
    p = p[p > 0]
    return float(math.exp(-(p * p.log()).sum()))


def embedding_std(z: torch.Tensor) -> torch.Tensor:
    """Std over rows of each dimension of the L2-normalised embeddings: about ``1/sqrt(d)`` for
    embeddings spread over the sphere, 0 for collapsed ones (SimSiam's collapse check).

    >>> embedding_std(torch.ones(5, 3)).tolist()
    [0.0, 0.0, 0.0]
    """
    return F.normalize(z.double(), dim=1).std(dim=0, unbiased=False)


class CollapseMonitor:
    """Keeps a ring of recent embedding rows (on their device) and summarises them on demand.

    Parameters
    ----------
    window
        How many rows are kept.
    per_batch
        How many rows of each added batch are kept (the window then spans more steps).

    Examples
    --------
    >>> mon = CollapseMonitor(window=64, per_batch=16)
    >>> mon.add(torch.randn(32, 4, generator=torch.Generator().manual_seed(0)))
    >>> s = mon.stats()
    >>> s["rows"], s["effective_rank"] > 3, 0.3 < s["embedding_std_mean"] < 0.6
    (16, True, True)
    """

    def __init__(self, window: int = 512, per_batch: int = 32) -> None:
        self.window, self.per_batch = window, per_batch
        self._ring: torch.Tensor | None = None
        self._written = 0

    @torch.no_grad()
    def add(self, z: torch.Tensor | None, rows: int | None = None) -> None:
        """Keep the first ``rows`` rows of a batch (``per_batch`` by default)."""
        if z is None or len(z) == 0:
            return
        z = z.detach()[: self.per_batch if rows is None else rows][-self.window:]
        if self._ring is None:
            self._ring = torch.zeros(self.window, z.shape[1], device=z.device, dtype=z.dtype)
        idx = (self._written + torch.arange(len(z), device=z.device)) % self.window
        self._ring[idx] = z
        self._written += len(z)

    def add_rows(self, z: torch.Tensor) -> None:
        """Keep every row given (e.g. restoring a saved window)."""
        self.add(z, rows=len(z))

    def rows(self) -> torch.Tensor | None:
        if self._ring is None:
            return None
        return self._ring[: min(self._written, self.window)]

    def stats(self) -> dict[str, float | int]:
        """``effective_rank``, ``embedding_std_mean`` and ``embedding_std_min`` over the window
        (empty before the first batch)."""
        z = self.rows()
        if z is None or len(z) < 2:
            return {}
        std = embedding_std(z)
        return {"rows": len(z), "effective_rank": effective_rank(z),
                "embedding_std_mean": float(std.mean()), "embedding_std_min": float(std.min())}
