"""The main head: the MLP on every feature, and the background head a drift starts beside it."""

from __future__ import annotations

from typing import Callable

import torch

from .classifier import OnlineMLPClassifier
from .duel import Duel

Featurize = Callable[[torch.Tensor], torch.Tensor]


class MainHead:
    """The MLP that sees every feature (the event's own, its temporal context and, with the
    encoder, its embedding), and the challenger a drift warning starts: a fresh MLP that learns
    only the labels that come after, scored against the main one on the same labelled events
    (:class:`~streamssl.learner.duel.Duel`). It replaces the main one once it proves better and
    is dropped when it does not.

    ``new_mlp(i)`` builds the ``i``-th MLP of the learner's life (its seed depends on ``i``, so a
    restored learner makes the same ones); ``new_duel()`` the duel a new challenger fights.

    >>> def new_mlp(i):
    ...     mlp = OnlineMLPClassifier(2, 8, 3e-3, 16, seed=i); mlp.add_classes(2); return mlp
    >>> heads = MainHead(new_mlp, lambda: Duel(min_labels=4, patience=10, margin=0.25))
    >>> heads.challenge(group=0.0)
    >>> heads.challenger is not None, heads.made
    (True, 2)
    >>> Z, y = torch.zeros(4, 2), torch.tensor([0, 1, 0, 1])
    >>> heads.round(torch.zeros(4, dtype=torch.bool), Z, y, lambda Z: Z)  # main always wrong
    >>> heads.challenger is None, heads.swaps  # right on 2 of 4 labels against none: it replaced the main one
    (True, 1)
    """

    def __init__(self, new_mlp: Callable[[int], OnlineMLPClassifier], new_duel: Callable[[], Duel]) -> None:
        self._new_mlp, self._new_duel = new_mlp, new_duel
        self.made = 0  # MLPs built so far (the main one, then each challenger)
        self.mlp = self._make()
        self.challenger: OnlineMLPClassifier | None = None
        self.duel = new_duel()
        self.swaps = 0  # challengers that won

    def _make(self) -> OnlineMLPClassifier:
        mlp = self._new_mlp(self.made)
        self.made += 1
        return mlp

    @property
    def mlps(self) -> list[OnlineMLPClassifier]:
        """The main MLP, and the challenger while there is one."""
        return [self.mlp] if self.challenger is None else [self.mlp, self.challenger]

    def add_classes(self, n_classes: int) -> None:
        for mlp in self.mlps:
            mlp.add_classes(n_classes)

    def proba(self, Z: torch.Tensor, featurize: Featurize, mlp: OnlineMLPClassifier | None = None) -> torch.Tensor:
        """The main MLP's probabilities for standardised events ``Z`` (or ``mlp``'s)."""
        return (mlp or self.mlp).predict_proba(featurize(Z))

    def challenge(self, group: float) -> None:
        """Start a challenger (a warning or drift was seen), unless one is already on."""
        if self.challenger is None:
            self.challenger = self._make()
            self.challenger.group = group
            self.duel = self._new_duel()

    def round(self, main_right: torch.Tensor, Z: torch.Tensor, y: torch.Tensor, featurize: Featurize) -> None:
        """Score the challenger against the main MLP's outcomes ``main_right`` on labelled events
        ``Z``, ``y`` (before either learns them): it replaces the main one, or is dropped, when
        the duel says so."""
        if self.challenger is None:
            return
        challenger_right = self.proba(Z, featurize, self.challenger).argmax(1) == y
        outcome = self.duel.round(main_right.tolist(), challenger_right.tolist())
        if outcome == "swap":
            self.mlp, self.challenger = self.challenger, None
            self.swaps += 1
        elif outcome == "drop":
            self.challenger = None

    def state_dict(self) -> dict:
        return {"head": self.mlp.state_dict(),
                "challenger": None if self.challenger is None else self.challenger.state_dict(),
                "duel": list(self.duel.scores), "heads_made": self.made, "swaps": self.swaps}

    def load_state_dict(self, state: dict) -> None:
        self.mlp.load_state_dict(state["head"])
        self.challenger = None
        if state["challenger"] is not None:
            self.challenger = self._make()
            self.challenger.load_state_dict(state["challenger"])
        self.duel.scores = list(state["duel"])
        self.made, self.swaps = state["heads_made"], state["swaps"]
