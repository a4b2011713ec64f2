"""Combiners: how the members of a :class:`StreamLearner` answer together, learned from their
prequential outcomes (right or wrong, before learning) on labelled events.

A learner is given a combiner without members, as a part with its settings (``EWA(rate=1.0)``),
and works with a clone of it for its own members (``combiner.clone({"members": names})``).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Mapping, Sequence

import numpy as np
from river import base

from .compiled import compiled


class EWA(base.Base):
    """An exponentially weighted average of the members' probabilities, on 0/1 loss with fixed share.

    Each error of a member on a labelled event multiplies its weight by ``exp(-rate)``; after
    each labelled event a share ``share`` of the total weight is spread evenly again, so a member
    that was poor can come back after a drift. Weights move on 0/1 loss, not log-loss, so they go
    to the more accurate member, not the better calibrated one (../shared/research/combiner-probe.md).
    Members under ``min_weight`` of the weight are not asked.

    Examples
    --------
    >>> mix = EWA(["a", "b"])
    >>> mix.update({"a": [True] * 10, "b": [False] * 10})
    >>> {k: round(v, 3) for k, v in mix.weights.items()}
    {'a': 0.969, 'b': 0.031}
    >>> mix.combine({"a": np.array([[0.9, 0.1]]), "b": np.array([[0.0, 1.0]])}).round(3)
    array([[0.872, 0.128]])
    """

    def __init__(self, members: Sequence[str] = (), rate: float = 0.5, share: float = 0.02,
                 min_weight: float = 1e-3) -> None:
        if rate <= 0 or not 0 <= share < 1:
            raise ValueError(f"EWA needs rate > 0 and 0 <= share < 1, got rate={rate}, share={share}")
        self.members = list(members)
        self.rate, self.share, self.min_weight = rate, share, min_weight
        self.logw = {name: 0.0 for name in self.members}

    @property
    def weights(self) -> dict[str, float]:
        """Each member's weight, summing to 1."""
        logw = self.logw  # a few members: Python's floats cost less than numpy's calls here
        top = max(logw[n] for n in self.members)
        w = [math.exp(logw[n] - top) for n in self.members]
        total = sum(w)
        return {n: x / total for n, x in zip(self.members, w)}

    def asked(self) -> list[str]:
        """The members whose probabilities :meth:`combine` needs."""
        return [name for name, w in self.weights.items() if w >= self.min_weight]

    def combine(self, probas: Mapping[str, np.ndarray]) -> np.ndarray:
        """The weighted average of ``probas`` (one array per asked member), rows normalised
        (:func:`_weighted_mean`: one compiled loop, where a dozen numpy calls cost 25 µs a row)."""
        weights = self.weights
        return _weighted_mean(np.stack(list(probas.values())), np.array([weights[name] for name in probas]))

    def update(self, outcomes: Mapping[str, Sequence[bool]]) -> None:
        """Learn from the members' outcomes on a batch of labelled events, event by event. A
        member not scored this time is charged the others' mean error."""
        losses = self.losses(outcomes)
        if losses is None:
            return
        decay = np.exp(-self.rate * losses)
        w = np.array(list(self.weights.values()))
        for t in range(decay.shape[1]):
            w *= decay[:, t]
            w = (1.0 - self.share) * w / w.sum() + self.share / len(w)
        self.logw = dict(zip(self.members, np.log(w).tolist()))

    def losses(self, outcomes: Mapping[str, Sequence[bool]]) -> np.ndarray | None:
        """The 0/1 losses of ``outcomes``, one row per member (in ``members``' order), one column
        per event; a member not scored is charged the others' mean. ``None`` if none was scored."""
        errors = {n: 1.0 - np.asarray(outcomes[n], dtype=np.float64) for n in self.members if n in outcomes}
        if not errors:
            return None
        mean = np.mean(list(errors.values()), axis=0)
        return np.stack([errors.get(n, mean) for n in self.members])

    def state_dict(self) -> dict:
        return {"logw": dict(self.logw)}

    def load_state_dict(self, state: dict) -> None:
        self.logw.update({k: v for k, v in state["logw"].items() if k in self.logw})


class Select(base.Base):
    """The member with the best accuracy over its last ``window`` scored labelled events answers
    alone; the earlier member in ``members`` wins ties.

    Examples
    --------
    >>> pick = Select(["a", "b"], window=4)
    >>> pick.update({"a": [True, False, False], "b": [True, True, False]})
    >>> pick.selected, pick.weights
    ('b', {'a': 0.0, 'b': 1.0})
    """

    def __init__(self, members: Sequence[str] = (), window: int = 50) -> None:
        self.members = list(members)
        self.window = window
        self.scores: dict[str, deque] = {name: deque(maxlen=window) for name in self.members}

    @property
    def selected(self) -> str:
        best, best_score = self.members[0], -math.inf
        for name in self.members:
            scores = self.scores[name]
            if scores and sum(scores) / len(scores) > best_score:
                best, best_score = name, sum(scores) / len(scores)
        return best

    @property
    def weights(self) -> dict[str, float]:
        """1 for the member that answers, 0 for the others."""
        selected = self.selected
        return {name: float(name == selected) for name in self.members}

    def asked(self) -> list[str]:
        return [self.selected]

    def combine(self, probas: Mapping[str, np.ndarray]) -> np.ndarray:
        return probas[self.selected]

    def update(self, outcomes: Mapping[str, Sequence[bool]]) -> None:
        for name, correct in outcomes.items():
            self.scores[name].extend(bool(c) for c in correct)

    def state_dict(self) -> dict:
        return {"scores": {k: list(q) for k, q in self.scores.items()}}

    def load_state_dict(self, state: dict) -> None:
        for k, values in state["scores"].items():
            if k in self.scores:
                self.scores[k].extend(values)


@compiled
def _weighted_mean(P: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The members' probabilities ``P`` (member, row, class) weighted by ``w``, each row
    normalised (its sum at least 1e-12): the members summed in their order, as the sum of the
    arrays was before.

    >>> _weighted_mean(np.array([[[0.9, 0.1]], [[0.0, 1.0]]]), np.array([0.75, 0.25])).tolist()
    [[0.675, 0.325]]
    """
    out = np.zeros(P.shape[1:])
    for r in range(P.shape[1]):
        for c in range(P.shape[2]):
            for m in range(P.shape[0]):
                out[r, c] += w[m] * P[m, r, c]
        total = 0.0
        for c in range(P.shape[2]):
            total += out[r, c]
        total = max(total, 1e-12)
        for c in range(P.shape[2]):
            out[r, c] /= total
    return out


COMBINERS = {"ewa": EWA, "select": Select}
"""The combiners by name (``StreamLearner(combiner=...)``, ``--combiner``)."""
