"""River's events, dicts of features, as the learner's rows: what ``learn_one`` and
``predict_proba_one`` take."""

from __future__ import annotations

import warnings
from typing import Any, Hashable

import numpy as np

from ..schema import Column, FeatureEncoder, is_missing


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _column(name: Hashable, value: Any) -> Column:
    """A feature's column, its kind by its first value: text is categorical, a bool boolean,
    anything else (a number; a missing value, read as a missing number) numeric. By the value's
    Python type, not :func:`~streamssl.schema.infer_kind`'s reading of text, which is for a
    file's cells: a river event's values come typed, and ``"7"`` there is a category."""
    value = _plain(value)
    if isinstance(value, bool):
        return Column(name, "boolean")  # type: ignore[arg-type]
    if isinstance(value, str) and not is_missing(value):
        return Column(name, "categorical")  # type: ignore[arg-type]
    return Column(name)  # type: ignore[arg-type]


class DictRows:
    """River's events as rows of numbers, the features fixed by the first event.

    Each feature of the first event (its keys sorted: the order of a dict's keys means nothing)
    becomes a column of a :class:`~streamssl.schema.FeatureEncoder`, as a column of a replayed
    or consumed stream does, its kind by the first event's value: text is categorical (a
    one-hot over 32 hashed slots, so values never seen need no vocabulary), a bool boolean, a
    number numeric. A missing value (``None``, NaN, an absent key) is imputed with the feature's
    recent mean; a value its column cannot take (text for a number, an infinity) raises
    :class:`~streamssl.schema.EncodeError` saying which. A feature the first event did not
    have is left out of every row, with one warning; :attr:`unused` names them.

    Examples
    --------
    >>> rows = DictRows()
    >>> rows({"kwh": 2.0, "day": "mon", "holiday": False}).shape  # 1 + 32 slots + 1
    (1, 34)
    >>> rows.keys
    ['day', 'holiday', 'kwh']
    >>> float(rows({"kwh": None, "day": "tue", "holiday": True})[0, -1])  # imputed: the mean so far
    2.0
    >>> rows({"kwh": "lots", "day": "wed", "holiday": True})
    Traceback (most recent call last):
    ...
    streamssl.schema.EncodeError: wrong_type: column 'kwh' is numeric, got 'lots'
    """

    def __init__(self) -> None:
        self.keys: list[Hashable] | None = None
        self.encoder: FeatureEncoder | None = None
        self.unused: set[Hashable] = set()

    def _start(self, columns: list[Column]) -> None:
        self.keys = [c.name for c in columns]
        self._known = frozenset(self.keys)
        self.encoder = FeatureEncoder(columns)

    def __call__(self, x: dict) -> np.ndarray:
        """The event ``x`` as a row, shape ``(1, width)``."""
        if self.encoder is None:
            self._start([_column(k, x[k]) for k in sorted(x, key=str)])
        if not self._known.issuperset(x):
            new = [k for k in x if k not in self._known and k not in self.unused]
            if new and not self.unused:
                warnings.warn(f"feature {new[0]!r} was not in the first event, which fixed the learner's features "
                              f"({len(self.keys)}): it is left out (give every event all its features, None "
                              "where one is missing)", stacklevel=4)
            self.unused.update(new)
        return self.encoder.encode([_plain(x.get(k)) for k in self.keys])[None, :]

    def state_dict(self) -> dict | None:
        if self.encoder is None:
            return None
        return {"columns": [[c.name, c.kind, c.buckets] for c in self.encoder.columns],
                "stats": self.encoder.state_dict()}

    def load_state_dict(self, state: dict | None, names: list[Hashable] | None = None) -> None:
        """Load :meth:`state_dict`; without one, ``names`` (a checkpoint from before this
        class) are the features, all numeric."""
        if state is not None:
            self._start([Column(name, kind, buckets=buckets) for name, kind, buckets in state["columns"]])
            self.encoder.load_state_dict(state["stats"])
        elif names is not None:
            self._start([Column(name) for name in names])
