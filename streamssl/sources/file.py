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
import os
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from collections.abc import Sequence
from typing import IO, Any, Union, cast

import numpy as np

from streamssl.errors import InputError
from streamssl.schema import Column, EncodeError, FeatureEncoder, infer_kind, is_number, label_value

__all__ = ["BadRecord", "Batch", "FileOptions", "FileSource"]

_Label = Union[int, str, bool, None]

_GZIP_MAGIC = b"\x1f\x8b"
_RAW_LIMIT = 1000
_TOKEN_LIMIT = 40
_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
# What a damaged gzip stream or badly encoded text raises while being read.
_READ_ERRORS = (OSError, EOFError, zlib.error, UnicodeDecodeError)
_MISSING = object()
_LABEL_TOKENS = 10_000  # label tokens remembered per file, for streams whose labels are free text
_SAMPLE_CELLS = 2_000_000  # the most values held to infer the schema


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
    kind
        The reason as a short fixed code, for counting: ``columns``, ``malformed_csv``,
        ``invalid_json``, ``not_object``, ``features``, ``unexpected_field``, ``wrong_type``,
        ``non_finite`` or ``bad_label``.
    """

    path: str
    line: int
    reason: str
    raw: str
    kind: str = "other"


@dataclass(frozen=True)
class Batch:
    """Up to ``batch_size`` consecutive good rows.

    Parameters
    ----------
    X
        Encoded features, float64, shape ``(n, d)`` (see :mod:`streamssl.schema`).
    y
        ``n`` labels: an ``int`` for integer tokens (``"1"``, ``"1.0"``, ``"-3"``), else the
        stripped string; ``None`` for an unlabelled event.
    lines
        int64, shape ``(n,)``: the 1-based file line number of each row.
    keys
        Each row's entity (the ``key_column``'s text), or ``None`` without a key column.
    """

    X: np.ndarray
    y: list
    lines: np.ndarray
    keys: list | None = None


@dataclass(frozen=True)
class FileOptions:
    """How a recorded file's columns are read: the :class:`FileSource` options that ``replay``,
    ``bench`` and ``produce`` share (``--label-column``, ``--categorical``, ``--drop-columns``,
    ``--key-column``)."""

    label_column: str | None = None
    categorical: tuple[str, ...] = ()
    drop_columns: tuple[str, ...] = ()
    key_column: str | None = None

    def source(self, path: str | os.PathLike, **kwargs: Any) -> "FileSource":
        """A :class:`FileSource` over ``path`` with these options (``kwargs``: the others)."""
        return FileSource(path, label_column=self.label_column, categorical=self.categorical,
                          drop_columns=self.drop_columns, key_column=self.key_column, **kwargs)


class _BadRow(Exception):
    """Raised inside the row parsers; becomes a :class:`BadRecord`."""

    def __init__(self, reason: str, kind: str = "other") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind


class FileSource:
    """Replay a recorded stream from a CSV or JSONL file in micro-batches.

    The format comes from the extension (``.csv``, ``.jsonl``, ``.ndjson``, each optionally
    followed by ``.gz``); gzip compression is recognised by the file's magic bytes, whatever
    the extension says. Text is read as UTF-8 (a leading byte-order mark is ignored).

    *CSV*: the first non-blank line is the header (a first row of numbers only is refused:
    name the columns). *JSONL*: one object per line; the features are the ``features`` field
    (a list, named ``x0..x{d-1}``, or an object name -> value), or else every other
    top-level field (in ``features`` mode other top-level fields, ids or timestamps, are
    ignored).

    The label is ``label_column``; by default a column named ``label`` (any case) and, in a
    CSV without one, the last column (:attr:`label_column` says which). An empty or missing
    label marks an unlabelled event. ``drop_columns`` are ignored; ``key_column`` names each
    event's entity (:attr:`Batch.keys`).

    Each feature column is numeric, categorical or boolean, inferred from the first
    ``infer_rows`` rows (:func:`streamssl.schema.infer_kind`) unless listed in
    ``categorical``; a column with a missing value there gets a missingness indicator.
    Missing values (empty cell, ``NA``, ``null``, an absent key) are imputed, never a reason
    to drop a row. :attr:`columns` holds the schema, :attr:`feature_names` the encoded names.

    Blank lines are skipped. A row with the wrong shape, text in a numeric column, an
    infinite value or invalid JSON is a bad record: it is counted in ``bad_records``, passed
    to ``on_bad`` and skipped. Each record is one physical line (a quoted CSV field cannot
    span lines). Problems with the file itself (missing, a directory, unreadable, empty, a
    bad header, damaged gzip data, an unknown column named in the options) raise
    :class:`~streamssl.errors.InputError`.

    ``iter(source)`` starts a fresh pass from the top of the file and resets the counters.
    It opens the file and reads up to ``infer_rows`` rows at once, so file errors surface
    there and the schema is known as soon as iteration has started.

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
    label_column, categorical, drop_columns, key_column, infer_rows
        See above.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> tmp = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(tmp.name) / "tiny.csv"
    >>> _ = path.write_text("label,a,b\\n0,1,2\\nUP,3,\\n1,inf,5\\n\\n,7,8\\n")
    >>> bad = []
    >>> source = FileSource(path, batch_size=2, on_bad=bad.append)
    >>> for batch in source:
    ...     print(batch.X.tolist(), batch.y, batch.lines.tolist())
    [[1.0, 2.0, 0.0], [3.0, 2.0, 1.0]] [0, 'UP'] [2, 3]
    [[7.0, 8.0, 0.0]] [None] [6]
    >>> source.label_name, source.feature_names
    ('label', ['a', 'b', 'b=missing'])
    >>> source.rows_read, source.bad_records
    (3, 1)
    >>> bad[0].line, bad[0].kind, bad[0].reason
    (4, 'non_finite', "column 'a': 'inf' is not a finite float32")
    >>> tmp.cleanup()
    """

    def __init__(
        self,
        path: str | os.PathLike,
        batch_size: int = 64,
        limit: int | None = None,
        on_bad: Callable[[BadRecord], None] | None = None,
        label_column: str | None = None,
        categorical: Sequence[str] = (),
        drop_columns: Sequence[str] = (),
        key_column: str | None = None,
        infer_rows: int = 1000,
    ) -> None:
        self.path = path
        self.batch_size = batch_size
        self.limit = limit
        self.on_bad = on_bad
        self.label_column = label_column
        self.categorical = categorical
        self.drop_columns = drop_columns
        self.key_column = key_column
        self.infer_rows = infer_rows

        self._name = str(os.fspath(path))
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive integer, got {batch_size!r}")
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise InputError(f"limit must be None or a non-negative integer, got {limit!r}")
        if isinstance(infer_rows, bool) or not isinstance(infer_rows, int) or infer_rows < 1:
            raise InputError(f"infer_rows must be a positive integer, got {infer_rows!r}")
        self._format = _detect_format(self._name)
        self._check_path()
        self._reset()

    def _reset(self) -> None:
        self._encoder: FeatureEncoder | None = None
        self._columns_in: list[str] = []  # the raw feature columns, in order
        self._label: str | None = None
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

    def _known(self) -> FeatureEncoder:
        if self._encoder is None:
            raise InputError(
                f"{self._name}: the columns are not known yet; they are read from the header "
                "and the first rows once iteration has started"
            )
        return self._encoder

    @property
    def feature_names(self) -> list[str]:
        """Encoded feature names, in vector order (a copy). Raises ``InputError`` until known."""
        return self._known().names

    @property
    def columns(self) -> list[Column]:
        """The schema of the feature columns (their kinds as inferred or declared)."""
        return list(self._known().columns)

    @property
    def label_name(self) -> str:
        """The column the labels were taken from."""
        self._known()
        return cast(str, self._label)

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
        next(batches)  # open the file and read the header and the rows the schema comes from
        return cast(Iterator[Batch], batches)

    def _batches(self) -> Iterator[Batch | None]:
        with self._open_text() as stream:
            lines = self._numbered_lines(stream)
            rows = self._csv_rows(lines) if self._format == "csv" else self._json_rows(lines)
            sample = self._sample(rows)
            self._infer(sample)
            yield None  # primed: __iter__ has done its eager part
            if self.limit == 0:
                return
            xs: list[np.ndarray] = []
            ys: list[_Label] = []
            keys: list = []
            numbers: list[int] = []
            taken = 0
            for lineno, text, values, label, key in itertools.chain(sample, rows):
                try:
                    if isinstance(label, _BadRow):
                        raise label
                    x = self._encode(values)
                except _BadRow as bad:
                    self._report(lineno, text, bad.reason, bad.kind)
                    continue
                xs.append(x)
                ys.append(label)
                keys.append(key)
                numbers.append(lineno)
                taken += 1
                if taken == self.limit:
                    break
                if len(numbers) == self.batch_size:
                    yield self._emit(xs, ys, keys, numbers)
                    xs, ys, keys, numbers = [], [], [], []
            if numbers:
                yield self._emit(xs, ys, keys, numbers)

    def _encode(self, values: Any) -> np.ndarray:
        if isinstance(values, _BadRow):
            raise values
        try:
            return cast(FeatureEncoder, self._encoder).encode(values, text=self._format == "csv")
        except EncodeError as exc:
            raise _BadRow(exc.detail, exc.reason) from None

    def _emit(self, xs: list[np.ndarray], ys: list[_Label], keys: list, numbers: list[int]) -> Batch:
        self._rows_read += len(numbers)
        return Batch(
            X=np.array(xs, dtype=np.float64).reshape(len(xs), -1),
            y=ys,
            lines=np.array(numbers, dtype=np.int64),
            keys=keys if self.key_column is not None else None,
        )

    def _report(self, lineno: int, text: str, reason: str, kind: str) -> None:
        self._bad_records += 1
        if self.on_bad is not None:
            self.on_bad(BadRecord(path=self._name, line=lineno, reason=reason, raw=text[:_RAW_LIMIT], kind=kind))

    # -- the schema ----------------------------------------------------------------------

    def _pick(self, names: list[str], where: str) -> None:
        """Settle the label, key and feature columns among ``names`` (the header, the JSON keys)."""
        wanted = [self.label_column, self.key_column, *self.drop_columns, *self.categorical]
        for name in wanted:
            if name is not None and name not in names:
                shown = ", ".join(repr(n) for n in names[:20]) + (" ..." if len(names) > 20 else "")
                raise InputError(f"{self._name}: no column {name!r} {where} (the columns: {shown})")
        label = self.label_column
        if label is None:
            label = next((n for n in names if n == "label"), None) or next(
                (n for n in names if n.lower() == "label"), None)
            if label is None and self._format == "csv":
                label = names[-1]
        self._label = label or "label"
        skip = {self._label, self.key_column, *self.drop_columns}
        self._columns_in = [n for n in names if n not in skip]
        if not self._columns_in:
            raise InputError(f"{self._name}: no feature columns {where} (label column {self._label!r})")

    def _sample(self, rows: Iterator[tuple]) -> list:
        """The first ``infer_rows`` rows, or fewer for a wide file: at most ``_SAMPLE_CELLS``
        values are held (a 40,000-column corpus is sampled on its first 50 rows)."""
        first = next(rows, None)  # reads the header first: the width is known after it
        if first is None:
            return []
        budget = max(1, _SAMPLE_CELLS // max(1, len(self._columns_in)))
        return [first, *itertools.islice(rows, min(self.infer_rows, budget) - 1)]

    def _infer(self, sample: list) -> None:
        if not self._columns_in:
            if self._format == "csv":  # pragma: no cover - the header is read before any row
                raise InputError(f"{self._name}: no header")
            self._columns_in = ["x0"]  # no good record at all: nothing to learn, nothing to encode
        forced = set(self.categorical)
        columns = []
        for j, name in enumerate(self._columns_in):
            values = [row[2][j] for row in sample if isinstance(row[2], list) and j < len(row[2])]
            kind, nullable = infer_kind(values)
            columns.append(Column(name, "categorical" if name in forced else kind, nullable=nullable))
        self._encoder = FeatureEncoder(columns)

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

    def _read_header(self, lines: Iterator[tuple[int, str]]) -> list[str]:
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
        if all(is_number(name) for name in names):
            raise InputError(
                f"{self._name}, line {lineno}: the first row is numbers ({_short(text)}), not a header; "
                "add a header row naming the columns"
            )
        duplicates = sorted(name for name, n in Counter(names).items() if n > 1)
        if duplicates:
            raise InputError(
                f"{self._name}, line {lineno}: duplicate column name(s) in the header: "
                + ", ".join(repr(name) for name in duplicates)
            )
        self._pick(names, "in the header")
        return names

    def _csv_rows(self, lines: Iterator[tuple[int, str]]) -> Iterator[tuple]:
        names = self._read_header(lines)
        width = len(names)
        where = {name: i for i, name in enumerate(names)}
        features = [where[n] for n in self._columns_in]
        label_at = where[cast(str, self._label)]
        key_at = where.get(self.key_column) if self.key_column is not None else None
        labels: dict[str, _Label] = {}  # each label token read once (a stream has few distinct ones)
        for lineno, text in lines:
            if not text or text.isspace():
                continue
            try:
                row = _split_csv(text)
            except csv.Error as exc:
                yield lineno, text, _BadRow(f"malformed CSV ({exc})", "malformed_csv"), None, None
                continue
            if len(row) != width:
                yield lineno, text, _BadRow(f"expected {width} columns, got {len(row)}", "columns"), None, None
                continue
            key = row[key_at].strip() if key_at is not None else None
            token = row[label_at]
            label = labels.get(token, _MISSING)
            if label is _MISSING:
                try:
                    label = _label(token)
                except _BadRow as bad:
                    yield lineno, text, bad, None, None
                    continue
                if len(labels) < _LABEL_TOKENS:
                    labels[token] = label
            yield lineno, text, [row[i] for i in features], label, key

    # -- JSONL ---------------------------------------------------------------------------

    def _json_rows(self, lines: Iterator[tuple[int, str]]) -> Iterator[tuple]:
        objects = self._json_objects(lines)
        head = list(itertools.islice(objects, self.infer_rows))
        good = [obj for _, _, obj in head if isinstance(obj, dict)]
        if good:
            self._json_schema(good)
        else:
            self._label = self.label_column or "label"
        for lineno, text, obj in itertools.chain(head, objects):
            if not isinstance(obj, dict):
                yield lineno, text, obj, None, None
                continue
            try:
                values = self._json_values(obj)
                label = _label(obj.get(cast(str, self._label)))
                key = _json_key(obj, self.key_column)
            except _BadRow as bad:
                yield lineno, text, bad, None, None
                continue
            yield lineno, text, values, label, key

    def _json_objects(self, lines: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str, Any]]:
        seen_any = False
        for lineno, text in lines:
            if not text or text.isspace():
                continue
            seen_any = True
            try:
                obj = json.loads(text)
            except json.JSONDecodeError as exc:
                obj = _BadRow(f"invalid JSON: {exc.msg} (column {exc.colno})", "invalid_json")
            except (ValueError, RecursionError) as exc:
                obj = _BadRow(f"invalid JSON: {exc}", "invalid_json")
            else:
                if not isinstance(obj, dict):
                    obj = _BadRow(f"expected a JSON object, got {_json_type(obj)}", "not_object")
            yield lineno, text, obj
        if not seen_any:
            raise InputError(f"{self._name}: empty file (no records)")

    def _json_schema(self, objects: list[dict]) -> None:
        """Layout and columns from the first rows: the first record with a usable ``features``
        field (or none) sets the layout; object keys are united in first-seen order."""
        first = objects[0]
        if "features" in first and isinstance(first["features"], list):
            self._layout = "list"
            self._pick([f"x{i}" for i in range(len(first["features"]))] + ["label"], "in the records")
            return
        self._layout = "object" if "features" in first else "flat"
        names: dict[str, None] = {}
        for obj in objects:
            source = obj.get("features") if self._layout == "object" else obj
            if isinstance(source, dict):
                names.update(dict.fromkeys(source))
        top = [k for k in first if k != "features"] if self._layout == "object" else []
        label = self.label_column or "label"
        self._pick(list(names) + ([label] if label not in names else []) + [k for k in top if k not in names],
                   "in the records")

    def _json_values(self, obj: dict) -> list:
        names = self._columns_in
        if self._layout == "list":
            values = _features_field(obj, list)
            if len(values) != len(names):
                raise _BadRow(f"expected {len(names)} features, got {len(values)}", "features")
            return values
        if self._layout == "object":
            source = _features_field(obj, dict)
            known, noun = set(names), "feature"
        else:
            source = obj
            known, noun = set(names) | {self._label, self.key_column, *self.drop_columns}, "field"
        for key in source:
            if key not in known:
                raise _BadRow(f"unexpected {noun} {_short(key)}", "unexpected_field")
        values = [source.get(name) for name in names]
        for name, value in zip(names, values):
            if isinstance(value, (list, dict)):
                raise _BadRow(f"expected a value in feature {name!r}, got {_json_type(value)}", "wrong_type")
        return values


# -- parsing helpers ---------------------------------------------------------------------


def is_gzip(path: str | os.PathLike) -> bool:
    """Whether a file is gzip-compressed, by its magic bytes (whatever its name says)."""
    with open(path, "rb") as raw:
        return raw.read(2) == _GZIP_MAGIC


def open_maybe_gzip(path: str | os.PathLike, mode: str = "rt", **kwargs: Any) -> IO:
    """Open a plain or gzip-compressed file alike, telling them apart by :func:`is_gzip`."""
    return (gzip.open if is_gzip(path) else open)(path, mode, **kwargs)


def _label(value: Any) -> _Label:
    """The label of a CSV token or a JSON value, by the rule every source reads labels with
    (:func:`~streamssl.schema.label_value`).

    >>> _label(" 1.0 "), _label("-3"), _label("UP"), _label(""), _label(True)
    (1, -3, 'UP', None, True)
    """
    try:
        return label_value(value)
    except EncodeError as exc:
        raise _BadRow(exc.detail, exc.reason) from None


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


def _features_field(obj: dict, kind: type) -> Any:
    """The record's ``features`` field, which must be a ``kind`` (list or dict)."""
    value = obj.get("features", _MISSING)
    if value is _MISSING:
        raise _BadRow("missing field 'features'", "features")
    if not isinstance(value, kind):
        raise _BadRow(f"'features' must be {'an array' if kind is list else 'an object'}, got {_json_type(value)}",
                      "features")
    return value


def _json_key(obj: dict, name: str | None) -> str | None:
    if name is None:
        return None
    value = obj.get(name)
    if value is None or isinstance(value, (bool, list, dict)):
        raise _BadRow(f"key {name!r} must be a string or a number, got {_json_type(value)}", "features")
    return str(value)


def _split_csv(text: str) -> list[str]:
    """The fields of one CSV line, as the csv module's default dialect reads them. A non-empty
    line without a quote or a line break is split by it at every comma, so such a line is split
    by ``str.split``, which costs a fifth as much as a reader per line.

    >>> _split_csv('a, b,,c'), _split_csv('"x,y",z')
    (['a', ' b', '', 'c'], ['x,y', 'z'])
    """
    if text and '"' not in text and "\n" not in text and "\r" not in text:
        return text.split(",")
    return next(csv.reader((text,)))


def _short(value: str) -> str:
    if len(value) > _TOKEN_LIMIT:
        value = value[: _TOKEN_LIMIT - 3] + "..."
    return repr(value)


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
