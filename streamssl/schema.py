"""The feature schema: numeric, categorical and boolean columns, any of them missing at times,
turned into one fixed-width float vector that every model (ours and the peers) learns from.

- **numeric**: the number itself.
- **boolean**: 1.0 or 0.0.
- **categorical**: a one-hot over ``buckets`` slots chosen by a stable hash of the value
  (feature hashing): unseen values need no vocabulary, and every process, restart and replica
  encodes a value alike. Two values may share a slot; more buckets make that rarer.
- **missing** (``None``, NaN, an absent key, an empty cell, ``NA``, ``null``, ``?``): a numeric or
  boolean value is imputed with the column's running mean (over about the last ``window``
  observed values, so it follows drift), and a *nullable* column carries a 0/1 missingness
  indicator beside it; a missing categorical value is the all-zero one-hot.

What cannot be a value of its column (text in a numeric column, an infinity) raises
:class:`EncodeError` with a short ``reason``. The label is read by one rule for every source
(:func:`label_value`), so a stream replayed from a file and served from Kafka has the same classes.

Examples
--------
>>> enc = FeatureEncoder([Column("kwh", nullable=True), Column("day", "categorical", buckets=4),
...                       Column("holiday", "boolean")])
>>> enc.names
['kwh', 'kwh=missing', 'day#0', 'day#1', 'day#2', 'day#3', 'holiday']
>>> enc.encode([2.0, "mon", True]).tolist()
[2.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0]
>>> enc.encode([4.0, "tue", "false"], text=True).tolist()
[4.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0]
>>> enc.encode([None, None, None]).tolist()  # imputed: mean kwh 3.0, holiday rate 0.5
[3.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.5]
>>> enc.encode(["lots", "wed", True])
Traceback (most recent call last):
...
streamssl.schema.EncodeError: wrong_type: column 'kwh' is numeric, got 'lots'
"""

from __future__ import annotations

import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Hashable

import numpy as np

from .errors import StreamSSLError

__all__ = ["Column", "EncodeError", "FeatureEncoder", "KINDS", "infer_kind", "is_missing", "is_number", "label_value"]

KINDS = ("numeric", "categorical", "boolean")
#: Text read as a missing value (compared stripped and lower-cased).
MISSING_TOKENS = frozenset({"", "na", "n/a", "nan", "null", "none", "?"})
_TRUE = frozenset({"true", "t", "yes", "y"})
_FALSE = frozenset({"false", "f", "no", "n"})
_F32_MAX = 3.4e38
_PLAIN = {float, int}  # the types of a JSON value the plain-row path takes as a number
_INT_TOKEN = re.compile(r"[+-]?\d+(?:\.0*)?", re.ASCII)
#: The longest label (characters of a string, digits of an integer): labels name classes.
MAX_LABEL_CHARS = 256
#: A column is numeric when at least this share of its present values are numbers.
NUMERIC_SHARE = 0.9


class EncodeError(StreamSSLError):
    """A value that cannot be a value of its column; ``reason`` is ``wrong_type`` or ``non_finite``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Column:
    """One input column.

    Parameters
    ----------
    name
        The column (CSV header, JSON key).
    kind
        ``numeric``, ``categorical`` or ``boolean``.
    nullable
        Whether a numeric or boolean column gets a missingness indicator beside its value.
        A missing value is imputed either way; categorical columns need no indicator.
    buckets
        Hash slots of a categorical column.
    """

    name: str
    kind: str = "numeric"
    nullable: bool = False
    buckets: int = 32

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name!r}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.buckets < 1:
            raise ValueError(f"column {self.name!r}: buckets must be positive, got {self.buckets}")

    @property
    def width(self) -> int:
        if self.kind == "categorical":
            return self.buckets
        return 1 + self.nullable

    @property
    def names(self) -> list[str]:
        if self.kind == "categorical":
            return [f"{self.name}#{i}" for i in range(self.buckets)]
        return [self.name, f"{self.name}=missing"] if self.nullable else [self.name]


def is_missing(value: Any) -> bool:
    """Whether a raw value stands for "no value".

    >>> [is_missing(v) for v in (None, float("nan"), " NA ", "", "?", 0, "0", "none")]
    [True, True, True, True, True, False, False, True]
    """
    if value is None:
        return True
    if type(value) is float:
        return value != value
    return isinstance(value, str) and value.strip().lower() in MISSING_TOKENS


def label_value(value: Any) -> Hashable | None:
    """A class label read from a JSON value or a text token, by one rule for every source
    (file replay, Kafka events and labels): no label (``None``) for a missing value; an integer
    for an integer, an integral float or a token that reads as one (``" 7.0 "``); a boolean for
    a boolean; else the text, stripped. Anything else (a fraction, a list, an object, text of
    more than :data:`MAX_LABEL_CHARS` characters or not valid Unicode) raises
    :class:`EncodeError` with reason ``bad_label``.

    >>> [label_value(v) for v in (None, float("nan"), " NA ", 3, -1.0, " 4 ", "7.0", " spam ", True)]
    [None, None, None, 3, -1, 4, 7, 'spam', True]
    >>> label_value(0.5)
    Traceback (most recent call last):
    ...
    streamssl.schema.EncodeError: bad_label: label must be a string, an integer or a boolean, got 0.5
    """
    if is_missing(value):
        return None
    if isinstance(value, str):
        text = value.strip()
        if len(text) > MAX_LABEL_CHARS:
            raise EncodeError("bad_label", f"label text must have at most {MAX_LABEL_CHARS} characters")
        if _INT_TOKEN.fullmatch(text):
            value = int(text.split(".", 1)[0])
        elif not text.isascii() and not _encodable(text):
            raise EncodeError("bad_label", f"label is not valid Unicode (a lone surrogate): {_short(text)}")
        else:
            return text
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) >= 10 ** MAX_LABEL_CHARS:
            raise EncodeError("bad_label", f"label integers must have at most {MAX_LABEL_CHARS} digits")
        return value
    raise EncodeError("bad_label", f"label must be a string, an integer or a boolean, got {_short(value)}")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def is_number(token: str) -> bool:
    """Whether text reads as a number (``float`` accepts it).

    >>> is_number(" 1e3 "), is_number("inf"), is_number(""), is_number("one")
    (True, True, False, False)
    """
    try:
        float(token)
    except ValueError:
        return False
    return True


def infer_kind(values: Sequence[Any]) -> tuple[str, bool]:
    """``(kind, nullable)`` of a column from a sample of its raw values (text or JSON values).

    Numeric when at least 90 % of the present values are numbers (or number text): the rest
    are then rejected row by row, so one stray token does not turn a measurement into a
    category. Boolean when every present value is ``true``/``false`` (or yes/no). Categorical
    otherwise. A column with no present value is numeric and nullable.

    >>> infer_kind(["1", "2.5", "", "3"]), infer_kind(["red", "1", "blue"]), infer_kind(["True", "no"])
    (('numeric', True), ('categorical', False), ('boolean', False))
    """
    present = [v for v in values if not is_missing(v)]
    nullable = len(present) < len(values)
    if not present:
        return "numeric", True
    if all(isinstance(v, bool) or (isinstance(v, str) and v.strip().lower() in _TRUE | _FALSE) for v in present):
        return "boolean", nullable
    numbers = sum(1 for v in present if (not isinstance(v, bool) and isinstance(v, (int, float)))
                  or (isinstance(v, str) and is_number(v)))
    return ("numeric" if numbers >= NUMERIC_SHARE * len(present) else "categorical"), nullable


def _bucket(value: Any, buckets: int) -> int:
    """A stable slot for a categorical value (the same in every process, unlike ``hash``)."""
    text = value.strip() if isinstance(value, str) else str(value)
    return zlib.crc32(text.encode("utf-8", "surrogatepass")) % buckets


class FeatureEncoder:
    """Encodes rows of raw values, one per :class:`Column`, into float64 vectors.

    Parameters
    ----------
    columns
        The input columns, in the order of the values given to :meth:`encode`.
    window
        The running mean used for imputation weighs about the last ``window`` observed values.
    """

    def __init__(self, columns: Sequence[Column], window: int = 16) -> None:
        self.columns = list(columns)
        self.window = window
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError("column names must be unique")
        self._reset()

    def _reset(self) -> None:
        self._count = np.zeros(len(self.columns), dtype=np.int64)
        self._mean = np.zeros(len(self.columns), dtype=np.float64)
        self._block_sum = np.zeros(len(self.columns), dtype=np.float64)  # complete rows not yet in the means
        self._block_n = 0
        self._offsets = np.cumsum([0] + [c.width for c in self.columns])
        self._plain = all(c.kind == "numeric" and not c.nullable for c in self.columns)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.columns)} columns -> {self.width} features)"

    @property
    def names(self) -> list[str]:
        """The encoded feature names, in vector order."""
        return [n for c in self.columns for n in c.names]

    @property
    def width(self) -> int:
        return int(self._offsets[-1])

    def encode(self, values: Sequence[Any], text: bool = False) -> np.ndarray:
        """The vector of one row. ``text``: the values are text tokens (a CSV row), so number
        text is read as a number; otherwise (JSON values) a numeric column takes only numbers.
        The numeric and boolean values of a good row update the imputation means."""
        if self._plain:  # the common case, complete numeric rows, without a Python step per value
            x = self._plain_row(values, text)
            if x is not None:
                self._observe_all(x)
                return x
        self._merge_block()
        out = np.zeros(self.width, dtype=np.float64)
        seen: list[tuple[int, float]] = []  # applied once the whole row is good
        for j, (column, value) in enumerate(zip(self.columns, values)):
            at = int(self._offsets[j])
            if is_missing(value):
                if column.kind != "categorical":
                    out[at] = self._mean[j]
                    if column.nullable:
                        out[at + 1] = 1.0
                continue
            if column.kind == "categorical":
                if isinstance(value, (list, dict)):
                    raise EncodeError("wrong_type", f"column {column.name!r} is categorical, got {_short(value)}")
                out[at + _bucket(value, column.buckets)] = 1.0
                continue
            number = self._number(column, value, text) if column.kind == "numeric" else self._boolean(column, value)
            out[at] = number
            seen.append((j, number))
        for j, number in seen:
            self._count[j] += 1
            self._mean[j] += (number - self._mean[j]) / min(self._count[j], self.window)
        return out

    @staticmethod
    def _plain_row(values: Sequence[Any], text: bool) -> np.ndarray | None:
        """The row as float64 if every value is a plain finite number (number text, for
        ``text``), else ``None``: the per-value path then says what is wrong or missing."""
        try:
            if text:
                numbers = [float(v) for v in values]
            elif set(map(type, values)) <= _PLAIN:  # every value a float or an int (no bool, no None)
                numbers = values
            else:
                return None
            # A NaN or infinity makes the sum non-finite (so does an overflowing sum, and an int
            # beyond float range raises: the per-value path then looks closer); without them min
            # and max are exact. Every step runs in C: a row of 40,000 values costs no Python step each.
            if numbers and math.isfinite(sum(numbers)) and -_F32_MAX <= min(numbers) and max(numbers) <= _F32_MAX:
                return np.array(numbers, dtype=np.float64)
        except (ValueError, TypeError, OverflowError):
            pass
        return None

    def _number(self, column: Column, value: Any, text: bool) -> float:
        if isinstance(value, str) and text:
            try:
                number = float(value)
            except ValueError:
                raise EncodeError("wrong_type", f"column {column.name!r} is numeric, got {_short(value)}") from None
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise EncodeError("wrong_type", f"column {column.name!r} is numeric, got {_short(value)}")
        else:
            try:
                number = float(value)
            except OverflowError:
                number = math.inf
        if not math.isfinite(number) or abs(number) > _F32_MAX:
            raise EncodeError("non_finite", f"column {column.name!r}: {_short(value)} is not a finite float32")
        return number

    def _boolean(self, column: Column, value: Any) -> float:
        if isinstance(value, bool):
            return float(value)
        if type(value) in (int, float) and value in (0, 1):
            return float(value)
        if isinstance(value, str):
            token = value.strip().lower()
            if token in _TRUE or token == "1":
                return 1.0
            if token in _FALSE or token == "0":
                return 0.0
        raise EncodeError("wrong_type", f"column {column.name!r} is boolean, got {_short(value)}")

    def _observe_all(self, x: np.ndarray) -> None:
        """A complete row: summed now (one vector add), merged into the means when they are read."""
        self._block_sum += x
        self._block_n += 1

    def _merge_block(self) -> None:
        """Fold the rows summed by :meth:`_observe_all` into the running means, as their mean
        observed ``k`` times: exact while a column has fewer than ``window`` values, then the
        weight ``1 - (1 - 1/window)**k`` that ``k`` steps of the running mean give a block."""
        k = self._block_n
        if not k:
            return
        block = self._block_sum / k
        n = self._count + k
        exact = n <= self.window
        weight = np.where(exact, k / np.maximum(n, 1), 1.0 - (1.0 - 1.0 / self.window) ** k)
        self._mean += weight * (block - self._mean)
        self._count = n
        self._block_sum[:] = 0.0
        self._block_n = 0

    # -- state ---------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """The imputation statistics (plain lists: a checkpoint stores them as they are)."""
        self._merge_block()
        return {"names": [c.name for c in self.columns], "count": self._count.tolist(), "mean": self._mean.tolist()}

    def load_state_dict(self, state: dict) -> None:
        if state.get("names") != [c.name for c in self.columns]:
            raise ValueError("the saved imputation statistics are for other columns")
        self._count = np.asarray(state["count"], dtype=np.int64)
        self._mean = np.asarray(state["mean"], dtype=np.float64)
        self._block_sum[:] = 0.0
        self._block_n = 0


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
