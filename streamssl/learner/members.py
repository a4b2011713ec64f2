"""Members: the learners beside the main MLP head of a :class:`StreamLearner`, behind one interface.

Every member sees the same micro-batch (:class:`Batch`: the features with their temporal
context, raw and standardised), gives class probabilities for it, and learns its labelled
events (labels as class indices ``0..n_classes-1``, in the order the learner met them). The
combiner (:mod:`streamssl.learner.combine`) weighs them by their prequential outcomes. Any
river classifier can be a member (:class:`RiverMember`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from river import base, forest

from ..state import serialize
from .classifier import Lesson, OnlineMLPClassifier, learn_together
from .linear import OnlineLinear
from .memory import NearestNeighbourMemory
from .trees import forest_proba


@dataclass
class Batch:
    """One micro-batch as the members see it.

    ``rows`` are the features with their temporal context before standardisation, ``Z`` the
    same standardised (a tensor on the learner's device); the event's own features are the
    first ``n_inputs`` columns. Where the learner folds wide events
    (:class:`~streamssl.learner.fold.FeatureFold`), ``wide`` holds them unfolded (``None``
    otherwise): what the linear head reads.
    """

    rows: np.ndarray
    Z: torch.Tensor
    n_inputs: int
    wide: np.ndarray | None = None

    @functools.cached_property
    def own(self) -> torch.Tensor:
        """The event's own standardised features, without the temporal context (sliced once a
        batch: the memory and the MLP on them both read it)."""
        return self.Z[:, : self.n_inputs]


class Member(Protocol):
    """What the learner asks of a member."""

    def proba(self, batch: Batch, n_classes: int) -> np.ndarray:
        """Class probabilities, shape ``(len(batch.rows), n_classes)``, float64."""

    def learn(self, batch: Batch, y: np.ndarray) -> None:
        """Learn labelled events ``batch`` with class indices ``y`` (a member with a ``flush``
        method may hold them back until it is called: the learner calls it after each group of
        :meth:`StreamLearner.learn_one` events and before any other learning)."""

    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any) -> None: ...


def _numpy(proba: torch.Tensor) -> np.ndarray:
    return proba.detach().cpu().numpy().astype(np.float64)


class OwnFeaturesMLP:
    """An MLP on the event's own standardised features, for streams where the past is noise.

    >>> member = OwnFeaturesMLP(OnlineMLPClassifier(2, 8, 3e-3, 16, row_width=4, seed=0))
    >>> batch = Batch(np.zeros((3, 4)), torch.zeros(3, 4), n_inputs=2)
    >>> member.add_classes(2); member.learn(batch, np.array([0, 1, 1]))
    >>> member.proba(batch, 2).shape
    (3, 2)
    """

    def __init__(self, mlp: OnlineMLPClassifier) -> None:
        self.mlp = mlp  # its inputs: the first mlp.n_inputs columns, the event's own features

    def own(self, Z: torch.Tensor) -> torch.Tensor:
        """The event's own features of standardised rows ``Z``: the head's inputs."""
        return Z[:, : self.mlp.n_inputs]

    def add_classes(self, n_classes: int) -> None:
        self.mlp.add_classes(n_classes)

    def proba(self, batch: Batch, n_classes: int) -> np.ndarray:
        return _numpy(self.mlp.predict_proba(batch.own))

    def learn(self, batch: Batch, y: np.ndarray) -> None:
        learn_together([self.lesson(batch, y)])

    def lesson(self, batch: Batch, y: np.ndarray) -> Lesson:
        """What :meth:`learn` learns, for :func:`~streamssl.learner.classifier.learn_together`
        (the learner steps this head together with its main MLP)."""
        n, device = len(y), batch.Z.device
        return Lesson(self.mlp, batch.Z, torch.as_tensor(y, device=device), torch.ones(n, device=device),
                      self.own, torch.ones(n, dtype=torch.bool, device=device), mass=float(n))

    def state_dict(self) -> dict:
        return self.mlp.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.mlp.load_state_dict(state)


class LinearMember:
    """Logistic regression (:class:`~streamssl.learner.linear.OnlineLinear`) on the event's own
    features, standardised by its own statistics of the labelled events (or, for a model with
    ``scale=False``, by the learner's), unfolded where the learner folds wide events. A linear model on the temporal context too was worse
    (spam at 1 % labels, seed 0, 0.817 against 0.915 prequential accuracy on the labelled events).

    >>> member = LinearMember(OnlineLinear())
    >>> batch = Batch(np.array([[1.0, 0.0], [-1.0, 0.0]]), torch.eye(2), n_inputs=2)
    >>> member.add_classes(2); member.learn(batch, np.array([0, 1]))
    >>> member.proba(batch, 2).argmax(1).tolist()
    [0, 1]
    """

    def __init__(self, model: OnlineLinear) -> None:
        self.model = model

    def _inputs(self, batch: Batch) -> np.ndarray:
        if self.model.scale:  # the event unfolded where the learner folds it: a product per column is cheap
            own = batch.rows[:, : batch.n_inputs] if batch.wide is None else batch.wide
            return np.asarray(own, dtype=np.float64)
        return batch.own.detach().cpu().numpy().astype(np.float64)

    def add_classes(self, n_classes: int) -> None:
        self.model.add_classes(n_classes)

    def proba(self, batch: Batch, n_classes: int) -> np.ndarray:
        return self.model.predict_proba(self._inputs(batch))

    def learn(self, batch: Batch, y: np.ndarray) -> None:
        self.model.learn(self._inputs(batch), y)

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state)


class MemoryMember:
    """The nearest-neighbour memory over the last labelled events' own features (for many
    classes with few labels each, and right after a change).

    >>> member = MemoryMember(NearestNeighbourMemory(capacity=8, k=1))
    >>> batch = Batch(np.eye(2), torch.eye(2), n_inputs=2)
    >>> member.learn(batch, np.array([0, 1]))
    >>> member.proba(batch, 2).argmax(1).tolist()
    [0, 1]
    """

    def __init__(self, memory: NearestNeighbourMemory) -> None:
        self.memory = memory

    def proba(self, batch: Batch, n_classes: int) -> np.ndarray:
        return _numpy(self.memory.predict_proba(batch.own, n_classes))

    def learn(self, batch: Batch, y: np.ndarray) -> None:
        self.memory.add(batch.own, torch.as_tensor(y, device=batch.Z.device))

    def state_dict(self) -> dict:
        return self.memory.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.memory.load_state_dict(state)


class BatchClassifier(Protocol):
    """A classifier that answers and learns rows of class indices at once, as
    :class:`~streamssl.learner.forest.BatchForest` does; with ``wait``, it may hold rows back
    until :meth:`flush`."""

    def proba_batch(self, X: np.ndarray, n_classes: int) -> np.ndarray: ...

    def learn_batch(self, X: np.ndarray, y: np.ndarray, wait: bool = False) -> None: ...

    def flush(self) -> None: ...


class RiverMember:
    """Any river classifier, on the features with their temporal context (not standardised:
    a tree's thresholds are then in the units of the data), one ``learn_one`` per label;
    with ``own_features``, on the event's own features alone.

    A :class:`BatchClassifier` (our :class:`~streamssl.learner.forest.BatchForest`) answers
    and learns a micro-batch at once, and with :attr:`wait` set (the learner's per-event path)
    may hold labelled rows back for a chunk of them; river's adaptive random forest answers
    one at once (:func:`~streamssl.learner.trees.forest_proba`); other classifiers go row by
    row. Rows are normalised, uniform where the classifier knows nothing yet. Its state is pickled bytes,
    loaded back through the restricted loader (:mod:`streamssl.state.serialize`), which builds
    river's trees, forests, linear models and naive Bayes, not other classes.

    >>> from river import linear_model
    >>> member = RiverMember(linear_model.LogisticRegression())
    >>> batch = Batch(np.array([[0.0, 1.0], [1.0, 0.0]]), torch.zeros(2, 2), n_inputs=2)
    >>> member.proba(batch, 2).tolist()  # nothing learned yet
    [[0.5, 0.5], [0.5, 0.5]]
    >>> for _ in range(20):
    ...     member.learn(batch, np.array([0, 1]))
    >>> member.proba(batch, 2).argmax(1).tolist()
    [0, 1]
    """

    def __init__(self, model: base.Classifier, own_features: bool = False) -> None:
        self.own_features = own_features
        self.wait = False  # a BatchClassifier may hold labelled rows back (until flush)
        self._use(model)

    def _use(self, model: base.Classifier) -> None:
        self.model = model
        # Told once per model: isinstance on a runtime Protocol costs more than the call it picks.
        self._batched = all(callable(getattr(model, name, None)) for name in ("proba_batch", "learn_batch", "flush"))

    def _rows(self, batch: Batch) -> np.ndarray:
        rows = np.asarray(batch.rows, dtype=np.float64)
        return rows[:, : batch.n_inputs] if self.own_features else rows

    def proba(self, batch: Batch, n_classes: int) -> np.ndarray:
        rows = self._rows(batch)
        if self._batched:
            return self.model.proba_batch(rows, n_classes)
        if isinstance(self.model, forest.ARFClassifier):
            return forest_proba(self.model, rows, n_classes)
        out = np.zeros((len(rows), n_classes))
        for r, row in enumerate(rows.tolist()):
            for c, p in self.model.predict_proba_one(dict(enumerate(row))).items():
                if isinstance(c, (int, np.integer)) and 0 <= c < n_classes:  # bool too: 0/1 models answer False/True
                    out[r, int(c)] = p
        total = out.sum(axis=1, keepdims=True)
        return np.where(total > 0, out / np.where(total > 0, total, 1.0), 1.0 / max(1, n_classes))

    def learn(self, batch: Batch, y: np.ndarray) -> None:
        if self._batched:
            self.model.learn_batch(self._rows(batch), y, wait=self.wait)
            return
        for row, label in zip(self._rows(batch).tolist(), y.tolist()):
            self.model.learn_one(dict(enumerate(row)), label)

    def flush(self) -> None:
        """Learn the rows a :class:`BatchClassifier` holds back."""
        if self._batched:
            self.model.flush()

    def state_dict(self) -> bytes:
        # Pickled here (C speed, and bytes need no copy when a checkpoint snapshots the state);
        # river's forest deep-copied in Python was a daemon checkpoint's main cost.
        return serialize.dumps(self.model)

    def load_state_dict(self, state: bytes | base.Classifier) -> None:
        import copy

        # Bytes through the restricted loader, like the whole checkpoint; checkpoints before
        # held the object itself.
        self._use(serialize.loads(state) if isinstance(state, bytes) else copy.deepcopy(state))
