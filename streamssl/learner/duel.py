"""When a background head replaces the main one: a duel on the same labelled events."""

from __future__ import annotations

from typing import Literal, Sequence

from river import base


class Duel(base.Base):
    """The main head against a challenger started after a drift warning, scored on the same
    labelled events (each answered before either learns it).

    The challenger wins once it has been scored on at least ``min_labels`` labels and is right
    on ``margin`` (a share of those labels) more of them than the main head; it is given up after
    ``patience`` labels without winning.

    Examples
    --------
    >>> duel = Duel(min_labels=4, patience=10, margin=0.25)
    >>> duel.round([True, False], [True, True])  # 2 labels: too few to judge
    >>> duel.round([False, False], [True, True])  # 4 labels, 3 more right: 0.75 >= 0.25
    'swap'
    >>> duel = Duel(min_labels=4, patience=6, margin=0.25)
    >>> duel.round([True] * 6, [True] * 6)
    'drop'
    """

    def __init__(self, min_labels: int = 30, patience: int = 500, margin: float = 0.05) -> None:
        self.min_labels, self.patience, self.margin = min_labels, patience, margin
        self.scores = [0, 0, 0]  # labels scored, main head right, challenger right

    def round(self, main_right: Sequence[bool], challenger_right: Sequence[bool]) -> Literal["swap", "drop"] | None:
        """Score both heads on a batch of labelled events: ``"swap"`` if the challenger has won,
        ``"drop"`` if it ran out of patience, else ``None``."""
        self.scores[0] += len(main_right)
        self.scores[1] += int(sum(bool(r) for r in main_right))
        self.scores[2] += int(sum(bool(r) for r in challenger_right))
        n, main, challenger = self.scores
        if n >= self.min_labels and challenger - main >= self.margin * n:
            return "swap"
        if n >= self.patience:
            return "drop"
        return None
