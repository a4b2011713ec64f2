"""Tests for streamssl.sources.file: replaying CSV / JSONL recordings in micro-batches."""

from __future__ import annotations

import gzip
import json
import os
import pathlib

import numpy as np
import pytest

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
    assert source.feature_names == ["a", "b"]
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
        "abc,2,1\n"  # 6 non-numeric
        "1,nan,1\n"  # 7 NaN
        "inf,1,1\n"  # 8 infinite
        "1,-Infinity,1\n"  # 9 infinite
        "1,,1\n"  # 10 empty feature
        "3,4,1\n"  # 11 good
    )
    source, bad = collecting(tmp_path, "s.csv", text, batch_size=10)
    X, y, lines, _ = read_all(source)
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    assert y == [0, 1]
    assert lines == [2, 11]
    assert source.bad_records == 7 and source.rows_read == 2
    assert [(b.line, b.reason) for b in bad] == [
        (3, "expected 3 columns, got 2"),
        (4, "expected 3 columns, got 4"),
        (6, "non-numeric value 'abc' in column 'a'"),
        (7, "NaN or infinite value in column 'b'"),
        (8, "NaN or infinite value in column 'a'"),
        (9, "NaN or infinite value in column 'b'"),
        (10, "empty value in column 'b'"),
    ]
    assert all(b.path == str(tmp_path / "s.csv") for b in bad)
    assert bad[0].raw == "1,2" and bad[2].raw == "abc,2,1"


def test_bad_records_counted_without_callback(tmp_path):
    source = FileSource(write(tmp_path / "s.csv", "a,label\nx,1\n2,1\n"))
    _, y, lines, _ = read_all(source)
    assert lines == [3] and source.bad_records == 1


def test_bad_record_raw_is_truncated(tmp_path):
    long = "a,label\n" + "z" * 5000 + ",1\n"
    source, bad = collecting(tmp_path, "s.csv", long)
    assert list(source) == []
    assert bad[0].line == 2
    assert bad[0].reason.startswith("non-numeric value 'zzz") and len(bad[0].reason) < 100
    assert bad[0].raw == ("z" * 5000)[:1000]


def test_bad_records_before_first_good_row(tmp_path):
    source, bad = collecting(tmp_path, "s.csv", "a,label\nq,1\nq,1\n1,1\n")
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
    [(3, 3), (-1.0, -1), (" 4 ", 4), ("7.0", 7), ("spam", "spam"), ("", None), (0.5, "0.5")],
)
def test_jsonl_label_parsing(tmp_path, label, expected):
    source = FileSource(write_jsonl(tmp_path / "s.jsonl", [{"a": 1, "label": label}]))
    _, y, _, _ = read_all(source)
    assert y == [expected] and type(y[0]) is type(expected)


def test_jsonl_flat_bad_records(tmp_path):
    records = [
        "",  # 1 blank
        {"a": 1, "b": 2, "label": 0},  # 2 good, fixes the schema
        "{not json",  # 3
        "[1, 2]",  # 4 not an object
        {"a": 1, "label": 1},  # 5 missing b
        {"a": 1, "b": 2, "z": 3},  # 6 extra z
        {"a": "abc", "b": 2},  # 7 string
        {"a": True, "b": 2},  # 8 bool
        {"a": [1], "b": 2},  # 9 nested
        {"a": None, "b": 2},  # 10 null
        '{"a": NaN, "b": 2}',  # 11 NaN
        '{"a": 1, "b": -Infinity}',  # 12 infinite
        {"a": 1, "b": 2, "label": [1]},  # 13 bad label
        {"b": 4, "a": 3, "label": 1},  # 14 good, reordered
        "   ",  # 15 blank
        '"just a string"',  # 16 not an object
    ]
    source, bad = collecting(tmp_path, "s.jsonl", "\n".join(
        r if isinstance(r, str) else json.dumps(r) for r in records
    ) + "\n")
    X, y, lines, _ = read_all(source)
    np.testing.assert_array_equal(X, [[1, 2], [3, 4]])
    assert y == [0, 1] and lines == [2, 14]
    reasons = {b.line: b.reason for b in bad}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 16]
    assert source.bad_records == 12
    assert reasons[3].startswith("invalid JSON")
    assert reasons[4] == "expected a JSON object, got array"
    assert reasons[5] == "missing feature 'b'"
    assert reasons[6] == "unexpected field 'z'"
    assert reasons[7] == "non-numeric value 'abc' in feature 'a'"
    assert "boolean" in reasons[8] and "'a'" in reasons[8]
    assert "array" in reasons[9] and "'a'" in reasons[9]
    assert "null" in reasons[10] and "'a'" in reasons[10]
    assert reasons[11] == "NaN or infinite value in feature 'a'"
    assert reasons[12] == "NaN or infinite value in feature 'b'"
    assert reasons[13].startswith("label must be")
    assert reasons[16] == "expected a JSON object, got string"
    assert bad[0].raw == "{not json"


def test_jsonl_features_list_and_object_bad_records(tmp_path):
    lines_list = [
        {"features": [1, 2]},  # 1 good
        {"features": [1, 2, 3]},  # 2 wrong length
        {"features": {"x0": 1, "x1": 2}},  # 3 wrong type
        {"label": 1},  # 4 no features
        {"features": [1, "2"]},  # 5 string
    ]
    source, bad = collecting(tmp_path, "l.jsonl", "\n".join(json.dumps(r) for r in lines_list))
    _, _, lines, _ = read_all(source)
    assert lines == [1]
    assert [(b.line, b.reason) for b in bad] == [
        (2, "expected 2 features, got 3"),
        (3, "'features' must be an array, got object"),
        (4, "missing field 'features'"),
        (5, "non-numeric value '2' in feature 'x1'"),
    ]

    lines_obj = [
        {"features": {"p": 1, "q": 2}},  # 1 good
        {"features": {"p": 1}},  # 2 missing q
        {"features": {"p": 1, "q": 2, "r": 3}},  # 3 extra r
        {"features": [1, 2]},  # 4 wrong type
    ]
    source, bad = collecting(tmp_path, "o.jsonl", "\n".join(json.dumps(r) for r in lines_obj))
    _, _, lines, _ = read_all(source)
    assert lines == [1]
    assert [(b.line, b.reason) for b in bad] == [
        (2, "missing feature 'q'"),
        (3, "unexpected feature 'r'"),
        (4, "'features' must be an object, got array"),
    ]


def test_jsonl_schema_is_fixed_by_first_good_record(tmp_path):
    records = ['{"a": "x", "b": 1}', {"c": 1, "d": 2}, {"a": 1, "b": 2}]
    source, bad = collecting(tmp_path, "s.jsonl", "\n".join(
        r if isinstance(r, str) else json.dumps(r) for r in records
    ))
    with pytest.raises(InputError):
        source.feature_names
    _, _, lines, _ = read_all(source)
    assert source.feature_names == ["c", "d"]
    assert lines == [2]
    assert [(b.line, b.reason) for b in bad] == [
        (1, "non-numeric value 'x' in feature 'a'"),
        (3, "missing feature 'c'"),
    ]


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
    text = "a,label\n1,0\nbad,0\n2,0\n3,0\nbad,0\n"
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
    source, bad = collecting(tmp_path, "s.csv", "a,label\n1,0\nx,0\n2,1\n", batch_size=1)
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
