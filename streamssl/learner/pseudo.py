"""When a prediction may be used as a label: the pseudo-labelling policy and its guards."""

from __future__ import annotations

from collections import Counter

import numpy as np
from river import base


class PseudoLabelPolicy(base.Base):
    """Accept a prediction as a label only when it is confident and the guards allow it.

    Guards against confirmation bias:

    * **threshold**: the top probability must be at least ``threshold``;
    * **warm-up**: nothing is accepted before ``warmup`` true labels were seen;
    * **cooldown**: nothing is accepted for ``cooldown`` events after a drift (:meth:`pause`);
    * **class balance**: the share of a class among accepted pseudo-labels may not exceed
      ``slack`` times its share among recent true labels (both counts decay by ``decay``
      per label), the most confident candidates going first;
    * **weight**: accepted labels carry ``weight`` (< 1) in the loss; applied by the learner.

    Rejections are counted by reason. ``source`` says whose answers a
    :class:`~streamssl.learner.StreamLearner` offers: ``"self"``, its served answer (combined and
    calibrated, so ``threshold`` is a calibrated confidence), or ``"memory"``, the
    nearest-neighbour memory's (co-training).

    Examples
    --------
    >>> import numpy as np
    >>> policy = PseudoLabelPolicy(threshold=0.9, warmup=2, slack=1.0, decay=1.0)
    >>> policy.observe_labels(np.array([0, 1, 0, 1]), n_classes=2)
    >>> proba = np.array([[0.95, 0.05], [0.6, 0.4], [0.02, 0.98], [0.97, 0.03], [0.99, 0.01]])
    >>> rows, labels = policy.select(proba, position=100)
    >>> rows.tolist(), labels.tolist()
    ([4, 3, 2], [0, 0, 1])
    >>> dict(policy.rejected)
    {'below_threshold': 1, 'class_balance': 1}
    """

    def __init__(
        self,
        threshold: float = 0.99,
        warmup: int = 100,
        weight: float = 0.3,
        slack: float = 1.5,
        cooldown: int = 500,
        decay: float = 0.999,
        source: str = "self",
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        if not 0.0 < weight <= 1.0:
            raise ValueError("weight must be in (0, 1]")
        if source not in ("self", "memory"):
            raise ValueError(f"source must be 'self' or 'memory', got {source!r}")
        self.threshold, self.warmup, self.weight = threshold, warmup, weight
        self.slack, self.cooldown, self.decay = slack, cooldown, decay
        self.source = source
        self._reset()

    def _reset(self) -> None:
        self.true_labels = 0
        self._prior = np.zeros(0)     # decayed counts of true labels per class
        self._given = np.zeros(0)     # decayed counts of accepted pseudo-labels per class
        self.paused_until = -1
        self.accepted = 0
        self.rejected: Counter[str] = Counter()

    def _grow(self, n_classes: int) -> None:
        if n_classes > len(self._prior):
            pad = n_classes - len(self._prior)
            self._prior = np.concatenate([self._prior, np.zeros(pad)])
            self._given = np.concatenate([self._given, np.zeros(pad)])

    def observe_labels(self, y: np.ndarray, n_classes: int) -> None:
        """Record true labels (class indices): they set the class prior and end the warm-up."""
        self._grow(n_classes)
        for c in np.asarray(y, dtype=np.int64):
            self._prior *= self.decay
            self._prior[c] += 1.0
        self.true_labels += len(y)

    def pause(self, position: int) -> None:
        """No pseudo-labels until ``position + cooldown`` (called on drift)."""
        self.paused_until = max(self.paused_until, position + self.cooldown)

    def select(self, proba: np.ndarray, position: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows of ``proba`` (unlabelled events) accepted, and their labels (class indices)."""
        empty = np.zeros(0, dtype=np.int64)
        n = len(proba)
        if n == 0 or proba.shape[1] == 0:
            return empty, empty
        if self.true_labels < self.warmup:
            self.rejected["warmup"] += n
            return empty, empty
        if position < self.paused_until:
            self.rejected["cooldown"] += n
            return empty, empty
        conf = proba.max(axis=1)
        labels = proba.argmax(axis=1)
        candidates = np.flatnonzero(conf >= self.threshold)
        self.rejected["below_threshold"] += n - len(candidates)
        if len(candidates) == 0:
            return empty, empty
        self._grow(proba.shape[1])
        prior = self._prior / max(self._prior.sum(), 1e-12)
        total = self._given.sum() + len(candidates)
        rows, out = [], []
        for c in np.unique(labels[candidates]):
            mine = candidates[labels[candidates] == c]
            mine = mine[np.argsort(-conf[mine], kind="stable")]
            allowance = int(np.floor(self.slack * prior[c] * total - self._given[c]))
            take = mine[: max(allowance, 0)]
            self.rejected["class_balance"] += len(mine) - len(take)
            rows.append(take)
            out.append(np.full(len(take), c))
        rows_a, labels_a = np.concatenate(rows), np.concatenate(out)
        for c in labels_a:
            self._given *= self.decay
            self._given[c] += 1.0
        self.accepted += len(rows_a)
        return rows_a.astype(np.int64), labels_a.astype(np.int64)

    def state_dict(self) -> dict:
        return {
            "true_labels": self.true_labels, "prior": self._prior, "given": self._given,
            "paused_until": self.paused_until, "accepted": self.accepted, "rejected": dict(self.rejected),
        }

    def load_state_dict(self, state: dict) -> None:
        self.true_labels, self._prior, self._given = state["true_labels"], state["prior"], state["given"]
        self.paused_until, self.accepted = state["paused_until"], state["accepted"]
        self.rejected = Counter(state["rejected"])
