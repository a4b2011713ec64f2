"""Tests for streamssl.sources.file: replaying CSV / JSONL recordings in micro-batches."""

from __future__ import annotations

import gzip
import json
import os
import pathlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import shared_data
from streamssl.errors import InputError, StreamSSLError
from streamssl.sources import file as file_module
from streamssl.sources.file import BadRecord, Batch, FileSource

ELEC2 = shared_data("elec2.csv.gz")

CSV_TEXT = "a,b,c,label\n1,2,3,0\n4.5,-5,6e2,1\n7,8,9,\n10,11,12,UP\n"


def write(path: pathlib.Path, text: str, compress: bool = False) -> pathlib.Path:
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def write_jsonl(path: pathlib.Path, records: list, compress: bool = False) -> pathlib.Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    return write(path, "\n".join(lines) + "\n", compress)


def read_all(source: FileSource) -> tuple[np.ndarray, list, list[int], list[Batch]]:
    batches = list(source)
    if not batches:
        return np.empty((0, 0)), [], [], []
    X = np.concatenate([b.X for b in batches])
    y = [label for b in batches for label in b.y]
    lines = [int(n) for b in batches for n in b.lines]
    return X, y, lines, batches


def collecting(tmp_path, name, text, **kwargs):
    """A FileSource over `text` that collects its bad records in a list."""
    bad: list[BadRecord] = []
    source = FileSource(write(tmp_path / name, text), on_bad=bad.append, **kwargs)
    return source, bad


# -- CSV ------------------------------------------------------------------------------


@pytest.mark.parametrize("name,compress", [("s.csv", False), ("s.csv.gz", True)])
def test_csv_rows_come_through_in_order(tmp_path, name, compress):
    source = FileSource(write(tmp_path / name, CSV_TEXT, compress), batch_size=64)
    X, y, lines, batches = read_all(source)
    assert len(batches) == 1
    assert batches[0].X.dtype == np.float64 and batches[0].X.shape == (4, 3)
    assert batches[0].lines.dtype == np.int64 and batches[0].lines.shape == (4,)
    np.testing.assert_array_equal(X, [[1, 2, 3], [4.5, -5, 600], [7, 8, 9], [10, 11, 12]])
    assert y == [0, 1, None, "UP"]
    assert lines == [2, 3, 4, 5]
    assert source.feature_names == ["a", "b", "c"]
    assert source.rows_read == 4 and source.bad_records == 0


def test_csv_label_column_is_last_whatever_its_name(tmp_path):
    source = FileSource(write(tmp_path / "s.csv", "f1, f2 ,target\n1,2,3\n"))
    X, y, _, _ = read_all(source)
    assert source.feature_names == ["f1", "f2"]
    assert y == [3]


def test_csv_blank_lines_crlf_and_bom(tmp_path):
    text = "\ufeff\r\nx,y,label\r\n\r\n1,2,1\r\n   \r\n3,4,0\r\n\r\n"
    bad: list[BadRecord] = []
    source = FileSource(write(tmp_path / "s.csv", text), on_bad=bad.append)
    X, y, lines, _ = read_all(source)
    assert source.feature_names == ["x", "y"]
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    assert y == [1, 0]
    assert lines == [4, 6]  # blank lines still count as file lines
    assert bad == [] and source.bad_records == 0


def test_csv_header_only_yields_nothing(tmp_path):
    source = FileSource(write(tmp_path / "s.csv", "a,b,label\n\n"))
    assert list(source) == []
    assert source.feature_names == ["a", "a=missing", "b", "b=missing"]  # no value seen: could be missing
    assert source.rows_read == 0


@pytest.mark.parametrize(
    "token,expected",
    [
        ("1", 1),
        ("1.0", 1),
        ("1.00", 1),
        ("-3", -3),
        ("+2", 2),
        (" 7 ", 7),
        ("0", 0),
        ("1.5", "1.5"),
        ("UP", "UP"),
        ("  down ", "down"),
        ("1e3", "1e3"),
        ("", None),
        ("   ", None),
    ],
)
def test_csv_label_parsing(tmp_path, token, expected):
    source = FileSource(write(tmp_path / "s.csv", f"a,label\n5,{token}\n"))
    _, y, _, _ = read_all(source)
    assert y == [expected]
    assert type(y[0]) is type(expected)


def test_csv_bad_records_are_counted_reported_and_skipped(tmp_path):
    text = (
        "a,b,label\n"  # 1
        "1,2,0\n"  # 2 good
        "1,2\n"  # 3 too few columns
        "1,2,3,4\n"  # 4 too many columns
        "\n"  # 5 blank: not a record
        "abc,2,1\n"  # 6 text in a numeric column (a is numeric: 90 % of its values are numbers)
        "inf,1,1\n"  # 7 infinite
        "1,-Infinity,1\n"  # 8 infinite
        "1,\"2,1\n"  # 9 malformed quoting
        + "5,6,1\n" * 12  # 10-21 good
    )
    source, bad = collecting(tmp_path, "s.csv", text, batch_size=10)
    X, y, lines, _ = read_all(source)
    np.testing.assert_array_equal(X, [[1, 2]] + [[5, 6]] * 12)
    assert y == [0] + [1] * 12
    assert lines == [2] + list(range(10, 22))
    assert source.bad_records == 6 and source.rows_read == 13
    assert [(b.line, b.kind, b.reason) for b in bad] == [
        (3, "columns", "expected 3 columns, got 2"),
        (4, "columns", "expected 3 columns, got 4"),
        (6, "wrong_type", "column 'a' is numeric, got 'abc'"),
        (7, "non_finite", "column 'a': 'inf' is not a finite float32"),
        (8, "non_finite", "column 'b': '-Infinity' is not a finite float32"),
        (9, "columns", "expected 3 columns, got 2"),
    ]
    assert all(b.path == str(tmp_path / "s.csv") for b in bad)
    assert bad[0].raw == "1,2" and bad[2].raw == "abc,2,1"


def test_csv_missing_values_are_imputed_with_an_indicator(tmp_path):
    text = "a,b,label\n1,10,0\n3,,1\n,NA,0\n5,?,1\n"
    X, y, lines, _ = read_all(FileSource(write(tmp_path / "m.csv", text)))
    assert lines == [2, 3, 4, 5] and y == [0, 1, 0, 1]
    # a: 1, 3, (mean of 1 and 3), 5; b: 10 then imputed with its mean 10
    np.testing.assert_array_equal(X, [[1, 0, 10, 0], [3, 0, 10, 1], [2, 1, 10, 1], [5, 0, 10, 1]])


def test_csv_categorical_and_boolean_columns(tmp_path):
    rows = ["red,true,1,0", "blue,False,2,1", "red,yes,3,0", ",no,4,1", "green,,5,0"]
    source = FileSource(write(tmp_path / "c.csv", "colour,flag,n,label\n" + "\n".join(rows) + "\n"))
    X, _, _, _ = read_all(source)
    assert [(c.name, c.kind, c.nullable) for c in source.columns] == [
        ("colour", "categorical", True), ("flag", "boolean", True), ("n", "numeric", False)]
    colour = X[:, :32]
    assert colour.sum(axis=1).tolist() == [1, 1, 1, 0, 1]  # one-hot; missing: all zero
    assert (colour[0] == colour[2]).all() and not (colour[0] == colour[1]).all()
    np.testing.assert_array_equal(X[:, 32:], [[1, 0, 1], [0, 0, 2], [1, 0, 3], [0, 0, 4], [0.5, 1, 5]])


def test_csv_categorical_option_forces_a_numeric_looking_column(tmp_path):
    text = "zip,x,label\n1000,1,0\n2000,2,1\n"
    source = FileSource(write(tmp_path / "z.csv", text), categorical=["zip"])
    read_all(source)
    assert source.columns[0].kind == "categorical" and source.feature_names[-1] == "x"


def test_csv_label_column_by_name_default_and_option(tmp_path):
    path = write(tmp_path / "l.csv", "Label,a,b\nUP,1,2\nDOWN,3,4\n")
    source = FileSource(path)
    _, y, _, _ = read_all(source)
    assert source.label_name == "Label" and y == ["UP", "DOWN"] and source.feature_names == ["a", "b"]
    source = FileSource(path, label_column="b", drop_columns=["Label"])
    X, y, _, _ = read_all(source)
    assert source.label_name == "b" and y == [2, 4] and X.tolist() == [[1], [3]]
    last = FileSource(write(tmp_path / "n.csv", "a,b,target\n1,2,x\n"))
    assert read_all(last)[1] == ["x"] and last.label_name == "target"


def test_csv_key_column(tmp_path):
    source = FileSource(write(tmp_path / "k.csv", "host,a,label\nh1,1,0\nh2,2,1\n"), key_column="host")
    _, _, _, batches = read_all(source)
    assert batches[0].keys == ["h1", "h2"] and source.feature_names == ["a"]


@pytest.mark.parametrize("option", [{"label_column": "nope"}, {"drop_columns": ["nope"]}, {"key_column": "nope"},
                                    {"categorical": ["nope"]}])
def test_csv_unknown_column_in_an_option_raises(tmp_path, option):
    with pytest.raises(InputError, match="no column 'nope' in the header"):
        list(FileSource(write(tmp_path / "s.csv", "a,b,label\n1,2,3\n"), **option))


def test_csv_without_a_header_raises(tmp_path):
    with pytest.raises(InputError, match="line 1: the first row is numbers .* add a header row"):
        list(FileSource(write(tmp_path / "s.csv", "1,2,0\n3,4,1\n")))


def test_csv_all_missing_column(tmp_path):
    source = FileSource(write(tmp_path / "s.csv", "a,b,label\n1,,0\n2,NA,1\n"))
    X, _, _, _ = read_all(source)
    assert source.feature_names == ["a", "b", "b=missing"]
    np.testing.assert_array_equal(X, [[1, 0, 1], [2, 0, 1]])


def test_bad_records_counted_without_callback(tmp_path):
    source = FileSource(write(tmp_path / "s.csv", "a,label\ninf,1\n2,1\n"))
    _, y, lines, _ = read_all(source)
    assert lines == [3] and source.bad_records == 1


def test_bad_record_raw_is_truncated(tmp_path):
    long = "a,label\n" + "1,0\n" * 10 + "z" * 5000 + ",1\n"
    source, bad = collecting(tmp_path, "s.csv", long)
    assert len(read_all(source)[1]) == 10
    assert bad[0].line == 12
    assert bad[0].reason.startswith("column 'a' is numeric, got 'zzz") and len(bad[0].reason) < 100
    assert bad[0].raw == ("z" * 5000)[:1000]


def test_bad_records_before_first_good_row(tmp_path):
    source, bad = collecting(tmp_path, "s.csv", "a,label\ninf,1\n-inf,1\n1,1\n")
    _, _, lines, _ = read_all(source)
    assert lines == [4]
    assert [b.line for b in bad] == [2, 3]


def test_csv_bad_header_raises(tmp_path):
    path = write(tmp_path / "s.csv", "\nlabel\n1\n")
    with pytest.raises(InputError, match=r"s\.csv, line 2: .*at least one feature"):
        list(FileSource(path))


def test_csv_duplicate_feature_names_raise(tmp_path):
    path = write(tmp_path / "s.csv", "a,a,label\n1,2,3\n")
    with pytest.raises(InputError, match="duplicate"):
        list(FileSource(path))


# -- JSONL ----------------------------------------------------------------------------


@pytest.mark.parametrize("name,compress", [("s.jsonl", False), ("s.jsonl.gz", True)])
def test_jsonl_features_list(tmp_path, name, compress):
    records = [
        {"features": [1, 2.5, 3], "label": 1},
        {"features": [4, 5, 6], "label": "cat", "id": "ignored"},
        {"features": [7, 8, 9]},
    ]
    source = FileSource(write_jsonl(tmp_path / name, records, compress))
    X, y, lines, _ = read_all(source)
    np.testing.assert_array_equal(X, [[1, 2.5, 3], [4, 5, 6], [7, 8, 9]])
    assert y == [1, "cat", None]
    assert lines == [1, 2, 3]
    assert source.feature_names == ["x0", "x1", "x2"]


@pytest.mark.parametrize("name,compress", [("s.jsonl", False), ("s.ndjson.gz", True)])
def test_jsonl_features_object_is_reordered(tmp_path, name, compress):
    records = [
        {"label": 0, "features": {"p": 1, "q": 2}},
        {"features": {"q": 20, "p": 10}, "label": 1},
    ]
    source = FileSource(write_jsonl(tmp_path / name, records, compress))
    X, y, _, _ = read_all(source)
    assert source.feature_names == ["p", "q"]
    np.testing.assert_array_equal(X, [[1, 2], [10, 20]])
    assert y == [0, 1]


@pytest.mark.parametrize("name,compress", [("s.ndjson", False), ("s.jsonl.gz", True)])
def test_jsonl_flat_fields(tmp_path, name, compress):
    records = [
        {"t": 1.5, "label": "1.0", "v": 2},
        {"v": 4, "t": 3},  # no label: unlabelled; keys reordered
        {"t": 5, "v": 6, "label": None},
        {"t": 7, "v": 8, "label": 2.0},
    ]
    source = FileSource(write_jsonl(tmp_path / name, records, compress))
    X, y, _, _ = read_all(source)
    assert source.feature_names == ["t", "v"]
    np.testing.assert_array_equal(X, [[1.5, 2], [3, 4], [5, 6], [7, 8]])
    assert y == [1, None, None, 2]
    assert type(y[3]) is int


@pytest.mark.parametrize(
    "label,expected",
    [(3, 3), (-1.0, -1), (" 4 ", 4), ("7.0", 7), ("spam", "spam"), ("", None), (True, True)],
)
def test_jsonl_label_parsing(tmp_path, label, expected):
    source = FileSource(write_jsonl(tmp_path / "s.jsonl", [{"a": 1, "label": label}]))
    _, y, _, _ = read_all(source)
    assert y == [expected] and type(y[0]) is type(expected)


def test_jsonl_flat_bad_records(tmp_path):
    records = [
        "",  # 1 blank
        {"a": 1, "b": 2, "label": 0},  # 2 good; the first two records fix the schema
        {"a": 3, "b": 4, "label": 1},  # 3 good
        "{not json",  # 4
        "[1, 2]",  # 5 not an object
        {"a": 1, "b": 2, "z": 3},  # 6 extra z
        {"a": "abc", "b": 2},  # 7 string in a numeric column
        {"a": True, "b": 2},  # 8 bool in a numeric column
        {"a": [1], "b": 2},  # 9 nested
        '{"a": 1, "b": -Infinity}',  # 10 infinite
        {"a": 1, "b": 2, "label": [1]},  # 11 bad label
        {"b": 4, "a": 3, "label": 1},  # 12 good, reordered
        "   ",  # 13 blank
        '"just a string"',  # 14 not an object
        {"a": 5, "label": 0},  # 15 good: b is missing (imputed; no indicator, none was missing at first)
        '{"a": NaN, "b": null}',  # 16 good: both missing
    ]
    source, bad = collecting(tmp_path, "s.jsonl", "\n".join(
        r if isinstance(r, str) else json.dumps(r) for r in records
    ) + "\n", infer_rows=2)
    X, y, lines, _ = read_all(source)
    np.testing.assert_array_equal(X, [[1, 2], [3, 4], [3, 4], [5, 10 / 3], [3, 10 / 3]])
    assert y == [0, 1, 1, 0, None] and lines == [2, 3, 12, 15, 16]
    reasons = {b.line: (b.kind, b.reason) for b in bad}
    assert sorted(reasons) == [4, 5, 6, 7, 8, 9, 10, 11, 14]
    assert source.bad_records == 9
    assert reasons[4][0] == "invalid_json" and reasons[4][1].startswith("invalid JSON")
    assert reasons[5] == ("not_object", "expected a JSON object, got array")
    assert reasons[6] == ("unexpected_field", "unexpected field 'z'")
    assert reasons[7] == ("wrong_type", "column 'a' is numeric, got 'abc'")
    assert reasons[8] == ("wrong_type", "column 'a' is numeric, got True")
    assert reasons[9] == ("wrong_type", "expected a value in feature 'a', got array")
    assert reasons[10] == ("non_finite", "column 'b': -inf is not a finite float32")
    assert reasons[11][0] == "bad_label" and reasons[11][1].startswith("label must be")
    assert reasons[14] == ("not_object", "expected a JSON object, got string")
    assert bad[0].raw == "{not json"


def test_jsonl_features_list_and_object_bad_records(tmp_path):
    lines_list = [
        {"features": [1, 2]},  # 1 good
        {"features": [1, 2, 3]},  # 2 wrong length
        {"features": {"x0": 1, "x1": 2}},  # 3 wrong type
        {"label": 1},  # 4 no features
        {"features": [1, "2"]},  # 5 string in a numeric column
        {"features": [1, None]},  # 6 good: missing
    ]
    source, bad = collecting(tmp_path, "l.jsonl", "\n".join(json.dumps(r) for r in lines_list), infer_rows=1)
    _, _, lines, _ = read_all(source)
    assert lines == [1, 6]
    assert [(b.line, b.reason) for b in bad] == [
        (2, "expected 2 features, got 3"),
        (3, "'features' must be an array, got object"),
        (4, "missing field 'features'"),
        (5, "column 'x1' is numeric, got '2'"),
    ]

    lines_obj = [
        {"features": {"p": 1, "q": 2}},  # 1 good
        {"features": {"p": 1}},  # 2 good: q missing
        {"features": {"p": 1, "q": 2, "r": 3}},  # 3 extra r
        {"features": [1, 2]},  # 4 wrong type
    ]
    source, bad = collecting(tmp_path, "o.jsonl", "\n".join(json.dumps(r) for r in lines_obj), infer_rows=1)
    _, _, lines, _ = read_all(source)
    assert lines == [1, 2]
    assert [(b.line, b.reason) for b in bad] == [
        (3, "unexpected feature 'r'"),
        (4, "'features' must be an object, got array"),
    ]


def test_jsonl_schema_comes_from_the_first_rows(tmp_path):
    records = ['{"a": "x", "b": 1}', {"c": True, "b": 2}, {"a": "y", "b": 2, "label": 1}]
    source, bad = collecting(tmp_path, "s.jsonl", "\n".join(
        r if isinstance(r, str) else json.dumps(r) for r in records
    ))
    with pytest.raises(InputError):
        source.feature_names
    _, y, lines, _ = read_all(source)
    assert [(c.name, c.kind, c.nullable) for c in source.columns] == [
        ("a", "categorical", True), ("b", "numeric", False), ("c", "boolean", True)]
    assert lines == [1, 2, 3] and y == [None, None, 1] and bad == []


# -- gzip detection, batching, limit -----------------------------------------------------


def test_gzip_detected_by_magic_bytes_not_extension(tmp_path):
    gz_named_csv = write(tmp_path / "looks_plain.csv", CSV_TEXT, compress=True)
    plain_named_gz = write(tmp_path / "looks_gz.csv.gz", CSV_TEXT, compress=False)
    gz_named_jsonl = write_jsonl(tmp_path / "j.jsonl", [{"a": 1, "label": 1}], compress=True)
    assert gz_named_csv.read_bytes()[:2] == b"\x1f\x8b"
    X1, y1, _, _ = read_all(FileSource(gz_named_csv))
    X2, y2, _, _ = read_all(FileSource(plain_named_gz))
    np.testing.assert_array_equal(X1, X2)
    assert y1 == y2 == [0, 1, None, "UP"]
    _, y3, _, _ = read_all(FileSource(gz_named_jsonl))
    assert y3 == [1]


def numbered_csv(tmp_path, n: int) -> pathlib.Path:
    body = "".join(f"{i},{i * 2},{i % 3}\n" for i in range(n))
    return write(tmp_path / "n.csv", "u,v,label\n" + body)


@pytest.mark.parametrize("batch_size,sizes", [(1, [1] * 7), (2, [2, 2, 2, 1]), (3, [3, 3, 1]), (7, [7]), (100, [7])])
def test_batch_sizes(tmp_path, batch_size, sizes):
    source = FileSource(numbered_csv(tmp_path, 7), batch_size=batch_size)
    X, y, lines, batches = read_all(source)
    assert [len(b.y) for b in batches] == sizes
    assert [b.X.shape[0] for b in batches] == sizes
    np.testing.assert_array_equal(X[:, 0], np.arange(7))
    assert lines == list(range(2, 9))
    assert y == [i % 3 for i in range(7)]


def test_rows_read_counts_yielded_rows(tmp_path):
    source = FileSource(numbered_csv(tmp_path, 5), batch_size=2)
    seen = []
    for batch in source:
        seen.append(source.rows_read)
    assert seen == [2, 4, 5]


@pytest.mark.parametrize(
    "limit,batch_size,sizes",
    [(0, 2, []), (1, 2, [1]), (3, 2, [2, 1]), (4, 2, [2, 2]), (5, 4, [4, 1]), (99, 4, [4, 3])],
)
def test_limit(tmp_path, limit, batch_size, sizes):
    source = FileSource(numbered_csv(tmp_path, 7), batch_size=batch_size, limit=limit)
    X, _, _, batches = read_all(source)
    assert [len(b.y) for b in batches] == sizes
    assert source.rows_read == sum(sizes)
    if sizes:
        np.testing.assert_array_equal(X[:, 0], np.arange(sum(sizes)))


def test_limit_counts_good_rows_and_stops_reading(tmp_path):
    text = "a,label\n1,0\ninf,0\n2,0\n3,0\ninf,0\n"
    source, bad = collecting(tmp_path, "s.csv", text, limit=3)
    X, _, lines, _ = read_all(source)
    assert lines == [2, 4, 5]
    assert [b.line for b in bad] == [3]  # line 6 is past the limit and never read


def test_limit_stops_before_a_damaged_tail(tmp_path):
    # Streaming check: a truncated gzip is fine as long as we stop before the damage.
    body = "".join(f"{i},{i},{i % 2}\n" for i in range(200_000))
    data = gzip.compress(("a,b,label\n" + body).encode(), mtime=0)
    path = tmp_path / "big.csv.gz"
    path.write_bytes(data[: len(data) // 2])
    X, _, _, _ = read_all(FileSource(path, batch_size=4, limit=10))
    np.testing.assert_array_equal(X[:, 0], np.arange(10))
    with pytest.raises(InputError, match=r"big\.csv\.gz: corrupt or truncated gzip data after line \d+"):
        list(FileSource(path))


def test_iterating_again_starts_over(tmp_path):
    source, bad = collecting(tmp_path, "s.csv", "a,label\n1,0\ninf,0\n2,1\n", batch_size=1)
    first = read_all(source)
    assert source.rows_read == 2 and source.bad_records == 1
    second = read_all(source)
    assert first[2] == second[2] == [2, 4]
    assert source.rows_read == 2 and source.bad_records == 1
    assert len(bad) == 2


def test_feature_names_known_once_iteration_starts(tmp_path):
    source = FileSource(write(tmp_path / "s.csv", CSV_TEXT))
    with pytest.raises(InputError, match="not known yet"):
        source.feature_names
    iterator = iter(source)
    assert source.feature_names == ["a", "b", "c"]
    names = source.feature_names
    names.append("mutated")
    assert source.feature_names == ["a", "b", "c"]
    assert len(next(iterator).y) == 4


# -- file-level errors ------------------------------------------------------------------


def test_missing_path(tmp_path):
    with pytest.raises(InputError, match=r"nope\.csv: no such file"):
        list(FileSource(tmp_path / "nope.csv"))


def test_directory(tmp_path):
    folder = tmp_path / "dir.csv"
    folder.mkdir()
    with pytest.raises(InputError, match=r"dir\.csv: is a directory"):
        list(FileSource(folder))


@pytest.mark.parametrize("name", ["s.txt", "s.gz", "s.csv.zip", "s.json", "noext"])
def test_unknown_extension(tmp_path, name):
    path = write(tmp_path / name, CSV_TEXT)
    with pytest.raises(InputError, match="unknown file type") as info:
        list(FileSource(path))
    assert name in str(info.value)


@pytest.mark.parametrize(
    "name,content",
    [
        ("e.csv", b""),
        ("e.jsonl", b""),
        ("e.csv.gz", gzip.compress(b"", mtime=0)),
        ("e.jsonl.gz", gzip.compress(b"", mtime=0)),
        ("blank.csv", b"\n\n  \n"),
        ("blank.jsonl", b"\n \n"),
    ],
)
def test_empty_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match="empty file") as info:
        list(FileSource(path))
    assert name in str(info.value)


def corrupt_variants() -> dict[str, bytes]:
    good = gzip.compress(("a,b,label\n" + "1,2,0\n" * 2000).encode(), mtime=0)
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    bad_crc = bytearray(good)
    bad_crc[-8] ^= 0xFF  # CRC32 in the trailer
    return {
        "garbage_after_magic": b"\x1f\x8b" + b"this is not a gzip stream at all" * 10,
        "truncated": good[: len(good) - 20],
        "flipped_byte": bytes(flipped),
        "bad_crc": bytes(bad_crc),
    }


@pytest.mark.parametrize("kind", sorted(corrupt_variants()))
@pytest.mark.parametrize("ext", [".csv.gz", ".jsonl"])
def test_corrupt_gzip(tmp_path, kind, ext):
    path = tmp_path / f"broken{ext}"
    path.write_bytes(corrupt_variants()[kind])
    with pytest.raises(InputError, match=r"broken\.(csv\.gz|jsonl): .*gzip.*line \d+") as info:
        list(FileSource(path))
    assert "\n" not in str(info.value)
    assert isinstance(info.value, StreamSSLError)


def test_invalid_utf8_raises_with_line(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"a,label\n1,0\n2,caf\xe9\n")
    with pytest.raises(InputError, match=r"latin\.csv: not UTF-8 text near line \d+"):
        list(FileSource(path))


def test_unreadable_file(tmp_path, monkeypatch):
    path = write(tmp_path / "locked.csv", CSV_TEXT)

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    source = FileSource(path)
    monkeypatch.setattr(file_module, "open", denied, raising=False)
    with pytest.raises(InputError, match=r"locked\.csv: cannot read file \(Permission denied\)"):
        list(source)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file_by_permissions(tmp_path):
    path = write(tmp_path / "locked.csv", CSV_TEXT)
    path.chmod(0)
    with pytest.raises(InputError, match=r"locked\.csv: cannot read file"):
        list(FileSource(path))


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"batch_size": -1}, {"batch_size": 2.0},
                                    {"batch_size": True}, {"limit": -1}, {"limit": 1.5}])
def test_bad_settings(tmp_path, kwargs):
    path = write(tmp_path / "s.csv", CSV_TEXT)
    with pytest.raises(InputError):
        FileSource(path, **kwargs)


# -- a real recording -------------------------------------------------------------------


@pytest.mark.skipif(not ELEC2.exists(), reason=f"recorded stream {ELEC2} is not available")
def test_elec2_first_200_rows():
    bad: list[BadRecord] = []
    source = FileSource(ELEC2, batch_size=64, limit=200, on_bad=bad.append)
    X, y, lines, batches = read_all(source)
    assert [len(b.y) for b in batches] == [64, 64, 64, 8]
    assert X.shape == (200, 8) and X.dtype == np.float64
    assert np.isfinite(X).all()
    assert source.feature_names == [
        "date", "day", "period", "nswprice", "nswdemand", "vicprice", "vicdemand", "transfer",
    ]
    assert set(y) <= {0, 1} and all(type(label) is int for label in y)
    assert lines == list(range(2, 202))
    assert bad == [] and source.bad_records == 0 and source.rows_read == 200
    np.testing.assert_allclose(X[0], [0, 2, 0, 0.056443, 0.439155, 0.003467, 0.422915, 0.414912])
    assert y[0] == 1


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('a1 ,"\\\t\x00\'é.-')) | st.characters(), max_size=40))
def test_split_csv_reads_a_line_as_the_csv_module_does(line: str) -> None:
    """The split without the csv module (for lines without quotes) gives its fields exactly."""
    import csv

    try:
        expected = next(csv.reader((line,)))
    except csv.Error:
        with pytest.raises(csv.Error):
            file_module._split_csv(line)
        return
    assert file_module._split_csv(line) == expected


def test_label_tokens_read_once_give_the_same_labels_and_refusals(tmp_path: pathlib.Path) -> None:
    """Label tokens remembered per file: repeated ones are the same labels, a bad one is refused
    every time it comes (with its own line), and past the remembered count they are still read."""
    rows = ["a,label"] + [f"{i},{tok}" for i, tok in enumerate([" 1.0 ", "1", "UP", "x" * 300, "UP ", "", "x" * 300, "1"])]
    bad: list[BadRecord] = []
    source = FileSource(write(tmp_path / "t.csv", "\n".join(rows) + "\n"), batch_size=100, on_bad=bad.append)
    batches = [b for b in source if b is not None]
    assert batches[0].y == [1, 1, "UP", "UP", None, 1]
    assert [r.line for r in bad] == [5, 8] and {r.kind for r in bad} == {"bad_label"}
    original = file_module._LABEL_TOKENS
    try:
        file_module._LABEL_TOKENS = 1
        again = FileSource(write(tmp_path / "u.csv", "\n".join(rows) + "\n"), batch_size=100)
        assert [b for b in again if b is not None][0].y == batches[0].y
    finally:
        file_module._LABEL_TOKENS = original
