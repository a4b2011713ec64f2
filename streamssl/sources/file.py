"""Replay a recorded event stream from a CSV or JSON-lines file, in micro-batches.

The file is streamed line by line (plain or gzip-compressed), never read whole, so
recordings far larger than memory can be replayed. Rows that cannot be used are
never dropped silently: each one is counted and handed to an optional callback as a
:class:`BadRecord`, and the replay goes on.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import json
import math
import os
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Union, cast

import numpy as np

from streamssl.errors import InputError

__all__ = ["BadRecord", "Batch", "FileSource"]

_Label = Union[int, str, None]
_Row = tuple[int, list[float], _Label]  # (line number, features, label)

_GZIP_MAGIC = b"\x1f\x8b"
_RAW_LIMIT = 1000
_TOKEN_LIMIT = 40
_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
_INT_TOKEN = re.compile(r"[+-]?\d+(?:\.0*)?", re.ASCII)
# What a damaged gzip stream or badly encoded text raises while being read.
_READ_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError)
_MISSING = object()


@dataclass(frozen=True)
class BadRecord:
    """A row of the file that could not be turned into an event.

    Parameters
    ----------
    path
        The file, as given to :class:`FileSource`.
    line
        1-based line number in the file.
    reason
        Short human reason, e.g. ``"expected 9 columns, got 7"``.
    raw
        The line's text without its line break, cut to 1000 characters.
    """

    path: str
    line: int
    reason: str
    raw: str


@dataclass(frozen=True)
class Batch:
    """Up to ``batch_size`` consecutive good rows.

    Parameters
    ----------
    X
        Features, float64, shape ``(n, d)``.
    y
        ``n`` labels: an ``int`` for integer tokens (``"1"``, ``"1.0"``, ``"-3"``), else the
        stripped string; ``None`` for an unlabelled event.
    lines
        int64, shape ``(n,)``: the 1-based file line number of each row.
    """

    X: np.ndarray
    y: list
    lines: np.ndarray


class _BadRow(Exception):
    """Raised inside the row parsers; becomes a :class:`BadRecord`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FileSource:
    """Replay a recorded stream from a CSV or JSONL file in micro-batches.

    The format comes from the extension (``.csv``, ``.jsonl``, ``.ndjson``, each optionally
    followed by ``.gz``); gzip compression is recognised by the file's magic bytes, whatever
    the extension says. Text is read as UTF-8 (a leading byte-order mark is ignored).

    *CSV*: the first non-blank line is the header; the last column is the label, whatever
    its name, and the others are numeric features. *JSONL*: one object per line; the label
    is the ``label`` field (absent or ``null``: unlabelled). The features are the
    ``features`` field (a list, named ``x0..x{d-1}``, or an object name -> number), or else
    every other top-level field. In ``features`` mode other top-level fields (ids,
    timestamps) are ignored. The first good record fixes the feature names and their order;
    objects with the same keys in another order are re-ordered.

    Blank lines are skipped. A row with the wrong shape, a non-numeric, missing, NaN or
    infinite feature, or invalid JSON is a bad record: it is counted in ``bad_records``,
    passed to ``on_bad`` and skipped. Each record is one physical line (a quoted CSV field
    cannot span lines). Problems with the file itself (missing, a directory, unreadable,
    empty, a bad header, damaged gzip data) raise :class:`~streamssl.errors.InputError`.

    ``iter(source)`` starts a fresh pass from the top of the file and resets the counters.
    It opens the file and reads up to the first good row at once, so file errors surface
    there and ``feature_names`` is known as soon as iteration has started.

    Parameters
    ----------
    path
        The file to replay.
    batch_size
        Most rows per :class:`Batch`. The last batch may be smaller; none is empty.
    limit
        Stop after this many good rows (``None``: read the whole file).
    on_bad
        Called with each :class:`BadRecord`, in file order, as it is met.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(tmp.name) / "tiny.csv"
    >>> _ = path.write_text("a,b,label\\n1,2,0\\n3,4,UP\\n5,oops,1\\n\\n7,8,\\n")
    >>> bad = []
    >>> source = FileSource(path, batch_size=2, on_bad=bad.append)
    >>> for batch in source:
    ...     print(batch.X.tolist(), batch.y, batch.lines.tolist())
    [[1.0, 2.0], [3.0, 4.0]] [0, 'UP'] [2, 3]
    [[7.0, 8.0]] [None] [6]
    >>> source.feature_names
    ['a', 'b']
    >>> source.rows_read, source.bad_records
    (3, 1)
    >>> bad[0].line, bad[0].reason
    (4, "non-numeric value 'oops' in column 'b'")
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        path: str | os.PathLike,
        batch_size: int = 64,
        limit: int | None = None,
        on_bad: Callable[[BadRecord], None] | None = None,
    ) -> None:
        self.path = path
        self.batch_size = batch_size
        self.limit = limit
        self.on_bad = on_bad

        self._name = str(os.fspath(path))
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InputError(f"limit must be None or a non-negative integer, got {limit!r}")
        self._format = _detect_format(self._name)
        self._check_path()
        self._reset()

    def _reset(self) -> None:
        self._feature_names: list[str] | None = None
        self._layout: str | None = None  # JSONL only: "list", "object" or "flat"
        self._gzip = False
        self._bad_records = 0
        self._rows_read = 0

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(path={self._name!r}, batch_size={self.batch_size}, "
            f"limit={self.limit})"
        )

    # -- state ---------------------------------------------------------------------------

    @property
    def feature_names(self) -> list[str]:
        """Feature names, in column order (a copy). Raises ``InputError`` until known."""
        if self._feature_names is None:
            raise InputError(
                f"{self._name}: feature names are not known yet; they are read from the header "
                "or the first good record once iteration has started"
            )
        return list(self._feature_names)

    @property
    def bad_records(self) -> int:
        """Rows rejected so far in the current pass."""
        return self._bad_records

    @property
    def rows_read(self) -> int:
        """Good rows yielded so far in the current pass."""
        return self._rows_read

    # -- iteration -----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Batch]:
        self._check_path()
        self._reset()
        batches = self._batches()
        next(batches)  # open the file and read up to the first good row
        return cast(Iterator[Batch], batches)

    def _batches(self) -> Iterator[Batch | None]:
        with self._open_text() as stream:
            lines = self._numbered_lines(stream)
            if self._format == "csv":
                self._read_header(lines)
                rows = self._csv_rows(lines)
            else:
                rows = self._json_rows(lines)
            if self.limit == 0:
                yield None
                return
            first = next(rows, None)
            yield None  # primed: __iter__ has done its eager part
            if first is None:
                return

            xs: list[list[float]] = []
            ys: list[_Label] = []
            numbers: list[int] = []
            taken = 0
            for lineno, x, y in itertools.chain((first,), rows):
                xs.append(x)
                ys.append(y)
                numbers.append(lineno)
                taken += 1
                if taken == self.limit:
                    break
                if len(numbers) == self.batch_size:
                    yield self._emit(xs, ys, numbers)
                    xs, ys, numbers = [], [], []
            if numbers:
                yield self._emit(xs, ys, numbers)

    def _emit(self, xs: list[list[float]], ys: list[_Label], numbers: list[int]) -> Batch:
        self._rows_read += len(numbers)
        return Batch(
            X=np.array(xs, dtype=np.float64),
            y=ys,
            lines=np.array(numbers, dtype=np.int64),
        )

    def _report(self, lineno: int, text: str, reason: str) -> None:
        self._bad_records += 1
        if self.on_bad is not None:
            self.on_bad(BadRecord(path=self._name, line=lineno, reason=reason, raw=text[:_RAW_LIMIT]))

    # -- the file ------------------------------------------------------------------------

    def _check_path(self) -> None:
        if not os.path.exists(self._name):
            raise InputError(f"{self._name}: no such file")
        if os.path.isdir(self._name):
            raise InputError(f"{self._name}: is a directory, not a file")

    def _open_text(self) -> IO[str]:
        try:
            if os.path.getsize(self._name) == 0:
                raise InputError(f"{self._name}: empty file")
            self._gzip = is_gzip(self._name)
            return cast(IO[str], open_maybe_gzip(self._name, "rt", encoding="utf-8-sig", newline=""))
        except OSError as exc:
            raise InputError(f"{self._name}: cannot read file ({exc.strerror or exc})") from exc

    def _numbered_lines(self, stream: IO[str]) -> Iterator[tuple[int, str]]:
        """Yield ``(line number, text without line break)``; read errors become InputError."""
        lineno = 0
        it = iter(stream)
        while True:
            try:
                text = next(it)
            except StopIteration:
                return
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{self._name}: not UTF-8 text near line {lineno + 1} ({exc.reason})"
                ) from exc
            except _READ_ERRORS as exc:
                what = "corrupt or truncated gzip data" if self._gzip else "read error"
                raise InputError(f"{self._name}: {what} after line {lineno} ({exc})") from exc
            lineno += 1
            yield lineno, text.rstrip("\r\n")

    # -- CSV -----------------------------------------------------------------------------

    def _read_header(self, lines: Iterator[tuple[int, str]]) -> None:
        for lineno, text in lines:
            if text and not text.isspace():
                break
        else:
            raise InputError(f"{self._name}: empty file (no header row)")
        names = [name.strip() for name in _split_csv(text)]
        if len(names) < 2:
            raise InputError(
                f"{self._name}, line {lineno}: the header needs at least one feature column "
                f"and a label column, got {len(names)} column"
            )
        features = names[:-1]
        duplicates = sorted({name for name in features if features.count(name) > 1})
        if duplicates:
            raise InputError(
                f"{self._name}, line {lineno}: duplicate column name(s) in the header: "
                + ", ".join(repr(name) for name in duplicates)
            )
        self._feature_names = features

    def _csv_rows(self, lines: Iterator[tuple[int, str]]) -> Iterator[_Row]:
        names = cast(list[str], self._feature_names)
        width = len(names) + 1
        for lineno, text in lines:
            if not text or text.isspace():
                continue
            try:
                try:
                    row = _split_csv(text)
                except csv.Error as exc:
                    raise _BadRow(f"malformed CSV ({exc})") from None
                if len(row) != width:
                    raise _BadRow(f"expected {width} columns, got {len(row)}")
                x = _csv_features(row, names)
            except _BadRow as bad:
                self._report(lineno, text, bad.reason)
                continue
            yield lineno, x, _parse_label(row[-1])

    # -- JSONL ---------------------------------------------------------------------------

    def _json_rows(self, lines: Iterator[tuple[int, str]]) -> Iterator[_Row]:
        seen_any = False
        for lineno, text in lines:
            if not text or text.isspace():
                continue
            seen_any = True
            try:
                x, y = self._json_record(text)
            except _BadRow as bad:
                self._report(lineno, text, bad.reason)
                continue
            yield lineno, x, y
        if not seen_any:
            raise InputError(f"{self._name}: empty file (no records)")

    def _json_record(self, text: str) -> tuple[list[float], _Label]:
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise _BadRow(f"invalid JSON: {exc.msg} (column {exc.colno})") from None
        except (ValueError, RecursionError) as exc:
            raise _BadRow(f"invalid JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise _BadRow(f"expected a JSON object, got {_json_type(obj)}")
        if self._layout is None:
            layout, names = _json_schema(obj)
            x = _json_features(obj, layout, names)
            y = _json_label(obj.get("label"))
            self._layout, self._feature_names = layout, names  # fixed by the first good record
            return x, y
        x = _json_features(obj, self._layout, cast(list[str], self._feature_names))
        return x, _json_label(obj.get("label"))


# -- parsing helpers ---------------------------------------------------------------------


def is_gzip(path: str | os.PathLike) -> bool:
    """Whether a file is gzip-compressed, by its magic bytes (whatever its name says)."""
    with open(path, "rb") as raw:
        return raw.read(2) == _GZIP_MAGIC


def open_maybe_gzip(path: str | os.PathLike, mode: str = "rt", **kwargs: Any) -> IO:
    """Open a plain or gzip-compressed file alike, telling them apart by :func:`is_gzip`."""
    return (gzip.open if is_gzip(path) else open)(path, mode, **kwargs)


def _parse_label(token: str) -> _Label:
    """Turn a label token into ``int``, ``str`` or ``None`` (empty: unlabelled).

    >>> _parse_label(" 1.0 "), _parse_label("-3"), _parse_label("UP"), _parse_label("")
    (1, -3, 'UP', None)
    """
    token = token.strip()
    if not token:
        return None
    if _INT_TOKEN.fullmatch(token):
        return int(token.split(".", 1)[0])
    return token


def _detect_format(name: str) -> str:
    base = os.path.basename(name).lower()
    if base.endswith(".gz"):
        base = base[:-3]
    for extension, fmt in _FORMATS.items():
        if base.endswith(extension):
            return fmt
    raise InputError(
        f"{name}: unknown file type; expected .csv, .jsonl or .ndjson, optionally followed by .gz"
    )


def _split_csv(text: str) -> list[str]:
    return next(csv.reader((text,)))


def _short(value: str) -> str:
    if len(value) > _TOKEN_LIMIT:
        value = value[: _TOKEN_LIMIT - 3] + "..."
    return repr(value)


def _csv_features(row: list[str], names: list[str]) -> list[float]:
    tokens = row[:-1]
    try:
        x = [float(token) for token in tokens]
    except ValueError:
        for name, token in zip(names, tokens):
            if not token.strip():
                raise _BadRow(f"empty value in column {name!r}") from None
            try:
                float(token)
            except ValueError:
                raise _BadRow(f"non-numeric value {_short(token)} in column {name!r}") from None
        raise  # pragma: no cover - every failure above is named
    # A NaN or infinity anywhere makes the sum non-finite; only then look closer
    # (a sum can also overflow with finite values, which the scan lets through).
    if not math.isfinite(sum(x)):
        for name, value in zip(names, x):
            if not math.isfinite(value):
                raise _BadRow(f"NaN or infinite value in column {name!r}")
    return x


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _json_schema(obj: dict) -> tuple[str, list[str]]:
    """Layout and feature names of a first record."""
    if "features" in obj:
        features = obj["features"]
        if isinstance(features, list):
            layout, names = "list", [f"x{i}" for i in range(len(features))]
        elif isinstance(features, dict):
            layout, names = "object", list(features)
        else:
            raise _BadRow(f"'features' must be an array or an object, got {_json_type(features)}")
    else:
        layout, names = "flat", [key for key in obj if key != "label"]
    if not names:
        raise _BadRow("no features")
    return layout, names


def _json_features(obj: dict, layout: str, names: list[str]) -> list[float]:
    if layout == "list":
        values = obj.get("features", _MISSING)
        if values is _MISSING:
            raise _BadRow("missing field 'features'")
        if not isinstance(values, list):
            raise _BadRow(f"'features' must be an array, got {_json_type(values)}")
        if len(values) != len(names):
            raise _BadRow(f"expected {len(names)} features, got {len(values)}")
        return [_json_number(value, name) for name, value in zip(names, values)]

    if layout == "object":
        source = obj.get("features", _MISSING)
        if source is _MISSING:
            raise _BadRow("missing field 'features'")
        if not isinstance(source, dict):
            raise _BadRow(f"'features' must be an object, got {_json_type(source)}")
        extra, noun = len(source) - len(names), "feature"
    else:
        source = obj
        extra, noun = len(obj) - ("label" in obj) - len(names), "field"

    for name in names:
        if name not in source:
            raise _BadRow(f"missing feature {name!r}")
    if extra:
        known = set(names) | ({"label"} if layout == "flat" else set())
        unexpected = next(key for key in source if key not in known)
        raise _BadRow(f"unexpected {noun} {_short(unexpected)}")
    return [_json_number(source[name], name) for name in names]


def _json_number(value: Any, name: str) -> float:
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            raise _BadRow(f"NaN or infinite value in feature {name!r}")
        return value
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            raise _BadRow(f"value out of range in feature {name!r}") from None
    if isinstance(value, str):
        raise _BadRow(f"non-numeric value {_short(value)} in feature {name!r}")
    raise _BadRow(f"expected a number in feature {name!r}, got {_json_type(value)}")


def _json_label(value: Any) -> _Label:
    if value is None:
        return None
    if isinstance(value, str):
        return _parse_label(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _BadRow(f"label must be a string, a number or null, got {_json_type(value)}")
    if isinstance(value, int):
        return value
    if math.isfinite(value) and value.is_integer():
        return int(value)
    return str(value)
