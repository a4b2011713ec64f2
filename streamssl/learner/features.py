"""What the learner's heads see of an event: its temporal context, standardisation, and the
self-supervised encoder's embedding."""

from __future__ import annotations

from typing import Hashable, Protocol, Sequence

import numpy as np
import torch

from .standardize import OnlineStandardizer

Keys = Sequence[Hashable] | None


class Context(Protocol):
    """A temporal context stage (:class:`~streamssl.learner.temporal.TemporalContext` or
    :class:`~streamssl.learner.learned_temporal.LearnedTemporalContext`)."""

    def n_outputs(self, n_inputs: int) -> int: ...
    def transform(self, X: np.ndarray, keys: Keys = None) -> np.ndarray: ...
    def update(self, X: np.ndarray, keys: Keys = None) -> np.ndarray: ...
    def recall(self, X: np.ndarray, keys: Keys = None) -> np.ndarray: ...


class Features:
    """The feature stages: each event with its temporal ``context`` (``None``: the event alone),
    the ``rows`` the trees and the memory read, then standardised online, ``Z`` the networks
    read. Each method returns both. With an ``encoder``
    (:class:`~streamssl.ssl.continual.ContinualEncoder`, which the learner trains on ``Z``),
    :meth:`featurize` puts its embedding before ``Z``: what the main MLP reads, computed when it
    reads it, so rows it replays are embedded by the encoder of the moment.

    - :meth:`peek`: a batch about to be answered (nothing changes);
    - :meth:`learn`: a batch being learned (the context moves on, the statistics take it in);
    - :meth:`recall`: the events of late labels, with the context they had.

    With :meth:`share` on, the statistics of the events learned are also gathered apart, for
    replicas of one daemon group to standardise alike (:meth:`take_moments`).

    >>> from streamssl.learner.temporal import TemporalContext
    >>> features = Features(TemporalContext((4,)))
    >>> rows, Z = features.learn(np.array([[1.0], [3.0]]))
    >>> rows.tolist()  # the event, and its difference from the moving average of the past
    [[1.0, 0.0], [3.0, 2.0]]
    >>> features.peek(np.array([[3.0]]))[0].shape, features.standardizer.n
    ((1, 2), 2)
    """

    def __init__(self, context: Context | None = None) -> None:
        self.context = context
        self.standardizer = OnlineStandardizer()
        self.shared: OnlineStandardizer | None = None  # the events' statistics since take_moments
        self.encoder = None  # a ContinualEncoder, set once the width of the rows is known

    def n_outputs(self, n_inputs: int) -> int:
        """Columns of the rows for events of ``n_inputs`` features."""
        return n_inputs if self.context is None else self.context.n_outputs(n_inputs)

    def _rows(self, how: str, X: np.ndarray, keys: Keys) -> np.ndarray:
        return X if self.context is None else getattr(self.context, how)(X, keys)

    def peek(self, X: np.ndarray, keys: Keys = None) -> tuple[np.ndarray, np.ndarray]:
        rows = self._rows("transform", X, keys)
        return rows, self.standardizer.transform(rows)

    def learn(self, X: np.ndarray, keys: Keys = None) -> tuple[np.ndarray, np.ndarray]:
        rows = self._rows("update", X, keys)
        self.standardizer.update(rows)
        if self.shared is not None:
            self.shared.update(rows)
        return rows, self.standardizer.transform(rows)

    def recall(self, X: np.ndarray, keys: Keys = None) -> tuple[np.ndarray, np.ndarray]:
        rows = self._rows("recall", X, keys)
        return rows, self.standardizer.transform(rows)

    def featurize(self, Z: torch.Tensor) -> torch.Tensor:
        """Standardised rows with the encoder's embedding before them (``Z`` itself without one)."""
        if self.encoder is None:
            return Z
        return torch.cat([self.encoder.embed(Z), Z], dim=1)

    def share(self, on: bool = True) -> None:
        """Gather (or stop gathering) the statistics of the events learned, for :meth:`take_moments`."""
        self.shared = OnlineStandardizer() if on else None

    def take_moments(self) -> tuple[int, np.ndarray, np.ndarray] | None:
        """Count, mean and sum of squared deviations of the rows learned since the last call
        (``None`` if there were none, or sharing is off)."""
        if self.shared is None or self.shared.mean is None:
            return None
        moments, self.shared = self.shared.moments(), OnlineStandardizer()
        return moments

    def merge_moments(self, n: int, mean: np.ndarray, m2: np.ndarray) -> None:
        """Standardise as if the events of another replica's moments had been learned here too."""
        self.standardizer.merge(n, mean, m2)
